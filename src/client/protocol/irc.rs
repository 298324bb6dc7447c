//! IRC, client side: registration (NICK/USER; a nickname in use gets `_`
//! appended and is tried again), PING→PONG, auto-join and rejoin after a
//! reconnect, channel and private PRIVMSG (with CTCP ACTION for `/me`),
//! NAMES (353/366) as the who list, LIST (322/323) as the room list, and
//! JOIN/PART/KICK/QUIT/NICK as presence events. IRC servers do not echo our
//! own messages, so sent ones are shown locally.

use std::collections::HashMap;

use super::{same_nick, Output, Protocol};
use crate::client::command::Request;
use crate::client::event::{Event, EventKind};
use crate::client::ircmsg::{self, line, Message};
use crate::proto::irc::render::split_text;

/// Room text per PRIVMSG line; the rest of the 512-byte line is the
/// command, the target and the prefix the server adds when relaying.
const TEXT_BYTES: usize = 400;

/// Client state for one IRC server, kept across reconnects.
#[derive(Debug, Default)]
pub struct IrcProtocol {
    /// The nickname we have (or want).
    nick: Option<String>,
    registered: bool,
    /// USER was sent on this connection.
    user_sent: bool,
    /// Channels we are in (or want to be in), rejoined after registration.
    channels: Vec<String>,
    /// Where plain text goes.
    current: Option<String>,
    /// Channels joined at registration whose JOIN is not answered yet.
    joining: Vec<String>,
    /// NAMES replies being collected, by lower-cased channel.
    names: HashMap<String, Vec<String>>,
    /// LIST replies being collected.
    list: Vec<(String, Option<u64>)>,
}

impl IrcProtocol {
    /// `nick`: register with it (else ask); `join`: channels to join.
    pub fn new(nick: Option<String>, join: Vec<String>) -> IrcProtocol {
        IrcProtocol {
            nick,
            channels: join.iter().map(|c| channel(c)).collect(),
            ..IrcProtocol::default()
        }
    }

    fn register(&mut self, out: &mut Output) {
        let Some(nick) = self.nick.clone() else {
            out.show(EventKind::NeedNick { refused: None });
            return;
        };
        out.send(line("NICK", &[&nick]));
        if !self.user_sent {
            self.user_sent = true;
            out.send(line("USER", &["natter", "0", "*", "natter chat"]));
        }
    }

    fn is_me(&self, nick: &str) -> bool {
        self.nick.as_deref().is_some_and(|me| same_nick(me, nick))
    }

    fn me(&self) -> String {
        self.nick.clone().unwrap_or_default()
    }

    /// `nick` left `chan` (parted or was kicked); if that is us, the
    /// channel is forgotten (not rejoined, no longer where text goes).
    fn left(&mut self, chan: &str, nick: String, reason: Option<String>) -> EventKind {
        if self.is_me(&nick) {
            self.channels.retain(|c| !same_nick(c, chan));
            if self.current.as_deref().is_some_and(|c| same_nick(c, chan)) {
                self.current = self.channels.last().cloned();
            }
        }
        EventKind::Left {
            room: chan.to_string(),
            nick,
            members: None,
            reason,
        }
    }

    fn handle(&mut self, m: &Message, out: &mut Output) -> Option<EventKind> {
        let from = || m.nick().unwrap_or("").to_string();
        Some(match m.command.as_str() {
            "PING" => {
                out.send(line("PONG", &[m.last()]));
                return None;
            }
            "001" => {
                self.registered = true;
                if !m.param(0).is_empty() {
                    self.nick = Some(m.param(0).to_string());
                }
                out.show(EventKind::Registered {
                    nick: self.me(),
                    online: None,
                });
                for chan in &self.channels {
                    out.send(line("JOIN", &[chan]));
                }
                self.joining = self.channels.iter().map(|c| c.to_lowercase()).collect();
                EventKind::Info(m.last().to_string())
            }
            "433" | "436" if !self.registered => {
                let tried = m.param(1);
                let tried = if tried.is_empty() {
                    self.me()
                } else {
                    tried.to_string()
                };
                let next = format!("{tried}_");
                self.nick = Some(next.clone());
                out.send(line("NICK", &[&next]));
                EventKind::Info(format!("the nickname {tried} is in use; trying {next}"))
            }
            "431" | "432" if !self.registered => EventKind::NeedNick {
                refused: Some(format!("{}: {}", m.param(1), m.last())),
            },
            "353" => {
                let chan = m.params.len().checked_sub(2).map_or("", |i| m.param(i));
                let nicks = m.last().split_whitespace().map(|n| {
                    n.trim_start_matches(['~', '&', '@', '%', '+', '!'])
                        .to_string()
                });
                self.names
                    .entry(chan.to_lowercase())
                    .or_default()
                    .extend(nicks);
                return None;
            }
            "366" => {
                let chan = m.param(1).to_string();
                let mut nicks = self.names.remove(&chan.to_lowercase()).unwrap_or_default();
                nicks.sort_by_key(|n| n.to_lowercase());
                EventKind::Presence { room: chan, nicks }
            }
            "322" => {
                if self.list.len() < super::MAX_LISTED {
                    self.list
                        .push((m.param(1).to_string(), m.param(2).parse().ok()));
                }
                return None;
            }
            "323" => {
                let mut rooms = std::mem::take(&mut self.list);
                rooms.sort_by_key(|(r, _)| r.to_lowercase());
                EventKind::Rooms(rooms)
            }
            "332" => EventKind::Info(format!("topic of {}: {}", m.param(1), m.last())),
            "JOIN" => {
                let chan = m.param(0).to_string();
                let nick = from();
                if self.is_me(&nick) {
                    self.joining.retain(|c| !same_nick(c, &chan));
                    if !self.channels.iter().any(|c| same_nick(c, &chan)) {
                        self.channels.push(chan.clone());
                    }
                    self.current = Some(chan.clone());
                }
                EventKind::Joined {
                    room: chan,
                    nick,
                    members: None,
                }
            }
            "PART" => self.left(m.param(0), from(), m.params.get(1).cloned()),
            "KICK" => {
                let reason = format!("kicked by {}: {}", from(), m.param(2));
                self.left(m.param(0), m.param(1).to_string(), Some(reason))
            }
            "QUIT" => EventKind::Quit {
                nick: from(),
                reason: m.params.first().cloned(),
            },
            "NICK" => {
                let (old, new) = (from(), m.param(0).to_string());
                if self.is_me(&old) {
                    self.nick = Some(new.clone());
                }
                EventKind::Nick { old, new }
            }
            "PRIVMSG" | "NOTICE" => {
                let user = m.prefix.as_deref().is_some_and(|p| p.contains('!'));
                if m.command == "NOTICE" && !user {
                    return Some(EventKind::Info(m.last().to_string()));
                }
                let (text, action) = match ctcp(m.last()) {
                    None => (m.last().to_string(), false),
                    Some(("ACTION", rest)) => (rest.to_string(), true),
                    Some(_) => return None, // other CTCP queries are not answered
                };
                let target = m.param(0).to_string();
                if is_channel(&target) {
                    EventKind::Message {
                        room: target,
                        from: from(),
                        text,
                        action,
                    }
                } else {
                    EventKind::Private {
                        from: from(),
                        to: target,
                        text,
                        action,
                    }
                }
            }
            "TOPIC" => EventKind::Info(format!(
                "{} set the topic of {}: {}",
                from(),
                m.param(0),
                m.last()
            )),
            "ERROR" => EventKind::Info(format!("server says: {}", m.last())),
            "252" | "253" | "254" => {
                EventKind::Info(m.params.get(1..).unwrap_or_default().join(" "))
            }
            "002" | "003" | "250" | "251" | "255" | "265" | "266" | "372" | "375" | "376"
            | "422" => EventKind::Info(m.last().to_string()),
            c if is_numeric(c) && c.starts_with(['4', '5']) => {
                if JOIN_ERRORS.contains(&c) {
                    // A channel we could not join: do not wait for it.
                    let chan = m.param(1).to_string();
                    self.joining.retain(|j| !same_nick(j, &chan));
                    self.channels.retain(|j| !same_nick(j, &chan));
                }
                EventKind::Error {
                    code: c.to_string(),
                    message: describe(m),
                }
            }
            _ => return None,
        })
    }
}

/// Numerics refusing a JOIN (no such channel, too many channels, full,
/// invite only, banned, bad key, bad mask, and so on).
const JOIN_ERRORS: &[&str] = &[
    "403", "405", "471", "473", "474", "475", "476", "477", "489",
];

/// A numeric's text: the params after our own nick, the last after ": ".
fn describe(m: &Message) -> String {
    match m.params.len() {
        0 | 1 => m.last().to_string(),
        2 => m.last().to_string(),
        n => format!("{}: {}", m.params[1..n - 1].join(" "), m.last()),
    }
}

fn is_numeric(c: &str) -> bool {
    c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit())
}

fn is_channel(target: &str) -> bool {
    target.starts_with(['#', '&', '+', '!'])
}

/// `rust` → `#rust`; names with a channel prefix stay as they are.
fn channel(name: &str) -> String {
    if is_channel(name) {
        name.to_string()
    } else {
        format!("#{name}")
    }
}

/// A CTCP body (`\x01VERB rest\x01`) as (VERB, rest).
fn ctcp(text: &str) -> Option<(&str, &str)> {
    let body = text.strip_prefix('\x01')?;
    let body = body.strip_suffix('\x01').unwrap_or(body);
    Some(body.split_once(' ').unwrap_or((body, "")))
}

impl Protocol for IrcProtocol {
    fn name(&self) -> &'static str {
        "IRC"
    }

    fn connected(&mut self, out: &mut Output) {
        self.registered = false;
        self.joining.clear();
        self.user_sent = false;
        self.names.clear();
        self.list.clear();
        self.register(out);
    }

    fn receive(&mut self, raw: &str, out: &mut Output) {
        let Some(m) = Message::parse(raw) else {
            return;
        };
        let at = m
            .tag("time")
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_millis());
        if let Some(kind) = self.handle(&m, out) {
            out.event(Event::at(at, kind));
        }
    }

    fn request(&mut self, req: &Request, out: &mut Output) {
        match req {
            Request::Login(nick) => {
                self.nick = Some(nick.clone());
                self.register(out);
            }
            Request::Say { text, action } => {
                let Some(target) = self.current.clone() else {
                    out.error("you are not in a channel: /join #channel first");
                    return;
                };
                self.privmsg(&target, text, *action, out);
                out.show(EventKind::Message {
                    room: target,
                    from: self.me(),
                    text: text.clone(),
                    action: *action,
                });
            }
            Request::Private { to, text } => {
                self.privmsg(to, text, false, out);
                out.show(EventKind::Private {
                    from: self.me(),
                    to: to.clone(),
                    text: text.clone(),
                    action: false,
                });
            }
            Request::Join(room) => {
                let chan = channel(room);
                if let Some(known) = self.channels.iter().find(|c| same_nick(c, &chan)) {
                    // Already in it: make it the current channel.
                    self.current = Some(known.clone());
                    out.show(EventKind::Focus {
                        room: known.clone(),
                    });
                    return;
                }
                out.send(line("JOIN", &[&chan]));
            }
            Request::Part(reason) => match &self.current {
                Some(chan) => out.send(line(
                    "PART",
                    &[chan, reason.as_deref().unwrap_or("leaving")],
                )),
                None => out.error("you are not in a channel"),
            },
            Request::Who(room) => match room.as_deref().map(channel).or(self.current.clone()) {
                Some(chan) => out.send(line("NAMES", &[&chan])),
                None => out.error("usage: /who #channel"),
            },
            Request::Rooms => out.send("LIST".into()),
            Request::Nick(nick) => out.send(line("NICK", &[nick])),
            Request::Quit(reason) => {
                out.send(line("QUIT", &[reason.as_deref().unwrap_or("natter chat")]))
            }
        }
    }

    fn ready(&self) -> bool {
        self.registered && self.joining.is_empty()
    }
}

impl IrcProtocol {
    fn privmsg(&self, target: &str, text: &str, action: bool, out: &mut Output) {
        for part in split_text(&ircmsg::clean(text), TEXT_BYTES) {
            let body = if action {
                format!("\x01ACTION {part}\x01")
            } else {
                part.to_string()
            };
            out.send(line("PRIVMSG", &[target, &body]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(p: &mut IrcProtocol, l: &str) -> Output {
        let mut out = Output::default();
        p.receive(l, &mut out);
        out
    }

    fn kinds(out: &Output) -> Vec<EventKind> {
        out.events.iter().map(|e| e.kind.clone()).collect()
    }

    fn registered(nick: &str, join: &[&str]) -> IrcProtocol {
        let mut p = IrcProtocol::new(
            Some(nick.into()),
            join.iter().map(|s| s.to_string()).collect(),
        );
        p.connected(&mut Output::default());
        feed(&mut p, &format!(":srv 001 {nick} :Welcome {nick}"));
        p
    }

    #[test]
    fn registers_retries_taken_nick_and_autojoins() {
        let mut p = IrcProtocol::new(Some("bob".into()), vec!["test".into()]);
        let mut out = Output::default();
        p.connected(&mut out);
        assert_eq!(out.lines, ["NICK bob", "USER natter 0 * :natter chat"]);
        let o = feed(&mut p, ":srv 433 * bob :Nickname already in use");
        assert_eq!(o.lines, ["NICK bob_"]);
        let o = feed(&mut p, ":srv 001 bob_ :Welcome bob_");
        assert_eq!(o.lines, ["JOIN #test"]);
        assert!(!p.ready(), "not before the channel is joined");
        feed(&mut p, ":bob_!b@h JOIN #test");
        assert!(p.ready());
        assert!(kinds(&o).contains(&EventKind::Registered {
            nick: "bob_".into(),
            online: None
        }));
        // After registration a taken nick is only an error.
        let o = feed(&mut p, ":srv 433 bob_ alice :Nickname already in use");
        assert!(o.lines.is_empty());
        assert!(matches!(&kinds(&o)[0], EventKind::Error { code, .. } if code == "433"));
    }

    #[test]
    fn ping_names_and_messages() {
        let mut p = registered("bob", &[]);
        assert_eq!(feed(&mut p, "PING :abc").lines, ["PONG abc"]);
        assert_eq!(feed(&mut p, "PING :a b").lines, ["PONG :a b"]);
        let o = feed(&mut p, ":bob!~b@h JOIN :#test");
        assert!(matches!(&kinds(&o)[0], EventKind::Joined { room, .. } if room == "#test"));
        assert!(feed(&mut p, ":srv 353 bob = #test :@carol +bob")
            .events
            .is_empty());
        feed(&mut p, ":srv 353 bob = #test :alice");
        assert_eq!(
            kinds(&feed(&mut p, ":srv 366 bob #test :End of NAMES list")),
            [EventKind::Presence {
                room: "#test".into(),
                nicks: vec!["alice".into(), "bob".into(), "carol".into()]
            }]
        );
        assert_eq!(
            kinds(&feed(&mut p, ":alice!a@h PRIVMSG #test :hi bob")),
            [EventKind::Message {
                room: "#test".into(),
                from: "alice".into(),
                text: "hi bob".into(),
                action: false
            }]
        );
        assert_eq!(
            kinds(&feed(
                &mut p,
                ":alice!a@h PRIVMSG bob :\x01ACTION waves\x01"
            )),
            [EventKind::Private {
                from: "alice".into(),
                to: "bob".into(),
                text: "waves".into(),
                action: true
            }]
        );
        assert!(feed(&mut p, ":alice!a@h PRIVMSG bob :\x01VERSION\x01")
            .events
            .is_empty());
        // Our own text goes to the current channel and is echoed locally.
        let mut out = Output::default();
        p.request(
            &Request::Say {
                text: "hello".into(),
                action: false,
            },
            &mut out,
        );
        assert_eq!(out.lines, ["PRIVMSG #test hello"]);
        assert!(matches!(&kinds(&out)[0], EventKind::Message { from, .. } if from == "bob"));
        let mut out = Output::default();
        p.request(
            &Request::Say {
                text: "dances".into(),
                action: true,
            },
            &mut out,
        );
        assert_eq!(out.lines, ["PRIVMSG #test :\x01ACTION dances\x01"]);
    }

    #[test]
    fn presence_events_and_rejoin_after_reconnect() {
        let mut p = registered("bob", &["#a"]);
        feed(&mut p, ":bob!b@h JOIN #a");
        feed(&mut p, ":bob!b@h JOIN #b");
        let o = feed(&mut p, ":bob!b@h NICK :robert");
        assert_eq!(
            kinds(&o),
            [EventKind::Nick {
                old: "bob".into(),
                new: "robert".into()
            }]
        );
        let o = feed(&mut p, ":carol!c@h QUIT :bye");
        assert_eq!(
            kinds(&o),
            [EventKind::Quit {
                nick: "carol".into(),
                reason: Some("bye".into())
            }]
        );
        let mut out = Output::default();
        p.request(&Request::Join("a".into()), &mut out);
        assert!(out.lines.is_empty(), "already in #a");
        assert_eq!(kinds(&out), [EventKind::Focus { room: "#a".into() }]);
        feed(&mut p, ":robert!b@h PART #b :done");
        let mut out = Output::default();
        p.request(&Request::Part(None), &mut out);
        assert_eq!(out.lines, ["PART #a leaving"]);
        // New connection: NICK with the current nick, rejoin #a after 001.
        let mut out = Output::default();
        p.connected(&mut out);
        assert_eq!(out.lines[0], "NICK robert");
        let o = feed(&mut p, ":srv 001 robert :Welcome");
        assert_eq!(o.lines, ["JOIN #a"]);
    }

    #[test]
    fn errors_and_lists() {
        let mut p = registered("bob", &[]);
        let mut out = Output::default();
        p.request(
            &Request::Say {
                text: "x".into(),
                action: false,
            },
            &mut out,
        );
        assert!(out.lines.is_empty());
        assert!(matches!(kinds(&out)[0], EventKind::Error { .. }));
        let o = feed(&mut p, ":srv 401 bob ghost :No such nick/channel");
        assert_eq!(
            kinds(&o),
            [EventKind::Error {
                code: "401".into(),
                message: "ghost: No such nick/channel".into()
            }]
        );
        feed(&mut p, ":srv 322 bob #b 2 :topic");
        feed(&mut p, ":srv 322 bob #a 1 :");
        assert_eq!(
            kinds(&feed(&mut p, ":srv 323 bob :End of LIST")),
            [EventKind::Rooms(vec![
                ("#a".into(), Some(1)),
                ("#b".into(), Some(2))
            ])]
        );
        let o = feed(
            &mut p,
            "@time=2026-01-02T03:04:05.000Z :a!b@c PRIVMSG #a :x",
        );
        assert_eq!(o.events[0].at_ms, 1_767_323_045_000);
    }
}
