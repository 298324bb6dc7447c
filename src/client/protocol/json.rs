//! natter's JSON-lines protocol, client side (docs/PROTOCOL.md, "JSON
//! lines"): `{"cmd":…}` objects out, `{"type":…}` events in, both as the
//! server's own wire types ([`wire::Cmd`], [`wire::Event`]). Skips the text
//! banner the server sends before it knows we speak JSON, answers heartbeat
//! pings with `keep`, turns a refused nickname before login into a
//! `NeedNick`, and after a reconnect goes back to the room it was in.

use super::{same_nick, Output, Protocol};
use crate::client::command::Request;
use crate::client::event::{Event, EventKind};
use crate::proto::json::wire::{self, Cmd};

/// Client state for one natter server, kept across reconnects.
#[derive(Debug, Default)]
pub struct JsonProtocol {
    /// The nickname to log in with: given, accepted, or last asked for.
    nick: Option<String>,
    /// Registered on this connection.
    registered: bool,
    /// The room we are in (or want to be in, from `--join`).
    room: Option<String>,
    /// After (re)login: the room to go back to once the server has put us
    /// in its default room.
    rejoin: Option<String>,
    /// A rejoin was sent and not yet answered.
    joining: bool,
}

impl JsonProtocol {
    /// `nick`: log in with it (else ask); `room`: go there after login.
    pub fn new(nick: Option<String>, room: Option<String>) -> JsonProtocol {
        JsonProtocol {
            nick,
            room,
            ..JsonProtocol::default()
        }
    }

    fn send(out: &mut Output, cmd: Cmd) {
        out.send(cmd.to_json());
    }

    fn login(&mut self, out: &mut Output) {
        match &self.nick {
            Some(n) => Self::send(out, Cmd::Login { nick: n.into() }),
            None => out.show(EventKind::NeedNick { refused: None }),
        }
    }

    fn event(&mut self, ev: wire::Event<'static>, out: &mut Output) -> Option<EventKind> {
        use wire::Event as W;
        Some(match ev {
            W::Welcome { server, online } => {
                EventKind::Info(format!("Welcome to {server} ({online} online)"))
            }
            W::Registered { nick, online } => {
                let nick = String::from(nick);
                self.registered = true;
                self.nick = Some(nick.clone());
                EventKind::Registered {
                    nick,
                    online: Some(online),
                }
            }
            W::Joined {
                room,
                nick,
                members,
            } => {
                let (room, nick) = (String::from(room), String::from(nick));
                if self.is_me(&nick) {
                    self.joining = false;
                    if let Some(want) = self.rejoin.take() {
                        if !same_room(&want, &room) {
                            self.joining = true;
                            let room = want.into();
                            Self::send(out, Cmd::Join { room, key: None });
                        }
                    }
                    self.room = Some(room.clone());
                }
                EventKind::Joined {
                    room,
                    nick,
                    members: Some(members),
                }
            }
            W::Left {
                room,
                nick,
                members,
                reason,
            } => {
                if self.is_me(&nick) && self.room.as_deref().is_some_and(|r| same_room(r, &room)) {
                    self.room = None;
                }
                EventKind::Left {
                    room: room.into(),
                    nick: nick.into(),
                    members: Some(members),
                    reason: reason.map(String::from),
                }
            }
            W::Quit { nick, reason } => EventKind::Quit {
                nick: nick.into(),
                reason: Some(reason.into()),
            },
            W::Message {
                room,
                from,
                text,
                action,
                ..
            } => EventKind::Message {
                room: room.into(),
                from: from.into(),
                text: text.into(),
                action,
            },
            W::Private {
                from,
                to,
                text,
                action,
                ..
            } => EventKind::Private {
                from: from.into(),
                to: to.into(),
                text: text.into(),
                action,
            },
            W::Nick { old, new } => {
                let (old, new) = (String::from(old), String::from(new));
                if self.is_me(&old) {
                    self.nick = Some(new.clone());
                }
                EventKind::Nick { old, new }
            }
            W::Presence { room, nicks, .. } => EventKind::Presence {
                room: room.into(),
                nicks: nicks.into_iter().map(String::from).collect(),
            },
            W::Rooms { rooms, .. } => EventKind::Rooms(
                rooms
                    .into_iter()
                    .map(|r| (r.room.into(), Some(r.members)))
                    .collect(),
            ),
            W::Help { commands } => EventKind::Info(format!(
                "server commands: {}",
                commands
                    .iter()
                    .map(|c| &*c.cmd)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            W::Info { text } => EventKind::Info(text.into()),
            W::Error { code, message, .. } => {
                if code == "room_invalid" {
                    self.joining = false; // the rejoin failed: carry on
                }
                if !self.registered && (code == "nick_in_use" || code == "nick_invalid") {
                    EventKind::NeedNick {
                        refused: Some(message.into()),
                    }
                } else {
                    EventKind::Error {
                        code: code.into(),
                        message: message.into(),
                    }
                }
            }
            W::Ping { .. } => {
                Self::send(out, Cmd::Keep);
                return None;
            }
            W::Shutdown { reason } => EventKind::Shutdown {
                reason: reason.into(),
            },
            _ => return None,
        })
    }

    fn is_me(&self, nick: &str) -> bool {
        self.registered && self.nick.as_deref().is_some_and(|me| same_nick(me, nick))
    }
}

/// natter rooms ignore case and a leading `#`.
fn same_room(a: &str, b: &str) -> bool {
    let norm = |r: &str| r.trim_start_matches('#').to_lowercase();
    norm(a) == norm(b)
}

impl Protocol for JsonProtocol {
    fn name(&self) -> &'static str {
        "JSON"
    }

    fn connected(&mut self, out: &mut Output) {
        self.registered = false;
        self.joining = false;
        self.rejoin = self.room.clone();
        self.login(out);
    }

    fn receive(&mut self, line: &str, out: &mut Output) {
        // The text banner before protocol detection is not JSON, and a
        // type this client does not know is skipped: neither parses.
        let Some(wire::Stamped { event, ts }) = wire::parse_event(line) else {
            return;
        };
        if let Some(kind) = self.event(event, out) {
            out.event(Event::at(i64::try_from(ts).ok(), kind));
        }
    }

    fn request(&mut self, req: &Request, out: &mut Output) {
        let cmd = match req {
            Request::Login(nick) => {
                self.nick = Some(nick.clone());
                Cmd::Login { nick: nick.into() }
            }
            Request::Say {
                text,
                action: false,
            } => Cmd::chat(text),
            Request::Say { text, action: true } => Cmd::Me {
                msg: text.into(),
                room: None,
            },
            Request::Private { to, text } => Cmd::Msg {
                to: to.into(),
                msg: text.into(),
                action: false,
            },
            Request::Join(room) => Cmd::Join {
                room: room.into(),
                key: None,
            },
            Request::Part(reason) => Cmd::Part {
                room: None,
                reason: reason.as_deref().map(Into::into),
            },
            Request::Who(room) => Cmd::Who {
                room: room.as_deref().map(Into::into),
            },
            Request::Rooms => Cmd::Rooms { after: None },
            Request::Nick(nick) => Cmd::Nick { nick: nick.into() },
            Request::Quit(reason) => Cmd::Quit {
                reason: reason.as_deref().map(Into::into),
            },
        };
        Self::send(out, cmd);
    }

    fn ready(&self) -> bool {
        self.registered && self.rejoin.is_none() && !self.joining
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(p: &mut JsonProtocol, line: &str) -> Output {
        let mut out = Output::default();
        p.receive(line, &mut out);
        out
    }

    fn kinds(out: &Output) -> Vec<EventKind> {
        out.events.iter().map(|e| e.kind.clone()).collect()
    }

    #[test]
    fn login_ping_and_events() {
        let mut p = JsonProtocol::new(Some("alice".into()), None);
        let mut out = Output::default();
        p.connected(&mut out);
        assert_eq!(out.lines, [r#"{"cmd":"login","nick":"alice"}"#]);
        assert!(feed(&mut p, "*** Welcome to natter! 0 people online.")
            .events
            .is_empty());
        let o = feed(
            &mut p,
            r#"{"type":"registered","nick":"alice","online":1,"ts":5}"#,
        );
        assert_eq!(o.events[0].at_ms, 5);
        assert!(p.ready());
        let o = feed(&mut p, r#"{"type":"ping","token":3,"ts":6}"#);
        assert_eq!(o.lines, [r#"{"cmd":"keep"}"#]);
        assert!(o.events.is_empty());
        let o = feed(
            &mut p,
            r#"{"type":"message","id":"0190d2a2-0000-7000-8000-000000000001","seq":1,"room":"lobby","from":"bob","text":"hi","action":false,"ts":7}"#,
        );
        assert_eq!(
            kinds(&o),
            [EventKind::Message {
                room: "lobby".into(),
                from: "bob".into(),
                text: "hi".into(),
                action: false
            }]
        );
        // Junk and unknown types are ignored, not fatal.
        for junk in [
            "{",
            "{}",
            "[1]",
            r#"{"type":"future"}"#,
            r#"{"type":"message"}"#,
        ] {
            assert!(feed(&mut p, junk).events.is_empty(), "{junk}");
        }
    }

    #[test]
    fn refused_nick_before_login_asks_again_after_login_is_an_error() {
        let mut p = JsonProtocol::new(None, None);
        let mut out = Output::default();
        p.connected(&mut out);
        assert_eq!(kinds(&out), [EventKind::NeedNick { refused: None }]);
        let err = r#"{"type":"error","code":"nick_in_use","message":"taken","ts":1}"#;
        assert_eq!(
            kinds(&feed(&mut p, err)),
            [EventKind::NeedNick {
                refused: Some("taken".into())
            }]
        );
        let mut out = Output::default();
        p.request(&Request::Login("bob".into()), &mut out);
        assert_eq!(out.lines, [r#"{"cmd":"login","nick":"bob"}"#]);
        feed(
            &mut p,
            r#"{"type":"registered","nick":"bob","online":1,"ts":1}"#,
        );
        assert!(matches!(
            kinds(&feed(&mut p, err))[0],
            EventKind::Error { .. }
        ));
    }

    #[test]
    fn reconnect_logs_in_again_and_rejoins_the_room() {
        let mut p = JsonProtocol::new(Some("alice".into()), None);
        p.connected(&mut Output::default());
        feed(
            &mut p,
            r#"{"type":"registered","nick":"alice","online":1,"ts":1}"#,
        );
        feed(
            &mut p,
            r#"{"type":"joined","room":"lobby","nick":"alice","members":1,"ts":1}"#,
        );
        feed(
            &mut p,
            r#"{"type":"nick","old":"alice","new":"alicia","ts":1}"#,
        );
        feed(
            &mut p,
            r#"{"type":"joined","room":"rust","nick":"alicia","members":1,"ts":1}"#,
        );
        // The server went away; a new connection:
        let mut out = Output::default();
        p.connected(&mut out);
        assert_eq!(out.lines, [r#"{"cmd":"login","nick":"alicia"}"#]);
        feed(
            &mut p,
            r#"{"type":"registered","nick":"alicia","online":1,"ts":1}"#,
        );
        assert!(!p.ready(), "not before it is back in its room");
        let o = feed(
            &mut p,
            r#"{"type":"joined","room":"lobby","nick":"alicia","members":1,"ts":1}"#,
        );
        assert_eq!(o.lines, [r#"{"cmd":"join","room":"rust"}"#]);
        assert!(!p.ready());
        let o = feed(
            &mut p,
            r#"{"type":"joined","room":"rust","nick":"alicia","members":1,"ts":1}"#,
        );
        assert!(o.lines.is_empty());
        assert!(p.ready());
    }

    #[test]
    fn requests_encode_as_documented() {
        let mut p = JsonProtocol::new(Some("a".into()), None);
        let cases = [
            (
                Request::Say {
                    text: "hi".into(),
                    action: false,
                },
                r#"{"cmd":"chat","msg":"hi"}"#,
            ),
            (
                Request::Say {
                    text: "waves".into(),
                    action: true,
                },
                r#"{"cmd":"me","msg":"waves"}"#,
            ),
            (
                Request::Private {
                    to: "bob".into(),
                    text: "x".into(),
                },
                r#"{"cmd":"msg","to":"bob","msg":"x"}"#,
            ),
            (
                Request::Join("#rust".into()),
                r##"{"cmd":"join","room":"#rust"}"##,
            ),
            (Request::Who(None), r#"{"cmd":"who"}"#),
            (Request::Rooms, r#"{"cmd":"rooms"}"#),
            (
                Request::Who(Some("rust".into())),
                r#"{"cmd":"who","room":"rust"}"#,
            ),
            (
                Request::Nick("bobby".into()),
                r#"{"cmd":"nick","nick":"bobby"}"#,
            ),
            (Request::Part(None), r#"{"cmd":"part"}"#),
            (
                Request::Part(Some("bye".into())),
                r#"{"cmd":"part","reason":"bye"}"#,
            ),
            (Request::Quit(None), r#"{"cmd":"quit"}"#),
            (
                Request::Quit(Some("bye".into())),
                r#"{"cmd":"quit","reason":"bye"}"#,
            ),
        ];
        for (req, want) in cases {
            let mut out = Output::default();
            p.request(&req, &mut out);
            assert_eq!(out.lines, [want], "{req:?}");
        }
    }
}
