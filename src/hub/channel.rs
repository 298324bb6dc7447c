//! Entering and leaving rooms, and what room operators do: topic, modes,
//! kick and invite. Every rule is checked here for every protocol.

use std::sync::Arc;

use super::room::Member;
use super::{cap, mask, names, query, refusal, Audience, ChatState};
use crate::proto::{
    now_ms, BanInfo, ConnId, ErrorCode, Event, EventBody, FactBody, ModeChange, Name, Refusal,
    TopicState,
};

impl ChatState {
    /// Enters `room` (creating it, with `id` as operator), checking bans,
    /// `+i`, `+k` and `+l` first. `switch`: leave every other room (text
    /// and JSON users are in one room at a time).
    pub(super) fn join(&mut self, id: ConnId, room: &str, key: Option<&str>, switch: bool) {
        let name = match names::check_room(room, self.config.max_room_chars) {
            Ok(n) => n.to_string(),
            Err(why) => {
                let refusal = Refusal::new(ErrorCode::RoomInvalid).room(room).detail(why);
                return self.refuse(id, refusal);
            }
        };
        let key_str = self.key_of(&name);
        let founder_op = self.founder_op(&key_str, id);
        let max_rooms = self.config.max_rooms_per_user;
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
            let text = format!("you are in #{display}").into();
            return self.reply(id, EventBody::Info { text });
        }
        if !switch && conn.rooms.len() >= max_rooms {
            let detail = format!(
                "you are in {} rooms already (the most allowed)",
                conn.rooms.len()
            );
            let refusal = refusal(ErrorCode::TooManyRooms, detail).room(&name);
            return self.refuse(id, refusal);
        }
        let invited = conn.rare().invites.contains(&key_str);
        let mask = conn.mask.clone();
        let admitted = match self.rooms.get(&key_str) {
            Some(r) => r.admits(&mask, key, invited),
            // A registered room keeps its rules while nobody is in it.
            None => self.registered_admits(&key_str, &mask, key, invited),
        };
        if let Err(refusal) = admitted {
            return self.refuse(id, refusal);
        }
        if !self.rooms.contains_key(&key_str) {
            if let Some(refusal) = self.may_not_create(id, &name) {
                return self.refuse(id, refusal);
            }
        }
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if let Some(rare) = conn.rare.as_deref_mut() {
            rare.invites.retain(|k| *k != key_str);
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
        // Exactly one more slot: most people are in one room or a few, and
        // a `Vec`'s first growth would give four (64 bytes, not 16).
        conn.rooms.reserve_exact(1);
        conn.rooms.push(key_str.clone());
        let (source, away) = (conn.mask.clone(), conn.rare().away.clone());
        let room = self.new_room(&key_str, &name);
        let first = room.members().is_empty();
        if first && names::fold(&name) != names::fold(&self.config.default_room) {
            self.created_room(id);
        }
        let large = self.config.large_room;
        let Some(room) = self.rooms.get_mut(&key_str) else {
            return;
        };
        let conns = &self.conns;
        let member = Member {
            op: founder_op.unwrap_or(first),
            voice: false,
        };
        let at = room.add_member_at(id, member, |order| query::names_place(conns, order, id));
        if let Some(at) = at {
            let card = conns
                .get(&id)
                .and_then(|c| query::info_of(c, member.op, member.voice));
            room.insert_card(at, card);
        }
        let members = room.members().len();
        if members > large {
            room.set_names_order(None);
        } else if room.names_order().is_none() {
            let order = query::names_sorted(conns, room);
            room.set_names_order(Some(order));
        }
        let room_name = room.name.clone();
        let topic = room.topic.clone();
        let at_ms = self
            .fact(id, Some(&key_str), FactBody::Joined { nick: nick.clone() })
            .at_ms;
        let joined = Event::by(
            Some(source.clone()),
            EventBody::Joined {
                room: room_name.clone(),
                nick: nick.clone(),
                members,
            },
        )
        .at(at_ms)
        .with_actor(self.actor(id));
        let large = members > self.config.large_room;
        if large {
            self.send(Audience::Conn(id), joined);
        } else {
            self.send(Audience::Room(key_str.clone()), joined);
            if let Some(text) = away {
                // away-notify: those already in the room learn the newcomer is away
                let text = Some(text);
                let ev = Event::by(Some(source), EventBody::Away { nick, text });
                self.send(Audience::RoomExcept(key_str.clone(), id), ev);
            }
        }
        if topic.is_some() {
            let room = room_name.clone();
            self.reply(id, EventBody::TopicInfo { room, topic });
        }
        if large {
            let text = format!("#{room_name} has {members} people; /who lists them").into();
            self.reply(id, EventBody::Info { text });
        } else {
            self.who(id, Some(&room_name));
        }
        self.remember_room(id, &key_str, key);
    }

    /// Why `id` may not create the room `name` now: the server has
    /// `max_rooms`, or `id` created `rooms_per_minute` in the last minute.
    fn may_not_create(&self, id: ConnId, name: &str) -> Option<Refusal> {
        let limit = |detail: String| Some(refusal(ErrorCode::RoomLimit, detail).room(name));
        if names::fold(name) == names::fold(&self.config.default_room) {
            return None; // newcomers always have somewhere to go
        }
        let per_minute = match self.rejoining {
            true => 0, // back in rooms they were in, not new ones
            false => self.config.rooms_per_minute,
        };
        if self.rooms.len() >= self.config.max_rooms {
            let max = self.config.max_rooms;
            return limit(format!(
                "the server has {max} rooms, the most it holds; join one of them"
            ));
        }
        let c = self.conns.get(&id)?.rare();
        let window_open = now_ms().saturating_sub(c.created_since_ms) < 60_000;
        if per_minute > 0 && window_open && c.created >= per_minute {
            return limit(format!(
                "you created {per_minute} rooms within a minute, the most allowed; try again shortly"
            ));
        }
        None
    }

    /// Counts a room `id` just created against `rooms_per_minute`.
    fn created_room(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id) {
            let (c, now) = (c.rare_mut(), now_ms());
            if now.saturating_sub(c.created_since_ms) >= 60_000 {
                (c.created, c.created_since_ms) = (0, now);
            }
            c.created += 1;
        }
    }

    /// Removes `id` from the room `key`, telling the room (and `id`).
    pub(super) fn leave_room(&mut self, id: ConnId, key: &Name, reason: Option<Arc<str>>) {
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
        room.remove_member(id);
        let members = room.members().len();
        let room_name = room.name.clone();
        let body = FactBody::Parted {
            nick: nick.clone(),
            reason: reason.clone(),
        };
        let at_ms = self.fact(id, Some(key), body).at_ms;
        let ev = Event::by(
            Some(source),
            EventBody::Parted {
                room: room_name,
                nick,
                members,
                reason,
            },
        )
        .at(at_ms);
        self.send(Audience::Conn(id), ev.clone());
        if members < self.config.large_room {
            self.send(Audience::Room(key.clone()), ev);
        }
        if members == 0 {
            self.drop_room(key);
        }
    }

    pub(super) fn part(&mut self, id: ConnId, room: Option<&str>, reason: Option<String>) {
        match self.current_room(id, room) {
            Ok(key) if self.conns.get(&id).is_some_and(|c| c.rooms.contains(&key)) => {
                let reason = reason.map(|r| cap(&r, self.config.reason_len));
                self.leave_room(id, &key, reason);
                self.forget_room(id, &key);
            }
            Ok(key) => {
                let code = match self.rooms.contains_key(&key) {
                    true => ErrorCode::NotInRoom,
                    false => ErrorCode::NoSuchRoom,
                };
                let refusal = Refusal::new(code).room(&self.shown(&key));
                self.refuse(id, refusal)
            }
            Err(e) => self.refuse(id, e),
        }
    }

    /// The name of a room key as people see it: the room's own spelling if
    /// it exists, else the key.
    pub(super) fn shown(&self, key: &str) -> Name {
        match self.rooms.get(key) {
            Some(r) => r.name.clone(),
            None => key.into(),
        }
    }

    /// Finds an existing room for a command that needs one; the error says
    /// why not (bad name, or no such room).
    fn existing_room(&self, room: &str) -> Result<Name, Refusal> {
        let name = names::check_room(room, self.config.max_room_chars)
            .map_err(|why| Refusal::new(ErrorCode::RoomInvalid).room(room).detail(why))?;
        let key = self.key_of(name);
        match self.rooms.contains_key(&key) {
            true => Ok(key),
            false => Err(Refusal::new(ErrorCode::NoSuchRoom).room(name)),
        }
    }

    /// Checks that `id` is in room `key` (and an operator, with `need_op`).
    pub(super) fn check_member(&self, id: ConnId, key: &str, need_op: bool) -> Result<(), Refusal> {
        let shown = self.shown(key);
        let Some(room) = self.rooms.get(key) else {
            return Err(Refusal::new(ErrorCode::NoSuchRoom).room(&shown));
        };
        match room.members().get(&id) {
            None => Err(Refusal::new(ErrorCode::NotInRoom).room(&shown)),
            Some(m) if need_op && !m.op => Err(Refusal::new(ErrorCode::ChanOpNeeded).room(&shown)),
            Some(_) => Ok(()),
        }
    }

    pub(super) fn topic(&mut self, id: ConnId, room: &str, text: Option<String>) {
        let key = match self.existing_room(room) {
            Ok(k) => k,
            Err(e) => return self.refuse(id, e),
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
            return self.refuse(id, e);
        }
        let (Some(nick), source) = (self.nick_of(id).cloned(), self.mask_of(id)) else {
            return;
        };
        let topic = (!text.trim().is_empty()).then(|| cap(&text, self.config.topic_len));
        let body = FactBody::TopicSet {
            nick: nick.clone(),
            topic: topic.clone(),
        };
        let (msg_id, at_ms) = {
            let f = self.fact(id, Some(&key), body);
            (f.id, f.at_ms)
        };
        let Some(r) = self.rooms.get_mut(&key) else {
            return;
        };
        r.topic = topic.clone().map(|text| TopicState {
            text,
            set_by: nick.clone(),
            set_at_ms: at_ms,
        });
        let body = EventBody::TopicChanged {
            id: msg_id,
            room: r.name.clone(),
            nick,
            topic,
        };
        self.room_changed(&key);
        self.send(Audience::Room(key), Event::by(source, body).at(at_ms));
    }

    /// Shows or changes room modes. Showing (no changes) and listing bans
    /// (`+b` with no mask) need no status; changes need an operator.
    pub(super) fn room_mode(&mut self, id: ConnId, room: &str, changes: Vec<ModeChange>) {
        let key = match self.existing_room(room) {
            Ok(k) => k,
            Err(e) => return self.refuse(id, e),
        };
        let Some(r) = self.rooms.get(&key) else {
            return;
        };
        let room_name = r.name.clone();
        if changes.is_empty() {
            let member = r.members().contains_key(&id);
            let body = EventBody::RoomModes {
                room: room_name,
                modes: r.mode_list(member),
                created_ms: r.created_ms,
            };
            return self.reply(id, body);
        }
        let (lists, changes): (Vec<ModeChange>, Vec<ModeChange>) = changes
            .into_iter()
            .partition(|c| r.list(c.mode).is_some() && c.arg.is_none());
        let lists: Vec<EventBody> = lists
            .into_iter()
            .map(|asked| EventBody::BanList {
                room: room_name.clone(),
                mode: asked.mode,
                bans: r.list(asked.mode).cloned().unwrap_or_default(),
            })
            .collect();
        for body in lists {
            self.reply(id, body);
        }
        if changes.is_empty() {
            return;
        }
        if let Err(e) = self.check_member(id, &key, true) {
            return self.refuse(id, e);
        }
        let (Some(nick), source) = (self.nick_of(id).cloned(), self.mask_of(id)) else {
            return;
        };
        let mut applied = Vec::new();
        for c in changes {
            match self.apply_mode(&key, &nick, &c) {
                Ok(Some(done)) => applied.push(done),
                Ok(None) => {}
                Err(e) => self.refuse(id, e),
            }
        }
        if applied.is_empty() {
            return;
        }
        let body = FactBody::ModesChanged {
            nick: nick.clone(),
            changes: applied.clone(),
        };
        let at_ms = self.fact(id, Some(&key), body).at_ms;
        let body = EventBody::ModeChanged {
            room: room_name,
            nick,
            changes: applied,
        };
        self.room_changed(&key);
        self.send(Audience::Room(key), Event::by(source, body).at(at_ms));
    }

    /// Applies one change to room `key`; `Ok(None)` when it changed nothing.
    pub(super) fn apply_mode(
        &mut self,
        key: &str,
        by: &Name,
        c: &ModeChange,
    ) -> Result<Option<ModeChange>, Refusal> {
        let shown = self.shown(key);
        let cfg = &self.config;
        let (key_len, ban_mask_len, max_bans) = (cfg.key_len, cfg.ban_mask_len, cfg.max_bans);
        let need_arg = || {
            refusal(
                ErrorCode::BadArguments,
                format!("mode {} needs an argument", c.mode),
            )
            .command("MODE")
        };
        let target = match (c.mode, &c.arg) {
            ('o' | 'v', Some(n)) => {
                let Some(&t) = self.nicks.get(&*names::fold(n)) else {
                    return Err(Refusal::new(ErrorCode::NoSuchNick).nick(n));
                };
                Some(t)
            }
            ('o' | 'v', None) => return Err(need_arg()),
            _ => None,
        };
        let target_nick = target.and_then(|t| self.nick_of(t).cloned());
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
            'i' | 'm' | 'n' | 'p' | 's' | 't' => match r.set_flag(c.mode, c.add) {
                true => done(None),
                false => Ok(None),
            },
            'o' | 'v' => {
                let (Some(t), Some(n)) = (target, &c.arg) else {
                    return Err(need_arg());
                };
                let Some(m) = r.member_mut(t) else {
                    let refusal = Refusal::new(ErrorCode::UserNotInRoom);
                    return Err(refusal.nick(n).room(&shown));
                };
                let slot = if c.mode == 'o' {
                    &mut m.op
                } else {
                    &mut m.voice
                };
                if std::mem::replace(slot, c.add) == c.add {
                    return Ok(None);
                }
                done(Some(target_nick.unwrap_or_else(|| n.clone())))
            }
            'k' if c.add => {
                let Some(k) = &c.arg else {
                    return Err(need_arg());
                };
                if k.is_empty()
                    || k.len() > key_len
                    || k.contains([' ', ','])
                    || k.contains(char::is_control)
                {
                    let detail = format!("a room key is 1 to {key_len} bytes, no spaces or commas");
                    let refusal = refusal(ErrorCode::InvalidModeParam, detail);
                    return Err(refusal.room(&shown).mode('k').value("*"));
                }
                r.modes.key = Some(k.clone());
                done(Some(k.clone()))
            }
            'k' => match r.modes.key.take() {
                Some(_) => done(Some("*".into())),
                None => Ok(None),
            },
            'l' if c.add => {
                let Some(arg) = c.arg.as_deref() else {
                    return Err(need_arg());
                };
                let Ok(n) = arg.parse::<usize>() else {
                    let detail = "a room limit is a positive number";
                    let shown_arg = match arg.is_empty() || arg.contains(' ') {
                        true => "*",
                        false => arg,
                    };
                    let refusal = refusal(ErrorCode::InvalidModeParam, detail);
                    return Err(refusal.room(&shown).mode('l').value(shown_arg));
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
            'b' | 'e' | 'I' => {
                let Some(raw) = &c.arg else {
                    return Ok(None);
                };
                let Some(m) = mask::normalize(raw, ban_mask_len) else {
                    let detail =
                        format!("a ban mask is nick!user@host, at most {ban_mask_len} bytes");
                    return Err(refusal(ErrorCode::BadArguments, detail).command("MODE"));
                };
                let Some(list) = r.list_mut(c.mode) else {
                    return Ok(None);
                };
                let pos = list
                    .iter()
                    .position(|b| names::fold(&b.mask) == names::fold(&m));
                match (c.add, pos) {
                    (true, Some(_)) | (false, None) => Ok(None),
                    (true, None) if list.len() >= max_bans => {
                        Err(refusal(ErrorCode::ListFull, max_bans.to_string())
                            .room(&shown)
                            .mask(&m))
                    }
                    (true, None) => {
                        let m: Arc<str> = m.into();
                        list.push(BanInfo {
                            mask: m.clone(),
                            set_by: by.clone(),
                            set_at_ms: now_ms(),
                        });
                        done(Some(m))
                    }
                    (false, Some(i)) => {
                        let b = list.remove(i);
                        done(Some(b.mask))
                    }
                }
            }
            other => Err(Refusal::new(ErrorCode::UnknownMode).mode(other)),
        }
    }

    pub(super) fn kick(&mut self, id: ConnId, room: &str, nick: &str, reason: Option<String>) {
        let key = match self.existing_room(room) {
            Ok(k) => k,
            Err(e) => return self.refuse(id, e),
        };
        if let Err(e) = self.check_member(id, &key, true) {
            return self.refuse(id, e);
        }
        let Some(&target) = self.nicks.get(&*names::fold(nick)) else {
            return self.refuse(id, Refusal::new(ErrorCode::NoSuchNick).nick(nick));
        };
        let shown = self.shown(&key);
        let Some(r) = self.rooms.get(&key) else {
            return;
        };
        if !r.members().contains_key(&target) {
            let refusal = Refusal::new(ErrorCode::UserNotInRoom)
                .nick(nick)
                .room(&shown);
            return self.refuse(id, refusal);
        }
        let (Some(by), Some(target_nick)) =
            (self.nick_of(id).cloned(), self.nick_of(target).cloned())
        else {
            return;
        };
        let members = r.members().len() - 1;
        let reason = reason.map(|r| cap(&r, self.config.reason_len));
        let body = FactBody::Kicked {
            nick: by.clone(),
            target: target_nick.clone(),
            reason: reason.clone(),
        };
        let at_ms = self.fact(id, Some(&key), body).at_ms;
        let ev = Event::by(
            self.mask_of(id),
            EventBody::Kicked {
                room: shown,
                nick: by,
                target: target_nick,
                reason,
                members,
            },
        )
        .at(at_ms);
        self.remove_from_room(&key, target);
        self.forget_room(target, &key);
        // The room as it is after the kick, and the one kicked out of it.
        self.send(Audience::Conn(target), ev.clone());
        self.send(Audience::Room(key), ev);
    }

    /// Takes `target` out of room `key` (kicks, remote parts).
    pub(super) fn remove_from_room(&mut self, key: &Name, target: ConnId) {
        if let Some(c) = self.conns.get_mut(&target) {
            c.rooms.retain(|r| r != key);
        }
        self.drop_member(key, target);
    }

    pub(super) fn invite(&mut self, id: ConnId, nick: &str, room: &str) {
        let Some(&target) = self.nicks.get(&*names::fold(nick)) else {
            return self.refuse(id, Refusal::new(ErrorCode::NoSuchNick).nick(nick));
        };
        let key = match self.existing_room(room) {
            Ok(k) => k,
            Err(e) => return self.refuse(id, e),
        };
        let need_op = self.rooms.get(&key).is_some_and(|r| r.modes.invite_only);
        if let Err(e) = self.check_member(id, &key, need_op) {
            return self.refuse(id, e);
        }
        let shown = self.shown(&key);
        let Some(r) = self.rooms.get(&key) else {
            return;
        };
        if r.members().contains_key(&target) {
            let refusal = Refusal::new(ErrorCode::UserInRoom).nick(nick).room(&shown);
            return self.refuse(id, refusal);
        }
        let (Some(by), Some(target_nick)) =
            (self.nick_of(id).cloned(), self.nick_of(target).cloned())
        else {
            return;
        };
        if let Some(c) = self.conns.get_mut(&target) {
            let invites = &mut c.rare_mut().invites;
            if !invites.contains(&key) {
                if invites.len() >= self.config.max_invites {
                    invites.remove(0);
                }
                if self.config.max_invites > 0 {
                    invites.push(key.clone());
                }
            }
        }
        let ev = Event::by(
            self.mask_of(id),
            EventBody::Invited {
                room: shown,
                nick: by,
                target: target_nick,
            },
        )
        .with_actor(self.logged_in_actor(id));
        // The room's other operators are told too (IRCv3 invite-notify).
        let mut ops: Vec<ConnId> = self
            .rooms
            .get(&key)
            .map(|r| {
                r.members()
                    .iter()
                    .filter(|(m, st)| st.op && **m != id && **m != target)
                    .map(|(m, _)| *m)
                    .collect()
            })
            .unwrap_or_default();
        ops.sort_unstable();
        self.send(Audience::Conn(target), ev.clone());
        if target != id {
            self.send(Audience::Conn(id), ev.clone());
        }
        if !ops.is_empty() {
            self.send(Audience::Conns(ops), ev);
        }
    }
}
