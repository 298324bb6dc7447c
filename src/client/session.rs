//! What the client knows about its place in the chat, rebuilt from events
//! alone: our nickname, the rooms we are in (the last joined or focused is
//! current), who is in each with their status (`@` operator, `+` voiced),
//! each room's topic, and whether we are away. Pure; both front ends keep
//! one, the TUI shows it.

use super::event::{EventKind, Status};
use super::protocol::same_nick;

/// One person in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub nick: String,
    /// Room operator (`@`).
    pub op: bool,
    /// Voiced (`+`).
    pub voice: bool,
}

impl Member {
    pub fn new(nick: &str) -> Member {
        Member {
            nick: nick.to_string(),
            op: false,
            voice: false,
        }
    }

    /// The members a presence list names, with their status.
    pub fn list(nicks: &[String], ops: &[String], voiced: &[String]) -> Vec<Member> {
        let has = |list: &[String], n: &str| list.iter().any(|o| same_nick(o, n));
        nicks
            .iter()
            .map(|n| Member {
                nick: n.clone(),
                op: has(ops, n),
                voice: has(voiced, n),
            })
            .collect()
    }

    /// `@`, `+` or nothing, as IRC clients show status.
    pub fn prefix(&self) -> &'static str {
        if self.op {
            "@"
        } else if self.voice {
            "+"
        } else {
            ""
        }
    }

    /// Sort key: operators first, then voiced, then everyone, each by name.
    pub fn rank(&self) -> (u8, String) {
        let r = if self.op {
            0
        } else if self.voice {
            1
        } else {
            2
        };
        (r, self.nick.to_lowercase())
    }
}

/// A room we are in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    pub name: String,
    /// Sorted ignoring case.
    pub members: Vec<Member>,
    pub topic: Option<String>,
}

/// Our nick, rooms, their members and topics.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// Our nickname, once accepted.
    pub nick: Option<String>,
    /// Rooms we are in, oldest first; the last is where plain text goes.
    rooms: Vec<Room>,
    /// True while connected to the server.
    pub online: bool,
    /// We marked ourselves away.
    pub away: bool,
    /// Nicks whose messages are not shown (`/ignore`, this client only).
    ignored: Vec<String>,
}

/// True if two room names are the same: case is ignored, and so is a
/// leading `#` (natter's JSON says `lobby` where IRC says `#lobby`).
pub fn same_room(a: &str, b: &str) -> bool {
    let norm = |r: &str| r.trim_start_matches('#').to_lowercase();
    a == b || norm(a) == norm(b)
}

impl Session {
    /// The room text goes to.
    pub fn current_room(&self) -> Option<&str> {
        self.rooms.last().map(|r| r.name.as_str())
    }

    /// The rooms we are in, oldest first.
    pub fn rooms(&self) -> impl Iterator<Item = &Room> {
        self.rooms.iter()
    }

    /// A room we are in.
    pub fn room(&self, name: &str) -> Option<&Room> {
        self.rooms.iter().find(|r| same_room(&r.name, name))
    }

    fn room_mut(&mut self, name: &str) -> Option<&mut Room> {
        self.rooms.iter_mut().find(|r| same_room(&r.name, name))
    }

    /// True if we are in `room`.
    pub fn is_in(&self, room: &str) -> bool {
        self.room(room).is_some()
    }

    /// Who is in `room`, as far as we know.
    pub fn members(&self, room: &str) -> &[Member] {
        self.room(room).map_or(&[], |r| r.members.as_slice())
    }

    /// The nicks in `room`.
    pub fn nicks(&self, room: &str) -> Vec<String> {
        self.members(room).iter().map(|m| m.nick.clone()).collect()
    }

    /// The topic of `room`, if it has one.
    pub fn topic(&self, room: &str) -> Option<&str> {
        self.room(room).and_then(|r| r.topic.as_deref())
    }

    /// The rooms `nick` is in with us.
    pub fn rooms_of(&self, nick: &str) -> Vec<String> {
        self.rooms
            .iter()
            .filter(|r| r.members.iter().any(|m| same_nick(&m.nick, nick)))
            .map(|r| r.name.clone())
            .collect()
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

    /// Stops showing what `nick` says; false if already ignored.
    pub fn ignore(&mut self, nick: &str) -> bool {
        if self.is_ignored(nick) {
            return false;
        }
        self.ignored.push(nick.to_string());
        true
    }

    /// Shows what `nick` says again; false if it was not ignored.
    pub fn unignore(&mut self, nick: &str) -> bool {
        let before = self.ignored.len();
        self.ignored.retain(|n| !same_nick(n, nick));
        self.ignored.len() < before
    }

    /// True if what `nick` says is not shown.
    pub fn is_ignored(&self, nick: &str) -> bool {
        self.ignored.iter().any(|n| same_nick(n, nick))
    }

    /// The ignored nicks.
    pub fn ignored(&self) -> &[String] {
        &self.ignored
    }

    /// Makes `room` (one we are in) the current one.
    pub fn focus(&mut self, room: &str) {
        if let Some(i) = self.rooms.iter().position(|r| same_room(&r.name, room)) {
            let r = self.rooms.remove(i);
            self.rooms.push(r);
        }
    }

    /// Updates what we know from one event.
    pub fn apply(&mut self, ev: &EventKind) {
        match ev {
            EventKind::Status(Status::Connected { .. }) => self.online = true,
            EventKind::Status(Status::Lost { .. }) => {
                self.online = false;
                self.away = false;
                self.rooms.clear();
            }
            EventKind::Registered { nick, .. } => self.nick = Some(nick.clone()),
            EventKind::Joined { room, nick, .. } => {
                if self.is_me(nick) {
                    match self.rooms.iter().position(|r| same_room(&r.name, room)) {
                        Some(_) => self.focus(room),
                        None => self.rooms.push(Room {
                            name: room.clone(),
                            members: Vec::new(),
                            topic: None,
                        }),
                    }
                }
                if let Some(r) = self.room_mut(room) {
                    if !r.members.iter().any(|m| same_nick(&m.nick, nick)) {
                        r.members.push(Member::new(nick));
                        sort(&mut r.members);
                    }
                }
            }
            EventKind::Focus { room } => self.focus(room),
            EventKind::Left { room, nick, .. } | EventKind::Kicked { room, nick, .. } => {
                if self.is_me(nick) {
                    self.rooms.retain(|r| !same_room(&r.name, room));
                } else if let Some(r) = self.room_mut(room) {
                    r.members.retain(|m| !same_nick(&m.nick, nick));
                }
            }
            EventKind::Quit { nick, .. } => {
                for r in &mut self.rooms {
                    r.members.retain(|m| !same_nick(&m.nick, nick));
                }
            }
            EventKind::Nick { old, new } => {
                if self.is_me(old) {
                    self.nick = Some(new.clone());
                }
                for r in &mut self.rooms {
                    if let Some(m) = r.members.iter_mut().find(|m| same_nick(&m.nick, old)) {
                        m.nick = new.clone();
                    }
                    sort(&mut r.members);
                }
            }
            EventKind::Presence {
                room,
                nicks,
                ops,
                voiced,
            } => {
                if let Some(r) = self.room_mut(room) {
                    let mut list = Member::list(nicks, ops, voiced);
                    sort(&mut list);
                    list.dedup_by(|a, b| same_nick(&a.nick, &b.nick));
                    r.members = list;
                }
            }
            EventKind::Topic { room, topic, .. } => {
                if let Some(r) = self.room_mut(room) {
                    r.topic = topic.clone().filter(|t| !t.is_empty());
                }
            }
            EventKind::Mode { room, changes, .. } => {
                if let Some(r) = self.room_mut(room) {
                    for (add, letter, arg) in parse_modes(changes) {
                        let Some(nick) = arg else { continue };
                        let Some(m) = r.members.iter_mut().find(|m| same_nick(&m.nick, &nick))
                        else {
                            continue;
                        };
                        match letter {
                            'o' => m.op = add,
                            'v' => m.voice = add,
                            _ => {}
                        }
                    }
                }
            }
            EventKind::AwayStatus { away } => self.away = *away,
            _ => {}
        }
    }
}

fn sort(list: &mut [Member]) {
    list.sort_by_key(|m| m.nick.to_lowercase());
}

/// Mode changes as (adding, letter, argument): natter's `+o bob +k *` and
/// IRC's `+ov-k bob carol *` both. Letters that take an argument: `o v b`
/// always, `k` and `l` when set, `k` when removed if one is given.
pub fn parse_modes(changes: &str) -> Vec<(bool, char, Option<String>)> {
    let mut out = Vec::new();
    let mut words = changes.split_whitespace().peekable();
    while let Some(word) = words.next() {
        if !word.starts_with(['+', '-']) {
            continue; // an argument nothing asked for
        }
        let mut add = true;
        for c in word.chars() {
            match c {
                '+' => add = true,
                '-' => add = false,
                letter => {
                    let takes = matches!(letter, 'o' | 'v' | 'b' | 'e' | 'I' | 'h' | 'q' | 'a')
                        || (add && matches!(letter, 'k' | 'l'))
                        || (!add && letter == 'k');
                    let arg = match words.peek() {
                        Some(a) if takes && !a.starts_with(['+', '-']) => {
                            words.next().map(str::to_string)
                        }
                        _ => None,
                    };
                    out.push((add, letter, arg));
                }
            }
        }
    }
    out
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

    fn names(s: &Session, room: &str) -> Vec<String> {
        s.nicks(room)
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
            ops: vec!["Carol".into()],
            voiced: vec![],
        });
        assert_eq!(s.current_room(), Some("lobby"));
        assert_eq!(names(&s, "lobby"), ["alice", "bob", "Carol"]);
        assert!(s.members("#LOBBY")[2].op);
        s.apply(&joined("lobby", "dave"));
        s.apply(&EventKind::Nick {
            old: "bob".into(),
            new: "zed".into(),
        });
        s.apply(&EventKind::Quit {
            nick: "carol".into(),
            reason: None,
        });
        assert_eq!(names(&s, "lobby"), ["alice", "dave", "zed"]);
        s.apply(&EventKind::Left {
            room: "lobby".into(),
            nick: "dave".into(),
            members: None,
            reason: None,
        });
        assert_eq!(names(&s, "lobby"), ["alice", "zed"]);
        s.apply(&EventKind::Nick {
            old: "ALICE".into(),
            new: "alicia".into(),
        });
        assert_eq!(s.nick.as_deref(), Some("alicia"));
        s.apply(&joined("rust", "alicia"));
        assert_eq!(s.current_room(), Some("rust"));
        assert_eq!(s.rooms_of("zed"), ["lobby"]);
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
        // Events about rooms we are not in change nothing.
        s.apply(&joined("elsewhere", "zed"));
        assert!(!s.is_in("elsewhere"));
    }

    #[test]
    fn kicks_topics_and_modes() {
        let mut s = Session::default();
        s.apply(&EventKind::Registered {
            nick: "alice".into(),
            online: None,
        });
        s.apply(&joined("#rust", "alice"));
        s.apply(&joined("#rust", "bob"));
        s.apply(&EventKind::Topic {
            room: "#rust".into(),
            topic: Some("crabs".into()),
            by: Some("bob".into()),
            changed: true,
        });
        assert_eq!(s.topic("#rust"), Some("crabs"));
        s.apply(&EventKind::Mode {
            room: "#rust".into(),
            by: "bob".into(),
            changes: "+ov-k bob alice *".into(),
        });
        let ranks: Vec<_> = s
            .members("#rust")
            .iter()
            .map(|m| format!("{}{}", m.prefix(), m.nick))
            .collect();
        assert_eq!(ranks, ["+alice", "@bob"]);
        s.apply(&EventKind::Mode {
            room: "#rust".into(),
            by: "bob".into(),
            changes: "-v alice +k * +o alice".into(),
        });
        assert!(s.members("#rust")[0].op && !s.members("#rust")[0].voice);
        s.apply(&EventKind::Kicked {
            room: "#rust".into(),
            by: "bob".into(),
            nick: "alice".into(),
            reason: None,
            members: Some(1),
        });
        assert!(!s.is_in("#rust"));
        assert_eq!(s.current_room(), None);
    }

    #[test]
    fn modes_parse_both_ways() {
        assert_eq!(
            parse_modes("+o bob +k * -m"),
            [
                (true, 'o', Some("bob".into())),
                (true, 'k', Some("*".into())),
                (false, 'm', None)
            ]
        );
        assert_eq!(
            parse_modes("+ovl bob carol 10"),
            [
                (true, 'o', Some("bob".into())),
                (true, 'v', Some("carol".into())),
                (true, 'l', Some("10".into()))
            ]
        );
        assert_eq!(parse_modes("-l"), [(false, 'l', None)]);
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
