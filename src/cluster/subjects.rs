//! Where facts go in NATS, and how names become NATS tokens: the one
//! place that knows the subject and key layout (docs/OPERATING.md, Several
//! nodes). Pure functions, no I/O.

use crate::hub::names;
use crate::proto::{Fact, FactBody};

/// The JetStream stream that keeps every fact, in the cluster's one order.
pub const STREAM: &str = "NATTER";
/// The subjects the stream holds: `natter.<where>.<kind>`, where `<where>`
/// is `r` + a room's hex name, `p` + a private log's hex key, `user` or
/// `pm`, and `<kind>` is `state` (every node reads it) or `line` (what is
/// said in a room: read only by nodes with members there). `natter.user.state`
/// has who is where: people coming, going, changing nick, joining and
/// leaving rooms; `natter.r<room>.state` what else changes in a room
/// (topics, modes, kicks).
pub const STREAM_SUBJECTS: [&str; 1] = ["natter.>"];
/// The stream republishes each fact it stores on core NATS, under this
/// prefix (`live.natter.…`), with the headers `Nats-Sequence` and
/// `Nats-Last-Sequence` (the previous sequence on the same subject).
pub const LIVE: &str = "live.";
/// Every node's subscription: everything but room lines.
pub const LIVE_STATE: &str = "live.natter.*.state";
/// Every subject but room lines, in the stream: its newest fact is asked
/// for at each tail check.
pub const LAST_STATE: &str = "natter.*.state";
/// Every room's lines, in the stream (one fill for many rooms' gaps).
pub const ALL_LINES: &str = "natter.*.line";
/// Where a bundle goes: several facts that only say who is where (not
/// durable: coming online, joining, leaving, quitting, nick changes) that
/// one thing someone did made at once, published as one message (a JSON
/// array) on the subject of people's facts, so every node reads them in
/// the order they were made, with one sequence (each fact of a room in it
/// is of another room: a room's facts keep distinct sequences).
pub const BUNDLE: &str = "natter.user.state";
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
        (
            Some(key),
            FactBody::Private { .. }
            | FactBody::Noticed { to: Some(_), .. }
            | FactBody::Tagged { to: Some(_), .. },
        ) => format!("natter.p{}.state", hex(&names::fold(key))),
        (None, FactBody::Private { .. } | FactBody::Noticed { .. } | FactBody::Tagged { .. }) => {
            "natter.pm.state".into()
        }
        (Some(room), body) if is_line(body) => line_subject(&room_token(room)),
        // Who is where (joins, parts): with people's comings and goings,
        // on one subject, so they are read in one order (and bundled).
        (Some(_), body) if !body.must_be_durable() => BUNDLE.into(),
        (Some(room), _) => format!("natter.{}.state", room_token(room)),
        (None, _) => "natter.user.state".into(),
    }
}

/// Whether `fact` may join `bundle` (facts to publish as one message): it
/// is not durable, and its room (if any) has no fact in it yet.
pub fn bundles_with(bundle: &[Fact], fact: &Fact) -> bool {
    if fact.body.must_be_durable() {
        return false;
    }
    let Some(room) = &fact.room else {
        return true;
    };
    let room = names::fold(room);
    !bundle
        .iter()
        .filter_map(|f| f.room.as_ref())
        .any(|r| names::fold(r) == room)
}

/// The facts of a message of the stream: one fact (a JSON object), or a
/// bundle (a JSON array of them); an error if it is neither.
pub fn decode(payload: &[u8]) -> serde_json::Result<Vec<Fact>> {
    match payload.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice(payload),
        _ => serde_json::from_slice(payload).map(|f| vec![f]),
    }
}

/// Whether a fact of a room is a line said there (only the nodes with
/// members in the room read it), not a change everyone must know.
pub fn is_line(body: &FactBody) -> bool {
    matches!(
        body,
        FactBody::Said { .. }
            | FactBody::Noticed { to: None, .. }
            | FactBody::Tagged { to: None, .. }
    )
}

/// A room's token in subjects: `r` + its folded name in hex.
pub fn room_token(room: &str) -> String {
    format!("r{}", hex(&names::fold(room)))
}

/// The subject of the lines said in the room of `token`.
pub fn line_subject(token: &str) -> String {
    format!("natter.{token}.line")
}

/// The room token of a line subject (`natter.<token>.line`), live or not.
pub fn line_room(subject: &str) -> Option<&str> {
    let s = subject.strip_prefix(LIVE).unwrap_or(subject);
    s.strip_prefix("natter.r")?.strip_suffix(".line")?;
    s.strip_prefix("natter.")?.strip_suffix(".line")
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
        assert_eq!(a, "natter.r6c6f626279.line");
        assert_eq!(line_room(&a), Some("r6c6f626279"));
        assert_eq!(line_room(&format!("live.{a}")), Some("r6c6f626279"));
        let odd = subject_of(&fact(Some("a.b *>"), said()));
        assert_eq!(odd.split('.').count(), 3, "{odd}");
        assert_ne!(odd, a);
        let topic = FactBody::TopicSet {
            nick: "a".into(),
            topic: None,
        };
        assert_eq!(
            subject_of(&fact(Some("Lobby"), topic)),
            "natter.r6c6f626279.state"
        );
        assert_eq!(line_room("natter.r6c6f626279.state"), None);
        let joined = FactBody::Joined { nick: "a".into() };
        assert_eq!(subject_of(&fact(Some("Lobby"), joined)), BUNDLE);
        let private = || FactBody::Private {
            from: "a".into(),
            to: "b".into(),
            text: "t".into(),
            action: false,
        };
        assert_eq!(subject_of(&fact(None, private())), "natter.pm.state");
        assert_eq!(
            subject_of(&fact(Some("a b"), private())),
            "natter.p612062.state"
        );
        assert_eq!(line_room("natter.p612062.line"), None);
        let quit = FactBody::Quit {
            nick: "a".into(),
            reason: "r".into(),
        };
        assert_eq!(subject_of(&fact(None, quit)), "natter.user.state");
    }

    #[test]
    fn who_is_where_bundles_one_fact_per_room_and_reads_back_in_order() {
        let joined = |room: &str| fact(Some(room), FactBody::Joined { nick: "a".into() });
        let online = fact(
            None,
            FactBody::Online {
                nick: "a".into(),
                user: "u".into(),
                host: "h".into(),
                realname: "r".into(),
            },
        );
        let parted = fact(
            Some("Lobby"),
            FactBody::Parted {
                nick: "a".into(),
                reason: None,
            },
        );
        let mut bundle = vec![online.clone()];
        assert!(bundles_with(&bundle, &joined("lobby")));
        bundle.push(joined("lobby"));
        assert!(!bundles_with(&bundle, &parted), "two facts of one room");
        assert!(bundles_with(&bundle, &joined("other")));
        assert!(bundles_with(&bundle, &online), "facts of no room");
        let topic = FactBody::TopicSet {
            nick: "a".into(),
            topic: None,
        };
        assert!(!bundles_with(&[], &fact(Some("x"), topic)), "durable");
        let payload = serde_json::to_vec(&bundle).unwrap();
        let back = decode(&payload).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].body.kind(), "online");
        assert_eq!(back[1].room.as_deref(), Some("lobby"));
        let one = decode(&serde_json::to_vec(&parted).unwrap()).unwrap();
        assert_eq!(one.len(), 1);
        assert!(decode(b"{\"not\": 1}").is_err());
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
