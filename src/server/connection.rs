//! One connection's task, for any protocol over any [`Transport`]: reads
//! bytes, frames them into lines for the protocol session, and writes what
//! the router and the session queued for it. Holds the per-connection
//! limits: line length, flood control and the receive queue behind it
//! (`recvq`, past which the client is dropped for "Excess Flood"),
//! registration and ping timeouts, the outbound queue bounded in bytes
//! (`sendq`, counting the batch in flight) and the write timeout. It knows
//! no protocol: the session decodes, renders and words its own goodbyes.
//!
//! The socket is read even while flood control holds lines back, so a
//! client that closes its socket is gone at once (its nick freed, what it
//! sent ahead dropped) and one that sends too far ahead is noticed.
//!
//! Ingest is paced by egress (see `pacer`): while the server's writers are
//! behind (more than `ingest_budget` deliveries queued for clients that
//! keep up), no connection with input reads its socket or hands lines to
//! the chat; they wait, and go on together when the queues are half
//! drained, each handling all it holds and one more read in that pass. A
//! connection keeps up (its queue counts) while it writes with nothing
//! stuck in its socket, no banner held and nothing waiting for the store.
//!
//! On the main port a connection starts as text and the first line may
//! switch it to JSON or IRC (`proto::session::detect`); its first byte
//! picks whether input is cut into lines or JSON values (`proto::framer`),
//! and a first JSON object with no line break after it switches it to the
//! original dialect (`proto::original`), with its `::` heartbeat. The text
//! banner is held back for `banner_delay` (the first-bytes window, see
//! `server::detect`, which has already waited it out for a silent
//! connection: [`Opening::silent`]) so that clients that speak first (IRC,
//! JSON) never see it in text form. The IRC ports speak IRC from the start.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::OptionFuture;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::limits::Permit;
use super::mailbox::{Entry as Queued, Item, Next, Pushed, Queue};
use super::pager::Pager;
use super::timers::Armed;
use super::transport::Transport;
use super::Shared;
use crate::metrics::metrics;
use crate::proto::framer::Framer;
use crate::proto::irc::session::IrcSession;
use crate::proto::line::LineError;
use crate::proto::original::OriginalSession;
use crate::proto::session::{
    self, Goodbye, HistoryRequest, JsonSession, Protocol, SessionConfig, TargetsRequest,
    TextSession,
};
use crate::proto::{
    AccountRequest, Anchor, Command, ConnId, ErrorCode, Event, EventBody, HistoryQuery, Name,
    Outcome, Refusal,
};

/// Most queued items rendered into one write.
const BATCH: usize = 256;
/// Bytes read per wakeup.
const READ_CHUNK: usize = 8 * 1024;

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    /// The main port: protocol detected from the first line.
    Main,
    /// The IRC port, or IRC over WebSocket: IRC from the first byte.
    Irc,
    /// A WebSocket without an IRC subprotocol: JSON lines from the start.
    Json,
}

/// How a connection starts, as the listener and the first-bytes window
/// found it.
#[derive(Debug)]
pub(crate) struct Opening {
    pub entry: Entry,
    /// Over TLS (IRC's `sts` and WHOIS say so).
    pub tls: bool,
    /// Bytes read while the protocol was being detected, not handled yet.
    pub input: Vec<u8>,
    /// Nothing came within the main port's window: the text banner goes
    /// out at once instead of waiting for a first line.
    pub silent: bool,
    /// How its log lines say who it is.
    pub log: ConnLog,
    /// Its admission slot, held until it ends (parked or not).
    pub permit: Option<Permit>,
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Permit")
    }
}

impl Opening {
    /// A connection that starts as `entry` with nothing read yet, logging
    /// in the span it runs in.
    pub fn new(entry: Entry, tls: bool) -> Opening {
        Opening {
            entry,
            tls,
            input: Vec::new(),
            silent: false,
            log: ConnLog::Inherited,
            permit: None,
        }
    }
}

/// Which listener a connection's log lines name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogKind {
    /// The main port.
    Conn,
    /// The plaintext IRC port.
    Irc,
    /// The HTTP port.
    Http,
    /// The IRC-over-TLS port.
    Ircs,
}

/// Who a connection is in the log: its log lines are in a span
/// `conn{id=… peer=… nick=…}` (or `irc`, `http`, `ircs`). A plain
/// connection does not keep that span for its whole life (a span costs
/// about 0.6 KiB in the subscriber's registry, as much as the rest of an
/// idle connection's chat state): it is made for each line logged, with
/// the nick of the moment, so the lines read as before.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ConnLog {
    /// Made when something is logged. Packed (`perf16r`): a parked
    /// connection keeps its `ConnLog`, 32 bytes instead of 48, which puts
    /// the parked record in jemalloc's 224-byte class instead of 256.
    Lazy {
        /// The connection's number in the log (below 2^56), its
        /// [`LogKind`] in the top byte: see [`ConnLog::lazy`].
        id: u64,
        peer: super::addr::PackedAddr,
    },
    /// The task already runs in a span (TLS, HTTP and WebSocket paths,
    /// rare and boxed): lines go there, and the nick is recorded in it.
    Inherited,
}

/// The bits of [`ConnLog::Lazy`]'s `id` that are the number.
const LOG_ID_BITS: u64 = (1 << 56) - 1;

impl ConnLog {
    /// A plain connection's log identity: its listener, its number in the
    /// log and its peer.
    pub fn lazy(kind: LogKind, id: u64, peer: std::net::SocketAddr) -> ConnLog {
        ConnLog::Lazy {
            id: (id & LOG_ID_BITS) | (kind as u64) << 56,
            peer: peer.into(),
        }
    }

    /// The span for a line logged now, `nick` being the connection's nick
    /// (if it has one).
    pub fn span(&self, nick: Option<&str>) -> tracing::Span {
        let span = match *self {
            ConnLog::Inherited => tracing::Span::current(),
            ConnLog::Lazy { id, peer } => {
                let (peer, nick) = (super::addr::Peer(peer.get()), tracing::field::Empty);
                let kind = id >> 56;
                let id = id & LOG_ID_BITS;
                match kind {
                    k if k == LogKind::Irc as u64 => tracing::info_span!("irc", id, %peer, nick),
                    k if k == LogKind::Http as u64 => tracing::info_span!("http", id, %peer, nick),
                    k if k == LogKind::Ircs as u64 => tracing::info_span!("ircs", id, %peer, nick),
                    _ => tracing::info_span!("conn", id, %peer, nick),
                }
            }
        };
        if let Some(nick) = nick {
            span.record("nick", nick);
        }
        span
    }
}

/// Application-level heartbeat for clients that can answer pings (JSON, IRC):
/// ping after `ping_interval` of silence, drop after `ping_timeout` more.
/// A session with a raw ping (the original dialect's `::`) is sent it every
/// `original_ping_interval` whatever it says, and dropped after
/// `original_ping_timeout` without a byte from it. A session that cannot
/// answer pings (a telnet user) gets a quiet one, which never pings: it
/// only marks `ping_interval`s of silence, when the queue's buffer goes
/// back (see [`Connection::heartbeat_fired`]).
struct Heartbeat {
    /// False for a quiet heartbeat.
    pings: bool,
    next_ping: Instant,
    /// Set while a ping is unanswered; always set with a raw ping (the
    /// last byte read plus the timeout).
    deadline: Option<Instant>,
    /// The session has a raw ping (its bytes are the session's, its
    /// interval and timeout the settings': not copied into every
    /// connection).
    raw: bool,
}

impl Heartbeat {
    fn new(raw: bool, pings: bool, config: &crate::config::Config) -> Heartbeat {
        let now = Instant::now();
        let hb = Heartbeat {
            pings,
            next_ping: now,
            deadline: None,
            raw,
        };
        Heartbeat {
            next_ping: now + hb.interval(config),
            deadline: raw.then(|| now + hb.timeout(config)),
            ..hb
        }
    }

    /// How long a silence is before a ping (a raw ping: between pings).
    fn interval(&self, config: &crate::config::Config) -> Duration {
        match self.raw {
            true => config.original_ping_interval,
            false => config.ping_interval,
        }
    }

    /// How long a ping waits for an answer (a raw ping: for any byte).
    fn timeout(&self, config: &crate::config::Config) -> Duration {
        match self.raw {
            true => config.original_ping_timeout,
            false => config.ping_timeout,
        }
    }

    /// When the heartbeat next needs attention: the unanswered ping's
    /// deadline, else the next ping (with a raw ping: whichever is first).
    fn due(&self) -> Instant {
        match (self.raw, self.deadline) {
            (true, Some(d)) => d.min(self.next_ping),
            (_, d) => d.unwrap_or(self.next_ping),
        }
    }

    /// The client sent something: proof of life.
    fn heard(&mut self, config: &crate::config::Config) {
        let now = Instant::now();
        match self.raw {
            true => self.deadline = Some(now + self.timeout(config)),
            false => {
                self.next_ping = now + self.interval(config);
                self.deadline = None;
            }
        }
    }
}

/// What a protocol session reaches the chat through: the handle, and this
/// connection's own queue for the session's own replies.
struct Port<'a> {
    shared: &'a Shared,
    id: ConnId,
    queue: &'a Queue,
    /// Where long listings go instead of the chat.
    pager: &'a mut Pager,
    log: &'a ConnLog,
}

/// The [`Port`] of connection `$c` (a macro rather than a method, so
/// that the session in `$c.proto` can be borrowed beside it).
macro_rules! port {
    ($c:expr) => {
        &mut Port {
            shared: &$c.shared,
            id: $c.id,
            queue: &$c.queue,
            pager: &mut $c.flow.pager,
            log: &$c.log,
        }
    };
}

impl session::Chat for Port<'_> {
    fn execute(&mut self, cmd: Command) -> Outcome {
        let nick = matches!(cmd, Command::Register { .. } | Command::Nick { .. });
        let message = matches!(cmd, Command::Say { .. } | Command::Private { .. });
        // A nick change (not the first nick: `note_registered` logs that)
        // is logged and put in the connection's span.
        let before = match cmd {
            Command::Nick { .. } => self.shared.chat.nick_of(self.id),
            _ => None,
        };
        let outcome = match self.pager.intercept(&self.shared.chat, self.id, &cmd) {
            None => self.shared.chat.execute(self.id, cmd),
            Some(Ok(())) => Outcome::Continue,
            Some(Err(refusal)) => {
                self.own().push(&Event::shared(EventBody::Refused(refusal)));
                Outcome::Refused
            }
        };
        if nick && outcome == Outcome::Continue {
            let (auth, chat) = (&self.shared.auth, &self.shared.chat);
            super::accounts::nick_taken(auth, chat, self.id, &self.shared.shutdown);
        }
        if let Some(old) = before {
            match self.shared.chat.nick_of(self.id) {
                Some(new) if new != old => {
                    let _log = self.log.span(Some(&new)).entered();
                    info!("nick changed from {old} to {new}");
                }
                _ => {}
            }
        }
        if message && outcome == Outcome::Continue {
            metrics().messages_in.inc();
        }
        outcome
    }

    /// Passwords are checked off the chat lock (see `server::accounts`).
    fn account(&mut self, request: AccountRequest) {
        super::accounts::request(&self.shared.auth, &self.shared.chat, self.id, request);
    }
    fn local(&mut self, bytes: Bytes) {
        self.own().push_local(bytes);
    }
    /// A marker waits behind a listing being paged out, so that it comes
    /// after the listing's last page.
    fn mark(&mut self, mark: session::Mark) {
        if let Err(mark) = self.pager.hold_mark(mark) {
            self.own().push_mark(mark);
        }
    }
    fn online(&mut self) -> usize {
        self.shared.chat.online()
    }

    fn in_room(&mut self, room: &str) -> bool {
        self.shared.chat.member_seq(self.id, room).is_some()
    }

    /// Read off the chat lock, like history: the rooms the asker is in
    /// and the people it has private lines with (as an account, or as
    /// this guest session), each with the time of its newest line.
    fn history_targets(&mut self, r: TargetsRequest) {
        let (chat, id) = (self.shared.chat.clone(), self.id);
        let Some(me) = chat.history_identity(id) else {
            let targets = Vec::new();
            return chat.tell(id, EventBody::HistoryTargets { targets });
        };
        let limit = r
            .limit
            .clamp(1, self.shared.config.history_max_lines.max(1));
        let rooms = chat.rooms_of(id);
        let (store, readers) = (self.shared.store.clone(), self.shared.readers());
        tokio::spawn(async move {
            let read = move || {
                let keys: Vec<String> = rooms.iter().map(|(k, _)| k.clone()).collect();
                let in_rooms = store.latest_lines(&keys, r.from_ms, r.to_ms)?;
                let people = store.private_targets(&me, r.from_ms, r.to_ms, limit)?;
                Ok::<_, crate::hub::StoreError>((rooms, in_rooms, people))
            };
            // An answer always comes (an IRC session waits for it).
            let body = match Shared::read_store(&readers, read).await {
                Some(Ok((rooms, in_rooms, people))) => {
                    let mut targets: Vec<(Name, u64, bool)> = in_rooms
                        .into_iter()
                        .filter_map(|(key, t)| {
                            let (_, name) = rooms.iter().find(|(k, _)| *k == key)?;
                            Some((name.clone(), t, true))
                        })
                        .collect();
                    let people = chat.show_peers(people);
                    targets.extend(people.into_iter().map(|(n, t)| (n, t, false)));
                    targets.sort_by_key(|(_, t, _)| *t);
                    targets.truncate(limit);
                    EventBody::HistoryTargets { targets }
                }
                Some(Err(e)) => {
                    warn!("history targets: {e}");
                    let detail = "history cannot be read right now";
                    EventBody::Refused(Refusal::new(ErrorCode::StoreFailed).detail(detail))
                }
                None => EventBody::Refused(Refusal::new(ErrorCode::StoreFailed)),
            };
            chat.tell(id, body);
        });
    }

    /// History is for the room's members; it is read off the chat lock, on
    /// a blocking thread, and queued for this connection when it is there.
    fn history(&mut self, r: HistoryRequest) {
        let (chat, id) = (self.shared.chat.clone(), self.id);
        if let Some(person) = r.with {
            return self.private_history(person, r.query, r.limit, r.events, r.asked);
        }
        let room = match r
            .room
            .or_else(|| chat.current_room(id).map(|n| n.to_string()))
        {
            Some(room) => room,
            None => {
                let refusal = Refusal::new(ErrorCode::NotInRoom);
                return chat.tell(id, EventBody::Refused(refusal));
            }
        };
        let Some(order) = chat.member_order(id, &room) else {
            let refusal = Refusal::new(ErrorCode::NotInRoom).room(&room);
            return chat.tell(id, EventBody::Refused(refusal));
        };
        // What was said up to now: later lines reach the member live.
        let query = match r.query {
            HistoryQuery::Latest(None) => HistoryQuery::Before(Anchor::Seq(order.seq + 1)),
            q => q,
        };
        let limit = r
            .limit
            .clamp(1, self.shared.config.history_max_lines.max(1));
        // Stored under the bare name: IRC's `#room` is the same room.
        let room = room.strip_prefix('#').unwrap_or(&room).to_string();
        // A room that never had a message has none to show without events,
        // whatever the query (a join's replay, mostly): answered at once,
        // with no marker, task or read. Only where this server sees every
        // line of its rooms: a node of a cluster reads the lines of a room
        // it follows anew into history, past the chat's sight.
        if !r.events && order.said == 0 && self.shared.config.cluster == "off" {
            metrics().history_unread.inc();
            let body = EventBody::History {
                with: None,
                room: room.as_str().into(),
                facts: Vec::new(),
                more: false,
                asked: r.asked,
            };
            return self.tell_own(body);
        }
        let (store, readers) = (self.shared.store.clone(), self.shared.readers());
        // Lines up to `now` may still be on their way to the disk: an empty
        // submission is a marker whose ticket finishes after them, so the
        // read waits for it (else a line said just before joining would be
        // neither replayed nor, being older, shown live).
        let marker = store.submit(Vec::new());
        let durable = self.shared.durable.clone().filter(|_| marker != 0);
        tokio::spawn(async move {
            if let Some(w) = durable {
                w.reached(marker).await;
            }
            let read = move || read_history(&*store, &room, query, limit, r.events, r.asked);
            chat.tell(id, answer(&readers, read).await);
        });
    }
}

impl Port<'_> {
    /// Queues `body` for this connection alone, as the chat's
    /// [`ChatHandle::tell`](crate::hub::ChatHandle::tell) does, straight
    /// into its own queue: without the chat's lock and the walk of an
    /// audience of one (a join's replay of a room with nothing said, twice
    /// per join in a storm; stop 27). Counted for the pacer as the router
    /// counts it; a push that overflows the queue kills it, and the
    /// connection then ends as a slow consumer, as the chat would end it.
    fn tell_own(&self, body: EventBody) {
        let ev = Arc::new(Event::new(body));
        if self.own().push_counted(&ev, Event::SHARED_BYTES) == Pushed::Counted {
            self.shared.pacer.add(1);
        }
    }

    /// The connection's queue, for something of its own: the lines rooms
    /// hold are pushed first, so that no reply overtakes a line said
    /// before it (the connection's own among them; see `hub::Lines`).
    fn own(&self) -> &Queue {
        self.shared.chat.flush_lines();
        self.queue
    }
}

/// Private history: the lines between the asker and `person`, each an
/// account or a guest session (see `ChatState::history_identity`). Read
/// off the chat lock, like a room's.
impl Port<'_> {
    fn private_history(
        &mut self,
        person: String,
        query: HistoryQuery,
        limit: usize,
        events: bool,
        asked: bool,
    ) {
        let (chat, id) = (self.shared.chat.clone(), self.id);
        let limit = limit.clamp(1, self.shared.config.history_max_lines.max(1));
        let with = Some(Name::from(person.as_str()));
        let Some(log) = chat.private_log_with(id, &person) else {
            let body = EventBody::History {
                room: person.as_str().into(),
                with,
                facts: Vec::new(),
                more: false,
                asked,
            };
            return chat.tell(id, body);
        };
        let (store, readers) = (self.shared.store.clone(), self.shared.readers());
        let marker = store.submit(Vec::new());
        let durable = self.shared.durable.clone().filter(|_| marker != 0);
        tokio::spawn(async move {
            if let Some(w) = durable {
                w.reached(marker).await;
            }
            let read = move || read_history(&*store, &log, query, limit, events, asked);
            let mut body = answer(&readers, read).await;
            if let EventBody::History { with: w, .. } = &mut body {
                *w = with;
            }
            chat.tell(id, body);
        });
    }
}

/// The answer `read` gives, read off the chat lock: always an answer, a
/// refusal if the read could not run (an IRC session waits for it).
async fn answer(
    readers: &Arc<tokio::sync::Semaphore>,
    read: impl FnOnce() -> EventBody + Send + 'static,
) -> EventBody {
    Shared::read_store(readers, read)
        .await
        .unwrap_or_else(|| EventBody::Refused(Refusal::new(ErrorCode::StoreFailed)))
}

/// Reads one history request from the store, as the event that answers it.
fn read_history(
    store: &dyn crate::hub::Store,
    room: &str,
    query: HistoryQuery,
    limit: usize,
    events: bool,
    asked: bool,
) -> EventBody {
    match store.history(room, query, limit, events) {
        Ok(h) => EventBody::History {
            with: None,
            room: h
                .facts
                .first()
                .and_then(|f| f.room.clone())
                .unwrap_or_else(|| room.into()),
            facts: h.facts,
            more: h.more,
            asked,
        },
        Err(e) => {
            warn!("history of {room}: {e}");
            let refusal =
                Refusal::new(ErrorCode::StoreFailed).detail("history cannot be read right now");
            EventBody::Refused(refusal)
        }
    }
}

struct Connection<T> {
    id: ConnId,
    shared: Arc<Shared>,
    stream: T,
    queue: Queue,
    decoder: Framer,
    proto: Box<dyn Protocol>,
    /// While the first line may still choose the protocol: what the
    /// protocol it chooses needs to know (then dropped: an idle connection
    /// does not keep the server's settings in copies of its own).
    detecting: Option<Box<SessionConfig>>,
    /// Whether registration was logged.
    registered: bool,
    heartbeat: Option<Heartbeat>,
    /// (Wraps after 2^32 pings: the session only matches the last one.)
    ping_token: u32,
    /// Until registered, when the registration timeout fires; then, when
    /// the connection may park if it stayed quiet (`park_after`; see
    /// [`Connection::may_park`]).
    deadline: Instant,
    /// Its admission slot (freed when it ends).
    permit: Option<Permit>,
    /// Until then, nothing is written: the banner waits for a first line.
    hold_until: Option<Instant>,
    /// This connection in the open-connections gauge of its protocol.
    open: Option<prometheus_client::metrics::gauge::Gauge>,
    /// Who it is in the log.
    log: ConnLog,
    /// Its entry in the server's timers, for the earliest of its deadlines
    /// (see `server::timers`): it holds no timer of its own.
    timer: Armed,
    /// What is in flight: nothing, once it may park.
    flow: Flow,
}

/// A connection's traffic in flight: what it read and has not handled,
/// what it rendered and the socket has not taken, the item waiting for the
/// store, the listing being paged, flood control and the pacer's state.
/// All of it is empty or settled before a connection parks
/// ([`Connection::may_park`]), so a parked connection keeps none of it and
/// a resumed one starts with [`Flow::new`], as a new one does.
struct Flow {
    /// Output the socket did not take yet (only for a peer that is behind;
    /// empty, with no allocation, otherwise).
    pending: Vec<u8>,
    /// An item that waits for the store to make its facts durable; nothing
    /// after it is written either.
    held: Option<Item>,
    /// It read or wrote something since `deadline` was last set.
    active: bool,
    /// Flood control: lines read but not yet handled (at most `recvq`
    /// bytes of them), and the "virtual clock" that each handled line advances.
    backlog: Backlog,
    backlog_bytes: usize,
    flood_clock: Instant,
    /// Long listings being written as the client reads.
    pager: Pager,
    /// Flood control is holding lines back (counted once per episode).
    throttled: bool,
    /// Lines wait in `backlog` (or in the socket) because the ingest pacer
    /// stopped this connection's input.
    ingest_paced: bool,
    /// The pacer let the paused readers go: this connection handles its
    /// backlog and one read past the gate (see [`Connection::gated`]).
    pass: bool,
    /// What the queue was last told (see `Queue::set_keeping_up`).
    keeping_up: bool,
    /// When the send queue's buffer goes back, if it was written from
    /// since it last did (`sendq_keep` after; see [`Connection::wrote`]).
    trim_at: Option<Instant>,
    /// The span the "connected" line was logged in, kept until the
    /// "registered" line is logged in it with the nick recorded: one span
    /// made per connection where there were two (each ≈ 2.6k instructions
    /// to make and close; stop 27). Gone once registered, as the rest of
    /// the flow is before parking; a connection that resumes has none.
    opening_log: Option<tracing::Span>,
}

impl Flow {
    fn new(now: Instant) -> Flow {
        Flow {
            pending: Vec::new(),
            held: None,
            active: false,
            backlog: Backlog::default(),
            backlog_bytes: 0,
            flood_clock: now,
            pager: Pager::default(),
            throttled: false,
            ingest_paced: false,
            pass: false,
            keeping_up: false,
            trim_at: None,
            opening_log: None,
        }
    }
}

/// Lines read but not handled yet (flood control), boxed while there are
/// any: an idle connection carries one null pointer, not an empty
/// `VecDeque`'s 32 bytes.
#[derive(Default)]
#[allow(clippy::box_collection)] // on purpose: one pointer inline, not a `VecDeque`'s 32 bytes
struct Backlog(Option<Box<VecDeque<Result<String, LineError>>>>);

impl Backlog {
    fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|b| b.is_empty())
    }
    fn push_back(&mut self, line: Result<String, LineError>) {
        self.0.get_or_insert_with(Default::default).push_back(line)
    }
    fn pop_front(&mut self) -> Option<Result<String, LineError>> {
        self.0.as_mut()?.pop_front()
    }
    fn clear(&mut self) {
        self.0 = None;
    }
}

/// What woke the connection's loop (see [`Connection::run`]).
enum Woke {
    Shutdown,
    /// The held item's facts are durable.
    Durable,
    Next(Next),
    /// Lines held back may go on (the store caught up).
    Backlog,
    /// The server's writers caught up (the ingest pacer).
    Paced,
    Readable(io::Result<()>),
    Timer,
}

/// Why a connection ended, for the log and the room.
enum End {
    Closed,
    Quit,
    Error(io::Error),
    RegistrationTimeout,
    SlowConsumer,
    PingTimeout,
    ExcessFlood,
    Shutdown,
    /// A server operator disconnected it (the chat already let it go).
    Killed,
    /// Not an end: it stayed quiet and parks (see `server::park`).
    Park,
}

/// Serves one connection to its end. The connection is set up when the
/// future is first polled (in the connection's own task), and the future
/// then holds only the [`Connection`] and its loop: the arguments are not
/// kept beside it (an `async fn` keeps its arguments for its whole life,
/// which cost every idle connection their size again).
pub(crate) fn run<T: Transport>(
    shared: Arc<Shared>,
    stream: T,
    host: Name,
    ip: std::net::IpAddr,
    opening: Opening,
) -> impl std::future::Future<Output = ()> + Send {
    use futures_util::FutureExt;
    futures_util::future::lazy(move |_| {
        let mut opening = opening;
        let mut c = Connection::open(shared, stream, host, ip, opening.entry, &opening);
        c.permit = opening.permit.take();
        // Bytes read before the loop (the first bytes over TLS).
        let first = (!opening.input.is_empty()).then(|| c.take_input(&opening.input));
        async move {
            let end = match first {
                None | Some(Ok(Outcome::Continue | Outcome::Refused)) => c.run().await,
                Some(Ok(Outcome::Close)) => c.quit().await,
                Some(Err(_)) => End::ExcessFlood,
            };
            c.finish(end);
        }
    })
    .flatten()
}

impl<T: Transport> Connection<T> {
    /// Registers a new connection with the chat and starts its protocol
    /// session (nothing is read or written yet).
    fn open(
        shared: Arc<Shared>,
        stream: T,
        host: Name,
        ip: std::net::IpAddr,
        entry: Entry,
        opening: &Opening,
    ) -> Connection<T> {
        let queue = Queue::paced(shared.config.sendq, Some(shared.pacer.clone()));
        let id = shared
            .chat
            .connect(host.clone(), |r| r.attach(queue.clone()));
        let log = opening.log;
        let opening_log = log.span(None);
        opening_log.in_scope(|| info!("connected"));
        let config = &shared.config;
        let session_config = Box::new(SessionConfig {
            server_name: config.server_name.clone(),
            default_room: shared.default_room.clone(),
            irc_auto_join: config.irc_auto_join,
            irc_info: shared.irc_info.clone(),
            irc_password: config.irc_password.clone(),
            host,
            ip: super::addr::ip_text(ip).into(),
            opers: shared.opers.clone(),
            history_on_join: config.history_on_join,
            sts: shared.sts(opening.tls),
        });
        if opening.tls {
            shared.chat.set_secure(id);
        }
        let delay = config.banner_delay;
        let now = Instant::now();
        let proto: Box<dyn Protocol> = match entry {
            Entry::Main => Box::new(TextSession::new(&session_config)),
            Entry::Irc => Box::new(IrcSession::new(&session_config)),
            // The chat's welcome, queued at connect, is written as JSON.
            Entry::Json => Box::new(JsonSession::new(&session_config, false)),
        };
        let mut c = Connection {
            id,
            timer: Armed::default(),
            decoder: Framer::new(config.max_line_bytes, entry == Entry::Main),
            deadline: now + config.registration_timeout,
            permit: None,
            hold_until: (entry == Entry::Main && !opening.silent && !delay.is_zero())
                .then(|| now + delay),
            proto,
            detecting: (entry == Entry::Main).then_some(session_config),
            shared: shared.clone(),
            stream,
            queue,
            registered: false,
            heartbeat: None,
            ping_token: 0,
            open: None,
            log,
            flow: Flow {
                opening_log: Some(opening_log),
                ..Flow::new(now)
            },
        };
        c.start_proto();
        if c.detecting.is_none() {
            metrics().opened(c.proto.name(), T::NAME);
        }
        c
    }

    /// The connection ended for `end` (or parks: `End::Park`): it is
    /// counted, leaves the chat (and its rooms) and is logged.
    fn finish(mut self, end: End) {
        if matches!(end, End::Park) {
            return self.park();
        }
        let shared = self.shared.clone();
        let open = self.open.take();
        ended(
            &shared,
            self.id,
            &self.queue,
            &mut self.timer,
            open,
            &self.log,
            end,
        );
    }

    /// Parks the connection (see `server::park`): its task ends, and what
    /// it must keep waits in its poller, without a task, until its
    /// socket, its mailbox or its timer needs it.
    fn park(mut self) {
        // Quiet for `park_after`: its queue's buffer goes back now.
        self.flow.trim_at = None;
        self.queue.trim();
        // Nothing it holds counts for the pacer while parked (it counts
        // again once it runs: `note_keeping_up`).
        self.queue.set_keeping_up(false);
        // Its next deadline (the heartbeat's) stays in the server's timers;
        // a quiet heartbeat (no pings) has nothing to do for a parked
        // connection (its buffer went back above) and starts anew when it
        // resumes.
        let due = self
            .heartbeat
            .as_ref()
            .filter(|hb| hb.pings)
            .map(Heartbeat::due);
        self.timer.arm(&self.shared.timers, &self.queue, due);
        let Connection {
            id,
            shared,
            stream,
            queue,
            decoder,
            proto,
            heartbeat,
            ping_token,
            open,
            log,
            mut timer,
            permit,
            ..
        } = self;
        let fd = match stream.into_fd() {
            Ok(fd) => fd,
            Err(e) => return ended(&shared, id, &queue, &mut timer, open, &log, End::Error(e)),
        };
        let dormant = Box::new(Dormant {
            fd,
            id,
            queue,
            decoder,
            proto,
            heartbeat,
            ping_token,
            log,
            timer,
            _permit: permit,
        });
        // Looked up again when it resumes (8 bytes less while parked).
        drop(open);
        metrics().parks.inc();
        shared.parking.park(&shared, id.local, dormant);
    }

    /// Whether this connection parks when quiet (`park_after` set, and a
    /// transport that can).
    fn parks(&self) -> bool {
        T::PARKS && self.shared.parking.on()
    }

    /// The park deadline passed (the timer fired): true if the connection
    /// stayed quiet since it was set and holds nothing in flight (no
    /// output waiting, no line held, no listing being paged, no answer
    /// awaited, no flood control or pacing pending), so it may park; else
    /// the deadline moves `park_after` on. So a quiet connection parks
    /// between `park_after` and twice that after it was last busy, and one
    /// resumed for a timer that found nothing to do parks again at once.
    fn may_park(&mut self) -> bool {
        if !self.registered || !self.parks() {
            return false;
        }
        let now = Instant::now();
        if self.deadline > now {
            return false;
        }
        let quiet = !std::mem::take(&mut self.flow.active)
            && self.detecting.is_none()
            && self.hold_until.is_none()
            && self.flow.held.is_none()
            && self.flow.pending.is_empty()
            && self.flow.backlog.is_empty()
            && self.flow.pager.is_empty()
            && !self.proto.waiting()
            && !self.flow.ingest_paced
            && self.flow.flood_clock <= now
            && self.stream.flushed()
            && self.queue.load() == 0
            && !self.queue.is_killed();
        if !quiet {
            self.deadline = now + self.shared.config.park_after;
        }
        quiet
    }
}

/// A connection ended for `end`: it is counted, leaves the chat (and its
/// rooms) and is logged.
fn ended(
    shared: &Shared,
    id: ConnId,
    queue: &Queue,
    timer: &mut Armed,
    open: Option<prometheus_client::metrics::gauge::Gauge>,
    log: &ConnLog,
    end: End,
) {
    // What is still queued no longer counts against the pacer.
    queue.set_keeping_up(false);
    timer.disarm(&shared.timers, queue);
    if let Some(open) = open {
        open.dec();
    }
    if matches!(end, End::SlowConsumer) {
        metrics().slow_consumers.inc();
    } else if matches!(end, End::ExcessFlood) {
        metrics().excess_flood.inc();
    }
    let reason = match &end {
        End::Closed => "connection closed".to_string(),
        End::Quit => "quit".to_string(),
        End::Error(e) => format!("connection error: {e}"),
        End::RegistrationTimeout => "registration timeout".to_string(),
        End::SlowConsumer => crate::hub::SLOW_CONSUMER.to_string(),
        End::PingTimeout => "ping timeout".to_string(),
        End::ExcessFlood => "Excess Flood".to_string(),
        End::Shutdown => "server shutting down".to_string(),
        End::Killed => "killed".to_string(),
        End::Park => "parked".to_string(), // not an end: never here
    };
    // Named while it still has its nick.
    let span = log.span(shared.chat.nick_of(id).as_deref());
    // Tells the rooms unless the chat already did (quit, slow consumer),
    // and frees the router's slot either way.
    shared.chat.disconnect(id, &reason);
    span.in_scope(|| info!("disconnected: {reason}"));
}

/// A parked connection (see `server::park`): what a quiet, registered
/// plain-TCP connection keeps while it has no task. Everything else of a
/// [`Connection`] is empty or at its start when it parks (no output or
/// input held, no listing, no pending answer, flood control's clock not
/// ahead), so it is made anew when it resumes.
pub(crate) struct Dormant {
    /// The socket, out of tokio's reactor (the poller watches it).
    fd: std::os::fd::OwnedFd,
    id: ConnId,
    queue: Queue,
    decoder: Framer,
    proto: Box<dyn Protocol>,
    heartbeat: Option<Heartbeat>,
    ping_token: u32,
    log: ConnLog,
    /// Its entry in the server's timers stays armed while it is parked.
    timer: Armed,
    _permit: Option<Permit>,
}

impl Dormant {
    /// Its socket's descriptor (for the poller's `epoll`).
    pub fn fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.fd)
    }

    /// Its mailbox.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }
}

/// Gives a parked connection a task again (its poller calls this when
/// something needs it): the loop starts as if it had waited all along,
/// and finds what woke it (the socket's input, its mailbox's item or
/// signal, a due deadline). `readable`: its socket woke it (tokio's
/// reactor reports that to the new registration on its next turn, so the
/// connection does not park again before `park_after`); else its mailbox
/// did, which the loop sees at once, and if that leaves it quiet it parks
/// again at once.
pub(crate) fn resume(shared: Arc<Shared>, dormant: Box<Dormant>, readable: bool) {
    let Dormant {
        fd,
        id,
        queue,
        decoder,
        proto,
        mut heartbeat,
        ping_token,
        log,
        mut timer,
        _permit: permit,
    } = *dormant;
    // Still counted in its protocol's gauge while it was parked.
    let open = Some(metrics().connection(proto.name(), "tcp"));
    let now = Instant::now();
    if let Some(hb) = heartbeat.as_mut().filter(|hb| !hb.pings) {
        hb.next_ping = now + hb.interval(&shared.config);
    }
    let stream = match tokio::net::TcpStream::from_std(std::net::TcpStream::from(fd)) {
        Ok(s) => s,
        Err(e) => return ended(&shared, id, &queue, &mut timer, open, &log, End::Error(e)),
    };
    let c = Connection {
        id,
        shared: shared.clone(),
        stream,
        queue,
        decoder,
        proto,
        detecting: None,
        registered: true,
        heartbeat,
        ping_token,
        deadline: match readable {
            true => now + shared.config.park_after,
            false => now,
        },
        permit,
        hold_until: None,
        open,
        log,
        timer,
        flow: Flow::new(now),
    };
    shared.tracker.spawn(async move {
        let mut c = c;
        let end = c.run().await;
        c.finish(end);
    });
}

impl<T: Transport> Connection<T> {
    /// The connection's loop. Kept small at idle: the mailbox (which also
    /// says when a deadline is due and when the server goes down) and
    /// readiness. Output is written at once; only a peer that is behind
    /// gets a (boxed) future that waits for its socket.
    async fn run(&mut self) -> End {
        let queue = self.queue.clone();
        loop {
            self.write_pages();
            self.note_keeping_up();
            // The server's writers were behind when this connection had
            // input: it reads nothing until the pacer lets the readers go.
            let ingest = self.flow.ingest_paced;
            // The server's timers wake it for its earliest deadline.
            let due = self.next_timer();
            self.timer.arm(&self.shared.timers, &self.queue, due);
            // The store is behind, or this client's own lines fill its
            // queue while they wait for their commit: what it sends waits
            // in the socket (and TCP slows it) until the writer catches up.
            let store_behind = self.store_behind();
            let paced = ingest || store_behind || self.own_lines_wait();
            // What woke the connection; handled below, once the select's
            // futures are gone, so that what the handlers await does not
            // sit beside them in every idle connection's task.
            // Waiting for the server (the store, the writers) is rare: its
            // futures are boxed, and only while it waits.
            let waits = self.flow.held.is_some() || store_behind || ingest;
            let server = waits.then(|| {
                let held = self
                    .flow
                    .held
                    .as_ref()
                    .map(|item| gate(&self.shared, Some(item)));
                server_waits(self.shared.clone(), held, store_behind, ingest)
            });
            // Items are taken unless the banner is held or one waits for
            // the store; the mailbox reports the shutdown and due
            // deadlines either way. (A connection attached after the
            // router told everyone sees the token instead.)
            let take = self.hold_until.is_none() && self.flow.held.is_none();
            let woke = if self.shared.shutdown.is_cancelled() {
                Woke::Shutdown
            } else {
                tokio::select! {
                    biased;
                    Some(woke) = OptionFuture::from(server), if waits => woke,
                    next = queue.wait(take) => match next {
                        Next::Shutdown => Woke::Shutdown,
                        Next::Timer => Woke::Timer,
                        next => Woke::Next(next),
                    },
                    r = self.stream.readable(), if !paced => Woke::Readable(r),
                }
            };
            match woke {
                Woke::Shutdown => {
                    let grace = self.shared.config.shutdown_grace;
                    let _ = tokio::time::timeout(grace, Box::pin(self.flush())).await;
                    return End::Shutdown;
                }
                Woke::Durable => {
                    if let Some(item) = self.flow.held.take() {
                        if let Err(e) = self.write_item(item).await {
                            return if queue.is_killed() {
                                End::SlowConsumer
                            } else {
                                End::Error(e)
                            };
                        }
                    }
                    self.wrote();
                }
                Woke::Next(next) => match next {
                    Next::Item(item) if self.waits(&item) => self.flow.held = Some(item),
                    Next::Item(item) => {
                        // The rest of this pass first (the other
                        // members' wakeups, the lines read with this one):
                        // the write then takes all of it. Not when a full
                        // batch is queued already (a server that is behind
                        // writes at once; waiting would only let readers
                        // queue more).
                        if self.shared.config.defer_writes && self.queue.depth().0 < BATCH - 1 {
                            tokio::task::yield_now().await;
                        }
                        if let Err(e) = self.write_item(item).await {
                            return if queue.is_killed() {
                                End::SlowConsumer
                            } else {
                                End::Error(e)
                            };
                        }
                        self.wrote();
                    }
                    Next::Killed => return End::SlowConsumer,
                    Next::Closed => return End::Killed,
                    Next::Timer | Next::Shutdown => {} // made Woke::Timer / Shutdown above
                },
                Woke::Paced => {
                    metrics().reads_paced.inc();
                    self.flow.ingest_paced = false;
                    self.flow.pass = true;
                    if !self.flow.backlog.is_empty() && self.handle_backlog() == Outcome::Close {
                        return self.quit().await;
                    }
                }
                Woke::Backlog => {
                    if !self.flow.backlog.is_empty() && self.handle_backlog() == Outcome::Close {
                        return self.quit().await;
                    }
                }
                Woke::Readable(r) => {
                    if let Err(e) = r {
                        return End::Error(e);
                    }
                    if self.gated() {
                        continue; // the input waits in the socket
                    }
                    let read = self.read();
                    self.flow.pass = false;
                    match read {
                        Ok(Some(Outcome::Close)) => return self.quit().await,
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return End::Closed,
                        Err(e) if e.kind() == io::ErrorKind::OutOfMemory => {
                            self.proto.goodbye(Goodbye::ExcessFlood, port!(self));
                            let _ = tokio::time::timeout(
                                Duration::from_secs(1),
                                Box::pin(self.flush()),
                            )
                            .await;
                            return End::ExcessFlood;
                        }
                        Err(e) => return End::Error(e),
                    }
                }
                Woke::Timer => {
                    self.timer.fired(Instant::now());
                    if !self.flow.backlog.is_empty() && self.handle_backlog() == Outcome::Close {
                        return self.quit().await;
                    }
                    if let Some((end, why)) = self.timer_fired() {
                        self.proto.goodbye(why, port!(self));
                        let _ =
                            tokio::time::timeout(Duration::from_secs(1), Box::pin(self.flush()))
                                .await;
                        return end;
                    }
                    if self.may_park() {
                        return End::Park;
                    }
                }
            }
        }
    }

    /// Tells the queue whether this connection keeps up (writing, nothing
    /// stuck in its socket, no banner held, nothing waiting for the store),
    /// when that changes: only then do its deliveries count for the pacer.
    fn note_keeping_up(&mut self) {
        let yes =
            self.hold_until.is_none() && self.flow.held.is_none() && self.flow.pending.is_empty();
        if yes != self.flow.keeping_up {
            self.flow.keeping_up = yes;
            self.queue.set_keeping_up(yes);
        }
    }

    /// The client is leaving: what is queued is written (within
    /// `write_timeout`) before the socket closes.
    async fn quit(&mut self) -> End {
        let wait = self.shared.config.write_timeout;
        let _ = tokio::time::timeout(wait, Box::pin(self.flush())).await;
        End::Quit
    }

    /// Hands the connection to `proto`, which the first line chose.
    fn switch_to(&mut self, proto: Box<dyn Protocol>) {
        self.proto = proto;
        self.start_proto();
    }

    /// Starts the session in `proto`: its line limits and heartbeat.
    fn start_proto(&mut self) {
        let (max, telnet) = self.proto.framing(self.shared.config.max_line_bytes);
        self.decoder.set_max(max);
        if !telnet {
            self.decoder.without_telnet();
        }
        if self.detecting.is_none() {
            self.decoder.set_json(self.proto.json_framing());
        }
        let pings = self.proto.heartbeat();
        let raw = pings && self.proto.raw_ping().is_some();
        self.heartbeat = Some(Heartbeat::new(raw, pings, &self.shared.config));
        self.proto.start(port!(self));
        self.queue.set_flavor(self.proto.flavor());
        if let Some(open) = self.open.take() {
            open.dec();
        }
        let open = metrics().connection(self.proto.name(), T::NAME);
        open.inc();
        self.open = Some(open);
        if tracing::enabled!(tracing::Level::DEBUG) {
            let _log = self.log_span().entered();
            debug!("speaking {}", self.proto.name());
        }
    }

    /// Output was written from the send queue: its buffer (grown for a
    /// burst, such as a join storm's notices) goes back `sendq_keep` later
    /// if the queue is empty then, so that an idle client holds none.
    /// Once per `sendq_keep` at most: a busy client regrows it rarely.
    fn wrote(&mut self) {
        self.flow.active = true;
        if self.flow.trim_at.is_none() {
            let keep = self.shared.config.sendq_keep;
            if keep.is_zero() {
                self.queue.trim();
            } else {
                self.flow.trim_at = Some(Instant::now() + keep);
            }
        }
    }

    /// The earliest of the banner hold, the registration timeout, the
    /// heartbeat, flood control's release and the send queue's trim.
    fn next_timer(&self) -> Option<Instant> {
        // Until registered the registration timeout; then when it may park.
        let registration = (!self.registered || self.parks()).then_some(self.deadline);
        let heartbeat = self.heartbeat.as_ref().map(Heartbeat::due);
        // Lines wait while a listing is being paged out, or while the
        // session awaits an answer (a login); the answer's write ends the wait.
        let waiting = !self.flow.backlog.is_empty()
            && self.flow.pager.is_empty()
            && !self.proto.waiting()
            && !self.input_waits();
        let flood = waiting.then(|| self.flood_release());
        [
            self.hold_until,
            registration,
            heartbeat,
            flood,
            self.flow.trim_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Handles whichever timers are due; `Some` ends the connection.
    fn timer_fired(&mut self) -> Option<(End, Goodbye)> {
        let now = Instant::now();
        if self.hold_until.is_some_and(|t| t <= now) {
            self.hold_until = None;
        }
        if self.flow.trim_at.is_some_and(|t| t <= now) {
            self.flow.trim_at = None;
            self.queue.trim();
        }
        if !self.registered && self.deadline <= now {
            self.hold_until = None;
            return Some((End::RegistrationTimeout, Goodbye::RegistrationTimeout));
        }
        if self.heartbeat.as_ref().is_some_and(|hb| hb.due() <= now) && self.heartbeat_fired() {
            let config = &self.shared.config;
            let secs = self
                .heartbeat
                .as_ref()
                .map_or(0, |hb| hb.timeout(config).as_secs());
            return Some((End::PingTimeout, Goodbye::PingTimeout(secs)));
        }
        None
    }

    /// Reads what is available and hands complete lines to the session.
    /// `Ok(None)`: spurious wakeup. `UnexpectedEof`: the client closed its
    /// socket (what it sent ahead is dropped); `OutOfMemory`: it sent more
    /// than `recvq` ahead of flood control.
    fn read(&mut self) -> io::Result<Option<Outcome>> {
        // The worker thread's buffer: not zeroed (8 KiB) on every read.
        thread_local! {
            static BUF: std::cell::RefCell<Box<[u8]>> =
                std::cell::RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
        }
        let (stream, decoder) = (&mut self.stream, &mut self.decoder);
        let (backlog, bytes) = (&mut self.flow.backlog, &mut self.flow.backlog_bytes);
        let read = BUF.with(|buf| {
            let mut buf = buf.borrow_mut();
            let n = stream.try_read(&mut buf)?;
            decoder.feed(&buf[..n], |l| {
                *bytes += line_cost(&l);
                backlog.push_back(l)
            });
            Ok::<_, io::Error>(n)
        });
        match read {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        }
        self.after_input().map(Some)
    }

    /// Frames `input` (bytes read before the loop started: the first bytes
    /// over TLS) into lines and hands them to the session as flood control
    /// allows. `OutOfMemory`: more than `recvq` is waiting.
    fn take_input(&mut self, input: &[u8]) -> io::Result<Outcome> {
        let (backlog, bytes) = (&mut self.flow.backlog, &mut self.flow.backlog_bytes);
        self.decoder.feed(input, |l| {
            *bytes += line_cost(&l);
            backlog.push_back(l)
        });
        self.after_input()
    }

    /// Input arrived: the heartbeat heard the client, and the lines framed
    /// go to the session as flood control allows.
    fn after_input(&mut self) -> io::Result<Outcome> {
        self.flow.active = true;
        if let Some(hb) = &mut self.heartbeat {
            hb.heard(&self.shared.config);
        }
        let outcome = self.handle_backlog();
        // Lines left because the store is behind are the server's delay,
        // not the client's flood (and no more is read meanwhile).
        if self.flow.backlog_bytes > self.shared.config.recvq && !self.input_waits() {
            return Err(io::ErrorKind::OutOfMemory.into());
        }
        Ok(outcome)
    }

    /// Whether the store has more lines waiting for their commit than
    /// `db_max_pending`: this connection then handles and reads no more.
    fn store_behind(&self) -> bool {
        self.shared.durable.as_ref().is_some_and(|w| w.behind())
    }

    /// Whether, with a database, this connection's queue is over half its
    /// `sendq`: its client's next lines would add events that wait for a
    /// commit there too, and the budget of the store is shared by
    /// everyone, so one client whose socket had much to read could
    /// otherwise take enough of it to overflow its own queue. Checked
    /// before each line, so the queue grows at most one line's events past
    /// half; writing the queue out (once committed) wakes the connection.
    fn own_lines_wait(&self) -> bool {
        self.shared.durable.is_some() && self.queue.load() > self.queue.cap() / 2
    }

    /// Lines are held back for the store (either reason above).
    fn paced(&self) -> bool {
        self.store_behind() || self.own_lines_wait()
    }

    /// Input waits for the server: the store (see [`Self::paced`]) or the
    /// writers (the ingest pacer stopped this connection's lines). One
    /// gate for both: lines held for it are neither a flood (no "Excess
    /// Flood", no flood timer) nor read further, and one boxed wait in the
    /// loop ends it (`server_waits`).
    fn input_waits(&self) -> bool {
        self.flow.ingest_paced || self.paced()
    }

    /// When the next held-back line may be handled: the flood clock may run
    /// at most `flood_burst` lines ahead of real time.
    fn flood_release(&self) -> Instant {
        let c = &self.shared.config;
        self.flow
            .flood_clock
            .checked_sub(c.flood_interval() * c.flood_burst)
            .unwrap_or(self.flow.flood_clock)
    }

    /// Hands backlogged lines to the session while flood control allows
    /// (each line advances the flood clock by `1/flood_rate`); the rest wait
    /// for the timer, and the socket is not read meanwhile (like IRC "fakelag").
    fn handle_backlog(&mut self) -> Outcome {
        let interval = self.shared.config.flood_interval();
        let mut outcome = Outcome::Continue;
        while !self.flow.backlog.is_empty() && self.flow.pager.is_empty() && !self.proto.waiting() {
            if self.paced() {
                metrics().store_paced.inc();
                break; // the rest when the store has caught up
            }
            if self.gated() {
                break; // the rest waits for the writers
            }
            let now = Instant::now();
            if !interval.is_zero() && self.flood_release() > now {
                if !std::mem::replace(&mut self.flow.throttled, true) {
                    metrics().flood_delayed.inc();
                }
                break;
            }
            let Some(line) = self.flow.backlog.pop_front() else {
                break;
            };
            self.flow.backlog_bytes -= line_cost(&line);
            self.flow.flood_clock = self.flow.flood_clock.max(now) + interval;
            metrics().lines_in.inc();
            outcome = self.handle_line(line);
            self.queue.set_flavor(self.proto.flavor());
            self.write_pages();
            if outcome == Outcome::Close {
                self.flow.backlog.clear();
                self.flow.backlog_bytes = 0;
                break;
            }
        }
        if self.flow.backlog.is_empty() {
            self.flow.throttled = false;
            self.flow.backlog = Backlog::default(); // an idle connection holds no backlog memory
        }
        self.note_registered();
        outcome
    }

    /// Whether this connection's input must wait for the writers: the
    /// pacer is over its budget and this connection has no pass (sets
    /// `ingest_paced` then). When the pacer lets the paused readers go,
    /// each of them handles what it holds and reads once more, however
    /// many went before it in that pass: the pass is bounded by what
    /// arrived during the pause (the ceiling relay's read pass), and no
    /// reader is left behind because others always run first.
    fn gated(&mut self) -> bool {
        if self.flow.pass || !self.shared.pacer.over() {
            return false;
        }
        self.flow.ingest_paced = true;
        true
    }

    /// Logs the registration once the session has a nick.
    fn note_registered(&mut self) {
        if !self.registered && self.proto.registered() {
            self.registered = true;
            // From now on `deadline` is when it may park.
            self.deadline = Instant::now() + self.shared.config.park_after;
            metrics().registrations.inc();
            let opening_log = self.flow.opening_log.take();
            if let Some(nick) = self.shared.chat.nick_of(self.id) {
                // The "connected" line's span, its nick recorded now, reads
                // as a span made now with the nick (see `ConnLog::span`).
                let span = match opening_log {
                    Some(span) => {
                        span.record("nick", &*nick);
                        span
                    }
                    None => self.log.span(Some(&nick)),
                };
                let _log = span.entered();
                info!("registered as {nick}");
            }
        }
    }

    fn handle_line(&mut self, line: Result<String, LineError>) -> Outcome {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                self.proto.bad_line(e, port!(self));
                return Outcome::Continue;
            }
        };
        if let Some(config) = self.detecting.take() {
            // A banner still held back is written by the new protocol.
            let banner_shown = self.hold_until.is_none();
            let proto: Option<Box<dyn Protocol>> = match self.decoder.undelimited() {
                true => Some(Box::new(OriginalSession::new(&config))),
                false => session::detect(&line, &config, banner_shown),
            };
            if let Some(proto) = proto {
                self.switch_to(proto);
            }
            metrics().opened(self.proto.name(), T::NAME);
            self.hold_until = None;
        }
        self.proto.line(&line, port!(self))
    }

    /// The heartbeat timer fired: ping, or report a timeout (true).
    fn heartbeat_fired(&mut self) -> bool {
        self.queue.trim(); // quiet for an interval: its buffer goes back
        let now = Instant::now();
        let config = &self.shared.config;
        let Some(hb) = &mut self.heartbeat else {
            return false;
        };
        let (interval, timeout) = (hb.interval(config), hb.timeout(config));
        if !hb.pings {
            hb.next_ping = now + interval;
            return false;
        }
        if hb.deadline.is_some_and(|d| now >= d) {
            return true;
        }
        if hb.raw {
            if hb.next_ping <= now {
                hb.next_ping = now + interval;
                if let Some(bytes) = self.proto.raw_ping() {
                    self.write_alone(bytes);
                }
            }
            return false;
        }
        hb.deadline = Some(now + timeout);
        hb.next_ping = now + interval;
        self.ping_token = self.ping_token.wrapping_add(1);
        self.proto.ping(u64::from(self.ping_token), port!(self));
        false
    }

    /// Writes `bytes` in a write of their own (a raw ping, which the
    /// client recognises only as a whole chunk). Skipped while output waits
    /// for the socket or the banner is held: a client that is behind gets
    /// no ping, and its timeout still runs.
    fn write_alone(&mut self, bytes: &[u8]) {
        if !self.flow.pending.is_empty() || self.hold_until.is_some() {
            return;
        }
        // Written, or the socket is full or failing (the next write says so).
        if let Ok(n) = self.stream.try_write(bytes) {
            if n < bytes.len() {
                self.flow.pending.extend_from_slice(&bytes[n..]);
                self.queue.set_inflight(self.flow.pending.len());
            }
        }
    }

    /// Whether `item` must wait for the store before it is written.
    fn waits(&self, item: &Item) -> bool {
        gate(&self.shared, Some(item)).is_some()
    }

    /// Writes `item` and what follows it in the queue, waiting for a peer
    /// that is behind.
    async fn write_item(&mut self, item: Item) -> io::Result<()> {
        self.write_now(item)?;
        // A session waiting on an answer it was just shown goes on.
        self.proto.wake(port!(self));
        self.note_registered();
        if !self.flow.pending.is_empty() || !self.stream.flushed() {
            // Its socket is full: what it holds is not the server being behind.
            if std::mem::take(&mut self.flow.keeping_up) {
                self.queue.set_keeping_up(false);
            }
            Box::pin(self.write_pending()).await?;
        }
        Ok(())
    }

    /// Appends one queued item to `out` as this connection writes it
    /// (nothing for an event whose facts the store failed to keep).
    /// Queues pages of the listings in progress while the send queue is
    /// below half the sendq (a client that does not read gets no more).
    fn write_pages(&mut self) {
        let (chat, page_size) = (&self.shared.chat, self.shared.config.page_size);
        if !self.flow.pager.is_empty() {
            // A listing is a reply: the lines said before it go first.
            chat.flush_lines();
        }
        while !self.flow.pager.is_empty() && self.queue.load() < self.queue.cap() / 2 {
            if let Some(mark) = self.flow.pager.take_mark() {
                self.queue.push_mark(mark);
                continue;
            }
            let mut out = Vec::new();
            self.flow
                .pager
                .next_page(chat, self.id, page_size, &mut *self.proto, &mut out);
            if !out.is_empty() {
                self.queue.push_page(out.into());
            }
        }
    }

    /// Appends one queued item to `out` as this connection writes it.
    fn render_into(&mut self, item: Item, out: &mut Vec<u8>) {
        match item {
            Item::Event(ev) => self.render_event(&ev, out),
            Item::Lines(lines) => {
                for ev in &lines.events {
                    self.render_event(ev, out);
                }
            }
            Item::Local(bytes) => self.proto.local(&bytes, out),
            Item::Mark(mark) => self.proto.mark(mark, out),
        }
    }

    /// Appends a shared event, unless the store failed to keep it.
    fn render_event(&mut self, ev: &Event, out: &mut Vec<u8>) {
        let failed = self.shared.durable.as_ref().is_some_and(|w| {
            let ticket = ev.gate();
            ticket != 0 && w.failed(ticket)
        });
        if !failed {
            self.proto.render(ev, out)
        }
    }

    /// Renders `first` and whatever else is queued (up to a batch) into this
    /// worker thread's buffer and writes it at once. What the socket does not
    /// take is kept in `pending` for [`Connection::write_pending`]. No
    /// allocation per message in the usual case: the buffer is the thread's.
    fn write_now(&mut self, first: Item) -> io::Result<()> {
        thread_local! {
            static OUT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
            static TAKEN: std::cell::RefCell<Vec<Queued>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        OUT.with(|out| {
            let mut out = out.borrow_mut();
            out.clear();
            let mut items = first.deliveries();
            self.render_into(first, &mut out);
            TAKEN.with(|taken| {
                let mut taken = taken.borrow_mut();
                self.queue.take(BATCH - 1, &mut taken);
                let mut entries = taken.drain(..);
                while let Some(entry) = entries.next() {
                    if self.waits(&entry.item) {
                        // It and what follows wait for the store.
                        self.flow.held = Some(entry.item);
                        self.queue.put_back(entries);
                        break;
                    }
                    items += entry.item.deliveries();
                    self.render_into(entry.item, &mut out);
                }
            });
            // Once per batch: one relaxed add each, not one per recipient.
            let m = metrics();
            m.deliveries.inc_by(items);
            m.bytes_out.inc_by(out.len() as u64);
            let mut written = 0;
            // After the rest of a raw ping, if one is left (never reordered).
            while written < out.len() && self.flow.pending.is_empty() {
                match self.stream.try_write(&out[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            self.flow.pending.extend_from_slice(&out[written..]);
            self.queue.set_inflight(self.flow.pending.len());
            if out.capacity() > 256 * 1024 {
                *out = Vec::new(); // one huge batch does not pin memory forever
            }
            Ok(())
        })
    }

    /// Waits until the socket has taken everything in `pending`.
    async fn write_pending(&mut self) -> io::Result<()> {
        let buf = std::mem::take(&mut self.flow.pending);
        let r = write_all(
            &self.stream,
            &buf,
            &self.queue,
            self.shared.config.write_timeout,
        )
        .await;
        self.queue.set_inflight(0);
        r
    }

    /// Writes everything still queued (used on quit, timeouts and
    /// shutdown), waiting for the store where it must.
    async fn flush(&mut self) {
        loop {
            let item = match self.flow.held.take() {
                Some(item) => item,
                None => match self.queue.try_next() {
                    Some(Next::Item(item)) => item,
                    _ => break,
                },
            };
            durable(&self.shared, Some(&item)).await;
            if self.write_item(item).await.is_err() {
                return;
            }
        }
        if tracing::enabled!(tracing::Level::DEBUG) {
            let _log = self.log_span().entered();
            debug!("flushed");
        }
    }

    /// The span for a line logged now (see [`ConnLog`]).
    fn log_span(&self) -> tracing::Span {
        self.log.span(self.shared.chat.nick_of(self.id).as_deref())
    }
}

/// The store ticket `item` still waits for, if any.
fn gate(shared: &Shared, item: Option<&Item>) -> Option<u64> {
    let (Some(w), Some(item)) = (&shared.durable, item) else {
        return None;
    };
    let ticket = match item {
        Item::Event(ev) => ev.gate(),
        // Lines of one room, stored in their order: the last one's.
        Item::Lines(lines) => lines.events.last().map_or(0, |ev| ev.gate()),
        Item::Local(_) | Item::Mark(_) => return None,
    };
    (ticket > w.done()).then_some(ticket)
}

/// Waits until `item` may be written.
async fn durable(shared: &Shared, item: Option<&Item>) {
    if let (Some(w), Some(ticket)) = (&shared.durable, gate(shared, item)) {
        w.reached(ticket).await;
    }
}

/// Waits (boxed) for the first of what a connection waits for on the
/// server's side: the store reaching the ticket of the item `held` for it
/// (`Some(None)`: reached already), the store no longer behind
/// (`store_behind`), the writers caught up (`ingest`: the pacer).
fn server_waits(
    shared: Arc<Shared>,
    held: Option<Option<u64>>,
    store_behind: bool,
    ingest: bool,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Woke> + Send>> {
    Box::pin(async move {
        let durable = shared.durable.as_ref();
        tokio::select! {
            biased;
            _ = async {
                if let (Some(w), Some(Some(t))) = (durable, held) {
                    w.reached(t).await
                }
            }, if held.is_some() => Woke::Durable,
            _ = async {
                if let Some(w) = durable {
                    w.caught_up().await
                }
            }, if store_behind => Woke::Backlog,
            _ = shared.pacer.below(), if ingest => Woke::Paced,
        }
    })
}

/// What a line waiting for flood control counts against the receive
/// queue: its bytes and what holding it costs (its slot, its allocation).
fn line_cost(line: &Result<String, LineError>) -> usize {
    const HELD: usize = 32;
    match line {
        Ok(l) => l.len() + HELD,
        Err(_) => HELD,
    }
}

/// Writes all of `buf`, giving up if the peer makes no progress for `timeout`
/// or the connection is killed.
async fn write_all<T: Transport>(
    stream: &T,
    mut buf: &[u8],
    queue: &Queue,
    timeout: Duration,
) -> io::Result<()> {
    while !buf.is_empty() || !stream.flushed() {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What a parked connection keeps (boxed, plus its slot in the poller)
    /// instead of its task (~0.9 KiB) and its socket's registration in
    /// tokio's reactor (256 bytes).
    #[test]
    fn a_parked_connection_stays_small() {
        let dormant = std::mem::size_of::<Dormant>();
        let mailbox = std::mem::size_of::<Queue>();
        eprintln!(
            "Dormant: {dormant} bytes (Framer {}, Heartbeat {}, ConnLog {}, Permit {}), Queue {mailbox}",
            std::mem::size_of::<Framer>(),
            std::mem::size_of::<Option<Heartbeat>>(),
            std::mem::size_of::<ConnLog>(),
            std::mem::size_of::<Option<Permit>>(),
        );
        // 224 bytes, jemalloc's 224-byte class (`perf16r`; 256 before,
        // `perf16l`): the framer without its copy of the line limit, the
        // decoder's limit in 32 bits (72 -> 56 bytes), the log identity's
        // peer packed and its kind in its number's top byte (48 -> 32).
        assert!(dormant <= 224, "a parked connection keeps {dormant} bytes");
        assert!(std::mem::size_of::<Framer>() <= 56);
        assert!(std::mem::size_of::<ConnLog>() <= 32);
    }
}
