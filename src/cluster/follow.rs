//! Which rooms have members on this node: the rooms whose lines the node
//! reads (follows). Derived from the facts of this node's people as the
//! hub publishes them (joins, parts, kicks, nick changes, quits) and from
//! the kicks of its people that other nodes publish. Pure logic, no I/O.

use std::collections::{HashMap, HashSet};

use super::subjects::room_token;
use crate::hub::names;
use crate::proto::{ConnId, Fact, FactBody, NodeId};

/// A room (its subject token) starts or stops having members here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Its first member here: read its lines from now on.
    Follow(String),
    /// Its last member here left: stop reading its lines.
    Unfollow(String),
}

/// This node's people and the rooms they are in.
#[derive(Debug)]
pub struct LocalRooms {
    node: NodeId,
    /// Members here of each room (by token).
    members: HashMap<String, HashSet<ConnId>>,
    /// Rooms of each person here.
    rooms_of: HashMap<ConnId, HashSet<String>>,
    /// Each person's folded nick (kicks name their target by nick).
    nicks: HashMap<String, ConnId>,
}

impl LocalRooms {
    pub fn new(node: NodeId) -> LocalRooms {
        LocalRooms {
            node,
            members: HashMap::new(),
            rooms_of: HashMap::new(),
            nicks: HashMap::new(),
        }
    }

    /// Whether someone here is in the room of `token`.
    pub fn has_members(&self, token: &str) -> bool {
        self.members.contains_key(token)
    }

    /// Takes a fact this node published (`local`), or one read from the
    /// stream that another node published; what changes in what is followed.
    pub fn observe(&mut self, fact: &Fact, local: bool) -> Vec<Change> {
        let mut changes = Vec::new();
        let mine = local && fact.by.node == self.node;
        match &fact.body {
            FactBody::Online { nick, .. } if mine => {
                self.nicks.insert(names::fold(nick).to_string(), fact.by);
            }
            FactBody::NickChanged { old, new } if mine => {
                self.nicks.remove(&*names::fold(old));
                self.nicks.insert(names::fold(new).to_string(), fact.by);
            }
            FactBody::Joined { nick } if mine => {
                // A person known only by this join (no Online seen: the
                // backplane started after them) is known from now on.
                self.nicks
                    .entry(names::fold(nick).to_string())
                    .or_insert(fact.by);
                if let Some(room) = &fact.room {
                    self.join(fact.by, room_token(room), &mut changes);
                }
            }
            FactBody::Parted { .. } if mine => {
                if let Some(room) = &fact.room {
                    self.leave(fact.by, &room_token(room), &mut changes);
                }
            }
            // Our own kicks are seen when published; others' when read.
            FactBody::Kicked { target, .. } if local == (fact.by.node == self.node) => {
                let target = self.nicks.get(&*names::fold(target)).copied();
                if let (Some(conn), Some(room)) = (target, &fact.room) {
                    self.leave(conn, &room_token(room), &mut changes);
                }
            }
            FactBody::Quit { nick, .. } if local && fact.by.node == self.node => {
                if self.nicks.get(&*names::fold(nick)) == Some(&fact.by) {
                    self.nicks.remove(&*names::fold(nick));
                }
                let rooms = self.rooms_of.remove(&fact.by).unwrap_or_default();
                for room in rooms {
                    self.leave(fact.by, &room, &mut changes);
                }
            }
            _ => {}
        }
        changes
    }

    fn join(&mut self, conn: ConnId, room: String, changes: &mut Vec<Change>) {
        self.rooms_of.entry(conn).or_default().insert(room.clone());
        let members = self.members.entry(room.clone()).or_default();
        if members.is_empty() {
            changes.push(Change::Follow(room));
        }
        members.insert(conn);
    }

    fn leave(&mut self, conn: ConnId, room: &str, changes: &mut Vec<Change>) {
        if let Some(rooms) = self.rooms_of.get_mut(&conn) {
            rooms.remove(room);
        }
        let Some(members) = self.members.get_mut(room) else {
            return;
        };
        if members.remove(&conn) && members.is_empty() {
            self.members.remove(room);
            changes.push(Change::Unfollow(room.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::MsgId;

    fn fact(by: ConnId, room: Option<&str>, body: FactBody) -> Fact {
        Fact {
            id: MsgId(1),
            at_ms: 1,
            by,
            source: "a!b@c".into(),
            room: room.map(Into::into),
            seq: 0,
            body,
        }
    }

    fn online(by: ConnId, nick: &str) -> Fact {
        let body = FactBody::Online {
            nick: nick.into(),
            user: "u".into(),
            host: "h".into(),
            realname: "r".into(),
        };
        fact(by, None, body)
    }

    fn joined(by: ConnId, nick: &str, room: &str) -> Fact {
        let body = FactBody::Joined { nick: nick.into() };
        fact(by, Some(room), body)
    }

    #[test]
    fn a_room_is_followed_from_its_first_member_here_to_its_last() {
        let (a, b) = (ConnId::new(1, 1), ConnId::new(1, 2));
        let mut l = LocalRooms::new(1);
        let lobby = room_token("#Lobby");
        assert!(l.observe(&online(a, "ann"), true).is_empty());
        assert!(l.observe(&online(b, "bob"), true).is_empty());
        assert_eq!(
            l.observe(&joined(a, "ann", "#Lobby"), true),
            vec![Change::Follow(lobby.clone())]
        );
        assert!(l.observe(&joined(b, "bob", "#lobby"), true).is_empty());
        assert!(l.has_members(&lobby));
        let parted = FactBody::Parted {
            nick: "ann".into(),
            reason: None,
        };
        assert!(l.observe(&fact(a, Some("#lobby"), parted), true).is_empty());
        let quit = FactBody::Quit {
            nick: "bob".into(),
            reason: "bye".into(),
        };
        assert_eq!(
            l.observe(&fact(b, None, quit), true),
            vec![Change::Unfollow(lobby.clone())]
        );
        assert!(!l.has_members(&lobby));
    }

    #[test]
    fn other_nodes_people_do_not_count_and_their_kicks_of_ours_do() {
        let (a, remote) = (ConnId::new(1, 1), ConnId::new(2, 1));
        let mut l = LocalRooms::new(1);
        // Another node's join, read from the stream: not ours.
        assert!(l.observe(&joined(remote, "rem", "#x"), false).is_empty());
        assert!(!l.has_members(&room_token("#x")));
        l.observe(&online(a, "ann"), true);
        let nick = FactBody::NickChanged {
            old: "ann".into(),
            new: "Anna".into(),
        };
        l.observe(&fact(a, None, nick), true);
        l.observe(&joined(a, "Anna", "#x"), true);
        let kick = || FactBody::Kicked {
            nick: "rem".into(),
            target: "anna".into(),
            reason: None,
        };
        // Our own kick coming back from the stream was seen when published.
        let ours = fact(ConnId::new(1, 9), Some("#x"), kick());
        assert!(l.observe(&ours, false).is_empty());
        assert_eq!(
            l.observe(&fact(remote, Some("#x"), kick()), false),
            vec![Change::Unfollow(room_token("#x"))]
        );
    }
}
