//! Accounts and registered rooms of a cluster, kept in JetStream KV
//! buckets ([`subjects::ACCOUNTS`], [`subjects::ROOMS`]) instead of each
//! node's SQLite file, so every node sees the same ones.
//!
//! * Registering an account, or a room, is an atomic create of its key:
//!   two nodes racing for one name get one success between them (the
//!   founder told no gets the usual refusal).
//! * A registered room is saved by the node where it changed, once the
//!   change comes back from the stream: its record carries that stream
//!   sequence. It is written with the revision this node last saw of it
//!   (create for a new one); a write that meets another node's reads the
//!   record there, and is dropped if that one shows a later change (or the
//!   same: the first registration of a room wins), else written again over
//!   it. So two nodes changing one room at once leave the record of the
//!   change that came last in the stream, whatever order they write in.
//! * Read markers and the rooms accounts are put back in on login
//!   (`rejoin_on_login`) are kept in a third bucket ([`subjects::KEPT`]),
//!   so a session on any node finds them: a marker only moves forward
//!   (written with compare-and-set), a room kept is a key, one forgotten
//!   its deletion.
//! * Each node watches the buckets: it reads them whole at start (the
//!   [`Registry`]) and hands every later change to its hub
//!   ([`Incoming::Account`], [`Incoming::Room`], [`Incoming::Marker`],
//!   [`Incoming::Remembered`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::subjects::{self, KeptKey, ACCOUNTS, KEPT, ROOMS};
use crate::hub::{
    names, AccountRecord, Accounts, Incoming, Registry, RememberedRoom, RoomMemory, RoomRecord,
    StoreError,
};

/// The accounts store of a node in a cluster.
pub struct NatsAccounts {
    /// The cluster runtime, where the KV requests run.
    rt: tokio::runtime::Handle,
    accounts: kv::Store,
    timeout: Duration,
    rooms: kv::Store,
    saves: mpsc::UnboundedSender<Save>,
    /// What this node has seen saved of each registered room (shared with
    /// the tasks that watch and write the rooms bucket).
    saved: Saved,
    /// What the buckets held at start, taken by [`Accounts::load`].
    registry: Mutex<Option<Registry>>,
}

/// What the room writer is asked to do, in order.
enum Save {
    Room(Box<RoomRecord>),
    /// A key of the [`KEPT`] bucket: its new value (`None`: delete it);
    /// `forward`: written only over a smaller value (a read marker).
    Kept {
        key: String,
        value: Option<Vec<u8>>,
        forward: bool,
    },
    /// Everything before this is written: say so.
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// What a node has seen saved of each registered room's key.
#[derive(Debug, Default)]
struct SeenSaved {
    /// The last revision seen of the key.
    revisions: HashMap<String, u64>,
    /// The highest change sequence seen saved under the key.
    seqs: HashMap<String, u64>,
}

impl SeenSaved {
    /// Revision `rev` of `key` was seen (revisions only go forward).
    fn revision(&mut self, key: &str, rev: u64) {
        let r = self.revisions.entry(key.to_string()).or_default();
        *r = (*r).max(rev);
    }
}

/// [`SeenSaved`], shared by the node's accounts store and its tasks.
type Saved = Arc<Mutex<SeenSaved>>;

impl NatsAccounts {
    /// Makes sure the buckets exist, reads them, and starts watching them
    /// and writing room saves (on the current runtime: the cluster's).
    pub(super) async fn open(
        js: &jetstream::Context,
        client: async_nats::Client,
        timeout: Duration,
        pause: Duration,
        to_hub: mpsc::Sender<Incoming>,
    ) -> anyhow::Result<NatsAccounts> {
        let accounts = super::nats::ensure_bucket(js, ACCOUNTS, Duration::ZERO).await?;
        let rooms = super::nats::ensure_bucket(js, ROOMS, Duration::ZERO).await?;
        let kept = super::nats::ensure_bucket(js, KEPT, Duration::ZERO).await?;
        let (known, account_watch) = current(&accounts, timeout)
            .await
            .context("cannot read the accounts bucket")?;
        let (saved_rooms, room_watch) = current(&rooms, timeout)
            .await
            .context("cannot read the registered rooms bucket")?;
        let (kept_now, kept_watch) = current(&kept, timeout)
            .await
            .context("cannot read the read markers and remembered rooms bucket")?;
        let saved: Saved = Arc::default();
        let mut registry = Registry::default();
        for e in known {
            if let Some(a) = decode::<AccountRecord>(&e) {
                registry.accounts.push(a.name);
            }
        }
        for e in kept_now {
            match kept_news(&e, &saved) {
                Some(Incoming::Marker {
                    account,
                    target,
                    at,
                }) => registry.markers.push((account, target, at)),
                Some(Incoming::Remembered(RoomMemory::Keep(r))) => registry.remembered.push(r),
                _ => {}
            }
        }
        for e in saved_rooms {
            if let Some(r) = decode::<RoomRecord>(&e) {
                lock(&saved).revision(&e.key, e.revision);
                registry.rooms.push(r);
            }
        }
        tokio::spawn(watch(
            accounts.clone(),
            account_watch,
            pause,
            to_hub.clone(),
            |e, _| decode::<AccountRecord>(e).map(|a| Incoming::Account(a.name)),
            saved.clone(),
        ));
        tokio::spawn(watch(
            rooms.clone(),
            room_watch,
            pause,
            to_hub.clone(),
            |e, saved| {
                let r = decode::<RoomRecord>(e)?;
                let mut saved = lock(saved);
                saved.revision(&e.key, e.revision);
                let seq = saved.seqs.entry(e.key.clone()).or_default();
                *seq = (*seq).max(r.seq);
                Some(Incoming::Room(r))
            },
            saved.clone(),
        ));
        tokio::spawn(watch(
            kept.clone(),
            kept_watch,
            pause,
            to_hub.clone(),
            kept_news,
            saved.clone(),
        ));
        let (saves, save_rx) = mpsc::unbounded_channel();
        tokio::spawn(room_writer(
            rooms.clone(),
            kept,
            client,
            save_rx,
            saved.clone(),
            to_hub,
            pause,
        ));
        Ok(NatsAccounts {
            rt: tokio::runtime::Handle::current(),
            accounts,
            rooms,
            timeout,
            saves,
            saved,
            registry: Mutex::new(Some(registry)),
        })
    }

    /// Queues a write of the [`KEPT`] bucket (see [`Save::Kept`]).
    fn keep(&self, key: String, value: Option<Vec<u8>>, forward: bool) {
        let save = Save::Kept {
            key,
            value,
            forward,
        };
        if self.saves.send(save).is_err() {
            warn!("the cluster task has stopped: a read marker or remembered room is not kept");
        }
    }

    /// Runs `work` on the cluster runtime and waits for it, at most the
    /// cluster timeout (called on blocking threads, never under the lock).
    fn call<T: Send + 'static>(
        &self,
        what: &str,
        work: impl std::future::Future<Output = Result<T, String>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.rt.spawn(async move {
            let _ = tx.send(work.await);
        });
        match rx.recv_timeout(self.timeout) {
            Ok(r) => r.map_err(|e| StoreError(format!("the cluster (NATS) cannot {what}: {e}"))),
            Err(_) => Err(StoreError(format!(
                "the cluster (NATS) did not {what} within {:?}",
                self.timeout
            ))),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An entry's value, if it is one (not a deletion, and well formed).
fn decode<T: serde::de::DeserializeOwned>(e: &kv::Entry) -> Option<T> {
    if e.operation != kv::Operation::Put {
        return None;
    }
    match serde_json::from_slice(&e.value) {
        Ok(v) => Some(v),
        Err(err) => {
            warn!("{} key {} is not what natter keeps: {err}", e.bucket, e.key);
            None
        }
    }
}

/// Every key's newest entry, and a watch that goes on from there with
/// every change made since (one consumer, so none is missed between the
/// two).
async fn current(
    bucket: &kv::Store,
    timeout: Duration,
) -> anyhow::Result<(Vec<kv::Entry>, kv::Watch)> {
    let mut watch = bucket.watch_with_history(">").await?;
    let mut entries = Vec::new();
    // An empty bucket gives the watch nothing to end its history with.
    if bucket.stream.clone().info().await?.state.messages == 0 {
        return Ok((entries, watch));
    }
    loop {
        let e = tokio::time::timeout(timeout, watch.next())
            .await
            .map_err(|_| anyhow::anyhow!("no entry within {timeout:?}"))?
            .ok_or_else(|| anyhow::anyhow!("the watch ended"))??;
        let last = e.delta == 0;
        entries.push(e);
        if last {
            return Ok((entries, watch));
        }
    }
}

/// Hands each change of `bucket` (as `hub_news` words it) to the hub;
/// watches again from where it was if the watch ends.
async fn watch(
    bucket: kv::Store,
    mut watch: kv::Watch,
    pause: Duration,
    to_hub: mpsc::Sender<Incoming>,
    hub_news: fn(&kv::Entry, &Saved) -> Option<Incoming>,
    saved: Saved,
) {
    let mut next = 0;
    loop {
        while let Some(e) = watch.next().await {
            let e = match e {
                Ok(e) => e,
                Err(err) => {
                    warn!("watching a bucket: {err}");
                    break;
                }
            };
            next = e.revision + 1;
            if let Some(news) = hub_news(&e, &saved) {
                if to_hub.send(news).await.is_err() {
                    return;
                }
            }
        }
        loop {
            if to_hub.is_closed() {
                return;
            }
            // Not a wait for something: a pause between attempts at a lost server.
            tokio::time::sleep(pause).await;
            let again = match next {
                0 => bucket.watch_with_history(">").await,
                n => bucket.watch_from_revision(">", n).await,
            };
            match again {
                Ok(w) => {
                    watch = w;
                    break;
                }
                Err(err) => debug!("cannot watch a bucket yet: {err}"),
            }
        }
    }
}

/// Saves registered rooms in order, each with the revision last seen of
/// it; on meeting another node's save, keeps whichever shows the later
/// change in the stream (see the module's doc). Waits for NATS when it is
/// away.
async fn room_writer(
    rooms: kv::Store,
    kept: kv::Store,
    client: async_nats::Client,
    mut saves: mpsc::UnboundedReceiver<Save>,
    saved: Saved,
    to_hub: mpsc::Sender<Incoming>,
    pause: Duration,
) {
    while let Some(save) = saves.recv().await {
        let room = match save {
            Save::Room(room) => *room,
            Save::Kept {
                key,
                value,
                forward,
            } => {
                loop {
                    let Err(e) = write_kept(&kept, &key, value.as_deref(), forward).await else {
                        break;
                    };
                    if client.connection_state() == async_nats::connection::State::Connected {
                        warn!("cannot keep a read marker or remembered room: {e}");
                        break;
                    }
                    debug!("cannot keep a read marker or remembered room yet ({e}): NATS is unreachable");
                    // Not a wait for something: a pause between attempts at a lost server.
                    tokio::time::sleep(pause).await;
                }
                continue;
            }
            Save::Flush(done) => {
                let _ = done.try_send(());
                continue;
            }
        };
        let key = subjects::nick_key(&room.key);
        let Ok(value) = serde_json::to_vec(&room) else {
            continue;
        };
        // A later change is saved already (another node's, seen by the watch).
        let later = lock(&saved)
            .seqs
            .get(&key)
            .is_some_and(|s| room.seq > 0 && *s >= room.seq);
        if later {
            continue;
        }
        loop {
            let seen = lock(&saved).revisions.get(&key).copied();
            let done = match seen {
                None => rooms.create(&key, value.clone().into()).await.map_err(|e| {
                    (
                        e.kind() == kv::CreateErrorKind::AlreadyExists,
                        e.to_string(),
                    )
                }),
                Some(rev) => rooms
                    .update(&key, value.clone().into(), rev)
                    .await
                    .map_err(|e| {
                        (
                            e.kind() == kv::UpdateErrorKind::WrongLastRevision,
                            e.to_string(),
                        )
                    }),
            };
            match done {
                Ok(rev) => {
                    lock(&saved).revision(&key, rev);
                    break;
                }
                Err((true, e)) => {
                    // Another node saved it meanwhile: the later change wins.
                    let entry = match rooms.entry(key.clone()).await {
                        Ok(Some(entry)) => entry,
                        Ok(None) => {
                            lock(&saved).revisions.remove(&key);
                            continue;
                        }
                        Err(err) => {
                            warn!("cannot save the registered room {}: {e}; {err}", room.key);
                            break;
                        }
                    };
                    lock(&saved).revision(&key, entry.revision);
                    let theirs = decode::<RoomRecord>(&entry);
                    if let Some(theirs) = theirs.filter(|t| t.seq >= room.seq) {
                        debug!("room {}: another node saved a later state", room.key);
                        let _ = to_hub.send(Incoming::Room(theirs)).await;
                        break;
                    }
                }
                Err((false, e)) => {
                    if client.connection_state() == async_nats::connection::State::Connected {
                        warn!("cannot save the registered room {}: {e}", room.key);
                        break;
                    }
                    debug!("cannot save a registered room yet ({e}): NATS is unreachable");
                    // Not a wait for something: a pause between attempts at a lost server.
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }
}

/// A remembered room's value in the [`KEPT`] bucket.
#[derive(serde::Serialize, serde::Deserialize)]
struct KeptRoom {
    name: String,
    key: Option<String>,
}

/// What a change of the [`KEPT`] bucket tells the hub.
fn kept_news(e: &kv::Entry, _: &Saved) -> Option<Incoming> {
    let put = e.operation == kv::Operation::Put;
    match KeptKey::parse(&e.key)? {
        KeptKey::Marker { account, target } => {
            let at = std::str::from_utf8(&e.value).ok().filter(|_| put)?;
            Some(Incoming::Marker {
                account,
                target,
                at: at.to_string(),
            })
        }
        KeptKey::Room { account, room } if put => {
            let v: KeptRoom = serde_json::from_slice(&e.value)
                .map_err(|err| warn!("{} key {} is not what natter keeps: {err}", e.bucket, e.key))
                .ok()?;
            let r = RememberedRoom {
                account,
                room,
                name: v.name,
                key: v.key,
            };
            Some(Incoming::Remembered(RoomMemory::Keep(r)))
        }
        KeptKey::Room { account, room } => {
            Some(Incoming::Remembered(RoomMemory::Forget { account, room }))
        }
    }
}

/// Writes (or deletes) one key of the [`KEPT`] bucket; `forward`: only
/// over a smaller value, with compare-and-set (two nodes moving one
/// marker at once leave the later timestamp).
async fn write_kept(
    kept: &kv::Store,
    key: &str,
    value: Option<&[u8]>,
    forward: bool,
) -> Result<(), String> {
    let Some(value) = value else {
        return kept.delete(key).await.map_err(|e| e.to_string());
    };
    if !forward {
        return kept
            .put(key, value.to_vec().into())
            .await
            .map(drop)
            .map_err(|e| e.to_string());
    }
    // Each lost race means another node wrote meanwhile: read it again.
    for _ in 0..5 {
        let old = kept.entry(key).await.map_err(|e| e.to_string())?;
        let done = match old.filter(|e| e.operation == kv::Operation::Put) {
            Some(old) if old.value.as_ref() >= value => return Ok(()),
            Some(old) => kept
                .update(key, value.to_vec().into(), old.revision)
                .await
                .map(drop)
                .map_err(|e| {
                    (
                        e.kind() == kv::UpdateErrorKind::WrongLastRevision,
                        e.to_string(),
                    )
                }),
            None => kept
                .create(key, value.to_vec().into())
                .await
                .map(drop)
                .map_err(|e| {
                    (
                        e.kind() == kv::CreateErrorKind::AlreadyExists,
                        e.to_string(),
                    )
                }),
        };
        match done {
            Ok(()) => return Ok(()),
            Err((true, _)) => continue,
            Err((false, e)) => return Err(e),
        }
    }
    Err("other nodes kept writing it".into())
}

impl Accounts for NatsAccounts {
    fn load(&self) -> Result<Registry, StoreError> {
        Ok(lock(&self.registry).take().unwrap_or_default())
    }

    fn create(&self, account: &AccountRecord) -> Result<bool, StoreError> {
        let key = subjects::nick_key(&names::fold(&account.name));
        let value = serde_json::to_vec(account).map_err(|e| StoreError(e.to_string()))?;
        let bucket = self.accounts.clone();
        self.call("create the account", async move {
            match bucket.create(&key, value.into()).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn get(&self, name: &str) -> Result<Option<AccountRecord>, StoreError> {
        let key = subjects::nick_key(&names::fold(name));
        let bucket = self.accounts.clone();
        let value = self.call("read the account", async move {
            bucket.get(&key).await.map_err(|e| e.to_string())
        })?;
        value
            .map(|v| serde_json::from_slice(&v))
            .transpose()
            .map_err(|e| StoreError(format!("account {name} is not what natter keeps: {e}")))
    }

    /// Waits (at most the cluster timeout) until the saves queued so far
    /// are written: a stopping node's last changes are kept.
    fn flush(&self) {
        let (done, written) = std::sync::mpsc::sync_channel(1);
        if self.saves.send(Save::Flush(done)).is_ok() && written.recv_timeout(self.timeout).is_err()
        {
            warn!("registered rooms not all saved within {:?}", self.timeout);
        }
    }

    /// Creates the room's key: the one atomic step that decides which of
    /// two founders racing on two nodes registered it.
    fn register_room(&self, room: &RoomRecord) -> Result<bool, StoreError> {
        let key = subjects::nick_key(&room.key);
        let value = serde_json::to_vec(room).map_err(|e| StoreError(e.to_string()))?;
        let (bucket, saved) = (self.rooms.clone(), self.saved.clone());
        self.call("register the room", async move {
            match bucket.create(&key, value.into()).await {
                Ok(rev) => {
                    lock(&saved).revision(&key, rev);
                    Ok(true)
                }
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn save_marker(&self, account: &str, target: &str, at: &str) {
        let key = KeptKey::Marker {
            account: account.to_string(),
            target: target.to_string(),
        };
        self.keep(key.key(), Some(at.as_bytes().to_vec()), true);
    }

    fn remember_room(&self, change: &RoomMemory) {
        match change {
            RoomMemory::Keep(r) => {
                let key = KeptKey::Room {
                    account: r.account.clone(),
                    room: r.room.clone(),
                };
                let value = KeptRoom {
                    name: r.name.clone(),
                    key: r.key.clone(),
                };
                if let Ok(value) = serde_json::to_vec(&value) {
                    self.keep(key.key(), Some(value), false);
                }
            }
            RoomMemory::Forget { account, room } => {
                let key = KeptKey::Room {
                    account: account.clone(),
                    room: room.clone(),
                };
                self.keep(key.key(), None, false);
            }
        }
    }

    fn save_room(&self, room: RoomRecord) {
        if self.saves.send(Save::Room(Box::new(room))).is_err() {
            warn!("the cluster task has stopped: a registered room is not saved");
        }
    }
}
