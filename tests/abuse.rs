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
    let mut i = IrcClient::register(srv.addr, "ann").await;
    i.send("JOIN #a,#b,#c").await;
    let seen = i.sync().await;
    assert!(seen.iter().any(|l| l.contains("JOIN #b")), "{seen:?}");
    let refused = seen.iter().find(|l| l.contains(" 437 ")).expect("437");
    assert!(refused.contains("#c"), "{seen:?}");
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
            let end = l.contains(" 366 ");
            seen.push(l);
            if end {
                break seen;
            }
        }
    };
    let isupport = isupport.join("\n");
    assert!(
        isupport.contains("MAXLIST=b:2") && isupport.contains("TOPICLEN=10"),
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
