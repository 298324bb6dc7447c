//! Ingest paced by egress (`ingest_budget`, `server::pacer`): when the
//! pacer lets the paused readers go, each of them handles everything it
//! holds in one pass, however far that takes the count past the budget
//! again. (Its own binary: it counts the server's process-wide pauses.)

mod common;

use common::*;
use tokio::io::AsyncWriteExt;

/// 200 lines sent in one write, with a budget of one delivery: the first
/// line puts the server over the budget, the sender pauses once, and when
/// the writers have caught up it handles the other 199 in one pass. A pass
/// that handled one line and paused again (each pass a round of every
/// paused reader, so under load a sender's line waited for one round per
/// line ahead of it) paused about 200 times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_reader_handles_all_it_holds_when_let_go() {
    let mut cfg = config();
    cfg.flood_rate = 0;
    cfg.ingest_budget = 1;
    let srv = start(cfg).await;
    let mut bob = srv.user("bob").await;
    let alice = srv.user("alice").await;
    bob.expect("alice joined").await;
    // Alice reads her own lines back, so her queue keeps up too.
    let (mut alice, drain) = alice.writer_reading_in_background();
    let n = 200;
    let burst: String = (0..n).map(|i| format!("line {i}\r\n")).collect();
    let paced_before = natter::metrics::metrics().reads_paced.get();
    alice.write_all(burst.as_bytes()).await.expect("write");
    for i in 0..n {
        let line = bob.expect("alice: ").await;
        assert!(
            line.ends_with(&format!("alice: line {i}")),
            "in order: {line}"
        );
    }
    let pauses = natter::metrics::metrics().reads_paced.get() - paced_before;
    assert!(pauses >= 1, "the pacer never stopped a reader");
    assert!(
        pauses <= 10,
        "{pauses} pauses for {n} lines: a pass handled only part of what the reader held"
    );
    drain.abort();
    srv.shutdown().await;
}
