//! Tags with no message (IRCv3 `TAGMSG`: typing notifications, reactions):
//! relayed like a message to a room or a person under the same rules, but
//! not kept in history. Protocols that do not take tags show nothing.

use super::{names, Audience, ChatState};
use crate::proto::{now_ms, ClientTags, ConnId, ErrorCode, Event, EventBody, Refusal, Target};

impl ChatState {
    pub(super) fn tag_msg(&mut self, id: ConnId, target: &Target, tags: ClientTags) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let (Some(from), source) = (conn.nick.clone(), conn.mask.clone()) else {
            return;
        };
        let msg_id = self.ids.next(now_ms());
        let (room, to, audience, outside) = match target {
            Target::Room(name) => {
                let key = match self.current_room(id, Some(name)) {
                    Ok(k) => k,
                    Err(e) => return self.refuse(id, e),
                };
                let Some(r) = self.rooms.get(&key) else {
                    let refusal = Refusal::new(ErrorCode::NoSuchRoom).room(&key);
                    return self.refuse(id, refusal);
                };
                if let Err(refusal) = r.may_speak(id, &source) {
                    return self.refuse(id, refusal);
                }
                let outside = !r.members.contains_key(&id);
                (Some(r.name.clone()), None, Audience::Room(key), outside)
            }
            Target::Person(nick) => {
                let Some(&target) = self.nicks.get(&names::fold(nick)) else {
                    return self.refuse(id, Refusal::new(ErrorCode::NoSuchNick).nick(nick));
                };
                let to = self.nick_of(target).cloned();
                (None, to, Audience::Conn(target), target != id)
            }
        };
        let body = EventBody::TagMsg {
            id: msg_id,
            from,
            room,
            to,
        };
        let ev = Event::by(Some(source), body)
            .with_tags(Some(tags))
            .from_bot(self.is_bot(id));
        if outside {
            self.send(Audience::Conn(id), ev.clone()); // the sender's echo
        }
        self.send(audience, ev);
    }
}
