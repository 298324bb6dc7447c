//! What the user types, as [`Request`]s to the connection: parses one input
//! line (`hello`, `/join rust`, `/msg bob hi`, `/kick bob`, `quit`, ...) the
//! same way for the plain and the TUI front ends. Transport-neutral: each
//! protocol encodes a request its own way. Commands about a room leave it
//! out (`room: None`) unless the user named one; the front end fills in the
//! room being looked at with [`Request::in_room`].

/// Something the user asks the server for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Pick a nickname before registration (the answer to `NeedNick`).
    Login(String),
    /// Say `text` in `room` (`None`: the current one; `action`: `/me`).
    Say {
        room: Option<String>,
        text: String,
        action: bool,
    },
    /// A private message (`action`: `/me` in a private conversation).
    Private {
        to: String,
        text: String,
        action: bool,
    },
    /// A notice to a room or a person (never answered automatically).
    Notice { to: String, text: String },
    /// Enter a room (staying in the others).
    Join(String),
    /// Leave a room (`None`: the current one).
    Part {
        room: Option<String>,
        reason: Option<String>,
    },
    /// Who is in a room (default: the current one).
    Who(Option<String>),
    /// The room list.
    Rooms,
    /// Change nickname.
    Nick(String),
    /// Show (`text: None`) or set the topic; `Some("")` clears it.
    Topic {
        room: Option<String>,
        text: Option<String>,
    },
    /// Put `nick` out of a room (room operators only).
    Kick {
        room: Option<String>,
        nick: String,
        reason: Option<String>,
    },
    /// Change a room's modes (`+o bob`, `-v carol`, `+b mask`, `+m`);
    /// `None`: show them.
    Mode {
        room: Option<String>,
        changes: Option<String>,
    },
    /// Invite `nick` into a room.
    Invite { nick: String, room: Option<String> },
    /// Go away with a message (`Some`) or come back (`None`).
    Away(Option<String>),
    /// Everything about one person.
    Whois(String),
    /// Leave the server and exit.
    Quit(Option<String>),
}

impl Request {
    /// The request with `room` filled in where it names none (commands
    /// typed in a room's window are about that room).
    pub fn in_room(self, current: Option<&str>) -> Request {
        let fill = |r: Option<String>| r.or_else(|| current.map(str::to_string));
        match self {
            Request::Say { room, text, action } => Request::Say {
                room: fill(room),
                text,
                action,
            },
            Request::Part { room, reason } => Request::Part {
                room: fill(room),
                reason,
            },
            Request::Topic { room, text } => Request::Topic {
                room: fill(room),
                text,
            },
            Request::Kick { room, nick, reason } => Request::Kick {
                room: fill(room),
                nick,
                reason,
            },
            Request::Mode { room, changes } => Request::Mode {
                room: fill(room),
                changes,
            },
            Request::Invite { nick, room } => Request::Invite {
                nick,
                room: fill(room),
            },
            other => other,
        }
    }
}

/// What `/ignore` and `/unignore` did, as a line to show.
pub fn ignore(session: &mut super::session::Session, input: &Input) -> Option<String> {
    Some(match input {
        Input::Ignore(None) if session.ignored().is_empty() => "nobody is ignored".into(),
        Input::Ignore(None) => format!("ignored: {}", session.ignored().join(", ")),
        Input::Ignore(Some(n)) if session.ignore(n) => {
            format!("ignoring {n} (here only; /unignore {n} to undo)")
        }
        Input::Ignore(Some(n)) => format!("{n} is already ignored"),
        Input::Unignore(n) if session.unignore(n) => format!("no longer ignoring {n}"),
        Input::Unignore(n) => format!("{n} was not ignored"),
        _ => return None,
    })
}

/// What one input line means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Send this to the server.
    Send(Request),
    /// Show the command list (answered locally).
    Help,
    /// Clear the screen's scrollback (TUI; ignored in plain mode).
    Clear,
    /// Open (or go to) a private conversation with this nick (TUI).
    Query(String),
    /// Close the window looked at: leave its room, or end its private
    /// conversation (TUI).
    Close,
    /// Go to window N, counting from 1 (TUI).
    Window(usize),
    /// Stop showing what a nick says (`None`: list who is ignored).
    Ignore(Option<String>),
    /// Show what a nick says again.
    Unignore(String),
    /// Nothing to do (an empty line).
    Nothing,
    /// A mistake to show the user; nothing is sent.
    Error(String),
}

/// The commands, with usage, for `/help` and tab completion.
pub const COMMANDS: &[(&str, &str)] = &[
    (
        "/join",
        "/join ROOM — enter ROOM (you stay in your other rooms)",
    ),
    ("/part", "/part [REASON] — leave this room"),
    ("/msg", "/msg NICK TEXT — private message"),
    (
        "/query",
        "/query NICK — a window for a private conversation (TUI)",
    ),
    ("/me", "/me ACTION — an action (* you waves)"),
    ("/notice", "/notice NICK|#ROOM TEXT — a notice"),
    ("/nick", "/nick NEW — change nickname"),
    ("/who", "/who [ROOM] — who is in a room"),
    ("/whois", "/whois NICK — everything about someone"),
    ("/rooms", "/rooms — list the rooms"),
    (
        "/topic",
        "/topic [TEXT] — show or set the topic (-delete clears it)",
    ),
    ("/kick", "/kick NICK [REASON] — put someone out (operators)"),
    ("/op", "/op NICK — make someone an operator (operators)"),
    ("/deop", "/deop NICK — take operator status away"),
    ("/voice", "/voice NICK — let someone speak in a +m room"),
    ("/devoice", "/devoice NICK — take voice away"),
    ("/ban", "/ban MASK — ban nick!user@host masks (* wildcards)"),
    ("/unban", "/unban MASK — lift a ban"),
    (
        "/mode",
        "/mode [CHANGES] — show or change room modes (+m, +t …)",
    ),
    ("/invite", "/invite NICK [ROOM] — invite someone in"),
    ("/away", "/away [TEXT] — mark yourself away (no text: back)"),
    (
        "/ignore",
        "/ignore [NICK] — hide what NICK says (here only; no NICK: the list)",
    ),
    ("/unignore", "/unignore NICK — show what NICK says again"),
    ("/back", "/back — no longer away"),
    (
        "/close",
        "/close — close this window (leaves its room) (TUI)",
    ),
    (
        "/win",
        "/win N — go to window N (TUI; also Alt-N, Ctrl-N/P)",
    ),
    ("/clear", "/clear — clear the window"),
    ("/help", "/help — this list"),
    ("/quit", "/quit [REASON] — leave (also: quit, exit)"),
];

/// Parses one line the user typed.
pub fn parse(line: &str) -> Input {
    let line = line.trim_end_matches(['\r', '\n']);
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Input::Nothing;
    }
    if trimmed.eq_ignore_ascii_case("quit") || trimmed.eq_ignore_ascii_case("exit") {
        return Input::Send(Request::Quit(None));
    }
    let Some(rest) = trimmed.strip_prefix('/') else {
        return Input::Send(Request::Say {
            room: None,
            text: line.to_string(),
            action: false,
        });
    };
    if rest.starts_with('/') {
        // `//shrug` says `/shrug`.
        return Input::Send(Request::Say {
            room: None,
            text: rest.to_string(),
            action: false,
        });
    }
    let (name, args) = match rest.split_once(char::is_whitespace) {
        Some((n, a)) => (n, a.trim()),
        None => (rest, ""),
    };
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let usage = |cmd: &str| {
        let u = COMMANDS
            .iter()
            .find(|(c, _)| *c == cmd)
            .map_or(cmd, |(_, u)| u);
        Input::Error(format!("usage: {u}"))
    };
    let send = Input::Send;
    let words: Vec<&str> = args.split_whitespace().collect();
    // `(#room) rest`: a leading channel-like word names the room.
    let (named_room, after_room) = match args.split_once(char::is_whitespace) {
        Some((r, rest)) if is_room(r) => (Some(r.to_string()), rest.trim()),
        None if is_room(args) => (Some(args.to_string()), ""),
        _ => (None, args),
    };
    let mode = |sign: char, letter: char, cmd: &str| {
        let (room, rest) = (named_room.clone(), after_room);
        let nicks: Vec<&str> = rest.split_whitespace().collect();
        if nicks.is_empty() {
            return usage(cmd);
        }
        let changes = nicks
            .iter()
            .map(|n| format!("{sign}{letter} {n}"))
            .collect::<Vec<_>>()
            .join(" ");
        send(Request::Mode {
            room,
            changes: Some(changes),
        })
    };
    match name.to_lowercase().as_str() {
        "join" | "j" => match words.first() {
            Some(room) => send(Request::Join(room.to_string())),
            None => usage("/join"),
        },
        "part" | "leave" => send(Request::Part {
            room: named_room.clone(),
            reason: opt(after_room),
        }),
        "msg" | "m" | "tell" | "w" => match args.split_once(char::is_whitespace) {
            Some((to, text)) if !text.trim().is_empty() => send(Request::Private {
                to: to.to_string(),
                text: text.trim_start().to_string(),
                action: false,
            }),
            _ => usage("/msg"),
        },
        "query" | "q" => match args.split_once(char::is_whitespace) {
            Some((to, text)) if !text.trim().is_empty() => send(Request::Private {
                to: to.to_string(),
                text: text.trim_start().to_string(),
                action: false,
            }),
            _ => match words.first() {
                Some(nick) => Input::Query(nick.to_string()),
                None => usage("/query"),
            },
        },
        "notice" => match args.split_once(char::is_whitespace) {
            Some((to, text)) if !text.trim().is_empty() => send(Request::Notice {
                to: to.to_string(),
                text: text.trim_start().to_string(),
            }),
            _ => usage("/notice"),
        },
        "me" => match opt(args) {
            Some(text) => send(Request::Say {
                room: None,
                text,
                action: true,
            }),
            None => usage("/me"),
        },
        "nick" => match words[..] {
            [n] => send(Request::Nick(n.to_string())),
            _ => usage("/nick"),
        },
        "who" | "names" => send(Request::Who(words.first().map(|s| s.to_string()))),
        "whois" | "wi" => match words[..] {
            [n] => send(Request::Whois(n.to_string())),
            _ => usage("/whois"),
        },
        "rooms" | "list" => send(Request::Rooms),
        "topic" | "t" => send(Request::Topic {
            room: named_room.clone(),
            text: match after_room {
                "" => None,
                "-delete" | "-clear" => Some(String::new()),
                t => Some(t.to_string()),
            },
        }),
        "kick" | "k" => match after_room.split_once(char::is_whitespace) {
            Some((nick, reason)) => send(Request::Kick {
                room: named_room.clone(),
                nick: nick.to_string(),
                reason: opt(reason.trim()),
            }),
            None if !after_room.is_empty() => send(Request::Kick {
                room: named_room.clone(),
                nick: after_room.to_string(),
                reason: None,
            }),
            None => usage("/kick"),
        },
        "op" => mode('+', 'o', "/op"),
        "deop" => mode('-', 'o', "/deop"),
        "voice" => mode('+', 'v', "/voice"),
        "devoice" => mode('-', 'v', "/devoice"),
        "ban" => mode('+', 'b', "/ban"),
        "unban" => mode('-', 'b', "/unban"),
        "mode" => send(Request::Mode {
            room: named_room.clone(),
            changes: opt(after_room),
        }),
        "invite" => match words[..] {
            [nick] => send(Request::Invite {
                nick: nick.to_string(),
                room: None,
            }),
            [nick, room] => send(Request::Invite {
                nick: nick.to_string(),
                room: Some(room.to_string()),
            }),
            _ => usage("/invite"),
        },
        "away" => send(Request::Away(opt(args))),
        "back" => send(Request::Away(None)),
        "close" | "wc" => Input::Close,
        "ignore" => Input::Ignore(words.first().map(|n| n.to_string())),
        "unignore" => match words.first() {
            Some(n) => Input::Unignore(n.to_string()),
            None => usage("/unignore"),
        },
        "win" | "window" => match words.first().and_then(|n| n.parse().ok()) {
            Some(n) if n > 0 => Input::Window(n),
            _ => usage("/win"),
        },
        "quit" | "exit" => send(Request::Quit(opt(args))),
        "help" => Input::Help,
        "clear" => Input::Clear,
        other => Input::Error(format!("unknown command /{other}; try /help")),
    }
}

/// True for a word that names a room the IRC way (`#rust`).
fn is_room(word: &str) -> bool {
    word.len() > 1 && word.starts_with(['#', '&'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(line: &str) -> Request {
        match parse(line) {
            Input::Send(r) => r,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn say(text: &str) -> Request {
        Request::Say {
            room: None,
            text: text.into(),
            action: false,
        }
    }

    #[test]
    fn text_and_commands() {
        assert_eq!(send("hello there "), say("hello there "));
        assert_eq!(send("/join #rust"), Request::Join("#rust".into()));
        assert_eq!(send("/J rust"), Request::Join("rust".into()));
        assert_eq!(
            send("/msg bob  hi there"),
            Request::Private {
                to: "bob".into(),
                text: "hi there".into(),
                action: false
            }
        );
        assert_eq!(
            send("/me waves"),
            Request::Say {
                room: None,
                text: "waves".into(),
                action: true
            }
        );
        assert_eq!(send("/nick robert"), Request::Nick("robert".into()));
        assert_eq!(send("/who"), Request::Who(None));
        assert_eq!(send("/who rust"), Request::Who(Some("rust".into())));
        assert_eq!(send("/rooms"), Request::Rooms);
        assert_eq!(
            send("/part"),
            Request::Part {
                room: None,
                reason: None
            }
        );
        assert_eq!(
            send("/part #rust bye now"),
            Request::Part {
                room: Some("#rust".into()),
                reason: Some("bye now".into())
            }
        );
        assert_eq!(send("/quit bye all"), Request::Quit(Some("bye all".into())));
        assert_eq!(send("quit"), Request::Quit(None));
        assert_eq!(send(" EXIT "), Request::Quit(None));
        assert_eq!(send("//shrug"), say("/shrug"));
        assert_eq!(parse("   "), Input::Nothing);
        assert_eq!(parse("/help"), Input::Help);
        assert_eq!(parse("/clear"), Input::Clear);
        assert_eq!(parse("/query bob"), Input::Query("bob".into()));
        assert_eq!(parse("/close"), Input::Close);
        assert_eq!(parse("/win 3"), Input::Window(3));
        assert_eq!(parse("/ignore bob"), Input::Ignore(Some("bob".into())));
        assert_eq!(parse("/ignore"), Input::Ignore(None));
        assert_eq!(parse("/unignore bob"), Input::Unignore("bob".into()));
    }

    #[test]
    fn operator_commands() {
        assert_eq!(
            send("/topic"),
            Request::Topic {
                room: None,
                text: None
            }
        );
        assert_eq!(
            send("/topic Rust, mostly"),
            Request::Topic {
                room: None,
                text: Some("Rust, mostly".into())
            }
        );
        assert_eq!(
            send("/topic #rust -delete"),
            Request::Topic {
                room: Some("#rust".into()),
                text: Some(String::new())
            }
        );
        assert_eq!(
            send("/kick bob spamming again"),
            Request::Kick {
                room: None,
                nick: "bob".into(),
                reason: Some("spamming again".into())
            }
        );
        assert_eq!(
            send("/op bob carol"),
            Request::Mode {
                room: None,
                changes: Some("+o bob +o carol".into())
            }
        );
        assert_eq!(
            send("/unban #rust *!*@bad.host"),
            Request::Mode {
                room: Some("#rust".into()),
                changes: Some("-b *!*@bad.host".into())
            }
        );
        assert_eq!(
            send("/mode +m"),
            Request::Mode {
                room: None,
                changes: Some("+m".into())
            }
        );
        assert_eq!(
            send("/invite bob rust"),
            Request::Invite {
                nick: "bob".into(),
                room: Some("rust".into())
            }
        );
        assert_eq!(send("/away lunch"), Request::Away(Some("lunch".into())));
        assert_eq!(send("/back"), Request::Away(None));
        assert_eq!(send("/whois bob"), Request::Whois("bob".into()));
        assert_eq!(
            send("/notice #rust hear ye"),
            Request::Notice {
                to: "#rust".into(),
                text: "hear ye".into()
            }
        );
        // The room looked at fills in what the command left out.
        assert_eq!(
            send("/kick bob").in_room(Some("lobby")),
            Request::Kick {
                room: Some("lobby".into()),
                nick: "bob".into(),
                reason: None
            }
        );
        assert_eq!(
            send("/topic #rust x").in_room(Some("lobby")),
            Request::Topic {
                room: Some("#rust".into()),
                text: Some("x".into())
            }
        );
    }

    #[test]
    fn mistakes_are_local_errors() {
        for bad in [
            "/join",
            "/msg bob",
            "/msg",
            "/me",
            "/nick",
            "/nick a b",
            "/kick",
            "/op",
            "/whois",
            "/invite",
            "/win",
            "/win x",
            "/query",
            "/notice bob",
        ] {
            assert!(
                matches!(parse(bad), Input::Error(e) if e.starts_with("usage:")),
                "{bad}"
            );
        }
        assert_eq!(
            parse("/dance"),
            Input::Error("unknown command /dance; try /help".into())
        );
    }
}
