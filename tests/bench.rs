//! `natter bench` end to end: a tiny fan-out against the real server,
//! in process, through the library API.

use std::time::Duration;

use natter::bench::{execute, BenchConfig, Proto, Scenario};
use natter::config::Config;
use natter::server::Server;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn tiny_fanout_loses_nothing() {
    tiny_fanout(Proto::Text).await;
}

/// JSON lines over WebSocket frames, on the HTTP port.
#[tokio::test]
async fn tiny_fanout_over_websocket_loses_nothing() {
    tiny_fanout(Proto::Ws).await;
}

async fn tiny_fanout(proto: Proto) {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        db: "off".into(),
        ..Config::default()
    };
    let server = Server::bind(config).await.expect("bind");
    let addr = match proto {
        Proto::Ws => server.http_addr().expect("http_listen"),
        _ => server.local_addr(),
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(server.run(stop.clone()));

    let mut cfg = BenchConfig::new(Scenario::Fanout, addr, proto);
    cfg.clients = 20;
    cfg.rate = 10.0;
    cfg.warmup = Duration::from_millis(200);
    cfg.duration = Duration::from_millis(800);
    cfg.drain = Duration::from_secs(10);
    let report = execute(cfg).await.expect("bench runs");

    assert_eq!(report.setup.ready, 20, "{}", report.table());
    assert!(report.errors.is_empty(), "{}", report.table());
    let t = report.traffic.as_ref().expect("traffic was sent");
    assert!(t.sent > 0, "{}", report.table());
    assert_eq!(
        (t.lost, t.duplicated, t.out_of_order, t.unexpected),
        (0, 0, 0, 0),
        "{}",
        report.table()
    );
    // Everyone is in the one room and natter echoes a line to its sender,
    // so every message reaches all 20 members.
    assert_eq!(t.expected_deliveries, t.sent * 20);
    assert_eq!(t.delivered, t.sent * 20, "{}", report.table());
    assert!(!t.drain_timed_out);
    let lat = report.latency_ms.as_ref().expect("latencies measured");
    assert!(lat.count > 0 && lat.p50 <= lat.p99 && lat.p99 <= lat.max);

    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
}

/// A budget of one message's deliveries: connections stop reading while
/// the writers are behind (the pacer engages, over and over), and still
/// every member gets every line, once, in order, and nothing stalls.
#[tokio::test]
async fn a_tiny_ingest_budget_paces_reads_and_loses_nothing() {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        db: "off".into(),
        flood_rate: 0,
        ingest_budget: 20,
        ..Config::default()
    };
    let server = Server::bind(config).await.expect("bind");
    let addr = server.local_addr();
    let stop = CancellationToken::new();
    let task = tokio::spawn(server.run(stop.clone()));
    // Process-wide: no other test here comes near the default budget.
    let paced_before = natter::metrics::metrics().reads_paced.get();

    let mut cfg = BenchConfig::new(Scenario::Fanout, addr, Proto::Text);
    cfg.clients = 20;
    cfg.rate = 50.0;
    cfg.warmup = Duration::from_millis(200);
    cfg.duration = Duration::from_millis(1500);
    cfg.drain = Duration::from_secs(10);
    let report = execute(cfg).await.expect("bench runs");

    assert_eq!(report.setup.ready, 20, "{}", report.table());
    let t = report.traffic.as_ref().expect("traffic was sent");
    assert!(t.sent > 0, "{}", report.table());
    assert_eq!(
        (t.lost, t.duplicated, t.out_of_order, t.unexpected),
        (0, 0, 0, 0),
        "{}",
        report.table()
    );
    assert_eq!(t.delivered, t.sent * 20, "{}", report.table());
    assert!(!t.drain_timed_out);
    let paced = natter::metrics::metrics().reads_paced.get() - paced_before;
    assert!(paced > 0, "the pacer never stopped a reader");

    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
}

/// With the default database each message reaches its room only after
/// its commit: the messages/s figure counts each message once, and every
/// message sent is in the file.
#[tokio::test]
async fn rooms_with_a_database_count_each_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("natter.db");
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        db: db.to_string_lossy().into_owned(),
        ..Config::default()
    };
    let server = Server::bind(config).await.expect("bind");
    let addr = server.local_addr();
    let stop = CancellationToken::new();
    let task = tokio::spawn(server.run(stop.clone()));

    let mut cfg = BenchConfig::new(Scenario::Rooms, addr, Proto::Text);
    cfg.clients = 20;
    cfg.rooms = 4;
    cfg.rate = 10.0;
    cfg.warmup = Duration::from_millis(200);
    cfg.duration = Duration::from_millis(800);
    cfg.drain = Duration::from_secs(10);
    let report = execute(cfg).await.expect("bench runs");
    let t = report.traffic.as_ref().expect("traffic was sent");
    assert_eq!((t.lost, t.duplicated), (0, 0), "{}", report.table());
    // Rooms of 5 with echo: 5 deliveries per message, give or take the
    // messages on either edge of the window (one per sender per edge).
    let m = t.messages_delivered_in_window;
    assert!(m > 0 && m <= t.sent, "{}", report.table());
    let five = m as i64 * 5;
    let off = (five - t.delivered_in_window as i64).abs();
    assert!(
        off <= 2 * 20 * 5,
        "{m} messages, {} deliveries",
        t.delivered_in_window
    );
    assert!(report.table().contains("messages/s"));

    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    let c = rusqlite::Connection::open(&db).unwrap();
    let said: i64 = c
        .query_row("SELECT count(*) FROM line WHERE kind = 'said'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(said as u64, t.sent, "every message sent was committed");
}

/// `natter bench --threads 2 --target A,B` (the binary): client i goes to
/// the (i mod 2)-th server and joins room i mod 2, so each server holds one
/// room; every message is delivered and committed by the server its sender
/// was on, and the bench stops as soon as everything sent has arrived
/// instead of waiting out `--drain`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_spread_over_targets_and_threads_and_the_drain_ends_early() {
    let dir = tempfile::tempdir().unwrap();
    let mut servers = Vec::new();
    for name in ["a.db", "b.db"] {
        let db = dir.path().join(name);
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            db: db.to_string_lossy().into_owned(),
            ..Config::default()
        };
        let server = Server::bind(config).await.expect("bind");
        let addr = server.local_addr().to_string();
        let stop = CancellationToken::new();
        let task = tokio::spawn(server.run(stop.clone()));
        servers.push((db, addr, stop, task));
    }
    let targets = format!("{},{}", servers[0].1, servers[1].1);
    let started = std::time::Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        let args = [
            "rooms",
            "--target",
            &targets,
            "--threads",
            "2",
            "--quiet",
            "--json",
        ];
        let more = ["--clients", "20", "--rooms", "2", "--rate", "10"];
        let times = ["--warmup", "200ms", "--duration", "800ms", "--drain", "60s"];
        let all: Vec<&std::ffi::OsStr> = args
            .iter()
            .chain(&more)
            .chain(&times)
            .map(|a| a.as_ref())
            .collect();
        natter_bench(&all)
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["setup"]["ready"], 20, "{report}");
    let t = &report["traffic"];
    assert_eq!(
        (&t["lost"], &t["duplicated"]),
        (&0.into(), &0.into()),
        "{report}"
    );
    let sent = t["sent"].as_u64().unwrap();
    assert!(sent > 0, "{report}");
    // Rooms of 10 with echo.
    assert_eq!(t["delivered"].as_u64(), Some(sent * 10), "{report}");
    assert_eq!(t["drain_timed_out"], false, "{report}");
    let drained = t["drain_seconds"].as_f64().unwrap();
    assert!(
        drained < 10.0,
        "waited {drained} s after the last send: {report}"
    );
    assert!(started.elapsed() < Duration::from_secs(40), "{report}");

    let mut committed = Vec::new();
    for (db, _, stop, task) in servers {
        stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        let c = rusqlite::Connection::open(&db).unwrap();
        let said: i64 = c
            .query_row("SELECT count(*) FROM line WHERE kind = 'said'", [], |r| {
                r.get(0)
            })
            .unwrap();
        committed.push(said as u64);
    }
    assert!(committed.iter().all(|&n| n > 0), "{committed:?}");
    assert_eq!(committed.iter().sum::<u64>(), sent, "{committed:?}");
}

/// `natter bench … --report DIR` (the binary): each run writes its
/// per-second samples into DIR, and the charts there show every run found,
/// on the same axes, as SVG.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_draws_every_run_in_the_directory() {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        irc_listen: "127.0.0.1:0".parse().unwrap(),
        db: "off".into(),
        ..Config::default()
    };
    let server = Server::bind(config).await.expect("bind");
    let addr = server.local_addr().to_string();
    let stop = CancellationToken::new();
    let task = tokio::spawn(server.run(stop.clone()));
    let dir = tempfile::tempdir().unwrap();
    let charts = dir.path().join("charts");

    for label in ["natter", "second run"] {
        let (addr, charts) = (addr.clone(), charts.clone());
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_natter"))
                .args(["bench", "fanout", "--target", &addr, "--quiet", "--json"])
                .args(["--clients", "10", "--rate", "10", "--warmup", "300ms"])
                .args(["--duration", "1500ms", "--drain", "10s"])
                .args(["--pid", &std::process::id().to_string()])
                .arg("--report")
                .arg(&charts)
                .args(["--label", label])
                .output()
                .expect("natter bench runs")
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("latency.svg"), "{stderr}");
        // The JSON report on stdout stays as it was.
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["traffic"]["lost"], 0, "{report}");
    }

    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(charts.join("second_run.run.json")).unwrap())
            .unwrap();
    assert_eq!(run["label"], "second run");
    let seconds = run["latency"].as_array().unwrap();
    assert!(!seconds.is_empty(), "{run}");
    assert!(seconds
        .iter()
        .all(|s| s["p50_ms"].as_f64() <= s["p99_ms"].as_f64()));
    assert_eq!(run["cdf"].as_array().unwrap().last().unwrap()[1], 1.0);
    let res = run["resources"].as_array().unwrap();
    assert!(res.iter().any(|s| s["rss_kib"].as_u64() > Some(0)), "{run}");

    check_charts(&charts, &["natter", "second run"]);

    // `natter bench report DIR` redraws them from the runs alone.
    for name in CHARTS {
        std::fs::remove_file(charts.join(name)).unwrap();
    }
    let out = natter_bench(&["report".as_ref(), charts.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("2 runs: natter, second run"), "{stderr}");
    check_charts(&charts, &["natter", "second run"]);
    // A directory with no run in it is an error that says so.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = natter_bench(&["report".as_ref(), empty.as_os_str()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no run in"));

    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
}

const CHARTS: [&str; 4] = ["latency.svg", "cdf.svg", "server.svg", "throughput.svg"];

/// The four charts in `dir` are whole SVG documents with a line for each
/// of `labels`.
fn check_charts(dir: &std::path::Path, labels: &[&str]) {
    for name in CHARTS {
        let svg = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{name}"
        );
        // Tags are balanced: every element opened is closed.
        let opened = svg.matches('<').count() - svg.matches("</").count();
        let closed = svg.matches("/>").count() + svg.matches("</").count();
        assert_eq!(opened, closed, "{name}: unbalanced tags");
        for label in labels {
            let legend = svg.split("<text").skip(1).any(|t| {
                t.split_once('>')
                    .and_then(|(_, rest)| rest.split("</text>").next())
                    .is_some_and(|body| body.trim() == *label)
            });
            assert!(legend, "{name}: no series {label}");
        }
        assert!(!svg.contains("no data"), "{name}: an empty panel");
        assert!(svg.matches("<polyline").count() >= 2, "{name}");
    }
}

/// `natter bench ARGS…`, run to its end.
fn natter_bench(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_natter"))
        .arg("bench")
        .args(args)
        .output()
        .expect("natter bench runs")
}
