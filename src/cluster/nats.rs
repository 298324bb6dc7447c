//! The NATS JetStream backplane: several natter nodes share every room.
//!
//! * Every fact goes into one stream ([`subjects::STREAM`]), two subjects
//!   per room: its lines, and its other facts. The stream's order is the
//!   cluster's order: every node reads what the stream republishes (see
//!   `live`: every fact but room lines, and the lines of the rooms with
//!   members on the node, gaps filled from the stream) and applies each
//!   fact in that order, its own included, so everyone sees a room's lines
//!   in one order, and a line is shown only once JetStream has stored it.
//!   The stream sequence is each fact's `seq`.
//! * Nicks are claimed in a KV bucket: create = claim (atomic, so two
//!   nodes racing for one nick get one answer each), delete with the
//!   expected revision = release.
//! * Each node puts a heartbeat in a KV bucket whose entries expire; a node
//!   whose heartbeat is gone is dead, and the live node with the lowest
//!   number publishes its users' quits (once, through the stream).
//! * A node cut off from NATS for `cluster_fence` fences itself: it tells
//!   its users and lets them go (they reconnect to another node), refuses
//!   logins, and takes people again once its heartbeat gets through.
//!
//! The NATS client runs on a runtime of its own (one thread), so the hub
//! may wait for a nick claim under its lock without starving the client.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use async_nats::jetstream::{self, consumer, kv, stream};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::accounts::NatsAccounts;
use super::live::{Follows, Reader, Touch};
use super::subjects::{self, NICKS, NODES, STREAM};
use crate::config::Config;
use crate::hub::{names, Accounts, Backplane, Incoming, Store, StoreError, Watermark};
use crate::metrics::metrics;
use crate::proto::{Anchor, ConnId, Fact, FactBody, History, HistoryQuery, NodeId};
use crate::store::MemoryStore;

/// Facts waiting to be published (beyond it, sends are refused).
const OUTBOX: usize = 65_536;
/// Facts read from the stream, waiting for the hub.
const INBOX: usize = 65_536;
/// Facts of each room a node keeps in memory for history.
const HISTORY_PER_ROOM: usize = 1000;
/// Rooms whose history a node keeps in memory.
const HISTORY_ROOMS: usize = 10_000;

/// What one node needs of the config.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    urls: String,
    pub node: NodeId,
    creds: Option<String>,
    pub timeout: Duration,
    pub heartbeat: Duration,
    node_ttl: Duration,
    fence: Duration,
    pub backfill: u64,
    /// Drop every Nth live room line (fault injection; 0: never).
    pub drop_live: u64,
    /// Drop every Nth live fact that is not a room line (0: never).
    pub drop_live_state: u64,
    /// How long a fact received out of order waits for those before it.
    pub gap_wait: Duration,
    pub per_subject: i64,
    /// Live facts held per subscription while the reader is behind.
    subscription_capacity: usize,
    /// More subjects than this with a gap due at once: one fill for all.
    pub gap_coalesce: usize,
    /// Rooms set up together when their first members here join.
    pub follow_batch: usize,
    /// Most facts published together as one message (a bundle).
    bundle: usize,
    /// Delete a stream made by an older natter and make it anew.
    pub recreate: bool,
}

impl Settings {
    fn from(c: &Config) -> anyhow::Result<Settings> {
        if c.node == 0 {
            bail!(
                "with cluster, node must be set: a number 1-65535 unique among the nodes (--node)"
            );
        }
        if c.cluster_node_ttl <= c.cluster_heartbeat {
            bail!("cluster_node_ttl must be longer than cluster_heartbeat");
        }
        if c.cluster_fence <= c.cluster_heartbeat {
            bail!("cluster_fence must be longer than cluster_heartbeat");
        }
        if c.cluster_fence + c.cluster_heartbeat > c.cluster_node_ttl {
            warn!(
                "cluster_fence ({:?}) + cluster_heartbeat ({:?}) is over cluster_node_ttl ({:?}): \
                 a node cut off from NATS may keep its users after the others announced their quits",
                c.cluster_fence, c.cluster_heartbeat, c.cluster_node_ttl
            );
        }
        Ok(Settings {
            urls: c.cluster.clone(),
            node: c.node,
            creds: (c.cluster_creds != "none").then(|| c.cluster_creds.clone()),
            timeout: c.cluster_timeout,
            heartbeat: c.cluster_heartbeat,
            node_ttl: c.cluster_node_ttl,
            fence: c.cluster_fence,
            backfill: c.cluster_history_backfill,
            drop_live: c.cluster_drop_live,
            drop_live_state: c.cluster_drop_live_state,
            gap_wait: c.cluster_gap_wait,
            recreate: c.cluster_recreate_stream,
            // 0 would be no buffer at all (the NATS client cannot make one).
            subscription_capacity: c.cluster_subscription_capacity.max(1),
            gap_coalesce: c.cluster_gap_coalesce,
            follow_batch: c.cluster_follow_batch.max(1),
            bundle: c.cluster_bundle.clamp(1, MAX_BUNDLE),
            per_subject: match c.history_per_room {
                0 => -1,
                n => i64::try_from(n).unwrap_or(i64::MAX),
            },
        })
    }
}

/// Most facts in one bundle, whatever `cluster_bundle` says: a bundle of
/// quits stays far below NATS's 1 MiB message limit.
const MAX_BUNDLE: usize = 1024;

/// What the publisher is asked to do, in order.
enum Out {
    /// A fact, or a bundle of facts published as one message (see
    /// [`subjects::BUNDLE`]), and the rooms (tokens) whose members
    /// here they changed.
    Facts(Vec<Fact>, Vec<String>),
    /// Everything before this is sent: say so.
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// One nick operation, done in order by one task (so a release queued
/// before a claim of the same nick is done before it).
enum KvOp {
    Claim {
        key: String,
        owner: String,
        reply: std::sync::mpsc::SyncSender<Result<bool, String>>,
    },
    Release {
        key: String,
        owner: String,
    },
}

/// The backplane of a node in a NATS cluster.
pub struct Nats {
    node: NodeId,
    timeout: Duration,
    client: async_nats::Client,
    outbox: mpsc::Sender<Out>,
    kv_ops: mpsc::UnboundedSender<KvOp>,
    to_hub: mpsc::Sender<Incoming>,
    /// Most facts published as one message.
    bundle: usize,
    incoming: Mutex<Option<mpsc::Receiver<Incoming>>>,
    history: Arc<MemoryStore>,
    /// The rooms with members here, whose lines the node reads.
    follows: Arc<Follows>,
    /// Rooms whose members here changed, for the reader (when the facts
    /// that changed them could not be published).
    touches: mpsc::UnboundedSender<Touch>,
    known: Mutex<Vec<Fact>>,
    /// Each room's last stream sequence when the node started.
    seqs: Vec<(String, u64)>,
    /// Cut off from NATS for longer than `cluster_fence`, and not back yet.
    fenced: Arc<AtomicBool>,
    /// Accounts and registered rooms, in the cluster's KV buckets.
    accounts: Arc<NatsAccounts>,
    /// Last, so the tasks stop after everything else is dropped.
    _runtime: Runtime,
}

impl Nats {
    /// Connects to NATS, makes sure the stream and buckets exist, claims
    /// this node's number and starts reading the stream. Fails (with what
    /// NATS said) if NATS cannot be reached within `cluster_timeout`, the
    /// credentials are refused, or the node number is in use.
    pub async fn connect(config: &Config) -> anyhow::Result<Nats> {
        let settings = Settings::from(config)?;
        let runtime = Runtime(Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("natter-cluster")
                .enable_all()
                .build()?,
        ));
        let Some(rt) = &runtime.0 else {
            bail!("no cluster runtime");
        };
        let (to_hub, from_cluster) = mpsc::channel(INBOX);
        let history = Arc::new(MemoryStore::new(
            HISTORY_PER_ROOM.min(config.history_per_room.max(1)),
            HISTORY_ROOMS,
        ));
        let fenced = Arc::new(AtomicBool::new(false));
        let follows = Arc::new(Follows::new(settings.node));
        let (touches, touched) = mpsc::unbounded_channel();
        let start = rt.spawn(start(
            settings.clone(),
            (to_hub.clone(), touches.clone(), touched),
            history.clone(),
            follows.clone(),
            fenced.clone(),
        ));
        let parts = match start.await {
            Ok(r) => r?,
            Err(e) => bail!("the cluster task failed: {e}"),
        };
        Ok(Nats {
            node: settings.node,
            timeout: settings.timeout,
            client: parts.client,
            outbox: parts.outbox,
            kv_ops: parts.kv_ops,
            to_hub,
            bundle: settings.bundle,
            incoming: Mutex::new(Some(from_cluster)),
            history,
            follows,
            touches,
            known: Mutex::new(parts.known),
            seqs: parts.seqs,
            fenced,
            accounts: parts.accounts,
            _runtime: runtime,
        })
    }

    /// Where history is read: the facts this node has read from the
    /// stream since it started (what its hub submits is not kept twice).
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::new(StreamHistory {
            log: self.history.clone(),
            seqs: self.seqs.clone(),
            follows: self.follows.clone(),
            timeout: self.timeout,
        })
    }

    /// Where accounts and registered rooms are kept: the cluster's KV
    /// buckets, shared by every node (not the node's database).
    pub fn accounts(&self) -> Arc<dyn Accounts> {
        self.accounts.clone()
    }

    /// Who was on the other nodes when this one started: facts to apply
    /// (`apply_remote`) before serving anyone. Once.
    pub fn take_known(&self) -> Vec<Fact> {
        std::mem::take(&mut *self.known.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// On NATS and not fenced.
    fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
            && !self.fenced.load(Ordering::Acquire)
    }

    fn refuse(&self, conn: ConnId, why: &str) {
        let why = why.to_string();
        if self
            .to_hub
            .try_send(Incoming::Unsent { conn, why })
            .is_err()
        {
            warn!("cannot tell {conn} its line was not sent");
        }
    }
}

/// What a fenced node's users are told, and its refusals say.
const FENCED: &str = "this node is cut off from the cluster: connect to another node";

/// The cluster's own runtime; dropping it (even inside another runtime)
/// stops its tasks without waiting for them.
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Backplane for Nats {
    fn publish(&self, facts: &[Fact]) {
        let up = self.connected();
        // Facts that only say who is where (not durable) are bundled: one
        // message for what one thing someone did changed at once.
        let mut bundle: Vec<Fact> = Vec::new();
        let mut touched_bundle = Vec::new();
        for fact in facts {
            let release = match &fact.body {
                FactBody::Quit { nick, .. } => Some(nick),
                FactBody::NickChanged { old, new } if names::fold(old) != names::fold(new) => {
                    Some(old)
                }
                _ => None,
            };
            if let Some(nick) = release {
                let key = subjects::nick_key(&names::fold(nick));
                let owner = fact.by.to_string();
                let _ = self.kv_ops.send(KvOp::Release { key, owner });
            }
            let touched = self.follows.published(fact);
            let durable = fact.body.must_be_durable();
            if durable && !up {
                self.refuse(
                    fact.by,
                    "the cluster (NATS) is unreachable: not sent, nobody saw it",
                );
                continue;
            }
            if !durable && self.bundle > 1 {
                if !subjects::bundles_with(&bundle, fact) || bundle.len() >= self.bundle {
                    let out = std::mem::take(&mut bundle);
                    self.send_out(out, std::mem::take(&mut touched_bundle));
                }
                bundle.push(fact.clone());
                touched_bundle.extend(touched);
                continue;
            }
            // The bundle before it goes first (nothing if there is none).
            let out = std::mem::take(&mut bundle);
            self.send_out(out, std::mem::take(&mut touched_bundle));
            self.send_out(vec![fact.clone()], touched);
        }
        self.send_out(bundle, touched_bundle);
    }

    fn claim_nick(&self, nick: &str, owner: ConnId) -> Result<bool, StoreError> {
        if self.fenced.load(Ordering::Acquire) {
            return Err(StoreError(FENCED.into()));
        }
        if !self.connected() {
            return Err(StoreError("the cluster (NATS) is unreachable".into()));
        }
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let op = KvOp::Claim {
            key: subjects::nick_key(nick),
            owner: owner.to_string(),
            reply,
        };
        self.kv_ops
            .send(op)
            .map_err(|_| StoreError("the cluster task has stopped".into()))?;
        match answer.recv_timeout(self.timeout) {
            Ok(r) => r.map_err(StoreError),
            Err(_) => Err(StoreError(format!(
                "NATS did not answer a nick claim within {:?}",
                self.timeout
            ))),
        }
    }

    fn release_nick(&self, nick: &str, owner: ConnId) {
        let key = subjects::nick_key(nick);
        let owner = owner.to_string();
        let _ = self.kv_ops.send(KvOp::Release { key, owner });
    }

    fn close(&self) {
        let (done, flushed) = std::sync::mpsc::sync_channel(1);
        if self.outbox.try_send(Out::Flush(done)).is_ok()
            && flushed.recv_timeout(self.timeout).is_err()
        {
            warn!("NATS did not take the last facts within {:?}", self.timeout);
        }
    }

    fn incoming(&self) -> Option<mpsc::Receiver<Incoming>> {
        self.incoming
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

impl Nats {
    /// Queues facts (one, or a bundle; none: nothing to do) for the
    /// publisher; when the queue is full their senders are told (of a
    /// durable fact) and the rooms they changed are looked at by the
    /// reader anyway.
    fn send_out(&self, facts: Vec<Fact>, touched: Vec<String>) {
        if facts.is_empty() {
            return;
        }
        if let Err(e) = self.outbox.try_send(Out::Facts(facts, touched)) {
            if let Out::Facts(facts, touched) = e.into_inner() {
                for token in touched {
                    let _ = self.touches.send(Touch { token, at: None });
                }
                for fact in facts.iter().filter(|f| f.body.must_be_durable()) {
                    self.refuse(
                        fact.by,
                        "the cluster (NATS) is not keeping up: not sent, nobody saw it",
                    );
                }
            }
        }
    }
}

impl std::fmt::Debug for Nats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nats").field("node", &self.node).finish()
    }
}

/// History as read from the stream (since the node started, and the newest
/// `cluster_history_backfill` facts from before): the hub's own
/// submissions are left out (they come back from the stream with their
/// place in its order).
struct StreamHistory {
    log: Arc<MemoryStore>,
    /// Each room's last sequence in the stream when the node started.
    seqs: Vec<(String, u64)>,
    /// The rooms whose lines this node reads, and from where.
    follows: Arc<Follows>,
    timeout: Duration,
}

impl Store for StreamHistory {
    fn submit(&self, _facts: Vec<Fact>) -> u64 {
        0
    }
    fn history(
        &self,
        room: &str,
        query: HistoryQuery,
        limit: usize,
        events: bool,
    ) -> Result<History, StoreError> {
        // A room followed anew had its lines up to the first member's join
        // here filed as history (they were not shown live): "up to now"
        // reaches that far, whatever the hub has seen of the room.
        let token = subjects::room_token(room);
        let query = match (query, self.follows.since(&token, self.timeout)) {
            (HistoryQuery::Before(Anchor::Seq(n)), Some(since)) => {
                HistoryQuery::Before(Anchor::Seq(n.max(since + 1)))
            }
            (q, _) => q,
        };
        self.log.history(room, query, limit, events)
    }
    fn private_targets(
        &self,
        account: &str,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        self.log.private_targets(account, from_ms, to_ms, limit)
    }
    fn latest_lines(
        &self,
        rooms: &[String],
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        self.log.latest_lines(rooms, from_ms, to_ms)
    }
    fn room_seqs(&self) -> Result<Vec<(String, u64)>, StoreError> {
        Ok(self.seqs.clone())
    }
    fn watermark(&self) -> Option<Arc<Watermark>> {
        None
    }
}

/// What [`start`] hands back to the node.
struct Parts {
    /// Who is on the other nodes (facts to apply before serving).
    known: Vec<Fact>,
    client: async_nats::Client,
    outbox: mpsc::Sender<Out>,
    kv_ops: mpsc::UnboundedSender<KvOp>,
    /// Each room's (folded) last stream sequence when the node started.
    seqs: Vec<(String, u64)>,
    accounts: Arc<NatsAccounts>,
}

/// Connects, sets up the stream and buckets, claims the node number and
/// spawns the tasks (on the cluster runtime).
async fn start(
    s: Settings,
    (to_hub, touches, touched): (
        mpsc::Sender<Incoming>,
        mpsc::UnboundedSender<Touch>,
        mpsc::UnboundedReceiver<Touch>,
    ),
    history: Arc<MemoryStore>,
    follows: Arc<Follows>,
    fenced: Arc<AtomicBool>,
) -> anyhow::Result<Parts> {
    let shown = without_password(&s.urls);
    let addrs = s
        .urls
        .split(',')
        .map(|u| u.trim().parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("bad NATS URL in {shown:?}"))?;
    let mut opts = async_nats::ConnectOptions::new()
        .name(format!("natter node {}", s.node))
        .connection_timeout(s.timeout)
        .subscription_capacity(s.subscription_capacity)
        .event_callback(|event| async move {
            // Sent for each live fact dropped (at most as fast as the
            // client's event queue takes them: a lower bound); the NATS
            // client logs every event itself.
            if let async_nats::Event::SlowConsumer(_) = event {
                metrics().cluster_slow_consumers.inc();
            }
        })
        .max_reconnects(None);
    if let Some((user, password)) = url_login(&addrs) {
        opts = opts.user_and_password(user, password);
    }
    if let Some(path) = &s.creds {
        opts = opts
            .credentials_file(path)
            .await
            .with_context(|| format!("cannot read the NATS credentials file {path}"))?;
    }
    let client = tokio::time::timeout(s.timeout, opts.connect(addrs))
        .await
        .map_err(|_| anyhow!("NATS at {shown} did not answer within {:?}", s.timeout))?
        .with_context(|| format!("cannot connect to NATS at {shown}"))?;
    let mut js = jetstream::new(client.clone());
    js.set_timeout(s.timeout);
    let stream = ensure_stream(&js, s.per_subject, s.recreate).await?;
    let nicks = ensure_bucket(&js, NICKS, Duration::ZERO).await?;
    let nodes = ensure_bucket(&js, NODES, s.node_ttl).await?;
    let me = s.node.to_string();
    match nodes.create(&me, now_bytes()).await {
        Ok(_) => {}
        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => bail!(
            "node {} is already in the cluster (or was, less than cluster_node_ttl ago): \
             give this one another number (--node)",
            s.node
        ),
        Err(e) => return Err(e).context("cannot register this node in NATS"),
    }
    let next = stream
        .get_info()
        .await
        .context("cannot read the NATTER stream")?
        .state
        .last_sequence
        + 1;
    // What was said before this node started, for history, before it
    // serves anyone: the stream's newest `backfill` facts.
    let first = next.saturating_sub(s.backfill).max(1);
    let (seqs, filed) = match backfill(&stream, &client, first, next, &history, s.timeout).await {
        Ok(read) => read,
        Err(e) => {
            warn!("cannot read the history said before this node started: {e:#}");
            Default::default()
        }
    };
    info!(
        "node {} joined the cluster at {} (stream at {})",
        s.node,
        shown,
        next - 1
    );
    let accounts = Arc::new(
        NatsAccounts::open(&js, client.clone(), s.timeout, s.heartbeat, to_hub.clone()).await?,
    );
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let (outbox, out_rx) = mpsc::channel(OUTBOX);
    let (acks, acks_rx) = mpsc::channel(OUTBOX);
    let (kv_ops, kv_rx) = mpsc::unbounded_channel();
    let out = (acks, touches.clone(), to_hub.clone());
    tokio::spawn(publisher(js.clone(), out_rx, out));
    tokio::spawn(acker(
        acks_rx,
        to_hub.clone(),
        touches,
        follows.clone(),
        s.timeout,
    ));
    tokio::spawn(nick_keeper(nicks, client.clone(), kv_rx, s.heartbeat));
    let requests = client
        .subscribe(subjects::SYNC)
        .await
        .context("cannot subscribe to NATS")?;
    tokio::spawn(answer_snapshots(
        client.clone(),
        s.node,
        requests,
        to_hub.clone(),
    ));
    // Who is here already, then everything since `next`, in order (the
    // two overlap; applying a fact again changes nothing).
    let known = match snapshot(&client, &nodes, s.node, s.timeout).await {
        Ok(facts) => facts,
        Err(e) => {
            warn!("cannot learn who is on the other nodes: {e:#}");
            Vec::new()
        }
    };
    let reader = Reader {
        js: js.clone(),
        client: client.clone(),
        s: s.clone(),
        to_hub: to_hub.clone(),
        history,
        seen: seen.clone(),
        follows,
        last: Default::default(),
        base: next - 1,
        high: next - 1,
        filed,
        lines: Default::default(),
        created: None,
        stream: None,
        received: 0,
        received_state: 0,
        waiting: Default::default(),
        suspects: Default::default(),
        spoken: Default::default(),
        turn: 0,
        pending: Vec::new(),
        held: Default::default(),
    };
    tokio::spawn(reader.run(touched));
    tokio::spawn(heartbeat(
        nodes,
        client.clone(),
        s.clone(),
        to_hub,
        seen,
        fenced,
    ));
    Ok(Parts {
        client,
        outbox,
        kv_ops,
        known,
        seqs,
        accounts,
    })
}

/// The user and password of the first URL that has them (`user:pass@`,
/// percent-decoded): the NATS client takes them from there only as an
/// option, not from the URL itself.
fn url_login(addrs: &[async_nats::ServerAddr]) -> Option<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    addrs.iter().find_map(|a| {
        let user = a.username()?;
        Some((decode(user), decode(a.password().unwrap_or(""))))
    })
}

/// `urls` fit for a log line: every password replaced by `***`.
fn without_password(urls: &str) -> String {
    urls.split(',')
        .map(|u| {
            let u = u.trim();
            let host_from = u.find("://").map_or(0, |i| i + 3);
            match u[host_from..].rfind('@') {
                Some(at) => {
                    let userinfo = &u[host_from..host_from + at];
                    let user = userinfo.split(':').next().unwrap_or("");
                    let rest = &u[host_from + at + 1..];
                    format!("{}{user}:***@{rest}", &u[..host_from])
                }
                None => u.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn now_bytes() -> bytes::Bytes {
    crate::proto::now_ms().to_string().into()
}

/// The NATTER stream, made if it is not there, and given the subjects and
/// republishing this version reads (a stream made by an older one is
/// updated; where nats-server cannot add the republishing, it is deleted
/// and made anew if `recreate`, else the node is told what to do).
pub(super) async fn ensure_stream(
    js: &jetstream::Context,
    per_subject: i64,
    recreate: bool,
) -> anyhow::Result<stream::Stream> {
    let republish = stream::Republish {
        source: "natter.>".into(),
        destination: format!("{}natter.>", subjects::LIVE),
        headers_only: false,
    };
    let config = stream::Config {
        name: STREAM.into(),
        subjects: subjects::STREAM_SUBJECTS.map(String::from).to_vec(),
        max_messages_per_subject: per_subject,
        storage: stream::StorageType::File,
        republish: Some(republish.clone()),
        ..Default::default()
    };
    match js.get_stream(STREAM).await {
        Ok(s) => {
            let had = &s.cached_info().config;
            if had.republish.as_ref() == Some(&republish) && had.subjects == config.subjects {
                return Ok(s);
            }
            info!("giving the NATTER stream the subjects and republishing this version reads");
            let mut updated = had.clone();
            updated.subjects = config.subjects.clone();
            updated.republish = config.republish.clone();
            match js.update_stream(updated).await {
                Ok(_) => Ok(js.get_stream(STREAM).await?),
                Err(e) if recreate => {
                    warn!(
                        "the NATTER stream cannot be given republishing ({e}): deleting it and \
                         making it anew (cluster_recreate_stream; its history is lost)"
                    );
                    js.delete_stream(STREAM)
                        .await
                        .context("cannot delete the NATTER stream")?;
                    js.get_or_create_stream(config)
                        .await
                        .context("cannot create the NATTER stream")
                }
                Err(e) => Err(anyhow!(e).context(
                    "the NATTER stream was made by an older natter and nats-server cannot give \
                     it the republishing this version reads: stop every node, start one once \
                     with --cluster-recreate-stream true (it deletes the stream and makes it \
                     anew: its history is lost; accounts and registered rooms stay), then the \
                     others as usual",
                )),
            }
        }
        Err(_) => js
            .get_or_create_stream(config)
            .await
            .context("cannot create the NATTER stream (is JetStream on? nats-server -js)"),
    }
}

pub(super) async fn ensure_bucket(
    js: &jetstream::Context,
    bucket: &str,
    max_age: Duration,
) -> anyhow::Result<kv::Store> {
    if let Ok(kv) = js.get_key_value(bucket).await {
        return Ok(kv);
    }
    // The bucket's stream made as the client library would, but directly:
    // its `create_key_value` first asks for account details in a shape
    // nats-server 2.9 does not answer in.
    let config = stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age,
        storage: stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        num_replicas: 1,
        duplicate_window: match max_age {
            Duration::ZERO => Duration::from_secs(120),
            age => age.min(Duration::from_secs(120)),
        },
        ..Default::default()
    };
    // Another node may make it at the same time: same config, same stream.
    js.get_or_create_stream(config)
        .await
        .with_context(|| format!("cannot create the KV bucket {bucket}"))?;
    js.get_key_value(bucket)
        .await
        .with_context(|| format!("cannot open the KV bucket {bucket}"))
}

/// Publishes facts in the order they were made; their acks are awaited
/// by [`acker`], so publishing does not wait a round trip per fact.
async fn publisher(
    js: jetstream::Context,
    mut facts: mpsc::Receiver<Out>,
    (acks, touches, to_hub): (
        mpsc::Sender<Ack>,
        mpsc::UnboundedSender<Touch>,
        mpsc::Sender<Incoming>,
    ),
) {
    while let Some(out) = facts.recv().await {
        let (mut facts, touched) = match out {
            Out::Facts(f, touched) => (f, touched),
            Out::Flush(done) => {
                if let Err(e) = js.client().flush().await {
                    warn!("cannot flush to NATS: {e}");
                }
                let _ = done.try_send(());
                continue;
            }
        };
        let (subject, payload) = match facts.len() {
            1 => (
                subjects::subject_of(&facts[0]),
                serde_json::to_vec(&facts[0]),
            ),
            _ => (subjects::BUNDLE.to_string(), serde_json::to_vec(&facts)),
        };
        let payload = match payload {
            Ok(p) => p,
            Err(e) => {
                warn!("cannot encode a fact: {e}");
                continue;
            }
        };
        let Some(fact) = facts.pop() else { continue };
        let durable = fact.body.must_be_durable();
        match js.publish(subject, payload.into()).await {
            Ok(ack) => {
                let (by, at_ms) = (fact.by, fact.at_ms);
                let line = (fact.room.is_some() && subjects::is_line(&fact.body)).then_some(fact);
                let sent = Sent {
                    by,
                    at_ms,
                    durable,
                    line,
                    touched,
                    ack,
                };
                if acks.send(sent).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                warn!("cannot publish to NATS: {e}");
                for token in touched {
                    let _ = touches.send(Touch { token, at: None });
                }
                if durable {
                    let why = format!("the cluster (NATS) did not take it ({e}): nobody saw it");
                    let _ = to_hub.try_send(Incoming::Unsent { conn: fact.by, why });
                }
            }
        }
    }
}

/// A published fact waiting for its ack: its sender, when it was made,
/// whether it must be durable; the fact itself if it is a room line.
struct Sent {
    by: ConnId,
    at_ms: u64,
    durable: bool,
    line: Option<Fact>,
    /// The rooms whose members here it changed.
    touched: Vec<String>,
    ack: jetstream::context::PublishAckFuture,
}
type Ack = Sent;

/// Whether a fact made at `at_ms` and stored at `stored_ms` was stored
/// too late: after its node's deadline for the ack (`timeout` from when it
/// was made), when the sender had been told it failed. NATS keeps
/// publishes made while a connection is failing and sends them once it is
/// back, so such facts do reach the stream.
pub(super) fn stale(at_ms: u64, stored_ms: u64, timeout: Duration) -> bool {
    stored_ms > at_ms + timeout.as_millis() as u64
}

/// Waits for each publish's ack: a fact that was not stored is never
/// shown (it does not come back from the stream), and its sender is told.
/// A stored fact that changed who is in a room here tells the reader, with
/// its place in the stream; a line said in a room with nobody here (by
/// someone outside it) is not read back, so it is handed to the hub here.
async fn acker(
    mut acks: mpsc::Receiver<Ack>,
    to_hub: mpsc::Sender<Incoming>,
    touches: mpsc::UnboundedSender<Touch>,
    follows: Arc<Follows>,
    timeout: Duration,
) {
    while let Some(sent) = acks.recv().await {
        // The deadline counts from when the fact was made, as [`stale`] does.
        let left = (sent.at_ms + timeout.as_millis() as u64).saturating_sub(crate::proto::now_ms());
        let ack = std::future::IntoFuture::into_future(sent.ack);
        let why = match tokio::time::timeout(Duration::from_millis(left), ack).await {
            Ok(Ok(ack)) => {
                for token in sent.touched {
                    let at = Some(ack.sequence);
                    let _ = touches.send(Touch { token, at });
                }
                let unread = |f: &Fact| {
                    f.room
                        .as_ref()
                        .is_some_and(|r| !follows.followed(&subjects::room_token(r)))
                };
                if let Some(mut fact) = sent.line.filter(unread) {
                    fact.seq = ack.sequence;
                    let _ = to_hub.send(Incoming::Fact(fact)).await;
                }
                continue;
            }
            Ok(Err(e)) => format!("the cluster (NATS) did not store it ({e})"),
            Err(_) => format!("the cluster (NATS) did not store it within {timeout:?}"),
        };
        for token in sent.touched {
            let _ = touches.send(Touch { token, at: None });
        }
        warn!("{why}");
        if sent.durable {
            let why = format!("{why}: it may not have been seen");
            let _ = to_hub.try_send(Incoming::Unsent { conn: sent.by, why });
        }
    }
}

/// Claims and releases nicks, one at a time, in the order asked. A
/// release made while NATS is unreachable (people quitting a node cut
/// off, or fenced) waits for NATS and is done then, so no claim is left
/// behind; claims meanwhile fail anyway.
async fn nick_keeper(
    nicks: kv::Store,
    client: async_nats::Client,
    mut ops: mpsc::UnboundedReceiver<KvOp>,
    pause: Duration,
) {
    while let Some(op) = ops.recv().await {
        match op {
            KvOp::Claim { key, owner, reply } => {
                let _ = reply.try_send(claim(&nicks, &key, &owner).await);
            }
            KvOp::Release { key, owner } => loop {
                let Err(e) = release(&nicks, &key, &owner).await else {
                    break;
                };
                if client.connection_state() == async_nats::connection::State::Connected {
                    warn!("cannot release a nick claim: {e}");
                    break;
                }
                debug!("cannot release a nick claim yet ({e}): NATS is unreachable");
                // Not a wait for something: a pause between attempts at a lost server.
                tokio::time::sleep(pause).await;
            },
        }
    }
}

/// Creates the claim; one that exists is ours only if we made it.
async fn claim(nicks: &kv::Store, key: &str, owner: &str) -> Result<bool, String> {
    for _ in 0..2 {
        match nicks.create(key, owner.to_string().into()).await {
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.to_string()),
        }
        match nicks.get(key).await {
            Ok(Some(v)) => return Ok(v == owner.as_bytes()),
            Ok(None) => continue, // released meanwhile: try again
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(false)
}

/// Deletes the claim if `owner` still holds it (with its revision, so a
/// claim made meanwhile by someone else stays).
async fn release(nicks: &kv::Store, key: &str, owner: &str) -> Result<(), String> {
    let entry = nicks.entry(key).await.map_err(|e| e.to_string())?;
    let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
        return Ok(());
    };
    if entry.value != owner.as_bytes() {
        return Ok(());
    }
    nicks
        .delete_expect_revision(key, Some(entry.revision))
        .await
        .map_err(|e| e.to_string())
}

/// Reads the stream's facts `first..until` into the history (lines said
/// before this node started), each read given `timeout`; returns each
/// room's (folded) last sequence, so the node's rooms continue from there,
/// and the last line of each room (by token) now in the history.
async fn backfill(
    stream: &stream::Stream,
    client: &async_nats::Client,
    first: u64,
    until: u64,
    history: &MemoryStore,
    timeout: Duration,
) -> anyhow::Result<(Vec<(String, u64)>, HashMap<String, u64>)> {
    let mut seqs = HashMap::new();
    let mut filed = HashMap::new();
    if first >= until {
        return Ok(Default::default());
    }
    let consumer = stream
        .create_consumer(consumer::push::OrderedConfig {
            deliver_subject: client.new_inbox(),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: first,
            },
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let mut read = 0u64;
    while let Some(Stored {
        m, seq, stored_ms, ..
    }) = next_stored(&mut messages, timeout).await?
    {
        if seq >= until {
            break;
        }
        read += 1;
        let Ok(facts) = subjects::decode(&m.payload) else {
            continue;
        };
        for mut fact in facts {
            let skip = fact.body.must_be_durable() && stale(fact.at_ms, stored_ms, timeout);
            if let Some(room) = fact.room.as_ref().filter(|_| !skip) {
                seqs.insert(names::fold(room).to_string(), seq);
                if let Some(token) = subjects::line_room(&m.subject) {
                    filed.insert(token.to_string(), seq);
                }
                fact.seq = seq;
                history.submit(vec![fact]);
            }
        }
        if seq + 1 >= until {
            break;
        }
    }
    info!("read {read} facts said before this node started, for history");
    Ok((seqs.into_iter().collect(), filed))
}

/// One message read back from the stream, with where it stands in it.
pub(super) struct Stored {
    pub m: jetstream::Message,
    /// Its stream sequence.
    pub seq: u64,
    /// How many of the read's messages come after it.
    pub pending: u64,
    /// When the stream stored it (ms since the epoch).
    pub stored_ms: u64,
}

/// The next message of an ordered read of the stream (`None`: the read
/// ended); an error if none comes within `timeout`.
pub(super) async fn next_stored(
    messages: &mut consumer::push::Ordered,
    timeout: Duration,
) -> anyhow::Result<Option<Stored>> {
    let m = match tokio::time::timeout(timeout, messages.next()).await {
        Ok(Some(m)) => m?,
        Ok(None) => return Ok(None),
        Err(_) => bail!("no message from the stream within {timeout:?}"),
    };
    let info = m.info().map_err(|e| anyhow!("{e}"))?;
    let (seq, pending) = (info.stream_sequence, info.pending);
    let stored_ms = (info.published.unix_timestamp_nanos() / 1_000_000) as u64;
    Ok(Some(Stored {
        m,
        seq,
        pending,
        stored_ms,
    }))
}

/// Fails if the stream made at `created` is gone: NATS says there is no
/// such stream, or it is another one made since. No answer is no news.
pub(super) async fn stream_still_there(
    js: &jetstream::Context,
    created: i128,
) -> anyhow::Result<()> {
    match js.get_stream(STREAM).await {
        Ok(st) if st.cached_info().created.unix_timestamp_nanos() != created => {
            bail!("the NATTER stream was deleted and made again")
        }
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(_)
            ) =>
        {
            bail!("the NATTER stream is gone ({e})")
        }
        Err(_) => Ok(()),
    }
}

/// One part of a node's answer to a snapshot request.
#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotPart {
    node: NodeId,
    last: bool,
    facts: Vec<Fact>,
}

/// Facts in one snapshot message (NATS messages are at most 1 MiB by default).
const SNAPSHOT_CHUNK: usize = 500;

/// Answers nodes that start: who is here, from the hub.
async fn answer_snapshots(
    client: async_nats::Client,
    me: NodeId,
    mut requests: async_nats::Subscriber,
    to_hub: mpsc::Sender<Incoming>,
) {
    while let Some(req) = requests.next().await {
        let Some(reply) = req.reply else { continue };
        let (tx, rx) = tokio::sync::oneshot::channel();
        if to_hub.send(Incoming::Snapshot(tx)).await.is_err() {
            return;
        }
        let Ok(facts) = rx.await else { continue };
        let mut chunks: Vec<Vec<Fact>> =
            facts.chunks(SNAPSHOT_CHUNK).map(<[Fact]>::to_vec).collect();
        if chunks.is_empty() {
            chunks.push(Vec::new());
        }
        let n = chunks.len();
        for (i, facts) in chunks.into_iter().enumerate() {
            let part = SnapshotPart {
                node: me,
                last: i + 1 == n,
                facts,
            };
            let Ok(payload) = serde_json::to_vec(&part) else {
                continue;
            };
            if let Err(e) = client.publish(reply.clone(), payload.into()).await {
                warn!("cannot answer a snapshot request: {e}");
                break;
            }
        }
    }
}

/// Asks the live nodes who is on them (waiting at most `timeout` for
/// them all): the facts that tell it.
async fn snapshot(
    client: &async_nats::Client,
    nodes: &kv::Store,
    me: NodeId,
    timeout: Duration,
) -> anyhow::Result<Vec<Fact>> {
    let live = live_nodes(nodes).await.map_err(|e| anyhow!(e))?;
    let mut waiting: HashSet<NodeId> = live.into_iter().filter(|n| *n != me).collect();
    let mut facts = Vec::new();
    if waiting.is_empty() {
        return Ok(facts);
    }
    let inbox = client.new_inbox();
    let mut answers = client.subscribe(inbox.clone()).await?;
    client
        .publish_with_reply(subjects::SYNC, inbox, bytes::Bytes::new())
        .await?;
    let deadline = tokio::time::Instant::now() + timeout;
    while !waiting.is_empty() {
        let Ok(Some(m)) = tokio::time::timeout_at(deadline, answers.next()).await else {
            warn!("no snapshot from nodes {waiting:?} within {timeout:?}");
            break;
        };
        let part: SnapshotPart = match serde_json::from_slice(&m.payload) {
            Ok(p) => p,
            Err(e) => {
                warn!("a snapshot answer is not one: {e}");
                continue;
            }
        };
        if part.node == me {
            continue;
        }
        if part.last {
            waiting.remove(&part.node);
        }
        facts.extend(part.facts);
    }
    info!("learnt {} facts from the other nodes", facts.len());
    Ok(facts)
}

/// Keeps this node's heartbeat alive and finds nodes whose heartbeat is
/// gone: the live node with the lowest number has their users quit. Cut
/// off for `fence`, the node fences itself (its users are told and let
/// go); the next heartbeat that gets through ends it.
async fn heartbeat(
    nodes: kv::Store,
    client: async_nats::Client,
    s: Settings,
    to_hub: mpsc::Sender<Incoming>,
    seen: Arc<Mutex<HashSet<NodeId>>>,
    fenced: Arc<AtomicBool>,
) {
    let me = s.node.to_string();
    let mut tick = tokio::time::interval(s.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_ok = Instant::now();
    loop {
        tick.tick().await;
        if to_hub.is_closed() {
            return;
        }
        let up = client.connection_state() == async_nats::connection::State::Connected;
        // While NATS is unreachable a put would only wait for its timeout.
        let put = match up {
            true => match tokio::time::timeout(s.timeout, nodes.put(&me, now_bytes())).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {:?}", s.timeout)),
            },
            false => Err("NATS is unreachable".to_string()),
        };
        match put {
            Ok(_) => {
                last_ok = Instant::now();
                if fenced.swap(false, Ordering::AcqRel) {
                    info!("back in the cluster: taking people again");
                }
            }
            Err(e) => {
                let cut_off = last_ok.elapsed();
                warn!("heartbeat failed ({e}); cut off from the cluster for {cut_off:?}");
                if cut_off >= s.fence && !fenced.swap(true, Ordering::AcqRel) {
                    warn!(
                        "fenced: cut off from the cluster for {cut_off:?} (cluster_fence {:?})",
                        s.fence
                    );
                    if to_hub.send(Incoming::Fenced(FENCED.into())).await.is_err() {
                        return;
                    }
                }
                continue;
            }
        }
        let live = match live_nodes(&nodes).await {
            Ok(l) => l,
            Err(e) => {
                warn!("cannot list the live nodes: {e}");
                continue;
            }
        };
        if live.iter().any(|&n| n < s.node) {
            continue; // a lower-numbered node reaps
        }
        let dead: Vec<NodeId> = {
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            let dead: Vec<_> = seen
                .iter()
                .copied()
                .filter(|n| *n != s.node && !live.contains(n))
                .collect();
            for n in &dead {
                seen.remove(n);
            }
            dead
        };
        for node in dead {
            info!(
                "node {node} has not been heard from for {:?}: it is gone",
                s.node_ttl
            );
            if to_hub.send(Incoming::NodeGone(node)).await.is_err() {
                return;
            }
        }
    }
}

/// The nodes whose heartbeat has not expired: the bucket's subjects that
/// hold a value (read from the stream's subject counts, one request; the
/// client's `keys()` did not end on nats-server 2.9 with one key).
async fn live_nodes(nodes: &kv::Store) -> Result<HashSet<NodeId>, String> {
    let prefix = format!("$KV.{NODES}.");
    let mut subjects = nodes
        .stream
        .info_with_subjects(format!("{prefix}>"))
        .await
        .map_err(|e| e.to_string())?;
    let mut live = HashSet::new();
    while let Some(s) = subjects.next().await {
        let (subject, _) = s.map_err(|e| e.to_string())?;
        if let Some(n) = subject.strip_prefix(&prefix).and_then(|k| k.parse().ok()) {
            live.insert(n);
        }
    }
    Ok(live)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_used_and_never_shown() {
        let addrs: Vec<async_nats::ServerAddr> = ["nats://a:4222", "nats://n%40t:s3%3Acret@b:4222"]
            .iter()
            .map(|u| u.parse().unwrap())
            .collect();
        assert_eq!(
            url_login(&addrs),
            Some(("n@t".to_string(), "s3:cret".to_string()))
        );
        assert_eq!(url_login(&addrs[..1]), None);
        assert_eq!(
            without_password("nats://a:4222, nats://natter:s3cret@b:4222,tls://u@c"),
            "nats://a:4222,nats://natter:***@b:4222,tls://u:***@c"
        );
    }

    #[test]
    fn a_fact_stored_after_its_deadline_is_stale() {
        let t = Duration::from_secs(5);
        assert!(!stale(1_000, 1_000, t));
        assert!(!stale(1_000, 6_000, t));
        assert!(stale(1_000, 6_001, t));
        assert!(!stale(9_000, 1_000, t), "a clock behind is not late");
    }
}
