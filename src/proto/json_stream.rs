//! A streaming JSON reader: splits a byte stream into JSON values whether
//! or not a line break follows each one. `{…}{…}` is two values, one value
//! may arrive in any number of pieces, and whitespace (line breaks
//! included) between values is skipped. It only finds where a value ends
//! (brackets outside strings); checking the value is `json::parse`'s job.
//!
//! Bad input resynchronises at the next line or object: a value never
//! spans a line break (JSON strings cannot hold one, and natter's clients
//! write one value per line), so a line break inside an unfinished value
//! ends it there, and it is handed on as it is, for the usual error. Text
//! outside any value is handed on, up to the next line break or `{`/`[`,
//! as one bad item. Nothing longer than `max` bytes is ever held: a value
//! that grows past it is reported once ([`LineError::TooLong`]) and its
//! bytes are dropped, still counted, until it ends.
//!
//! It also remembers whether the first value was followed by a line break
//! in the same read ([`JsonStream::undelimited`]): the original JSON
//! clients never send one (docs/PROTOCOL.md, "Original dialects").

use super::line::LineError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between values: whitespace is skipped.
    Between,
    /// Inside a `{…}` or `[…]` value.
    Value {
        /// Open brackets.
        depth: u32,
        /// Inside a string literal (brackets do not count there).
        string: bool,
        /// Just after a backslash inside a string.
        escape: bool,
    },
    /// Text that is no JSON object or array, up to the next line break,
    /// `{` or `[`.
    Junk,
}

/// Splits a byte stream into JSON values. Pure: no I/O.
#[derive(Debug)]
pub struct JsonStream {
    buf: Vec<u8>,
    max: usize,
    state: State,
    /// The current item grew past `max`: reported, its bytes not kept.
    discarding: bool,
    /// Whether the first value was followed by a line break (`None`: no
    /// value ended yet).
    first_delimited: Option<bool>,
}

impl JsonStream {
    /// A reader refusing values longer than `max` bytes.
    pub fn new(max: usize) -> JsonStream {
        JsonStream {
            buf: Vec::new(),
            max,
            state: State::Between,
            discarding: false,
            first_delimited: None,
        }
    }

    /// Changes the longest accepted value.
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// Bytes of an unfinished value currently held.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// True once the stream's first value ended without a line break after
    /// it (only spaces, tabs or `\r`, then `\n`, in the same read count as
    /// a line break; the end of what has arrived does not).
    pub fn undelimited(&self) -> bool {
        self.first_delimited == Some(false)
    }

    /// Feeds `data`, calling `emit` once per complete value (or bad item,
    /// or error), in order.
    pub fn feed(&mut self, data: &[u8], mut emit: impl FnMut(Result<String, LineError>)) {
        // Start of the current item's bytes within `data`.
        let mut start = 0;
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            match &mut self.state {
                State::Between => match b {
                    b' ' | b'\t' | b'\r' | b'\n' => {}
                    b'{' | b'[' => {
                        self.state = State::Value {
                            depth: 1,
                            string: false,
                            escape: false,
                        };
                        start = i;
                    }
                    _ => {
                        self.state = State::Junk;
                        start = i;
                    }
                },
                State::Value {
                    depth,
                    string,
                    escape,
                } => {
                    if b == b'\n' {
                        // Unfinished at the end of its line: handed on as it is.
                        self.finish(&data[start..i], &mut emit);
                    } else if *string {
                        if *escape {
                            *escape = false;
                        } else if b == b'\\' {
                            *escape = true;
                        } else if b == b'"' {
                            *string = false;
                        }
                    } else {
                        match b {
                            b'"' => *string = true,
                            b'{' | b'[' => *depth += 1,
                            b'}' | b']' => *depth -= 1,
                            _ => {}
                        }
                        if *depth == 0 {
                            self.finish(&data[start..=i], &mut emit);
                            if self.first_delimited.is_none() {
                                self.first_delimited = Some(line_break_next(&data[i + 1..]));
                            }
                        }
                    }
                }
                State::Junk => match b {
                    b'\n' => self.finish(&data[start..i], &mut emit),
                    b'{' | b'[' => {
                        self.finish(&data[start..i], &mut emit);
                        continue; // the value starts here
                    }
                    _ => {}
                },
            }
            i += 1;
        }
        if self.state != State::Between {
            self.take(&data[start..], &mut emit);
        }
        if self.buf.capacity() > 4 * 1024 && self.buf.is_empty() {
            self.buf = Vec::new(); // an idle connection holds no large buffer
        }
    }

    /// Keeps `chunk` of the current item, or reports it too long once.
    fn take(&mut self, chunk: &[u8], emit: &mut impl FnMut(Result<String, LineError>)) {
        super::line::take_bounded(&mut self.buf, &mut self.discarding, self.max, chunk, emit);
    }

    /// The current item ends with `chunk`: emits it, and goes back to
    /// looking for the next value.
    fn finish(&mut self, chunk: &[u8], emit: &mut impl FnMut(Result<String, LineError>)) {
        self.state = State::Between;
        self.take(chunk, emit);
        if std::mem::replace(&mut self.discarding, false) {
            return; // reported when it grew too long
        }
        let mut item = std::mem::take(&mut self.buf);
        while item.last().is_some_and(u8::is_ascii_whitespace) {
            item.pop();
        }
        if item.len() > self.max {
            return emit(Err(LineError::TooLong { max: self.max }));
        }
        match String::from_utf8(item) {
            Ok(s) => emit(Ok(s)),
            Err(_) => emit(Err(LineError::InvalidUtf8)),
        }
    }
}

/// Whether `rest` (what follows a value in the same read) starts with a
/// line break, after spaces, tabs and `\r`.
fn line_break_next(rest: &[u8]) -> bool {
    rest.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\r')) == Some(&b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(s: &mut JsonStream, data: &[u8]) -> Vec<Result<String, LineError>> {
        let mut out = Vec::new();
        s.feed(data, |l| out.push(l));
        out
    }

    fn ok(v: &[&str]) -> Vec<Result<String, LineError>> {
        v.iter().map(|s| Ok(s.to_string())).collect()
    }

    #[test]
    fn concatenated_objects_with_and_without_whitespace() {
        let mut s = JsonStream::new(100);
        let got = items(&mut s, b"{\"a\":1}{\"b\":[2,{}]} \r\n\t {\"c\":3}\n\n");
        assert_eq!(got, ok(&[r#"{"a":1}"#, r#"{"b":[2,{}]}"#, r#"{"c":3}"#]));
        assert!(s.undelimited(), "the first one had no line break after it");
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn an_object_split_anywhere_arrives_whole() {
        let input = br#"{"cmd":"chat","msg":"a } { \" \\ ] [","nick":"n"}{"cmd":"keep"}"#;
        for cut in 0..=input.len() {
            let mut s = JsonStream::new(100);
            let mut got = items(&mut s, &input[..cut]);
            got.extend(items(&mut s, &input[cut..]));
            assert_eq!(
                got,
                ok(&[
                    r#"{"cmd":"chat","msg":"a } { \" \\ ] [","nick":"n"}"#,
                    r#"{"cmd":"keep"}"#
                ]),
                "cut at {cut}"
            );
        }
        // Byte by byte, with a multi-byte character.
        let mut s = JsonStream::new(100);
        let mut got = Vec::new();
        for b in "{\"msg\":\"你好\"}".as_bytes() {
            got.extend(items(&mut s, &[*b]));
        }
        assert_eq!(got, ok(&["{\"msg\":\"你好\"}"]));
    }

    #[test]
    fn first_value_delimited_or_not() {
        let mut s = JsonStream::new(100);
        assert!(items(&mut s, b"  {\"a\":").is_empty());
        assert!(!s.undelimited(), "not known yet");
        items(&mut s, b"1} \r\n{\"b\":2}");
        assert!(!s.undelimited(), "a line break followed the first one");
        let mut s = JsonStream::new(100);
        items(&mut s, b"{\"a\":1}");
        assert!(s.undelimited(), "nothing after it in that read");
        items(&mut s, b"\n");
        assert!(s.undelimited(), "decided by the first value only");
    }

    #[test]
    fn bad_input_resynchronises_at_the_next_line_or_object() {
        let mut s = JsonStream::new(100);
        let got = items(
            &mut s,
            b"hello there{\"a\":1}[1,{\"x\":2}]\n\"str\"\n{\"open\":\"no end\n{\"b\":2} junk\n",
        );
        assert_eq!(
            got,
            ok(&[
                "hello there",
                r#"{"a":1}"#,
                r#"[1,{"x":2}]"#,
                r#""str""#,
                r#"{"open":"no end"#,
                r#"{"b":2}"#,
                "junk",
            ])
        );
        // A stray closing bracket ends a value early; the parser says what is wrong.
        let got = items(&mut s, b"{\"a\":]}{\"b\":1}");
        assert_eq!(got, ok(&[r#"{"a":]"#, "}", r#"{"b":1}"#]));
    }

    #[test]
    fn an_endless_object_is_refused_once_and_not_buffered() {
        let mut s = JsonStream::new(10);
        assert_eq!(
            items(&mut s, b"{\"msg\":\"xxxxxxxxxxxxxx"),
            vec![Err(LineError::TooLong { max: 10 })]
        );
        for _ in 0..1000 {
            assert!(items(&mut s, &[b'x'; 100]).is_empty());
            assert_eq!(s.pending(), 0);
        }
        // Its end is still found, and the next object is read.
        assert_eq!(items(&mut s, b"\"}{\"a\":1}"), ok(&[r#"{"a":1}"#]));
        // Endless junk too; a line break ends it.
        assert_eq!(
            items(&mut s, &[b'z'; 50]),
            vec![Err(LineError::TooLong { max: 10 })]
        );
        assert_eq!(items(&mut s, b"zz\n{}"), ok(&["{}"]));
        // Exactly at the limit is fine.
        assert_eq!(items(&mut s, b"{\"a\":\"12\"}"), ok(&[r#"{"a":"12"}"#]));
    }

    #[test]
    fn invalid_utf8_is_an_item_error_and_the_stream_goes_on() {
        let mut s = JsonStream::new(100);
        assert_eq!(
            items(&mut s, b"{\"m\":\"\xff\"}{\"m\":\"ok\"}"),
            vec![Err(LineError::InvalidUtf8), Ok(r#"{"m":"ok"}"#.into())]
        );
    }
}
