//! The bench message payload: a fixed-width header carrying the sender id,
//! its sequence number and the scheduled send time, padded to the requested
//! size. Pure encode/decode, no I/O.
//!
//! Layout (ASCII, so no protocol strips or rewrites it):
//!
//! ```text
//! ~nb~SSSSSSSS~QQQQQQQQ~TTTTTTTTTTTTTTTT~xxxx…
//!     sender   sequence  scheduled send time (ns since the run's epoch)
//! ```
//!
//! All numbers are lowercase hex of fixed width, so a template line can be
//! built once per connection and the numbers rewritten in place.

use crate::digits::hex;
use memchr::memmem;

/// Marks the start of a payload inside whatever line the server renders
/// (`nick: PAYLOAD`, `:nick!u@h PRIVMSG #room :PAYLOAD`, …).
pub const MARKER: &[u8] = b"~nb~";
/// Bytes of the header: marker, three hex fields, three separators and a closing `~`.
pub const HEADER_LEN: usize = MARKER.len() + 8 + 1 + 8 + 1 + 16 + 1;
/// The character the rest of the payload is padded with.
const PAD: u8 = b'x';

/// What a payload says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub sender: u32,
    pub seq: u32,
    /// Scheduled send time in nanoseconds since the run's epoch.
    pub sched_ns: u64,
}

/// Writes a full payload of `size` bytes (at least [`HEADER_LEN`]) to `out`.
pub fn encode(h: Header, size: usize, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(MARKER);
    out.resize(start + HEADER_LEN, b'~');
    write_fields(&mut out[start..start + HEADER_LEN], h);
    out.resize(start + size.max(HEADER_LEN), PAD);
}

/// Rewrites the numbers of a header already in place: `buf` starts at the marker.
pub fn write_fields(buf: &mut [u8], h: Header) {
    let m = MARKER.len();
    hex(&mut buf[m..m + 8], h.sender.into());
    buf[m + 8] = b'~';
    hex(&mut buf[m + 9..m + 17], h.seq.into());
    buf[m + 17] = b'~';
    hex(&mut buf[m + 18..m + 34], h.sched_ns.into());
    buf[m + 34] = b'~';
}

fn unhex(src: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &b in src {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | d as u64;
    }
    Some(v)
}

/// Finds payloads in received lines. Build once, use for every line.
pub struct Decoder {
    finder: memmem::Finder<'static>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            finder: memmem::Finder::new(MARKER),
        }
    }
}

impl Decoder {
    /// The header of the payload in `line`, if it has a well-formed one.
    pub fn find(&self, line: &[u8]) -> Option<Header> {
        let at = self.finder.find(line)?;
        decode(&line[at..])
    }
}

/// Decodes a header from bytes that start at the marker.
pub fn decode(b: &[u8]) -> Option<Header> {
    if b.len() < HEADER_LEN || !b.starts_with(MARKER) {
        return None;
    }
    let m = MARKER.len();
    if b[m + 8] != b'~' || b[m + 17] != b'~' || b[m + 34] != b'~' {
        return None;
    }
    Some(Header {
        sender: unhex(&b[m..m + 8])? as u32,
        seq: unhex(&b[m + 9..m + 17])? as u32,
        sched_ns: unhex(&b[m + 18..m + 34])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_size() {
        let h = Header {
            sender: 0xdead_beef,
            seq: 7,
            sched_ns: 1_234_567_890_123,
        };
        let mut out = b"PRIVMSG #r :".to_vec();
        encode(h, 64, &mut out);
        assert_eq!(out.len(), 12 + 64);
        assert!(out.ends_with(b"xxx"));
        assert_eq!(Decoder::default().find(&out), Some(h));
        let line = [b"alice: ".as_slice(), &out[12..]].concat();
        assert_eq!(Decoder::default().find(&line), Some(h));
    }

    #[test]
    fn header_never_shorter_than_its_fields() {
        let mut out = Vec::new();
        encode(
            Header {
                sender: 1,
                seq: 2,
                sched_ns: 3,
            },
            0,
            &mut out,
        );
        assert_eq!(out.len(), HEADER_LEN);
        assert_eq!(&out, b"~nb~00000001~00000002~0000000000000003~");
    }

    #[test]
    fn rewrite_in_place() {
        let mut out = Vec::new();
        let a = Header {
            sender: 5,
            seq: 1,
            sched_ns: 10,
        };
        encode(a, 50, &mut out);
        let b = Header {
            sender: 5,
            seq: 2,
            sched_ns: u64::MAX,
        };
        write_fields(&mut out, b);
        assert_eq!(decode(&out), Some(b));
        assert_eq!(out.len(), 50);
    }

    #[test]
    fn rejects_garbage() {
        let d = Decoder::default();
        assert_eq!(d.find(b"bob: hello"), None);
        assert_eq!(d.find(b"bob: ~nb~0000"), None);
        assert_eq!(
            d.find(b"~nb~0000000g~00000002~0000000000000003~"),
            None,
            "bad hex digit"
        );
        assert_eq!(
            d.find(b"~nb~00000001-00000002~0000000000000003~"),
            None,
            "bad separator"
        );
    }
}
