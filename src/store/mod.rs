//! Where facts are kept: implementations of the hub's [`Store`] seam.
//! [`sqlite::SqliteStore`] keeps history in a database file (the default);
//! [`MemoryStore`] keeps recent history in memory (`--db off`).
//!
//! [`Store`]: crate::hub::Store

mod memory;
pub mod sqlite;

pub use memory::MemoryStore;
