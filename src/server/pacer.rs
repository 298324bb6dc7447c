//! Ingest paced by egress: the server-wide count of deliveries waiting in
//! the queues of members that keep up, and the gate that stops connections
//! reading their sockets while that count is above `ingest_budget`.
//!
//! Without it, readers run ahead of writers: every line read is fanned out
//! at once into every member's queue, so under overload the queues grow
//! thousands of events deep, the events in flight no longer fit in the
//! caches, each delivery gets slower and the server falls further behind
//! (measured: 4M deliveries/s offered, queues 1.7 million events deep,
//! throughput down to 0.93M/s, p50 17 s; see docs/BENCHMARKS.md). With the
//! gate, input waits in the kernel's socket buffers (and, past them, in the
//! senders' own), the server alternates reading with writing like the
//! ceiling relay's read and write passes, and what waits inside it is
//! bounded: about `ingest_budget` deliveries, one budget's worth of time.
//! When the gate opens, every paused reader handles all it holds and reads
//! once more (`Connection::gated`): the pass is bounded by what arrived
//! during the pause, as the relay's is by one `epoll_wait`.
//!
//! Off by default: a budget counted in deliveries also caps how many a
//! member's write carries, and natter's cost per delivery falls as its
//! writes grow, so every budget measured at 4M deliveries/s cost more
//! throughput than it saved in waiting (docs/BENCHMARKS.md, stop 26).
//!
//! Only queues whose connections keep up count (see
//! [`super::mailbox::Queue::set_keeping_up`]): a client that does not read,
//! whose socket is full, or whose connection waits for something else (its
//! banner, the store) is not the server being behind, and must not stop
//! everyone else reading; it is bounded by its own `sendq`.
//!
//! Counting is cheap: the router adds once per command's deliveries (under
//! the chat's locks, one atomic add), a connection subtracts once per batch
//! it takes. The count may dip below zero for a moment (a batch taken
//! before the router's add), hence a signed atomic.

use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

use tokio::sync::Notify;

pub(crate) struct Pacer {
    /// Deliveries queued for members that keep up.
    queued: AtomicIsize,
    /// Above this, connections stop reading (0: never).
    budget: isize,
    /// Woken when the count falls to half the budget.
    below: Notify,
}

impl Pacer {
    /// A gate at `budget` deliveries (0: reading is never paced).
    pub fn new(budget: usize) -> Pacer {
        Pacer {
            queued: AtomicIsize::new(0),
            budget: isize::try_from(budget).unwrap_or(isize::MAX),
            below: Notify::new(),
        }
    }

    /// Deliveries were queued for members that keep up.
    pub fn add(&self, n: isize) {
        if n != 0 {
            self.queued.fetch_add(n, Relaxed);
        }
    }

    /// Deliveries left the queues (taken to be written, or dropped); wakes
    /// the paused readers when the count crosses half the budget.
    pub fn sub(&self, n: usize) {
        if n == 0 {
            return;
        }
        let n = isize::try_from(n).unwrap_or(isize::MAX);
        let before = self.queued.fetch_sub(n, Relaxed);
        let low = self.budget / 2;
        if self.budget > 0 && before > low && before - n <= low {
            self.below.notify_waiters();
        }
    }

    /// Whether connections should stop reading now.
    #[inline]
    pub fn over(&self) -> bool {
        self.budget > 0 && self.queued.load(Relaxed) > self.budget
    }

    /// Deliveries queued for members that keep up now (for metrics).
    pub fn queued(&self) -> isize {
        self.queued.load(Relaxed)
    }

    /// Waits until the count is at most half the budget (hysteresis: the
    /// readers, woken together, make one read pass each, as the ceiling
    /// relay's epoll batch does).
    pub async fn below(&self) {
        loop {
            let notified = self.below.notified();
            tokio::pin!(notified);
            // Registered before the check: a wakeup between the two is kept.
            notified.as_mut().enable();
            if self.queued.load(Relaxed) <= self.budget / 2 {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn over_the_budget_until_taken() {
        let p = Pacer::new(100);
        p.add(100);
        assert!(!p.over(), "at the budget: still reading");
        p.add(1);
        assert!(p.over());
        p.sub(101);
        assert!(!p.over());
        assert_eq!(p.queued(), 0);
        let off = Pacer::new(0);
        off.add(1 << 40);
        assert!(!off.over(), "a budget of 0 never pauses");
    }

    #[tokio::test]
    async fn paused_readers_wake_at_half_the_budget() {
        let p = Arc::new(Pacer::new(100));
        p.add(150);
        let waiter = tokio::spawn({
            let p = p.clone();
            async move { p.below().await }
        });
        tokio::task::yield_now().await;
        p.sub(60); // 90: under the budget, above half
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "woken only at half the budget");
        p.sub(40); // 50
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("no panic");
        p.below().await; // already below: returns at once
    }
}
