//! The JSON-lines wire format (docs/PROTOCOL.md, "JSON lines") as serde
//! types, written down once: [`Cmd`] is what a client sends
//! (`{"cmd":"chat",…}`), [`Event`] what the server sends
//! (`{"type":"message",…}`) and [`Stamped`] an event with its `ts`, which is
//! one line. The server renders and parses with them, and so do `natter
//! chat`, `natter bench` and the tests.
//!
//! Strings are [`Cow`]s: the server renders straight from the hub's shared
//! strings without copying them, and a reader deserializes owned ones
//! (`Event<'static>`). Fields are serialized in the order of the docs;
//! optional fields the server leaves out (rather than sending `null`) are
//! marked so, everything else is always sent.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize};

/// A string on the wire: borrowed when rendering, owned when read.
pub type Str<'a> = Cow<'a, str>;

/// A command, client → server: `{"cmd": NAME, …fields}`. Unknown extra
/// fields are ignored. The server parses lines with
/// [`json::parse`](super::parse), which turns bad input into error codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Cmd<'a> {
    /// Pick the first nickname. With a `"password"` field (read by
    /// [`LoginPassword`]), log in to the account of that name and take it.
    Login { nick: Str<'a> },
    /// Register the current nickname as an account with this password.
    Register { password: Str<'a> },
    /// Register a room one operates (default: the current one).
    #[serde(rename = "register_room")]
    RegisterRoom {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<Str<'a>>,
    },
    /// Say `msg` in `room` (default: the current one); `action`: like `me`.
    Chat {
        msg: Str<'a>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<Str<'a>>,
        #[serde(default, skip_serializing_if = "is_false")]
        action: bool,
    },
    /// An action (`* nick msg`).
    Me {
        msg: Str<'a>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<Str<'a>>,
    },
    /// A private message.
    #[serde(alias = "private")]
    Msg {
        to: Str<'a>,
        msg: Str<'a>,
        #[serde(default, skip_serializing_if = "is_false")]
        action: bool,
    },
    /// Leave the current room and enter `room` (`key` for a `+k` room);
    /// `switch: false` stays in the other rooms, as IRC users do.
    Join {
        room: Str<'a>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<Str<'a>>,
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        switch: bool,
    },
    /// Leave a room (default: the current one).
    Part {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<Str<'a>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<Str<'a>>,
    },
    /// Who is in a room (default: the current one).
    Who {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<Str<'a>>,
    },
    /// One page of the room list: the rooms after `after` (a page's `next`).
    Rooms {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<Str<'a>>,
    },
    /// The room list with topics.
    List,
    /// Part of a room's history (default: the current room, the last
    /// lines); `before`/`after`: a message id or a time in ms.
    History {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<Str<'a>>,
        /// The private lines with this person instead of a room's (kept
        /// between two logged-in accounts).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        with: Option<Str<'a>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<Point<'a>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<Point<'a>>,
    },
    /// Change nickname.
    Nick { nick: Str<'a> },
    /// Show the topic of a room (default: the current one), or set it
    /// (`""` clears it).
    Topic {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<Str<'a>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topic: Option<Str<'a>>,
    },
    /// Put `nick` out of a room (operators).
    Kick {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<Str<'a>>,
        nick: Str<'a>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<Str<'a>>,
    },
    /// Change the modes of a room (`"+o bob -v carol +b *!*@host +m"`), or
    /// without `changes` show them.
    Mode {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<Str<'a>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        changes: Option<Str<'a>>,
    },
    /// Invite `nick` into a room.
    Invite {
        nick: Str<'a>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<Str<'a>>,
    },
    /// Go away with `text`, or (without it) come back.
    Away {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<Str<'a>>,
    },
    /// Everything about one person.
    Whois { nick: Str<'a> },
    /// A notice to a person or (`#room`) a room.
    Notice { to: Str<'a>, msg: Str<'a> },
    /// The answer to a `ping`.
    #[serde(alias = "pong")]
    Keep,
    /// The command list.
    Help,
    /// Leave the server.
    #[serde(alias = "exit")]
    Quit {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<Str<'a>>,
    },
}

/// Every command name with its fields, for the `help` event and the docs.
pub const COMMANDS: &[(&str, &str)] = &[
    ("login", "{\"cmd\":\"login\",\"nick\":N[,\"password\":P]}"),
    ("register", "{\"cmd\":\"register\",\"password\":P}"),
    ("register_room", "{\"cmd\":\"register_room\"[,\"room\":R]}"),
    (
        "chat",
        "{\"cmd\":\"chat\",\"msg\":M[,\"room\":R][,\"action\":true]}",
    ),
    ("me", "{\"cmd\":\"me\",\"msg\":M[,\"room\":R]}"),
    ("msg", "{\"cmd\":\"msg\",\"to\":NICK,\"msg\":M}"),
    (
        "join",
        "{\"cmd\":\"join\",\"room\":R[,\"key\":K][,\"switch\":false]}",
    ),
    ("part", "{\"cmd\":\"part\"[,\"room\":R]}"),
    ("who", "{\"cmd\":\"who\"[,\"room\":R]}"),
    ("rooms", "{\"cmd\":\"rooms\"[,\"after\":R]}"),
    ("list", "{\"cmd\":\"list\"} (rooms with topics)"),
    (
        "history",
        "{\"cmd\":\"history\"[,\"room\":R][,\"limit\":N][,\"before\":ID|MS][,\"after\":ID|MS]}",
    ),
    ("nick", "{\"cmd\":\"nick\",\"nick\":N}"),
    (
        "topic",
        "{\"cmd\":\"topic\"[,\"room\":R][,\"topic\":T]} (\"\" clears)",
    ),
    (
        "kick",
        "{\"cmd\":\"kick\"[,\"room\":R],\"nick\":N[,\"reason\":T]}",
    ),
    (
        "mode",
        "{\"cmd\":\"mode\"[,\"room\":R][,\"changes\":\"+o N -v N +b MASK +m\"]}",
    ),
    ("invite", "{\"cmd\":\"invite\",\"nick\":N[,\"room\":R]}"),
    ("away", "{\"cmd\":\"away\"[,\"text\":T]} (no text: back)"),
    ("whois", "{\"cmd\":\"whois\",\"nick\":N}"),
    ("notice", "{\"cmd\":\"notice\",\"to\":NICK|#ROOM,\"msg\":M}"),
    ("keep", "{\"cmd\":\"keep\"} (answers ping; also \"pong\")"),
    ("help", "{\"cmd\":\"help\"}"),
    ("quit", "{\"cmd\":\"quit\"[,\"reason\":R]} (also \"exit\")"),
];

/// The password of a `login` command, if it has one: a field [`Cmd::Login`]
/// leaves out, so that a plain login stays `{"cmd":"login","nick":N}`.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LoginPassword<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Str<'a>>,
}

impl std::fmt::Debug for LoginPassword<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginPassword(..)")
    }
}

/// A point in history: a message id, or a time in ms since the epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Point<'a> {
    Time(u64),
    Id(Str<'a>),
}

/// The other names [`Cmd`] accepts (its `serde(alias)`es).
pub const ALIASES: &[&str] = &["private", "pong", "exit"];

impl<'a> Cmd<'a> {
    /// `{"cmd":"chat","msg":…}`: say `msg` in the current room.
    pub fn chat(msg: impl Into<Str<'a>>) -> Cmd<'a> {
        Cmd::Chat {
            msg: msg.into(),
            room: None,
            action: false,
        }
    }

    /// True if `name` is a command (or an alias of one).
    pub fn is_known(name: &str) -> bool {
        COMMANDS.iter().any(|(n, _)| *n == name) || ALIASES.contains(&name)
    }

    /// The command as one JSON object, without a line ending.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a command always serializes")
    }

    /// Appends the command and `\r\n` to `out`.
    pub fn write_line(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.to_json().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// One server line: an [`Event`] and the server time it happened, `ts`
/// (milliseconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped<'a> {
    #[serde(flatten)]
    pub event: Event<'a>,
    pub ts: u64,
}

/// Parses one server line (for clients and tests): `None` for anything that
/// is not an event this module knows, such as the text banner sent before
/// the protocol is detected, or a type from a newer server.
pub fn parse_event(line: &str) -> Option<Stamped<'static>> {
    serde_json::from_str(line.trim()).ok()
}

/// An event, server → client: `{"type": NAME, …fields}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event<'a> {
    /// On switching to JSON.
    Welcome { server: Str<'a>, online: u64 },
    /// The login was accepted.
    Registered { nick: Str<'a>, online: u64 },
    /// `nick` entered `room`, which now has `members` people.
    Joined {
        room: Str<'a>,
        nick: Str<'a>,
        members: u64,
    },
    /// `nick` left `room`.
    Left {
        room: Str<'a>,
        nick: Str<'a>,
        members: u64,
        reason: Option<Str<'a>>,
    },
    /// `nick` left the server.
    Quit { nick: Str<'a>, reason: Str<'a> },
    /// A line said in a room.
    Message {
        id: Str<'a>,
        seq: u64,
        room: Str<'a>,
        from: Str<'a>,
        text: Str<'a>,
        action: bool,
    },
    /// A private message to or from the reader.
    Private {
        id: Str<'a>,
        from: Str<'a>,
        to: Str<'a>,
        text: Str<'a>,
        action: bool,
    },
    /// A nickname change.
    Nick { old: Str<'a>, new: Str<'a> },
    /// Who is in a room (`nicks` sorted). `ops` and `voiced` are always
    /// sent today; the older nicks-only form had neither.
    Presence {
        room: Str<'a>,
        nicks: Vec<Str<'a>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ops: Option<Vec<Str<'a>>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        voiced: Option<Vec<Str<'a>>>,
        /// Members of the room in all (the listing may come in pages).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
    },
    /// Topic shown on joining (`changed: false`, with `by` and `set_at` when
    /// there is one) or changed by `by` (`changed: true`).
    Topic {
        room: Str<'a>,
        topic: Option<Str<'a>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Str<'a>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        set_at: Option<u64>,
        changed: bool,
    },
    /// `by` put `nick` out of `room`.
    Kicked {
        room: Str<'a>,
        by: Str<'a>,
        nick: Str<'a>,
        reason: Option<Str<'a>>,
        members: u64,
    },
    /// `by` changed the modes of `room` (`"+o bob +k *"`).
    Mode {
        room: Str<'a>,
        by: Str<'a>,
        changes: Str<'a>,
    },
    /// The modes of a room, when asked.
    Modes {
        room: Str<'a>,
        modes: Str<'a>,
        created: u64,
    },
    /// The ban list of a room, when asked.
    Bans { room: Str<'a>, bans: Vec<Ban<'a>> },
    /// `nick` went away (`text`) or came back (`null`).
    Away {
        nick: Str<'a>,
        text: Option<Str<'a>>,
    },
    /// The reader is now away (`true`) or back.
    AwayStatus { away: bool },
    /// `by` invited `nick` into `room`.
    Invited {
        room: Str<'a>,
        by: Str<'a>,
        nick: Str<'a>,
    },
    /// A notice to a room or to the reader (the other is `null`).
    Notice {
        id: Str<'a>,
        from: Str<'a>,
        room: Option<Str<'a>>,
        to: Option<Str<'a>>,
        text: Str<'a>,
    },
    /// The room list.
    Rooms {
        rooms: Vec<RoomEntry<'a>>,
        /// How many rooms there are (on a paged list).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
        /// Ask for the next page with `{"cmd":"rooms","after":next}`
        /// (null on the last page).
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        next: Option<Option<Str<'a>>>,
    },
    /// The command list.
    Help { commands: Vec<Usage<'a>> },
    /// A human-readable notice.
    Info { text: Str<'a> },
    /// Something the reader sent was refused, with what it is about.
    Error {
        code: Str<'a>,
        message: Str<'a>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nick: Option<Str<'a>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<Str<'a>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        command: Option<Str<'a>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<Str<'a>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mask: Option<Str<'a>>,
    },
    /// Part of a room's history, oldest first (`more`: there is more;
    /// `replay`: shown on joining rather than asked for).
    History {
        /// The room, or the person of a private history (then `with` too).
        room: Str<'a>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        with: Option<Str<'a>>,
        messages: Vec<Stamped<'a>>,
        more: bool,
        replay: bool,
    },
    /// Heartbeat: answer with [`Cmd::Keep`].
    Ping { token: u64 },
    /// The server is stopping.
    Shutdown { reason: Str<'a> },
    /// Detailed members of a room, or of people matching `mask`.
    Who {
        mask: Str<'a>,
        room: Option<Str<'a>>,
        members: Vec<Member<'a>>,
    },
    /// Everything about one person.
    Whois {
        nick: Str<'a>,
        user: Str<'a>,
        host: Str<'a>,
        realname: Str<'a>,
        rooms: Vec<Str<'a>>,
        away: Option<Str<'a>>,
        idle: u64,
        signon: u64,
        /// The account they are logged in to (absent: none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account: Option<Str<'a>>,
    },
    /// Server statistics.
    Stats {
        users: u64,
        unregistered: u64,
        rooms: u64,
    },
    /// The reader's user modes.
    UserModes { nick: Str<'a>, modes: Str<'a> },
    /// The reader is logged in to `account` (`created`: just registered);
    /// `nick` is null until they have one.
    LoggedIn {
        account: Str<'a>,
        nick: Option<Str<'a>>,
        created: bool,
    },
    /// The reader's nick belongs to an account they are not logged in to:
    /// log in within `grace` seconds or be renamed.
    NickProtected { nick: Str<'a>, grace: u64 },
    /// The reader was renamed from `old` (an account's nick) to `new`.
    Renamed { old: Str<'a>, new: Str<'a> },
    /// `room` is now registered, with `founder` as its founder.
    RoomRegistered { room: Str<'a>, founder: Str<'a> },
}

/// A room in a `rooms` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomEntry<'a> {
    pub room: Str<'a>,
    pub members: u64,
    /// Only in the detailed listing (`Some(None)`: no topic, sent as `null`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub topic: Option<Option<Str<'a>>>,
}

/// A command in a `help` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage<'a> {
    pub cmd: Str<'a>,
    pub usage: Str<'a>,
}

/// A ban in a `bans` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban<'a> {
    pub mask: Str<'a>,
    pub by: Str<'a>,
    pub at: u64,
}

/// A member in a `who` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member<'a> {
    pub nick: Str<'a>,
    pub user: Str<'a>,
    pub host: Str<'a>,
    pub realname: Str<'a>,
    pub away: bool,
    pub op: bool,
    pub voice: bool,
}

/// The `help` event's list, from [`COMMANDS`].
pub fn usages() -> Vec<Usage<'static>> {
    COMMANDS
        .iter()
        .map(|&(cmd, usage)| Usage {
            cmd: cmd.into(),
            usage: usage.into(),
        })
        .collect()
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_true(b: &bool) -> bool {
    *b
}

fn yes() -> bool {
    true
}

/// A field that is there, even as `null` (absent: `None`, by `default`).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_name_and_alias_is_a_cmd() {
        for name in COMMANDS
            .iter()
            .map(|(n, _)| *n)
            .chain(ALIASES.iter().copied())
        {
            assert!(Cmd::is_known(name));
            // Fields are what may be missing, never the name.
            let line = format!(r#"{{"cmd":"{name}"}}"#);
            if let Err(e) = serde_json::from_str::<Cmd>(&line) {
                assert!(e.to_string().contains("missing field"), "{name}: {e}");
            }
        }
        assert!(!Cmd::is_known("dance"));
        assert!(serde_json::from_str::<Cmd>(r#"{"cmd":"dance"}"#).is_err());
    }

    #[test]
    fn commands_leave_out_what_is_not_given() {
        for (cmd, want) in [
            (Cmd::chat("hi"), r#"{"cmd":"chat","msg":"hi"}"#),
            (
                Cmd::Chat {
                    msg: "hi".into(),
                    room: Some("rust".into()),
                    action: true,
                },
                r#"{"cmd":"chat","msg":"hi","room":"rust","action":true}"#,
            ),
            (
                Cmd::Part {
                    room: None,
                    reason: None,
                },
                r#"{"cmd":"part"}"#,
            ),
            (Cmd::Quit { reason: None }, r#"{"cmd":"quit"}"#),
            (Cmd::Keep, r#"{"cmd":"keep"}"#),
        ] {
            assert_eq!(cmd.to_json(), want);
            assert_eq!(serde_json::from_str::<Cmd>(want).unwrap(), cmd);
        }
    }

    #[test]
    fn room_topics_are_absent_null_or_text() {
        let rooms = r#"{"type":"rooms","rooms":[{"room":"a","members":1},{"room":"b","members":2,"topic":null},{"room":"c","members":3,"topic":"t"}],"ts":1}"#;
        let s = parse_event(rooms).unwrap();
        let Event::Rooms { rooms: r, .. } = &s.event else {
            panic!("{s:?}")
        };
        let topics: Vec<_> = r.iter().map(|r| r.topic.clone()).collect();
        assert_eq!(topics, [None, Some(None), Some(Some("t".into()))]);
        assert_eq!(serde_json::to_string(&s).unwrap(), rooms);
    }
}
