//! Splits one IRC line into its parts: IRCv3 tags, source, verb and
//! parameters, following the modern IRC grammar (one or more spaces
//! separate parts; `:` starts the trailing parameter). Pure and
//! allocation-light: the result borrows from the line.
//!
//! Limits are checked here: the part after the tags may be at most
//! [`MAX_BODY`] bytes (512 with the CRLF), the tags at most [`MAX_TAGS`].

/// Longest message without tags and line ending (RFC 1459: 512 with CRLF).
pub const MAX_BODY: usize = 510;
/// Longest tag section a client may send, `@` and trailing space excluded
/// (IRCv3 message-tags: 4094 bytes).
pub const MAX_TAGS: usize = 4094;
/// Longest line a session's decoder must accept (tags, their separators and body).
pub const MAX_LINE: usize = MAX_TAGS + 2 + MAX_BODY;

/// One parsed IRC message, borrowing from the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The raw tag section without `@` (use [`Message::tags`] to read it).
    pub raw_tags: Option<&'a str>,
    /// The source without its `:` (clients rarely send one).
    pub source: Option<&'a str>,
    /// The verb as sent (compare case-insensitively).
    pub verb: &'a str,
    pub params: Vec<&'a str>,
}

/// Why a line is not a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Nothing but spaces (clients may send empty lines: ignore them).
    Empty,
    /// Tags or body over the limits: answer `417 ERR_INPUTTOOLONG`.
    TooLong,
    /// Tags or a source but no verb.
    NoVerb,
}

impl<'a> Message<'a> {
    /// The tags as (key, unescaped value) pairs; a later duplicate wins.
    pub fn tags(&self) -> Vec<(&'a str, String)> {
        let mut out: Vec<(&'a str, String)> = Vec::new();
        for item in self.raw_tags.unwrap_or("").split(';') {
            if item.is_empty() {
                continue;
            }
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            let value = unescape_tag(value);
            match out.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => out.push((key, value)),
            }
        }
        out
    }

    /// The `i`-th parameter, if present.
    pub fn param(&self, i: usize) -> Option<&'a str> {
        self.params.get(i).copied()
    }
}

/// Parses one line (without its line ending), enforcing the client limits.
pub fn parse(line: &str) -> Result<Message<'_>, ParseError> {
    let msg = split(line)?;
    if msg.raw_tags.is_some_and(|t| t.len() > MAX_TAGS) {
        return Err(ParseError::TooLong);
    }
    // The body: from the source (or verb) to the end, as sent.
    let body_start = match (msg.source, msg.raw_tags) {
        (Some(src), _) => offset(line, src) - 1,
        (None, _) => offset(line, msg.verb),
    };
    if line.len() - body_start > MAX_BODY {
        return Err(ParseError::TooLong);
    }
    Ok(msg)
}

/// Byte offset of `part` (a sub-slice of `line`) in `line`.
fn offset(line: &str, part: &str) -> usize {
    part.as_ptr() as usize - line.as_ptr() as usize
}

/// Splits one line into its parts with no length limits (a client reading
/// from a server uses this: servers may send more than 512 bytes).
pub fn split(line: &str) -> Result<Message<'_>, ParseError> {
    let mut rest = line.trim_start_matches(' ');
    let mut raw_tags = None;
    if let Some(after) = rest.strip_prefix('@') {
        let (tags, body) = after.split_once(' ').unwrap_or((after, ""));
        raw_tags = Some(tags);
        rest = body.trim_start_matches(' ');
    }
    let mut source = None;
    if let Some(after) = rest.strip_prefix(':') {
        let (src, body) = after.split_once(' ').unwrap_or((after, ""));
        source = Some(src);
        rest = body.trim_start_matches(' ');
    }
    let (verb, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if verb.is_empty() {
        return Err(match (raw_tags, source) {
            (None, None) => ParseError::Empty,
            _ => ParseError::NoVerb,
        });
    }
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            break;
        }
        if let Some(trailing) = rest.strip_prefix(':') {
            params.push(trailing);
            break;
        }
        let (p, r) = rest.split_once(' ').unwrap_or((rest, ""));
        params.push(p);
        rest = r;
    }
    Ok(Message {
        raw_tags,
        source,
        verb,
        params,
    })
}

/// Undoes IRCv3 tag-value escaping (`\:` `\s` `\\` `\r` `\n`; a lone or
/// unknown escape drops the backslash).
pub fn unescape_tag(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('\\') => out.push('\\'),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (input, tags, source, verb, params): a representative subset of the
    /// CC0 ircdocs/parser-tests `msg-split.yaml` vectors.
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        Option<&'static str>,
        &'static str,
        &'static [&'static str],
    );

    #[rustfmt::skip]
    const MSG_SPLIT: &[Case] = &[
        ("foo bar baz asdf", &[], None, "foo", &["bar", "baz", "asdf"]),
        (":coolguy foo bar baz asdf", &[], Some("coolguy"), "foo", &["bar", "baz", "asdf"]),
        ("foo bar baz :asdf quux", &[], None, "foo", &["bar", "baz", "asdf quux"]),
        ("foo bar baz :", &[], None, "foo", &["bar", "baz", ""]),
        ("foo bar baz ::asdf", &[], None, "foo", &["bar", "baz", ":asdf"]),
        (":coolguy foo bar baz :asdf quux", &[], Some("coolguy"), "foo", &["bar", "baz", "asdf quux"]),
        (":coolguy foo bar baz :  asdf quux ", &[], Some("coolguy"), "foo", &["bar", "baz", "  asdf quux "]),
        (":coolguy PRIVMSG bar :lol :) ", &[], Some("coolguy"), "PRIVMSG", &["bar", "lol :) "]),
        (":coolguy foo bar baz :  ", &[], Some("coolguy"), "foo", &["bar", "baz", "  "]),
        ("@a=b;c=32;k;rt=ql7 foo", &[("a", "b"), ("c", "32"), ("k", ""), ("rt", "ql7")], None, "foo", &[]),
        ("@a=b\\\\and\\nk;c=72\\s45;d=gh\\:764 foo", &[("a", "b\\and\nk"), ("c", "72 45"), ("d", "gh;764")], None, "foo", &[]),
        ("@c;h=;a=b :quux ab cd", &[("c", ""), ("h", ""), ("a", "b")], Some("quux"), "ab", &["cd"]),
        (":src JOIN #chan", &[], Some("src"), "JOIN", &["#chan"]),
        (":src JOIN :#chan", &[], Some("src"), "JOIN", &["#chan"]),
        (":src AWAY", &[], Some("src"), "AWAY", &[]),
        (":src AWAY ", &[], Some("src"), "AWAY", &[]),
        (":cool\tguy foo bar baz", &[], Some("cool\tguy"), "foo", &["bar", "baz"]),
        (":coolguy!ag@net\x035w\x03ork.admin PRIVMSG foo :bar baz", &[], Some("coolguy!ag@net\x035w\x03ork.admin"), "PRIVMSG", &["foo", "bar baz"]),
        ("@tag1=value1;tag2;vendor1/tag3=value2;vendor2/tag4= :irc.example.com COMMAND param1 param2 :param3 param3",
            &[("tag1", "value1"), ("tag2", ""), ("vendor1/tag3", "value2"), ("vendor2/tag4", "")],
            Some("irc.example.com"), "COMMAND", &["param1", "param2", "param3 param3"]),
        ("COMMAND", &[], None, "COMMAND", &[]),
        ("@foo=\\\\\\\\\\:\\\\s\\s\\r\\n COMMAND", &[("foo", "\\\\;\\s \r\n")], None, "COMMAND", &[]),
        (":gravel.mozilla.org 432  #momo :Erroneous Nickname: Illegal characters", &[], Some("gravel.mozilla.org"), "432", &["#momo", "Erroneous Nickname: Illegal characters"]),
        (":gravel.mozilla.org MODE #tckk +n ", &[], Some("gravel.mozilla.org"), "MODE", &["#tckk", "+n"]),
        (":services.esper.net MODE #foo-bar +o foobar  ", &[], Some("services.esper.net"), "MODE", &["#foo-bar", "+o", "foobar"]),
        ("@tag1=value\\\\ntest COMMAND", &[("tag1", "value\\ntest")], None, "COMMAND", &[]),
        ("@tag1=value\\1 COMMAND", &[("tag1", "value1")], None, "COMMAND", &[]),
        ("@tag1=value1\\ COMMAND", &[("tag1", "value1")], None, "COMMAND", &[]),
        ("@tag1=1;tag2=3;tag3=4;tag1=5 COMMAND", &[("tag1", "5"), ("tag2", "3"), ("tag3", "4")], None, "COMMAND", &[]),
        ("@tag1=1;tag2=3;tag3=4;tag1=5;vendor/tag2=8 COMMAND", &[("tag1", "5"), ("tag2", "3"), ("tag3", "4"), ("vendor/tag2", "8")], None, "COMMAND", &[]),
        (":SomeOp MODE #channel :+i", &[], Some("SomeOp"), "MODE", &["#channel", "+i"]),
        (":SomeOp MODE #channel +oo SomeUser :AnotherUser", &[], Some("SomeOp"), "MODE", &["#channel", "+oo", "SomeUser", "AnotherUser"]),
    ];

    #[test]
    fn parser_tests_msg_split() {
        for (input, tags, source, verb, params) in MSG_SPLIT {
            let m = parse(input).unwrap_or_else(|e| panic!("{input:?}: {e:?}"));
            assert_eq!(m.verb, *verb, "{input:?}");
            assert_eq!(m.source, *source, "{input:?}");
            assert_eq!(m.params, *params, "{input:?}");
            let mut got = m.tags();
            let mut want: Vec<(&str, String)> =
                tags.iter().map(|(k, v)| (*k, v.to_string())).collect();
            got.sort();
            want.sort();
            assert_eq!(got, want, "{input:?}");
        }
    }

    #[test]
    fn limits_and_degenerate_lines() {
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse("   "), Err(ParseError::Empty));
        assert_eq!(parse("@a=b"), Err(ParseError::NoVerb));
        assert_eq!(parse(":src"), Err(ParseError::NoVerb));
        let body = format!("PRIVMSG #a :{}", "x".repeat(MAX_BODY));
        assert_eq!(parse(&body), Err(ParseError::TooLong));
        let ok = format!("PRIVMSG #a :{}", "x".repeat(MAX_BODY - 12));
        assert_eq!(ok.len(), MAX_BODY);
        assert!(parse(&ok).is_ok());
        let tags = format!("@k={} PING x", "v".repeat(MAX_TAGS));
        assert_eq!(parse(&tags), Err(ParseError::TooLong));
        let tags = format!("@k={} PING x", "v".repeat(MAX_TAGS - 2));
        assert!(parse(&tags).is_ok());
    }
}
