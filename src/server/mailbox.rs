//! A member's outbound queue, bounded in bytes (the `sendq` every IRC
//! server has): the router pushes shared events into it without blocking,
//! the protocol session its own replies (already rendered), and the
//! connection drains it in batches. Each item counts as the bytes it will
//! be written as, and the batch the connection rendered but the socket has
//! not taken yet ("in flight") counts too, so what a client that stopped
//! reading holds is bounded by `sendq`. A push past the bound marks the
//! member as a slow consumer ("killed"), drops what it had queued and wakes
//! the session so it ends at once.
//!
//! The router's pushes of shared events into a queue whose connection
//! keeps up are counted by the server's [`Pacer`] (ingest paced by
//! egress): the queue knows how many of its entries were counted and takes
//! them off the pacer's count as they leave, in batches.
//!
//! Hand-written rather than `tokio::sync::mpsc` + a `CancellationToken`
//! because it is on every connection: one small allocation with an empty
//! `VecDeque` at idle (128 bytes with its counts) instead of a channel with
//! its first block of slots plus a token (about 700 bytes). Its one waiter,
//! the connection's task, leaves its waker in the queue's state, under the
//! lock every push takes anyway (`perf16n`: not a `tokio::sync::Notify`,
//! whose 32 bytes kept the mailbox in jemalloc's 160-byte class).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicU8, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::{Mutex, MutexGuard};

use bytes::Bytes;

use super::pacer::Pacer;
use super::park::Parker;
use crate::hub::Lines;
use crate::proto::{Event, Flavor};

/// Capacity kept after a drain (entries; 24 KiB): a member of a busy room
/// does not reallocate its queue for every burst (regrowing it from
/// nothing cost ~30 instructions per delivery at saturation). At the
/// default `sendq` a queue of real lines never holds this many. A larger
/// buffer shrinks back to this when drained, and an idle member gives its
/// buffer back `sendq_keep` after it was last written from, or at its
/// next heartbeat ([`Queue::trim`]).
const KEEP_CAPACITY: usize = 1024;

/// What one queued item costs besides its bytes: its slot in the queue.
pub(crate) const SLOT_BYTES: usize = std::mem::size_of::<Entry>();

/// What the shared event itself costs (its struct and its allocation),
/// split between its recipients: an event only one client gets, such as a
/// private message, is counted in full, and no member of a room pays for
/// all of the room's events (in a join storm the first member would pay
/// for every join notice: see [`crate::proto::Event::share_among`]).
pub(crate) const EVENT_BYTES: usize = Event::SHARED_BYTES;

/// One thing to write: a shared event, or bytes the session rendered.
pub(crate) enum Item {
    Event(Arc<Event>),
    /// Boxed, so an item stays two words wide.
    Local(Box<Bytes>),
    /// A session's marker (see `proto::session::Mark`).
    Mark(crate::proto::session::Mark),
    /// A room's lines, pushed together (`line_batch`, see `hub::Lines`).
    Lines(Arc<Lines>),
}

impl Item {
    /// Lines it writes to the client, as `natter_deliveries_total` counts
    /// them (a room's lines one each).
    pub fn deliveries(&self) -> u64 {
        match self {
            Item::Lines(lines) => lines.events.len() as u64,
            _ => 1,
        }
    }
}

pub(crate) struct Entry {
    pub item: Item,
    /// What it counts against the sendq.
    cost: u32,
}

struct Inner {
    queue: VecDeque<Entry>,
    /// Sum of the queued entries' costs (at most the sendq, which is kept
    /// below 4 GiB, but for entries that are never refused: saturating).
    bytes: u32,
    /// Bytes the connection rendered and has not written yet.
    inflight: u32,
    killed: bool,
    /// Close once what is queued is written (the member was killed by an
    /// operator); nothing more is queued.
    closing: bool,
    /// The connection keeps up (writing, its socket taking what it writes):
    /// the router's pushes count against the pacer.
    keeping_up: bool,
    /// Entries of the queue the pacer counts (never more than its length:
    /// the first ones taken are taken off the count, whichever they were).
    counted: u32,
    /// The connection is parked (see `server::park`): whatever would wake
    /// its task wakes the poller that holds it instead, once.
    parked: Option<Parker>,
    /// The connection's task, as it last waited ([`Queue::wait`],
    /// [`Queue::killed`]): whatever has something for it takes this and
    /// wakes it (after letting go of the lock). Registered and checked
    /// under the lock, so no wakeup is lost; gone while parked (a waker
    /// would keep the ended task's memory).
    waker: Option<Waker>,
}

impl Inner {
    /// After a drain: an emptied buffer larger than [`KEEP_CAPACITY`]
    /// shrinks to it.
    fn settle(&mut self) {
        if self.queue.is_empty() && self.queue.capacity() > KEEP_CAPACITY {
            self.queue.shrink_to(KEEP_CAPACITY);
        }
    }
}

struct Mailbox {
    inner: Mutex<Inner>,
    /// The sendq, in bytes (below 4 GiB: see [`Queue::paced`]).
    cap: usize,
    /// How this connection renders shared events (a [`Flavor`] as u8).
    flavor: AtomicU8,
    /// The server's count of deliveries queued for members that keep up.
    pacer: Option<Arc<Pacer>>,
    /// Wakeups that are not items: [`TIMER`] (one of the connection's
    /// deadlines is due, set by the server's `Timers`) and [`SHUTDOWN`]
    /// (the server is going down). The connection's one wait,
    /// [`Queue::wait`], reports them: no timer and no shutdown future of
    /// its own in every idle connection's task. Raised before the raiser
    /// takes the lock to wake the connection; read under the lock.
    signals: AtomicU8,
}

/// A deadline of the connection's is due (see `server::timers`).
const TIMER: u8 = 1;
/// The server is going down.
const SHUTDOWN: u8 = 2;

/// The router's handle and the connection's, to the same mailbox.
#[derive(Clone)]
pub(crate) struct Queue(Arc<Mailbox>);

/// What a push of the router's did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued, and counted by the pacer (the router adds it).
    Counted,
    /// Queued (or dropped on the way out) without counting.
    Uncounted,
    /// Refused: the member is (now) a slow consumer.
    Refused,
}

/// What the session gets from its mailbox.
pub(crate) enum Next {
    Item(Item),
    /// The queue overflowed: the member is a slow consumer.
    Killed,
    /// Everything queued was handed out and the connection must close.
    Closed,
    /// One of the connection's deadlines is due ([`Queue::wake_timer`]).
    Timer,
    /// The server is going down ([`Queue::shut_down`]).
    Shutdown,
}

impl Queue {
    /// A mailbox holding at most `cap` bytes (see the module documentation),
    /// counted by no pacer.
    #[cfg(test)]
    pub fn new(cap: usize) -> Queue {
        Queue::paced(cap, None)
    }

    /// A mailbox whose counted entries `pacer` counts (see
    /// [`Queue::set_keeping_up`]: none until the connection keeps up).
    /// A `cap` of 4 GiB or more holds 4 GiB less one byte (the counts are
    /// 32 bits wide).
    pub fn paced(cap: usize, pacer: Option<Arc<Pacer>>) -> Queue {
        Queue(Arc::new(Mailbox {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                bytes: 0,
                inflight: 0,
                killed: false,
                closing: false,
                keeping_up: false,
                counted: 0,
                parked: None,
                waker: None,
            }),
            cap: cap.clamp(1, u32::MAX as usize),
            flavor: AtomicU8::new(Flavor::TextColor as u8),
            pacer,
            signals: AtomicU8::new(0),
        }))
    }

    /// Whether the connection keeps up: while it does, the router's pushes
    /// count against the pacer; when it stops (its socket is full, it waits
    /// for its banner or the store, it is ending) what it holds stops
    /// counting, so a client that does not read never pauses the others.
    pub fn set_keeping_up(&self, yes: bool) {
        let mut inner = self.lock();
        inner.keeping_up = yes;
        if !yes {
            let n = std::mem::take(&mut inner.counted);
            drop(inner);
            self.uncount(n);
        }
    }

    /// Takes `n` deliveries off the pacer's count.
    fn uncount(&self, n: u32) {
        if let Some(p) = &self.0.pacer {
            p.sub(n as usize);
        }
    }

    /// After `n` entries left the queue: the counted ones among them (the
    /// first ones count, whichever they were) leave the pacer's count.
    /// Returns how many; the caller calls [`Queue::uncount`] off the lock.
    fn taken(inner: &mut Inner, n: usize) -> u32 {
        let c = u32::try_from(n).unwrap_or(u32::MAX).min(inner.counted);
        inner.counted -= c;
        c
    }

    /// Takes the queue's lock (shared by the router, which pushes, and the
    /// connection, which takes); a wait for it is counted and timed
    /// (`natter_queue_lock_*`), the uncontended path reads no clock.
    #[inline(always)]
    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.0.inner.try_lock() {
            Some(guard) => guard,
            None => self.lock_contended(),
        }
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) -> MutexGuard<'_, Inner> {
        let start = std::time::Instant::now();
        let guard = self.0.inner.lock();
        let m = crate::metrics::metrics();
        m.queue_lock_contended.inc();
        m.queue_lock_wait_seconds
            .inc_by(start.elapsed().as_secs_f64());
        guard
    }

    /// Tells the mailbox how this connection renders events (for their cost).
    pub fn set_flavor(&self, flavor: Flavor) {
        self.0.flavor.store(flavor as u8, Relaxed);
    }

    fn flavor(&self) -> Flavor {
        Flavor::from_u8(self.0.flavor.load(Relaxed))
    }

    /// The connection's one wait: the server going down first, then the
    /// next item (only if `take`: not while the banner is held or an item
    /// waits for the store), then a due deadline. Cancel-safe: a signal is
    /// cleared only when it is returned, and the shutdown never is.
    pub async fn wait(&self, take: bool) -> Next {
        poll_fn(|cx| self.poll_wait(cx, take)).await
    }

    fn poll_wait(&self, cx: &mut Context<'_>, take: bool) -> Poll<Next> {
        let mut inner = self.lock();
        // Read under the lock: a raiser sets its bit before it locks to
        // take the waker, so the bit is seen here or the waker registered
        // below is woken.
        let signals = self.0.signals.load(Acquire);
        if signals & SHUTDOWN != 0 {
            return Poll::Ready(Next::Shutdown);
        }
        if take {
            let (next, counted) = Queue::pop(&mut inner);
            if let Some(next) = next {
                drop(inner);
                self.uncount(counted);
                return Poll::Ready(next);
            }
        }
        if signals & TIMER != 0 {
            self.0.signals.fetch_and(!TIMER, AcqRel);
            return Poll::Ready(Next::Timer);
        }
        Queue::register(&mut inner, cx);
        Poll::Pending
    }

    /// Leaves the waiting task's waker (one task waits: the connection's).
    fn register(inner: &mut Inner, cx: &Context<'_>) {
        match &inner.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => inner.waker = Some(cx.waker().clone()),
        }
    }

    /// Wakes the connection: its task if it waits, its poller if it is
    /// parked (whoever calls this changed what they look at first).
    fn wake(&self) {
        let (waker, parker) = {
            let mut inner = self.lock();
            (inner.waker.take(), inner.parked.take())
        };
        if let Some(w) = waker {
            w.wake();
        }
        if let Some(p) = parker {
            p.wake();
        }
    }

    /// One of the connection's deadlines is due: its [`Queue::wait`]
    /// returns [`Next::Timer`].
    pub fn wake_timer(&self) {
        self.0.signals.fetch_or(TIMER, AcqRel);
        self.wake();
    }

    /// The connection is parked with `parker` (see `server::park`) unless
    /// something is waiting for it already (an item, a signal, a close or
    /// a kill): false then, and its parker is not kept.
    pub fn park(&self, parker: Parker) -> bool {
        let mut inner = self.lock();
        // A signal raised before this check is seen here; one raised after
        // it takes the parker (raisers set the bit before they lock).
        let quiet = self.0.signals.load(Acquire) == 0;
        if inner.killed || inner.closing || !inner.queue.is_empty() || !quiet {
            return false;
        }
        inner.parked = Some(parker);
        // Its task ends: a waker would keep the task's memory.
        let waker = inner.waker.take();
        drop(inner);
        drop(waker);
        true
    }

    /// The connection runs again: nothing wakes its poller any more.
    pub fn unpark(&self) {
        let parker = self.lock().parked.take();
        drop(parker);
    }

    /// The server is going down: the connection's [`Queue::wait`] returns
    /// [`Next::Shutdown`] from now on.
    pub fn shut_down(&self) {
        self.0.signals.fetch_or(SHUTDOWN, AcqRel);
        self.wake();
    }

    /// An address that names this mailbox while it lives (the server's
    /// timers key their entries by it).
    pub fn key(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    /// The next item if one is queued, without waiting.
    pub fn try_next(&self) -> Option<Next> {
        let mut inner = self.lock();
        let (next, counted) = Queue::pop(&mut inner);
        drop(inner);
        self.uncount(counted);
        next
    }

    /// The next item, a kill or the close, and how many pacer-counted
    /// entries left (for [`Queue::uncount`], off the lock).
    fn pop(inner: &mut Inner) -> (Option<Next>, u32) {
        if inner.killed {
            return (Some(Next::Killed), 0);
        }
        let entry = inner.queue.pop_front();
        let mut counted = 0;
        if let Some(e) = &entry {
            inner.bytes = inner.bytes.saturating_sub(e.cost);
            counted = Queue::taken(inner, 1);
        }
        inner.settle();
        let next = match entry {
            Some(e) => Some(Next::Item(e.item)),
            None if inner.closing => Some(Next::Closed),
            None => None,
        };
        (next, counted)
    }

    /// Gives back the buffer of an empty queue (the connection calls this
    /// when it has been quiet for a heartbeat interval).
    pub fn trim(&self) {
        let mut inner = self.lock();
        if inner.queue.is_empty() {
            inner.queue = VecDeque::new();
        }
    }

    /// Ends the connection once what is queued now is written.
    pub fn close(&self) {
        // Once `closing` is set the connection cannot park (`park`), so a
        // parker taken after it is the last one.
        self.lock().closing = true;
        self.wake();
    }

    /// Moves up to `max` queued entries to the end of `into` under one lock
    /// (the connection renders a batch without locking per item). Their
    /// bytes leave the queue's count: the connection counts what it
    /// rendered and has not written with [`Queue::set_inflight`].
    pub fn take(&self, max: usize, into: &mut Vec<Entry>) {
        let mut inner = self.lock();
        if inner.killed {
            return;
        }
        let counted = Queue::taken(&mut inner, max);
        let n = max.min(inner.queue.len());
        if n == inner.queue.len() {
            inner.bytes = 0;
            into.extend(inner.queue.drain(..));
        } else {
            let mut bytes = 0u32;
            into.reserve(n);
            for e in inner.queue.drain(..n) {
                bytes = bytes.saturating_add(e.cost);
                into.push(e);
            }
            inner.bytes = inner.bytes.saturating_sub(bytes);
        }
        inner.settle();
        drop(inner);
        self.uncount(counted);
    }

    /// Puts entries taken but not written back at the front, in order.
    pub fn put_back(&self, entries: impl DoubleEndedIterator<Item = Entry>) {
        let mut inner = self.lock();
        if inner.killed {
            return;
        }
        for e in entries.rev() {
            inner.bytes = inner.bytes.saturating_add(e.cost);
            inner.queue.push_front(e);
        }
    }

    /// Bytes queued plus bytes in flight: what counts against the sendq.
    pub fn load(&self) -> usize {
        let inner = self.lock();
        inner.bytes as usize + inner.inflight as usize
    }

    /// Items queued, the bytes they and the batch in flight count, and
    /// the bytes its buffer holds (for metrics).
    pub fn depth(&self) -> (usize, usize, usize) {
        let inner = self.lock();
        let buffer = inner.queue.capacity() * SLOT_BYTES;
        let load = inner.bytes as usize + inner.inflight as usize;
        (inner.queue.len(), load, buffer)
    }

    /// The sendq this mailbox enforces.
    pub fn cap(&self) -> usize {
        self.0.cap
    }

    /// Records how many rendered bytes the connection holds unwritten.
    pub fn set_inflight(&self, bytes: usize) {
        self.lock().inflight = u32::try_from(bytes).unwrap_or(u32::MAX);
    }

    pub fn is_killed(&self) -> bool {
        self.lock().killed
    }

    /// Waits until the member is killed (used while a write is stuck).
    pub async fn killed(&self) {
        poll_fn(|cx| {
            let mut inner = self.lock();
            if inner.killed {
                return Poll::Ready(());
            }
            Queue::register(&mut inner, cx);
            Poll::Pending
        })
        .await
    }
}

impl Queue {
    /// Queues an event for this client alone (counted in full); false if
    /// that overflows the sendq (the member is then killed as a slow
    /// consumer) or it was already killed.
    pub fn push(&self, ev: &Arc<Event>) -> bool {
        self.push_shared(ev, EVENT_BYTES)
    }

    /// Queues an event that others get too; `share` is this recipient's
    /// part of the event's own size, worked out once per event by whoever
    /// delivers it ([`Event::share_among`]), not here once per recipient.
    /// Renders the event in this connection's flavour (once per flavour for
    /// all recipients) to know its size.
    pub fn push_shared(&self, ev: &Arc<Event>, share: usize) -> bool {
        self.push_counted(ev, share) != Pushed::Refused
    }

    /// [`Queue::push_shared`] for the router, which adds the pushes the
    /// pacer should count ([`Pushed::Counted`]) to it, once per command.
    #[inline(always)]
    pub fn push_counted(&self, ev: &Arc<Event>, share: usize) -> Pushed {
        let cost = SLOT_BYTES + ev.wire_len(self.flavor()) + share;
        // A history answer the client asked for is bounded by
        // `history_max_lines`, not by the sendq: it is counted, never fatal.
        let bounded = !matches!(ev.body, crate::proto::EventBody::History { .. });
        self.push_item(Item::Event(ev.clone()), cost, bounded, true)
    }

    /// [`Queue::push_counted`] for a room's lines, as one entry: each
    /// counts as it would alone, but for the one slot they share.
    pub fn push_lines(&self, lines: &Arc<Lines>) -> Pushed {
        let cost = SLOT_BYTES + lines.cost(self.flavor());
        self.push_item(Item::Lines(lines.clone()), cost, true, true)
    }

    /// Queues bytes the session rendered itself.
    pub fn push_local(&self, bytes: Bytes) -> bool {
        let cost = SLOT_BYTES + bytes.len();
        self.push_entry(Item::Local(Box::new(bytes)), cost, true)
    }

    /// Queues one page of a long listing. Never kills: the connection only
    /// asks for a page while its queue is well below the sendq.
    pub fn push_page(&self, bytes: Bytes) {
        let cost = SLOT_BYTES + bytes.len();
        self.push_entry(Item::Local(Box::new(bytes)), cost, false);
    }

    /// Queues a session's marker (it costs its slot).
    pub fn push_mark(&self, mark: crate::proto::session::Mark) -> bool {
        self.push_entry(Item::Mark(mark), SLOT_BYTES, true)
    }

    #[inline(always)]
    fn push_entry(&self, item: Item, cost: usize, bounded: bool) -> bool {
        self.push_item(item, cost, bounded, false) != Pushed::Refused
    }

    /// Queues `item`; `count`: the pacer counts it if the connection keeps
    /// up (the caller adds it to the pacer when told [`Pushed::Counted`]).
    #[inline(always)]
    fn push_item(&self, item: Item, cost: usize, bounded: bool, count: bool) -> Pushed {
        let mut inner = self.lock();
        if inner.killed {
            return Pushed::Refused;
        }
        if inner.closing {
            return Pushed::Uncounted; // on its way out: nothing more is written
        }
        let mut dropped = 0;
        // Only a push into an empty queue wakes the connection: one that
        // is not empty has a wakeup pending already, or is being drained
        // by a connection that looks again before it waits.
        let load = inner.bytes as usize + inner.inflight as usize;
        let wake = if bounded && load + cost > self.0.cap {
            inner.killed = true;
            inner.queue = VecDeque::new(); // nobody will read these now
            inner.bytes = 0;
            dropped = std::mem::take(&mut inner.counted);
            true
        } else {
            let cost = u32::try_from(cost).unwrap_or(u32::MAX);
            inner.bytes = inner.bytes.saturating_add(cost);
            inner.queue.push_back(Entry { item, cost });
            inner.queue.len() == 1
        };
        // Its task, or a parked connection's poller, is woken (the first
        // push into its empty queue, or the kill).
        let (waker, parker) = match wake {
            true => (inner.waker.take(), inner.parked.take()),
            false => (None, None),
        };
        let pushed = if inner.killed {
            Pushed::Refused
        } else if count && inner.keeping_up && self.0.pacer.is_some() {
            inner.counted = inner.counted.saturating_add(1);
            Pushed::Counted
        } else {
            Pushed::Uncounted
        };
        drop(inner);
        self.uncount(dropped);
        if let Some(w) = waker {
            w.wake();
        }
        if let Some(p) = parker {
            p.wake();
        }
        pushed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::EventBody;

    fn ev(n: u64) -> Arc<Event> {
        Event::shared(EventBody::Ping { token: n })
    }

    fn token(next: Option<Next>) -> Option<u64> {
        match next {
            Some(Next::Item(Item::Event(e))) => match e.body {
                EventBody::Ping { token } => Some(token),
                _ => None,
            },
            _ => None,
        }
    }

    /// Every connection has one, busy or idle (an `Arc`: 16 bytes of
    /// counts besides): kept within jemalloc's 128-byte class (160 before
    /// `perf16n`).
    #[test]
    fn a_mailbox_stays_small() {
        let size = std::mem::size_of::<Mailbox>() + 16;
        eprintln!("Mailbox: {size} bytes with its counts");
        assert!(size <= 128, "{size}");
    }

    #[test]
    fn fifo_then_kill_on_overflow() {
        // Text pings render as nothing: each costs its slot and the event.
        let q = Queue::new(3 * (SLOT_BYTES + EVENT_BYTES));
        assert!(q.push(&ev(1)) && q.push(&ev(2)) && q.push(&ev(3)));
        assert_eq!(token(q.try_next()), Some(1));
        assert!(q.push(&ev(4)));
        assert!(!q.push(&ev(5)), "full: refused");
        assert!(q.is_killed());
        assert!(matches!(q.try_next(), Some(Next::Killed)));
        assert!(!q.push(&ev(6)));
    }

    /// A room's lines pushed as one entry count what they would alone,
    /// less the slots they share, and kill past the sendq as any push.
    #[test]
    fn lines_pushed_together_count_as_they_would_alone() {
        let lines: Vec<_> = (0..3)
            .map(|n| {
                let text = format!("line {n}").into();
                Event::shared(EventBody::Info { text })
            })
            .collect();
        let (alone, together) = (Queue::new(10_000), Queue::new(10_000));
        alone.set_flavor(Flavor::Json);
        together.set_flavor(Flavor::Json);
        for line in &lines {
            assert!(alone.push_shared(line, 7));
        }
        let batch = Arc::new(Lines::new(lines, 7));
        assert_eq!(together.push_lines(&batch), Pushed::Uncounted);
        let load = together.load();
        assert_eq!(load, alone.load() - 2 * SLOT_BYTES);
        match together.try_next() {
            Some(Next::Item(item)) => assert_eq!(item.deliveries(), 3),
            _ => panic!("the lines, as one item"),
        }
        let small = Queue::new(load - 1);
        small.set_flavor(Flavor::Json);
        assert_eq!(small.push_lines(&batch), Pushed::Refused);
        assert!(small.is_killed());
    }

    #[test]
    fn close_hands_out_what_is_queued_first() {
        let q = Queue::new(10_000);
        q.push(&ev(1));
        q.close();
        assert!(q.push(&ev(2)), "accepted, but not written");
        assert_eq!(token(q.try_next()), Some(1));
        assert!(matches!(q.try_next(), Some(Next::Closed)));
        assert!(
            matches!(q.try_next(), Some(Next::Closed)),
            "and stays closed"
        );
    }

    #[test]
    fn counts_bytes_of_what_will_be_written_and_in_flight() {
        let q = Queue::new(1000);
        q.set_flavor(Flavor::Json);
        let line = Event::shared(EventBody::Info {
            text: "x".repeat(300).into(),
        });
        assert!(q.push(&line));
        let json_len = line.wire_len(Flavor::Json);
        assert!(json_len > 300);
        assert_eq!(q.load(), SLOT_BYTES + json_len + EVENT_BYTES);
        let (x, y) = (Queue::new(1000), Queue::new(1000));
        let share = Event::share_among(2);
        assert_eq!(share, EVENT_BYTES / 2);
        for q in [&x, &y] {
            q.set_flavor(Flavor::Json);
            assert!(q.push_shared(&line, share));
            assert_eq!(
                q.load(),
                SLOT_BYTES + json_len + EVENT_BYTES / 2,
                "the event itself is shared by its recipients"
            );
        }
        q.set_inflight(400);
        assert!(
            !q.push_local(Bytes::from(vec![b'x'; 300])),
            "in flight counts"
        );
        let q = Queue::new(1000);
        assert!(q.push_local(Bytes::from(vec![b'x'; 500])));
        assert!(matches!(q.try_next(), Some(Next::Item(_))));
        assert_eq!(q.load(), 0);
        q.push_page(Bytes::from(vec![b'x'; 2000]));
        assert!(!q.is_killed(), "a page is never a reason to kill");
    }

    #[test]
    fn a_stalled_reader_holds_at_most_its_sendq() {
        let cap = 96 * 1024;
        let q = Queue::new(cap);
        let text: Arc<str> = "y".repeat(4000).into();
        let mut pushed = 0;
        while q.push(&Event::shared(EventBody::Info {
            text: text.clone().to_string().into(),
        })) {
            pushed += 1;
            assert!(q.load() <= cap);
        }
        assert!(
            (20..30).contains(&pushed),
            "{pushed} lines of 4 KB in 96 KiB"
        );
        assert_eq!(q.load(), 0, "what it held is dropped when it is killed");
    }

    #[test]
    fn drains_in_order_and_gives_back_memory() {
        let q = Queue::new(1 << 24);
        for i in 0..500 {
            q.push(&ev(i));
        }
        for i in 0..500 {
            assert_eq!(token(q.try_next()), Some(i));
        }
        assert!(q.try_next().is_none());
        for i in 0..5000 {
            assert!(q.push(&ev(i)));
        }
        assert!(q.lock().queue.capacity() > KEEP_CAPACITY);
        while q.try_next().is_some_and(|n| matches!(n, Next::Item(_))) {}
        assert!(
            q.lock().queue.capacity() <= KEEP_CAPACITY,
            "a large burst's buffer shrinks"
        );
        for i in 0..KEEP_CAPACITY as u64 {
            q.push(&ev(i));
        }
        let mut taken = Vec::new();
        q.take(10, &mut taken);
        q.take(usize::MAX, &mut taken);
        assert_eq!(taken.len(), KEEP_CAPACITY);
        assert!(q.lock().queue.capacity() > 0, "a small one is kept");
        assert_eq!(q.load(), 0);
        q.trim();
        assert_eq!(q.lock().queue.capacity(), 0, "and given back when idle");
    }

    #[test]
    fn taken_entries_put_back_come_first_and_count_again() {
        let q = Queue::new(1 << 20);
        for i in 0..5 {
            q.push(&ev(i));
        }
        let before = q.load();
        let mut taken = Vec::new();
        q.take(3, &mut taken);
        assert!(q.load() < before);
        let mut rest = taken.drain(..);
        assert!(matches!(
            rest.next(),
            Some(Entry {
                item: Item::Event(_),
                ..
            })
        ));
        q.put_back(rest);
        for i in 1..5 {
            assert_eq!(token(q.try_next()), Some(i));
        }
    }

    #[test]
    fn the_pacer_counts_only_what_waits_for_a_connection_that_keeps_up() {
        let pacer = Arc::new(Pacer::new(1 << 20));
        let q = Queue::paced(1 << 20, Some(pacer.clone()));
        let share = EVENT_BYTES;
        assert_eq!(
            q.push_counted(&ev(0), share),
            Pushed::Uncounted,
            "not yet keeping up"
        );
        q.set_keeping_up(true);
        for i in 1..=4 {
            assert_eq!(q.push_counted(&ev(i), share), Pushed::Counted);
        }
        pacer.add(4); // what the router does once per command
        assert_eq!(pacer.queued(), 4);
        let mut taken = Vec::new();
        q.take(2, &mut taken);
        assert_eq!(
            pacer.queued(),
            2,
            "the first taken count, whichever they were"
        );
        assert!(q.try_next().is_some());
        assert_eq!(pacer.queued(), 1);
        q.set_keeping_up(false);
        assert_eq!(
            pacer.queued(),
            0,
            "a connection that stops keeping up stops counting"
        );
        assert_eq!(q.push_counted(&ev(5), share), Pushed::Uncounted);
        q.take(usize::MAX, &mut taken);
        assert_eq!(pacer.queued(), 0, "never below what was counted");

        // A slow consumer's dropped queue leaves the count at once.
        let small = Queue::paced(3 * (SLOT_BYTES + EVENT_BYTES), Some(pacer.clone()));
        small.set_keeping_up(true);
        let mut counted = 0;
        loop {
            match small.push_counted(&ev(9), share) {
                Pushed::Counted => counted += 1,
                Pushed::Refused => break,
                Pushed::Uncounted => unreachable!(),
            }
        }
        pacer.add(counted);
        assert_eq!(counted, 3);
        assert_eq!(pacer.queued(), 0, "killed: what it held no longer counts");
    }

    /// The waiter's waker is left under the queue's lock and taken by
    /// pushes and signals from other threads: none of their wakeups may be
    /// lost, whatever the interleaving (a lost one leaves `wait` pending
    /// with items queued until the deadline).
    #[test]
    fn no_wakeup_is_lost_to_pushes_and_timers_from_other_threads() {
        const EACH: u64 = 20_000;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        let q = Queue::new(usize::MAX);
        let pushers: Vec<_> = (0..2u64)
            .map(|p| {
                let q = q.clone();
                std::thread::spawn(move || {
                    for i in 0..EACH {
                        assert!(q.push(&ev(p * EACH + i)));
                        if i % 64 == 0 {
                            q.wake_timer();
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let got = rt.block_on(async {
            let consume = async {
                let mut next = [0u64, EACH];
                while next != [EACH, 2 * EACH] {
                    match q.wait(true).await {
                        Next::Timer => {}
                        other => {
                            let n = token(Some(other)).expect("an item");
                            let from = (n / EACH) as usize;
                            assert_eq!(n, next[from], "each pusher's order");
                            next[from] += 1;
                        }
                    }
                }
            };
            // Biased to the deadline: a timeout that polled `consume` first
            // would find the items a lost wakeup left and hide the loss.
            let deadline = tokio::time::sleep(std::time::Duration::from_secs(30));
            tokio::select! {
                biased;
                () = deadline => false,
                () = consume => true,
            }
        });
        for p in pushers {
            p.join().unwrap();
        }
        assert!(got, "a wakeup was lost: wait() never saw what was queued");
    }

    #[tokio::test]
    async fn a_push_into_a_busy_queue_still_reaches_a_later_wait() {
        let q = Queue::new(1 << 20);
        q.push(&ev(1)); // wakes (empty before)
        q.push(&ev(2)); // does not: a wakeup is pending
        assert_eq!(token(q.try_next()), Some(1));
        assert!(matches!(q.wait(true).await, Next::Item(_)));
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { token(Some(q.wait(true).await)) }
        });
        tokio::task::yield_now().await;
        q.push(&ev(3));
        assert_eq!(waiter.await.unwrap(), Some(3));
    }

    #[tokio::test]
    async fn next_wakes_on_push_and_on_kill() {
        let q = Queue::new(SLOT_BYTES + EVENT_BYTES);
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { matches!(q.wait(true).await, Next::Item(_)) }
        });
        tokio::task::yield_now().await;
        q.push(&ev(1));
        assert!(waiter.await.unwrap());
        q.push(&ev(2));
        q.push(&ev(3)); // overflow
        let killed = tokio::spawn({
            let q = q.clone();
            async move { q.killed().await }
        });
        killed.await.unwrap();
        assert!(matches!(q.wait(true).await, Next::Killed));
    }
}
