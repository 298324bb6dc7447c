//! IRCv3 `draft/read-marker`: `MARKREAD <target> [timestamp=…]` records
//! (and tells back) how far the client has read a channel or a
//! conversation; on joining a channel the client is told its marker. Each
//! connection keeps its markers here, at most [`MAX_MARKERS`]; a marker
//! only ever moves forward. For a connection logged in to an account these
//! are a copy of the account's (kept by the chat and in the database,
//! loaded on logging in and updated when another session moves one).

use std::collections::HashMap;

pub use crate::proto::MAX_MARKERS;

/// One connection's read markers, by folded target.
#[derive(Debug, Default)]
pub struct ReadMarkers {
    marks: HashMap<String, (u64, String)>,
    /// Bumped on every set, to find the oldest.
    clock: u64,
}

/// Why a `MARKREAD` set was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidTimestamp;

impl ReadMarkers {
    /// `timestamp=…` for `target`, or `*` if none is kept.
    pub fn get(&self, target: &str) -> String {
        match self.marks.get(&target.to_lowercase()) {
            Some((_, ts)) => format!("timestamp={ts}"),
            None => "*".into(),
        }
    }

    /// Sets `target`'s marker from `timestamp=YYYY-MM-DDThh:mm:ss.sssZ`
    /// unless it is older than the one kept; returns the marker now kept.
    pub fn set(&mut self, target: &str, value: &str) -> Result<String, InvalidTimestamp> {
        let ts = value
            .strip_prefix("timestamp=")
            .filter(|ts| is_timestamp(ts))
            .ok_or(InvalidTimestamp)?;
        let key = target.to_lowercase();
        self.clock += 1;
        let newer = self
            .marks
            .get(&key)
            .is_none_or(|(_, old)| ts > old.as_str());
        if newer {
            if !self.marks.contains_key(&key) && self.marks.len() >= MAX_MARKERS {
                if let Some(oldest) = self
                    .marks
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone())
                {
                    self.marks.remove(&oldest);
                }
            }
            self.marks.insert(key, (self.clock, ts.to_string()));
        }
        Ok(self.get(target))
    }
}

/// `2019-01-04T14:33:26.123Z`: the server-time format (which sorts as
/// text in time order).
fn is_timestamp(ts: &str) -> bool {
    let b = ts.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 24
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..23)
        && b[23] == b'Z'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_only_move_forward() {
        let mut m = ReadMarkers::default();
        assert_eq!(m.get("#a"), "*");
        let new = "timestamp=2019-06-01T12:00:00.000Z";
        assert_eq!(m.set("#A", new).as_deref(), Ok(new));
        let old = "timestamp=2019-01-01T00:00:00.000Z";
        assert_eq!(m.set("#a", old).as_deref(), Ok(new));
        assert_eq!(m.set("#a", "timestamp=yesterday"), Err(InvalidTimestamp));
        assert_eq!(m.set("#a", "*"), Err(InvalidTimestamp));
    }
}
