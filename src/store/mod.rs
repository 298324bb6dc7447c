//! Where facts are kept: implementations of the hub's [`Store`] seam.
//! [`sqlite::SqliteStore`] keeps history in a database file (the default);
//! [`MemoryStore`] keeps recent history in memory (`--db off`).
//! [`accounts`] keeps accounts and registered rooms (the `Accounts` seam).
//!
//! [`Store`]: crate::hub::Store

pub mod accounts;
mod memory;
pub mod sqlite;
mod wal_sync;

pub use accounts::{MemoryAccounts, SqliteAccounts};
pub use memory::MemoryStore;
