//! Where facts go in NATS, and how names become NATS tokens: the one
//! place that knows the subject and key layout (docs/OPERATING.md, Several
//! nodes). Pure functions, no I/O.

use crate::hub::names;
use crate::proto::{Fact, FactBody};

/// The JetStream stream that keeps every fact, in the cluster's one order.
pub const STREAM: &str = "NATTER";
/// The subjects the stream holds: one per room, one for people's comings
/// and goings, one for private lines.
pub const STREAM_SUBJECTS: [&str; 3] = ["natter.room.>", "natter.user", "natter.pm"];
/// Core NATS subject (not kept) on which a starting node asks the others
/// who is on them.
pub const SYNC: &str = "natter-sync";
/// The KV bucket of nick claims: key = the folded nick, value = its owner.
pub const NICKS: &str = "natter-nicks";
/// The KV bucket of node heartbeats (entries expire after the node TTL).
pub const NODES: &str = "natter-nodes";
/// The KV bucket of accounts: key = the folded name, value = the account
/// (JSON: name, password hash, SCRAM credentials, when made).
pub const ACCOUNTS: &str = "natter-accounts";
/// The KV bucket of registered rooms: key = the folded name, value = the
/// room's record (JSON: founder, topic, modes, bans, exceptions).
pub const ROOMS: &str = "natter-rooms";

/// The KV bucket of what accounts keep besides themselves: read markers
/// (key `m.<account>.<target>`, value the server-time timestamp) and the
/// rooms they are put back in on login (key `r.<account>.<room>`, value
/// JSON: the room's name and key); account and target in hex, folded.
pub const KEPT: &str = "natter-kept";

/// A key of the [`KEPT`] bucket, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeptKey {
    /// `account`'s read marker of `target` (both folded).
    Marker { account: String, target: String },
    /// A room (folded key) `account` (folded) is put back in on login.
    Room { account: String, room: String },
}

impl KeptKey {
    /// The key in the bucket.
    pub fn key(&self) -> String {
        match self {
            KeptKey::Marker { account, target } => format!("m.{}.{}", hex(account), hex(target)),
            KeptKey::Room { account, room } => format!("r.{}.{}", hex(account), hex(room)),
        }
    }

    /// What a key of the bucket names (`None`: not a key natter writes).
    pub fn parse(key: &str) -> Option<KeptKey> {
        let mut parts = key.split('.');
        let (kind, account, other) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let (account, other) = (unhex(account)?, unhex(other)?);
        match kind {
            "m" => Some(KeptKey::Marker {
                account,
                target: other,
            }),
            "r" => Some(KeptKey::Room {
                account,
                room: other,
            }),
            _ => None,
        }
    }
}

/// The subject a fact is published on.
pub fn subject_of(fact: &Fact) -> String {
    match (&fact.room, &fact.body) {
        (Some(room), _) => format!("natter.room.{}", hex(&names::fold(room))),
        (None, FactBody::Private { .. } | FactBody::Noticed { .. } | FactBody::Tagged { .. }) => {
            "natter.pm".into()
        }
        (None, _) => "natter.user".into(),
    }
}

/// The KV key of a folded nick, account or room name (keys allow only
/// `[-/_=.a-zA-Z0-9]`, names allow more).
pub fn nick_key(folded: &str) -> String {
    hex(folded)
}

/// A name as lowercase hex of its UTF-8 bytes: valid in any subject token
/// or KV key, and distinct names stay distinct.
fn hex(s: &str) -> String {
    use std::fmt::Write;
    s.bytes()
        .fold(String::with_capacity(s.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// [`hex`] read back (`None`: not hex of UTF-8).
fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{ConnId, MsgId};

    fn fact(room: Option<&str>, body: FactBody) -> Fact {
        Fact {
            id: MsgId(1),
            at_ms: 1,
            by: ConnId::new(1, 1),
            source: "a!b@c".into(),
            room: room.map(Into::into),
            seq: 1,
            body,
        }
    }

    #[test]
    fn rooms_share_a_subject_whatever_their_case_and_odd_names_stay_tokens() {
        let said = || FactBody::Said {
            from: "a".into(),
            text: "t".into(),
            action: false,
        };
        let a = subject_of(&fact(Some("Lobby"), said()));
        assert_eq!(a, subject_of(&fact(Some("lobby"), said())));
        assert_eq!(a, "natter.room.6c6f626279");
        let odd = subject_of(&fact(Some("a.b *>"), said()));
        assert_eq!(odd.split('.').count(), 3, "{odd}");
        assert_ne!(odd, a);
        let private = FactBody::Private {
            from: "a".into(),
            to: "b".into(),
            text: "t".into(),
            action: false,
        };
        assert_eq!(subject_of(&fact(None, private)), "natter.pm");
        let quit = FactBody::Quit {
            nick: "a".into(),
            reason: "r".into(),
        };
        assert_eq!(subject_of(&fact(None, quit)), "natter.user");
    }

    #[test]
    fn nick_keys_are_valid_kv_keys() {
        let k = nick_key("[w]eird|nick^");
        assert!(k.bytes().all(|b| b.is_ascii_hexdigit()), "{k}");
        assert_ne!(nick_key("ab"), nick_key("ba"));
    }

    #[test]
    fn kept_keys_read_back_as_what_they_name() {
        let marker = KeptKey::Marker {
            account: "al.ice".into(),
            target: "#bücher".into(),
        };
        let room = KeptKey::Room {
            account: "al.ice".into(),
            room: "#bücher".into(),
        };
        assert_ne!(marker.key(), room.key());
        for k in [marker, room] {
            let key = k.key();
            assert!(key.split('.').count() == 3, "{key}");
            assert_eq!(KeptKey::parse(&key), Some(k));
        }
        assert_eq!(KeptKey::parse("m.616"), None);
        assert_eq!(KeptKey::parse("x.61.62"), None);
        assert_eq!(KeptKey::parse("m.61.6g"), None);
        assert_eq!(KeptKey::parse("m.61.62.63"), None);
    }
}
