//! Test harness: a real server on 127.0.0.1:0 and raw TCP clients; and the
//! rule for tests that need an outside program (tmux, ngircd, python with
//! jaraco/irc): under CI (`CI` set, as `.ci/run` does) a missing one fails
//! the test, elsewhere the test is skipped with a visible `!!! SKIPPED` line.
#![allow(dead_code)]

pub mod binary;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use natter::config::Config;
use natter::server::Server;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long any single expectation may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    /// The IRC listener's address, if it is on.
    pub irc_addr: Option<SocketAddr>,
    pub stop: CancellationToken,
    pub task: JoinHandle<anyhow::Result<()>>,
}

/// Settings for tests: both listeners on free ports (never the default
/// 6667); the banner is sent at once, as by default.
pub fn config() -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        irc_listen: "127.0.0.1:0".parse().unwrap(),
        db: "off".into(),
        ..Config::default()
    }
}

pub async fn start(config: Config) -> TestServer {
    let server = Server::bind(config).await.expect("bind");
    let addr = server.local_addr();
    let irc_addr = server.irc_addr();
    let stop = CancellationToken::new();
    let task = tokio::spawn(server.run(stop.clone()));
    TestServer {
        addr,
        irc_addr,
        stop,
        task,
    }
}

impl TestServer {
    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// A client that has registered as `nick` and read everything up to its room list.
    pub async fn user(&self, nick: &str) -> Client {
        let mut c = self.client().await;
        c.expect("What is your nickname?").await;
        c.send(nick).await;
        c.expect(&format!("You are now known as {nick}")).await;
        c.expect("*** In #").await;
        c
    }

    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("server stops");
    }
}

/// True if CI runs us (then a missing outside program is a failure, not a skip).
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// An outside program the test needs is missing (`what` says which and
/// what did not run): panics under CI, else prints a line that stands out
/// in the test output; the caller then returns. The line goes to stderr
/// directly, past the test harness's capture, so a plain `cargo test`
/// shows it too.
pub fn missing(what: &str) {
    assert!(
        !in_ci(),
        "{what}; under CI that is a failure (.ci/run installs it)"
    );
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n!!! SKIPPED: {what}\n");
}

/// Finds `tool` (also in /usr/sbin, which a non-root PATH may lack).
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// The Python interpreter for tests that run Python: `NATTER_PYTHON` (a
/// relative path counts from the crate root; `.ci/run` sets it to its venv
/// with jaraco/irc installed), else `python3`.
pub fn python() -> PathBuf {
    match std::env::var_os("NATTER_PYTHON").filter(|v| !v.is_empty()) {
        Some(p) => Path::new(env!("CARGO_MANIFEST_DIR")).join(p),
        None => "python3".into(),
    }
}

/// Removes ANSI sequences (the server's colours) so tests can match plain text.
pub fn strip_ansi(s: &str) -> String {
    natter::proto::sanitize::strip_controls(s)
}

pub struct Client {
    pub reader: BufReader<OwnedReadHalf>,
    pub writer: OwnedWriteHalf,
}

impl Client {
    /// The writer half, with everything the server sends this client read
    /// and thrown away by a task of its own: a client that keeps up
    /// without the test looking at what it gets (abort the handle to stop).
    pub fn writer_reading_in_background(self) -> (OwnedWriteHalf, JoinHandle<()>) {
        let mut reader = self.reader;
        let drain = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await;
        });
        (self.writer, drain)
    }

    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (r, w) = stream.into_split();
        Client {
            reader: BufReader::new(r),
            writer: w,
        }
    }

    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write");
    }

    /// The next line, ANSI stripped; None at EOF.
    pub async fn line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(PATIENCE, self.reader.read_until(b'\n', &mut buf))
            .await
            .expect("timed out waiting for a line")
            .ok()?;
        if n == 0 {
            return None;
        }
        let s = String::from_utf8(buf).expect("server sent invalid UTF-8");
        Some(strip_ansi(s.trim_end_matches(['\r', '\n'])))
    }

    /// The next line, raw (ANSI kept).
    pub async fn raw_line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(PATIENCE, self.reader.read_until(b'\n', &mut buf))
            .await
            .expect("timed out waiting for a line")
            .ok()?;
        (n > 0).then(|| String::from_utf8(buf).expect("utf8"))
    }

    /// Reads lines until one contains `needle`; returns it. Panics at EOF.
    pub async fn expect(&mut self, needle: &str) -> String {
        let mut seen = Vec::new();
        loop {
            match self.line().await {
                Some(l) if l.contains(needle) => return l,
                Some(l) => seen.push(l),
                None => panic!("EOF while waiting for {needle:?}; saw {seen:#?}"),
            }
        }
    }

    /// Reads until EOF (or a reset); returns the lines seen.
    pub async fn until_eof(&mut self) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let mut buf = Vec::new();
            match tokio::time::timeout(PATIENCE, self.reader.read_until(b'\n', &mut buf)).await {
                Err(_) => panic!("no EOF; saw {seen:#?}"),
                Ok(Ok(0)) | Ok(Err(_)) => return seen,
                Ok(Ok(_)) => seen.push(strip_ansi(String::from_utf8_lossy(&buf).trim_end())),
            }
        }
    }
}

use natter::proto::json::wire::Stamped;
#[allow(unused_imports)]
pub use natter::proto::json::wire::{Cmd, Event};

/// Reads [`JsonClient`] events until one matches the pattern (and the
/// guard after `if`); the future's output is the expression after `=>`, made
/// from the pattern's bindings, or `()`. Events before it are skipped.
///
/// `expect_event!(c, Event::Message { from, text, .. } => (from, text)).await`
macro_rules! expect_event {
    ($j:expr, $pat:pat $(if $guard:expr)? => $out:expr) => {
        $j.expect_with(stringify!($pat $(if $guard)?), |ev| match ev {
            $pat $(if $guard)? => Some($out),
            _ => None,
        })
    };
    ($j:expr, $pat:pat $(if $guard:expr)?) => {
        expect_event!($j, $pat $(if $guard)? => ())
    };
}
#[allow(unused_imports)]
pub(crate) use expect_event;

/// A client speaking JSON lines. What it reads must be events the wire
/// types describe ([`Event`], with a server time `ts`), or it panics.
pub struct JsonClient {
    pub c: Client,
}

impl JsonClient {
    pub async fn connect(addr: SocketAddr) -> JsonClient {
        JsonClient {
            c: Client::connect(addr).await,
        }
    }

    /// Logs in as `nick` and reads up to the presence list of the default room.
    pub async fn login(addr: SocketAddr, nick: &str) -> JsonClient {
        let mut j = JsonClient::connect(addr).await;
        j.send(Cmd::Login { nick: nick.into() }).await;
        let got = expect_event!(j, Event::Registered { nick, .. } => nick).await;
        assert_eq!(got, nick);
        expect_event!(j, Event::Presence { .. }).await;
        j
    }

    /// Sends one command: a [`Cmd`], or any JSON (`json!`) to send what
    /// [`Cmd`] would not.
    pub async fn send(&mut self, cmd: impl serde::Serialize) {
        let line = serde_json::to_string(&cmd).expect("serializable");
        self.c.send(&line).await;
    }

    /// The next event from the server, skipping the text banner that
    /// precedes protocol detection. None at EOF.
    pub async fn next(&mut self) -> Option<Event<'static>> {
        loop {
            let line = self.c.line().await?;
            if line.starts_with('{') {
                let s: Stamped = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a natter JSON event ({e}): {line}"));
                assert!(s.ts > 1_600_000_000_000, "ts is server time in ms: {line}");
                return Some(s.event);
            }
        }
    }

    /// Reads events until `pick` returns something (see [`expect_event!`]).
    pub async fn expect_with<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(Event<'static>) -> Option<T>,
    ) -> T {
        let mut seen = Vec::new();
        loop {
            match self.next().await {
                Some(ev) => match pick(ev.clone()) {
                    Some(v) => return v,
                    None => seen.push(ev),
                },
                None => panic!("EOF waiting for {what}; saw {seen:#?}"),
            }
        }
    }

    /// Reads until an event of type `kind` arrives; returns it as raw JSON
    /// (for fields around the event itself, such as a page's `more`).
    #[allow(dead_code)]
    pub async fn expect(&mut self, kind: &str) -> serde_json::Value {
        loop {
            let line = self
                .c
                .line()
                .await
                .unwrap_or_else(|| panic!("EOF waiting for {kind}"));
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if v["type"] == kind {
                    return v;
                }
            }
        }
    }

    /// Reads until an error event arrives; returns its code.
    pub async fn expect_error(&mut self) -> String {
        let (code, message) =
            expect_event!(self, Event::Error { code, message, .. } => (code, message)).await;
        assert!(!message.is_empty(), "an error says what is wrong");
        code.into_owned()
    }
}

/// A raw IRC client over a [`Client`] connection.
pub struct IrcClient {
    pub c: Client,
}

impl IrcClient {
    pub async fn connect(addr: SocketAddr) -> IrcClient {
        IrcClient {
            c: Client::connect(addr).await,
        }
    }

    /// Connects, registers as `nick` (no CAP) and reads up to the end of
    /// the MOTD (IRC users join no room by themselves).
    pub async fn register(addr: SocketAddr, nick: &str) -> IrcClient {
        let mut i = IrcClient::connect(addr).await;
        i.send(&format!("NICK {nick}")).await;
        i.send(&format!("USER {nick} 0 * :{nick} the tester")).await;
        i.numeric("001").await;
        i.numeric("376").await;
        i
    }

    /// Connects and registers as `nick` with `caps` (and `sasl`), logging
    /// in to `account` with SASL PLAIN and `password`, up to `CAP END`
    /// after 903: the welcome is the caller's to read.
    pub async fn register_sasl(
        addr: SocketAddr,
        nick: &str,
        account: &str,
        password: &str,
        caps: &str,
    ) -> IrcClient {
        use base64ct::{Base64, Encoding};
        let mut i = IrcClient::connect(addr).await;
        i.send(&format!("CAP REQ :{caps} sasl")).await;
        i.send(&format!("NICK {nick}")).await;
        i.send(&format!("USER {nick} 0 * :{nick}")).await;
        i.expect(" ACK ").await;
        i.send("AUTHENTICATE PLAIN").await;
        i.expect("AUTHENTICATE +").await;
        let payload = Base64::encode_string(format!("\0{account}\0{password}").as_bytes());
        i.send(&format!("AUTHENTICATE {payload}")).await;
        i.numeric("903").await;
        i.send("CAP END").await;
        i
    }

    /// [`IrcClient::register`], then `JOIN #lobby` (where text and JSON
    /// users start), read up to its end of NAMES.
    pub async fn register_lobby(addr: SocketAddr, nick: &str) -> IrcClient {
        let mut i = IrcClient::register(addr, nick).await;
        i.join("#lobby").await;
        i
    }

    /// Joins `room` and reads up to its end of NAMES.
    pub async fn join(&mut self, room: &str) {
        self.send(&format!("JOIN {room}")).await;
        self.numeric("366").await;
    }

    pub async fn send(&mut self, line: &str) {
        self.c.send(line).await;
    }

    /// The next line; asserts it is within IRC's 512 bytes (tags aside).
    pub async fn line(&mut self) -> Option<String> {
        let l = self.c.raw_line().await?;
        let l = l.trim_end_matches(['\r', '\n']).to_string();
        let body = match l.strip_prefix('@') {
            Some(rest) => rest.split_once(' ').map_or("", |(_, b)| b),
            None => &l,
        };
        assert!(body.len() <= 510, "line over 512 bytes: {l}");
        Some(l)
    }

    /// Reads lines until one contains `needle`.
    pub async fn expect(&mut self, needle: &str) -> String {
        let mut seen = Vec::new();
        loop {
            match self.line().await {
                Some(l) if l.contains(needle) => return l,
                Some(l) => seen.push(l),
                None => panic!("EOF while waiting for {needle:?}; saw {seen:#?}"),
            }
        }
    }

    /// Reads lines until a numeric reply `code` (e.g. "433") arrives.
    pub async fn numeric(&mut self, code: &str) -> String {
        let mut seen = Vec::new();
        loop {
            match self.line().await {
                Some(l) if l.split(' ').nth(1) == Some(code) => return l,
                Some(l) => seen.push(l),
                None => panic!("EOF while waiting for numeric {code}; saw {seen:#?}"),
            }
        }
    }

    /// Sends `PING token` and returns every line before its `PONG`.
    pub async fn sync(&mut self) -> Vec<String> {
        self.send("PING :sync-point").await;
        let mut seen = Vec::new();
        loop {
            match self.line().await {
                Some(l) if l.contains("PONG") && l.contains("sync-point") => return seen,
                Some(l) => seen.push(l),
                None => panic!("EOF while waiting for PONG; saw {seen:#?}"),
            }
        }
    }
}

/// One sample of `series` (its full name, e.g. `natter_store_paced_total`)
/// from the `/metrics` of the server at `addr` (its main port answers HTTP).
pub async fn metric(addr: SocketAddr, series: &str) -> f64 {
    use tokio::io::AsyncReadExt;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(PATIENCE, s.read_to_string(&mut out))
        .await
        .expect("the metrics come")
        .unwrap();
    out.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {out}"))
}
