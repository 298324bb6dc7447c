//! The `natter serve` binary as an operator runs it: the listening line,
//! a port already in use, and shutdown on SIGTERM/SIGINT.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use common::Client;

const BIN: &str = env!("CARGO_BIN_EXE_natter");

/// Starts `natter serve` on an ephemeral port and reads the bound address from its log.
fn spawn_server(extra: &[&str]) -> (Child, SocketAddr, std::thread::JoinHandle<Vec<String>>) {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--irc-listen",
            "127.0.0.1:0",
        ])
        .args(extra)
        .env("NATTER_LOG", "info")
        .env("NATTER_DB", "off")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn natter");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.trim().parse().expect("address in the listening line");
        }
    };
    // Keep draining the log so the server never blocks on stderr.
    let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect());
    (child, addr, rest)
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn port_zero_logs_the_real_port_and_sigterm_exits_cleanly() {
    let (mut child, addr, log) = spawn_server(&[]);
    assert_ne!(addr.port(), 0);
    let mut a = Client::connect(addr).await;
    a.expect("nickname?").await;
    a.send("alice").await;
    a.expect("You are now known as alice").await;
    a.send("/nick alicia").await;
    a.expect("alicia").await;
    signal(&child, "-TERM");
    let lines = a.until_eof().await;
    assert!(
        lines.iter().any(|l| l.contains("Server shutting down")),
        "{lines:?}"
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    let log = log.join().unwrap();
    assert!(log.iter().any(|l| l.contains("SIGTERM")), "{log:?}");
    // The nick change is logged, and the span carries the new nick after it.
    assert!(
        log.iter()
            .any(|l| l.contains("nick changed from alice to alicia")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("nick=\"alicia\"") && l.contains("disconnected")),
        "{log:?}"
    );
}

#[tokio::test]
async fn sigint_exits_zero() {
    let (mut child, _addr, _log) = spawn_server(&[]);
    signal(&child, "-INT");
    assert!(child.wait().unwrap().success());
}

/// `workers` sets the runtime's worker threads (0, the default: one per
/// core but one, at least one); the server reports the number in its log
/// and in `/metrics`.
#[tokio::test]
async fn the_workers_setting_is_honoured() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let default = cores.saturating_sub(1).max(1);
    for (args, want) in [
        (&["--workers", "1"][..], 1),
        (&["--workers", "3"], 3),
        (&[], default),
    ] {
        let (mut child, addr, log) = spawn_server(args);
        let got = common::metric(addr, "natter_runtime_workers").await;
        signal(&child, "-TERM");
        assert!(child.wait().unwrap().success());
        let log = log.join().unwrap();
        assert_eq!(got, want as f64, "{args:?}: {log:?}");
        assert!(
            log.iter()
                .any(|l| l.contains(&format!(" {want} worker threads"))),
            "{args:?}: {log:?}"
        );
    }
}

#[test]
fn port_in_use_is_a_one_line_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &addr.to_string(),
            "--irc-listen",
            "off",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains(&format!("cannot listen on {addr}")), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn bad_flag_values_are_refused() {
    let out = Command::new(BIN)
        .args(["serve", "--registration-timeout", "soon"])
        .env("NATTER_DB", "off")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad duration"));
}

fn write_config(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("natter-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn config_file_is_read_and_flags_override_it() {
    // The file's listen address is overridden by the --listen flag spawn_server passes.
    let path = write_config(
        "ok.toml",
        "listen = \"127.0.0.1:9\"\ndefault_room = \"hall\"\n",
    );
    let (mut child, addr, _log) = spawn_server(&["--config", path.to_str().unwrap()]);
    let mut a = Client::connect(addr).await;
    a.send("alice").await;
    a.expect("alice joined #hall").await;
    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());
}

#[test]
fn unknown_config_keys_are_refused() {
    let path = write_config("bad.toml", "not_a_setting = 3\n");
    let out = Command::new(BIN)
        .args(["serve", "--config", path.to_str().unwrap()])
        .env("NATTER_DB", "off")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not_a_setting"));
}

#[tokio::test]
async fn irc_port_zero_is_logged_and_answers_irc() {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--irc-listen",
            "127.0.0.1:0",
        ])
        .env("NATTER_LOG", "info")
        .env("NATTER_DB", "off")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn natter");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let irc: SocketAddr = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        if let Some(rest) = line.split("irc listening on ").nth(1) {
            break rest
                .trim()
                .parse()
                .expect("address in the irc listening line");
        }
    };
    let _drain = std::thread::spawn(move || lines.map_while(Result::ok).count());
    assert_ne!(irc.port(), 0);
    let mut a = Client::connect(irc).await;
    a.send("NICK alice").await;
    a.send("USER a 0 * :A").await;
    a.expect(" 001 alice ").await;
    signal(&child, "-TERM");
    let rest = a.until_eof().await;
    assert!(
        rest.iter().any(|l| l.starts_with("ERROR :Closing Link")),
        "{rest:?}"
    );
    assert!(child.wait().unwrap().success());
}

#[test]
fn irc_port_in_use_is_a_one_line_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--irc-listen",
            &addr.to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains(&format!("cannot listen on {addr} (irc_listen)")),
        "{err}"
    );
    let out = Command::new(BIN)
        .args(["serve", "--irc-listen", "nowhere"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HOST:PORT or off"));
}

/// A flood of refused connections costs a few log lines, not one each:
/// the first refusal is logged at once, the rest as "refused N more
/// connections from ADDR in the last …" once per interval, and the lines
/// account for every refusal.
#[tokio::test]
async fn refused_connections_are_logged_in_summary() {
    const FLOOD: u64 = 1000;
    let dir = tempfile::tempdir().expect("temp dir");
    let srv = common::binary::serve(
        &dir.path().join("natter.db"),
        &[
            "--max-per-ip",
            "1",
            "--limit-exempt",
            "none",
            "--connect-rate",
            "0",
            "--refusal-log-interval",
            "300ms",
        ],
    );
    let mut held = Client::connect(srv.addr).await;
    held.expect("nickname?").await;
    for _ in 0..FLOOD {
        let mut c = Client::connect(srv.addr).await;
        let said = c.until_eof().await;
        assert!(
            said.iter().any(|l| l.contains("too many connections")),
            "{said:?}"
        );
    }
    // (refusals the log accounts for, log lines about refusals)
    let tally = || {
        let log = srv.log.lock().expect("log");
        let lines: Vec<&String> = log.iter().filter(|l| l.contains("refused ")).collect();
        let counted = lines
            .iter()
            .map(|l| {
                match l
                    .split("refused ")
                    .nth(1)
                    .and_then(|r| r.split_once(" more connection"))
                {
                    Some((n, _)) => n.parse::<u64>().expect("a count"),
                    None => 1,
                }
            })
            .sum::<u64>();
        (counted, lines.len())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while tally().0 < FLOOD {
        assert!(
            std::time::Instant::now() < deadline,
            "the log accounts for {:?} of {FLOOD} refusals: {:#?}",
            tally(),
            srv.log.lock().expect("log")
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let (counted, lines) = tally();
    assert_eq!(counted, FLOOD);
    assert!(lines < 50, "{lines} log lines for {FLOOD} refusals");
    assert!(srv.logged("refused 127.0.0.1: too many connections from your address (limit 1)"));
    assert!(srv.logged("more connections from 127.0.0.1 in the last 300ms: too many connections"));
    drop(held);
    srv.stop();
}
