//! Lines in batches (`lines.rs`), through the real [`ChatHandle`] with a
//! router whose queues are vectors of what each push queued: an event
//! alone, or a room's lines pushed together.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::tests::{config, registered};
use super::*;
use crate::cluster::Standalone;
use crate::store::MemoryStore;

/// One queue entry: an event, or lines pushed as one.
#[derive(Debug)]
enum Entry {
    One(Arc<Event>),
    Lines(Arc<Lines>),
}

/// Vectors by slot; holds up to `batch` lines.
struct Holding {
    queues: Vec<Mutex<Vec<Entry>>>,
    next: u64,
    batch: usize,
    /// Times a room started holding lines (the flusher's wake-ups).
    held: AtomicUsize,
}

impl Router for Holding {
    type Tally = ();
    fn push(&self, _: &mut (), to: ConnId, ev: &Arc<Event>, _share: usize) -> bool {
        self.queues[to.local as usize]
            .lock()
            .unwrap()
            .push(Entry::One(ev.clone()));
        true
    }
    fn push_lines(&self, _: &mut (), to: ConnId, lines: &Arc<Lines>) -> bool {
        self.queues[to.local as usize]
            .lock()
            .unwrap()
            .push(Entry::Lines(lines.clone()));
        true
    }
    fn line_batch(&self) -> usize {
        self.batch
    }
    fn lines_held(&self) {
        self.held.fetch_add(1, Ordering::SeqCst);
    }
    fn detach(&mut self, _conn: ConnId) {}
}

fn chat(batch: usize) -> ChatHandle<Holding> {
    let router = Holding {
        queues: (0..8).map(|_| Mutex::new(Vec::new())).collect(),
        next: 0,
        batch,
        held: AtomicUsize::new(0),
    };
    let store = Arc::new(MemoryStore::new(100, 100));
    ChatHandle::new(config(), router, store, Arc::new(Standalone))
}

fn person(chat: &ChatHandle<Holding>, nick: &str) -> ConnId {
    registered(chat, nick, |r| {
        r.next += 1;
        r.next - 1
    })
}

fn say(chat: &ChatHandle<Holding>, who: ConnId, text: &str) {
    let line = Command::Say {
        room: None,
        text: text.into(),
        action: false,
    };
    assert_eq!(chat.execute(who, line), Outcome::Continue);
}

/// What `who`'s queue holds, in order, in short: `said:TEXT` for a line,
/// `[…]` around lines pushed together, `joined:NICK` and the like for
/// the rest (welcomes and names lists left out).
fn seen(chat: &ChatHandle<Holding>, who: ConnId) -> Vec<String> {
    let short = |ev: &Event| match &ev.body {
        EventBody::Message { text, .. } => Some(format!("said:{text}")),
        EventBody::Joined { nick, .. } => Some(format!("joined:{nick}")),
        EventBody::Quit { nick, .. } => Some(format!("left:{nick}")),
        EventBody::Private { text, .. } => Some(format!("private:{text}")),
        _ => None,
    };
    chat.with_router(|r| {
        let q = r.queues[who.local as usize].lock().unwrap();
        q.iter()
            .filter_map(|e| match e {
                Entry::One(ev) => short(ev),
                Entry::Lines(lines) => {
                    let said: Vec<_> = lines.events.iter().filter_map(|e| short(e)).collect();
                    Some(format!("[{}]", said.join(" ")))
                }
            })
            .collect()
    })
}

#[test]
fn lines_wait_and_go_out_together_in_their_order() {
    let chat = chat(64);
    let (alice, bob) = (person(&chat, "alice"), person(&chat, "bob"));
    let before = seen(&chat, bob);
    for text in ["one", "two", "three"] {
        say(&chat, alice, text);
    }
    assert_eq!(seen(&chat, bob), before, "nothing pushed yet");
    assert_eq!(chat.with_router(|r| r.held.load(Ordering::SeqCst)), 1);
    chat.flush_lines();
    let mut after = before.clone();
    after.push("[said:one said:two said:three]".into());
    assert_eq!(seen(&chat, bob), after);
    assert_eq!(seen(&chat, alice).last(), after.last(), "the sender too");
    chat.flush_lines(); // nothing left: nothing more
    assert_eq!(seen(&chat, bob), after);
}

#[test]
fn a_full_batch_is_pushed_by_the_line_that_fills_it() {
    let chat = chat(2);
    let (alice, bob) = (person(&chat, "alice"), person(&chat, "bob"));
    for text in ["one", "two", "three"] {
        say(&chat, alice, text);
    }
    let got = seen(&chat, bob);
    assert_eq!(got.last().unwrap(), "[said:one said:two]", "{got:?}");
    chat.flush_lines();
    assert_eq!(seen(&chat, bob).last().unwrap(), "[said:three]");
}

#[test]
fn without_line_batch_each_line_is_pushed_at_once() {
    for batch in [0, 1] {
        let chat = chat(batch);
        let (alice, bob) = (person(&chat, "alice"), person(&chat, "bob"));
        say(&chat, alice, "one");
        assert_eq!(seen(&chat, bob).last().unwrap(), "said:one");
        assert_eq!(chat.with_router(|r| r.held.load(Ordering::SeqCst)), 0);
    }
}

/// Whatever the chat does next comes after the lines held: a join (the
/// joiner does not get them, the members get them before the join), a
/// private line, a part (the leaver gets what was said before it).
#[test]
fn nothing_the_chat_does_overtakes_held_lines() {
    let chat = chat(64);
    let (alice, bob) = (person(&chat, "alice"), person(&chat, "bob"));
    say(&chat, alice, "before carol");
    let carol = person(&chat, "carol");
    let bob_saw = seen(&chat, bob);
    let n = bob_saw.len();
    assert_eq!(bob_saw[n - 2..], ["[said:before carol]", "joined:carol"]);
    assert!(
        !seen(&chat, carol)
            .iter()
            .any(|s| s.contains("before carol")),
        "{:?}",
        seen(&chat, carol)
    );

    say(&chat, alice, "before the private line");
    let private = Command::Private {
        to: "bob".into(),
        text: "psst".into(),
        action: false,
    };
    assert_eq!(chat.execute(carol, private), Outcome::Continue);
    let bob_saw = seen(&chat, bob);
    let n = bob_saw.len();
    assert_eq!(
        bob_saw[n - 2..],
        ["[said:before the private line]", "private:psst"]
    );

    say(&chat, alice, "before bob leaves");
    chat.disconnect(bob, "bye");
    let bob_saw = seen(&chat, bob);
    assert_eq!(bob_saw.last().unwrap(), "[said:before bob leaves]");
    assert!(seen(&chat, carol).ends_with(&["[said:before bob leaves]".into(), "left:bob".into()]));

    // An event told to one connection (an answer read off the lock).
    say(&chat, alice, "before an answer");
    chat.tell(
        carol,
        EventBody::Private {
            from: "x".into(),
            to: "carol".into(),
            text: "answer".into(),
            action: false,
            id: crate::proto::MsgId(1),
        },
    );
    assert!(
        seen(&chat, carol).ends_with(&["[said:before an answer]".into(), "private:answer".into()])
    );
}
