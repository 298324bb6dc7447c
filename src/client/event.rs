//! What the connection tells the front ends: protocol-neutral [`Event`]s
//! (chat events from the server plus the client's own connection status).
//! Both transports (JSON lines, IRC) decode into these; the plain and TUI
//! front ends only ever see these.

use std::time::Duration;

/// One thing that happened, stamped with when (milliseconds since the Unix
/// epoch: the server's `ts` when it sent one, else the client's clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at_ms: i64,
    pub kind: EventKind,
}

impl Event {
    /// An event stamped now.
    pub fn now(kind: EventKind) -> Event {
        Event {
            at_ms: now_ms(),
            kind,
        }
    }

    /// An event stamped `at_ms`, or now if the server gave no time.
    pub fn at(at_ms: Option<i64>, kind: EventKind) -> Event {
        Event {
            at_ms: at_ms.unwrap_or_else(now_ms),
            kind,
        }
    }
}

/// Milliseconds since the Unix epoch by the local clock.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Everything a front end may have to show or act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The connection changed state.
    Status(Status),
    /// The server wants a nickname: none was given yet (`refused: None`), or
    /// the last one was refused for the reason given. The front end answers
    /// with [`Request::Login`](super::command::Request::Login).
    NeedNick { refused: Option<String> },
    /// The server refused the account password given at start (`reason`
    /// as it put it); a `NeedNick` follows, to go on without the account.
    LoginFailed { reason: String },
    /// The server accepted our nickname.
    Registered { nick: String, online: Option<u64> },
    /// A line said in a room.
    Message {
        room: String,
        from: String,
        text: String,
        action: bool,
    },
    /// A private message to or from us.
    Private {
        from: String,
        to: String,
        text: String,
        action: bool,
    },
    /// `nick` (maybe us) entered `room`.
    Joined {
        room: String,
        nick: String,
        members: Option<u64>,
    },
    /// `nick` (maybe us) left `room`.
    Left {
        room: String,
        nick: String,
        members: Option<u64>,
        reason: Option<String>,
    },
    /// `nick` left the server.
    Quit {
        nick: String,
        reason: Option<String>,
    },
    /// A nickname change (maybe ours).
    Nick { old: String, new: String },
    /// Text now goes to `room`, which we were already in (IRC `/join` of a
    /// joined channel).
    Focus { room: String },
    /// Who is in `room` (the full list, replacing what we knew), and who
    /// of them are its operators (`@`) and voiced (`+`).
    Presence {
        room: String,
        nicks: Vec<String>,
        ops: Vec<String>,
        voiced: Vec<String>,
    },
    /// The topic of `room`: shown on joining (`changed: false`) or changed
    /// by `by` (`changed: true`); `None`: no topic (or cleared).
    Topic {
        room: String,
        topic: Option<String>,
        by: Option<String>,
        changed: bool,
    },
    /// `by` put `nick` (maybe us) out of `room`.
    Kicked {
        room: String,
        by: String,
        nick: String,
        reason: Option<String>,
        members: Option<u64>,
    },
    /// `by` changed the modes of `room`: `changes` as `+o bob -v carol +k *`
    /// (IRC's `+ov bob carol` is accepted too).
    Mode {
        room: String,
        by: String,
        changes: String,
    },
    /// `nick` went away (`Some(text)`) or came back (`None`); also the
    /// answer to a private message to someone away.
    Away { nick: String, text: Option<String> },
    /// We are now away (`true`) or back.
    AwayStatus { away: bool },
    /// `by` invited `nick` (maybe us) into `room`.
    Invited {
        room: String,
        by: String,
        nick: String,
    },
    /// A notice from a person (IRC `NOTICE`) to a room or to us.
    Notice {
        from: String,
        room: Option<String>,
        to: Option<String>,
        text: String,
    },
    /// Earlier lines of `room`, oldest first, each with its own time (the
    /// replay on joining, or asked for); `more`: older ones exist. Shown,
    /// never applied to what we know now.
    History {
        room: String,
        lines: Vec<Event>,
        more: bool,
    },
    /// The room list, with member counts where known.
    Rooms(Vec<(String, Option<u64>)>),
    /// A human-readable notice from the server.
    Info(String),
    /// Something we sent was refused (or the client refused it locally).
    Error { code: String, message: String },
    /// The server is going down.
    Shutdown { reason: String },
}

/// The state of the connection to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Trying to connect to `addr`.
    Connecting { addr: String },
    /// TCP is up; logging in next.
    Connected {
        addr: String,
        protocol: &'static str,
    },
    /// The connection failed or was lost; `retry_in` is when we try again
    /// (`None`: we will not), and `next` the other server of several we
    /// try then (`None`: the same one again).
    Lost {
        addr: String,
        reason: String,
        retry_in: Option<Duration>,
        next: Option<String>,
    },
    /// We left (the user quit); the client is about to exit.
    Closed,
}
