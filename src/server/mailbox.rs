//! A member's bounded outbound queue: the router pushes shared events into
//! it without blocking, the protocol session its own replies (already
//! rendered), and the connection drains it in batches. A push onto a full
//! queue marks the member as a slow consumer ("killed"), which wakes the
//! session so it ends at once.
//!
//! Hand-written rather than `tokio::sync::mpsc` + a `CancellationToken`
//! because it is on every connection: one small allocation with an empty
//! `VecDeque` at idle (about 120 bytes) instead of a channel with its first
//! block of slots plus a token (about 700 bytes).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use bytes::Bytes;

use crate::proto::Event;

/// Capacity kept after a drain; a burst's larger buffer is given back.
const IDLE_CAPACITY: usize = 8;

/// One thing to write: a shared event, or bytes the session rendered.
pub(crate) enum Item {
    Event(Arc<Event>),
    /// Boxed, so an item stays two words wide.
    Local(Box<Bytes>),
    /// A session's marker (see `proto::session::Mark`).
    Mark(crate::proto::session::Mark),
}

struct Inner {
    queue: VecDeque<Item>,
    killed: bool,
    /// Close once what is queued is written (the member was killed by an
    /// operator); nothing more is queued.
    closing: bool,
}

struct Mailbox {
    inner: Mutex<Inner>,
    notify: Notify,
    cap: usize,
}

/// The router's handle and the connection's, to the same mailbox.
#[derive(Clone)]
pub(crate) struct Queue(Arc<Mailbox>);

/// What the session gets from its mailbox.
pub(crate) enum Next {
    Item(Item),
    /// The queue overflowed: the member is a slow consumer.
    Killed,
    /// Everything queued was handed out and the connection must close.
    Closed,
}

impl Queue {
    /// A mailbox holding at most `cap` events.
    pub fn new(cap: usize) -> Queue {
        Queue(Arc::new(Mailbox {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                killed: false,
                closing: false,
            }),
            notify: Notify::new(),
            cap: cap.max(1),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the next event (or for the kill). Cancel-safe.
    pub async fn next(&self) -> Next {
        loop {
            if let Some(next) = self.try_next() {
                return next;
            }
            // A notify_one() since the check left a permit: no lost wakeup.
            self.0.notify.notified().await;
        }
    }

    /// The next event if one is queued, without waiting.
    pub fn try_next(&self) -> Option<Next> {
        let mut inner = self.lock();
        if inner.killed {
            return Some(Next::Killed);
        }
        let ev = inner.queue.pop_front();
        if inner.queue.is_empty() && inner.queue.capacity() > IDLE_CAPACITY {
            inner.queue = VecDeque::new();
        }
        match ev {
            Some(item) => Some(Next::Item(item)),
            None if inner.closing => Some(Next::Closed),
            None => None,
        }
    }

    /// Ends the connection once what is queued now is written.
    pub fn close(&self) {
        self.lock().closing = true;
        self.0.notify.notify_one();
    }

    pub fn is_killed(&self) -> bool {
        self.lock().killed
    }

    /// Waits until the member is killed (used while a write is stuck).
    pub async fn killed(&self) {
        while !self.is_killed() {
            self.0.notify.notified().await;
        }
        // Leave a permit for `next`, which may be waiting too.
        self.0.notify.notify_one();
    }
}

impl Queue {
    /// Queues a shared event; false if the queue is full (the member is
    /// then killed as a slow consumer) or already killed.
    pub fn push(&self, ev: &Arc<Event>) -> bool {
        self.push_item(Item::Event(ev.clone()))
    }

    /// Queues bytes the session rendered itself.
    pub fn push_local(&self, bytes: Bytes) -> bool {
        self.push_item(Item::Local(Box::new(bytes)))
    }

    /// Queues a session's marker.
    pub fn push_mark(&self, mark: crate::proto::session::Mark) -> bool {
        self.push_item(Item::Mark(mark))
    }

    fn push_item(&self, item: Item) -> bool {
        let mut inner = self.lock();
        if inner.killed {
            return false;
        }
        if inner.closing {
            return true; // on its way out: nothing more is written
        }
        if inner.queue.len() >= self.0.cap {
            inner.killed = true;
            inner.queue = VecDeque::new(); // nobody will read these now
        } else {
            inner.queue.push_back(item);
        }
        let ok = !inner.killed;
        drop(inner);
        self.0.notify.notify_one();
        ok
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

    #[test]
    fn fifo_then_kill_on_overflow() {
        let q = Queue::new(3);
        assert!(q.push(&ev(1)) && q.push(&ev(2)) && q.push(&ev(3)));
        assert_eq!(token(q.try_next()), Some(1));
        assert!(q.push(&ev(4)));
        assert!(!q.push(&ev(5)), "full: refused");
        assert!(q.is_killed());
        assert!(matches!(q.try_next(), Some(Next::Killed)));
        assert!(!q.push(&ev(6)));
    }

    #[test]
    fn close_hands_out_what_is_queued_first() {
        let q = Queue::new(10);
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
    fn drains_in_order_and_gives_back_memory() {
        let q = Queue::new(1000);
        for i in 0..500 {
            q.push(&ev(i));
        }
        for i in 0..500 {
            assert_eq!(token(q.try_next()), Some(i));
        }
        assert!(q.try_next().is_none());
        assert_eq!(q.lock().queue.capacity(), 0);
    }

    #[tokio::test]
    async fn next_wakes_on_push_and_on_kill() {
        let q = Queue::new(1);
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { matches!(q.next().await, Next::Item(_)) }
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
        assert!(matches!(q.next().await, Next::Killed));
    }
}
