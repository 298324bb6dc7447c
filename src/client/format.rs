//! How events read: turns each [`EventKind`] into [`Line`]s of toned
//! segments (`<alice> hi`, `* bob joined #lobby (3 here)`, `! error: …`).
//! The plain front end prints them (with ANSI colour only on a terminal and
//! without `NO_COLOR`); the TUI maps the same tones to styles, so both read
//! alike.

use std::time::Duration;

use chrono::{Local, TimeZone};

use super::color::{nick_hue, Hue};
use super::event::{EventKind, Status};
use super::protocol::same_nick;
use super::session::{same_room, Member, Session};

/// How a segment should look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    /// The `HH:MM` stamp.
    Time,
    /// A nickname, in its own colour.
    Nick(Hue),
    /// Text that mentions us (highlighted).
    Mention,
    /// Joins, leaves, server notices.
    Notice,
    /// Errors and lost connections.
    Error,
    /// A question for the user (nickname prompt).
    Prompt,
    /// `[private]` markers.
    Private,
    /// A room name in front of a line from another room.
    Room,
}

/// A run of text with one tone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seg {
    pub text: String,
    pub tone: Tone,
}

/// One displayed line (without its time stamp).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Line {
    pub segs: Vec<Seg>,
    /// Something someone said (plain mode stamps these with `[HH:MM]`).
    pub chat: bool,
    /// It mentions us or is a private message to us.
    pub mention: bool,
    /// When it was said, if not when the event came (history).
    pub at_ms: Option<i64>,
}

impl Line {
    fn new() -> Line {
        Line::default()
    }

    fn push(mut self, text: impl Into<String>, tone: Tone) -> Line {
        self.segs.push(Seg {
            text: text.into(),
            tone,
        });
        self
    }

    fn nick(self, nick: &str) -> Line {
        let hue = nick_hue(nick);
        self.push(nick, Tone::Nick(hue))
    }

    /// Ends a line of chat: `* from ` for an action, else what `speaker`
    /// adds (`<from> `, `from -> to: `), then `text`, highlighted if it
    /// is a `mention`.
    fn said(
        mut self,
        from: &str,
        text: &str,
        action: bool,
        mention: bool,
        speaker: impl FnOnce(Line) -> Line,
    ) -> Line {
        self.chat = true;
        self.mention = mention;
        let l = if action {
            self.push("* ", Tone::Plain)
                .nick(from)
                .push(" ", Tone::Plain)
        } else {
            speaker(self)
        };
        let tone = if mention { Tone::Mention } else { Tone::Plain };
        l.push(text, tone)
    }

    fn notice(text: impl Into<String>) -> Line {
        Line::new().push(format!("* {}", text.into()), Tone::Notice)
    }

    fn error(text: impl Into<String>) -> Line {
        Line::new().push(format!("! {}", text.into()), Tone::Error)
    }

    /// The line as plain text.
    pub fn text(&self) -> String {
        self.segs.iter().map(|s| s.text.as_str()).collect()
    }

    /// The line for a terminal: ANSI colours if `color`.
    pub fn ansi(&self, color: bool) -> String {
        if !color {
            return self.text();
        }
        let mut out = String::new();
        for s in &self.segs {
            let sgr = match s.tone {
                Tone::Plain => {
                    out.push_str(&s.text);
                    continue;
                }
                Tone::Time | Tone::Room => "2".to_string(),
                Tone::Nick(h) => format!("1;{}", h.sgr()),
                Tone::Mention => "1;30;43".to_string(),
                Tone::Notice => "33".to_string(),
                Tone::Error => "1;31".to_string(),
                Tone::Prompt => "1;36".to_string(),
                Tone::Private => "35".to_string(),
            };
            out.push_str(&format!("\x1b[{sgr}m{}\x1b[0m", s.text));
        }
        out
    }
}

/// `HH:MM` of a time in ms since the epoch, in local time.
pub fn clock(at_ms: i64) -> String {
    match Local.timestamp_millis_opt(at_ms).single() {
        Some(t) => t.format("%H:%M").to_string(),
        None => "--:--".to_string(),
    }
}

/// A room as people write it: `#lobby` (natter's JSON sends `lobby`).
pub fn show_room(room: &str) -> String {
    if room.starts_with(['#', '&', '+', '!']) {
        room.to_string()
    } else {
        format!("#{room}")
    }
}

/// `0.05s`, `0.5s`, `1s`, `10s`.
pub fn secs(d: Duration) -> String {
    let s = format!("{:.2}", d.as_secs_f64());
    format!("{}s", s.trim_end_matches('0').trim_end_matches('.'))
}

fn here_count(members: Option<u64>) -> String {
    members.map_or(String::new(), |n| format!(" ({n} here)"))
}

/// Where a line is shown, which changes how some read: a message in the
/// room being looked at needs no `[#room]` in front, a private message in
/// its own conversation reads like chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Here<'a> {
    /// Plain mode, or a window for no room in particular.
    Anywhere,
    /// The window (or plain mode's current room) of this room.
    Room(&'a str),
    /// The private conversation with this nick.
    Private(&'a str),
}

impl<'a> Here<'a> {
    /// Plain mode's place: the session's current room.
    pub fn current(session: &'a Session) -> Here<'a> {
        session.current_room().map_or(Here::Anywhere, Here::Room)
    }
}

/// How an event reads, given what we know (apply the event to `session`
/// first) and where it is shown. Some events show nothing; a history shows
/// its lines each with its own time ([`Line::at_ms`]).
pub fn lines(ev: &EventKind, session: &Session, here: Here) -> Vec<Line> {
    let one = |l: Line| vec![l];
    let hidden = |nick: &str| session.is_ignored(nick) && !session.is_me(nick);
    match ev {
        EventKind::Message { from, .. }
        | EventKind::Private { from, .. }
        | EventKind::Notice { from, .. }
        | EventKind::Invited { by: from, .. }
            if hidden(from) =>
        {
            vec![]
        }
        EventKind::Status(Status::Connecting { addr }) => {
            one(Line::notice(format!("connecting to {addr} ...")))
        }
        EventKind::Status(Status::Connected { addr, protocol }) => {
            one(Line::notice(format!("connected to {addr} ({protocol})")))
        }
        EventKind::Status(Status::Lost {
            addr,
            reason,
            retry_in,
            next,
        }) => one(Line::error(match (retry_in, next) {
            (Some(d), None) => format!("{addr}: {reason}; reconnecting in {}", secs(*d)),
            (Some(d), Some(next)) if d.is_zero() => format!("{addr}: {reason}; trying {next}"),
            (Some(d), Some(next)) => {
                format!("{addr}: {reason}; trying {next} in {}", secs(*d))
            }
            (None, _) => format!("{addr}: {reason}; not reconnecting"),
        })),
        EventKind::Status(Status::Closed) => vec![],
        EventKind::NeedNick { refused: None } => {
            one(Line::new().push("? What is your nickname?", Tone::Prompt))
        }
        EventKind::NeedNick { refused: Some(why) } => one(Line::new().push(
            format!("? {}. Pick another nickname:", refusal(why)),
            Tone::Prompt,
        )),
        EventKind::LoginFailed { reason } => one(Line::error(format!(
            "login failed: {}",
            reason.trim().trim_end_matches(['.', ' '])
        ))),
        EventKind::Registered { nick, online } => one(Line::notice(match online {
            Some(n) => format!("you are now known as {nick} ({n} online)"),
            None => format!("you are now known as {nick}"),
        })),
        EventKind::Message {
            room,
            from,
            text,
            action,
        } => {
            let mut l = Line::new();
            if !matches!(here, Here::Room(r) if same_room(r, room)) {
                l = l.push(format!("[{}] ", show_room(room)), Tone::Room);
            }
            let mention = !session.is_me(from) && session.mentions_me(text);
            one(l.said(from, text, *action, mention, |l| {
                l.push("<", Tone::Plain).nick(from).push("> ", Tone::Plain)
            }))
        }
        EventKind::Private {
            from,
            to,
            text,
            action,
        } => {
            let mention = !session.is_me(from);
            let other = if session.is_me(from) { to } else { from };
            if matches!(here, Here::Private(n) if same_nick(n, other)) {
                return one(Line::new().said(from, text, *action, mention, |l| {
                    l.push("<", Tone::Plain).nick(from).push("> ", Tone::Plain)
                }));
            }
            let l = Line::new().push("[private] ", Tone::Private);
            one(l.said(from, text, *action, mention, |l| {
                l.nick(from)
                    .push(" -> ", Tone::Private)
                    .nick(to)
                    .push(": ", Tone::Plain)
            }))
        }
        EventKind::Notice {
            from,
            room,
            to: _,
            text,
        } => {
            let mut l = Line::new().push("-", Tone::Private).nick(from);
            if let Some(r) = room.as_deref() {
                if !matches!(here, Here::Room(h) if same_room(h, r)) {
                    l = l.push(format!(":{}", show_room(r)), Tone::Private);
                }
            }
            let mention = room.is_none() && !session.is_me(from);
            let mut l = l.push("- ", Tone::Private);
            l.chat = true;
            l.mention = mention;
            one(l.push(text.clone(), Tone::Plain))
        }
        EventKind::Joined {
            room,
            nick,
            members,
        } => one(Line::notice(format!(
            "{nick} joined {}{}",
            show_room(room),
            here_count(*members)
        ))),
        EventKind::Left {
            room,
            nick,
            members,
            reason,
        } => one(Line::notice(format!(
            "{nick} left {}{}{}",
            show_room(room),
            reason
                .as_deref()
                .map_or(String::new(), |r| format!(": {r}")),
            here_count(*members)
        ))),
        EventKind::Kicked {
            room,
            by,
            nick,
            reason,
            members,
        } => {
            let why = reason
                .as_deref()
                .filter(|r| !r.is_empty())
                .map_or(String::new(), |r| format!(": {r}"));
            if session.is_me(nick) {
                let mut l = Line::error(format!("{by} kicked you out of {}{why}", show_room(room)));
                l.mention = true;
                one(l)
            } else {
                one(Line::notice(format!(
                    "{by} kicked {nick} out of {}{why}{}",
                    show_room(room),
                    here_count(*members)
                )))
            }
        }
        EventKind::Quit { nick, reason } => one(Line::notice(match reason {
            Some(r) if !r.is_empty() => format!("{nick} quit ({r})"),
            _ => format!("{nick} quit"),
        })),
        EventKind::Nick { old, new } => one(Line::notice(format!("{old} is now known as {new}"))),
        EventKind::Focus { room } => {
            one(Line::notice(format!("now talking in {}", show_room(room))))
        }
        EventKind::Presence {
            room,
            nicks,
            ops,
            voiced,
            ..
        } => {
            let shown: Vec<String> = Member::list(nicks, ops, voiced)
                .iter()
                .map(|m| format!("{}{}", m.prefix(), m.nick))
                .collect();
            one(Line::notice(format!(
                "In {} ({}): {}",
                show_room(room),
                nicks.len(),
                shown.join(", ")
            )))
        }
        EventKind::Topic {
            room,
            topic,
            by,
            changed,
        } => {
            let topic = topic.as_deref().filter(|t| !t.is_empty());
            let by = by.as_deref().unwrap_or("someone");
            one(Line::notice(match (changed, topic) {
                (true, Some(t)) => format!("{by} set the topic of {}: {t}", show_room(room)),
                (true, None) => format!("{by} cleared the topic of {}", show_room(room)),
                (false, Some(t)) => format!("topic of {}: {t} (set by {by})", show_room(room)),
                (false, None) => format!("{} has no topic", show_room(room)),
            }))
        }
        EventKind::Mode { room, by, changes } => one(Line::notice(format!(
            "{by} sets mode {changes} on {}",
            show_room(room)
        ))),
        EventKind::Away { nick, text } => one(Line::notice(match text {
            Some(t) => format!("{nick} is away: {t}"),
            None => format!("{nick} is back"),
        })),
        EventKind::AwayStatus { away } => one(Line::notice(if *away {
            "you are now marked as away"
        } else {
            "you are no longer marked as away"
        })),
        EventKind::Invited { room, by, nick } => {
            if session.is_me(nick) {
                let mut l = Line::notice(format!(
                    "{by} invites you to {r} (/join {r})",
                    r = show_room(room)
                ));
                l.mention = true;
                one(l)
            } else if session.is_me(by) {
                one(Line::notice(format!(
                    "you invited {nick} to {}",
                    show_room(room)
                )))
            } else {
                one(Line::notice(format!(
                    "{by} invited {nick} to {}",
                    show_room(room)
                )))
            }
        }
        EventKind::History {
            room,
            lines: past,
            more,
        } => {
            if past.is_empty() {
                return vec![];
            }
            let n = past.len();
            let mut out = vec![Line::notice(format!(
                "the last {n} line{} in {}{}:",
                if n == 1 { "" } else { "s" },
                show_room(room),
                if *more { " (there are older ones)" } else { "" }
            ))];
            let here = Here::Room(room);
            for ev in past {
                for mut l in lines(&ev.kind, session, here) {
                    // Old lines mention nobody now.
                    l.mention = false;
                    for s in &mut l.segs {
                        if s.tone == Tone::Mention {
                            s.tone = Tone::Plain;
                        }
                    }
                    l.at_ms = Some(ev.at_ms);
                    out.push(l);
                }
            }
            out.push(Line::notice(format!(
                "end of history of {}",
                show_room(room)
            )));
            out
        }
        EventKind::Rooms(rooms) => {
            let list: Vec<String> = rooms
                .iter()
                .map(|(r, n)| match n {
                    Some(n) => format!("{} ({n})", show_room(r)),
                    None => show_room(r),
                })
                .collect();
            one(Line::notice(format!(
                "Rooms ({}): {}",
                rooms.len(),
                list.join(", ")
            )))
        }
        EventKind::Info(text) => one(Line::notice(text.clone())),
        EventKind::Error { message, .. } => one(Line::error(format!("error: {message}"))),
        EventKind::Shutdown { reason } => one(Line::error(format!(
            "the server is shutting down: {reason}"
        ))),
    }
}

/// A refused nickname's reason without the server's "Pick another" tail.
pub fn refusal(why: &str) -> &str {
    let why = why.trim();
    why.strip_suffix("Pick another nickname:")
        .unwrap_or(why)
        .trim_end_matches(['.', ' ', ':'])
}

/// The local `/help` text.
pub fn help() -> Vec<Line> {
    let mut out = vec![Line::notice("commands:")];
    for (_, usage) in super::command::COMMANDS {
        out.push(Line::notice(format!("  {usage}")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(nick: &str, room: &str) -> Session {
        let mut s = Session::default();
        s.apply(&EventKind::Registered {
            nick: nick.into(),
            online: None,
        });
        s.apply(&EventKind::Joined {
            room: room.into(),
            nick: nick.into(),
            members: None,
        });
        s
    }

    fn text(ev: EventKind, s: &Session) -> Vec<String> {
        lines(&ev, s, Here::current(s))
            .iter()
            .map(Line::text)
            .collect()
    }

    #[test]
    fn events_read_like_chat() {
        let s = session("alice", "lobby");
        let msg = |room: &str, text: &str, action| EventKind::Message {
            room: room.into(),
            from: "bob".into(),
            text: text.into(),
            action,
        };
        assert_eq!(text(msg("lobby", "hi", false), &s), ["<bob> hi"]);
        assert_eq!(text(msg("lobby", "waves", true), &s), ["* bob waves"]);
        assert_eq!(text(msg("rust", "yo", false), &s), ["[#rust] <bob> yo"]);
        assert_eq!(
            text(
                EventKind::Joined {
                    room: "lobby".into(),
                    nick: "bob".into(),
                    members: Some(2)
                },
                &s
            ),
            ["* bob joined #lobby (2 here)"]
        );
        assert_eq!(
            text(
                EventKind::Error {
                    code: "x".into(),
                    message: "nope".into()
                },
                &s
            ),
            ["! error: nope"]
        );
        assert_eq!(
            text(
                EventKind::Status(Status::Lost {
                    addr: "h:1".into(),
                    reason: "the server closed the connection".into(),
                    retry_in: Some(Duration::from_millis(500)),
                    next: None,
                }),
                &s
            ),
            ["! h:1: the server closed the connection; reconnecting in 0.5s"]
        );
        assert_eq!(
            text(
                EventKind::Status(Status::Lost {
                    addr: "h:1".into(),
                    reason: "the server closed the connection".into(),
                    retry_in: Some(Duration::ZERO),
                    next: Some("h:2".into()),
                }),
                &s
            ),
            ["! h:1: the server closed the connection; trying h:2"]
        );
        assert_eq!(
            text(
                EventKind::NeedNick {
                    refused: Some("the nickname bob is taken. Pick another nickname:".into())
                },
                &s
            ),
            ["? the nickname bob is taken. Pick another nickname:"]
        );
    }

    #[test]
    fn mentions_and_private_messages_are_flagged() {
        let s = session("alice", "lobby");
        let l = &lines(
            &EventKind::Message {
                room: "lobby".into(),
                from: "bob".into(),
                text: "hey Alice".into(),
                action: false,
            },
            &s,
            Here::current(&s),
        )[0];
        assert!(l.mention && l.chat);
        assert_eq!(l.segs.last().map(|s| s.tone), Some(Tone::Mention));
        let own = &lines(
            &EventKind::Message {
                room: "lobby".into(),
                from: "alice".into(),
                text: "I am alice".into(),
                action: false,
            },
            &s,
            Here::current(&s),
        )[0];
        assert!(!own.mention);
        assert_eq!(own.ansi(false), "<alice> I am alice");
        assert!(own.ansi(true).contains("\x1b["));
    }

    #[test]
    fn room_events_read_like_an_irc_client() {
        let s = session("alice", "lobby");
        let t = |ev| text(ev, &s);
        assert_eq!(
            t(EventKind::Topic {
                room: "lobby".into(),
                topic: Some("be kind".into()),
                by: Some("bob".into()),
                changed: false
            }),
            ["* topic of #lobby: be kind (set by bob)"]
        );
        assert_eq!(
            t(EventKind::Topic {
                room: "lobby".into(),
                topic: None,
                by: Some("bob".into()),
                changed: true
            }),
            ["* bob cleared the topic of #lobby"]
        );
        let kick = |nick: &str| EventKind::Kicked {
            room: "lobby".into(),
            by: "bob".into(),
            nick: nick.into(),
            reason: Some("shh".into()),
            members: Some(2),
        };
        assert_eq!(
            t(kick("carol")),
            ["* bob kicked carol out of #lobby: shh (2 here)"]
        );
        let you = &lines(&kick("alice"), &s, Here::current(&s))[0];
        assert_eq!(you.text(), "! bob kicked you out of #lobby: shh");
        assert!(you.mention);
        assert_eq!(
            t(EventKind::Notice {
                from: "bob".into(),
                room: Some("rust".into()),
                to: None,
                text: "hear ye".into()
            }),
            ["-bob:#rust- hear ye"]
        );
        assert_eq!(
            t(EventKind::Away {
                nick: "bob".into(),
                text: None
            }),
            ["* bob is back"]
        );
        assert_eq!(
            t(EventKind::Invited {
                room: "vip".into(),
                by: "bob".into(),
                nick: "alice".into()
            }),
            ["* bob invites you to #vip (/join #vip)"]
        );
        assert_eq!(
            t(EventKind::Presence {
                room: "lobby".into(),
                nicks: vec!["alice".into(), "bob".into(), "carol".into()],
                ops: vec!["bob".into()],
                voiced: vec!["carol".into()]
            }),
            ["* In #lobby (3): alice, @bob, +carol"]
        );
        // A private message in its own conversation reads like chat.
        let private = EventKind::Private {
            from: "bob".into(),
            to: "alice".into(),
            text: "hi".into(),
            action: false,
        };
        assert_eq!(t(private.clone()), ["[private] bob -> alice: hi"]);
        let l = &lines(&private, &s, Here::Private("Bob"))[0];
        assert_eq!(l.text(), "<bob> hi");
    }

    #[test]
    fn clock_and_seconds() {
        assert_eq!(clock(0).len(), 5);
        assert_eq!(secs(Duration::from_millis(500)), "0.5s");
        assert_eq!(secs(Duration::from_secs(10)), "10s");
        assert_eq!(secs(Duration::from_millis(50)), "0.05s");
    }
}
