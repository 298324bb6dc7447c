//! Parked connections (`park_after`): a quiet plain-TCP connection gives up
//! its task and waits in a shared poller; everything it is owed still
//! reaches it. Each test first waits until the server's gauge
//! `natter_connections_parked` says the connections were really parked
//! (a server that does not park fails there), then checks one thing that
//! must wake a parked connection.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

/// Parks after 100 ms of quiet; no pings unless a test asks.
fn parking() -> natter::config::Config {
    let mut c = config();
    c.park_after = Duration::from_millis(100);
    c.ping_interval = Duration::from_secs(3600);
    c
}

/// Waits until `n` connections of the server at `addr` are parked.
async fn parked(addr: SocketAddr, n: usize) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let now = metric(addr, "natter_connections_parked").await;
        if now == n as f64 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{now} connections parked, not {n}"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_parked_connection_wakes_for_its_own_line_and_for_a_line_to_it() {
    let srv = start(parking()).await;
    let mut a = srv.user("alice").await;
    let mut b = srv.user("bob").await;
    a.expect("bob joined").await;
    parked(srv.addr, 2).await;
    // Bob's socket wakes bob; the line reaches alice through her mailbox.
    b.send("hello while you sleep").await;
    b.expect("bob: hello while you sleep").await;
    a.expect("bob: hello while you sleep").await;
    // Both park again, and wake again.
    parked(srv.addr, 2).await;
    a.send("/msg bob psst").await;
    b.expect("psst").await;
    parked(srv.addr, 2).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn a_parked_connection_closed_by_its_client_leaves_at_once() {
    let srv = start(parking()).await;
    let mut a = srv.user("alice").await;
    let b = srv.user("bob").await;
    a.expect("bob joined").await;
    parked(srv.addr, 2).await;
    drop(b); // the socket's EOF wakes bob, his quit notice wakes alice
    a.expect("*** bob quit (connection closed)").await;
    parked(srv.addr, 1).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn a_parked_irc_connection_is_pinged_and_dropped_when_it_stops_answering() {
    let mut cfg = parking();
    cfg.ping_interval = Duration::from_millis(400);
    cfg.ping_timeout = Duration::from_millis(400);
    let srv = start(cfg).await;
    let irc = srv.irc_addr.expect("the IRC port is on");
    let mut bob = srv.user("bob").await;
    let mut a = IrcClient::register_lobby(irc, "alice").await;
    bob.expect("alice joined").await;
    parked(srv.addr, 2).await;
    // The heartbeat's timer wakes the parked connection to ping.
    let ping = a.expect("PING :").await;
    let token = ping.split_once(':').unwrap().1.to_string();
    a.send(&format!("PONG :{token}")).await;
    // It parks again after the answer, is pinged again, and this time
    // is dropped for not answering.
    parked(srv.addr, 2).await;
    a.expect("PING :").await;
    let rest = a.c.until_eof().await;
    assert!(
        rest.iter()
            .any(|l| l.starts_with("ERROR :Closing Link: ") && l.contains("(Ping timeout: ")),
        "{rest:?}"
    );
    bob.expect("alice quit (ping timeout)").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn parked_connections_are_told_and_closed_at_shutdown() {
    let srv = start(parking()).await;
    let mut a = srv.user("alice").await;
    let mut b = srv.user("bob").await;
    a.expect("bob joined").await;
    parked(srv.addr, 2).await;
    srv.shutdown().await; // within PATIENCE, or this fails
    for c in [&mut a, &mut b] {
        let rest = c.until_eof().await;
        assert!(
            rest.iter()
                .any(|l| l.contains("Server shutting down: server is going down")),
            "{rest:?}"
        );
    }
}

/// A parked member that stops reading is still dropped as a slow consumer
/// once its bounded queue is full (its mailbox wakes it to find out).
/// The flooder sends numbered lines in rounds of 64 and waits for the
/// watcher to have read each round, so the watcher (which must stay) is
/// never more than a round behind, while the member that never reads
/// falls behind for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_connection_that_stops_reading_is_still_a_slow_consumer() {
    use tokio::io::AsyncWriteExt;
    let mut cfg = parking();
    cfg.sendq = 256 * 1024; // four rounds of the flood
    cfg.flood_rate = 0; // the flooder must outrun the stalled reader
    let srv = start(cfg).await;
    let mut watcher = srv.user("watcher").await;
    let slow = srv.user("slow").await; // never reads again
    let flooder = srv.user("flooder").await;
    watcher.expect("flooder joined").await;
    parked(srv.addr, 3).await;
    let (mut flood_writer, _drain) = flooder.writer_reading_in_background();
    let (seen_tx, mut seen) = tokio::sync::watch::channel(0u64);
    let mut dropped = tokio::spawn(async move {
        loop {
            let line = watcher.line().await.expect("the watcher stays connected");
            if line.contains("slow quit (send queue full") {
                return;
            }
            // `flooder: N ppp…`: the flood's line N.
            let n = line
                .strip_prefix("flooder: ")
                .and_then(|t| t.split(' ').next());
            if let Some(n) = n.and_then(|n| n.parse().ok()) {
                seen_tx.send_replace(n);
            }
        }
    });
    let pad = "p".repeat(1000);
    let flood = async {
        let mut n = 0u64;
        loop {
            for _ in 0..64 {
                n += 1;
                let line = format!("{n} {pad}\n");
                tokio::select! {
                    r = &mut dropped => return r.expect("the watcher"),
                    r = flood_writer.write_all(line.as_bytes()) => r.expect("the flooder writes"),
                }
            }
            while *seen.borrow_and_update() < n {
                tokio::select! {
                    biased;
                    r = &mut dropped => return r.expect("the watcher"),
                    _ = seen.changed() => {}
                }
            }
        }
    };
    tokio::time::timeout(PATIENCE * 3, flood)
        .await
        .expect("the stalled member is dropped");
    drop(slow);
    srv.shutdown().await;
}
