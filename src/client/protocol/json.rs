//! natter's JSON-lines protocol, client side (docs/PROTOCOL.md, "JSON
//! lines"): `{"cmd":…}` objects out, `{"type":…}` events in. Skips the text
//! banner the server sends before it knows we speak JSON, answers heartbeat
//! pings with `keep`, turns a refused nickname before login into a
//! `NeedNick`, and after a reconnect goes back to the room it was in.

use serde_json::{json, Map, Value};

use super::{same_nick, Output, Protocol};
use crate::client::command::Request;
use crate::client::event::{Event, EventKind};

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
    /// Pages of the room list collected so far (the server sends one page
    /// per `rooms`; we ask for the next until there is none).
    listed: Vec<(String, Option<u64>)>,
    /// Pages of a member list (`presence` with `more`) collected so far.
    members: Vec<String>,
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

    fn send(out: &mut Output, v: Value) {
        out.send(v.to_string());
    }

    fn login(&mut self, out: &mut Output) {
        match &self.nick {
            Some(n) => Self::send(out, json!({"cmd": "login", "nick": n})),
            None => out.show(EventKind::NeedNick { refused: None }),
        }
    }

    fn event(&mut self, m: &Map<String, Value>, out: &mut Output) -> Option<EventKind> {
        let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
        let n = |k: &str| m.get(k).and_then(Value::as_u64);
        let ty = m.get("type").and_then(Value::as_str)?;
        Some(match ty {
            "welcome" => EventKind::Info(match n("online") {
                Some(o) => format!(
                    "Welcome to {} ({o} online)",
                    s("server").unwrap_or_else(|| "natter".into())
                ),
                None => "Welcome".into(),
            }),
            "registered" => {
                let nick = s("nick")?;
                self.registered = true;
                self.nick = Some(nick.clone());
                EventKind::Registered {
                    nick,
                    online: n("online"),
                }
            }
            "joined" => {
                let (room, nick) = (s("room")?, s("nick")?);
                if self.is_me(&nick) {
                    self.joining = false;
                    if let Some(want) = self.rejoin.take() {
                        if !same_room(&want, &room) {
                            self.joining = true;
                            Self::send(out, json!({"cmd": "join", "room": want}));
                        }
                    }
                    self.room = Some(room.clone());
                }
                EventKind::Joined {
                    room,
                    nick,
                    members: n("members"),
                }
            }
            "left" => {
                let (room, nick) = (s("room")?, s("nick")?);
                if self.is_me(&nick) && self.room.as_deref().is_some_and(|r| same_room(r, &room)) {
                    self.room = None;
                }
                EventKind::Left {
                    room,
                    nick,
                    members: n("members"),
                    reason: s("reason"),
                }
            }
            "quit" => EventKind::Quit {
                nick: s("nick")?,
                reason: s("reason"),
            },
            "message" => EventKind::Message {
                room: s("room")?,
                from: s("from")?,
                text: s("text")?,
                action: m.get("action").and_then(Value::as_bool).unwrap_or(false),
            },
            "private" => EventKind::Private {
                from: s("from")?,
                to: s("to")?,
                text: s("text")?,
                action: m.get("action").and_then(Value::as_bool).unwrap_or(false),
            },
            "nick" => {
                let (old, new) = (s("old")?, s("new")?);
                if self.is_me(&old) {
                    self.nick = Some(new.clone());
                }
                EventKind::Nick { old, new }
            }
            "presence" => {
                let flag = |k: &str| m.get(k).and_then(Value::as_bool).unwrap_or(false);
                if !flag("continued") {
                    self.members.clear();
                }
                self.members.extend(strings(m.get("nicks")?));
                if flag("more") {
                    return None;
                }
                EventKind::Presence {
                    room: s("room")?,
                    nicks: std::mem::take(&mut self.members),
                }
            }
            "rooms" => {
                let page = m.get("rooms")?.as_array()?.iter().filter_map(|r| {
                    let room = r.get("room")?.as_str()?.to_string();
                    Some((room, r.get("members").and_then(Value::as_u64)))
                });
                self.listed.extend(page);
                if let Some(next) = s("next") {
                    if self.listed.len() < super::MAX_LISTED {
                        Self::send(out, json!({"cmd": "rooms", "after": next}));
                        return None;
                    }
                }
                EventKind::Rooms(std::mem::take(&mut self.listed))
            }
            "help" => EventKind::Info(format!(
                "server commands: {}",
                m.get("commands")?
                    .as_array()?
                    .iter()
                    .filter_map(|c| c.get("cmd")?.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            "info" => EventKind::Info(s("text")?),
            "error" => {
                let code = s("code").unwrap_or_default();
                let message = s("message").unwrap_or_else(|| code.clone());
                if code == "room_invalid" {
                    self.joining = false; // the rejoin failed: carry on
                }
                if !self.registered && (code == "nick_in_use" || code == "nick_invalid") {
                    EventKind::NeedNick {
                        refused: Some(message),
                    }
                } else {
                    EventKind::Error { code, message }
                }
            }
            "ping" => {
                Self::send(out, json!({"cmd": "keep"}));
                return None;
            }
            "shutdown" => EventKind::Shutdown {
                reason: s("reason").unwrap_or_default(),
            },
            _ => return None,
        })
    }

    fn is_me(&self, nick: &str) -> bool {
        self.registered && self.nick.as_deref().is_some_and(|me| same_nick(me, nick))
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
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
        // The text banner before protocol detection is not JSON: skip it.
        if !line.trim_start().starts_with('{') {
            return;
        }
        let Ok(Value::Object(m)) = serde_json::from_str::<Value>(line) else {
            return;
        };
        let at = m.get("ts").and_then(Value::as_i64);
        if let Some(kind) = self.event(&m, out) {
            out.event(Event::at(at, kind));
        }
    }

    fn request(&mut self, req: &Request, out: &mut Output) {
        let v = match req {
            Request::Login(nick) => {
                self.nick = Some(nick.clone());
                json!({"cmd": "login", "nick": nick})
            }
            Request::Say { text, action } => {
                json!({"cmd": if *action { "me" } else { "chat" }, "msg": text})
            }
            Request::Private { to, text } => json!({"cmd": "msg", "to": to, "msg": text}),
            Request::Join(room) => json!({"cmd": "join", "room": room}),
            Request::Part(reason) => json!({"cmd": "part", "reason": reason}),
            Request::Who(Some(room)) => json!({"cmd": "who", "room": room}),
            Request::Who(None) => json!({"cmd": "who"}),
            Request::Rooms => {
                self.listed.clear();
                json!({"cmd": "rooms"})
            }
            Request::Nick(nick) => json!({"cmd": "nick", "nick": nick}),
            Request::Quit(reason) => json!({"cmd": "quit", "reason": reason}),
        };
        Self::send(out, v);
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
            r#"{"type":"message","id":1,"room":"lobby","from":"bob","text":"hi","action":false,"ts":7}"#,
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
    fn paged_lists_are_collected() {
        let mut p = JsonProtocol::new(Some("alice".into()), None);
        let o = feed(
            &mut p,
            r#"{"type":"rooms","rooms":[{"room":"a","members":1}],"total":2,"next":"a"}"#,
        );
        assert!(o.events.is_empty());
        assert_eq!(o.lines, [r#"{"after":"a","cmd":"rooms"}"#]);
        let o = feed(
            &mut p,
            r#"{"type":"rooms","rooms":[{"room":"b","members":2}],"total":2,"next":null}"#,
        );
        assert_eq!(
            kinds(&o),
            [EventKind::Rooms(vec![
                ("a".into(), Some(1)),
                ("b".into(), Some(2))
            ])]
        );
        let first = r#"{"type":"presence","room":"r","nicks":["x"],"more":true}"#;
        assert!(feed(&mut p, first).events.is_empty());
        let rest = r#"{"type":"presence","room":"r","nicks":["y"],"continued":true}"#;
        assert_eq!(
            kinds(&feed(&mut p, rest)),
            [EventKind::Presence {
                room: "r".into(),
                nicks: vec!["x".into(), "y".into()]
            }]
        );
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
        feed(&mut p, r#"{"type":"registered","nick":"bob","ts":1}"#);
        assert!(matches!(
            kinds(&feed(&mut p, err))[0],
            EventKind::Error { .. }
        ));
    }

    #[test]
    fn reconnect_logs_in_again_and_rejoins_the_room() {
        let mut p = JsonProtocol::new(Some("alice".into()), None);
        p.connected(&mut Output::default());
        feed(&mut p, r#"{"type":"registered","nick":"alice","ts":1}"#);
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
        feed(&mut p, r#"{"type":"registered","nick":"alicia","ts":1}"#);
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
                r#"{"cmd":"msg","msg":"x","to":"bob"}"#,
            ),
            (
                Request::Join("#rust".into()),
                r##"{"cmd":"join","room":"#rust"}"##,
            ),
            (Request::Who(None), r#"{"cmd":"who"}"#),
            (Request::Rooms, r#"{"cmd":"rooms"}"#),
            (Request::Quit(None), r#"{"cmd":"quit","reason":null}"#),
        ];
        for (req, want) in cases {
            let mut out = Output::default();
            p.request(&req, &mut out);
            let got: Value = serde_json::from_str(&out.lines[0]).unwrap();
            let want: Value = serde_json::from_str(want).unwrap();
            assert_eq!(got, want, "{req:?}");
        }
    }
}
