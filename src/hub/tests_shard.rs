//! The chat sharded by room (`handle.rs`): lines to different rooms go on
//! at the same time, and each room keeps one order for its members and
//! its store. Through the real [`ChatHandle`], from several threads, with
//! routers whose queues are vectors. No sleeps: every wait is on the thing
//! itself, with a timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::Duration;

use super::tests::{config, registered};
use super::*;
use crate::cluster::Standalone;
use crate::proto::{History, HistoryQuery};
use crate::store::MemoryStore;

const WAIT: Duration = Duration::from_secs(10);

/// One vector per connection (fixed slots: pushes from several threads
/// take only their recipient's lock). A push to `hold`, once armed,
/// says so on `entered` and then waits until the gate is opened.
struct Gate {
    queues: Vec<Mutex<Vec<Arc<Event>>>>,
    next: u64,
    hold: u64,
    armed: AtomicBool,
    entered: Mutex<Option<mpsc::Sender<()>>>,
    open: (Mutex<bool>, Condvar),
}

impl Gate {
    fn new(slots: usize, hold: u64) -> Gate {
        Gate {
            queues: (0..slots).map(|_| Mutex::new(Vec::new())).collect(),
            next: 0,
            hold,
            armed: AtomicBool::new(false),
            entered: Mutex::new(None),
            open: (Mutex::new(false), Condvar::new()),
        }
    }

    fn open(&self) {
        *self.open.0.lock().unwrap() = true;
        self.open.1.notify_all();
    }
}

impl Router for Gate {
    type Tally = ();
    fn push(&self, _: &mut (), to: ConnId, ev: &Arc<Event>, _share: usize) -> bool {
        if to.local == self.hold && self.armed.swap(false, Ordering::SeqCst) {
            if let Some(tx) = self.entered.lock().unwrap().take() {
                let _ = tx.send(());
            }
            let (open, cv) = &self.open;
            let guard = open.lock().unwrap();
            // Bounded: a broken test fails instead of hanging.
            let _ = cv.wait_timeout_while(guard, WAIT, |open| !*open).unwrap();
        }
        if let Some(q) = self.queues.get(to.local as usize) {
            q.lock().unwrap().push(ev.clone());
        }
        true
    }
    fn detach(&mut self, _conn: ConnId) {}
}

/// The memory store, keeping what was submitted, in the order it came.
struct Recording {
    inner: MemoryStore,
    facts: Mutex<Vec<Fact>>,
}

impl Store for Recording {
    fn submit(&self, facts: Vec<Fact>) -> u64 {
        self.facts.lock().unwrap().extend(facts.iter().cloned());
        self.inner.submit(facts)
    }
    fn history(
        &self,
        room: &str,
        query: HistoryQuery,
        limit: usize,
        events: bool,
    ) -> Result<History, StoreError> {
        self.inner.history(room, query, limit, events)
    }
    fn private_targets(
        &self,
        account: &str,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        self.inner.private_targets(account, from_ms, to_ms, limit)
    }
    fn latest_lines(
        &self,
        rooms: &[String],
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        self.inner.latest_lines(rooms, from_ms, to_ms)
    }
    fn room_seqs(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.inner.room_seqs()
    }
    fn watermark(&self) -> Option<Arc<Watermark>> {
        self.inner.watermark()
    }
}

/// A registered connection, in `room` (besides the default room).
fn person(chat: &ChatHandle<Gate>, nick: &str, room: &str) -> ConnId {
    let id = registered(chat, nick, |g| {
        g.next += 1;
        g.next - 1
    });
    let join = Command::Join {
        room: room.into(),
        switch: true,
    };
    assert_eq!(chat.execute(id, join), Outcome::Continue);
    id
}

fn say(room: &str, text: String) -> Command {
    Command::Say {
        room: Some(room.into()),
        text,
        action: false,
    }
}

/// (room, seq, text) of the messages in `events`.
fn messages(events: &[Arc<Event>]) -> Vec<(String, u64, String)> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Message {
                room, seq, text, ..
            } => Some((room.to_string(), *seq, text.to_string())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_line_to_one_room_does_not_wait_for_a_line_to_another() {
    // carol (slot 1) is the member of a whose push blocks.
    let chat = ChatHandle::new(
        config(),
        Gate::new(8, 1),
        Arc::new(MemoryStore::new(100, 100)),
        Arc::new(Standalone),
    );
    let alice = person(&chat, "alice", "a");
    let carol = person(&chat, "carol", "a");
    let bob = person(&chat, "bob", "b");
    let dave = person(&chat, "dave", "b");
    assert_eq!(carol.local, 1);
    let (entered_tx, entered) = mpsc::channel();
    chat.with_router(|g| {
        *g.entered.lock().unwrap() = Some(entered_tx);
        g.armed.store(true, Ordering::SeqCst);
    });

    let held = thread::spawn({
        let chat = chat.clone();
        move || chat.execute(alice, say("a", "held".into()))
    });
    entered
        .recv_timeout(WAIT)
        .expect("the line to a reached carol's push");

    // a's line is in the middle of its fan-out (holding the chat's read
    // lock and a's lock): a line to b goes through all the same.
    let (done_tx, done) = mpsc::channel();
    let other = thread::spawn({
        let chat = chat.clone();
        move || {
            let outcome = chat.execute(bob, say("b", "free".into()));
            let _ = done_tx.send(outcome);
        }
    });
    let outcome = done.recv_timeout(WAIT);
    chat.with_router(|g| g.open());
    assert_eq!(
        outcome.expect("the line to b finished while a's was held"),
        Outcome::Continue
    );
    other.join().unwrap();
    assert_eq!(held.join().unwrap(), Outcome::Continue);

    chat.with_router(|g| {
        let got = |c: ConnId| messages(&g.queues[c.local as usize].lock().unwrap());
        let texts = |c: ConnId| {
            got(c)
                .into_iter()
                .map(|(r, _, t)| (r, t))
                .collect::<Vec<_>>()
        };
        assert_eq!(texts(dave), vec![("b".into(), "free".into())]);
        assert_eq!(texts(bob), texts(dave));
        assert_eq!(texts(carol), vec![("a".into(), "held".into())]);
        assert_eq!(got(alice), got(carol));
    });
}

#[test]
fn each_room_keeps_one_order_under_senders_on_many_threads() {
    const ROOMS: usize = 2;
    const SENDERS: usize = 3; // per room
    const LISTENERS: usize = 2; // per room
    const LINES: usize = 300; // per sender
    let store = Arc::new(Recording {
        inner: MemoryStore::new(100, 100),
        facts: Mutex::new(Vec::new()),
    });
    let chat = ChatHandle::new(
        config(),
        Gate::new(64, u64::MAX),
        store.clone(),
        Arc::new(Standalone),
    );
    let mut senders = Vec::new();
    let mut members: HashMap<String, Vec<ConnId>> = HashMap::new();
    for r in 0..ROOMS {
        let room = format!("r{r}");
        for s in 0..SENDERS {
            let id = person(&chat, &format!("s{r}x{s}"), &room);
            senders.push((room.clone(), s, id));
            members.entry(room.clone()).or_default().push(id);
        }
        for l in 0..LISTENERS {
            let id = person(&chat, &format!("l{r}x{l}"), &room);
            members.entry(room.clone()).or_default().push(id);
        }
    }

    let threads: Vec<_> = senders
        .iter()
        .cloned()
        .map(|(room, s, id)| {
            let chat = chat.clone();
            thread::spawn(move || {
                for n in 0..LINES {
                    let outcome = chat.execute(id, say(&room, format!("{s}:{n}")));
                    assert_eq!(outcome, Outcome::Continue);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }

    let stored = store.facts.lock().unwrap().clone();
    chat.with_router(|g| {
        for (room, ids) in &members {
            let first = messages(&g.queues[ids[0].local as usize].lock().unwrap());
            let total = SENDERS * LINES;
            assert_eq!(first.len(), total, "{room}: every line, once");
            let base = first[0].1; // after the joins' numbers
            for (i, (r, seq, _)) in first.iter().enumerate() {
                assert_eq!(r, room);
                assert_eq!(*seq, base + i as u64, "{room}: numbered in the order shown");
            }
            // Each sender's lines in the order it sent them.
            for s in 0..SENDERS {
                let own: Vec<usize> = first
                    .iter()
                    .filter_map(|(_, _, t)| {
                        let (who, n) = t.split_once(':')?;
                        (who == s.to_string()).then(|| n.parse().ok())?
                    })
                    .collect();
                assert_eq!(own, (0..LINES).collect::<Vec<_>>(), "{room}, sender {s}");
            }
            // Every member saw the same order.
            for id in &ids[1..] {
                let got = messages(&g.queues[id.local as usize].lock().unwrap());
                assert_eq!(got, first, "{room}: one order for all members");
            }
            // The store got the room's lines in that order too.
            let kept: Vec<u64> = stored
                .iter()
                .filter(|f| f.room.as_deref() == Some(room.as_str()))
                .filter(|f| matches!(f.body, FactBody::Said { .. }))
                .map(|f| f.seq)
                .collect();
            let shown: Vec<u64> = first.iter().map(|m| m.1).collect();
            assert_eq!(kept, shown, "{room}: stored in the order shown");
        }
    });
}
