//! One connection's task: reads bytes, frames and decodes them into
//! commands for the hub, and writes what the hub queued for it. Holds the
//! per-connection limits: line length, registration timeout, the bounded
//! outbound queue and the write timeout.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::Shared;
use crate::hub::{ConnId, Hub, Outbox, Outcome};
use crate::proto::line::{LineDecoder, LineError};
use crate::proto::{text, ErrorCode, Event, EventBody, Flavor};

/// Most events rendered into one write.
const BATCH: usize = 256;
/// Bytes read per wakeup.
const READ_CHUNK: usize = 8 * 1024;

/// A member's outbound queue as the hub sees it. A full queue marks the
/// member as a slow consumer: `kill` ends its session at once.
#[derive(Clone)]
pub(crate) struct Queue {
    tx: mpsc::Sender<Arc<Event>>,
    kill: CancellationToken,
}

impl Outbox for Queue {
    fn push(&self, ev: &Arc<Event>) -> bool {
        match self.tx.try_send(ev.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.kill.cancel();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// The protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Text { color: bool },
}

struct Session {
    id: ConnId,
    shared: Arc<Shared>,
    stream: TcpStream,
    decoder: LineDecoder,
    proto: Proto,
    registered: bool,
    wbuf: Vec<u8>,
}

/// Why a session ended, for the log and the room.
enum End {
    Closed,
    Quit,
    Error(io::Error),
    RegistrationTimeout,
    SlowConsumer,
    Shutdown,
}

pub(crate) async fn run(shared: Arc<Shared>, stream: TcpStream, id: ConnId) {
    let (tx, mut rx) = mpsc::channel(shared.config.send_queue.max(1));
    let kill = CancellationToken::new();
    shared.hub().connect(
        id,
        Queue {
            tx,
            kill: kill.clone(),
        },
    );
    info!("connected");
    let mut s = Session {
        id,
        decoder: LineDecoder::new(shared.config.max_line_bytes),
        shared,
        stream,
        proto: Proto::Text { color: true },
        registered: false,
        wbuf: Vec::new(),
    };
    let end = s.run(&mut rx, &kill).await;
    let reason = match &end {
        End::Closed => "connection closed".to_string(),
        End::Quit => "quit".to_string(),
        End::Error(e) => format!("connection error: {e}"),
        End::RegistrationTimeout => "registration timeout".to_string(),
        End::SlowConsumer => "send queue full (not reading)".to_string(),
        End::Shutdown => "server shutting down".to_string(),
    };
    match end {
        // The hub already removed these and told the room why.
        End::Quit | End::SlowConsumer => {}
        // The process is going away; nobody is left to tell.
        End::Shutdown => {}
        _ => s.shared.hub().disconnect(id, &reason),
    }
    info!("disconnected: {reason}");
}

impl Session {
    async fn run(&mut self, rx: &mut mpsc::Receiver<Arc<Event>>, kill: &CancellationToken) -> End {
        let registration_deadline = Instant::now() + self.shared.config.registration_timeout;
        let shutdown = self.shared.shutdown.clone();
        loop {
            tokio::select! {
                biased;
                _ = kill.cancelled() => return End::SlowConsumer,
                _ = shutdown.cancelled() => {
                    let grace = self.shared.config.shutdown_grace;
                    let _ = tokio::time::timeout(grace, self.flush(rx, kill)).await;
                    return End::Shutdown;
                }
                ev = rx.recv() => match ev {
                    Some(ev) => {
                        if let Err(e) = self.write_events(ev, rx, kill).await {
                            return if kill.is_cancelled() { End::SlowConsumer } else { End::Error(e) };
                        }
                    }
                    None => return End::Closed,
                },
                r = self.stream.readable() => {
                    if let Err(e) = r {
                        return End::Error(e);
                    }
                    match self.read() {
                        Ok(Some(Outcome::Close)) => {
                            let _ = tokio::time::timeout(self.shared.config.write_timeout, self.flush(rx, kill)).await;
                            return End::Quit;
                        }
                        Ok(Some(Outcome::Continue)) | Ok(None) => {}
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return End::Closed,
                        Err(e) => return End::Error(e),
                    }
                }
                _ = tokio::time::sleep_until(registration_deadline), if !self.registered => {
                    self.shared.hub().reply(self.id, EventBody::Error {
                        code: ErrorCode::NotRegistered,
                        message: "registration timeout: no nickname given".into(),
                    });
                    let _ = tokio::time::timeout(Duration::from_secs(1), self.flush(rx, kill)).await;
                    return End::RegistrationTimeout;
                }
            }
        }
    }

    /// Reads what is available and hands complete lines to the hub.
    /// `Ok(None)`: spurious wakeup.
    fn read(&mut self) -> io::Result<Option<Outcome>> {
        let mut buf = [0u8; READ_CHUNK];
        let n = match self.stream.try_read(&mut buf) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut lines = Vec::new();
        self.decoder.feed(&buf[..n], |l| lines.push(l));
        if lines.is_empty() {
            return Ok(Some(Outcome::Continue));
        }
        let shared = self.shared.clone();
        let mut hub = shared.hub();
        for line in lines {
            if self.handle_line(&mut hub, line) == Outcome::Close {
                return Ok(Some(Outcome::Close));
            }
        }
        Ok(Some(Outcome::Continue))
    }

    fn handle_line(&mut self, hub: &mut Hub<Queue>, line: Result<String, LineError>) -> Outcome {
        let id = self.id;
        let line = match line {
            Ok(l) => l,
            Err(LineError::TooLong { max }) => {
                let message = format!("line too long (max {max} bytes); it was ignored").into();
                hub.reply(
                    id,
                    EventBody::Error {
                        code: ErrorCode::LineTooLong,
                        message,
                    },
                );
                return Outcome::Continue;
            }
            Err(LineError::InvalidUtf8) => {
                let message = "line is not valid UTF-8; it was ignored".into();
                hub.reply(
                    id,
                    EventBody::Error {
                        code: ErrorCode::InvalidUtf8,
                        message,
                    },
                );
                return Outcome::Continue;
            }
        };
        let outcome = match self.proto {
            Proto::Text { .. } => match text::parse(&line, self.registered) {
                text::Input::Command(cmd) => hub.handle(id, cmd),
                text::Input::Help => {
                    hub.reply(id, EventBody::Help);
                    Outcome::Continue
                }
                text::Input::Color(on) => {
                    self.proto = Proto::Text { color: on };
                    let text = if on { "colours on" } else { "colours off" };
                    hub.reply(id, EventBody::Info { text: text.into() });
                    Outcome::Continue
                }
                text::Input::Nothing => Outcome::Continue,
                text::Input::Error(code, message) => {
                    hub.reply(
                        id,
                        EventBody::Error {
                            code,
                            message: message.into(),
                        },
                    );
                    Outcome::Continue
                }
            },
        };
        if !self.registered {
            if let Some(nick) = hub.nick_of(id) {
                self.registered = true;
                tracing::Span::current().record("nick", &**nick);
                info!("registered as {nick}");
            }
        }
        outcome
    }

    fn flavor(&self) -> Flavor {
        match self.proto {
            Proto::Text { color: true } => Flavor::TextColor,
            Proto::Text { color: false } => Flavor::TextPlain,
        }
    }

    /// Renders `first` and whatever else is queued (up to a batch) into one write.
    async fn write_events(
        &mut self,
        first: Arc<Event>,
        rx: &mut mpsc::Receiver<Arc<Event>>,
        kill: &CancellationToken,
    ) -> io::Result<()> {
        let flavor = self.flavor();
        self.wbuf.extend_from_slice(first.rendered(flavor));
        for _ in 1..BATCH {
            match rx.try_recv() {
                Ok(ev) => self.wbuf.extend_from_slice(ev.rendered(flavor)),
                Err(_) => break,
            }
        }
        let buf = std::mem::take(&mut self.wbuf);
        let r = write_all(&self.stream, &buf, kill, self.shared.config.write_timeout).await;
        if buf.capacity() <= 16 * 1024 {
            self.wbuf = buf;
            self.wbuf.clear();
        }
        r
    }

    /// Writes everything still queued (used on quit and shutdown).
    async fn flush(&mut self, rx: &mut mpsc::Receiver<Arc<Event>>, kill: &CancellationToken) {
        while let Ok(ev) = rx.try_recv() {
            if self.write_events(ev, rx, kill).await.is_err() {
                return;
            }
        }
        debug!("flushed");
    }
}

/// Writes all of `buf`, giving up if the peer makes no progress for `timeout`
/// or the session is killed.
async fn write_all(
    stream: &TcpStream,
    mut buf: &[u8],
    kill: &CancellationToken,
    timeout: Duration,
) -> io::Result<()> {
    while !buf.is_empty() {
        match stream.try_write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                tokio::select! {
                    r = stream.writable() => r?,
                    _ = kill.cancelled() => return Err(io::Error::other("killed")),
                    _ = tokio::time::sleep(timeout) => return Err(io::ErrorKind::TimedOut.into()),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
