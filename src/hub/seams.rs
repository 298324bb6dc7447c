//! The seams where durability and other nodes plug in: the [`Store`]
//! keeps facts and answers history questions; the [`Backplane`] carries
//! facts to other nodes and claims nicks across them. `src/store` and
//! `src/cluster` implement them; a lone server with no database uses the
//! in-memory store and no backplane (`cluster::Standalone`). [`Accounts`]
//! keeps accounts and registered rooms.
//!
//! Durable before seen: [`Store::submit`] returns a ticket, the events of
//! those facts are marked with it (`Event::wait_for`), and connections
//! write nothing past an event whose ticket the [`Watermark`] has not yet
//! reached. The chat lock is never held across a disk write.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::proto::{ConnId, Fact, History, HistoryQuery, NodeId};

/// Why the store could not do something (a full disk, a read-only file…).
#[derive(Debug, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub String);

/// Where facts are kept.
pub trait Store: Send + Sync + 'static {
    /// Starts keeping these facts, in order. Returns the ticket their
    /// events must wait for, or 0 if they are kept already.
    fn submit(&self, facts: Vec<Fact>) -> u64;
    /// Facts of room `room`, oldest first, at most `limit`: messages and
    /// notices, and with `events` also joins, parts, kicks, topics, modes.
    fn history(
        &self,
        room: &str,
        query: HistoryQuery,
        limit: usize,
        events: bool,
    ) -> Result<History, StoreError>;
    /// The people `account` (folded: an account, or a guest session) has
    /// private lines with, newest conversation last, each with the time
    /// of its newest line, when that is within `from_ms`..`to_ms`
    /// (exclusive); at most `limit`. Names are folded account names or
    /// guest sessions (`!…`).
    fn private_targets(
        &self,
        account: &str,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StoreError>;
    /// The time of the newest message or notice of each room in `rooms`
    /// (folded keys), for those whose newest is within `from_ms`..`to_ms`
    /// (exclusive). One lookup per room: no scan of the time window.
    fn latest_lines(
        &self,
        rooms: &[String],
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<(String, u64)>, StoreError>;
    /// The last sequence number of each room (folded key), so a restarted
    /// server continues every room's order.
    fn room_seqs(&self) -> Result<Vec<(String, u64)>, StoreError>;
    /// How far submissions are durable (`None`: at once, nothing to wait for).
    fn watermark(&self) -> Option<Arc<Watermark>>;
}

/// Where accounts and registered rooms are kept: the SQLite file, or
/// memory with `--db off` (then they last until the server stops).
/// `create` and `get` may block on the disk: call them off the chat lock
/// and off the async threads (the server uses `spawn_blocking`);
/// `save_room` only queues and never blocks, since the hub calls it under
/// the chat lock.
pub trait Accounts: Send + Sync + 'static {
    /// Every account name and registered room, read once at start.
    fn load(&self) -> Result<super::Registry, StoreError>;
    /// Creates an account; `Ok(false)` if one with that (folded) name exists.
    fn create(&self, account: &super::AccountRecord) -> Result<bool, StoreError>;
    /// The account named `name` (folded), if there is one.
    fn get(&self, name: &str) -> Result<Option<super::AccountRecord>, StoreError>;
    /// Keeps this state of a registered room (queued; written in order).
    fn save_room(&self, room: super::RoomRecord);
    /// Registers a room (the chat state has checked it may be):
    /// `Ok(false)` if it is registered already. A store that only this
    /// server writes queues the save (the default); one shared by several
    /// nodes creates the record atomically, so of two founders racing for
    /// one room on two nodes exactly one gets `Ok(true)`. Called under the
    /// chat lock: it may wait for one round trip, like a nick claim.
    fn register_room(&self, room: &super::RoomRecord) -> Result<bool, StoreError> {
        self.save_room(room.clone());
        Ok(true)
    }
    /// Keeps `account`'s read marker of `target` (both folded), a
    /// server-time timestamp (queued like `save_room`; a marker only
    /// moves forward).
    fn save_marker(&self, _account: &str, _target: &str, _at: &str) {}
    /// Keeps a change to the rooms an account keeps (`rejoin_on_login`;
    /// queued like `save_room`).
    fn remember_room(&self, _change: &super::RoomMemory) {}
    /// Returns once everything queued so far is written (a stopping server
    /// calls it, so that a server started next on the same file finds it).
    fn flush(&self) {}
}

/// How facts reach the other nodes.
pub trait Backplane: Send + Sync + 'static {
    /// Tells the other nodes what happened here. With
    /// [`HubConfig::echo`](super::HubConfig) the backplane also hands
    /// these facts back through [`Backplane::incoming`], in the cluster's
    /// order, and that is when their events are shown.
    fn publish(&self, facts: &[Fact]);
    /// Claims `nick` (folded) for `owner` across the cluster: `Ok(false)`
    /// if another node's user holds it, `Err` if the cluster cannot say
    /// now. Claims end with the owner's `Quit` or `NickChanged` fact,
    /// which [`Backplane::publish`] sees.
    fn claim_nick(&self, nick: &str, owner: ConnId) -> Result<bool, StoreError>;
    /// Gives up `owner`'s claim of `nick` (folded) that did not become
    /// its nick after all (the chat refused it for another reason).
    fn release_nick(&self, _nick: &str, _owner: ConnId) {}
    /// Sends what is still queued (the server is stopping: its people's
    /// quits). Blocks, within the backplane's own timeout.
    fn close(&self) {}
    /// What the other nodes say, once (`None` when there are no others).
    fn incoming(&self) -> Option<tokio::sync::mpsc::Receiver<Incoming>>;
}

/// What a backplane hands the server.
#[derive(Debug)]
pub enum Incoming {
    /// A fact, in the cluster's order (apply it with `apply_remote`).
    Fact(Fact),
    /// Facts, in the cluster's order, applied together (one lock of the
    /// hub for all of them).
    Facts(Vec<Fact>),
    /// What `conn` said could not be stored, so nobody was shown it.
    Unsent { conn: ConnId, why: String },
    /// This node is gone (dead, or cut off): whoever was on it has quit.
    /// Sent to one node only, which publishes their quits.
    NodeGone(NodeId),
    /// This node is cut off from the cluster (fenced, for the reason
    /// given): everyone on it is told and disconnected, so that they go to
    /// another node instead of being shown stale state as current.
    Fenced(String),
    /// Another node registered this account (its name).
    Account(String),
    /// A registered room as it was last saved (by any node).
    Room(super::RoomRecord),
    /// An account's (folded) read marker of a target (folded), as a node
    /// kept it: a server-time timestamp.
    Marker {
        account: String,
        target: String,
        at: String,
    },
    /// A change to the rooms an account keeps (`rejoin_on_login`), as a
    /// node kept it.
    Remembered(super::RoomMemory),
    /// A node that just started asks who is here: answer with the facts
    /// that tell it ([`ChatState::snapshot`](super::ChatState::snapshot)).
    Snapshot(tokio::sync::oneshot::Sender<Vec<Fact>>),
}

/// The ticket up to which the store has finished (committed or failed),
/// and which tickets failed. Tickets finish in order.
///
/// It also counts the facts submitted and not yet finished, against a
/// budget (`db_max_pending`): past it the store is [`behind`](Self::behind)
/// and connections stop taking lines from their sockets until it has
/// caught up, so a disk that cannot keep up slows the senders (TCP does the
/// rest) instead of filling every member's send queue with events that
/// wait for a commit — which would drop them all as slow consumers.
#[derive(Debug, Default)]
pub struct Watermark {
    done: AtomicU64,
    any_failed: AtomicBool,
    /// Failed tickets, as inclusive ranges (rare: a full or broken disk).
    failed: Mutex<Vec<(u64, u64)>>,
    notify: tokio::sync::Notify,
    /// Facts submitted and not yet finished.
    unfinished: AtomicUsize,
    /// Unfinished facts past which the store is behind (0: never).
    budget: AtomicUsize,
}

impl Watermark {
    /// Sets how many unfinished facts the store may have before it is
    /// [`behind`](Self::behind) (0: no limit).
    pub fn set_budget(&self, facts: usize) {
        self.budget.store(facts, Ordering::Relaxed);
    }

    /// The budget set by [`set_budget`](Self::set_budget) (0: none).
    pub fn budget(&self) -> usize {
        self.budget.load(Ordering::Relaxed)
    }

    /// `facts` more were submitted (the store calls it in `submit`).
    pub fn submitted(&self, facts: usize) {
        self.unfinished.fetch_add(facts, Ordering::Relaxed);
    }

    /// Facts submitted and not yet finished.
    pub fn unfinished(&self) -> usize {
        self.unfinished.load(Ordering::Relaxed)
    }

    /// Whether more facts wait for the store than its budget: connections
    /// should read no more lines until [`caught_up`](Self::caught_up).
    pub fn behind(&self) -> bool {
        let budget = self.budget.load(Ordering::Relaxed);
        budget != 0 && self.unfinished() > budget
    }

    /// Waits until the store is no longer [`behind`](Self::behind).
    pub async fn caught_up(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.behind() {
                return;
            }
            notified.await;
        }
    }

    /// Tickets up to this one are finished.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Acquire)
    }

    /// Whether `ticket` (finished) failed: its events are never shown.
    pub fn failed(&self, ticket: u64) -> bool {
        self.any_failed.load(Ordering::Acquire)
            && self
                .failed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|(a, b)| (*a..=*b).contains(&ticket))
    }

    /// Tickets up to `ticket` are finished, holding `facts` facts; those
    /// after the previous mark failed if `failed`.
    pub fn finish(&self, ticket: u64, facts: usize, failed: bool) {
        // Never below zero, whatever a store counts.
        let _ = self
            .unfinished
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(facts))
            });
        if failed {
            let first = self.done() + 1;
            let mut f = self.failed.lock().unwrap_or_else(|e| e.into_inner());
            f.push((first, ticket));
            if f.len() > 1024 {
                f.remove(0); // events that old are long written off
            }
            self.any_failed.store(true, Ordering::Release);
        }
        self.done.store(ticket, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Waits until `ticket` is finished.
    pub async fn reached(&self, ticket: u64) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.done() >= ticket {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_wake_when_their_ticket_finishes() {
        let w = Arc::new(Watermark::default());
        let waiter = tokio::spawn({
            let w = w.clone();
            async move { w.reached(3).await }
        });
        w.finish(2, 0, false);
        w.finish(4, 0, true);
        waiter.await.unwrap();
        assert!(!w.failed(2));
        assert!(w.failed(3) && w.failed(4));
        assert!(!w.failed(5));
    }

    #[tokio::test]
    async fn the_store_is_behind_past_its_budget_until_facts_finish() {
        let w = Arc::new(Watermark::default());
        w.submitted(10);
        assert!(!w.behind(), "no budget: never behind");
        w.set_budget(4);
        assert!(w.behind());
        let waiter = tokio::spawn({
            let w = w.clone();
            async move { w.caught_up().await }
        });
        w.finish(1, 5, false);
        assert!(w.behind(), "5 left of a budget of 4");
        for _ in 0..10 {
            tokio::task::yield_now().await; // the waiter looks again
        }
        assert!(!waiter.is_finished(), "still behind: still waiting");
        w.finish(2, 5, false);
        assert!(!w.behind());
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken when caught up")
            .unwrap();
        w.finish(3, 7, false);
        assert_eq!(w.unfinished(), 0, "never below zero");
    }
}
