//! The shared vocabulary of every protocol: the [`Command`]s a client can
//! give, the [`Event`]s the hub sends back, and the codecs that turn bytes
//! into one and the other. Nothing outside this module knows what a protocol
//! looks like on the wire.

pub mod json;
pub mod line;
pub mod sanitize;
pub mod text;

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// A nickname or room name as shown to people (shared, cheap to clone).
pub type Name = Arc<str>;

/// What a client asks the hub to do, whatever protocol it spoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Pick the first nickname.
    Register { nick: String },
    /// Say something in a room (`None`: the sender's current room).
    Say {
        room: Option<String>,
        text: String,
        action: bool,
    },
    /// Private message to one nick.
    Private {
        to: String,
        text: String,
        action: bool,
    },
    /// Enter a room. `switch`: leave the current room first (text and JSON
    /// users are in one room at a time; IRC users may be in several).
    Join { room: String, switch: bool },
    /// Leave a room (`None`: the current one).
    Part {
        room: Option<String>,
        reason: Option<String>,
    },
    /// Who is in a room (`None`: the current one).
    Who { room: Option<String> },
    /// The list of rooms.
    Rooms,
    /// Change nickname.
    Nick { new: String },
    /// Leave the server.
    Quit { reason: Option<String> },
}

/// Machine-readable error codes, shared by every protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NickInUse,
    NickInvalid,
    NotRegistered,
    AlreadyRegistered,
    UnknownCommand,
    BadArguments,
    NoSuchNick,
    NoSuchRoom,
    NotInRoom,
    RoomInvalid,
    LineTooLong,
    InvalidUtf8,
    Malformed,
    EmptyMessage,
    Timeout,
}

impl ErrorCode {
    /// The code as it appears on the wire (JSON `code`, text prefix).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NickInUse => "nick_in_use",
            ErrorCode::NickInvalid => "nick_invalid",
            ErrorCode::NotRegistered => "not_registered",
            ErrorCode::AlreadyRegistered => "already_registered",
            ErrorCode::UnknownCommand => "unknown_command",
            ErrorCode::BadArguments => "bad_arguments",
            ErrorCode::NoSuchNick => "no_such_nick",
            ErrorCode::NoSuchRoom => "no_such_room",
            ErrorCode::NotInRoom => "not_in_room",
            ErrorCode::RoomInvalid => "room_invalid",
            ErrorCode::LineTooLong => "line_too_long",
            ErrorCode::InvalidUtf8 => "invalid_utf8",
            ErrorCode::Malformed => "malformed",
            ErrorCode::EmptyMessage => "empty_message",
            ErrorCode::Timeout => "timeout",
        }
    }
}

/// What happened, as the hub tells it. Protocol-neutral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventBody {
    /// First thing a connection sees: who we are and how many are online.
    Welcome { server: Name, online: usize },
    /// The connection now has this nickname.
    Registered { nick: Name, online: usize },
    /// `nick` entered `room`, which now has `members` people.
    Joined {
        room: Name,
        nick: Name,
        members: usize,
    },
    /// `nick` left `room` (part), which now has `members` people.
    Parted {
        room: Name,
        nick: Name,
        members: usize,
        reason: Option<Arc<str>>,
    },
    /// `nick` left the server.
    Quit { nick: Name, reason: Arc<str> },
    /// A line said in a room.
    Message {
        id: u64,
        room: Name,
        from: Name,
        text: Arc<str>,
        action: bool,
    },
    /// A private line between two people (delivered to both).
    Private {
        id: u64,
        from: Name,
        to: Name,
        text: Arc<str>,
        action: bool,
    },
    /// Somebody changed nickname.
    NickChanged { old: Name, new: Name },
    /// Who is in a room (sent to whoever asked, and to a newcomer).
    Names { room: Name, nicks: Vec<Name> },
    /// The rooms there are, with member counts.
    RoomList { rooms: Vec<(Name, usize)> },
    /// Help text: (command, explanation) pairs.
    Help,
    /// A human-readable notice from the server.
    Info { text: Cow<'static, str> },
    /// Something the client asked for went wrong.
    Error {
        code: ErrorCode,
        message: Cow<'static, str>,
    },
    /// Are you alive? (JSON and IRC clients answer.)
    Ping { token: u64 },
    /// The server is going down.
    Shutdown { reason: Cow<'static, str> },
}

/// How one connection wants its events rendered: one cached rendering per
/// flavour is shared by every recipient of a broadcast event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    TextColor = 0,
    TextPlain = 1,
    Json = 2,
}

const FLAVORS: usize = 3;

/// An event plus its server timestamp and its renderings, built once and
/// shared (`Arc`) by every recipient.
#[derive(Debug)]
pub struct Event {
    pub body: EventBody,
    /// Server time, milliseconds since the Unix epoch.
    pub at_ms: u64,
    cache: [OnceLock<Bytes>; FLAVORS],
}

impl Event {
    pub fn new(body: EventBody) -> Event {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Event {
            body,
            at_ms,
            cache: Default::default(),
        }
    }

    pub fn shared(body: EventBody) -> Arc<Event> {
        Arc::new(Event::new(body))
    }

    /// The bytes of this event in `flavor`, rendered at most once.
    pub fn rendered(&self, flavor: Flavor) -> &Bytes {
        self.cache[flavor as usize].get_or_init(|| {
            let mut out = Vec::with_capacity(64);
            render(self, flavor, &mut out);
            Bytes::from(out)
        })
    }
}

impl From<EventBody> for Event {
    fn from(body: EventBody) -> Event {
        Event::new(body)
    }
}

/// Renders `ev` in `flavor` into `out` (one or more complete lines).
pub fn render(ev: &Event, flavor: Flavor, out: &mut Vec<u8>) {
    match flavor {
        Flavor::TextColor => text::render(ev, true, out),
        Flavor::TextPlain => text::render(ev, false, out),
        Flavor::Json => json::render(ev, out),
    }
}
