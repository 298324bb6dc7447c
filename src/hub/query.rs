//! Read-only questions: who is in a room, who matches a mask, everything
//! about one person, the room list and server statistics.

use super::room::Room;
use super::{mask, names, ChatState};
use crate::proto::{
    ConnId, ErrorCode, EventBody, ListFilter, MemberInfo, Refusal, RoomSummary, Target, WhoisInfo,
};

/// Whether room `r` passes a LIST filter at time `now_ms`.
fn passes(r: &Room, f: &ListFilter, now_ms: u64) -> bool {
    let age = |ms: u64| now_ms.saturating_sub(ms);
    let minutes = |m: u64| m.saturating_mul(60_000);
    let created = age(r.created_ms);
    let topic = r.topic.as_ref().map(|t| age(t.set_at_ms));
    let n = r.members.len();
    (f.masks.is_empty() || f.masks.iter().any(|m| mask::matches(m, &r.name)))
        && !f.not_masks.iter().any(|m| mask::matches(m, &r.name))
        && f.more_members_than.is_none_or(|x| n > x)
        && f.fewer_members_than.is_none_or(|x| n < x)
        && f.created_older_than.is_none_or(|x| created > minutes(x))
        && f.created_newer_than.is_none_or(|x| created < minutes(x))
        && f.topic_older_than
            .is_none_or(|x| topic.is_some_and(|t| t > minutes(x)))
        && f.topic_newer_than
            .is_none_or(|x| topic.is_some_and(|t| t < minutes(x)))
}

/// Most people a `WHO` for a nick mask lists.
const MAX_WHO: usize = 200;

impl ChatState {
    fn member_info(&self, id: ConnId, op: bool, voice: bool) -> Option<MemberInfo> {
        let c = self.conns.get(&id)?;
        Some(MemberInfo {
            nick: c.nick.clone()?,
            user: c.user.clone(),
            host: c.host.clone(),
            realname: c.realname.clone(),
            away: c.away.is_some(),
            oper: c.oper.is_some(),
            bot: c.bot,
            op,
            voice,
        })
    }

    /// Whether `a` and `b` are in a room together.
    pub(super) fn share_room(&self, a: ConnId, b: ConnId) -> bool {
        let Some(c) = self.conns.get(&a) else {
            return false;
        };
        c.rooms.iter().any(|k| {
            self.rooms
                .get(k)
                .is_some_and(|r| r.members.contains_key(&b))
        })
    }

    /// Members of a room sorted by nick, with their status.
    pub(super) fn members_of(&self, key: &str) -> Vec<MemberInfo> {
        let Some(r) = self.rooms.get(key) else {
            return Vec::new();
        };
        let mut members: Vec<MemberInfo> = r
            .members
            .iter()
            .filter_map(|(id, m)| self.member_info(*id, m.op, m.voice))
            .collect();
        members.sort_by_cached_key(|m| names::fold(&m.nick));
        members
    }

    /// Who is in a room (`None`: the current one).
    pub(super) fn who(&mut self, id: ConnId, room: Option<&str>) {
        let key = match self.current_room(id, room) {
            Ok(k) => k,
            Err(e) => return self.refuse(id, e),
        };
        let Some(r) = self.rooms.get(&key) else {
            return self.refuse(id, Refusal::new(ErrorCode::NoSuchRoom).room(&key));
        };
        if !r.shown_to(id, false) {
            return self.refuse(id, Refusal::new(ErrorCode::NoSuchRoom).room(&key));
        }
        let (room, visibility) = (r.name.clone(), r.visibility());
        let members = self.members_of(&key);
        self.reply(
            id,
            EventBody::Members {
                room,
                visibility,
                members,
            },
        );
    }

    /// The members of a room (`Target::Room`) or the people whose
    /// `nick!user@host` matches a mask (at most [`MAX_WHO`]).
    pub(super) fn who_detail(&mut self, id: ConnId, target: &Target) {
        let body = if let Target::Room(who) = target {
            let key = names::check_room(who, self.config.max_room_chars)
                .ok()
                .map(names::fold);
            match key
                .as_deref()
                .and_then(|k| self.rooms.get(k).map(|r| (k, r)))
                .filter(|(_, r)| r.shown_to(id, false))
            {
                Some((k, r)) => EventBody::WhoReply {
                    mask: who.as_str().into(),
                    room: Some(r.name.clone()),
                    members: self.members_of(k),
                },
                None => EventBody::WhoReply {
                    mask: who.as_str().into(),
                    room: None,
                    members: Vec::new(),
                },
            }
        } else {
            let (Target::Person(who) | Target::Room(who)) = target;
            let pattern = match mask::normalize(who, self.config.ban_mask_len) {
                Some(m) if who != "0" => m,
                _ => "*!*@*".to_string(),
            };
            // +i hides people from masks (not from their exact nick) unless
            // they share a room with the asker; operators see everyone.
            let wild = who.contains(['*', '?']) && !self.is_oper(id);
            let mut members: Vec<MemberInfo> = self
                .conns
                .iter()
                .filter(|(cid, c)| {
                    c.nick.is_some()
                        && mask::matches(&pattern, &c.mask)
                        && !(wild && c.invisible && **cid != id && !self.share_room(id, **cid))
                })
                .take(MAX_WHO)
                .filter_map(|(cid, _)| self.member_info(*cid, false, false))
                .collect();
            members.sort_by_cached_key(|m| names::fold(&m.nick));
            EventBody::WhoReply {
                mask: who.as_str().into(),
                room: None,
                members,
            }
        };
        self.reply(id, body);
    }

    pub(super) fn whois(&mut self, id: ConnId, nick: &str) {
        let target = self.nicks.get(&names::fold(nick)).copied();
        let Some(c) = target.and_then(|t| self.conns.get(&t)) else {
            return self.reply(
                id,
                EventBody::Whois {
                    nick: nick.into(),
                    info: None,
                },
            );
        };
        let Some(t) = target else {
            return;
        };
        let rooms = c
            .rooms
            .iter()
            .filter_map(|k| {
                let r = self.rooms.get(k)?;
                let m = r.members.get(&t)?;
                r.shown_to(id, true)
                    .then(|| (r.name.clone(), m.op, m.voice))
            })
            .collect();
        let info = WhoisInfo {
            user: c.user.clone(),
            host: c.host.clone(),
            realname: c.realname.clone(),
            rooms,
            away: c.away.clone(),
            idle_secs: crate::proto::now_ms().saturating_sub(c.active_ms) / 1000,
            signon_ms: c.signon_ms,
            oper: c.oper.is_some(),
            bot: c.bot,
        };
        let nick = c.nick.clone().unwrap_or_else(|| nick.into());
        self.reply(
            id,
            EventBody::Whois {
                nick,
                info: Some(Box::new(info)),
            },
        );
    }

    /// Rooms with member counts and topics, sorted; `names` limits the list.
    pub(super) fn list(
        &mut self,
        id: ConnId,
        names_wanted: Option<Vec<String>>,
        filter: &ListFilter,
    ) {
        let now = crate::proto::now_ms();
        let wanted: Option<Vec<String>> = names_wanted.map(|ns| {
            ns.iter()
                .filter_map(|n| names::check_room(n, self.config.max_room_chars).ok())
                .map(names::fold)
                .collect()
        });
        let mut rooms: Vec<RoomSummary> = self
            .rooms
            .iter()
            .filter(|(k, r)| {
                r.shown_to(id, false)
                    && wanted
                        .as_ref()
                        .is_none_or(|w| w.iter().any(|n| **n == ***k))
                    && passes(r, filter, now)
            })
            .map(|(_, r)| RoomSummary {
                name: r.name.clone(),
                members: r.members.len(),
                topic: r.topic.as_ref().map(|t| t.text.clone()),
            })
            .collect();
        rooms.sort_by_cached_key(|r| names::fold(&r.name));
        self.reply(id, EventBody::RoomDetails { rooms });
    }

    pub(super) fn lusers(&mut self, id: ConnId) {
        let body = EventBody::Lusers {
            users: self.online(),
            invisible: self
                .conns
                .values()
                .filter(|c| c.invisible && c.nick.is_some())
                .count(),
            opers: self.oper_count(),
            unregistered: self.connections() - self.online(),
            rooms: self.rooms.len(),
            max_users: self.max_online.max(self.online()),
        };
        self.reply(id, body);
    }
}
