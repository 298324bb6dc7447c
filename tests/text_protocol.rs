//! The telnet/netcat text protocol, end to end over real sockets.

mod common;

use std::time::Duration;

use common::*;
use tokio::net::TcpSocket;

#[tokio::test]
async fn banner_registration_and_online_count() {
    let srv = start(config()).await;
    let mut a = srv.client().await;
    // Unprompted: the banner arrives before we send anything.
    assert_eq!(
        a.line().await.unwrap(),
        "*** Welcome to natter! 0 people online."
    );
    assert_eq!(a.line().await.unwrap(), "*** What is your nickname?");
    a.send("alice").await;
    a.expect("You are now known as alice. 1 online").await;
    assert_eq!(a.line().await.unwrap(), "*** alice joined #lobby (1 here)");
    assert_eq!(a.line().await.unwrap(), "*** In #lobby (1): alice");

    let mut b = srv.client().await;
    assert_eq!(
        b.line().await.unwrap(),
        "*** Welcome to natter! 1 person online."
    );
    b.expect("nickname").await;
    b.send("小明").await;
    b.expect("You are now known as 小明. 2 online").await;
    b.expect("In #lobby (2): alice, 小明").await;
    a.expect("小明 joined #lobby (2 here)").await;
    srv.shutdown().await;
}

/// A client's send queue keeps the buffer it grew only `sendq_keep` after
/// it was written from: an idle client holds none (the heartbeat, which
/// also gives it back, is an hour away here).
#[tokio::test]
async fn an_idle_clients_send_queue_gives_its_buffer_back() {
    let mut c = config();
    c.sendq_keep = Duration::from_millis(200);
    c.ping_interval = Duration::from_secs(3600);
    let srv = start(c).await;
    let mut a = srv.user("alice").await;
    let _b = srv.user("bob").await;
    a.expect("bob joined").await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let held = metric(srv.addr, "natter_sendq_buffer_bytes").await;
        if held == 0.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the send queues still hold {held} bytes of buffer"
        );
        tokio::task::yield_now().await;
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn taken_nick_case_insensitive_then_retry() {
    let srv = start(config()).await;
    let _alice = srv.user("Alice").await;
    let mut b = srv.client().await;
    b.expect("nickname?").await;
    b.send("alice").await;
    b.expect("! the nickname alice is taken. Pick another nickname:")
        .await;
    b.send("ALICE").await;
    b.expect("is taken").await;
    b.send("has space").await;
    b.expect("cannot contain spaces").await;
    b.send("evil\u{1b}[2J").await;
    b.expect("control characters").await;
    b.send(&"x".repeat(31)).await;
    b.expect("at most 30 characters").await;
    b.send("/who").await;
    b.expect("pick a nickname first").await;
    b.send("alice2").await;
    b.expect("You are now known as alice2").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn broadcast_reaches_others_and_echoes_to_sender() {
    let srv = start(config()).await;
    let mut a = srv.user("alice").await;
    let mut b = srv.user("bob").await;
    let mut c = srv.user("carol").await;
    b.send("hello room").await;
    for cl in [&mut a, &mut b, &mut c] {
        cl.expect("bob: hello room").await;
    }
    a.send("/me waves").await;
    for cl in [&mut a, &mut b, &mut c] {
        cl.expect("* alice waves").await;
    }
    a.send("//not a command").await;
    b.expect("alice: /not a command").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn leave_notices_for_quit_exit_and_abrupt_close() {
    let srv = start(config()).await;
    let mut a = srv.user("alice").await;
    let mut b = srv.user("bob").await;
    b.send("/quit see you").await;
    assert!(b.until_eof().await.iter().any(|l| l.contains("Goodbye")));
    a.expect("*** bob quit (quit: see you)").await;

    let mut c = srv.user("carol").await;
    c.send("exit").await;
    c.until_eof().await;
    a.expect("*** carol quit (quit)").await;

    let d = srv.user("dave").await;
    drop(d); // abrupt close
    a.expect("*** dave quit (connection closed)").await;

    // Their state is freed: the nicks can be taken again.
    let _b2 = srv.user("bob").await;
    let _d2 = srv.user("Dave").await;
    a.send("/who").await;
    a.expect("In #lobby (3): alice, bob, Dave").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn private_messages_reach_only_the_target() {
    let srv = start(config()).await;
    let mut a = srv.user("alice").await;
    let mut b = srv.user("bob").await;
    let mut c = srv.user("carol").await;
    a.send("/msg BOB secret plan").await;
    b.expect("[private] alice -> bob: secret plan").await;
    a.expect("[private] alice -> bob: secret plan").await;
    a.send("/msg nobody hi").await;
    a.expect("! nobody is called nobody").await;
    // carol saw neither: the next thing she sees is a public line.
    a.send("public").await;
    let line = c.line().await.unwrap();
    assert_eq!(line, "alice: public");
    srv.shutdown().await;
}

#[tokio::test]
async fn rooms_join_part_list_and_isolation() {
    let srv = start(config()).await;
    let mut a = srv.user("alice").await;
    let mut b = srv.user("bob").await;
    b.send("/join #rust").await;
    a.expect("bob left #lobby (1 here)").await;
    b.expect("bob joined #rust (1 here)").await;
    b.expect("In #rust (1): bob").await;
    a.send("/rooms").await;
    a.expect("Rooms (2): #lobby (1), #rust (1)").await;
    b.send("only rust").await;
    b.expect("bob: only rust").await;
    a.send("only lobby").await;
    a.expect("alice: only lobby").await;
    b.send("/who lobby").await;
    b.expect("In #lobby (1): alice").await;
    b.send("/part").await;
    b.expect("bob left #rust (0 here)").await;
    b.send("anyone?").await;
    b.expect("you are not in a room").await;
    b.send("/join lobby").await;
    a.expect("bob joined #lobby (2 here)").await;
    b.send("/join bad room").await;
    b.expect("! usage: /join ROOM").await;
    b.send("/join bad!").await;
    b.expect("! a room name may contain letters, digits and -_. only")
        .await;
    srv.shutdown().await;
}

#[tokio::test]
async fn commands_help_nick_unknown_and_colour() {
    let srv = start(config()).await;
    let mut a = srv.user("alice").await;
    let mut b = srv.user("bob").await;
    a.send("/help").await;
    a.expect("/msg NICK TEXT").await;
    a.send("/frobnicate").await;
    a.expect("! unknown command /frobnicate; try /help").await;
    a.send("/nick BOB").await;
    a.expect("the nickname BOB is taken").await;
    a.send("/nick alicia").await;
    b.expect("alice is now known as alicia").await;
    a.expect("alice is now known as alicia").await;
    b.send("hi alicia").await;
    // colours: on by default, off on request
    let raw = a.raw_line().await.unwrap();
    assert!(raw.contains("\u{1b}["), "coloured: {raw:?}");
    a.send("/color off").await;
    a.expect("colours off").await;
    b.send("plain now").await;
    let raw = a.raw_line().await.unwrap();
    assert_eq!(raw, "bob: plain now\r\n");
    srv.shutdown().await;
}

#[tokio::test]
async fn utf8_split_across_writes_and_merged_lines() {
    let srv = start(config()).await;
    let mut a = srv.user("alice").await;
    let mut b = srv.user("bob").await;
    let bytes = "你好 world\n".as_bytes();
    // Split inside the first character, flushing each part separately.
    b.send_raw(&bytes[..1]).await;
    b.writer.flush().await.unwrap();
    tokio::task::yield_now().await;
    b.send_raw(&bytes[1..4]).await;
    b.send_raw(&bytes[4..]).await;
    a.expect("bob: 你好 world").await;
    // Several lines in one write, mixed endings.
    b.send_raw(b"one\r\ntwo\nthree\r\n").await;
    assert_eq!(a.line().await.unwrap(), "bob: one");
    assert_eq!(a.line().await.unwrap(), "bob: two");
    assert_eq!(a.line().await.unwrap(), "bob: three");
    srv.shutdown().await;
}

/// Lines said one after another wait to be pushed together (`line_batch`),
/// but a reply to a command between them (a local one, or a listing sent
/// in pages) never overtakes them: the sender sees its lines and the
/// replies in the order it sent them.
#[tokio::test]
async fn a_reply_never_overtakes_a_line_said_before_it() {
    let srv = start(config()).await;
    let mut a = srv.user("alice").await;
    let mut b = srv.user("bob").await;
    a.expect("bob joined").await;
    b.send_raw(b"one\n/frobnicate\ntwo\n/who\nthree\n/nonsense\nfour\n")
        .await;
    for expected in [
        "bob: one",
        "! unknown command /frobnicate; try /help",
        "bob: two",
        "*** In #lobby (2): alice, bob",
        "bob: three",
        "! unknown command /nonsense; try /help",
        "bob: four",
    ] {
        assert_eq!(b.line().await.unwrap(), expected);
    }
    for expected in ["bob: one", "bob: two", "bob: three", "bob: four"] {
        assert_eq!(a.line().await.unwrap(), expected);
    }
    srv.shutdown().await;
}

use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn escape_sequences_are_stripped() {
    let srv = start(config()).await;
    let mut a = srv.user("alice").await;
    let mut b = srv.user("bob").await;
    a.send("/color off").await;
    a.expect("colours off").await;
    b.send("\u{1b}[2J\u{1b}]0;pwned\u{7}hi\u{7}\u{8} \u{1b}[31mred\u{202e}")
        .await;
    let raw = a.raw_line().await.unwrap();
    assert_eq!(raw, "bob: hi red\r\n");
    srv.shutdown().await;
}

#[tokio::test]
async fn oversized_line_is_refused_and_connection_goes_on() {
    let mut cfg = config();
    cfg.max_line_bytes = 100;
    let srv = start(cfg).await;
    let mut a = srv.user("alice").await;
    let mut b = srv.user("bob").await;
    // 1 MiB without a newline, then the end of that line and a good one.
    let big = vec![b'x'; 1 << 20];
    b.send_raw(&big).await;
    b.send_raw(b"tail\nafter\n").await;
    b.expect("! line too long (max 100 bytes); it was ignored")
        .await;
    a.expect("bob: after").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn invalid_utf8_gets_an_error_and_connection_goes_on() {
    let srv = start(config()).await;
    let mut a = srv.user("alice").await;
    let mut b = srv.user("bob").await;
    b.send_raw(b"bad \xc3\x28 \x80 bytes\n").await;
    b.expect("! line is not valid UTF-8").await;
    b.send("still here").await;
    a.expect("bob: still here").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn registration_timeout_drops_silent_connections() {
    let mut cfg = config();
    cfg.registration_timeout = Duration::from_millis(300);
    let srv = start(cfg).await;
    let mut idle = srv.client().await;
    let lines = idle.until_eof().await;
    assert!(
        lines.iter().any(|l| l.contains("registration timeout")),
        "{lines:?}"
    );
    // a registered user is not dropped by it
    let mut a = srv.user("alice").await;
    let mut b = srv.user("bob").await;
    // wait past the timeout using the server's own clock: the idle client was dropped at 300ms
    let mut probe = srv.client().await;
    probe.until_eof().await;
    a.send("still registered").await;
    b.expect("alice: still registered").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn connection_limits_refuse_with_a_reason() {
    let mut cfg = config();
    cfg.max_clients = 3;
    cfg.max_per_ip = 2;
    cfg.limit_exempt = Default::default(); // loopback is exempt by default
    let srv = start(cfg).await;
    let _a = srv.user("a").await;
    let _b = srv.user("b").await;
    let mut third = srv.client().await;
    let lines = third.until_eof().await;
    assert_eq!(
        lines,
        vec!["! too many connections from your address (limit 2)"]
    );
    // From another loopback address the per-IP limit is separate...
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let stream = socket.connect(srv.addr).await.unwrap();
    let (r, w) = stream.into_split();
    let mut other = Client {
        reader: tokio::io::BufReader::new(r),
        writer: w,
    };
    other.expect("nickname?").await;
    // ...but the total limit still holds.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.3:0".parse().unwrap()).unwrap();
    let stream = socket.connect(srv.addr).await.unwrap();
    let (r, w) = stream.into_split();
    let mut full = Client {
        reader: tokio::io::BufReader::new(r),
        writer: w,
    };
    assert_eq!(
        full.until_eof().await,
        vec!["! server full (3 connections); try again later"]
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn shutdown_tells_members_and_closes() {
    let srv = start(config()).await;
    let mut a = srv.user("alice").await;
    let mut b = srv.user("bob").await;
    srv.shutdown().await;
    for c in [&mut a, &mut b] {
        let lines = c.until_eof().await;
        assert!(
            lines.iter().any(|l| l.contains("Server shutting down")),
            "{lines:?}"
        );
    }
}

/// A member that never reads while another floods: the room keeps getting
/// every line in order, and the stalled member is dropped once its bounded
/// queue is full (so the server's memory for it stays bounded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_dropped_and_others_keep_receiving() {
    let mut cfg = config();
    cfg.sendq = 256 * 1024; // as many bytes as the 256 lines of 1 KB that used to be its limit
    cfg.flood_rate = 0; // the flooder must outrun the stalled reader
    let srv = start(cfg).await;
    let mut watcher = srv.user("watcher").await;
    let slow = srv.user("slow").await; // never reads again
    let flooder = srv.user("flooder").await;
    watcher.expect("flooder joined").await;

    // The flooder reads its own echoes so that only `slow` is slow.
    let (mut flood_writer, drain) = flooder.writer_reading_in_background();
    // The watcher reports how many lines it has seen and whether `slow` was dropped.
    let (progress_tx, mut progress) = tokio::sync::watch::channel((0u64, false));
    let watch = tokio::spawn(async move {
        let (mut next, mut saw_drop) = (0u64, false);
        loop {
            let line = watcher.line().await.expect("watcher stays connected");
            if line.contains("slow quit (send queue full") {
                saw_drop = true;
            } else if let Some(rest) = line.strip_prefix("flooder: seq ") {
                let n: u64 = rest.split_whitespace().next().unwrap().parse().unwrap();
                assert_eq!(n, next, "in order, none lost");
                next += 1;
            } else if line == "flooder: done" {
                return (next, saw_drop);
            }
            let _ = progress_tx.send((next, saw_drop));
        }
    });
    let pad = "p".repeat(1000);
    let mut sent = 0u64;
    const CHUNK: u64 = 100;
    loop {
        assert!(sent < 200_000, "slow consumer was never dropped");
        let mut chunk = String::new();
        for _ in 0..CHUNK {
            chunk.push_str(&format!("seq {sent} {pad}\n"));
            sent += 1;
        }
        flood_writer.write_all(chunk.as_bytes()).await.unwrap();
        // Flow control on the watcher (not a sleep): at most one chunk in
        // flight to it (~100 KB), well under its queue even with the
        // kernel's buffers and a busy machine, so only `slow` falls behind.
        let seen = tokio::time::timeout(
            PATIENCE,
            progress.wait_for(|(n, dropped)| *dropped || *n >= sent),
        )
        .await
        .expect("watcher keeps up")
        .unwrap()
        .1;
        if seen {
            break;
        }
    }
    flood_writer.write_all(b"done\n").await.unwrap();
    let (received, saw_drop) = tokio::time::timeout(Duration::from_secs(60), watch)
        .await
        .unwrap()
        .unwrap();
    assert!(saw_drop);
    assert_eq!(received, sent, "watcher got every line");
    // The slow client's connection was closed by the server: reading drains
    // what the kernel buffered, then ends.
    let mut slow = slow;
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0usize;
    loop {
        use tokio::io::AsyncReadExt;
        match tokio::time::timeout(PATIENCE, slow.reader.read(&mut buf))
            .await
            .expect("slow conn closed")
        {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    assert!(
        total < 64 << 20,
        "server did not buffer without bound: {total} bytes"
    );
    drain.abort();
    srv.shutdown().await;
}

/// Flood control: a client that sends far more than `flood_rate` lines is
/// paced (its lines wait, in order, none lost) instead of flooding the room.
#[tokio::test]
async fn flood_control_paces_a_flooder_and_loses_nothing() {
    let mut cfg = config();
    cfg.flood_rate = 50;
    cfg.flood_burst = 10;
    let srv = start(cfg).await;
    let mut a = srv.user("alice").await;
    let mut b = srv.user("bob").await;
    a.expect("bob joined #lobby").await;
    let started = std::time::Instant::now();
    let flood: String = (0..60).map(|i| format!("line {i}\n")).collect();
    b.send_raw(flood.as_bytes()).await;
    for i in 0..60 {
        assert_eq!(a.line().await.unwrap(), format!("bob: line {i}"));
    }
    // About 10 at once, then 50 per second: the last line cannot be handled
    // before (60 - 11) / 50 s have passed on the server's clock.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "not paced: {took:?}");
    // Other members are not held up by bob's backlog.
    a.send("still quick").await;
    b.expect("alice: still quick").await;
    srv.shutdown().await;
}

/// A text user who creates a room operates it as an IRC user would:
/// topic (the room is +t), voice, moderation, bans, kicks, invites, away
/// and whois, with the same hub rules (non-operators are refused).
#[tokio::test]
async fn text_users_can_do_what_irc_users_can() {
    let srv = start(config()).await;
    let mut a = srv.user("alice").await;
    let mut b = srv.user("bob").await;
    a.send("/join ops").await;
    a.expect("In #ops (1): alice").await;
    b.send("/join ops").await;
    a.expect("bob joined #ops").await;
    b.expect("In #ops (2)").await;

    a.send("/topic Operators only").await;
    b.expect("alice set the topic of #ops: Operators only")
        .await;
    b.send("/topic mine now").await;
    b.expect("! you need to be an operator (+o) in #ops").await;
    a.send("/topic").await;
    a.expect("Topic of #ops: Operators only (set by alice)")
        .await;

    a.send("/mode +m").await;
    b.expect("alice sets mode +m on #ops").await;
    b.send("can I talk?").await;
    b.expect("! you cannot speak in #ops").await;
    a.send("/voice bob").await;
    b.expect("alice sets mode +v bob on #ops").await;
    b.send("now I can").await;
    a.expect("bob: now I can").await;
    a.send("/mode").await;
    a.expect("#ops modes: +").await;

    a.send("/away lunch").await;
    a.expect("You are marked as away").await;
    b.send("/whois alice").await;
    b.expect("alice (").await;
    b.expect("away: lunch").await;
    a.send("/back").await;
    a.expect("no longer marked as away").await;

    a.send("/notice #ops heads up").await;
    b.expect("-alice:#ops- heads up").await;

    a.send("/kick bob enough for today").await;
    b.expect("bob was kicked from #ops by alice (enough for today)")
        .await;
    a.send("/ban bob!*@*").await;
    a.expect("alice sets mode +b bob!*@* on #ops").await;
    b.send("/join ops").await;
    b.expect("! ").await; // banned
    a.send("/unban bob!*@*").await;
    a.expect("-b bob!*@*").await;
    a.send("/mode +i").await;
    a.expect("+i").await;
    a.send("/invite bob").await;
    b.expect("alice invited bob to #ops").await;
    b.send("/join ops").await;
    b.expect("bob joined #ops").await;

    a.send("/list").await;
    a.expect("Rooms").await;
    a.expect("#ops (2): Operators only").await;
    srv.shutdown().await;
}
