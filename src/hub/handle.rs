//! [`ChatHandle`]: what sessions hold to reach the chat (in the style of
//! mini-redis's `Db`). It owns the locks around the [`ChatState`], the
//! [`Router`] that turns deliveries into pushes onto member queues, and the
//! seams (store, backplane). Every method takes a lock, applies one
//! command, hands the facts on, delivers the events and lets go: no guard
//! ever leaves this module (a room's guard leaves `ChatState` only inside
//! a closure), and no I/O happens under it.
//!
//! Locks, sharded by room (DESIGN.md, *Shard by room*):
//! - **the chat's `RwLock`** around everything ([`Core`]). A line to a
//!   room (`Say`, the hot path) takes it to read; everything else takes it
//!   to write, which excludes every reader, so joins, parts, quits, nick
//!   and mode changes keep the simple semantics of one lock.
//! - **each room's order lock** (`Room::seq`, the room's `Order`): a line
//!   takes it under the read lock, assigns the room's next sequence
//!   number, hands the fact to the store and the backplane and pushes the
//!   event to every member (or, with `line_batch`, adds it to the room's
//!   held lines, pushed together later under this same lock: see
//!   `lines.rs`), then lets go. Lines to one room are therefore
//!   numbered, stored and queued in one order; lines to other rooms go on
//!   at the same time on other threads. What a line reads besides (the
//!   members, modes, bans, the sender's nick) changes only under the write
//!   lock, so the read lock keeps it still.
//! - **each member queue's lock** (the router's), taken per push.
//!
//! Order of taking them, always: chat → room → queue (and the message-id
//! generator's short lock, `ChatState::next_id`, inside a room's). Nothing
//! takes the chat's lock while holding a room's or a queue's, so there is
//! no cycle. Waits on the chat's lock count in `natter_hub_lock_*`, on
//! rooms' locks in `natter_room_lock_*`.
//!
//! Order guarantees: every member of a room sees that room's events in one
//! order (its sequence numbers'), and the store and the backplane get each
//! room's facts in that order. A member of two rooms may see lines of the
//! two interleaved differently from another member of both (as before: no
//! order across rooms was promised).

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};

use crate::metrics::Metrics;

use tracing::warn;

use super::lines::{Held, Lines};
use super::{names, Audience, ChatState, Control, Effects, HubConfig};
use crate::hub::{Accounts, Backplane, Incoming, Registry, Store};
use crate::proto::{
    Command, ConnId, ErrorCode, Event, EventBody, Fact, Name, Outcome, Profile, Refusal,
};

/// Where events for local connections go. The server's router owns the
/// member queues; tests use vectors. Pushes come from several threads at
/// once (lines to different rooms), so they take `&self`; attaching and
/// detaching happen under the chat's write lock.
pub trait Router: Send + Sync + 'static {
    /// What one batch of pushes adds up (the server's pacer count), kept
    /// by the caller for one command's deliveries: no shared counter is
    /// touched per push.
    type Tally: Default;
    /// Queues `ev` for the local connection `to`, charging it `share` of
    /// the shared event's own size ([`Event::share_among`] the audience,
    /// worked out once per delivery); false when its queue is full (it is
    /// then disconnected as a slow consumer).
    fn push(&self, tally: &mut Self::Tally, to: ConnId, ev: &Arc<Event>, share: usize) -> bool;
    /// Queues a room's held lines for `to`, in order, as one entry where
    /// the router can (see `lines.rs`); false as for [`Router::push`].
    fn push_lines(&self, tally: &mut Self::Tally, to: ConnId, lines: &Arc<Lines>) -> bool {
        lines
            .events
            .iter()
            .all(|ev| self.push(tally, to, ev, lines.share))
    }
    /// Most lines a room holds before they are pushed (`line_batch`);
    /// 0 or 1: each line is pushed at once. A router that holds lines
    /// must run [`ChatHandle::flush_lines`] soon after each
    /// [`Router::lines_held`].
    fn line_batch(&self) -> usize {
        0
    }
    /// A room has started holding lines: the server's flusher should run
    /// once the tasks that are ready now have run.
    fn lines_held(&self) {}
    /// Forgets a connection once it is gone.
    fn detach(&mut self, conn: ConnId);
    /// Called after each batch of pushes (one command's deliveries), still
    /// under the locks: the server's router adds what it counted to its
    /// pacer here, once, instead of once per push.
    fn flush(&self, _tally: Self::Tally) {}
    /// Does what only the server can do (close a killed connection after
    /// its last events, reload the configuration, shut down). Called after
    /// the command's deliveries are pushed.
    fn control(&self, _request: Control) {}
}

/// The state, the router and the seams, behind the handle's lock.
pub(super) struct Core<R> {
    pub(super) state: ChatState,
    pub(super) router: R,
    store: Arc<dyn Store>,
    backplane: Arc<dyn Backplane>,
    /// Where registered rooms are saved (none: they are not).
    accounts: Option<Arc<dyn Accounts>>,
    /// Connections whose queue overflowed during a delivery.
    overflowed: Vec<ConnId>,
    /// Rooms holding lines not yet pushed (see `lines.rs`).
    pub(super) held: Arc<Held>,
}

/// The chat, shared by every session. Cheap to clone.
pub struct ChatHandle<R> {
    core: Arc<RwLock<Core<R>>>,
    /// The core's, read without its lock.
    held: Arc<Held>,
}

impl<R> Clone for ChatHandle<R> {
    fn clone(&self) -> Self {
        ChatHandle {
            core: self.core.clone(),
            held: self.held.clone(),
        }
    }
}

/// Why a slow consumer is dropped (its peers see it as the quit reason).
pub const SLOW_CONSUMER: &str = "send queue full (not reading)";

impl<R: Router> ChatHandle<R> {
    pub fn new(
        config: HubConfig,
        router: R,
        store: Arc<dyn Store>,
        backplane: Arc<dyn Backplane>,
    ) -> ChatHandle<R> {
        let mut core = Core::new(config, router, store, backplane);
        match core.store.room_seqs() {
            Ok(seqs) => core.state.seed_seqs(seqs),
            Err(e) => warn!("{e}: rooms restart their order at 1"),
        }
        ChatHandle {
            held: core.held.clone(),
            core: Arc::new(RwLock::new(core)),
        }
    }

    /// Keeps accounts and registered rooms in `accounts`, starting from
    /// `registry` (what it held at start). `nick_grace_secs`: how long a
    /// registered nick may be held without logging in (0: refused).
    pub fn with_accounts(
        self,
        accounts: Arc<dyn Accounts>,
        registry: Registry,
        nick_grace_secs: u64,
    ) -> ChatHandle<R> {
        {
            let mut core = self.write();
            core.state.load_registry(registry, nick_grace_secs);
            core.accounts = Some(accounts);
        }
        self
    }

    /// The account `conn` is logged in to.
    /// See [`ChatState::private_log_with`].
    pub fn private_log_with(&self, conn: ConnId, person: &str) -> Option<String> {
        self.read().state.private_log_with(conn, person)
    }

    /// Who `conn` is in private history (its account, or its guest
    /// session: see `ChatState::history_identity`).
    pub fn history_identity(&self, conn: ConnId) -> Option<String> {
        self.read().state.history_identity(conn)
    }

    /// How private-history peers are shown: accounts by name, guest
    /// sessions by their nick now (`None`: the session is gone).
    pub fn show_peers(&self, peers: Vec<(String, u64)>) -> Vec<(Name, u64)> {
        let core = self.read();
        peers
            .into_iter()
            .filter_map(|(peer, at)| match peer.starts_with('!') {
                true => core.state.session_nick(&peer).map(|n| (n, at)),
                false => Some((peer.into(), at)),
            })
            .collect()
    }

    /// The rooms `conn` is in: (folded key, name as people write it).
    pub fn rooms_of(&self, conn: ConnId) -> Vec<(String, Name)> {
        self.read().state.rooms_of(conn)
    }

    pub fn account_of(&self, conn: ConnId) -> Option<Name> {
        self.read().state.account_of(conn).cloned()
    }

    /// Whether `nick` belongs to an account.
    pub fn is_registered_nick(&self, nick: &str) -> bool {
        self.read().state.is_registered_nick(nick)
    }

    /// The nick of `conn` if it belongs to an account `conn` is not
    /// logged in to.
    pub fn unprotected_nick(&self, conn: ConnId) -> Option<Name> {
        self.read().state.unprotected_nick(conn)
    }

    /// Notes that `conn` is connected over TLS.
    pub fn set_secure(&self, conn: ConnId) {
        self.write().state.set_secure(conn)
    }

    /// The (cloaked) host of `conn`.
    pub fn host_of(&self, conn: ConnId) -> Option<Name> {
        self.read().state.host_of(conn)
    }

    /// Takes the chat's lock to read (a line to a room, questions); when
    /// a writer holds it, the wait is counted (`natter_hub_lock_contended`,
    /// `natter_hub_lock_wait_seconds`): the measure of whether the chat's
    /// lock is still small enough (see docs/BENCHMARKS.md). The
    /// uncontended path reads no clock.
    fn read(&self) -> RwLockReadGuard<'_, Core<R>> {
        take_counted(
            self.core.try_read(),
            || self.core.read().unwrap_or_else(PoisonError::into_inner),
            count_hub_wait,
        )
    }

    /// Takes the chat's lock to write (anything that changes people,
    /// nicks, rooms' members or modes), counted like [`ChatHandle::read`].
    /// Held lines are pushed first: whatever the holder does comes after
    /// them in every queue.
    fn write(&self) -> RwLockWriteGuard<'_, Core<R>> {
        let mut core = take_counted(
            self.core.try_write(),
            || self.core.write().unwrap_or_else(PoisonError::into_inner),
            count_hub_wait,
        );
        if self.held.any() {
            core.exclusively(|core, overflowed| core.flush_lines(overflowed));
            core.reap();
        }
        core
    }

    /// Pushes the lines rooms hold (see `lines.rs`): the server's flusher
    /// calls it, and a connection before it queues a reply of its own.
    /// Takes nothing when nothing is held.
    pub fn flush_lines(&self) {
        if self.held.any() {
            self.shared(|core, overflowed| core.flush_lines(overflowed));
        }
    }

    /// Runs `f` under the read lock; members whose queues overflowed on
    /// the way (`f` collects them) are dropped afterwards, under the
    /// write lock. Their queues refuse everything from the overflow on, so
    /// the delay between the two locks loses them nothing they would have
    /// been sent.
    fn shared<T>(&self, f: impl FnOnce(&Core<R>, &mut Vec<ConnId>) -> T) -> T {
        let mut overflowed = Vec::new();
        let out = f(&self.read(), &mut overflowed);
        if !overflowed.is_empty() {
            let mut core = self.write();
            core.overflowed.extend(overflowed);
            core.reap();
        }
        out
    }

    /// A new connection from `host`. `attach` gives the router the
    /// connection's queue and returns the key it will know it by.
    pub fn connect(&self, host: Name, attach: impl FnOnce(&mut R) -> u64) -> ConnId {
        self.write().connect(host, attach)
    }

    /// Applies one command from `conn`: a line to a room under the read
    /// lock and its room's lock, anything else under the write lock.
    pub fn execute(&self, conn: ConnId, cmd: Command) -> Outcome {
        match self.shared(|core, overflowed| core.line(conn, cmd, overflowed)) {
            Ok(outcome) => outcome,
            Err(cmd) => self.write().execute_exclusive(conn, cmd),
        }
    }

    /// Several commands from `conn`, one after the other (each takes its
    /// own locks), stopping at the first that closes the connection or is
    /// refused.
    pub fn execute_all(&self, conn: ConnId, cmds: impl IntoIterator<Item = Command>) -> Outcome {
        let mut outcome = Outcome::Continue;
        for cmd in cmds {
            outcome = self.execute(conn, cmd);
            if outcome != Outcome::Continue {
                break;
            }
        }
        outcome
    }

    /// Sets who `conn` is before it registers (see [`Command::Identify`]).
    pub fn identify(&self, conn: ConnId, profile: Profile) {
        self.execute(conn, Command::Identify(profile));
    }

    /// `conn` is gone (closed, timed out, quit, dropped): its rooms are
    /// told (once) and the router forgets it. Safe to call more than once.
    pub fn disconnect(&self, conn: ConnId, reason: &str) {
        self.write().disconnect(conn, reason)
    }

    /// One event to everyone (shutdown).
    pub fn broadcast(&self, body: EventBody) {
        let mut core = self.write();
        let fx = core.state.broadcast(body);
        core.apply(fx);
    }

    /// A fact from another node.
    pub fn apply_remote(&self, fact: &Fact) {
        self.write().apply_remote(fact)
    }

    /// Sends what the backplane still holds (when the server stops).
    /// Blocks: call it off the async threads.
    pub fn close_backplane(&self) {
        let backplane = self.read().backplane.clone();
        backplane.close();
    }

    /// Takes what the backplane hands over: facts in the cluster's order,
    /// refusals of what could not be stored, nodes that are gone.
    pub fn incoming(&self, what: Incoming) {
        match what {
            Incoming::Fact(fact) => self.apply_remote(&fact),
            Incoming::Facts(facts) => {
                let core = &mut *self.write();
                for fact in &facts {
                    core.apply_remote(fact);
                }
            }
            Incoming::Unsent { conn, why } => {
                let refusal = Refusal::new(ErrorCode::StoreFailed).detail(why);
                self.tell(conn, EventBody::Refused(refusal));
            }
            Incoming::NodeGone(node) => {
                let core = &mut *self.write();
                let reason = format!("node {node} is gone");
                let quits = core.state.quits_of_node(node, &reason);
                if !quits.is_empty() {
                    warn!("node {node} is gone: {} people quit", quits.len());
                    core.backplane.publish(&quits);
                }
            }
            Incoming::Fenced(why) => {
                let core = &mut *self.write();
                let fx = core.state.fence(&why);
                warn!("fenced ({why}): disconnecting everyone here");
                core.apply(fx);
            }
            Incoming::Account(name) => self.write().state.learn_account(&name),
            Incoming::Room(record) => self.write().state.learn_room(record),
            Incoming::Marker {
                account,
                target,
                at,
            } => {
                let core = &mut *self.write();
                let fx = core.state.learn_marker(&account, &target, &at);
                core.apply(fx);
            }
            Incoming::Remembered(change) => self.write().state.learn_remembered(change),
            Incoming::Snapshot(reply) => {
                let facts = self.write().state.snapshot();
                let _ = reply.send(facts);
            }
        }
    }

    /// Takes the settings that may change while running (see
    /// [`ChatState::reconfigure`]).
    pub fn reconfigure(&self, opers: Vec<String>, oper_die: bool) {
        self.write().state.reconfigure(opers, oper_die)
    }

    /// Queues one event for `conn` (answers that did not come from a
    /// command: history read off the lock, a store failure).
    pub fn tell(&self, conn: ConnId, body: EventBody) {
        let ev = Arc::new(Event::new(body));
        self.shared(|core, overflowed| {
            core.flush_lines(overflowed);
            core.deliver(&[(Audience::Conn(conn), ev)], overflowed)
        });
    }

    /// Where room `room`'s order stands now, if `conn` is in it (history
    /// is for members, and reads up to this point).
    pub fn member_seq(&self, conn: ConnId, room: &str) -> Option<u64> {
        self.read().state.member_seq(conn, room)
    }

    /// Where room `room`'s order stands now, its last fact and its newest
    /// message, if `conn` is in it.
    pub(crate) fn member_order(&self, conn: ConnId, room: &str) -> Option<super::RoomOrder> {
        self.read().state.member_order(conn, room)
    }

    /// The room `conn` is talking in now (its last joined), as people write it.
    pub fn current_room(&self, conn: ConnId) -> Option<Name> {
        self.read().state.current_room_name(conn)
    }

    /// The nick of `conn`, if it has registered.
    pub fn nick_of(&self, conn: ConnId) -> Option<Name> {
        self.read().state.nick_of(conn).cloned()
    }

    /// People online.
    pub fn online(&self) -> usize {
        self.read().state.online()
    }

    /// Answers a read-only question from the state, under the lock (pages
    /// of long listings: each page is one short visit).
    pub fn query<T>(&self, f: impl FnOnce(&ChatState) -> T) -> T {
        f(&self.read().state)
    }

    /// Runs `f` on the router, under the read lock (for the server's
    /// bookkeeping; attaching is [`ChatHandle::connect`]'s).
    pub fn with_router<T>(&self, f: impl FnOnce(&R) -> T) -> T {
        f(&self.read().router)
    }
}

/// Counts one wait for the chat's lock.
fn count_hub_wait(m: &Metrics, seconds: f64) {
    m.hub_lock_contended.inc();
    m.hub_lock_wait_seconds.inc_by(seconds);
}

/// A lock taken at once (`tried`, its `try_` form) or, when another
/// thread holds it, by waiting (`block`), the wait then counted by
/// `count` with its length in seconds: the uncontended path reads no
/// clock. A poisoned lock is taken as it is (the chat goes on).
#[inline]
pub(super) fn take_counted<G>(
    tried: Result<G, TryLockError<G>>,
    block: impl FnOnce() -> G,
    count: impl FnOnce(&Metrics, f64),
) -> G {
    match tried {
        Ok(guard) => guard,
        Err(TryLockError::Poisoned(e)) => e.into_inner(),
        Err(TryLockError::WouldBlock) => {
            let start = std::time::Instant::now();
            let guard = block();
            count(crate::metrics::metrics(), start.elapsed().as_secs_f64());
            guard
        }
    }
}

impl<R: Router> Core<R> {
    pub(super) fn new(
        config: HubConfig,
        router: R,
        store: Arc<dyn Store>,
        backplane: Arc<dyn Backplane>,
    ) -> Core<R> {
        Core {
            state: ChatState::new(config),
            router,
            store,
            backplane,
            accounts: None,
            overflowed: Vec::new(),
            held: Arc::default(),
        }
    }

    pub(super) fn connect(&mut self, host: Name, attach: impl FnOnce(&mut R) -> u64) -> ConnId {
        let id = ConnId::new(self.state.config().node, attach(&mut self.router));
        let fx = self.state.connect(id, host);
        self.apply(fx);
        id
    }

    /// Applies one command with the whole chat to itself (the unit tests'
    /// way in): a line to a room still goes [`Core::line`]'s way.
    #[cfg(test)]
    pub(super) fn execute(&mut self, conn: ConnId, cmd: Command) -> Outcome {
        let mut overflowed = Vec::new();
        let outcome = self.line(conn, cmd, &mut overflowed);
        self.overflowed.extend(overflowed);
        self.reap();
        match outcome {
            Ok(outcome) => outcome,
            Err(cmd) => self.execute_exclusive(conn, cmd),
        }
    }

    /// A line to a room, with the chat shared (the read lock): checked,
    /// numbered, handed to the store and the backplane and pushed to the
    /// members under its room's lock (see the module documentation).
    /// Members whose queues overflowed are added to `overflowed`, to be
    /// dropped under the write lock. `Err` gives back any other command
    /// (and a line from a connection that is not registered or gone),
    /// untouched, for [`Core::execute_exclusive`].
    pub(super) fn line(
        &self,
        conn: ConnId,
        cmd: Command,
        overflowed: &mut Vec<ConnId>,
    ) -> Result<Outcome, Command> {
        self.state.line(conn, cmd, |fx, held| {
            self.apply_effects(fx, Some(held), overflowed)
        })
    }

    /// Applies one command with the chat to itself (the write lock).
    pub(super) fn execute_exclusive(&mut self, conn: ConnId, cmd: Command) -> Outcome {
        let mut claimed = None;
        if let Command::Register { nick } | Command::Nick { new: nick } = &cmd {
            if let Some(refusal) = self.claim(conn, nick) {
                let ev = Arc::new(Event::new(EventBody::Refused(refusal)));
                self.deliver_exclusive(&[(Audience::Conn(conn), ev)]);
                return Outcome::Refused;
            }
            claimed = Some(names::fold(nick));
        }
        if let Command::RegisterRoom { room } = &cmd {
            if let Some(outcome) = self.register_room(conn, room.as_deref()) {
                return outcome;
            }
        }
        let fx = self.state.handle(conn, cmd);
        // Claimed in the cluster but refused here (a registered nick, say):
        // the claim goes, or nobody could have the nick again.
        if let Some(nick) = claimed {
            let holds = self.state.nick_of(conn).map(|n| names::fold(n));
            if holds.as_deref() != Some(nick.as_str()) {
                self.backplane.release_nick(&nick, conn);
            }
        }
        self.apply(fx)
    }

    pub(super) fn disconnect(&mut self, conn: ConnId, reason: &str) {
        let fx = self.state.disconnect(conn, reason);
        self.apply(fx);
        self.router.detach(conn);
    }

    pub(super) fn apply_remote(&mut self, fact: &Fact) {
        let fx = self.state.apply_remote(fact);
        // A registered room changed here, back from the stream: saved now.
        if let Some(accounts) = &self.accounts {
            for room in fx.saves {
                accounts.save_room(room);
            }
        }
        self.deliver_exclusive(&fx.deliveries);
        self.reap();
    }

    /// Registers a room in the accounts store first, so that of two
    /// founders registering one room at once on two nodes exactly one is
    /// told yes: the outcome, or `None` to let the chat state answer
    /// (no accounts store, or it refuses for its own reasons). Blocks for
    /// the store's answer (a cluster: one KV create) under the lock, like
    /// a nick claim.
    fn register_room(&mut self, conn: ConnId, room: Option<&str>) -> Option<Outcome> {
        let accounts = self.accounts.clone()?;
        let record = self.state.room_registration(conn, room).ok()?;
        let refusal = match accounts.register_room(&record) {
            Ok(true) => {
                let fx = self.state.registered_room(conn, record);
                return Some(self.apply(fx));
            }
            Ok(false) => Refusal::new(ErrorCode::RoomRegistered).room(&record.name),
            Err(e) => {
                warn!("cannot register a room: {e}");
                let why = "registered rooms cannot be changed right now; try again";
                Refusal::new(ErrorCode::StoreFailed).detail(why)
            }
        };
        let ev = Arc::new(Event::new(EventBody::Refused(refusal)));
        self.deliver_exclusive(&[(Audience::Conn(conn), ev)]);
        Some(Outcome::Refused)
    }

    /// A nick `conn` may not take because another node's user holds it.
    fn claim(&mut self, conn: ConnId, nick: &str) -> Option<Refusal> {
        if self.state.nick_problem(conn, nick).is_some() {
            return None; // the state refuses it in its own words
        }
        match self.backplane.claim_nick(&names::fold(nick), conn) {
            Ok(true) => None,
            Ok(false) => Some(Refusal::new(ErrorCode::NickInUse).nick(nick)),
            Err(e) => {
                warn!("cannot claim a nick: {e}");
                let why = "the cluster cannot confirm the nick is free right now; try again";
                Some(Refusal::new(ErrorCode::StoreFailed).nick(nick).detail(why))
            }
        }
    }

    /// Hands on the facts, delivers the events (held back until the facts
    /// are durable), passes requests to the server, drops slow consumers.
    fn apply(&mut self, fx: Effects) -> Outcome {
        let outcome = self.apply_one(fx);
        self.reap();
        outcome
    }

    /// [`Core::apply`] without the reaping.
    fn apply_one(&mut self, fx: Effects) -> Outcome {
        self.exclusively(|core, overflowed| core.apply_effects(fx, None, overflowed))
    }

    /// Runs `f`, which delivers with the chat shared, with the chat to
    /// itself: the members whose queues overflow join `overflowed`, for
    /// [`Core::reap`].
    fn exclusively<T>(&mut self, f: impl FnOnce(&Self, &mut Vec<ConnId>) -> T) -> T {
        let mut overflowed = std::mem::take(&mut self.overflowed);
        let out = f(self, &mut overflowed);
        self.overflowed = overflowed;
        out
    }

    /// Hands on the facts, delivers the events (held back until the facts
    /// are durable) and passes requests to the server, with the chat
    /// shared: members whose queues overflowed are added to `overflowed`.
    /// `held`: the room's held lines, for a line (see `lines.rs`).
    fn apply_effects(
        &self,
        fx: Effects,
        held: Option<&mut Vec<Arc<Event>>>,
        overflowed: &mut Vec<ConnId>,
    ) -> Outcome {
        if let Some(accounts) = &self.accounts {
            for room in fx.saves {
                accounts.save_room(room);
            }
            for (account, target, at) in &fx.markers {
                accounts.save_marker(account, target, at);
            }
            for change in &fx.rooms_remembered {
                accounts.remember_room(change);
            }
        }
        let wait = fx.facts.iter().any(|f| f.body.must_be_durable());
        let ticket = self.record(fx.facts);
        if ticket != 0 && wait {
            for (_, ev) in &fx.deliveries {
                ev.wait_for(ticket);
            }
        }
        if self.state.config().echo {
            // Shown when the backplane hands the facts back, in the cluster's order.
            let shown_now: Vec<_> = fx
                .deliveries
                .into_iter()
                .filter(|(_, ev)| !shown_on_echo(&ev.body))
                .collect();
            self.deliver(&shown_now, overflowed);
        } else if let Some(held) = held.filter(|_| self.router.line_batch() > 1) {
            self.hold(fx.deliveries, held, overflowed);
        } else {
            self.deliver(&fx.deliveries, overflowed);
        }
        for request in fx.control {
            self.router.control(request);
        }
        fx.outcome
    }

    /// [`Core::deliver`] with the chat to itself.
    fn deliver_exclusive(&mut self, deliveries: &[(Audience, Arc<Event>)]) {
        self.exclusively(|core, overflowed| core.deliver(deliveries, overflowed));
    }

    pub(super) fn deliver(
        &self,
        deliveries: &[(Audience, Arc<Event>)],
        overflowed: &mut Vec<ConnId>,
    ) {
        let node = self.state.config().node;
        let (state, router) = (&self.state, &self.router);
        let mut tally = R::Tally::default();
        for (audience, ev) in deliveries {
            // Once per event: its recipients share what it costs itself.
            let share = Event::share_among(state.audience_size(audience));
            state.for_each_member(audience, |to| {
                if to.node == node && !router.push(&mut tally, to, ev, share) {
                    overflowed.push(to);
                }
            });
        }
        router.flush(tally);
    }

    /// Removes members whose queues overflowed, which may overflow others:
    /// one loop until none is left, never a recursion per removal (a room
    /// of thousands falling behind at once would overflow the stack).
    fn reap(&mut self) {
        while let Some(conn) = self.overflowed.pop() {
            let fx = self.state.disconnect(conn, SLOW_CONSUMER);
            self.apply_one(fx);
        }
    }

    /// Tells the other nodes and hands the facts to the store; returns the
    /// ticket their events wait for.
    fn record(&self, facts: Vec<Fact>) -> u64 {
        if facts.is_empty() {
            return 0;
        }
        self.backplane.publish(&facts);
        self.store.submit(facts)
    }
}

/// Events of facts that must be durable before anyone sees them (what
/// people say, operators' changes): with a backplane that echoes, the
/// state makes them but they are delivered from the echo.
fn shown_on_echo(body: &EventBody) -> bool {
    matches!(
        body,
        EventBody::Message { .. }
            | EventBody::Notice { .. }
            | EventBody::Private { .. }
            | EventBody::TopicChanged { .. }
            | EventBody::ModeChanged { .. }
            | EventBody::Kicked { .. }
    )
}
