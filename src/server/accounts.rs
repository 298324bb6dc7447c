//! Accounts in the I/O shell: what a session's [`AccountRequest`] turns
//! into. Passwords are hashed and checked on blocking threads, at most
//! `auth_concurrency` at once, never under the chat lock; only then does
//! the chat hear of it, as [`Command::Authenticated`]. Failed logins are
//! throttled per account and per address; passwords are never logged.
//!
//! Also the timer of the nick grace period: whoever takes a registered
//! nick without being logged in to it is renamed when it runs out
//! ([`Command::NickGrace`]; the chat state decides).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Chat;
use crate::config::Config;
use crate::hub::{names, Accounts, Registry};
use crate::proto::{
    AccountEvent, AccountRequest, Command, ConnId, ErrorCode, EventBody, Name, Password, Refusal,
};
use crate::store::accounts::{hash, verify};
use crate::store::{MemoryAccounts, SqliteAccounts};

/// The accounts store and the rules around it, shared by every connection.
pub(crate) struct Auth {
    accounts: Arc<dyn Accounts>,
    throttle: Mutex<Throttle>,
    /// Password hashes running at once.
    permits: Arc<Semaphore>,
    password_min_chars: usize,
    /// How long a registered nick may be held without logging in (zero:
    /// it is refused).
    pub grace: Duration,
}

impl Auth {
    /// Opens the accounts of the configured database (in memory with
    /// `db = "off"`), which the history store has already migrated.
    /// Waits until the accounts store has written what it was given.
    pub fn flush(&self) {
        self.accounts.flush();
    }

    /// A node of a cluster passes the cluster's store (`shared`): then the
    /// database keeps no accounts.
    pub fn open(
        config: &Config,
        shared: Option<Arc<dyn Accounts>>,
    ) -> anyhow::Result<(Auth, Arc<dyn Accounts>, Registry)> {
        let accounts: Arc<dyn Accounts> = match (shared, config.db.as_str()) {
            (Some(shared), _) => shared,
            (None, "off") => Arc::new(MemoryAccounts::default()),
            (None, path) => Arc::new(
                SqliteAccounts::open(std::path::Path::new(path))
                    .with_context(|| format!("cannot use the database {path} (db)"))?,
            ),
        };
        let registry = accounts.load().context("cannot read the accounts")?;
        info!(
            "{} accounts, {} registered rooms",
            registry.accounts.len(),
            registry.rooms.len()
        );
        let auth = Auth {
            accounts: accounts.clone(),
            throttle: Mutex::new(Throttle {
                window: config.auth_failure_window,
                per_account: config.auth_max_failures,
                per_host: config.auth_max_failures_per_host,
                max_entries: config.max_clients.max(1),
                accounts: HashMap::new(),
                hosts: HashMap::new(),
            }),
            permits: Arc::new(Semaphore::new(config.auth_concurrency.max(1))),
            password_min_chars: config.password_min_chars,
            grace: config.nick_grace,
        };
        Ok((auth, accounts, registry))
    }

    fn throttle(&self) -> std::sync::MutexGuard<'_, Throttle> {
        self.throttle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Failed logins per account and per (cloaked) address, in fixed windows.
struct Throttle {
    window: Duration,
    per_account: u32,
    per_host: u32,
    /// Most accounts and most addresses tracked (`max_clients`).
    max_entries: usize,
    accounts: HashMap<String, (Instant, u32)>,
    hosts: HashMap<Name, (Instant, u32)>,
}

/// Failures counted in `map` for `key` within the window.
fn count<K: std::hash::Hash + Eq>(map: &HashMap<K, (Instant, u32)>, key: &K, w: Duration) -> u32 {
    match map.get(key) {
        Some((start, n)) if start.elapsed() < w => *n,
        _ => 0,
    }
}

/// Counts one failure for `key`, keeping `map` within `max` entries.
fn bump<K: std::hash::Hash + Eq + Clone>(
    map: &mut HashMap<K, (Instant, u32)>,
    key: &K,
    w: Duration,
    max: usize,
) {
    if !map.contains_key(key) && map.len() >= max {
        map.retain(|_, (start, _)| start.elapsed() < w);
        if map.len() >= max {
            let any = map.keys().next().cloned();
            if let Some(k) = any {
                map.remove(&k);
            }
        }
    }
    let e = map.entry(key.clone()).or_insert((Instant::now(), 0));
    if e.0.elapsed() >= w {
        *e = (Instant::now(), 0);
    }
    e.1 = e.1.saturating_add(1);
}

impl Throttle {
    /// Whether another try for `account` (folded) from `host` is allowed.
    fn allows(&self, account: &str, host: &Name) -> bool {
        count(&self.accounts, &account.to_string(), self.window) < self.per_account
            && count(&self.hosts, host, self.window) < self.per_host
    }

    fn failed(&mut self, account: &str, host: &Name) {
        let (w, max) = (self.window, self.max_entries);
        bump(&mut self.accounts, &account.to_string(), w, max);
        bump(&mut self.hosts, host, w, max);
    }

    /// Whether `host` may try something costly (registering an account).
    fn allows_host(&self, host: &Name) -> bool {
        count(&self.hosts, host, self.window) < self.per_host
    }

    fn count_host(&mut self, host: &Name) {
        let (w, max) = (self.window, self.max_entries);
        bump(&mut self.hosts, host, w, max);
    }

    /// A good password clears the account's failures.
    fn succeeded(&mut self, account: &str) {
        self.accounts.remove(account);
    }
}

fn refuse(chat: &Chat, id: ConnId, refusal: Refusal) {
    chat.tell(id, EventBody::Refused(refusal));
}

fn store_failed(chat: &Chat, id: ConnId, e: impl std::fmt::Display) {
    warn!("accounts: {e}");
    let refusal = Refusal::new(ErrorCode::StoreFailed).detail("accounts cannot be used right now");
    refuse(chat, id, refusal);
}

/// Runs `work` on a blocking thread once a hashing permit is free; `None`
/// if the runtime is going away.
async fn blocking<T: Send + 'static>(
    auth: &Auth,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let _permit = auth.permits.clone().acquire_owned().await.ok()?;
    tokio::task::spawn_blocking(work).await.ok()
}

/// Handles one account request from connection `id`.
pub(crate) fn request(auth: &Arc<Auth>, chat: &Chat, id: ConnId, request: AccountRequest) {
    let host = chat.host_of(id).unwrap_or_else(|| "*".into());
    match request {
        AccountRequest::Register { password } => register(auth, chat, id, host, password),
        AccountRequest::Login { account, password } => {
            let account = match account.as_str() {
                "" => match chat.nick_of(id) {
                    Some(n) => n.to_string(),
                    None => return refuse(chat, id, Refusal::new(ErrorCode::NotRegistered)),
                },
                _ => account,
            };
            login(auth, chat, id, host, account, password)
        }
        AccountRequest::ScramLookup { account } => {
            if !auth.throttle().allows(&names::fold(&account), &host) {
                return refuse(chat, id, Refusal::new(ErrorCode::Throttled));
            }
            let (auth, chat) = (auth.clone(), chat.clone());
            tokio::spawn(async move {
                let accounts = auth.accounts.clone();
                let key = account.clone();
                match blocking(&auth, move || accounts.get(&key)).await {
                    Some(Ok(Some(a))) => {
                        let body = AccountEvent::Challenge {
                            account: a.name.as_str().into(),
                            credentials: Arc::new(a.scram),
                        };
                        chat.tell(id, EventBody::Account(body));
                    }
                    Some(Ok(None)) => {
                        auth.throttle().failed(&names::fold(&account), &host);
                        refuse(&chat, id, Refusal::new(ErrorCode::AuthFailed));
                    }
                    Some(Err(e)) => store_failed(&chat, id, e),
                    None => {}
                }
            });
        }
        AccountRequest::ScramDone { account, ok: true } => {
            auth.throttle().succeeded(&names::fold(&account));
            chat.execute(
                id,
                Command::Authenticated {
                    account,
                    created: false,
                },
            );
        }
        AccountRequest::ScramDone { account, ok: false } => {
            auth.throttle().failed(&names::fold(&account), &host);
            refuse(chat, id, Refusal::new(ErrorCode::AuthFailed));
        }
    }
}

fn register(auth: &Arc<Auth>, chat: &Chat, id: ConnId, host: Name, password: Password) {
    let Some(nick) = chat.nick_of(id) else {
        return refuse(chat, id, Refusal::new(ErrorCode::NotRegistered));
    };
    if chat.is_registered_nick(&nick) {
        return refuse(chat, id, Refusal::new(ErrorCode::AccountExists).nick(&nick));
    }
    let min = auth.password_min_chars;
    if password.0.chars().count() < min {
        let refusal = Refusal::new(ErrorCode::BadPassword)
            .detail(format!("a password has at least {min} characters"));
        return refuse(chat, id, refusal);
    }
    // Registering costs a hash: it counts against the address like a failure.
    if !auth.throttle().allows_host(&host) {
        return refuse(chat, id, Refusal::new(ErrorCode::Throttled));
    }
    auth.throttle().count_host(&host);
    let (auth, chat) = (auth.clone(), chat.clone());
    tokio::spawn(async move {
        let accounts = auth.accounts.clone();
        let name = nick.to_string();
        let made = blocking(&auth, move || {
            let record = hash(&name, &password.0)?;
            Ok::<_, crate::hub::StoreError>(accounts.create(&record)?.then_some(record.name))
        })
        .await;
        match made {
            Some(Ok(Some(account))) => {
                info!("account {account} registered");
                let created = true;
                chat.execute(id, Command::Authenticated { account, created });
            }
            Some(Ok(None)) => refuse(
                &chat,
                id,
                Refusal::new(ErrorCode::AccountExists).nick(&nick),
            ),
            Some(Err(e)) => store_failed(&chat, id, e),
            None => {}
        }
    });
}

fn login(auth: &Arc<Auth>, chat: &Chat, id: ConnId, host: Name, account: String, pw: Password) {
    let key = names::fold(&account);
    if !auth.throttle().allows(&key, &host) {
        return refuse(chat, id, Refusal::new(ErrorCode::Throttled));
    }
    let (auth, chat) = (auth.clone(), chat.clone());
    tokio::spawn(async move {
        let accounts = auth.accounts.clone();
        let checked = blocking(&auth, move || {
            let found = accounts.get(&account)?;
            Ok::<_, crate::hub::StoreError>(found.filter(|a| verify(a, &pw.0)).map(|a| a.name))
        })
        .await;
        match checked {
            Some(Ok(Some(account))) => {
                auth.throttle().succeeded(&key);
                let created = false;
                chat.execute(id, Command::Authenticated { account, created });
            }
            Some(Ok(None)) => {
                auth.throttle().failed(&key, &host);
                info!("failed login to {key}");
                refuse(&chat, id, Refusal::new(ErrorCode::AuthFailed));
            }
            Some(Err(e)) => store_failed(&chat, id, e),
            None => {}
        }
    });
}

/// After `id` took a nick: if it is a registered one it is not logged in
/// to, starts the grace period's timer.
pub(crate) fn nick_taken(auth: &Auth, chat: &Chat, id: ConnId, stop: &CancellationToken) {
    if auth.grace.is_zero() {
        return;
    }
    let Some(nick) = chat.unprotected_nick(id) else {
        return;
    };
    let (chat, stop, grace) = (chat.clone(), stop.clone(), auth.grace);
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(grace) => {
                let nick = nick.to_string();
                chat.execute(id, Command::NickGrace { nick });
            }
            _ = stop.cancelled() => {}
        }
    });
}
