//! The JSON-lines protocol: one JSON object per line each way. A connection
//! switches to it when its first line is a JSON object. [`parse`] turns a
//! line into a command (with precise error codes for bad input) and
//! [`render`] turns an event into a `{"type": ...}` object.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::sanitize::strip_controls;
use super::{Command, ErrorCode, Event, EventBody, Subject};

/// What a JSON line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Command(Command),
    /// `keep` / `pong`: the answer to a heartbeat ping.
    Keep,
    Help,
    Error(ErrorCode, String),
}

/// Every command, with its fields (for `help` and the docs).
pub const COMMANDS: &[(&str, &str)] = &[
    ("login", "{\"cmd\":\"login\",\"nick\":N}"),
    (
        "chat",
        "{\"cmd\":\"chat\",\"msg\":M[,\"room\":R][,\"action\":true]}",
    ),
    ("me", "{\"cmd\":\"me\",\"msg\":M[,\"room\":R]}"),
    ("msg", "{\"cmd\":\"msg\",\"to\":NICK,\"msg\":M}"),
    ("join", "{\"cmd\":\"join\",\"room\":R[,\"key\":K]}"),
    ("part", "{\"cmd\":\"part\"[,\"room\":R]}"),
    ("who", "{\"cmd\":\"who\"[,\"room\":R]}"),
    ("rooms", "{\"cmd\":\"rooms\"}"),
    ("nick", "{\"cmd\":\"nick\",\"nick\":N}"),
    ("keep", "{\"cmd\":\"keep\"} (answers ping; also \"pong\")"),
    ("help", "{\"cmd\":\"help\"}"),
    ("quit", "{\"cmd\":\"quit\"[,\"reason\":R]} (also \"exit\")"),
];

#[derive(Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
enum Wire {
    Login {
        nick: String,
    },
    Chat {
        msg: String,
        #[serde(default)]
        room: Option<String>,
        #[serde(default)]
        action: bool,
    },
    Me {
        msg: String,
        #[serde(default)]
        room: Option<String>,
    },
    #[serde(alias = "private")]
    Msg {
        to: String,
        msg: String,
        #[serde(default)]
        action: bool,
    },
    Join {
        room: String,
        #[serde(default)]
        key: Option<String>,
    },
    Part {
        #[serde(default)]
        room: Option<String>,
        #[serde(default)]
        reason: Option<String>,
    },
    Who {
        #[serde(default)]
        room: Option<String>,
    },
    Rooms,
    Nick {
        nick: String,
    },
    #[serde(alias = "pong")]
    Keep,
    Help,
    #[serde(alias = "exit")]
    Quit {
        #[serde(default)]
        reason: Option<String>,
    },
}

/// True if `line` looks like the start of a JSON session.
pub fn looks_like_json(line: &str) -> bool {
    line.trim_start().starts_with('{')
}

/// Parses one line. Never panics; every failure is an error code and message.
pub fn parse(line: &str) -> Input {
    let line = line.trim();
    if line.is_empty() {
        return Input::Error(
            ErrorCode::Malformed,
            "empty line: expected a JSON object".into(),
        );
    }
    let value: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return Input::Error(ErrorCode::Malformed, format!("malformed JSON: {e}")),
    };
    let Some(obj) = value.as_object() else {
        return Input::Error(ErrorCode::Malformed, "expected a JSON object".into());
    };
    match obj.get("cmd") {
        None => return Input::Error(ErrorCode::BadArguments, "missing \"cmd\"".into()),
        Some(Value::String(c))
            if !COMMANDS.iter().any(|(n, _)| n == c)
                && !["exit", "pong", "private"].contains(&c.as_str()) =>
        {
            return Input::Error(
                ErrorCode::UnknownCommand,
                format!("unknown cmd {:?}", strip_controls(c)),
            )
        }
        Some(Value::String(_)) => {}
        Some(_) => return Input::Error(ErrorCode::BadArguments, "\"cmd\" must be a string".into()),
    }
    let wire: Wire = match serde_json::from_value(value) {
        Ok(w) => w,
        Err(e) => return Input::Error(ErrorCode::BadArguments, format!("bad arguments: {e}")),
    };
    let clean = |s: String| strip_controls(&s);
    Input::Command(match wire {
        Wire::Login { nick } => Command::Register { nick },
        Wire::Chat { msg, room, action } => Command::Say {
            room,
            text: clean(msg),
            action,
        },
        Wire::Me { msg, room } => Command::Say {
            room,
            text: clean(msg),
            action: true,
        },
        Wire::Msg { to, msg, action } => Command::Private {
            to,
            text: clean(msg),
            action,
        },
        Wire::Join { room, key: None } => Command::Join { room, switch: true },
        Wire::Join { room, key } => Command::JoinWithKey {
            room,
            key,
            switch: true,
        },
        Wire::Part { room, reason } => Command::Part {
            room,
            reason: reason.map(clean),
        },
        Wire::Who { room } => Command::Who { room },
        Wire::Rooms => Command::Rooms,
        Wire::Nick { nick } => Command::Nick { new: nick },
        Wire::Keep => return Input::Keep,
        Wire::Help => return Input::Help,
        Wire::Quit { reason } => Command::Quit {
            reason: reason.map(clean),
        },
    })
}

/// Renders an event as one JSON object line.
pub fn render(ev: &Event, out: &mut Vec<u8>) {
    let mut v = match &ev.body {
        EventBody::TagMsg { .. } => return, // tags only: nothing to show
        EventBody::Welcome { server, online } => {
            json!({"type": "welcome", "server": server, "online": online})
        }
        EventBody::Registered { nick, online } => {
            json!({"type": "registered", "nick": nick, "online": online})
        }
        EventBody::Joined {
            room,
            nick,
            members,
        } => {
            json!({"type": "joined", "room": room, "nick": nick, "members": members})
        }
        EventBody::Parted {
            room,
            nick,
            members,
            reason,
        } => {
            json!({"type": "left", "room": room, "nick": nick, "members": members, "reason": reason})
        }
        EventBody::Quit { nick, reason } => json!({"type": "quit", "nick": nick, "reason": reason}),
        EventBody::Message {
            id,
            seq,
            room,
            from,
            text,
            action,
        } => {
            json!({"type": "message", "id": id.to_string(), "seq": seq, "room": room, "from": from, "text": text, "action": action})
        }
        EventBody::Private {
            id,
            from,
            to,
            text,
            action,
        } => {
            json!({"type": "private", "id": id.to_string(), "from": from, "to": to, "text": text, "action": action})
        }
        EventBody::NickChanged { old, new } => json!({"type": "nick", "old": old, "new": new}),
        EventBody::RoomList { rooms } => {
            let rooms: Vec<Value> = rooms
                .iter()
                .map(|(r, n)| json!({"room": r, "members": n}))
                .collect();
            json!({"type": "rooms", "rooms": rooms})
        }
        EventBody::Help => {
            let cmds: Vec<Value> = COMMANDS
                .iter()
                .map(|(c, u)| json!({"cmd": c, "usage": u}))
                .collect();
            json!({"type": "help", "commands": cmds})
        }
        EventBody::Info { text } => json!({"type": "info", "text": text}),
        EventBody::Ping { token } => json!({"type": "ping", "token": token}),
        EventBody::Shutdown { reason } => json!({"type": "shutdown", "reason": reason}),
        EventBody::Members { room, members, .. } => {
            let nicks: Vec<&str> = members.iter().map(|m| &*m.nick).collect();
            let ops: Vec<&str> = members.iter().filter(|m| m.op).map(|m| &*m.nick).collect();
            let voiced: Vec<&str> = members
                .iter()
                .filter(|m| m.voice)
                .map(|m| &*m.nick)
                .collect();
            json!({"type": "presence", "room": room, "nicks": nicks, "ops": ops, "voiced": voiced})
        }
        EventBody::Notice {
            id,
            from,
            room,
            to,
            text,
        } => {
            json!({"type": "notice", "id": id.to_string(), "from": from, "room": room, "to": to, "text": text})
        }
        EventBody::TopicChanged { room, nick, topic } => {
            json!({"type": "topic", "room": room, "topic": topic, "by": nick, "changed": true})
        }
        EventBody::TopicInfo { room, topic } => match topic {
            Some(t) => json!({"type": "topic", "room": room, "topic": t.text, "by": t.set_by,
                "set_at": t.set_at_ms, "changed": false}),
            None => json!({"type": "topic", "room": room, "topic": null, "changed": false}),
        },
        EventBody::Kicked {
            room,
            nick,
            target,
            reason,
            members,
        } => json!({"type": "kicked", "room": room, "by": nick, "nick": target,
            "reason": reason, "members": members}),
        EventBody::ModeChanged {
            room,
            nick,
            changes,
        } => {
            json!({"type": "mode", "room": room, "by": nick, "changes": super::text::mode_text(changes)})
        }
        EventBody::RoomModes {
            room,
            modes,
            created_ms,
        } => json!({"type": "modes", "room": room, "modes": super::text::mode_text(modes),
            "created": created_ms}),
        EventBody::BanList { room, bans } => {
            let bans: Vec<Value> = bans
                .iter()
                .map(|b| json!({"mask": b.mask, "by": b.set_by, "at": b.set_at_ms}))
                .collect();
            json!({"type": "bans", "room": room, "bans": bans})
        }
        EventBody::Away { nick, text } => json!({"type": "away", "nick": nick, "text": text}),
        EventBody::AwayReply { nick, text } => {
            json!({"type": "away", "nick": nick, "text": text})
        }
        EventBody::AwayStatus { away } => json!({"type": "away_status", "away": away}),
        EventBody::Invited { room, nick, target } => {
            json!({"type": "invited", "room": room, "by": nick, "nick": target})
        }
        EventBody::WhoReply {
            mask,
            room,
            members,
        } => {
            let members: Vec<Value> = members.iter().map(member).collect();
            json!({"type": "who", "mask": mask, "room": room, "members": members})
        }
        EventBody::Whois { nick, info } => match info {
            None => json!({"type": "error", "code": ErrorCode::NoSuchNick.as_str(),
                "message": format!("nobody is called {nick}")}),
            Some(i) => {
                let rooms: Vec<&str> = i.rooms.iter().map(|(r, ..)| &**r).collect();
                json!({"type": "whois", "nick": nick, "user": i.user, "host": i.host,
                    "realname": i.realname, "rooms": rooms, "away": i.away,
                    "idle": i.idle_secs, "signon": i.signon_ms})
            }
        },
        EventBody::RoomDetails { rooms } => {
            let rooms: Vec<Value> = rooms
                .iter()
                .map(|r| json!({"room": r.name, "members": r.members, "topic": r.topic}))
                .collect();
            json!({"type": "rooms", "rooms": rooms})
        }
        EventBody::Lusers {
            users,
            unregistered,
            rooms,
            ..
        } => json!({"type": "stats", "users": users, "unregistered": unregistered, "rooms": rooms}),
        EventBody::UserModes { nick, modes, .. } => {
            json!({"type": "user_modes", "nick": nick, "modes": modes})
        }
        EventBody::Refused(r) => {
            let mut v = json!({"type": "error", "code": r.code.as_str(), "message": r.describe()});
            for subject in &r.about {
                let (field, value) = match subject {
                    Subject::Nick(n) => ("nick", Value::from(&**n)),
                    Subject::Room(n) => ("room", Value::from(&**n)),
                    Subject::Command(c) => ("command", Value::from(*c)),
                    Subject::Mode(m) => ("mode", Value::from(m.to_string())),
                    Subject::Mask(m) => ("mask", Value::from(&**m)),
                    Subject::Value(v) => ("value", Value::from(&**v)),
                };
                v[field] = value;
            }
            v
        }
        EventBody::Names { rooms, .. } => {
            let rooms: Vec<Value> = rooms
                .iter()
                .map(|r| json!({"room": r.room, "members": r.members.iter().map(member).collect::<Vec<_>>()}))
                .collect();
            json!({"type": "names", "rooms": rooms})
        }
        EventBody::UserHosts { people } => {
            let people: Vec<Value> = people
                .iter()
                .map(|u| json!({"nick": u.nick, "user": u.user, "host": u.host, "away": u.away, "oper": u.oper}))
                .collect();
            json!({"type": "userhosts", "people": people})
        }
        EventBody::IsOn { nicks } => json!({"type": "ison", "nicks": nicks}),
        EventBody::WhoWas { nick, entries } => {
            let entries: Vec<Value> = entries
                .iter()
                .map(|e| json!({"nick": e.nick, "user": e.user, "host": e.host, "realname": e.realname, "left_ms": e.left_ms}))
                .collect();
            json!({"type": "whowas", "nick": nick, "entries": entries})
        }
        EventBody::OperUp { nick } => json!({"type": "oper", "nick": nick}),
        EventBody::Killed { by, reason } => json!({"type": "killed", "by": by, "reason": reason}),
        EventBody::Wallops { from, text } => json!({"type": "wallops", "from": from, "text": text}),
        EventBody::Rehashing => json!({"type": "rehashing"}),
        EventBody::MonOnline { people } => json!({"type": "online", "people": people}),
        EventBody::MonOffline { nicks } => json!({"type": "offline", "nicks": nicks}),
        EventBody::MonList { nicks } => json!({"type": "watching", "nicks": nicks}),
        EventBody::StatusMessage {
            room,
            from,
            text,
            action,
            ..
        } => json!({"type": "message", "room": room, "from": from, "text": text,
            "action": action, "to_ops": true}),
        EventBody::RealnameChanged { nick, realname } => {
            json!({"type": "realname", "nick": nick, "realname": realname})
        }
    };
    if let Value::Object(map) = &mut v {
        map.insert("ts".into(), ev.at_ms.into());
    }
    // Writing a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &v);
    out.extend_from_slice(b"\r\n");
}

fn member(m: &crate::proto::MemberInfo) -> Value {
    json!({"nick": m.nick, "user": m.user, "host": m.host, "realname": m.realname,
        "away": m.away, "op": m.op, "voice": m.voice})
}

/// Parses a server line into its fields (for clients and tests).
pub fn parse_event(line: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str(line.trim()) {
        Ok(Value::Object(m)) if m.contains_key("type") => Some(m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::MsgId;

    fn cmd(line: &str) -> Command {
        match parse(line) {
            Input::Command(c) => c,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn code(line: &str) -> ErrorCode {
        match parse(line) {
            Input::Error(c, _) => c,
            other => panic!("{line}: expected error, got {other:?}"),
        }
    }

    #[test]
    fn seed_commands() {
        assert_eq!(
            cmd(r#"{"cmd":"login","nick":"alice"}"#),
            Command::Register {
                nick: "alice".into()
            }
        );
        assert_eq!(
            cmd(r#"{"cmd":"chat","nick":"alice","msg":"hi"}"#),
            Command::Say {
                room: None,
                text: "hi".into(),
                action: false
            }
        );
        assert_eq!(
            cmd(r#"{"cmd":"chat","msg":"hi"}"#),
            Command::Say {
                room: None,
                text: "hi".into(),
                action: false
            }
        );
        assert_eq!(cmd(r#"{"cmd":"quit"}"#), Command::Quit { reason: None });
        assert_eq!(cmd(r#"{"cmd":"exit"}"#), Command::Quit { reason: None });
        assert_eq!(parse(r#"{"cmd":"keep"}"#), Input::Keep);
    }

    #[test]
    fn bad_input_gets_codes() {
        assert_eq!(code("{not json"), ErrorCode::Malformed);
        assert_eq!(code("[1,2]"), ErrorCode::Malformed);
        assert_eq!(code(r#"{"nick":"x"}"#), ErrorCode::BadArguments);
        assert_eq!(code(r#"{"cmd":5}"#), ErrorCode::BadArguments);
        assert_eq!(code(r#"{"cmd":"dance"}"#), ErrorCode::UnknownCommand);
        assert_eq!(
            code(r#"{"cmd":"login","nick":42}"#),
            ErrorCode::BadArguments
        );
        assert_eq!(code(r#"{"cmd":"chat"}"#), ErrorCode::BadArguments);
    }

    #[test]
    fn renders_objects_with_type_and_ts() {
        let ev = Event::new(EventBody::Message {
            id: crate::proto::MsgId(7),
            seq: 1,
            room: "lobby".into(),
            from: "a".into(),
            text: "x\"y".into(),
            action: false,
        });
        let mut out = Vec::new();
        render(&ev, &mut out);
        let m = parse_event(std::str::from_utf8(&out).unwrap()).unwrap();
        assert_eq!(m["type"], "message");
        assert_eq!(m["text"], "x\"y");
        assert_eq!(m["id"], MsgId(7).to_string());
        assert_eq!(m["seq"], 1);
        assert!(m["ts"].as_u64().unwrap() > 0);
        assert!(out.ends_with(b"\r\n"));
    }
}
