//! Line framing over a TCP byte stream, shared by every protocol.
//!
//! Bytes arrive in arbitrary pieces: a line (and a UTF-8 character) may be
//! split across reads, and one read may hold several lines. [`LineDecoder`]
//! keeps only the unfinished line, accepts CRLF or LF, strips telnet IAC
//! negotiation, and reports oversized lines and invalid UTF-8 as recoverable
//! per-line errors without ever buffering more than `max` bytes.
//!
//! The server decodes what clients send with it; the chat client decodes
//! what servers send with the same type, set up with
//! [`without_telnet`](LineDecoder::without_telnet) and
//! [`lossy_utf8`](LineDecoder::lossy_utf8), and calls
//! [`end`](LineDecoder::end) when the stream closes.

/// A per-line problem; the stream itself goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// The line was longer than the limit; it was discarded up to its end.
    TooLong { max: usize },
    /// The line was not valid UTF-8; it was discarded.
    InvalidUtf8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Telnet {
    Data,
    /// Just saw IAC (255).
    Iac,
    /// Saw IAC WILL/WONT/DO/DONT: skip the option byte.
    Option,
    /// Inside IAC SB ... IAC SE.
    Sub,
    /// Saw IAC inside a subnegotiation.
    SubIac,
}

const IAC: u8 = 255;

/// Splits a byte stream into lines. Pure: no I/O.
#[derive(Debug)]
pub struct LineDecoder {
    buf: Vec<u8>,
    /// The longest line (32 bits: with the flags below the decoder is 32
    /// bytes, and a parked connection keeps one; see `server::park`).
    max: u32,
    discarding: bool,
    telnet: Telnet,
    /// Strip telnet IAC sequences (text protocol only; 255 is never UTF-8).
    strip_telnet: bool,
    /// Decode invalid UTF-8 with U+FFFD instead of refusing the line.
    lossy: bool,
}

impl LineDecoder {
    /// A decoder refusing lines longer than `max` bytes (line ending excluded).
    pub fn new(max: usize) -> LineDecoder {
        LineDecoder {
            buf: Vec::new(),
            max: clamp_max(max),
            discarding: false,
            telnet: Telnet::Data,
            strip_telnet: true,
            lossy: false,
        }
    }

    /// Stops stripping telnet negotiation (for JSON and IRC, where a 255
    /// byte is simply invalid UTF-8).
    pub fn without_telnet(&mut self) {
        self.strip_telnet = false;
        self.telnet = Telnet::Data;
    }

    /// Decodes invalid UTF-8 lossily (each bad sequence becomes U+FFFD)
    /// instead of reporting [`LineError::InvalidUtf8`]: for the chat
    /// client, where a server's stray byte should not hide a whole line.
    /// `max` still counts the bytes received, so a lossy line may be longer.
    pub fn lossy_utf8(&mut self) {
        self.lossy = true;
    }

    /// Changes the longest accepted line (IRC sessions use their own limit).
    pub fn set_max(&mut self, max: usize) {
        self.max = clamp_max(max);
    }

    /// The longest line taken, in bytes.
    pub fn max(&self) -> usize {
        self.max as usize
    }

    /// Bytes of an unfinished line currently held.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Feeds `data`, calling `emit` once per complete line (or line error), in order.
    pub fn feed(&mut self, mut data: &[u8], mut emit: impl FnMut(Result<String, LineError>)) {
        while !data.is_empty() {
            if self.telnet != Telnet::Data {
                self.telnet_byte(data[0]);
                data = &data[1..];
                continue;
            }
            let telnet = self.strip_telnet;
            let stop = data
                .iter()
                .position(|&b| b == b'\n' || (telnet && b == IAC));
            let (chunk, rest) = match stop {
                Some(i) => (&data[..i], Some(data[i])),
                None => (data, None),
            };
            self.take(chunk, &mut emit);
            match rest {
                Some(b'\n') => self.end_line(&mut emit),
                Some(_) => self.telnet = Telnet::Iac,
                None => {}
            }
            data = &data[stop.map_or(data.len(), |i| i + 1)..];
        }
        if self.buf.capacity() > 4 * 1024 && self.buf.is_empty() {
            self.buf = Vec::new(); // an idle connection holds no large buffer
        }
    }

    /// The stream has ended: emits its last line if it had no line ending
    /// (unless that line was too long, which was reported already).
    pub fn end(&mut self, mut emit: impl FnMut(Result<String, LineError>)) {
        if !self.buf.is_empty() || self.discarding {
            self.end_line(&mut emit);
        }
        self.telnet = Telnet::Data;
    }

    fn telnet_byte(&mut self, b: u8) {
        self.telnet = match (self.telnet, b) {
            (Telnet::Iac, IAC) => Telnet::Data, // escaped 255: not text, drop it
            (Telnet::Iac, 251..=254) => Telnet::Option,
            (Telnet::Iac, 250) => Telnet::Sub,
            (Telnet::Iac, _) => Telnet::Data,
            (Telnet::Option, _) => Telnet::Data,
            (Telnet::Sub, IAC) => Telnet::SubIac,
            (Telnet::Sub, _) => Telnet::Sub,
            (Telnet::SubIac, 240) => Telnet::Data,
            (Telnet::SubIac, _) => Telnet::Sub,
            (Telnet::Data, _) => Telnet::Data,
        };
    }

    fn take(&mut self, chunk: &[u8], emit: &mut impl FnMut(Result<String, LineError>)) {
        let max = self.max();
        take_bounded(&mut self.buf, &mut self.discarding, max, chunk, emit);
    }

    fn end_line(&mut self, emit: &mut impl FnMut(Result<String, LineError>)) {
        if std::mem::replace(&mut self.discarding, false) {
            return; // the error was reported when the line overflowed
        }
        let mut line = std::mem::take(&mut self.buf);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.len() > self.max() {
            emit(Err(LineError::TooLong { max: self.max() }));
            return;
        }
        match String::from_utf8(line) {
            Ok(s) => emit(Ok(s)),
            Err(e) if self.lossy => emit(Ok(String::from_utf8_lossy(e.as_bytes()).into_owned())),
            Err(_) => emit(Err(LineError::InvalidUtf8)),
        }
    }
}

/// Keeps `chunk` of the item being read into `buf`, unless that makes it
/// A line length as the decoder keeps it: a longer limit than 4 GiB is
/// no limit a socket could reach.
fn clamp_max(max: usize) -> u32 {
    u32::try_from(max).unwrap_or(u32::MAX)
}

/// longer than `max` bytes (one byte over is allowed for a trailing `\r`
/// that is not counted): then the item is reported too long, once, and its
/// bytes are dropped (`discarding`) until it ends. Shared by the line and
/// the JSON stream decoders.
pub(crate) fn take_bounded(
    buf: &mut Vec<u8>,
    discarding: &mut bool,
    max: usize,
    chunk: &[u8],
    emit: &mut impl FnMut(Result<String, LineError>),
) {
    if *discarding {
        return;
    }
    if buf.len() + chunk.len() > max + 1 {
        *buf = Vec::new();
        *discarding = true;
        emit(Err(LineError::TooLong { max }));
        return;
    }
    buf.extend_from_slice(chunk);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(dec: &mut LineDecoder, data: &[u8]) -> Vec<Result<String, LineError>> {
        let mut out = Vec::new();
        dec.feed(data, |l| out.push(l));
        out
    }

    #[test]
    fn crlf_lf_and_merged_lines() {
        let mut d = LineDecoder::new(100);
        assert_eq!(
            lines(&mut d, b"one\r\ntwo\nthree"),
            vec![Ok("one".into()), Ok("two".into())]
        );
        assert_eq!(lines(&mut d, b"\r\n"), vec![Ok("three".into())]);
    }

    #[test]
    fn utf8_split_across_reads_arrives_whole() {
        let mut d = LineDecoder::new(100);
        let text = "你好\n".as_bytes();
        for (i, b) in text.iter().enumerate() {
            let got = lines(&mut d, &[*b]);
            if i + 1 < text.len() {
                assert!(got.is_empty());
            } else {
                assert_eq!(got, vec![Ok("你好".into())]);
            }
        }
    }

    #[test]
    fn oversized_line_is_refused_once_and_not_buffered() {
        let mut d = LineDecoder::new(10);
        let got = lines(&mut d, &[b'x'; 25]);
        assert_eq!(got, vec![Err(LineError::TooLong { max: 10 })]);
        assert_eq!(d.pending(), 0);
        assert!(lines(&mut d, &[b'x'; 1000]).is_empty());
        assert_eq!(lines(&mut d, b"y\nok\n"), vec![Ok("ok".into())]);
        // exactly at the limit, with CRLF, is fine
        assert_eq!(
            lines(&mut d, b"0123456789\r\n"),
            vec![Ok("0123456789".into())]
        );
        assert_eq!(
            lines(&mut d, b"0123456789a\n"),
            vec![Err(LineError::TooLong { max: 10 })]
        );
    }

    #[test]
    fn invalid_utf8_is_a_line_error_and_stream_goes_on() {
        let mut d = LineDecoder::new(100);
        assert_eq!(
            lines(&mut d, b"a\xc3\x28b\nfine\n"),
            vec![Err(LineError::InvalidUtf8), Ok("fine".into())]
        );
    }

    #[test]
    fn telnet_negotiation_is_stripped() {
        let mut d = LineDecoder::new(100);
        // IAC DO ECHO, IAC SB NAWS 0 80 0 24 IAC SE, IAC IAC, then text
        let mut input = vec![255, 253, 1, 255, 250, 31, 0, 80, 0, 24, 255, 240];
        input.extend_from_slice(b"hi");
        input.extend_from_slice(&[255, 255]);
        input.extend_from_slice(b"!\r\n");
        assert_eq!(lines(&mut d, &input), vec![Ok("hi!".into())]);
        // split in the middle of a negotiation
        assert!(lines(&mut d, &[255]).is_empty());
        assert_eq!(lines(&mut d, &[251, 3, b'x', b'\n']), vec![Ok("x".into())]);
        d.without_telnet();
        assert_eq!(
            lines(&mut d, &[b'a', 255, 253, b'\n']),
            vec![Err(LineError::InvalidUtf8)]
        );
    }

    #[test]
    fn client_mode_decodes_lossily_and_keeps_the_last_line() {
        let mut d = LineDecoder::new(10);
        d.without_telnet();
        d.lossy_utf8();
        let mut got = Vec::new();
        for chunk in [
            &b"he"[..],
            b"llo\r\nw",
            b"orld\n",
            b"0123456789abcdef",
            b"ghij\nok\n",
            "\u{5c0f}".as_bytes(),
            b"\xff\ntail",
        ] {
            got.extend(lines(&mut d, chunk));
        }
        d.end(|l| got.push(l));
        assert_eq!(
            got,
            vec![
                Ok("hello".into()),
                Ok("world".into()),
                Err(LineError::TooLong { max: 10 }),
                Ok("ok".into()),
                Ok("\u{5c0f}\u{fffd}".into()),
                Ok("tail".into()),
            ]
        );
        // Nothing pending, or an over-long line cut off by the end: no line.
        d.end(|l| got.push(l));
        assert!(lines(&mut d, &[b'x'; 20]).len() == 1);
        d.end(|l| got.push(l));
        assert_eq!(got.len(), 6);
        // After an over-long end, a new stream starts clean.
        assert_eq!(lines(&mut d, b"fine\n"), vec![Ok("fine".into())]);
    }
}
