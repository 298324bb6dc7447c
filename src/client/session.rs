//! What the client knows about its place in the chat, rebuilt from events
//! alone: our nickname, the rooms we are in (the last joined is current) and
//! who is in each. Pure; both front ends keep one, the TUI shows it.

use std::collections::BTreeMap;

use super::event::{EventKind, Status};
use super::protocol::same_nick;

/// Our nick, rooms and their members.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// Our nickname, once accepted.
    pub nick: Option<String>,
    /// Rooms we are in, oldest first; the last is where text goes.
    rooms: Vec<String>,
    /// Members by lower-cased room name, sorted ignoring case.
    members: BTreeMap<String, Vec<String>>,
    /// True while connected to the server.
    pub online: bool,
}

impl Session {
    /// The room text goes to.
    pub fn current_room(&self) -> Option<&str> {
        self.rooms.last().map(String::as_str)
    }

    /// Who is in `room`, as far as we know.
    pub fn members(&self, room: &str) -> &[String] {
        self.members
            .get(&room.to_lowercase())
            .map_or(&[], Vec::as_slice)
    }

    /// Who is in the current room.
    pub fn current_members(&self) -> &[String] {
        self.current_room().map_or(&[], |r| self.members(r))
    }

    /// True if `nick` is us.
    pub fn is_me(&self, nick: &str) -> bool {
        self.nick.as_deref().is_some_and(|me| same_nick(me, nick))
    }

    /// True if `text` mentions our nick as a whole word (ignoring case).
    pub fn mentions_me(&self, text: &str) -> bool {
        let Some(me) = self.nick.as_deref() else {
            return false;
        };
        let (text, me) = (text.to_lowercase(), me.to_lowercase());
        let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        text.match_indices(&me).any(|(i, _)| {
            !word(text[..i].chars().next_back()) && !word(text[i + me.len()..].chars().next())
        })
    }

    /// Updates what we know from one event.
    pub fn apply(&mut self, ev: &EventKind) {
        match ev {
            EventKind::Status(Status::Connected { .. }) => self.online = true,
            EventKind::Status(Status::Lost { .. }) => {
                self.online = false;
                self.rooms.clear();
                self.members.clear();
            }
            EventKind::Registered { nick, .. } => self.nick = Some(nick.clone()),
            EventKind::Joined { room, nick, .. } => {
                if self.is_me(nick) {
                    self.rooms.retain(|r| !same_nick(r, room));
                    self.rooms.push(room.clone());
                }
                self.add(room, nick);
            }
            EventKind::Focus { room } => {
                if let Some(i) = self.rooms.iter().position(|r| same_nick(r, room)) {
                    let r = self.rooms.remove(i);
                    self.rooms.push(r);
                }
            }
            EventKind::Left { room, nick, .. } => {
                if self.is_me(nick) {
                    self.rooms.retain(|r| !same_nick(r, room));
                    self.members.remove(&room.to_lowercase());
                } else if let Some(list) = self.members.get_mut(&room.to_lowercase()) {
                    list.retain(|n| !same_nick(n, nick));
                }
            }
            EventKind::Quit { nick, .. } => {
                for list in self.members.values_mut() {
                    list.retain(|n| !same_nick(n, nick));
                }
            }
            EventKind::Nick { old, new } => {
                if self.is_me(old) {
                    self.nick = Some(new.clone());
                }
                for list in self.members.values_mut() {
                    if let Some(n) = list.iter_mut().find(|n| same_nick(n, old)) {
                        *n = new.clone();
                    }
                    sort(list);
                }
            }
            EventKind::Presence { room, nicks } => {
                let mut list = nicks.clone();
                sort(&mut list);
                list.dedup_by(|a, b| same_nick(a, b));
                self.members.insert(room.to_lowercase(), list);
            }
            _ => {}
        }
    }

    fn add(&mut self, room: &str, nick: &str) {
        let list = self.members.entry(room.to_lowercase()).or_default();
        if !list.iter().any(|n| same_nick(n, nick)) {
            list.push(nick.to_string());
            sort(list);
        }
    }
}

fn sort(list: &mut [String]) {
    list.sort_by_key(|n| n.to_lowercase());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(room: &str, nick: &str) -> EventKind {
        EventKind::Joined {
            room: room.into(),
            nick: nick.into(),
            members: None,
        }
    }

    #[test]
    fn follows_joins_leaves_nicks_and_quits() {
        let mut s = Session::default();
        s.apply(&EventKind::Registered {
            nick: "alice".into(),
            online: None,
        });
        s.apply(&joined("lobby", "alice"));
        s.apply(&EventKind::Presence {
            room: "lobby".into(),
            nicks: vec!["bob".into(), "alice".into(), "Carol".into()],
        });
        assert_eq!(s.current_room(), Some("lobby"));
        assert_eq!(s.current_members(), ["alice", "bob", "Carol"]);
        s.apply(&joined("lobby", "dave"));
        s.apply(&EventKind::Nick {
            old: "bob".into(),
            new: "zed".into(),
        });
        s.apply(&EventKind::Quit {
            nick: "carol".into(),
            reason: None,
        });
        assert_eq!(s.current_members(), ["alice", "dave", "zed"]);
        s.apply(&EventKind::Left {
            room: "lobby".into(),
            nick: "dave".into(),
            members: None,
            reason: None,
        });
        assert_eq!(s.current_members(), ["alice", "zed"]);
        s.apply(&EventKind::Nick {
            old: "ALICE".into(),
            new: "alicia".into(),
        });
        assert_eq!(s.nick.as_deref(), Some("alicia"));
        s.apply(&joined("rust", "alicia"));
        assert_eq!(s.current_room(), Some("rust"));
        s.apply(&EventKind::Focus {
            room: "LOBBY".into(),
        });
        assert_eq!(s.current_room(), Some("lobby"));
        s.apply(&EventKind::Focus {
            room: "rust".into(),
        });
        s.apply(&EventKind::Left {
            room: "rust".into(),
            nick: "alicia".into(),
            members: None,
            reason: None,
        });
        assert_eq!(s.current_room(), Some("lobby"));
    }

    #[test]
    fn mentions_are_whole_words_ignoring_case() {
        let mut s = Session::default();
        assert!(!s.mentions_me("alice"));
        s.nick = Some("Alice".into());
        assert!(s.mentions_me("hi alice!"));
        assert!(s.mentions_me("ALICE: look"));
        assert!(!s.mentions_me("malice aforethought"));
        assert!(!s.mentions_me("alice_b is here"));
        s.nick = Some("小明".into());
        assert!(s.mentions_me("你好 小明"));
    }
}
