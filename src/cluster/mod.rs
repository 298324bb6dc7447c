//! How nodes share the chat: implementations of the hub's [`Backplane`]
//! seam. A lone server uses [`Standalone`]: nobody to tell, and every nick
//! free here is free everywhere. Several nodes share it through NATS
//! JetStream ([`nats::Nats`]), which also keeps their accounts and
//! registered rooms (`accounts`); `subjects` says where things go in NATS,
//! `live` reads what a node needs of it, and `follow` says which rooms'
//! lines that is (those with members on the node).
//!
//! [`Backplane`]: crate::hub::Backplane

mod accounts;
mod follow;
mod live;
pub mod nats;
mod subjects;

use crate::hub::{Backplane, Incoming, StoreError};
use crate::proto::{ConnId, Fact};

/// The backplane of a server that is the whole cluster.
#[derive(Debug, Default, Clone, Copy)]
pub struct Standalone;

impl Backplane for Standalone {
    fn publish(&self, _facts: &[Fact]) {}
    fn claim_nick(&self, _nick: &str, _owner: ConnId) -> Result<bool, StoreError> {
        Ok(true)
    }
    fn incoming(&self) -> Option<tokio::sync::mpsc::Receiver<Incoming>> {
        None
    }
}
