//! The chat state: who is connected, which nick is taken, who is in which
//! room with which status, and each room's topic, modes and bans.
//! [`ChatState::handle`] is a pure function of commands: it changes the
//! state and returns [`Effects`] — events for audiences (a connection, a
//! room, a room but one, a list of people), facts for the store and the
//! backplane, and what the session should do next. No queues, no I/O, no
//! wire syntax: refusals are [`Refusal`] data that each protocol words.
//!
//! The hub enforces room rules (keys, limits, bans, invite-only, moderation,
//! operators) for every protocol alike; protocols only differ in how they
//! ask and how they render the answers.
//!
//! Layout: this file holds connections, nicks and messaging; `channel.rs`
//! joining, leaving and room operator commands; `query.rs` the read-only
//! questions (who, whois, list, lusers); `remote.rs` facts from other
//! nodes; `room.rs` one room's rules; `mask.rs` wildcard masks; `names.rs`
//! nick and room name rules; `accounts.rs` who is logged in, registered
//! nicks and registered rooms; `rejoin.rs` the rooms each account keeps
//! and putting its sessions back in them; `handle.rs` the [`ChatHandle`]
//! sessions use (it owns the locks — the chat's, each room's order —, the
//! router and the seams; a line to a room reads the state, see
//! [`ChatState::line`], everything else changes it); `seams.rs`
//! the [`Store`], [`Accounts`] and [`Backplane`] traits.

mod accounts;
mod channel;
mod handle;
mod lines;
mod lookup;
pub mod mask;
mod monitor;
pub mod names;
mod oper;
mod query;
mod rejoin;
mod remote;
mod room;
mod seams;
mod tags;
mod whowas;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use crate::proto::{
    now_ms, Command, ConnId, ErrorCode, Event, EventBody, Fact, FactBody, IdGen, MsgId, Name,
    NodeId, Outcome, Profile, Refusal, Target, WhoWasInfo,
};
use room::Room;
pub(crate) use room::RoomOrder;

pub use accounts::{AccountRecord, BanRecord, ModesRecord, Registry, RoomRecord, TopicRecord};
pub use handle::{ChatHandle, Router, SLOW_CONSUMER};
pub use lines::Lines;
pub use query::{MembersPage, RoomsPage};
pub use rejoin::{RememberedRoom, RoomMemory};
pub use seams::{Accounts, Backplane, Incoming, Store, StoreError, Watermark};

/// The hub's own settings (a subset of the server config). Protocol limits
/// reach the hub as plain numbers here.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub server_name: String,
    pub default_room: String,
    pub max_nick_chars: usize,
    pub max_room_chars: usize,
    /// Rooms with more members than this do not announce each join and
    /// part to everyone, and a newcomer gets the count instead of the list.
    pub large_room: usize,
    /// Rooms whose names list is kept made between joins (see
    /// `ChatState::keep_names`).
    pub names_cache: usize,
    /// Most rooms one person may be in at once (IRC users may be in several).
    pub max_rooms_per_user: usize,
    /// Longest topic, reason (part, kick, quit) and away text, in bytes.
    pub topic_len: usize,
    pub reason_len: usize,
    pub away_len: usize,
    /// Longest room key and ban mask in bytes; most bans per room.
    pub key_len: usize,
    pub ban_mask_len: usize,
    pub max_bans: usize,
    /// Most rooms on the server, and rooms one connection may create per
    /// minute (0: no limit).
    pub max_rooms: usize,
    pub rooms_per_minute: u32,
    /// Most pending invitations one person holds (older ones are forgotten).
    pub max_invites: usize,
    /// Rooms in one page of the room list.
    pub page_size: usize,
    /// This process's node id (part of every connection key and message id).
    pub node: NodeId,
    /// Whether what people say, and operators' changes, are shown when the
    /// backplane hands them back in the cluster's order (every node shows
    /// them in that one order), instead of at once.
    pub echo: bool,
    /// Departed nicks remembered for `WHOWAS` (0: none).
    pub whowas_entries: usize,
    /// Most nicks one person may watch with `MONITOR`.
    pub monitor_limit: usize,
    /// Whether server operators may shut the server down (`DIE`).
    pub oper_die: bool,
    /// Names of the oper blocks that exist (`OPER` checks passwords in the
    /// session; the hub only takes known names).
    pub opers: Vec<String>,
    /// Whether accounts keep the rooms their sessions are in, and sessions
    /// logging in are put back in them (see `rejoin.rs`).
    pub rejoin_on_login: bool,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig::from_config(&crate::config::Config::default())
    }
}

impl HubConfig {
    pub fn from_config(c: &crate::config::Config) -> HubConfig {
        use crate::proto::limits;
        HubConfig {
            server_name: c.server_name.clone(),
            default_room: c.default_room.clone(),
            max_nick_chars: c.max_nick_chars,
            max_room_chars: c.max_room_chars,
            large_room: c.large_room,
            names_cache: c.names_cache,
            max_rooms_per_user: c.max_rooms_per_user,
            topic_len: c.topic_len,
            reason_len: limits::REASON_LEN,
            away_len: limits::AWAY_LEN,
            key_len: limits::KEY_LEN,
            ban_mask_len: limits::BAN_MASK_LEN,
            max_bans: c.max_bans,
            max_rooms: c.max_rooms,
            rooms_per_minute: c.rooms_per_minute,
            max_invites: c.max_invites,
            page_size: c.page_size,
            node: if c.cluster == "off" { 0 } else { c.node },
            echo: c.cluster != "off",
            whowas_entries: c.whowas_entries,
            monitor_limit: c.monitor_limit,
            oper_die: c.oper_die,
            opers: c.opers.names(),
            rejoin_on_login: c.rejoin_on_login,
        }
    }
}

/// Who should get an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// One connection.
    Conn(ConnId),
    /// Every member of a room (by folded key), as it is once the command is done.
    Room(Name),
    /// Every member of a room but one.
    RoomExcept(Name, ConnId),
    /// These people (computed when the event happened: e.g. a quitter's peers).
    Conns(Vec<ConnId>),
    /// Everyone connected.
    Everyone,
}

/// What one command did: deliveries in order, facts for the store and the
/// backplane, requests for the server, and what the session does next.
#[derive(Debug)]
pub struct Effects {
    pub deliveries: Vec<(Audience, Arc<Event>)>,
    pub facts: Vec<Fact>,
    /// What the server must do beyond delivering (after the deliveries).
    pub control: Vec<Control>,
    pub outcome: Outcome,
    /// Registered rooms whose state changed, for the accounts store.
    pub saves: Vec<RoomRecord>,
    /// Read markers that moved: (folded account, folded target, timestamp).
    pub markers: Vec<(String, String, String)>,
    /// Changes to the rooms accounts keep (`rejoin_on_login`).
    pub rooms_remembered: Vec<RoomMemory>,
}

impl Default for Effects {
    fn default() -> Self {
        Effects {
            deliveries: Vec::new(),
            facts: Vec::new(),
            control: Vec::new(),
            outcome: Outcome::Continue,
            saves: Vec::new(),
            markers: Vec::new(),
            rooms_remembered: Vec::new(),
        }
    }
}

/// Something only the server can do, asked for by a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Close this local connection once what is queued for it is written
    /// (it was killed; the state has already let it go).
    Close(ConnId),
    /// Reload the configuration file.
    Rehash,
    /// Shut the server down.
    Shutdown,
}

struct Conn {
    nick: Option<Name>,
    /// Folded keys of the rooms this member is in; the last is the current one.
    rooms: Vec<Name>,
    user: Name,
    realname: Name,
    host: Name,
    auto_join: bool,
    /// Its rooms are kept for its account, and it is put back in the
    /// account's rooms when it logs in (`Profile::rejoin`).
    rejoin: bool,
    /// `nick!user@host` (with `*` for the nick before registration).
    mask: Arc<str>,
    /// User mode `+i`: hidden from `WHO` masks to people sharing no room.
    invisible: bool,
    /// User mode `+w`: gets `WALLOPS`.
    wallops: bool,
    /// User mode `+B`: a bot.
    bot: bool,
    /// When this person last said something (a line to a room sets it with
    /// the chat shared, hence atomic).
    active_ms: AtomicU64,
    /// The account this connection is logged in to.
    account: Option<Name>,
    /// Connected over TLS (IRC WHOIS says so).
    secure: bool,
    /// The id of its registration fact (zero until it registers), as two
    /// halves (a `u128` would align the record to 16 bytes). It says when
    /// it signed on, and who it is in private history while not logged in
    /// (`!node.local.id`, which no other session ever has: see
    /// `ChatState::history_identity`), written out only when asked: not a
    /// string kept in every connection's record.
    online: [u64; 2],
    /// What few connections use, made when first needed (see [`Rare`]).
    rare: Option<Box<Rare>>,
}

/// What few connections use: an away message, operator status,
/// `MONITOR`, invites, rooms created lately, a guest's private logs. Kept
/// out of [`Conn`] behind one pointer (null until one of them is set), so
/// that an idle connection's record, one of every connection in the
/// table, stays small (`perf16h`: 280 → 168 bytes).
#[derive(Default)]
struct Rare {
    away: Option<Arc<str>>,
    /// The oper block this person used to become a server operator.
    oper: Option<Name>,
    /// Nicks this person watches (`MONITOR`), as given.
    watching: Vec<Name>,
    /// Told of watched people's away and real-name changes too.
    watch_details: bool,
    /// Folded keys of rooms this person was invited into.
    invites: Vec<Name>,
    /// Rooms created in the minute that started at `created_since_ms`.
    created: u32,
    created_since_ms: u64,
    /// Keys of the private logs this guest session wrote to (their order
    /// is forgotten when it ends).
    guest_logs: Vec<Name>,
}

/// What a connection without a [`Rare`] reads.
static NO_RARE: Rare = Rare {
    away: None,
    oper: None,
    watching: Vec::new(),
    watch_details: false,
    invites: Vec::new(),
    created: 0,
    created_since_ms: 0,
    guest_logs: Vec::new(),
};

/// The user and real name a connection has until it gives its own (IRC
/// `USER`), one string shared by all instead of a copy each.
fn default_identity() -> (Name, Name) {
    static DEFAULTS: std::sync::OnceLock<(Name, Name)> = std::sync::OnceLock::new();
    DEFAULTS
        .get_or_init(|| ("text".into(), "natter user".into()))
        .clone()
}

impl Conn {
    fn new(host: Name) -> Conn {
        let now = now_ms();
        let (user, realname) = default_identity();
        let mut c = Conn {
            nick: None,
            rooms: Vec::new(),
            user,
            realname,
            host,
            auto_join: true,
            rejoin: false,
            mask: "*".into(),
            invisible: false,
            wallops: false,
            bot: false,
            active_ms: AtomicU64::new(now),
            account: None,
            secure: false,
            online: [0, 0],
            rare: None,
        };
        c.update_mask();
        c
    }

    /// What few connections use (all empty while unset).
    fn rare(&self) -> &Rare {
        self.rare.as_deref().unwrap_or(&NO_RARE)
    }

    /// What few connections use, made now if it was not.
    fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// User modes as `+iow` (`+` alone: none).
    fn user_modes(&self) -> String {
        let mut m = String::from("+");
        for (on, c) in [
            (self.bot, 'B'),
            (self.invisible, 'i'),
            (self.rare().oper.is_some(), 'o'),
            (self.wallops, 'w'),
        ] {
            if on {
                m.push(c);
            }
        }
        m
    }

    /// The id of its registration fact, once registered.
    fn online_id(&self) -> Option<MsgId> {
        let [hi, lo] = self.online;
        (hi | lo != 0).then(|| MsgId((u128::from(hi) << 64) | u128::from(lo)))
    }

    /// When it registered (Unix milliseconds; 0 before).
    fn signon_ms(&self) -> u64 {
        self.online_id().map_or(0, MsgId::millis)
    }

    /// Its guest session in private history (`!node.local.id`), once
    /// registered (see `ChatState::history_identity`).
    fn session(&self, id: ConnId) -> Option<String> {
        let online = self.online_id()?;
        Some(format!("!{}.{}.{online}", id.node, id.local))
    }

    fn update_mask(&mut self) {
        let nick = self.nick.as_deref().unwrap_or("*");
        // `nick!user@host`, sized once (no formatting machinery).
        let mut mask = String::with_capacity(nick.len() + self.user.len() + self.host.len() + 2);
        for part in [nick, "!", &self.user, "@", &self.host] {
            mask.push_str(part);
        }
        self.mask = mask.into();
    }
}

/// The people on the server (and on other nodes), by the server's own
/// `ConnId`s, which no client picks: hashed with `foldhash`.
type ConnTable = HashMap<ConnId, Box<Conn>, foldhash::fast::RandomState>;

/// All chat state. Pure: see the module documentation.
pub struct ChatState {
    config: HubConfig,
    /// Keyed by ids the server hands out (no client picks them), so with
    /// a fast hash: a join's names list looks up every member. Boxed: the
    /// table keeps up to about twice the slots, and a slot is 24 bytes
    /// instead of the record's 168.
    conns: ConnTable,
    /// By folded nick. Keys are boxed strings, not `String`s: a slot of
    /// this table and of `lookalikes` is 8 bytes smaller (the table keeps
    /// up to about twice the slots of the nicks in use).
    nicks: HashMap<Box<str>, ConnId>,
    /// By folded name, in order: the room list is paged by it.
    rooms: BTreeMap<Name, Room>,
    /// The last sequence number of rooms that have none now (emptied, or
    /// known only from the store), so a room's order never restarts.
    seqs: HashMap<Name, RoomOrder>,
    /// Message ids, taken under a short lock of their own: lines to
    /// different rooms take them from several threads at once.
    ids: Mutex<IdGen>,
    /// Accounts, registered nicks and registered rooms.
    accounts: accounts::AccountState,
    /// Who had which nick recently, newest last (`whowas_entries` at most).
    whowas: VecDeque<WhoWasInfo>,
    /// The most people online at once.
    max_online: usize,
    /// Client-only tags of the command being handled (see [`Command::Tagged`]).
    tags: Option<crate::proto::ClientTags>,
    /// Who holds a nick that looks like this ([`names::lookalike`]).
    lookalikes: HashMap<Box<str>, ConnId>,
    /// Who watches each nick (folded), for `MONITOR`.
    watchers: HashMap<String, Vec<ConnId>>,
    /// What the command being handled did so far.
    fx: Effects,
    /// Putting someone back in their account's rooms (`rejoin`): rooms
    /// made again this way do not count against `rooms_per_minute`.
    rejoining: bool,
    /// Keys of the rooms that keep their names list (`Room::names_cards`),
    /// the one used last at the back; at most `names_cache`.
    names_kept: VecDeque<Name>,
}

/// Halves a table that is at most a quarter full (and bigger than a
/// few dozen slots). Rehashing what is left costs as much as the removals
/// that made room for it, so it is amortised over them.
fn shrink<K: std::hash::Hash + Eq, V, S: std::hash::BuildHasher>(map: &mut HashMap<K, V, S>) {
    const SMALL: usize = 64;
    if map.capacity() > SMALL && map.len() < map.capacity() / 4 {
        map.shrink_to((map.len() * 2).max(SMALL / 2));
    }
}

/// Cuts user-supplied text to `max` bytes at a character boundary.
fn cap(text: &str, max: usize) -> Arc<str> {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].into()
}

impl ChatState {
    pub fn new(config: HubConfig) -> ChatState {
        ChatState {
            ids: Mutex::new(IdGen::new(config.node)),
            config,
            conns: HashMap::default(),
            nicks: HashMap::new(),
            rooms: BTreeMap::new(),
            whowas: VecDeque::new(),
            max_online: 0,
            tags: None,
            watchers: HashMap::new(),
            lookalikes: HashMap::new(),
            seqs: HashMap::new(),
            accounts: Default::default(),
            fx: Effects::default(),
            rejoining: false,
            names_kept: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// People online (registered connections).
    pub fn online(&self) -> usize {
        self.nicks.len()
    }

    /// Connections, registered or not.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Continues each room's order from these last sequence numbers.
    pub fn seed_seqs(&mut self, seqs: Vec<(String, u64)>) {
        self.seqs.extend(seqs.into_iter().map(|(k, seq)| {
            // What kind of fact the last one was is not known here:
            // a message, for all a join's replay can tell.
            (Name::from(k), RoomOrder { seq, said: seq })
        }));
    }

    /// The last sequence number of the room named `room`, if `id` is in it.
    pub fn member_seq(&self, id: ConnId, room: &str) -> Option<u64> {
        let name = names::check_room(room, self.config.max_room_chars).ok()?;
        // Borrowed when folded already (a join's replay asks twice per join).
        let r = self.rooms.get(&*names::folded(name))?;
        r.members().contains_key(&id).then(|| r.last_seq())
    }

    /// Where the room named `room` stands (its last fact, its newest
    /// message), if `id` is in it.
    pub(crate) fn member_order(&self, id: ConnId, room: &str) -> Option<RoomOrder> {
        let name = names::check_room(room, self.config.max_room_chars).ok()?;
        let r = self.rooms.get(&*names::folded(name))?;
        r.members().contains_key(&id).then(|| r.place())
    }

    /// The rooms `id` is in: (folded key, name as people write it).
    pub fn rooms_of(&self, id: ConnId) -> Vec<(String, Name)> {
        let Some(c) = self.conns.get(&id) else {
            return Vec::new();
        };
        c.rooms
            .iter()
            .filter_map(|k| Some((k.to_string(), self.rooms.get(k)?.name.clone())))
            .collect()
    }

    /// The name of the room `id` talks in now.
    pub fn current_room_name(&self, id: ConnId) -> Option<Name> {
        let key = self.conns.get(&id)?.rooms.last()?;
        self.rooms.get(key).map(|r| r.name.clone())
    }

    /// A new room under `key`, continuing its order if it had one.
    fn new_room(&mut self, key: &Name, name: &str) -> &mut Room {
        // One lookup for a room that exists, one more to add a new one (a
        // lobby that empties is dropped and made again for its next member).
        if !self.rooms.contains_key(key) {
            let order = self.seqs.remove(key).unwrap_or_default();
            let mut room = Room::continued(name.into(), order);
            self.restore_room(key, &mut room);
            return self.rooms.entry(key.clone()).or_insert(room);
        }
        self.rooms
            .entry(key.clone())
            .or_insert_with(|| Room::new(name.into(), 0))
    }

    /// Rooms that exist (have members).
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// The nick of a connection, if it has registered.
    pub fn nick_of(&self, id: ConnId) -> Option<&Name> {
        self.conns.get(&id).and_then(|c| c.nick.as_ref())
    }

    /// How many connections `audience` reaches (an upper bound for
    /// `RoomExcept` when the one left out is not a member). Constant time.
    pub fn audience_size(&self, audience: &Audience) -> usize {
        let room = |key: &str| self.rooms.get(key).map_or(0, |r| r.fanout().len());
        match audience {
            Audience::Conn(_) => 1,
            Audience::Room(key) => room(key),
            Audience::RoomExcept(key, _) => room(key).saturating_sub(1).max(1),
            Audience::Conns(list) => list.len(),
            Audience::Everyone => self.conns.len(),
        }
    }

    /// The room of folded name `key`.
    pub(super) fn room(&self, key: &str) -> Option<&Room> {
        self.rooms.get(key)
    }

    /// Calls `f` for every connection in `audience`, as the state is now.
    pub fn for_each_member(&self, audience: &Audience, mut f: impl FnMut(ConnId)) {
        match audience {
            // Even one just removed: a quitter still gets its goodbye.
            Audience::Conn(id) => f(*id),
            Audience::Room(key) => {
                if let Some(r) = self.rooms.get(key) {
                    r.fanout().iter().copied().for_each(f);
                }
            }
            Audience::RoomExcept(key, but) => {
                if let Some(r) = self.rooms.get(key) {
                    r.fanout().iter().filter(|m| *m != but).copied().for_each(f);
                }
            }
            Audience::Conns(list) => list.iter().copied().for_each(f),
            Audience::Everyone => self.conns.keys().copied().for_each(f),
        }
    }

    /// A new connection from `host`: it gets the welcome (online count) at once.
    pub fn connect(&mut self, id: ConnId, host: Name) -> Effects {
        self.conns.insert(id, Box::new(Conn::new(host)));
        let body = EventBody::Welcome {
            server: self.config.server_name.as_str().into(),
            online: self.online(),
        };
        self.reply(id, body);
        self.take()
    }

    /// One event to every connection (shutdown notices).
    pub fn broadcast(&mut self, body: EventBody) -> Effects {
        self.fx
            .deliveries
            .push((Audience::Everyone, Arc::new(Event::new(body))));
        self.take()
    }

    /// The connection went away (closed, timed out, dropped): tell its rooms.
    pub fn disconnect(&mut self, id: ConnId, reason: &str) -> Effects {
        self.remove(id, reason);
        self.take()
    }

    /// Applies one command from connection `id`.
    pub fn handle(&mut self, id: ConnId, cmd: Command) -> Effects {
        if !self.conns.contains_key(&id) {
            // Already removed (e.g. as a slow consumer).
            self.fx.outcome = Outcome::Close;
            return self.take();
        }
        self.dispatch(id, cmd);
        self.take()
    }

    /// Applies one command, adding to the effects gathered so far.
    fn dispatch(&mut self, id: ConnId, cmd: Command) {
        let registered = self.nick_of(id).is_some();
        let cmd = match self.in_current_room(id, cmd) {
            Ok(cmd) => cmd,
            Err(refusal) => return self.refuse(id, refusal),
        };
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
                let reason = cap(&reason, self.config.reason_len);
                self.remove(id, &reason);
                self.fx.outcome = Outcome::Close;
            }
            Command::Identify(profile) => self.identify(id, profile),
            Command::CheckNick { nick } => {
                // An account's nick in use may be taken back by its owner
                // logging in before registering (SASL): decided then.
                let reclaimable =
                    |p: &Refusal| p.code == ErrorCode::NickInUse && self.is_registered_nick(&nick);
                match self.nick_problem(id, &nick) {
                    Some(problem) if !reclaimable(&problem) => self.refuse(id, problem),
                    _ => {}
                }
            }
            Command::Register { nick } => self.register(id, &nick),
            Command::Authenticated { account, created } => {
                self.authenticated(id, &account, created)
            }
            Command::WatchDetails { on } => {
                if let Some(c) = self.conns.get_mut(&id) {
                    if on || c.rare.is_some() {
                        c.rare_mut().watch_details = on;
                    }
                }
            }
            _ if !registered => self.refuse(id, Refusal::new(ErrorCode::NotRegistered)),
            Command::Say { room, text, action } => {
                let tags = self.tags.clone();
                let fx = self.say(id, room.as_deref(), text, action, tags, |fx, _| fx);
                self.absorb(fx);
            }
            Command::Private { to, text, action } => self.private(id, &to, text, action),
            Command::Notice { target, text } => self.notice(id, &target, text),
            Command::Join { room, switch } => self.join(id, &room, None, switch),
            Command::JoinWithKey { room, key, switch } => {
                self.join(id, &room, key.as_deref(), switch)
            }
            Command::Part { room, reason } => self.part(id, room.as_deref(), reason),
            Command::Who { room } => self.who(id, room.as_deref()),
            Command::Rooms { after } => self.rooms(id, after.as_deref()),
            Command::Nick { new } => self.change_nick(id, &new),
            Command::Topic { room, text } => self.topic(id, &room, text),
            Command::RoomMode { room, changes } => self.room_mode(id, &room, changes),
            Command::UserMode { nick, modes } => self.user_mode(id, &nick, modes.as_deref()),
            Command::Kick { room, nick, reason } => self.kick(id, &room, &nick, reason),
            Command::Invite { nick, room } => self.invite(id, &nick, &room),
            Command::Away { text } => self.away(id, text),
            Command::Whois { nick } => self.whois(id, &nick),
            Command::WhoDetail { target } => self.who_detail(id, &target),
            Command::List { rooms } => self.list(id, rooms),
            Command::Lusers => self.lusers(id),
            Command::RegisterRoom { room } => self.register_room(id, room.as_deref(), None),
            Command::NickGrace { nick } => self.nick_grace(id, &nick),
            Command::Names { rooms } => self.names(id, &rooms),
            Command::UserHost { nicks } => self.userhost(id, &nicks),
            Command::IsOn { nicks } => self.ison(id, &nicks),
            Command::WhoWas { nick, count } => self.whowas(id, &nick, count),
            Command::PartAll => self.part_all(id),
            Command::OperUp { name } => self.oper_up(id, &name),
            Command::Kill { nick, reason } => self.kill(id, &nick, &reason),
            Command::Wallops { text } => self.wallops(id, text),
            Command::Rehash => self.rehash(id),
            Command::Die => self.die(id),
            Command::Tagged { tags, command } => {
                self.tags = Some(tags);
                match *command {
                    Command::Tagged { .. } => {}
                    command => self.dispatch(id, command),
                }
                self.tags = None;
            }
            Command::TagMsg { target, tags } => self.tag_msg(id, &target, tags),
            Command::MarkRead { target, at } => self.mark_read(id, &target, &at),
            Command::Rejoin => self.rejoin(id),
            Command::Monitor(op) => self.monitor(id, op),
            Command::SetName { realname } => self.set_name(id, realname),
            Command::Invites => {
                let keys = self
                    .conns
                    .get(&id)
                    .map(|c| c.rare().invites.clone())
                    .unwrap_or_default();
                let rooms = keys.iter().map(|k| self.shown(k)).collect();
                self.reply(id, EventBody::InviteList { rooms });
            }
            Command::SayToStatus {
                room,
                text,
                action,
                notice,
                voiced,
            } => self.say_to_status(id, &room, text, action, notice, voiced),
        }
    }

    /// A room command that names no room (text and JSON users may leave
    /// it out) is about the room `id` talks in now.
    fn in_current_room(&self, id: ConnId, cmd: Command) -> Result<Command, Refusal> {
        let current = || {
            self.current_room_name(id)
                .map(|r| r.to_string())
                .ok_or_else(|| Refusal::new(ErrorCode::NotInRoom))
        };
        Ok(match cmd {
            Command::Topic { room, text } if room.is_empty() => Command::Topic {
                room: current()?,
                text,
            },
            Command::RoomMode { room, changes } if room.is_empty() => Command::RoomMode {
                room: current()?,
                changes,
            },
            Command::Kick { room, nick, reason } if room.is_empty() => Command::Kick {
                room: current()?,
                nick,
                reason,
            },
            Command::Invite { nick, room } if room.is_empty() => Command::Invite {
                nick,
                room: current()?,
            },
            cmd => cmd,
        })
    }

    /// The effects gathered so far, leaving none.
    fn take(&mut self) -> Effects {
        std::mem::take(&mut self.fx)
    }

    /// Sends an event to one connection.
    fn reply(&mut self, id: ConnId, body: EventBody) {
        self.send(Audience::Conn(id), Arc::new(Event::new(body)));
    }

    /// Refuses what `id` asked for.
    fn refuse(&mut self, id: ConnId, refusal: Refusal) {
        if self.fx.outcome == Outcome::Continue {
            self.fx.outcome = Outcome::Refused;
        }
        self.reply(id, EventBody::Refused(refusal));
    }

    fn send(&mut self, audience: Audience, ev: Arc<Event>) {
        self.fx.deliveries.push((audience, ev));
    }

    /// The next message id.
    fn next_id(&self, at_ms: u64) -> crate::proto::MsgId {
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        ids.next(at_ms)
    }

    /// Adds what [`ChatState::say`] (made with the state shared) did to
    /// the effects gathered so far.
    fn absorb(&mut self, fx: Effects) {
        self.fx.deliveries.extend(fx.deliveries);
        self.fx.facts.extend(fx.facts);
        if fx.outcome != Outcome::Continue && self.fx.outcome == Outcome::Continue {
            self.fx.outcome = fx.outcome;
        }
    }

    /// A line to a room (`Say`, tagged or not) with the state shared (the
    /// chat's read lock, see `handle.rs`): `then` gets its effects while
    /// the room's order lock is held, so that what the caller does with
    /// them (store, backplane, pushes) happens in the room's order; and
    /// the room's lines not yet pushed ([`room::Order::lines`]), which a
    /// line may join instead of being pushed at once (an empty list for a
    /// refusal). `Err` gives back any other command, and a line from a connection
    /// that is gone or not registered, for [`ChatState::handle`].
    pub(super) fn line<T>(
        &self,
        id: ConnId,
        cmd: Command,
        then: impl FnOnce(Effects, &mut Vec<Arc<Event>>) -> T,
    ) -> Result<T, Command> {
        if self.nick_of(id).is_none() {
            return Err(cmd);
        }
        match cmd {
            Command::Say { room, text, action } => {
                Ok(self.say(id, room.as_deref(), text, action, None, then))
            }
            Command::Tagged { tags, command } => match *command {
                Command::Say { room, text, action } => {
                    Ok(self.say(id, room.as_deref(), text, action, Some(tags), then))
                }
                command => Err(Command::Tagged {
                    tags,
                    command: Box::new(command),
                }),
            },
            cmd => Err(cmd),
        }
    }

    /// Records a fact about `id`'s doing; returns it for building the event.
    fn fact(&mut self, id: ConnId, room: Option<&Name>, body: FactBody) -> &Fact {
        let at_ms = now_ms();
        let seq = match room.and_then(|k| self.rooms.get_mut(k)) {
            Some(r) => {
                let seq = r.seq_mut();
                *seq += 1;
                let seq = *seq;
                if body.is_message() {
                    r.note_said(seq);
                }
                seq
            }
            None => 0,
        };
        let room = room.and_then(|k| self.rooms.get(k)).map(|r| r.name.clone());
        let source = self.mask_of(id).unwrap_or_else(|| "*".into());
        self.fx.facts.push(Fact {
            id: self.next_id(at_ms),
            at_ms,
            by: id,
            source,
            room,
            seq,
            body,
        });
        let last = self.fx.facts.len() - 1;
        &self.fx.facts[last]
    }

    /// Everyone who shares a room with `id`, plus `id` itself. With
    /// `quiet_large`, rooms too large to announce presence in are skipped.
    fn peers(&self, id: ConnId, quiet_large: bool) -> Vec<ConnId> {
        let mut out = vec![id];
        if let Some(c) = self.conns.get(&id) {
            for key in &c.rooms {
                match self.rooms.get(key) {
                    Some(room)
                        if !(quiet_large && room.members().len() > self.config.large_room) =>
                    {
                        out.extend(room.members().keys().copied());
                    }
                    _ => {}
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether `id` is a bot (user mode `+B`).
    pub(super) fn is_bot(&self, id: ConnId) -> bool {
        self.conns.get(&id).is_some_and(|c| c.bot)
    }

    /// The IRC source (`nick!user@host`) of a connection.
    fn mask_of(&self, id: ConnId) -> Option<Arc<str>> {
        self.conns.get(&id).map(|c| c.mask.clone())
    }

    /// Sets who a connection is (username, real name) and whether it
    /// joins the default room on registering. Only before registering.
    fn identify(&mut self, id: ConnId, profile: Profile) {
        if let Some(c) = self.conns.get_mut(&id).filter(|c| c.nick.is_none()) {
            c.user = profile.user;
            c.realname = profile.realname;
            c.auto_join = profile.auto_join;
            c.rejoin = profile.rejoin;
            c.update_mask();
        }
    }

    /// Why `nick` could not be taken by `id` right now (invalid or in use).
    pub fn nick_problem(&self, id: ConnId, nick: &str) -> Option<Refusal> {
        if let Err(why) = names::check_nick(nick, self.config.max_nick_chars) {
            return Some(Refusal::new(ErrorCode::NickInvalid).nick(nick).detail(why));
        }
        match self.nicks.get(&*names::folded(nick)) {
            // One logged in to the nick's account takes it from whoever has it.
            Some(&owner) if owner != id && !self.owns(id, nick) => {
                Some(Refusal::new(ErrorCode::NickInUse).nick(nick))
            }
            Some(_) => None,
            _ => match self.lookalikes.get(&*names::lookalike(nick)) {
                Some(&owner) if owner != id => {
                    let like = self.nick_of(owner).map_or("someone", |n| &**n);
                    let detail = format!("it looks like {like}, who is online");
                    Some(Refusal::new(ErrorCode::NickInUse).nick(nick).detail(detail))
                }
                _ => None,
            },
        }
    }

    /// `id` now holds `nick`.
    fn hold_nick(&mut self, nick: &str, id: ConnId) {
        self.nicks.insert(names::fold(nick).into(), id);
        self.lookalikes.insert(names::lookalike(nick).into(), id);
    }

    /// `id` no longer holds `nick`.
    fn release_nick(&mut self, nick: &str, id: ConnId) {
        self.nicks.remove(&*names::fold(nick));
        let look = names::lookalike(nick);
        if self.lookalikes.get(&*look) == Some(&id) {
            self.lookalikes.remove(&*look);
        }
    }

    fn register(&mut self, id: ConnId, nick: &str) {
        if self.nick_of(id).is_some() {
            return self.refuse(id, Refusal::new(ErrorCode::AlreadyRegistered));
        }
        if let Some(problem) = self
            .nick_problem(id, nick)
            .or_else(|| self.protection(id, nick))
        {
            return self.refuse(id, problem);
        }
        self.free_for(id, nick);
        self.hold_nick(nick, id);
        let name: Name = nick.into();
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        c.nick = Some(name.clone());
        c.update_mask();
        if !c.rooms.is_empty() {
            self.unsort_rooms_of(id);
        }
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        *c.active_ms.get_mut() = now_ms();
        let auto_join = c.auto_join;
        let body = FactBody::Online {
            nick: name.clone(),
            user: c.user.clone(),
            host: c.host.clone(),
            realname: c.realname.clone(),
        };
        let online_id = self.fact(id, None, body).id;
        if let Some(c) = self.conns.get_mut(&id) {
            c.online = [(online_id.0 >> 64) as u64, online_id.0 as u64];
        }
        let online = self.online();
        self.max_online = self.max_online.max(online);
        self.reply(
            id,
            EventBody::Registered {
                nick: name.clone(),
                online,
            },
        );
        self.warn_unprotected(id);
        self.announce_online(id, &name);
        if auto_join && !self.config.default_room.is_empty() {
            let room = self.config.default_room.clone();
            self.join(id, &room, None, true);
        }
    }

    /// Resolves a room argument (`None`: the current room) to its folded key.
    fn current_room(&self, id: ConnId, room: Option<&str>) -> Result<Name, Refusal> {
        let conn = self
            .conns
            .get(&id)
            .ok_or_else(|| Refusal::new(ErrorCode::NotRegistered))?;
        match room {
            Some(r) => {
                let name = names::check_room(r, self.config.max_room_chars)
                    .map_err(|why| Refusal::new(ErrorCode::RoomInvalid).room(r).detail(why))?;
                Ok(self.key_of(name))
            }
            None => conn
                .rooms
                .last()
                .cloned()
                .ok_or_else(|| Refusal::new(ErrorCode::NotInRoom)),
        }
    }

    /// The folded key of a room name: the existing room's own key (shared,
    /// no allocation kept), or a new one.
    fn key_of(&self, name: &str) -> Name {
        let folded = names::fold(name);
        match self.rooms.get_key_value(folded.as_str()) {
            Some((k, _)) => k.clone(),
            None => folded.into(),
        }
    }

    /// What `id` says to a room: see [`ChatState::line`]. Only reads
    /// the state; the room's next sequence number is taken under the
    /// room's order lock, held while `then` runs.
    fn say<T>(
        &self,
        id: ConnId,
        room: Option<&str>,
        text: String,
        action: bool,
        tags: Option<crate::proto::ClientTags>,
        then: impl FnOnce(Effects, &mut Vec<Arc<Event>>) -> T,
    ) -> T {
        let refused = |refusal: Refusal| {
            let ev = Arc::new(Event::new(EventBody::Refused(refusal)));
            Effects {
                deliveries: vec![(Audience::Conn(id), ev)],
                outcome: Outcome::Refused,
                ..Effects::default()
            }
        };
        let checked = || {
            if text.trim().is_empty() {
                return Err(Refusal::new(ErrorCode::EmptyMessage));
            }
            let key = self.current_room(id, room)?;
            let not_registered = || Refusal::new(ErrorCode::NotRegistered);
            let conn = self.conns.get(&id).ok_or_else(not_registered)?;
            let Some(r) = self.rooms.get(&key) else {
                return Err(Refusal::new(ErrorCode::NoSuchRoom).room(&key));
            };
            r.may_speak(id, &conn.mask)?;
            let from = conn.nick.clone().ok_or_else(not_registered)?;
            Ok((key, conn, r, from))
        };
        let (key, conn, r, from) = match checked() {
            Ok(checked) => checked,
            Err(refusal) => return then(refused(refusal), &mut Vec::new()),
        };
        let member = r.members().contains_key(&id);
        let (room_name, source) = (r.name.clone(), conn.mask.clone());
        let text: Arc<str> = text.into();
        let body = FactBody::Said {
            from: from.clone(),
            text: text.clone(),
            action,
        };
        let (actor, bot) = (self.logged_in_actor(id), conn.bot);
        // The room's order: from here until `then` is done.
        let mut order = r.order();
        order.seq += 1;
        let seq = order.seq;
        r.note_said(seq);
        let at_ms = now_ms();
        let fact = Fact {
            id: self.next_id(at_ms),
            at_ms,
            by: id,
            source: source.clone(),
            room: Some(room_name.clone()),
            seq,
            body,
        };
        let ev = Event::by(
            Some(source),
            EventBody::Message {
                id: fact.id,
                seq: fact.seq,
                room: room_name,
                from,
                text,
                action,
            },
        )
        .at(at_ms)
        .with_actor(actor)
        .with_tags(tags)
        .from_bot(bot);
        conn.active_ms.store(at_ms, Relaxed);
        let mut deliveries = Vec::with_capacity(2);
        if !member {
            deliveries.push((Audience::Conn(id), ev.clone())); // an outsider (room is -n) still sees its line
        }
        deliveries.push((Audience::Room(key), ev));
        let effects = Effects {
            deliveries,
            facts: vec![fact],
            ..Effects::default()
        };
        then(effects, &mut order.lines)
    }

    fn touch(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.active_ms.store(now_ms(), Relaxed);
        }
    }

    fn private(&mut self, id: ConnId, to: &str, text: String, action: bool) {
        if text.trim().is_empty() {
            return self.refuse(id, Refusal::new(ErrorCode::EmptyMessage));
        }
        let Some(&target) = self.nicks.get(&*names::fold(to)) else {
            return self.refuse(id, Refusal::new(ErrorCode::NoSuchNick).nick(to));
        };
        let (Some(from), Some(to)) = (self.nick_of(id).cloned(), self.nick_of(target).cloned())
        else {
            return;
        };
        let away = self.conns.get(&target).and_then(|c| c.rare().away.clone());
        let text: Arc<str> = text.into();
        let body = FactBody::Private {
            from: from.clone(),
            to: to.clone(),
            text: text.clone(),
            action,
        };
        let (msg_id, at_ms) = {
            let f = self.fact(id, None, body);
            (f.id, f.at_ms)
        };
        self.keep_private(id, target);
        let ev = Event::by(
            self.mask_of(id),
            EventBody::Private {
                id: msg_id,
                from,
                to: to.clone(),
                text,
                action,
            },
        )
        .at(at_ms)
        .with_actor(self.logged_in_actor(id))
        .with_tags(self.tags.clone())
        .from_bot(self.is_bot(id));
        self.touch(id);
        self.send(Audience::Conn(target), ev.clone());
        match target != id {
            true => self.send(Audience::Conn(id), ev),
            false => self.send(Audience::Conn(id), ev.echo_copy()),
        }
        if let Some(text) = away {
            self.reply(id, EventBody::AwayReply { nick: to, text });
        }
    }

    /// The fact just made, between `id` and `target`, is kept in their
    /// private log, in the pair's own order.
    pub(super) fn keep_private(&mut self, id: ConnId, target: ConnId) {
        let Some(log) = self.private_log(id, target) else {
            return;
        };
        let key: Name = log.as_str().into();
        for who in [id, target] {
            if let Some(c) = self.conns.get_mut(&who) {
                if c.account.is_none() && !c.rare().guest_logs.contains(&key) {
                    c.rare_mut().guest_logs.push(key.clone());
                }
            }
        }
        let order = self.seqs.entry(key.clone()).or_default();
        order.seq += 1;
        if let Some(f) = self.fx.facts.last_mut() {
            (f.room, f.seq) = (Some(key), order.seq);
        }
    }

    /// A notice never produces an error reply; refused notices vanish.
    fn notice(&mut self, id: ConnId, target: &Target, text: String) {
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
        let (dest, key, room, to, sender_copy) = if let Target::Room(name) = target {
            let Ok(name) = names::check_room(name, self.config.max_room_chars) else {
                return;
            };
            let key = self.key_of(name);
            let Some(r) = self.rooms.get(&key) else {
                return;
            };
            if r.may_speak(id, &source).is_err() {
                return;
            }
            let outside = !r.members().contains_key(&id);
            let room = Some(r.name.clone());
            (Audience::Room(key.clone()), Some(key), room, None, outside)
        } else {
            let (Target::Person(nick) | Target::Room(nick)) = target;
            let Some(&target) = self.nicks.get(&*names::fold(nick)) else {
                return;
            };
            let to = self.nick_of(target).cloned();
            (Audience::Conn(target), None, None, to, target != id)
        };
        let text: Arc<str> = text.into();
        let body = FactBody::Noticed {
            from: from.clone(),
            to: to.clone(),
            text: text.clone(),
        };
        let (msg_id, at_ms) = {
            let f = self.fact(id, key.as_ref(), body);
            (f.id, f.at_ms)
        };
        let body = EventBody::Notice {
            id: msg_id,
            from,
            room,
            to,
            text,
        };
        let ev = Event::by(Some(source), body)
            .at(at_ms)
            .with_actor(self.logged_in_actor(id))
            .with_tags(self.tags.clone())
            .from_bot(self.is_bot(id));
        if sender_copy {
            self.send(Audience::Conn(id), ev.clone());
        }
        let to_self = dest == Audience::Conn(id);
        self.send(dest, ev.clone());
        if to_self {
            self.send(Audience::Conn(id), ev.echo_copy());
        }
    }

    fn change_nick(&mut self, id: ConnId, new: &str) {
        let Some(old) = self.nick_of(id).cloned() else {
            return;
        };
        if *old == *new {
            return; // nothing changes, nobody is told
        }
        let (old_key, new_key) = (names::fold(&old), names::fold(new));
        if old_key != new_key {
            if let Some(refusal) = self.protection(id, new) {
                return self.refuse(id, refusal);
            }
            self.free_for(id, new);
        }
        if let Some(problem) = self.nick_problem(id, new) {
            return self.refuse(id, problem);
        }
        self.apply_nick(id, old, new);
        self.warn_unprotected(id);
    }

    /// Changes the nick of `id` from `old` to `new` (checked) and tells
    /// everyone who shares a room.
    fn apply_nick(&mut self, id: ConnId, old: Name, new: &str) {
        let old_key = names::fold(&old);
        let old_mask = self.mask_of(id);
        self.remember(id);
        self.release_nick(&old, id);
        self.hold_nick(new, id);
        let new: Name = new.into();
        if let Some(c) = self.conns.get_mut(&id) {
            c.nick = Some(new.clone());
            c.update_mask();
        }
        self.unsort_rooms_of(id);
        let body = FactBody::NickChanged {
            old: old.clone(),
            new: new.clone(),
        };
        self.fact(id, None, body);
        let ev = Event::by(
            old_mask,
            EventBody::NickChanged {
                old: old.clone(),
                new: new.clone(),
            },
        );
        let audience = self.peers(id, false);
        self.send(Audience::Conns(audience), ev);
        if old_key != names::fold(&new) {
            self.announce_offline(&old);
            self.announce_online(id, &new);
        }
    }

    /// Marks `id` away or back, tells them, and tells who shares a room.
    fn away(&mut self, id: ConnId, text: Option<String>) {
        let away_len = self.config.away_len;
        let text = text
            .filter(|t| !t.trim().is_empty())
            .map(|t| cap(&t, away_len));
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let changed = c.rare().away != text;
        if changed {
            c.rare_mut().away = text.clone();
        }
        let Some(nick) = c.nick.clone() else {
            return;
        };
        let away = text.is_some();
        self.reply(id, EventBody::AwayStatus { away });
        if changed {
            let ev = Event::by(self.mask_of(id), EventBody::Away { nick, text });
            let mut audience = self.peers(id, true);
            self.add_detail_watchers(id, &mut audience);
            audience.retain(|m| *m != id);
            self.send(Audience::Conns(audience), ev);
        }
    }

    /// Shows or changes one's own user modes: only `+i` exists.
    fn user_mode(&mut self, id: ConnId, nick: &str, modes: Option<&str>) {
        let Some(own) = self.nick_of(id).cloned() else {
            return;
        };
        if names::fold(nick) != names::fold(&own) {
            let refusal = match self.nicks.contains_key(&*names::fold(nick)) {
                true => Refusal::new(ErrorCode::UsersDontMatch),
                false => Refusal::new(ErrorCode::NoSuchNick).nick(nick),
            };
            return self.refuse(id, refusal);
        }
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let Some(modes) = modes else {
            let modes = c.user_modes().into();
            return self.reply(
                id,
                EventBody::UserModes {
                    nick: own,
                    modes,
                    changed: false,
                },
            );
        };
        let mut add = true;
        let mut unknown = None;
        let mut applied = String::new();
        let mut sign = None;
        for ch in modes.chars() {
            let slot = match ch {
                '+' | '-' => {
                    add = ch == '+';
                    continue;
                }
                'i' => &mut c.invisible,
                'w' => &mut c.wallops,
                'B' => &mut c.bot,
                // +o only comes with OPER; -o gives it up
                'o' if !add && c.rare().oper.is_some() => {
                    c.rare_mut().oper = None;
                    push_mode(&mut applied, &mut sign, false, 'o');
                    continue;
                }
                'o' => continue,
                other => {
                    unknown = Some(other);
                    continue;
                }
            };
            if std::mem::replace(slot, add) != add {
                push_mode(&mut applied, &mut sign, add, ch);
            }
        }
        if let Some(m) = unknown {
            self.refuse(id, Refusal::new(ErrorCode::UnknownUserMode).mode(m));
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
        let mut audience = self.peers(id, true);
        audience.retain(|m| *m != id);
        self.remember(id);
        let Some(conn) = self.conns.remove(&id) else {
            return;
        };
        // A guest's private logs cannot be reached any more (see
        // `history_identity`): their order need not be kept.
        for key in &conn.rare().guest_logs {
            self.seqs.remove(key);
        }
        if let Some(account) = &conn.account {
            self.session_ended(id, account);
        }
        self.unwatch_all(id, &conn.rare().watching);
        self.shrink_tables();
        let Some(nick) = conn.nick else { return };
        self.release_nick(&nick, id);
        self.shrink_tables();
        self.announce_offline(&nick);
        for key in &conn.rooms {
            self.drop_member(key, id);
        }
        let reason: Arc<str> = reason.into();
        self.fx.facts.push(Fact {
            id: self.next_id(now_ms()),
            at_ms: now_ms(),
            by: id,
            source: conn.mask.clone(),
            room: None,
            seq: 0,
            body: FactBody::Quit {
                nick: nick.clone(),
                reason: reason.clone(),
            },
        });
        let ev = Event::by(Some(conn.mask), EventBody::Quit { nick, reason });
        self.send(Audience::Conns(audience), ev);
    }

    /// Gives the tables of people back once they are mostly empty, so that
    /// after a mass departure (an attack's connections gone) the hub does
    /// not keep them at their high-water size.
    fn shrink_tables(&mut self) {
        shrink(&mut self.conns);
        shrink(&mut self.nicks);
        shrink(&mut self.lookalikes);
        shrink(&mut self.watchers);
    }

    /// Slots the tables of people hold (their capacity), for tests and
    /// `/metrics`: see [`ChatState::shrink_tables`].
    pub fn table_slots(&self) -> usize {
        self.conns.capacity()
            + self.nicks.capacity()
            + self.lookalikes.capacity()
            + self.watchers.capacity()
    }

    /// Forgets the names order of every room `id` is in (its nick
    /// changed; see `Room::names_order`).
    fn unsort_rooms_of(&mut self, id: ConnId) {
        let Some(c) = self.conns.get(&id) else {
            return;
        };
        for key in &c.rooms {
            if let Some(room) = self.rooms.get_mut(key) {
                room.set_names_order(None);
            }
        }
    }

    /// Takes `id` out of room `key`, dropping the room once it is empty.
    fn drop_member(&mut self, key: &str, id: ConnId) {
        if let Some(room) = self.rooms.get_mut(key) {
            room.remove_member(id);
            if room.members().is_empty() {
                self.drop_room(key);
            }
        }
    }

    /// Forgets an empty room, keeping its place in order.
    fn drop_room(&mut self, key: &str) {
        if let Some((key, room)) = self.rooms.remove_entry(key) {
            let order = room.into_order();
            if order.seq > 0 {
                self.seqs.insert(key, order);
            }
        }
    }

    /// One page of the rooms and their member counts, in name order,
    /// after the room `after`; it names where the next page starts.
    fn rooms(&mut self, id: ConnId, after: Option<&str>) {
        let after = after.map(|a| names::fold(a.strip_prefix('#').unwrap_or(a)));
        let filter = crate::proto::listing::RoomFilter::default();
        let page = self.rooms_page(id, &filter, after.as_deref(), self.config.page_size);
        let rooms = page
            .rooms
            .into_iter()
            .map(|r| (r.name, r.members))
            .collect();
        let total = self.rooms.len();
        let next = page.next;
        self.reply(id, EventBody::RoomList { rooms, next, total });
    }
}

/// Appends one applied mode to `+iw-o`, writing the sign when it changes.
fn push_mode(out: &mut String, sign: &mut Option<bool>, add: bool, mode: char) {
    if *sign != Some(add) {
        out.push(if add { '+' } else { '-' });
        *sign = Some(add);
    }
    out.push(mode);
}

/// A refusal with its own words (rules from `names`, counts).
fn refusal(code: ErrorCode, detail: impl Into<Cow<'static, str>>) -> Refusal {
    Refusal::new(code).detail(detail)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_accounts;
#[cfg(test)]
mod tests_lines;
#[cfg(test)]
mod tests_rooms;
#[cfg(test)]
mod tests_shard;
