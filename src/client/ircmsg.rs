//! The client side's view of IRC lines: one line into an owned
//! [`Message`] (tags, prefix, command, params with the trailing one), and
//! [`line`] to build an outgoing line that cannot smuggle a second command.
//! Pure functions; the splitting itself is the server's (src/proto/irc/parse.rs),
//! and so is cutting long text into lines (`proto::irc::render::split_text`).

use crate::proto::irc::parse::{split, unescape_tag};

/// One parsed IRC line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// IRCv3 message tags, values unescaped (`None`: a tag with no value).
    pub tags: Vec<(String, Option<String>)>,
    /// Where it came from: `nick!user@host` or a server name.
    pub prefix: Option<String>,
    /// The command or three-digit numeric, upper-cased.
    pub command: String,
    /// The parameters; the trailing one (after ` :`) is last, spaces kept.
    pub params: Vec<String>,
}

impl Message {
    /// Parses one line (a trailing `\r\n` is ignored). `None` if the line
    /// has no command (empty, or only tags/prefix). Uses the server's
    /// splitter without its client-side length limits: servers may send more.
    pub fn parse(line: &str) -> Option<Message> {
        let m = split(line.trim_end_matches(['\r', '\n'])).ok()?;
        let tags = m
            .raw_tags
            .unwrap_or("")
            .split(';')
            .filter(|t| !t.is_empty());
        Some(Message {
            tags: tags
                .map(|t| match t.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(unescape_tag(v))),
                    None => (t.to_string(), None),
                })
                .collect(),
            prefix: m.source.filter(|p| !p.is_empty()).map(str::to_string),
            command: m.verb.to_ascii_uppercase(),
            params: m.params.iter().map(|p| p.to_string()).collect(),
        })
    }

    /// The nickname part of the prefix (`nick` of `nick!user@host`).
    pub fn nick(&self) -> Option<&str> {
        let p = self.prefix.as_deref()?;
        let end = p.find(['!', '@']).unwrap_or(p.len());
        Some(&p[..end])
    }

    /// Parameter `i`, or "" if absent.
    pub fn param(&self, i: usize) -> &str {
        self.params.get(i).map_or("", String::as_str)
    }

    /// The last parameter (usually the human-readable text), or "".
    pub fn last(&self) -> &str {
        self.params.last().map_or("", String::as_str)
    }

    /// The value of tag `key`, if present with a value.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// Removes what would end or corrupt an IRC line: CR, LF and NUL.
pub fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '\r' | '\n' | '\0'))
        .collect()
}

/// Builds one outgoing line (without the line ending): `command`, the middle
/// params as words, and the last param as a trailing param when it needs
/// to be (empty, has a space, or starts with `:`). CR/LF/NUL are removed,
/// and spaces in middle params too, so no input can add a command.
pub fn line(command: &str, params: &[&str]) -> String {
    let mut out = clean(command);
    for (i, p) in params.iter().enumerate() {
        out.push(' ');
        let p = clean(p);
        if i + 1 == params.len() && (p.is_empty() || p.contains(' ') || p.starts_with(':')) {
            out.push(':');
            out.push_str(&p);
        } else {
            out.push_str(&p.replace(' ', ""));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Message {
        Message::parse(line).unwrap_or_else(|| panic!("no message in {line:?}"))
    }

    #[test]
    fn simple_and_trailing() {
        let m = p("PING :irc.example.net\r\n");
        assert_eq!(m.command, "PING");
        assert_eq!(m.params, ["irc.example.net"]);
        assert_eq!(m.prefix, None);

        let m = p(":alice!~a@host PRIVMSG #test :hello there :)");
        assert_eq!(m.nick(), Some("alice"));
        assert_eq!(m.command, "PRIVMSG");
        assert_eq!(m.params, ["#test", "hello there :)"]);

        let m = p(":irc.test 353 bob = #test :@bob +carol dave");
        assert_eq!(m.params, ["bob", "=", "#test", "@bob +carol dave"]);
        assert_eq!(m.nick(), Some("irc.test"));
    }

    #[test]
    fn vectors_from_the_usual_parser_tests() {
        // Shapes from ircdocs/parser-tests msg-split.yaml.
        let m = p("foo bar baz asdf");
        assert_eq!((m.command.as_str(), m.params.len()), ("FOO", 3));
        let m = p(":coolguy foo bar baz :");
        assert_eq!(m.params, ["bar", "baz", ""]);
        let m = p(":coolguy foo bar baz :  asdf quux ");
        assert_eq!(m.params, ["bar", "baz", "  asdf quux "]);
        let m = p("foo bar baz ::asdf");
        assert_eq!(m.params, ["bar", "baz", ":asdf"]);
        let m = p(":coolguy foo bar baz   asdf");
        assert_eq!(m.params, ["bar", "baz", "asdf"]);
        let m = p("@a=b;c=32;k;rt=ql7 foo");
        assert_eq!(m.tag("a"), Some("b"));
        assert_eq!(m.tag("c"), Some("32"));
        assert_eq!(m.tags[2], ("k".into(), None));
        assert_eq!(m.tag("rt"), Some("ql7"));
        let m = p(r"@a=b\\and\nk;c=72\s45;d=gh\:764 foo");
        assert_eq!(m.tag("a"), Some("b\\and\nk"));
        assert_eq!(m.tag("c"), Some("72 45"));
        assert_eq!(m.tag("d"), Some("gh;764"));
        let m = p("@time=2026-11-25T12:01:00.000Z :nick!ident@host.com PRIVMSG me :Hello");
        assert_eq!(m.tag("time"), Some("2026-11-25T12:01:00.000Z"));
        assert_eq!(m.prefix.as_deref(), Some("nick!ident@host.com"));
        assert_eq!(m.params, ["me", "Hello"]);
        let m = p(":src AWAY");
        assert!(m.params.is_empty());
        let m = p(":gravel.mozilla.org 432  #momo :Erroneous Nickname: Illegal characters");
        assert_eq!(
            m.params,
            ["#momo", "Erroneous Nickname: Illegal characters"]
        );
        let m = p(":nick@host JOIN #chan");
        assert_eq!(m.nick(), Some("nick"));
    }

    #[test]
    fn junk_is_none_not_a_panic() {
        for junk in ["", "\r\n", ":prefixonly", "@tags=only", "@a :p", "   "] {
            assert_eq!(Message::parse(junk), None, "{junk:?}");
        }
        // Non-ASCII everywhere.
        let m = p(":小明!x@y PRIVMSG #中文 :你好 世界");
        assert_eq!(m.nick(), Some("小明"));
        assert_eq!(m.params, ["#中文", "你好 世界"]);
    }

    #[test]
    fn writing_lines_cannot_inject() {
        assert_eq!(
            line("PRIVMSG", &["#test", "hi there"]),
            "PRIVMSG #test :hi there"
        );
        assert_eq!(line("NICK", &["bob"]), "NICK bob");
        assert_eq!(line("PRIVMSG", &["#a", ":)"]), "PRIVMSG #a ::)");
        assert_eq!(line("QUIT", &[""]), "QUIT :");
        assert_eq!(
            line("PRIVMSG", &["#a b", "x\r\nQUIT :pwned"]),
            "PRIVMSG #ab :xQUIT :pwned"
        );
    }
}
