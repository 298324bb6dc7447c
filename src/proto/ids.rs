//! Identities that survive leaving the process: connection keys that name
//! their node, and message ids that are unique across nodes and sort by
//! time (the UUIDv7 layout: 48 bits of Unix milliseconds, then a counter
//! and the node id, so ids made on one node in one millisecond still sort
//! in the order they were made).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which natter process something happened on (`--node`; 0 for a lone server).
pub type NodeId = u16;

/// One connection, anywhere in the cluster: its node and a key that node
/// chose (the server's router uses it as a slot and generation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConnId {
    pub node: NodeId,
    pub local: u64,
}

impl ConnId {
    pub const fn new(node: NodeId, local: u64) -> ConnId {
        ConnId { node, local }
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node, self.local)
    }
}

/// A message id: a UUIDv7, written in the usual hyphenated form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct MsgId(pub u128);

impl MsgId {
    /// The Unix time in milliseconds the id was made at.
    pub fn millis(self) -> u64 {
        (self.0 >> 80) as u64
    }
}

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `{:032x}` cut 8-4-4-4-12, without the formatting machinery (a
        // session id and every message's id are written this way).
        let (mut text, v) = (*b"00000000-0000-0000-0000-000000000000", self.0);
        crate::digits::hex(&mut text[..8], v >> 96);
        crate::digits::hex(&mut text[9..13], v >> 80);
        crate::digits::hex(&mut text[14..18], v >> 64);
        crate::digits::hex(&mut text[19..23], v >> 48);
        crate::digits::hex(&mut text[24..], v);
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl From<MsgId> for String {
    fn from(id: MsgId) -> String {
        id.to_string()
    }
}

impl std::str::FromStr for MsgId {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<MsgId, Self::Err> {
        let hex: String = s.chars().filter(|c| *c != '-').collect();
        if hex.len() != 32 || s.len() != 36 {
            return Err("a message id is a UUID (8-4-4-4-12 hex digits)");
        }
        u128::from_str_radix(&hex, 16)
            .map(MsgId)
            .map_err(|_| "a message id is a UUID (8-4-4-4-12 hex digits)")
    }
}

impl TryFrom<String> for MsgId {
    type Error = &'static str;
    fn try_from(s: String) -> Result<MsgId, Self::Error> {
        s.parse()
    }
}

/// Makes message ids for one node: strictly increasing, even when the
/// clock stands still or steps back (the last time is kept and the
/// counter carries).
#[derive(Debug, Clone)]
pub struct IdGen {
    node: NodeId,
    last_ms: u64,
    counter: u64,
}

/// Bits of the counter within one millisecond (12 in `rand_a`, 46 in `rand_b`).
const COUNTER_BITS: u32 = 58;

impl IdGen {
    pub fn new(node: NodeId) -> IdGen {
        IdGen {
            node,
            last_ms: 0,
            counter: 0,
        }
    }

    /// The next id at time `now_ms`.
    pub fn next(&mut self, now_ms: u64) -> MsgId {
        if now_ms > self.last_ms {
            self.last_ms = now_ms;
            self.counter = 0;
        } else {
            self.counter += 1;
            if self.counter >> COUNTER_BITS != 0 {
                self.last_ms += 1; // 2^58 ids in one millisecond: borrow the next one
                self.counter = 0;
            }
        }
        let ms = (self.last_ms as u128 & 0xffff_ffff_ffff) << 80;
        let version = 0x7u128 << 76;
        let rand_a = ((self.counter >> 46) as u128 & 0xfff) << 64;
        let variant = 0b10u128 << 62;
        let node = (self.node as u128) << 46;
        let low = (self.counter & ((1 << 46) - 1)) as u128;
        MsgId(ms | version | rand_a | variant | node | low)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message id reads as its 32 hex digits cut 8-4-4-4-12, and reads
    /// back.
    #[test]
    fn message_ids_are_hyphenated_hex() {
        for v in [
            0u128,
            1,
            u128::MAX,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
            1 << 80,
        ] {
            let h = format!("{v:032x}");
            let want = format!(
                "{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            );
            assert_eq!(MsgId(v).to_string(), want);
            assert_eq!(want.parse::<MsgId>(), Ok(MsgId(v)));
        }
    }

    #[test]
    fn ids_increase_even_when_the_clock_stalls_or_steps_back() {
        let mut g = IdGen::new(3);
        let a = g.next(1_000);
        let b = g.next(1_000);
        let c = g.next(999);
        let d = g.next(2_000);
        assert!(a < b && b < c && c < d);
        assert_eq!(a.millis(), 1_000);
        assert_eq!(d.millis(), 2_000);
    }

    #[test]
    fn nodes_never_collide_and_text_round_trips() {
        let (mut g1, mut g2) = (IdGen::new(1), IdGen::new(2));
        let (a, b) = (g1.next(5), g2.next(5));
        assert_ne!(a, b);
        let s = a.to_string();
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "7", "version nibble: {s}");
        assert_eq!(s.parse::<MsgId>(), Ok(a));
        assert!("not-a-uuid".parse::<MsgId>().is_err());
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<MsgId>(&json).unwrap(), a);
    }
}
