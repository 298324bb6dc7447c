//! The JSON-lines protocol over real sockets: seed command forms, every
//! event type, bad input, heartbeats, and mixing with text users.
//! Requests are written as the JSON they are on the wire (`json!`), so these
//! tests pin the documented format; what the server sends is read with the
//! wire types (`Event`), which every line must parse as.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test]
async fn seed_commands_work_as_written() {
    let srv = start(config()).await;
    let mut a = JsonClient::connect(srv.addr).await;
    a.send(json!({"cmd": "login", "nick": "alice"})).await;
    let online = expect_event!(a, Event::Welcome { online, .. } => online).await;
    assert_eq!(online, 0);
    let (nick, online) =
        expect_event!(a, Event::Registered { nick, online } => (nick, online)).await;
    assert_eq!((&*nick, online), ("alice", 1));
    let (room, nick) = expect_event!(a, Event::Joined { room, nick, .. } => (room, nick)).await;
    assert_eq!((&*room, &*nick), ("lobby", "alice"));
    let nicks = expect_event!(a, Event::Presence { nicks, .. } => nicks).await;
    assert_eq!(nicks, ["alice"]);

    let mut b = JsonClient::login(srv.addr, "bob").await;
    // chat with and without "nick" (the seed sent it; it is ignored)
    b.send(json!({"cmd": "chat", "nick": "bob", "msg": "hello"}))
        .await;
    b.send(json!({"cmd": "chat", "msg": "again"})).await;
    for c in [&mut a, &mut b] {
        let (id, seq, from, text, room) =
            expect_event!(c, Event::Message { id, seq, from, text, room, .. }
            => (id, seq, from, text, room))
            .await;
        assert_eq!((&*from, &*text, &*room), ("bob", "hello", "lobby"));
        // Message ids are UUIDv7 strings, in time order; `seq` is the room's order.
        assert_eq!(id.len(), 36, "{id}");
        let (next, next_seq, text) =
            expect_event!(c, Event::Message { id, seq, text, .. } => (id, seq, text)).await;
        assert_eq!(text, "again");
        assert!(next > id, "ids increase");
        assert_eq!(next_seq, seq + 1, "seq counts the room's lines");
    }
    b.send(json!({"cmd": "keep"})).await;
    b.send(json!({"cmd": "quit"})).await;
    let nick = expect_event!(a, Event::Quit { nick, .. } => nick).await;
    assert_eq!(nick, "bob");
    assert!(b.c.until_eof().await.iter().any(|l| l.contains("Goodbye")));

    let mut c = JsonClient::login(srv.addr, "carol").await;
    c.send(json!({"cmd": "exit"})).await;
    c.c.until_eof().await;
    assert_eq!(
        expect_event!(a, Event::Quit { nick, .. } => nick).await,
        "carol"
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn everything_the_text_protocol_can_do() {
    let srv = start(config()).await;
    let mut a = JsonClient::login(srv.addr, "alice").await;
    let mut b = JsonClient::login(srv.addr, "bob").await;
    expect_event!(a, Event::Joined { .. }).await;

    b.send(json!({"cmd": "me", "msg": "waves"})).await;
    let (action, text) =
        expect_event!(a, Event::Message { action, text, .. } => (action, text)).await;
    assert_eq!((action, &*text), (true, "waves"));

    a.send(json!({"cmd": "msg", "to": "BOB", "msg": "psst"}))
        .await;
    let (from, to, text) =
        expect_event!(b, Event::Private { from, to, text, .. } => (from, to, text)).await;
    assert_eq!((&*from, &*to, &*text), ("alice", "bob", "psst"));
    expect_event!(a, Event::Private { .. }).await;

    b.send(json!({"cmd": "nick", "nick": "robert"})).await;
    let (old, new) = expect_event!(a, Event::Nick { old, new } => (old, new)).await;
    assert_eq!((&*old, &*new), ("bob", "robert"));

    b.send(json!({"cmd": "join", "room": "#rust"})).await;
    let (nick, room, reason) =
        expect_event!(a, Event::Left { nick, room, reason, .. } => (nick, room, reason)).await;
    assert_eq!((&*nick, &*room, reason), ("robert", "lobby", None));
    expect_event!(b, Event::Presence { .. }).await;
    b.send(json!({"cmd": "chat", "room": "rust", "msg": "in rust"}))
        .await;
    let room = expect_event!(b, Event::Message { room, .. } => room).await;
    assert_eq!(room, "rust");

    a.send(json!({"cmd": "rooms"})).await;
    let rooms = expect_event!(a, Event::Rooms { rooms, .. } => rooms).await;
    let rooms: Vec<_> = rooms.iter().map(|r| (&*r.room, r.members)).collect();
    assert_eq!(rooms, [("lobby", 1), ("rust", 1)]);
    a.send(json!({"cmd": "who", "room": "rust"})).await;
    let (nicks, ops) = expect_event!(a, Event::Presence { nicks, ops, .. } => (nicks, ops)).await;
    assert_eq!(
        (nicks, ops),
        (vec!["robert".into()], Some(vec!["robert".into()]))
    );
    a.send(json!({"cmd": "help"})).await;
    let commands = expect_event!(a, Event::Help { commands } => commands).await;
    assert!(commands.len() > 5);
    b.send(json!({"cmd": "part"})).await;
    let room = expect_event!(b, Event::Left { room, .. } => room).await;
    assert_eq!(room, "rust");
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
        (b"[\"keep\"]\n", "malformed"),
        (b"\"just a string\"\n", "malformed"),
        (b"{\"nick\":\"x\"}\n", "bad_arguments"),
        (b"{\"cmd\":17}\n", "bad_arguments"),
        (b"{\"cmd\":\"dance\"}\n", "unknown_command"),
        (b"{\"cmd\":\"chat\",\"msg\":42}\n", "bad_arguments"),
        (
            b"{\"cmd\":\"chat\",\"msg\":\"x\",\"room\":7}\n",
            "bad_arguments",
        ),
        (
            b"{\"cmd\":\"chat\",\"msg\":\"x\",\"action\":\"yes\"}\n",
            "bad_arguments",
        ),
        (
            b"{\"cmd\":\"msg\",\"to\":[\"bob\"],\"msg\":\"x\"}\n",
            "bad_arguments",
        ),
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
    // The messages say what is wrong.
    for (line, want) in [
        (r#"{"cmd":"dance"}"#, r#"unknown cmd "dance""#),
        (
            r#"{"cmd":"login","nick":42}"#,
            "bad arguments: invalid type: integer `42`, expected a string",
        ),
        (r#"{"cmd":"chat"}"#, "bad arguments: missing field `msg`"),
    ] {
        a.c.send(line).await;
        let message = expect_event!(a, Event::Error { message, .. } => message).await;
        assert_eq!(message, want, "for {line}");
    }
    let long = format!("{{\"cmd\":\"chat\",\"msg\":\"{}\"}}\n", "x".repeat(10_000));
    a.c.send_raw(long.as_bytes()).await;
    assert_eq!(a.expect_error().await, "line_too_long");
    // still up and working
    a.send(Cmd::chat("still here")).await;
    let text = expect_event!(a, Event::Message { text, .. } => text).await;
    assert_eq!(text, "still here");
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
    let nick = expect_event!(b, Event::Registered { nick, .. } => nick).await;
    assert_eq!(nick, "アリス");
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
    expect_event!(silent, Event::Ping { .. }).await;
    // `alive` answers three pings in a row with the seed's "keep".
    for _ in 0..3 {
        expect_event!(alive, Event::Ping { .. }).await;
        alive.send(json!({"cmd": "keep"})).await;
    }
    // `silent` stops answering: dropped, and its leave is announced.
    let lines = silent.c.until_eof().await;
    assert!(!lines.is_empty());
    text.expect("silent quit (ping timeout)").await;
    let (nick, reason) = expect_event!(alive, Event::Quit { nick, reason } => (nick, reason)).await;
    assert_eq!((&*nick, &*reason), ("silent", "ping timeout"));
    // `alive` keeps answering and stays.
    expect_event!(alive, Event::Ping { .. }).await;
    alive.send(json!({"cmd": "pong"})).await;
    text.send("still there?").await;
    let said = expect_event!(alive, Event::Message { text, .. } => text).await;
    assert_eq!(said, "still there?");
    srv.shutdown().await;
}

#[tokio::test]
async fn text_and_json_users_share_a_room() {
    let srv = start(config()).await;
    let mut t = srv.user("texter").await;
    let mut j = JsonClient::login(srv.addr, "jason").await;
    t.expect("jason joined #lobby").await;
    t.send("hi json").await;
    let (from, text) = expect_event!(j, Event::Message { from, text, .. } => (from, text)).await;
    assert_eq!((&*from, &*text), ("texter", "hi json"));
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
    let reason = expect_event!(j, Event::Shutdown { reason } => reason).await;
    assert!(!reason.is_empty());
    assert!(j.next().await.is_none());
}

/// JSON users operate rooms too, and may be in several at once.
#[tokio::test]
async fn json_users_can_do_what_irc_users_can() {
    let srv = start(config()).await;
    let mut a = JsonClient::login(srv.addr, "alice").await;
    let mut b = JsonClient::login(srv.addr, "bob").await;
    // Several rooms: `switch: false` stays in the others.
    a.send(json!({"cmd": "join", "room": "ops", "switch": false}))
        .await;
    expect_event!(a, Event::Presence { room, .. } if room == "ops").await;
    b.send(json!({"cmd": "join", "room": "ops", "switch": false}))
        .await;
    let nicks =
        expect_event!(b, Event::Presence { room, nicks, .. } if room == "ops" => nicks).await;
    assert_eq!(nicks, ["alice", "bob"]);
    a.send(json!({"cmd": "who", "room": "lobby"})).await;
    let nicks =
        expect_event!(a, Event::Presence { room, nicks, .. } if room == "lobby" => nicks).await;
    assert_eq!(nicks, ["alice", "bob"], "still in the lobby");

    a.send(json!({"cmd": "topic", "room": "ops", "topic": "ops only"}))
        .await;
    let (by, topic) =
        expect_event!(b, Event::Topic { by, topic, changed: true, .. } => (by, topic)).await;
    assert_eq!(
        (by.as_deref(), topic.as_deref()),
        (Some("alice"), Some("ops only"))
    );
    b.send(json!({"cmd": "topic", "room": "ops", "topic": "mine"}))
        .await;
    let (code, room) = expect_event!(b, Event::Error { code, room, .. } => (code, room)).await;
    assert_eq!((&*code, room.as_deref()), ("chanop_needed", Some("ops")));

    a.send(json!({"cmd": "mode", "room": "ops", "changes": "+v bob +m"}))
        .await;
    let changes = expect_event!(b, Event::Mode { changes, .. } => changes).await;
    assert_eq!(changes, "+v bob +m");
    a.send(json!({"cmd": "mode", "room": "ops"})).await;
    let modes = expect_event!(a, Event::Modes { modes, .. } => modes).await;
    assert!(modes.contains('m'), "{modes}");

    a.send(json!({"cmd": "notice", "to": "#ops", "msg": "heads up"}))
        .await;
    let (from, room) = expect_event!(b, Event::Notice { from, room, .. } => (from, room)).await;
    assert_eq!((&*from, room.as_deref()), ("alice", Some("ops")));

    a.send(json!({"cmd": "away", "text": "lunch"})).await;
    expect_event!(a, Event::AwayStatus { away: true }).await;
    b.send(json!({"cmd": "whois", "nick": "alice"})).await;
    let away = expect_event!(b, Event::Whois { away, .. } => away).await;
    assert_eq!(away.as_deref(), Some("lunch"));
    a.send(json!({"cmd": "away"})).await;
    expect_event!(a, Event::AwayStatus { away: false }).await;

    a.send(json!({"cmd": "kick", "room": "ops", "nick": "bob", "reason": "bye"}))
        .await;
    let (nick, reason) =
        expect_event!(b, Event::Kicked { nick, reason, .. } => (nick, reason)).await;
    assert_eq!((&*nick, reason.as_deref()), ("bob", Some("bye")));
    a.send(json!({"cmd": "mode", "room": "ops", "changes": "+i"}))
        .await;
    expect_event!(a, Event::Mode { .. }).await;
    a.send(json!({"cmd": "invite", "nick": "bob", "room": "ops"}))
        .await;
    let room = expect_event!(b, Event::Invited { room, .. } => room).await;
    assert_eq!(room, "ops");
    b.send(json!({"cmd": "join", "room": "ops", "switch": false}))
        .await;
    expect_event!(b, Event::Joined { room, nick, .. } if room == "ops" && nick == "bob").await;

    // Without a room, a room command is about the current one.
    a.send(json!({"cmd": "topic"})).await;
    let topic = expect_event!(a, Event::Topic { topic, changed: false, .. } => topic).await;
    assert_eq!(topic.as_deref(), Some("ops only"));
    a.send(json!({"cmd": "list"})).await;
    let rooms = expect_event!(a, Event::Rooms { rooms, .. } => rooms).await;
    let ops = rooms.iter().find(|r| r.room == "ops").expect("ops listed");
    assert_eq!(ops.topic, Some(Some("ops only".into())));
    srv.shutdown().await;
}
