//! Accounts and registered rooms: implementations of the hub's
//! [`Accounts`] seam, and the password work they need.
//!
//! * [`SqliteAccounts`] keeps them in the database file (tables `account`,
//!   `registered_room`, `read_marker` and `account_room`, the rooms an
//!   account keeps for `rejoin_on_login`). One thread of its own
//!   writes, in order: new accounts (the caller waits for the answer) and
//!   room states (queued: the hub saves under the chat lock). Dropping the
//!   store finishes the queue before it returns.
//! * [`MemoryAccounts`] keeps them in memory (`--db off`): they are gone
//!   when the server stops.
//!
//! Passwords are kept as an argon2id hash (argon2's default parameters:
//! 19 MiB, 2 passes) and as SCRAM-SHA-256 credentials (PBKDF2, 4096
//! rounds), both salted. [`hash`] and [`verify`] are slow on purpose:
//! call them on a blocking thread.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tracing::{error, warn};

use crate::hub::{
    names, AccountRecord, Accounts, Registry, RememberedRoom, RoomMemory, RoomRecord, StoreError,
};
use crate::proto::{now_ms, scram};

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// A new account named `name` for `password`: its argon2id hash and its
/// SCRAM credentials, each with a fresh salt. Slow (tens of ms).
pub fn hash(name: &str, password: &str) -> Result<AccountRecord, StoreError> {
    let hash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| StoreError(format!("cannot hash a password: {e}")))?
        .to_string();
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| StoreError(format!("no randomness: {e}")))?;
    let scram = scram::derive(password.as_bytes(), &salt, scram::ITERATIONS);
    Ok(AccountRecord {
        name: name.to_string(),
        hash,
        scram,
        created_ms: now_ms(),
    })
}

/// Whether `password` is the account's. Slow (tens of ms).
pub fn verify(account: &AccountRecord, password: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), account.hash.as_str())
        .is_ok()
}

/// Accounts in memory (`--db off`).
#[derive(Default)]
pub struct MemoryAccounts {
    accounts: Mutex<HashMap<String, AccountRecord>>,
}

impl Accounts for MemoryAccounts {
    fn load(&self) -> Result<Registry, StoreError> {
        Ok(Registry::default())
    }

    fn create(&self, account: &AccountRecord) -> Result<bool, StoreError> {
        let mut map = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let key = names::fold(&account.name);
        if map.contains_key(&key) {
            return Ok(false);
        }
        map.insert(key, account.clone());
        Ok(true)
    }

    fn get(&self, name: &str) -> Result<Option<AccountRecord>, StoreError> {
        let map = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        Ok(map.get(&names::fold(name)).cloned())
    }

    /// The hub's own copy is the only one: nothing to do.
    fn save_room(&self, _room: RoomRecord) {}
}

/// What the accounts writer does, in order.
enum Job {
    Create(AccountRecord, mpsc::Sender<Result<bool, StoreError>>),
    SaveRoom(RoomRecord),
    /// An account's read marker of a target: (account, target, timestamp).
    SaveMarker(String, String, String),
    /// A change to the rooms an account keeps.
    RememberRoom(RoomMemory),
    /// Answered once the jobs before it are done.
    Flush(mpsc::Sender<()>),
}

/// Accounts in the database file (migrated by [`super::sqlite`]).
pub struct SqliteAccounts {
    path: PathBuf,
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    reader: Mutex<Option<Connection>>,
}

impl SqliteAccounts {
    /// Opens the accounts of the database at `path`, which
    /// [`SqliteStore::open`](super::sqlite::SqliteStore::open) has already
    /// created and migrated.
    pub fn open(path: &Path) -> Result<SqliteAccounts, StoreError> {
        let shown = path.display();
        let conn = Connection::open(path).map_err(|e| StoreError(format!("{shown}: {e}")))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| StoreError(format!("{shown}: {e}")))?;
        let (jobs, rx) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("natter-accounts".into())
            .spawn(move || write_jobs(conn, rx))
            .map_err(err)?;
        Ok(SqliteAccounts {
            path: path.to_path_buf(),
            jobs: Some(jobs),
            writer: Some(writer),
            reader: Mutex::new(None),
        })
    }

    /// Runs `f` on the reader connection.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let mut slot = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let c = Connection::open_with_flags(&self.path, flags).map_err(err)?;
            c.busy_timeout(Duration::from_secs(5)).map_err(err)?;
            *slot = Some(c);
        }
        match slot.as_ref() {
            Some(c) => f(c).map_err(err),
            None => Err(StoreError("no database connection".into())),
        }
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        match &self.jobs {
            Some(jobs) => jobs
                .send(job)
                .map_err(|_| StoreError("the accounts writer has stopped".into())),
            None => Err(StoreError("the accounts store is closed".into())),
        }
    }
}

impl Drop for SqliteAccounts {
    /// Writes what is queued, then returns. The reader closes first: a
    /// read-only connection closed last could not fold the WAL back into
    /// the database file, the writer's can.
    fn drop(&mut self) {
        self.reader.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.jobs = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// The writer thread: one job at a time, each in its own transaction.
/// When the store closes it checkpoints: if it is the file's last
/// connection, closing then folds the WAL back into the database file and
/// removes it (a clean stop leaves the file whole on its own).
fn write_jobs(conn: Connection, jobs: mpsc::Receiver<Job>) {
    for job in &jobs {
        match job {
            Job::Create(account, reply) => {
                let _ = reply.send(create(&conn, &account));
            }
            Job::SaveRoom(room) => {
                if let Err(e) = save_room(&conn, &room) {
                    error!("registered room {} not saved: {e}", room.name);
                }
            }
            Job::SaveMarker(account, target, at) => {
                let saved = conn.execute(
                    "INSERT INTO read_marker (account, target, at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (account, target) DO UPDATE SET at = max(at, ?3)",
                    params![account, target, at],
                );
                if let Err(e) = saved {
                    error!("read marker of {account} not saved: {e}");
                }
            }
            Job::RememberRoom(change) => {
                if let Err(e) = remember_room(&conn, &change) {
                    error!("rooms kept for an account not saved: {e}");
                }
            }
            Job::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        warn!("accounts: checkpoint on closing: {e}");
    }
}

fn create(conn: &Connection, a: &AccountRecord) -> Result<bool, StoreError> {
    let scram = serde_json::to_string(&a.scram).map_err(err)?;
    let n = conn
        .execute(
            "INSERT OR IGNORE INTO account (key, name, hash, scram, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                names::fold(&a.name),
                a.name,
                a.hash,
                scram,
                a.created_ms as i64
            ],
        )
        .map_err(err)?;
    Ok(n == 1)
}

fn remember_room(conn: &Connection, change: &RoomMemory) -> rusqlite::Result<usize> {
    match change {
        RoomMemory::Keep(r) => conn.execute(
            "INSERT INTO account_room (account, room, name, key, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (account, room) DO UPDATE SET name = ?3, key = ?4",
            params![r.account, r.room, r.name, r.key, now_ms() as i64],
        ),
        RoomMemory::Forget { account, room } => conn.execute(
            "DELETE FROM account_room WHERE account = ?1 AND room = ?2",
            params![account, room],
        ),
    }
}

fn save_room(conn: &Connection, room: &RoomRecord) -> Result<(), StoreError> {
    let state = serde_json::to_string(room).map_err(err)?;
    conn.execute(
        "INSERT INTO registered_room (key, state) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET state = ?2",
        params![room.key, state],
    )
    .map_err(err)?;
    Ok(())
}

impl Accounts for SqliteAccounts {
    fn flush(&self) {
        let (done, flushed) = mpsc::channel();
        if let Some(jobs) = &self.jobs {
            if jobs.send(Job::Flush(done)).is_ok() {
                let _ = flushed.recv();
            }
        }
    }

    fn load(&self) -> Result<Registry, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare("SELECT name FROM account")?;
            let accounts = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut stmt = c.prepare("SELECT key, state FROM registered_room")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut rooms = Vec::new();
            for (key, state) in rows {
                match serde_json::from_str::<RoomRecord>(&state) {
                    Ok(r) => rooms.push(r),
                    Err(e) => warn!("registered room {key}: unreadable, skipped: {e}"),
                }
            }
            let mut stmt = c.prepare("SELECT account, target, at FROM read_marker")?;
            let markers = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut stmt = c.prepare(
                "SELECT account, room, name, key FROM account_room ORDER BY account, at_ms, room",
            )?;
            let remembered = stmt
                .query_map([], |r| {
                    Ok(RememberedRoom {
                        account: r.get(0)?,
                        room: r.get(1)?,
                        name: r.get(2)?,
                        key: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Registry {
                accounts,
                rooms,
                markers,
                remembered,
            })
        })
    }

    fn create(&self, account: &AccountRecord) -> Result<bool, StoreError> {
        let (reply, answer) = mpsc::channel();
        self.send(Job::Create(account.clone(), reply))?;
        answer
            .recv()
            .map_err(|_| StoreError("the accounts writer has stopped".into()))?
    }

    fn get(&self, name: &str) -> Result<Option<AccountRecord>, StoreError> {
        let key = names::fold(name);
        let row = self.read(|c| {
            c.query_row(
                "SELECT name, hash, scram, created_ms FROM account WHERE key = ?1",
                params![key],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                },
            )
            .optional()
        })?;
        let Some((name, hash, scram, created_ms)) = row else {
            return Ok(None);
        };
        let scram = serde_json::from_str(&scram)
            .map_err(|e| StoreError(format!("account {name}: unreadable credentials: {e}")))?;
        Ok(Some(AccountRecord {
            name,
            hash,
            scram,
            created_ms: created_ms as u64,
        }))
    }

    fn save_room(&self, room: RoomRecord) {
        if let Err(e) = self.send(Job::SaveRoom(room)) {
            error!("registered room not saved: {e}");
        }
    }

    fn save_marker(&self, account: &str, target: &str, at: &str) {
        let job = Job::SaveMarker(account.into(), target.into(), at.into());
        if let Err(e) = self.send(job) {
            error!("read marker not saved: {e}");
        }
    }

    fn remember_room(&self, change: &RoomMemory) {
        if let Err(e) = self.send(Job::RememberRoom(change.clone())) {
            error!("rooms kept for an account not saved: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_password() {
        let a = hash("alice", "correct horse").unwrap();
        assert!(a.hash.starts_with("$argon2id$"));
        assert!(verify(&a, "correct horse"));
        assert!(!verify(&a, "correct horsf"));
        assert!(!format!("{a:?}").contains("argon2"), "no hash in logs");
    }

    #[test]
    fn sqlite_accounts_and_rooms_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.db");
        let retention = super::super::sqlite::Retention::KEEP_ALL;
        let (store, _) = super::super::sqlite::SqliteStore::open(
            &path,
            0,
            crate::config::DbSync::Full,
            retention,
        )
        .unwrap();
        let accounts = SqliteAccounts::open(&path).unwrap();
        let a = hash("Alice", "pw12345678").unwrap();
        assert!(accounts.create(&a).unwrap());
        assert!(!accounts.create(&hash("alice", "x").unwrap()).unwrap());
        let room = RoomRecord {
            key: "rust".into(),
            name: "Rust".into(),
            founder: "Alice".into(),
            registered_ms: 1,
            created_ms: 2,
            topic: None,
            modes: Default::default(),
            bans: Vec::new(),
            excepts: vec![crate::hub::BanRecord {
                mask: "*!*@friend".into(),
                set_by: "Alice".into(),
                set_at_ms: 3,
            }],
            invexes: Vec::new(),
            seq: 0,
        };
        accounts.save_room(room.clone());
        accounts.save_marker("alice", "#rust", "2021-01-01T00:00:00.000Z");
        accounts.save_marker("alice", "#rust", "2020-01-01T00:00:00.000Z");
        let kept = |room: &str, key: Option<&str>| RememberedRoom {
            account: "alice".into(),
            room: room.to_lowercase(),
            name: room.into(),
            key: key.map(String::from),
        };
        for r in [kept("Rust", None), kept("Go", None), kept("Zig", None)] {
            accounts.remember_room(&RoomMemory::Keep(r));
        }
        accounts.remember_room(&RoomMemory::Keep(kept("Rust", Some("k"))));
        accounts.remember_room(&RoomMemory::Forget {
            account: "alice".into(),
            room: "go".into(),
        });
        drop(accounts);
        drop(store);
        let accounts = SqliteAccounts::open(&path).unwrap();
        let reg = accounts.load().unwrap();
        assert_eq!(reg.accounts, ["Alice"]);
        assert_eq!(reg.rooms, [room]);
        let newest = "2021-01-01T00:00:00.000Z".to_string();
        let marker = ("alice".to_string(), "#rust".to_string(), newest);
        assert_eq!(reg.markers, [marker], "a marker only moves forward");
        let rooms = [kept("Rust", Some("k")), kept("Zig", None)];
        assert_eq!(reg.remembered, rooms, "kept rooms, updated and forgotten");
        let got = accounts.get("ALICE").unwrap().unwrap();
        assert_eq!(got.scram, a.scram);
        assert!(verify(&got, "pw12345678"));
        assert!(accounts.get("bob").unwrap().is_none());
    }
}
