//! The real `natter` binary as a child process: `natter serve` on a
//! database file, found by the "listening on" line of its log, and the
//! `natter db` commands.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};

pub const BIN: &str = env!("CARGO_BIN_EXE_natter");

/// linux/capability.h
const CAP_DAC_OVERRIDE: libc::c_ulong = 1;

/// A `natter serve` child process.
pub struct Natter {
    pub child: Child,
    pub addr: SocketAddr,
    /// Everything it logged so far (stderr), line by line.
    pub log: Arc<Mutex<Vec<String>>>,
    drain: Option<std::thread::JoinHandle<()>>,
}

/// How a child is started: the plain way, or (as root) without the
/// capability that lets root write files it has no permission for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    Plain,
    /// Root's `CAP_DAC_OVERRIDE` dropped (from the bounding set, so the
    /// exec'd program never gets it back): file modes bind root too.
    NoDacOverride,
}

/// `natter serve --db DB --listen 127.0.0.1:0 --irc-listen off` and
/// `extra`, with flood control off; `Err` holds the log of a server that
/// exited before listening, and its status.
pub fn try_serve(
    db: &Path,
    extra: &[&str],
    privilege: Privilege,
) -> Result<Natter, (ExitStatus, Vec<String>)> {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--irc-listen", "off"])
        .arg("--db")
        .arg(db)
        .args(["--flood-rate", "0"])
        .args(extra)
        .env("NATTER_LOG", "info")
        .env_remove("NATTER_DB")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if privilege == Privilege::NoDacOverride {
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().expect("spawn natter");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut addr = None;
    for line in lines.by_ref() {
        let Ok(line) = line else { break };
        log.lock().unwrap().push(line.clone());
        if let Some(rest) = line.split("listening on ").nth(1) {
            addr = Some(rest.trim().parse().expect("address in the listening line"));
            break;
        }
    }
    let Some(addr) = addr else {
        let status = child.wait().expect("wait for natter");
        let log = log.lock().unwrap().clone();
        return Err((status, log));
    };
    // Keep draining the log so the server never blocks on stderr.
    let drain = std::thread::spawn({
        let log = log.clone();
        move || {
            for line in lines.map_while(Result::ok) {
                log.lock().unwrap().push(line);
            }
        }
    });
    Ok(Natter {
        child,
        addr,
        log,
        drain: Some(drain),
    })
}

/// Starts `natter serve` on `db`; panics with its log if it does not start.
pub fn serve(db: &Path, extra: &[&str]) -> Natter {
    try_serve(db, extra, Privilege::Plain)
        .unwrap_or_else(|(status, log)| panic!("natter did not start ({status}): {log:#?}"))
}

impl Natter {
    /// SIGKILL: no shutdown, no flush, no goodbye.
    pub fn kill9(&mut self) {
        // SAFETY: plain syscall on our own child's pid.
        let r = unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        assert_eq!(r, 0, "kill -9");
        let status = self.child.wait().expect("wait");
        assert!(!status.success(), "killed: {status}");
        self.join_log();
    }

    /// SIGTERM and wait: a clean stop, which must exit 0.
    pub fn stop(mut self) -> Vec<String> {
        // SAFETY: plain syscall on our own child's pid.
        let r = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(r, 0, "kill -TERM");
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "clean stop: {status}");
        self.join_log();
        self.log.lock().unwrap().clone()
    }

    fn join_log(&mut self) {
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
    }

    /// Whether the log has a line with `needle` so far.
    pub fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }
}

impl Drop for Natter {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `natter ARGS…` to completion (no `NATTER_DB` from outside).
pub fn natter(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("NATTER_DB")
        .env("NATTER_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .expect("run natter")
}

/// Adds `n` lines said by `from` to room `room` of the database at `db`
/// (created if missing), through the store's own writer, as a server
/// would have stored them: seq after `first_seq`, ids and times made up
/// (older than now, one millisecond apart). For tests that need a big file.
pub fn seed_history(db: &Path, room: &str, from: &str, first_seq: u64, n: u64) {
    use natter::hub::Store;
    use natter::proto::{ConnId, Fact, FactBody, MsgId};
    use natter::store::sqlite::{Retention, SqliteStore};
    let keep_all = Retention {
        per_room: 0,
        max_age: std::time::Duration::ZERO,
    };
    let (store, _failures) = SqliteStore::open(db, 0, natter::config::DbSync::Full, keep_all)
        .expect("open the database");
    let start_ms = natter::proto::now_ms() - n - 60_000;
    let source: Arc<str> = format!("{from}!{from}@seed").into();
    let mut ticket = 0;
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let facts = chunk
            .iter()
            .map(|&i| {
                let at_ms = start_ms + i;
                Fact {
                    // UUIDv7 layout: 48 bits of ms, version 7, a counter.
                    id: MsgId((u128::from(at_ms) << 80) | (0x7 << 76) | u128::from(i)),
                    at_ms,
                    by: ConnId::new(0, 1),
                    source: source.clone(),
                    room: Some(room.into()),
                    seq: first_seq + 1 + i,
                    body: FactBody::Said {
                        from: from.into(),
                        text: format!("seeded line {i} with some text to make it look real").into(),
                        action: false,
                    },
                }
            })
            .collect();
        ticket = store.submit(facts);
    }
    let watermark = store.watermark().expect("the SQLite store has a watermark");
    // On a thread of its own: callers may be inside a runtime already.
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            rt.block_on(watermark.reached(ticket));
        });
    });
    assert!(!watermark.failed(ticket), "seeding {db:?} failed");
}
