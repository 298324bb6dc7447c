//! Entering and leaving rooms, and what room operators do: topic, modes,
//! kick and invite. Every rule is checked here for every protocol.

use std::sync::Arc;

use super::room::{Member, Room};
use super::{cap, mask, names, refused, ConnId, Hub, Outbox, MAX_INVITES};
use crate::proto::irc::{BAN_MASK_LEN, KEY_LEN, MAX_BANS, REASON_LEN, TOPIC_LEN};
use crate::proto::{now_ms, BanInfo, ErrorCode, Event, EventBody, ModeChange, Name, TopicState};

impl<O: Outbox> Hub<O> {
    /// Enters `room` (creating it, with `id` as operator), checking bans,
    /// `+i`, `+k` and `+l` first. `switch`: leave every other room (text
    /// and JSON users are in one room at a time).
    pub(super) fn join(&mut self, id: ConnId, room: &str, key: Option<&str>, switch: bool) {
        let name = match names::check_room(room, self.config.max_room_chars) {
            Ok(n) => n.to_string(),
            Err(why) => return self.reply(id, refused(ErrorCode::RoomInvalid, &[room], why)),
        };
        let key_str = names::fold(&name);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if let Some(pos) = conn.rooms.iter().position(|r| *r == key_str) {
            let k = conn.rooms.remove(pos);
            conn.rooms.push(k); // make it current
            let display = self
                .rooms
                .get(&key_str)
                .map(|r| r.name.clone())
                .unwrap_or_else(|| name.as_str().into());
            return self.reply(
                id,
                EventBody::Info {
                    text: format!("you are in #{display}").into(),
                },
            );
        }
        if !switch && conn.rooms.len() >= self.config.max_rooms_per_user {
            let message = format!(
                "you are in {} rooms already (the most allowed)",
                conn.rooms.len()
            );
            return self.reply(
                id,
                refused(ErrorCode::TooManyRooms, &[&format!("#{name}")], message),
            );
        }
        let invited = conn.invites.contains(&key_str);
        if let Some(r) = self.rooms.get(&key_str) {
            if let Err((code, message)) = r.admits(&conn.mask, key, invited) {
                let shown = format!("#{}", r.name);
                return self.reply(id, refused(code, &[&shown], message));
            }
        }
        conn.invites.retain(|k| *k != key_str);
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
        conn.rooms.push(key_str.clone());
        let (outbox, source, away) = (conn.outbox.clone(), conn.mask.clone(), conn.away.clone());
        let room = self
            .rooms
            .entry(key_str.clone())
            .or_insert_with(|| Room::new(name.as_str().into()));
        let first = room.members.is_empty();
        room.members.insert(
            id,
            Member {
                outbox,
                op: first,
                voice: false,
            },
        );
        let members = room.members.len();
        let room_name = room.name.clone();
        let topic = room.topic.clone();
        let joined = Event::by(
            Some(source.clone()),
            EventBody::Joined {
                room: room_name.clone(),
                nick: nick.clone(),
                members,
            },
        );
        let large = members > self.config.large_room;
        if large {
            self.send_one(id, &joined);
        } else {
            self.send_to_room(&key_str, &joined);
            if let Some(text) = away {
                // away-notify: those already in the room learn the newcomer is away
                let ev = Event::by(
                    Some(source),
                    EventBody::Away {
                        nick,
                        text: Some(text),
                    },
                );
                let others: Vec<(ConnId, O)> = self.rooms.get(&key_str).map_or(Vec::new(), |r| {
                    r.members
                        .iter()
                        .filter(|(m, _)| **m != id)
                        .map(|(m, mem)| (*m, mem.outbox.clone()))
                        .collect()
                });
                self.send_to(others.into_iter().collect(), &ev);
            }
        }
        if topic.is_some() {
            self.reply(
                id,
                EventBody::TopicInfo {
                    room: room_name.clone(),
                    topic,
                },
            );
        }
        if large {
            let text = format!("#{room_name} has {members} people; /who lists them").into();
            self.reply(id, EventBody::Info { text });
        } else {
            self.who(id, Some(&key_str));
        }
    }

    /// Removes `id` from the room `key`, telling the room (and `id`).
    pub(super) fn leave_room(&mut self, id: ConnId, key: &str, reason: Option<Arc<str>>) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.rooms.retain(|r| r != key);
        let (Some(nick), source) = (conn.nick.clone(), conn.mask.clone()) else {
            return;
        };
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        room.members.remove(&id);
        let members = room.members.len();
        let ev = Event::by(
            Some(source),
            EventBody::Parted {
                room: room.name.clone(),
                nick,
                members,
                reason,
            },
        );
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

    pub(super) fn part(&mut self, id: ConnId, room: Option<&str>, reason: Option<String>) {
        match self.current_room(id, room) {
            Ok(key) if self.conns.get(&id).is_some_and(|c| c.rooms.contains(&key)) => {
                self.leave_room(id, &key, reason.map(|r| cap(&r, REASON_LEN)))
            }
            Ok(key) => {
                let shown = self.shown(&key);
                let message = format!("you are not in {shown}");
                let code = match self.rooms.contains_key(&key) {
                    true => ErrorCode::NotInRoom,
                    false => ErrorCode::NoSuchRoom,
                };
                self.reply(id, refused(code, &[&shown], message))
            }
            Err(e) => self.reply(id, e),
        }
    }

    /// `#Name` for a room key: the room's own spelling if it exists.
    pub(super) fn shown(&self, key: &str) -> String {
        match self.rooms.get(key) {
            Some(r) => format!("#{}", r.name),
            None => format!("#{key}"),
        }
    }

    /// Finds an existing room for a command that needs one; the error says
    /// why not (bad name, or no such room).
    fn existing_room(&self, room: &str) -> Result<String, EventBody> {
        let name = names::check_room(room, self.config.max_room_chars)
            .map_err(|why| refused(ErrorCode::RoomInvalid, &[room], why))?;
        let key = names::fold(name);
        match self.rooms.contains_key(&key) {
            true => Ok(key),
            false => Err(refused(
                ErrorCode::NoSuchRoom,
                &[&format!("#{name}")],
                format!("there is no room #{name}"),
            )),
        }
    }

    /// Checks that `id` is in room `key` (and an operator, with `need_op`).
    fn check_member(&self, id: ConnId, key: &str, need_op: bool) -> Result<(), EventBody> {
        let shown = self.shown(key);
        let Some(room) = self.rooms.get(key) else {
            return Err(refused(ErrorCode::NoSuchRoom, &[&shown], "no such room"));
        };
        match room.members.get(&id) {
            None => Err(refused(
                ErrorCode::NotInRoom,
                &[&shown],
                format!("you are not in {shown}"),
            )),
            Some(m) if need_op && !m.op => Err(refused(
                ErrorCode::ChanOpNeeded,
                &[&shown],
                format!("you need to be an operator (+o) in {shown}"),
            )),
            Some(_) => Ok(()),
        }
    }

    pub(super) fn topic(&mut self, id: ConnId, room: &str, text: Option<String>) {
        let key = match self.existing_room(room) {
            Ok(k) => k,
            Err(e) => return self.reply(id, e),
        };
        let Some(text) = text else {
            let Some(r) = self.rooms.get(&key) else {
                return;
            };
            let (room, topic) = (r.name.clone(), r.topic.clone());
            return self.reply(id, EventBody::TopicInfo { room, topic });
        };
        let need_op = self.rooms.get(&key).is_some_and(|r| r.modes.topic_ops);
        if let Err(e) = self.check_member(id, &key, need_op) {
            return self.reply(id, e);
        }
        let (Some(nick), source) = (self.nick_of(id).cloned(), self.mask_of(id)) else {
            return;
        };
        let topic = (!text.trim().is_empty()).then(|| cap(&text, TOPIC_LEN));
        let Some(r) = self.rooms.get_mut(&key) else {
            return;
        };
        r.topic = topic.clone().map(|text| TopicState {
            text,
            set_by: nick.clone(),
            set_at_ms: now_ms(),
        });
        let ev = Event::by(
            source,
            EventBody::TopicChanged {
                room: r.name.clone(),
                nick,
                topic,
            },
        );
        self.send_to_room(&key, &ev);
    }

    /// Shows or changes room modes. Showing (no changes) and listing bans
    /// (`+b` with no mask) need no status; changes need an operator.
    pub(super) fn room_mode(&mut self, id: ConnId, room: &str, changes: Vec<ModeChange>) {
        let key = match self.existing_room(room) {
            Ok(k) => k,
            Err(e) => return self.reply(id, e),
        };
        let Some(r) = self.rooms.get(&key) else {
            return;
        };
        let shown = format!("#{}", r.name);
        if changes.is_empty() {
            let member = r.members.contains_key(&id);
            let body = EventBody::RoomModes {
                room: r.name.clone(),
                modes: r.mode_list(member),
                created_ms: r.created_ms,
            };
            return self.reply(id, body);
        }
        let (lists, changes): (Vec<ModeChange>, Vec<ModeChange>) = changes
            .into_iter()
            .partition(|c| c.mode == 'b' && c.arg.is_none());
        if !lists.is_empty() {
            let body = EventBody::BanList {
                room: r.name.clone(),
                bans: r.bans.clone(),
            };
            self.reply(id, body);
        }
        if changes.is_empty() {
            return;
        }
        if let Err(e) = self.check_member(id, &key, true) {
            return self.reply(id, e);
        }
        let (Some(nick), source) = (self.nick_of(id).cloned(), self.mask_of(id)) else {
            return;
        };
        let mut applied = Vec::new();
        let mut problems = Vec::new();
        for c in changes {
            match self.apply_mode(&key, &nick, &c) {
                Ok(Some(done)) => applied.push(done),
                Ok(None) => {}
                Err(e) => problems.push(e),
            }
        }
        for p in problems {
            self.reply(id, p);
        }
        if applied.is_empty() {
            return;
        }
        let ev = Event::by(
            source,
            EventBody::ModeChanged {
                room: shown[1..].into(),
                nick,
                changes: applied,
            },
        );
        self.send_to_room(&key, &ev);
    }

    /// Applies one change to room `key`; `Ok(None)` when it changed nothing.
    fn apply_mode(
        &mut self,
        key: &str,
        by: &Name,
        c: &ModeChange,
    ) -> Result<Option<ModeChange>, EventBody> {
        let shown = self.shown(key);
        let need_arg = || {
            refused(
                ErrorCode::BadArguments,
                &["MODE"],
                format!("mode {} needs an argument", c.mode),
            )
        };
        let target = match (c.mode, &c.arg) {
            ('o' | 'v', Some(n)) => {
                let Some(&t) = self.nicks.get(&names::fold(n)) else {
                    return Err(refused(
                        ErrorCode::NoSuchNick,
                        &[n],
                        format!("nobody is called {n}"),
                    ));
                };
                Some(t)
            }
            ('o' | 'v', None) => return Err(need_arg()),
            _ => None,
        };
        let Some(r) = self.rooms.get_mut(key) else {
            return Ok(None);
        };
        let done = |arg: Option<Arc<str>>| {
            Ok(Some(ModeChange {
                add: c.add,
                mode: c.mode,
                arg,
            }))
        };
        match c.mode {
            'i' | 'm' | 'n' | 't' => match r.set_flag(c.mode, c.add) {
                true => done(None),
                false => Ok(None),
            },
            'o' | 'v' => {
                let (Some(t), Some(n)) = (target, &c.arg) else {
                    return Err(need_arg());
                };
                let Some(m) = r.members.get_mut(&t) else {
                    return Err(refused(
                        ErrorCode::UserNotInRoom,
                        &[n, &shown],
                        format!("{n} is not in {shown}"),
                    ));
                };
                let slot = if c.mode == 'o' {
                    &mut m.op
                } else {
                    &mut m.voice
                };
                if std::mem::replace(slot, c.add) == c.add {
                    return Ok(None);
                }
                let nick = self.nick_of(t).cloned().unwrap_or_else(|| n.clone());
                done(Some(nick))
            }
            'k' if c.add => {
                let Some(k) = &c.arg else {
                    return Err(need_arg());
                };
                if k.is_empty()
                    || k.len() > KEY_LEN
                    || k.contains([' ', ','])
                    || k.contains(char::is_control)
                {
                    return Err(refused(
                        ErrorCode::BadArguments,
                        &["MODE"],
                        format!("a room key is 1 to {KEY_LEN} bytes, no spaces or commas"),
                    ));
                }
                r.modes.key = Some(k.clone());
                done(Some(k.clone()))
            }
            'k' => match r.modes.key.take() {
                Some(_) => done(Some("*".into())),
                None => Ok(None),
            },
            'l' if c.add => {
                let Some(n) = c.arg.as_deref().and_then(|a| a.parse::<usize>().ok()) else {
                    return Err(need_arg());
                };
                if n == 0 || r.modes.limit == Some(n) {
                    return Ok(None);
                }
                r.modes.limit = Some(n);
                done(Some(n.to_string().into()))
            }
            'l' => match r.modes.limit.take() {
                Some(_) => done(None),
                None => Ok(None),
            },
            'b' => {
                let Some(raw) = &c.arg else {
                    return Ok(None);
                };
                let Some(m) = mask::normalize(raw) else {
                    return Err(refused(
                        ErrorCode::BadArguments,
                        &["MODE"],
                        format!("a ban mask is nick!user@host, at most {BAN_MASK_LEN} bytes"),
                    ));
                };
                let pos = r
                    .bans
                    .iter()
                    .position(|b| names::fold(&b.mask) == names::fold(&m));
                match (c.add, pos) {
                    (true, Some(_)) | (false, None) => Ok(None),
                    (true, None) if r.bans.len() >= MAX_BANS => Err(refused(
                        ErrorCode::ListFull,
                        &[&shown, &m],
                        format!("the ban list of {shown} is full ({MAX_BANS})"),
                    )),
                    (true, None) => {
                        let m: Arc<str> = m.into();
                        r.bans.push(BanInfo {
                            mask: m.clone(),
                            set_by: by.clone(),
                            set_at_ms: now_ms(),
                        });
                        done(Some(m))
                    }
                    (false, Some(i)) => {
                        let b = r.bans.remove(i);
                        done(Some(b.mask))
                    }
                }
            }
            other => Err(refused(
                ErrorCode::UnknownMode,
                &[&other.to_string()],
                format!("unknown mode {other}"),
            )),
        }
    }

    pub(super) fn kick(&mut self, id: ConnId, room: &str, nick: &str, reason: Option<String>) {
        let key = match self.existing_room(room) {
            Ok(k) => k,
            Err(e) => return self.reply(id, e),
        };
        if let Err(e) = self.check_member(id, &key, true) {
            return self.reply(id, e);
        }
        let Some(&target) = self.nicks.get(&names::fold(nick)) else {
            let message = format!("nobody is called {nick}");
            return self.reply(id, refused(ErrorCode::NoSuchNick, &[nick], message));
        };
        let shown = self.shown(&key);
        let Some(r) = self.rooms.get(&key) else {
            return;
        };
        if !r.members.contains_key(&target) {
            let message = format!("{nick} is not in {shown}");
            return self.reply(
                id,
                refused(ErrorCode::UserNotInRoom, &[nick, &shown], message),
            );
        }
        let (Some(by), Some(target_nick)) =
            (self.nick_of(id).cloned(), self.nick_of(target).cloned())
        else {
            return;
        };
        let room_name = r.name.clone();
        let members = r.members.len() - 1;
        let ev = Event::by(
            self.mask_of(id),
            EventBody::Kicked {
                room: room_name,
                nick: by,
                target: target_nick,
                reason: reason.map(|r| cap(&r, REASON_LEN)),
                members,
            },
        );
        self.send_to_room(&key, &ev);
        if let Some(c) = self.conns.get_mut(&target) {
            c.rooms.retain(|r| *r != key);
        }
        if let Some(r) = self.rooms.get_mut(&key) {
            r.members.remove(&target);
            if r.members.is_empty() {
                self.rooms.remove(&key);
            }
        }
    }

    pub(super) fn invite(&mut self, id: ConnId, nick: &str, room: &str) {
        let Some(&target) = self.nicks.get(&names::fold(nick)) else {
            let message = format!("nobody is called {nick}");
            return self.reply(id, refused(ErrorCode::NoSuchNick, &[nick], message));
        };
        let key = match self.existing_room(room) {
            Ok(k) => k,
            Err(e) => return self.reply(id, e),
        };
        let need_op = self.rooms.get(&key).is_some_and(|r| r.modes.invite_only);
        if let Err(e) = self.check_member(id, &key, need_op) {
            return self.reply(id, e);
        }
        let shown = self.shown(&key);
        let Some(r) = self.rooms.get(&key) else {
            return;
        };
        let room_name = r.name.clone();
        if r.members.contains_key(&target) {
            let message = format!("{nick} is already in {shown}");
            return self.reply(id, refused(ErrorCode::UserInRoom, &[nick, &shown], message));
        }
        let (Some(by), Some(target_nick)) =
            (self.nick_of(id).cloned(), self.nick_of(target).cloned())
        else {
            return;
        };
        if let Some(c) = self.conns.get_mut(&target) {
            if !c.invites.contains(&key) {
                if c.invites.len() >= MAX_INVITES {
                    c.invites.remove(0);
                }
                c.invites.push(key);
            }
        }
        let ev = Event::by(
            self.mask_of(id),
            EventBody::Invited {
                room: room_name,
                nick: by,
                target: target_nick,
            },
        );
        self.send_one(target, &ev);
        if target != id {
            self.send_one(id, &ev);
        }
    }
}
