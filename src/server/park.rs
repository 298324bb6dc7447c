//! Parked connections: a plain-TCP connection that has been quiet for
//! `park_after` gives up its task (~0.9 KiB) and its socket's registration
//! in tokio's reactor (~0.25 KiB) and waits here, as a compact record
//! ([`Dormant`]) in one of the server's pollers, until something needs it:
//! its socket is readable (or closed), its mailbox gets an item, is closed
//! or killed, or one of its deadlines is due (the server's timers wake it
//! through its mailbox), or the server shuts down (also through its
//! mailbox). The poller then gives it a task again
//! ([`connection::resume`]), which handles what woke it as if it had been
//! waiting all along.
//!
//! One poller per worker thread, each a task that owns an `epoll` instance
//! (registered in tokio's reactor as one file descriptor) and a slab of
//! parked records; a connection picks its poller by its id. The socket is
//! watched by that `epoll` (one-shot, the slot's key as its data), the
//! mailbox holds a [`Parker`] (the poller and the key) that whoever would
//! wake the task uses instead. Keys carry the slot's generation, so a late
//! wakeup for a record that was resumed (and whose slot was reused) wakes
//! nobody.
//!
//! While any connection is parked in it, a poller holds a token of the
//! server's task tracker, so the shutdown waits for parked connections as
//! for tasks (they are resumed through their mailboxes to be told).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::Notify;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tracing::warn;

use super::connection::{self, Dormant};
use super::Shared;

/// The server's pollers (none when parking is off).
pub(crate) struct Parking {
    pollers: Box<[Arc<Poller>]>,
}

/// What a parked connection's mailbox wakes: its poller, with the key of
/// its slot.
pub(crate) struct Parker {
    poller: Arc<Poller>,
    key: u64,
}

impl Parker {
    /// Something needs the parked connection: its poller resumes it.
    pub fn wake(self) {
        self.poller.woken.lock().push(self.key);
        self.poller.wake.notify_one();
    }
}

/// One worker's poller: an `epoll` instance for the parked sockets, the
/// parked records, and the keys their mailboxes woke.
struct Poller {
    epoll: OwnedFd,
    slots: Mutex<Slots>,
    woken: Mutex<Vec<u64>>,
    wake: Notify,
    /// The poller's task was spawned (at the first park).
    started: AtomicBool,
    /// Connections parked here now.
    parked: AtomicUsize,
}

#[derive(Default)]
struct Slots {
    entries: Vec<Slot>,
    free: Vec<u32>,
    /// Held while any connection is parked here: the server's shutdown
    /// waits for parked connections as for tasks.
    token: Option<TaskTrackerToken>,
}

#[derive(Default)]
struct Slot {
    /// Bumped whenever the slot's record leaves: a key names one stay.
    generation: u32,
    dormant: Option<Box<Dormant>>,
}

impl Slots {
    fn insert(&mut self, dormant: Box<Dormant>) -> u64 {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.entries.push(Slot::default());
                u32::try_from(self.entries.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let slot = &mut self.entries[index as usize];
        slot.dormant = Some(dormant);
        (u64::from(slot.generation) << 32) | u64::from(index)
    }

    /// Whether no record is here.
    fn is_empty(&self) -> bool {
        self.entries.len() == self.free.len()
    }

    /// The record `key` names, if it is still there.
    fn take(&mut self, key: u64) -> Option<Box<Dormant>> {
        let (generation, index) = ((key >> 32) as u32, key as u32);
        let slot = self.entries.get_mut(index as usize)?;
        if slot.generation != generation {
            return None;
        }
        let dormant = slot.dormant.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index);
        Some(dormant)
    }
}

impl Parking {
    /// `workers` pollers, or none if `park_after` is 0 (or no `epoll`
    /// instance can be made: then nothing parks, and that is logged).
    pub fn new(park_after: Duration, workers: usize) -> Parking {
        if park_after.is_zero() {
            return Parking {
                pollers: Box::new([]),
            };
        }
        let mut pollers = Vec::new();
        for _ in 0..workers.max(1) {
            // SAFETY: plain syscall; the descriptor is owned below.
            let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            if fd < 0 {
                let e = std::io::Error::last_os_error();
                warn!("parking off: cannot make an epoll instance: {e}");
                return Parking {
                    pollers: Box::new([]),
                };
            }
            // SAFETY: `fd` was just created and is owned by nobody else.
            let epoll = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            pollers.push(Arc::new(Poller {
                epoll,
                slots: Mutex::default(),
                woken: Mutex::default(),
                wake: Notify::new(),
                started: AtomicBool::new(false),
                parked: AtomicUsize::new(0),
            }));
        }
        Parking {
            pollers: pollers.into_boxed_slice(),
        }
    }

    /// Whether connections may park.
    pub fn on(&self) -> bool {
        !self.pollers.is_empty()
    }

    /// Connections parked now (the gauge `natter_connections_parked`).
    pub fn parked(&self) -> usize {
        self.pollers.iter().map(|p| p.parked.load(Relaxed)).sum()
    }

    /// Parks `dormant` (connection `id`) in its poller: from now on its
    /// socket's readiness or its mailbox resumes it. Parking being off
    /// (never asked then), it is resumed at once.
    pub fn park(&self, shared: &Arc<Shared>, id: u64, dormant: Box<Dormant>) {
        let Some(poller) = self.pollers.get(id as usize % self.pollers.len().max(1)) else {
            return connection::resume(shared.clone(), dormant, false);
        };
        if !poller.started.swap(true, Relaxed) {
            tokio::spawn(poll(poller.clone(), Arc::downgrade(shared)));
        }
        let fd = dormant.fd();
        let queue = dormant.queue().clone();
        // All three under the slots' lock, so that the poller (which takes
        // a record under it) never resumes one half parked.
        let mut slots = poller.slots.lock();
        if slots.token.is_none() {
            slots.token = Some(shared.tracker.token());
        }
        let key = slots.insert(dormant);
        poller.parked.fetch_add(1, Relaxed);
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32,
            u64: key,
        };
        // SAFETY: `fd` is the record's open socket; `event` outlives the call.
        let added = unsafe {
            libc::epoll_ctl(
                poller.epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd,
                &mut event,
            )
        } == 0;
        let parker = Parker {
            poller: poller.clone(),
            key,
        };
        let quiet = added && queue.park(parker);
        drop(slots);
        if !quiet {
            // Something already waits for it (or its socket cannot be
            // watched): it runs again at once.
            Parker {
                poller: poller.clone(),
                key,
            }
            .wake();
        }
    }
}

impl Poller {
    /// Gives the connection `key` names its task again (if it is still
    /// parked: a key can be woken by its socket and its mailbox both).
    fn resume(&self, key: u64, readable: bool, shared: &Weak<Shared>) {
        let (dormant, token) = {
            let mut slots = self.slots.lock();
            let Some(dormant) = slots.take(key) else {
                return;
            };
            // The last one out lets the shutdown go on (once its task is
            // spawned: the token is dropped after that, below).
            let token = slots.is_empty().then(|| slots.token.take());
            (dormant, token)
        };
        self.parked.fetch_sub(1, Relaxed);
        // SAFETY: the socket is open (the record owns it); removing it from
        // a set it may not be in (its event fired: one-shot) is harmless.
        unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                dormant.fd(),
                std::ptr::null_mut(),
            );
        }
        dormant.queue().unpark();
        if let Some(shared) = shared.upgrade() {
            connection::resume(shared, dormant, readable);
        }
        drop(token);
    }
}

/// The `epoll` descriptor as tokio watches it (the poller owns it).
struct EpollFd(RawFd);

impl AsRawFd for EpollFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// Events taken from the `epoll` instance at a time.
const EVENTS: usize = 256;

/// The poller's task: resumes the connections whose mailbox woke them,
/// and those whose socket became readable. Lives as long as the runtime.
async fn poll(poller: Arc<Poller>, shared: Weak<Shared>) {
    let epoll = poller.epoll.as_raw_fd();
    // SAFETY: the descriptor is the poller's, open while the poller lives,
    // and the task holds the poller for as long as `watched` exists.
    let watched =
        match unsafe { AsyncFd::register_with_interest(EpollFd(epoll), Interest::READABLE) } {
            Ok(w) => Some(w),
            Err(e) => {
                warn!("parked sockets are looked at every 50 ms: cannot watch the poller: {e}");
                None
            }
        };
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    let mut woken = Vec::new();
    loop {
        std::mem::swap(&mut woken, &mut *poller.woken.lock());
        for key in woken.drain(..) {
            poller.resume(key, false, &shared);
        }
        let ready = tokio::select! {
            biased;
            _ = poller.wake.notified() => continue,
            ready = async {
                match &watched {
                    Some(w) => w.readable().await.ok(),
                    None => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        None
                    }
                }
            } => ready,
        };
        // SAFETY: `events` has room for `EVENTS` entries.
        let n = unsafe { libc::epoll_wait(epoll, events.as_mut_ptr(), EVENTS as i32, 0) };
        // Interrupted: the events wait for the next look.
        let Ok(n) = usize::try_from(n) else {
            continue;
        };
        if n < EVENTS {
            // Drained: tokio reports the instance readable again when a
            // parked socket's event arrives.
            if let Some(mut guard) = ready {
                guard.clear_ready();
            }
        }
        for event in &events[..n] {
            let key = event.u64;
            poller.resume(key, true, &shared);
        }
    }
}
