//! One room's state: members with their operator/voice status, topic,
//! modes (`+i +k +l +m +n +p +s +t`) and bans, and the rules they imply — who
//! may enter and who may speak. Pure data and checks; the hub applies them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::mask;
use crate::proto::{
    BanInfo, ConnId, ErrorCode, MemberInfo, MemberList, ModeChange, Name, Refusal, TopicState,
    Visibility,
};

/// How a ban mask that mutes is written (IRC extban `m:`, ISUPPORT
/// `EXTBAN=,m`): `+b m:bob!*@*` lets bob in but not speak.
pub(crate) const MUTE_PREFIX: &str = "m:";

/// A member's place in a room.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Member {
    pub op: bool,
    pub voice: bool,
}

/// What [`Room::names_parts`] lends.
pub(crate) struct NamesParts<'a> {
    pub order: &'a [ConnId],
    pub members: &'a BTreeMap<ConnId, Member>,
    /// In `order`'s order when its length is `order`'s.
    pub cards: &'a mut Option<MemberList>,
}

/// The flag and value modes of a room.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Modes {
    /// `+i`: only invited people may join.
    pub invite_only: bool,
    /// `+m`: only voiced members and operators may speak.
    pub moderated: bool,
    /// `+n`: only members may speak in the room.
    pub no_external: bool,
    /// `+t`: only operators may set the topic.
    pub topic_ops: bool,
    /// `+p`: private (shown to outsiders in LIST, not in WHOIS).
    pub private: bool,
    /// `+s`: secret (invisible to outsiders everywhere).
    pub secret: bool,
    /// `+k`: the key needed to join.
    pub key: Option<Arc<str>>,
    /// `+l`: most members.
    pub limit: Option<usize>,
}

/// Where a room's order stands: the sequence number of its last fact,
/// and of its newest message or notice (0: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RoomOrder {
    pub seq: u64,
    pub said: u64,
}

/// What the room's order lock guards.
pub(crate) struct Order {
    /// The sequence number of the room's last fact.
    pub seq: u64,
    /// Lines said to the room, numbered, stored and not yet pushed to its
    /// members (`line_batch`): they go out together, in their order, as
    /// one entry in each member's queue, before anything else the chat
    /// delivers (see `handle.rs`, *Lines in batches*).
    pub lines: Vec<Arc<crate::proto::Event>>,
}

pub(crate) struct Room {
    pub name: Name,
    /// By connection, in order: long member lists are paged by it.
    /// Changed only through [`Room::add_member`], [`Room::member_mut`] and
    /// [`Room::remove_member`] (read it with [`Room::members`]).
    members: BTreeMap<ConnId, Member>,
    /// The same connections in a flat list, for delivery: walking a
    /// `Vec` costs a few instructions per member, a `BTreeMap` dozens.
    fanout: Vec<ConnId>,
    /// The members sorted by folded nick, for the names list a join shows
    /// (`ChatState::members_of`), so that it is not sorted again for each
    /// join. `None`: not kept (a member came in without a place in it, a
    /// member's nick changed, or the room is larger than `large_room`,
    /// whose joins show no names list); the hub builds it again on a join.
    /// Set with [`Room::set_names_order`].
    names_order: Option<Vec<ConnId>>,
    /// The names list itself, one record per entry of `names_order` in
    /// the same order, as the last join showed it (the same `Arc` is in
    /// the events that carried it): the next join inserts its newcomer
    /// and shares it again instead of making a record per member. Kept
    /// only while `names_order` is, and only for the few rooms joined
    /// last (`ChatState::keep_names`); the hub checks each record against
    /// the member's current nick, user, host, real name, account and flags
    /// before it is shown (`query::names_list`), so a change made anywhere
    /// else cannot be shown stale. A member's room status changes only
    /// through this type, which drops the records then.
    names_cards: Option<MemberList>,
    /// The sequence number of the room's last fact, and the room's order
    /// lock: a line to the room holds it while it is numbered, stored and
    /// pushed (see `handle.rs`). With the chat to itself (`&mut`), the
    /// number is reached without locking (`get_mut`). It also holds the
    /// room's lines said and not yet pushed (see [`Order::lines`]).
    pub seq: Mutex<Order>,
    /// The sequence number of the room's newest message or notice (what a
    /// history read without events shows, `FactBody::is_message`); 0:
    /// none. Written with the order lock held (or the chat to oneself), so
    /// a reader that took the order lock after a line sees it. A join into
    /// a room with none is answered an empty replay at once (no store
    /// read). Where the kind of the last fact is not known (a room whose
    /// order continues from the store's), it is that fact's number.
    said: AtomicU64,
    pub topic: Option<TopicState>,
    pub modes: Modes,
    pub bans: Vec<BanInfo>,
    /// `+e`: masks let in (and heard) despite a ban.
    pub excepts: Vec<BanInfo>,
    /// `+I`: masks let in despite `+i`.
    pub invexes: Vec<BanInfo>,
    pub created_ms: u64,
}

impl Room {
    /// A new, empty room with the usual defaults `+nt`, whose order
    /// continues after `seq` (a message, for all this room knows: see
    /// [`Room::continued`]).
    pub fn new(name: Name, seq: u64) -> Room {
        Room::continued(name, RoomOrder { seq, said: seq })
    }

    /// A new, empty room with the usual defaults `+nt`, whose order
    /// continues after `order`.
    pub fn continued(name: Name, order: RoomOrder) -> Room {
        Room {
            name,
            members: BTreeMap::new(),
            fanout: Vec::new(),
            names_order: None,
            names_cards: None,
            seq: Mutex::new(Order {
                seq: order.seq,
                lines: Vec::new(),
            }),
            said: AtomicU64::new(order.said),
            topic: None,
            modes: Modes {
                no_external: true,
                topic_ops: true,
                ..Modes::default()
            },
            bans: Vec::new(),
            excepts: Vec::new(),
            invexes: Vec::new(),
            created_ms: crate::proto::now_ms(),
        }
    }

    /// Takes the room's order lock (its sequence number), for a line to
    /// the room. When another thread holds it, the wait is counted
    /// (`natter_room_lock_contended`, `natter_room_lock_wait_seconds`);
    /// the uncontended path reads no clock.
    pub fn order(&self) -> MutexGuard<'_, Order> {
        super::handle::take_counted(
            self.seq.try_lock(),
            || self.seq.lock().unwrap_or_else(PoisonError::into_inner),
            |m, seconds| {
                m.room_lock_contended.inc();
                m.room_lock_wait_seconds.inc_by(seconds);
            },
        )
    }

    /// The sequence number of the room's last fact, with the chat to
    /// oneself (no lock taken).
    pub fn seq_mut(&mut self) -> &mut u64 {
        &mut self
            .seq
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .seq
    }

    /// The sequence number of the room's last fact.
    pub fn last_seq(&self) -> u64 {
        self.order().seq
    }

    /// Where the room's order stands: its last fact, and its newest
    /// message among them (read under the order lock).
    pub fn place(&self) -> RoomOrder {
        let seq = self.order();
        RoomOrder {
            seq: seq.seq,
            said: self.said.load(Relaxed),
        }
    }

    /// Fact number `seq` of the room is a message (`FactBody::is_message`):
    /// called with the order lock held, or the chat to oneself.
    pub fn note_said(&self, seq: u64) {
        self.said.fetch_max(seq, Relaxed);
    }

    /// Where the room's order stands, when the room goes (it is kept to
    /// continue from if the room comes back).
    pub fn into_order(self) -> RoomOrder {
        RoomOrder {
            seq: self
                .seq
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .seq,
            said: self.said.into_inner(),
        }
    }

    /// Adds (or updates) a member. A new member drops the names order
    /// (see [`Room::add_member_at`]).
    pub fn add_member(&mut self, id: ConnId, member: Member) {
        self.add_member_at(id, member, |_| None);
    }

    /// Adds (or updates) a member; `place` says where a new one goes in
    /// the names order (given the order without it), or `None` if it
    /// cannot say, which drops the order. Returns where it went in the
    /// names order (`None`: an update, or no order kept): the caller may
    /// give its record there ([`Room::insert_card`]).
    pub fn add_member_at(
        &mut self,
        id: ConnId,
        member: Member,
        place: impl FnOnce(&[ConnId]) -> Option<usize>,
    ) -> Option<usize> {
        if self.members.insert(id, member).is_some() {
            self.names_cards = None; // its status may have changed
            return None;
        }
        self.fanout.push(id);
        let at = self.names_order.as_deref().and_then(place);
        match (self.names_order.as_mut(), at) {
            (Some(order), Some(at)) if at <= order.len() => {
                order.insert(at, id);
                Some(at)
            }
            _ => {
                self.set_names_order(None);
                None
            }
        }
    }

    /// A member's status, to change (drops the kept names list, which
    /// shows it).
    pub fn member_mut(&mut self, id: ConnId) -> Option<&mut Member> {
        self.names_cards = None;
        self.members.get_mut(&id)
    }

    /// Every member with its status, by connection.
    pub fn members(&self) -> &BTreeMap<ConnId, Member> {
        &self.members
    }

    /// Removes a member (O(members): a departure is announced to them all
    /// anyway).
    pub fn remove_member(&mut self, id: ConnId) -> Option<Member> {
        let gone = self.members.remove(&id)?;
        if let Some(i) = self.fanout.iter().position(|m| *m == id) {
            self.fanout.swap_remove(i);
        }
        if let Some(order) = self.names_order.as_mut() {
            if let Some(i) = order.iter().position(|m| *m == id) {
                order.remove(i);
                match self.names_cards.as_mut() {
                    Some(cards) if cards.len() == order.len() + 1 => {
                        Arc::make_mut(cards).remove(i);
                    }
                    _ => self.names_cards = None,
                }
            }
        }
        Some(gone)
    }

    /// The members sorted by folded nick, if kept (see `names_order`).
    pub fn names_order(&self) -> Option<&[ConnId]> {
        self.names_order.as_deref()
    }

    /// Keeps `order` as the names order (`None`: none), dropping the
    /// names list made for the old one.
    pub fn set_names_order(&mut self, order: Option<Vec<ConnId>>) {
        self.names_order = order;
        self.names_cards = None;
    }

    /// Gives the record of the member that [`Room::add_member_at`] just
    /// put at `at` in the names order, if the names list is kept (or
    /// drops the list: `None`, no record).
    pub fn insert_card(&mut self, at: usize, card: Option<MemberInfo>) {
        let kept = self.names_order.as_ref().map_or(0, Vec::len);
        match (self.names_cards.as_mut(), card) {
            (Some(cards), Some(card)) if cards.len() + 1 == kept && at <= cards.len() => {
                Arc::make_mut(cards).insert(at, Arc::new(card))
            }
            _ => self.names_cards = None,
        }
    }

    /// The names order, the members, and the names list kept for them,
    /// for the hub to check, bring up to date or make (`None`: no names
    /// order is kept).
    pub fn names_parts(&mut self) -> Option<NamesParts<'_>> {
        Some(NamesParts {
            order: self.names_order.as_deref()?,
            members: &self.members,
            cards: &mut self.names_cards,
        })
    }

    /// Whether a names list is kept.
    #[cfg(test)]
    pub fn keeps_cards(&self) -> bool {
        self.names_cards.is_some()
    }

    /// Drops the names list kept (not the order).
    pub fn forget_cards(&mut self) {
        self.names_cards = None;
    }

    /// Every member, in no particular order (for delivery).
    pub fn fanout(&self) -> &[ConnId] {
        debug_assert_eq!(self.fanout.len(), self.members.len());
        &self.fanout
    }

    /// How the room shows to outsiders (`+s` wins over `+p`).
    pub fn visibility(&self) -> Visibility {
        match (self.modes.secret, self.modes.private) {
            (true, _) => Visibility::Secret,
            (false, true) => Visibility::Private,
            _ => Visibility::Public,
        }
    }

    /// Whether someone outside the room (`id`) may see it: in LIST, NAMES,
    /// WHO, WHOIS.
    pub fn shown_to(&self, id: ConnId, in_whois: bool) -> bool {
        match self.visibility() {
            Visibility::Public => true,
            Visibility::Private if !in_whois => true,
            _ => self.members.contains_key(&id),
        }
    }

    /// Whether `user_mask` (`nick!user@host`) matches a ban and no ban
    /// exception (`+e`).
    pub fn is_banned(&self, user_mask: &str) -> bool {
        let hit = |list: &[BanInfo]| list.iter().any(|b| mask::matches(&b.mask, user_mask));
        hit(&self.bans) && !hit(&self.excepts)
    }

    /// Whether `user_mask` matches a mute (a ban mask written `m:mask`:
    /// may enter but not speak) and no mute exception (`+e m:mask`, or a
    /// plain ban exception).
    pub fn is_muted(&self, user_mask: &str) -> bool {
        let hit = |list: &[BanInfo], prefixed_only: bool| {
            list.iter().any(|b| match b.mask.strip_prefix(MUTE_PREFIX) {
                Some(m) => mask::matches(m, user_mask),
                None => !prefixed_only && mask::matches(&b.mask, user_mask),
            })
        };
        hit(&self.bans, true) && !hit(&self.excepts, false)
    }

    /// Whether `user_mask` matches an invite exception (`+I`).
    pub fn is_invex(&self, user_mask: &str) -> bool {
        self.invexes
            .iter()
            .any(|b| mask::matches(&b.mask, user_mask))
    }

    /// The mask list of a list mode (`b`, `e`, `I`).
    pub fn list(&self, mode: char) -> Option<&Vec<BanInfo>> {
        match mode {
            'b' => Some(&self.bans),
            'e' => Some(&self.excepts),
            'I' => Some(&self.invexes),
            _ => None,
        }
    }

    /// [`Room::list`], to change.
    pub fn list_mut(&mut self, mode: char) -> Option<&mut Vec<BanInfo>> {
        match mode {
            'b' => Some(&mut self.bans),
            'e' => Some(&mut self.excepts),
            'I' => Some(&mut self.invexes),
            _ => None,
        }
    }

    /// May someone with `user_mask` enter, giving `key`? An invitation
    /// lets them past `+i`, `+k` and `+l`, not past a ban.
    pub fn admits(&self, user_mask: &str, key: Option<&str>, invited: bool) -> Result<(), Refusal> {
        let refuse = |code| Err(Refusal::new(code).room(&self.name));
        if self.is_banned(user_mask) {
            return refuse(ErrorCode::Banned);
        }
        if invited {
            return Ok(());
        }
        if self.modes.invite_only && !self.is_invex(user_mask) {
            return refuse(ErrorCode::InviteOnly);
        }
        if let Some(k) = &self.modes.key {
            if key != Some(&**k) {
                return refuse(ErrorCode::BadKey);
            }
        }
        if let Some(limit) = self.modes.limit {
            if self.members.len() >= limit {
                let refusal = Refusal::new(ErrorCode::RoomFull).room(&self.name);
                return Err(refusal.detail(limit.to_string()));
            }
        }
        Ok(())
    }

    /// May `id` (with `user_mask`) say something here?
    pub fn may_speak(&self, id: ConnId, user_mask: &str) -> Result<(), Refusal> {
        let cannot = |why: &'static str| {
            let refusal = Refusal::new(ErrorCode::CannotSend).room(&self.name);
            Err(if why.is_empty() {
                refusal
            } else {
                refusal.detail(why)
            })
        };
        let Some(m) = self.members.get(&id) else {
            return match self.modes.no_external {
                true => cannot("it takes no messages from outside (+n)"),
                false
                    if self.modes.moderated
                        || self.is_banned(user_mask)
                        || self.is_muted(user_mask) =>
                {
                    cannot("")
                }
                false => Ok(()),
            };
        };
        if m.op || m.voice {
            return Ok(());
        }
        if self.modes.moderated {
            return cannot("it is moderated (+m)");
        }
        if self.is_banned(user_mask) {
            return cannot("you are banned");
        }
        if self.is_muted(user_mask) {
            return cannot("you are muted");
        }
        Ok(())
    }

    /// The current modes as `+` changes; the key is shown only to members.
    pub fn mode_list(&self, show_key: bool) -> Vec<ModeChange> {
        let flag = |on: bool, mode: char| {
            on.then_some(ModeChange {
                add: true,
                mode,
                arg: None,
            })
        };
        let m = &self.modes;
        let mut out: Vec<ModeChange> = [
            flag(m.invite_only, 'i'),
            flag(m.moderated, 'm'),
            flag(m.no_external, 'n'),
            flag(m.private, 'p'),
            flag(m.secret, 's'),
            flag(m.topic_ops, 't'),
        ]
        .into_iter()
        .flatten()
        .collect();
        if let Some(k) = &m.key {
            out.push(ModeChange {
                add: true,
                mode: 'k',
                arg: Some(if show_key { k.clone() } else { "*".into() }),
            });
        }
        if let Some(l) = m.limit {
            out.push(ModeChange {
                add: true,
                mode: 'l',
                arg: Some(l.to_string().into()),
            });
        }
        out
    }

    /// Sets or clears a flag mode; true if it changed.
    pub fn set_flag(&mut self, mode: char, on: bool) -> bool {
        let slot = match mode {
            'i' => &mut self.modes.invite_only,
            'm' => &mut self.modes.moderated,
            'n' => &mut self.modes.no_external,
            't' => &mut self.modes.topic_ops,
            'p' => &mut self.modes.private,
            's' => &mut self.modes.secret,
            _ => return false,
        };
        std::mem::replace(slot, on) != on
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> ConnId {
        ConnId::new(0, n)
    }

    fn room() -> Room {
        let mut r = Room::new("r".into(), 0);
        let (op, member) = (
            Member {
                op: true,
                voice: false,
            },
            Member {
                op: false,
                voice: false,
            },
        );
        r.add_member(id(1), op);
        r.add_member(id(2), member);
        r
    }

    #[test]
    fn admission_rules_and_invites() {
        let mut r = room();
        assert!(r.admits("c!u@h", None, false).is_ok());
        r.modes.key = Some("sesame".into());
        assert_eq!(
            r.admits("c!u@h", None, false).unwrap_err().code,
            ErrorCode::BadKey
        );
        assert!(r.admits("c!u@h", Some("sesame"), false).is_ok());
        assert!(r.admits("c!u@h", None, true).is_ok());
        r.modes.limit = Some(2);
        assert_eq!(
            r.admits("c!u@h", Some("sesame"), false).unwrap_err().code,
            ErrorCode::RoomFull
        );
        r.modes.invite_only = true;
        assert_eq!(
            r.admits("c!u@h", None, false).unwrap_err().code,
            ErrorCode::InviteOnly
        );
        r.bans.push(BanInfo {
            mask: "*!*@h".into(),
            set_by: "op".into(),
            set_at_ms: 0,
        });
        assert_eq!(
            r.admits("c!u@h", None, true).unwrap_err().code,
            ErrorCode::Banned
        );
    }

    #[test]
    fn speaking_rules() {
        let mut r = room();
        assert!(r.may_speak(id(2), "b!u@h").is_ok());
        assert_eq!(
            r.may_speak(id(3), "x!u@h").unwrap_err().code,
            ErrorCode::CannotSend
        );
        r.set_flag('n', false);
        assert!(r.may_speak(id(3), "x!u@h").is_ok());
        r.set_flag('m', true);
        assert_eq!(
            r.may_speak(id(2), "b!u@h").unwrap_err().code,
            ErrorCode::CannotSend
        );
        assert!(r.may_speak(id(1), "a!u@h").is_ok(), "ops always speak");
        assert_eq!(
            r.mode_list(true).iter().map(|m| m.mode).collect::<String>(),
            "mt"
        );
    }
}
