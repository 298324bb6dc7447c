//! Micro-benchmarks of the hot paths: line framing, parsing, rendering once
//! per flavor, and the hub's fan-out of one room message to 1000 members.
//! Run with `cargo bench`; results are recorded in docs/BENCHMARKS.md.

use std::sync::Arc;

use divan::{black_box, Bencher};
use natter::cluster::Standalone;
use natter::config::Config;
use natter::hub::{ChatHandle, HubConfig, Router};
use natter::proto::framer::Framer;
use natter::proto::line::LineDecoder;
use natter::proto::{json, text, ConnId, Event, EventBody, Flavor, MsgId};
use natter::store::MemoryStore;

fn main() {
    divan::main();
}

/// 1 MiB of 100-byte lines, fed in 8 KiB reads like the session does.
#[divan::bench]
fn line_decoder_1mib(b: Bencher) {
    let mut data = Vec::new();
    while data.len() < 1 << 20 {
        data.extend_from_slice(&[b'x'; 99]);
        data.push(b'\n');
    }
    b.counter(divan::counter::BytesCount::new(data.len()))
        .bench(|| {
            let mut d = LineDecoder::new(4096);
            let mut n = 0usize;
            for chunk in data.chunks(8192) {
                d.feed(chunk, |l| n += l.map(|s| s.len()).unwrap_or(0));
            }
            black_box(n)
        });
}

/// The same MiB as 100-byte JSON objects with no line breaks between
/// them, through the framer JSON connections use (the streaming reader).
#[divan::bench]
fn json_stream_1mib(b: Bencher) {
    let object = format!("{{\"cmd\":\"chat\",\"msg\":\"{}\"}}", "x".repeat(74));
    assert_eq!(object.len(), 100);
    let mut data = Vec::new();
    while data.len() < 1 << 20 {
        data.extend_from_slice(object.as_bytes());
    }
    b.counter(divan::counter::BytesCount::new(data.len()))
        .bench(|| {
            let mut f = Framer::new(4096, true);
            let mut n = 0usize;
            for chunk in data.chunks(8192) {
                f.feed(chunk, |l| n += l.map(|s| s.len()).unwrap_or(0));
            }
            black_box(n)
        });
}

#[divan::bench]
fn text_parse_chat_line() -> text::Input {
    text::parse(black_box("hello everyone, how is it going today?"), true)
}

#[divan::bench]
fn json_parse_chat_command() -> json::Input {
    json::parse(black_box(
        r#"{"cmd":"chat","msg":"hello everyone, how is it going today?"}"#,
    ))
}

fn message() -> Event {
    Event::new(EventBody::Message {
        id: MsgId(42),
        seq: 42,
        room: "lobby".into(),
        from: "alice".into(),
        text: "hello everyone, how is it going today?".into(),
        action: false,
    })
}

#[divan::bench(args = [Flavor::TextPlain, Flavor::TextColor, Flavor::Json])]
fn render_message(b: Bencher, flavor: Flavor) {
    b.with_inputs(message)
        .bench_local_values(|ev| black_box(ev.rendered(flavor).len()));
}

/// Counts deliveries without queueing (the cost of the chat alone).
#[derive(Default)]
struct Count(u64);

impl Router for Count {
    type Tally = u64;
    fn push(&self, n: &mut u64, _to: ConnId, _ev: &Arc<Event>, _share: usize) -> bool {
        *n += 1;
        true
    }
    fn detach(&mut self, _conn: ConnId) {}
}

/// Bounded tokio queues like the server's, drained between iterations.
#[derive(Default)]
struct Queues(Vec<tokio::sync::mpsc::Sender<Arc<Event>>>);

impl Router for Queues {
    type Tally = ();
    fn push(&self, _: &mut (), to: ConnId, ev: &Arc<Event>, _share: usize) -> bool {
        self.0[to.local as usize].try_send(ev.clone()).is_ok()
    }
    fn detach(&mut self, _conn: ConnId) {}
}

/// A room of `members` people; `attach` gives each a slot in the router.
fn room_of<R: Router>(
    members: usize,
    router: R,
    mut attach: impl FnMut(&mut R) -> u64,
) -> (ChatHandle<R>, ConnId) {
    let config = HubConfig::from_config(&Config::default());
    let store = Arc::new(MemoryStore::new(1000, 10));
    let chat = ChatHandle::new(config, router, store, Arc::new(Standalone));
    let mut first = None;
    for n in 0..members {
        let id = chat.connect("h".into(), &mut attach);
        first.get_or_insert(id);
        let nick = format!("user{n}");
        chat.execute(id, natter::proto::Command::Register { nick });
    }
    (chat, first.expect("members > 0"))
}

fn say() -> natter::proto::Command {
    natter::proto::Command::Say {
        room: None,
        text: "hello everyone".into(),
        action: false,
    }
}

/// One message to a 1000-member room: 1000 deliveries per iteration.
#[divan::bench]
fn fanout_1000_hub_only(b: Bencher) {
    let (chat, first) = room_of(1000, Count::default(), |r| {
        r.0 += 1;
        r.0 - 1
    });
    b.counter(divan::counter::ItemsCount::new(1000usize))
        .bench_local(|| {
            chat.execute(first, say());
        });
}

/// The same with the server's bounded queues (try_send of an Arc per member).
#[divan::bench]
fn fanout_1000_queues(b: Bencher) {
    let mut receivers = Vec::new();
    let (chat, first) = room_of(1000, Queues::default(), |r| {
        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        receivers.push(rx);
        r.0.push(tx);
        r.0.len() as u64 - 1
    });
    b.counter(divan::counter::ItemsCount::new(1000usize))
        .bench_local(|| {
            chat.execute(first, say());
            for rx in receivers.iter_mut() {
                while rx.try_recv().is_ok() {}
            }
        });
}
