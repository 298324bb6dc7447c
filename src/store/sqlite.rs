//! The SQLite store: room history in a WAL-mode database file, written by
//! one writer thread that commits many submissions in one transaction
//! (group commit) and then moves the [`Watermark`] so their events may be
//! seen; history is read on connections of its own. Migrations are
//! versioned with `user_version`; a database from a newer natter is
//! refused, never touched. Retention (per-room count and age) runs on the
//! writer between batches, in small deletes, so chat never waits for it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::hub::{names, Store, StoreError, Watermark};
use crate::proto::{now_ms, Anchor, ConnId, Fact, History, HistoryQuery, MsgId};

/// The schema this natter writes; a newer file is refused.
const SCHEMA: i64 = 2;

/// Facts waiting for the writer before `submit` makes the chat wait (a
/// disk that cannot keep up slows senders instead of filling memory).
const MAX_PENDING: usize = 200_000;
/// How often the writer enforces retention.
const RETENTION_EVERY: Duration = Duration::from_secs(2);
/// Rows one retention step deletes from one room: the writer goes back to
/// chat between steps, so a room far over its limit (a lowered setting, a
/// big imported or restored database) is trimmed over many short steps
/// instead of in one long statement that every message would wait for.
const RETENTION_CHUNK: usize = 2000;
/// Rooms one retention step looks at: each costs a statement (about
/// 50 µs when there is nothing to delete), and chat waits while the writer
/// is at it, so 10 000 rooms written at once (a burst of joins) are gone
/// through over many short steps instead of one half-second one.
const RETENTION_ROOMS: usize = 64;
/// How often age retention looks at every room, not only those written to
/// (lines in a room nobody talks in still expire).
const AGE_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// How history is kept and trimmed.
#[derive(Debug, Clone)]
pub struct Retention {
    /// Facts kept per room (0: all).
    pub per_room: usize,
    /// How long facts are kept (zero: for ever).
    pub max_age: Duration,
}

/// The store over one database file.
pub struct SqliteStore {
    path: PathBuf,
    queue: Arc<Queue>,
    watermark: Arc<Watermark>,
    readers: Mutex<Vec<Connection>>,
    /// Joined on drop, so a clean stop commits what was submitted and
    /// checkpoints: the file is then whole on its own, with no `-wal`.
    writer: Option<std::thread::JoinHandle<()>>,
}

struct Queue {
    pending: Mutex<Pending>,
    /// The writer waits on it for work, `submit` for room.
    changed: Condvar,
}

#[derive(Default)]
struct Pending {
    batches: VecDeque<(u64, Vec<Fact>)>,
    facts: usize,
    last_ticket: u64,
    closed: bool,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// Opens (creating if needed) and migrates the database, checking that it
/// can be written. Errors say which file and why.
fn open_writer(path: &Path, max_bytes: u64) -> Result<Connection, StoreError> {
    let shown = path.display();
    let conn = Connection::open(path).map_err(|e| StoreError(format!("{shown}: {e}")))?;
    // Reads first: a file natter must not use is left exactly as it was
    // (switching to WAL alone rewrites the header).
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| StoreError(format!("{shown}: {e}")))?;
    if version > SCHEMA {
        return Err(StoreError(format!(
            "{shown} was written by a newer natter (schema {version}, this one knows {SCHEMA}); \
             refusing to touch it"
        )));
    }
    // SQLite opens a file it may not write read-only, and an empty
    // transaction succeeds on it: ask instead.
    if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
        return Err(StoreError(format!(
            "{shown}: cannot write: the file is read-only (attempt to write a readonly database)"
        )));
    }
    let setup = || -> rusqlite::Result<()> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        if max_bytes > 0 {
            let page: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
            let pages = (max_bytes / page.max(1) as u64).clamp(1, i64::MAX as u64) as i64;
            conn.pragma_update(None, "max_page_count", pages)?;
        }
        Ok(())
    };
    setup().map_err(|e| StoreError(format!("{shown}: {e}")))?;
    migrate(&conn, version).map_err(|e| StoreError(format!("{shown}: cannot write: {e}")))?;
    Ok(conn)
}

/// Brings the schema from `version` to [`SCHEMA`], one step per version.
fn migrate(conn: &Connection, version: i64) -> rusqlite::Result<()> {
    if version < 1 {
        conn.execute_batch(
            "BEGIN;
             CREATE TABLE room_log (
                 room  TEXT    NOT NULL,  -- folded room key
                 seq   INTEGER NOT NULL,  -- the room's order, from 1
                 id    BLOB    NOT NULL,  -- UUIDv7 message id (time-ordered)
                 at_ms INTEGER NOT NULL,
                 kind  TEXT    NOT NULL,  -- said, noticed, joined, ...
                 fact  TEXT    NOT NULL,  -- the whole fact, JSON
                 PRIMARY KEY (room, seq)
             ) WITHOUT ROWID;
             CREATE UNIQUE INDEX room_log_id ON room_log (id);
             CREATE INDEX room_log_time ON room_log (room, at_ms);
             CREATE TABLE room_seq (
                 room TEXT PRIMARY KEY,   -- folded room key
                 name TEXT NOT NULL,      -- as people write it
                 seq  INTEGER NOT NULL    -- the last sequence number
             ) WITHOUT ROWID;
             PRAGMA user_version = 1;
             COMMIT;",
        )?;
    }
    if version < 2 {
        // Accounts and registered rooms (src/store/accounts.rs).
        conn.execute_batch(
            "BEGIN;
             CREATE TABLE account (
                 key        TEXT PRIMARY KEY,  -- folded name
                 name       TEXT NOT NULL,     -- as registered
                 hash       TEXT NOT NULL,     -- argon2id, PHC string
                 scram      TEXT NOT NULL,     -- SCRAM-SHA-256 credentials, JSON
                 created_ms INTEGER NOT NULL
             ) WITHOUT ROWID;
             CREATE TABLE registered_room (
                 key   TEXT PRIMARY KEY,       -- folded room name
                 state TEXT NOT NULL           -- founder, topic, modes, bans: JSON
             ) WITHOUT ROWID;
             PRAGMA user_version = 2;
             COMMIT;",
        )?;
    }
    // A write the file refuses (read-only, full) shows now, not at the first message.
    conn.execute_batch("BEGIN IMMEDIATE; COMMIT;")
}

impl SqliteStore {
    /// Opens the database at `path` and starts its writer. The receiver
    /// yields the connections whose messages could not be stored.
    pub fn open(
        path: &Path,
        max_bytes: u64,
        retention: Retention,
    ) -> Result<(SqliteStore, mpsc::UnboundedReceiver<Vec<ConnId>>), StoreError> {
        let conn = open_writer(path, max_bytes)?;
        let queue = Arc::new(Queue {
            pending: Mutex::new(Pending::default()),
            changed: Condvar::new(),
        });
        let watermark = Arc::new(Watermark::default());
        let (failures, failed_rx) = mpsc::unbounded_channel();
        let writer = Writer {
            conn,
            queue: queue.clone(),
            watermark: watermark.clone(),
            failures,
            retention,
            touched: HashSet::new(),
            last_retention: Instant::now(),
            last_sweep: Instant::now(),
            behind: false,
        };
        let writer = std::thread::Builder::new()
            .name("natter-db-writer".into())
            .spawn(move || writer.run())
            .map_err(err)?;
        info!("database {}", path.display());
        let store = SqliteStore {
            path: path.to_path_buf(),
            queue,
            watermark,
            readers: Mutex::new(Vec::new()),
            writer: Some(writer),
        };
        Ok((store, failed_rx))
    }

    /// Runs `f` on a reader connection of the pool.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let pooled = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let c = Connection::open_with_flags(&self.path, flags).map_err(err)?;
                c.busy_timeout(Duration::from_secs(5)).map_err(err)?;
                c
            }
        };
        let out = f(&conn).map_err(err);
        let mut pool = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < 8 {
            pool.push(conn);
        }
        out
    }
}

impl Drop for SqliteStore {
    /// The writer finishes what was submitted, then stops; its connection,
    /// closed last (after the readers, which cannot checkpoint), folds the
    /// WAL back into the database file.
    fn drop(&mut self) {
        {
            let mut p = self.queue.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.closed = true;
            self.queue.changed.notify_all();
        }
        self.readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        info!("database {} closed", self.path.display());
    }
}

impl Store for SqliteStore {
    fn submit(&self, mut facts: Vec<Fact>) -> u64 {
        // An empty submission is a marker (a history read waits for what
        // was submitted before it): it gets a ticket of its own.
        let marker = facts.is_empty();
        facts.retain(|f| f.room.is_some()); // only room history is kept here
        if facts.is_empty() && !marker {
            return 0;
        }
        let mut p = self.queue.pending.lock().unwrap_or_else(|e| e.into_inner());
        while p.facts > MAX_PENDING && !p.closed {
            p = self
                .queue
                .changed
                .wait(p)
                .unwrap_or_else(|e| e.into_inner());
        }
        p.last_ticket += 1;
        let ticket = p.last_ticket;
        p.facts += facts.len();
        p.batches.push_back((ticket, facts));
        self.queue.changed.notify_all();
        ticket
    }

    fn history(
        &self,
        room: &str,
        query: HistoryQuery,
        limit: usize,
        events: bool,
    ) -> Result<History, StoreError> {
        let key = names::fold(room);
        self.read(|c| history(c, &key, query, limit, events))
    }

    /// Private logs are keyed `@a@b`, so they are one range of the index.
    fn private_targets(
        &self,
        account: &str,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT room, max(at_ms) FROM room_log
                 WHERE room >= '@' AND room < 'A' AND at_ms > ?1 AND at_ms < ?2
                   AND (substr(room, 1, length(?3)) = ?3 OR substr(room, -length(?4)) = ?4)
                 GROUP BY room",
            )?;
            let first = format!("@{account}@");
            let second = format!("@{account}");
            let from = from_ms.min(i64::MAX as u64) as i64;
            let to = to_ms.min(i64::MAX as u64) as i64;
            let rows = stmt.query_map(params![from, to, first, second], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            rows.collect()
        })?;
        let mut out: Vec<(String, u64)> = rows
            .iter()
            .filter_map(|(key, t)| {
                let peer = crate::proto::fact::private_peer(key, account)?;
                Some((peer.to_string(), *t as u64))
            })
            .collect();
        out.sort_by_key(|(_, t)| *t);
        out.truncate(limit);
        Ok(out)
    }

    fn room_seqs(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare("SELECT room, seq FROM room_seq")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
            rows.collect()
        })
    }

    fn watermark(&self) -> Option<Arc<Watermark>> {
        Some(self.watermark.clone())
    }
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    queue: Arc<Queue>,
    watermark: Arc<Watermark>,
    failures: mpsc::UnboundedSender<Vec<ConnId>>,
    retention: Retention,
    /// Rooms written since the last retention pass (or not yet trimmed
    /// to their limits).
    touched: HashSet<String>,
    last_retention: Instant,
    /// When age retention last looked at every room.
    last_sweep: Instant,
    /// Retention has more to delete: the writer goes on with it as soon
    /// as chat leaves it time.
    behind: bool,
}

impl Writer {
    fn run(mut self) {
        loop {
            let batches = {
                let mut p = self.queue.pending.lock().unwrap_or_else(|e| e.into_inner());
                while p.batches.is_empty() && !p.closed {
                    let wait = match self.behind {
                        true => Duration::ZERO,
                        false => RETENTION_EVERY,
                    };
                    let (guard, _) = self
                        .queue
                        .changed
                        .wait_timeout(p, wait)
                        .unwrap_or_else(|e| e.into_inner());
                    p = guard;
                    if p.batches.is_empty() {
                        drop(p);
                        self.enforce_retention();
                        p = self.queue.pending.lock().unwrap_or_else(|e| e.into_inner());
                    }
                }
                if p.batches.is_empty() {
                    return; // closed and drained
                }
                p.facts = 0;
                let batches: Vec<(u64, Vec<Fact>)> = p.batches.drain(..).collect();
                self.queue.changed.notify_all();
                batches
            };
            let Some(&(last, _)) = batches.last() else {
                continue;
            };
            let started = std::time::Instant::now();
            let written = self.write(&batches);
            let m = crate::metrics::metrics();
            m.store_commit_seconds
                .observe(started.elapsed().as_secs_f64());
            m.store_batch_facts
                .observe(batches.iter().map(|(_, f)| f.len()).sum::<usize>() as f64);
            match written {
                Ok(()) => self.watermark.finish(last, false),
                Err(e) => {
                    let n: usize = batches.iter().map(|(_, f)| f.len()).sum();
                    error!("database write failed, {n} facts not stored and not shown: {e}");
                    self.watermark.finish(last, true);
                    let senders = batches
                        .iter()
                        .flat_map(|(_, facts)| facts.iter().map(|f| f.by))
                        .collect::<HashSet<_>>();
                    let _ = self.failures.send(senders.into_iter().collect());
                }
            }
            if self.behind || self.last_retention.elapsed() >= RETENTION_EVERY {
                self.enforce_retention();
            }
        }
    }

    /// One transaction for every fact of these submissions.
    fn write(&mut self, batches: &[(u64, Vec<Fact>)]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        let mut last: HashMap<String, (String, u64)> = HashMap::new();
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO room_log (room, seq, id, at_ms, kind, fact)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for fact in batches.iter().flat_map(|(_, f)| f) {
                let Some(room) = &fact.room else { continue };
                let key = names::fold(room);
                let json = serde_json::to_string(fact)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                let kind = fact.body.kind();
                insert.execute(params![
                    key,
                    fact.seq as i64,
                    fact.id.0.to_be_bytes().as_slice(),
                    fact.at_ms as i64,
                    kind,
                    json
                ])?;
                let entry = last.entry(key).or_insert_with(|| (room.to_string(), 0));
                entry.1 = entry.1.max(fact.seq);
            }
            let mut seq = tx.prepare_cached(
                "INSERT INTO room_seq (room, name, seq) VALUES (?1, ?2, ?3)
                 ON CONFLICT (room) DO UPDATE SET name = ?2, seq = max(seq, ?3)",
            )?;
            for (key, (name, s)) in &last {
                seq.execute(params![key, name, *s as i64])?;
            }
        }
        tx.commit()?;
        self.touched.extend(last.into_keys());
        Ok(())
    }

    /// Deletes what retention no longer keeps, room by room, at most
    /// [`RETENTION_CHUNK`] rows of each room per call (`behind` says
    /// whether more is left).
    fn enforce_retention(&mut self) {
        self.last_retention = Instant::now();
        self.behind = false;
        let Retention { per_room, max_age } = self.retention.clone();
        if per_room == 0 && max_age.is_zero() {
            self.touched.clear();
            return;
        }
        let cutoff = now_ms().saturating_sub(max_age.as_millis() as u64) as i64;
        if !max_age.is_zero() && self.last_sweep.elapsed() >= AGE_SWEEP_EVERY {
            self.last_sweep = Instant::now();
            match self.rooms_with_lines_before(cutoff) {
                Ok(rooms) => self.touched.extend(rooms),
                Err(e) => warn!("history retention: {e}"),
            }
        }
        let chunk = RETENTION_CHUNK as i64;
        let mut more = Vec::new();
        let step: Vec<String> = self.touched.iter().take(RETENTION_ROOMS).cloned().collect();
        for room in &step {
            self.touched.remove(room);
        }
        for room in step {
            let run = || -> rusqlite::Result<usize> {
                let mut deleted = 0;
                if per_room > 0 {
                    deleted += self.conn.execute(
                        "DELETE FROM room_log WHERE room = ?1 AND seq IN (
                             SELECT seq FROM room_log WHERE room = ?1 AND seq <=
                                 (SELECT seq FROM room_seq WHERE room = ?1) - ?2
                             ORDER BY seq LIMIT ?3)",
                        params![room, per_room as i64, chunk],
                    )?;
                }
                if !max_age.is_zero() {
                    deleted += self.conn.execute(
                        "DELETE FROM room_log WHERE room = ?1 AND seq IN (
                             SELECT seq FROM room_log WHERE room = ?1 AND at_ms < ?2
                             ORDER BY seq LIMIT ?3)",
                        params![room, cutoff, chunk],
                    )?;
                }
                Ok(deleted)
            };
            match run() {
                Ok(n) if n >= RETENTION_CHUNK => more.push(room),
                Ok(_) => {}
                Err(e) => warn!("history retention for {room}: {e}"),
            }
        }
        self.touched.extend(more);
        self.behind = !self.touched.is_empty();
        if !self.behind {
            self.touched = HashSet::new(); // not held at its high-water size
        }
    }

    /// Rooms that have lines older than `cutoff` (ms).
    fn rooms_with_lines_before(&self, cutoff: i64) -> rusqlite::Result<Vec<String>> {
        let mut stmt = self.conn.prepare(
            "SELECT room FROM room_seq WHERE EXISTS
                 (SELECT 1 FROM room_log WHERE room_log.room = room_seq.room AND at_ms < ?1)",
        )?;
        let rows = stmt.query_map([cutoff], |r| r.get(0))?;
        rows.collect()
    }
}

/// The sequence number of message `id` in `room`, if it is there.
fn seq_of(c: &Connection, room: &str, id: &MsgId) -> rusqlite::Result<Option<i64>> {
    c.query_row(
        "SELECT seq FROM room_log WHERE id = ?1 AND room = ?2",
        params![id.0.to_be_bytes().as_slice(), room],
        |r| r.get(0),
    )
    .optional()
}

/// The first sequence number at or after an anchor (facts before the
/// anchor have smaller ones). An id not in the room counts as its time.
fn seq_at(c: &Connection, room: &str, a: &Anchor) -> rusqlite::Result<i64> {
    let t = match a {
        Anchor::Seq(n) => return Ok(*n as i64),
        Anchor::Id(id) => match seq_of(c, room, id)? {
            Some(s) => return Ok(s),
            None => id.millis(),
        },
        Anchor::Time(t) => *t,
    };
    let found: Option<i64> = c
        .query_row(
            "SELECT seq FROM room_log WHERE room = ?1 AND at_ms >= ?2
             ORDER BY at_ms, seq LIMIT 1",
            params![room, t as i64],
            |r| r.get(0),
        )
        .optional()?;
    Ok(found.unwrap_or(i64::MAX))
}

/// The last sequence number at or before an anchor.
fn seq_through(c: &Connection, room: &str, a: &Anchor) -> rusqlite::Result<i64> {
    if let Anchor::Seq(n) = a {
        return Ok(*n as i64);
    }
    if let Anchor::Id(id) = a {
        if let Some(s) = seq_of(c, room, id)? {
            return Ok(s);
        }
    }
    let t = match a {
        Anchor::Id(id) => id.millis(),
        Anchor::Time(t) | Anchor::Seq(t) => *t,
    };
    let found: Option<i64> = c
        .query_row(
            "SELECT seq FROM room_log WHERE room = ?1 AND at_ms <= ?2
             ORDER BY at_ms DESC, seq DESC LIMIT 1",
            params![room, t as i64],
            |r| r.get(0),
        )
        .optional()?;
    Ok(found.unwrap_or(0))
}

/// What one history read looks at.
struct Scope<'a> {
    c: &'a Connection,
    room: &'a str,
    /// Joins, parts and the like too, not only messages and notices.
    events: bool,
}

/// Facts with `lo < seq < hi`, the newest `limit` of them or the oldest.
fn range(s: &Scope, lo: i64, hi: i64, limit: usize, newest: bool) -> rusqlite::Result<History> {
    let sql = match newest {
        true => {
            "SELECT fact FROM room_log WHERE room = ?1 AND seq > ?2 AND seq < ?3
                 AND (?5 OR kind IN ('said', 'noticed', 'private')) ORDER BY seq DESC LIMIT ?4"
        }
        false => {
            "SELECT fact FROM room_log WHERE room = ?1 AND seq > ?2 AND seq < ?3
                  AND (?5 OR kind IN ('said', 'noticed', 'private')) ORDER BY seq LIMIT ?4"
        }
    };
    let (c, room) = (s.c, s.room);
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map(params![room, lo, hi, limit as i64 + 1, s.events], |r| {
        r.get::<_, String>(0)
    })?;
    let mut facts = Vec::new();
    for json in rows {
        match serde_json::from_str::<Fact>(&json?) {
            Ok(f) => facts.push(f),
            Err(e) => warn!("history of {room}: unreadable row skipped: {e}"),
        }
    }
    let more = facts.len() > limit;
    facts.truncate(limit);
    if newest {
        facts.reverse();
    }
    Ok(History { facts, more })
}

fn history(
    c: &Connection,
    room: &str,
    query: HistoryQuery,
    limit: usize,
    events: bool,
) -> rusqlite::Result<History> {
    let limit = limit.max(1);
    let s = Scope { c, room, events };
    match query {
        HistoryQuery::Latest(None) => range(&s, 0, i64::MAX, limit, true),
        HistoryQuery::Latest(Some(a)) => {
            range(&s, seq_through(c, room, &a)?, i64::MAX, limit, true)
        }
        HistoryQuery::Before(a) => range(&s, 0, seq_at(c, room, &a)?, limit, true),
        HistoryQuery::After(a) => range(&s, seq_through(c, room, &a)?, i64::MAX, limit, false),
        HistoryQuery::Around(a) => {
            // Half before the anchor, half from it on; a side that has
            // fewer leaves its share to the other. `more`: either side
            // has lines beyond those returned.
            let centre = seq_at(c, room, &a)?;
            let mut before = range(&s, 0, centre, limit, true)?;
            let mut after = range(&s, centre - 1, i64::MAX, limit, false)?;
            let (b, n) = (before.facts.len(), after.facts.len());
            let take_before = b.min((limit / 2).max(limit.saturating_sub(n)));
            let take_after = n.min(limit - take_before);
            let more = before.more || after.more || take_before < b || take_after < n;
            before.facts.drain(..b - take_before);
            after.facts.truncate(take_after);
            before.facts.extend(after.facts);
            Ok(History {
                facts: before.facts,
                more,
            })
        }
        HistoryQuery::Between(a, b) => {
            let forward = seq_at(c, room, &a)? <= seq_at(c, room, &b)?;
            let (first, second) = if forward { (a, b) } else { (b, a) };
            let lo = seq_through(c, room, &first)?;
            let hi = seq_at(c, room, &second)?;
            range(&s, lo, hi.max(lo), limit, !forward)
        }
    }
}

/// `natter db backup`: a consistent copy of a database in use (SQLite's
/// online backup), written to `to`.
pub fn backup(from: &Path, to: &Path) -> Result<(), StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY;
    let src = Connection::open_with_flags(from, flags)
        .map_err(|e| StoreError(format!("{}: {e}", from.display())))?;
    let copy = || -> rusqlite::Result<()> {
        let mut dst = Connection::open(to)?;
        // All pages in one step, under one read transaction: a snapshot
        // that the server's commits meanwhile neither block (WAL) nor
        // restart, as they would between smaller steps.
        let backup = rusqlite::backup::Backup::new(&src, &mut dst)?;
        match backup.step(-1)? {
            rusqlite::backup::StepResult::Done => Ok(()),
            _ => Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                Some("the database stayed busy".into()),
            )),
        }
    };
    copy().map_err(|e| StoreError(format!("backup to {}: {e}", to.display())))
}

/// `natter db check`: SQLite's integrity check; `Ok` lists what it found
/// (`["ok"]` when all is well).
pub fn check(path: &Path) -> Result<Vec<String>, StoreError> {
    let shown = path.display();
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY;
    let run = || -> rusqlite::Result<Vec<String>> {
        let c = Connection::open_with_flags(path, flags)?;
        let mut stmt = c.prepare("PRAGMA integrity_check")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect()
    };
    run().map_err(|e| StoreError(format!("{shown}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{FactBody, MsgId};
    use crate::store::memory::select;

    /// Line `n` of `room`: seq `n`, said at `1000 + 10n` ms, with an id of that time.
    fn said(room: &str, n: u64) -> Fact {
        let at_ms = 1000 + 10 * n;
        Fact {
            id: MsgId((u128::from(at_ms) << 80) | (0x7 << 76) | u128::from(n)),
            at_ms,
            by: ConnId::new(0, 1),
            source: "a!u@h".into(),
            room: Some(room.into()),
            seq: n,
            body: FactBody::Said {
                from: "a".into(),
                text: format!("line {n}").into(),
                action: false,
            },
        }
    }

    fn writer(path: &Path, retention: Retention) -> Writer {
        let (failures, _) = mpsc::unbounded_channel();
        Writer {
            conn: open_writer(path, 0).unwrap(),
            queue: Arc::new(Queue {
                pending: Mutex::new(Pending::default()),
                changed: Condvar::new(),
            }),
            watermark: Arc::new(Watermark::default()),
            failures,
            retention,
            touched: HashSet::new(),
            last_retention: Instant::now(),
            last_sweep: Instant::now(),
            behind: false,
        }
    }

    fn seqs(c: &Connection, room: &str) -> Vec<u64> {
        let mut stmt = c
            .prepare("SELECT seq FROM room_log WHERE room = ?1 ORDER BY seq")
            .unwrap();
        let rows = stmt.query_map([room], |r| r.get::<_, i64>(0)).unwrap();
        rows.map(|s| s.unwrap() as u64).collect()
    }

    #[test]
    fn retention_trims_a_long_room_a_chunk_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let keep = Retention {
            per_room: 10,
            max_age: Duration::ZERO,
        };
        let mut w = writer(&dir.path().join("t.db"), keep);
        let n = 2 * RETENTION_CHUNK as u64 + 500;
        let facts = (1..=n).map(|i| said("lobby", i)).collect();
        let mut small = said("small", 1);
        small.id = MsgId(small.id.0 + (1 << 40)); // ids are unique across rooms
        w.write(&[(1, facts), (2, vec![small])]).unwrap();
        w.enforce_retention();
        assert!(w.behind, "more to do after one step");
        assert_eq!(seqs(&w.conn, "lobby").len(), n as usize - RETENTION_CHUNK);
        assert_eq!(seqs(&w.conn, "small"), [1], "under its limit: kept");
        let mut steps = 1;
        while w.behind {
            w.enforce_retention();
            steps += 1;
        }
        assert_eq!(steps, 3);
        assert_eq!(seqs(&w.conn, "lobby"), (n - 9..=n).collect::<Vec<_>>());
    }

    #[test]
    fn age_retention_reaches_rooms_nobody_writes_to() {
        let dir = tempfile::tempdir().unwrap();
        let keep = Retention {
            per_room: 0,
            max_age: Duration::from_secs(3600),
        };
        let mut w = writer(&dir.path().join("t.db"), keep);
        let mut fresh = said("quiet", 3);
        fresh.at_ms = now_ms();
        w.write(&[(1, vec![said("quiet", 1), said("quiet", 2), fresh])])
            .unwrap();
        w.touched.clear(); // as if written long ago, before a restart
        w.enforce_retention();
        assert_eq!(seqs(&w.conn, "quiet"), [1, 2, 3], "not swept yet");
        w.last_sweep = Instant::now() - AGE_SWEEP_EVERY;
        w.enforce_retention();
        assert_eq!(seqs(&w.conn, "quiet"), [3], "old lines expired");
    }

    /// The SQLite store answers every selector as the in-memory one does.
    #[test]
    fn history_selectors_agree_with_the_memory_store() {
        let dir = tempfile::tempdir().unwrap();
        let all = Retention {
            per_room: 0,
            max_age: Duration::ZERO,
        };
        let mut w = writer(&dir.path().join("t.db"), all);
        let facts: Vec<Fact> = (1..=20).map(|i| said("r", i)).collect();
        w.write(&[(1, facts.clone())]).unwrap();
        let refs: Vec<&Fact> = facts.iter().collect();
        let id = |n: u64| Anchor::Id(said("r", n).id);
        let mut anchors = vec![Anchor::Time(0), Anchor::Time(u64::MAX >> 1)];
        for n in [1, 2, 7, 10, 19, 20] {
            anchors.extend([
                id(n),
                Anchor::Time(1000 + 10 * n),
                Anchor::Time(1005 + 10 * n),
            ]);
        }
        let mut queries = vec![HistoryQuery::Latest(None)];
        for &a in &anchors {
            queries.extend([
                HistoryQuery::Latest(Some(a)),
                HistoryQuery::Before(a),
                HistoryQuery::After(a),
                HistoryQuery::Around(a),
            ]);
            for &b in &anchors {
                queries.push(HistoryQuery::Between(a, b));
            }
        }
        let ids = |h: &History| h.facts.iter().map(|f| f.seq).collect::<Vec<_>>();
        for q in queries {
            for limit in [1, 2, 3, 5, 50] {
                let want = select(&refs, q, limit);
                let got = history(&w.conn, "r", q, limit, false).unwrap();
                assert_eq!(
                    (ids(&got), got.more),
                    (ids(&want), want.more),
                    "{q:?} limit {limit}"
                );
            }
        }
    }
}
