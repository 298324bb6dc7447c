//! natter's JSON-lines protocol, client side (docs/PROTOCOL.md, "JSON
//! lines"): `{"cmd":…}` objects out, `{"type":…}` events in, both as the
//! server's own wire types ([`wire::Cmd`], [`wire::Event`]). Skips the text
//! banner the server sends before it knows we speak JSON, answers heartbeat
//! pings with `keep`, turns a refused nickname before login into a
//! `NeedNick` (or, asked to, tries the nickname with `_` appended), joins
//! rooms without leaving the others (`"switch":false`), and after a
//! reconnect goes back to the rooms it was in — under the same nickname:
//! for a while after the loss, our nickname refused as taken is taken for
//! our old connection still holding it, and the login is tried again.

use std::time::{Duration, Instant};

use super::{same_nick, Output, Protocol};
use crate::client::command::Request;
use crate::client::event::{Event, EventKind};
use crate::client::session::same_room;
use crate::proto::json::wire::{self, Cmd};

/// Error codes that refuse a `join`.
const JOIN_ERRORS: &[&str] = &[
    "room_invalid",
    "banned",
    "bad_key",
    "room_full",
    "invite_only",
    "too_many_rooms",
    "room_limit",
];

/// Client state for one natter server, kept across reconnects.
#[derive(Debug, Default)]
pub struct JsonProtocol {
    /// The nickname to log in with: given, accepted, or last asked for.
    nick: Option<String>,
    /// A taken nickname is retried with `_` appended instead of asking.
    fallback: bool,
    /// After a lost connection, how long a refusal of our own nickname as
    /// taken is taken for our old connection still holding it (a server,
    /// or a dead node of a cluster, that has not noticed the loss yet):
    /// the connection is dropped and made again instead of giving it up.
    reclaim: Duration,
    /// Until when that holds, from the first connection after the loss.
    reclaim_until: Option<Instant>,
    /// The password of the nickname's account: logging in sends it (until
    /// the server refuses it).
    password: Option<String>,
    /// Registered on this connection.
    registered: bool,
    /// The rooms we are in (or want to be in, from `--join`), oldest first.
    rooms: Vec<String>,
    /// The room the server puts us in on logging in, once seen.
    default_room: Option<String>,
    /// Joins sent after logging in and not yet answered.
    joining: Vec<String>,
    /// The last event was `registered`: a join of ours next is the
    /// server's own, into its default room.
    just_registered: bool,
}

impl JsonProtocol {
    /// `nick`: log in with it (else ask); `rooms`: go there after login.
    pub fn new(nick: Option<String>, rooms: Vec<String>) -> JsonProtocol {
        JsonProtocol {
            nick,
            rooms,
            ..JsonProtocol::default()
        }
    }

    /// On a taken nickname before login, try it with `_` appended.
    pub fn with_nick_fallback(mut self, on: bool) -> JsonProtocol {
        self.fallback = on;
        self
    }

    /// After a lost connection, try to get our nickname back for `window`
    /// (reconnecting) before giving it up as taken. Zero: no such tries.
    pub fn with_nick_reclaim(mut self, window: Duration) -> JsonProtocol {
        self.reclaim = window;
        self
    }

    /// Log in to the nickname's account with `password` (`None`: no account).
    pub fn with_password(mut self, password: Option<String>) -> JsonProtocol {
        self.password = password;
        self
    }

    fn send(out: &mut Output, cmd: Cmd) {
        out.send(cmd.to_json());
    }

    fn login(&mut self, out: &mut Output) {
        match (&self.nick, &self.password) {
            // `login` with the account's password (docs/PROTOCOL.md, Accounts).
            (Some(n), Some(pw)) => {
                let login = serde_json::json!({"cmd": "login", "nick": n, "password": pw});
                out.send(login.to_string());
            }
            (Some(n), None) => Self::send(out, Cmd::Login { nick: n.into() }),
            (None, _) => out.show(EventKind::NeedNick { refused: None }),
        }
    }

    fn join(out: &mut Output, room: &str) {
        Self::send(
            out,
            Cmd::Join {
                room: room.into(),
                key: None,
                switch: false,
            },
        );
    }

    /// Logged in: go back to the rooms we were in (the server has put us
    /// in its default room already) and leave the default room if we had.
    fn rejoin(&mut self, out: &mut Output) {
        let default = self.default_room.clone();
        for room in self.rooms.clone() {
            if default.as_deref().is_some_and(|d| same_room(d, &room)) {
                continue;
            }
            self.joining.push(room.clone());
            Self::join(out, &room);
        }
        if let Some(d) = default {
            if !self.rooms.iter().any(|r| same_room(r, &d)) {
                let part = Cmd::Part {
                    room: Some(d.into()),
                    reason: None,
                };
                Self::send(out, part);
            }
        }
    }

    fn forget(&mut self, room: &str) {
        self.rooms.retain(|r| !same_room(r, room));
        self.joining.retain(|r| !same_room(r, room));
    }

    fn event(&mut self, ev: wire::Event<'static>, out: &mut Output) -> Option<EventKind> {
        use wire::Event as W;
        let just_registered = std::mem::take(&mut self.just_registered);
        let opt = |s: Option<wire::Str<'static>>| s.map(String::from);
        Some(match ev {
            W::Welcome { server, online } => {
                EventKind::Info(format!("Welcome to {server} ({online} online)"))
            }
            W::Registered { nick, online } => {
                let nick = String::from(nick);
                self.registered = true;
                self.reclaim_until = None;
                self.nick = Some(nick.clone());
                self.joining.clear();
                self.rejoin(out);
                self.just_registered = true;
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
                    self.joining.retain(|r| !same_room(r, &room));
                    if just_registered {
                        self.default_room = Some(room.clone());
                    }
                    if !self.rooms.iter().any(|r| same_room(r, &room)) {
                        self.rooms.push(room.clone());
                    }
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
                if self.is_me(&nick) {
                    self.forget(&room);
                }
                EventKind::Left {
                    room: room.into(),
                    nick: nick.into(),
                    members: Some(members),
                    reason: opt(reason),
                }
            }
            W::Kicked {
                room,
                by,
                nick,
                reason,
                members,
            } => {
                if self.is_me(&nick) {
                    self.forget(&room);
                }
                EventKind::Kicked {
                    room: room.into(),
                    by: by.into(),
                    nick: nick.into(),
                    reason: opt(reason),
                    members: Some(members),
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
            W::Notice {
                from,
                room,
                to,
                text,
                ..
            } => EventKind::Notice {
                from: from.into(),
                room: opt(room),
                to: opt(to),
                text: text.into(),
            },
            W::Nick { old, new } => {
                let (old, new) = (String::from(old), String::from(new));
                if self.is_me(&old) {
                    self.nick = Some(new.clone());
                }
                EventKind::Nick { old, new }
            }
            W::Presence {
                room,
                nicks,
                ops,
                voiced,
                ..
            } => {
                let list = |v: Option<Vec<wire::Str<'static>>>| {
                    v.unwrap_or_default()
                        .into_iter()
                        .map(String::from)
                        .collect()
                };
                EventKind::Presence {
                    room: room.into(),
                    nicks: nicks.into_iter().map(String::from).collect(),
                    ops: list(ops),
                    voiced: list(voiced),
                }
            }
            W::Topic {
                room,
                topic,
                by,
                changed,
                ..
            } => EventKind::Topic {
                room: room.into(),
                topic: opt(topic),
                by: opt(by),
                changed,
            },
            W::Mode { room, by, changes } => EventKind::Mode {
                room: room.into(),
                by: by.into(),
                changes: changes.into(),
            },
            W::LoggedIn { account, .. } => EventKind::Info(format!("logged in as {account}")),
            W::NickProtected { nick, grace } => EventKind::Info(match grace {
                0 => format!("{nick} is registered: /login {nick} PASSWORD"),
                g => format!("{nick} is registered: log in within {g}s or be renamed"),
            }),
            W::Renamed { old, new } => {
                EventKind::Info(format!("you were renamed from {old} to {new}"))
            }
            W::RoomRegistered { room, founder } => {
                EventKind::Info(format!("#{room} is registered to {founder}"))
            }
            W::Modes { room, modes, .. } => EventKind::Info(match &*modes {
                "" => format!("{} has no modes set", show(&room)),
                m => format!("modes of {}: {m}", show(&room)),
            }),
            W::Bans { room, bans } => EventKind::Info(if bans.is_empty() {
                format!("no bans in {}", show(&room))
            } else {
                let list: Vec<String> = bans
                    .iter()
                    .map(|b| format!("{} (by {})", b.mask, b.by))
                    .collect();
                format!("bans in {}: {}", show(&room), list.join(", "))
            }),
            W::Away { nick, text } => EventKind::Away {
                nick: nick.into(),
                text: opt(text),
            },
            W::AwayStatus { away } => EventKind::AwayStatus { away },
            W::Invited { room, by, nick } => EventKind::Invited {
                room: room.into(),
                by: by.into(),
                nick: nick.into(),
            },
            W::History {
                room,
                messages,
                more,
                ..
            } => {
                let mut lines = Vec::new();
                for m in messages {
                    let at = i64::try_from(m.ts).ok();
                    // A history line never drives the protocol (no replies).
                    if let Some(kind) = self.past(m.event) {
                        lines.push(Event::at(at, kind));
                    }
                }
                EventKind::History {
                    room: room.into(),
                    lines,
                    more,
                }
            }
            W::Rooms { rooms, .. } => EventKind::Rooms(
                rooms
                    .into_iter()
                    .map(|r| (r.room.into(), Some(r.members)))
                    .collect(),
            ),
            W::Who { room, members, .. } => {
                let list: Vec<String> = members
                    .iter()
                    .map(|m| {
                        let p = if m.op {
                            "@"
                        } else if m.voice {
                            "+"
                        } else {
                            ""
                        };
                        let away = if m.away { " (away)" } else { "" };
                        format!("{p}{} ({}@{}){away}", m.nick, m.user, m.host)
                    })
                    .collect();
                let r = room.map_or_else(String::new, |r| format!(" in {}", show(&r)));
                EventKind::Info(format!("who{r}: {}", list.join(", ")))
            }
            W::Whois {
                nick,
                user,
                host,
                realname,
                rooms,
                away,
                idle,
                ..
            } => {
                let rooms: Vec<String> = rooms.iter().map(|r| show(r)).collect();
                let away = away.map_or_else(String::new, |a| format!("; away: {a}"));
                EventKind::Info(format!(
                    "{nick} is {user}@{host} ({realname}); in {}; idle {idle}s{away}",
                    if rooms.is_empty() {
                        "no rooms".to_string()
                    } else {
                        rooms.join(" ")
                    }
                ))
            }
            W::Stats {
                users,
                unregistered,
                rooms,
            } => EventKind::Info(format!(
                "{users} people online, {unregistered} connecting, {rooms} rooms"
            )),
            W::UserModes { nick, modes } => {
                EventKind::Info(format!("your modes ({nick}): {modes}"))
            }
            W::Help { commands } => EventKind::Info(format!(
                "server commands: {}",
                commands
                    .iter()
                    .map(|c| &*c.cmd)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            W::Info { text } => EventKind::Info(text.into()),
            W::Error {
                code,
                message,
                room,
                ..
            } => {
                if JOIN_ERRORS.contains(&&*code) {
                    match room {
                        // The rooms we could not get (back) into.
                        Some(r) => self.forget(&r),
                        None => self.joining.clear(),
                    }
                }
                let nick_refused = code == "nick_in_use" || code == "nick_invalid";
                let login_refused = matches!(&*code, "auth_failed" | "throttled");
                if !self.registered && login_refused && self.password.is_some() {
                    // Not tried again (a reconnect would only count as
                    // another failure): a person may pick a nickname.
                    self.password = None;
                    out.show(EventKind::LoginFailed {
                        reason: message.into(),
                    });
                    EventKind::NeedNick { refused: None }
                } else if !self.registered
                    && code == "nick_in_use"
                    && self.reclaim_until.is_some_and(|t| Instant::now() < t)
                {
                    out.reconnect = Some(format!("{message} (held by our lost connection?)"));
                    EventKind::Info(format!(
                        "{message}; it was ours before the connection was lost: trying again"
                    ))
                } else if !self.registered && code == "store_failed" && self.nick.is_some() {
                    // The server cannot log anyone in now (a cluster node
                    // cut off from NATS): another one may.
                    out.reconnect = Some(format!("cannot log in here now: {message}"));
                    EventKind::Info(format!("{message}; reconnecting"))
                } else if !self.registered && nick_refused {
                    match (&self.nick, self.fallback && code == "nick_in_use") {
                        (Some(n), true) => {
                            let next = format!("{n}_");
                            self.nick = Some(next.clone());
                            Self::send(
                                out,
                                Cmd::Login {
                                    nick: next.clone().into(),
                                },
                            );
                            EventKind::Info(format!("{message}; trying {next}"))
                        }
                        _ => EventKind::NeedNick {
                            refused: Some(message.into()),
                        },
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
        })
    }

    /// An event from a room's history, as a line to show.
    fn past(&mut self, ev: wire::Event<'static>) -> Option<EventKind> {
        use wire::Event as W;
        match ev {
            W::History { .. } | W::Ping { .. } | W::Registered { .. } | W::Error { .. } => None,
            // Read as a fresh protocol would, so nothing about us changes.
            ev => JsonProtocol::default().event(ev, &mut Output::default()),
        }
    }

    fn is_me(&self, nick: &str) -> bool {
        self.registered && self.nick.as_deref().is_some_and(|me| same_nick(me, nick))
    }
}

/// `#room`, as people write it.
fn show(room: &str) -> String {
    crate::client::format::show_room(room)
}

impl Protocol for JsonProtocol {
    fn name(&self) -> &'static str {
        "JSON"
    }

    fn connected(&mut self, out: &mut Output) {
        if self.registered && !self.reclaim.is_zero() {
            self.reclaim_until = Instant::now().checked_add(self.reclaim);
        }
        self.registered = false;
        self.joining.clear();
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
        fn room(r: &Option<String>) -> Option<wire::Str<'_>> {
            r.as_deref().map(Into::into)
        }
        let cmd = match req {
            Request::Login(nick) => {
                self.nick = Some(nick.clone());
                Cmd::Login { nick: nick.into() }
            }
            Request::Say {
                room: r,
                text,
                action,
            } => Cmd::Chat {
                msg: text.into(),
                room: room(r),
                action: *action,
            },
            Request::Private { to, text, action } => Cmd::Msg {
                to: to.into(),
                msg: text.into(),
                action: *action,
            },
            Request::Notice { to, text } => Cmd::Notice {
                to: to.into(),
                msg: text.into(),
            },
            Request::Join(r) => {
                if let Some(known) = self.rooms.iter().find(|k| same_room(k, r)) {
                    // Already in it: only make it the current room.
                    out.show(EventKind::Focus {
                        room: known.clone(),
                    });
                    return;
                }
                return Self::join(out, r);
            }
            Request::Part { room: r, reason } => Cmd::Part {
                room: room(r),
                reason: reason.as_deref().map(Into::into),
            },
            Request::Who(r) => Cmd::Who { room: room(r) },
            Request::Rooms => Cmd::Rooms { after: None },
            Request::Nick(nick) => Cmd::Nick { nick: nick.into() },
            Request::Topic { room: r, text } => Cmd::Topic {
                room: room(r),
                topic: text.as_deref().map(Into::into),
            },
            Request::Kick {
                room: r,
                nick,
                reason,
            } => Cmd::Kick {
                room: room(r),
                nick: nick.into(),
                reason: reason.as_deref().map(Into::into),
            },
            Request::Mode { room: r, changes } => Cmd::Mode {
                room: room(r),
                changes: changes.as_deref().map(Into::into),
            },
            Request::Invite { nick, room: r } => Cmd::Invite {
                nick: nick.into(),
                room: room(r),
            },
            Request::Away(text) => Cmd::Away {
                text: text.as_deref().map(Into::into),
            },
            Request::Whois(nick) => Cmd::Whois { nick: nick.into() },
            Request::Quit(reason) => Cmd::Quit {
                reason: reason.as_deref().map(Into::into),
            },
        };
        Self::send(out, cmd);
    }

    fn ready(&self) -> bool {
        self.registered && self.joining.is_empty()
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

    fn logged_in(nick: &str) -> JsonProtocol {
        let mut p = JsonProtocol::new(Some(nick.into()), vec![]);
        p.connected(&mut Output::default());
        feed(
            &mut p,
            &format!(r#"{{"type":"registered","nick":"{nick}","online":1,"ts":1}}"#),
        );
        feed(
            &mut p,
            &format!(r#"{{"type":"joined","room":"lobby","nick":"{nick}","members":1,"ts":1}}"#),
        );
        p
    }

    #[test]
    fn a_password_logs_in_to_the_account_until_it_is_refused() {
        let mut p = JsonProtocol::new(Some("alice".into()), vec![])
            .with_password(Some("pw \"quoted\"".into()));
        let mut out = Output::default();
        p.connected(&mut out);
        let sent: serde_json::Value = serde_json::from_str(&out.lines[0]).unwrap();
        assert_eq!(
            sent,
            serde_json::json!({"cmd": "login", "nick": "alice", "password": "pw \"quoted\""})
        );
        let o = feed(
            &mut p,
            r#"{"type":"error","code":"auth_failed","message":"wrong account or password","ts":1}"#,
        );
        assert_eq!(
            o.events.iter().map(|e| e.kind.clone()).collect::<Vec<_>>(),
            [
                EventKind::LoginFailed {
                    reason: "wrong account or password".into()
                },
                EventKind::NeedNick { refused: None }
            ]
        );
        assert!(o.lines.is_empty());
        // Forgotten: the next login (a reconnect) goes without it.
        let mut out = Output::default();
        p.connected(&mut out);
        assert_eq!(out.lines, [r#"{"cmd":"login","nick":"alice"}"#]);
    }

    #[test]
    fn login_ping_and_events() {
        let mut p = JsonProtocol::new(Some("alice".into()), vec![]);
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
    fn every_room_event_is_shown() {
        let mut p = logged_in("alice");
        let cases = [
            (
                r#"{"type":"topic","room":"rust","topic":"crabs","by":"bob","changed":true,"ts":1}"#,
                EventKind::Topic {
                    room: "rust".into(),
                    topic: Some("crabs".into()),
                    by: Some("bob".into()),
                    changed: true,
                },
            ),
            (
                r#"{"type":"kicked","room":"rust","by":"bob","nick":"carol","reason":null,"members":2,"ts":1}"#,
                EventKind::Kicked {
                    room: "rust".into(),
                    by: "bob".into(),
                    nick: "carol".into(),
                    reason: None,
                    members: Some(2),
                },
            ),
            (
                r#"{"type":"mode","room":"rust","by":"bob","changes":"+o alice","ts":1}"#,
                EventKind::Mode {
                    room: "rust".into(),
                    by: "bob".into(),
                    changes: "+o alice".into(),
                },
            ),
            (
                r#"{"type":"away","nick":"bob","text":"lunch","ts":1}"#,
                EventKind::Away {
                    nick: "bob".into(),
                    text: Some("lunch".into()),
                },
            ),
            (
                r#"{"type":"away_status","away":true,"ts":1}"#,
                EventKind::AwayStatus { away: true },
            ),
            (
                r#"{"type":"invited","room":"vip","by":"bob","nick":"alice","ts":1}"#,
                EventKind::Invited {
                    room: "vip".into(),
                    by: "bob".into(),
                    nick: "alice".into(),
                },
            ),
            (
                r#"{"type":"notice","id":"x","from":"bob","room":null,"to":"alice","text":"psst","ts":1}"#,
                EventKind::Notice {
                    from: "bob".into(),
                    room: None,
                    to: Some("alice".into()),
                    text: "psst".into(),
                },
            ),
            (
                r#"{"type":"presence","room":"rust","nicks":["alice","bob"],"ops":["bob"],"voiced":[],"ts":1}"#,
                EventKind::Presence {
                    room: "rust".into(),
                    nicks: vec!["alice".into(), "bob".into()],
                    ops: vec!["bob".into()],
                    voiced: vec![],
                },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(kinds(&feed(&mut p, line)), [want], "{line}");
        }
        // Answers to questions read as information.
        for line in [
            r#"{"type":"modes","room":"rust","modes":"+nt","created":1,"ts":1}"#,
            r#"{"type":"whois","nick":"bob","user":"~b","host":"h","realname":"Bob","rooms":["rust"],"away":null,"idle":3,"signon":1,"ts":1}"#,
            r#"{"type":"bans","room":"rust","bans":[],"ts":1}"#,
            r#"{"type":"stats","users":2,"unregistered":0,"rooms":1,"ts":1}"#,
        ] {
            assert!(
                matches!(&kinds(&feed(&mut p, line))[..], [EventKind::Info(_)]),
                "{line}"
            );
        }
    }

    #[test]
    fn history_lines_keep_their_own_times() {
        let mut p = logged_in("alice");
        let o = feed(
            &mut p,
            r#"{"type":"history","room":"lobby","messages":[{"type":"message","id":"a","seq":1,"room":"lobby","from":"bob","text":"earlier","action":false,"ts":100},{"type":"joined","room":"lobby","nick":"alice","members":1,"ts":200}],"more":true,"replay":true,"ts":300}"#,
        );
        let [Event {
            kind: EventKind::History { room, lines, more },
            at_ms: 300,
        }] = &o.events[..]
        else {
            panic!("{o:?}")
        };
        assert_eq!((room.as_str(), *more), ("lobby", true));
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].at_ms, 100);
        assert!(matches!(&lines[0].kind, EventKind::Message { text, .. } if text == "earlier"));
        assert_eq!(lines[1].at_ms, 200);
        assert!(o.lines.is_empty(), "history drives nothing");
    }

    #[test]
    fn kicked_and_parted_rooms_are_left() {
        let mut p = logged_in("alice");
        let mut out = Output::default();
        p.request(&Request::Join("rust".into()), &mut out);
        assert_eq!(
            out.lines,
            [r#"{"cmd":"join","room":"rust","switch":false}"#]
        );
        feed(
            &mut p,
            r#"{"type":"joined","room":"rust","nick":"alice","members":2,"ts":1}"#,
        );
        // Joining a room we are in only focuses it.
        let mut out = Output::default();
        p.request(&Request::Join("#Rust".into()), &mut out);
        assert!(out.lines.is_empty());
        assert_eq!(
            kinds(&out),
            [EventKind::Focus {
                room: "rust".into()
            }]
        );
        feed(
            &mut p,
            r#"{"type":"kicked","room":"rust","by":"bob","nick":"alice","reason":"out","members":1,"ts":1}"#,
        );
        assert_eq!(p.rooms, ["lobby"]);
        // Not in it any more: a join is sent again.
        let mut out = Output::default();
        p.request(&Request::Join("rust".into()), &mut out);
        assert_eq!(out.lines.len(), 1);
    }

    #[test]
    fn refused_nick_before_login_asks_again_after_login_is_an_error() {
        let mut p = JsonProtocol::new(None, vec![]);
        let mut out = Output::default();
        p.connected(&mut out);
        assert_eq!(kinds(&out), [EventKind::NeedNick { refused: None }]);
        let err = r#"{"type":"error","code":"nick_in_use","message":"taken","nick":"bob","ts":1}"#;
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
    fn nick_fallback_appends_an_underscore() {
        let mut p = JsonProtocol::new(Some("bob".into()), vec![]).with_nick_fallback(true);
        p.connected(&mut Output::default());
        let err = r#"{"type":"error","code":"nick_in_use","message":"the nickname bob is taken","nick":"bob","ts":1}"#;
        let o = feed(&mut p, err);
        assert_eq!(o.lines, [r#"{"cmd":"login","nick":"bob_"}"#]);
        assert!(matches!(&kinds(&o)[0], EventKind::Info(t) if t.contains("trying bob_")));
        // An invalid nickname cannot be fixed that way.
        let bad = r#"{"type":"error","code":"nick_invalid","message":"bad","ts":1}"#;
        assert!(matches!(
            kinds(&feed(&mut p, bad))[0],
            EventKind::NeedNick { .. }
        ));
    }

    #[test]
    fn after_a_lost_connection_our_own_nick_taken_means_reconnect_for_a_while() {
        let taken = r#"{"type":"error","code":"nick_in_use","message":"the nickname bob is taken","nick":"bob","ts":1}"#;
        let mut p = JsonProtocol::new(Some("bob".into()), vec![])
            .with_nick_reclaim(Duration::from_secs(3600));
        // Never logged in yet: taken is taken.
        p.connected(&mut Output::default());
        let o = feed(&mut p, taken);
        assert_eq!(o.reconnect, None);
        assert!(matches!(kinds(&o)[0], EventKind::NeedNick { .. }));
        p.request(&Request::Login("bob".into()), &mut Output::default());
        feed(
            &mut p,
            r#"{"type":"registered","nick":"bob","online":1,"ts":1}"#,
        );
        // Lost; the next server still has our old connection's claim.
        p.connected(&mut Output::default());
        let o = feed(&mut p, taken);
        assert!(o.reconnect.is_some(), "{o:?}");
        assert!(matches!(&kinds(&o)[0], EventKind::Info(t) if t.contains("trying again")));
        // And again on the connection after (the window runs from the loss).
        p.connected(&mut Output::default());
        assert!(feed(&mut p, taken).reconnect.is_some());
        // Without the window, the refusal is final at once.
        let mut q = logged_in("bob");
        q.connected(&mut Output::default());
        let o = feed(&mut q, taken);
        assert_eq!(o.reconnect, None);
        assert!(matches!(kinds(&o)[0], EventKind::NeedNick { .. }));
    }

    #[test]
    fn a_server_that_cannot_log_anyone_in_now_is_left_for_another() {
        let mut p = JsonProtocol::new(Some("bob".into()), vec![]);
        p.connected(&mut Output::default());
        let err = r#"{"type":"error","code":"store_failed","message":"this node is cut off","nick":"bob","ts":1}"#;
        let o = feed(&mut p, err);
        assert!(o.reconnect.is_some(), "{o:?}");
        // Once logged in, the same error (a line not stored) is only shown.
        let mut q = logged_in("bob");
        let o = feed(&mut q, err);
        assert_eq!(o.reconnect, None);
        assert!(matches!(kinds(&o)[0], EventKind::Error { .. }));
    }

    #[test]
    fn reconnect_logs_in_again_and_rejoins_every_room() {
        let mut p = logged_in("alice");
        feed(
            &mut p,
            r#"{"type":"nick","old":"alice","new":"alicia","ts":1}"#,
        );
        for room in ["rust", "go"] {
            feed(
                &mut p,
                &format!(
                    r#"{{"type":"joined","room":"{room}","nick":"alicia","members":1,"ts":1}}"#
                ),
            );
        }
        // The server went away; a new connection:
        let mut out = Output::default();
        p.connected(&mut out);
        assert_eq!(out.lines, [r#"{"cmd":"login","nick":"alicia"}"#]);
        let o = feed(
            &mut p,
            r#"{"type":"registered","nick":"alicia","online":1,"ts":1}"#,
        );
        // The default room comes by itself; the others are asked for.
        assert_eq!(
            o.lines,
            [
                r#"{"cmd":"join","room":"rust","switch":false}"#,
                r#"{"cmd":"join","room":"go","switch":false}"#
            ]
        );
        assert!(!p.ready(), "not before it is back in its rooms");
        feed(
            &mut p,
            r#"{"type":"joined","room":"lobby","nick":"alicia","members":1,"ts":1}"#,
        );
        feed(
            &mut p,
            r#"{"type":"joined","room":"rust","nick":"alicia","members":1,"ts":1}"#,
        );
        assert!(!p.ready());
        // A room that refuses us is not waited for, nor rejoined again.
        feed(
            &mut p,
            r#"{"type":"error","code":"invite_only","message":"invite only","room":"go","ts":1}"#,
        );
        assert!(p.ready());
        assert_eq!(p.rooms, ["lobby", "rust"]);
    }

    #[test]
    fn a_parted_default_room_is_left_again_after_a_reconnect() {
        let mut p = logged_in("alice");
        feed(
            &mut p,
            r#"{"type":"joined","room":"rust","nick":"alice","members":1,"ts":1}"#,
        );
        feed(
            &mut p,
            r#"{"type":"left","room":"lobby","nick":"alice","members":0,"reason":null,"ts":1}"#,
        );
        p.connected(&mut Output::default());
        let o = feed(
            &mut p,
            r#"{"type":"registered","nick":"alice","online":1,"ts":1}"#,
        );
        assert_eq!(
            o.lines,
            [
                r#"{"cmd":"join","room":"rust","switch":false}"#,
                r#"{"cmd":"part","room":"lobby"}"#
            ]
        );
    }

    #[test]
    fn requests_encode_as_documented() {
        let mut p = JsonProtocol::new(Some("a".into()), vec![]);
        let say = |room: Option<&str>, text: &str, action| Request::Say {
            room: room.map(Into::into),
            text: text.into(),
            action,
        };
        let cases = [
            (say(None, "hi", false), r#"{"cmd":"chat","msg":"hi"}"#),
            (
                say(Some("rust"), "waves", true),
                r#"{"cmd":"chat","msg":"waves","room":"rust","action":true}"#,
            ),
            (
                Request::Private {
                    to: "bob".into(),
                    text: "x".into(),
                    action: false,
                },
                r#"{"cmd":"msg","to":"bob","msg":"x"}"#,
            ),
            (
                Request::Join("#rust".into()),
                r##"{"cmd":"join","room":"#rust","switch":false}"##,
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
            (
                Request::Part {
                    room: None,
                    reason: None,
                },
                r#"{"cmd":"part"}"#,
            ),
            (
                Request::Part {
                    room: Some("rust".into()),
                    reason: Some("bye".into()),
                },
                r#"{"cmd":"part","room":"rust","reason":"bye"}"#,
            ),
            (
                Request::Topic {
                    room: Some("rust".into()),
                    text: Some("crabs".into()),
                },
                r#"{"cmd":"topic","room":"rust","topic":"crabs"}"#,
            ),
            (
                Request::Kick {
                    room: Some("rust".into()),
                    nick: "bob".into(),
                    reason: None,
                },
                r#"{"cmd":"kick","room":"rust","nick":"bob"}"#,
            ),
            (
                Request::Mode {
                    room: Some("rust".into()),
                    changes: Some("+o bob".into()),
                },
                r#"{"cmd":"mode","room":"rust","changes":"+o bob"}"#,
            ),
            (
                Request::Invite {
                    nick: "bob".into(),
                    room: Some("rust".into()),
                },
                r#"{"cmd":"invite","nick":"bob","room":"rust"}"#,
            ),
            (
                Request::Away(Some("lunch".into())),
                r#"{"cmd":"away","text":"lunch"}"#,
            ),
            (Request::Away(None), r#"{"cmd":"away"}"#),
            (
                Request::Whois("bob".into()),
                r#"{"cmd":"whois","nick":"bob"}"#,
            ),
            (
                Request::Notice {
                    to: "#rust".into(),
                    text: "hear".into(),
                },
                r##"{"cmd":"notice","to":"#rust","msg":"hear"}"##,
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
