//! The connection task: connects, lets the [`Protocol`] log in, relays
//! between the socket and the front end, and when the connection fails or
//! drops, says so and reconnects with exponential backoff (the protocol then
//! logs in again and rejoins its rooms). What the user sends before the
//! protocol is ready (logged in, rooms rejoined) is queued and sent, in
//! order, after.
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

/// Where to connect and how to retry.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    pub addr: String,
    /// TLS: the client configuration and the name the certificate must be for.
    pub tls: Option<(Arc<rustls::ClientConfig>, String)>,
    pub backoff: Backoff,
    /// Reconnect after a lost connection (else give up).
    pub reconnect: bool,
}

/// A connection, plain or over TLS.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}

/// Connects (and shakes hands, with TLS).
async fn connect(cfg: &ConnConfig) -> Result<Box<dyn Stream>, String> {
    let tcp = TcpStream::connect(&cfg.addr)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let Some((config, host)) = &cfg.tls else {
        return Ok(Box::new(tcp));
    };
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
    mut cfg: ConnConfig,
    mut proto: Box<dyn Protocol>,
    mut requests: mpsc::Receiver<Request>,
    events: mpsc::Sender<Event>,
) {
    let mut pending = VecDeque::new();
    loop {
        let status = |s| Event::now(EventKind::Status(s));
        let connecting = Status::Connecting {
            addr: cfg.addr.clone(),
        };
        if events.send(status(connecting)).await.is_err() {
            return;
        }
        let reason = match timeout(CONNECT_TIMEOUT, connect(&cfg)).await {
            Ok(Ok(stream)) => {
                let mut c = Conn {
                    proto: &mut *proto,
                    events: &events,
                    pending: &mut pending,
                    backoff: &mut cfg.backoff,
                    awaiting_nick: false,
                    quit_by: None,
                };
                match c.session(&cfg.addr, stream, &mut requests).await {
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
        let retry_in = cfg.reconnect.then(|| cfg.backoff.next_delay());
        let lost = Status::Lost {
            addr: cfg.addr.clone(),
            reason,
            retry_in,
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
    backoff: &'a mut Backoff,
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
                        self.backoff.reset();
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
}
