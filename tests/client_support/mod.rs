//! Helpers for the `natter chat` tests: the client binary driven through
//! pipes ([`Chat`]), a private tmux server for the TUI ([`Tmux`]), and a
//! throwaway ngircd for IRC mode ([`Ngircd`]). Waiting is always for a
//! condition (a line, a screen, an exit), bounded by [`PATIENCE`].
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{find_tool, missing};

pub const BIN: &str = env!("CARGO_BIN_EXE_natter");

/// How long any single expectation may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// How often a condition that cannot be waited on directly is re-checked.
const POLL: Duration = Duration::from_millis(25);

/// A unique, empty, world-writable scratch directory (removed on drop).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("natter-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        // ngircd drops root privileges to "nobody" and still writes its pid file here.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Calls `check` until it returns `Some`, or panics after [`PATIENCE`]
/// with `what` and the last state `describe` gives.
pub fn wait_for<T>(
    what: &str,
    mut check: impl FnMut() -> Option<T>,
    describe: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}; last state:\n{}", describe());
        }
        std::thread::sleep(POLL);
    }
}

/// Starts a thread that sends each line of `r` to the returned channel.
fn lines_of(r: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// `natter chat` in plain mode, stdin and stdout on pipes.
pub struct Chat {
    pub child: Child,
    stdin: Option<ChildStdin>,
    out: mpsc::Receiver<String>,
    /// Every stdout line read so far.
    pub seen: Vec<String>,
    err: mpsc::Receiver<String>,
    /// Every stderr line read so far.
    err_seen: Vec<String>,
}

impl Chat {
    /// Runs `natter chat ARGS` (NO_COLOR unset: pipes get no colour anyway).
    pub fn spawn(args: &[&str]) -> Chat {
        Chat::spawn_with(args, &[])
    }

    /// [`spawn`](Self::spawn) with these environment variables set.
    pub fn spawn_with(args: &[&str], env: &[(&str, &str)]) -> Chat {
        let mut child = Command::new(BIN)
            .arg("chat")
            .args(args)
            .env_remove("NO_COLOR")
            .env_remove("NATTER_NICK")
            .env_remove("NATTER_PASSWORD")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn natter chat");
        let stdin = child.stdin.take();
        let out = lines_of(child.stdout.take().expect("stdout"));
        let err = lines_of(child.stderr.take().expect("stderr"));
        Chat {
            child,
            stdin,
            out,
            seen: Vec::new(),
            err,
            err_seen: Vec::new(),
        }
    }

    /// Types one line.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").expect("write to natter chat");
        stdin.flush().expect("flush");
    }

    /// Closes stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Reads stdout until a line contains `needle`; returns that line.
    pub fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        let start = self.seen.len();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => {
                    let stderr = self.stderr();
                    panic!(
                        "{e:?} waiting for {needle:?}; lines since the last match: {:#?}\nstderr: {stderr:?}",
                        &self.seen[start..],
                    )
                }
            }
        }
    }

    /// What was printed on stderr so far (all of it after [`wait`](Self::wait)).
    pub fn stderr(&mut self) -> Vec<String> {
        self.err_seen.extend(self.err.try_iter());
        self.err_seen.clone()
    }

    /// Waits for the process to exit; reads the rest of stdout into `seen`.
    pub fn wait(&mut self) -> ExitStatus {
        let child = &mut self.child;
        let status = wait_for(
            "natter chat to exit",
            || child.try_wait().ok().flatten(),
            String::new,
        );
        self.seen.extend(self.out.iter());
        self.err_seen.extend(self.err.iter());
        status
    }
}

impl Drop for Chat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True if the IRC-style time stamp `[HH:MM] ` starts `line`.
pub fn stamped(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 8
        && b[0] == b'['
        && b[1..3].iter().all(u8::is_ascii_digit)
        && b[3] == b':'
        && b[4..6].iter().all(u8::is_ascii_digit)
        && &b[6..8] == b"] "
}

/// A private tmux server (own socket) running one session, `chat`.
pub struct Tmux {
    dir: TempDir,
    socket: PathBuf,
}

impl Tmux {
    /// Starts `command` in a detached `width`x`height` session. `None` (with
    /// the reason printed) if tmux is not installed, except in CI.
    pub fn start(command: &str, width: u16, height: u16) -> Option<Tmux> {
        if find_tool("tmux").is_none() {
            missing("tmux is not installed; the TUI test did not run");
            return None;
        }
        let dir = TempDir::new("tmux");
        let socket = dir.path().join("sock");
        let conf = dir.path().join("tmux.conf");
        // The pane stays after the program exits, so its last screen can be read.
        std::fs::write(&conf, "set -g remain-on-exit on\nset -g status off\n")
            .expect("write tmux.conf");
        let t = Tmux { dir, socket };
        let conf = conf.to_string_lossy().into_owned();
        let (w, h) = (width.to_string(), height.to_string());
        // The shell records how the program ended, for `wait_exit`.
        let status = t.dir.path().join("status");
        let command = format!("{command}; echo \"exit $?\" > {}", status.display());
        t.run(&[
            "-f",
            &conf,
            "new-session",
            "-d",
            "-s",
            "chat",
            "-x",
            &w,
            "-y",
            &h,
            &command,
        ]);
        Some(t)
    }

    /// Runs a tmux command against this server; returns its stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-u")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux");
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The screen as text (`escapes`: with SGR attribute sequences).
    pub fn capture(&self, escapes: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", "chat"];
        if escapes {
            args.push("-e");
        }
        self.run(&args)
    }

    /// Types `text` literally.
    pub fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "chat", "-l", text]);
    }

    /// Presses keys by tmux name (`Enter`, `Tab`, `C-u`, `PPage`).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "chat"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Polls the screen until `check` accepts it; returns that screen.
    pub fn wait_screen(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        wait_for(
            what,
            || Some(self.capture(false)).filter(|s| check(s)),
            || self.capture(false),
        )
    }

    /// How the program ended, once it has: `exit N` (from the status file
    /// the session's shell writes; tmux 3.3's own `pane_dead_status` was
    /// seen never to arrive, the pane's process left a zombie).
    pub fn wait_exit(&self) -> String {
        let status = self.dir.path().join("status");
        wait_for(
            "the program to exit",
            || {
                std::fs::read_to_string(&status)
                    .ok()
                    .filter(|s| s.ends_with('\n'))
                    .map(|s| s.trim().to_string())
            },
            || self.capture(false),
        )
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

/// A throwaway ngircd on a free loopback port.
pub struct Ngircd {
    child: Child,
    pub port: u16,
    _dir: TempDir,
    log: mpsc::Receiver<String>,
}

impl Ngircd {
    /// Starts ngircd; `None` (with the reason printed) if it is not
    /// installed, except in CI.
    pub fn start() -> Option<Ngircd> {
        let Some(bin) = find_tool("ngircd") else {
            missing("ngircd is not installed; the IRC test did not run");
            return None;
        };
        let dir = TempDir::new("ngircd");
        // ngircd cannot be told to bind port 0 and report it, so take a free
        // port from the kernel and hand it over. Race: another process could
        // take the port between this drop and ngircd's bind; then ngircd
        // fails to listen and the test fails loudly rather than hanging.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let conf = dir.path().join("ngircd.conf");
        let d = dir.path().display();
        std::fs::write(
            &conf,
            format!(
                "[Global]\n\
                 Name = irc.natter.test\n\
                 Info = natter client test server\n\
                 AdminInfo1 = natter tests\n\
                 AdminInfo2 = loopback only\n\
                 AdminEMail = nobody@localhost\n\
                 Listen = 127.0.0.1\n\
                 Ports = {port}\n\
                 PidFile = {d}/ngircd.pid\n\
                 MotdPhrase = \"natter test server\"\n\
                 [Limits]\n\
                 MaxNickLength = 30\n\
                 MaxConnectionsIP = 0\n\
                 MaxPenaltyTime = 0\n\
                 [Options]\n\
                 PAM = no\n\
                 Ident = no\n\
                 DNS = no\n"
            ),
        )
        .expect("write ngircd.conf");
        // Running as root is fine: without ServerUID ngircd switches to "nobody".
        let mut child = Command::new(bin)
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ngircd");
        let log = lines_of(child.stdout.take().expect("stdout"));
        let err = lines_of(child.stderr.take().expect("stderr"));
        let mut seen = Vec::new();
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match log.recv_timeout(left) {
                Ok(l) if l.contains("ready") => break,
                Ok(l) => seen.push(l),
                Err(e) => panic!(
                    "ngircd did not become ready ({e:?}): {seen:#?} {:?}",
                    err.try_iter().collect::<Vec<_>>()
                ),
            }
        }
        assert!(
            seen.iter().any(|l| l.contains(&format!(":{port}"))),
            "ngircd is not listening on {port}: {seen:#?}"
        );
        Some(Ngircd {
            child,
            port,
            _dir: dir,
            log,
        })
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Ngircd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
