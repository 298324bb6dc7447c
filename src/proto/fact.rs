//! Facts: what changed in the chat, as serialisable, protocol-neutral
//! records. The chat state makes one for every change others must know
//! about; the store keeps them (history) and the backplane carries them
//! to other nodes, which apply them with `ChatState::apply_remote`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{ClientTags, ConnId, Event, EventBody, ModeChange, MsgId, Name};

/// One change, with its id and time. Room facts carry the room's name and
/// their place in its order (`seq`, from 1); others have `room: None`, `seq: 0`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    pub id: MsgId,
    pub at_ms: u64,
    /// The connection that did it.
    pub by: ConnId,
    /// The doer's IRC source, `nick!user@host`.
    pub source: Arc<str>,
    pub room: Option<Name>,
    pub seq: u64,
    pub body: FactBody,
}

/// The key the private lines between two accounts are kept under, as a
/// room's are (one order, one history): `@a@b`, the two folded account
/// names in order. No room name starts with `@`, and no nick holds one.
pub fn private_log(a: &str, b: &str) -> String {
    let (a, b) = if a <= b { (a, b) } else { (b, a) };
    format!("@{a}@{b}")
}

/// The other account of the private log `key` that `account` (folded)
/// is in, if it is in it.
pub fn private_peer<'a>(key: &'a str, account: &str) -> Option<&'a str> {
    let (a, b) = key.strip_prefix('@')?.split_once('@')?;
    match (a == account, b == account) {
        (true, _) => Some(b),
        (_, true) => Some(a),
        _ => None,
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FactBody {
    /// A line said in `room` (`action`: `/me`).
    Said {
        from: Name,
        text: Arc<str>,
        action: bool,
    },
    /// A notice to `room`, or to `to`.
    Noticed {
        from: Name,
        to: Option<Name>,
        text: Arc<str>,
    },
    /// A private line.
    Private {
        from: Name,
        to: Name,
        text: Arc<str>,
        action: bool,
    },
    /// Tags with no message (IRC `TAGMSG`) to `room`, or to `to` (then
    /// `room` is the private log), kept when they ask to be (see
    /// `hub::tags::kept`); shown in history only with events.
    Tagged {
        from: Name,
        to: Option<Name>,
        tags: Vec<(String, String)>,
    },
    /// `nick` registered (came online) with this user and host.
    Online {
        nick: Name,
        user: Name,
        host: Name,
        realname: Name,
    },
    Joined {
        nick: Name,
    },
    Parted {
        nick: Name,
        reason: Option<Arc<str>>,
    },
    Kicked {
        nick: Name,
        target: Name,
        reason: Option<Arc<str>>,
    },
    Quit {
        nick: Name,
        reason: Arc<str>,
    },
    NickChanged {
        old: Name,
        new: Name,
    },
    TopicSet {
        nick: Name,
        topic: Option<Arc<str>>,
    },
    ModesChanged {
        nick: Name,
        changes: Vec<ModeChange>,
    },
}

/// A point in a room's history: a message id or a time (ms since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Id(MsgId),
    Time(u64),
    /// A place in the room's order.
    Seq(u64),
}

/// Which part of a room's history to read (the IRCv3 CHATHISTORY selectors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryQuery {
    /// The last facts (after the anchor, if one is given).
    Latest(Option<Anchor>),
    /// The facts just before the anchor.
    Before(Anchor),
    /// The facts just after the anchor.
    After(Anchor),
    /// Facts on both sides of the anchor.
    Around(Anchor),
    /// Facts strictly between two anchors, from the first towards the second.
    Between(Anchor, Anchor),
}

/// An answer from the history: facts oldest first, and whether more exist
/// beyond the limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub facts: Vec<Fact>,
    pub more: bool,
}

impl FactBody {
    /// The `kind` tag this body has in JSON (the store indexes it).
    pub fn kind(&self) -> &'static str {
        match self {
            FactBody::Said { .. } => "said",
            FactBody::Noticed { .. } => "noticed",
            FactBody::Private { .. } => "private",
            FactBody::Tagged { .. } => "tagged",
            FactBody::Online { .. } => "online",
            FactBody::Joined { .. } => "joined",
            FactBody::Parted { .. } => "parted",
            FactBody::Kicked { .. } => "kicked",
            FactBody::Quit { .. } => "quit",
            FactBody::NickChanged { .. } => "nick_changed",
            FactBody::TopicSet { .. } => "topic_set",
            FactBody::ModesChanged { .. } => "modes_changed",
        }
    }

    /// Messages, notices and private lines (what history shows unless
    /// events are asked for).
    pub fn is_message(&self) -> bool {
        matches!(
            self,
            FactBody::Said { .. } | FactBody::Noticed { .. } | FactBody::Private { .. }
        )
    }

    /// Whether nobody may be shown it before it is stored: what people
    /// say, and what operators change. Presence (online, joins, parts,
    /// quits, nick changes) is shown at once and stored as it comes.
    pub fn must_be_durable(&self) -> bool {
        !matches!(
            self,
            FactBody::Online { .. }
                | FactBody::Joined { .. }
                | FactBody::Parted { .. }
                | FactBody::Quit { .. }
                | FactBody::NickChanged { .. }
        )
    }
}

impl Fact {
    /// The event people were shown when this happened (`None` for coming
    /// online, which nobody sees as such). Member counts are unknown (0).
    pub fn event(&self) -> Option<Arc<Event>> {
        self.event_in(0)
    }

    /// The same, for a room that now has `members` people.
    pub fn event_in(&self, members: usize) -> Option<Arc<Event>> {
        let room = || self.room.clone().unwrap_or_else(|| "".into());
        let body = match &self.body {
            FactBody::Said { from, text, action } => EventBody::Message {
                id: self.id,
                seq: self.seq,
                room: room(),
                from: from.clone(),
                text: text.clone(),
                action: *action,
            },
            FactBody::Noticed { from, to, text } => EventBody::Notice {
                id: self.id,
                from: from.clone(),
                room: self.room.clone(),
                to: to.clone(),
                text: text.clone(),
            },
            FactBody::Private {
                from,
                to,
                text,
                action,
            } => EventBody::Private {
                id: self.id,
                from: from.clone(),
                to: to.clone(),
                text: text.clone(),
                action: *action,
            },
            FactBody::Online { .. } => return None,
            FactBody::Tagged { from, to, tags } => {
                let body = EventBody::TagMsg {
                    id: self.id,
                    from: from.clone(),
                    room: to.is_none().then(room),
                    to: to.clone(),
                };
                let tags: ClientTags = tags
                    .iter()
                    .map(|(k, v)| (Arc::from(k.as_str()), Arc::from(v.as_str())))
                    .collect();
                let ev = Event::by(Some(self.source.clone()), body).at(self.at_ms);
                return Some(ev.with_tags(Some(tags)));
            }
            FactBody::Joined { nick } => EventBody::Joined {
                room: room(),
                nick: nick.clone(),
                members,
            },
            FactBody::Parted { nick, reason } => EventBody::Parted {
                room: room(),
                nick: nick.clone(),
                members,
                reason: reason.clone(),
            },
            FactBody::Kicked {
                nick,
                target,
                reason,
            } => EventBody::Kicked {
                room: room(),
                nick: nick.clone(),
                target: target.clone(),
                reason: reason.clone(),
                members,
            },
            FactBody::Quit { nick, reason } => EventBody::Quit {
                nick: nick.clone(),
                reason: reason.clone(),
            },
            FactBody::NickChanged { old, new } => EventBody::NickChanged {
                old: old.clone(),
                new: new.clone(),
            },
            FactBody::TopicSet { nick, topic } => EventBody::TopicChanged {
                id: self.id,
                room: room(),
                nick: nick.clone(),
                topic: topic.clone(),
            },
            FactBody::ModesChanged { nick, changes } => EventBody::ModeChanged {
                room: room(),
                nick: nick.clone(),
                changes: changes.clone(),
            },
        };
        Some(Event::by(Some(self.source.clone()), body).at(self.at_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_logs_are_one_key_per_pair() {
        assert_eq!(private_log("bob", "alice"), "@alice@bob");
        assert_eq!(private_log("alice", "bob"), private_log("bob", "alice"));
        assert_eq!(private_peer("@alice@bob", "alice"), Some("bob"));
        assert_eq!(private_peer("@alice@bob", "bob"), Some("alice"));
        assert_eq!(private_peer("@alice@alice", "alice"), Some("alice"));
        assert_eq!(private_peer("@alice@bob", "al"), None);
        assert_eq!(private_peer("lobby", "lobby"), None, "rooms are not logs");
    }

    #[test]
    fn facts_round_trip_through_json() {
        let f = Fact {
            id: MsgId(42),
            at_ms: 7,
            by: ConnId::new(2, 9),
            source: "bob!~b@h".into(),
            room: Some("lobby".into()),
            seq: 3,
            body: FactBody::Said {
                from: "bob".into(),
                text: "hi".into(),
                action: false,
            },
        };
        let s = serde_json::to_string(&f).unwrap();
        assert!(s.contains("\"kind\":\"said\""), "{s}");
        assert_eq!(serde_json::from_str::<Fact>(&s).unwrap(), f);
    }

    #[test]
    fn kind_is_the_json_tag() {
        let n = || Name::from("n");
        let bodies = [
            FactBody::Said {
                from: n(),
                text: "t".into(),
                action: false,
            },
            FactBody::Noticed {
                from: n(),
                to: None,
                text: "t".into(),
            },
            FactBody::Private {
                from: n(),
                to: n(),
                text: "t".into(),
                action: true,
            },
            FactBody::Online {
                nick: n(),
                user: n(),
                host: n(),
                realname: n(),
            },
            FactBody::Joined { nick: n() },
            FactBody::Parted {
                nick: n(),
                reason: None,
            },
            FactBody::Kicked {
                nick: n(),
                target: n(),
                reason: None,
            },
            FactBody::Quit {
                nick: n(),
                reason: "r".into(),
            },
            FactBody::NickChanged { old: n(), new: n() },
            FactBody::TopicSet {
                nick: n(),
                topic: None,
            },
            FactBody::ModesChanged {
                nick: n(),
                changes: Vec::new(),
            },
        ];
        for body in bodies {
            let v = serde_json::to_value(&body).unwrap();
            assert_eq!(v["kind"], body.kind(), "{v}");
        }
    }
}
