//! What the user types, as [`Request`]s to the connection: parses one input
//! line (`hello`, `/join rust`, `/msg bob hi`, `quit`, ...) the same way for
//! the plain and the TUI front ends. Transport-neutral: each protocol encodes
//! a request its own way.

/// Something the user asks the server for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Pick a nickname before registration (the answer to `NeedNick`).
    Login(String),
    /// Say `text` in the current room (`action`: `/me`).
    Say { text: String, action: bool },
    /// A private message.
    Private { to: String, text: String },
    /// Enter a room.
    Join(String),
    /// Leave the current room.
    Part(Option<String>),
    /// Who is in a room (default: the current one).
    Who(Option<String>),
    /// The room list.
    Rooms,
    /// Change nickname.
    Nick(String),
    /// Leave the server and exit.
    Quit(Option<String>),
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
    /// Nothing to do (an empty line).
    Nothing,
    /// A mistake to show the user; nothing is sent.
    Error(String),
}

/// The commands, with usage, for `/help` and tab completion.
pub const COMMANDS: &[(&str, &str)] = &[
    ("/join", "/join ROOM — enter ROOM"),
    ("/part", "/part [REASON] — leave the current room"),
    ("/msg", "/msg NICK TEXT — private message"),
    ("/me", "/me ACTION — an action (* you waves)"),
    ("/nick", "/nick NEW — change nickname"),
    ("/who", "/who [ROOM] — who is in a room"),
    ("/rooms", "/rooms — list the rooms"),
    ("/clear", "/clear — clear the screen"),
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
            text: line.to_string(),
            action: false,
        });
    };
    if rest.starts_with('/') {
        // `//shrug` says `/shrug`.
        return Input::Send(Request::Say {
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
    match name.to_lowercase().as_str() {
        "join" | "j" => match args.split_whitespace().next() {
            Some(room) => Input::Send(Request::Join(room.to_string())),
            None => usage("/join"),
        },
        "part" | "leave" => Input::Send(Request::Part(opt(args))),
        "msg" | "m" | "tell" | "w" | "query" => match args.split_once(char::is_whitespace) {
            Some((to, text)) if !text.trim().is_empty() => Input::Send(Request::Private {
                to: to.to_string(),
                text: text.trim_start().to_string(),
            }),
            _ => usage("/msg"),
        },
        "me" => match opt(args) {
            Some(text) => Input::Send(Request::Say { text, action: true }),
            None => usage("/me"),
        },
        "nick" => match args.split_whitespace().next() {
            Some(n) if !args.contains(char::is_whitespace) => {
                Input::Send(Request::Nick(n.to_string()))
            }
            _ => usage("/nick"),
        },
        "who" | "names" => Input::Send(Request::Who(
            args.split_whitespace().next().map(str::to_string),
        )),
        "rooms" | "list" => Input::Send(Request::Rooms),
        "quit" | "exit" => Input::Send(Request::Quit(opt(args))),
        "help" => Input::Help,
        "clear" => Input::Clear,
        other => Input::Error(format!("unknown command /{other}; try /help")),
    }
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

    #[test]
    fn text_and_commands() {
        assert_eq!(
            send("hello there "),
            Request::Say {
                text: "hello there ".into(),
                action: false
            }
        );
        assert_eq!(send("/join #rust"), Request::Join("#rust".into()));
        assert_eq!(send("/J rust"), Request::Join("rust".into()));
        assert_eq!(
            send("/msg bob  hi there"),
            Request::Private {
                to: "bob".into(),
                text: "hi there".into()
            }
        );
        assert_eq!(
            send("/me waves"),
            Request::Say {
                text: "waves".into(),
                action: true
            }
        );
        assert_eq!(send("/nick robert"), Request::Nick("robert".into()));
        assert_eq!(send("/who"), Request::Who(None));
        assert_eq!(send("/who rust"), Request::Who(Some("rust".into())));
        assert_eq!(send("/rooms"), Request::Rooms);
        assert_eq!(send("/part"), Request::Part(None));
        assert_eq!(send("/quit bye all"), Request::Quit(Some("bye all".into())));
        assert_eq!(send("quit"), Request::Quit(None));
        assert_eq!(send(" EXIT "), Request::Quit(None));
        assert_eq!(
            send("//shrug"),
            Request::Say {
                text: "/shrug".into(),
                action: false
            }
        );
        assert_eq!(parse("   "), Input::Nothing);
        assert_eq!(parse("/help"), Input::Help);
        assert_eq!(parse("/clear"), Input::Clear);
    }

    #[test]
    fn mistakes_are_local_errors() {
        for bad in ["/join", "/msg bob", "/msg", "/me", "/nick", "/nick a b"] {
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
