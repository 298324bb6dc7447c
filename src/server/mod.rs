//! The I/O shell: listeners (the main port, and the IRC port unless it is
//! `off`), admission, one connection task per connection, the router that
//! owns the member queues, and graceful shutdown. Both listeners share the
//! admission limits and the shutdown. All chat logic lives in the hub; all
//! wire formats in `proto`.

mod accounts;
mod addr;
pub(crate) mod connection;
mod detect;
mod limits;
mod mailbox;
mod pacer;
mod pager;
pub(crate) mod park;
mod refusal_log;
mod router;
mod timers;
pub mod tls;
pub(crate) mod transport;

use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

use crate::cluster::nats::Nats;
use crate::cluster::Standalone;
use crate::config::Config;
use crate::hub::{Backplane, Incoming, Store};
use crate::hub::{ChatHandle, Control, HubConfig};
use crate::proto::irc::{Limits, ServerInfo};
use crate::proto::session::OperBook;
use crate::proto::{now_ms, session, ErrorCode, EventBody, Name};
use crate::store::sqlite::{Retention, SqliteStore};
use crate::store::MemoryStore;

use connection::{ConnLog, Entry, LogKind, Opening};
pub use limits::{Admission, Refusal};
use tls::Tls;

/// The chat as this server holds it: the handle over the router's queues.
pub(crate) type Chat = ChatHandle<router::Router>;

/// Opens the store the config asks for: the SQLite file, or memory with
/// `db = "off"`. The receiver, if any, names senders whose messages the
/// store failed to keep.
fn open_store(config: &Config) -> anyhow::Result<(Arc<dyn Store>, Option<Failures>)> {
    if config.db == "off" {
        let store = MemoryStore::new(MEMORY_HISTORY_PER_ROOM, MEMORY_HISTORY_ROOMS);
        return Ok((Arc::new(store), None));
    }
    let retention = Retention {
        per_room: config.history_per_room,
        max_age: config.history_max_age,
    };
    let path = std::path::Path::new(&config.db);
    let (mut store, failures) = SqliteStore::open_cached(
        path,
        config.db_max_bytes,
        config.db_sync,
        retention,
        config.db_cache,
    )
    .with_context(|| format!("cannot use the database {} (db)", config.db))?;
    store.set_history_scan(config.history_scan);
    store.set_linger(config.db_linger);
    store.set_wal_max(config.db_wal_max as u64);
    Ok((Arc::new(store), Some(failures)))
}

/// Logs the summaries of refused connections as their intervals end.
async fn summarise_refusals(
    log: Arc<std::sync::Mutex<refusal_log::RefusalLog>>,
    interval: Duration,
    stop: CancellationToken,
) {
    if interval.is_zero() {
        return;
    }
    // Checked a few times per interval, so a summary is at most a quarter late.
    let mut tick = tokio::time::interval(interval / 4);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let lines = match log.lock() {
            Ok(mut log) => log.due(std::time::Instant::now()),
            Err(_) => return,
        };
        for line in lines {
            info!("{line}");
        }
    }
}

/// Senders whose messages the store could not keep.
type Failures = tokio::sync::mpsc::UnboundedReceiver<Vec<crate::proto::ConnId>>;

/// Facts of each room kept in memory when there is no database.
const MEMORY_HISTORY_PER_ROOM: usize = 1000;
/// Rooms whose history is kept in memory.
const MEMORY_HISTORY_ROOMS: usize = 10_000;

/// State shared by every connection.
pub(crate) struct Shared {
    pub config: Config,
    pub chat: Chat,
    /// Where history is read (off the chat lock).
    pub store: Arc<dyn Store>,
    /// History reads at once (`history_readers`): see [`Shared::read_store`].
    readers: Arc<tokio::sync::Semaphore>,
    /// How far the store has made facts durable (`None`: no waiting).
    pub durable: Option<Arc<crate::hub::Watermark>>,
    pub shutdown: CancellationToken,
    /// What IRC clients are told about the server (ISUPPORT, MOTD, …).
    pub irc_info: Arc<ServerInfo>,
    /// `default_room`, shared by every session (not copied into each).
    pub default_room: crate::proto::Name,
    /// Accounts: the store, login throttling, the nick grace period.
    pub auth: Arc<accounts::Auth>,
    /// Per-run secret for host cloaks.
    cloak_key: std::collections::hash_map::RandomState,
    /// The oper blocks sessions check `OPER` against (replaced on a rehash).
    pub opers: OperBook,
    /// TLS, when a certificate is configured.
    pub tls: Option<Arc<Tls>>,
    /// The IRC `sts` policy's port for plaintext connections (TLS on).
    pub sts_port: Option<u16>,
    /// Ingest paced by egress (`ingest_budget`): see `pacer`.
    pub pacer: Arc<pacer::Pacer>,
    /// Every connection's next deadline, kept by one task: see `timers`.
    pub timers: Arc<timers::Timers>,
    /// Where quiet connections wait without a task: see `park`.
    pub parking: park::Parking,
    /// Every connection's task (and parked connection): the shutdown
    /// waits for them.
    pub tracker: TaskTracker,
}

impl Shared {
    /// Sets the send-queue gauges from the router (when metrics are scraped).
    pub fn record_queue_depths(&self) {
        let d = self.chat.with_router(|r| r.depths());
        let m = crate::metrics::metrics();
        m.sendq_items.set(d.items as i64);
        m.ingest_queued.set(self.pacer.queued() as i64);
        m.sendq_bytes.set(d.bytes as i64);
        m.sendq_max_bytes.set(d.max_bytes as i64);
        m.sendq_buffer_bytes.set(d.buffers as i64);
        m.connections_parked.set(self.parking.parked() as i64);
        if let Some(w) = &self.durable {
            m.store_pending_facts.set(w.unfinished() as i64);
        }
    }

    /// Runs a store read on a blocking thread once one of the
    /// `history_readers` permits is free (`None`: the runtime is going
    /// away). A burst of joins, each reading the room's last lines, then
    /// reads a few at a time on pooled connections instead of opening a
    /// thread and a database connection (with its page cache) for each.
    pub async fn read_store<T: Send + 'static>(
        readers: &Arc<tokio::sync::Semaphore>,
        read: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let _permit = readers.clone().acquire_owned().await.ok()?;
        tokio::task::spawn_blocking(read).await.ok()
    }

    /// The permits for [`Shared::read_store`].
    pub fn readers(&self) -> Arc<tokio::sync::Semaphore> {
        self.readers.clone()
    }

    /// The host shown for an address: a keyed hash, stable for this server
    /// run (so bans by host work) and never the address itself.
    pub fn cloak(&self, ip: IpAddr) -> String {
        cloak_text(self.cloak_key.hash_one(ip) as u32)
    }

    /// Reads the TLS certificate files again (SIGHUP, IRC `REHASH`): new
    /// connections get the new certificate, connections already up go on.
    /// On error the old certificate stays, and the error says why.
    pub fn reload_tls(&self) -> anyhow::Result<()> {
        match &self.tls {
            Some(tls) => tls.reload(),
            None => Ok(()),
        }
    }

    /// The IRC `sts` capability's value for a connection (`None`: TLS is
    /// off): where to upgrade on plaintext, how long to keep to TLS on TLS.
    pub fn sts(&self, tls: bool) -> Option<String> {
        match (tls, self.sts_port) {
            (true, Some(_)) => Some(format!("duration={}", self.config.sts_duration.as_secs())),
            (false, Some(port)) => Some(format!("port={port}")),
            _ => None,
        }
    }
}

/// A cloaked host: `{:08x}.ip` of the hash, digit by digit (once per
/// connection, without the formatting machinery).
fn cloak_text(hash: u32) -> String {
    let mut host = *b"00000000.ip";
    crate::digits::hex(&mut host[..8], u128::from(hash));
    String::from_utf8_lossy(&host).into_owned()
}

/// Reads the configuration again (for `REHASH` and `SIGHUP`).
pub type Reload = Box<dyn Fn() -> anyhow::Result<Config> + Send + Sync>;

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    irc_listener: Option<TcpListener>,
    irc_tls_listener: Option<TcpListener>,
    /// The HTTP-only listener, if `http_listen` is on.
    http_listener: Option<TcpListener>,
    shared: Arc<Shared>,
    admission: Admission,
    /// Rehash and shutdown requests from operators.
    requests: tokio::sync::mpsc::Receiver<Control>,
    reload: Option<Reload>,
    failures: Option<Failures>,
    /// What the other nodes say (with a cluster).
    incoming: Option<tokio::sync::mpsc::Receiver<Incoming>>,
}

/// One accepted connection's task, from its port to its end (the
/// admission `permit` is held until then: by the connection, parked or
/// not, on the line protocols' path).
///
/// A task is as large as the largest future it may await, for its whole
/// life: the TLS and HTTP paths (several KiB of handshake and hyper state)
/// are boxed, so that a plain chat connection's task holds only the
/// connection loop (see `tests::an_idle_connection_task_stays_small`).
/// Not an `async fn`, which would keep its arguments beside the
/// connection for its whole life: what runs is built when the task first
/// runs, and holds them in its place.
fn serve(
    entry: Port,
    shared: Arc<Shared>,
    stream: TcpStream,
    host: Name,
    peer: SocketAddr,
    permit: limits::Permit,
    log: ConnLog,
) -> impl std::future::Future<Output = ()> + Send {
    use futures_util::future::{lazy, Either};
    use futures_util::FutureExt;
    let conn = lazy(move |_| match entry {
        Port::Main => Either::Left(detect::main_port(shared, stream, host, peer, log, permit)),
        Port::Irc => {
            let opening = Opening {
                log,
                permit: Some(permit),
                ..Opening::new(Entry::Irc, false)
            };
            let irc = connection::run(shared, stream, host, peer.ip(), opening);
            Either::Right(Either::Left(irc))
        }
        // These keep their span for their whole life (see `ConnLog`).
        Port::IrcTls => {
            let tls = detect::irc_tls_port(shared, stream, host, peer);
            let tls = tls.instrument(log.span(None)).map(move |()| drop(permit));
            Either::Right(Either::Right(Box::pin(tls) as detect::Boxed))
        }
        Port::Http => {
            let ctx = crate::web::WebContext::new(shared, peer, "tcp");
            let http = crate::web::serve(stream, bytes::Bytes::new(), ctx);
            let http = http.instrument(log.span(None)).map(move |()| drop(permit));
            Either::Right(Either::Right(Box::pin(http) as detect::Boxed))
        }
    });
    conn.flatten()
}

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Port {
    Main,
    Irc,
    IrcTls,
    Http,
}

impl Server {
    /// Binds the listeners. Fails with a message naming the address.
    pub async fn bind(config: Config) -> anyhow::Result<Server> {
        let backlog = config.listen_backlog;
        let listener = listen(config.listen, backlog, &config)
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let irc_listener = match config.irc_listen.0 {
            Some(addr) => match listen(addr, backlog, &config) {
                Ok(l) => Some(l),
                // `natter serve` with no config must start even where another
                // IRC server holds 6667: the default IRC port is optional.
                Err(e) if !irc_bind_is_fatal(&config) => {
                    warn!("IRC listener off: cannot listen on {addr}: {e} (set irc_listen to use another address)");
                    None
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot listen on {addr} (irc_listen)"))
                }
            },
            None => None,
        };
        let tls = Tls::from_config(&config)?.map(Arc::new);
        if let Some(tls) = tls.as_ref().filter(|t| t.self_signed()) {
            // For the person testing: what their client should pin.
            println!(
                "TLS certificate (self-signed) SHA-256 fingerprint: {}",
                tls.fingerprint()
            );
        }
        let irc_tls_listener = match (config.irc_tls_listen.0, &tls) {
            (Some(addr), Some(_)) => Some(
                listen(addr, backlog, &config)
                    .with_context(|| format!("cannot listen on {addr} (irc_tls_listen)"))?,
            ),
            _ => None,
        };
        // Plaintext IRC clients are told to upgrade: to the IRC TLS port,
        // or the main port (which speaks TLS too).
        let sts_port = tls.as_ref().map(|_| {
            let main = listener
                .local_addr()
                .map_or(config.listen.port(), |a| a.port());
            irc_tls_listener
                .as_ref()
                .and_then(|l| l.local_addr().ok())
                .map_or(main, |a| a.port())
        });
        let http_listener = match config.http_listen.0 {
            Some(addr) => Some(
                listen(addr, backlog, &config)
                    .with_context(|| format!("cannot listen on {addr} (http_listen)"))?,
            ),
            None => None,
        };
        // After binding: a port in use stays the one line an operator sees.
        raise_open_file_limit(config.max_clients);
        // With a cluster: who is on the other nodes, applied before serving.
        let mut known = Vec::new();
        let mut shared_accounts = None;
        let (store, failures, backplane, incoming) = if config.cluster == "off" {
            let (store, failures) = open_store(&config)?;
            (
                store,
                failures,
                Arc::new(Standalone) as Arc<dyn Backplane>,
                None,
            )
        } else {
            let nats = Nats::connect(&config)
                .await
                .context("cannot join the cluster (cluster)")?;
            let incoming = nats.incoming();
            known = nats.take_known();
            shared_accounts = Some(nats.accounts());
            (
                nats.store(),
                None,
                Arc::new(nats) as Arc<dyn Backplane>,
                incoming,
            )
        };
        let durable = store.watermark();
        if let Some(w) = &durable {
            w.set_budget(config.db_max_pending);
        }
        let (auth, accounts, registry) = accounts::Auth::open(&config, shared_accounts)?;
        // A grace period under a second still is one (0 means refuse).
        let grace_secs = config.nick_grace.as_secs_f64().ceil() as u64;
        let (to_server, requests) = tokio::sync::mpsc::channel(16);
        let pacer = Arc::new(pacer::Pacer::new(config.ingest_budget));
        let chat = ChatHandle::new(
            HubConfig::from_config(&config),
            router::Router::new(to_server, pacer.clone(), config.line_batch),
            store.clone(),
            backplane,
        )
        .with_accounts(accounts, registry, grace_secs);
        router::Router::run_flusher(&chat);
        for fact in &known {
            chat.apply_remote(fact);
        }
        let admission = Admission::new(&config);
        let mut irc_info = ServerInfo::new(
            &config.server_name,
            &Limits {
                monitor_limit: config.monitor_limit,
                history_max_lines: config.history_max_lines,
                max_nick_chars: config.max_nick_chars,
                max_room_chars: config.max_room_chars,
                max_rooms_per_user: config.max_rooms_per_user,
                topic_len: config.topic_len,
                max_bans: config.max_bans,
            },
            now_ms(),
        );
        irc_info.description = config.server_info.clone();
        irc_info.services = config.services_name().into();
        let opers = Arc::new(std::sync::RwLock::new(Arc::new(config.opers.clone())));
        let workers = tokio::runtime::Handle::current().metrics().num_workers();
        let parking = park::Parking::new(config.park_after, workers);
        let shared = Arc::new(Shared {
            opers,
            readers: Arc::new(tokio::sync::Semaphore::new(config.history_readers.max(1))),
            default_room: config.default_room.as_str().into(),
            config,
            chat,
            store,
            durable,
            shutdown: CancellationToken::new(),
            irc_info: Arc::new(irc_info),
            auth: Arc::new(auth),
            cloak_key: Default::default(),
            tls,
            sts_port,
            pacer,
            timers: Default::default(),
            parking,
            tracker: TaskTracker::new(),
        });
        Ok(Server {
            listener,
            irc_listener,
            irc_tls_listener,
            http_listener,
            shared,
            admission,
            requests,
            reload: None,
            failures,
            incoming,
        })
    }

    /// How to read the configuration again on `REHASH` or `SIGHUP` (without
    /// it, a rehash keeps the settings the server started with).
    pub fn with_reload(mut self, reload: Reload) -> Server {
        self.reload = Some(reload);
        self
    }

    /// The address the IRC listener actually bound, if it is on.
    pub fn irc_addr(&self) -> Option<SocketAddr> {
        self.irc_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The address the IRC-over-TLS listener actually bound, if it is on.
    pub fn irc_tls_addr(&self) -> Option<SocketAddr> {
        self.irc_tls_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The address the HTTP-only listener actually bound, if it is on.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The SHA-256 fingerprint of the TLS certificate, if TLS is on.
    pub fn tls_fingerprint(&self) -> Option<String> {
        self.shared.tls.as_ref().map(|t| t.fingerprint())
    }

    /// A handle that reloads the TLS certificate (what SIGHUP does).
    pub fn reloader(&self) -> Reloader {
        Reloader(self.shared.clone())
    }

    /// The address actually bound (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.shared.config.listen)
    }

    /// Accepts connections until `stop` is cancelled, then tells everyone the
    /// server is going down, flushes their queues (within `shutdown_grace`)
    /// and returns.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        // Before saying it listens: a SIGHUP sent right after must find
        // the handler (the default action ends the process).
        let mut hangup = hangup_signal();
        let workers = tokio::runtime::Handle::current().metrics().num_workers();
        crate::metrics::metrics()
            .runtime_workers
            .set(i64::try_from(workers).unwrap_or(i64::MAX));
        info!("listening on {}", self.local_addr());
        info!("{workers} worker threads");
        if let Some(addr) = self.irc_addr() {
            info!("irc listening on {addr}");
        }
        if let Some(addr) = self.irc_tls_addr() {
            info!("irc over TLS listening on {addr}");
        }
        if let Some(f) = self.tls_fingerprint() {
            info!("TLS on: certificate SHA-256 {f}");
        }
        if let Some(addr) = self.http_addr() {
            info!("http listening on {addr}");
        }
        let Server {
            listener,
            irc_listener,
            irc_tls_listener,
            http_listener,
            shared,
            admission,
            mut requests,
            reload,
            failures,
            incoming,
        } = self;
        if let Some(mut incoming) = incoming {
            let chat = shared.chat.clone();
            tokio::spawn(async move {
                while let Some(what) = incoming.recv().await {
                    chat.incoming(what);
                }
            });
        }
        let tracker = shared.tracker.clone();
        if let Some(mut failures) = failures {
            let chat = shared.chat.clone();
            tokio::spawn(async move {
                while let Some(senders) = failures.recv().await {
                    for conn in senders {
                        let refusal = crate::proto::Refusal::new(ErrorCode::StoreFailed)
                            .detail("your message could not be stored, so nobody was shown it");
                        chat.tell(conn, EventBody::Refused(refusal));
                    }
                }
            });
        }
        tracker.spawn(trim_memory(shared.config.memory_trim, stop.clone()));
        let refusals = std::sync::Arc::new(std::sync::Mutex::new(refusal_log::RefusalLog::new(
            shared.config.refusal_log_interval,
        )));
        tracker.spawn(summarise_refusals(
            refusals.clone(),
            shared.config.refusal_log_interval,
            stop.clone(),
        ));
        let mut next_id = 0u64;
        loop {
            let (accepted, entry) = tokio::select! {
                _ = stop.cancelled() => break,
                r = listener.accept() => (r, Port::Main),
                r = accept(&irc_listener) => (r, Port::Irc),
                r = accept(&irc_tls_listener) => (r, Port::IrcTls),
                r = accept(&http_listener) => (r, Port::Http),
                request = requests.recv() => {
                    match request {
                        Some(Control::Shutdown) => {
                            info!("DIE from an operator");
                            break;
                        }
                        Some(Control::Rehash) => rehash(reload.as_ref(), &shared),
                        _ => {}
                    }
                    continue;
                }
                _ = hangup.recv() => {
                    info!("SIGHUP received");
                    rehash(reload.as_ref(), &shared);
                    continue;
                }
            };
            let (stream, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            next_id += 1;
            let permit = match admission.admit(peer.ip()) {
                Ok(p) => p,
                Err(refusal) => {
                    let now = std::time::Instant::now();
                    let line = match refusals.lock() {
                        Ok(mut log) => log.note(peer.ip(), refusal, now),
                        Err(_) => Some(format!("refused {}: {refusal}", peer.ip())),
                    };
                    if let Some(line) = line {
                        info!("{line}");
                    }
                    tracker.spawn(refuse(stream, refusal, entry));
                    continue;
                }
            };
            if !INHERITS_OPTIONS {
                configure(socket2::SockRef::from(&stream), &shared.config);
            }
            let kind = match entry {
                Port::Main => LogKind::Conn,
                Port::Irc => LogKind::Irc,
                Port::Http => LogKind::Http,
                Port::IrcTls => LogKind::Ircs,
            };
            let log = ConnLog::lazy(kind, next_id, peer);
            let shared = shared.clone();
            let host = shared.cloak(peer.ip()).into();
            let task = serve(entry, shared, stream, host, peer, permit, log);
            if next_id == 1 {
                // What every connection's task holds for its whole life, as
                // built (release sizes differ from the unit test's debug ones).
                let bytes = std::mem::size_of_val(&task);
                debug!("a connection's task holds a future of {bytes} bytes");
            }
            tracker.spawn(task);
        }
        // Stop accepting at once: new connections are refused by the OS
        // while the others are told and flushed.
        drop((listener, irc_listener, irc_tls_listener, http_listener));
        info!("shutting down: telling {} connections", admission.current());
        shared.chat.broadcast(EventBody::Shutdown {
            reason: "server is going down".into(),
        });
        shared.shutdown.cancel();
        // Each connection hears it through its mailbox (one that attaches
        // after this sees the token cancelled before it waits).
        shared.chat.with_router(|r| r.shut_down());
        tracker.close();
        let grace = shared.config.shutdown_grace + Duration::from_secs(1);
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            warn!("some connections did not close within {grace:?}");
        }
        shared.chat.with_router(|r| r.stop_flusher());
        // The other nodes hear of everyone's quit, and registered rooms'
        // last changes are on disk, before "stopped".
        let (chat, auth) = (shared.chat.clone(), shared.auth.clone());
        let _ = tokio::task::spawn_blocking(move || {
            chat.close_backplane();
            auth.flush();
        })
        .await;
        info!("stopped");
        Ok(())
    }
}

/// Raises the open-file limit as far as the process may (each connection
/// is one), and warns when that cannot hold `max_clients`.
fn raise_open_file_limit(max_clients: usize) {
    // Listeners, logs and the like need a few descriptors besides.
    let want = max_clients as u64 + 64;
    match crate::sys::raise_nofile(want) {
        Ok(n) if n.soft < want => warn!(
            "open-file limit is {} (hard limit {}): about {} connections at most, \
             not max_clients = {max_clients}; raise it (ulimit -n, LimitNOFILE=)",
            n.soft,
            n.hard,
            n.soft.saturating_sub(64)
        ),
        Ok(_) => {}
        Err(e) => warn!("cannot read or raise the open-file limit: {e}"),
    }
}

/// Gives freed memory back to the OS every `every` until `stop` (see
/// [`give_back_memory`]), so that after a burst (an attack, a join storm)
/// the process does not stay at its high-water mark.
async fn trim_memory(every: Duration, stop: CancellationToken) {
    if every.is_zero() {
        return;
    }
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        give_back_memory();
    }
}

/// Gives memory freed since the last call back to the OS: a purge of
/// every jemalloc arena (jemalloc also does it on its own a second after
/// memory is freed).
///
/// Never glibc's `malloc_trim`: if nothing used glibc's `malloc` yet (no
/// database), its first call sets up glibc's main arena without locking or
/// counting the calling thread; two servers' trims racing there (as in a
/// test binary, when jemalloc also replaced `malloc`) left threads attached
/// uncounted, and their exit aborted ("malloc assertion failure in
/// __malloc_arena_thread_freeres", a CI run) or crashed. What C code
/// (SQLite) frees to glibc goes back to the OS through glibc's own trimming
/// of the heap's top and its mmap threshold.
fn give_back_memory() {
    #[cfg(unix)]
    {
        // "arena.<MALLCTL_ARENAS_ALL>.purge"
        let name = c"arena.4096.purge";
        // SAFETY: a void mallctl: no old or new value is read or written.
        unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            );
        }
    }
}

/// Whether failing to bind the IRC listener stops the server: only when the
/// operator chose its address (the default one is given up with a warning).
fn irc_bind_is_fatal(config: &Config) -> bool {
    config.irc_listen != Config::default().irc_listen
}

/// Binds a listener with our backlog (tokio's `bind` uses 1024 and std's 128;
/// a join storm of thousands needs more) and the accepted sockets' TCP
/// options ([`configure`]): Linux copies a listener's options into every
/// socket it accepts, which saves five system calls per connection.
fn listen(addr: SocketAddr, backlog: u32, config: &Config) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if INHERITS_OPTIONS {
        configure(socket2::SockRef::from(&socket), config);
    }
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Whether accepted sockets start with their listener's TCP options
/// (nodelay, keepalive and its timings, the send buffer): on Linux they do
/// (`tests::accepted_sockets_have_the_listeners_options` checks it).
const INHERITS_OPTIONS: bool = cfg!(target_os = "linux");

/// TCP options for an accepted socket: keepalive finds dead peers, no
/// Nagle delay, and a fixed kernel send buffer (the kernel would otherwise
/// grow it to megabytes for a client that does not read). Set on the
/// listener where its sockets inherit them, else on each accepted one.
fn configure(socket: socket2::SockRef<'_>, config: &Config) {
    let _ = socket.set_tcp_nodelay(true);
    if config.socket_sendbuf > 0 {
        if let Err(e) = socket.set_send_buffer_size(config.socket_sendbuf) {
            warn!("cannot set the send buffer: {e}");
        }
    }
    if !config.tcp_keepalive.is_zero() {
        let ka = socket2::TcpKeepalive::new()
            .with_time(config.tcp_keepalive)
            .with_interval(config.tcp_keepalive / 4 + Duration::from_secs(1));
        if let Err(e) = socket.set_tcp_keepalive(&ka) {
            warn!("cannot set keepalive: {e}");
        }
    }
}

/// Accepts on the IRC listener, or never if there is none.
async fn accept(listener: &Option<TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn refuse(mut stream: TcpStream, why: Refusal, entry: Port) {
    let line = match entry {
        Port::IrcTls => return, // no words before a handshake: closing says it
        Port::Main | Port::Irc => session::refusal_line(entry == Port::Irc, &why.to_string()),
        Port::Http => format!(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
             Connection: close\r\nContent-Length: {}\r\n\r\n{why}\n",
            why.to_string().len() + 1
        ),
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = stream.write_all(line.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Reloads the TLS certificate (what SIGHUP does), from outside the server.
#[derive(Clone)]
pub struct Reloader(Arc<Shared>);

impl Reloader {
    /// See [`Shared::reload_tls`].
    pub fn reload_tls(&self) -> anyhow::Result<()> {
        self.0.reload_tls()
    }
}

/// Waits for SIGINT or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled: call it before the server
/// says it is listening, so a signal sent right after is never missed.
/// Must be called inside a tokio runtime.
#[cfg(unix)]
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let int = signal(SignalKind::interrupt());
    let term = signal(SignalKind::terminate());
    async move {
        match (int, term) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => info!("SIGINT received"),
                    _ = term.recv() => info!("SIGTERM received"),
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

/// Takes the settings that may change while running from a fresh read
/// of the configuration (`REHASH`, `SIGHUP`): the oper blocks and
/// `oper_die`. Without `reload`, the settings the server started with stay.
fn rehash(reload: Option<&Reload>, shared: &Shared) {
    if let Some(tls) = &shared.tls {
        info!("rehash: reloading the TLS certificate");
        tls.reload_logged();
    }
    let Some(reload) = reload else {
        info!("rehash: no configuration to reload");
        return;
    };
    match reload() {
        Ok(config) => {
            let names = config.opers.names();
            let count = names.len();
            *shared.opers.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config.opers);
            shared.chat.reconfigure(names, config.oper_die);
            info!(
                "rehash: {count} oper blocks, oper_die = {}",
                config.oper_die
            );
        }
        Err(e) => warn!("rehash failed, settings unchanged: {e:#}"),
    }
}

/// SIGHUP, as a stream of wakeups (never, where there is no SIGHUP or it
/// cannot be caught).
struct Hangup(#[cfg(unix)] Option<tokio::signal::unix::Signal>);

impl Hangup {
    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(s) = &mut self.0 {
            if s.recv().await.is_some() {
                return;
            }
            self.0 = None;
        }
        std::future::pending::<()>().await
    }
}

fn hangup_signal() -> Hangup {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        Hangup(signal(SignalKind::hangup()).ok())
    }
    #[cfg(not(unix))]
    Hangup()
}

/// Waits for Ctrl-C.
#[cfg(not(unix))]
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloaks_are_eight_hex_digits() {
        for h in [0u32, 1, 0xdead_beef, u32::MAX, 0x0a0b_0c0d] {
            assert_eq!(cloak_text(h), format!("{h:08x}.ip"));
        }
    }

    /// The size of the future that `f` returns, without calling it.
    fn future_size<A, B, C, D, E, G, H, F: std::future::Future>(
        _: &impl Fn(A, B, C, D, E, G, H) -> F,
    ) -> usize {
        std::mem::size_of::<F>()
    }

    fn future_size5<A, B, C, D, E, F: std::future::Future>(
        _: &impl Fn(A, B, C, D, E) -> F,
    ) -> usize {
        std::mem::size_of::<F>()
    }

    fn future_size6<A, B, C, D, E, G, F: std::future::Future>(
        _: &impl Fn(A, B, C, D, E, G) -> F,
    ) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every connection's task holds this much for its whole life, idle or
    /// not (the task cell adds tokio's header and the tracker's counter).
    #[test]
    fn an_idle_connection_task_stays_small() {
        let task = future_size(&serve);
        let main = future_size6(&detect::main_port);
        let conn = future_size5(&connection::run::<TcpStream>);
        eprintln!("serve: {task} bytes, main_port {main}, connection::run {conn}");
        // 784 bytes in a debug build (`perf16j`: no `Sleep` or shutdown
        // `Notified`, readiness through the socket's reader waker, a
        // smaller `Connection`; 824 in release, a 1024-byte task), from
        // 1184 (`perf16g`), from 2792: `serve`,
        // `main_port` and `run` no longer keep their arguments beside the
        // loop (-1256), the handlers' awaits no longer sit beside the
        // select's futures and the server-side waits (store, pacer) are
        // boxed while they wait (-352). Before that: 2168 before the log
        // span was made lazily, 2568 before the ingest pacer's wait. Grow
        // it only knowingly: every idle connection pays it for its whole
        // life.
        assert!(task <= 800, "the connection task's future is {task} bytes");
        assert!(conn <= task && main <= task, "{conn}, {main}");
    }

    /// Where [`INHERITS_OPTIONS`] says so, a socket accepted from a
    /// listener made by [`listen`] has every option [`configure`] sets,
    /// without being configured itself (so the five calls it saves are not
    /// an option lost). Elsewhere each accepted socket is configured.
    #[tokio::test]
    async fn accepted_sockets_have_the_listeners_options() {
        let config = Config {
            socket_sendbuf: 48 * 1024,
            tcp_keepalive: Duration::from_secs(90),
            ..Config::default()
        };
        let listener = listen("127.0.0.1:0".parse().unwrap(), 16, &config).unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (accepted, _) = tokio::try_join!(listener.accept(), client).unwrap().0;
        if !INHERITS_OPTIONS {
            configure(socket2::SockRef::from(&accepted), &config);
        }
        // What a socket has when it is configured on its own.
        let alone = TcpSocket::new_v4().unwrap();
        configure(socket2::SockRef::from(&alone), &config);
        let (got, want) = (
            socket2::SockRef::from(&accepted),
            socket2::SockRef::from(&alone),
        );
        assert!(got.tcp_nodelay().unwrap());
        assert!(got.keepalive().unwrap());
        assert_eq!(got.tcp_keepalive_time().unwrap(), Duration::from_secs(90));
        assert_eq!(
            got.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(90 / 4 + 1)
        );
        assert_eq!(
            got.send_buffer_size().unwrap(),
            want.send_buffer_size().unwrap()
        );
        // And a socket that is not configured differs (the check can fail).
        let bare = socket2::SockRef::from(&TcpSocket::new_v4().unwrap()).send_buffer_size();
        assert_ne!(bare.unwrap(), want.send_buffer_size().unwrap());
    }

    #[test]
    fn only_a_chosen_irc_address_must_bind() {
        let mut c = Config::default();
        assert!(!irc_bind_is_fatal(&c));
        c.irc_listen = "127.0.0.1:6697".parse().unwrap();
        assert!(irc_bind_is_fatal(&c));
    }
}
