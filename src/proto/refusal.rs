//! Refusals as data: what went wrong (an [`ErrorCode`]) and what it is
//! about (a nick, a room, a mode, a command), never a sentence in one
//! protocol's syntax. Each protocol words them: [`Refusal::describe`] is
//! the plain English that text and JSON share, the text protocol adds
//! its slash-command hints, IRC sends the numeric.

use std::borrow::Cow;
use std::sync::Arc;

use super::{ErrorCode, Name};

/// Something a refusal is about, in the order IRC numerics list them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Nick(Name),
    /// A room, by its bare name (no `#`).
    Room(Name),
    /// The command that was refused (`MODE`, `KICK`, …).
    Command(&'static str),
    Mode(char),
    /// A ban mask.
    Mask(Arc<str>),
    /// A value that was refused (a mode's argument).
    Value(Arc<str>),
}

/// A refusal: a code, what it is about, and optional detail (a rule that
/// was broken, a number) in neutral words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub about: Vec<Subject>,
    pub detail: Option<Cow<'static, str>>,
}

impl Refusal {
    pub fn new(code: ErrorCode) -> Refusal {
        Refusal {
            code,
            about: Vec::new(),
            detail: None,
        }
    }

    pub fn nick(mut self, nick: &str) -> Refusal {
        self.about.push(Subject::Nick(nick.into()));
        self
    }

    /// About a room: its bare name (a `#` someone typed is dropped).
    pub fn room(mut self, room: &str) -> Refusal {
        let bare = room.strip_prefix('#').unwrap_or(room);
        self.about.push(Subject::Room(bare.into()));
        self
    }

    pub fn command(mut self, command: &'static str) -> Refusal {
        self.about.push(Subject::Command(command));
        self
    }

    pub fn mode(mut self, mode: char) -> Refusal {
        self.about.push(Subject::Mode(mode));
        self
    }

    pub fn mask(mut self, mask: &str) -> Refusal {
        self.about.push(Subject::Mask(mask.into()));
        self
    }

    pub fn value(mut self, value: &str) -> Refusal {
        self.about.push(Subject::Value(value.into()));
        self
    }

    pub fn detail(mut self, detail: impl Into<Cow<'static, str>>) -> Refusal {
        self.detail = Some(detail.into());
        self
    }

    /// The nick it is about, if any.
    pub fn about_nick(&self) -> Option<&str> {
        self.about.iter().find_map(|s| match s {
            Subject::Nick(n) => Some(&**n),
            _ => None,
        })
    }

    /// The room it is about, if any (bare name).
    pub fn about_room(&self) -> Option<&str> {
        self.about.iter().find_map(|s| match s {
            Subject::Room(n) => Some(&**n),
            _ => None,
        })
    }

    /// The mode letter it is about, if any.
    pub fn about_mode(&self) -> Option<char> {
        self.about.iter().find_map(|s| match s {
            Subject::Mode(m) => Some(*m),
            _ => None,
        })
    }

    /// Plain English for people (text users, JSON `message`): rooms are
    /// shown as `#room`, as everyone on natter writes them.
    pub fn describe(&self) -> String {
        let nick = self.about_nick().unwrap_or("*");
        let room = self.about_room().map(|r| format!("#{r}"));
        let room = room.as_deref().unwrap_or("that room");
        let detail = self.detail.as_deref();
        use ErrorCode::*;
        match (self.code, detail) {
            (NickInUse, Some(d)) => format!("the nickname {nick} is taken: {d}"),
            (NickInUse, None) => format!("the nickname {nick} is taken"),
            (NoSuchNick, _) => format!("nobody is called {nick}"),
            (NotInRoom, _) if self.about_room().is_none() => "you are not in a room".into(),
            (NotInRoom, _) => format!("you are not in {room}"),
            (NoSuchRoom, _) => format!("there is no room {room}"),
            (Banned, _) => format!("you are banned from {room}"),
            (InviteOnly, _) => format!("{room} is invite-only (+i); ask an operator to invite you"),
            (BadKey, _) => format!("{room} needs a key (+k)"),
            (RoomFull, Some(d)) => format!("{room} is full ({d} people, +l)"),
            (RoomFull, None) => format!("{room} is full (+l)"),
            (CannotSend, Some(d)) => format!("you cannot speak in {room}: {d}"),
            (CannotSend, None) => format!("you cannot speak in {room}"),
            (ChanOpNeeded, _) => format!("you need to be an operator (+o) in {room}"),
            (UserNotInRoom, _) => format!("{nick} is not in {room}"),
            (UserInRoom, _) => format!("{nick} is already in {room}"),
            (ListFull, Some(d)) => format!("the ban list of {room} is full ({d})"),
            (UnknownMode, _) | (UnknownUserMode, _) => match self.about_mode() {
                Some(m) => format!("unknown mode {m}"),
                None => "unknown mode".into(),
            },
            (UsersDontMatch, _) => "you can only change your own modes".into(),
            (NotRegistered, _) => "pick a nickname first".into(),
            (AlreadyRegistered, _) => "you already have a nickname".into(),
            (EmptyMessage, _) => "empty message".into(),
            (PasswordMismatch, _) => "password incorrect".into(),
            (AuthFailed, _) => "wrong account or password".into(),
            (Throttled, _) => "too many failed logins; wait a while and try again".into(),
            (AccountExists, _) => format!("{nick} is registered already"),
            (NickRegistered, _) => format!("{nick} is a registered nickname: log in to use it"),
            (NotLoggedIn, Some(d)) => format!("log in to an account first: {d}"),
            (NotLoggedIn, None) => "log in to an account first".into(),
            (RoomRegistered, _) => format!("{room} is registered already"),
            (BadPassword, Some(d)) => format!("unusable password: {d}"),
            (_, Some(d)) => d.to_string(),
            (code, None) => code.as_str().replace('_', " "),
        }
    }
}
