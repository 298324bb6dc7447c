//! The seams where durability and other nodes plug in: the [`Store`]
//! keeps facts and answers history questions; the [`Backplane`] carries
//! facts to other nodes and claims nicks across them. `src/store` and
//! `src/cluster` implement them; a lone server uses the in-memory store
//! and no backplane (`cluster::Standalone`).

use crate::proto::{ConnId, Fact, MsgId};

/// Why the store could not do something (a full disk, a read-only file…).
#[derive(Debug, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub String);

/// Which part of a room's history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryQuery {
    /// The last `limit` facts.
    Latest,
    /// The `limit` facts just before this one.
    Before(MsgId),
    /// The `limit` facts just after this one.
    After(MsgId),
}

/// Where facts are kept.
pub trait Store: Send + Sync + 'static {
    /// Keeps these facts, in order.
    fn append(&self, facts: &[Fact]) -> Result<(), StoreError>;
    /// Facts of `room` (its folded key), oldest first, at most `limit`.
    fn history(
        &self,
        room: &str,
        query: HistoryQuery,
        limit: usize,
    ) -> Result<Vec<Fact>, StoreError>;
}

/// How facts reach the other nodes.
pub trait Backplane: Send + Sync + 'static {
    /// Tells the other nodes what happened here.
    fn publish(&self, facts: &[Fact]);
    /// Claims `nick` (folded) for `owner` across the cluster; false if
    /// another node's user holds it. Claims end with the owner's `Quit` or
    /// `NickChanged` fact, which [`Backplane::publish`] sees.
    fn claim_nick(&self, nick: &str, owner: ConnId) -> bool;
    /// The facts other nodes publish, once (`None` when there are no others).
    fn incoming(&self) -> Option<tokio::sync::mpsc::Receiver<Fact>>;
}
