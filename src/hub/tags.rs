//! Tags with no message (IRCv3 `TAGMSG`: typing notifications, reactions):
//! relayed like a message to a room or a person under the same rules;
//! kept in history when its tags ask for it ([`kept`]), and replayed only
//! to clients that ask for events (IRC `draft/event-playback`).
//! Protocols that do not take tags show nothing.
//! Also lines for a room's operators only (IRC `STATUSMSG`), which are not
//! kept either (the history is for every member).

use super::{names, Audience, ChatState};
use crate::proto::fact::FactBody;
use crate::proto::{now_ms, ClientTags, ConnId, ErrorCode, Event, EventBody, Refusal, Target};

/// Tags that ask for a `TAGMSG` to be kept in history: `+draft/persist`,
/// and reactions (`+draft/react`, `+react`). Typing notifications and the
/// like are relayed only.
pub(super) const KEPT_TAGS: &[&str] = &["+draft/persist", "+draft/react", "+react"];

/// Whether a `TAGMSG` with these tags is kept in history.
pub(super) fn kept(tags: &ClientTags) -> bool {
    tags.iter().any(|(k, _)| KEPT_TAGS.contains(&&**k))
}

impl ChatState {
    /// A line to a room's operators (and voiced members, `voiced`), under
    /// the room's usual rules for who may speak; notices are never refused.
    pub(super) fn say_to_status(
        &mut self,
        id: ConnId,
        room: &str,
        text: String,
        action: bool,
        notice: bool,
        voiced: bool,
    ) {
        let refuse = |s: &mut Self, r: Refusal| {
            if !notice {
                s.refuse(id, r);
            }
        };
        if text.trim().is_empty() {
            return refuse(self, Refusal::new(ErrorCode::EmptyMessage));
        }
        let key = match self.current_room(id, Some(room)) {
            Ok(k) => k,
            Err(e) => return refuse(self, e),
        };
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let (Some(from), source) = (conn.nick.clone(), conn.mask.clone()) else {
            return;
        };
        let Some(r) = self.rooms.get(&key) else {
            return refuse(self, Refusal::new(ErrorCode::NoSuchRoom).room(&key));
        };
        if let Err(e) = r.may_speak(id, &source) {
            return refuse(self, e);
        }
        let mut audience: Vec<ConnId> = r
            .members()
            .iter()
            .filter(|(m, st)| (st.op || (voiced && st.voice)) && **m != id)
            .map(|(m, _)| *m)
            .collect();
        audience.sort_unstable();
        audience.push(id); // the sender's echo (shown with echo-message)
        let body = EventBody::StatusMessage {
            id: self.next_id(now_ms()),
            room: r.name.clone(),
            from,
            text: text.into(),
            action,
            notice,
            voiced,
        };
        let ev = Event::by(Some(source), body)
            .with_tags(self.tags.clone())
            .from_bot(self.is_bot(id));
        self.send(Audience::Conns(audience), ev);
    }

    pub(super) fn tag_msg(&mut self, id: ConnId, target: &Target, tags: ClientTags) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let (Some(from), source) = (conn.nick.clone(), conn.mask.clone()) else {
            return;
        };
        let (room, to, audience, outside, key, person) = match target {
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
                let outside = !r.members().contains_key(&id);
                let room = Some(r.name.clone());
                (
                    room,
                    None,
                    Audience::Room(key.clone()),
                    outside,
                    Some(key),
                    None,
                )
            }
            Target::Person(nick) => {
                let Some(&target) = self.nicks.get(&*names::fold(nick)) else {
                    return self.refuse(id, Refusal::new(ErrorCode::NoSuchNick).nick(nick));
                };
                let to = self.nick_of(target).cloned();
                let outside = target != id;
                (
                    None,
                    to,
                    Audience::Conn(target),
                    outside,
                    None,
                    Some(target),
                )
            }
        };
        let body = FactBody::Tagged {
            from: from.clone(),
            to: to.clone(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let (msg_id, at_ms) = match kept(&tags) {
            true => {
                let f = self.fact(id, key.as_ref(), body);
                let made = (f.id, f.at_ms);
                if let Some(target) = person {
                    self.keep_private(id, target);
                }
                made
            }
            false => (self.next_id(now_ms()), now_ms()),
        };
        let body = EventBody::TagMsg {
            id: msg_id,
            from,
            room,
            to,
        };
        let ev = Event::by(Some(source), body)
            .at(at_ms)
            .with_tags(Some(tags))
            .from_bot(self.is_bot(id));
        if outside {
            self.send(Audience::Conn(id), ev.clone()); // the sender's echo
        }
        let to_self = audience == Audience::Conn(id);
        self.send(audience, ev.clone());
        if to_self {
            self.send(Audience::Conn(id), ev.echo_copy());
        }
    }
}
