//! natter: a chat server that telnet/netcat users, JSON-lines programs and IRC
//! clients join in the same rooms, and a terminal client.
//!
//! The crate is shaped after `DESIGN.md`: pure codecs in [`proto`], the pure
//! chat state machine in [`hub`], and a thin I/O shell in [`server`].

pub mod bench;
pub mod client;
pub mod cluster;
pub mod config;
mod digits;
pub mod hub;
pub mod logformat;
pub mod logwriter;
pub mod metrics;
pub mod proto;
pub mod server;
pub mod store;
pub mod sys;
pub mod tlsio;
pub mod web;
