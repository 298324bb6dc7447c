//! The JSON-lines protocol: one JSON object per line each way. A connection
//! switches to it when its first line is a JSON object. The format itself
//! is the serde types in [`wire`]; this module is the server's side of it:
//! [`parse`] turns a line into a command (with precise error codes for bad
//! input) and [`render`] turns an event into a `{"type": ...}` object.

pub mod wire;

use std::borrow::Cow;

use serde_json::Value;

use super::listing::{Page, PageBody};
use super::sanitize::strip_controls;
use super::{
    now_ms, AccountEvent, AccountRequest, Anchor, Command, ErrorCode, Event, EventBody,
    HistoryQuery, MsgId, Subject, Target,
};

/// What a JSON line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Command(Command),
    /// Part of a room's history (`room: None`: the current one), or of the
    /// private lines with a person (`with`).
    History {
        room: Option<String>,
        with: Option<String>,
        query: HistoryQuery,
        limit: Option<usize>,
    },
    /// Something for the accounts (register, log in with a password).
    Account(AccountRequest),
    /// `keep` / `pong`: the answer to a heartbeat ping.
    Keep,
    Help,
    Error(ErrorCode, String),
}

/// True if `line` looks like the start of a JSON session.
pub fn looks_like_json(line: &str) -> bool {
    line.trim_start().starts_with('{')
}

/// Parses one line. Never panics; every failure is an error code and message.
pub fn parse(line: &str) -> Input {
    let line = line.trim();
    // The usual case in one pass; anything else is looked at again, step by
    // step, to say what exactly is wrong with it.
    let cmd = match serde_json::from_str(line) {
        Ok(cmd) if line.starts_with('{') => Ok(cmd),
        _ => diagnose(line),
    };
    match cmd {
        Ok(wire::Cmd::Login { nick }) => match serde_json::from_str(line) {
            Ok(wire::LoginPassword {
                password: Some(password),
            }) => Input::Account(AccountRequest::Login {
                account: nick.into(),
                password: super::Password(password.into()),
            }),
            Ok(_) => input(wire::Cmd::Login { nick }),
            Err(_) => Input::Error(
                ErrorCode::BadArguments,
                "bad arguments: \"password\" must be a string".into(),
            ),
        },
        Ok(cmd) => input(cmd),
        Err((code, message)) => Input::Error(code, message),
    }
}

/// Parses a line that is not simply a command, step by step, for the error
/// that says what is wrong with it. Returns the command where the line is
/// one after all (a repeated field: the last one counts).
fn diagnose(line: &str) -> Result<wire::Cmd<'static>, (ErrorCode, String)> {
    if line.is_empty() {
        let m = "empty line: expected a JSON object";
        return Err((ErrorCode::Malformed, m.into()));
    }
    let value: Value = serde_json::from_str(line)
        .map_err(|e| (ErrorCode::Malformed, format!("malformed JSON: {e}")))?;
    let Some(obj) = value.as_object() else {
        return Err((ErrorCode::Malformed, "expected a JSON object".into()));
    };
    match obj.get("cmd") {
        None => return Err((ErrorCode::BadArguments, "missing \"cmd\"".into())),
        Some(Value::String(c)) if !wire::Cmd::is_known(c) => {
            let m = format!("unknown cmd {:?}", strip_controls(c));
            return Err((ErrorCode::UnknownCommand, m));
        }
        Some(Value::String(_)) => {}
        Some(_) => {
            let m = "\"cmd\" must be a string";
            return Err((ErrorCode::BadArguments, m.into()));
        }
    }
    serde_json::from_value(value)
        .map_err(|e| (ErrorCode::BadArguments, format!("bad arguments: {e}")))
}

/// What a well-formed command asks the hub for.
fn input(cmd: wire::Cmd<'static>) -> Input {
    use wire::Cmd as W;
    let text = |s: Cow<str>| strip_controls(&s);
    let owned = |s: Option<Cow<str>>| s.map(Cow::into_owned);
    Input::Command(match cmd {
        W::Login { nick } => Command::Register { nick: nick.into() },
        W::Register { password } => {
            return Input::Account(AccountRequest::Register {
                password: super::Password(password.into()),
            })
        }
        W::RegisterRoom { room } => Command::RegisterRoom { room: owned(room) },
        W::Chat { msg, room, action } => Command::Say {
            room: owned(room),
            text: text(msg),
            action,
        },
        W::Me { msg, room } => Command::Say {
            room: owned(room),
            text: text(msg),
            action: true,
        },
        W::Msg { to, msg, action } => Command::Private {
            to: to.into(),
            text: text(msg),
            action,
        },
        W::Join {
            room,
            key: None,
            switch,
        } => Command::Join {
            room: room.into(),
            switch,
        },
        W::Join { room, key, switch } => Command::JoinWithKey {
            room: room.into(),
            key: owned(key),
            switch,
        },
        W::Part { room, reason } => Command::Part {
            room: owned(room),
            reason: reason.map(text),
        },
        W::Who { room } => Command::Who { room: owned(room) },
        W::Rooms { after } => Command::Rooms {
            after: owned(after),
        },
        W::List => Command::List { rooms: None },
        W::History {
            room,
            with,
            limit,
            before,
            after,
        } => {
            let query = match (point(before), point(after)) {
                (Err(e), _) | (_, Err(e)) => return Input::Error(ErrorCode::BadArguments, e),
                (Ok(None), Ok(None)) => HistoryQuery::Latest(None),
                (Ok(Some(b)), Ok(None)) => HistoryQuery::Before(b),
                (Ok(None), Ok(Some(a))) => HistoryQuery::After(a),
                (Ok(Some(b)), Ok(Some(a))) => HistoryQuery::Between(a, b),
            };
            if limit == Some(0) {
                let why = "limit: a positive number of lines".to_string();
                return Input::Error(ErrorCode::BadArguments, why);
            }
            let (room, with) = (owned(room), owned(with));
            return Input::History {
                room,
                with,
                query,
                limit,
            };
        }
        W::Nick { nick } => Command::Nick { new: nick.into() },
        // An empty room is the current one (the hub fills it in).
        W::Topic { room, topic } => Command::Topic {
            room: owned(room).unwrap_or_default(),
            text: topic.map(text),
        },
        W::Kick { room, nick, reason } => Command::Kick {
            room: owned(room).unwrap_or_default(),
            nick: nick.into(),
            reason: reason.map(text).filter(|r| !r.is_empty()),
        },
        W::Mode { room, changes } => Command::RoomMode {
            room: owned(room).unwrap_or_default(),
            changes: changes.map_or_else(Vec::new, |c| super::text::mode_words(&c)),
        },
        W::Invite { nick, room } => Command::Invite {
            nick: nick.into(),
            room: owned(room).unwrap_or_default(),
        },
        W::Away { text: away } => Command::Away {
            text: away.map(text).filter(|t| !t.trim().is_empty()),
        },
        W::Whois { nick } => Command::Whois { nick: nick.into() },
        W::Notice { to, msg } => Command::Notice {
            target: match to.strip_prefix('#') {
                Some(room) => Target::Room(room.to_string()),
                None => Target::Person(to.into()),
            },
            text: text(msg),
        },
        W::Keep => return Input::Keep,
        W::Help => return Input::Help,
        W::Quit { reason } => Command::Quit {
            reason: reason.map(text),
        },
    })
}

/// A `before`/`after` of the history command as a point in history.
fn point(p: Option<wire::Point>) -> Result<Option<Anchor>, String> {
    match p {
        None => Ok(None),
        Some(wire::Point::Time(t)) => Ok(Some(Anchor::Time(t))),
        Some(wire::Point::Id(id)) => match id.parse::<MsgId>() {
            Ok(id) => Ok(Some(Anchor::Id(id))),
            Err(e) => Err(format!("before/after: {e}, or a time in ms")),
        },
    }
}

/// Renders an event as one JSON object line (nothing for what JSON clients
/// are not sent).
pub fn render(ev: &Event, out: &mut Vec<u8>) {
    if let Some(page) = Page::of(&ev.body) {
        return render_page(&page, ev.at_ms, out);
    }
    let Some(line) = stamped(ev) else {
        return;
    };
    // Serializing into a Vec cannot fail: every map key is a string.
    let _ = serde_json::to_writer(&mut *out, &line);
    out.extend_from_slice(b"\r\n");
}

/// One page of a long listing as one object, of the type the whole
/// listing has (`presence`, `who`, `rooms`). A listing in several pages
/// says so: `"more": true` on all but the last, `"continued": true` on all
/// but the first (see docs/PROTOCOL.md). `at_ms`: its timestamp (0: now).
pub fn render_page(page: &Page, at_ms: u64, out: &mut Vec<u8>) {
    use wire::Event as W;
    fn s(s: &str) -> Cow<'_, str> {
        Cow::Borrowed(s)
    }
    let event = match page.body {
        PageBody::Names {
            room,
            total,
            members,
            ..
        } => {
            let nicks = |keep: fn(&super::MemberInfo) -> bool| {
                members
                    .iter()
                    .filter(|m| keep(m))
                    .map(|m| s(&m.nick))
                    .collect()
            };
            W::Presence {
                room: s(room),
                nicks: nicks(|_| true),
                ops: Some(nicks(|m| m.op)),
                voiced: Some(nicks(|m| m.voice)),
                total: Some(total as u64),
            }
        }
        PageBody::Who {
            mask,
            room,
            members,
            ..
        } => W::Who {
            mask: s(mask),
            room: room.map(s),
            members: members.iter().map(member).collect(),
        },
        PageBody::Rooms(rooms) => {
            let rooms = rooms
                .iter()
                .map(|r| wire::RoomEntry {
                    room: s(&r.name),
                    members: r.members as u64,
                    topic: Some(r.topic.as_deref().map(s)),
                })
                .collect();
            W::Rooms {
                rooms,
                total: None,
                next: None,
            }
        }
    };
    /// A page: the line, and where it stands in the listing.
    #[derive(serde::Serialize)]
    struct PageLine<'a> {
        #[serde(flatten)]
        line: wire::Stamped<'a>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        more: bool,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        continued: bool,
    }
    let ts = if at_ms == 0 { now_ms() } else { at_ms };
    let line = PageLine {
        line: wire::Stamped { event, ts },
        more: !page.last,
        continued: !page.first,
    };
    let _ = serde_json::to_writer(&mut *out, &line);
    out.extend_from_slice(b"\r\n");
}

/// A member as `who` lists them.
fn member(m: &super::MemberInfo) -> wire::Member<'_> {
    wire::Member {
        nick: Cow::Borrowed(&m.nick),
        user: Cow::Borrowed(&m.user),
        host: Cow::Borrowed(&m.host),
        realname: Cow::Borrowed(&m.realname),
        away: m.away,
        op: m.op,
        voice: m.voice,
    }
}

/// An event and its time, as one line's object.
fn stamped(ev: &Event) -> Option<wire::Stamped<'_>> {
    Some(wire::Stamped {
        event: wire_event(&ev.body)?,
        ts: ev.at_ms,
    })
}

/// The one place an [`EventBody`] becomes a wire event, borrowing its
/// strings. `None`: JSON clients are not sent it.
fn wire_event(body: &EventBody) -> Option<wire::Event<'_>> {
    use wire::Event as W;
    fn s(s: &str) -> Cow<'_, str> {
        Cow::Borrowed(s)
    }
    let count = |n: &usize| *n as u64;
    Some(match body {
        EventBody::Welcome { server, online } => W::Welcome {
            server: s(server),
            online: count(online),
        },
        EventBody::Registered { nick, online } => W::Registered {
            nick: s(nick),
            online: count(online),
        },
        EventBody::Joined {
            room,
            nick,
            members,
        } => W::Joined {
            room: s(room),
            nick: s(nick),
            members: count(members),
        },
        EventBody::Parted {
            room,
            nick,
            members,
            reason,
        } => W::Left {
            room: s(room),
            nick: s(nick),
            members: count(members),
            reason: reason.as_deref().map(s),
        },
        EventBody::Quit { nick, reason } => W::Quit {
            nick: s(nick),
            reason: s(reason),
        },
        EventBody::Message {
            id,
            seq,
            room,
            from,
            text,
            action,
        } => W::Message {
            id: id.to_string().into(),
            seq: *seq,
            room: s(room),
            from: s(from),
            text: s(text),
            action: *action,
        },
        EventBody::Private {
            id,
            from,
            to,
            text,
            action,
        } => W::Private {
            id: id.to_string().into(),
            from: s(from),
            to: s(to),
            text: s(text),
            action: *action,
        },
        EventBody::NickChanged { old, new } => W::Nick {
            old: s(old),
            new: s(new),
        },
        // Long listings are written as pages (`render_page`).
        EventBody::Members { .. } | EventBody::WhoReply { .. } | EventBody::RoomDetails { .. } => {
            return None
        }
        EventBody::RoomList { rooms, next, total } => W::Rooms {
            rooms: rooms
                .iter()
                .map(|(room, members)| wire::RoomEntry {
                    room: s(room),
                    members: count(members),
                    topic: None,
                })
                .collect(),
            total: Some(count(total)),
            next: Some(next.as_deref().map(s)),
        },
        EventBody::Help => W::Help {
            commands: wire::usages(),
        },
        EventBody::Info { text } => W::Info { text: s(text) },
        // Answers to IRC-only commands, and what only IRC clients are sent
        // (WALLOPS needs user mode +w, lines for operators need STATUSMSG).
        EventBody::Names { .. }
        | EventBody::HistoryTargets { .. }
        | EventBody::ReadMarkers { .. }
        | EventBody::UserHosts { .. }
        | EventBody::IsOn { .. }
        | EventBody::WhoWas { .. }
        | EventBody::OperUp { .. }
        | EventBody::Killed { .. }
        | EventBody::Wallops { .. }
        | EventBody::Rehashing
        | EventBody::MonOnline { .. }
        | EventBody::MonOffline { .. }
        | EventBody::MonList { .. }
        | EventBody::RealnameChanged { .. }
        | EventBody::InviteList { .. }
        | EventBody::StatusMessage { .. }
        | EventBody::TagMsg { .. } => return None,
        EventBody::Refused(r) => {
            let (mut nick, mut room, mut command, mut mode, mut mask) = Default::default();
            for subject in &r.about {
                match subject {
                    Subject::Nick(n) => nick = Some(s(n)),
                    Subject::Room(n) => room = Some(s(n)),
                    Subject::Command(c) => command = Some(s(c)),
                    Subject::Mode(m) => mode = Some(m.to_string().into()),
                    Subject::Mask(m) => mask = Some(s(m)),
                    Subject::Value(_) => {} // told in the message
                }
            }
            W::Error {
                code: s(r.code.as_str()),
                message: r.describe().into(),
                nick,
                room,
                command,
                mode,
                mask,
            }
        }
        EventBody::History {
            room,
            with,
            facts,
            more,
            asked,
        } => W::History {
            // A private history is named by the person, never by its key.
            room: s(with.as_deref().unwrap_or(room)),
            with: with.as_deref().map(s),
            messages: facts
                .iter()
                .filter_map(|f| f.event())
                .filter_map(|e| stamped(&e).map(owned_line))
                .collect(),
            more: *more,
            replay: !asked,
        },
        EventBody::Account(a) => match a {
            AccountEvent::LoggedIn {
                account,
                nick,
                created,
            } => W::LoggedIn {
                account: s(account),
                nick: nick.as_deref().map(s),
                created: *created,
            },
            AccountEvent::NickProtected { nick, grace_secs } => W::NickProtected {
                nick: s(nick),
                grace: *grace_secs,
            },
            AccountEvent::Renamed { old, new } => W::Renamed {
                old: s(old),
                new: s(new),
            },
            AccountEvent::RoomRegistered { room, founder } => W::RoomRegistered {
                room: s(room),
                founder: s(founder),
            },
            AccountEvent::Challenge { .. } | AccountEvent::Changed { .. } => return None,
        },
        EventBody::Ping { token } => W::Ping { token: *token },
        EventBody::Shutdown { reason } => W::Shutdown { reason: s(reason) },
        EventBody::Notice {
            id,
            from,
            room,
            to,
            text,
        } => W::Notice {
            id: id.to_string().into(),
            from: s(from),
            room: room.as_deref().map(s),
            to: to.as_deref().map(s),
            text: s(text),
        },
        EventBody::TopicChanged {
            room, nick, topic, ..
        } => W::Topic {
            room: s(room),
            topic: topic.as_deref().map(s),
            by: Some(s(nick)),
            set_at: None,
            changed: true,
        },
        EventBody::TopicInfo { room, topic } => W::Topic {
            room: s(room),
            topic: topic.as_ref().map(|t| s(&t.text)),
            by: topic.as_ref().map(|t| s(&t.set_by)),
            set_at: topic.as_ref().map(|t| t.set_at_ms),
            changed: false,
        },
        EventBody::Kicked {
            room,
            nick,
            target,
            reason,
            members,
        } => W::Kicked {
            room: s(room),
            by: s(nick),
            nick: s(target),
            reason: reason.as_deref().map(s),
            members: count(members),
        },
        EventBody::ModeChanged {
            room,
            nick,
            changes,
        } => W::Mode {
            room: s(room),
            by: s(nick),
            changes: super::text::mode_text(changes).into(),
        },
        EventBody::RoomModes {
            room,
            modes,
            created_ms,
        } => W::Modes {
            room: s(room),
            modes: super::text::mode_text(modes).into(),
            created: *created_ms,
        },
        EventBody::BanList { room, bans, .. } => W::Bans {
            room: s(room),
            bans: bans
                .iter()
                .map(|b| wire::Ban {
                    mask: s(&b.mask),
                    by: s(&b.set_by),
                    at: b.set_at_ms,
                })
                .collect(),
        },
        EventBody::Away { nick, text } => W::Away {
            nick: s(nick),
            text: text.as_deref().map(s),
        },
        EventBody::AwayReply { nick, text } => W::Away {
            nick: s(nick),
            text: Some(s(text)),
        },
        EventBody::AwayStatus { away } => W::AwayStatus { away: *away },
        EventBody::Invited { room, nick, target } => W::Invited {
            room: s(room),
            by: s(nick),
            nick: s(target),
        },
        EventBody::Whois { nick, info: None } => {
            return wire_event(&EventBody::Refused(
                super::Refusal::new(ErrorCode::NoSuchNick).nick(nick),
            ))
            .map(owned_event)
        }
        EventBody::Whois {
            nick,
            info: Some(i),
        } => W::Whois {
            nick: s(nick),
            user: s(&i.user),
            host: s(&i.host),
            realname: s(&i.realname),
            rooms: i.rooms.iter().map(|(r, ..)| s(r)).collect(),
            away: i.away.as_deref().map(s),
            idle: i.idle_secs,
            signon: i.signon_ms,
            account: i.account.as_deref().map(s),
        },
        EventBody::Lusers {
            users,
            unregistered,
            rooms,
            ..
        } => W::Stats {
            users: count(users),
            unregistered: count(unregistered),
            rooms: count(rooms),
        },
        EventBody::UserModes { nick, modes, .. } => W::UserModes {
            nick: s(nick),
            modes: s(modes),
        },
    })
}

/// A line that owns its strings (history is built from events made on the spot).
fn owned_line(line: wire::Stamped<'_>) -> wire::Stamped<'static> {
    wire::Stamped {
        event: owned_event(line.event),
        ts: line.ts,
    }
}

/// An event that owns its strings, through its own serde form.
fn owned_event(event: wire::Event<'_>) -> wire::Event<'static> {
    serde_json::to_value(&event)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_else(|| wire::Event::Info {
            text: "(unrepresentable event)".into(),
        })
}

#[cfg(test)]
mod tests;
