//! Lines in batches (`line_batch`): a room's lines said one after another
//! reach each member as one entry of its queue, as the ceiling relay
//! writes what one epoll batch read, instead of one entry per line.
//!
//! A line to a room is still numbered, stored and handed to the backplane
//! at once, under the room's order lock. Instead of being pushed to every
//! member there, it joins the room's held lines (`room::Order::lines`),
//! which are pushed together, in order, as one shared [`Lines`] entry per
//! member (one queue lock and one count per member for all of them):
//! - by the line that makes them `line_batch` long;
//! - by the server's flusher, which the first held line calls for
//!   ([`Router::lines_held`]) and which runs once its worker has run the
//!   tasks that are ready (after its next look at the sockets);
//! - before anything else the chat does: every command but a line (they
//!   take the write lock, which pushes them first), every event told to
//!   one connection ([`ChatHandle::tell`]), and every reply a connection
//!   queues for itself ([`ChatHandle::flush_lines`], called by the server
//!   before it queues one).
//!
//! So a member's queue gets everything in the order it got it before:
//! only consecutive lines wait, and nothing is queued ahead of them.
//! Members cannot change while lines wait (joins, parts and quits take
//! the write lock, which pushes the lines first), so the room's members
//! at the push are the ones the lines were said to.

use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::handle::{Core, Router};
use super::Audience;
use crate::proto::{ConnId, Event, EventBody, Flavor, Name, FLAVORS};

/// Lines of one room, in their order, shared by the members they are
/// pushed to (see the module documentation).
#[derive(Debug)]
pub struct Lines {
    pub events: Vec<Arc<Event>>,
    /// Each recipient's part of each line's own size
    /// ([`Event::share_among`] the room's members).
    pub share: usize,
    /// What they count against a member's send queue, by flavour
    /// (worked out for the first member of each flavour).
    cost: [OnceLock<usize>; FLAVORS],
}

impl Lines {
    /// `events` of one room in their order, each recipient paying `share`
    /// of each one's own size.
    pub fn new(events: Vec<Arc<Event>>, share: usize) -> Lines {
        Lines {
            events,
            share,
            cost: Default::default(),
        }
    }

    /// The bytes the lines are written as in `flavor`, with each one's
    /// share of its own size: what they count against a send queue.
    pub fn cost(&self, flavor: Flavor) -> usize {
        *self.cost[flavor as usize].get_or_init(|| {
            let bytes: usize = self.events.iter().map(|ev| ev.wire_len(flavor)).sum();
            bytes + self.share * self.events.len()
        })
    }
}

/// Which rooms hold lines not yet pushed: added to by the line that
/// starts a room's list, emptied by [`Core::flush_lines`]. Read without
/// the chat's lock ([`Held::any`]), so that nothing is taken when nothing
/// is held.
#[derive(Default)]
pub(super) struct Held {
    /// Some room holds lines, or a flush is pushing them: cleared only by
    /// a flush that has pushed everything.
    any: AtomicBool,
    rooms: Mutex<Vec<Name>>,
    /// Held by a flush for all of its pushes: a flush that finds another
    /// at work waits for it, so that no one who asked for the lines to go
    /// first queues anything before the other flush's pushes.
    flushing: Mutex<()>,
}

impl Held {
    /// Whether some room may hold lines.
    pub(super) fn any(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, Vec<Name>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn note(&self, room: Name) {
        self.rooms().push(room);
        self.any.store(true, Ordering::Release);
    }
}

impl<R: Router> Core<R> {
    /// Delivers a line's events with its room's held lines at hand
    /// (`held`, under the room's order lock): its message to the room
    /// joins them, and is pushed with them once they are `line_batch`
    /// long; anything else (an outsider's own copy) is pushed now.
    pub(super) fn hold(
        &self,
        deliveries: Vec<(Audience, Arc<Event>)>,
        held: &mut Vec<Arc<Event>>,
        overflowed: &mut Vec<ConnId>,
    ) {
        let mut room = None;
        let mut now = Vec::new();
        for (audience, ev) in deliveries {
            // A message to a whole room waits (not the notice of a join
            // and the like, nor anything to one person).
            match audience {
                Audience::Room(key) if matches!(ev.body, EventBody::Message { .. }) => {
                    held.push(ev);
                    room = Some(key);
                }
                audience => now.push((audience, ev)),
            }
        }
        self.deliver(&now, overflowed);
        let Some(key) = room else { return };
        if held.len() >= self.router.line_batch() {
            self.push_lines(&key, mem::take(held), overflowed);
        } else if held.len() == 1 {
            self.held.note(key);
            self.router.lines_held();
        }
    }

    /// Pushes every room's held lines (with the chat's lock, read or
    /// write, held; takes each room's order lock in turn).
    pub(super) fn flush_lines(&self, overflowed: &mut Vec<ConnId>) {
        if !self.held.any() {
            return;
        }
        let held = &self.held;
        let _flushing = held.flushing.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let rooms = mem::take(&mut *held.rooms());
            if rooms.is_empty() {
                break;
            }
            for key in rooms {
                let Some(room) = self.state.room(&key) else {
                    continue;
                };
                let mut order = room.order();
                if !order.lines.is_empty() {
                    self.push_lines(&key, mem::take(&mut order.lines), overflowed);
                }
            }
        }
        let rooms = held.rooms();
        if rooms.is_empty() {
            held.any.store(false, Ordering::Release);
        }
    }

    /// Pushes `events`, a room's lines in order, as one entry to each of
    /// its members here (called with the room's order lock held, or the
    /// chat to oneself).
    fn push_lines(&self, key: &Name, events: Vec<Arc<Event>>, overflowed: &mut Vec<ConnId>) {
        let audience = Audience::Room(key.clone());
        let share = Event::share_among(self.state.audience_size(&audience));
        let lines = Arc::new(Lines::new(events, share));
        let node = self.state.config().node;
        let mut tally = R::Tally::default();
        self.state.for_each_member(&audience, |to| {
            if to.node == node && !self.router.push_lines(&mut tally, to, &lines) {
                overflowed.push(to);
            }
        });
        self.router.flush(tally);
    }
}
