//! Durability of the real binary on a real database file: `natter serve`
//! is killed with SIGKILL while JSON clients are sending, restarted on the
//! same file, and its history must hold every message a client saw
//! acknowledged (its echo, which is only sent after commit), in order,
//! with the same ids and sequence numbers, and nothing twice.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::binary::serve;
use common::*;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::{Notify, Semaphore};

/// Clients sending at once, and messages each may have unacknowledged.
const CLIENTS: usize = 4;
const WINDOW: usize = 48;
/// Acknowledged messages (all clients) before the kill.
const KILL_AFTER: usize = 2500;

/// One message as a client saw it acknowledged, or as history returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    id: String,
    seq: u64,
    from: String,
    text: String,
}

/// What one sender saw: its own acknowledged messages, in order.
struct Sent {
    nick: String,
    acked: Vec<Line>,
}

/// Logs in as `nick` and sends numbered messages until the server dies,
/// keeping at most [`WINDOW`] unacknowledged; counts acks in `total`.
async fn sender(
    addr: SocketAddr,
    nick: String,
    total: Arc<AtomicUsize>,
    enough: Arc<Notify>,
) -> Sent {
    let j = JsonClient::login(addr, &nick).await;
    let Client { mut reader, writer } = j.c;
    let window = Arc::new(Semaphore::new(WINDOW));
    let writing = tokio::spawn({
        let window = window.clone();
        let mut writer = writer;
        async move {
            for n in 0u64.. {
                let Ok(permit) = window.acquire().await else {
                    return; // the reader saw the server go
                };
                permit.forget();
                let line = format!("{}\r\n", json!({"cmd": "chat", "msg": format!("m{n}")}));
                if writer.write_all(line.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    });
    let mut acked = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        // No timeout: the kill ends every connection with EOF or a reset.
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let Ok(line) = std::str::from_utf8(&buf) else {
            panic!("not UTF-8: {buf:?}")
        };
        let Some(stamped) = natter::proto::json::wire::parse_event(line) else {
            continue; // the banner, or a line cut by the kill
        };
        if let Event::Message {
            id,
            seq,
            from,
            text,
            ..
        } = stamped.event
        {
            if from == nick {
                acked.push(Line {
                    id: id.into(),
                    seq,
                    from: from.into(),
                    text: text.into(),
                });
                window.add_permits(1);
                if total.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER {
                    enough.notify_one();
                }
            }
        }
    }
    window.close();
    let _ = writing.await;
    Sent { nick, acked }
}

/// One page of history (`{"cmd":"history",…}` with `extra` fields).
async fn page(j: &mut JsonClient, extra: serde_json::Value) -> (Vec<Line>, bool) {
    let mut cmd = json!({"cmd": "history", "room": "lobby"});
    for (k, v) in extra.as_object().unwrap() {
        cmd[k] = v.clone();
    }
    j.send(cmd).await;
    let (messages, more) = expect_event!(j, Event::History { messages, more, replay: false, .. }
        => (messages, more))
    .await;
    let lines = messages
        .into_iter()
        .map(|m| match m.event {
            Event::Message {
                id,
                seq,
                from,
                text,
                ..
            } => Line {
                id: id.into(),
                seq,
                from: from.into(),
                text: text.into(),
            },
            other => panic!("history holds messages only: {other:?}"),
        })
        .collect();
    (lines, more)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_kill_9_in_order_with_their_ids() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("natter.db");
    // A small cap on history requests, so reading it back takes many pages;
    // a WAL of 64 KiB at most, so the writer checkpoints it and starts it
    // over many times while acknowledged lines stream in.
    let flags = ["--history-max-lines", "400", "--db-wal-max", "64KiB"];
    let mut server = serve(&db, &flags);
    let total = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(Notify::new());
    let senders: Vec<_> = (0..CLIENTS)
        .map(|i| {
            tokio::spawn(sender(
                server.addr,
                format!("load{i}"),
                total.clone(),
                enough.clone(),
            ))
        })
        .collect();
    tokio::time::timeout(std::time::Duration::from_secs(120), enough.notified())
        .await
        .expect("the clients got enough messages acknowledged");
    server.kill9();
    let mut sent = Vec::new();
    for s in senders {
        sent.push(s.await.unwrap());
    }
    let acked: usize = sent.iter().map(|s| s.acked.len()).sum();
    assert!(acked >= KILL_AFTER, "{acked} acknowledged");

    // Restarted on the same file: read the whole room back, newest page
    // first (`before` the oldest line seen), with a huge limit each time.
    let server = serve(&db, &flags);
    let mut j = JsonClient::login(server.addr, "checker").await;
    let mut pages = Vec::new();
    let (mut lines, mut more) = page(&mut j, json!({"limit": 1_000_000})).await;
    loop {
        assert!(lines.len() <= 400, "history_max_lines caps a page");
        let oldest = lines.first().map(|l| l.id.clone());
        let done = !more;
        pages.push(lines);
        if done {
            break;
        }
        let before = oldest.expect("a page that says more is not empty");
        (lines, more) = page(&mut j, json!({"limit": 1_000_000, "before": before})).await;
    }
    let history: Vec<Line> = pages.into_iter().rev().flatten().collect();

    // In order, nothing twice.
    for pair in history.windows(2) {
        assert!(pair[0].seq < pair[1].seq, "seq order: {pair:?}");
        assert!(pair[0].id < pair[1].id, "ids sort in room order: {pair:?}");
    }
    let texts: HashSet<(&str, &str)> = history
        .iter()
        .map(|l| (l.from.as_str(), l.text.as_str()))
        .collect();
    assert_eq!(texts.len(), history.len(), "a message stored twice");
    // Every acknowledged message, with the id and seq it was acked with.
    let by_id: HashMap<&str, &Line> = history.iter().map(|l| (l.id.as_str(), l)).collect();
    for s in &sent {
        for line in &s.acked {
            assert_eq!(
                by_id.get(line.id.as_str()).copied(),
                Some(line),
                "acknowledged but lost or changed after kill -9"
            );
        }
        // Each sender's lines in the order it sent them, and none that it
        // did not send (m0, m1, … with no gap up to the last one stored).
        let mine: Vec<&str> = history
            .iter()
            .filter(|l| l.from == s.nick)
            .map(|l| l.text.as_str())
            .collect();
        let expected: Vec<String> = (0..mine.len()).map(|n| format!("m{n}")).collect();
        assert_eq!(mine, expected, "{}'s lines in sending order", s.nick);
        assert!(mine.len() <= s.acked.len() + WINDOW, "only what was sent");
    }
    let unacked = history.len() - acked;
    eprintln!(
        "kill -9: {acked} acknowledged, {} in history ({unacked} committed but not yet acknowledged)",
        history.len()
    );

    // Reading forwards (`after`, oldest first) gives the same lines.
    let first = history.first().expect("history").clone();
    let mut forward = vec![first.clone()];
    let mut after = first.id.clone();
    loop {
        let (lines, more) = page(&mut j, json!({"limit": 400, "after": after})).await;
        if let Some(last) = lines.last() {
            after = last.id.clone();
        }
        forward.extend(lines);
        if !more {
            break;
        }
    }
    assert_eq!(forward, history, "after-paging agrees with before-paging");

    // The room's order goes on where it stopped, with newer ids.
    j.send(Cmd::chat("after the crash")).await;
    let (id, seq) =
        expect_event!(j, Event::Message { id, seq, text, .. } if text == "after the crash"
        => (id, seq))
        .await;
    let last = history.last().unwrap();
    assert!(seq > last.seq, "seq {seq} continues after {}", last.seq);
    assert!(*id > *last.id, "ids go on increasing");
    server.stop();
}
