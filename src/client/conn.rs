//! The connection task: connects, lets the [`Protocol`] log in, relays
//! between the socket and the front end, and when the connection fails or
//! drops, says so and reconnects with exponential backoff (the protocol then
//! logs in again and rejoins its rooms). Given several servers (the nodes
//! of a cluster), a lost one is followed at once by the next ([`Rotation`]);
//! the backoff delay comes only after every one of them failed in turn.
//! What the user sends before the protocol is ready (logged in, rooms
//! rejoined) is queued and sent, in order, after.
//! A user quit sends the protocol's quit and waits for the server to close,
//! which it does once it has handled every line sent before the quit. The
//! server may be slow to get there (flood control paces a fast sender), so
//! the wait gives up only after [`QUIT_GRACE`] with nothing from the server,
//! never while it is still answering: closing earlier would throw away the
//! lines it has not read yet.
//!
//! Nothing the front end sends is dropped: while the protocol is not ready
//! its requests wait in a queue, and when that is full the connection stops
//! taking more, so the front end waits (a script's stdin is simply read
//! later).

use std::collections::VecDeque;
use std::time::Duration;

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout, Instant};

use super::command::Request;
use super::event::{Event, EventKind, Status};
use super::lines::LineReader;
use super::protocol::{Output, Protocol};

/// Longest line accepted from a server (longer ones are dropped).
const MAX_LINE: usize = 64 * 1024;
/// How long a TCP connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one write may block before the connection counts as dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// After a quit, how long the server may say nothing before we stop
/// waiting for it to close.
const QUIT_GRACE: Duration = Duration::from_secs(3);
/// Requests kept while not logged in; beyond that the front end waits.
const MAX_PENDING: usize = 1000;

/// Exponential backoff between reconnects: `min`, doubling to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let max = max.max(min);
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The delay before the next attempt; doubles the one after (capped).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// A login succeeded: start again from `min`.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Which of several servers to try next, and how long to wait first: the
/// next one at once, until all have failed since the last login; then the
/// backoff delay. With one server it is the plain backoff.
#[derive(Debug, Clone)]
pub struct Rotation {
    count: usize,
    current: usize,
    /// Servers that failed in a row since the last login (or full round).
    failed: usize,
    backoff: Backoff,
}

impl Rotation {
    pub fn new(count: usize, backoff: Backoff) -> Rotation {
        Rotation {
            count: count.max(1),
            current: 0,
            failed: 0,
            backoff,
        }
    }

    /// The index of the server to use now.
    pub fn current(&self) -> usize {
        self.current
    }

    /// Logged in: the next loss starts a fresh round with the shortest delay.
    pub fn logged_in(&mut self) {
        self.failed = 0;
        self.backoff.reset();
    }

    /// The current server failed or was lost: move to the next one and
    /// return how long to wait before trying it.
    pub fn failed(&mut self) -> Duration {
        self.current = (self.current + 1) % self.count;
        self.failed += 1;
        if self.failed < self.count {
            return Duration::ZERO;
        }
        self.failed = 0;
        self.backoff.next_delay()
    }
}

/// One server to connect to.
#[derive(Debug, Clone)]
pub struct Server {
    /// HOST:PORT.
    pub addr: String,
    /// TLS: the name the server's certificate must be for.
    pub host: String,
}

/// Where to connect and how to retry.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    /// Tried in this order, from the first; at least one.
    pub servers: Vec<Server>,
    /// TLS: the client configuration.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub backoff: Backoff,
    /// Reconnect after a lost connection (else give up).
    pub reconnect: bool,
}

/// A connection, plain or over TLS.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}

/// Connects (and shakes hands, with TLS).
async fn connect(
    server: &Server,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Box<dyn Stream>, String> {
    let tcp = TcpStream::connect(&server.addr)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let Some(config) = tls else {
        return Ok(Box::new(tcp));
    };
    let host = &server.host;
    let name = rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|e| format!("cannot use {host:?} as a TLS server name: {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    Ok(Box::new(tls))
}

/// How one connection ended.
enum End {
    /// The user quit (or the front end went away): stop.
    Quit,
    /// The connection failed or dropped: maybe reconnect.
    Lost(String),
}

/// Runs until the user quits (or, without reconnect, the connection is
/// lost). `requests` come from the front end; `events` go to it.
pub async fn run(
    cfg: ConnConfig,
    mut proto: Box<dyn Protocol>,
    mut requests: mpsc::Receiver<Request>,
    events: mpsc::Sender<Event>,
) {
    let mut pending = VecDeque::new();
    let mut rotation = Rotation::new(cfg.servers.len(), cfg.backoff.clone());
    loop {
        let status = |s| Event::now(EventKind::Status(s));
        let Some(server) = cfg.servers.get(rotation.current()) else {
            return; // no server at all: `run` is never given that
        };
        let connecting = Status::Connecting {
            addr: server.addr.clone(),
        };
        if events.send(status(connecting)).await.is_err() {
            return;
        }
        let reason = match timeout(CONNECT_TIMEOUT, connect(server, cfg.tls.as_ref())).await {
            Ok(Ok(stream)) => {
                let mut c = Conn {
                    proto: &mut *proto,
                    events: &events,
                    pending: &mut pending,
                    rotation: &mut rotation,
                    awaiting_nick: false,
                    quit_by: None,
                };
                match c.session(&server.addr, stream, &mut requests).await {
                    End::Quit => {
                        let _ = events.send(status(Status::Closed)).await;
                        return;
                    }
                    End::Lost(reason) => reason,
                }
            }
            Ok(Err(e)) => e,
            Err(_) => "cannot connect: timed out".to_string(),
        };
        let addr = server.addr.clone();
        let retry_in = cfg.reconnect.then(|| rotation.failed());
        let next = cfg
            .servers
            .get(rotation.current())
            .filter(|next| retry_in.is_some() && next.addr != addr)
            .map(|next| next.addr.clone());
        let lost = Status::Lost {
            addr,
            reason,
            retry_in,
            next,
        };
        if events.send(status(lost)).await.is_err() {
            return;
        }
        let Some(delay) = retry_in else {
            return;
        };
        // Wait; a quit ends at once, anything else waits for the next login.
        let deadline = sleep(delay);
        tokio::pin!(deadline);
        loop {
            let room = pending.len() < MAX_PENDING;
            tokio::select! {
                _ = &mut deadline => break,
                req = requests.recv(), if room => match req {
                    None | Some(Request::Quit(_)) => {
                        let _ = events.send(status(Status::Closed)).await;
                        return;
                    }
                    Some(Request::Login(_)) => {} // asked for again after connecting
                    Some(req) => {
                        if !queue(&mut pending, req) {
                            let _ = events.send(full()).await;
                        }
                    }
                },
            }
        }
    }
}

fn queue(pending: &mut VecDeque<Request>, req: Request) -> bool {
    if pending.len() >= MAX_PENDING {
        return false;
    }
    pending.push_back(req);
    true
}

fn full() -> Event {
    Event::now(EventKind::Error {
        code: "client".into(),
        message: format!(
            "not logged in: more than {MAX_PENDING} lines waiting; this one is dropped"
        ),
    })
}

/// One TCP connection's worth of state.
struct Conn<'a> {
    proto: &'a mut dyn Protocol,
    events: &'a mpsc::Sender<Event>,
    pending: &'a mut VecDeque<Request>,
    rotation: &'a mut Rotation,
    /// The front end was asked for a nickname and has not answered.
    awaiting_nick: bool,
    /// Quitting: give up waiting for the server's close at this time.
    quit_by: Option<Instant>,
}

impl Conn<'_> {
    async fn session(
        &mut self,
        addr: &str,
        stream: Box<dyn Stream>,
        requests: &mut mpsc::Receiver<Request>,
    ) -> End {
        let (rd, mut wr) = tokio::io::split(stream);
        let mut reader = LineReader::new(rd, MAX_LINE);
        let connected = Status::Connected {
            addr: addr.to_string(),
            protocol: self.proto.name(),
        };
        let mut out = Output::default();
        out.show(EventKind::Status(connected));
        self.proto.connected(&mut out);
        if let Err(end) = self.flush(&mut out, &mut wr).await {
            return end;
        }
        loop {
            let quit_by = self.quit_by;
            // A full queue takes nothing more until it drains, except the
            // answer to "what is your nickname?" (which will drain it).
            let take =
                quit_by.is_none() && (self.pending.len() < MAX_PENDING || self.awaiting_nick);
            tokio::select! {
                line = reader.next_line() => {
                    let line = match line {
                        Ok(Some(line)) => line,
                        Ok(None) if self.quit_by.is_some() => return End::Quit,
                        Ok(None) => return End::Lost("the server closed the connection".into()),
                        Err(_) if self.quit_by.is_some() => return End::Quit,
                        Err(e) => return End::Lost(format!("connection error: {e}")),
                    };
                    if self.quit_by.is_some() {
                        // Still answering: it has not reached our quit yet.
                        self.quit_by = Some(Instant::now() + QUIT_GRACE);
                    }
                    let was = self.proto.ready();
                    self.proto.receive(&line, &mut out);
                    if !was && self.proto.ready() {
                        self.rotation.logged_in();
                        while let Some(req) = self.pending.pop_front() {
                            self.dispatch(req, &mut out);
                        }
                    }
                }
                req = requests.recv(), if take => match req {
                    // The front end is gone: leave.
                    None => self.dispatch(Request::Quit(None), &mut out),
                    Some(req) => self.request(req, &mut out),
                },
                _ = tokio::time::sleep_until(quit_by.unwrap_or_else(Instant::now)), if quit_by.is_some() => {
                    return End::Quit;
                }
            }
            if let Err(end) = self.flush(&mut out, &mut wr).await {
                return end;
            }
            if let Some(reason) = out.reconnect.take() {
                return End::Lost(reason);
            }
        }
    }

    /// A request from the front end: now, or queued until logged in.
    fn request(&mut self, req: Request, out: &mut Output) {
        match req {
            Request::Login(_) => {
                self.awaiting_nick = false;
                self.dispatch(req, out);
            }
            // Quitting while asked for a nick, or with nothing queued: now.
            Request::Quit(_) if self.awaiting_nick || self.pending.is_empty() => {
                self.dispatch(req, out)
            }
            req if !self.proto.ready() => {
                if !queue(self.pending, req) {
                    out.event(full());
                }
            }
            req => self.dispatch(req, out),
        }
    }

    fn dispatch(&mut self, req: Request, out: &mut Output) {
        if matches!(req, Request::Quit(_)) && self.quit_by.is_none() {
            self.quit_by = Some(Instant::now() + QUIT_GRACE);
        }
        self.proto.request(&req, out);
    }

    /// Sends what the protocol produced and hands its events to the front end.
    async fn flush(
        &mut self,
        out: &mut Output,
        wr: &mut WriteHalf<Box<dyn Stream>>,
    ) -> Result<(), End> {
        if !out.lines.is_empty() {
            let mut bytes = Vec::new();
            for line in out.lines.drain(..) {
                bytes.extend_from_slice(line.as_bytes());
                bytes.extend_from_slice(b"\r\n");
            }
            let write = async {
                wr.write_all(&bytes).await?;
                wr.flush().await // TLS: out of the record buffer
            };
            match timeout(WRITE_TIMEOUT, write).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) if self.quit_by.is_some() => return Err(End::Quit),
                Ok(Err(e)) => return Err(End::Lost(format!("connection error: {e}"))),
                Err(_) => return Err(End::Lost("the server stopped reading".into())),
            }
        }
        for ev in out.events.drain(..) {
            if matches!(ev.kind, EventKind::NeedNick { .. }) {
                self.awaiting_nick = true;
            }
            if self.events.send(ev).await.is_err() {
                return Err(End::Quit);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(500), Duration::from_secs(10));
        let got: Vec<_> = (0..7).map(|_| b.next_delay()).collect();
        assert_eq!(
            got,
            [
                ms(500),
                ms(1000),
                ms(2000),
                ms(4000),
                ms(8000),
                ms(10_000),
                ms(10_000)
            ]
        );
        b.reset();
        assert_eq!(b.next_delay(), ms(500));
    }

    #[test]
    fn a_rotation_tries_every_server_at_once_then_backs_off() {
        let ms = Duration::from_millis;
        let mut r = Rotation::new(3, Backoff::new(ms(100), ms(1000)));
        assert_eq!(r.current(), 0);
        let mut got = vec![];
        for _ in 0..7 {
            let d = r.failed();
            got.push((r.current(), d));
        }
        let zero = Duration::ZERO;
        assert_eq!(
            got,
            [
                (1, zero),
                (2, zero),
                (0, ms(100)),
                (1, zero),
                (2, zero),
                (0, ms(200)),
                (1, zero)
            ]
        );
        // A login: the next loss moves on at once, the round restarts and
        // the delay is the shortest again.
        r.logged_in();
        assert_eq!((r.failed(), r.current()), (zero, 2));
        assert_eq!((r.failed(), r.current()), (zero, 0));
        assert_eq!((r.failed(), r.current()), (ms(100), 1));
    }

    #[test]
    fn a_rotation_of_one_server_is_the_plain_backoff() {
        let ms = Duration::from_millis;
        let mut r = Rotation::new(1, Backoff::new(ms(100), ms(1000)));
        assert_eq!(
            [r.failed(), r.failed(), r.failed()],
            [ms(100), ms(200), ms(400)]
        );
        assert_eq!(r.current(), 0);
        r.logged_in();
        assert_eq!(r.failed(), ms(100));
    }
}
