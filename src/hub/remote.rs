//! Facts that happened on another node: the state takes them as done
//! (that node checked the rules) and tells the local members who should
//! know. Remote people are connections like local ones, with their node
//! in their [`ConnId`]; the router simply has no queue for them.

use super::room::Member;
use super::{names, Audience, ChatState, Conn, Control, Effects};
use std::sync::Arc;

use crate::proto::{
    now_ms, ConnId, Event, EventBody, Fact, FactBody, ModeChange, Name, NodeId, TopicState,
};

/// A room's modes as changes that give them to a new room (`+nt` by
/// default), each with who set it: flags and key and limit first (by the
/// room), then each ban, exception and invite mask by its setter.
fn room_modes(r: &super::room::Room) -> Vec<(Name, Vec<ModeChange>)> {
    let change = |add: bool, mode: char, arg: Option<Arc<str>>| ModeChange { add, mode, arg };
    let m = &r.modes;
    let mut flags: Vec<ModeChange> = [
        ('i', m.invite_only),
        ('m', m.moderated),
        ('n', m.no_external),
        ('t', m.topic_ops),
        ('p', m.private),
        ('s', m.secret),
    ]
    .into_iter()
    .map(|(mode, on)| change(on, mode, None))
    .collect();
    if let Some(k) = &m.key {
        flags.push(change(true, 'k', Some(k.clone())));
    }
    if let Some(l) = m.limit {
        flags.push(change(true, 'l', Some(l.to_string().into())));
    }
    let mut out = vec![(r.name.clone(), flags)];
    for (mode, list) in [('b', &r.bans), ('e', &r.excepts), ('I', &r.invexes)] {
        for b in list {
            out.push((
                b.set_by.clone(),
                vec![change(true, mode, Some(b.mask.clone()))],
            ));
        }
    }
    out
}

impl ChatState {
    /// What a node that just started needs to know about this one's
    /// people: each one's coming online, then joining each of their rooms,
    /// and the topics and modes of those rooms (flags, key, limit, ban,
    /// exception and invite lists, and who of ours is operator or voiced
    /// there), applied there with `apply_remote`.
    pub fn snapshot(&mut self) -> Vec<Fact> {
        let (node, now) = (self.config.node, now_ms());
        let mut facts = Vec::new();
        let mut topics = std::collections::BTreeMap::new();
        let mut modes = std::collections::BTreeMap::new();
        let mut statuses = Vec::new();
        let mut local: Vec<_> = self
            .conns
            .keys()
            .filter(|c| c.node == node)
            .copied()
            .collect();
        local.sort_unstable();
        for by in local {
            let Some(c) = self.conns.get(&by) else {
                continue;
            };
            let Some(nick) = c.nick.clone() else { continue };
            let fact = |room: Option<Name>, body| Fact {
                id: self.next_id(now),
                at_ms: now,
                by,
                source: c.mask.clone(),
                room,
                seq: 0,
                body,
            };
            let online = FactBody::Online {
                nick: nick.clone(),
                user: c.user.clone(),
                host: c.host.clone(),
                realname: c.realname.clone(),
            };
            facts.push(fact(None, online));
            for key in &c.rooms {
                let Some(r) = self.rooms.get(key) else {
                    continue;
                };
                let joined = FactBody::Joined { nick: nick.clone() };
                facts.push(fact(Some(r.name.clone()), joined));
                if let Some(m) = r.members().get(&by) {
                    let status = [('o', m.op), ('v', m.voice)]
                        .into_iter()
                        .filter(|(_, on)| *on)
                        .map(|(mode, _)| ModeChange {
                            add: true,
                            mode,
                            arg: Some(nick.to_string().into()),
                        })
                        .collect::<Vec<_>>();
                    if !status.is_empty() {
                        let body = FactBody::ModesChanged {
                            nick: self.config.server_name.as_str().into(),
                            changes: status,
                        };
                        statuses.push(fact(Some(r.name.clone()), body));
                    }
                }
                modes.entry(key.clone()).or_insert_with(|| {
                    room_modes(r)
                        .into_iter()
                        .map(|(set_by, changes)| {
                            let body = FactBody::ModesChanged {
                                nick: set_by,
                                changes,
                            };
                            fact(Some(r.name.clone()), body)
                        })
                        .collect::<Vec<_>>()
                });
                if let Some(t) = &r.topic {
                    topics.entry(key.clone()).or_insert_with(|| {
                        let body = FactBody::TopicSet {
                            nick: t.set_by.clone(),
                            topic: Some(t.text.clone()),
                        };
                        fact(Some(r.name.clone()), body)
                    });
                }
            }
        }
        facts.extend(topics.into_values());
        facts.extend(modes.into_values().flatten());
        facts.extend(statuses);
        facts
    }

    /// This node is cut off from the cluster: everyone on it is told
    /// `reason` (a `Shutdown`), quits with it, and is disconnected, so they
    /// reconnect to another node rather than be served stale state.
    pub fn fence(&mut self, reason: &str) -> Effects {
        let node = self.config.node;
        let mut local: Vec<ConnId> = self
            .conns
            .keys()
            .filter(|c| c.node == node)
            .copied()
            .collect();
        local.sort_unstable();
        let ev = Event::shared(EventBody::Shutdown {
            reason: reason.to_string().into(),
        });
        for id in local {
            self.send(Audience::Conn(id), ev.clone());
            self.remove(id, reason);
            self.fx.control.push(Control::Close(id));
        }
        self.take()
    }

    /// The quits of everyone on node `node` (gone: dead or cut off), as
    /// facts for the backplane to publish; applied when they come back.
    pub fn quits_of_node(&mut self, node: NodeId, reason: &str) -> Vec<Fact> {
        let now = now_ms();
        let mut quits = Vec::new();
        for (&by, c) in &self.conns {
            let Some(nick) = c.nick.clone().filter(|_| by.node == node) else {
                continue;
            };
            quits.push(Fact {
                id: self.next_id(now),
                at_ms: now,
                by,
                source: c.mask.clone(),
                room: None,
                seq: 0,
                body: FactBody::Quit {
                    nick,
                    reason: reason.into(),
                },
            });
        }
        quits.sort_by_key(|f| f.by);
        quits
    }

    /// Applies a fact from another node. The returned effects hold
    /// deliveries for local members only and no facts (it is not ours to
    /// publish again).
    pub fn apply_remote(&mut self, fact: &Fact) -> Effects {
        let own = fact.by.node == self.config.node;
        if own && !(self.config.echo && fact.body.must_be_durable()) {
            return Effects::default(); // our own, applied and shown when it happened
        }
        let id = fact.by;
        // A private line's `room` is the key it is kept under, not a room.
        let private = matches!(
            fact.body,
            FactBody::Private { .. } | FactBody::Tagged { to: Some(_), .. }
        );
        let key = fact
            .room
            .as_deref()
            .filter(|_| !private)
            .map(|r| self.key_of(r));
        if let (Some(k), Some(r)) = (&key, fact.room.as_ref()) {
            let room = self.new_room(k, r);
            let seq = room.seq_mut();
            *seq = (*seq).max(fact.seq);
            if fact.body.is_message() {
                room.note_said(fact.seq);
            }
        }
        let room_audience = || key.clone().map(Audience::Room);
        // What changes here, and who of ours is told besides the room.
        let mut also = None;
        let audience = match &fact.body {
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
                self.hold_nick(nick, id);
                // A person seen again replaces the record: rooms that
                // held it keep no names order by its old nick.
                self.unsort_rooms_of(id);
                self.conns.insert(id, Box::new(conn));
                self.announce_online(id, nick);
                None
            }
            FactBody::Joined { .. } => {
                let (Some(k), Some(c)) = (&key, self.conns.get_mut(&id)) else {
                    return self.take();
                };
                if !c.rooms.contains(k) {
                    c.rooms.push(k.clone());
                }
                if let Some(room) = self.rooms.get_mut(k) {
                    let op = room.members().is_empty();
                    room.add_member(id, Member { op, voice: false });
                }
                room_audience()
            }
            FactBody::Parted { .. } => {
                if let Some(k) = &key {
                    self.remove_from_room(k, id);
                }
                room_audience()
            }
            FactBody::Kicked { target, .. } => {
                let target_id = self.nicks.get(&*names::fold(target)).copied();
                if let (Some(k), Some(t)) = (&key, target_id) {
                    self.remove_from_room(k, t);
                }
                also = target_id.map(Audience::Conn);
                room_audience()
            }
            FactBody::Quit { reason, .. } => {
                self.remove(id, reason);
                self.fx.facts.clear();
                None
            }
            FactBody::NickChanged { old, new } => {
                self.release_nick(old, id);
                self.hold_nick(new, id);
                if let Some(c) = self.conns.get_mut(&id) {
                    c.nick = Some(new.clone());
                    c.update_mask();
                }
                self.unsort_rooms_of(id);
                if names::fold(old) != names::fold(new) {
                    self.announce_offline(old);
                    self.announce_online(id, new);
                }
                Some(Audience::Conns(self.peers(id, false)))
            }
            FactBody::Said { .. }
            | FactBody::Noticed { to: None, .. }
            | FactBody::Tagged { to: None, .. } => {
                // Our own sender outside the room (it is -n) sees its line too.
                let outside = key
                    .as_ref()
                    .and_then(|k| self.rooms.get(k))
                    .is_some_and(|r| !r.members().contains_key(&id));
                also = (own && outside).then_some(Audience::Conn(id));
                room_audience()
            }
            FactBody::Noticed { to: Some(to), .. }
            | FactBody::Private { to, .. }
            | FactBody::Tagged { to: Some(to), .. } => {
                let target = self.nicks.get(&*names::fold(to)).copied();
                // Our own sender sees its line too (once, if it wrote to itself).
                also = (own && target != Some(id)).then_some(Audience::Conn(id));
                target.map(Audience::Conn)
            }
            FactBody::TopicSet { nick, topic } => {
                if let Some(r) = key.as_ref().and_then(|k| self.rooms.get_mut(k)) {
                    r.topic = topic.clone().map(|text| TopicState {
                        text,
                        set_by: nick.clone(),
                        set_at_ms: fact.at_ms,
                    });
                }
                room_audience()
            }
            FactBody::ModesChanged { nick, changes } => {
                if let Some(k) = &key {
                    for c in changes {
                        let _ = self.apply_mode(k, nick, c);
                    }
                }
                room_audience()
            }
        };
        // The node where a registered room changed saves it, in the
        // stream's order (see `room_changed_at`).
        let change = matches!(
            fact.body,
            FactBody::TopicSet { .. } | FactBody::ModesChanged { .. }
        );
        if let (true, true, Some(k)) = (own, change, &key) {
            self.room_changed_at(k, fact.seq);
        }
        let members = key
            .as_ref()
            .and_then(|k| self.rooms.get(k))
            .map_or(0, |r| r.members().len());
        if let Some(ev) = fact.event_in(members) {
            for to in also.into_iter().chain(audience) {
                self.send(to, ev.clone());
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

    #[test]
    fn fencing_tells_and_lets_go_everyone_here_and_nobody_else() {
        let mut w = echoing();
        let a = w.user("alice");
        let b = w.user("bob");
        let zed = ConnId::new(2, 1);
        let online = FactBody::Online {
            nick: "zed".into(),
            user: "~z".into(),
            host: "far".into(),
            realname: "Zed".into(),
        };
        w.remote(fact(zed, None, 0, online));
        let fx = w.hub().fence("this node is cut off");
        let told: Vec<_> = fx
            .deliveries
            .iter()
            .filter_map(|(to, ev)| match (to, &ev.body) {
                (super::Audience::Conn(c), EventBody::Shutdown { reason }) => {
                    Some((*c, reason.to_string()))
                }
                _ => None,
            })
            .collect();
        let cut = "this node is cut off".to_string();
        assert_eq!(told, [(a, cut.clone()), (b, cut)]);
        assert_eq!(
            fx.control,
            [super::Control::Close(a), super::Control::Close(b)]
        );
        let quits: Vec<_> = fx
            .facts
            .iter()
            .filter(|f| matches!(f.body, FactBody::Quit { .. }))
            .map(|f| f.by)
            .collect();
        assert_eq!(quits.len(), 2, "{quits:?}");
        assert!(quits.contains(&a) && quits.contains(&b));
        // Only the remote person is left.
        assert_eq!(w.hub().online(), 1);
    }

    /// A hub that shows its own lines when the backplane echoes them.
    fn echoing() -> World {
        World::with(super::super::HubConfig {
            node: 1,
            echo: true,
            ..config()
        })
    }

    #[test]
    fn with_echo_own_lines_are_shown_when_they_come_back_in_the_clusters_order() {
        let mut w = echoing();
        let a = w.user("alice");
        let b = w.user("bob");
        w.take(a);
        w.say(a, "mine");
        assert!(
            w.take(a).is_empty() && w.take(b).is_empty(),
            "shown before stored"
        );
        // Another node's line was stored first, then ours came back.
        let zed = ConnId::new(2, 1);
        let online = FactBody::Online {
            nick: "zed".into(),
            user: "~z".into(),
            host: "far".into(),
            realname: "Zed".into(),
        };
        w.remote(fact(zed, None, 0, online));
        let said = |from: &str, text: &str| FactBody::Said {
            from: from.into(),
            text: text.into(),
            action: false,
        };
        w.remote(fact(zed, Some("lobby"), 40, said("zed", "theirs")));
        w.remote(fact(a, Some("lobby"), 41, said("alice", "mine")));
        for who in [a, b] {
            let texts: Vec<_> = w
                .take(who)
                .into_iter()
                .filter_map(|e| match e {
                    EventBody::Message { seq, text, .. } => Some((seq, text.to_string())),
                    _ => None,
                })
                .collect();
            assert_eq!(texts, [(40, "theirs".into()), (41, "mine".into())]);
        }
        // Presence of our own is not applied twice.
        w.remote(fact(
            a,
            Some("lobby"),
            42,
            FactBody::Joined {
                nick: "alice".into(),
            },
        ));
        assert!(w.take(b).is_empty());
    }

    #[test]
    fn with_echo_topics_set_at_once_on_two_nodes_end_the_same_everywhere() {
        let mut w = echoing();
        let a = w.user("alice"); // first in the lobby: its operator
        w.handle(
            a,
            crate::proto::Command::Topic {
                room: "lobby".into(),
                text: Some("ours".into()),
            },
        );
        // Node 2 set its topic at the same time; the stream has it first.
        let zed = ConnId::new(2, 1);
        let topic = |nick: &str, t: &str| FactBody::TopicSet {
            nick: nick.into(),
            topic: Some(t.into()),
        };
        w.remote(fact(zed, Some("lobby"), 7, topic("zed", "theirs")));
        w.remote(fact(a, Some("lobby"), 8, topic("alice", "ours")));
        let now = w.hub().rooms["lobby"]
            .topic
            .as_ref()
            .map(|t| t.text.to_string());
        // Node 2 applies the same two facts in the same order: "ours" too.
        assert_eq!(now.as_deref(), Some("ours"));
        let shown: Vec<_> = w
            .take(a)
            .into_iter()
            .filter_map(|e| match e {
                EventBody::TopicChanged { topic, .. } => topic.map(|t| t.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(shown, ["theirs", "ours"]);
    }
}
