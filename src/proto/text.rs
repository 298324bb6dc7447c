//! The plain-text protocol for people on `telnet` or `nc`: what a typed line
//! means ([`parse`]) and how an event looks on a terminal ([`render`]),
//! optionally with ANSI colours.

use std::io::Write;

use super::listing::{Page, PageBody};
use super::sanitize::strip_controls;
use super::{
    AccountEvent, AccountRequest, Command, ErrorCode, Event, EventBody, MemberInfo, Refusal, Target,
};

/// What a typed line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Something for the hub.
    Command(Command),
    /// Show the command list.
    Help,
    /// Turn colours on or off.
    Color(bool),
    /// Show the current room's last lines (`None`: the usual number).
    History(Option<usize>),
    /// Something for the accounts (register, log in).
    Account(AccountRequest),
    /// Nothing to do (an empty line).
    Nothing,
    /// The line was wrong; tell the user.
    Error(ErrorCode, String),
}

/// The commands, for `/help` and for clients' tab completion.
pub const COMMANDS: &[(&str, &str)] = &[
    ("/help", "this list"),
    ("/who [ROOM]", "who is in the room"),
    (
        "/rooms [FROM]",
        "list rooms (a page; FROM: after that room)",
    ),
    ("/join ROOM", "move to ROOM (created if new)"),
    ("/key ROOM KEY", "move to a ROOM that needs a key (+k)"),
    ("/part", "leave the current room"),
    ("/nick NEW", "change your nickname"),
    ("/me ACTION", "say an action: * you ACTION"),
    ("/msg NICK TEXT", "private message"),
    (
        "/notice NICK|#ROOM TEXT",
        "a notice (never answered automatically)",
    ),
    ("/list", "rooms with their member counts and topics"),
    (
        "/topic [TEXT]",
        "show the room's topic, or set it (-delete clears it)",
    ),
    (
        "/kick NICK [REASON]",
        "put someone out of the room (operators)",
    ),
    (
        "/op NICK",
        "make someone an operator of the room (operators)",
    ),
    ("/deop NICK", "take operator status away (operators)"),
    (
        "/voice NICK",
        "let someone speak when the room is +m (operators)",
    ),
    ("/devoice NICK", "take the voice away (operators)"),
    (
        "/ban MASK",
        "ban nick!user@host (* wildcards) from the room (operators)",
    ),
    ("/unban MASK", "lift a ban (operators)"),
    (
        "/mode [CHANGES]",
        "show the room's modes, or change them: +m +t +i +k KEY +l N",
    ),
    ("/invite NICK [ROOM]", "invite someone (past +i, +k and +l)"),
    ("/away [TEXT]", "mark yourself away; without text: back"),
    ("/whois NICK", "who someone is, their rooms, idle time"),
    ("/history [N]", "the room's last N lines"),
    ("/register PASSWORD", "register your nickname as an account"),
    (
        "/login NICK PASSWORD",
        "log in to an account (and take its nickname)",
    ),
    (
        "/register-room [ROOM]",
        "register a room you operate (keeps topic, modes, bans)",
    ),
    ("/color on|off", "ANSI colours"),
    ("/quit [REASON]", "leave (also: quit, exit)"),
];

/// Parses one line typed by a person. `registered`: whether they have a nick yet.
pub fn parse(line: &str, registered: bool) -> Input {
    let line = line.trim();
    if line.is_empty() {
        return Input::Nothing;
    }
    if line.eq_ignore_ascii_case("quit") || line.eq_ignore_ascii_case("exit") {
        return Input::Command(Command::Quit { reason: None });
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Input::Command(if registered {
            Command::Say {
                room: None,
                text: strip_controls(line),
                action: false,
            }
        } else {
            // The original text room asked for "your nickname + #".
            let nick = line.strip_suffix('#').map_or(line, str::trim_end);
            Command::Register {
                nick: if nick.is_empty() { line } else { nick }.to_string(),
            }
        });
    };
    if rest.starts_with('/') {
        // "//text" says "/text"
        return match registered {
            true => Input::Command(Command::Say {
                room: None,
                text: strip_controls(rest),
                action: false,
            }),
            false => Input::Command(Command::Register {
                nick: line.to_string(),
            }),
        };
    }
    let (cmd, args) = match rest.split_once(char::is_whitespace) {
        Some((c, a)) => (c, a.trim()),
        None => (rest, ""),
    };
    let cmd = cmd.to_ascii_lowercase();
    let opt = |a: &str| (!a.is_empty()).then(|| a.to_string());
    let input = match cmd.as_str() {
        "help" | "h" | "?" => return Input::Help,
        "quit" | "exit" | "q" => Command::Quit {
            reason: opt(args).map(|r| strip_controls(&r)),
        },
        "color" | "colour" | "colors" => {
            return match args.to_ascii_lowercase().as_str() {
                "on" | "" => Input::Color(true),
                "off" => Input::Color(false),
                _ => Input::Error(ErrorCode::BadArguments, "usage: /color on|off".into()),
            }
        }
        "login" | "identify" => {
            return match args.split_once(char::is_whitespace) {
                Some((nick, password)) if !password.trim().is_empty() => {
                    Input::Account(AccountRequest::Login {
                        account: nick.to_string(),
                        password: password.trim().into(),
                    })
                }
                // `/login PASSWORD`: the account of the nickname one has.
                None if registered && !args.is_empty() => Input::Account(AccountRequest::Login {
                    account: String::new(),
                    password: args.into(),
                }),
                _ => usage("/login NICK PASSWORD"),
            };
        }
        _ if !registered => {
            return Input::Error(
                ErrorCode::NotRegistered,
                "pick a nickname first (just type it), or /quit".into(),
            )
        }
        "history" | "hist" => {
            return match args {
                "" => Input::History(None),
                n => match n.parse::<usize>() {
                    Ok(n) if n > 0 => Input::History(Some(n)),
                    _ => Input::Error(ErrorCode::BadArguments, "usage: /history [LINES]".into()),
                },
            }
        }
        "register" => {
            return match args {
                "" => usage("/register PASSWORD"),
                password => Input::Account(AccountRequest::Register {
                    password: password.into(),
                }),
            }
        }
        "register-room" | "registerroom" => Command::RegisterRoom { room: opt(args) },
        "who" | "names" => Command::Who { room: opt(args) },
        "rooms" => Command::Rooms {
            after: one_word(args).map(str::to_string),
        },
        "list" => Command::List { rooms: None },
        "join" | "j" => match one_word(args) {
            Some(room) => Command::Join {
                room: room.to_string(),
                switch: true,
            },
            None => return usage("/join ROOM (one word)"),
        },
        "key" | "joinkey" => match args.split_whitespace().collect::<Vec<_>>()[..] {
            [room, key] => Command::JoinWithKey {
                room: room.to_string(),
                key: Some(key.to_string()),
                switch: true,
            },
            _ => return usage("/key ROOM KEY"),
        },
        "part" | "leave" => Command::Part {
            room: None,
            reason: None,
        },
        "nick" => match one_word(args) {
            Some(n) => Command::Nick { new: n.to_string() },
            None => return usage("/nick NEWNICK (no spaces)"),
        },
        "me" => match args {
            "" => return usage("/me ACTION"),
            a => Command::Say {
                room: None,
                text: strip_controls(a),
                action: true,
            },
        },
        "msg" | "m" | "tell" | "whisper" | "w" => match args.split_once(char::is_whitespace) {
            Some((to, text)) if !text.trim().is_empty() => Command::Private {
                to: to.to_string(),
                text: strip_controls(text.trim()),
                action: false,
            },
            _ => return usage("/msg NICK TEXT"),
        },
        "topic" | "t" => {
            let (room, text) = room_first(args);
            Command::Topic {
                room,
                text: match text {
                    "" => None,
                    "-delete" | "-clear" => Some(String::new()),
                    t => Some(strip_controls(t)),
                },
            }
        }
        "kick" | "k" => {
            let (room, rest) = room_first(args);
            match rest.split_once(char::is_whitespace) {
                Some((nick, reason)) => Command::Kick {
                    room,
                    nick: nick.to_string(),
                    reason: opt(reason.trim()).map(|r| strip_controls(&r)),
                },
                None if !rest.is_empty() => Command::Kick {
                    room,
                    nick: rest.to_string(),
                    reason: None,
                },
                None => return usage("/kick NICK [REASON]"),
            }
        }
        "op" | "deop" | "voice" | "devoice" | "ban" | "unban" => {
            let (room, rest) = room_first(args);
            let (sign, letter) = match cmd.as_str() {
                "op" => ('+', 'o'),
                "deop" => ('-', 'o'),
                "voice" => ('+', 'v'),
                "devoice" => ('-', 'v'),
                "ban" => ('+', 'b'),
                _ => ('-', 'b'),
            };
            let changes: Vec<String> = rest
                .split_whitespace()
                .map(|who| format!("{sign}{letter} {who}"))
                .collect();
            if changes.is_empty() {
                return usage(&format!("/{cmd} NICK"));
            }
            Command::RoomMode {
                room,
                changes: mode_words(&changes.join(" ")),
            }
        }
        "mode" => {
            let (room, changes) = room_first(args);
            Command::RoomMode {
                room,
                changes: mode_words(changes),
            }
        }
        "invite" => match args.split_whitespace().collect::<Vec<_>>()[..] {
            [nick] => Command::Invite {
                nick: nick.to_string(),
                room: String::new(),
            },
            [nick, room] => Command::Invite {
                nick: nick.to_string(),
                room: room.to_string(),
            },
            _ => return usage("/invite NICK [ROOM]"),
        },
        "away" => Command::Away {
            text: opt(args).map(|t| strip_controls(&t)),
        },
        "back" => Command::Away { text: None },
        "whois" => match one_word(args) {
            Some(nick) => Command::Whois {
                nick: nick.to_string(),
            },
            None => return usage("/whois NICK"),
        },
        "notice" => match args.split_once(char::is_whitespace) {
            Some((to, text)) if !text.trim().is_empty() => Command::Notice {
                target: match to.strip_prefix('#') {
                    Some(room) => Target::Room(room.to_string()),
                    None => Target::Person(to.to_string()),
                },
                text: strip_controls(text.trim()),
            },
            _ => return usage("/notice NICK|#ROOM TEXT"),
        },
        _ => {
            return Input::Error(
                ErrorCode::UnknownCommand,
                format!("unknown command /{}; try /help", strip_controls(&cmd)),
            )
        }
    };
    Input::Command(input)
}

/// A leading `#room` names the room a command is about; without one it is
/// the current room (`""`, which the hub fills in).
fn room_first(args: &str) -> (String, &str) {
    match args.split_once(char::is_whitespace) {
        Some((r, rest)) if r.len() > 1 && r.starts_with('#') => (r.to_string(), rest.trim()),
        None if args.len() > 1 && args.starts_with('#') => (args.to_string(), ""),
        _ => (String::new(), args),
    }
}

/// `+o bob -v carol +m` (or IRC's `+ov-m bob carol`) as mode changes:
/// the mode words joined, their arguments in order, read as IRC reads them.
pub fn mode_words(changes: &str) -> Vec<super::ModeChange> {
    let (modes, args): (Vec<&str>, Vec<&str>) = changes
        .split_whitespace()
        .partition(|w| w.starts_with(['+', '-']));
    let modes = modes.concat();
    if modes.is_empty() {
        return Vec::new();
    }
    let mut params = vec![modes.as_str()];
    params.extend(args);
    super::irc::decode::mode_changes(&params)
}

fn one_word(args: &str) -> Option<&str> {
    (!args.is_empty() && !args.contains(char::is_whitespace)).then_some(args)
}

fn usage(u: &str) -> Input {
    Input::Error(ErrorCode::BadArguments, format!("usage: {u}"))
}

const RESET: &str = "\x1b[0m";
const SYSTEM: &str = "\x1b[33m"; // yellow
const ERROR: &str = "\x1b[1;31m"; // bold red
const PRIVATE: &str = "\x1b[35m"; // magenta
const NICK_COLORS: [&str; 6] = [
    "\x1b[31m", "\x1b[32m", "\x1b[34m", "\x1b[36m", "\x1b[91m", "\x1b[92m",
];

/// A stable colour for a nick (FNV-1a over its bytes).
pub fn nick_color_index(nick: &str, n: usize) -> usize {
    let h = nick.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    (h % n as u64) as usize
}

struct Painter<'a> {
    out: &'a mut Vec<u8>,
    color: bool,
}

/// A piece of a line for [`Painter::system_parts`].
enum Part<'a> {
    S(&'a str),
    N(u64),
}

impl Painter<'_> {
    fn paint(&mut self, code: &str, text: &str) {
        if self.color {
            let _ = write!(self.out, "{code}{text}{RESET}");
        } else {
            self.out.extend_from_slice(text.as_bytes());
        }
    }
    fn nick(&mut self, nick: &str) {
        let code = NICK_COLORS[nick_color_index(nick, NICK_COLORS.len())];
        self.paint(code, nick);
    }
    fn raw(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
    }
    fn system(&mut self, text: &str) {
        self.paint(SYSTEM, text);
        self.raw("\r\n");
    }
    /// [`Painter::system`] of text in pieces (strings and numbers), written
    /// straight into the output: the lines every join and registration
    /// shows, without `format!` machinery (what [`Painter::system_fmt`]
    /// would write).
    fn system_parts(&mut self, parts: &[Part<'_>]) {
        self.system_with(|out| {
            for part in parts {
                match *part {
                    Part::S(s) => out.extend_from_slice(s.as_bytes()),
                    Part::N(n) => out.extend_from_slice(crate::digits::decimal(n, &mut [0; 20])),
                }
            }
        });
    }
    /// [`Painter::system`] of formatted text, formatted straight into the
    /// output (no `String` in between).
    fn system_fmt(&mut self, text: std::fmt::Arguments<'_>) {
        self.system_with(|out| {
            let _ = out.write_fmt(text);
        });
    }
    /// A system line whose text `write` puts straight into the output.
    fn system_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        if self.color {
            self.raw(SYSTEM);
        }
        write(self.out);
        if self.color {
            self.raw(RESET);
        }
        self.raw("\r\n");
    }
    /// `*** NICK joined #ROOM (N here)`, or `left` (`did`: " joined #").
    fn presence(&mut self, nick: &str, did: &str, room: &str, members: usize) {
        self.system_parts(&[
            Part::S("*** "),
            Part::S(nick),
            Part::S(did),
            Part::S(room),
            Part::S(" ("),
            Part::N(members as u64),
            Part::S(" here)"),
        ]);
    }
}

/// Renders an event as terminal lines (CRLF, for telnet).
pub fn render(ev: &Event, color: bool, out: &mut Vec<u8>) {
    let mut p = Painter { out, color };
    match &ev.body {
        EventBody::Welcome { server, online } => {
            let who = if *online == 1 { "person" } else { "people" };
            p.system_parts(&[
                Part::S("*** Welcome to "),
                Part::S(server),
                Part::S("! "),
                Part::N(*online as u64),
                Part::S(" "),
                Part::S(who),
                Part::S(" online."),
            ]);
            p.system("*** What is your nickname?");
        }
        EventBody::Registered { nick, online } => {
            p.system_parts(&[
                Part::S("*** You are now known as "),
                Part::S(nick),
                Part::S(". "),
                Part::N(*online as u64),
                Part::S(" online. Type /help for commands."),
            ]);
        }
        EventBody::Joined {
            room,
            nick,
            members,
        } => p.presence(nick, " joined #", room, *members),
        EventBody::Parted {
            room,
            nick,
            members,
            reason,
        } => match reason {
            Some(r) => p.system_fmt(format_args!(
                "*** {nick} left #{room} ({r}) ({members} here)"
            )),
            None => p.presence(nick, " left #", room, *members),
        },
        EventBody::Quit { nick, reason } => {
            p.system_fmt(format_args!("*** {nick} quit ({reason})"))
        }
        EventBody::Message {
            from, text, action, ..
        } => {
            if *action {
                p.raw("* ");
                p.nick(from);
                p.raw(" ");
            } else {
                p.nick(from);
                p.raw(": ");
            }
            p.raw(text);
            p.raw("\r\n");
        }
        EventBody::Private {
            from,
            to,
            text,
            action,
            ..
        } => {
            p.paint(PRIVATE, "[private] ");
            p.nick(from);
            p.raw(" -> ");
            p.nick(to);
            p.raw(if *action { ": * " } else { ": " });
            p.raw(text);
            p.raw("\r\n");
        }
        EventBody::NickChanged { old, new } => {
            p.system_fmt(format_args!("*** {old} is now known as {new}"))
        }
        EventBody::RoomList { rooms, next, total } => {
            let list = rooms
                .iter()
                .map(|(r, n)| format!("#{r} ({n})"))
                .collect::<Vec<_>>();
            let more = match next {
                Some(n) => format!(" … more: /rooms {n}"),
                None => String::new(),
            };
            p.system_fmt(format_args!(
                "*** Rooms ({total}): {}{more}",
                list.join(", ")
            ));
        }
        EventBody::Help => {
            p.system("*** Commands:");
            for (cmd, what) in COMMANDS {
                p.system_fmt(format_args!("***   {cmd:<16} {what}"));
            }
            p.system("***   anything else is said to your room");
        }
        EventBody::Info { text } => p.system_parts(&[Part::S("*** "), Part::S(text)]),
        EventBody::Ping { .. } => {}
        body @ (EventBody::Members { .. }
        | EventBody::WhoReply { .. }
        | EventBody::RoomDetails { .. }) => {
            if let Some(page) = Page::of(body) {
                render_page(&page, color, p.out)
            }
        }
        EventBody::Shutdown { reason } => {
            p.system_fmt(format_args!("*** Server shutting down: {reason}"))
        }
        EventBody::Notice {
            from, room, text, ..
        } => {
            p.raw("-");
            p.nick(from);
            if let Some(r) = room {
                p.raw(&format!(":#{r}"));
            }
            p.raw("- ");
            p.raw(text);
            p.raw("\r\n");
        }
        EventBody::TopicChanged {
            room, nick, topic, ..
        } => match topic {
            Some(t) => p.system_fmt(format_args!("*** {nick} set the topic of #{room}: {t}")),
            None => p.system_fmt(format_args!("*** {nick} cleared the topic of #{room}")),
        },
        EventBody::TopicInfo { room, topic } => match topic {
            Some(t) => p.system_fmt(format_args!(
                "*** Topic of #{room}: {} (set by {})",
                t.text, t.set_by
            )),
            None => p.system_fmt(format_args!("*** #{room} has no topic")),
        },
        EventBody::Kicked {
            room,
            nick,
            target,
            reason,
            members,
        } => p.system_fmt(format_args!(
            "*** {target} was kicked from #{room} by {nick}{} ({members} here)",
            reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )),
        EventBody::ModeChanged {
            room,
            nick,
            changes,
        } => p.system_fmt(format_args!(
            "*** {nick} sets mode {} on #{room}",
            mode_text(changes)
        )),
        EventBody::RoomModes { room, modes, .. } => {
            let m = mode_text(modes);
            p.system_fmt(format_args!(
                "*** #{room} modes: {}",
                if m.is_empty() { "none" } else { &m }
            ))
        }
        EventBody::BanList { room, bans, .. } => {
            let list = bans.iter().map(|b| &*b.mask).collect::<Vec<_>>();
            p.system_fmt(format_args!(
                "*** Bans on #{room} ({}): {}",
                bans.len(),
                list.join(", ")
            ))
        }
        EventBody::Away { nick, text } => match text {
            Some(t) => p.system_fmt(format_args!("*** {nick} is away: {t}")),
            None => p.system_fmt(format_args!("*** {nick} is back")),
        },
        EventBody::AwayReply { nick, text } => {
            p.system_fmt(format_args!("*** {nick} is away: {text}"))
        }
        EventBody::AwayStatus { away } => p.system(if *away {
            "*** You are marked as away"
        } else {
            "*** You are no longer marked as away"
        }),
        EventBody::Invited { room, nick, target } => {
            p.system_fmt(format_args!("*** {nick} invited {target} to #{room}"))
        }
        EventBody::Whois { nick, info } => match info {
            None => {
                p.paint(ERROR, &format!("! nobody is called {nick}"));
                p.raw("\r\n");
            }
            Some(i) => {
                p.system_fmt(format_args!(
                    "*** {nick} ({}@{}): {}",
                    i.user, i.host, i.realname
                ));
                let rooms: Vec<String> = i.rooms.iter().map(|(r, ..)| format!("#{r}")).collect();
                p.system_fmt(format_args!("***   in: {}", rooms.join(" ")));
                if let Some(a) = &i.away {
                    p.system_fmt(format_args!("***   away: {a}"));
                }
                if let Some(a) = &i.account {
                    p.system_fmt(format_args!("***   logged in as {a}"));
                }
                p.system_fmt(format_args!("***   idle {}s", i.idle_secs));
            }
        },
        EventBody::Lusers {
            users,
            unregistered,
            rooms,
            ..
        } => p.system_fmt(format_args!(
            "*** {users} online, {unregistered} connecting, {rooms} rooms"
        )),
        EventBody::UserModes { modes, .. } => p.system_fmt(format_args!("*** Your modes: {modes}")),
        EventBody::Refused(r) => render_refusal(r, color, false, p.out),
        EventBody::Account(a) => render_account(a, &mut p),
        EventBody::Names { rooms, .. } => {
            for r in rooms {
                let nicks: Vec<String> = r.members.iter().map(|m| m.nick.to_string()).collect();
                p.system_fmt(format_args!(
                    "*** In #{} ({}): {}",
                    r.room,
                    nicks.len(),
                    nicks.join(", ")
                ));
            }
        }
        EventBody::UserHosts { people } => {
            for u in people {
                p.system_fmt(format_args!("*** {} is {}@{}", u.nick, u.user, u.host));
            }
        }
        EventBody::IsOn { nicks } => {
            let nicks: Vec<&str> = nicks.iter().map(|n| &**n).collect();
            p.system_fmt(format_args!("*** Online: {}", nicks.join(", ")));
        }
        EventBody::WhoWas { nick, entries } => {
            for e in entries {
                p.system_fmt(format_args!(
                    "*** {nick} was {}@{} ({})",
                    e.user, e.host, e.realname
                ));
            }
        }
        EventBody::OperUp { .. } => p.system("*** You are now a server operator"),
        EventBody::Killed { by, reason } => {
            p.system_fmt(format_args!("*** You were disconnected by {by}: {reason}"))
        }
        EventBody::Wallops { from, text } => {
            p.system_fmt(format_args!("*** [wallops] {from}: {text}"))
        }
        EventBody::Rehashing => p.system("*** Reloading the configuration"),
        EventBody::TagMsg { .. } => {} // tags only: nothing to show
        EventBody::ReadMarkers { .. } => {} // for IRC clients' read markers
        EventBody::HistoryTargets { targets } => {
            let shown: Vec<String> = targets
                .iter()
                .map(|(n, _, room)| match room {
                    true => format!("#{n}"),
                    false => n.to_string(),
                })
                .collect();
            p.system_fmt(format_args!("*** History in: {}", shown.join(", ")))
        }
        EventBody::MonOnline { people } => {
            let people: Vec<&str> = people.iter().map(|p| &**p).collect();
            p.system_fmt(format_args!("*** Online: {}", people.join(", ")))
        }
        EventBody::MonOffline { nicks } | EventBody::MonList { nicks } => {
            let nicks: Vec<&str> = nicks.iter().map(|p| &**p).collect();
            p.system_fmt(format_args!("*** Watched: {}", nicks.join(", ")))
        }
        EventBody::StatusMessage {
            room, from, text, ..
        } => p.system_fmt(format_args!("[#{room} ops] {from}: {text}")),
        EventBody::InviteList { rooms } => {
            let rooms: Vec<String> = rooms.iter().map(|r| format!("#{r}")).collect();
            p.system_fmt(format_args!("*** Invited into: {}", rooms.join(", ")))
        }
        EventBody::RealnameChanged { nick, realname } => {
            p.system_fmt(format_args!("*** {nick} is now called {realname}"))
        }
        EventBody::History {
            room,
            facts,
            more,
            asked,
            ..
        } => {
            if facts.is_empty() {
                if *asked {
                    p.system_fmt(format_args!("*** No history in #{room}"));
                }
                return;
            }
            p.system_fmt(format_args!("*** History of #{room}:"));
            let shown = facts.iter().filter_map(|f| f.event());
            for ev in shown.filter(|ev| !matches!(ev.body, EventBody::TagMsg { .. })) {
                p.paint(SYSTEM, &format!("[{}] ", clock(ev.at_ms)));
                render(&ev, color, p.out);
            }
            match more {
                true => p.system("*** End of history (/history 50 shows more)"),
                false => p.system("*** End of history"),
            }
        }
    }
}

/// What accounts tell a text user.
fn render_account(a: &AccountEvent, p: &mut Painter) {
    match a {
        AccountEvent::LoggedIn {
            account,
            created: true,
            ..
        } => p.system_fmt(format_args!(
            "*** The account {account} is registered and you are logged in to it."
        )),
        AccountEvent::LoggedIn { account, .. } => {
            p.system_fmt(format_args!("*** You are now logged in as {account}."))
        }
        AccountEvent::NickProtected { nick, grace_secs } => p.system_fmt(format_args!(
            "*** {nick} is a registered nickname: /login {nick} PASSWORD within \
             {grace_secs}s, or you will be renamed."
        )),
        AccountEvent::Renamed { old, new } => p.system_fmt(format_args!(
            "*** {old} belongs to an account you are not logged in to: you are now {new}."
        )),
        AccountEvent::RoomRegistered { room, founder } => p.system_fmt(format_args!(
            "*** #{room} is registered, with {founder} as its founder."
        )),
        AccountEvent::Challenge { .. } | AccountEvent::Changed { .. } => {}
    }
}

/// `HH:MM` (UTC) of a time in milliseconds since the epoch.
fn clock(ms: u64) -> String {
    let mins = ms / 60_000;
    format!("{:02}:{:02}", (mins / 60) % 24, mins % 60)
}

/// One page of a long listing as terminal lines: the header line on the
/// first page, then the entries.
pub fn render_page(page: &Page, color: bool, out: &mut Vec<u8>) {
    let mut p = Painter { out, color };
    match page.body {
        PageBody::Names {
            room,
            total,
            members,
            ..
        } => {
            // As `system` would paint `nick, nick, …` after the header,
            // written straight into the output, sized once.
            let nicks: usize = members.iter().map(|m| m.nick.len() + 2).sum();
            p.out.reserve(nicks + room.len() + 32);
            if p.color {
                p.raw(SYSTEM);
            }
            match page.first {
                true => {
                    let _ = write!(p.out, "*** In #{room} ({total}): ");
                }
                false => p.raw("***   "),
            }
            for (i, m) in members.iter().enumerate() {
                if i > 0 {
                    p.raw(", ");
                }
                p.raw(&m.nick);
            }
            if p.color {
                p.raw(RESET);
            }
            p.raw("\r\n");
        }
        PageBody::Who {
            mask,
            total,
            members,
            ..
        } => {
            if page.first {
                p.system_fmt(format_args!("*** Who {mask} ({total}):"));
            }
            for m in members {
                p.system(&who_line(m));
            }
        }
        PageBody::Rooms(rooms) => {
            if page.first {
                p.system("*** Rooms:");
            }
            for r in rooms {
                match &r.topic {
                    Some(t) => p.system_fmt(format_args!("***   #{} ({}): {t}", r.name, r.members)),
                    None => p.system_fmt(format_args!("***   #{} ({})", r.name, r.members)),
                }
            }
        }
    }
}

fn who_line(m: &MemberInfo) -> String {
    let status = match (m.op, m.voice) {
        (true, _) => "@",
        (false, true) => "+",
        _ => "",
    };
    let away = if m.away { " [away]" } else { "" };
    format!(
        "***   {status}{} ({}@{}) {}{away}",
        m.nick, m.user, m.host, m.realname
    )
}

/// A refusal as a text user reads it: the plain words, and the slash
/// command that helps. `registering`: no nickname yet, so a refused one
/// asks for another.
pub fn render_refusal(r: &Refusal, color: bool, registering: bool, out: &mut Vec<u8>) {
    let mut message = r.describe();
    match (r.code, r.about_room()) {
        (ErrorCode::BadKey, Some(room)) => message.push_str(&format!(": /key {room} KEY")),
        (ErrorCode::NotInRoom, None) => message.push_str("; /join ROOM"),
        (ErrorCode::AlreadyRegistered, _) => message.push_str("; use /nick to change it"),
        (ErrorCode::NickInUse | ErrorCode::NickInvalid, _) if registering => {
            message.push_str(". Pick another nickname:")
        }
        (ErrorCode::NickRegistered, _) if registering => message
            .push_str(". Type its password to log in, or an empty line to pick another nickname:"),
        (ErrorCode::NickRegistered, _) => message.push_str(" (/login NICK PASSWORD)"),
        (ErrorCode::AuthFailed | ErrorCode::Throttled, _) if registering => {
            message.push_str(". Pick a nickname:")
        }
        _ => {}
    }
    let mut p = Painter { out, color };
    p.paint(ERROR, &format!("! {message}"));
    p.raw("\r\n");
}

/// `+o bob -k` as a person reads mode changes.
pub fn mode_text(changes: &[crate::proto::ModeChange]) -> String {
    changes
        .iter()
        .map(|c| {
            let sign = if c.add { '+' } else { '-' };
            match &c.arg {
                Some(a) => format!("{sign}{} {a}", c.mode),
                None => format!("{sign}{}", c.mode),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Event;

    /// The lines every join and registration shows, written in pieces
    /// (`Painter::system_parts`), read as the `format!` text they replace,
    /// with and without colour, for numbers of every length.
    #[test]
    fn lines_in_pieces_read_as_formatted() {
        for n in [0usize, 1, 9, 10, 99, 1000, 65_535, usize::MAX] {
            let (nick, room, server): (crate::proto::Name, crate::proto::Name, crate::proto::Name) =
                ("al".into(), "r0".into(), "srv".into());
            let who = if n == 1 { "person" } else { "people" };
            let cases = [
                (
                    EventBody::Welcome {
                        server: server.clone(),
                        online: n,
                    },
                    vec![
                        format!("*** Welcome to {server}! {n} {who} online."),
                        "*** What is your nickname?".to_string(),
                    ],
                ),
                (
                    EventBody::Registered {
                        nick: nick.clone(),
                        online: n,
                    },
                    vec![format!(
                        "*** You are now known as {nick}. {n} online. Type /help for commands."
                    )],
                ),
                (
                    EventBody::Joined {
                        room: room.clone(),
                        nick: nick.clone(),
                        members: n,
                    },
                    vec![format!("*** {nick} joined #{room} ({n} here)")],
                ),
                (
                    EventBody::Parted {
                        room: room.clone(),
                        nick: nick.clone(),
                        members: n,
                        reason: None,
                    },
                    vec![format!("*** {nick} left #{room} ({n} here)")],
                ),
                (
                    EventBody::Info {
                        text: format!("#{room} has {n} people").into(),
                    },
                    vec![format!("*** #{room} has {n} people")],
                ),
            ];
            for (body, lines) in cases {
                let ev = Event::new(body);
                for color in [false, true] {
                    let mut out = Vec::new();
                    render(&ev, color, &mut out);
                    let want: String = lines
                        .iter()
                        .map(|l| match color {
                            true => format!("{SYSTEM}{l}{RESET}\r\n"),
                            false => format!("{l}\r\n"),
                        })
                        .collect();
                    assert_eq!(String::from_utf8(out).unwrap(), want, "{n} {color}");
                }
            }
        }
    }

    fn say(t: &str) -> Input {
        Input::Command(Command::Say {
            room: None,
            text: t.into(),
            action: false,
        })
    }

    #[test]
    fn parses_lines() {
        assert_eq!(parse("hello", true), say("hello"));
        assert_eq!(
            parse("  alice ", false),
            Input::Command(Command::Register {
                nick: "alice".into()
            })
        );
        assert_eq!(
            parse("quit", true),
            Input::Command(Command::Quit { reason: None })
        );
        // The original room's "nickname + #"; a lone "#" or "a#b" is left
        // for the nickname rules to judge, and once registered it is text.
        let register = |n: &str| Input::Command(Command::Register { nick: n.into() });
        assert_eq!(parse("alice#", false), register("alice"));
        assert_eq!(parse("bob #", false), register("bob"));
        assert_eq!(parse("#", false), register("#"));
        assert_eq!(parse("a#b", false), register("a#b"));
        assert_eq!(parse("alice#", true), say("alice#"));
        assert_eq!(
            parse("EXIT", false),
            Input::Command(Command::Quit { reason: None })
        );
        assert_eq!(
            parse("/quit bye all", true),
            Input::Command(Command::Quit {
                reason: Some("bye all".into())
            })
        );
        assert_eq!(parse("", true), Input::Nothing);
        assert_eq!(parse("//slash", true), say("/slash"));
        assert_eq!(
            parse("/msg bob hi there", true),
            Input::Command(Command::Private {
                to: "bob".into(),
                text: "hi there".into(),
                action: false
            })
        );
        assert!(matches!(
            parse("/msg bob", true),
            Input::Error(ErrorCode::BadArguments, _)
        ));
        assert!(matches!(
            parse("/frob", true),
            Input::Error(ErrorCode::UnknownCommand, _)
        ));
        assert!(matches!(
            parse("/who", false),
            Input::Error(ErrorCode::NotRegistered, _)
        ));
        assert_eq!(parse("/color off", false), Input::Color(false));
        assert_eq!(
            parse("/JOIN rust", true),
            Input::Command(Command::Join {
                room: "rust".into(),
                switch: true
            })
        );
        assert_eq!(parse("hi \u{1b}[2Jthere", true), say("hi there"));
    }

    #[test]
    fn renders_with_and_without_colour() {
        let ev = Event::new(EventBody::Message {
            id: crate::proto::MsgId(1),
            seq: 1,
            room: "lobby".into(),
            from: "alice".into(),
            text: "hi".into(),
            action: false,
        });
        let mut plain = Vec::new();
        render(&ev, false, &mut plain);
        assert_eq!(plain, b"alice: hi\r\n");
        let mut colored = Vec::new();
        render(&ev, true, &mut colored);
        assert!(colored.starts_with(b"\x1b["));
        assert!(String::from_utf8(colored).unwrap().contains("alice"));
    }
}
