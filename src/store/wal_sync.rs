//! The fsync pipeline behind `db_sync = full`: the writer commits with
//! SQLite's `synchronous = NORMAL` (its `COMMIT` writes the WAL and does
//! not wait for the disk) and hands each commit to a thread of its own,
//! which calls `fdatasync` on the `-wal` file in a loop and releases a
//! commit's lines only when a sync that *started after its `COMMIT`
//! returned* has completed. Meanwhile the writer inserts and commits the
//! next batches: the disk's flush and the next transaction overlap
//! instead of taking turns, and one flush covers every commit before it.
//!
//! Why nothing released can be lost on power loss. A released line's WAL
//! frames were written (`pwrite`) before its `COMMIT` returned, so the
//! `fdatasync` that started afterwards put them on the disk, together with
//! every frame and the WAL header written before them (any descriptor of
//! the file flushes the inode's pages). After a crash SQLite replays the
//! WAL's valid frames: those, being on disk with their checksums, are
//! found. The frames leave the WAL only through a checkpoint, and in WAL
//! mode `synchronous = NORMAL` syncs as `FULL` does around one: the WAL
//! before its frames are copied into the database file, the database file
//! before the copy is recorded as done; only then may a writer restart
//! the WAL from its beginning, and the new header is synced before any
//! frame after it (SQLite's `syncHeader`). So a released line is always
//! either in synced WAL frames or in the synced database file. Committed
//! frames are never rewritten in place before such a restart.
//!
//! Readers see a commit as soon as it is in the WAL, before its sync:
//! [`WalSync::wait_for_reads`] makes a history read wait, after reading,
//! until every commit begun before its end is durable, so no history
//! answer shows a line the disk does not hold either.
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use tracing::error;

use super::sqlite::{Batch, Release};

/// How the sync thread flushes the WAL: `fdatasync`, or in tests a gate
/// that holds it.
pub(super) type SyncFn = Arc<dyn Fn(&File) -> io::Result<()> + Send + Sync>;

/// Facts committed and waiting for their sync past which the writer
/// waits (a disk slower than the commits cannot grow the queue for ever).
const MAX_WAITING: usize = 200_000;

/// One commit handed over by the writer, in order.
pub(super) struct Committed {
    /// Its number from [`WalSync::begin`].
    pub number: u64,
    /// What it held; released (or refused) together.
    pub batches: Vec<Batch>,
    /// Its transaction failed: nothing to sync, refused in its turn.
    pub failed: bool,
}

#[derive(Default)]
struct State {
    waiting: VecDeque<Committed>,
    /// Facts in `waiting`.
    waiting_facts: usize,
    /// Commits begun (numbered from 1).
    begun: u64,
    /// Every commit up to this number is released (durable or failed).
    released: u64,
    /// The thread waits for work: a hand-over must wake it.
    idle: bool,
    /// Readers and the writer waiting on `released`.
    watchers: usize,
    closing: bool,
    stopped: bool,
}

/// The pipeline's shared half: the writer hands commits over, readers
/// wait for them, the sync thread releases them.
pub(super) struct WalSync {
    state: Mutex<State>,
    /// The sync thread waits on it for work.
    work: Condvar,
    /// Readers (and a writer too far ahead) wait on it for releases.
    released: Condvar,
    /// Syncs completed (test hook, and cheap to keep).
    syncs: AtomicU64,
}

impl WalSync {
    /// Opens the WAL beside `db` (it must exist: the writer's connection
    /// made it) and starts the sync thread, which releases through `release`.
    pub(super) fn start(
        db: &Path,
        sync: SyncFn,
        release: Release,
    ) -> io::Result<(Arc<WalSync>, std::thread::JoinHandle<()>)> {
        let mut name = db.as_os_str().to_owned();
        name.push("-wal");
        let wal = PathBuf::from(name);
        let file = File::open(&wal)?;
        let shared = Arc::new(WalSync {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            released: Condvar::new(),
            syncs: AtomicU64::new(0),
        });
        let run = {
            let shared = shared.clone();
            move || shared.run(wal, file, sync, release)
        };
        let thread = std::thread::Builder::new()
            .name("natter-db-sync".into())
            .spawn(run)?;
        Ok((shared, thread))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The writer is about to commit (before its transaction can be seen):
    /// the commit's number.
    pub(super) fn begin(&self) -> u64 {
        let mut s = self.lock();
        s.begun += 1;
        s.begun
    }

    /// The writer's `COMMIT` returned (or the transaction failed): the
    /// commit waits for a sync that starts from now on.
    pub(super) fn hand_over(&self, c: Committed) {
        let facts: usize = c.batches.iter().map(|(_, _, f)| f.len()).sum();
        let mut s = self.lock();
        while s.waiting_facts > MAX_WAITING && !s.stopped {
            s.watchers += 1;
            s = self.released.wait(s).unwrap_or_else(|e| e.into_inner());
            s.watchers -= 1;
        }
        s.waiting_facts += facts;
        s.waiting.push_back(c);
        if s.idle {
            self.work.notify_one();
        }
    }

    /// Waits until every commit begun so far is released: what a read
    /// that just ended could see is then on disk.
    pub(super) fn wait_for_reads(&self) {
        let mut s = self.lock();
        let upto = s.begun;
        while s.released < upto && !s.stopped {
            s.watchers += 1;
            s = self.released.wait(s).unwrap_or_else(|e| e.into_inner());
            s.watchers -= 1;
        }
    }

    /// Syncs completed so far.
    #[cfg(test)]
    pub(super) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Acquire)
    }

    /// Asks the thread to stop once it has released what was handed over.
    pub(super) fn close(&self) {
        let mut s = self.lock();
        s.closing = true;
        self.work.notify_one();
    }

    fn run(&self, wal: PathBuf, mut file: File, sync: SyncFn, release: Release) {
        loop {
            // Everything taken here was handed over after its COMMIT
            // returned, so the sync below, started later, covers it.
            let taken: Vec<Committed> = {
                let mut s = self.lock();
                while s.waiting.is_empty() && !s.closing {
                    s.idle = true;
                    s = self.work.wait(s).unwrap_or_else(|e| e.into_inner());
                    s.idle = false;
                }
                if s.waiting.is_empty() {
                    s.stopped = true;
                    self.released.notify_all();
                    return;
                }
                s.waiting_facts = 0;
                s.waiting.drain(..).collect()
            };
            let synced = match taken.iter().all(|c| c.failed) {
                true => Ok(()),
                false => reopened(&wal, &mut file).and_then(|()| {
                    let started = Instant::now();
                    let r = sync(&file);
                    crate::metrics::metrics()
                        .store_fsync_seconds
                        .observe(started.elapsed().as_secs_f64());
                    r
                }),
            };
            self.syncs.fetch_add(1, Ordering::AcqRel);
            if let Err(e) = &synced {
                let facts: usize = taken
                    .iter()
                    .flat_map(|c| &c.batches)
                    .map(|(_, _, f)| f.len())
                    .sum();
                error!(
                    "database fsync of {} failed, {facts} committed facts not known to be \
                     on disk and not shown: {e}",
                    wal.display()
                );
            }
            let last = taken.last().map_or(0, |c| c.number);
            for c in taken {
                release.release(&c.batches, c.failed || synced.is_err());
            }
            let mut s = self.lock();
            s.released = s.released.max(last);
            if s.watchers > 0 {
                self.released.notify_all();
            }
        }
    }
}

/// Opens the WAL again if the file at its path is no longer the one open
/// (SQLite deletes and recreates it only when every connection closed, so
/// this is a safeguard). A WAL that is gone keeps the open one: nothing is
/// written to it any more, and a checkpoint synced its frames into the
/// database file before deleting it.
fn reopened(wal: &Path, file: &mut File) -> io::Result<()> {
    let on_path = match std::fs::metadata(wal) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let open = file.metadata()?;
    if (open.dev(), open.ino()) != (on_path.dev(), on_path.ino()) {
        *file = File::open(wal)?;
    }
    Ok(())
}
