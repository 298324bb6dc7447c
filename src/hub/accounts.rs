//! Accounts in the chat state: who is logged in to which account, which
//! nicks belong to accounts (and so who may use them), and registered
//! rooms (founder, topic, modes, key, limit and bans kept across restarts).
//!
//! Everything here is pure. Checking a password is slow I/O and CPU work
//! that the server does off the chat lock; it then sends
//! [`Command::Authenticated`](crate::proto::Command::Authenticated), and
//! only that makes a connection logged in. The set of registered names is
//! loaded from the [`Accounts`](super::Accounts) store at start and
//! updated as accounts are created; registered rooms are saved through
//! [`Effects::saves`](super::Effects::saves).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::room::{Modes, Room};
use super::{names, Audience, ChatState};
use crate::proto::scram::Credentials;
use crate::proto::MAX_MARKERS;
use crate::proto::{
    now_ms, AccountEvent, Actor, BanInfo, ConnId, ErrorCode, Event, EventBody, Name, Refusal,
    TopicState,
};

/// An account as the store keeps it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// The name as it was registered (the nick it protects).
    pub name: String,
    /// The argon2id hash of the password (PHC string).
    pub hash: String,
    /// SCRAM-SHA-256 credentials derived from the same password.
    pub scram: Credentials,
    pub created_ms: u64,
}

impl std::fmt::Debug for AccountRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountRecord")
            .field("name", &self.name)
            .field("created_ms", &self.created_ms)
            .finish_non_exhaustive()
    }
}

/// A registered room as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomRecord {
    /// Folded name (the key).
    pub key: String,
    /// The name as people write it.
    pub name: String,
    /// The founder's account.
    pub founder: String,
    pub registered_ms: u64,
    pub created_ms: u64,
    pub topic: Option<TopicRecord>,
    pub modes: ModesRecord,
    pub bans: Vec<BanRecord>,
    /// Ban exceptions (`+e`) and invite exceptions (`+I`); absent in rooms
    /// saved before they were kept.
    #[serde(default)]
    pub excepts: Vec<BanRecord>,
    #[serde(default)]
    pub invexes: Vec<BanRecord>,
    /// With a cluster: the stream sequence of the last change it shows
    /// (a save never replaces a record of a later change); 0 otherwise.
    #[serde(default)]
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub text: String,
    pub set_by: String,
    pub set_at_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModesRecord {
    pub invite_only: bool,
    pub moderated: bool,
    pub no_external: bool,
    pub topic_ops: bool,
    /// `+p` and `+s` (absent in rooms registered before they existed).
    #[serde(default)]
    pub private: bool,
    #[serde(default)]
    pub secret: bool,
    pub key: Option<String>,
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanRecord {
    pub mask: String,
    pub set_by: String,
    pub set_at_ms: u64,
}

/// What the accounts store holds at start: every account name and every
/// registered room.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    pub accounts: Vec<String>,
    pub rooms: Vec<RoomRecord>,
    /// Read markers: (folded account, folded target, timestamp).
    pub markers: Vec<(String, String, String)>,
    /// The rooms accounts keep (`rejoin_on_login`).
    pub remembered: Vec<super::RememberedRoom>,
}

/// The chat state's accounts part.
#[derive(Debug, Default)]
pub(super) struct AccountState {
    /// Folded names of every account.
    registered: HashSet<String>,
    /// Registered rooms by folded key, as last saved.
    rooms: HashMap<Name, RoomRecord>,
    /// How long someone may hold a registered nick without logging in to
    /// it before being renamed (0: such nicks are refused outright).
    grace_secs: u64,
    /// Read markers (IRCv3 `draft/read-marker`) by folded account, then
    /// folded target: the timestamp read up to.
    markers: HashMap<String, HashMap<String, Arc<str>>>,
    /// The connections logged in to each account (folded), to tell them
    /// all of a marker that moved.
    pub(super) sessions: HashMap<String, Vec<ConnId>>,
    /// The rooms each account (folded) keeps, in the order entered
    /// (`rejoin.rs`).
    pub(super) remembered: HashMap<String, Vec<super::RememberedRoom>>,
}

impl ChatState {
    /// Loads the registered accounts and rooms; `grace_secs` as in the
    /// `nick_grace` setting.
    pub fn load_registry(&mut self, registry: Registry, grace_secs: u64) {
        let a = &mut self.accounts;
        a.grace_secs = grace_secs;
        a.registered
            .extend(registry.accounts.iter().map(|n| names::fold(n)));
        for r in registry.rooms {
            a.rooms.insert(r.key.as_str().into(), r);
        }
        for (account, target, at) in registry.markers {
            let marks = a.markers.entry(account).or_default();
            marks.insert(target, at.into());
        }
        self.load_remembered(registry.remembered);
    }

    /// `id` read `target` up to `at` (a server-time timestamp). Kept for
    /// its account if it is logged in to one, when newer than the one
    /// kept, and told to the account's other connections; guests' markers
    /// are kept by their session alone. At most `MAX_MARKERS` targets per
    /// account: a new one past that is not kept.
    pub(super) fn mark_read(&mut self, id: ConnId, target: &str, at: &str) {
        let Some(account) = self.account_of(id).map(|a| names::fold(a)) else {
            return;
        };
        let target = names::fold(target);
        let marks = self.accounts.markers.entry(account.clone()).or_default();
        match marks.get(&target) {
            Some(old) if **old >= *at => return,
            None if marks.len() >= MAX_MARKERS => return,
            _ => {}
        }
        let at: Arc<str> = at.into();
        marks.insert(target.clone(), at.clone());
        self.fx
            .markers
            .push((account.clone(), target.clone(), at.to_string()));
        let others: Vec<ConnId> = self
            .accounts
            .sessions
            .get(&account)
            .map(|s| s.iter().copied().filter(|c| *c != id).collect())
            .unwrap_or_default();
        if !others.is_empty() {
            let body = EventBody::ReadMarkers {
                marks: vec![(target.into(), at)],
                tell: true,
            };
            self.send(Audience::Conns(others), Arc::new(Event::new(body)));
        }
    }

    /// `account`'s read marker of `target` (both folded) as another node
    /// kept it (with a cluster): kept here too when newer, and told to the
    /// account's sessions on this node.
    pub fn learn_marker(&mut self, account: &str, target: &str, at: &str) -> super::Effects {
        let marks = self
            .accounts
            .markers
            .entry(account.to_string())
            .or_default();
        let newer = match marks.get(target) {
            Some(old) => **old < *at,
            None => marks.len() < MAX_MARKERS,
        };
        if newer {
            let at: Arc<str> = at.into();
            marks.insert(target.to_string(), at.clone());
            let here: Vec<ConnId> = self
                .accounts
                .sessions
                .get(account)
                .map(|s| s.to_vec())
                .unwrap_or_default();
            if !here.is_empty() {
                let body = EventBody::ReadMarkers {
                    marks: vec![(target.into(), at)],
                    tell: true,
                };
                self.send(Audience::Conns(here), Arc::new(Event::new(body)));
            }
        }
        self.take()
    }

    /// `id` (logged in to `account`, folded) left.
    pub(super) fn session_ended(&mut self, id: ConnId, account: &str) {
        let account = names::fold(account);
        if let Some(s) = self.accounts.sessions.get_mut(&account) {
            s.retain(|c| *c != id);
            if s.is_empty() {
                self.accounts.sessions.remove(&account);
            }
        }
    }

    /// Whether `nick` belongs to an account.
    pub fn is_registered_nick(&self, nick: &str) -> bool {
        self.accounts.registered.contains(&names::fold(nick))
    }

    /// The account `id` is logged in to.
    pub fn account_of(&self, id: ConnId) -> Option<&Name> {
        self.conns.get(&id).and_then(|c| c.account.as_ref())
    }

    /// The nick of `id` if it belongs to an account `id` is not logged in
    /// to (the grace period runs).
    pub fn unprotected_nick(&self, id: ConnId) -> Option<Name> {
        let nick = self.nick_of(id)?;
        (self.is_registered_nick(nick) && !self.owns(id, nick)).then(|| nick.clone())
    }

    /// Notes that `id` is connected over TLS.
    pub fn set_secure(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.secure = true;
        }
    }

    /// The (cloaked) host of `id`.
    pub fn host_of(&self, id: ConnId) -> Option<Name> {
        self.conns.get(&id).map(|c| c.host.clone())
    }

    /// Who `id` is in private history: its account (folded) when logged
    /// in, else its guest session (`!node.local.id`, made from the id of
    /// its registration fact). A guest's lines are kept under that
    /// session, so they are reachable only while that session lasts and
    /// through the nick it has now: after a nick change, a reconnect or
    /// when someone else takes the nick, nobody (not the guest either)
    /// reaches them again; retention removes them later.
    pub fn history_identity(&self, id: ConnId) -> Option<String> {
        let c = self.conns.get(&id)?;
        match &c.account {
            Some(a) => Some(names::fold(a)),
            None => c.session(id),
        }
    }

    /// The nick of the guest session `token` (a `history_identity`), if
    /// that session is still connected.
    pub fn session_nick(&self, token: &str) -> Option<Name> {
        let mut parts = token.strip_prefix('!')?.splitn(3, '.');
        let node = parts.next()?.parse().ok()?;
        let local = parts.next()?.parse().ok()?;
        let c = self.conns.get(&ConnId::new(node, local))?;
        (c.account.is_none() && c.session(ConnId::new(node, local)).as_deref() == Some(token))
            .then(|| c.nick.clone())
            .flatten()
    }

    /// The key the private lines between `a` and `b` are kept under:
    /// their accounts, or guest sessions (see `history_identity`).
    pub(super) fn private_log(&self, a: ConnId, b: ConnId) -> Option<String> {
        let (a, b) = (self.history_identity(a)?, self.history_identity(b)?);
        Some(crate::proto::fact::private_log(&a, &b))
    }

    /// The key the private lines between `id` and `person` (a nick online
    /// now, or an account's name) are kept under; `None` before `id` has
    /// registered.
    pub fn private_log_with(&self, id: ConnId, person: &str) -> Option<String> {
        let mine = self.history_identity(id)?;
        let theirs = match self.nicks.get(&*names::fold(person)) {
            Some(&other) => self.history_identity(other)?,
            None => names::fold(person),
        };
        Some(crate::proto::fact::private_log(&mine, &theirs))
    }

    /// Whether `id` is logged in to the account named `nick`.
    pub(super) fn owns(&self, id: ConnId, nick: &str) -> bool {
        self.account_of(id)
            .is_some_and(|a| names::fold(a) == names::fold(nick))
    }

    /// The doer's account and real name, for events IRC decorates.
    pub(super) fn actor(&self, id: ConnId) -> Option<Actor> {
        let c = self.conns.get(&id)?;
        Some(Actor {
            account: c.account.clone(),
            realname: c.realname.clone(),
        })
    }

    /// The doer's account, for `account-tag`, if they are logged in.
    pub(super) fn logged_in_actor(&self, id: ConnId) -> Option<Actor> {
        let c = self.conns.get(&id)?;
        let account = c.account.clone()?;
        Some(Actor {
            account: Some(account),
            realname: c.realname.clone(),
        })
    }

    /// Why `id` may not take the registered `nick` (only when registered
    /// nicks are refused rather than given a grace period).
    pub(super) fn protection(&self, id: ConnId, nick: &str) -> Option<Refusal> {
        let refused =
            self.accounts.grace_secs == 0 && self.is_registered_nick(nick) && !self.owns(id, nick);
        refused.then(|| Refusal::new(ErrorCode::NickRegistered).nick(nick))
    }

    /// After `id` took a nick: if it belongs to an account `id` is not
    /// logged in to, says how long it may keep it.
    pub(super) fn warn_unprotected(&mut self, id: ConnId) {
        if let Some(nick) = self.unprotected_nick(id) {
            let grace_secs = self.accounts.grace_secs;
            let body = AccountEvent::NickProtected { nick, grace_secs };
            self.reply(id, EventBody::Account(body));
        }
    }

    /// Makes way for `id`, logged in to the account `nick`: whoever else
    /// holds that nick is renamed to a guest nick.
    pub(super) fn free_for(&mut self, id: ConnId, nick: &str) {
        if !self.owns(id, nick) {
            return;
        }
        match self.nicks.get(&*names::fold(nick)) {
            Some(&holder) if holder != id => self.rename_to_guest(holder),
            _ => {}
        }
    }

    /// A free guest nick for `id`.
    fn guest_nick(&self, id: ConnId) -> String {
        let mut n = id.local % 100_000;
        loop {
            let nick = format!("Guest{n}");
            let key = names::fold(&nick);
            if !self.nicks.contains_key(&*key) && !self.accounts.registered.contains(&key) {
                return nick;
            }
            n += 1;
        }
    }

    /// Renames `id` to a guest nick, telling them why.
    fn rename_to_guest(&mut self, id: ConnId) {
        let Some(old) = self.nick_of(id).cloned() else {
            return;
        };
        let new = self.guest_nick(id);
        self.apply_nick(id, old.clone(), &new);
        let body = AccountEvent::Renamed {
            old,
            new: new.into(),
        };
        self.reply(id, EventBody::Account(body));
    }

    /// The grace period of `nick` is over for `id`.
    pub(super) fn nick_grace(&mut self, id: ConnId, nick: &str) {
        let still = self
            .unprotected_nick(id)
            .is_some_and(|n| names::fold(&n) == names::fold(nick));
        if still {
            self.rename_to_guest(id);
        }
    }

    /// `id` logged in to `account` (which it may just have `created`).
    pub(super) fn authenticated(&mut self, id: ConnId, account: &str, created: bool) {
        if created {
            self.accounts.registered.insert(names::fold(account));
        }
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let name: Name = account.into();
        let previous = c.account.replace(name.clone());
        let nick = c.nick.clone();
        if let Some(previous) = previous {
            self.session_ended(id, &previous);
        }
        let folded = names::fold(account);
        self.accounts
            .sessions
            .entry(folded.clone())
            .or_default()
            .push(id);
        // The session learns the account's read markers (it answers
        // `MARKREAD` and tells them on joining by itself).
        let marks: Vec<(Name, Arc<str>)> = self
            .accounts
            .markers
            .get(&folded)
            .map(|m| {
                m.iter()
                    .map(|(t, at)| (t.as_str().into(), at.clone()))
                    .collect()
            })
            .unwrap_or_default();
        if !marks.is_empty() {
            let body = EventBody::ReadMarkers { marks, tell: false };
            self.reply(id, body);
        }
        let body = AccountEvent::LoggedIn {
            account: name.clone(),
            nick: nick.clone(),
            created,
        };
        self.reply(id, EventBody::Account(body));
        let Some(nick) = nick else {
            return; // the session takes its nick when it registers
        };
        let body = AccountEvent::Changed {
            nick: nick.clone(),
            account: Some(name),
        };
        let mut audience = self.peers(id, true);
        self.add_detail_watchers(id, &mut audience);
        audience.retain(|m| *m != id);
        let ev = Event::by(self.mask_of(id), EventBody::Account(body));
        self.send(Audience::Conns(audience), ev);
        // Logged in after registering (NickServ IDENTIFY): back in the
        // account's rooms now (a session logged in before registering is
        // put back at the end of its welcome, `Command::Rejoin`).
        self.rejoin(id);
    }

    /// Another node registered the account `name` (with a cluster: the
    /// shared accounts store says so): its nick is protected here too.
    pub fn learn_account(&mut self, name: &str) {
        self.accounts.registered.insert(names::fold(name));
    }

    /// A registered room as another node saved it (with a cluster). Only
    /// the record changes: the live room follows the facts, in the
    /// cluster's order; the record is what the room becomes again once
    /// it empties and someone comes back.
    pub fn learn_room(&mut self, record: RoomRecord) {
        let newer = self.accounts.rooms.get(record.key.as_str()).map(|r| r.seq);
        if newer.is_some_and(|seq| seq > record.seq) {
            return; // a later change of ours, on its way to the store
        }
        self.accounts
            .rooms
            .insert(record.key.as_str().into(), record);
    }

    /// The record `id` would register the room `room` (`None`: the current
    /// one) with, its account as founder; or why it may not. Changes
    /// nothing: a cluster first claims the record in its shared store
    /// ([`Accounts::register_room`](super::Accounts::register_room)).
    pub fn room_registration(&self, id: ConnId, room: Option<&str>) -> Result<RoomRecord, Refusal> {
        let Some(founder) = self.account_of(id) else {
            return Err(Refusal::new(ErrorCode::NotLoggedIn).detail("rooms belong to accounts"));
        };
        let key = self.current_room(id, room)?;
        self.check_member(id, &key, true)?;
        if self.accounts.rooms.contains_key(&key) {
            return Err(Refusal::new(ErrorCode::RoomRegistered).room(&self.shown(&key)));
        }
        self.room_record(&key, founder, now_ms())
            .ok_or_else(|| Refusal::new(ErrorCode::NoSuchRoom).room(&key))
    }

    /// `id` registers the room of `record`, which the accounts store took
    /// for it already ([`ChatState::room_registration`] made the record).
    pub fn registered_room(&mut self, id: ConnId, record: RoomRecord) -> super::Effects {
        self.register_room(id, None, Some(record));
        self.take()
    }

    /// Registers the room `room` (`None`: the current one) with `id`'s
    /// account as founder. `claimed`: the record the cluster's store took
    /// already (then it is not saved again).
    pub(super) fn register_room(
        &mut self,
        id: ConnId,
        room: Option<&str>,
        claimed: Option<RoomRecord>,
    ) {
        let (record, save) = match claimed {
            Some(record) => (record, false),
            None => match self.room_registration(id, room) {
                Ok(record) => (record, true),
                Err(refusal) => return self.refuse(id, refusal),
            },
        };
        let (room, founder) = (
            Name::from(record.name.as_str()),
            Name::from(record.founder.as_str()),
        );
        self.accounts
            .rooms
            .insert(record.key.as_str().into(), record.clone());
        if save {
            self.fx.saves.push(record);
        }
        let body = AccountEvent::RoomRegistered { room, founder };
        self.reply(id, EventBody::Account(body));
    }

    /// A registered room's topic, modes or bans changed: save it. With a
    /// cluster it is saved when the change comes back from the stream
    /// instead ([`ChatState::room_changed_at`]), in the cluster's order.
    pub(super) fn room_changed(&mut self, key: &str) {
        if !self.config.echo {
            self.save_room_at(key, 0);
        }
    }

    /// A change of ours to room `key` came back from the cluster's stream
    /// at `seq`: every change before it is applied here, so the room as
    /// it is now is what every node has at that point; saved with `seq`.
    pub(super) fn room_changed_at(&mut self, key: &str, seq: u64) {
        self.save_room_at(key, seq);
    }

    fn save_room_at(&mut self, key: &str, seq: u64) {
        let Some(old) = self.accounts.rooms.get(key) else {
            return;
        };
        let (founder, at) = (old.founder.clone(), old.registered_ms);
        let Some(mut record) = self.room_record(key, &founder, at) else {
            return;
        };
        let mut unchanged = self.accounts.rooms.get(key).cloned();
        if let Some(u) = &mut unchanged {
            u.seq = 0;
        }
        if unchanged.as_ref() != Some(&record) {
            record.seq = seq;
            self.accounts.rooms.insert(key.into(), record.clone());
            self.fx.saves.push(record);
        }
    }

    /// The record of the room `key` as it is now.
    fn room_record(&self, key: &str, founder: &str, registered_ms: u64) -> Option<RoomRecord> {
        let r = self.rooms.get(key)?;
        let m = &r.modes;
        Some(RoomRecord {
            key: key.to_string(),
            name: r.name.to_string(),
            founder: founder.to_string(),
            registered_ms,
            created_ms: r.created_ms,
            topic: r.topic.as_ref().map(|t| TopicRecord {
                text: t.text.to_string(),
                set_by: t.set_by.to_string(),
                set_at_ms: t.set_at_ms,
            }),
            modes: ModesRecord {
                invite_only: m.invite_only,
                moderated: m.moderated,
                no_external: m.no_external,
                topic_ops: m.topic_ops,
                private: m.private,
                secret: m.secret,
                key: m.key.as_deref().map(String::from),
                limit: m.limit,
            },
            bans: ban_records(&r.bans),
            excepts: ban_records(&r.excepts),
            invexes: ban_records(&r.invexes),
            seq: 0,
        })
    }

    /// A registered room comes back as it was saved.
    pub(super) fn restore_room(&self, key: &str, room: &mut Room) {
        let Some(rec) = self.accounts.rooms.get(key) else {
            return;
        };
        room.name = rec.name.as_str().into();
        room.created_ms = rec.created_ms;
        room.topic = rec.topic.as_ref().map(|t| TopicState {
            text: t.text.as_str().into(),
            set_by: t.set_by.as_str().into(),
            set_at_ms: t.set_at_ms,
        });
        let m = &rec.modes;
        room.modes = Modes {
            invite_only: m.invite_only,
            moderated: m.moderated,
            no_external: m.no_external,
            topic_ops: m.topic_ops,
            private: m.private,
            secret: m.secret,
            key: m.key.as_deref().map(Arc::from),
            limit: m.limit,
        };
        room.bans = ban_infos(&rec.bans);
        room.excepts = ban_infos(&rec.excepts);
        room.invexes = ban_infos(&rec.invexes);
    }

    /// Whether someone may enter the registered room `key`, which has
    /// nobody in it now (see `Room::admits`); anyone may enter other rooms.
    pub(super) fn registered_admits(
        &self,
        key: &str,
        mask: &str,
        room_key: Option<&str>,
        invited: bool,
    ) -> Result<(), Refusal> {
        if !self.accounts.rooms.contains_key(key) {
            return Ok(());
        }
        let mut room = Room::new(key.into(), 0);
        self.restore_room(key, &mut room);
        room.admits(mask, room_key, invited)
    }

    /// Whether `id` is made operator on entering the room `key`: in a
    /// registered room only its founder is (`Some`); elsewhere the first
    /// one in (`None`: the usual rule).
    pub(super) fn founder_op(&self, key: &str, id: ConnId) -> Option<bool> {
        let rec = self.accounts.rooms.get(key)?;
        Some(
            self.account_of(id)
                .is_some_and(|a| names::fold(a) == names::fold(&rec.founder)),
        )
    }
}

/// A mask list (`+b`, `+e`, `+I`) as saved.
fn ban_records(list: &[BanInfo]) -> Vec<BanRecord> {
    list.iter()
        .map(|b| BanRecord {
            mask: b.mask.to_string(),
            set_by: b.set_by.to_string(),
            set_at_ms: b.set_at_ms,
        })
        .collect()
}

/// A saved mask list as the room keeps it.
fn ban_infos(list: &[BanRecord]) -> Vec<BanInfo> {
    list.iter()
        .map(|b| BanInfo {
            mask: b.mask.as_str().into(),
            set_by: b.set_by.as_str().into(),
            set_at_ms: b.set_at_ms,
        })
        .collect()
}
