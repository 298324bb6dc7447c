//! The router: the one owner of the member queues. The chat handle asks it
//! to push each delivery onto the queue of a local connection; it finds
//! the queue by slot (an index, no hashing on the fan-out path) and checks
//! the slot's generation so a key of a closed connection never reaches the
//! connection that reuses its slot. It adds the pushes the pacer counts
//! (see `pacer`) to it once per command's deliveries, not once per push:
//! the count is the caller's (a tally per command), so lines to different
//! rooms push from several threads at once and share nothing but the
//! queues they both reach (each behind its own lock). Slots change only
//! under the chat's write lock (`attach`, `detach` take `&mut self`).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::mailbox::{Pushed, Queue};
use super::pacer::Pacer;
use crate::hub::{self, Lines};
use crate::proto::{ConnId, Event};

/// What waits in the send queues, summed over the connections.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueDepths {
    pub items: usize,
    pub bytes: usize,
    pub max_bytes: usize,
    /// Memory the queues' buffers hold (their capacity), queued or not.
    pub buffers: usize,
}

/// Queues of this node's connections, by slot.
#[derive(Default)]
pub(crate) struct Router {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Where requests for the server go (rehash, shutdown).
    server: Option<tokio::sync::mpsc::Sender<hub::Control>>,
    /// Counts deliveries queued for members that keep up.
    pacer: Option<Arc<Pacer>>,
    /// Most lines a room holds before they are pushed (`line_batch`).
    line_batch: usize,
    /// Told when a room starts holding lines; the server's flusher waits
    /// on it (see [`Router::run_flusher`]).
    flusher: Option<Arc<Flusher>>,
}

/// What the flusher waits on.
#[derive(Default)]
struct Flusher {
    held: tokio::sync::Notify,
    /// The server has stopped: the flusher pushes what is held and ends.
    stopped: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct Slot {
    generation: u32,
    queue: Option<Queue>,
}

/// The local part of a connection key: generation above, slot below.
fn split(local: u64) -> (usize, u32) {
    ((local & 0xffff_ffff) as usize, (local >> 32) as u32)
}

impl Router {
    /// A router that passes rehash and shutdown requests to `server`.
    pub fn new(
        server: tokio::sync::mpsc::Sender<hub::Control>,
        pacer: Arc<Pacer>,
        line_batch: usize,
    ) -> Router {
        Router {
            server: Some(server),
            pacer: Some(pacer),
            line_batch,
            flusher: (line_batch > 1).then(Arc::default),
            ..Router::default()
        }
    }

    /// Pushes the rooms' held lines each time a room starts holding them,
    /// once the worker has run the tasks that are ready then (its next
    /// look at the sockets comes first): the lines that came in the
    /// meantime go out together, as the ceiling relay writes what one
    /// epoll batch read. Runs until [`Router::stop_flusher`]; nothing to
    /// do without `line_batch`.
    pub fn run_flusher(chat: &hub::ChatHandle<Router>) {
        let Some(flusher) = chat.with_router(|r| r.flusher.clone()) else {
            return;
        };
        let chat = chat.clone();
        tokio::spawn(async move {
            while !flusher.stopped.load(Relaxed) {
                flusher.held.notified().await;
                tokio::task::yield_now().await;
                chat.flush_lines();
            }
        });
    }

    /// Ends the flusher (the server has stopped; it lets go of the chat).
    pub fn stop_flusher(&self) {
        if let Some(flusher) = &self.flusher {
            flusher.stopped.store(true, Relaxed);
            flusher.held.notify_one();
        }
    }

    /// Takes a new connection's queue; returns the key the chat will use.
    pub fn attach(&mut self, queue: Queue) -> u64 {
        let index = match self.free.pop() {
            Some(i) => i as usize,
            None => {
                self.slots.push(Slot::default());
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[index];
        slot.queue = Some(queue);
        ((slot.generation as u64) << 32) | index as u64
    }

    fn queue(&self, local: u64) -> Option<&Queue> {
        let (index, generation) = split(local);
        let slot = self.slots.get(index)?;
        (slot.generation == generation)
            .then_some(slot.queue.as_ref())
            .flatten()
    }

    /// What waits in the queues now: items, bytes, and the fullest queue's
    /// bytes (walks every slot: for a metrics scrape, not the hot path).
    pub fn depths(&self) -> QueueDepths {
        let mut d = QueueDepths::default();
        for q in self.slots.iter().filter_map(|s| s.queue.as_ref()) {
            let (items, bytes, buffer) = q.depth();
            d.buffers += buffer;
            d.items += items;
            d.bytes += bytes;
            d.max_bytes = d.max_bytes.max(bytes);
        }
        d
    }

    /// Tells every attached connection, through its mailbox, that the
    /// server is going down.
    pub fn shut_down(&self) {
        for q in self.slots.iter().filter_map(|s| s.queue.as_ref()) {
            q.shut_down();
        }
    }

    /// Connections attached now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

impl hub::Router for Router {
    /// Counted pushes not yet added to the pacer.
    type Tally = isize;

    fn push(&self, counted: &mut isize, to: ConnId, ev: &Arc<Event>, share: usize) -> bool {
        tally(
            counted,
            self.queue(to.local).map(|q| q.push_counted(ev, share)),
        )
    }

    fn push_lines(&self, counted: &mut isize, to: ConnId, lines: &Arc<Lines>) -> bool {
        tally(counted, self.queue(to.local).map(|q| q.push_lines(lines)))
    }

    fn line_batch(&self) -> usize {
        self.line_batch
    }

    fn lines_held(&self) {
        if let Some(flusher) = &self.flusher {
            flusher.held.notify_one();
        }
    }

    fn flush(&self, counted: isize) {
        if let Some(p) = &self.pacer {
            p.add(counted);
        }
    }

    fn control(&self, request: hub::Control) {
        match request {
            hub::Control::Close(conn) => {
                if let Some(q) = self.queue(conn.local) {
                    q.close();
                }
            }
            other => {
                if let Some(server) = &self.server {
                    // Rare and operator-only: a full channel drops the repeat.
                    let _ = server.try_send(other);
                }
            }
        }
    }

    fn detach(&mut self, conn: ConnId) {
        let (index, generation) = split(conn.local);
        if let Some(slot) = self.slots.get_mut(index) {
            if slot.generation == generation && slot.queue.take().is_some() {
                slot.generation = slot.generation.wrapping_add(1);
                self.free.push(index as u32);
            }
        }
    }
}

/// Adds a push the pacer counts to `counted`; false if it overflowed the
/// queue (`None`: the connection is already gone).
fn tally(counted: &mut isize, pushed: Option<Pushed>) -> bool {
    match pushed {
        Some(Pushed::Counted) => {
            *counted += 1;
            true
        }
        Some(Pushed::Refused) => false,
        // Not counted, or already gone: nothing to overflow.
        Some(Pushed::Uncounted) | None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Router as _;
    use crate::proto::EventBody;

    #[test]
    fn slots_are_reused_but_old_keys_reach_nobody() {
        let mut r = Router::default();
        let (qa, qb) = (Queue::new(1 << 16), Queue::new(1 << 16));
        let a = ConnId::new(0, r.attach(qa.clone()));
        r.detach(a);
        r.detach(a); // twice is harmless
        let b = ConnId::new(0, r.attach(qb.clone()));
        assert_eq!(a.local & 0xffff_ffff, b.local & 0xffff_ffff, "slot reused");
        assert_eq!(r.len(), 1);
        let ev = Event::shared(EventBody::Ping { token: 1 });
        assert!(r.push(&mut 0, a, &ev, Event::SHARED_BYTES));
        assert!(
            qb.try_next().is_none(),
            "the old key does not reach the new owner"
        );
        assert!(r.push(&mut 0, b, &ev, Event::SHARED_BYTES));
        assert!(qb.try_next().is_some());
    }
}
