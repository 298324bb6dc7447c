//! The chat state machine: who is connected, which nick is taken, who is in
//! which room with which status, and each room's topic, modes and bans. It
//! is the only place that changes that state, and it does no I/O: events go
//! to each member's [`Outbox`], which the server backs with a bounded queue
//! and the tests with a vector.
//!
//! The hub enforces room rules (keys, limits, bans, invite-only, moderation,
//! operators) for every protocol alike; protocols only differ in how they
//! ask and how they render the answers.
//!
//! Slow consumers: when an outbox refuses an event (its queue is full), the
//! member is removed with the reason "send queue full" once the current
//! operation is done, and the rest of the room carries on.
//!
//! Layout: this file holds connections, nicks and messaging; `channel.rs`
//! joining, leaving and room operator commands; `query.rs` the read-only
//! questions (who, whois, list, lusers); `room.rs` one room's rules;
//! `mask.rs` wildcard masks; `names.rs` nick and room name rules.

mod channel;
pub mod mask;
pub mod names;
mod query;
mod room;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use crate::proto::{now_ms, Command, ErrorCode, Event, EventBody, Name};
use room::Room;

/// Identifies one connection for its whole life.
pub type ConnId = u64;

/// Where the hub puts a member's events. `push` returns false when the
/// member cannot take more (queue full or gone).
pub trait Outbox: Clone {
    fn push(&self, ev: &Arc<Event>) -> bool;
}

/// The hub's own settings (a subset of the server config).
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub server_name: String,
    pub default_room: String,
    pub max_nick_chars: usize,
    pub max_room_chars: usize,
    /// Rooms with more members than this do not announce each join and
    /// part to everyone, and a newcomer gets the count instead of the list.
    pub large_room: usize,
    /// Most rooms one person may be in at once (IRC users may be in several).
    pub max_rooms_per_user: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig::from_config(&crate::config::Config::default())
    }
}

impl HubConfig {
    pub fn from_config(c: &crate::config::Config) -> HubConfig {
        HubConfig {
            server_name: c.server_name.clone(),
            default_room: c.default_room.clone(),
            max_nick_chars: c.max_nick_chars,
            max_room_chars: c.max_room_chars,
            large_room: c.large_room,
            max_rooms_per_user: c.max_rooms_per_user,
        }
    }
}

/// Who a connection is, as IRC shows it, and how it wants to start.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Username (IRC ident), e.g. `~alice`, or `text` / `json`.
    pub user: Name,
    /// Free-form "real name".
    pub realname: Name,
    /// The (cloaked) host shown in `nick!user@host`.
    pub host: Name,
    /// Put the newcomer in the default room as soon as they register.
    /// IRC sessions say no and join it themselves after the welcome burst.
    pub auto_join: bool,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            user: "text".into(),
            realname: "natter user".into(),
            host: "natter".into(),
            auto_join: true,
        }
    }
}

/// What the session should do after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Continue,
    /// The client quit: flush its queue and close.
    Close,
}

/// Most pending invitations one person holds; older ones are forgotten.
const MAX_INVITES: usize = 100;

struct Conn<O> {
    outbox: O,
    nick: Option<Name>,
    /// Folded keys of the rooms this member is in; the last is the current one.
    rooms: Vec<String>,
    user: Name,
    realname: Name,
    host: Name,
    auto_join: bool,
    /// `nick!user@host` (with `*` for the nick before registration).
    mask: Arc<str>,
    away: Option<Arc<str>>,
    /// User mode `+i` (accepted for IRC clients; it hides nothing).
    invisible: bool,
    /// Folded keys of rooms this person was invited into.
    invites: Vec<String>,
    signon_ms: u64,
    active_ms: u64,
}

impl<O> Conn<O> {
    fn update_mask(&mut self) {
        let nick = self.nick.as_deref().unwrap_or("*");
        self.mask = format!("{nick}!{}@{}", self.user, self.host).into();
    }
}

/// All chat state. Pure: every effect is an event pushed to an outbox.
pub struct Hub<O: Outbox> {
    config: HubConfig,
    conns: HashMap<ConnId, Conn<O>>,
    nicks: HashMap<String, ConnId>,
    rooms: HashMap<String, Room<O>>,
    next_msg_id: u64,
    /// Members whose outbox refused an event, to be removed.
    overflowed: Vec<ConnId>,
}

fn error(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> EventBody {
    EventBody::error(code, message)
}

/// A refusal about named things (see [`EventBody::Refused`]).
fn refused(code: ErrorCode, about: &[&str], message: impl Into<Cow<'static, str>>) -> EventBody {
    EventBody::Refused {
        code,
        about: about.iter().map(|a| Name::from(*a)).collect(),
        message: message.into(),
    }
}

/// Cuts user-supplied text to `max` bytes (topics, reasons, away messages).
fn cap(text: &str, max: usize) -> Arc<str> {
    crate::proto::irc::truncate(text, max).into()
}

impl<O: Outbox> Hub<O> {
    pub fn new(config: HubConfig) -> Hub<O> {
        Hub {
            config,
            conns: HashMap::new(),
            nicks: HashMap::new(),
            rooms: HashMap::new(),
            next_msg_id: 1,
            overflowed: Vec::new(),
        }
    }

    /// People online (registered connections).
    pub fn online(&self) -> usize {
        self.nicks.len()
    }

    /// Connections, registered or not.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Rooms that exist (have members).
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// The nick of a connection, if it has registered.
    pub fn nick_of(&self, id: ConnId) -> Option<&Name> {
        self.conns.get(&id).and_then(|c| c.nick.as_ref())
    }

    /// A new connection: it gets the welcome (online count) at once.
    pub fn connect(&mut self, id: ConnId, outbox: O) {
        let welcome = Event::shared(EventBody::Welcome {
            server: self.config.server_name.as_str().into(),
            online: self.online(),
        });
        if !outbox.push(&welcome) {
            return;
        }
        let now = now_ms();
        let p = Profile::default();
        let mut conn = Conn {
            outbox,
            nick: None,
            rooms: Vec::new(),
            user: p.user,
            realname: p.realname,
            host: p.host,
            auto_join: p.auto_join,
            mask: "*".into(),
            away: None,
            invisible: false,
            invites: Vec::new(),
            signon_ms: now,
            active_ms: now,
        };
        conn.update_mask();
        self.conns.insert(id, conn);
    }

    /// Sets who a connection is (username, real name, host) and whether it
    /// joins the default room on registering.
    pub fn set_profile(&mut self, id: ConnId, profile: Profile) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.user = profile.user;
            c.realname = profile.realname;
            c.host = profile.host;
            c.auto_join = profile.auto_join;
            c.update_mask();
        }
    }

    /// Why `nick` could not be taken by `id` right now (invalid or in use),
    /// as the refusal [`Command::Register`] would send; `None` if it could.
    pub fn nick_problem(&self, id: ConnId, nick: &str) -> Option<EventBody> {
        if let Err(why) = names::check_nick(nick, self.config.max_nick_chars) {
            return Some(refused(ErrorCode::NickInvalid, &[nick], why));
        }
        match self.nicks.get(&names::fold(nick)) {
            Some(&owner) if owner != id => Some(refused(
                ErrorCode::NickInUse,
                &[nick],
                format!("the nickname {nick} is taken"),
            )),
            _ => None,
        }
    }

    /// Sends one event to every connection (used for shutdown notices).
    pub fn broadcast(&mut self, body: EventBody) {
        let ev = Arc::new(Event::new(body));
        for c in self.conns.values() {
            c.outbox.push(&ev);
        }
    }

    /// The connection went away (closed, timed out, dropped): tell its rooms.
    pub fn disconnect(&mut self, id: ConnId, reason: &str) {
        self.remove(id, reason);
        self.reap();
    }

    /// Applies one command from connection `id`.
    pub fn handle(&mut self, id: ConnId, cmd: Command) -> Outcome {
        if !self.conns.contains_key(&id) {
            return Outcome::Close; // already removed (e.g. as a slow consumer)
        }
        let registered = self.conns.get(&id).is_some_and(|c| c.nick.is_some());
        match cmd {
            Command::Quit { reason } => {
                let reason = match reason {
                    Some(r) if !r.is_empty() => format!("quit: {r}"),
                    _ => "quit".to_string(),
                };
                self.reply(
                    id,
                    EventBody::Info {
                        text: "Goodbye!".into(),
                    },
                );
                self.remove(id, &cap(&reason, crate::proto::irc::REASON_LEN));
                self.reap();
                return Outcome::Close;
            }
            Command::Register { nick } => self.register(id, &nick),
            _ if !registered => {
                self.reply(id, error(ErrorCode::NotRegistered, "pick a nickname first"))
            }
            Command::Say { room, text, action } => self.say(id, room.as_deref(), text, action),
            Command::Private { to, text, action } => self.private(id, &to, text, action),
            Command::Notice { target, text } => self.notice(id, &target, text),
            Command::Join { room, switch } => self.join(id, &room, None, switch),
            Command::JoinWithKey { room, key, switch } => {
                self.join(id, &room, key.as_deref(), switch)
            }
            Command::Part { room, reason } => self.part(id, room.as_deref(), reason),
            Command::Who { room } => self.who(id, room.as_deref()),
            Command::Rooms => {
                let mut rooms: Vec<(Name, usize)> = self
                    .rooms
                    .values()
                    .map(|r| (r.name.clone(), r.members.len()))
                    .collect();
                rooms.sort();
                self.reply(id, EventBody::RoomList { rooms });
            }
            Command::Nick { new } => self.change_nick(id, &new),
            Command::Topic { room, text } => self.topic(id, &room, text),
            Command::RoomMode { room, changes } => self.room_mode(id, &room, changes),
            Command::UserMode { nick, modes } => self.user_mode(id, &nick, modes.as_deref()),
            Command::Kick { room, nick, reason } => self.kick(id, &room, &nick, reason),
            Command::Invite { nick, room } => self.invite(id, &nick, &room),
            Command::Away { text } => self.away(id, text),
            Command::Whois { nick } => self.whois(id, &nick),
            Command::WhoDetail { mask } => self.who_detail(id, &mask),
            Command::List { rooms } => self.list(id, rooms),
            Command::Lusers => self.lusers(id),
        }
        self.reap();
        Outcome::Continue
    }

    /// Sends an event to one connection.
    pub fn reply(&mut self, id: ConnId, body: EventBody) {
        self.send_one(id, &Arc::new(Event::new(body)));
    }

    fn send_one(&mut self, id: ConnId, ev: &Arc<Event>) {
        if let Some(c) = self.conns.get(&id) {
            if !c.outbox.push(ev) {
                self.overflowed.push(id);
            }
        }
    }

    fn send_to_room(&mut self, key: &str, ev: &Arc<Event>) {
        if let Some(room) = self.rooms.get(key) {
            for (id, m) in &room.members {
                if !m.outbox.push(ev) {
                    self.overflowed.push(*id);
                }
            }
        }
    }

    fn send_to(&mut self, audience: HashMap<ConnId, O>, ev: &Arc<Event>) {
        for (member, outbox) in audience {
            if !outbox.push(ev) {
                self.overflowed.push(member);
            }
        }
    }

    /// Everyone who shares a room with `id`, plus `id` itself. With
    /// `quiet_large`, rooms too large to announce presence in are skipped.
    fn audience(&self, id: ConnId, quiet_large: bool) -> HashMap<ConnId, O> {
        let mut out = HashMap::new();
        if let Some(c) = self.conns.get(&id) {
            out.insert(id, c.outbox.clone());
            for key in &c.rooms {
                match self.rooms.get(key) {
                    Some(room) if !(quiet_large && room.members.len() > self.config.large_room) => {
                        out.extend(room.members.iter().map(|(i, m)| (*i, m.outbox.clone())));
                    }
                    _ => {}
                }
            }
        }
        out
    }

    /// The IRC source (`nick!user@host`) of a connection.
    fn mask_of(&self, id: ConnId) -> Option<Arc<str>> {
        self.conns.get(&id).map(|c| c.mask.clone())
    }

    fn register(&mut self, id: ConnId, nick: &str) {
        if self.nick_of(id).is_some() {
            self.reply(
                id,
                error(
                    ErrorCode::AlreadyRegistered,
                    "you already have a nickname; use /nick to change it",
                ),
            );
            return;
        }
        if let Err(why) = names::check_nick(nick, self.config.max_nick_chars) {
            let message = format!("{why}. Pick another nickname:");
            return self.reply(id, refused(ErrorCode::NickInvalid, &[nick], message));
        }
        let key = names::fold(nick);
        if self.nicks.contains_key(&key) {
            let message = format!("the nickname {nick} is taken. Pick another nickname:");
            return self.reply(id, refused(ErrorCode::NickInUse, &[nick], message));
        }
        self.nicks.insert(key, id);
        let name: Name = nick.into();
        let mut auto_join = true;
        if let Some(c) = self.conns.get_mut(&id) {
            c.nick = Some(name.clone());
            c.update_mask();
            c.signon_ms = now_ms();
            c.active_ms = c.signon_ms;
            auto_join = c.auto_join;
        }
        let online = self.online();
        self.reply(id, EventBody::Registered { nick: name, online });
        if auto_join {
            let room = self.config.default_room.clone();
            self.join(id, &room, None, true);
        }
    }

    /// Resolves a room argument (`None`: the current room) to its folded key.
    fn current_room(&self, id: ConnId, room: Option<&str>) -> Result<String, EventBody> {
        let conn = self
            .conns
            .get(&id)
            .ok_or_else(|| error(ErrorCode::NotRegistered, "not connected"))?;
        match room {
            Some(r) => {
                let name = names::check_room(r, self.config.max_room_chars)
                    .map_err(|why| refused(ErrorCode::RoomInvalid, &[r], why))?;
                Ok(names::fold(name))
            }
            None => conn.rooms.last().cloned().ok_or_else(|| {
                refused(
                    ErrorCode::NotInRoom,
                    &["*"],
                    "you are not in a room; /join ROOM",
                )
            }),
        }
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_msg_id;
        self.next_msg_id += 1;
        id
    }

    fn say(&mut self, id: ConnId, room: Option<&str>, text: String, action: bool) {
        if text.trim().is_empty() {
            return self.reply(id, error(ErrorCode::EmptyMessage, "empty message"));
        }
        let key = match self.current_room(id, room) {
            Ok(k) => k,
            Err(e) => return self.reply(id, e),
        };
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let Some(r) = self.rooms.get(&key) else {
            let shown = format!("#{key}");
            let message = format!("you are not in {shown}");
            return self.reply(id, refused(ErrorCode::NotInRoom, &[&shown], message));
        };
        if let Err((code, message)) = r.may_speak(id, &conn.mask) {
            let shown = format!("#{}", r.name);
            return self.reply(id, refused(code, &[&shown], message));
        }
        let Some(from) = conn.nick.clone() else {
            return;
        };
        let member = r.members.contains_key(&id);
        let (room_name, source) = (r.name.clone(), conn.mask.clone());
        let msg_id = self.next_id();
        let ev = Event::by(
            Some(source),
            EventBody::Message {
                id: msg_id,
                room: room_name,
                from,
                text: text.into(),
                action,
            },
        );
        self.touch(id);
        self.send_to_room(&key, &ev);
        if !member {
            self.send_one(id, &ev); // an outsider (room is -n) still sees its line
        }
    }

    fn touch(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.active_ms = now_ms();
        }
    }

    fn private(&mut self, id: ConnId, to: &str, text: String, action: bool) {
        if text.trim().is_empty() {
            return self.reply(id, error(ErrorCode::EmptyMessage, "empty message"));
        }
        let Some(&target) = self.nicks.get(&names::fold(to)) else {
            let message = format!("nobody is called {to}");
            return self.reply(id, refused(ErrorCode::NoSuchNick, &[to], message));
        };
        let (Some(from), Some(to)) = (self.nick_of(id).cloned(), self.nick_of(target).cloned())
        else {
            return;
        };
        let away = self.conns.get(&target).and_then(|c| c.away.clone());
        let msg_id = self.next_id();
        let ev = Event::by(
            self.mask_of(id),
            EventBody::Private {
                id: msg_id,
                from,
                to: to.clone(),
                text: text.into(),
                action,
            },
        );
        self.touch(id);
        self.send_one(target, &ev);
        if target != id {
            self.send_one(id, &ev);
        }
        if let Some(text) = away {
            self.reply(id, EventBody::AwayReply { nick: to, text });
        }
    }

    /// A notice never produces an error reply; refused notices vanish.
    fn notice(&mut self, id: ConnId, target: &str, text: String) {
        if text.trim().is_empty() {
            return;
        }
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let (Some(from), source) = (conn.nick.clone(), conn.mask.clone()) else {
            return;
        };
        // Where it goes: a room (the sender too, if outside it) or one person
        // (and the sender, as confirmation).
        enum To {
            Room(String),
            Nick(ConnId),
        }
        let (dest, room, to, sender_copy) = if target.starts_with('#') {
            let Ok(name) = names::check_room(target, self.config.max_room_chars) else {
                return;
            };
            let key = names::fold(name);
            let Some(r) = self.rooms.get(&key) else {
                return;
            };
            if r.may_speak(id, &source).is_err() {
                return;
            }
            let outside = !r.members.contains_key(&id);
            (To::Room(key), Some(r.name.clone()), None, outside)
        } else {
            let Some(&target) = self.nicks.get(&names::fold(target)) else {
                return;
            };
            (
                To::Nick(target),
                None,
                self.nick_of(target).cloned(),
                target != id,
            )
        };
        let msg_id = self.next_id();
        let body = EventBody::Notice {
            id: msg_id,
            from,
            room,
            to,
            text: text.into(),
        };
        let ev = Event::by(Some(source), body);
        match dest {
            To::Room(key) => self.send_to_room(&key, &ev),
            To::Nick(target) => self.send_one(target, &ev),
        }
        if sender_copy {
            self.send_one(id, &ev);
        }
    }

    fn change_nick(&mut self, id: ConnId, new: &str) {
        if let Err(why) = names::check_nick(new, self.config.max_nick_chars) {
            return self.reply(id, refused(ErrorCode::NickInvalid, &[new], why));
        }
        let Some(old) = self.nick_of(id).cloned() else {
            return;
        };
        if *old == *new {
            return self.reply(
                id,
                EventBody::Info {
                    text: format!("you are already {new}").into(),
                },
            );
        }
        let (old_key, new_key) = (names::fold(&old), names::fold(new));
        if old_key != new_key && self.nicks.contains_key(&new_key) {
            let message = format!("the nickname {new} is taken");
            return self.reply(id, refused(ErrorCode::NickInUse, &[new], message));
        }
        let old_mask = self.mask_of(id);
        self.nicks.remove(&old_key);
        self.nicks.insert(new_key, id);
        let new: Name = new.into();
        if let Some(c) = self.conns.get_mut(&id) {
            c.nick = Some(new.clone());
            c.update_mask();
        }
        let ev = Event::by(old_mask, EventBody::NickChanged { old, new });
        let audience = self.audience(id, false);
        self.send_to(audience, &ev);
    }

    /// Marks `id` away or back, tells them, and tells who shares a room.
    fn away(&mut self, id: ConnId, text: Option<String>) {
        let text = text
            .filter(|t| !t.trim().is_empty())
            .map(|t| cap(&t, crate::proto::irc::AWAY_LEN));
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let changed = c.away != text;
        c.away = text.clone();
        let Some(nick) = c.nick.clone() else {
            return;
        };
        self.reply(
            id,
            EventBody::AwayStatus {
                away: text.is_some(),
            },
        );
        if changed {
            let ev = Event::by(self.mask_of(id), EventBody::Away { nick, text });
            let mut audience = self.audience(id, true);
            audience.remove(&id);
            self.send_to(audience, &ev);
        }
    }

    /// Shows or changes one's own user modes: only `+i` exists.
    fn user_mode(&mut self, id: ConnId, nick: &str, modes: Option<&str>) {
        let Some(own) = self.nick_of(id).cloned() else {
            return;
        };
        if names::fold(nick) != names::fold(&own) {
            let (code, message) = match self.nicks.contains_key(&names::fold(nick)) {
                true => (
                    ErrorCode::UsersDontMatch,
                    "you can only change your own modes",
                ),
                false => (ErrorCode::NoSuchNick, "nobody is called that"),
            };
            let about: &[&str] = match code {
                ErrorCode::NoSuchNick => &[nick],
                _ => &[],
            };
            return self.reply(id, refused(code, about, message));
        }
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let Some(modes) = modes else {
            let modes = if c.invisible { "+i" } else { "+" };
            return self.reply(
                id,
                EventBody::UserModes {
                    nick: own,
                    modes: modes.into(),
                    changed: false,
                },
            );
        };
        let mut add = true;
        let mut unknown = false;
        let mut applied = String::new();
        for ch in modes.chars() {
            match ch {
                '+' => add = true,
                '-' => add = false,
                'i' if c.invisible != add => {
                    c.invisible = add;
                    applied.push(if add { '+' } else { '-' });
                    applied.push('i');
                }
                'i' => {}
                _ => unknown = true,
            }
        }
        if unknown {
            self.reply(
                id,
                EventBody::Irc(Box::new(crate::proto::irc::Reply::numeric(
                    crate::proto::irc::numerics::ERR_UMODEUNKNOWNFLAG,
                    &["Unknown MODE flag"],
                ))),
            );
        }
        if !applied.is_empty() {
            self.reply(
                id,
                EventBody::UserModes {
                    nick: own,
                    modes: applied.into(),
                    changed: true,
                },
            );
        }
    }

    /// Frees everything `id` holds and tells the people who shared a room.
    fn remove(&mut self, id: ConnId, reason: &str) {
        let mut audience = self.audience(id, true);
        audience.remove(&id);
        let Some(conn) = self.conns.remove(&id) else {
            return;
        };
        let Some(nick) = conn.nick else { return };
        self.nicks.remove(&names::fold(&nick));
        for key in &conn.rooms {
            if let Some(room) = self.rooms.get_mut(key) {
                room.members.remove(&id);
                if room.members.is_empty() {
                    self.rooms.remove(key);
                }
            }
        }
        let ev = Event::by(
            Some(conn.mask),
            EventBody::Quit {
                nick,
                reason: reason.into(),
            },
        );
        self.send_to(audience, &ev);
    }

    /// Removes members whose queues overflowed, which may overflow others.
    fn reap(&mut self) {
        while let Some(id) = self.overflowed.pop() {
            self.remove(id, "send queue full (not reading)");
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_rooms;
