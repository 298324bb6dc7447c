//! Facts: what changed in the chat, as serialisable, protocol-neutral
//! records. The chat state makes one for every change others must know
//! about; the store keeps them (history) and the backplane carries them
//! to other nodes, which apply them with `ChatState::apply_remote`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{ConnId, ModeChange, MsgId, Name};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
