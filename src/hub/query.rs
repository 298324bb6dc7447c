//! Read-only questions: who is in a room, who matches a mask, everything
//! about one person, the room list and server statistics. Long answers
//! (the room list, a room's members) come a page at a time, in key order
//! after a cursor: each page is a short visit under the lock, never the
//! whole list built or sorted.

use std::ops::Bound::{Excluded, Unbounded};
use std::sync::Arc;

use super::room::{Member, Room};
use super::{mask, names, ChatState, Conn, ConnTable};
use crate::proto::listing::RoomFilter;
use crate::proto::{
    member_list, ConnId, ErrorCode, EventBody, MemberInfo, MemberList, Name, Refusal, RoomSummary,
    Target, Visibility, WhoisInfo,
};

/// Rooms a filtered page may look at, per room it may hold.
const SCAN_PER_ENTRY: usize = 8;

/// One page of the room list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomsPage {
    pub rooms: Vec<RoomSummary>,
    /// The key the next page starts after (`None`: this page is the last).
    pub next: Option<Name>,
}

/// One page of a room's members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembersPage {
    /// The room as people see it, and its members in all.
    pub room: Name,
    pub total: usize,
    /// Who may see the room from outside (IRC's `=`, `*`, `@`).
    pub visibility: Visibility,
    /// Sorted by nick within the page.
    pub members: Vec<MemberInfo>,
    /// The member the next page starts after (`None`: this page is the last).
    pub next: Option<ConnId>,
}

fn summary(r: &Room) -> RoomSummary {
    RoomSummary {
        name: r.name.clone(),
        members: r.members().len(),
        topic: r.topic.as_ref().map(|t| t.text.clone()),
    }
}

/// What the members list says about `c`, with its status in the room
/// (`None` before it has a nick).
pub(super) fn info_of(c: &Conn, op: bool, voice: bool) -> Option<MemberInfo> {
    Some(MemberInfo {
        nick: c.nick.clone()?,
        user: c.user.clone(),
        host: c.host.clone(),
        realname: c.realname.clone(),
        away: c.rare().away.is_some(),
        oper: c.rare().oper.is_some(),
        bot: c.bot,
        op,
        voice,
        account: c.account.clone(),
    })
}

/// Whether `card` is what the names list says of `c` now (its room status
/// aside, which the room keeps in step): the same nick, user, host, real
/// name and account (the same `Arc`s: a change puts new ones in place) and
/// the same flags.
fn card_is(c: &Conn, card: &MemberInfo) -> bool {
    let same = |a: &Name, b: &Name| Arc::ptr_eq(a, b);
    c.nick.as_ref().is_some_and(|n| same(n, &card.nick))
        && same(&c.user, &card.user)
        && same(&c.host, &card.host)
        && same(&c.realname, &card.realname)
        && match (&c.account, &card.account) {
            (None, None) => true,
            (Some(a), Some(b)) => same(a, b),
            _ => false,
        }
        && c.bot == card.bot
        && c.rare().away.is_some() == card.away
        && c.rare().oper.is_some() == card.oper
}

/// Where `id` goes in a room's names order (`Room::names_order`): after
/// every member whose folded nick sorts before its own (`None`: it has no
/// nick).
pub(super) fn names_place(conns: &ConnTable, order: &[ConnId], id: ConnId) -> Option<usize> {
    let nick = |id: &ConnId| {
        let c = conns.get(id)?;
        Some(names::folded(c.nick.as_deref()?))
    };
    let mine = nick(&id)?;
    Some(order.partition_point(|m| nick(m).is_some_and(|n| n < mine)))
}

/// A room's members with a nick, sorted by folded nick (a new
/// `Room::names_order`).
pub(super) fn names_sorted(conns: &ConnTable, room: &Room) -> Vec<ConnId> {
    let mut found: Vec<(std::borrow::Cow<'_, str>, ConnId)> = room
        .members()
        .keys()
        .filter_map(|id| Some((names::folded(conns.get(id)?.nick.as_deref()?), *id)))
        .collect();
    found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    found.into_iter().map(|(_, id)| id).collect()
}

/// Most people a `WHO` for a nick mask lists.
const MAX_WHO: usize = 200;

impl ChatState {
    fn member_info(&self, id: ConnId, op: bool, voice: bool) -> Option<MemberInfo> {
        info_of(self.conns.get(&id)?, op, voice)
    }

    /// Whether `a` and `b` are in a room together.
    pub(super) fn share_room(&self, a: ConnId, b: ConnId) -> bool {
        let Some(c) = self.conns.get(&a) else {
            return false;
        };
        c.rooms.iter().any(|k| {
            self.rooms
                .get(k)
                .is_some_and(|r| r.members().contains_key(&b))
        })
    }

    /// The names list of the room `key` (its members sorted by nick, with
    /// their status), as a join or `who` shows it. A room with a names
    /// order keeps the list between calls (`Room::names_cards`, for the
    /// `names_cache` rooms joined last): each record is checked against
    /// the member as it is now and made again only if it changed, and the
    /// list is shared with the event that shows it, not copied.
    pub(super) fn names_list(&mut self, key: &str) -> MemberList {
        let keep = self.config.names_cache > 0;
        let conns = &self.conns;
        let Some(parts) = self.rooms.get_mut(key).and_then(|r| r.names_parts()) else {
            return member_list(self.members_of(key));
        };
        let made = match parts.cards.as_mut() {
            Some(cards) if cards.len() == parts.order.len() => {
                let mut whole = true;
                for (i, id) in parts.order.iter().enumerate() {
                    let Some(c) = conns.get(id) else {
                        whole = false;
                        break;
                    };
                    if card_is(c, &cards[i]) {
                        continue;
                    }
                    let (op, voice) = (cards[i].op, cards[i].voice);
                    match info_of(c, op, voice) {
                        Some(info) => Arc::make_mut(cards)[i] = Arc::new(info),
                        None => {
                            whole = false;
                            break;
                        }
                    }
                }
                whole.then(|| cards.clone())
            }
            _ => parts
                .order
                .iter()
                .map(|id| {
                    let m = parts.members.get(id)?;
                    info_of(conns.get(id)?, m.op, m.voice).map(Arc::new)
                })
                .collect::<Option<Vec<_>>>()
                .map(Arc::new),
        };
        match made {
            Some(list) if keep => {
                *parts.cards = Some(list.clone());
                self.keep_names(key);
                list
            }
            Some(list) => {
                *parts.cards = None;
                list
            }
            // A member without a nick or a record (not expected): the list
            // is made without them, as `members_of` makes it, and not kept.
            None => {
                *parts.cards = None;
                member_list(self.members_of(key))
            }
        }
    }

    /// Notes that the room `key` keeps its names list, dropping the list
    /// of the room that kept one longest ago if more than `names_cache`
    /// rooms keep one.
    fn keep_names(&mut self, key: &str) {
        if let Some(i) = self.names_kept.iter().position(|k| &**k == key) {
            if i + 1 == self.names_kept.len() {
                return;
            }
            self.names_kept.remove(i);
        }
        self.names_kept.push_back(key.into());
        while self.names_kept.len() > self.config.names_cache {
            let Some(old) = self.names_kept.pop_front() else {
                break;
            };
            if let Some(r) = self.rooms.get_mut(&old) {
                r.forget_cards();
            }
        }
    }

    /// Members of a room sorted by nick, with their status.
    pub(super) fn members_of(&self, key: &str) -> Vec<MemberInfo> {
        let Some(r) = self.rooms.get(key) else {
            return Vec::new();
        };
        if let Some(order) = r.names_order() {
            let mut found = Vec::with_capacity(order.len());
            for id in order {
                let (Some(m), Some(c)) = (r.members().get(id), self.conns.get(id)) else {
                    continue;
                };
                found.extend(info_of(c, m.op, m.voice));
            }
            return found;
        }
        // Sorted before the records are made: a join's names list sorts
        // up to `large_room` members, so the sort moves small entries and
        // folds no nick that is folded already (most are).
        let mut found: Vec<(std::borrow::Cow<'_, str>, &Conn, Member)> = r
            .members()
            .iter()
            .filter_map(|(id, m)| {
                let c: &Conn = self.conns.get(id)?;
                Some((names::folded(c.nick.as_deref()?), c, *m))
            })
            .collect();
        found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        found
            .into_iter()
            .filter_map(|(_, c, m)| info_of(c, m.op, m.voice))
            .collect()
    }

    /// The room a `who` from `id` asks about (`None`: the current one), or
    /// why it cannot be answered.
    pub fn who_room(&self, id: ConnId, room: Option<&str>) -> Result<Name, Refusal> {
        if self.nick_of(id).is_none() {
            return Err(Refusal::new(ErrorCode::NotRegistered));
        }
        let key = self.current_room(id, room)?;
        // A secret room does not exist for those outside it.
        match self.rooms.get(&key).is_some_and(|r| r.shown_to(id, false)) {
            true => Ok(key),
            false => Err(Refusal::new(ErrorCode::NoSuchRoom).room(&key)),
        }
    }

    /// The existing room a `WHO #room` from `id` names, if any (a secret
    /// room only for its members).
    pub fn who_detail_room(&self, id: ConnId, who: &str) -> Option<Name> {
        let name = names::check_room(who, self.config.max_room_chars).ok()?;
        let key = self.key_of(name);
        let shown = self.rooms.get(&key).is_some_and(|r| r.shown_to(id, false));
        shown.then_some(key)
    }

    /// Up to `limit` rooms in name order after the key `after` that pass
    /// `filter` and that `id` may see (secret rooms only by their members),
    /// looking at no more than a few times `limit` rooms.
    pub fn rooms_page(
        &self,
        id: ConnId,
        filter: &RoomFilter,
        after: Option<&str>,
        limit: usize,
    ) -> RoomsPage {
        let limit = limit.max(1);
        let budget = limit * SCAN_PER_ENTRY;
        let lower = after.map_or(Unbounded, Excluded);
        let now = crate::proto::now_ms();
        let passes = |key: &str, r: &Room| {
            r.shown_to(id, false)
                && filter.counts(r.members().len())
                && (filter.masks.is_empty() || filter.masks.iter().any(|m| mask::matches(m, key)))
                && !filter.not_masks.iter().any(|m| mask::matches(m, key))
                && filter.ages(
                    now.saturating_sub(r.created_ms),
                    r.topic.as_ref().map(|t| now.saturating_sub(t.set_at_ms)),
                )
        };
        let mut rooms = Vec::new();
        let mut last: Option<Name> = None;
        if filter.names.is_empty() {
            for (key, r) in self.rooms.range::<str, _>((lower, Unbounded)).take(budget) {
                last = Some(key.clone());
                if passes(key, r) {
                    rooms.push(summary(r));
                    if rooms.len() == limit {
                        break;
                    }
                }
            }
        } else {
            for name in filter
                .names
                .range::<str, _>((lower, Unbounded))
                .take(budget)
            {
                last = Some(name.as_str().into());
                if let Some((key, r)) = self.rooms.get_key_value(name.as_str()) {
                    if passes(key, r) {
                        rooms.push(summary(r));
                        if rooms.len() == limit {
                            break;
                        }
                    }
                }
            }
        }
        let more = |l: &str| match filter.names.is_empty() {
            true => self
                .rooms
                .range::<str, _>((Excluded(l), Unbounded))
                .next()
                .is_some(),
            false => filter
                .names
                .range::<str, _>((Excluded(l), Unbounded))
                .next()
                .is_some(),
        };
        let next = last.filter(|l| more(l));
        RoomsPage { rooms, next }
    }

    /// Up to `limit` members of the room `key` after the member `after`
    /// (`None`: the room is gone).
    pub fn members_page(
        &self,
        key: &str,
        after: Option<ConnId>,
        limit: usize,
    ) -> Option<MembersPage> {
        let r = self.rooms.get(key)?;
        let lower = after.map_or(Unbounded, Excluded);
        let mut members = Vec::with_capacity(limit.min(r.members().len()));
        let mut last = None;
        for (id, m) in r.members().range((lower, Unbounded)).take(limit.max(1)) {
            last = Some(*id);
            members.extend(self.member_info(*id, m.op, m.voice));
        }
        members.sort_by_cached_key(|m| names::fold(&m.nick));
        let next = last.filter(|l| {
            r.members()
                .range((Excluded(*l), Unbounded))
                .next()
                .is_some()
        });
        Some(MembersPage {
            room: r.name.clone(),
            total: r.members().len(),
            visibility: r.visibility(),
            members,
            next,
        })
    }

    /// Who is in a room (`None`: the current one).
    pub(super) fn who(&mut self, id: ConnId, room: Option<&str>) {
        let key = match self.who_room(id, room) {
            Ok(k) => k,
            Err(e) => return self.refuse(id, e),
        };
        let Some(r) = self.rooms.get(&key) else {
            return;
        };
        if !r.shown_to(id, false) {
            return self.refuse(id, Refusal::new(ErrorCode::NoSuchRoom).room(&key));
        }
        let (room, visibility) = (r.name.clone(), r.visibility());
        let members = self.names_list(&key);
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
            let key = self.who_detail_room(id, who);
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
        let target = self.nicks.get(&*names::fold(nick)).copied();
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
                let m = r.members().get(&t)?;
                r.shown_to(id, true)
                    .then(|| (r.name.clone(), m.op, m.voice))
            })
            .collect();
        let info = WhoisInfo {
            user: c.user.clone(),
            host: c.host.clone(),
            realname: c.realname.clone(),
            rooms,
            away: c.rare().away.clone(),
            idle_secs: crate::proto::now_ms()
                .saturating_sub(c.active_ms.load(std::sync::atomic::Ordering::Relaxed))
                / 1000,
            signon_ms: c.signon_ms(),
            account: c.account.clone(),
            oper: c.rare().oper.is_some(),
            bot: c.bot,
            secure: c.secure,
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

    /// Rooms with member counts and topics, in name order; `terms` (IRC
    /// `LIST` arguments) filter them. Only the first page: the server
    /// writes the whole list a page at a time (`server::pager`).
    pub(super) fn list(&mut self, id: ConnId, terms: Option<Vec<String>>) {
        let filter = RoomFilter::from_terms(&terms.unwrap_or_default());
        let page = self.rooms_page(id, &filter, None, self.config.page_size);
        self.reply(id, EventBody::RoomDetails { rooms: page.rooms });
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
