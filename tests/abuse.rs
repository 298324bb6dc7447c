//! What a hostile client can do, at the limits: byte-bounded send queues,
//! excess flood, closed sockets, caps on what a client can grow, and long
//! listings produced as the client reads.

mod common;

use common::*;

/// A client that sends far more than flood control lets through is
/// disconnected once its unhandled input passes `recvq`, with the usual
/// IRC reason.
#[tokio::test]
async fn excess_flood_disconnects() {
    let mut cfg = config();
    cfg.flood_rate = 1;
    cfg.flood_burst = 5;
    cfg.recvq = 2048;
    let srv = start(cfg).await;
    let mut a = srv.user("alice").await;
    let mut b = srv.user("bob").await;
    a.expect("bob joined #lobby").await;
    let flood: String = (0..400).map(|i| format!("line {i}\n")).collect();
    b.send_raw(flood.as_bytes()).await;
    let lines = b.until_eof().await;
    assert!(
        lines.iter().any(|l| l.contains("excess flood")),
        "{lines:?}"
    );
    a.expect("bob quit (Excess Flood)").await;

    // The same over IRC: ERROR with "Excess Flood".
    let mut i = IrcClient::register(srv.addr, "carol").await;
    let flood: String = (0..400)
        .map(|n| format!("PRIVMSG #lobby :{n}\r\n"))
        .collect();
    i.c.send_raw(flood.as_bytes()).await;
    let lines = i.c.until_eof().await;
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ERROR") && l.contains("Excess Flood")),
        "{lines:?}"
    );
    srv.shutdown().await;
}

/// A client that pushed a backlog into its socket and closed it is gone at
/// once: its nick is free and the rest of its lines are never relayed.
#[tokio::test]
async fn a_closed_client_is_gone_at_once() {
    let mut cfg = config();
    cfg.flood_rate = 1;
    cfg.flood_burst = 3;
    let srv = start(cfg).await;
    let mut a = srv.user("alice").await;
    let mut b = srv.user("bob").await;
    a.expect("bob joined #lobby").await;
    let backlog: String = (0..200).map(|i| format!("line {i}\n")).collect();
    b.send_raw(backlog.as_bytes()).await;
    drop(b);
    let mut relayed = 0;
    loop {
        let l = a.line().await.expect("alice stays");
        if l.starts_with("bob: line") {
            relayed += 1;
        } else if l.contains("bob quit (connection closed)") {
            break;
        }
    }
    assert!(relayed <= 4, "{relayed} lines of a closed client relayed");
    let mut again = srv.client().await;
    again.expect("nickname?").await;
    again.send("bob").await;
    again.expect("You are now known as bob").await;
    srv.shutdown().await;
}

/// Rooms on the server and rooms created per minute are capped: IRC gets
/// `437`, JSON `room_limit`; the default room stays open to newcomers.
#[tokio::test]
async fn room_caps_refuse_with_the_standard_errors() {
    let mut cfg = config();
    cfg.max_rooms = 3;
    let srv = start(cfg).await;
    // IRC users are in no room until they join one.
    let mut i = IrcClient::register(srv.addr, "ann").await;
    i.send("JOIN #a,#b,#c,#d").await;
    let seen = i.sync().await;
    assert!(seen.iter().any(|l| l.contains("JOIN #c")), "{seen:?}");
    let refused = seen.iter().find(|l| l.contains(" 437 ")).expect("437");
    assert!(refused.contains("#d"), "{seen:?}");
    let mut j = JsonClient::login(srv.addr, "joe").await;
    j.send(serde_json::json!({"cmd": "join", "room": "d"}))
        .await;
    assert_eq!(j.expect_error().await, "room_limit");
    j.send(serde_json::json!({"cmd": "join", "room": "a"}))
        .await;
    j.expect("joined").await;
    srv.shutdown().await;

    let mut cfg = config();
    cfg.rooms_per_minute = 2;
    let srv = start(cfg).await;
    let mut i = IrcClient::register(srv.addr, "ann").await;
    i.send("JOIN #a,#b,#c").await;
    let refused = i.numeric("437").await;
    assert!(refused.contains("#c"), "{refused}");
    srv.shutdown().await;
}

/// Bans per room (`MAXLIST`) and topic length (`TOPICLEN`) are settings,
/// advertised and enforced.
#[tokio::test]
async fn ban_list_and_topic_length_are_capped() {
    let mut cfg = config();
    cfg.max_bans = 2;
    cfg.topic_len = 10;
    let srv = start(cfg).await;
    let mut i = IrcClient::connect(srv.addr).await;
    i.send("NICK op").await;
    i.send("USER op 0 * :op").await;
    let isupport: Vec<String> = {
        let mut seen = Vec::new();
        loop {
            let l = i.line().await.expect("registration");
            let end = l.contains(" 376 ") || l.contains(" 422 ");
            seen.push(l);
            if end {
                break seen;
            }
        }
    };
    let isupport = isupport.join("\n");
    assert!(
        isupport.contains("MAXLIST=beI:2") && isupport.contains("TOPICLEN=10"),
        "{isupport}"
    );
    i.send("JOIN #r").await;
    i.numeric("366").await;
    i.send("MODE #r +b a!*@*").await;
    i.send("MODE #r +b b!*@*").await;
    i.send("MODE #r +b c!*@*").await;
    i.numeric("478").await;
    i.send("TOPIC #r :0123456789abcdef").await;
    let topic = i.expect("TOPIC #r").await;
    assert!(topic.ends_with(":0123456789"), "{topic}");
    srv.shutdown().await;
}

/// New connections from one address are limited in rate unless the address
/// is exempt (loopback is, by default).
#[tokio::test]
async fn connect_rate_per_address() {
    let mut cfg = config();
    cfg.limit_exempt = Default::default();
    cfg.connect_burst = 2;
    cfg.connect_rate = 1;
    let srv = start(cfg).await;
    let mut first = srv.client().await;
    first.expect("nickname?").await;
    let mut second = srv.client().await;
    second.expect("nickname?").await;
    let mut third = srv.client().await;
    let lines = third.until_eof().await;
    assert_eq!(
        lines,
        vec!["! connecting too fast from your address; try again in a few seconds"]
    );
    srv.shutdown().await;

    let srv = start(config()).await; // loopback exempt: no limit
    let mut held = Vec::new();
    for _ in 0..40 {
        let mut c = srv.client().await;
        c.expect("nickname?").await;
        held.push(c);
    }
    srv.shutdown().await;
}

/// A server with many rooms, made by one IRC client joining them in batches.
async fn many_rooms(srv: &TestServer, n: usize) -> IrcClient {
    let mut maker = IrcClient::register(srv.addr, "maker").await;
    let names: Vec<String> = (0..n).map(|i| format!("#r{i:05}")).collect();
    for batch in names.chunks(40) {
        maker.send(&format!("JOIN {}", batch.join(","))).await;
        maker.sync().await; // reads the answers: its sendq is not endless
    }
    maker
}

fn roomy() -> natter::config::Config {
    let mut cfg = config();
    cfg.max_rooms_per_user = 100_000;
    cfg.rooms_per_minute = 0;
    cfg.flood_rate = 0;
    cfg
}

/// LIST is written a page at a time as the client reads: a reader gets
/// every room once, in order; clients that ask for it many times and never
/// read hold no more than their sendq, and the room keeps talking without
/// delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_flood_by_non_readers_does_not_hold_up_the_room() {
    let srv = start(roomy()).await;
    let n = 2000;
    let _maker = many_rooms(&srv, n).await;
    let mut reader = IrcClient::register(srv.addr, "reader").await;
    let rows = list_rows(&mut reader, "").await;
    assert_eq!(rows.len(), n, "every room once");
    assert!(rows.windows(2).all(|w| w[0] < w[1]), "in name order");

    let mut hogs = Vec::new();
    for i in 0..8 {
        let mut h = IrcClient::register(srv.addr, &format!("hog{i}")).await;
        h.c.send_raw("LIST\r\n".repeat(20).as_bytes()).await;
        hogs.push(h); // never read again
    }
    let mut a = srv.user("alice").await;
    let mut b = srv.user("bob").await;
    a.expect("bob joined").await;
    let mut worst = std::time::Duration::ZERO;
    for i in 0..20 {
        let t = std::time::Instant::now();
        b.send(&format!("ping {i}")).await;
        a.expect(&format!("bob: ping {i}")).await;
        worst = worst.max(t.elapsed());
    }
    assert!(
        worst < std::time::Duration::from_secs(1),
        "room held up {worst:?}"
    );
    srv.shutdown().await;
}

/// The rooms a `LIST args` shows.
async fn list_rows(a: &mut IrcClient, args: &str) -> Vec<String> {
    a.send(&format!("LIST {args}")).await;
    let mut rows = Vec::new();
    loop {
        let l = a.line().await.expect("LIST");
        match l.split(' ').nth(1) {
            Some("322") => rows.push(l.split(' ').nth(3).unwrap_or("").to_string()),
            Some("323") => return rows,
            _ => {}
        }
    }
}

/// ELIST filters: member counts, masks and negated masks.
#[tokio::test]
async fn list_filters() {
    let srv = start(roomy()).await;
    let mut a = IrcClient::register(srv.addr, "ann").await;
    a.send("JOIN #apple,#apricot,#banana,#kiwi").await;
    let mut b = IrcClient::register(srv.addr, "bea").await;
    b.send("JOIN #apple").await;
    b.sync().await;
    assert_eq!(list_rows(&mut a, ">1").await, ["#apple"]);
    assert_eq!(
        list_rows(&mut a, "<2").await,
        ["#apricot", "#banana", "#kiwi"]
    );
    assert_eq!(list_rows(&mut a, "#ap*").await, ["#apple", "#apricot"]);
    assert_eq!(list_rows(&mut a, "!*a*").await, ["#kiwi"]);
    assert_eq!(list_rows(&mut a, "#banana,#nope").await, ["#banana"]);
    assert!(a.sync().await.iter().all(|l| !l.contains(" 322 ")));
    srv.shutdown().await;
}

/// JSON `rooms` and text `/rooms` answer one page and name where the next
/// starts; following the cursor shows every room once.
#[tokio::test]
async fn room_list_pages_follow_a_cursor() {
    let mut cfg = roomy();
    cfg.page_size = 3;
    let srv = start(cfg).await;
    let _maker = many_rooms(&srv, 7).await; // 8 rooms with the lobby
    let mut j = JsonClient::login(srv.addr, "joe").await;
    let mut seen = Vec::new();
    let mut after = serde_json::Value::Null;
    loop {
        j.send(serde_json::json!({"cmd": "rooms", "after": after}))
            .await;
        let page = j.expect("rooms").await;
        assert_eq!(page["total"], 8);
        for r in page["rooms"].as_array().unwrap() {
            seen.push(r["room"].as_str().unwrap().to_string());
        }
        after = page["next"].clone();
        if after.is_null() {
            break;
        }
    }
    assert_eq!(seen.len(), 8, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    let mut t = srv.user("tim").await;
    t.send("/rooms").await;
    let first = t.expect("Rooms (8)").await;
    assert!(first.ends_with("more: /rooms r00001"), "{first}");
    t.send("/rooms r00004").await;
    let last = t.expect("Rooms (8)").await;
    assert!(last.contains("#r00005") && !last.contains("more"), "{last}");
    srv.shutdown().await;
}

/// NAMES and WHO of a room larger than a page come in several pages and one end.
#[tokio::test]
async fn names_and_who_of_a_large_room_come_in_pages() {
    let mut cfg = config();
    cfg.page_size = 4;
    let srv = start(cfg).await;
    let mut people = Vec::new();
    for i in 0..10 {
        people.push(IrcClient::register_lobby(srv.addr, &format!("p{i}")).await);
    }
    let me = &mut people[0];
    me.sync().await;
    me.send("NAMES #lobby").await;
    let mut nicks = Vec::new();
    loop {
        let l = me.line().await.expect("NAMES");
        match l.split(' ').nth(1) {
            Some("353") => nicks.extend(
                l.rsplit(':')
                    .next()
                    .unwrap()
                    .split(' ')
                    .map(|n| n.trim_start_matches('@').to_string()),
            ),
            Some("366") => break,
            _ => {}
        }
    }
    nicks.sort();
    assert_eq!(nicks, (0..10).map(|i| format!("p{i}")).collect::<Vec<_>>());
    me.send("WHO #lobby").await;
    let lines = me.sync().await;
    assert_eq!(lines.iter().filter(|l| l.contains(" 352 ")).count(), 10);
    assert_eq!(lines.iter().filter(|l| l.contains(" 315 ")).count(), 1);
    let mut j = JsonClient::login(srv.addr, "joe").await;
    j.send(serde_json::json!({"cmd": "who"})).await;
    let first = j.expect("presence").await;
    assert_eq!(
        (first["more"].as_bool(), first["total"].as_u64()),
        (Some(true), Some(11))
    );
    srv.shutdown().await;
}

/// A login storm into one room with the database on. Delivery walks a
/// room's members in join order, so the first member is the first queue
/// every join notice enters; it must be charged for each as everyone else
/// is (the line's bytes and its share of the shared event), not for the
/// whole event each time: that was ~350 bytes more per notice, and the
/// first joiner of a 1000-member storm was dropped as a slow consumer while
/// the others were not.
#[tokio::test]
async fn the_first_member_of_a_join_storm_pays_no_more_than_the_others() {
    use tokio::io::AsyncReadExt;
    const JOINERS: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let srv = start(natter::config::Config {
        db: dir.path().join("natter.db").to_str().unwrap().into(),
        flood_rate: 0,
        max_per_ip: 0,
        connect_rate: 0,
        // The notices fit in about half of it at their own size, and not
        // at all with the whole event counted for each.
        sendq: 64 * 1024,
        socket_sendbuf: 4096,
        ..config()
    })
    .await;
    // The first member reads nothing while the others come, through a
    // small receive buffer: what it is sent waits in its queue.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let (r, w) = socket.connect(srv.addr).await.unwrap().into_split();
    let mut first = JsonClient {
        c: Client {
            reader: tokio::io::BufReader::new(r),
            writer: w,
        },
    };
    first
        .send(Cmd::Login {
            nick: "first".into(),
        })
        .await;
    expect_event!(first, Event::Presence { .. }).await;
    let mut readers = Vec::new();
    for i in 0..JOINERS {
        let j = JsonClient::login(srv.addr, &format!("j{i}")).await;
        readers.push(tokio::spawn(async move {
            let mut j = j; // the whole client: its writer stays open too
            let mut buf = vec![0; 64 * 1024];
            while j.c.reader.read(&mut buf).await.is_ok_and(|n| n > 0) {}
        }));
    }
    let mut joined = 0;
    while joined < JOINERS {
        match first.next().await {
            Some(Event::Joined { nick, .. }) if nick.starts_with('j') => joined += 1,
            Some(Event::Error { code, .. }) => {
                panic!("first member got {code} after {joined} joins")
            }
            Some(_) => {}
            None => panic!("the first member was dropped after {joined} of {JOINERS} joins"),
        }
    }
    first.send(Cmd::chat("still here")).await;
    expect_event!(first, Event::Message { text, .. } if text == "still here").await;
    for r in readers {
        r.abort();
    }
    srv.shutdown().await;
}

/// Ingest is paced by egress (`ingest_budget`), but only by the queues of
/// clients that keep up: a member that never reads fills its socket and
/// stops counting, so with a budget of a few dozen deliveries the others
/// still get all 4 000 lines (4 MB) in order, and nobody is stuck paused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stalls_never_pauses_the_others() {
    let mut cfg = config();
    cfg.flood_rate = 0;
    cfg.ingest_budget = 50;
    cfg.sendq = 64 << 20; // nobody is dropped: the stall lasts
    let srv = start(cfg).await;
    let _stalled = srv.user("stalled").await; // never read again
    let mut reader = srv.user("reader").await;
    let talker = srv.user("talker").await;
    reader.expect("talker joined").await;
    // The talker reads its own lines back (a client that does not read is
    // not served: its input waits while its output is stuck).
    let (mut talker, drain) = talker.writer_reading_in_background();
    let body = "x".repeat(1000);
    let n = 4000;
    let send = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        for i in 0..n {
            let line = format!("{i} {body}\r\n");
            talker.write_all(line.as_bytes()).await.expect("write");
        }
        talker
    });
    for i in 0..n {
        let line = reader.expect("talker: ").await;
        assert!(
            line.contains(&format!("talker: {i} x")),
            "line {i} in order: {}",
            &line[..line.len().min(40)]
        );
    }
    let _talker = send.await.expect("the talker sent everything");
    srv.shutdown().await;
    drain.abort();
}

/// A database that cannot keep up (here: another connection holds its
/// write lock) slows the senders instead of dropping them: past
/// `db_max_pending` lines waiting for their commit, connections stop
/// reading, so a client's own lines, each held in its send queue until
/// committed, never overflow it. Before, every line was taken at once and
/// a sender at 100k msg/s (all 1000 clients of the bench) was dropped as a
/// "slow consumer" while it was reading everything.
#[tokio::test]
async fn a_database_behind_slows_the_senders_instead_of_dropping_them() {
    const LINES: usize = 200;
    const BUDGET: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("natter.db");
    let srv = start(natter::config::Config {
        db: db.to_str().unwrap().into(),
        flood_rate: 0,
        // ~60 of the sender's own lines fit (LINES do not), and more
        // than BUDGET in half of it (where the connection's own pacing
        // would stop it first).
        sendq: 32 * 1024,
        db_max_pending: BUDGET,
        ..config()
    })
    .await;
    let mut a = srv.user("pacer").await;
    // The writer cannot commit while this transaction holds the lock
    // (it waits for it, up to its busy timeout of 5 s).
    let lock = rusqlite::Connection::open(&db).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let burst: String = (0..LINES).map(|i| format!("line {i}\r\n")).collect();
    a.send_raw(burst.as_bytes()).await;
    // Wait until the server has taken its budget of lines.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while metric(srv.addr, "natter_store_pending_facts").await < BUDGET as f64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "lines never reached the store"
        );
        tokio::task::yield_now().await;
    }
    let pending = metric(srv.addr, "natter_store_pending_facts").await;
    assert!(
        pending <= (BUDGET + 2) as f64,
        "{pending} lines taken past a budget of {BUDGET}"
    );
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    for i in 0..LINES {
        a.expect(&format!("pacer: line {i}")).await;
    }
    assert!(metric(srv.addr, "natter_store_paced_total").await >= 1.0);
    a.send("still here").await;
    a.expect("pacer: still here").await;
    srv.shutdown().await;
}
