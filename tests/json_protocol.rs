//! The JSON-lines protocol over real sockets: seed command forms, every
//! event type, bad input, heartbeats, and mixing with text users.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test]
async fn seed_commands_work_as_written() {
    let srv = start(config()).await;
    let mut a = JsonClient::connect(srv.addr).await;
    a.send(json!({"cmd": "login", "nick": "alice"})).await;
    let w = a.expect("welcome").await;
    assert_eq!(w["online"], 0);
    let r = a.expect("registered").await;
    assert_eq!(r["nick"], "alice");
    assert_eq!(r["online"], 1);
    let j = a.expect("joined").await;
    assert_eq!(
        (j["room"].as_str(), j["nick"].as_str()),
        (Some("lobby"), Some("alice"))
    );
    let p = a.expect("presence").await;
    assert_eq!(p["nicks"], json!(["alice"]));

    let mut b = JsonClient::login(srv.addr, "bob").await;
    // chat with and without "nick" (the seed sent it; it is ignored)
    b.send(json!({"cmd": "chat", "nick": "bob", "msg": "hello"}))
        .await;
    b.send(json!({"cmd": "chat", "msg": "again"})).await;
    for c in [&mut a, &mut b] {
        let m = c.expect("message").await;
        assert_eq!(
            (m["from"].as_str(), m["text"].as_str(), m["room"].as_str()),
            (Some("bob"), Some("hello"), Some("lobby"))
        );
        // Message ids are UUIDv7 strings; `seq` is the room's order.
        assert_eq!(m["id"].as_str().map(str::len), Some(36));
        assert!(m["seq"].as_u64().unwrap() > 0);
        assert!(m["ts"].as_u64().unwrap() > 1_600_000_000_000);
        assert_eq!(c.expect("message").await["text"], "again");
    }
    b.send(json!({"cmd": "keep"})).await;
    b.send(json!({"cmd": "quit"})).await;
    let q = a.expect("quit").await;
    assert_eq!(q["nick"], "bob");
    assert!(b.c.until_eof().await.iter().any(|l| l.contains("Goodbye")));

    let mut c = JsonClient::login(srv.addr, "carol").await;
    c.send(json!({"cmd": "exit"})).await;
    c.c.until_eof().await;
    assert_eq!(a.expect("quit").await["nick"], "carol");
    srv.shutdown().await;
}

#[tokio::test]
async fn everything_the_text_protocol_can_do() {
    let srv = start(config()).await;
    let mut a = JsonClient::login(srv.addr, "alice").await;
    let mut b = JsonClient::login(srv.addr, "bob").await;
    a.expect("joined").await;

    b.send(json!({"cmd": "me", "msg": "waves"})).await;
    let m = a.expect("message").await;
    assert_eq!(
        (m["action"].as_bool(), m["text"].as_str()),
        (Some(true), Some("waves"))
    );

    a.send(json!({"cmd": "msg", "to": "BOB", "msg": "psst"}))
        .await;
    let p = b.expect("private").await;
    assert_eq!(
        (p["from"].as_str(), p["to"].as_str(), p["text"].as_str()),
        (Some("alice"), Some("bob"), Some("psst"))
    );
    a.expect("private").await;

    b.send(json!({"cmd": "nick", "nick": "robert"})).await;
    let n = a.expect("nick").await;
    assert_eq!(
        (n["old"].as_str(), n["new"].as_str()),
        (Some("bob"), Some("robert"))
    );

    b.send(json!({"cmd": "join", "room": "#rust"})).await;
    let l = a.expect("left").await;
    assert_eq!(
        (l["nick"].as_str(), l["room"].as_str()),
        (Some("robert"), Some("lobby"))
    );
    b.expect("presence").await;
    b.send(json!({"cmd": "chat", "room": "rust", "msg": "in rust"}))
        .await;
    assert_eq!(b.expect("message").await["room"], "rust");

    a.send(json!({"cmd": "rooms"})).await;
    let r = a.expect("rooms").await;
    assert_eq!(
        r["rooms"],
        json!([{"room": "lobby", "members": 1}, {"room": "rust", "members": 1}])
    );
    a.send(json!({"cmd": "who", "room": "rust"})).await;
    assert_eq!(a.expect("presence").await["nicks"], json!(["robert"]));
    a.send(json!({"cmd": "help"})).await;
    assert!(a.expect("help").await["commands"].as_array().unwrap().len() > 5);
    b.send(json!({"cmd": "part"})).await;
    assert_eq!(b.expect("left").await["room"], "rust");
    srv.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_error_objects_and_connection_stays_up() {
    let mut cfg = config();
    cfg.max_line_bytes = 200;
    let srv = start(cfg).await;
    let mut a = JsonClient::login(srv.addr, "alice").await;
    let cases: &[(&[u8], &str)] = &[
        (b"{not json}\n", "malformed"),
        (b"[1,2,3]\n", "malformed"),
        (b"\"just a string\"\n", "malformed"),
        (b"{\"nick\":\"x\"}\n", "bad_arguments"),
        (b"{\"cmd\":17}\n", "bad_arguments"),
        (b"{\"cmd\":\"dance\"}\n", "unknown_command"),
        (b"{\"cmd\":\"chat\",\"msg\":42}\n", "bad_arguments"),
        (b"{\"cmd\":\"chat\"}\n", "bad_arguments"),
        (
            b"{\"cmd\":\"login\",\"nick\":\"again\"}\n",
            "already_registered",
        ),
        (
            b"{\"cmd\":\"msg\",\"to\":\"ghost\",\"msg\":\"boo\"}\n",
            "no_such_nick",
        ),
        (
            b"{\"cmd\":\"join\",\"room\":\"no spaces\"}\n",
            "room_invalid",
        ),
        (b"{\"cmd\":\"chat\",\"msg\":\"\xff\xfe\"}\n", "invalid_utf8"),
        (b"{\"cmd\":\"chat\",\"msg\":\"\xc3\x28\"}\n", "invalid_utf8"),
    ];
    for (line, want) in cases {
        a.c.send_raw(line).await;
        assert_eq!(
            a.expect_error().await,
            *want,
            "for {}",
            String::from_utf8_lossy(line)
        );
    }
    let long = format!("{{\"cmd\":\"chat\",\"msg\":\"{}\"}}\n", "x".repeat(10_000));
    a.c.send_raw(long.as_bytes()).await;
    assert_eq!(a.expect_error().await, "line_too_long");
    // still up and working
    a.send(json!({"cmd": "chat", "msg": "still here"})).await;
    assert_eq!(a.expect("message").await["text"], "still here");
    srv.shutdown().await;
}

#[tokio::test]
async fn nick_refusal_before_login_and_retry() {
    let srv = start(config()).await;
    let _a = JsonClient::login(srv.addr, "Alice").await;
    let mut b = JsonClient::connect(srv.addr).await;
    b.send(json!({"cmd": "login", "nick": "alice"})).await;
    assert_eq!(b.expect_error().await, "nick_in_use");
    b.send(json!({"cmd": "login", "nick": "a b"})).await;
    assert_eq!(b.expect_error().await, "nick_invalid");
    b.send(json!({"cmd": "chat", "msg": "too early"})).await;
    assert_eq!(b.expect_error().await, "not_registered");
    b.send(json!({"cmd": "login", "nick": "アリス"})).await;
    assert_eq!(b.expect("registered").await["nick"], "アリス");
    srv.shutdown().await;
}

#[tokio::test]
async fn heartbeat_drops_silent_clients_and_keeps_answering_ones() {
    let mut cfg = config();
    cfg.ping_interval = Duration::from_millis(100);
    cfg.ping_timeout = Duration::from_millis(300);
    let srv = start(cfg).await;
    // A text user is not pinged (it relies on TCP keepalive).
    let mut text = srv.user("texter").await;
    let mut alive = JsonClient::login(srv.addr, "alive").await;
    let mut silent = JsonClient::login(srv.addr, "silent").await;
    let first = silent.expect("ping").await;
    assert!(first["token"].as_u64().is_some());
    // `alive` answers three pings in a row with the seed's "keep".
    for _ in 0..3 {
        alive.expect("ping").await;
        alive.send(json!({"cmd": "keep"})).await;
    }
    // `silent` stops answering: dropped, and its leave is announced.
    let lines = silent.c.until_eof().await;
    assert!(!lines.is_empty());
    text.expect("silent quit (ping timeout)").await;
    let q = alive.expect("quit").await;
    assert_eq!(
        (q["nick"].as_str(), q["reason"].as_str()),
        (Some("silent"), Some("ping timeout"))
    );
    // `alive` keeps answering and stays.
    alive.expect("ping").await;
    alive.send(json!({"cmd": "pong"})).await;
    text.send("still there?").await;
    assert_eq!(alive.expect("message").await["text"], "still there?");
    srv.shutdown().await;
}

#[tokio::test]
async fn text_and_json_users_share_a_room() {
    let srv = start(config()).await;
    let mut t = srv.user("texter").await;
    let mut j = JsonClient::login(srv.addr, "jason").await;
    t.expect("jason joined #lobby").await;
    t.send("hi json").await;
    let m = j.expect("message").await;
    assert_eq!(
        (m["from"].as_str(), m["text"].as_str()),
        (Some("texter"), Some("hi json"))
    );
    j.send(json!({"cmd": "chat", "msg": "hi text"})).await;
    t.expect("jason: hi text").await;
    j.send(json!({"cmd": "msg", "to": "texter", "msg": "private"}))
        .await;
    t.expect("[private] jason -> texter: private").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn shutdown_is_an_event() {
    let srv = start(config()).await;
    let mut j = JsonClient::login(srv.addr, "jason").await;
    srv.shutdown().await;
    let s = j.expect("shutdown").await;
    assert!(s["reason"].as_str().is_some());
    assert!(j.next().await.is_none());
}
