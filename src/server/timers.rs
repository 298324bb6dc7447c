//! The server's one timer for every connection's deadlines (the banner
//! hold, the registration timeout, the heartbeat's pings and timeouts,
//! flood control's release): a sorted table of (deadline, mailbox) and one
//! task that sleeps until the earliest and wakes the due connections
//! through their mailbox ([`Queue::wake_timer`]). An idle connection's task
//! then holds no `Sleep` of its own (a timer entry of tokio's, ~100 bytes
//! in every connection's future): it waits on its mailbox alone.
//!
//! A connection keeps at most one entry, for the earliest of its deadlines.
//! It re-arms only when it needs to be woken *earlier* than its entry says;
//! a deadline that moved later (the heartbeat, each time the client is
//! heard) lets the entry fire early, and the connection, finding nothing
//! due, arms again for the later time. So a busy client does not touch the
//! table for every line it sends, and a quiet one touches it once per
//! deadline, as a `Sleep` would.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering::AcqRel};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::mailbox::Queue;

/// Every connection's next deadline, and the task that keeps them.
#[derive(Default)]
pub(crate) struct Timers {
    /// By deadline, then by mailbox (its address: unique while it lives,
    /// and the entry keeps it alive).
    table: Mutex<BTreeMap<(Instant, usize), Queue>>,
    /// An entry became the earliest: the sweeping task sleeps anew.
    earlier: Notify,
    /// The sweeping task was spawned (on the first entry, on the runtime
    /// the connections run on).
    started: AtomicBool,
}

/// A connection's entry in the [`Timers`]: when it fires, if it is set.
/// Only the time (16 bytes in every connection's task): the connection
/// passes the timers and its mailbox, and removes the entry when it ends
/// ([`Armed::disarm`]). A connection dropped without ending (the runtime
/// going away) leaves its entry until it fires, which then wakes nobody.
#[derive(Default)]
pub(crate) struct Armed {
    at: Option<Instant>,
}

impl Armed {
    /// The connection whose mailbox is `queue` has its earliest deadline
    /// at `due`: the entry is moved earlier if it would fire later (or is
    /// not set); a later `due` keeps the entry, which fires early (see the
    /// module documentation).
    pub fn arm(&mut self, timers: &Arc<Timers>, queue: &Queue, due: Option<Instant>) {
        let Some(due) = due else {
            return; // an entry that fires finds nothing due: harmless
        };
        if self.at.is_some_and(|at| at <= due) {
            return;
        }
        let key = queue.key();
        let first = {
            let mut table = timers.table.lock();
            if let Some(at) = self.at {
                table.remove(&(at, key));
            }
            table.insert((due, key), queue.clone());
            table.first_key_value().is_some_and(|(k, _)| k.0 == due)
        };
        self.at = Some(due);
        if !timers.started.swap(true, AcqRel) {
            tokio::spawn(sweep(timers.clone()));
        }
        if first {
            timers.earlier.notify_one();
        }
    }

    /// The connection ends: its entry leaves the table.
    pub fn disarm(&mut self, timers: &Timers, queue: &Queue) {
        if let Some(at) = self.at.take() {
            timers.table.lock().remove(&(at, queue.key()));
        }
    }

    /// The mailbox said a deadline is due: the entry that fired (any whose
    /// time has come) is gone from the table, and the connection arms
    /// again for what it waits for next.
    pub fn fired(&mut self, now: Instant) {
        if self.at.is_some_and(|at| at <= now) {
            // Gone, or about to be taken by the sweep (which then wakes the
            // connection once more for nothing).
            self.at = None;
        }
    }

    /// The deadline of the entry, if one is set (for tests).
    #[cfg(test)]
    pub fn at(&self) -> Option<Instant> {
        self.at
    }
}

impl Timers {
    /// Entries in the table (for tests and metrics).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.table.lock().len()
    }

    /// Takes the entries due at `now` out of the table, returning them and
    /// the earliest deadline left.
    fn take_due(&self, now: Instant) -> (Vec<Queue>, Option<Instant>) {
        let mut table = self.table.lock();
        let mut due = Vec::new();
        while let Some(entry) = table.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
        let next = table.first_key_value().map(|(k, _)| k.0);
        (due, next)
    }
}

/// The sweeping task: wakes the connections whose deadline has come, then
/// sleeps until the earliest left (or until an earlier one is armed).
/// Lives as long as the runtime.
async fn sweep(timers: Arc<Timers>) {
    loop {
        let (due, next) = timers.take_due(Instant::now());
        for queue in due {
            queue.wake_timer();
        }
        // An entry armed earlier since `take_due` left a permit: the wait
        // below ends at once, and the sweep looks again.
        match next {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = timers.earlier.notified() => {}
                }
            }
            None => timers.earlier.notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::mailbox::Next;
    use std::time::Duration;

    /// `queue`'s next wakeup, or a failure if none comes within 10 s.
    async fn woken(queue: &Queue, take: bool) -> Next {
        tokio::time::timeout(Duration::from_secs(10), queue.wait(take))
            .await
            .expect("the mailbox is woken")
    }

    #[tokio::test]
    async fn a_due_entry_wakes_its_mailbox_once_and_leaves_the_table() {
        let timers = Arc::new(Timers::default());
        let queue = Queue::new(1000);
        let mut armed = Armed::default();
        let start = Instant::now();
        armed.arm(&timers, &queue, Some(start + Duration::from_millis(30)));
        // A later deadline keeps the earlier entry.
        armed.arm(&timers, &queue, Some(start + Duration::from_secs(60)));
        assert_eq!(timers.len(), 1);
        assert_eq!(armed.at(), Some(start + Duration::from_millis(30)));
        assert!(matches!(woken(&queue, false).await, Next::Timer));
        assert!(start.elapsed() >= Duration::from_millis(30), "not early");
        assert_eq!(timers.len(), 0, "a fired entry is gone");
        armed.fired(Instant::now());
        assert_eq!(armed.at(), None);
        // An earlier deadline moves the entry.
        armed.arm(
            &timers,
            &queue,
            Some(Instant::now() + Duration::from_secs(60)),
        );
        let soon = Instant::now() + Duration::from_millis(10);
        armed.arm(&timers, &queue, Some(soon));
        assert_eq!(timers.len(), 1, "moved, not added");
        assert!(matches!(woken(&queue, false).await, Next::Timer));
        assert!(Instant::now() >= soon);
        armed.fired(Instant::now());
        armed.arm(
            &timers,
            &queue,
            Some(Instant::now() + Duration::from_secs(60)),
        );
        armed.disarm(&timers, &queue);
        assert_eq!(timers.len(), 0, "an ended connection leaves nothing");
    }

    #[tokio::test]
    async fn items_come_before_a_due_timer_and_shutdown_before_both() {
        let queue = Queue::new(1000);
        queue.wake_timer();
        assert!(queue.push_local(bytes::Bytes::from_static(b"x")));
        assert!(matches!(woken(&queue, true).await, Next::Item(_)));
        assert!(matches!(woken(&queue, true).await, Next::Timer));
        queue.wake_timer();
        queue.shut_down();
        assert!(matches!(woken(&queue, true).await, Next::Shutdown));
        assert!(
            matches!(woken(&queue, false).await, Next::Shutdown),
            "and stays"
        );
    }
}
