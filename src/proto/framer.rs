//! What a connection's bytes are cut into for its protocol session: lines
//! ([`LineDecoder`]: text and IRC) or JSON values ([`JsonStream`]: JSON
//! with or without line breaks). On the main port the first byte that is
//! not a space, tab or `\r` picks one (`{`: JSON values; anything else:
//! lines), before any item is handed on, so the session the first item
//! chooses (`session::detect`) always gets the framing it expects.

use super::json_stream::JsonStream;
use super::line::{LineDecoder, LineError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing but leading whitespace seen yet.
    Sniff,
    Lines,
    Json,
}

/// Lines or JSON values, chosen by the first byte or by the session. Pure.
#[derive(Debug)]
pub struct Framer {
    mode: Mode,
    lines: LineDecoder,
    /// Made when the stream turns out to be JSON (boxed: a text or IRC
    /// connection, most of them, does not carry one).
    json: Option<Box<JsonStream>>,
    /// Whitespace held while sniffing (given to whichever decoder is
    /// picked; more than `max` of it is a line, too long).
    /// Boxed while there is any: one pointer in every connection (and
    /// parked connection), not an empty `Vec`'s 24 bytes.
    #[allow(clippy::box_collection)]
    held: Option<Box<Vec<u8>>>,
    // The longest item is the line decoder's (`lines.max()`), not a copy
    // here: a parked connection keeps a framer (`perf16r`: 72 -> 56 bytes
    // with the decoder's 32-bit limit).
}

impl Framer {
    /// A framer for items of at most `max` bytes: in lines, or (`sniff`)
    /// picking lines or JSON by the first byte.
    pub fn new(max: usize, sniff: bool) -> Framer {
        Framer {
            mode: if sniff { Mode::Sniff } else { Mode::Lines },
            lines: LineDecoder::new(max),
            json: None,
            held: None,
        }
    }

    /// Changes the longest accepted item.
    pub fn set_max(&mut self, max: usize) {
        self.lines.set_max(max);
        if let Some(json) = &mut self.json {
            json.set_max(max);
        }
    }

    /// Lines: stops stripping telnet negotiation.
    pub fn without_telnet(&mut self) {
        self.lines.without_telnet();
    }

    /// Cuts JSON values (`true`) or lines from now on, once the first byte
    /// has chosen (before that, the choice stands; it agrees with the
    /// session the first item picks).
    pub fn set_json(&mut self, json: bool) {
        if self.mode != Mode::Sniff {
            self.mode = if json { Mode::Json } else { Mode::Lines };
        }
    }

    /// True if the stream is cut into JSON values.
    pub fn is_json(&self) -> bool {
        self.mode == Mode::Json
    }

    /// True once the first JSON value ended with no line break after it
    /// (see [`JsonStream::undelimited`]).
    pub fn undelimited(&self) -> bool {
        self.mode == Mode::Json && self.json.as_ref().is_some_and(|j| j.undelimited())
    }

    fn held_len(&self) -> usize {
        self.held.as_ref().map_or(0, |h| h.len())
    }

    /// Bytes of an unfinished item held.
    pub fn pending(&self) -> usize {
        let json = self.json.as_ref().map_or(0, |j| j.pending());
        self.held_len() + self.lines.pending() + json
    }

    /// Feeds `data`, calling `emit` once per item (or item error), in order.
    pub fn feed(&mut self, data: &[u8], emit: impl FnMut(Result<String, LineError>)) {
        if self.mode == Mode::Sniff {
            let first = data.iter().position(|b| !matches!(b, b' ' | b'\t' | b'\r'));
            let spaces = self.held_len() + first.unwrap_or(data.len());
            self.mode = match first {
                // A line of spaces, as before (and the choice does not
                // depend on how the bytes were cut).
                _ if spaces > self.lines.max() => Mode::Lines,
                None => {
                    self.held
                        .get_or_insert_with(Default::default)
                        .extend_from_slice(data);
                    return;
                }
                Some(i) if data[i] == b'{' => Mode::Json,
                Some(_) => Mode::Lines,
            };
            if let Some(held) = self.held.take() {
                let mut all = *held;
                all.extend_from_slice(data);
                return self.feed_chosen(&all, emit);
            }
        }
        self.feed_chosen(data, emit)
    }

    fn feed_chosen(&mut self, data: &[u8], emit: impl FnMut(Result<String, LineError>)) {
        match self.mode {
            Mode::Json => {
                let max = self.lines.max();
                let json = self
                    .json
                    .get_or_insert_with(|| Box::new(JsonStream::new(max)));
                json.feed(data, emit)
            }
            _ => self.lines.feed(data, emit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(f: &mut Framer, data: &[u8]) -> Vec<Result<String, LineError>> {
        let mut out = Vec::new();
        f.feed(data, |l| out.push(l));
        out
    }

    #[test]
    fn the_first_byte_picks_json_values_or_lines() {
        let mut f = Framer::new(100, true);
        assert!(items(&mut f, b" \r").is_empty());
        assert_eq!(
            items(&mut f, b"\t{\"a\":1}{\"b\":2}"),
            vec![Ok(r#"{"a":1}"#.into()), Ok(r#"{"b":2}"#.into())]
        );
        assert!(f.is_json() && f.undelimited());
        f.set_json(false);
        assert_eq!(items(&mut f, b"x\n"), vec![Ok("x".into())]);

        let mut f = Framer::new(100, true);
        assert_eq!(
            items(&mut f, b"  alice {not json}\n{\"a\":1}\n"),
            vec![Ok("  alice {not json}".into()), Ok(r#"{"a":1}"#.into())]
        );
        assert!(!f.is_json() && !f.undelimited());

        // A line break first is an empty line, as before.
        let mut f = Framer::new(100, true);
        assert_eq!(
            items(&mut f, b"\n{}\n"),
            vec![Ok("".into()), Ok("{}".into())]
        );

        // JSON-lines clients: delimited.
        let mut f = Framer::new(100, true);
        items(&mut f, b"{\"cmd\":\"login\",\"nick\":\"a\"}\r\n");
        assert!(f.is_json() && !f.undelimited());

        // Not sniffing: lines until the session says otherwise.
        let mut f = Framer::new(100, false);
        assert_eq!(items(&mut f, b"{}{}\n"), vec![Ok("{}{}".into())]);
        f.set_json(true);
        assert_eq!(
            items(&mut f, b"{}{}\n"),
            vec![Ok("{}".into()), Ok("{}".into())]
        );
    }

    #[test]
    fn endless_whitespace_is_not_held() {
        let mut f = Framer::new(100, true);
        let mut got = Vec::new();
        for _ in 0..100 {
            got.extend(items(&mut f, b"    "));
            assert!(f.pending() <= 101);
        }
        assert_eq!(got, vec![Err(LineError::TooLong { max: 100 })]);
    }
}
