//! The rooms each account is in, remembered so that a session logging in
//! is put back in them (the `rejoin_on_login` setting), the way IRC
//! bouncers and Ergo's always-on clients keep a user's channels.
//!
//! Only sessions that ask for it ([`Profile::rejoin`](crate::proto::Profile):
//! IRC clients, which are in many rooms and expect their channels back)
//! add to or take from an account's list, and only while logged in.
//! Entering a room adds it (with the key it was entered with); parting it
//! (`PART`, `JOIN 0`) or being kicked out of it takes it off, unless
//! another session of the account is still in it; quitting or losing the
//! connection keeps it. [`Command::Rejoin`](crate::proto::Command::Rejoin)
//! (sent by the IRC session at the end of its welcome burst) and a login
//! after registering put the session in every listed room it is not in,
//! through the usual checks: a room whose key, bans, invite-only mode,
//! limit or the per-user room limit refuse it is skipped, the refusal told
//! as for any `JOIN`, and taken off the list. Pure: the store keeps the
//! lists through [`Effects::rooms_remembered`](super::Effects).

use super::{names, ChatState};
use crate::proto::{ConnId, Name};

/// One room of an account's list, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RememberedRoom {
    /// Folded account name.
    pub account: String,
    /// Folded room key.
    pub room: String,
    /// The room's name as people write it.
    pub name: String,
    /// The key (`+k`) the account entered the room with, if any.
    pub key: Option<String>,
}

/// A change to an account's list, for the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomMemory {
    /// Keep (add, or update the name or key of) this room.
    Keep(RememberedRoom),
    /// Take this room (folded key) off this account's (folded) list.
    Forget { account: String, room: String },
}

impl ChatState {
    /// The folded account whose list `id`'s rooms go to, if any.
    fn remembering(&self, id: ConnId) -> Option<String> {
        if !self.config.rejoin_on_login {
            return None;
        }
        let c = self.conns.get(&id)?;
        if !c.rejoin {
            return None;
        }
        c.account.as_deref().map(names::fold)
    }

    /// `id` is in the room `key`, entered with `used_key`: its account
    /// keeps it (at most `max_rooms_per_user` rooms per account).
    pub(super) fn remember_room(&mut self, id: ConnId, key: &Name, used_key: Option<&str>) {
        let Some(account) = self.remembering(id) else {
            return;
        };
        let Some(name) = self.rooms.get(key).map(|r| r.name.to_string()) else {
            return;
        };
        let max = self.config.max_rooms_per_user;
        let list = self.accounts.remembered.entry(account.clone()).or_default();
        let old = list.iter().position(|r| *r.room == **key);
        let rec = RememberedRoom {
            account,
            room: key.to_string(),
            name,
            // A key that let the account in before still serves.
            key: used_key
                .map(String::from)
                .or_else(|| old.and_then(|i| list[i].key.clone())),
        };
        match old {
            Some(i) if list[i] == rec => return,
            Some(i) => list[i] = rec.clone(),
            None if list.len() >= max => return,
            None => list.push(rec.clone()),
        }
        self.fx.rooms_remembered.push(RoomMemory::Keep(rec));
    }

    /// `id` left the room `key` by choice (or was kicked): its account no
    /// longer keeps it, unless another of its sessions is still in it.
    pub(super) fn forget_room(&mut self, id: ConnId, key: &Name) {
        let Some(account) = self.remembering(id) else {
            return;
        };
        let still_in = self.accounts.sessions.get(&account).is_some_and(|s| {
            s.iter()
                .any(|c| *c != id && self.conns.get(c).is_some_and(|c| c.rooms.contains(key)))
        });
        if still_in {
            return;
        }
        let Some(list) = self.accounts.remembered.get_mut(&account) else {
            return;
        };
        let before = list.len();
        list.retain(|r| *r.room != **key);
        if list.len() == before {
            return;
        }
        if list.is_empty() {
            self.accounts.remembered.remove(&account);
        }
        let room = key.to_string();
        self.fx
            .rooms_remembered
            .push(RoomMemory::Forget { account, room });
    }

    /// Puts `id` (registered, logged in) in every room its account keeps
    /// that it is not in; the rooms it is in already are kept too.
    pub(super) fn rejoin(&mut self, id: ConnId) {
        let Some(account) = self.remembering(id) else {
            return;
        };
        if self.nick_of(id).is_none() {
            return; // done when it registers (`Command::Rejoin`)
        }
        let mine = self
            .conns
            .get(&id)
            .map(|c| c.rooms.clone())
            .unwrap_or_default();
        for key in &mine {
            self.remember_room(id, key, None);
        }
        let list = match self.accounts.remembered.get(&account) {
            Some(l) => l.clone(),
            None => return,
        };
        self.rejoining = true;
        for r in list {
            let key: Name = r.room.as_str().into();
            if mine.contains(&key) {
                continue;
            }
            self.join(id, &r.name, r.key.as_deref(), false);
            let entered = self.conns.get(&id).is_some_and(|c| c.rooms.contains(&key));
            if !entered {
                self.forget_room(id, &key);
            }
        }
        self.rejoining = false;
    }

    /// Every account's list, as loaded from the store.
    /// A change to an account's list as another node kept it (with a
    /// cluster; this node's own changes come back too, and change nothing).
    pub fn learn_remembered(&mut self, change: RoomMemory) {
        match change {
            RoomMemory::Keep(r) => {
                let max = self.config.max_rooms_per_user;
                let list = self
                    .accounts
                    .remembered
                    .entry(r.account.clone())
                    .or_default();
                match list.iter().position(|old| old.room == r.room) {
                    Some(i) => list[i] = r,
                    None if list.len() < max => list.push(r),
                    None => {}
                }
            }
            RoomMemory::Forget { account, room } => {
                let Some(list) = self.accounts.remembered.get_mut(&account) else {
                    return;
                };
                list.retain(|r| r.room != room);
                if list.is_empty() {
                    self.accounts.remembered.remove(&account);
                }
            }
        }
    }

    pub(super) fn load_remembered(&mut self, rooms: Vec<RememberedRoom>) {
        for r in rooms {
            let list = self
                .accounts
                .remembered
                .entry(r.account.clone())
                .or_default();
            if !list.iter().any(|old| old.room == r.room) {
                list.push(r);
            }
        }
    }
}
