//! The shared vocabulary of every protocol: the [`Command`]s a client can
//! give, the [`Event`]s the hub sends back, and the codecs that turn bytes
//! into one and the other. Nothing outside this module knows what a protocol
//! looks like on the wire.

pub mod account;
pub mod fact;
pub mod framer;
pub mod fuzzing;
pub mod ids;
pub mod irc;
pub mod json;
pub mod json_stream;
pub mod limits;
pub mod line;
pub mod listing;
pub mod oper;
pub mod original;
pub mod refusal;
pub mod sanitize;
pub mod scram;
pub mod session;
pub mod text;
pub mod wildcard;

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use account::{AccountEvent, AccountRequest, Password};
pub use fact::{Anchor, Fact, FactBody, History, HistoryQuery};
pub use ids::{ConnId, IdGen, MsgId, NodeId};
pub use refusal::{Refusal, Subject};

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
    /// Enter a room. `switch`: leave the current room first (text users
    /// are in one room at a time, JSON users too unless they join with
    /// `"switch":false`; IRC users may be in several).
    Join { room: String, switch: bool },
    /// Leave a room (`None`: the current one).
    Part {
        room: Option<String>,
        reason: Option<String>,
    },
    /// Who is in a room (`None`: the current one).
    Who { room: Option<String> },
    /// One page of the list of rooms: those after the room `after`.
    Rooms { after: Option<String> },
    /// Change nickname.
    Nick { new: String },
    /// Leave the server.
    Quit { reason: Option<String> },
    /// [`Command::Join`] with a room key (`+k`), for protocols that can give one.
    JoinWithKey {
        room: String,
        key: Option<String>,
        switch: bool,
    },
    /// A notice: like a message, but never answered with an error (IRC
    /// `NOTICE`), to a room or a person.
    Notice { target: Target, text: String },
    /// Show (`text: None`) or set the topic of a room (`Some("")` clears it).
    Topic { room: String, text: Option<String> },
    /// Change room modes; no changes: show them. `+b` with no argument lists bans.
    RoomMode {
        room: String,
        changes: Vec<ModeChange>,
    },
    /// Show (`modes: None`) or change your own user modes (only `+i`).
    UserMode { nick: String, modes: Option<String> },
    /// Put `nick` out of `room` (room operators only).
    Kick {
        room: String,
        nick: String,
        reason: Option<String>,
    },
    /// Invite `nick` into `room`: lets them past `+i`, `+k` and `+l` once.
    Invite { nick: String, room: String },
    /// Mark yourself away (`Some`, non-empty) or back (`None`).
    Away { text: Option<String> },
    /// Everything about one person.
    Whois { nick: String },
    /// Members of a room, or people whose `nick!user@host` matches a mask
    /// (`Target::Person`), with details.
    WhoDetail { target: Target },
    /// Rooms with their topics (`None`: all of them); the terms are IRC
    /// `LIST` arguments: names, masks and ELIST conditions (see
    /// [`listing::RoomFilter`]).
    List { rooms: Option<Vec<String>> },
    /// Server statistics (people, connections, rooms).
    Lusers,
    /// Who this connection is (sent by its protocol session before
    /// registering): username, real name, and whether to join the default
    /// room on registering.
    Identify(Profile),
    /// Would this nick be accepted now? Answered with a refusal, or nothing.
    CheckNick { nick: String },
    /// The server checked this connection's password for `account` (or
    /// just `created` it): it is now logged in. Sent by the server, never
    /// decoded from a client.
    Authenticated { account: String, created: bool },
    /// Register a room (`None`: the current one) with the sender, who must
    /// be logged in and an operator there, as founder.
    RegisterRoom { room: Option<String> },
    /// The grace period for the registered nick `nick` is over: if the
    /// connection still has it and is not logged in to it, it is renamed.
    /// Sent by the server's timer.
    NickGrace { nick: String },
    /// The members of several rooms at once, in one answer (IRC `NAMES
    /// #a,#b`): rooms that do not exist, or are secret to an outsider, are
    /// left out.
    Names { rooms: Vec<String> },
    /// `nick!user@host` (and away, operator) of up to a few people.
    UserHost { nicks: Vec<String> },
    /// Which of these nicks are online.
    IsOn { nicks: Vec<String> },
    /// Who recently had `nick` (people who left or changed nick), newest
    /// first; at most `count` entries (`None`: all that are kept).
    WhoWas { nick: String, count: Option<usize> },
    /// Leave every room (IRC `JOIN 0`).
    PartAll,
    /// Become a server operator as the oper block `name`. The protocol
    /// session has checked the password and host before asking.
    OperUp { name: String },
    /// Disconnect `nick` (server operators only).
    Kill { nick: String, reason: String },
    /// A message to every person with user mode `+w` (server operators only).
    Wallops { text: String },
    /// Reload the configuration file (server operators only).
    Rehash,
    /// Shut the server down (server operators only, when `oper_die` allows).
    Die,
    /// `command` (a message, notice) carrying client-only tags that go with
    /// it to recipients who take tags (IRCv3 `message-tags`).
    Tagged {
        tags: ClientTags,
        command: Box<Command>,
    },
    /// Tags and nothing else, to a room or a person (IRCv3 `TAGMSG`: typing
    /// notifications, reactions).
    TagMsg { target: Target, tags: ClientTags },
    /// The user read `target` up to `at` (a server-time timestamp, IRCv3
    /// `draft/read-marker`): kept for its account, if logged in.
    MarkRead { target: String, at: String },
    /// Put me back in the rooms my account keeps (`rejoin_on_login`),
    /// once registered: the IRC session asks at the end of its welcome.
    Rejoin,
    /// Be told when people come online or leave (IRCv3 `MONITOR`).
    Monitor(Monitor),
    /// Also be told when watched people go away or change their real name,
    /// even with no room in common (IRCv3 `extended-monitor`).
    WatchDetails { on: bool },
    /// Change your real name (IRCv3 `SETNAME`).
    SetName { realname: String },
    /// The rooms you are invited into and have not entered yet.
    Invites,
    /// Say something to a room's operators only (`voiced`: and its voiced
    /// members), as a message or a notice (IRC `PRIVMSG @#room`).
    SayToStatus {
        room: String,
        text: String,
        action: bool,
        notice: bool,
        voiced: bool,
    },
}

/// What a [`Command::Monitor`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Monitor {
    /// Watch these nicks (answered with who of them is on and off line).
    Add(Vec<String>),
    /// Stop watching these nicks.
    Remove(Vec<String>),
    /// Stop watching anyone.
    Clear,
    /// The nicks being watched.
    List,
    /// Who of the watched nicks is on and off line.
    Status,
}

/// Client-only tags (`+typing=active`): (key with its `+`, unescaped value)
/// pairs the server relays untouched.
pub type ClientTags = Arc<[(Arc<str>, Arc<str>)]>;

/// Most targets a read marker is kept for, per connection (guests) or
/// per account.
pub const MAX_MARKERS: usize = 1000;

/// A room or a person (or a mask of people), as a command names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Room(String),
    Person(String),
}

/// Who a connection is, as IRC shows it, and how it wants to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Username (IRC ident), e.g. `~alice`, or `text` / `json`.
    pub user: Name,
    /// Free-form "real name".
    pub realname: Name,
    /// Put the newcomer in the default room as soon as they register.
    pub auto_join: bool,
    /// Keep the rooms this person is in for their account, and put them
    /// back in the account's rooms when they log in (`rejoin_on_login`).
    pub rejoin: bool,
}

/// What a session should do after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Continue,
    /// The command was refused (the refusal is on its way to the client).
    Refused,
    /// The client quit: flush its queue and close.
    Close,
}

/// One room mode change: `+o bob`, `-k`, `+b *!*@host`. `mode` is the IRC
/// letter (`o v k l b i m n t`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeChange {
    pub add: bool,
    pub mode: char,
    pub arg: Option<Arc<str>>,
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
    /// A room operator (`+o`) is needed for that.
    ChanOpNeeded,
    /// Banned from the room (`+b`).
    Banned,
    /// The room is invite-only (`+i`).
    InviteOnly,
    /// The room key (`+k`) was missing or wrong.
    BadKey,
    /// The room is at its member limit (`+l`).
    RoomFull,
    /// The room does not let you speak (`+m`, `+n`, or banned).
    CannotSend,
    /// The person named is not in that room.
    UserNotInRoom,
    /// The person named is already in that room.
    UserInRoom,
    /// A mode letter the server does not know.
    UnknownMode,
    /// The ban list is full.
    ListFull,
    /// Too many rooms at once.
    TooManyRooms,
    /// The server password (IRC `PASS`) was missing or wrong.
    PasswordMismatch,
    /// Changing somebody else's user modes.
    UsersDontMatch,
    /// A user mode letter the server does not know.
    UnknownUserMode,
    /// The server could not store what was asked (history, accounts).
    StoreFailed,
    /// The client sent more than its receive queue holds (`recvq`).
    ExcessFlood,
    /// No more rooms can be created now: the server has `max_rooms`, or
    /// this person created `rooms_per_minute` of them lately.
    RoomLimit,
    /// Wrong account or password.
    AuthFailed,
    /// Too many wrong passwords: wait and try again.
    Throttled,
    /// An account with that name exists already.
    AccountExists,
    /// The nick belongs to an account the sender is not logged in to.
    NickRegistered,
    /// That needs being logged in to an account.
    NotLoggedIn,
    /// The room is registered already.
    RoomRegistered,
    /// A password too short or too long.
    BadPassword,
    /// A mode's argument is not valid (`+l abc`, a key with spaces).
    InvalidModeParam,
    /// Only server operators may do that.
    NoPrivileges,
    /// No oper block for that name, or not from this host, or a wrong
    /// password.
    NoOperHost,
    /// Nobody had that nick recently (`WHOWAS`).
    WasNoSuchNick,
    /// The list of watched nicks is full (`MONITOR`); the detail says how many.
    MonListFull,
    /// The server does not allow that at all (e.g. `DIE` when `oper_die` is off).
    Disabled,
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
            ErrorCode::ChanOpNeeded => "chanop_needed",
            ErrorCode::Banned => "banned",
            ErrorCode::InviteOnly => "invite_only",
            ErrorCode::BadKey => "bad_key",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::CannotSend => "cannot_send",
            ErrorCode::UserNotInRoom => "user_not_in_room",
            ErrorCode::UserInRoom => "user_in_room",
            ErrorCode::UnknownMode => "unknown_mode",
            ErrorCode::ListFull => "list_full",
            ErrorCode::TooManyRooms => "too_many_rooms",
            ErrorCode::PasswordMismatch => "password_mismatch",
            ErrorCode::UsersDontMatch => "users_dont_match",
            ErrorCode::UnknownUserMode => "unknown_user_mode",
            ErrorCode::StoreFailed => "store_failed",
            ErrorCode::ExcessFlood => "excess_flood",
            ErrorCode::RoomLimit => "room_limit",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::Throttled => "throttled",
            ErrorCode::AccountExists => "account_exists",
            ErrorCode::NickRegistered => "nick_registered",
            ErrorCode::NotLoggedIn => "not_logged_in",
            ErrorCode::RoomRegistered => "room_registered",
            ErrorCode::BadPassword => "bad_password",
            ErrorCode::InvalidModeParam => "invalid_mode_param",
            ErrorCode::NoPrivileges => "no_privileges",
            ErrorCode::NoOperHost => "no_oper_host",
            ErrorCode::WasNoSuchNick => "was_no_such_nick",
            ErrorCode::MonListFull => "monitor_list_full",
            ErrorCode::Disabled => "disabled",
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
    /// A line said in a room; `seq` is its place in the room's order.
    Message {
        id: MsgId,
        seq: u64,
        room: Name,
        from: Name,
        text: Arc<str>,
        action: bool,
    },
    /// A private line between two people (delivered to both).
    Private {
        id: MsgId,
        from: Name,
        to: Name,
        text: Arc<str>,
        action: bool,
    },
    /// Somebody changed nickname.
    NickChanged { old: Name, new: Name },
    /// A page of the rooms there are (`total` in all), with member counts;
    /// `next`: the room the next page follows (`None`: this is the last).
    RoomList {
        rooms: Vec<(Name, usize)>,
        next: Option<Name>,
        total: usize,
    },
    /// Help text: (command, explanation) pairs.
    Help,
    /// A human-readable notice from the server.
    Info { text: Cow<'static, str> },
    /// Are you alive? (JSON and IRC clients answer.)
    Ping { token: u64 },
    /// The server is going down.
    Shutdown { reason: Cow<'static, str> },
    /// Who is in a room, with their room status: sent to a newcomer and on
    /// `who`/`NAMES`.
    Members {
        room: Name,
        visibility: Visibility,
        members: MemberList,
    },
    /// A notice (see [`Command::Notice`]) to a room or to one person.
    Notice {
        id: MsgId,
        from: Name,
        room: Option<Name>,
        to: Option<Name>,
        text: Arc<str>,
    },
    /// `nick` set (or, with `None`, cleared) the topic of `room`.
    TopicChanged {
        /// The id the change is stored under (IRC's `msgid`).
        id: MsgId,
        room: Name,
        nick: Name,
        topic: Option<Arc<str>>,
    },
    /// The topic of a room, on joining it (only if set) or when asked.
    TopicInfo {
        room: Name,
        topic: Option<TopicState>,
    },
    /// `nick` put `target` out of `room`, which now has `members` people.
    Kicked {
        room: Name,
        nick: Name,
        target: Name,
        reason: Option<Arc<str>>,
        members: usize,
    },
    /// `nick` changed modes of `room`.
    ModeChanged {
        room: Name,
        nick: Name,
        changes: Vec<ModeChange>,
    },
    /// The modes of a room, when asked (`+` changes; a key is shown to members only).
    RoomModes {
        room: Name,
        modes: Vec<ModeChange>,
        created_ms: u64,
    },
    /// The ban list of a room, when asked.
    BanList {
        room: Name,
        /// Which list: `b` bans, `e` ban exceptions, `I` invite exceptions.
        mode: char,
        bans: Vec<BanInfo>,
    },
    /// Somebody in your rooms went away (`Some`) or came back (`None`).
    Away { nick: Name, text: Option<Arc<str>> },
    /// The person you wrote to is away.
    AwayReply { nick: Name, text: Arc<str> },
    /// You are now away (`true`) or back.
    AwayStatus { away: bool },
    /// `nick` invited `target` into `room` (sent to both).
    Invited {
        room: Name,
        nick: Name,
        target: Name,
    },
    /// Detailed members of a room (`room: Some`) or people matching `mask`.
    WhoReply {
        mask: Name,
        room: Option<Name>,
        members: Vec<MemberInfo>,
    },
    /// Everything about one person (`info: None`: nobody has that nick).
    Whois {
        nick: Name,
        info: Option<Box<WhoisInfo>>,
    },
    /// Rooms with member counts and topics.
    RoomDetails { rooms: Vec<RoomSummary> },
    /// Server statistics.
    Lusers {
        users: usize,
        /// Of `users`, those with user mode `+i`.
        invisible: usize,
        /// Server operators online.
        opers: usize,
        unregistered: usize,
        rooms: usize,
        /// The most people online at once since the server started.
        max_users: usize,
    },
    /// Your user modes (`changed`: they were just changed).
    UserModes {
        nick: Name,
        modes: Arc<str>,
        changed: bool,
    },
    /// Something the client asked for was refused, or went wrong.
    Refused(Refusal),
    /// The members of several rooms (see [`Command::Names`]); `asked`: the
    /// room names as given.
    Names {
        asked: Vec<Name>,
        rooms: Vec<RoomMembers>,
    },
    /// Who these people are (see [`Command::UserHost`]); unknown nicks are left out.
    UserHosts { people: Vec<UserHostInfo> },
    /// Which of the nicks asked about are online, as they spell them.
    IsOn { nicks: Vec<Name> },
    /// Who had `nick` recently, newest first (empty: nobody).
    WhoWas {
        nick: Name,
        entries: Vec<WhoWasInfo>,
    },
    /// You are now a server operator.
    OperUp { nick: Name },
    /// A server operator disconnected you.
    Killed { by: Name, reason: Arc<str> },
    /// A message to people with user mode `+w`.
    Wallops { from: Name, text: Arc<str> },
    /// The configuration is being reloaded.
    Rehashing,
    /// Watched people who are online (`nick!user@host` each).
    MonOnline { people: Vec<Arc<str>> },
    /// Watched nicks that are offline.
    MonOffline { nicks: Vec<Name> },
    /// The nicks being watched.
    MonList { nicks: Vec<Name> },
    /// `nick` changed their real name.
    RealnameChanged { nick: Name, realname: Name },
    /// The rooms you are invited into (see [`Command::Invites`]).
    InviteList { rooms: Vec<Name> },
    /// A line for a room's operators (and voiced members, `voiced`) only.
    StatusMessage {
        id: MsgId,
        room: Name,
        from: Name,
        text: Arc<str>,
        action: bool,
        notice: bool,
        voiced: bool,
    },
    /// Client-only tags from `from` (their tags are on the [`Event`]), to a
    /// room or to one person. Only clients that take tags see it.
    TagMsg {
        id: MsgId,
        from: Name,
        room: Option<Name>,
        to: Option<Name>,
    },
    /// Part of a room's history, oldest first; `more`: older (or, for a
    /// forward query, newer) lines exist. `asked`: an explicit request
    /// (else the replay on joining).
    History {
        room: Name,
        /// The person whose private lines with the asker these are
        /// (`None`: the room's); `room` is then the key they are kept under.
        with: Option<Name>,
        facts: Vec<Fact>,
        more: bool,
        asked: bool,
    },
    /// Accounts: logins, protected nicks, registered rooms.
    Account(AccountEvent),
    /// The rooms the asker is in and the people it has private lines
    /// with, with the time of the newest line, oldest conversation first
    /// (see [`session::TargetsRequest`]); `true`: a room.
    HistoryTargets { targets: Vec<(Name, u64, bool)> },
    /// Read markers of the account the reader is logged in to (folded
    /// target, server-time timestamp): all of them on logging in (`tell`
    /// false: for the session to know), or one that another session of
    /// the account moved (`tell`: shown to clients that take them).
    ReadMarkers {
        marks: Vec<(Name, Arc<str>)>,
        tell: bool,
    },
}

/// Who may see a room listed and its members from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Visibility {
    #[default]
    Public,
    /// `+p`: listed, but not shown in WHOIS to outsiders.
    Private,
    /// `+s`: neither listed nor shown to outsiders.
    Secret,
}

/// One room's members, for [`EventBody::Names`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomMembers {
    pub room: Name,
    pub visibility: Visibility,
    pub members: Vec<MemberInfo>,
}

/// One answer of [`EventBody::UserHosts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserHostInfo {
    pub nick: Name,
    pub user: Name,
    pub host: Name,
    pub away: bool,
    pub oper: bool,
}

/// Someone who had a nick, as they were when they left or changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoWasInfo {
    pub nick: Name,
    pub user: Name,
    pub host: Name,
    pub realname: Name,
    pub left_ms: u64,
}

/// A names list as [`EventBody::Members`] carries it: shared, and each
/// record shared too, so that the hub may keep the list a join showed and
/// the next join copy it (a pointer per member) and add to it (see
/// `hub::room::Room::names_cards`) instead of making every record again.
pub type MemberList = Arc<Vec<Arc<MemberInfo>>>;

/// A [`MemberList`] of these records.
pub fn member_list(members: Vec<MemberInfo>) -> MemberList {
    Arc::new(members.into_iter().map(Arc::new).collect())
}

/// One member of a room as others see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub nick: Name,
    pub user: Name,
    pub host: Name,
    pub realname: Name,
    pub away: bool,
    /// A server operator.
    pub oper: bool,
    /// A bot (user mode `+B`).
    pub bot: bool,
    /// Room operator (`+o`, `@`).
    pub op: bool,
    /// Voiced (`+v`, `+`).
    pub voice: bool,
    /// The account they are logged in to (IRC's WHOX `a` field).
    pub account: Option<Name>,
}

/// A room topic and who set it when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicState {
    pub text: Arc<str>,
    pub set_by: Name,
    pub set_at_ms: u64,
}

/// One ban mask of a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanInfo {
    pub mask: Arc<str>,
    pub set_by: Name,
    pub set_at_ms: u64,
}

/// A room in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSummary {
    pub name: Name,
    pub members: usize,
    pub topic: Option<Arc<str>>,
}

/// The answer to a whois.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoisInfo {
    pub user: Name,
    pub host: Name,
    pub realname: Name,
    /// Rooms with the person's status in each: (room, op, voice).
    pub rooms: Vec<(Name, bool, bool)>,
    pub away: Option<Arc<str>>,
    pub idle_secs: u64,
    pub signon_ms: u64,
    /// The account the person is logged in to.
    pub account: Option<Name>,
    /// A server operator.
    pub oper: bool,
    /// A bot (user mode `+B`).
    pub bot: bool,
    /// Connected over TLS.
    pub secure: bool,
}

impl EventBody {
    /// An error reply with its own words (framing and parse errors).
    pub fn error(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> EventBody {
        EventBody::Refused(Refusal::new(code).detail(message))
    }
}

/// Who did an event, beyond their `nick!user@host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub account: Option<Name>,
    pub realname: Name,
}

/// How one connection wants its events rendered: one cached rendering per
/// flavour is shared by every recipient of a broadcast event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    TextColor = 0,
    TextPlain = 1,
    Json = 2,
    /// IRC lines without tags.
    Irc = 3,
    /// IRC lines with an IRCv3 `@time=` tag (`server-time`).
    IrcTagged = 4,
    /// IRC lines with `msgid` and client-only tags (`message-tags`).
    IrcMsgTags = 5,
    /// Both: `server-time` and `message-tags`.
    IrcAllTags = 6,
}

/// How many flavours there are.
pub const FLAVORS: usize = 7;

/// The largest rendering buffer a thread keeps between events.
const SCRATCH_KEPT: usize = 64 * 1024;

impl Flavor {
    /// The flavour stored as `flavor as u8` (anything else: JSON).
    pub fn from_u8(n: u8) -> Flavor {
        match n {
            0 => Flavor::TextColor,
            1 => Flavor::TextPlain,
            3 => Flavor::Irc,
            4 => Flavor::IrcTagged,
            5 => Flavor::IrcMsgTags,
            6 => Flavor::IrcAllTags,
            _ => Flavor::Json,
        }
    }
}

/// An event plus its server timestamp and its renderings, built once and
/// shared (`Arc`) by every recipient.
#[derive(Debug)]
pub struct Event {
    pub body: EventBody,
    /// Server time, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Who did it, as an IRC source `nick!user@host` (`None`: the server).
    pub source: Option<Arc<str>>,
    /// The doer's account and real name, where IRC shows them
    /// (`account-tag`, `extended-join`).
    pub actor: Option<Box<Actor>>,
    /// Client-only tags the sender attached (messages, notices, `TAGMSG`).
    pub tags: Option<ClientTags>,
    /// Said by a bot (user mode `+B`; IRCv3 `bot` tag).
    pub bot: bool,
    /// The sender's own copy of a line it sent itself (to its own nick):
    /// shown only to clients that asked for their lines back.
    pub echo: bool,
    /// The store ticket that must be durable before anyone sees this
    /// event (0: nothing to wait for).
    gate: AtomicU64,
    cache: [OnceLock<Bytes>; FLAVORS],
}

impl Event {
    /// What one shared event costs in memory besides its renderings: the
    /// struct and its allocation's overhead (about 350 bytes), which a
    /// queue bounded in bytes charges to the event's recipients.
    pub const SHARED_BYTES: usize = std::mem::size_of::<Event>() + 16;

    /// Each recipient's part of [`Event::SHARED_BYTES`] when `recipients`
    /// connections get the event (all of it for one). Worked out once per
    /// event and delivery, not once per recipient.
    pub fn share_among(recipients: usize) -> usize {
        Self::SHARED_BYTES / recipients.max(1)
    }

    pub fn new(body: EventBody) -> Event {
        let at_ms = now_ms();
        Event {
            body,
            at_ms,
            source: None,
            actor: None,
            tags: None,
            bot: false,
            echo: false,
            gate: AtomicU64::new(0),
            cache: Default::default(),
        }
    }

    pub fn shared(body: EventBody) -> Arc<Event> {
        Arc::new(Event::new(body))
    }

    /// An event done by someone whose IRC source is `source` (`nick!user@host`).
    pub fn by(source: Option<Arc<str>>, body: EventBody) -> Arc<Event> {
        let mut ev = Event::new(body);
        ev.source = source;
        Arc::new(ev)
    }

    /// A copy of this event for its sender, marked [`Event::echo`].
    pub fn echo_copy(&self) -> Arc<Event> {
        let mut ev = Event::new(self.body.clone());
        ev.at_ms = self.at_ms;
        ev.source = self.source.clone();
        ev.tags = self.tags.clone();
        ev.bot = self.bot;
        ev.echo = true;
        Arc::new(ev)
    }

    /// The same event carrying client-only tags.
    pub fn with_tags(mut self: Arc<Self>, tags: Option<ClientTags>) -> Arc<Event> {
        if let Some(ev) = Arc::get_mut(&mut self) {
            ev.tags = tags;
        }
        self
    }

    /// The same event marked as said by a bot (or not).
    pub fn from_bot(mut self: Arc<Self>, bot: bool) -> Arc<Event> {
        if let Some(ev) = Arc::get_mut(&mut self) {
            ev.bot = bot;
        }
        self
    }

    /// The same event stamped with time `at_ms` (that of the fact it tells).
    pub fn at(mut self: Arc<Self>, at_ms: u64) -> Arc<Event> {
        if let Some(ev) = Arc::get_mut(&mut self) {
            ev.at_ms = at_ms;
        }
        self
    }

    /// The same event with its doer's account and real name.
    pub fn with_actor(mut self: Arc<Self>, actor: Option<Actor>) -> Arc<Event> {
        if let (Some(ev), Some(a)) = (Arc::get_mut(&mut self), actor) {
            ev.actor = Some(Box::new(a));
        }
        self
    }

    /// The store ticket this event waits for (0: none).
    pub fn gate(&self) -> u64 {
        self.gate.load(Ordering::Relaxed)
    }

    /// Holds this event back until store ticket `ticket` is durable.
    pub fn wait_for(&self, ticket: u64) {
        self.gate.store(ticket, Ordering::Relaxed);
    }

    /// The bytes of this event in `flavor`, rendered at most once.
    ///
    /// It is rendered into a per-thread buffer and copied out at its exact
    /// size: a `Vec` rendered in place grew a few times for longer lines,
    /// and `Bytes::from` a `Vec` whose length is not its capacity
    /// allocates a second block to share it (one more `malloc` and `free`
    /// per event, stop 27).
    pub fn rendered(&self, flavor: Flavor) -> &Bytes {
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        self.cache[flavor as usize].get_or_init(|| {
            SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
                Ok(mut out) => {
                    out.clear();
                    render(self, flavor, &mut out);
                    let bytes = Bytes::copy_from_slice(&out);
                    // A names list of thousands is not kept for the next line.
                    if out.capacity() > SCRATCH_KEPT {
                        *out = Vec::new();
                    }
                    bytes
                }
                // Rendering an event inside another's rendering.
                Err(_) => {
                    let mut out = Vec::new();
                    render(self, flavor, &mut out);
                    Bytes::from(out.into_boxed_slice())
                }
            })
        })
    }

    /// How many bytes this event is written as in `flavor`, rendering it
    /// (once) to know. IRC replies that carry the recipient's nick are
    /// rendered per recipient; their JSON form, which names every field,
    /// stands in for their size.
    pub fn wire_len(&self, flavor: Flavor) -> usize {
        match flavor {
            Flavor::Irc | Flavor::IrcTagged | Flavor::IrcMsgTags | Flavor::IrcAllTags
                if !irc::render::is_shared(&self.body) =>
            {
                self.rendered(Flavor::Json).len()
            }
            f => self.rendered(f).len(),
        }
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
        Flavor::Irc => irc::render::shared(ev, false, out),
        Flavor::IrcTagged => irc::render::shared(ev, true, out),
        Flavor::IrcMsgTags | Flavor::IrcAllTags => {
            let tagging = irc::render::Tagging {
                time: flavor == Flavor::IrcAllTags,
                message_tags: true,
            };
            irc::render::shared_tagged(ev, tagging, out)
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod rendered_tests {
    use super::*;

    /// `Event::rendered` renders into a per-thread buffer it reuses: each
    /// event's bytes are what `render` writes for it alone, whatever was
    /// rendered before it on the thread (longer, shorter, larger than the
    /// buffer the thread keeps, or nothing).
    #[test]
    fn renderings_are_what_render_writes_whatever_came_before() {
        let huge = "y".repeat(SCRATCH_KEPT + 100);
        let details = ["a short one", huge.as_str(), "x", &huge[..300], ""];
        for flavor in [
            Flavor::TextPlain,
            Flavor::TextColor,
            Flavor::Json,
            Flavor::Irc,
        ] {
            for detail in details.iter().chain(details.iter().rev()) {
                let ev = Event::new(EventBody::error(ErrorCode::StoreFailed, detail.to_string()));
                let mut want = Vec::new();
                render(&ev, flavor, &mut want);
                assert_eq!(
                    &ev.rendered(flavor)[..],
                    &want[..],
                    "{flavor:?}, {}",
                    detail.len()
                );
                // (IRC's replies to one client are sized by their JSON
                // form: see `wire_len`.)
                if flavor != Flavor::Irc {
                    assert_eq!(ev.wire_len(flavor), want.len());
                }
            }
        }
        let empty = Event::new(EventBody::History {
            with: None,
            room: "r".into(),
            facts: Vec::new(),
            more: false,
            asked: false,
        });
        assert!(
            empty.rendered(Flavor::TextPlain).is_empty(),
            "nothing to show"
        );
    }
}
