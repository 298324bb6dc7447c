//! One bench connection's task: connect from its source address, register
//! and join its room, then — once the run starts — send on a fixed
//! timetable and read everything, tracking each sender's sequence numbers
//! and the latency from each message's *scheduled* send time (so a stalled
//! server cannot hide its stalls: no coordinated omission).
//!
//! Efficiency matters more here than anywhere else in the bench: one task
//! per connection, reads into a per-thread scratch buffer split with
//! `memchr`, counters and histograms updated once per read, and a message
//! line built once and rewritten in place for every send.

use std::cell::RefCell;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use memchr::memchr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use super::driver::{self, Handshake, Proto, Refused};
use super::net;
use super::payload::{self, Header};
use super::scenario::BenchConfig;
use super::stats::{Counters, Errors, Shards};
use super::timeline::{Lat, Timeline};
use super::tracker::{Seen, SeqTracker};
use crate::tlsio::TlsSocket;

/// A bench connection's socket: TCP, or TLS over it.
enum Socket {
    Tcp(TcpStream),
    Tls(Box<TlsSocket<rustls::ClientConnection>>),
}

impl Socket {
    async fn readable(&self) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.readable().await,
            Socket::Tls(s) => s.readable().await,
        }
    }
    async fn writable(&self) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.writable().await,
            Socket::Tls(s) => s.writable().await,
        }
    }
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.try_read(buf),
            Socket::Tls(s) => s.try_read(buf),
        }
    }
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.try_write(buf),
            Socket::Tls(s) => s.try_write(buf),
        }
    }
    /// Whether everything written reached the socket (TLS may hold some).
    fn flushed(&self) -> bool {
        match self {
            Socket::Tcp(_) => true,
            Socket::Tls(s) => s.flushed(),
        }
    }
}
use super::ws::{self, Deframer};

/// Bytes read per `read` call (per thread, shared by every connection).
const SCRATCH: usize = 64 * 1024;
/// Reads per wakeup before yielding to other connections.
const READS_PER_WAKEUP: usize = 4;
/// A server line longer than this is dropped unread.
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// State every connection task shares with the coordinator.
pub(crate) struct Shared {
    pub cfg: BenchConfig,
    /// Time zero of the run; payload timestamps count from here.
    pub epoch: Instant,
    /// Limits connections in setup at once.
    pub setup_slots: Semaphore,
    /// Set by an error that every later connect would hit too (EMFILE, …).
    pub stop_connecting: AtomicBool,
    pub counters: Counters,
    pub errors: Errors,
    /// Whether each client is registered and in its room.
    pub ready: Vec<AtomicBool>,
    /// Messages each client has fully written to its socket.
    pub sent_by: Vec<AtomicU32>,
    /// Per sender: one past the highest sequence number any member has
    /// received, so each message is counted once for messages/s, at the
    /// first member it reaches.
    pub reached: Vec<AtomicU32>,
    /// End-to-end latency, µs, from the scheduled send time.
    pub latency: Shards,
    /// How late the bench actually sent, µs after the scheduled time.
    pub send_lag: Shards,
    /// Latency per second of sends, for the charts (`--report`).
    pub timeline: Option<Timeline>,
    pub decoder: payload::Decoder,
}

impl Shared {
    pub fn new(cfg: BenchConfig) -> Shared {
        let n = cfg.clients;
        let timeline = cfg.timeline.then(|| Timeline::new(8));
        Shared {
            setup_slots: Semaphore::new(cfg.connect_concurrency.min(Semaphore::MAX_PERMITS)),
            cfg,
            epoch: Instant::now(),
            stop_connecting: AtomicBool::new(false),
            counters: Counters::new(),
            errors: Errors::default(),
            ready: (0..n).map(|_| AtomicBool::new(false)).collect(),
            sent_by: (0..n).map(|_| AtomicU32::new(0)).collect(),
            reached: (0..n).map(|_| AtomicU32::new(0)).collect(),
            latency: Shards::new(8),
            send_lag: Shards::new(8),
            timeline,
            decoder: payload::Decoder::default(),
        }
    }

    /// Nanoseconds since the epoch.
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    pub fn instant_at(&self, ns: u64) -> Instant {
        self.epoch + Duration::from_nanos(ns)
    }
}

/// What the coordinator tells every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Connecting, registering, joining; ready clients read and wait.
    Setup,
    /// Send and measure.
    Go(Plan),
    /// Close the connection.
    Stop,
}

/// The traffic phase's timetable, in nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    pub start_ns: u64,
    /// Messages scheduled from here on are measured.
    pub warm_end_ns: u64,
    /// No message is scheduled at or after this.
    pub end_ns: u64,
    /// Time between two messages of one sender.
    pub interval_ns: u64,
    /// Clients with an id below this send.
    pub active: u32,
}

/// Why setup failed.
enum SetupError {
    Connect(io::Error),
    Io(io::Error, Option<String>),
    Refused(String),
    Closed(Option<String>),
    Timeout(Option<String>),
    LineTooLong,
}

/// The whole life of client `id`.
pub(crate) async fn run(shared: Arc<Shared>, id: usize, phase: watch::Receiver<Phase>) {
    if shared.stop_connecting.load(Relaxed) {
        shared.counters.skipped.fetch_add(1, Relaxed);
        return;
    }
    let Ok(permit) = shared.setup_slots.acquire().await else {
        return;
    };
    if shared.stop_connecting.load(Relaxed) {
        shared.counters.skipped.fetch_add(1, Relaxed);
        return;
    }
    shared.counters.note_connect(shared.now_ns());
    let setup = setup(&shared, id).await;
    drop(permit);
    let (stream, leftover, deframer) = match setup {
        Ok(x) => x,
        Err(e) => {
            record_setup_error(&shared, e);
            shared.counters.failed.fetch_add(1, Relaxed);
            return;
        }
    };
    shared.ready[id].store(true, Relaxed);
    shared.counters.note_ready(shared.now_ns());
    let mut conn = Conn::new(shared, id, stream);
    conn.ws = deframer;
    conn.take(&leftover);
    conn.run(phase).await;
}

fn record_setup_error(shared: &Shared, e: SetupError) {
    let (kind, example) = match e {
        SetupError::Connect(e) => {
            let (kind, fatal) = net::classify(&e);
            if fatal {
                shared.stop_connecting.store(true, Relaxed);
            }
            (format!("connect: {kind}"), e.to_string())
        }
        SetupError::Io(e, last) => (
            format!("setup: {}", net::classify(&e).0),
            last.unwrap_or_default(),
        ),
        SetupError::Refused(line) => ("refused by the server during setup".into(), line),
        SetupError::Closed(last) => (
            "closed by the server during setup".into(),
            last.map(|l| format!("last line: {l}")).unwrap_or_default(),
        ),
        SetupError::Timeout(last) => (
            "setup timed out (no ready line within --setup-timeout)".into(),
            last.map(|l| format!("last line: {l}"))
                .unwrap_or_else(|| "no line received".into()),
        ),
        SetupError::LineTooLong => (
            "setup: server line longer than 64 KiB".into(),
            String::new(),
        ),
    };
    shared.errors.add(&kind, &example);
}

/// What setup hands on: the socket, any lines read past the ready line,
/// and the WebSocket deframer (`--proto ws`).
type SetUp = (Socket, Vec<u8>, Option<Box<Deframer>>);

/// Connects (with TLS, shakes hands), registers and joins (after the
/// WebSocket upgrade for `--proto ws`).
async fn setup(shared: &Shared, id: usize) -> Result<SetUp, SetupError> {
    let cfg = &shared.cfg;
    let deadline = Instant::now() + cfg.setup_timeout;
    let target = cfg.target_of(id);
    let source = net::source_addr(id, cfg.per_source, target);
    let mut stream = match tokio::time::timeout_at(deadline, net::connect(target, source)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(SetupError::Connect(e)),
        Err(_) => return Err(SetupError::Timeout(None)),
    };
    let Some(tls) = &cfg.tls else {
        let (leftover, deframer) = register(shared, id, &mut stream, deadline).await?;
        return Ok((Socket::Tcp(stream), leftover, deframer));
    };
    let name = rustls::pki_types::ServerName::from(target.ip());
    let connect = tokio_rustls::TlsConnector::from(tls.clone()).connect(name, stream);
    let mut stream = match tokio::time::timeout_at(deadline, connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(SetupError::Connect(e)),
        Err(_) => return Err(SetupError::Timeout(None)),
    };
    let (leftover, deframer) = register(shared, id, &mut stream, deadline).await?;
    let (tcp, conn) = stream.into_inner();
    let socket = Socket::Tls(Box::new(TlsSocket::new(tcp, conn)));
    Ok((socket, leftover, deframer))
}

/// Registers and joins over `stream` (opening `/ws` first for `--proto
/// ws`); returns any lines read past the ready line, and the deframer.
async fn register<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    id: usize,
    stream: &mut S,
    deadline: Instant,
) -> Result<(Vec<u8>, Option<Box<Deframer>>), SetupError> {
    let cfg = &shared.cfg;
    let nick = cfg.nick(id);
    let room = cfg.room_name(cfg.room_of(id));
    let (mut hs, mut hello) = Handshake::start(cfg.proto, &cfg.text, &nick, &room);
    let mut last: Option<String> = None;
    let mut answer = Vec::new();
    // Heap buffers: they are freed when setup ends, so an idle connection
    // keeps nothing of them.
    let mut rbuf = vec![0u8; 4096];
    let mut buf: Vec<u8> = Vec::new();
    let mut deframer = None;
    if cfg.proto == Proto::Ws {
        let mut d = Box::new(Deframer::default());
        let rest = upgrade(&mut *stream, cfg.target_of(id), deadline).await?;
        d.feed(&rest, &mut buf).map_err(SetupError::Refused)?;
        deframer = Some(d);
        let mut framed = Vec::new();
        ws::frame_lines(&hello, &mut framed);
        hello = framed;
    }
    write_setup(&mut *stream, &hello, deadline, &last).await?;
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut rbuf)).await {
            Ok(Ok(0)) => return Err(SetupError::Closed(last)),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(SetupError::Io(e, last)),
            Err(_) => return Err(SetupError::Timeout(last)),
        };
        match deframer.as_deref_mut() {
            Some(d) => d.feed(&rbuf[..n], &mut buf).map_err(SetupError::Refused)?,
            None => buf.extend_from_slice(&rbuf[..n]),
        }
        let mut start = 0;
        while let Some(i) = memchr(b'\n', &buf[start..]) {
            let raw = &buf[start..start + i];
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let line = String::from_utf8_lossy(raw).into_owned();
            start += i + 1;
            let done = hs.on_line(&line, &mut answer);
            if !answer.is_empty() {
                if deframer.is_some() {
                    let mut framed = Vec::new();
                    ws::frame_lines(&answer, &mut framed);
                    answer = framed;
                }
                write_setup(&mut *stream, &answer, deadline, &last).await?;
                answer.clear();
            }
            match done {
                Ok(true) => return Ok((buf[start..].to_vec(), deframer)),
                Ok(false) => last = Some(line),
                Err(Refused::Server(l)) => return Err(SetupError::Refused(l)),
            }
        }
        buf.drain(..start);
        if buf.len() > MAX_LINE {
            return Err(SetupError::LineTooLong);
        }
    }
}

/// Opens `/ws`: sends the upgrade request and reads the answer; returns
/// the bytes read past it (the first frames).
async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    target: std::net::SocketAddr,
    deadline: Instant,
) -> Result<Vec<u8>, SetupError> {
    write_setup(stream, &ws::upgrade_request(target), deadline, &None).await?;
    let mut head = Vec::new();
    let mut rbuf = [0u8; 1024];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut rbuf)).await {
            Ok(Ok(0)) => return Err(SetupError::Closed(None)),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(SetupError::Io(e, None)),
            Err(_) => return Err(SetupError::Timeout(None)),
        };
        head.extend_from_slice(&rbuf[..n]);
        match ws::upgrade_response(&head) {
            Some(Ok(end)) => return Ok(head.split_off(end)),
            Some(Err(status)) => return Err(SetupError::Refused(status)),
            None if head.len() > MAX_LINE => return Err(SetupError::LineTooLong),
            None => {}
        }
    }
}

async fn write_setup<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    deadline: Instant,
    last: &Option<String>,
) -> Result<(), SetupError> {
    let write = async {
        stream.write_all(bytes).await?;
        stream.flush().await // TLS: out of the record buffer
    };
    match tokio::time::timeout_at(deadline, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(SetupError::Io(e, last.clone())),
        Err(_) => Err(SetupError::Timeout(last.clone())),
    }
}

/// Per-thread buffers for reading: shared by all connections on the thread.
struct Scratch {
    buf: Vec<u8>,
    latencies: Vec<Lat>,
    /// Lines taken out of WebSocket frames.
    lines: Vec<u8>,
}

thread_local! {
    static SCRATCH_BUF: RefCell<Scratch> = RefCell::new(Scratch {
        buf: vec![0; SCRATCH],
        latencies: Vec::new(),
        lines: Vec::new(),
    });
}

/// What one read found, added to the shared counters at once.
#[derive(Default)]
struct Tally {
    unique: u64,
    in_window: u64,
    messages_in_window: u64,
    duplicates: u64,
    late: u64,
    gaps: u64,
    unexpected: u64,
}

/// Sending state of an active client.
struct Sender {
    /// The whole message line; the header is rewritten for each send.
    template: Vec<u8>,
    header_at: usize,
    next_seq: u32,
    next_ns: u64,
    interval_ns: u64,
    end_ns: u64,
    /// Messages put in `out` so far.
    queued: u64,
    /// Messages reported in `sent_by`.
    published: u64,
    /// Still counted in `pending_senders`.
    pending: bool,
}

/// An established connection.
struct Conn {
    shared: Arc<Shared>,
    id: usize,
    room: usize,
    stream: Socket,
    /// An incomplete line carried to the next read.
    partial: Vec<u8>,
    /// Message bytes not yet written; `out_pos` is how far writing got.
    out: Vec<u8>,
    out_pos: usize,
    /// Protocol answers (PONG), written only between messages.
    ctrl: Vec<u8>,
    /// Server frames to lines (`--proto ws`).
    ws: Option<Box<Deframer>>,
    tracker: SeqTracker,
    plan: Option<Plan>,
    sender: Option<Box<Sender>>,
    last_error: Option<String>,
}

enum End {
    Stop,
    Died(String, String),
}

impl Conn {
    fn new(shared: Arc<Shared>, id: usize, stream: Socket) -> Conn {
        let room = shared.cfg.room_of(id);
        Conn {
            shared,
            id,
            room,
            stream,
            partial: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            ctrl: Vec::new(),
            ws: None,
            tracker: SeqTracker::default(),
            plan: None,
            sender: None,
            last_error: None,
        }
    }

    async fn run(mut self, mut phase: watch::Receiver<Phase>) {
        let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        let sleep = tokio::time::sleep_until(far);
        tokio::pin!(sleep);
        // The phase may have moved on while we were setting up.
        let mut current = *phase.borrow_and_update();
        let end = loop {
            match current {
                Phase::Stop => break End::Stop,
                Phase::Go(plan) if self.plan.is_none() => {
                    self.go(plan);
                    if let Some(s) = &self.sender {
                        sleep.as_mut().reset(self.shared.instant_at(s.next_ns));
                    }
                }
                _ => {}
            }
            let want_write =
                self.out_pos < self.out.len() || !self.ctrl.is_empty() || !self.stream.flushed();
            let timed = self.sender.as_ref().is_some_and(|s| s.next_ns < s.end_ns);
            tokio::select! {
                biased;
                r = phase.changed() => {
                    if r.is_err() {
                        break End::Stop;
                    }
                    current = *phase.borrow_and_update();
                }
                r = self.stream.readable() => {
                    if let Err(e) = r.and_then(|()| self.on_readable()) {
                        break self.death(e);
                    }
                }
                r = self.stream.writable(), if want_write => {
                    if let Err(e) = r.and_then(|()| self.flush()) {
                        break self.death(e);
                    }
                }
                () = &mut sleep, if timed => {
                    self.send_due();
                    if let Err(e) = self.flush() {
                        break self.death(e);
                    }
                    let next = match &self.sender {
                        Some(s) if s.next_ns < s.end_ns => self.shared.instant_at(s.next_ns),
                        _ => far,
                    };
                    sleep.as_mut().reset(next);
                }
            }
        };
        if let End::Died(kind, example) = end {
            let c = &self.shared.counters;
            if self.plan.is_some() {
                c.dropped.fetch_add(1, Relaxed);
            } else {
                self.shared.ready[self.id].store(false, Relaxed);
                c.lost_before_start.fetch_add(1, Relaxed);
            }
            self.shared.errors.add(&kind, &example);
            if let Some(s) = &mut self.sender {
                if s.pending {
                    s.pending = false;
                    c.pending_senders.fetch_sub(1, Relaxed);
                }
            }
        }
    }

    /// The error that ended the connection, for the report.
    fn death(&mut self, e: io::Error) -> End {
        let phase = if self.plan.is_some() { "run" } else { "wait" };
        let kind = if e.kind() == io::ErrorKind::UnexpectedEof {
            format!("{phase}: closed by the server")
        } else {
            format!("{phase}: {}", net::classify(&e).0)
        };
        let example = self
            .last_error
            .take()
            .map(|l| format!("last error line: {l}"))
            .unwrap_or_default();
        End::Died(kind, example)
    }

    /// The run starts: become a sender if this client is active.
    fn go(&mut self, plan: Plan) {
        self.plan = Some(plan);
        if self.id >= plan.active as usize {
            return;
        }
        let cfg = &self.shared.cfg;
        let mut template = driver::message_prefix(cfg.proto, &cfg.room_name(self.room));
        let header_at = template.len();
        payload::encode(
            Header {
                sender: self.id as u32,
                seq: 0,
                sched_ns: 0,
            },
            cfg.size,
            &mut template,
        );
        template.extend_from_slice(driver::message_suffix(cfg.proto));
        template.extend_from_slice(b"\r\n");
        // Over a WebSocket the line (without its end) is one frame; the
        // zero mask leaves it as it is, so the header is still rewritten in place.
        let (template, header_at) = if self.ws.is_some() {
            let mut framed = Vec::with_capacity(template.len() + 14);
            let h = ws::frame(&template[..template.len() - 2], &mut framed);
            (framed, header_at + h)
        } else {
            (template, header_at)
        };
        // Senders are spread evenly over one interval so they do not all fire at once.
        let offset =
            (plan.interval_ns as u128 * self.id as u128 / plan.active.max(1) as u128) as u64;
        self.shared.counters.pending_senders.fetch_add(1, Relaxed);
        self.sender = Some(Box::new(Sender {
            template,
            header_at,
            next_seq: 0,
            next_ns: plan.start_ns + offset,
            interval_ns: plan.interval_ns,
            end_ns: plan.end_ns,
            queued: 0,
            published: 0,
            pending: true,
        }));
    }

    /// Queues every message whose scheduled time has come. A late bench
    /// sends the backlog at once, each message still stamped with its own
    /// scheduled time.
    fn send_due(&mut self) {
        let Some(s) = self.sender.as_deref_mut() else {
            return;
        };
        let now = self.shared.now_ns();
        let mut lags = [0u64; 32];
        let mut n = 0;
        while s.next_ns <= now && s.next_ns < s.end_ns {
            let h = Header {
                sender: self.id as u32,
                seq: s.next_seq,
                sched_ns: s.next_ns,
            };
            payload::write_fields(&mut s.template[s.header_at..], h);
            self.out.extend_from_slice(&s.template);
            lags[n] = (now - s.next_ns) / 1000;
            n += 1;
            if n == lags.len() {
                self.shared
                    .send_lag
                    .record_all(self.id, lags.iter().copied());
                n = 0;
            }
            s.next_seq = s.next_seq.wrapping_add(1);
            s.queued += 1;
            s.next_ns += s.interval_ns;
        }
        self.shared
            .send_lag
            .record_all(self.id, lags[..n].iter().copied());
    }

    /// Writes what the socket takes now; never waits.
    fn flush(&mut self) -> io::Result<()> {
        loop {
            let r = if self.out_pos < self.out.len() {
                self.stream.try_write(&self.out[self.out_pos..]).map(|n| {
                    self.out_pos += n;
                })
            } else if !self.ctrl.is_empty() {
                self.stream.try_write(&self.ctrl).map(|n| {
                    self.ctrl.drain(..n);
                })
            } else if !self.stream.flushed() {
                self.stream.try_write(&[]).map(|_| ())
            } else {
                break;
            };
            match r {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        self.publish_sent();
        Ok(())
    }

    /// Reports how many whole messages reached the socket. `out` holds only
    /// message lines, all of the same length, so that is exact.
    fn publish_sent(&mut self) {
        let Some(s) = self.sender.as_deref_mut() else {
            return;
        };
        let line = s.template.len();
        let unwritten = (self.out.len() - self.out_pos).div_ceil(line) as u64;
        let written = s.queued - unwritten;
        if written != s.published {
            self.shared.sent_by[self.id].store(written as u32, Relaxed);
            self.shared
                .counters
                .sent
                .fetch_add(written - s.published, Relaxed);
            s.published = written;
        }
        if s.pending && s.next_ns >= s.end_ns && unwritten == 0 {
            s.pending = false;
            self.shared.counters.pending_senders.fetch_sub(1, Relaxed);
        }
    }

    /// Reads what is there (a few reads at most) and handles every complete line.
    fn on_readable(&mut self) -> io::Result<()> {
        SCRATCH_BUF.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let Scratch {
                buf,
                latencies,
                lines,
            } = &mut *scratch;
            for _ in 0..READS_PER_WAKEUP {
                let n = match self.stream.try_read(buf) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => return Err(e),
                };
                match self.ws.as_deref_mut() {
                    Some(d) => {
                        lines.clear();
                        d.feed(&buf[..n], lines).map_err(io::Error::other)?;
                        self.take_with(lines, latencies);
                    }
                    None => self.take_with(&buf[..n], latencies),
                }
                if n < buf.len() {
                    break;
                }
            }
            Ok(())
        })?;
        if !self.ctrl.is_empty() {
            self.flush()?;
        }
        Ok(())
    }

    /// Handles bytes read during setup but after the ready line.
    fn take(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            let mut latencies = Vec::new();
            self.take_with(bytes, &mut latencies);
        }
    }

    /// Splits `chunk` into lines (continuing the partial line of the last
    /// read) and handles each; then adds the results to the shared counters.
    fn take_with(&mut self, chunk: &[u8], latencies: &mut Vec<Lat>) {
        let now = self.shared.now_ns();
        let mut tally = Tally::default();
        let mut rest = chunk;
        if !self.partial.is_empty() {
            match memchr(b'\n', rest) {
                None => {
                    self.partial.extend_from_slice(rest);
                    if self.partial.len() > MAX_LINE {
                        self.partial.clear();
                    }
                    return;
                }
                Some(i) => {
                    let mut line = std::mem::take(&mut self.partial);
                    line.extend_from_slice(&rest[..i]);
                    self.on_line(&line, now, &mut tally, latencies);
                    line.clear();
                    self.partial = line;
                    rest = &rest[i + 1..];
                }
            }
        }
        while let Some(i) = memchr(b'\n', rest) {
            self.on_line(&rest[..i], now, &mut tally, latencies);
            rest = &rest[i + 1..];
        }
        if !rest.is_empty() && rest.len() <= MAX_LINE {
            self.partial.extend_from_slice(rest);
        }
        self.add_tally(&tally, latencies);
    }

    fn on_line(&mut self, line: &[u8], now: u64, t: &mut Tally, latencies: &mut Vec<Lat>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(h) = self.shared.decoder.find(line) else {
            self.on_other_line(line);
            return;
        };
        let cfg = &self.shared.cfg;
        let sender = h.sender as usize;
        if sender >= cfg.clients
            || cfg.room_of(sender) != self.room
            || (!cfg.echo && sender == self.id)
        {
            t.unexpected += 1;
            return;
        }
        let seen = self.tracker.record((sender / cfg.rooms) as u32, h.seq);
        match seen {
            Seen::InOrder => {}
            Seen::Ahead { .. } => t.gaps += 1,
            Seen::Late => t.late += 1,
            Seen::Duplicate => {
                t.duplicates += 1;
                return;
            }
        }
        t.unique += 1;
        if let Some(p) = &self.plan {
            if (p.warm_end_ns..p.end_ns).contains(&now) {
                t.in_window += 1;
                let first = self.shared.reached[sender].fetch_max(h.seq.saturating_add(1), Relaxed);
                if first <= h.seq {
                    t.messages_in_window += 1;
                }
            }
            let measured = (p.warm_end_ns..p.end_ns).contains(&h.sched_ns);
            if measured || self.shared.timeline.is_some() {
                latencies.push(Lat {
                    us: now.saturating_sub(h.sched_ns) / 1000,
                    second: (h.sched_ns.saturating_sub(p.start_ns) / 1_000_000_000) as u32,
                    measured,
                });
            }
        }
    }

    /// A line without a payload: answer pings, remember errors.
    fn on_other_line(&mut self, line: &[u8]) {
        let proto = self.shared.cfg.proto;
        if let Some(answer) = driver::pong(proto, line) {
            match self.ws {
                Some(_) => ws::frame_lines(&answer, &mut self.ctrl),
                None => self.ctrl.extend_from_slice(&answer),
            }
        } else if driver::is_error_line(proto, line) {
            self.last_error = Some(String::from_utf8_lossy(line).into_owned());
        }
    }

    fn add_tally(&self, t: &Tally, latencies: &mut Vec<Lat>) {
        let c = &self.shared.counters;
        for (counter, v) in [
            (&c.unique, t.unique),
            (&c.in_window, t.in_window),
            (&c.messages_in_window, t.messages_in_window),
            (&c.duplicates, t.duplicates),
            (&c.late, t.late),
            (&c.gaps, t.gaps),
            (&c.unexpected, t.unexpected),
        ] {
            if v > 0 {
                counter.fetch_add(v, Relaxed);
            }
        }
        let measured = latencies.iter().filter(|l| l.measured).map(|l| l.us);
        self.shared.latency.record_all(self.id, measured);
        if let Some(timeline) = &self.shared.timeline {
            timeline.record(self.id, latencies);
        }
        latencies.clear();
    }
}
