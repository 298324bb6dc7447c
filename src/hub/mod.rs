//! The chat state machine: who is connected, which nick is taken, who is in
//! which room. It is the only place that changes that state, and it does no
//! I/O: events go to each member's [`Outbox`], which the server backs with a
//! bounded queue and the tests with a vector.
//!
//! Slow consumers: when an outbox refuses an event (its queue is full), the
//! member is removed with the reason "send queue full" once the current
//! operation is done, and the rest of the room carries on.

pub mod names;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use crate::proto::{Command, ErrorCode, Event, EventBody, Name};

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
}

impl HubConfig {
    pub fn from_config(c: &crate::config::Config) -> HubConfig {
        HubConfig {
            server_name: c.server_name.clone(),
            default_room: c.default_room.clone(),
            max_nick_chars: c.max_nick_chars,
            max_room_chars: c.max_room_chars,
            large_room: c.large_room,
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

struct Conn<O> {
    outbox: O,
    nick: Option<Name>,
    /// Folded keys of the rooms this member is in; the last is the current one.
    rooms: Vec<String>,
}

struct Room<O> {
    name: Name,
    members: HashMap<ConnId, O>,
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
    EventBody::Error {
        code,
        message: message.into(),
    }
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
        self.conns.insert(
            id,
            Conn {
                outbox,
                nick: None,
                rooms: Vec::new(),
            },
        );
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
        let outcome = match cmd {
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
                self.remove(id, &reason);
                Outcome::Close
            }
            Command::Register { nick } => {
                self.register(id, &nick);
                Outcome::Continue
            }
            _ if !registered => {
                self.reply(id, error(ErrorCode::NotRegistered, "pick a nickname first"));
                Outcome::Continue
            }
            Command::Say { room, text, action } => {
                self.say(id, room.as_deref(), text, action);
                Outcome::Continue
            }
            Command::Private { to, text, action } => {
                self.private(id, &to, text, action);
                Outcome::Continue
            }
            Command::Join { room, switch } => {
                self.join(id, &room, switch);
                Outcome::Continue
            }
            Command::Part { room, reason } => {
                self.part(id, room.as_deref(), reason);
                Outcome::Continue
            }
            Command::Who { room } => {
                self.who(id, room.as_deref());
                Outcome::Continue
            }
            Command::Rooms => {
                let mut rooms: Vec<(Name, usize)> = self
                    .rooms
                    .values()
                    .map(|r| (r.name.clone(), r.members.len()))
                    .collect();
                rooms.sort();
                self.reply(id, EventBody::RoomList { rooms });
                Outcome::Continue
            }
            Command::Nick { new } => {
                self.change_nick(id, &new);
                Outcome::Continue
            }
        };
        self.reap();
        outcome
    }

    /// Sends an event to one connection.
    pub fn reply(&mut self, id: ConnId, body: EventBody) {
        if let Some(c) = self.conns.get(&id) {
            if !c.outbox.push(&Arc::new(Event::new(body))) {
                self.overflowed.push(id);
            }
        }
    }

    fn send_to_room(&mut self, key: &str, ev: &Arc<Event>) {
        if let Some(room) = self.rooms.get(key) {
            for (id, outbox) in &room.members {
                if !outbox.push(ev) {
                    self.overflowed.push(*id);
                }
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
                        out.extend(room.members.iter().map(|(i, o)| (*i, o.clone())));
                    }
                    _ => {}
                }
            }
        }
        out
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
            self.reply(
                id,
                error(
                    ErrorCode::NickInvalid,
                    format!("{why}. Pick another nickname:"),
                ),
            );
            return;
        }
        let key = names::fold(nick);
        if self.nicks.contains_key(&key) {
            self.reply(
                id,
                error(
                    ErrorCode::NickInUse,
                    format!("the nickname {nick} is taken. Pick another nickname:"),
                ),
            );
            return;
        }
        self.nicks.insert(key, id);
        let name: Name = nick.into();
        if let Some(c) = self.conns.get_mut(&id) {
            c.nick = Some(name.clone());
        }
        let online = self.online();
        self.reply(id, EventBody::Registered { nick: name, online });
        let room = self.config.default_room.clone();
        self.join(id, &room, true);
    }

    fn join(&mut self, id: ConnId, room: &str, switch: bool) {
        let name = match names::check_room(room, self.config.max_room_chars) {
            Ok(n) => n.to_string(),
            Err(why) => return self.reply(id, error(ErrorCode::RoomInvalid, why)),
        };
        let key = names::fold(&name);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if let Some(pos) = conn.rooms.iter().position(|r| *r == key) {
            let k = conn.rooms.remove(pos);
            conn.rooms.push(k); // make it current
            let display = self
                .rooms
                .get(&key)
                .map(|r| r.name.clone())
                .unwrap_or_else(|| name.as_str().into());
            return self.reply(
                id,
                EventBody::Info {
                    text: format!("you are in #{display}").into(),
                },
            );
        }
        if switch {
            for old in conn.rooms.clone() {
                self.leave_room(id, &old, None);
            }
        }
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let Some(nick) = conn.nick.clone() else {
            return;
        };
        conn.rooms.push(key.clone());
        let outbox = conn.outbox.clone();
        let room = self.rooms.entry(key.clone()).or_insert_with(|| Room {
            name: name.as_str().into(),
            members: HashMap::new(),
        });
        room.members.insert(id, outbox);
        let members = room.members.len();
        let room_name = room.name.clone();
        let joined = Arc::new(Event::new(EventBody::Joined {
            room: room_name.clone(),
            nick,
            members,
        }));
        if members > self.config.large_room {
            self.send_one(id, &joined);
            let text = format!("#{room_name} has {members} people; /who lists them").into();
            self.reply(id, EventBody::Info { text });
        } else {
            self.send_to_room(&key, &joined);
            self.who(id, Some(&key));
        }
    }

    fn send_one(&mut self, id: ConnId, ev: &Arc<Event>) {
        if let Some(c) = self.conns.get(&id) {
            if !c.outbox.push(ev) {
                self.overflowed.push(id);
            }
        }
    }

    /// Removes `id` from the room `key`, telling the room (and `id`).
    fn leave_room(&mut self, id: ConnId, key: &str, reason: Option<Arc<str>>) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.rooms.retain(|r| r != key);
        let Some(nick) = conn.nick.clone() else {
            return;
        };
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        room.members.remove(&id);
        let members = room.members.len();
        let ev = Arc::new(Event::new(EventBody::Parted {
            room: room.name.clone(),
            nick,
            members,
            reason,
        }));
        if members >= self.config.large_room {
            self.send_one(id, &ev);
        } else {
            self.send_to_room(key, &ev);
            self.send_one(id, &ev);
        }
        if members == 0 {
            self.rooms.remove(key);
        }
    }

    fn current_room(&self, id: ConnId, room: Option<&str>) -> Result<String, EventBody> {
        let conn = self
            .conns
            .get(&id)
            .ok_or_else(|| error(ErrorCode::NotRegistered, "not connected"))?;
        match room {
            Some(r) => {
                let name = names::check_room(r, self.config.max_room_chars)
                    .map_err(|why| error(ErrorCode::RoomInvalid, why))?;
                Ok(names::fold(name))
            }
            None => conn
                .rooms
                .last()
                .cloned()
                .ok_or_else(|| error(ErrorCode::NotInRoom, "you are not in a room; /join ROOM")),
        }
    }

    fn part(&mut self, id: ConnId, room: Option<&str>, reason: Option<String>) {
        match self.current_room(id, room) {
            Ok(key) if self.conns.get(&id).is_some_and(|c| c.rooms.contains(&key)) => {
                self.leave_room(id, &key, reason.map(Into::into))
            }
            Ok(key) => self.reply(
                id,
                error(ErrorCode::NotInRoom, format!("you are not in #{key}")),
            ),
            Err(e) => self.reply(id, e),
        }
    }

    fn who(&mut self, id: ConnId, room: Option<&str>) {
        let key = match self.current_room(id, room) {
            Ok(k) => k,
            Err(e) => return self.reply(id, e),
        };
        let Some(r) = self.rooms.get(&key) else {
            return self.reply(
                id,
                error(ErrorCode::NoSuchRoom, format!("there is no room #{key}")),
            );
        };
        let mut nicks: Vec<Name> = r
            .members
            .keys()
            .filter_map(|m| self.conns.get(m)?.nick.clone())
            .collect();
        nicks.sort_by_key(|n| names::fold(n));
        let room = r.name.clone();
        self.reply(id, EventBody::Names { room, nicks });
    }

    fn say(&mut self, id: ConnId, room: Option<&str>, text: String, action: bool) {
        if text.trim().is_empty() {
            return self.reply(id, error(ErrorCode::EmptyMessage, "empty message"));
        }
        let key = match self.current_room(id, room) {
            Ok(k) => k,
            Err(e) => return self.reply(id, e),
        };
        let (Some(conn), Some(room)) = (self.conns.get(&id), self.rooms.get(&key)) else {
            return self.reply(
                id,
                error(ErrorCode::NotInRoom, format!("you are not in #{key}")),
            );
        };
        if !conn.rooms.contains(&key) {
            return self.reply(
                id,
                error(
                    ErrorCode::NotInRoom,
                    format!("you are not in #{}", room.name),
                ),
            );
        }
        let Some(from) = conn.nick.clone() else {
            return;
        };
        let msg_id = self.next_msg_id;
        self.next_msg_id += 1;
        let ev = Arc::new(Event::new(EventBody::Message {
            id: msg_id,
            room: room.name.clone(),
            from,
            text: text.into(),
            action,
        }));
        self.send_to_room(&key, &ev);
    }

    fn private(&mut self, id: ConnId, to: &str, text: String, action: bool) {
        if text.trim().is_empty() {
            return self.reply(id, error(ErrorCode::EmptyMessage, "empty message"));
        }
        let Some(&target) = self.nicks.get(&names::fold(to)) else {
            return self.reply(
                id,
                error(ErrorCode::NoSuchNick, format!("nobody is called {to}")),
            );
        };
        let (Some(from), Some(to)) = (self.nick_of(id).cloned(), self.nick_of(target).cloned())
        else {
            return;
        };
        let msg_id = self.next_msg_id;
        self.next_msg_id += 1;
        let ev = Arc::new(Event::new(EventBody::Private {
            id: msg_id,
            from,
            to,
            text: text.into(),
            action,
        }));
        self.send_one(target, &ev);
        if target != id {
            self.send_one(id, &ev);
        }
    }

    fn change_nick(&mut self, id: ConnId, new: &str) {
        if let Err(why) = names::check_nick(new, self.config.max_nick_chars) {
            return self.reply(id, error(ErrorCode::NickInvalid, why));
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
            return self.reply(
                id,
                error(ErrorCode::NickInUse, format!("the nickname {new} is taken")),
            );
        }
        self.nicks.remove(&old_key);
        self.nicks.insert(new_key, id);
        let new: Name = new.into();
        if let Some(c) = self.conns.get_mut(&id) {
            c.nick = Some(new.clone());
        }
        let ev = Arc::new(Event::new(EventBody::NickChanged { old, new }));
        for (member, outbox) in self.audience(id, false) {
            if !outbox.push(&ev) {
                self.overflowed.push(member);
            }
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
        let ev = Arc::new(Event::new(EventBody::Quit {
            nick,
            reason: reason.into(),
        }));
        for (member, outbox) in audience {
            if !outbox.push(&ev) {
                self.overflowed.push(member);
            }
        }
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
