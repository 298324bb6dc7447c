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
