//! IRC, client side: registration (NICK/USER; a nickname in use gets `_`
//! appended and is tried again), PING→PONG, auto-join and rejoin after a
//! reconnect, channel and private PRIVMSG (with CTCP ACTION for `/me`) and
//! NOTICE, NAMES (353/366, `@`/`+` kept as status) as the who list, LIST
//! (322/323) as the room list, JOIN/PART/KICK/QUIT/NICK as presence events,
//! TOPIC/332/333, MODE, INVITE, AWAY (301/305/306) and WHOIS replies. IRC
//! servers do not echo our own messages, so sent ones are shown locally.

use std::collections::HashMap;
use std::time::{Duration, Instant};

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
    /// NAMES replies being collected, by lower-cased channel: the nicks
    /// with their status prefixes.
    names: HashMap<String, Vec<String>>,
    /// Topics from 332 waiting for who set them (333), by lower-cased channel.
    topics: HashMap<String, String>,
    /// LIST replies being collected.
    list: Vec<(String, Option<u64>)>,
    /// Text lines sent since the last `PING` of ours.
    unsynced: usize,
    /// The password of the nickname's account, logged in to with SASL
    /// `PLAIN` (until the server refuses it).
    password: Option<String>,
    /// `CAP REQ` was sent on this connection and `CAP END` not yet:
    /// registration waits for the SASL exchange.
    cap_open: bool,
    /// After a lost connection, how long our nickname refused as in use
    /// (433) is taken for our old connection still holding it (a server,
    /// or a dead node of a cluster, that has not noticed the loss yet):
    /// the connection is dropped and made again instead of giving it up.
    reclaim: Duration,
    /// Until when that holds, and the nickname it is for (the one we had
    /// when the connection was lost).
    reclaim_until: Option<(Instant, String)>,
}

/// Most base64 bytes in one `AUTHENTICATE` line (IRCv3 SASL).
const SASL_CHUNK: usize = 400;

/// After this many text lines the client sends a `PING`: its `PONG` shows
/// the server is working through them (flood control may pace them), so a
/// quit waits for the server instead of cutting them off.
const SYNC_EVERY: usize = 8;

impl IrcProtocol {
    /// `nick`: register with it (else ask); `join`: channels to join.
    pub fn new(nick: Option<String>, join: Vec<String>) -> IrcProtocol {
        IrcProtocol {
            nick,
            channels: join.iter().map(|c| channel(c)).collect(),
            ..IrcProtocol::default()
        }
    }

    /// Log in to the nickname's account with `password` over SASL
    /// (`None`: no account).
    pub fn with_password(mut self, password: Option<String>) -> IrcProtocol {
        self.password = password;
        self
    }

    /// After a lost connection, try to get our nickname back for `window`
    /// (reconnecting) before taking another. Zero: no such tries.
    pub fn with_nick_reclaim(mut self, window: Duration) -> IrcProtocol {
        self.reclaim = window;
        self
    }

    fn register(&mut self, out: &mut Output) {
        let Some(nick) = self.nick.clone() else {
            out.show(EventKind::NeedNick { refused: None });
            return;
        };
        if self.password.is_some() && !self.user_sent {
            // Registration waits until `CAP END`, after the SASL login.
            self.cap_open = true;
            out.send(line("CAP", &["REQ", "sasl"]));
        }
        out.send(line("NICK", &[&nick]));
        if !self.user_sent {
            self.user_sent = true;
            out.send(line("USER", &["natter", "0", "*", "natter chat"]));
        }
        if self.cap_open && self.password.is_none() {
            // A nickname picked after a failed login: go on without it.
            self.end_cap(out);
        }
    }

    fn end_cap(&mut self, out: &mut Output) {
        self.cap_open = false;
        out.send(line("CAP", &["END"]));
    }

    /// The SASL login failed (`reason`): go on without the account if the
    /// user picks a nickname (a script stops instead).
    fn login_failed(&mut self, reason: String, out: &mut Output) -> EventKind {
        self.password = None;
        out.show(EventKind::LoginFailed { reason });
        EventKind::NeedNick { refused: None }
    }

    /// `authzid NUL authcid NUL password` (authzid empty), base64, in
    /// lines of at most [`SASL_CHUNK`] bytes; a last line of exactly that
    /// many is followed by `AUTHENTICATE +`.
    fn sasl_plain(&self, out: &mut Output) {
        use base64ct::Encoding;
        let (Some(nick), Some(pw)) = (&self.nick, &self.password) else {
            return out.send(line("AUTHENTICATE", &["*"]));
        };
        let payload = base64ct::Base64::encode_string(format!("\0{nick}\0{pw}").as_bytes());
        let mut rest = payload.as_str();
        while rest.len() >= SASL_CHUNK {
            let (chunk, tail) = rest.split_at(SASL_CHUNK);
            out.send(line("AUTHENTICATE", &[chunk]));
            rest = tail;
        }
        out.send(line(
            "AUTHENTICATE",
            &[if rest.is_empty() { "+" } else { rest }],
        ));
    }

    fn is_me(&self, nick: &str) -> bool {
        self.nick.as_deref().is_some_and(|me| same_nick(me, nick))
    }

    fn me(&self) -> String {
        self.nick.clone().unwrap_or_default()
    }

    /// `nick` left `chan` (parted or was kicked); if that is us, the
    /// channel is forgotten (not rejoined, no longer where text goes).
    fn left(&mut self, chan: &str, nick: &str) {
        if self.is_me(nick) {
            self.channels.retain(|c| !same_nick(c, chan));
            if self.current.as_deref().is_some_and(|c| same_nick(c, chan)) {
                self.current = self.channels.last().cloned();
            }
        }
    }

    fn handle(&mut self, m: &Message, out: &mut Output) -> Option<EventKind> {
        let from = || m.nick().unwrap_or("").to_string();
        Some(match m.command.as_str() {
            "PING" => {
                out.send(line("PONG", &[m.last()]));
                return None;
            }
            "CAP" if self.cap_open => {
                let caps = m.last().split_whitespace().collect::<Vec<_>>();
                match m.param(1) {
                    "ACK" if caps.contains(&"sasl") => {
                        out.send(line("AUTHENTICATE", &["PLAIN"]));
                        return None;
                    }
                    "NAK" if self.password.is_some() => self.login_failed(
                        "the server does not offer SASL, so cannot log in to an account".into(),
                        out,
                    ),
                    _ => return None,
                }
            }
            "AUTHENTICATE" if self.cap_open && m.param(0) == "+" => {
                self.sasl_plain(out);
                return None;
            }
            "900" => EventKind::Info(m.last().to_string()),
            "903" if self.cap_open => {
                self.end_cap(out);
                return None;
            }
            // 908 (the mechanisms there are) comes before its 904.
            "907" | "908" => return None,
            "902" | "904" | "905" | "906" if self.cap_open && self.password.is_some() => {
                self.login_failed(m.last().to_string(), out)
            }
            "001" => {
                if std::mem::take(&mut self.cap_open) && self.password.is_some() {
                    // A server that ignored `CAP REQ` (it registers us anyway).
                    out.show(EventKind::Error {
                        code: "client".into(),
                        message: "not logged in: the server did not answer the SASL login".into(),
                    });
                }
                self.registered = true;
                self.reclaim_until = None;
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
                let ours = self
                    .reclaim_until
                    .as_ref()
                    .is_some_and(|(t, n)| Instant::now() < *t && same_nick(n, &tried));
                if ours {
                    out.reconnect = Some(format!(
                        "the nickname {tried} is in use (held by our lost connection?)"
                    ));
                    return Some(EventKind::Info(format!(
                        "the nickname {tried} is in use; it was ours before the connection \
                         was lost: trying again"
                    )));
                }
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
                let nicks = m.last().split_whitespace().map(str::to_string);
                self.names
                    .entry(chan.to_lowercase())
                    .or_default()
                    .extend(nicks);
                return None;
            }
            "366" => {
                let chan = m.param(1).to_string();
                let raw = self.names.remove(&chan.to_lowercase()).unwrap_or_default();
                let (mut nicks, mut ops, mut voiced) = (Vec::new(), Vec::new(), Vec::new());
                for n in raw {
                    // Status prefixes (several with multi-prefix); the
                    // nick part of a userhost-in-names entry.
                    let bare = n.trim_start_matches(['~', '&', '@', '%', '+', '!']);
                    let status = &n[..n.len() - bare.len()];
                    let bare = bare.split('!').next().unwrap_or(bare).to_string();
                    if status.contains(['~', '&', '@']) {
                        ops.push(bare.clone());
                    }
                    if status.contains('+') {
                        voiced.push(bare.clone());
                    }
                    nicks.push(bare);
                }
                nicks.sort_by_key(|n| n.to_lowercase());
                EventKind::Presence {
                    room: chan,
                    nicks,
                    ops,
                    voiced,
                }
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
            "332" => {
                // Shown with who set it when 333 follows; else at once.
                let chan = m.param(1).to_lowercase();
                self.topics.insert(chan, m.last().to_string());
                return None;
            }
            "333" => {
                let chan = m.param(1).to_string();
                let topic = self.topics.remove(&chan.to_lowercase());
                let by = m.param(2);
                let by = by.split('!').next().unwrap_or(by).to_string();
                EventKind::Topic {
                    room: chan,
                    topic,
                    by: Some(by),
                    changed: false,
                }
            }
            "331" => EventKind::Topic {
                room: m.param(1).to_string(),
                topic: None,
                by: None,
                changed: false,
            },
            "324" => EventKind::Info(format!(
                "modes of {}: {}",
                m.param(1),
                m.params.get(2..).unwrap_or_default().join(" ")
            )),
            "301" => EventKind::Away {
                nick: m.param(1).to_string(),
                text: Some(m.last().to_string()),
            },
            "305" => EventKind::AwayStatus { away: false },
            "306" => EventKind::AwayStatus { away: true },
            "311" => EventKind::Info(format!(
                "{} is {}@{} ({})",
                m.param(1),
                m.param(2),
                m.param(3),
                m.last()
            )),
            "319" => EventKind::Info(format!("{} is in {}", m.param(1), m.last())),
            "312" => EventKind::Info(format!("{} is on {}", m.param(1), m.param(2))),
            "317" => EventKind::Info(format!("{} has been idle {}s", m.param(1), m.param(2))),
            "318" | "315" | "368" => return None,
            "341" => EventKind::Invited {
                room: m.param(2).to_string(),
                by: self.me(),
                nick: m.param(1).to_string(),
            },
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
            "PART" => {
                let (chan, nick) = (m.param(0).to_string(), from());
                self.left(&chan, &nick);
                EventKind::Left {
                    room: chan,
                    nick,
                    members: None,
                    reason: m.params.get(1).cloned().filter(|r| !r.is_empty()),
                }
            }
            "KICK" => {
                let (chan, nick) = (m.param(0).to_string(), m.param(1).to_string());
                self.left(&chan, &nick);
                EventKind::Kicked {
                    room: chan,
                    by: from(),
                    nick,
                    reason: m.params.get(2).cloned().filter(|r| !r.is_empty()),
                    members: None,
                }
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
                if m.command == "NOTICE" {
                    let target = m.param(0);
                    let room = is_channel(target).then(|| target.to_string());
                    return Some(EventKind::Notice {
                        from: from(),
                        to: room.is_none().then(|| target.to_string()),
                        room,
                        text: m.last().to_string(),
                    });
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
            "TOPIC" => EventKind::Topic {
                room: m.param(0).to_string(),
                topic: m.params.get(1).cloned().filter(|t| !t.is_empty()),
                by: Some(from()),
                changed: true,
            },
            "MODE" if is_channel(m.param(0)) => EventKind::Mode {
                room: m.param(0).to_string(),
                by: from(),
                changes: m.params.get(1..).unwrap_or_default().join(" "),
            },
            "INVITE" => EventKind::Invited {
                room: m.param(1).to_string(),
                by: from(),
                nick: m.param(0).to_string(),
            },
            "AWAY" => EventKind::Away {
                nick: from(),
                text: m.params.first().cloned().filter(|t| !t.is_empty()),
            },
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
        if self.registered && !self.reclaim.is_zero() {
            let until = Instant::now().checked_add(self.reclaim);
            self.reclaim_until = until.zip(self.nick.clone());
        }
        self.registered = false;
        self.cap_open = false;
        self.joining.clear();
        self.user_sent = false;
        self.names.clear();
        self.topics.clear();
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
        let room = |r: &Option<String>| r.as_deref().map(channel).or(self.current.clone());
        let need_room =
            |out: &mut Output| out.error("you are not in a channel: /join #channel first");
        match req {
            Request::Login(nick) => {
                self.nick = Some(nick.clone());
                self.register(out);
            }
            Request::Say {
                room: r,
                text,
                action,
            } => {
                let Some(target) = room(r) else {
                    return need_room(out);
                };
                self.privmsg(&target, text, *action, out);
                out.show(EventKind::Message {
                    room: target,
                    from: self.me(),
                    text: text.clone(),
                    action: *action,
                });
            }
            Request::Private { to, text, action } => {
                self.privmsg(to, text, *action, out);
                out.show(EventKind::Private {
                    from: self.me(),
                    to: to.clone(),
                    text: text.clone(),
                    action: *action,
                });
            }
            Request::Notice { to, text } => {
                for part in split_text(&ircmsg::clean(text), TEXT_BYTES) {
                    self.text_line(line("NOTICE", &[to.as_str(), part]), out);
                }
                let room = is_channel(to).then(|| to.clone());
                out.show(EventKind::Notice {
                    from: self.me(),
                    to: room.is_none().then(|| to.clone()),
                    room,
                    text: text.clone(),
                });
            }
            Request::Join(r) => {
                let chan = channel(r);
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
            Request::Part { room: r, reason } => match room(r) {
                Some(chan) => out.send(line(
                    "PART",
                    &[&chan, reason.as_deref().unwrap_or("leaving")],
                )),
                None => out.error("you are not in a channel"),
            },
            Request::Who(r) => match r.as_deref().map(channel).or(self.current.clone()) {
                Some(chan) => out.send(line("NAMES", &[&chan])),
                None => out.error("usage: /who #channel"),
            },
            Request::Rooms => out.send("LIST".into()),
            Request::Nick(nick) => out.send(line("NICK", &[nick])),
            Request::Topic { room: r, text } => match (room(r), text) {
                (None, _) => need_room(out),
                (Some(chan), None) => out.send(line("TOPIC", &[&chan])),
                (Some(chan), Some(t)) => out.send(line("TOPIC", &[&chan, t])),
            },
            Request::Kick {
                room: r,
                nick,
                reason,
            } => match room(r) {
                None => need_room(out),
                Some(chan) => out.send(line(
                    "KICK",
                    &[&chan, nick, reason.as_deref().unwrap_or(nick)],
                )),
            },
            Request::Mode { room: r, changes } => match room(r) {
                None => need_room(out),
                Some(chan) => {
                    let mut params = vec![chan.as_str()];
                    let changes = changes.as_deref().unwrap_or("");
                    // `+o bob +v carol` as IRC wants it: `+o+v bob carol`.
                    let (modes, args): (Vec<&str>, Vec<&str>) = changes
                        .split_whitespace()
                        .partition(|w| w.starts_with(['+', '-']));
                    let modes = modes.concat();
                    if !modes.is_empty() {
                        params.push(&modes);
                        params.extend(args);
                    }
                    // Arguments are words: none may become a trailing param.
                    let mut l = line("MODE", &params[..1]);
                    for p in &params[1..] {
                        l.push(' ');
                        l.push_str(&ircmsg::clean(p).replace([' ', ':'], ""));
                    }
                    out.send(l);
                }
            },
            Request::Invite { nick, room: r } => match room(r) {
                None => need_room(out),
                Some(chan) => out.send(line("INVITE", &[nick, &chan])),
            },
            Request::Away(Some(text)) => out.send(line("AWAY", &[text])),
            Request::Away(None) => out.send("AWAY".into()),
            Request::Whois(nick) => out.send(line("WHOIS", &[nick])),
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
    fn privmsg(&mut self, target: &str, text: &str, action: bool, out: &mut Output) {
        for part in split_text(&ircmsg::clean(text), TEXT_BYTES) {
            let body = if action {
                format!("\x01ACTION {part}\x01")
            } else {
                part.to_string()
            };
            self.text_line(line("PRIVMSG", &[target, &body]), out);
        }
    }

    /// Sends a line of text, and every [`SYNC_EVERY`] lines a `PING`.
    fn text_line(&mut self, l: String, out: &mut Output) {
        out.send(l);
        self.unsynced += 1;
        if self.unsynced >= SYNC_EVERY {
            self.unsynced = 0;
            out.send("PING :natter-chat".into());
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
    fn a_password_logs_in_with_sasl_plain_before_registering() {
        let mut p =
            IrcProtocol::new(Some("alice".into()), vec![]).with_password(Some("s3cret-pw".into()));
        let mut out = Output::default();
        p.connected(&mut out);
        assert_eq!(
            out.lines,
            ["CAP REQ sasl", "NICK alice", "USER natter 0 * :natter chat"]
        );
        let o = feed(&mut p, ":srv CAP * ACK :sasl");
        assert_eq!(o.lines, ["AUTHENTICATE PLAIN"]);
        let o = feed(&mut p, "AUTHENTICATE +");
        // base64 of "\0alice\0s3cret-pw"
        assert_eq!(o.lines, ["AUTHENTICATE AGFsaWNlAHMzY3JldC1wdw=="]);
        let o = feed(
            &mut p,
            ":srv 900 alice alice!u@h alice :You are now logged in as alice",
        );
        assert_eq!(
            kinds(&o),
            [EventKind::Info("You are now logged in as alice".into())]
        );
        let o = feed(&mut p, ":srv 903 alice :SASL authentication successful");
        assert_eq!(o.lines, ["CAP END"]);
        feed(&mut p, ":srv 001 alice :Welcome alice");
        assert!(p.ready());
        // A reconnect logs in again.
        let mut out = Output::default();
        p.connected(&mut out);
        assert_eq!(out.lines[0], "CAP REQ sasl");
    }

    #[test]
    fn a_long_sasl_payload_is_split_into_400_byte_lines() {
        // 3 + 5 + 292 bytes → exactly 400 base64 bytes: one line, then "+".
        let pw = "p".repeat(292);
        let mut p = IrcProtocol::new(Some("alice".into()), vec![]).with_password(Some(pw));
        p.connected(&mut Output::default());
        feed(&mut p, ":srv CAP * ACK :sasl");
        let o = feed(&mut p, "AUTHENTICATE +");
        assert_eq!(o.lines.len(), 2, "{:?}", o.lines);
        assert_eq!(o.lines[0].len(), "AUTHENTICATE ".len() + 400);
        assert_eq!(o.lines[1], "AUTHENTICATE +");
    }

    #[test]
    fn a_refused_sasl_login_asks_for_a_nick_and_then_ends_cap() {
        let mut p =
            IrcProtocol::new(Some("alice".into()), vec![]).with_password(Some("wrong-pw".into()));
        p.connected(&mut Output::default());
        feed(&mut p, ":srv CAP * ACK :sasl");
        feed(&mut p, "AUTHENTICATE +");
        let o = feed(&mut p, ":srv 904 alice :SASL authentication failed");
        assert_eq!(
            kinds(&o),
            [
                EventKind::LoginFailed {
                    reason: "SASL authentication failed".into()
                },
                EventKind::NeedNick { refused: None }
            ]
        );
        assert!(
            o.lines.is_empty(),
            "nothing until the user says: {:?}",
            o.lines
        );
        let mut out = Output::default();
        p.request(&Request::Login("alice2".into()), &mut out);
        assert_eq!(out.lines, ["NICK alice2", "CAP END"]);
        // Not tried again after a reconnect.
        let mut out = Output::default();
        p.connected(&mut out);
        assert_eq!(out.lines, ["NICK alice2", "USER natter 0 * :natter chat"]);
    }

    #[test]
    fn after_a_lost_connection_our_nick_in_use_is_reclaimed_by_reconnecting() {
        let mut p = IrcProtocol::new(Some("bob".into()), vec!["#a".into()])
            .with_nick_reclaim(Duration::from_secs(3600));
        p.connected(&mut Output::default());
        feed(&mut p, ":srv 001 bob :Welcome bob");
        // The connection is lost; the node we reach still has our old one.
        let mut out = Output::default();
        p.connected(&mut out);
        assert_eq!(out.lines, ["NICK bob", "USER natter 0 * :natter chat"]);
        let o = feed(&mut p, ":srv 433 * bob :Nickname is already in use");
        assert!(o.lines.is_empty(), "no bob_: {:?}", o.lines);
        assert!(o.reconnect.is_some(), "dropped and made again");
        // Again, and this time the nick is free: registered as bob.
        p.connected(&mut Output::default());
        let o = feed(&mut p, ":srv 001 bob :Welcome bob");
        assert_eq!(o.lines, ["JOIN #a"]);
        // Once registered, the window is over: a later loss opens a new
        // one, but a nick in use before any registration is not ours.
        let mut fresh = IrcProtocol::new(Some("bob".into()), vec![])
            .with_nick_reclaim(Duration::from_secs(3600));
        fresh.connected(&mut Output::default());
        let o = feed(&mut fresh, ":srv 433 * bob :Nickname is already in use");
        assert_eq!(o.lines, ["NICK bob_"]);
        assert!(o.reconnect.is_none());
        // With no window (zero), a lost connection's nick is given up.
        let mut p = registered("bob", &[]);
        p.connected(&mut Output::default());
        let o = feed(&mut p, ":srv 433 * bob :Nickname is already in use");
        assert_eq!(o.lines, ["NICK bob_"]);
        assert!(o.reconnect.is_none());
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
                nicks: vec!["alice".into(), "bob".into(), "carol".into()],
                ops: vec!["carol".into()],
                voiced: vec!["bob".into()],
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
                room: None,
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
                room: None,
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
        p.request(
            &Request::Part {
                room: None,
                reason: None,
            },
            &mut out,
        );
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
                room: None,
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

    #[test]
    fn topics_kicks_modes_notices_invites_and_away() {
        let mut p = registered("bob", &[]);
        feed(&mut p, ":bob!b@h JOIN #a");
        assert!(feed(&mut p, ":srv 332 bob #a :crabs welcome")
            .events
            .is_empty());
        assert_eq!(
            kinds(&feed(&mut p, ":srv 333 bob #a carol!c@h 1700000000")),
            [EventKind::Topic {
                room: "#a".into(),
                topic: Some("crabs welcome".into()),
                by: Some("carol".into()),
                changed: false
            }]
        );
        let cases = [
            (
                ":carol!c@h TOPIC #a :new topic",
                EventKind::Topic {
                    room: "#a".into(),
                    topic: Some("new topic".into()),
                    by: Some("carol".into()),
                    changed: true,
                },
            ),
            (
                ":carol!c@h MODE #a +ov bob dave",
                EventKind::Mode {
                    room: "#a".into(),
                    by: "carol".into(),
                    changes: "+ov bob dave".into(),
                },
            ),
            (
                ":carol!c@h NOTICE #a :hear ye",
                EventKind::Notice {
                    from: "carol".into(),
                    room: Some("#a".into()),
                    to: None,
                    text: "hear ye".into(),
                },
            ),
            (
                ":carol!c@h INVITE bob #vip",
                EventKind::Invited {
                    room: "#vip".into(),
                    by: "carol".into(),
                    nick: "bob".into(),
                },
            ),
            (
                ":srv 301 bob carol :at lunch",
                EventKind::Away {
                    nick: "carol".into(),
                    text: Some("at lunch".into()),
                },
            ),
            (":srv 306 bob :away", EventKind::AwayStatus { away: true }),
            (
                ":carol!c@h KICK #a bob :behave",
                EventKind::Kicked {
                    room: "#a".into(),
                    by: "carol".into(),
                    nick: "bob".into(),
                    reason: Some("behave".into()),
                    members: None,
                },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(kinds(&feed(&mut p, line)), [want], "{line}");
        }
        // Kicked: no longer where text goes, not rejoined.
        let mut out = Output::default();
        p.request(
            &Request::Say {
                room: None,
                text: "x".into(),
                action: false,
            },
            &mut out,
        );
        assert!(out.lines.is_empty());
    }

    #[test]
    fn operator_requests_are_irc_commands() {
        let mut p = registered("bob", &[]);
        feed(&mut p, ":bob!b@h JOIN #a");
        let cases = [
            (
                Request::Topic {
                    room: None,
                    text: Some("hi there".into()),
                },
                "TOPIC #a :hi there",
            ),
            (
                Request::Kick {
                    room: Some("b".into()),
                    nick: "carol".into(),
                    reason: None,
                },
                "KICK #b carol carol",
            ),
            (
                Request::Mode {
                    room: None,
                    changes: Some("+o carol -v dave +m".into()),
                },
                "MODE #a +o-v+m carol dave",
            ),
            (
                Request::Mode {
                    room: None,
                    changes: None,
                },
                "MODE #a",
            ),
            (
                Request::Invite {
                    nick: "carol".into(),
                    room: None,
                },
                "INVITE carol #a",
            ),
            (Request::Away(Some("brb".into())), "AWAY brb"),
            (Request::Away(None), "AWAY"),
            (Request::Whois("carol".into()), "WHOIS carol"),
            (
                Request::Notice {
                    to: "carol".into(),
                    text: "psst".into(),
                },
                "NOTICE carol psst",
            ),
        ];
        for (req, want) in cases {
            let mut out = Output::default();
            p.request(&req, &mut out);
            assert_eq!(out.lines, [want], "{req:?}");
        }
    }

    #[test]
    fn many_lines_are_interleaved_with_pings_to_see_progress() {
        let mut p = registered("bob", &["#a"]);
        feed(&mut p, ":bob!b@h JOIN #a");
        let mut out = Output::default();
        for i in 0..SYNC_EVERY {
            p.request(
                &Request::Say {
                    room: None,
                    text: format!("line {i}"),
                    action: false,
                },
                &mut out,
            );
        }
        assert_eq!(out.lines.len(), SYNC_EVERY + 1);
        assert_eq!(
            out.lines.last().map(String::as_str),
            Some("PING :natter-chat")
        );
    }
}
