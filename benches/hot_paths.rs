//! Micro-benchmarks of the hot paths: line framing, parsing, rendering once
//! per flavor, and the hub's fan-out of one room message to 1000 members.
//! Run with `cargo bench`; results are recorded in docs/BENCHMARKS.md.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use divan::{black_box, Bencher};
use natter::config::Config;
use natter::hub::{Hub, HubConfig, Outbox};
use natter::proto::line::LineDecoder;
use natter::proto::{json, text, Event, EventBody, Flavor};

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
        id: 42,
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

/// Counts deliveries without queueing (the cost of the hub alone).
#[derive(Clone)]
struct Count(Rc<Cell<u64>>);

impl Outbox for Count {
    fn push(&self, _ev: &Arc<Event>) -> bool {
        self.0.set(self.0.get() + 1);
        true
    }
}

/// A bounded tokio queue like the server's, drained between iterations.
#[derive(Clone)]
struct Queue(tokio::sync::mpsc::Sender<Arc<Event>>);

impl Outbox for Queue {
    fn push(&self, ev: &Arc<Event>) -> bool {
        self.0.try_send(ev.clone()).is_ok()
    }
}

fn room_of<O: Outbox>(members: usize, mut outbox: impl FnMut() -> O) -> Hub<O> {
    let mut hub = Hub::new(HubConfig::from_config(&Config::default()));
    for id in 0..members as u64 {
        hub.connect(id, outbox());
        hub.handle(
            id,
            natter::proto::Command::Register {
                nick: format!("user{id}"),
            },
        );
    }
    hub
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
    let count = Rc::new(Cell::new(0));
    let mut hub = room_of(1000, || Count(count.clone()));
    b.counter(divan::counter::ItemsCount::new(1000usize))
        .bench_local(|| {
            hub.handle(0, say());
        });
}

/// The same with the server's bounded queues (try_send of an Arc per member).
#[divan::bench]
fn fanout_1000_queues(b: Bencher) {
    let mut receivers = Vec::new();
    let mut hub = room_of(1000, || {
        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        receivers.push(rx);
        Queue(tx)
    });
    b.counter(divan::counter::ItemsCount::new(1000usize))
        .bench_local(|| {
            hub.handle(0, say());
            for rx in receivers.iter_mut() {
                while rx.try_recv().is_ok() {}
            }
        });
}
