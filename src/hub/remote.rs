//! Facts that happened on another node: the state takes them as done
//! (that node checked the rules) and tells the local members who should
//! know. Remote people are connections like local ones, with their node
//! in their [`ConnId`]; the router simply has no queue for them.

use super::room::Member;
use super::{names, Audience, ChatState, Conn, Effects};
use crate::proto::{Event, EventBody, Fact, FactBody, Name};

impl ChatState {
    /// Applies a fact from another node. The returned effects hold
    /// deliveries for local members only and no facts (it is not ours to
    /// publish again).
    pub fn apply_remote(&mut self, fact: &Fact) -> Effects {
        if fact.by.node == self.config.node {
            return Effects::default(); // our own, echoed back
        }
        let id = fact.by;
        let source = Some(fact.source.clone());
        let key = fact.room.as_deref().map(|r| self.key_of(r));
        if let (Some(k), Some(r)) = (&key, fact.room.as_ref()) {
            let room = self.new_room(k, r);
            room.seq = room.seq.max(fact.seq);
        }
        let room_name = fact.room.clone().unwrap_or_else(|| "".into());
        let to_room = |k: &Option<Name>| Audience::Room(k.clone().unwrap_or_else(|| "".into()));
        let ev = |body| Event::by(source.clone(), body).at(fact.at_ms);
        match &fact.body {
            FactBody::Online {
                nick,
                user,
                host,
                realname,
            } => {
                let mut conn = Conn::new(host.clone());
                conn.nick = Some(nick.clone());
                conn.user = user.clone();
                conn.realname = realname.clone();
                conn.update_mask();
                self.nicks.insert(names::fold(nick), id);
                self.conns.insert(id, conn);
            }
            FactBody::Joined { nick } => {
                let (Some(k), Some(c)) = (&key, self.conns.get_mut(&id)) else {
                    return self.take();
                };
                if !c.rooms.contains(k) {
                    c.rooms.push(k.clone());
                }
                let Some(room) = self.rooms.get_mut(k) else {
                    return self.take();
                };
                let op = room.members.is_empty();
                room.members.insert(id, Member { op, voice: false });
                let members = room.members.len();
                let body = EventBody::Joined {
                    room: room_name,
                    nick: nick.clone(),
                    members,
                };
                self.send(to_room(&key), ev(body));
            }
            FactBody::Parted { nick, reason } => {
                if let Some(k) = &key {
                    self.remove_from_room(k, id);
                }
                let members = key
                    .as_ref()
                    .and_then(|k| self.rooms.get(k))
                    .map_or(0, |r| r.members.len());
                let body = EventBody::Parted {
                    room: room_name,
                    nick: nick.clone(),
                    members,
                    reason: reason.clone(),
                };
                self.send(to_room(&key), ev(body));
            }
            FactBody::Kicked {
                nick,
                target,
                reason,
            } => {
                let target_id = self.nicks.get(&names::fold(target)).copied();
                if let (Some(k), Some(t)) = (&key, target_id) {
                    self.remove_from_room(k, t);
                }
                let members = key
                    .as_ref()
                    .and_then(|k| self.rooms.get(k))
                    .map_or(0, |r| r.members.len());
                let body = EventBody::Kicked {
                    room: room_name,
                    nick: nick.clone(),
                    target: target.clone(),
                    reason: reason.clone(),
                    members,
                };
                let ev = ev(body);
                if let Some(t) = target_id {
                    self.send(Audience::Conn(t), ev.clone());
                }
                self.send(to_room(&key), ev);
            }
            FactBody::Quit { reason, .. } => {
                self.remove(id, reason);
                self.fx.facts.clear();
            }
            FactBody::NickChanged { old, new } => {
                self.nicks.remove(&names::fold(old));
                self.nicks.insert(names::fold(new), id);
                if let Some(c) = self.conns.get_mut(&id) {
                    c.nick = Some(new.clone());
                    c.update_mask();
                }
                let peers = self.peers(id, false);
                let body = EventBody::NickChanged {
                    old: old.clone(),
                    new: new.clone(),
                };
                self.send(Audience::Conns(peers), ev(body));
            }
            FactBody::Said { from, text, action } => {
                let body = EventBody::Message {
                    id: fact.id,
                    seq: fact.seq,
                    room: room_name,
                    from: from.clone(),
                    text: text.clone(),
                    action: *action,
                };
                self.send(to_room(&key), ev(body));
            }
            FactBody::Noticed { from, to, text } => {
                let dest = match to {
                    Some(nick) => match self.nicks.get(&names::fold(nick)) {
                        Some(&t) => Audience::Conn(t),
                        None => return self.take(),
                    },
                    None => to_room(&key),
                };
                let body = EventBody::Notice {
                    id: fact.id,
                    from: from.clone(),
                    room: fact.room.clone(),
                    to: to.clone(),
                    text: text.clone(),
                };
                self.send(dest, ev(body));
            }
            FactBody::Private {
                from,
                to,
                text,
                action,
            } => {
                if let Some(&t) = self.nicks.get(&names::fold(to)) {
                    let body = EventBody::Private {
                        id: fact.id,
                        from: from.clone(),
                        to: to.clone(),
                        text: text.clone(),
                        action: *action,
                    };
                    self.send(Audience::Conn(t), ev(body));
                }
            }
            FactBody::TopicSet { nick, topic } => {
                if let Some(r) = key.as_ref().and_then(|k| self.rooms.get_mut(k)) {
                    r.topic = topic.clone().map(|text| crate::proto::TopicState {
                        text,
                        set_by: nick.clone(),
                        set_at_ms: fact.at_ms,
                    });
                }
                let body = EventBody::TopicChanged {
                    room: room_name,
                    nick: nick.clone(),
                    topic: topic.clone(),
                };
                self.send(to_room(&key), ev(body));
            }
            FactBody::ModesChanged { nick, changes } => {
                if let Some(k) = &key {
                    for c in changes {
                        let _ = self.apply_mode(k, nick, c);
                    }
                }
                let body = EventBody::ModeChanged {
                    room: room_name,
                    nick: nick.clone(),
                    changes: changes.clone(),
                };
                self.send(to_room(&key), ev(body));
            }
        }
        self.take()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{config, World};
    use crate::proto::{ConnId, EventBody, Fact, FactBody, MsgId};

    fn fact(by: ConnId, room: Option<&str>, seq: u64, body: FactBody) -> Fact {
        Fact {
            id: MsgId(seq as u128 + 1),
            at_ms: 1,
            by,
            source: "zed!~z@far".into(),
            room: room.map(Into::into),
            seq,
            body,
        }
    }

    #[test]
    fn remote_people_join_talk_and_quit_in_local_rooms() {
        let mut w = World::with(config());
        let a = w.user("alice");
        w.take(a);
        let zed = ConnId::new(9, 1);
        let online = FactBody::Online {
            nick: "zed".into(),
            user: "~z".into(),
            host: "far".into(),
            realname: "Zed".into(),
        };
        w.remote(fact(zed, None, 0, online));
        w.remote(fact(
            zed,
            Some("lobby"),
            5,
            FactBody::Joined { nick: "zed".into() },
        ));
        assert!(
            matches!(&w.take(a)[..], [EventBody::Joined { nick, members: 2, .. }] if &**nick == "zed")
        );
        let said = FactBody::Said {
            from: "zed".into(),
            text: "hi from afar".into(),
            action: false,
        };
        w.remote(fact(zed, Some("lobby"), 6, said));
        assert!(
            matches!(&w.take(a)[..], [EventBody::Message { seq: 6, text, .. }] if &**text == "hi from afar")
        );
        // The next local line continues the room's order.
        w.say(a, "welcome");
        assert!(matches!(
            &w.take(a)[..],
            [EventBody::Message { seq: 7, .. }]
        ));
        // The remote nick is taken here too.
        let b = w.connect_cap(10);
        w.handle(b, crate::proto::Command::Register { nick: "ZED".into() });
        assert_eq!(
            super::super::tests::error_code(&w.take(b)),
            Some(crate::proto::ErrorCode::NickInUse)
        );
        let quit = FactBody::Quit {
            nick: "zed".into(),
            reason: "bye".into(),
        };
        w.remote(fact(zed, None, 0, quit));
        assert!(matches!(&w.take(a)[..], [EventBody::Quit { nick, .. }] if &**nick == "zed"));
        assert_eq!(w.hub().online(), 1);
    }
}
