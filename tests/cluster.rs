//! Several `natter serve` processes sharing every room through a real
//! nats-server with JetStream, started by each test on a free port with a
//! store directory of its own: cross-node chat in one order for everyone,
//! nick races, a node killed with SIGKILL and reaped, NATS stopped and
//! restarted, and bad starts (NATS unreachable, no node number); `natter
//! chat` given several nodes failing over when its node is killed.

mod client_support;
mod common;

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::binary::{try_serve, Natter, Privilege};
use common::*;

/// A nats-server child with JetStream on, on a free port.
struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl NatsServer {
    /// Starts one, or says why not (a missing nats-server skips the test
    /// outside CI, fails it under CI).
    fn start() -> Option<NatsServer> {
        let Some(bin) = find_tool("nats-server") else {
            missing(
                "nats-server is not installed (apt-get install nats-server): cluster tests not run",
            );
            return None;
        };
        let port = free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut n = NatsServer {
            child: None,
            port,
            dir,
            bin,
        };
        n.run();
        Some(n)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server on its port and store, and waits until it accepts.
    fn run(&mut self) {
        let child = Command::new(&self.bin)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        wait_until("nats-server accepts connections", || {
            TcpStream::connect(addr).is_ok()
        });
    }

    /// SIGKILL: JetStream keeps what it acknowledged (written to the OS).
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Polls `done` (something observable, not time) until it holds; panics
/// after [`PATIENCE`].
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Node `n` of the cluster at `nats`, with quick heartbeats.
fn node(nats: &NatsServer, n: u16) -> Natter {
    node_with(nats, n, &[])
}

/// [`node`] with `extra` flags.
fn node_with(nats: &NatsServer, n: u16, extra: &[&str]) -> Natter {
    let url = nats.url();
    let n = n.to_string();
    let mut args = vec![
        "--cluster",
        &url,
        "--node",
        &n,
        "--cluster-node-ttl",
        "3s",
        "--cluster-timeout",
        "2s",
    ];
    // 500 ms unless `extra` says otherwise.
    if !extra.contains(&"--cluster-heartbeat") {
        args.extend(["--cluster-heartbeat", "500ms"]);
    }
    args.extend_from_slice(extra);
    try_serve(Path::new("off"), &args, Privilege::Plain)
        .unwrap_or_else(|(status, log)| panic!("node {n} did not start ({status}): {log:#?}"))
}

/// The texts of the current room's last 10 lines, as a `history` request
/// answers (not the replay on joining).
async fn history_texts(c: &mut JsonClient) -> Vec<String> {
    c.send(Cmd::History {
        room: None,
        with: None,
        limit: Some(10),
        before: None,
        after: None,
    })
    .await;
    let v = loop {
        let v = c.expect("history").await;
        if v["replay"] == false {
            break v;
        }
    };
    v["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["text"].as_str().map(String::from))
        .collect()
}

/// One line as a JSON client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    id: String,
    seq: u64,
    from: String,
    text: String,
}

async fn next_message(j: &mut JsonClient) -> Line {
    expect_event!(j, Event::Message { id, seq, from, text, .. } => Line {
        id: id.into_owned(),
        seq,
        from: from.into_owned(),
        text: text.into_owned(),
    })
    .await
}

/// Whether a login was accepted (or refused with an error).
async fn registered(j: &mut JsonClient) -> bool {
    j.expect_with("registered or an error", |ev| match ev {
        Event::Registered { .. } => Some(true),
        Event::Error { .. } => Some(false),
        _ => None,
    })
    .await
}

/// Waits until `j` has seen `nick` join its room.
async fn sees_join(j: &mut JsonClient, nick: &str) {
    expect_event!(j, Event::Joined { nick: n, .. } if n == nick).await;
}

/// The log of a node that must refuse to start with `args` and exit
/// non-zero; `started` is the failure if it starts.
fn refused(args: &[&str], started: &str) -> String {
    let Err((status, log)) = try_serve(Path::new("off"), args, Privilege::Plain) else {
        panic!("{started}");
    };
    assert!(!status.success(), "{status}");
    log.join("\n")
}

#[test]
fn an_unreachable_nats_at_start_is_a_clear_error_and_a_non_zero_exit() {
    let url = format!("nats://127.0.0.1:{}", free_port());
    let log = refused(
        &["--cluster", &url, "--node", "1"],
        &format!("natter started with no NATS at {url}"),
    );
    assert!(log.contains("cannot join the cluster"), "{log}");
    assert!(
        log.contains(&format!("cannot connect to NATS at {url}")),
        "{log}"
    );
}

#[test]
fn a_cluster_needs_a_node_number() {
    let url = format!("nats://127.0.0.1:{}", free_port());
    let log = refused(&["--cluster", &url], "natter started without --node");
    assert!(log.contains("--node"), "{log}");
}

#[test]
fn a_node_number_in_use_is_refused() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let _one = node(&nats, 1);
    let url = nats.url();
    let log = refused(
        &["--cluster", &url, "--node", "1"],
        "two nodes 1 in one cluster",
    );
    assert!(log.contains("node 1 is already in the cluster"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_chat_and_everyone_sees_one_order() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let nodes: Vec<Natter> = (1..=3).map(|n| node(&nats, n)).collect();
    let mut a = JsonClient::login(nodes[0].addr, "alice").await;
    let mut b = JsonClient::login(nodes[1].addr, "bob").await;
    sees_join(&mut a, "bob").await;
    let c = JsonClient::login(nodes[2].addr, "carol").await;
    sees_join(&mut a, "carol").await;
    sees_join(&mut b, "carol").await;

    // Everyone talks at once, from three nodes.
    const EACH: usize = 30;
    let mut clients = [a, b, c];
    for i in 0..EACH {
        for (k, j) in clients.iter_mut().enumerate() {
            let msg = format!("line {i} from {k}");
            j.send(Cmd::Chat {
                msg: msg.into(),
                room: None,
                action: false,
            })
            .await;
        }
    }
    let mut seen = Vec::new();
    for j in clients.iter_mut() {
        let mut lines = Vec::new();
        for _ in 0..3 * EACH {
            lines.push(next_message(j).await);
        }
        seen.push(lines);
    }
    // One order for all, every line once, each with one id; seq increases.
    assert_eq!(seen[0], seen[1], "node 1 and node 2 saw different orders");
    assert_eq!(seen[0], seen[2], "node 1 and node 3 saw different orders");
    let mut ids: Vec<&str> = seen[0].iter().map(|l| l.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3 * EACH, "a line came twice or ids repeat");
    assert!(seen[0].windows(2).all(|w| w[0].seq < w[1].seq), "{seen:#?}");
    // Each sender's own lines come back in the order it sent them.
    for (k, nick) in ["alice", "bob", "carol"].iter().enumerate() {
        let own: Vec<String> = seen[0]
            .iter()
            .filter(|l| l.from == *nick)
            .map(|l| l.text.clone())
            .collect();
        let sent: Vec<String> = (0..EACH).map(|i| format!("line {i} from {k}")).collect();
        assert_eq!(own, sent);
    }

    // Private lines cross nodes too, and the sender sees its copy.
    let [a, _b, c] = &mut clients;
    a.send(Cmd::Msg {
        to: "carol".into(),
        msg: "psst".into(),
        action: false,
    })
    .await;
    let got = expect_event!(c, Event::Private { from, text, .. } => (from, text)).await;
    assert_eq!((&*got.0, &*got.1), ("alice", "psst"));
    expect_event!(a, Event::Private { to, .. } if to == "carol").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_for_one_nick_give_it_to_one() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (one, two) = (node(&nats, 1), node(&nats, 2));
    for round in 0..10 {
        let nick = format!("racer{round}");
        let (mut x, mut y) = (
            JsonClient::connect(one.addr).await,
            JsonClient::connect(two.addr).await,
        );
        let login = || Cmd::Login {
            nick: nick.clone().into(),
        };
        // Both ask before either answer is read.
        tokio::join!(x.send(login()), y.send(login()));
        let (wx, wy) = tokio::join!(registered(&mut x), registered(&mut y));
        assert!(
            wx ^ wy,
            "round {round}: both or neither got {nick}: {wx} {wy}"
        );
    }
    // A released nick is free again on the other node.
    let mut z = JsonClient::login(one.addr, "zed").await;
    z.send(Cmd::Quit { reason: None }).await;
    let _ = z.c.until_eof().await;
    let mut again = JsonClient::connect(two.addr).await;
    let mut tries = 0;
    loop {
        again.send(Cmd::Login { nick: "zed".into() }).await;
        if registered(&mut again).await {
            break;
        }
        tries += 1;
        assert!(tries < 50, "zed was never released");
        tokio::time::sleep(Duration::from_millis(50)).await; // retry pacing, not synchronisation
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_reaped_its_users_quit_once_and_their_nicks_are_freed() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let one = node(&nats, 1);
    let two = node(&nats, 2);
    let mut three = node(&nats, 3);
    let mut a = JsonClient::login(one.addr, "alice").await;
    let mut b = JsonClient::login(two.addr, "bob").await;
    sees_join(&mut a, "bob").await;
    let _c = JsonClient::login(three.addr, "carol").await;
    sees_join(&mut a, "carol").await;
    sees_join(&mut b, "carol").await;

    let killed = Instant::now();
    three.kill9();
    let reason = expect_event!(a, Event::Quit { nick, reason } if nick == "carol" => reason).await;
    assert!(reason.contains("node 3"), "{reason}");
    expect_event!(b, Event::Quit { nick, .. } if nick == "carol").await;
    assert!(
        killed.elapsed() < Duration::from_secs(20),
        "{:?}",
        killed.elapsed()
    );
    // Once: the next thing alice sees is bob's line, not a second quit.
    b.send(Cmd::Chat {
        msg: "still here".into(),
        room: None,
        action: false,
    })
    .await;
    let next = a
        .expect_with("a quit or a message", |ev| match ev {
            Event::Quit { nick, .. } => Some(nick.into_owned()),
            Event::Message { text, .. } => Some(text.into_owned()),
            _ => None,
        })
        .await;
    assert_eq!(next, "still here");
    // The nick is free again.
    let mut c2 = JsonClient::login(two.addr, "carol").await;
    c2.send(Cmd::Chat {
        msg: "back".into(),
        room: None,
        action: false,
    })
    .await;
    let line = next_message(&mut a).await;
    assert_eq!((line.from.as_str(), line.text.as_str()), ("carol", "back"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nats_down_sends_are_refused_and_chat_resumes_when_it_returns() {
    let Some(mut nats) = NatsServer::start() else {
        return;
    };
    let one = node(&nats, 1);
    let two = node(&nats, 2);
    let mut a = JsonClient::login(one.addr, "alice").await;
    let mut b = JsonClient::login(two.addr, "bob").await;
    sees_join(&mut a, "bob").await;
    let say = |text: &str| Cmd::Chat {
        msg: text.to_string().into(),
        room: None,
        action: false,
    };
    a.send(say("before")).await;
    assert_eq!(next_message(&mut b).await.text, "before");

    nats.kill();
    // The node notices the lost connection; until then a send may wait
    // for its ack and fail at cluster_timeout: either way, an error.
    a.send(say("while down")).await;
    let code = a.expect_error().await;
    assert_eq!(code, "store_failed");
    // Nobody was shown it: not even the sender (checked below, by what
    // comes next).

    nats.run();
    // Once the node is back on NATS, a line goes through; retry until then.
    let mut n = 0;
    let text = loop {
        n += 1;
        assert!(n < 100, "chat never resumed");
        a.send(say(&format!("after {n}"))).await;
        let got = a
            .expect_with("a message or an error", |ev| match ev {
                Event::Message { text, .. } => Some(Some(text.into_owned())),
                Event::Error { .. } => Some(None),
                _ => None,
            })
            .await;
        if let Some(t) = got {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // retry pacing, not synchronisation
    };
    assert!(text.starts_with("after "), "{text}");
    assert_ne!(text, "while down");
    // bob, on the other node, gets it next: "while down" was never shown.
    assert_eq!(next_message(&mut b).await.text, text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_later_knows_who_is_on_the_others() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let one = node(&nats, 1);
    let two = node(&nats, 2);
    let mut a = JsonClient::login(one.addr, "alice").await;
    let _b = JsonClient::login(two.addr, "bob").await;
    sees_join(&mut a, "bob").await;
    let three = node(&nats, 3);
    let mut c = JsonClient::connect(three.addr).await;
    c.send(Cmd::Login {
        nick: "carol".into(),
    })
    .await;
    let online = expect_event!(c, Event::Registered { online, .. } => online).await;
    assert_eq!(online, 3, "carol is told everyone online in the cluster");
    let mut nicks = expect_event!(c, Event::Presence { nicks, .. } => nicks).await;
    nicks.sort();
    assert_eq!(nicks, ["alice", "bob", "carol"]);
    // And the nicks of people on other nodes are taken here too.
    let mut d = JsonClient::connect(three.addr).await;
    d.send(Cmd::Login {
        nick: "alice".into(),
    })
    .await;
    assert_eq!(d.expect_error().await, "nick_in_use");
}

fn say(text: &str) -> Cmd<'static> {
    Cmd::Chat {
        msg: text.to_string().into(),
        room: None,
        action: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_modes_and_kicks_apply_on_every_node_and_history_crosses_nodes() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let one = node(&nats, 1);
    let two = node(&nats, 2);
    let mut a = JsonClient::login(one.addr, "alice").await;
    let mut b = JsonClient::login(two.addr, "bob").await;
    sees_join(&mut a, "bob").await;
    for i in 0..3 {
        a.send(say(&format!("old line {i}"))).await;
    }
    for _ in 0..3 {
        next_message(&mut b).await;
    }
    // History on node 2 has what was said on node 1.
    let texts = history_texts(&mut b).await;
    assert_eq!(texts, ["old line 0", "old line 1", "old line 2"]);

    // alice opens #ops (its operator), bob joins it from the other node.
    a.send(Cmd::Join {
        room: "ops".into(),
        key: None,
        switch: true,
    })
    .await;
    expect_event!(a, Event::Presence { room, .. } if room == "ops").await;
    // Node 2 learns of #ops from the stream (two people opening one room
    // on two nodes at the same moment would each be its operator there:
    // docs/OPERATING.md, Several nodes).
    let mut polls = 0;
    loop {
        b.send(Cmd::Rooms { after: None }).await;
        let v = b.expect("rooms").await;
        let listed = v["rooms"].as_array().is_some_and(|r| {
            r.iter().any(|e| {
                e["room"].as_str().is_some_and(|n| n.ends_with("ops")) && e["members"] == 1
            })
        });
        if listed {
            break;
        }
        polls += 1;
        assert!(polls < 200, "node 2 never heard of #ops: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await; // polling pace, not synchronisation
    }
    b.send(Cmd::Join {
        room: "ops".into(),
        key: None,
        switch: true,
    })
    .await;
    let ops = expect_event!(b, Event::Presence { room, ops, .. } if room == "ops" => ops).await;
    assert_eq!(
        ops.unwrap_or_default(),
        ["alice"],
        "node 2 knows who opened #ops"
    );
    sees_join(&mut a, "bob").await;

    a.send(Cmd::Topic {
        room: None,
        topic: Some("plans".into()),
    })
    .await;
    let topic =
        expect_event!(b, Event::Topic { topic, changed: true, .. } => topic.map(|t| t.into_owned()))
            .await;
    assert_eq!(topic.as_deref(), Some("plans"));
    a.send(Cmd::Mode {
        room: None,
        changes: Some("+m".into()),
    })
    .await;
    expect_event!(b, Event::Mode { changes, .. } if changes.contains("+m")).await;
    // Node 2 enforces the mode set on node 1.
    b.send(say("may I?")).await;
    b.expect_error().await;
    a.send(Cmd::Kick {
        room: None,
        nick: "bob".into(),
        reason: Some("out".into()),
    })
    .await;
    expect_event!(b, Event::Kicked { nick, .. } if nick == "bob").await;
    expect_event!(a, Event::Kicked { nick, .. } if nick == "bob").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_killed_and_restarted_under_load_loses_no_line_anyone_was_shown() {
    let Some(mut nats) = NatsServer::start() else {
        return;
    };
    // alice sends all 300 lines before she reads an answer, and bob reads
    // them only at the end: what each node holds for them must fit, or
    // they are dropped as slow consumers (`sendq`, 96 KiB), as happened
    // in runs on a busy box. This test is about NATS, not that.
    let one = node_with(&nats, 1, &["--sendq", "16MiB"]);
    let two = node_with(&nats, 2, &["--sendq", "16MiB"]);
    let mut a = JsonClient::login(one.addr, "alice").await;
    let mut b = JsonClient::login(two.addr, "bob").await;
    sees_join(&mut a, "bob").await;

    // Lines in flight when NATS is killed, more while it is down.
    const LINES: usize = 300;
    for i in 0..LINES {
        a.send(say(&format!("load {i}"))).await;
        if i == 100 {
            nats.kill();
        }
        if i == 200 {
            nats.run();
        }
    }
    // Every line is answered: shown (it was stored) or refused. Then an
    // "end" line, sent again until one is shown.
    let (mut sent, mut answers, mut refused, mut ends) = (LINES, 0, 0, 0);
    let mut shown_to_alice = Vec::new();
    loop {
        if answers >= sent {
            ends += 1;
            assert!(ends < 200, "chat never resumed: {shown_to_alice:?}");
            a.send(say(&format!("end {ends}"))).await;
            sent += 1;
        }
        let got = a
            .expect_with("a line or an error", |ev| match ev {
                Event::Message { text, .. } => Some(Some(text.into_owned())),
                Event::Error { .. } => Some(None),
                _ => None,
            })
            .await;
        answers += 1;
        match got {
            Some(t) if t.starts_with("end") => {
                shown_to_alice.push(t);
                break;
            }
            Some(t) => shown_to_alice.push(t),
            None => refused += 1,
        }
    }
    let loads = shown_to_alice
        .iter()
        .filter(|t| t.starts_with("load"))
        .count();
    eprintln!("NATS killed under load: {loads} lines shown, {refused} refused, {ends} end lines");
    assert!(
        loads + refused >= LINES,
        "{loads} shown + {refused} refused"
    );
    assert!(loads > 0);
    // bob, on the other node, saw exactly what alice was shown, in order.
    let mut shown_to_bob = Vec::new();
    loop {
        let t = next_message(&mut b).await.text;
        let end = t.starts_with("end");
        shown_to_bob.push(t);
        if end {
            break;
        }
    }
    assert_eq!(shown_to_bob, shown_to_alice);
    // In the order sent.
    let order: Vec<usize> = shown_to_alice
        .iter()
        .filter_map(|t| t.strip_prefix("load ")?.parse().ok())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_cleanly_tells_the_others_its_users_quit() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let one = node(&nats, 1);
    let two = node(&nats, 2);
    let mut a = JsonClient::login(one.addr, "alice").await;
    let _b = JsonClient::login(two.addr, "bob").await;
    sees_join(&mut a, "bob").await;
    let log = tokio::task::spawn_blocking(move || two.stop())
        .await
        .expect("stop");
    let reason = expect_event!(a, Event::Quit { nick, reason } if nick == "bob" => reason).await;
    // Its own goodbye, not the reaping of a dead node.
    assert!(!reason.contains("node 2 is gone"), "{reason}; {log:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_deleted_under_the_nodes_refuses_sends_then_is_made_again() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let one = node(&nats, 1);
    let mut a = JsonClient::login(one.addr, "alice").await;
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    js.delete_stream("NATTER").await.expect("delete the stream");
    // Nothing can be stored, so nothing is shown: the sender is told.
    a.send(say("into the void")).await;
    let got = a
        .expect_with("a message or an error", |ev| match ev {
            Event::Message { text, .. } => Some(Err(text.into_owned())),
            Event::Error { code, .. } => Some(Ok(code.into_owned())),
            _ => None,
        })
        .await;
    assert_eq!(got, Ok("store_failed".to_string()));
    // The node makes the stream again by itself (nobody else is there to),
    // and chat goes on, across nodes too.
    let start = Instant::now();
    let mut n = 0;
    let text = loop {
        n += 1;
        assert!(
            start.elapsed() < PATIENCE * 2,
            "the stream was not made again"
        );
        a.send(say(&format!("again {n}"))).await;
        let got = a
            .expect_with("a message or an error", |ev| match ev {
                Event::Message { text, .. } => Some(Some(text.into_owned())),
                Event::Error { .. } => Some(None),
                _ => None,
            })
            .await;
        if let Some(t) = got {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // retry pacing, not synchronisation
    };
    eprintln!("the stream was back after {:?}", start.elapsed());
    assert!(text.starts_with("again "), "{text}");
    let two = node(&nats, 2);
    let mut b = JsonClient::login(two.addr, "bob").await;
    sees_join(&mut a, "bob").await;
    a.send(say("to bob")).await;
    assert_eq!(next_message(&mut b).await.text, "to bob");
    assert_eq!(next_message(&mut a).await.text, "to bob");
}

/// A nats-server with JetStream that takes only user `natter`, password
/// `s3cret` (killed when dropped), or `None` when there is none.
fn nats_with_password() -> Option<NatsServer> {
    let Some(bin) = find_tool("nats-server") else {
        missing("nats-server is not installed: cluster tests not run");
        return None;
    };
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let child = Command::new(&bin)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
        .args(["--user", "natter", "--pass", "s3cret", "-sd"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nats-server");
    // Killed when the test ends, even by a failed assertion.
    let nats = NatsServer {
        child: Some(child),
        port,
        dir,
        bin,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_until("nats-server accepts connections", || {
        TcpStream::connect(addr).is_ok()
    });
    Some(nats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_nats_password_joins_the_cluster_and_chat_works() {
    let Some(nats) = nats_with_password() else {
        return;
    };
    let url = format!("nats://natter:s3cret@127.0.0.1:{}", nats.port);
    let start = |n: &str| {
        let args = ["--cluster", &url, "--node", n, "--cluster-timeout", "2s"];
        try_serve(Path::new("off"), &args, Privilege::Plain)
            .unwrap_or_else(|(status, log)| panic!("node {n} did not start ({status}): {log:#?}"))
    };
    let (one, two) = (start("1"), start("2"));
    let mut a = JsonClient::login(one.addr, "alice").await;
    let mut b = JsonClient::login(two.addr, "bob").await;
    sees_join(&mut a, "bob").await;
    a.send(say("with a password")).await;
    assert_eq!(next_message(&mut b).await.text, "with a password");
    // And the password is not in the log.
    assert!(
        !one.logged("s3cret"),
        "{:#?}",
        one.log.lock().map(|l| l.clone())
    );
}

#[test]
fn a_wrong_nats_password_is_a_clear_error_and_a_non_zero_exit() {
    let Some(nats) = nats_with_password() else {
        return;
    };
    let port = nats.port;
    let wrong = format!("nats://natter:wrong@127.0.0.1:{port}");
    let log = refused(
        &["--cluster", &wrong, "--node", "1"],
        "natter started with a wrong NATS password",
    );
    assert!(log.contains("cannot connect to NATS"), "{log}");
    assert!(log.to_lowercase().contains("authorization"), "{log}");
    assert!(!log.contains("wrong"), "the password is in the log: {log}");
}

/// `natter chat` with two nodes' addresses: its node killed with SIGKILL,
/// it goes to the other at once, gets its nick back once the cluster has
/// reaped the dead node's claim, rejoins its rooms and chats.
#[test]
fn natter_chat_fails_over_to_the_next_node_keeping_its_nick_and_rooms() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut one = node(&nats, 1);
    let two = node(&nats, 2);
    let (a1, a2) = (one.addr.to_string(), two.addr.to_string());
    let mut bob = rt.block_on(JsonClient::login(two.addr, "bob"));
    rt.block_on(bob.send(Cmd::Join {
        room: "rust".into(),
        key: None,
        switch: false,
    }));
    rt.block_on(expect_event!(bob, Event::Joined { room, .. } if room == "rust"));

    let both = format!("{a1},{a2}");
    let mut chat = client_support::Chat::spawn_with(
        &[
            &both,
            "--nick",
            "alice",
            "--join",
            "rust",
            "--reconnect-min",
            "50ms",
            "--reconnect-max",
            "500ms",
        ],
        &[("NATTER_DB", "off")],
    );
    chat.expect(&format!("connected to {a1} (JSON)"));
    chat.expect("you are now known as alice");
    chat.expect("* alice joined #rust");
    rt.block_on(sees_join(&mut bob, "alice"));
    chat.send("before");
    let line = rt.block_on(next_message(&mut bob));
    assert_eq!(
        (line.from.as_str(), line.text.as_str()),
        ("alice", "before")
    );

    one.kill9();
    chat.expect(&format!("! {a1}: "));
    chat.expect(&format!("connected to {a2} (JSON)"));
    // The same nick, not alice_: taken until node 1 is reaped, then hers.
    let known = chat.expect("you are now known as");
    assert!(known.contains("known as alice ("), "{known}");
    chat.expect("* alice joined #rust");
    // bob saw the dead node's alice quit, then the new one come.
    let reason =
        rt.block_on(expect_event!(bob, Event::Quit { nick, reason } if nick == "alice" => reason));
    assert!(reason.contains("node 1"), "{reason}");
    rt.block_on(sees_join(&mut bob, "alice"));

    chat.send("after");
    let line = rt.block_on(next_message(&mut bob));
    assert_eq!((line.from.as_str(), line.text.as_str()), ("alice", "after"));
    rt.block_on(bob.send(say("welcome back")));
    chat.expect("<bob> welcome back");
    chat.send("/quit");
    assert!(chat.wait().success());
    assert!(
        chat.seen
            .iter()
            .any(|l| l.contains(&format!("; trying {a2}"))),
        "{:#?}",
        chat.seen
    );
}

/// Waits until `node` has logged a line with `needle` (its log is read
/// by a thread of its own, so it may come a little after the fact).
async fn logs(node: &Natter, needle: &str) {
    let start = Instant::now();
    while !node.logged(needle) {
        assert!(
            start.elapsed() < PATIENCE,
            "no {needle:?} in the log: {:#?}",
            node.log.lock().map(|l| l.clone()).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A node cut off from NATS for `cluster_fence` tells its users and lets
/// them go (they would reconnect elsewhere), refuses logins while cut off,
/// and takes people again once NATS is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_nats_fences_itself_and_rejoins_when_it_returns() {
    let Some(mut nats) = NatsServer::start() else {
        return;
    };
    let one = node_with(&nats, 1, &["--cluster-fence", "1s"]);
    let two = node(&nats, 2);
    let mut a = JsonClient::login(one.addr, "alice").await;
    let mut b = JsonClient::login(two.addr, "bob").await;
    sees_join(&mut a, "bob").await;

    nats.kill();
    let reason = expect_event!(a, Event::Shutdown { reason } => reason).await;
    assert!(reason.contains("cut off from the cluster"), "{reason}");
    // And the connection ends.
    while let Some(ev) = a.next().await {
        assert!(
            !matches!(ev, Event::Message { .. }),
            "a fenced node showed {ev:?}"
        );
    }
    logs(&one, "fenced: cut off from the cluster").await;
    // Nobody gets in while it is cut off.
    let mut c = JsonClient::connect(one.addr).await;
    c.send(Cmd::Login {
        nick: "carol".into(),
    })
    .await;
    assert_eq!(c.expect_error().await, "store_failed");

    nats.run();
    // Once its heartbeat gets through it takes people again: alice comes
    // back under her nick (her claim was released once NATS returned).
    let mut n = 0;
    let mut a = loop {
        n += 1;
        assert!(n < 100, "the node never took people again");
        let mut a = JsonClient::connect(one.addr).await;
        a.send(Cmd::Login {
            nick: "alice".into(),
        })
        .await;
        if registered(&mut a).await {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // retry pacing, not synchronisation
    };
    logs(&one, "back in the cluster").await;
    // bob, on the other node, saw her go and come back, and they chat.
    expect_event!(b, Event::Quit { nick, .. } if nick == "alice").await;
    sees_join(&mut b, "alice").await;
    a.send(say("back")).await;
    let line = next_message(&mut b).await;
    assert_eq!((line.from.as_str(), line.text.as_str()), ("alice", "back"));
    assert_eq!(next_message(&mut a).await.text, "back", "her own echo");
    b.send(say("hi again")).await;
    assert_eq!(next_message(&mut a).await.text, "hi again");
}

/// A node started after lines were said has them in its history: read
/// from the stream at start (`cluster_history_backfill`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_later_has_the_history_said_before_it_started() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let one = node(&nats, 1);
    let mut a = JsonClient::login(one.addr, "alice").await;
    for i in 0..3 {
        a.send(say(&format!("early {i}"))).await;
        next_message(&mut a).await;
    }
    let two = node(&nats, 2);
    let mut c = JsonClient::login(two.addr, "carol").await;
    // Read before the node listens: there at once.
    let texts = history_texts(&mut c).await;
    assert_eq!(texts, ["early 0", "early 1", "early 2"]);
    // And what comes next follows it.
    a.send(say("later")).await;
    assert_eq!(next_message(&mut c).await.text, "later");
}

/// A node started later learns the modes, ban list, key and operators
/// of the rooms on the others (in the snapshot), and enforces them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_later_knows_the_rooms_modes_bans_and_operators() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let one = node(&nats, 1);
    let mut a = JsonClient::login(one.addr, "alice").await;
    a.send(Cmd::Join {
        room: "ops".into(),
        key: None,
        switch: true,
    })
    .await;
    expect_event!(a, Event::Presence { room, .. } if room == "ops").await;
    a.send(Cmd::Mode {
        room: None,
        changes: Some("+mb dave!*@*".into()),
    })
    .await;
    let changes = expect_event!(a, Event::Mode { changes, .. } => changes).await;
    assert_eq!(changes, "+m +b dave!*@*");

    let two = node(&nats, 2);
    let mut c = JsonClient::login(two.addr, "carol").await;
    c.send(Cmd::Join {
        room: "ops".into(),
        key: None,
        switch: true,
    })
    .await;
    let ops = expect_event!(c, Event::Presence { room, ops, .. } if room == "ops" => ops).await;
    assert_eq!(
        ops.unwrap_or_default(),
        ["alice"],
        "node 2 knows the operator"
    );
    // +m: carol (not voiced) may not speak, refused by node 2 itself.
    c.send(say("may I?")).await;
    c.expect_error().await;
    // +b dave!*@*: dave may not come in.
    let mut d = JsonClient::login(two.addr, "dave").await;
    d.send(Cmd::Join {
        room: "ops".into(),
        key: None,
        switch: true,
    })
    .await;
    assert_eq!(d.expect_error().await, "banned");
}

const PW: &str = "hunter2hunter2";

/// Whether a login without password to `nick` on `addr` is refused as a
/// registered nick (`Some(true)`), accepted (`Some(false)`: the node does
/// not know the account), or the nick is still held (`None`).
async fn nick_protected(addr: SocketAddr, nick: &str) -> Option<bool> {
    let mut c = JsonClient::connect(addr).await;
    c.send(serde_json::json!({"cmd": "login", "nick": nick}))
        .await;
    let answer = c
        .expect_with("registered or an error", |ev| match ev {
            Event::Registered { .. } => Some(None),
            Event::Error { code, .. } => Some(Some(code.into_owned())),
            _ => None,
        })
        .await;
    match answer.as_deref() {
        None => {
            c.send(Cmd::Quit { reason: None }).await;
            let _ = c.c.until_eof().await;
            Some(false)
        }
        Some("nick_registered") => Some(true),
        Some("nick_in_use") => None,
        Some(other) => panic!("login to {nick}: {other}"),
    }
}

/// A JSON user on `addr` who registered `nick` as an account.
async fn account_holder(addr: SocketAddr, nick: &str) -> JsonClient {
    let mut a = JsonClient::login(addr, nick).await;
    a.send(serde_json::json!({"cmd": "register", "password": PW}))
        .await;
    let created = expect_event!(a, Event::LoggedIn { created, .. } => created).await;
    assert!(created, "{nick} registered");
    a
}

async fn quit(mut c: JsonClient) {
    c.send(Cmd::Quit { reason: None }).await;
    let _ = c.c.until_eof().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_registered_on_one_node_is_the_same_account_on_every_node() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let grace = ["--nick-grace", "0s"];
    let (one, two) = (node_with(&nats, 1, &grace), node_with(&nats, 2, &grace));
    quit(account_holder(one.addr, "alice").await).await;
    // Node 2 learns the account: the nick needs its password there too
    // (retried while node 1's claim of the nick is being released).
    let mut tries = 0;
    loop {
        match nick_protected(two.addr, "alice").await {
            Some(true) => break,
            Some(false) => panic!("node 2 let alice be taken without her password"),
            None => {}
        }
        tries += 1;
        assert!(tries < 100, "alice's nick was never released");
        tokio::time::sleep(Duration::from_millis(50)).await; // retry pacing, not synchronisation
    }
    // She logs in on node 2 with the password set on node 1.
    let mut b = JsonClient::connect(two.addr).await;
    b.send(serde_json::json!({"cmd": "login", "nick": "alice", "password": "wrong-one"}))
        .await;
    assert_eq!(b.expect_error().await, "auth_failed");
    b.send(serde_json::json!({"cmd": "login", "nick": "alice", "password": PW}))
        .await;
    let created = expect_event!(b, Event::LoggedIn { created, .. } => created).await;
    assert!(!created, "logged in to the account made on node 1");
    expect_event!(b, Event::Registered { .. }).await;
    // The same name registered on node 1 and then asked for on node 2,
    // straight after: refused there, by the nick's protection if node 2
    // has heard of the account already, else by the cluster's store.
    quit(account_holder(one.addr, "dave").await).await;
    let mut tries = 0;
    loop {
        let mut d = JsonClient::connect(two.addr).await;
        d.send(Cmd::Login {
            nick: "dave".into(),
        })
        .await;
        let answer = d
            .expect_with("registered or an error", |ev| match ev {
                Event::Registered { .. } => Some(None),
                Event::Error { code, .. } => Some(Some(code.into_owned())),
                _ => None,
            })
            .await;
        match answer.as_deref() {
            None => {
                d.send(serde_json::json!({"cmd": "register", "password": "another-password"}))
                    .await;
                assert_eq!(d.expect_error().await, "account_exists");
                break;
            }
            Some("nick_registered") => break,
            Some("nick_in_use") => {}
            Some(other) => panic!("login to dave: {other}"),
        }
        tries += 1;
        assert!(tries < 100, "dave's nick was never released");
        tokio::time::sleep(Duration::from_millis(50)).await; // retry pacing, not synchronisation
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_to_register_one_account_make_exactly_one() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let cfg = |n: u16| natter::config::Config {
        cluster: nats.url(),
        node: n,
        cluster_heartbeat: Duration::from_millis(500),
        cluster_node_ttl: Duration::from_secs(3),
        cluster_timeout: Duration::from_secs(2),
        ..config()
    };
    let one = natter::cluster::nats::Nats::connect(&cfg(1))
        .await
        .expect("node 1");
    let two = natter::cluster::nats::Nats::connect(&cfg(2))
        .await
        .expect("node 2");
    let (a1, a2) = (one.accounts(), two.accounts());
    // One password hash for all rounds (hashing is slow); names differ.
    let base = natter::store::accounts::hash("racer", PW).expect("hash");
    for round in 0..20 {
        let mut rec = base.clone();
        rec.name = format!("Racer{round}");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let race = |accounts: std::sync::Arc<dyn natter::hub::Accounts>| {
            let (rec, barrier) = (rec.clone(), barrier.clone());
            tokio::task::spawn_blocking(move || {
                barrier.wait();
                accounts.create(&rec).expect("the cluster answers")
            })
        };
        let (x, y) = tokio::join!(race(a1.clone()), race(a2.clone()));
        let (x, y) = (x.expect("task"), y.expect("task"));
        assert!(x ^ y, "round {round}: both or neither made it: {x} {y}");
        // Either node reads it, by any case of its name.
        let folded = format!("racer{round}");
        let a2 = a2.clone();
        let got = tokio::task::spawn_blocking(move || a2.get(&folded))
            .await
            .expect("task")
            .expect("read");
        assert_eq!(got.map(|a| a.name), Some(format!("Racer{round}")));
    }
}

/// Polls `c`'s node until it lists no room named `room`.
async fn room_gone(c: &mut JsonClient, room: &str) {
    let mut polls = 0;
    loop {
        c.send(Cmd::Rooms { after: None }).await;
        let v = c.expect("rooms").await;
        let listed = v["rooms"].as_array().is_some_and(|r| {
            r.iter()
                .any(|e| e["room"].as_str().is_some_and(|n| n.ends_with(room)))
        });
        if !listed {
            return;
        }
        polls += 1;
        assert!(polls < 200, "{room} is still there: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await; // polling pace, not synchronisation
    }
}

/// `c` joins `room`: its topic when it is let in, `Err(code)` when not.
async fn join_topic(c: &mut JsonClient, room: &str) -> Result<Option<String>, String> {
    c.send(Cmd::Join {
        room: room.to_string().into(),
        key: None,
        switch: true,
    })
    .await;
    c.expect_with("a topic or an error", |ev| match ev {
        Event::Topic {
            topic,
            changed: false,
            ..
        } => Some(Ok(topic.map(|t| t.into_owned()))),
        Event::Error { code, .. } => Some(Err(code.into_owned())),
        _ => None,
    })
    .await
}

/// alice, logged in to her account on `addr`, in `club`, which she has
/// just registered.
async fn founder_of_club(addr: SocketAddr) -> JsonClient {
    let mut a = account_holder(addr, "alice").await;
    a.send(Cmd::Join {
        room: "club".into(),
        key: None,
        switch: true,
    })
    .await;
    expect_event!(a, Event::Presence { room, .. } if room == "club").await;
    a.send(serde_json::json!({"cmd": "register_room"})).await;
    expect_event!(a, Event::RoomRegistered { .. }).await;
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_rooms_topic_and_bans_are_kept_by_the_cluster_through_restarts() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (one, two) = (node(&nats, 1), node(&nats, 2));
    let mut a = founder_of_club(one.addr).await;
    a.send(Cmd::Topic {
        room: None,
        topic: Some("kept".into()),
    })
    .await;
    expect_event!(a, Event::Topic { changed: true, .. }).await;
    a.send(Cmd::Mode {
        room: None,
        changes: Some("+b carol!*@*".into()),
    })
    .await;
    expect_event!(a, Event::Mode { changes, .. } if changes.contains("+b")).await;
    quit(a).await;
    // The room is empty everywhere: node 2 has only the record of it.
    let mut b = JsonClient::login(two.addr, "bob").await;
    room_gone(&mut b, "club").await;
    let mut c = JsonClient::login(two.addr, "carol").await;
    assert_eq!(join_topic(&mut c, "club").await, Err("banned".into()));
    assert_eq!(join_topic(&mut b, "club").await, Ok(Some("kept".into())));
    quit(b).await;
    quit(c).await;

    // Both nodes stop; two new ones find the room in the cluster.
    one.stop();
    two.stop();
    let (three, four) = (node(&nats, 3), node(&nats, 4));
    let mut c = JsonClient::login(four.addr, "carol").await;
    assert_eq!(join_topic(&mut c, "club").await, Err("banned".into()));
    let mut b = JsonClient::login(three.addr, "bob").await;
    assert_eq!(join_topic(&mut b, "club").await, Ok(Some("kept".into())));
    // And alice's account with it.
    let mut a = JsonClient::connect(four.addr).await;
    a.send(serde_json::json!({"cmd": "login", "nick": "alice", "password": PW}))
        .await;
    let created = expect_event!(a, Event::LoggedIn { created, .. } => created).await;
    assert!(!created);
}

/// Polls `c`'s node until it lists `room` with `members` members.
async fn room_listed(c: &mut JsonClient, room: &str, members: u64) {
    let mut polls = 0;
    loop {
        c.send(Cmd::Rooms { after: None }).await;
        let v = c.expect("rooms").await;
        let listed = v["rooms"].as_array().is_some_and(|r| {
            r.iter().any(|e| {
                e["room"].as_str().is_some_and(|n| n.ends_with(room)) && e["members"] == members
            })
        });
        if listed {
            return;
        }
        polls += 1;
        assert!(polls < 200, "{room} with {members} never listed: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await; // polling pace, not synchronisation
    }
}

/// The topic of the next topic change `c` sees.
async fn next_topic(c: &mut JsonClient) -> Option<String> {
    expect_event!(c, Event::Topic { topic, changed: true, .. } => topic.map(|t| t.into_owned()))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_changing_a_registered_room_at_once_keep_what_came_last() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (one, two) = (node(&nats, 1), node(&nats, 2));
    let mut a = founder_of_club(one.addr).await;
    let mut b = JsonClient::login(two.addr, "bob").await;
    room_listed(&mut b, "club", 1).await;
    b.send(Cmd::Join {
        room: "club".into(),
        key: None,
        switch: true,
    })
    .await;
    sees_join(&mut a, "bob").await;
    a.send(Cmd::Mode {
        room: None,
        changes: Some("+o bob".into()),
    })
    .await;
    expect_event!(b, Event::Mode { changes, .. } if changes.contains("+o")).await;
    // Both operators change the topic at the same moment, from two nodes.
    let mut last = None;
    for round in 0..5 {
        let (ta, tb) = (format!("a{round}"), format!("b{round}"));
        tokio::join!(
            a.send(Cmd::Topic {
                room: None,
                topic: Some(ta.as_str().into()),
            }),
            b.send(Cmd::Topic {
                room: None,
                topic: Some(tb.as_str().into()),
            })
        );
        let seen_a = [next_topic(&mut a).await, next_topic(&mut a).await];
        let seen_b = [next_topic(&mut b).await, next_topic(&mut b).await];
        assert_eq!(seen_a, seen_b, "round {round}: one order for both nodes");
        last = seen_a[1].clone();
    }
    quit(a).await;
    quit(b).await;
    one.stop();
    two.stop();
    // The cluster kept the topic that came last, whichever node wrote last.
    let three = node(&nats, 3);
    let mut c = JsonClient::login(three.addr, "carol").await;
    assert_eq!(join_topic(&mut c, "club").await, Ok(last));
}

/// What `c` is told after asking to register its current room: `Ok` with
/// the founder, or `Err(code)`.
async fn registration(c: &mut JsonClient) -> Result<String, String> {
    c.expect_with("registered or an error", |ev| match ev {
        Event::RoomRegistered { founder, .. } => Some(Ok(founder.into_owned())),
        Event::Error { code, .. } => Some(Err(code.into_owned())),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_founders_registering_one_room_at_once_on_two_nodes_make_exactly_one() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (one, two) = (node(&nats, 1), node(&nats, 2));
    let mut a = account_holder(one.addr, "alice").await;
    let mut b = account_holder(two.addr, "bob").await;
    for round in 0..5 {
        let room = format!("club{round}");
        // Both in the room and both its operators.
        a.send(Cmd::Join {
            room: room.as_str().into(),
            key: None,
            switch: true,
        })
        .await;
        expect_event!(a, Event::Presence { room: r, .. } if r == room).await;
        b.send(Cmd::Join {
            room: room.as_str().into(),
            key: None,
            switch: true,
        })
        .await;
        expect_event!(b, Event::Presence { room: r, .. } if r == room).await;
        sees_join(&mut a, "bob").await;
        a.send(Cmd::Mode {
            room: None,
            changes: Some("+o bob".into()),
        })
        .await;
        expect_event!(b, Event::Mode { changes, .. } if changes.contains("+o")).await;
        // Both founders ask in the same instant, on two nodes.
        let ask = serde_json::json!({"cmd": "register_room"});
        tokio::join!(a.send(ask.clone()), b.send(ask));
        let (x, y) = (registration(&mut a).await, registration(&mut b).await);
        match (&x, &y) {
            (Ok(f), Err(code)) | (Err(code), Ok(f)) => {
                assert_eq!(code, "room_registered", "round {round}: {x:?} {y:?}");
                assert!(f == "alice" || f == "bob", "round {round}: {f}");
            }
            _ => panic!("round {round}: not exactly one founder: {x:?} {y:?}"),
        }
    }
    quit(a).await;
    quit(b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_to_register_one_room_in_the_store_make_exactly_one() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let cfg = |n: u16| natter::config::Config {
        cluster: nats.url(),
        node: n,
        cluster_heartbeat: Duration::from_millis(500),
        cluster_node_ttl: Duration::from_secs(3),
        cluster_timeout: Duration::from_secs(2),
        ..config()
    };
    let one = natter::cluster::nats::Nats::connect(&cfg(1))
        .await
        .expect("node 1");
    let two = natter::cluster::nats::Nats::connect(&cfg(2))
        .await
        .expect("node 2");
    let (a1, a2) = (one.accounts(), two.accounts());
    let record = |room: &str, founder: &str| -> natter::hub::RoomRecord {
        serde_json::from_value(serde_json::json!({
            "key": room, "name": room, "founder": founder,
            "registered_ms": 1, "created_ms": 1, "topic": null,
            "modes": {"invite_only": false, "moderated": false, "no_external": true,
                      "topic_ops": true, "private": false, "secret": false,
                      "key": null, "limit": null},
            "bans": [],
        }))
        .expect("a room record")
    };
    for round in 0..20 {
        let room = format!("race{round}");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let race = |accounts: std::sync::Arc<dyn natter::hub::Accounts>, founder: &str| {
            let (rec, barrier) = (record(&room, founder), barrier.clone());
            tokio::task::spawn_blocking(move || {
                barrier.wait();
                accounts.register_room(&rec).expect("the cluster answers")
            })
        };
        let (x, y) = tokio::join!(race(a1.clone(), "alice"), race(a2.clone(), "bob"));
        let (x, y) = (x.expect("task"), y.expect("task"));
        assert!(
            x ^ y,
            "round {round}: both or neither registered it: {x} {y}"
        );
    }
}

/// An IRC session on `addr` under `nick`, logged in to `account` with
/// SASL PLAIN, with `caps`, read up to the end of its welcome.
async fn irc_session(addr: SocketAddr, nick: &str, account: &str, caps: &str) -> IrcClient {
    let mut i = IrcClient::register_sasl(addr, nick, account, PW, caps).await;
    i.numeric("376").await;
    i
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_markers_and_remembered_rooms_follow_an_account_to_every_node() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (one, two) = (node(&nats, 1), node(&nats, 2));
    let _account = account_holder(one.addr, "alice").await;
    let caps = "draft/read-marker";
    let mut first = irc_session(one.addr, "alice1", "alice", caps).await;
    let mut second = irc_session(two.addr, "alice2", "alice", caps).await;
    // Kept for the account on node one: the room, then the marker.
    first.join("#books").await;
    let ts = "2024-05-06T07:08:09.010Z";
    first.send(&format!("MARKREAD #books timestamp={ts}")).await;
    first.expect("MARKREAD").await;
    // The account's session on node two is told the marker.
    let line = second.expect("MARKREAD").await;
    assert!(
        line.ends_with(&format!("MARKREAD #books timestamp={ts}")),
        "{line}"
    );
    // An older one from node two changes nothing: the kept one comes back.
    second
        .send("MARKREAD #books timestamp=2020-01-01T00:00:00.000Z")
        .await;
    let line = second.expect("MARKREAD").await;
    assert!(line.ends_with(&format!("timestamp={ts}")), "{line}");
    // The room was kept before the marker (one bucket, written and read in
    // order): a new session on node two is put back in it, with the marker.
    let mut third = irc_session(two.addr, "alice3", "alice", caps).await;
    let (mut joined, mut marker) = (false, None);
    loop {
        let l = third.line().await.expect("a line");
        if l.contains(" 366 ") {
            break;
        }
        joined |= l.contains(" JOIN ") && l.contains("#books");
        if l.contains("MARKREAD") {
            marker = Some(l);
        }
    }
    assert!(joined, "put back in #books on node two");
    let marker = marker.expect("MARKREAD before 366");
    assert!(
        marker.ends_with(&format!("MARKREAD #books timestamp={ts}")),
        "{marker}"
    );
}

/// Joins `room`, staying in the others (it becomes the current one).
fn join_cmd(room: &str) -> Cmd<'static> {
    Cmd::Join {
        room: room.to_string().into(),
        key: None,
        switch: false,
    }
}

/// A node reads the lines of the rooms that have members on it, and no
/// others: a busy room with nobody on node 2 costs node 2 nothing. When
/// someone there joins it, the lines said before are their history and
/// the next ones reach them live, in the room's order, with the ids the
/// other node's members see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reads_only_the_rooms_with_members_there_and_a_late_joiner_gets_history_then_live() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let one = node(&nats, 1);
    let two = node(&nats, 2);
    let mut a = JsonClient::login(one.addr, "alice").await;
    let mut b = JsonClient::login(one.addr, "bob").await;
    let mut c = JsonClient::login(two.addr, "carol").await;
    sees_join(&mut a, "carol").await;
    for j in [&mut a, &mut b] {
        j.send(join_cmd("busy")).await;
        expect_event!(j, Event::Presence { room, .. } if room == "busy").await;
    }
    let before = metric(two.addr, "natter_cluster_lines_read_total").await;
    const BUSY: usize = 50;
    for i in 0..BUSY {
        a.send(say(&format!("busy {i}"))).await;
    }
    for i in 0..BUSY {
        assert_eq!(next_message(&mut b).await.text, format!("busy {i}"));
    }
    // A line in the lobby, where carol is: once node 2 has it, it has
    // read past every busy line before it.
    a.send(Cmd::Chat {
        msg: "in the lobby".into(),
        room: Some("lobby".into()),
        action: false,
    })
    .await;
    assert_eq!(next_message(&mut c).await.text, "in the lobby");
    let read = metric(two.addr, "natter_cluster_lines_read_total").await - before;
    assert_eq!(read, 1.0, "node 2 read lines of a room nobody there is in");

    // carol joins the busy room: what was said is its history.
    c.send(join_cmd("busy")).await;
    expect_event!(c, Event::Presence { room, .. } if room == "busy").await;
    sees_join(&mut b, "carol").await;
    let texts = history_texts(&mut c).await;
    let last10: Vec<String> = (BUSY - 10..BUSY).map(|i| format!("busy {i}")).collect();
    assert_eq!(texts, last10);
    // And what is said next reaches her live, in order, as bob sees it.
    for i in 0..20 {
        a.send(say(&format!("after {i}"))).await;
    }
    for i in 0..20 {
        let (at_b, at_c) = (next_message(&mut b).await, next_message(&mut c).await);
        assert_eq!(at_c.text, format!("after {i}"));
        assert_eq!(at_b, at_c, "bob and carol saw the line differently");
    }
    // Nobody left in the room on node 2: its lines stop there again.
    c.send(Cmd::Part {
        room: Some("busy".into()),
        reason: None,
    })
    .await;
    sees_part(&mut b, "carol").await;
    let before = metric(two.addr, "natter_cluster_lines_read_total").await;
    a.send(say("unread")).await;
    assert_eq!(next_message(&mut b).await.text, "unread");
    a.send(Cmd::Chat {
        msg: "lobby again".into(),
        room: Some("lobby".into()),
        action: false,
    })
    .await;
    assert_eq!(next_message(&mut c).await.text, "lobby again");
    let read = metric(two.addr, "natter_cluster_lines_read_total").await - before;
    assert_eq!(read, 1.0, "node 2 still reads the room carol left");
}

/// Waits until `j` has seen `nick` leave its room.
async fn sees_part(j: &mut JsonClient, nick: &str) {
    expect_event!(j, Event::Left { nick: n, .. } if n == nick).await;
}

/// A line lost on its way with no line after it in its room shows no gap:
/// the node asks for the newest line of the rooms it follows at each
/// heartbeat, so the room's members there still get it, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_line_lost_on_the_way_still_arrives_once() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let one = node(&nats, 1);
    let two = node_with(&nats, 2, &["--cluster-drop-live", "2"]);
    let mut a = JsonClient::login(one.addr, "alice").await;
    let mut c = JsonClient::login(two.addr, "carol").await;
    sees_join(&mut a, "carol").await;
    // Node two drops every second line it receives live: "second", and
    // nothing is said after it.
    a.send(say("first")).await;
    a.send(say("second")).await;
    assert_eq!(next_message(&mut c).await.text, "first");
    assert_eq!(next_message(&mut c).await.text, "second");
    // Once: a line said next comes next ("third" is received, "fourth"
    // dropped and filled).
    a.send(say("third")).await;
    a.send(say("fourth")).await;
    assert_eq!(next_message(&mut c).await.text, "third");
    assert_eq!(next_message(&mut c).await.text, "fourth");
}
/// Lines a node never got live (node 2 drops every third room line it
/// receives, as if lost on the way: `--cluster-drop-live 3`) are found
/// missing when the room's next line comes, by its `Nats-Last-Sequence`,
/// and read from the stream: its members get every line once, in order,
/// with the ids and places the other node's members see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_lost_on_the_way_are_filled_from_the_stream_in_order_and_once() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let one = node(&nats, 1);
    let two = node_with(&nats, 2, &["--cluster-drop-live", "3"]);
    let mut a = JsonClient::login(one.addr, "alice").await;
    let mut c = JsonClient::login(two.addr, "carol").await;
    sees_join(&mut a, "carol").await;
    let gaps = metric(two.addr, "natter_cluster_gaps_filled_total").await;
    const LINES: usize = 30;
    for i in 0..LINES {
        a.send(say(&format!("line {i}"))).await;
    }
    // The last line dropped is noticed at the next one.
    a.send(say("end")).await;
    let mut at_a = Vec::new();
    let mut at_c = Vec::new();
    for _ in 0..=LINES {
        at_a.push(next_message(&mut a).await);
        at_c.push(next_message(&mut c).await);
    }
    let texts: Vec<&str> = at_c.iter().map(|l| l.text.as_str()).collect();
    let mut sent: Vec<String> = (0..LINES).map(|i| format!("line {i}")).collect();
    sent.push("end".into());
    assert_eq!(texts, sent, "carol's lines");
    assert_eq!(at_a, at_c, "alice and carol saw different lines");
    // Once: the next line is the next one said.
    a.send(say("last")).await;
    assert_eq!(next_message(&mut c).await.text, "last");
    assert_eq!(next_message(&mut a).await.text, "last");
    let filled = metric(two.addr, "natter_cluster_gaps_filled_total").await - gaps;
    // Lines dropped close together wait for one fill (`cluster_gap_wait`).
    assert!(filled >= 1.0, "no gap filled, 10 lines dropped");
}

/// Waits until `j` has seen `nick` join `room`.
async fn sees_join_of(j: &mut JsonClient, room: &str, nick: &str) {
    expect_event!(j, Event::Joined { room: r, nick: n, .. } if r == room && n == nick).await;
}

/// The next line `j` gets: its room, text and id.
async fn next_line(j: &mut JsonClient) -> (String, String, String) {
    expect_event!(j, Event::Message { id, room, text, .. } => (room.into_owned(), text.into_owned(), id.into_owned())).await
}

/// Many rooms' lines lost on the way at once (node 2 drops every second
/// room line it receives live, over 25 rooms) are read from the stream by
/// a few consumers, not one per room (`cluster_gap_coalesce`, 4 by
/// default): 25 gaps and 12 lost tails. Carol still gets every line of
/// every room once, in order, with the ids alice sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_gaps_at_once_are_filled_by_a_few_consumers_every_line_once_in_order() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    // Each person joins 25 rooms at once (`rooms_per_minute` is 10).
    let one = node_with(&nats, 1, &["--rooms-per-minute", "100"]);
    let two = node_with(
        &nats,
        2,
        &[
            "--rooms-per-minute",
            "100",
            "--cluster-drop-live",
            "2",
            "--cluster-heartbeat",
            "200ms",
        ],
    );
    let mut a = JsonClient::login(one.addr, "alice").await;
    let mut c = JsonClient::login(two.addr, "carol").await;
    // An odd number of rooms: each loses a line that a later one shows.
    const ROOMS: usize = 25;
    const ROUNDS: usize = 3;
    let rooms: Vec<String> = (0..ROOMS).map(|i| format!("room{i}")).collect();
    for r in &rooms {
        for (j, nick) in [(&mut c, "carol"), (&mut a, "alice")] {
            j.send(Cmd::Join {
                room: r.clone().into(),
                key: None,
                switch: false,
            })
            .await;
            sees_join_of(j, r, nick).await;
        }
        sees_join_of(&mut c, r, "alice").await;
    }
    let consumers = metric(two.addr, "natter_cluster_fill_consumers_total").await;
    for round in 0..ROUNDS {
        for r in &rooms {
            a.send(Cmd::Chat {
                msg: format!("{r} {round}").into(),
                room: Some(r.clone().into()),
                action: false,
            })
            .await;
        }
    }
    let (mut at_a, mut at_c) = (HashMap::new(), HashMap::new());
    for _ in 0..ROOMS * ROUNDS {
        let (room, text, id) = next_line(&mut a).await;
        at_a.entry(room).or_insert_with(Vec::new).push((text, id));
        let (room, text, id) = next_line(&mut c).await;
        at_c.entry(room).or_insert_with(Vec::new).push((text, id));
    }
    for r in &rooms {
        let texts: Vec<&str> = at_c[r].iter().map(|(t, _)| t.as_str()).collect();
        let said: Vec<String> = (0..ROUNDS).map(|i| format!("{r} {i}")).collect();
        assert_eq!(texts, said, "carol's lines in {r}");
        assert_eq!(at_a[r], at_c[r], "alice and carol saw {r} differently");
    }
    // Once: the next line is the next one said (whether received or filled).
    a.send(say("last")).await;
    assert_eq!(next_line(&mut c).await.1, "last");
    let made = metric(two.addr, "natter_cluster_fill_consumers_total").await - consumers;
    assert!(
        made <= 6.0,
        "{made} consumers made to fill 25 gaps and 12 lost tails"
    );
    assert!(
        metric(two.addr, "natter_cluster_gaps_filled_total").await >= 25.0,
        "the gaps were not found"
    );
}

/// With nothing lost, a node fills no gap: nats-server republishes facts
/// stored at the same moment by several nodes in either order (each
/// publisher's connection republishes its own), and a node must wait for
/// the one before rather than read it from the stream; a line handed on
/// while the next tail check asks for the room's newest is no lost tail.
/// Three nodes log people in and talk in one room at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nothing_lost_no_gap_is_filled_while_three_nodes_talk_at_once() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let nodes: Vec<Natter> = (1..=3)
        .map(|n| node_with(&nats, n, &["--cluster-heartbeat", "100ms"]))
        .collect();
    const PER_NODE: usize = 3;
    const EACH: usize = 20;
    let mut watcher = JsonClient::login(nodes[0].addr, "watcher").await;
    // Logins from every node at once (facts on one subject, three publishers).
    let logins = (0..3 * PER_NODE).map(|i| {
        let addr = nodes[i % 3].addr;
        tokio::spawn(async move { JsonClient::login(addr, &format!("p{i}")).await })
    });
    let mut clients = Vec::new();
    for l in logins {
        clients.push(l.await.expect("login"));
    }
    // In the stream's order, which is not the order of the logins.
    let mut unseen: HashSet<String> = (0..clients.len()).map(|i| format!("p{i}")).collect();
    while !unseen.is_empty() {
        let nick = expect_event!(watcher, Event::Joined { nick, .. } => nick.into_owned()).await;
        unseen.remove(&nick);
    }
    const LINES: usize = 3 * PER_NODE * EACH;
    // Everyone talks at once in the lobby (one subject, three publishers).
    let talk = clients.into_iter().enumerate().map(|(k, mut j)| {
        tokio::spawn(async move {
            for i in 0..EACH {
                j.send(say(&format!("{k}:{i}"))).await;
            }
            j
        })
    });
    let mut talkers = Vec::new();
    for t in talk {
        talkers.push(t.await.expect("talk"));
    }
    // The watcher gets every line once, each speaker's in the order said.
    let mut seen = Vec::new();
    while seen.len() < LINES {
        seen.push(next_message(&mut watcher).await);
    }
    for k in 0..3 * PER_NODE {
        let own: Vec<&str> = seen
            .iter()
            .filter(|l| l.from == format!("p{k}"))
            .map(|l| l.text.as_str())
            .collect();
        let said: Vec<String> = (0..EACH).map(|i| format!("{k}:{i}")).collect();
        assert_eq!(own, said, "p{k}'s lines");
    }
    // Every node reads every line once (polled until it has).
    for n in &nodes {
        let start = Instant::now();
        while metric(n.addr, "natter_cluster_lines_read_total").await < LINES as f64 {
            assert!(start.elapsed() < PATIENCE, "a node did not read every line");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let read = metric(n.addr, "natter_cluster_lines_read_total").await;
        assert_eq!(read, LINES as f64, "a node read lines twice");
    }
    for (i, n) in nodes.iter().enumerate() {
        let gaps = metric(n.addr, "natter_cluster_gaps_filled_total").await;
        assert_eq!(gaps, 0.0, "node {} filled gaps with nothing lost", i + 1);
    }
}

/// A state fact (here a topic) lost on its way with nothing after it on
/// its subject shows no gap: the heartbeat's tail check asks for the
/// stream's newest state fact and fills what the node is missing, so the
/// room's members there still see it, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_state_fact_lost_on_the_way_still_arrives_once() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let one = node(&nats, 1);
    let two = node_with(&nats, 2, &["--cluster-drop-live-state", "2"]);
    let mut a = JsonClient::login(one.addr, "alice").await;
    let mut c = JsonClient::login(two.addr, "carol").await;
    sees_join(&mut a, "carol").await;
    // Node two drops every second state fact it receives live: one of
    // two topics set one after the other, each the newest when it is.
    for topic in ["first", "second", "third"] {
        a.send(Cmd::Topic {
            room: None,
            topic: Some(topic.into()),
        })
        .await;
        let seen = expect_event!(c, Event::Topic { topic, changed: true, .. } => topic.map(|t| t.into_owned()))
            .await;
        assert_eq!(seen.as_deref(), Some(topic), "carol's topics");
    }
}

/// A NATTER stream made by an older natter (one that does not republish:
/// nats-server 2.9 cannot add that to a stream) stops a starting node with
/// what to do; a node started with `--cluster-recreate-stream true` makes
/// it anew, and the cluster chats on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_made_by_an_older_natter_is_refused_with_what_to_do_or_made_anew() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "NATTER".into(),
        subjects: vec!["natter.>".into()],
        storage: async_nats::jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .expect("the old stream");
    let url = nats.url();
    let log = refused(
        &["--cluster", &url, "--node", "1"],
        "a node started on a stream it cannot read live",
    );
    assert!(log.contains("--cluster-recreate-stream true"), "{log}");
    let one = node_with(&nats, 1, &["--cluster-recreate-stream", "true"]);
    let two = node(&nats, 2);
    let mut a = JsonClient::login(one.addr, "alice").await;
    let mut c = JsonClient::login(two.addr, "carol").await;
    sees_join(&mut a, "carol").await;
    a.send(say("on the new stream")).await;
    assert_eq!(next_message(&mut c).await.text, "on the new stream");
    assert_eq!(next_message(&mut a).await.text, "on the new stream");
}

/// Who is where travels in bundles: a login (coming online, entering the
/// lobby) and each move to another room (leaving one, entering the next)
/// is one message on the stream, and the other node applies its facts in
/// the order they were made: it sees the login and the moves, and once it
/// lists the last room with its one member, no room left on the way is
/// still listed (nobody was left behind in one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_is_where_goes_in_bundles_and_another_node_sees_every_move_in_order() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let one = node(&nats, 1);
    let two = node(&nats, 2);
    let mut b = JsonClient::login(two.addr, "bob").await;
    let bundles = metric(two.addr, "natter_cluster_bundles_read_total").await;
    let facts = metric(two.addr, "natter_cluster_facts_read_total").await;
    let mut a = JsonClient::login(one.addr, "alice").await;
    sees_join(&mut b, "alice").await;
    // Within the flood burst (20 commands).
    const MOVES: usize = 8;
    for i in 0..MOVES {
        let room = format!("via{i}");
        a.send(Cmd::Join {
            room: room.into(),
            key: None,
            switch: true,
        })
        .await;
    }
    a.send(Cmd::Join {
        room: "end".into(),
        key: None,
        switch: true,
    })
    .await;
    sees_part(&mut b, "alice").await;
    room_listed(&mut b, "end", 1).await;
    b.send(Cmd::Rooms { after: None }).await;
    let v = b.expect("rooms").await;
    let left_behind: Vec<&str> = v["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .filter_map(|e| e["room"].as_str())
        .filter(|n| n.contains("via"))
        .collect();
    assert!(left_behind.is_empty(), "alice is still in {left_behind:?}");
    let bundled = metric(two.addr, "natter_cluster_bundles_read_total").await - bundles;
    let read = metric(two.addr, "natter_cluster_facts_read_total").await - facts;
    // The login and each of the MOVES + 1 moves: two facts in one message.
    assert!(
        bundled >= (MOVES + 2) as f64,
        "{bundled} bundles read for {} logins and moves ({read} facts)",
        MOVES + 2
    );
    assert!(read >= 2.0 * (MOVES + 2) as f64, "{read} facts read");
}

/// Who is where (`natter.user.state`) and what else changes in a room
/// (`natter.r<room>.state`) are on two subjects, applied in the stream's
/// order: bob's join of #r is lost on its way to node 2, which notices the
/// gap when dave's login comes after it, and alice's `+o bob` (on the
/// room's subject) that comes next waits for the join to be read from the
/// stream. Node 2 then shows bob joining before being made operator, and
/// knows him as one (applied first, the mode would find no bob in #r).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_change_waits_for_the_join_lost_before_it_and_applies_in_order() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let one = node(&nats, 1);
    // The 6th fact node 2 receives live that is not a line is dropped.
    let two = node_with(&nats, 2, &["--cluster-drop-live-state", "6"]);
    // 1: alice's login (one bundle); 2: her join of #r.
    let mut a = JsonClient::login(one.addr, "alice").await;
    a.send(join_cmd("r")).await;
    expect_event!(a, Event::Presence { room, .. } if room == "r").await;
    // 3, 4: carol's login and join, on node 2 (node 2 reads its own too).
    let mut c = JsonClient::login(two.addr, "carol").await;
    // Node 2 knows alice opened #r (else carol opens it there).
    room_listed(&mut c, "r", 1).await;
    c.send(join_cmd("r")).await;
    expect_event!(c, Event::Presence { room, .. } if room == "r").await;
    sees_join_of(&mut a, "r", "carol").await;
    // 5: bob's login, seen by carol in the lobby.
    let mut b = JsonClient::login(one.addr, "bob").await;
    sees_join_of(&mut c, "lobby", "bob").await;
    // 6: bob's join of #r (dropped on node 2); 7: dave's login (node 2
    // sees the gap); 8: alice makes bob an operator of #r.
    b.send(join_cmd("r")).await;
    sees_join_of(&mut a, "r", "bob").await;
    let _d = JsonClient::login(one.addr, "dave").await;
    a.send(Cmd::Mode {
        room: Some("r".into()),
        changes: Some("+o bob".into()),
    })
    .await;
    expect_event!(a, Event::Mode { changes, .. } if changes.contains("+o")).await;
    let first = c
        .expect_with("bob's join or his +o in #r", |ev| match ev {
            Event::Joined { room, nick, .. } if room == "r" && nick == "bob" => Some("join"),
            Event::Mode { room, .. } if room == "r" => Some("mode"),
            _ => None,
        })
        .await;
    assert_eq!(first, "join", "node 2 applied the mode before the join");
    expect_event!(c, Event::Mode { room, changes, .. } if room == "r" && changes.contains("+o"))
        .await;
    let mut e = JsonClient::login(two.addr, "erin").await;
    e.send(join_cmd("r")).await;
    let ops = expect_event!(e, Event::Presence { room, ops, .. } if room == "r" => ops).await;
    let mut ops = ops.unwrap_or_default();
    ops.sort();
    assert_eq!(ops, ["alice", "bob"], "node 2's operators of #r");
    let held = metric(two.addr, "natter_cluster_facts_held_total").await;
    assert!(held >= 1.0, "the mode was not held behind the gap");
}
