//! Reading the cluster's facts as they are stored, and only those this
//! node needs: every fact but room lines (`natter.*.state`: people,
//! membership, topics, modes, private lines), and the lines of the rooms
//! that have members here (`natter.<room>.line`, followed from the first
//! member's join to the last one's leaving, see `follow`).
//!
//! The stream republishes each fact it stores on core NATS
//! (`live.natter.…`) with its sequence and the previous sequence on the
//! same subject, so a plain subscription sees a gap on a subject as soon
//! as the next fact there arrives; the gap is filled from the stream with
//! a short-lived consumer filtered on that subject, in order, each fact
//! once (by sequence). A room followed anew reads its lines up to the
//! member's join into history, and those after it are handed on live. A
//! node back on NATS, or started, catches up from the stream (everything
//! after the last fact it had).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail};
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::{self, consumer, stream};
use futures_util::stream::{BoxStream, SelectAll};
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::follow::{Change, LocalRooms};
use super::nats::{ensure_stream, next_stored, stale, stream_still_there, Settings, Stored};
use super::subjects::{decode, line_room, line_subject, ALL_LINES, LAST_STATE, LIVE, LIVE_STATE};
use crate::hub::{Incoming, Store};
use crate::metrics::metrics;
use crate::proto::{now_ms, Fact, FactBody, NodeId};
use crate::store::MemoryStore;

/// A room whose members here may have changed: follow it or not, as its
/// members say (`at`: the stream sequence of the fact that changed them).
#[derive(Debug)]
pub(super) struct Touch {
    pub token: String,
    pub at: Option<u64>,
}

/// Which rooms this node follows, shared by the hub's side (which
/// publishes its people's facts) and the reader.
pub(super) struct Follows {
    local: Mutex<LocalRooms>,
    /// Followed rooms (by token): the sequence of the join from which their
    /// lines are read live (`None`: being set up).
    ready: Mutex<HashMap<String, Option<u64>>>,
    set_up: Condvar,
}

impl Follows {
    pub fn new(node: NodeId) -> Follows {
        Follows {
            local: Mutex::new(LocalRooms::new(node)),
            ready: Mutex::new(HashMap::new()),
            set_up: Condvar::new(),
        }
    }

    /// Takes a fact this node publishes: the rooms whose members changed.
    pub fn published(&self, fact: &Fact) -> Vec<String> {
        let changes = self.lock_local().observe(fact, true);
        self.changed(changes)
    }

    /// Takes a fact read from the stream (another node's kick of ours).
    fn read(&self, fact: &Fact) -> Vec<String> {
        if !matches!(fact.body, FactBody::Kicked { .. }) {
            return Vec::new();
        }
        let changes = self.lock_local().observe(fact, false);
        self.changed(changes)
    }

    fn changed(&self, changes: Vec<Change>) -> Vec<String> {
        if changes.is_empty() {
            return Vec::new();
        }
        let mut ready = self.lock_ready();
        changes
            .into_iter()
            .map(|c| match c {
                Change::Follow(t) => {
                    ready.insert(t.clone(), None);
                    t
                }
                Change::Unfollow(t) => {
                    ready.remove(&t);
                    t
                }
            })
            .collect()
    }

    /// Whether this node reads the lines of the room of `token`.
    pub fn followed(&self, token: &str) -> bool {
        self.lock_ready().contains_key(token)
    }

    fn has_members(&self, token: &str) -> bool {
        self.lock_local().has_members(token)
    }

    fn set_ready(&self, token: &str, at: u64) {
        if let Some(r) = self.lock_ready().get_mut(token) {
            *r = Some(at);
        }
        self.set_up.notify_all();
    }

    /// The sequence from which the room of `token` is read live: waits (at
    /// most `timeout`) for a room being set up; `None` if not followed.
    pub fn since(&self, token: &str, timeout: Duration) -> Option<u64> {
        let ready = self.lock_ready();
        let (ready, _) = self
            .set_up
            .wait_timeout_while(ready, timeout, |r| matches!(r.get(token), Some(None)))
            .unwrap_or_else(|e| e.into_inner());
        ready.get(token).copied().flatten()
    }

    fn lock_local(&self) -> std::sync::MutexGuard<'_, LocalRooms> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_ready(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<u64>>> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type Lines = SelectAll<BoxStream<'static, async_nats::Message>>;

/// What the reader waits for.
enum Next {
    Touch(Option<Touch>),
    Message(Option<async_nats::Message>),
    /// Facts received out of order waited `cluster_gap_wait`.
    Waited,
    Tick,
}

/// Facts received on one subject before the one(s) before them: each with
/// the previous sequence on its subject and its payload.
pub(super) struct Waiting {
    since: tokio::time::Instant,
    facts: BTreeMap<u64, (Option<u64>, bytes::Bytes)>,
}

/// Reads the cluster's facts for the hub, for ever.
pub(super) struct Reader {
    pub js: jetstream::Context,
    pub client: async_nats::Client,
    pub s: Settings,
    pub to_hub: mpsc::Sender<Incoming>,
    pub history: Arc<MemoryStore>,
    pub seen: Arc<Mutex<HashSet<NodeId>>>,
    pub follows: Arc<Follows>,
    /// Last sequence handed on (or filed as history) on each subject.
    pub last: HashMap<String, u64>,
    /// Every subject but room lines is complete up to here.
    pub base: u64,
    /// The highest sequence received.
    pub high: u64,
    /// Last line of each room in the history memory (by token).
    pub filed: HashMap<String, u64>,
    /// Rooms followed (by token): what ends their subscription.
    pub lines: HashMap<String, oneshot::Sender<()>>,
    /// When the stream being read was made (to notice it made anew).
    pub created: Option<i128>,
    /// The stream being read.
    pub stream: Option<stream::Stream>,
    /// Room lines received live (for `cluster_drop_live`).
    pub received: u64,
    /// Other facts received live (for `cluster_drop_live_state`).
    pub received_state: u64,
    /// Facts received before the one before them on their subject (by
    /// subject): held until it comes, or `cluster_gap_wait` passed.
    pub waiting: HashMap<String, Waiting>,
    /// Subjects whose newest fact in the stream the last tail check found
    /// missing here (with its sequence): lost if still missing at the next.
    pub suspects: HashMap<String, u64>,
    /// Rooms (by token) with lines handed on since the last tail check.
    pub spoken: HashSet<String>,
    /// Where the tail checks' turn through the other followed rooms is.
    pub turn: usize,
    /// Facts read and not yet handed to the hub (see [`Self::flush_to_hub`]).
    pub pending: Vec<Fact>,
    /// Facts other than room lines that follow what was handed on their
    /// subject but come after one waiting for a gap on another (by
    /// sequence: subject, previous sequence on it, payload).
    pub held: BTreeMap<u64, (String, Option<u64>, bytes::Bytes)>,
}

/// How many followed rooms without recent lines a tail check asks about,
/// besides those with recent lines (each in turn, over the ticks).
const TAIL_CHECKS_IN_TURN: usize = 16;

impl Reader {
    pub async fn run(mut self, mut touches: mpsc::UnboundedReceiver<Touch>) {
        loop {
            let r = self.session(&mut touches).await;
            // What was read before it ended was read: the hub gets it.
            let handed = self.flush_to_hub().await;
            if self.to_hub.is_closed() {
                return;
            }
            if let Err(e) = handed {
                warn!("handing facts to the hub: {e:#}");
            }
            if let Err(e) = r {
                warn!("reading the NATTER stream: {e:#}; trying again");
            }
            // Not a wait for something: a pause between attempts at a lost server.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn session(
        &mut self,
        touches: &mut mpsc::UnboundedReceiver<Touch>,
    ) -> anyhow::Result<()> {
        // Made again if it was deleted under us; its order then starts anew.
        let mut stream = ensure_stream(&self.js, self.s.per_subject, false).await?;
        self.stream = Some(stream.clone());
        let info = stream.info().await?;
        let (end, created) = (
            info.state.last_sequence,
            info.created.unix_timestamp_nanos(),
        );
        let anew = self.created.is_some_and(|c| c != created);
        self.created = Some(created);
        if anew || end < self.high {
            warn!(
                "the NATTER stream was made anew (at {end}, we had read to {}): reading it from its start",
                self.high
            );
            self.last.clear();
            self.filed.clear();
            (self.base, self.high) = (0, 0);
        }
        // Facts held for a gap are read again with it (from before them).
        let held = self
            .waiting
            .keys()
            .chain(self.held.values().map(|(s, ..)| s))
            .map(|s| self.known(s))
            .min();
        if let Some(k) = held {
            self.high = self.high.min(k);
        }
        self.waiting.clear();
        self.held.clear();
        let mut state = self.client.subscribe(LIVE_STATE).await?;
        let mut lines = Lines::new();
        let followed: Vec<String> = self.lines.drain().map(|(t, _)| t).collect();
        for token in followed {
            self.subscribe_lines(&token, &mut lines).await?;
        }
        self.client.flush().await?;
        self.catch_up(&stream).await?;
        let mut check = tokio::time::interval(self.s.heartbeat);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        check.tick().await;
        let connects = |c: &async_nats::Client| {
            c.statistics()
                .connects
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        let mut was_connects = connects(&self.client);
        loop {
            let waited = self.waiting.values().map(|w| w.since).min();
            let until = waited.map_or_else(tokio::time::Instant::now, |t| t + self.s.gap_wait);
            let next = tokio::select! {
                biased;
                t = touches.recv() => Next::Touch(t),
                m = state.next() => Next::Message(m),
                Some(m) = lines.next(), if !lines.is_empty() => Next::Message(Some(m)),
                _ = tokio::time::sleep_until(until), if waited.is_some() => Next::Waited,
                _ = check.tick() => Next::Tick,
            };
            match next {
                Next::Touch(None) | Next::Message(None) => return Ok(()),
                Next::Touch(Some(t)) => {
                    // Rooms whose first members joined at about the same
                    // time are set up together.
                    let mut batch = vec![t];
                    while batch.len() < self.s.follow_batch {
                        match touches.try_recv() {
                            Ok(t) => batch.push(t),
                            Err(_) => break,
                        }
                    }
                    self.touch_all(batch, &mut lines).await?;
                }
                Next::Message(Some(m)) => {
                    // What is here already, in the stream's order: the
                    // server sent it in that order, over two subscriptions.
                    let mut batch = vec![m];
                    while batch.len() < 1024 {
                        match state.next().now_or_never() {
                            Some(Some(m)) => batch.push(m),
                            _ => break,
                        }
                    }
                    while batch.len() < 2048 && !lines.is_empty() {
                        match lines.next().now_or_never() {
                            Some(Some(m)) => batch.push(m),
                            _ => break,
                        }
                    }
                    batch.sort_by_key(|m| header(m, "Nats-Sequence"));
                    for m in batch {
                        self.live(m).await?;
                    }
                }
                Next::Waited => {
                    self.fill_waited().await?;
                    self.release_held().await?;
                }
                Next::Tick => {
                    stream_still_there(&self.js, created).await?;
                    self.check_tails().await?;
                    self.release_held().await?;
                    // Connected again since the last look: what was stored
                    // meanwhile was not received live.
                    let now = connects(&self.client);
                    if now != was_connects {
                        info!("back on NATS: reading what was stored meanwhile");
                        self.catch_up(&stream).await?;
                        was_connects = now;
                    }
                }
            }
            // Everything read this turn goes to the hub as one batch.
            self.flush_to_hub().await?;
            if self.to_hub.is_closed() {
                return Ok(());
            }
        }
    }

    /// Takes touches in order; the rooms to follow anew are set up together
    /// (one flush for all their subscriptions, and their newest-line
    /// requests in flight at once): a login storm's thousands of new rooms
    /// cost a few round trips, not two each with the live facts waiting.
    async fn touch_all(&mut self, touches: Vec<Touch>, lines: &mut Lines) -> anyhow::Result<()> {
        let mut new: Vec<(String, Option<u64>)> = Vec::new();
        let mut later = Vec::new();
        for t in touches {
            if new.iter().any(|(token, _)| *token == t.token) {
                // Touched again while being set up: looked at once it is.
                later.push(t);
            } else if self.touch(&t, lines).await? {
                new.push((t.token, t.at));
            }
        }
        if !new.is_empty() {
            self.client.flush().await?;
            let stream = self.stream()?.clone();
            // Many rooms at once (a login storm's): one request lists the
            // rooms with lines at all (made after the subscriptions, so a
            // line it misses comes live), and only those are asked for
            // their newest: for nats-server 2.9 finding that a subject has
            // no message costs a look at every block of the stream.
            let with_lines = match new.len() > LIST_LINES_OVER {
                true => Some(rooms_with_lines(&stream).await?),
                false => None,
            };
            let asks: Vec<_> = new
                .iter()
                .map(|(token, _)| {
                    let subject = line_subject(token);
                    let ask = with_lines.as_ref().is_none_or(|w| w.contains(&subject));
                    let stream = stream.clone();
                    async move {
                        match ask {
                            true => newest_line(stream, subject).await,
                            false => Ok(0),
                        }
                    }
                })
                .collect();
            let newest: Vec<anyhow::Result<u64>> = futures_util::stream::iter(asks)
                .buffered(self.s.follow_batch)
                .collect()
                .await;
            for ((token, at), newest) in new.into_iter().zip(newest) {
                self.follow_from(&token, at, newest?).await?;
            }
        }
        for t in later {
            // Set up above: followed, or to be let go.
            self.touch(&t, lines).await?;
        }
        Ok(())
    }

    /// Follows the room of `t`, or stops, as its members here say. A room
    /// to follow anew is subscribed to here and set up by the caller
    /// ([`Self::follow_from`], after a flush): then `true`.
    async fn touch(&mut self, t: &Touch, lines: &mut Lines) -> anyhow::Result<bool> {
        let want = self.follows.has_members(&t.token);
        match (want, self.lines.contains_key(&t.token)) {
            (true, false) => {
                self.subscribe_lines(&t.token, lines).await?;
                return Ok(true);
            }
            (false, true) => self.unfollow(&t.token),
            (true, true) => {
                // Left and joined again before we looked: still followed.
                let at = self.last.get(&line_subject(&t.token)).copied();
                self.follows.set_ready(&t.token, at.unwrap_or(self.high));
            }
            (false, false) => {}
        }
        Ok(false)
    }

    async fn subscribe_lines(&mut self, token: &str, lines: &mut Lines) -> anyhow::Result<()> {
        let sub = self
            .client
            .subscribe(format!("{LIVE}{}", line_subject(token)))
            .await?;
        let (stop, stopped) = oneshot::channel();
        lines.push(sub.take_until(stopped).boxed());
        self.lines.insert(token.to_string(), stop);
        Ok(())
    }

    /// Starts reading the lines of a room just subscribed to, whose newest
    /// line in the stream is `newest` (0: none; what the subscription may
    /// have missed ends there): those up to `at` (the first member's join
    /// here; the stream's end if unknown) go to history, the later ones to
    /// the hub, then the live ones.
    async fn follow_from(
        &mut self,
        token: &str,
        at: Option<u64>,
        newest: u64,
    ) -> anyhow::Result<()> {
        let subject = line_subject(token);
        // Not known if the join was not stored: all said so far is history.
        let at = at.unwrap_or(newest);
        debug!("following {subject} from {at}");
        // Lines up to the join are history; the memory may have them already.
        let from = self
            .filed
            .get(token)
            .map_or(1, |s| s + 1)
            .max(at.saturating_sub(self.s.backfill) + 1);
        self.last.insert(subject.clone(), at);
        if newest >= from {
            self.fill(&subject, from, Some(newest), Some(at)).await?;
        }
        self.follows.set_ready(token, at);
        Ok(())
    }

    fn unfollow(&mut self, token: &str) {
        debug!("no longer following the lines of {token}");
        // Its subscription ends with this.
        self.lines.remove(token);
        self.last.remove(&line_subject(token));
        self.waiting.remove(&line_subject(token));
        self.suspects.remove(&line_subject(token));
    }

    /// The last sequence handed on on `subject` (for a subject never seen
    /// but room lines: where every such subject is complete to).
    fn known(&self, subject: &str) -> u64 {
        let unseen = if line_room(subject).is_some() {
            0
        } else {
            self.base
        };
        self.last.get(subject).copied().unwrap_or(unseen)
    }

    /// Subjects whose facts waited `cluster_gap_wait` for the ones before
    /// them: those are lost, and read from the stream with everything up
    /// to the newest held (handed on once, in order).
    async fn fill_waited(&mut self) -> anyhow::Result<()> {
        let now = tokio::time::Instant::now();
        // Many subjects waiting: all are read now, with one consumer (what
        // a fact received names as before it is stored already).
        let many = self.waiting.len() > self.s.gap_coalesce;
        let due: Vec<String> = self
            .waiting
            .iter()
            .filter(|(_, w)| many || w.since + self.s.gap_wait <= now)
            .map(|(s, _)| s.clone())
            .collect();
        // Each gap still open: its subject, from where and to where.
        let mut gaps = Vec::new();
        for subject in due {
            let Some(w) = self.waiting.remove(&subject) else {
                continue;
            };
            let Some(&to) = w.facts.keys().next_back() else {
                continue;
            };
            let known = self.known(&subject);
            if to <= known {
                continue;
            }
            debug!("a gap on {subject}: had {known}, {to} was received");
            metrics().cluster_gaps_filled.inc();
            gaps.push((subject, known + 1, to));
        }
        self.fill_gaps(gaps).await
    }

    /// Fills gaps (subject, first and last sequence missing): one consumer
    /// each, or, when there are more than `cluster_gap_coalesce` of room
    /// lines or of the other facts, one for all of them.
    async fn fill_gaps(&mut self, gaps: Vec<(String, u64, u64)>) -> anyhow::Result<()> {
        let (lines, state): (Vec<_>, Vec<_>) = gaps
            .into_iter()
            .partition(|(subject, ..)| line_room(subject).is_some());
        for (gaps, all) in [(state, LAST_STATE), (lines, ALL_LINES)] {
            let (Some(from), Some(to)) = (
                gaps.iter().map(|g| g.1).min(),
                gaps.iter().map(|g| g.2).max(),
            ) else {
                continue;
            };
            if gaps.len() > self.s.gap_coalesce {
                debug!("{} gaps on {all}: one fill from {from} to {to}", gaps.len());
                self.fill_all(all, from, to).await?;
            } else {
                for (subject, from, to) in gaps {
                    self.fill(&subject, from, Some(to), None).await?;
                }
            }
            self.high = self.high.max(to);
        }
        Ok(())
    }

    /// Fills every subject `filter` matches (`natter.*.state` or
    /// `natter.*.line`) from `from` to `to` with one consumer: the many
    /// gaps a node finds at once (a burst lost on the way, facts held out
    /// of order) cost one read of the stream, not one consumer each. A
    /// subject is handed facts only if everything after the last one
    /// handed on there is in the range (the others wait for their own
    /// gap), so each fact is handed once, in order.
    async fn fill_all(&mut self, filter: &str, from: u64, to: u64) -> anyhow::Result<()> {
        let stream = self.stream()?.clone();
        let read = self
            .read_stream(&stream, filter, from, Some(to), None, Some(from))
            .await?;
        // Read to `to` from at most where every subject never seen is
        // complete: those still unseen had nothing there.
        if read && filter == LAST_STATE && from <= self.base + 1 {
            self.base = self.base.max(to);
        }
        Ok(())
    }

    /// Hands on the facts held on `subject` that now follow what was
    /// handed on there.
    async fn release(&mut self, subject: &str) -> anyhow::Result<()> {
        loop {
            let known = self.known(subject);
            let Some(w) = self.waiting.get_mut(subject) else {
                return Ok(());
            };
            let Some(first) = w.facts.first_entry() else {
                self.waiting.remove(subject);
                return Ok(());
            };
            let seq = *first.key();
            if seq > known && first.get().0.is_some_and(|p| p > known) {
                return Ok(());
            }
            let (_, payload) = first.remove();
            if seq > known {
                self.high = self.high.max(seq);
                self.hand(subject, seq, &payload, now_ms()).await?;
            }
        }
    }

    /// A fact lost on its way with none after it on its subject shows no
    /// gap (there is no `Nats-Last-Sequence` to notice it by). At each
    /// tick the node asks the stream (one request each) for the newest
    /// line of the rooms that had lines since the last tick and of a few
    /// of its other rooms in turn, and for the newest state fact of all
    /// (`natter.*.state`). One it does not have may still be on its way
    /// (the request and the republished fact race): it is taken as lost
    /// only if still missing at the next tick, and filled then; a fact
    /// still on its way is then handed on once.
    async fn check_tails(&mut self) -> anyhow::Result<()> {
        let spoken = std::mem::take(&mut self.spoken);
        let was = std::mem::take(&mut self.suspects);
        let mut others: Vec<&String> = self.lines.keys().filter(|t| !spoken.contains(*t)).collect();
        others.sort();
        let n = others.len().min(TAIL_CHECKS_IN_TURN);
        let start = if others.is_empty() {
            0
        } else {
            self.turn % others.len()
        };
        self.turn = start + n;
        let mut subjects: Vec<String> = spoken
            .into_iter()
            .filter(|t| self.lines.contains_key(t))
            .map(|t| line_subject(&t))
            .collect();
        subjects.extend(
            others
                .into_iter()
                .cycle()
                .skip(start)
                .take(n)
                .map(|t| line_subject(t)),
        );
        subjects.extend(was.keys().cloned());
        subjects.push(LAST_STATE.to_string());
        let mut asked = HashSet::new();
        subjects.retain(|subject| {
            asked.insert(subject.clone())
                // a room no longer followed is not asked about
                && (line_room(subject).is_none() || self.last.contains_key(subject))
        });
        // The requests in flight together: the reader waits one round trip,
        // not one per room.
        let stream = self.stream()?.clone();
        let asks: Vec<_> = subjects
            .into_iter()
            .map(|subject| newest_on(stream.clone(), subject))
            .collect();
        let answers: Vec<anyhow::Result<Option<(String, u64)>>> = futures_util::stream::iter(asks)
            .buffered(self.s.follow_batch)
            .collect()
            .await;
        let mut lost = Vec::new();
        for answer in answers {
            let Some((subject, newest)) = answer? else {
                continue;
            };
            let known = self.known(&subject);
            let held = || self.held.values().any(|(s, ..)| *s == subject);
            if newest <= known || self.waiting.contains_key(&subject) || held() {
                continue;
            }
            match was.get(&subject) {
                Some(&missing) if missing > known => {
                    debug!("a lost tail on {subject}: had {known}, newest {newest}");
                    metrics().cluster_gaps_filled.inc();
                    lost.push((subject, known + 1, newest));
                }
                _ => {
                    self.suspects.insert(subject, newest);
                }
            }
        }
        self.fill_gaps(lost).await
    }

    /// Reads what was stored after the last fact received, to the stream's
    /// end (at start, and back on NATS).
    async fn catch_up(&mut self, stream: &stream::Stream) -> anyhow::Result<()> {
        let end = stream.get_info().await?.state.last_sequence;
        let from = self.high + 1;
        if from <= end {
            debug!("catching up from {from} to {end}");
            self.read_stream(stream, "natter.>", from, Some(end), None, None)
                .await?;
        }
        self.base = self.base.max(end);
        self.high = self.high.max(end);
        Ok(())
    }

    /// Fills `subject` from `from` up to `to` (the stream's end if `None`);
    /// lines up to `history_to` are filed as history only.
    async fn fill(
        &mut self,
        subject: &str,
        from: u64,
        to: Option<u64>,
        history_to: Option<u64>,
    ) -> anyhow::Result<()> {
        let stream = self.stream()?.clone();
        self.read_stream(&stream, subject, from, to, history_to, None)
            .await?;
        Ok(())
    }

    fn stream(&self) -> anyhow::Result<&stream::Stream> {
        self.stream.as_ref().ok_or_else(|| anyhow!("no stream"))
    }

    /// Reads `filter` from `from` to `to` (the stream's end if `None`):
    /// lines up to `history_to` are filed as history, the rest handed on.
    /// With `complete_from`, only subjects whose every fact after the last
    /// one handed on is at or after it are handed on. Whether the read got
    /// to its end.
    async fn read_stream(
        &mut self,
        stream: &stream::Stream,
        filter: &str,
        from: u64,
        to: Option<u64>,
        history_to: Option<u64>,
        complete_from: Option<u64>,
    ) -> anyhow::Result<bool> {
        metrics().cluster_fill_consumers.inc();
        let consumer = stream
            .create_consumer(consumer::push::OrderedConfig {
                deliver_subject: self.client.new_inbox(),
                filter_subject: filter.to_string(),
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: from.max(1),
                },
                ..Default::default()
            })
            .await?;
        if consumer.cached_info().num_pending == 0 {
            return Ok(true);
        }
        let mut messages = consumer.messages().await?;
        let timeout = self.s.timeout;
        while let Some(Stored {
            m,
            seq,
            pending,
            stored_ms,
        }) = next_stored(&mut messages, timeout).await?
        {
            if to.is_some_and(|to| seq > to) {
                return Ok(true);
            }
            let subject = m.subject.to_string();
            if complete_from.is_some_and(|f| self.known(&subject) + 1 < f) {
                // Facts before the range may be missing here: not this read's.
            } else if history_to.is_some_and(|h| seq <= h) {
                self.file(&subject, seq, &m.payload, stored_ms);
            } else if line_room(&subject).is_none_or(|t| self.lines.contains_key(t)) {
                self.hand(&subject, seq, &m.payload, stored_ms).await?;
            }
            if pending == 0 || to == Some(seq) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A fact received live: handed on once, in order. One received
    /// before the one before it on its subject (whose `Nats-Last-Sequence`
    /// is not the last handed on there) waits for it: nats-server
    /// republishes the facts that several connections publish at the same
    /// moment in either order (each publisher's connection republishes
    /// what it stored, after letting the stream go), so such a gap is
    /// usually no loss; what has not come within `cluster_gap_wait` is read
    /// from the stream.
    async fn live(&mut self, m: async_nats::Message) -> anyhow::Result<()> {
        let Some(subject) = m.subject.strip_prefix(LIVE) else {
            return Ok(());
        };
        let (Some(seq), prev) = (
            header(&m, "Nats-Sequence"),
            header(&m, "Nats-Last-Sequence"),
        ) else {
            warn!("a live fact on {subject} has no sequence: not shown");
            return Ok(());
        };
        match line_room(subject) {
            Some(token) if !self.lines.contains_key(token) => return Ok(()),
            Some(_) if self.lost_on_the_way(true) => return Ok(()),
            None if self.lost_on_the_way(false) => return Ok(()),
            _ => {}
        }
        let subject = subject.to_string();
        self.place(subject, seq, prev, m.payload).await?;
        self.release_held().await
    }

    /// A live fact, in its place: handed on if it follows what was handed
    /// on its subject, else held for the fact(s) before it. A fact that is
    /// not a room line and comes after one held so (on another subject) is
    /// held too ([`Self::held`]): who is where and what else changes in
    /// rooms are on different subjects, and are applied in the stream's
    /// order.
    async fn place(
        &mut self,
        subject: String,
        seq: u64,
        prev: Option<u64>,
        payload: bytes::Bytes,
    ) -> anyhow::Result<()> {
        let known = self.known(&subject);
        if seq <= known {
            return Ok(());
        }
        if prev.is_some_and(|p| p > known) {
            let w = self.waiting.entry(subject).or_insert_with(|| Waiting {
                since: tokio::time::Instant::now(),
                facts: BTreeMap::new(),
            });
            w.facts.insert(seq, (prev, payload));
            return Ok(());
        }
        let state = line_room(&subject).is_none();
        if let Some(floor) = self.state_floor().filter(|&f| state && f < seq) {
            debug!("{subject} {seq} held: {floor} waits for a gap");
            metrics().cluster_facts_held.inc();
            self.held.insert(seq, (subject, prev, payload));
            return Ok(());
        }
        self.high = self.high.max(seq);
        self.hand(&subject, seq, &payload, now_ms()).await?;
        self.release(&subject).await
    }

    /// The lowest sequence held on a subject other than room lines for a
    /// fact before it (`None`: none held).
    fn state_floor(&self) -> Option<u64> {
        self.waiting
            .iter()
            .filter(|(subject, _)| line_room(subject).is_none())
            .filter_map(|(_, w)| w.facts.keys().next().copied())
            .min()
    }

    /// Places again, in the stream's order, the facts [`Self::held`] that
    /// no longer come after one held for a gap.
    async fn release_held(&mut self) -> anyhow::Result<()> {
        while let Some(&first) = self.held.keys().next() {
            if self.state_floor().is_some_and(|f| f < first) {
                return Ok(());
            }
            let Some((subject, prev, payload)) = self.held.remove(&first) else {
                return Ok(());
            };
            self.place(subject, first, prev, payload).await?;
        }
        Ok(())
    }

    /// Whether to drop this live fact (`cluster_drop_live` for room
    /// lines, `cluster_drop_live_state` for the others: testing).
    fn lost_on_the_way(&mut self, line: bool) -> bool {
        let (received, n) = match line {
            true => (&mut self.received, self.s.drop_live),
            false => (&mut self.received_state, self.s.drop_live_state),
        };
        *received += 1;
        n != 0 && received.is_multiple_of(n)
    }

    /// Decodes a message's facts (one, or a bundle), leaving out those
    /// that must not be shown; none if it is not natter's.
    fn decode(&self, subject: &str, seq: u64, payload: &[u8], stored_ms: u64) -> Vec<Fact> {
        let mut facts = match decode(payload) {
            Ok(f) => f,
            Err(e) => {
                warn!("stream message {seq} on {subject} is not a natter fact: {e}");
                return Vec::new();
            }
        };
        facts.retain_mut(|fact| {
            if fact.body.must_be_durable() && stale(fact.at_ms, stored_ms, self.s.timeout) {
                // Its sender was told it failed (the acker's deadline passed):
                // every node skips it alike.
                info!("stream message {seq} was stored after its sender gave up on it: not shown");
                return false;
            }
            fact.seq = seq;
            true
        });
        facts
    }

    /// A line said before the room was followed: history only.
    fn file(&mut self, subject: &str, seq: u64, payload: &[u8], stored_ms: u64) {
        let Some(token) = line_room(subject) else {
            return;
        };
        metrics().cluster_lines_read.inc();
        let facts = self.decode(subject, seq, payload, stored_ms);
        if !facts.is_empty() {
            self.history.submit(facts);
            self.filed.insert(token.to_string(), seq);
        }
    }

    /// Hands a message's facts to the hub (and history), once. They are
    /// held in [`Self::pending`] and go together ([`Self::flush_to_hub`]): one
    /// handoff and one lock of the hub for many.
    async fn hand(
        &mut self,
        subject: &str,
        seq: u64,
        payload: &[u8],
        stored_ms: u64,
    ) -> anyhow::Result<()> {
        if self.last.get(subject).is_some_and(|&l| seq <= l) {
            return Ok(());
        }
        match self.last.get_mut(subject) {
            Some(l) => *l = seq,
            None => {
                self.last.insert(subject.to_string(), seq);
            }
        }
        let token = line_room(subject);
        let facts = self.decode(subject, seq, payload, stored_ms);
        match token {
            Some(_) => metrics().cluster_lines_read.inc(),
            None => metrics()
                .cluster_facts_read
                .inc_by(facts.len().max(1) as u64),
        };
        if facts.len() > 1 {
            metrics().cluster_bundles_read.inc();
        }
        for fact in facts {
            if fact.room.is_some() {
                if let Some(t) = token {
                    self.filed.insert(t.to_string(), seq);
                    self.spoken.insert(t.to_string());
                }
            }
            if fact.by.node != self.s.node {
                for token in self.follows.read(&fact) {
                    if !self.follows.has_members(&token) {
                        self.unfollow(&token);
                    }
                }
            }
            self.pending.push(fact);
        }
        if self.pending.len() >= HUB_BATCH {
            self.flush_to_hub().await?;
        }
        Ok(())
    }

    /// Hands the facts held in [`Self::pending`] to the hub, in order, as
    /// one batch (and files those of rooms as history).
    pub async fn flush_to_hub(&mut self) -> anyhow::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let facts = std::mem::take(&mut self.pending);
        let kept: Vec<Fact> = facts.iter().filter(|f| f.room.is_some()).cloned().collect();
        if !kept.is_empty() {
            self.history.submit(kept);
        }
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            for fact in &facts {
                if !matches!(fact.body, FactBody::Quit { .. }) {
                    seen.insert(fact.by.node);
                }
            }
        }
        metrics().cluster_fact_batches.inc();
        if self.to_hub.send(Incoming::Facts(facts)).await.is_err() {
            bail!("the hub has stopped");
        }
        Ok(())
    }
}

/// Most facts handed to the hub at once (one lock of the hub for them).
const HUB_BATCH: usize = 256;

/// Rooms followed together beyond which the stream is asked once which
/// rooms have lines, before asking each of those for its newest.
const LIST_LINES_OVER: usize = 8;

/// The line subjects (`natter.<room>.line`) that have lines in the stream:
/// one request (paged by the NATS client).
async fn rooms_with_lines(stream: &stream::Stream) -> anyhow::Result<HashSet<String>> {
    let mut listed = stream.clone().info_with_subjects(ALL_LINES).await?;
    let mut subjects = HashSet::new();
    while let Some(listed) = listed.next().await {
        let (subject, _count) = listed?;
        subjects.insert(subject);
    }
    Ok(subjects)
}

/// The sequence of the newest line on `subject` (a room's lines) in the
/// stream, 0 if it has none: one request.
async fn newest_line(stream: stream::Stream, subject: String) -> anyhow::Result<u64> {
    Ok(newest_on(stream, subject).await?.map_or(0, |(_, seq)| seq))
}

/// The subject and sequence of the newest fact on `subject` (which may be
/// a wildcard) in the stream, `None` if it has none: one request.
async fn newest_on(
    stream: stream::Stream,
    subject: String,
) -> anyhow::Result<Option<(String, u64)>> {
    match stream.get_last_raw_message_by_subject(&subject).await {
        Ok(m) => Ok(Some((m.subject.to_string(), m.sequence))),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A numeric header of a republished message.
fn header(m: &async_nats::Message, name: &str) -> Option<u64> {
    m.headers.as_ref()?.get(name)?.as_str().parse().ok()
}
