//! One connection's task: reads bytes, frames and decodes them into
//! commands for the hub, and writes what the hub queued for it. Holds the
//! per-connection limits: line length, flood control, registration and
//! ping timeouts, the bounded outbound queue and the write timeout.
//!
//! On the main port the protocol is detected from the first line: a JSON
//! object switches to JSON lines, IRC registration (`CAP`/`NICK`/`USER`/
//! `PASS` with an argument) to IRC, anything else is text. The text banner
//! is held back for `banner_delay` so that clients that speak first (IRC,
//! JSON) never see it in text form. The IRC port speaks IRC from the start.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{debug, info};

use super::irc::IrcSession;
use super::mailbox::Next;
pub(crate) use super::mailbox::Queue;
use super::Shared;
use crate::hub::{ConnId, Hub, Outcome, Profile};
use crate::proto::irc::decode::looks_like_irc;
use crate::proto::line::{LineDecoder, LineError};
use crate::proto::{json, text, ErrorCode, Event, EventBody, Flavor, Name};

/// Most events rendered into one write.
const BATCH: usize = 256;
/// Bytes read per wakeup.
const READ_CHUNK: usize = 8 * 1024;

/// The protocol a connection speaks: text until its first line says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Text { color: bool },
    Json,
    Irc,
}

/// The default profile names, allocated once and shared by every connection.
static TEXT_USER: OnceLock<Name> = OnceLock::new();
static TEXT_REALNAME: OnceLock<Name> = OnceLock::new();
static JSON_USER: OnceLock<Name> = OnceLock::new();
static JSON_REALNAME: OnceLock<Name> = OnceLock::new();
static IRC_USER: OnceLock<Name> = OnceLock::new();
static IRC_REALNAME: OnceLock<Name> = OnceLock::new();

fn shared_name(cell: &'static OnceLock<Name>, text: &str) -> Name {
    cell.get_or_init(|| text.into()).clone()
}

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    /// The main port: protocol detected from the first line.
    Main,
    /// The IRC port: IRC from the first byte.
    Irc,
}

/// Application-level heartbeat for clients that can answer pings (JSON, IRC):
/// ping after `interval` of silence, drop after `timeout` more.
struct Heartbeat {
    next_ping: Instant,
    /// Set while a ping is unanswered.
    deadline: Option<Instant>,
}

impl Heartbeat {
    /// When the heartbeat next needs attention: the unanswered ping's
    /// deadline, else the next ping.
    fn due(&self) -> Instant {
        self.deadline.unwrap_or(self.next_ping)
    }
}

struct Session {
    id: ConnId,
    shared: Arc<Shared>,
    stream: TcpStream,
    decoder: LineDecoder,
    proto: Proto,
    registered: bool,
    /// Whether any line has been handled (protocol detection looks at the first).
    seen_line: bool,
    heartbeat: Option<Heartbeat>,
    ping_token: u64,
    /// Output the socket did not take yet (only for a peer that is behind;
    /// empty, with no allocation, otherwise).
    pending: Vec<u8>,
    /// When the registration timeout fires (until registered).
    registration_deadline: Instant,
    /// Flood control: lines read but not yet handled (at most one read's
    /// worth), and the "virtual clock" that each handled line advances.
    backlog: VecDeque<Result<String, LineError>>,
    flood_clock: Instant,
    /// IRC protocol state, once the connection speaks IRC.
    irc: Option<Box<IrcSession>>,
    /// Until then, nothing is written: the banner waits for a first line.
    hold_until: Option<Instant>,
    /// The cloaked host shown to IRC users (shared with the hub's record).
    host: Name,
}

/// Why a session ended, for the log and the room.
enum End {
    Closed,
    Quit,
    Error(io::Error),
    RegistrationTimeout,
    SlowConsumer,
    PingTimeout,
    Shutdown,
}

pub(crate) async fn run(shared: Arc<Shared>, stream: TcpStream, id: ConnId, entry: Entry) {
    let queue = Queue::new(shared.config.send_queue);
    let host: Name = match stream.peer_addr() {
        Ok(peer) => shared.cloak(peer.ip()).into(),
        Err(_) => "unknown.ip".into(),
    };
    {
        let mut hub = shared.hub();
        hub.connect(id, queue.clone());
        hub.set_profile(
            id,
            Profile {
                user: shared_name(&TEXT_USER, "text"),
                realname: shared_name(&TEXT_REALNAME, "natter text user"),
                host: host.clone(),
                auto_join: true,
            },
        );
    }
    info!("connected");
    let delay = shared.config.banner_delay;
    let registration_deadline = Instant::now() + shared.config.registration_timeout;
    let mut s = Session {
        id,
        decoder: LineDecoder::new(shared.config.max_line_bytes),
        shared,
        stream,
        proto: Proto::Text { color: true },
        registered: false,
        seen_line: false,
        heartbeat: None,
        ping_token: 0,
        pending: Vec::new(),
        registration_deadline,
        backlog: VecDeque::new(),
        flood_clock: Instant::now(),
        irc: None,
        hold_until: (entry == Entry::Main && !delay.is_zero()).then(|| Instant::now() + delay),
        host,
    };
    if entry == Entry::Irc {
        let shared = s.shared.clone();
        s.switch_to_irc(&mut shared.hub());
    }
    let end = s.run(&queue).await;
    let reason = match &end {
        End::Closed => "connection closed".to_string(),
        End::Quit => "quit".to_string(),
        End::Error(e) => format!("connection error: {e}"),
        End::RegistrationTimeout => "registration timeout".to_string(),
        End::SlowConsumer => "send queue full (not reading)".to_string(),
        End::PingTimeout => "ping timeout".to_string(),
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
    /// The connection's loop. Kept small at idle: one timer, the mailbox,
    /// readiness and shutdown. Output is written at once; only a peer that
    /// is behind gets a (boxed) future that waits for its socket.
    async fn run(&mut self, queue: &Queue) -> End {
        let shutdown = self.shared.shutdown.clone();
        loop {
            let timer = self.next_timer();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    let grace = self.shared.config.shutdown_grace;
                    let _ = tokio::time::timeout(grace, Box::pin(self.flush(queue))).await;
                    return End::Shutdown;
                }
                next = queue.next(), if self.hold_until.is_none() => match next {
                    Next::Event(ev) => {
                        let mut r = self.write_now(ev, queue);
                        if r.is_ok() && !self.pending.is_empty() {
                            r = Box::pin(self.write_pending(queue)).await;
                        }
                        if let Err(e) = r {
                            return if queue.is_killed() { End::SlowConsumer } else { End::Error(e) };
                        }
                    }
                    Next::Killed => return End::SlowConsumer,
                },
                r = self.stream.readable(), if self.backlog.is_empty() => {
                    if let Err(e) = r {
                        return End::Error(e);
                    }
                    match self.read() {
                        Ok(Some(Outcome::Close)) => {
                            let wait = self.shared.config.write_timeout;
                            let _ = tokio::time::timeout(wait, Box::pin(self.flush(queue))).await;
                            return End::Quit;
                        }
                        Ok(Some(Outcome::Continue)) | Ok(None) => {}
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return End::Closed,
                        Err(e) => return End::Error(e),
                    }
                }
                _ = tokio::time::sleep_until(timer.unwrap_or_else(Instant::now)), if timer.is_some() => {
                    if !self.backlog.is_empty() && self.handle_backlog() == Outcome::Close {
                        let wait = self.shared.config.write_timeout;
                        let _ = tokio::time::timeout(wait, Box::pin(self.flush(queue))).await;
                        return End::Quit;
                    }
                    if let Some(end) = self.timer_fired() {
                        let (irc_reason, message) = match end {
                            End::PingTimeout => {
                                let secs = self.shared.config.ping_timeout.as_secs();
                                (format!("Ping timeout: {secs} seconds"), "ping timeout: no answer to ping")
                            }
                            _ => ("Registration timed out".to_string(), "registration timeout: no nickname given"),
                        };
                        Box::pin(self.say_goodbye(&irc_reason, message, queue)).await;
                        return end;
                    }
                }
            }
        }
    }

    /// The earliest of the banner hold, the registration timeout and the heartbeat.
    fn next_timer(&self) -> Option<Instant> {
        let registration = (!self.registered).then_some(self.registration_deadline);
        let heartbeat = self.heartbeat.as_ref().map(Heartbeat::due);
        let flood = (!self.backlog.is_empty()).then(|| self.flood_release());
        [self.hold_until, registration, heartbeat, flood]
            .into_iter()
            .flatten()
            .min()
    }

    /// Handles whichever timers are due; `Some` ends the session.
    fn timer_fired(&mut self) -> Option<End> {
        let now = Instant::now();
        if self.hold_until.is_some_and(|t| t <= now) {
            self.hold_until = None;
        }
        if !self.registered && self.registration_deadline <= now {
            self.hold_until = None;
            return Some(End::RegistrationTimeout);
        }
        if self.heartbeat.as_ref().is_some_and(|hb| hb.due() <= now) && self.heartbeat_fired() {
            return Some(End::PingTimeout);
        }
        None
    }

    /// Tells the client why it is being closed (IRC `ERROR`, or a timeout
    /// error line) and flushes its queue for at most a second.
    async fn say_goodbye(&mut self, irc_reason: &str, message: &'static str, queue: &Queue) {
        match &self.irc {
            Some(irc) => irc.closing(&mut self.shared.hub(), self.id, irc_reason),
            None => self
                .shared
                .hub()
                .reply(self.id, EventBody::error(ErrorCode::Timeout, message)),
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.flush(queue)).await;
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
        if let Some(hb) = &mut self.heartbeat {
            hb.next_ping = Instant::now() + self.shared.config.ping_interval;
            hb.deadline = None;
        }
        let backlog = &mut self.backlog;
        self.decoder.feed(&buf[..n], |l| backlog.push_back(l));
        Ok(Some(self.handle_backlog()))
    }

    /// When the next held-back line may be handled: the flood clock may run
    /// at most `flood_burst` lines ahead of real time.
    fn flood_release(&self) -> Instant {
        let c = &self.shared.config;
        self.flood_clock
            .checked_sub(c.flood_interval() * c.flood_burst)
            .unwrap_or(self.flood_clock)
    }

    /// Hands backlogged lines to the hub while flood control allows (each
    /// line advances the flood clock by `1/flood_rate`); the rest wait for
    /// the timer, and the socket is not read meanwhile (like IRC "fakelag").
    fn handle_backlog(&mut self) -> Outcome {
        let was_registered = self.registered;
        let shared = self.shared.clone();
        let interval = shared.config.flood_interval();
        let mut hub = shared.hub();
        let mut outcome = Outcome::Continue;
        while !self.backlog.is_empty() {
            let now = Instant::now();
            if !interval.is_zero() && self.flood_release() > now {
                break;
            }
            let Some(line) = self.backlog.pop_front() else {
                break;
            };
            self.flood_clock = self.flood_clock.max(now) + interval;
            outcome = self.handle_line(&mut hub, line);
            if outcome == Outcome::Close {
                self.backlog.clear();
                break;
            }
        }
        if self.backlog.is_empty() {
            self.backlog = VecDeque::new(); // an idle connection holds no backlog memory
        }
        // Logged once the hub is unlocked: a log write never holds up the room.
        let nick = (self.registered && !was_registered)
            .then(|| hub.nick_of(self.id).cloned())
            .flatten();
        drop(hub);
        if let Some(nick) = nick {
            tracing::Span::current().record("nick", &*nick);
            info!("registered as {nick}");
        }
        outcome
    }

    fn handle_line(&mut self, hub: &mut Hub<Queue>, line: Result<String, LineError>) -> Outcome {
        let id = self.id;
        let line = match line {
            Ok(l) => l,
            Err(LineError::TooLong { max }) => {
                let message = format!("line too long (max {max} bytes); it was ignored");
                hub.reply(id, EventBody::error(ErrorCode::LineTooLong, message));
                return Outcome::Continue;
            }
            Err(LineError::InvalidUtf8) => {
                let message = "line is not valid UTF-8; it was ignored";
                hub.reply(id, EventBody::error(ErrorCode::InvalidUtf8, message));
                return Outcome::Continue;
            }
        };
        if !std::mem::replace(&mut self.seen_line, true) && self.irc.is_none() {
            if json::looks_like_json(&line) {
                self.switch_to_json(hub);
            } else if looks_like_irc(&line) {
                self.switch_to_irc(hub);
            }
            self.hold_until = None;
        }
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
                    hub.reply(id, EventBody::error(code, message));
                    Outcome::Continue
                }
            },
            Proto::Json => match json::parse(&line) {
                json::Input::Command(cmd) => hub.handle(id, cmd),
                json::Input::Keep => Outcome::Continue, // any line is proof of life
                json::Input::Help => {
                    hub.reply(id, EventBody::Help);
                    Outcome::Continue
                }
                json::Input::Error(code, message) => {
                    hub.reply(id, EventBody::error(code, message));
                    Outcome::Continue
                }
            },
            Proto::Irc => match &mut self.irc {
                Some(irc) => irc.handle(hub, id, &line),
                None => Outcome::Continue,
            },
        };
        if !self.registered {
            self.registered = hub.nick_of(id).is_some();
        }
        outcome
    }

    fn flavor(&self) -> Flavor {
        match self.proto {
            Proto::Text { color: true } => Flavor::TextColor,
            Proto::Text { color: false } => Flavor::TextPlain,
            Proto::Json => Flavor::Json,
            Proto::Irc => self.irc.as_ref().map_or(Flavor::Irc, |i| i.flavor()),
        }
    }

    /// Appends `ev` to `out` as this connection writes it.
    fn render_into(&mut self, ev: &Event, out: &mut Vec<u8>) {
        match &mut self.irc {
            Some(irc) => irc.write(ev, out),
            None => out.extend_from_slice(ev.rendered(self.flavor())),
        }
    }

    /// The connection speaks IRC from now on: IRC line limits (512 bytes
    /// plus 4096 of tags, whatever `max_line_bytes` says), no telnet
    /// stripping, and the heartbeat.
    fn switch_to_irc(&mut self, hub: &mut Hub<Queue>) {
        self.proto = Proto::Irc;
        self.decoder.without_telnet();
        self.decoder.set_max(crate::proto::irc::parse::MAX_LINE);
        hub.set_profile(
            self.id,
            Profile {
                user: shared_name(&IRC_USER, "~user"),
                realname: shared_name(&IRC_REALNAME, "natter IRC user"),
                host: self.host.clone(),
                auto_join: false,
            },
        );
        self.irc = Some(Box::new(IrcSession::new(
            self.shared.irc_info.clone(),
            self.shared.config.irc_password.clone(),
            self.shared.config.default_room.clone(),
            self.host.to_string(),
        )));
        self.start_heartbeat();
        debug!("speaking IRC");
    }

    /// The first line was JSON: speak JSON from now on, starting with a
    /// JSON welcome, and turn on the heartbeat.
    fn switch_to_json(&mut self, hub: &mut Hub<Queue>) {
        self.proto = Proto::Json;
        self.decoder.without_telnet();
        hub.set_profile(
            self.id,
            Profile {
                user: shared_name(&JSON_USER, "json"),
                realname: shared_name(&JSON_REALNAME, "natter JSON user"),
                host: self.host.clone(),
                auto_join: true,
            },
        );
        // A banner still held back is written as the JSON welcome.
        if self.hold_until.is_none() {
            let server = self.shared.config.server_name.as_str().into();
            hub.reply(
                self.id,
                EventBody::Welcome {
                    server,
                    online: hub.online(),
                },
            );
        }
        self.start_heartbeat();
        debug!("speaking JSON");
    }

    fn start_heartbeat(&mut self) {
        let next_ping = Instant::now() + self.shared.config.ping_interval;
        self.heartbeat = Some(Heartbeat {
            next_ping,
            deadline: None,
        });
    }

    /// The heartbeat timer fired: ping, or report a timeout (true).
    fn heartbeat_fired(&mut self) -> bool {
        let now = Instant::now();
        let Some(hb) = &mut self.heartbeat else {
            return false;
        };
        if hb.deadline.is_some_and(|d| now >= d) {
            return true;
        }
        hb.deadline = Some(now + self.shared.config.ping_timeout);
        hb.next_ping = now + self.shared.config.ping_interval;
        self.ping_token += 1;
        self.shared.hub().reply(
            self.id,
            EventBody::Ping {
                token: self.ping_token,
            },
        );
        false
    }

    /// Renders `first` and whatever else is queued (up to a batch) into this
    /// worker thread's buffer and writes it at once. What the socket does not
    /// take is kept in `pending` for [`Session::write_pending`]. No
    /// allocation per message in the usual case: the buffer is the thread's.
    fn write_now(&mut self, first: Arc<Event>, queue: &Queue) -> io::Result<()> {
        thread_local! {
            static OUT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        OUT.with(|out| {
            let mut out = out.borrow_mut();
            out.clear();
            self.render_into(&first, &mut out);
            for _ in 1..BATCH {
                match queue.try_next() {
                    Some(Next::Event(ev)) => self.render_into(&ev, &mut out),
                    _ => break,
                }
            }
            let mut written = 0;
            while written < out.len() {
                match self.stream.try_write(&out[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            self.pending.extend_from_slice(&out[written..]);
            if out.capacity() > 256 * 1024 {
                *out = Vec::new(); // one huge batch does not pin memory forever
            }
            Ok(())
        })
    }

    /// Waits until the socket has taken everything in `pending`.
    async fn write_pending(&mut self, queue: &Queue) -> io::Result<()> {
        let buf = std::mem::take(&mut self.pending);
        write_all(&self.stream, &buf, queue, self.shared.config.write_timeout).await
    }

    /// Writes everything still queued (used on quit, timeouts and shutdown).
    async fn flush(&mut self, queue: &Queue) {
        while let Some(Next::Event(ev)) = queue.try_next() {
            let mut r = self.write_now(ev, queue);
            if r.is_ok() && !self.pending.is_empty() {
                r = self.write_pending(queue).await;
            }
            if r.is_err() {
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
    queue: &Queue,
    timeout: Duration,
) -> io::Result<()> {
    while !buf.is_empty() {
        match stream.try_write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                tokio::select! {
                    r = stream.writable() => r?,
                    _ = queue.killed() => return Err(io::Error::other("killed")),
                    _ = tokio::time::sleep(timeout) => return Err(io::ErrorKind::TimedOut.into()),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
