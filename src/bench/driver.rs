//! Protocol drivers: what a bench client says to register and join a room,
//! how it knows it is ready, how it frames a chat message, and which
//! server lines need an answer (IRC PING). Pure: bytes in, bytes out.
//!
//! A protocol is one [`Proto`] variant and one arm in each function here;
//! the connection task does not change.

use std::sync::OnceLock;

use serde::Serialize;

use crate::proto::json::wire::{self, Cmd};

/// The wire protocol bench clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// natter's text protocol, or any line chat that says `NICK: TEXT`
    /// (see the `--text-*` and `--ready` flags).
    Text,
    /// IRC (RFC 1459/2812): NICK/USER, JOIN #room, PRIVMSG; answers PING.
    Irc,
    /// natter's JSON lines: login, join, chat; answers ping with keep.
    Json,
    /// natter's JSON lines over a WebSocket (`/ws`, one line per message).
    Ws,
}

impl Proto {
    /// Whether a sender receives its own messages back by default (natter's
    /// text protocol confirms each line to its sender; IRC servers do not).
    pub fn default_echo(self) -> bool {
        match self {
            Proto::Text | Proto::Json | Proto::Ws => true,
            Proto::Irc => false,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Proto::Text => "text",
            Proto::Irc => "irc",
            Proto::Json => "json",
            Proto::Ws => "ws",
        }
    }
}

/// Options of the tolerant text driver. `{nick}` and `{room}` are replaced
/// in each.
#[derive(Debug, Clone)]
pub struct TextOptions {
    /// Line sent right after the nickname (empty: none). natter: `/color off`.
    pub setup: String,
    /// Line that enters the client's room (empty: none; then every client
    /// is in the server's one room).
    pub join: String,
    /// Registration and join are done once a line contains this (ANSI
    /// colours stripped first).
    pub ready: String,
}

impl Default for TextOptions {
    fn default() -> Self {
        TextOptions {
            setup: "/color off".into(),
            join: "/join {room}".into(),
            ready: "*** {nick} joined #{room}".into(),
        }
    }
}

/// Fills in `{nick}` and `{room}`.
pub fn fill(template: &str, nick: &str, room: &str) -> String {
    template.replace("{nick}", nick).replace("{room}", room)
}

/// One client's registration and join, as a small state machine.
#[derive(Debug)]
pub struct Handshake {
    proto: Proto,
    nick: String,
    room: String,
    ready: String,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Registering,
    Joining,
}

/// How a handshake ended badly: the server's own words when it said any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The server refused or errored (`! …`, IRC `ERROR`, a 4xx/5xx numeric).
    Server(String),
}

impl Handshake {
    /// Starts a handshake; returns it and the bytes to send at once.
    pub fn start(proto: Proto, text: &TextOptions, nick: &str, room: &str) -> (Handshake, Vec<u8>) {
        let mut out = Vec::new();
        match proto {
            Proto::Text => {
                for line in [
                    nick.to_string(),
                    fill(&text.setup, nick, room),
                    fill(&text.join, nick, room),
                ] {
                    if !line.is_empty() {
                        out.extend_from_slice(line.as_bytes());
                        out.extend_from_slice(b"\r\n");
                    }
                }
            }
            Proto::Irc => {
                out.extend_from_slice(
                    format!("NICK {nick}\r\nUSER {nick} 0 * :natter bench\r\n").as_bytes(),
                );
            }
            Proto::Json | Proto::Ws => {
                Cmd::Login { nick: nick.into() }.write_line(&mut out);
                Cmd::Join {
                    room: room.into(),
                    key: None,
                    switch: true,
                }
                .write_line(&mut out);
            }
        }
        let hs = Handshake {
            proto,
            nick: nick.to_string(),
            room: room.to_string(),
            ready: fill(&text.ready, nick, room),
            state: State::Registering,
        };
        (hs, out)
    }

    /// Feeds one server line (without its line ending). Appends any answer
    /// to `out`. Ok(true): registered and in the room.
    pub fn on_line(&mut self, line: &str, out: &mut Vec<u8>) -> Result<bool, Refused> {
        match self.proto {
            Proto::Text => {
                let plain = crate::proto::sanitize::strip_controls(line);
                if plain.contains(&self.ready) {
                    return Ok(true);
                }
                if plain.starts_with("! ") {
                    return Err(Refused::Server(plain));
                }
                Ok(false)
            }
            Proto::Irc => self.on_irc_line(line, out),
            Proto::Json | Proto::Ws => {
                // None: the text banner sent before detection.
                let Some(ev) = wire::parse_event(line) else {
                    return Ok(false);
                };
                match ev.event {
                    wire::Event::Ping { .. } => {
                        Cmd::Keep.write_line(out);
                        Ok(false)
                    }
                    wire::Event::Error { .. } => Err(Refused::Server(line.to_string())),
                    wire::Event::Joined { nick, room, .. } => {
                        Ok(nick == self.nick && room == self.room)
                    }
                    _ => Ok(false),
                }
            }
        }
    }

    fn on_irc_line(&mut self, line: &str, out: &mut Vec<u8>) -> Result<bool, Refused> {
        let msg = IrcLine::parse(line);
        if let Some(pong) = pong(Proto::Irc, line.as_bytes()) {
            out.extend_from_slice(&pong);
            return Ok(false);
        }
        if msg.command.eq_ignore_ascii_case("ERROR") {
            return Err(Refused::Server(line.to_string()));
        }
        if is_error_numeric(msg.command) {
            return Err(Refused::Server(line.to_string()));
        }
        match self.state {
            State::Registering if msg.command == "001" => {
                out.extend_from_slice(format!("JOIN #{}\r\n", self.room).as_bytes());
                self.state = State::Joining;
                Ok(false)
            }
            State::Joining if msg.command.eq_ignore_ascii_case("JOIN") => {
                let who = msg.prefix.split('!').next().unwrap_or("");
                let chan = msg.params.trim_start_matches(':');
                let chan = chan.split([' ', ',']).next().unwrap_or("");
                let ours = chan
                    .strip_prefix('#')
                    .is_some_and(|c| c.eq_ignore_ascii_case(&self.room));
                Ok(who.eq_ignore_ascii_case(&self.nick) && ours)
            }
            _ => Ok(false),
        }
    }
}

/// 4xx and 5xx numerics are errors in IRC.
fn is_error_numeric(cmd: &str) -> bool {
    cmd.len() == 3
        && cmd.as_bytes()[0].is_ascii_digit()
        && matches!(cmd.as_bytes()[0], b'4' | b'5')
        && cmd.bytes().all(|b| b.is_ascii_digit())
}

/// The bare bones of an IRC line: `[:prefix] COMMAND params`.
#[derive(Debug, PartialEq, Eq)]
struct IrcLine<'a> {
    prefix: &'a str,
    command: &'a str,
    params: &'a str,
}

impl<'a> IrcLine<'a> {
    fn parse(line: &'a str) -> IrcLine<'a> {
        let mut rest = line.trim_start();
        let mut prefix = "";
        if let Some(p) = rest.strip_prefix(':') {
            let (a, b) = p.split_once(' ').unwrap_or((p, ""));
            prefix = a;
            rest = b.trim_start();
        }
        let (command, params) = rest.split_once(' ').unwrap_or((rest, ""));
        IrcLine {
            prefix,
            command,
            params,
        }
    }
}

/// The bytes that go before the payload of a chat message.
pub fn message_prefix(proto: Proto, room: &str) -> Vec<u8> {
    match proto {
        Proto::Text => Vec::new(),
        Proto::Irc => format!("PRIVMSG #{room} :").into_bytes(),
        Proto::Json | Proto::Ws => json_chat_frame().0.clone(),
    }
}

/// The bytes that go after the payload (the payload is JSON-safe ASCII).
pub fn message_suffix(proto: Proto) -> &'static [u8] {
    match proto {
        Proto::Json | Proto::Ws => &json_chat_frame().1,
        Proto::Text | Proto::Irc => b"",
    }
}

/// natter's JSON `chat` command cut where its `msg` goes: the payload is
/// JSON-safe ASCII, so it is written between the two as it is.
fn json_chat_frame() -> &'static (Vec<u8>, Vec<u8>) {
    static FRAME: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    FRAME.get_or_init(|| {
        const HOLE: &str = "~payload~";
        let line = Cmd::chat(HOLE).to_json();
        let (before, after) = line.split_once(HOLE).expect("msg is in the line");
        (before.into(), after.into())
    })
}

/// A natter JSON event line (`None`: anything else).
fn json_event(line: &[u8]) -> Option<wire::Event<'static>> {
    let line = std::str::from_utf8(line).ok()?;
    wire::parse_event(line).map(|s| s.event)
}

/// The answer a server line needs, if any (IRC: PING → PONG).
pub fn pong(proto: Proto, line: &[u8]) -> Option<Vec<u8>> {
    match proto {
        Proto::Text => None,
        Proto::Json | Proto::Ws => match json_event(line)? {
            wire::Event::Ping { .. } => {
                let mut out = Vec::new();
                Cmd::Keep.write_line(&mut out);
                Some(out)
            }
            _ => None,
        },
        Proto::Irc => {
            let rest = line.strip_prefix(b"PING")?;
            if !(rest.is_empty() || rest[0] == b' ') {
                return None;
            }
            let mut out = b"PONG".to_vec();
            out.extend_from_slice(rest);
            out.extend_from_slice(b"\r\n");
            Some(out)
        }
    }
}

/// Whether a line (received while running) reports an error worth keeping
/// for the report: text `! …`, IRC `ERROR …`.
pub fn is_error_line(proto: Proto, line: &[u8]) -> bool {
    let line = skip_ansi_prefix(line);
    match proto {
        Proto::Text => line.starts_with(b"! "),
        Proto::Irc => line.starts_with(b"ERROR"),
        Proto::Json | Proto::Ws => matches!(json_event(line), Some(wire::Event::Error { .. })),
    }
}

fn skip_ansi_prefix(mut line: &[u8]) -> &[u8] {
    while let Some(rest) = line.strip_prefix(b"\x1b[") {
        match rest.iter().position(|b| (0x40..=0x7e).contains(b)) {
            Some(end) => line = &rest[end + 1..],
            None => return rest,
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natter_json_handshake_ping_and_framing() {
        let (mut hs, out) = Handshake::start(Proto::Json, &TextOptions::default(), "b7", "bench3");
        assert_eq!(
            out,
            b"{\"cmd\":\"login\",\"nick\":\"b7\"}\r\n{\"cmd\":\"join\",\"room\":\"bench3\"}\r\n"
        );
        let mut reply = Vec::new();
        assert_eq!(
            hs.on_line("*** Welcome to natter! 0 people online.", &mut reply),
            Ok(false)
        );
        assert_eq!(
            hs.on_line(
                r#"{"type":"joined","room":"lobby","nick":"b7","members":1,"ts":1}"#,
                &mut reply
            ),
            Ok(false)
        );
        assert_eq!(
            hs.on_line(r#"{"type":"ping","token":1,"ts":1}"#, &mut reply),
            Ok(false)
        );
        assert_eq!(reply, b"{\"cmd\":\"keep\"}\r\n");
        assert_eq!(
            hs.on_line(
                r#"{"type":"joined","room":"bench3","nick":"b7","members":2,"ts":1}"#,
                &mut reply
            ),
            Ok(true)
        );
        let (mut hs, _) = Handshake::start(Proto::Json, &TextOptions::default(), "b8", "bench3");
        assert!(hs
            .on_line(
                r#"{"type":"error","code":"nick_in_use","message":"taken","ts":1}"#,
                &mut reply
            )
            .is_err());
        let mut line = message_prefix(Proto::Json, "bench3");
        assert_eq!(line, br#"{"cmd":"chat","msg":""#);
        line.extend_from_slice(b"~nb~payload");
        line.extend_from_slice(message_suffix(Proto::Json));
        assert_eq!(line, br#"{"cmd":"chat","msg":"~nb~payload"}"#);
        assert!(matches!(
            crate::proto::json::parse(std::str::from_utf8(&line).unwrap()),
            crate::proto::json::Input::Command(crate::proto::Command::Say { .. })
        ));
        assert!(is_error_line(
            Proto::Json,
            br#"{"type":"error","code":"x","message":"y","ts":1}"#
        ));
        assert!(!is_error_line(
            Proto::Json,
            br#"{"type":"info","text":"error","ts":1}"#
        ));
        assert_eq!(
            pong(Proto::Json, br#"{"type":"ping","token":2,"ts":1}"#),
            Some(b"{\"cmd\":\"keep\"}\r\n".to_vec())
        );
        assert_eq!(
            pong(Proto::Json, br#"{"type":"info","text":"ping","ts":1}"#),
            None
        );
    }

    #[test]
    fn natter_text_handshake() {
        let (mut hs, out) = Handshake::start(Proto::Text, &TextOptions::default(), "b7", "bench3");
        assert_eq!(out, b"b7\r\n/color off\r\n/join bench3\r\n");
        let mut o = Vec::new();
        for l in [
            "\x1b[33m*** Welcome to natter! 3 people online.\x1b[0m",
            "\x1b[33m*** What is your nickname?\x1b[0m",
            "\x1b[33m*** You are now known as b7. 4 online. Type /help for commands.\x1b[0m",
            "\x1b[33m*** b7 joined #lobby (4 here)\x1b[0m",
            "*** colours off",
            "*** b70 joined #bench3 (2 here)",
        ] {
            assert_eq!(hs.on_line(l, &mut o), Ok(false), "{l}");
        }
        assert_eq!(
            hs.on_line("*** b7 joined #bench3 (3 here)", &mut o),
            Ok(true)
        );
        assert!(o.is_empty());
    }

    #[test]
    fn text_refusal_is_reported() {
        let (mut hs, _) = Handshake::start(Proto::Text, &TextOptions::default(), "b1", "r");
        let e = hs.on_line(
            "! server full (100000 connections); try again later",
            &mut Vec::new(),
        );
        assert_eq!(
            e,
            Err(Refused::Server(
                "! server full (100000 connections); try again later".into()
            ))
        );
        let e = hs.on_line(
            "\x1b[1;31m! the nickname b1 is taken. Pick another nickname:\x1b[0m",
            &mut Vec::new(),
        );
        assert!(matches!(e, Err(Refused::Server(m)) if m.contains("taken")));
    }

    #[test]
    fn plain_text_server_options() {
        let opts = TextOptions {
            setup: String::new(),
            join: String::new(),
            ready: "Welcome, {nick}".into(),
        };
        let (mut hs, out) = Handshake::start(Proto::Text, &opts, "b1", "bench0");
        assert_eq!(out, b"b1\r\n");
        assert_eq!(
            hs.on_line("What is your nickname?", &mut Vec::new()),
            Ok(false)
        );
        assert_eq!(hs.on_line("Welcome, b1!", &mut Vec::new()), Ok(true));
    }

    #[test]
    fn irc_handshake() {
        let (mut hs, out) = Handshake::start(Proto::Irc, &TextOptions::default(), "b1", "bench0");
        assert_eq!(out, b"NICK b1\r\nUSER b1 0 * :natter bench\r\n");
        let mut o = Vec::new();
        assert_eq!(
            hs.on_line(":irc.local NOTICE * :*** Looking up your hostname", &mut o),
            Ok(false)
        );
        assert_eq!(hs.on_line("PING :12345", &mut o), Ok(false));
        assert_eq!(o, b"PONG :12345\r\n");
        o.clear();
        assert_eq!(
            hs.on_line(":irc.local 001 b1 :Welcome to the network", &mut o),
            Ok(false)
        );
        assert_eq!(o, b"JOIN #bench0\r\n");
        assert_eq!(
            hs.on_line(":b10!~b10@localhost JOIN :#bench0", &mut o),
            Ok(false)
        );
        assert_eq!(
            hs.on_line(":B1!~b1@localhost JOIN :#Bench0", &mut o),
            Ok(true)
        );
        let (mut hs, _) = Handshake::start(Proto::Irc, &TextOptions::default(), "b1", "x");
        assert_eq!(hs.on_line(":s 001 b1 :hi", &mut o), Ok(false));
        assert_eq!(hs.on_line(":b1!u@h JOIN #x", &mut o), Ok(true));
    }

    #[test]
    fn irc_refusals() {
        let (mut hs, _) = Handshake::start(Proto::Irc, &TextOptions::default(), "b1", "r");
        let mut o = Vec::new();
        assert!(hs
            .on_line(":s 433 * b1 :Nickname already in use", &mut o)
            .is_err());
        assert!(hs
            .on_line("ERROR :Closing link: (Too many connections)", &mut o)
            .is_err());
        assert_eq!(hs.on_line(":s 375 b1 :- motd", &mut o), Ok(false));
    }

    #[test]
    fn framing_and_pings() {
        assert_eq!(message_prefix(Proto::Irc, "r1"), b"PRIVMSG #r1 :");
        assert!(message_prefix(Proto::Text, "r1").is_empty());
        assert_eq!(
            pong(Proto::Irc, b"PING :x y"),
            Some(b"PONG :x y\r\n".to_vec())
        );
        assert_eq!(pong(Proto::Irc, b"PINGU"), None);
        assert_eq!(pong(Proto::Text, b"PING :x"), None);
        assert!(is_error_line(Proto::Text, b"\x1b[1;31m! oops\x1b[0m"));
        assert!(is_error_line(Proto::Irc, b"ERROR :bye"));
        assert!(!is_error_line(Proto::Text, b"bob: ! not an error"));
    }
}
