//! Where facts are kept: implementations of the hub's [`Store`] seam.
//! [`MemoryStore`] keeps recent history in memory for a lone server with
//! no database.
//!
//! [`Store`]: crate::hub::Store

mod memory;

pub use memory::MemoryStore;
