//! The client's protocol layer: a [`Protocol`] turns server lines into
//! [`Event`]s and user [`Request`]s into lines. The connection task
//! (`conn.rs`) and the front ends know nothing else about the wire, so a new
//! transport is one more implementation of this trait:
//! [`json::JsonProtocol`] speaks natter's JSON lines, [`irc::IrcProtocol`]
//! speaks IRC as a client.
//!
//! A protocol also remembers what must survive a reconnect (the nickname we
//! had and the rooms we were in) and replays it when [`Protocol::connected`]
//! is called again.

pub mod irc;
pub mod json;

/// Most rooms a room list collects from a server's pages (the rest are
/// not shown).
pub const MAX_LISTED: usize = 10_000;

use super::command::Request;
use super::event::{Event, EventKind};

/// What handling one input produced: lines to send (without line endings)
/// and events to show; `reconnect`: drop this connection, for this reason,
/// and connect again (to the next server, if there are several).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Output {
    pub lines: Vec<String>,
    pub events: Vec<Event>,
    pub reconnect: Option<String>,
}

impl Output {
    pub fn send(&mut self, line: String) {
        self.lines.push(line);
    }

    pub fn event(&mut self, ev: Event) {
        self.events.push(ev);
    }

    /// An event stamped now.
    pub fn show(&mut self, kind: EventKind) {
        self.events.push(Event::now(kind));
    }

    /// A local error (nothing was sent).
    pub fn error(&mut self, message: impl Into<String>) {
        self.show(EventKind::Error {
            code: "client".into(),
            message: message.into(),
        });
    }
}

/// One wire protocol, client side. Implementations are pure state machines:
/// no I/O, so they are tested line by line.
pub trait Protocol: Send {
    /// A short name for status lines ("JSON", "IRC").
    fn name(&self) -> &'static str;

    /// A new TCP connection is up: forget per-connection state and start the
    /// session (log in with the nickname we have, or ask for one with a
    /// `NeedNick` event). Rooms we were in are rejoined once registered.
    fn connected(&mut self, out: &mut Output);

    /// One line from the server (line ending removed).
    fn receive(&mut self, line: &str, out: &mut Output);

    /// Something the user asked for.
    fn request(&mut self, req: &Request, out: &mut Output);

    /// True once logged in on this connection and in the rooms asked for
    /// at connect (`--join`, or those to rejoin): what the user typed
    /// meanwhile can now be sent, and lands where they meant it to.
    fn ready(&self) -> bool;
}

/// True if two nicknames (or room names) are the same, ignoring case as
/// natter and IRC both do (IRC's extra `[]\` ↔ `{}|` folding is not done).
pub fn same_nick(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}
