//! What an IRC message asks for: hub [`Command`]s for chat, session steps
//! for registration and connection upkeep (`CAP`, `NICK`, `USER`, `PASS`,
//! `PING`, `QUIT`), and error numerics for malformed requests (`461`,
//! `421`, …). Text is cleaned here: IRC formatting and control characters
//! removed, CTCP ACTION turned into an action, other CTCP dropped.

use std::sync::Arc;

use super::numerics::*;
use super::parse::{self, Message, ParseError};
use super::whox::Whox;
use super::{strip_formatting, Reply, MAX_TARGETS, MODES_PER_COMMAND};
use crate::proto::sanitize::strip_controls;
use crate::proto::session::TargetsRequest;
use crate::proto::{
    AccountRequest, Anchor, ClientTags, Command, HistoryQuery, ModeChange, Monitor, Target,
};

/// A `CAP` subcommand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cap {
    /// `CAP LS [version]`.
    Ls(u32),
    List,
    /// `CAP REQ :a -b`: (name, enable) pairs.
    Req(Vec<(String, bool)>),
    End,
    /// A subcommand natter does not know (answered with `410`).
    Unknown(String),
}

/// One thing to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Hub(Command),
    Reply(Reply),
}

/// What one IRC line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Chat commands for the hub, and replies, in order (needs registration).
    Steps(Vec<Step>),
    Cap(Cap),
    Pass(String),
    Nick(String),
    User {
        user: String,
        realname: String,
    },
    /// Answer with `PONG`.
    Ping(String),
    Quit(Option<String>),
    Motd,
    /// `HELP [subject]`.
    Help(Option<String>),
    /// `OPER name password`: checked by the session, then told to the hub.
    Oper {
        name: String,
        password: String,
    },
    /// `MARKREAD target [timestamp=…]` (IRCv3 read-marker): get or set.
    MarkRead {
        target: String,
        value: Option<String>,
    },
    /// `WHO`, maybe with WHOX fields (the session remembers them for the answer).
    Who {
        target: Target,
        whox: Option<Whox>,
    },
    /// A question about the server the session answers itself, and the
    /// server it names (if any).
    About(About, Option<String>),
    /// Nothing to do beyond counting as proof of life (`PONG`, `TAGMSG`,
    /// empty lines, CTCP other than ACTION).
    Nothing,
    /// An answer and nothing else (usually an error numeric).
    Reply(Reply),
    /// `AUTHENTICATE <param>` (SASL).
    Authenticate(String),
    /// Something for the accounts (`PRIVMSG NickServ`; needs registration).
    Account(AccountRequest),
    /// `CHATHISTORY TARGETS`: who one has private lines with.
    HistoryTargets(TargetsRequest),
    /// `CHATHISTORY` for a room, or for the private lines with a person
    /// (needs registration). `sub`: the subcommand, as a refusal names it.
    History {
        sub: String,
        /// `#room`, or a nick.
        room: String,
        query: HistoryQuery,
        limit: usize,
    },
}

/// Questions about the server itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum About {
    Time,
    Version,
    Info,
    Admin,
    Links,
    /// `WHOIS` of a built-in service (NickServ, ChanServ).
    Service(&'static str),
}

/// True if the first line of a connection is IRC registration: `CAP`,
/// `NICK`, `USER` or `PASS` followed by an argument (a lone word is a text
/// user's nickname, and nicknames cannot contain spaces).
pub fn looks_like_irc(line: &str) -> bool {
    let line = line.trim_start();
    let line = match line.strip_prefix('@') {
        Some(rest) => rest.split_once(' ').map_or("", |(_, b)| b).trim_start(),
        None => line,
    };
    let Some((verb, rest)) = line.split_once(' ') else {
        return false;
    };
    ["CAP", "NICK", "USER", "PASS"]
        .iter()
        .any(|v| verb.eq_ignore_ascii_case(v))
        && !rest.trim().is_empty()
}

/// Decodes one line.
pub fn decode_line(line: &str) -> Input {
    match parse::parse(line) {
        Ok(m) => decode(&m),
        Err(ParseError::Empty) => Input::Nothing,
        Err(ParseError::TooLong) => Input::Reply(Reply::numeric(
            ERR_INPUTTOOLONG,
            &["Input line was too long"],
        )),
        Err(ParseError::NoVerb) => Input::Nothing,
    }
}

/// `CHATHISTORY LATEST|BEFORE|AFTER|AROUND|BETWEEN <target> <ref>… <limit>`
/// (IRCv3 draft/chathistory); mistakes get `FAIL CHATHISTORY …`.
fn chathistory(params: &[&str]) -> Input {
    let fail = |code, context: &[&str], text| {
        let context = context.iter().map(|c| clean_word(c)).collect();
        Input::Reply(Reply::Fail {
            command: "CHATHISTORY",
            code,
            context,
            text,
        })
    };
    let Some(sub) = params.first().map(|s| s.to_ascii_uppercase()) else {
        return need_more("CHATHISTORY");
    };
    let want = match sub.as_str() {
        "LATEST" | "BEFORE" | "AFTER" | "AROUND" => 4,
        "BETWEEN" => 5,
        "TARGETS" => {
            // TARGETS <timestamp=…> <timestamp=…> <limit>, either order.
            let time = |r: &str| r.strip_prefix("timestamp=").and_then(super::parse_iso8601);
            if params.len() < 4 {
                return fail("INVALID_PARAMS", &["TARGETS"], "Not enough parameters");
            }
            let (Some(a), Some(b)) = (time(params[1]), time(params[2])) else {
                return fail("INVALID_PARAMS", &["TARGETS"], "Invalid timestamps");
            };
            let Some(limit) = params[3].parse::<usize>().ok().filter(|n| *n > 0) else {
                let text = "The limit must be a positive number";
                return fail("INVALID_PARAMS", &["TARGETS"], text);
            };
            return Input::HistoryTargets(TargetsRequest {
                from_ms: a.min(b),
                to_ms: a.max(b),
                limit,
            });
        }
        _ => return fail("INVALID_PARAMS", &[&sub], "Unknown CHATHISTORY subcommand"),
    };
    if params.len() < want {
        return fail("INVALID_PARAMS", &[&sub], "Not enough parameters");
    }
    let target = params[1];
    let limit = match params[want - 1].parse::<usize>() {
        Ok(n) if n > 0 => n,
        _ => {
            return fail(
                "INVALID_PARAMS",
                &[&sub],
                "The limit must be a positive number",
            )
        }
    };
    let anchor = |r: &str| -> Option<Anchor> {
        match r.split_once('=')? {
            ("msgid", id) => id.parse().ok().map(Anchor::Id),
            ("timestamp", t) => super::parse_iso8601(t).map(Anchor::Time),
            _ => None,
        }
    };
    let bad_ref = |r: &str| fail("INVALID_PARAMS", &[&sub, r], "Invalid message reference");
    let query = match sub.as_str() {
        "LATEST" if params[2] == "*" => HistoryQuery::Latest(None),
        "BETWEEN" => match (anchor(params[2]), anchor(params[3])) {
            (Some(a), Some(b)) => HistoryQuery::Between(a, b),
            (None, _) => return bad_ref(params[2]),
            (_, None) => return bad_ref(params[3]),
        },
        _ => {
            let Some(a) = anchor(params[2]) else {
                return bad_ref(params[2]);
            };
            match sub.as_str() {
                "LATEST" => HistoryQuery::Latest(Some(a)),
                "BEFORE" => HistoryQuery::Before(a),
                "AFTER" => HistoryQuery::After(a),
                _ => HistoryQuery::Around(a),
            }
        }
    };
    Input::History {
        sub,
        room: target.to_string(),
        query,
        limit,
    }
}

fn need_more(verb: &str) -> Input {
    Input::Reply(Reply::numeric(
        ERR_NEEDMOREPARAMS,
        &[verb, "Not enough parameters"],
    ))
}

fn no_such_channel(name: &str) -> Step {
    Step::Reply(Reply::numeric(
        ERR_NOSUCHCHANNEL,
        &[&clean_word(name), "No such channel"],
    ))
}

/// A word from the client, safe to echo in a reply's middle parameter.
pub fn clean_word(w: &str) -> String {
    let w: String = strip_controls(w).chars().filter(|c| *c != ' ').collect();
    let w = super::truncate(&w, 64);
    if w.is_empty() || w.starts_with(':') {
        format!("*{w}")
    } else {
        w.to_string()
    }
}

/// Message text: formatting and controls removed.
pub fn clean_text(text: &str) -> String {
    strip_controls(&strip_formatting(text))
}

/// Splits CTCP: `Some((text, action))` for plain text or ACTION, `None`
/// for any other CTCP request.
fn ctcp(text: &str) -> Option<(String, bool)> {
    let Some(inner) = text.strip_prefix('\x01') else {
        return Some((clean_text(text), false));
    };
    let inner = inner.strip_suffix('\x01').unwrap_or(inner);
    let (verb, rest) = inner.split_once(' ').unwrap_or((inner, ""));
    verb.eq_ignore_ascii_case("ACTION")
        .then(|| (clean_text(rest), true))
}

pub fn is_channel(name: &str) -> bool {
    name.starts_with('#')
}

/// `#room` is a room (the `#` kept: replies echo the name as given),
/// anything else a person (or a mask of people).
fn target(name: &str) -> Target {
    match is_channel(name) {
        true => Target::Room(name.to_string()),
        false => Target::Person(name.to_string()),
    }
}

/// `@#room` (operators) or `+#room` (voiced and operators): the prefix and room.
fn status_target(t: &str) -> Option<(char, &str)> {
    let mut chars = t.chars();
    let status = chars.next().filter(|c| *c == '@' || *c == '+')?;
    let room = chars.as_str();
    is_channel(room).then_some((status, room))
}

/// The client-only tags (`+key`) of a message, if any: relayed with it.
fn client_tags(m: &Message) -> Option<ClientTags> {
    let tags: Vec<(Arc<str>, Arc<str>)> = m
        .tags()
        .into_iter()
        .filter(|(k, _)| k.starts_with('+') && k.len() > 1 && !k.contains(['=', ' ']))
        .map(|(k, v)| (Arc::from(k), Arc::from(v)))
        .collect();
    (!tags.is_empty()).then(|| tags.into())
}

/// The space-separated words of the parameters from `from` on (`USERHOST
/// a b`, `ISON :a b`).
fn words(m: &Message, from: usize) -> Vec<String> {
    m.params
        .iter()
        .skip(from)
        .flat_map(|p| p.split(' '))
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect()
}

/// Decodes a parsed message.
pub fn decode(m: &Message) -> Input {
    let verb = m.verb.to_ascii_uppercase();
    let p = |i| m.param(i);
    let steps = |s: Vec<Step>| Input::Steps(s);
    let hub = |c: Command| Input::Steps(vec![Step::Hub(c)]);
    if let Some(service) = super::services::decode(&verb, m) {
        return service;
    }
    match verb.as_str() {
        "AUTHENTICATE" => match p(0) {
            Some(param) if !param.is_empty() => Input::Authenticate(param.to_string()),
            _ => need_more("AUTHENTICATE"),
        },
        "CAP" => match p(0).map(|s| s.to_ascii_uppercase()).as_deref() {
            None => need_more("CAP"),
            Some("LS") => Input::Cap(Cap::Ls(p(1).and_then(|v| v.parse().ok()).unwrap_or(0))),
            Some("LIST") => Input::Cap(Cap::List),
            Some("END") => Input::Cap(Cap::End),
            Some("REQ") => Input::Cap(Cap::Req(
                p(1).unwrap_or("")
                    .split(' ')
                    .filter(|c| !c.is_empty())
                    .map(|c| match c.strip_prefix('-') {
                        Some(name) => (name.to_string(), false),
                        None => (c.to_string(), true),
                    })
                    .collect(),
            )),
            Some(other) => Input::Cap(Cap::Unknown(clean_word(other))),
        },
        "PASS" => match p(0) {
            Some(pw) => Input::Pass(pw.to_string()),
            None => need_more("PASS"),
        },
        "NICK" => match p(0) {
            Some(n) if !n.is_empty() => Input::Nick(n.to_string()),
            _ => Input::Reply(Reply::numeric(ERR_NONICKNAMEGIVEN, &["No nickname given"])),
        },
        "USER" => match (p(0), p(3)) {
            (Some(user), Some(real)) if !user.is_empty() && !real.is_empty() => Input::User {
                user: user.to_string(),
                realname: real.to_string(),
            },
            _ => need_more("USER"),
        },
        "PING" => match p(0) {
            Some(t) if !t.is_empty() => Input::Ping(t.to_string()),
            _ => Input::Reply(Reply::numeric(ERR_NOORIGIN, &["No origin specified"])),
        },
        "PONG" => Input::Nothing,
        "MARKREAD" => match p(0).filter(|t| !t.is_empty()) {
            None => Input::Reply(Reply::Fail {
                command: "MARKREAD",
                code: "NEED_MORE_PARAMS",
                context: Vec::new(),
                text: "Missing parameters",
            }),
            Some(t) => Input::MarkRead {
                target: clean_word(t),
                value: p(1).map(String::from),
            },
        },
        "TAGMSG" => match (p(0), client_tags(m)) {
            (None, _) => need_more("TAGMSG"),
            (Some(targets), tags) => steps(
                targets
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .take(MAX_TARGETS)
                    .map(|t| {
                        Step::Hub(Command::TagMsg {
                            target: target(t),
                            tags: tags.clone().unwrap_or_else(|| Arc::new([])),
                        })
                    })
                    .collect(),
            ),
        },
        "QUIT" => Input::Quit(p(0).map(clean_text).filter(|r| !r.is_empty())),
        "MOTD" => Input::Motd,
        "HELP" | "HELPOP" => Input::Help(p(0).map(|s| s.to_string())),
        "TIME" => Input::About(About::Time, p(0).map(String::from)),
        "VERSION" => Input::About(About::Version, p(0).map(String::from)),
        "INFO" => Input::About(About::Info, p(0).map(String::from)),
        "ADMIN" => Input::About(About::Admin, p(0).map(String::from)),
        "LINKS" => Input::About(About::Links, None),
        "OPER" => match (p(0), p(1)) {
            (Some(name), Some(password)) if !name.is_empty() => Input::Oper {
                name: name.to_string(),
                password: password.to_string(),
            },
            _ => need_more("OPER"),
        },
        "KILL" => match p(0) {
            Some(nick) if !nick.is_empty() => hub(Command::Kill {
                nick: nick.to_string(),
                reason: p(1).map(clean_text).unwrap_or_default(),
            }),
            _ => need_more("KILL"),
        },
        "WALLOPS" => match p(0).map(clean_text) {
            Some(text) if !text.trim().is_empty() => hub(Command::Wallops { text }),
            _ => need_more("WALLOPS"),
        },
        "REHASH" => hub(Command::Rehash),
        "MONITOR" => {
            let list = || {
                p(1).unwrap_or("")
                    .split(',')
                    .filter(|n| !n.is_empty())
                    .map(String::from)
                    .collect::<Vec<_>>()
            };
            match p(0).map(|s| s.to_ascii_uppercase()).as_deref() {
                Some("+") if !list().is_empty() => hub(Command::Monitor(Monitor::Add(list()))),
                Some("-") if !list().is_empty() => hub(Command::Monitor(Monitor::Remove(list()))),
                Some("C") => hub(Command::Monitor(Monitor::Clear)),
                Some("L") => hub(Command::Monitor(Monitor::List)),
                Some("S") => hub(Command::Monitor(Monitor::Status)),
                _ => need_more("MONITOR"),
            }
        }
        "SETNAME" => match p(0).map(clean_text) {
            Some(name) if !name.trim().is_empty() => hub(Command::SetName { realname: name }),
            _ => need_more("SETNAME"),
        },
        "DIE" => hub(Command::Die),
        "USERHOST" => match words(m, 0) {
            nicks if nicks.is_empty() => need_more("USERHOST"),
            nicks => hub(Command::UserHost { nicks }),
        },
        "ISON" => match words(m, 0) {
            nicks if nicks.is_empty() => need_more("ISON"),
            nicks => hub(Command::IsOn { nicks }),
        },
        "WHOWAS" => match p(0).filter(|n| !n.is_empty()) {
            None => need_more("WHOWAS"),
            Some(nick) => hub(Command::WhoWas {
                nick: nick.split(',').next().unwrap_or(nick).to_string(),
                count: p(1)
                    .and_then(|c| c.parse::<i64>().ok())
                    .filter(|c| *c > 0)
                    .and_then(|c| usize::try_from(c).ok()),
            }),
        },
        "CHATHISTORY" => chathistory(&m.params),
        "PRIVMSG" | "NOTICE" => {
            let notice = verb == "NOTICE";
            let (Some(targets), Some(text)) = (p(0), p(1)) else {
                return match (notice, p(0)) {
                    (true, _) => Input::Nothing,
                    (false, None) => Input::Reply(Reply::numeric(
                        ERR_NORECIPIENT,
                        &["No recipient given (PRIVMSG)"],
                    )),
                    (false, Some(_)) => {
                        Input::Reply(Reply::numeric(ERR_NOTEXTTOSEND, &["No text to send"]))
                    }
                };
            };
            let targets: Vec<&str> = targets.split(',').filter(|t| !t.is_empty()).collect();
            if targets.len() > MAX_TARGETS {
                return match notice {
                    true => Input::Nothing,
                    false => Input::Reply(Reply::numeric(
                        ERR_TOOMANYTARGETS,
                        &[&clean_word(targets[MAX_TARGETS]), "Too many recipients"],
                    )),
                };
            }
            let Some((text, action)) = ctcp(text) else {
                return Input::Nothing; // CTCP other than ACTION is not relayed
            };
            let tags = client_tags(m);
            let tagged = |command: Command| match &tags {
                Some(tags) => Command::Tagged {
                    tags: tags.clone(),
                    command: Box::new(command),
                },
                None => command,
            };
            steps(
                targets
                    .into_iter()
                    .map(|t| {
                        if let Some((status, room)) = status_target(t) {
                            return Step::Hub(tagged(Command::SayToStatus {
                                room: room.to_string(),
                                text: text.clone(),
                                action,
                                notice,
                                voiced: status == '+',
                            }));
                        }
                        Step::Hub(tagged(match (notice, is_channel(t)) {
                            (true, _) => Command::Notice {
                                target: target(t),
                                text: text.clone(),
                            },
                            (false, true) => Command::Say {
                                room: Some(t.to_string()),
                                text: text.clone(),
                                action,
                            },
                            (false, false) => Command::Private {
                                to: t.to_string(),
                                text: text.clone(),
                                action,
                            },
                        }))
                    })
                    .collect(),
            )
        }
        "JOIN" => {
            let Some(chans) = p(0) else {
                return need_more("JOIN");
            };
            if chans == "0" {
                return hub(Command::PartAll);
            }
            let mut keys = p(1).unwrap_or("").split(',');
            steps(
                chans
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(|c| {
                        let key = keys.next().filter(|k| !k.is_empty()).map(String::from);
                        match is_channel(c) {
                            true => Step::Hub(Command::JoinWithKey {
                                room: c.to_string(),
                                key,
                                switch: false,
                            }),
                            false => no_such_channel(c),
                        }
                    })
                    .collect(),
            )
        }
        "PART" => {
            let Some(chans) = p(0) else {
                return need_more("PART");
            };
            let reason = p(1).map(clean_text).filter(|r| !r.is_empty());
            steps(
                chans
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(|c| match is_channel(c) {
                        true => Step::Hub(Command::Part {
                            room: Some(c.to_string()),
                            reason: reason.clone(),
                        }),
                        false => no_such_channel(c),
                    })
                    .collect(),
            )
        }
        "TOPIC" => match p(0) {
            None => need_more("TOPIC"),
            Some(c) if !is_channel(c) => steps(vec![no_such_channel(c)]),
            Some(c) => hub(Command::Topic {
                room: c.to_string(),
                text: p(1).map(clean_text),
            }),
        },
        "NAMES" => match p(0) {
            None => Input::Reply(Reply::numeric(RPL_ENDOFNAMES, &["*", "End of /NAMES list"])),
            Some(chans) => hub(Command::Names {
                rooms: chans
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(|c| c.to_string())
                    .collect(),
            }),
        },
        // Channels, masks and ELIST conditions (`>3`, `!*x*`, `C<5`): see
        // RoomFilter.
        "LIST" => hub(Command::List {
            rooms: p(0).map(|cs| {
                cs.split(',')
                    .filter(|c| !c.is_empty())
                    .map(String::from)
                    .collect()
            }),
        }),
        "WHO" => Input::Who {
            target: target(p(0).unwrap_or("*")),
            whox: p(1).and_then(Whox::parse),
        },
        "WHOIS" => match m.params.last() {
            None => Input::Reply(Reply::numeric(ERR_NONICKNAMEGIVEN, &["No nickname given"])),
            Some(nicks) => {
                let nick = nicks.split(',').next().unwrap_or("");
                match super::services::named(nick) {
                    Some(service) => Input::About(About::Service(service), None),
                    None => hub(Command::Whois {
                        nick: nick.to_string(),
                    }),
                }
            }
        },
        "LUSERS" => hub(Command::Lusers),
        "AWAY" => hub(Command::Away {
            text: p(0).map(clean_text).filter(|t| !t.trim().is_empty()),
        }),
        "MODE" => match p(0) {
            None => need_more("MODE"),
            Some(t) if is_channel(t) => hub(Command::RoomMode {
                room: t.to_string(),
                changes: mode_changes(&m.params[1..]),
            }),
            Some(t) => hub(Command::UserMode {
                nick: t.to_string(),
                modes: p(1).map(String::from),
            }),
        },
        // KICK #a u1,u2 puts both out of #a; KICK #a,#b u1,u2 pairs them.
        "KICK" => match (p(0), p(1)) {
            (Some(chans), Some(nicks)) => {
                let reason = p(2).map(clean_text).filter(|r| !r.is_empty());
                let chans: Vec<&str> = chans.split(',').filter(|c| !c.is_empty()).collect();
                let nicks: Vec<&str> = nicks.split(',').filter(|n| !n.is_empty()).collect();
                if chans.is_empty() || nicks.is_empty() {
                    return need_more("KICK");
                }
                let pairs: Vec<(&str, &str)> = match chans.len() {
                    1 => nicks.iter().map(|n| (chans[0], *n)).collect(),
                    _ => chans.iter().copied().zip(nicks.iter().copied()).collect(),
                };
                steps(
                    pairs
                        .into_iter()
                        .map(|(c, n)| match is_channel(c) {
                            true => Step::Hub(Command::Kick {
                                room: c.to_string(),
                                nick: n.to_string(),
                                reason: reason.clone(),
                            }),
                            false => no_such_channel(c),
                        })
                        .collect(),
                )
            }
            _ => need_more("KICK"),
        },
        "INVITE" if m.params.is_empty() => hub(Command::Invites),
        "INVITE" => match (p(0), p(1)) {
            (Some(n), Some(c)) if is_channel(c) => hub(Command::Invite {
                nick: n.to_string(),
                room: c.to_string(),
            }),
            (Some(_), Some(c)) => steps(vec![no_such_channel(c)]),
            _ => need_more("INVITE"),
        },
        _ => Input::Reply(Reply::numeric(
            ERR_UNKNOWNCOMMAND,
            &[&clean_word(m.verb), "Unknown command"],
        )),
    }
}

/// Reads `+ov-k a b` and its arguments into changes. Modes taking an
/// argument (`b k o v`, and `l` when set) take the next one; `+b` with none
/// left asks for the ban list. At most [`MODES_PER_COMMAND`] changes with
/// an argument are read; the rest are ignored.
pub fn mode_changes(params: &[&str]) -> Vec<ModeChange> {
    let Some((modes, args)) = params.split_first() else {
        return Vec::new();
    };
    let mut args = args.iter();
    let mut out = Vec::new();
    let mut add = true;
    let mut with_args = 0;
    for c in modes.chars() {
        match c {
            '+' => add = true,
            '-' => add = false,
            _ => {
                let takes = matches!(c, 'b' | 'e' | 'I' | 'k' | 'o' | 'v') || (c == 'l' && add);
                let arg = if takes {
                    if with_args == MODES_PER_COMMAND {
                        break;
                    }
                    with_args += 1;
                    args.next().map(|a| Arc::<str>::from(*a))
                } else {
                    None
                };
                out.push(ModeChange { add, mode: c, arg });
                if out.len() >= 3 * MODES_PER_COMMAND {
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(line: &str) -> Vec<Step> {
        match decode_line(line) {
            Input::Steps(s) => s,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn numeric(line: &str) -> u16 {
        match decode_line(line) {
            Input::Reply(Reply::Numeric { code, .. }) => code,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn privmsg_targets_ctcp_and_cleaning() {
        assert_eq!(
            steps("PRIVMSG #lobby,bob :\x02hi\x02 \x0304there"),
            vec![
                Step::Hub(Command::Say {
                    room: Some("#lobby".into()),
                    text: "hi there".into(),
                    action: false
                }),
                Step::Hub(Command::Private {
                    to: "bob".into(),
                    text: "hi there".into(),
                    action: false
                }),
            ]
        );
        assert_eq!(
            steps("privmsg #r :\x01ACTION waves\x01"),
            vec![Step::Hub(Command::Say {
                room: Some("#r".into()),
                text: "waves".into(),
                action: true
            })]
        );
        assert_eq!(decode_line("PRIVMSG bob :\x01VERSION\x01"), Input::Nothing);
        assert_eq!(numeric("PRIVMSG"), ERR_NORECIPIENT);
        assert_eq!(numeric("PRIVMSG #r"), ERR_NOTEXTTOSEND);
        assert_eq!(numeric("PRIVMSG a,b,c,d,e :x"), ERR_TOOMANYTARGETS);
        assert_eq!(decode_line("NOTICE"), Input::Nothing);
    }

    #[test]
    fn join_part_with_keys_and_bad_names() {
        assert_eq!(
            steps("JOIN #a,b,#c k1,,k3"),
            vec![
                Step::Hub(Command::JoinWithKey {
                    room: "#a".into(),
                    key: Some("k1".into()),
                    switch: false
                }),
                Step::Reply(Reply::numeric(ERR_NOSUCHCHANNEL, &["b", "No such channel"])),
                Step::Hub(Command::JoinWithKey {
                    room: "#c".into(),
                    key: Some("k3".into()),
                    switch: false
                }),
            ]
        );
        assert_eq!(numeric("JOIN"), ERR_NEEDMOREPARAMS);
        assert_eq!(numeric("PART"), ERR_NEEDMOREPARAMS);
        assert_eq!(numeric("KICK #a"), ERR_NEEDMOREPARAMS);
        assert_eq!(numeric("FROB x"), ERR_UNKNOWNCOMMAND);
        assert_eq!(numeric("NICK"), ERR_NONICKNAMEGIVEN);
        assert_eq!(numeric("USER a b c"), ERR_NEEDMOREPARAMS);
        assert_eq!(numeric("PING"), ERR_NOORIGIN);
    }

    #[test]
    fn registration_and_cap() {
        assert_eq!(decode_line("NICK alice"), Input::Nick("alice".into()));
        assert_eq!(
            decode_line("USER al 0 * :Alice Liddell"),
            Input::User {
                user: "al".into(),
                realname: "Alice Liddell".into()
            }
        );
        assert_eq!(decode_line("CAP LS 302"), Input::Cap(Cap::Ls(302)));
        assert_eq!(
            decode_line("CAP REQ :server-time -echo-message"),
            Input::Cap(Cap::Req(vec![
                ("server-time".into(), true),
                ("echo-message".into(), false)
            ]))
        );
        assert_eq!(decode_line("cap end"), Input::Cap(Cap::End));
        assert_eq!(
            decode_line("CAP FOO"),
            Input::Cap(Cap::Unknown("FOO".into()))
        );
        assert_eq!(
            decode_line(&format!("PRIVMSG #a :{}", "x".repeat(600))),
            Input::Reply(Reply::numeric(
                ERR_INPUTTOOLONG,
                &["Input line was too long"]
            ))
        );
        assert_eq!(
            decode_line("@+typing=active;other=x TAGMSG #a"),
            Input::Steps(vec![Step::Hub(Command::TagMsg {
                target: Target::Room("#a".into()),
                tags: Arc::from([(Arc::from("+typing"), Arc::from("active"))]),
            })])
        );
    }

    #[test]
    fn detects_irc_first_lines() {
        for l in [
            "NICK alice",
            "nick alice",
            "CAP LS 302",
            "USER a 0 * :A",
            "PASS x",
        ] {
            assert!(looks_like_irc(l), "{l}");
        }
        for l in [
            "nick",
            "alice",
            "NICK",
            "{\"cmd\":\"login\"}",
            "/nick bob",
            "hello there",
        ] {
            assert!(!looks_like_irc(l), "{l}");
        }
    }

    #[test]
    fn modes_take_arguments_in_order() {
        let ch = |add, mode, arg: Option<&str>| ModeChange {
            add,
            mode,
            arg: arg.map(Arc::from),
        };
        assert_eq!(
            mode_changes(&["+ntk-l+ob", "key", "bob", "*!*@x"]),
            vec![
                ch(true, 'n', None),
                ch(true, 't', None),
                ch(true, 'k', Some("key")),
                ch(false, 'l', None),
                ch(true, 'o', Some("bob")),
                ch(true, 'b', Some("*!*@x")),
            ]
        );
        assert_eq!(mode_changes(&["+b"]), vec![ch(true, 'b', None)]);
        assert_eq!(mode_changes(&["+ooooo", "a", "b", "c", "d", "e"]).len(), 4);
        assert!(mode_changes(&[]).is_empty());
    }
}
