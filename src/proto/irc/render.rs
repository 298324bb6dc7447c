//! Events as IRC lines. Every line the server writes stays within 512 bytes
//! (tags excluded): long message text is split into several `PRIVMSG`s at
//! character (preferably word) boundaries, long lists (`NAMES`, `WHOIS`
//! channels, `MODE`, `ISUPPORT`) into several replies, and the free-text
//! last parameter of anything else (topics, reasons) is cut to fit.

use super::numerics::*;
use super::parse::MAX_BODY;
use super::Caps;
use super::{iso8601, truncate, Ctx, Reply};
use crate::proto::listing::{MembersRef, Page, PageBody};
use crate::proto::{
    ErrorCode, Event, EventBody, Fact, MemberInfo, ModeChange, Refusal, Subject, Visibility,
};

/// True for events that look the same to every recipient: they are
/// rendered once per flavour by [`shared`]; everything else goes through
/// [`reply`].
pub fn is_shared(body: &EventBody) -> bool {
    matches!(
        body,
        EventBody::Joined { .. }
            | EventBody::Parted { .. }
            | EventBody::Quit { .. }
            | EventBody::Message { .. }
            | EventBody::Private { .. }
            | EventBody::Notice { .. }
            | EventBody::NickChanged { .. }
            | EventBody::TopicChanged { .. }
            | EventBody::Kicked { .. }
            | EventBody::ModeChanged { .. }
            | EventBody::Away { .. }
            | EventBody::Ping { .. }
            | EventBody::Wallops { .. }
            | EventBody::TagMsg { .. }
            | EventBody::RealnameChanged { .. }
            | EventBody::StatusMessage { .. }
    )
}

/// Which tags a client takes on shared events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tagging {
    /// `server-time`: `time=`.
    pub time: bool,
    /// `message-tags`: `msgid=` and the sender's client-only tags.
    pub message_tags: bool,
}

/// The message id of events that have one.
fn msg_id(body: &EventBody) -> Option<crate::proto::MsgId> {
    match body {
        EventBody::Message { id, .. }
        | EventBody::Private { id, .. }
        | EventBody::Notice { id, .. }
        | EventBody::TagMsg { id, .. }
        | EventBody::TopicChanged { id, .. }
        | EventBody::StatusMessage { id, .. } => Some(*id),
        _ => None,
    }
}

/// Appends a tag value escaped as IRCv3 message-tags says.
pub fn escape_tag(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            ';' => out.push_str("\\:"),
            ' ' => out.push_str("\\s"),
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// The tag section (without `@`) of `ev` for a client taking `t`.
pub(super) fn tag_section(ev: &Event, t: Tagging) -> Option<String> {
    let mut s = String::new();
    if t.time {
        s.push_str("time=");
        s.push_str(&iso8601(ev.at_ms));
    }
    if t.message_tags {
        if ev.bot {
            if !s.is_empty() {
                s.push(';');
            }
            s.push_str("bot");
        }
        if let Some(id) = msg_id(&ev.body) {
            if !s.is_empty() {
                s.push(';');
            }
            s.push_str("msgid=");
            s.push_str(&id.to_string());
        }
        for (k, v) in ev.tags.iter().flat_map(|t| t.iter()) {
            if !s.is_empty() {
                s.push(';');
            }
            s.push_str(k);
            if !v.is_empty() {
                s.push('=');
                escape_tag(v, &mut s);
            }
        }
    }
    (!s.is_empty()).then_some(s)
}

/// Writes one line: `[@tags ]:source VERB middle… [:trailing]\r\n`. The part
/// after the tags is kept within [`MAX_BODY`] bytes by cutting `trailing`
/// (and, as a last resort, the line).
pub(super) fn line(
    out: &mut Vec<u8>,
    tags: Option<&str>,
    source: &str,
    verb: &str,
    middle: &[&str],
    trailing: Option<&str>,
) {
    if let Some(t) = tags {
        out.push(b'@');
        out.extend_from_slice(t.as_bytes());
        out.push(b' ');
    }
    let start = out.len();
    out.push(b':');
    out.extend_from_slice(source.as_bytes());
    out.push(b' ');
    out.extend_from_slice(verb.as_bytes());
    for m in middle {
        out.push(b' ');
        out.extend_from_slice(m.as_bytes());
    }
    if let Some(t) = trailing {
        let room = MAX_BODY.saturating_sub(out.len() - start + 2);
        out.extend_from_slice(b" :");
        out.extend_from_slice(truncate(t, room).as_bytes());
    }
    if out.len() - start > MAX_BODY {
        let keep = truncate(
            // The line so far is valid UTF-8: it was built from &strs.
            std::str::from_utf8(&out[start..]).unwrap_or(""),
            MAX_BODY,
        )
        .len();
        out.truncate(start + keep);
    }
    out.extend_from_slice(b"\r\n");
}

/// Splits `text` into pieces of at most `budget` bytes, at a space when one
/// is in the second half of the piece (the space itself is dropped: each
/// piece is sent as its own line), else at a character boundary. The chat
/// client splits what it sends with this too.
pub fn split_text(text: &str, budget: usize) -> Vec<&str> {
    let budget = budget.max(8);
    let mut pieces = Vec::new();
    let mut rest = text;
    while rest.len() > budget {
        let cut = truncate(rest, budget).len();
        match rest[..cut].rfind(' ') {
            Some(sp) if sp > cut / 2 => {
                pieces.push(&rest[..sp]);
                rest = &rest[sp + 1..];
            }
            _ => {
                pieces.push(&rest[..cut]);
                rest = &rest[cut..];
            }
        }
    }
    if !rest.is_empty() || pieces.is_empty() {
        pieces.push(rest);
    }
    pieces
}

/// The longest message text an IRC client can send in one line
/// (`PRIVMSG x :` and 499 bytes).
const MAX_IRC_TEXT: usize = MAX_BODY - "PRIVMSG x :".len();

/// `PRIVMSG`/`NOTICE` lines for `text`: cut to fit if it could have come in
/// one IRC line, else split; `action` wraps each piece in CTCP ACTION.
fn chat(
    out: &mut Vec<u8>,
    tags: Option<&str>,
    source: &str,
    verb: &str,
    target: &str,
    text: &str,
    action: bool,
) {
    let overhead = 1 + source.len() + 1 + verb.len() + 1 + target.len() + 2;
    let ctcp = if action { 9 } else { 0 };
    let budget = MAX_BODY.saturating_sub(overhead + ctcp);
    // What fit in the sender's own IRC line loses only its overflow, as on
    // any IRC server; longer text (from text or JSON users) is split.
    let pieces = match text.len() <= MAX_IRC_TEXT {
        true => vec![truncate(text, budget)],
        false => split_text(text, budget),
    };
    for piece in pieces {
        if action {
            let wrapped = format!("\x01ACTION {piece}\x01");
            line(out, tags, source, verb, &[target], Some(&wrapped));
        } else {
            line(out, tags, source, verb, &[target], Some(piece));
        }
    }
}

/// The source of an event done by someone: their `nick!user@host`, or just
/// the nick when the hub did not attach one.
fn source<'a>(ev: &'a Event, nick: &'a str) -> &'a str {
    ev.source.as_deref().unwrap_or(nick)
}

/// `+ov-k a b` for a list of changes (at most [`super::MODES_PER_COMMAND`]
/// with arguments; see [`mode_groups`]).
fn mode_string(changes: &[ModeChange]) -> (String, Vec<&str>) {
    let mut letters = String::new();
    let mut sign = None;
    let mut args = Vec::new();
    for c in changes {
        if sign != Some(c.add) {
            letters.push(if c.add { '+' } else { '-' });
            sign = Some(c.add);
        }
        letters.push(c.mode);
        if let Some(a) = &c.arg {
            args.push(&**a);
        }
    }
    (letters, args)
}

/// Splits mode changes into groups that fit one `MODE` line each.
fn mode_groups(changes: &[ModeChange], fixed: usize) -> Vec<&[ModeChange]> {
    let mut groups = Vec::new();
    let mut start = 0;
    let (mut with_args, mut bytes) = (0, fixed);
    for (i, c) in changes.iter().enumerate() {
        let arg_len = c.arg.as_ref().map_or(0, |a| a.len() + 1);
        let full = with_args + usize::from(c.arg.is_some()) > super::MODES_PER_COMMAND
            || bytes + 2 + arg_len > MAX_BODY;
        if full && i > start {
            groups.push(&changes[start..i]);
            start = i;
            with_args = 0;
            bytes = fixed;
        }
        with_args += usize::from(c.arg.is_some());
        bytes += 2 + arg_len;
    }
    if start < changes.len() {
        groups.push(&changes[start..]);
    }
    groups
}

/// Renders an event that looks the same to every recipient (see
/// [`is_shared`]). `tagged`: prefix an IRCv3 `@time=` tag. Other events
/// render as nothing here: they need a [`Ctx`].
pub fn shared(ev: &Event, tagged: bool, out: &mut Vec<u8>) {
    let tagging = Tagging {
        time: tagged,
        message_tags: false,
    };
    shared_tagged(ev, tagging, out)
}

/// [`shared`] with the tags `t` asks for.
pub fn shared_tagged(ev: &Event, t: Tagging, out: &mut Vec<u8>) {
    let tag = tag_section(ev, t);
    with_tags(ev, tag.as_deref(), out)
}

/// A shared event with these tags (`key=value;…`, no `@`).
pub(super) fn with_tags(ev: &Event, tags: Option<&str>, out: &mut Vec<u8>) {
    match &ev.body {
        EventBody::Joined { room, nick, .. } => {
            line(out, tags, source(ev, nick), "JOIN", &[&chan(room)], None)
        }
        EventBody::Parted {
            room, nick, reason, ..
        } => line(
            out,
            tags,
            source(ev, nick),
            "PART",
            &[&chan(room)],
            reason.as_deref(),
        ),
        EventBody::Quit { nick, reason } => {
            line(out, tags, source(ev, nick), "QUIT", &[], Some(reason))
        }
        EventBody::Message {
            room,
            from,
            text,
            action,
            ..
        } => chat(
            out,
            tags,
            source(ev, from),
            "PRIVMSG",
            &chan(room),
            text,
            *action,
        ),
        EventBody::Private {
            from,
            to,
            text,
            action,
            ..
        } => chat(out, tags, source(ev, from), "PRIVMSG", to, text, *action),
        EventBody::Notice {
            from,
            room,
            to,
            text,
            ..
        } => {
            let target = match (room, to) {
                (Some(r), _) => chan(r),
                (None, Some(t)) => t.to_string(),
                (None, None) => return,
            };
            chat(out, tags, source(ev, from), "NOTICE", &target, text, false)
        }
        EventBody::NickChanged { old, new } => {
            line(out, tags, source(ev, old), "NICK", &[], Some(new))
        }
        EventBody::TopicChanged {
            room, nick, topic, ..
        } => line(
            out,
            tags,
            source(ev, nick),
            "TOPIC",
            &[&chan(room)],
            Some(topic.as_deref().unwrap_or("")),
        ),
        EventBody::Kicked {
            room,
            nick,
            target,
            reason,
            ..
        } => line(
            out,
            tags,
            source(ev, nick),
            "KICK",
            &[&chan(room), target],
            Some(reason.as_deref().unwrap_or(nick)),
        ),
        EventBody::ModeChanged {
            room,
            nick,
            changes,
        } => {
            let src = source(ev, nick);
            let room = chan(room);
            let fixed = 1 + src.len() + 6 + room.len() + 1;
            for group in mode_groups(changes, fixed) {
                let (letters, args) = mode_string(group);
                let mut middle = vec![room.as_str(), letters.as_str()];
                middle.extend(args);
                line(out, tags, src, "MODE", &middle, None);
            }
        }
        EventBody::Away { nick, text } => {
            line(out, tags, source(ev, nick), "AWAY", &[], text.as_deref())
        }
        EventBody::Ping { token } => {
            out.extend_from_slice(format!("PING :{token}\r\n").as_bytes());
        }
        EventBody::Wallops { from, text } => {
            line(out, tags, source(ev, from), "WALLOPS", &[], Some(text))
        }
        EventBody::StatusMessage {
            room,
            from,
            text,
            action,
            notice,
            voiced,
            ..
        } => {
            let target = format!("{}#{room}", if *voiced { '+' } else { '@' });
            let verb = if *notice { "NOTICE" } else { "PRIVMSG" };
            chat(out, tags, source(ev, from), verb, &target, text, *action)
        }
        EventBody::RealnameChanged { nick, realname } => {
            line(out, tags, source(ev, nick), "SETNAME", &[], Some(realname))
        }
        EventBody::TagMsg { from, room, to, .. } => {
            let target = match (room, to) {
                (Some(r), _) => chan(r),
                (None, Some(t)) => t.to_string(),
                (None, None) => return,
            };
            line(out, tags, source(ev, from), "TAGMSG", &[&target], None)
        }
        _ => {}
    }
}

/// `#room` for a room name.
pub fn chan(room: &str) -> String {
    format!("#{room}")
}

/// Numerics whose parameters are all words (no free text): their last
/// parameter is written without a `:` when it allows it.
const STRUCTURED: &[u16] = &[
    RPL_MYINFO,
    RPL_UMODEIS,
    RPL_CHANNELMODEIS,
    RPL_CREATIONTIME,
    RPL_TOPICWHOTIME,
    RPL_INVITING,
    RPL_BANLIST,
    RPL_EXCEPTLIST,
    RPL_INVEXLIST,
    RPL_INVITELIST,
];

/// Writes `:server CODE nick params… :last`.
pub(super) fn numeric(out: &mut Vec<u8>, ctx: &Ctx, code: u16, params: &[&str]) {
    let plain_last = STRUCTURED.contains(&code);
    let code = format!("{code:03}");
    let mut middle = vec![ctx.nick];
    let trailing = match params.split_last() {
        Some((last, rest)) => {
            middle.extend_from_slice(rest);
            if plain_last && !last.is_empty() && !last.contains(' ') && !last.starts_with(':') {
                middle.push(last);
                None
            } else {
                Some(*last)
            }
        }
        None => None,
    };
    line(out, None, &ctx.info.name, &code, &middle, trailing);
}

fn notice(out: &mut Vec<u8>, ctx: &Ctx, text: &str) {
    for piece in split_text(text, 400) {
        line(
            out,
            None,
            &ctx.info.name,
            "NOTICE",
            &[ctx.nick],
            Some(piece),
        );
    }
}

/// Space-separated `items` in as many numerics as needed: each is
/// `:server CODE nick <middle…> :<items…>` within the line limit.
fn listed(out: &mut Vec<u8>, ctx: &Ctx, code: u16, middle: &[&str], items: &[String]) {
    listed_by(out, ctx, code, middle, items, ' ')
}

/// [`listed`] with items joined by `sep` (`,` for MONITOR).
fn listed_by(
    out: &mut Vec<u8>,
    ctx: &Ctx,
    code: u16,
    middle: &[&str],
    items: &[String],
    sep: char,
) {
    let fixed = 1
        + ctx.info.name.len()
        + 5
        + ctx.nick.len()
        + middle.iter().map(|m| m.len() + 1).sum::<usize>()
        + 2;
    let budget = MAX_BODY.saturating_sub(fixed);
    let mut current = String::new();
    let flush = |current: &mut String, out: &mut Vec<u8>| {
        let mut params = middle.to_vec();
        params.push(current);
        numeric(out, ctx, code, &params);
        current.clear();
    };
    for item in items {
        if !current.is_empty() && current.len() + 1 + item.len() > budget {
            flush(&mut current, out);
        }
        if !current.is_empty() {
            current.push(sep);
        }
        current.push_str(item);
    }
    if !current.is_empty() {
        flush(&mut current, out);
    }
}

/// `H`/`G` (here, gone), `*` (server operator), `B` (bot) and the room
/// prefix: a `WHO` reply's flags.
pub(super) fn who_flags(m: &MemberInfo, caps: Caps) -> String {
    format!(
        "{}{}{}{}",
        if m.away { "G" } else { "H" },
        if m.oper { "*" } else { "" },
        if m.bot { "B" } else { "" },
        prefix(m.op, m.voice, caps.multi_prefix)
    )
}

/// The `@`/`+` prefix of a member: the highest, or all with multi-prefix.
fn prefix(op: bool, voice: bool, multi: bool) -> &'static str {
    match (op, voice, multi) {
        (true, true, true) => "@+",
        (true, _, _) => "@",
        (false, true, _) => "+",
        (false, false, _) => "",
    }
}

/// `@nick` (or `@nick!user@host` with `userhost-in-names`) for each member.
fn member_names(members: MembersRef<'_>, caps: Caps) -> Vec<String> {
    members
        .iter()
        .map(|m| {
            let p = prefix(m.op, m.voice, caps.multi_prefix);
            match caps.userhost_in_names {
                true => format!("{p}{}!{}@{}", m.nick, m.user, m.host),
                false => format!("{p}{}", m.nick),
            }
        })
        .collect()
}

/// The `RPL_NAMREPLY` symbol of a room: `=` public, `*` private, `@` secret.
fn names_symbol(v: Visibility) -> &'static str {
    match v {
        Visibility::Public => "=",
        Visibility::Private => "*",
        Visibility::Secret => "@",
    }
}

/// Renders an event for one recipient (numerics carry their nick).
/// Shared events are rendered as [`shared`] would.
pub fn reply(ev: &Event, ctx: &Ctx, out: &mut Vec<u8>) {
    let server = &*ctx.info.name;
    match &ev.body {
        body if is_shared(body) => shared_tagged(ev, ctx.caps.tagging(), out),
        EventBody::Welcome { server, online } => notice(
            out,
            ctx,
            &format!(
                "*** Welcome to {server}! {online} {} online.",
                if *online == 1 { "person" } else { "people" }
            ),
        ),
        EventBody::Registered { nick, .. } => {
            let welcome = format!(
                "Welcome to the {server} IRC Network {nick}!{}@{}",
                ctx.user, ctx.host
            );
            numeric(out, ctx, RPL_WELCOME, &[&welcome]);
            let host = format!(
                "Your host is {server}, running version {}",
                ctx.info.version
            );
            numeric(out, ctx, RPL_YOURHOST, &[&host]);
            let created = format!("This server was created {}", ctx.info.created);
            numeric(out, ctx, RPL_CREATED, &[&created]);
            numeric(
                out,
                ctx,
                RPL_MYINFO,
                &[
                    server,
                    &ctx.info.version,
                    "Biow",
                    "Ibeiklmnopstv",
                    "Ibeklov",
                ],
            );
            for tokens in ctx.info.isupport.chunks(12) {
                let mut params: Vec<&str> = tokens.iter().map(|t| t.as_str()).collect();
                params.push("are supported by this server");
                numeric(out, ctx, RPL_ISUPPORT, &params);
            }
        }
        body @ (EventBody::Members { .. }
        | EventBody::WhoReply { .. }
        | EventBody::RoomDetails { .. }) => {
            if let Some(p) = Page::of(body) {
                page(&p, ctx, out)
            }
        }
        EventBody::Names { asked, rooms } => {
            for r in rooms {
                let room = chan(&r.room);
                let names = member_names((&r.members).into(), ctx.caps);
                listed(
                    out,
                    ctx,
                    RPL_NAMREPLY,
                    &[names_symbol(r.visibility), &room],
                    &names,
                );
            }
            let asked: Vec<&str> = asked.iter().map(|a| &**a).collect();
            let asked = super::decode::clean_word(&asked.join(","));
            numeric(out, ctx, RPL_ENDOFNAMES, &[&asked, "End of /NAMES list"]);
        }
        EventBody::UserHosts { people } => {
            let items: Vec<String> = people
                .iter()
                .map(|p| {
                    format!(
                        "{}{}={}{}@{}",
                        p.nick,
                        if p.oper { "*" } else { "" },
                        if p.away { '-' } else { '+' },
                        p.user,
                        p.host
                    )
                })
                .collect();
            numeric(out, ctx, RPL_USERHOST, &[&items.join(" ")]);
        }
        EventBody::IsOn { nicks } => {
            let nicks: Vec<&str> = nicks.iter().map(|n| &**n).collect();
            numeric(out, ctx, RPL_ISON, &[&nicks.join(" ")]);
        }
        EventBody::WhoWas { nick, entries } => {
            for e in entries {
                numeric(
                    out,
                    ctx,
                    RPL_WHOWASUSER,
                    &[&e.nick, &e.user, &e.host, "*", &e.realname],
                );
                let when = iso8601(e.left_ms);
                numeric(out, ctx, RPL_WHOISSERVER, &[&e.nick, server, &when]);
            }
            let nick = super::decode::clean_word(nick);
            numeric(out, ctx, RPL_ENDOFWHOWAS, &[&nick, "End of WHOWAS"]);
        }
        EventBody::InviteList { rooms } => {
            for r in rooms {
                numeric(out, ctx, RPL_INVITELIST, &[&chan(r)]);
            }
            numeric(out, ctx, RPL_ENDOFINVITELIST, &["End of /INVITE list"]);
        }
        EventBody::MonOnline { people } => {
            let items: Vec<String> = people.iter().map(|p| p.to_string()).collect();
            listed_by(out, ctx, RPL_MONONLINE, &[], &items, ',');
        }
        EventBody::MonOffline { nicks } => {
            let items: Vec<String> = nicks.iter().map(|p| p.to_string()).collect();
            listed_by(out, ctx, RPL_MONOFFLINE, &[], &items, ',');
        }
        EventBody::MonList { nicks } => {
            let items: Vec<String> = nicks.iter().map(|p| p.to_string()).collect();
            listed_by(out, ctx, RPL_MONLIST, &[], &items, ',');
            numeric(out, ctx, RPL_ENDOFMONLIST, &["End of MONITOR list"]);
        }
        EventBody::OperUp { .. } => {
            numeric(out, ctx, RPL_YOUREOPER, &["You are now an IRC operator"])
        }
        EventBody::Rehashing => numeric(out, ctx, RPL_REHASHING, &["natter.toml", "Rehashing"]),
        EventBody::Killed { by, reason } => {
            closing(out, ctx, &format!("Killed ({by} ({reason}))"));
        }
        EventBody::TopicInfo { room, topic } => {
            let room = chan(room);
            match topic {
                Some(t) => {
                    numeric(out, ctx, RPL_TOPIC, &[&room, &t.text]);
                    let at = (t.set_at_ms / 1000).to_string();
                    numeric(out, ctx, RPL_TOPICWHOTIME, &[&room, &t.set_by, &at]);
                }
                None => numeric(out, ctx, RPL_NOTOPIC, &[&room, "No topic is set"]),
            }
        }
        EventBody::RoomModes {
            room,
            modes,
            created_ms,
        } => {
            let room = chan(room);
            let (letters, args) = mode_string(modes);
            let letters = if letters.is_empty() {
                "+".to_string()
            } else {
                letters
            };
            let mut params = vec![room.as_str(), letters.as_str()];
            params.extend(args);
            numeric(out, ctx, RPL_CHANNELMODEIS, &params);
            let created = (created_ms / 1000).to_string();
            numeric(out, ctx, RPL_CREATIONTIME, &[&room, &created]);
        }
        EventBody::BanList { room, mode, bans } => {
            let room = chan(room);
            let (item, end, text) = match mode {
                'e' => (
                    RPL_EXCEPTLIST,
                    RPL_ENDOFEXCEPTLIST,
                    "End of channel exception list",
                ),
                'I' => (
                    RPL_INVEXLIST,
                    RPL_ENDOFINVEXLIST,
                    "End of channel invite exception list",
                ),
                _ => (RPL_BANLIST, RPL_ENDOFBANLIST, "End of channel ban list"),
            };
            for b in bans {
                let at = (b.set_at_ms / 1000).to_string();
                numeric(out, ctx, item, &[&room, &b.mask, &b.set_by, &at]);
            }
            numeric(out, ctx, end, &[&room, text]);
        }
        EventBody::AwayReply { nick, text } => numeric(out, ctx, RPL_AWAY, &[nick, text]),
        EventBody::AwayStatus { away: true } => numeric(
            out,
            ctx,
            RPL_NOWAWAY,
            &["You have been marked as being away"],
        ),
        EventBody::AwayStatus { away: false } => numeric(
            out,
            ctx,
            RPL_UNAWAY,
            &["You are no longer marked as being away"],
        ),
        EventBody::Invited { room, nick, target } => {
            let room = chan(room);
            if **nick == *ctx.nick && **target != *ctx.nick {
                numeric(out, ctx, RPL_INVITING, &[target, &room]);
            } else {
                // to the invitee, and (invite-notify) to the room's operators
                line(
                    out,
                    None,
                    source(ev, nick),
                    "INVITE",
                    &[target],
                    Some(&room),
                );
            }
        }
        EventBody::Whois { nick, info } => {
            match info {
                None => numeric(out, ctx, ERR_NOSUCHNICK, &[nick, "No such nick/channel"]),
                Some(i) => {
                    numeric(
                        out,
                        ctx,
                        RPL_WHOISUSER,
                        &[nick, &i.user, &i.host, "*", &i.realname],
                    );
                    let rooms: Vec<String> = i
                        .rooms
                        .iter()
                        .map(|(r, op, voice)| {
                            format!("{}#{r}", prefix(*op, *voice, ctx.caps.multi_prefix))
                        })
                        .collect();
                    listed(out, ctx, RPL_WHOISCHANNELS, &[nick], &rooms);
                    numeric(out, ctx, RPL_WHOISSERVER, &[nick, server, "natter"]);
                    if let Some(account) = &i.account {
                        let params = [&**nick, account, "is logged in as"];
                        numeric(out, ctx, RPL_WHOISACCOUNT, &params);
                    }
                    if i.oper {
                        numeric(out, ctx, RPL_WHOISOPERATOR, &[nick, "is an IRC operator"]);
                    }
                    if i.bot {
                        numeric(out, ctx, RPL_WHOISBOT, &[nick, "is a bot"]);
                    }
                    if i.secure {
                        numeric(
                            out,
                            ctx,
                            RPL_WHOISSECURE,
                            &[nick, "is using a secure connection"],
                        );
                    }
                    if let Some(away) = &i.away {
                        numeric(out, ctx, RPL_AWAY, &[nick, away]);
                    }
                    let idle = i.idle_secs.to_string();
                    let signon = (i.signon_ms / 1000).to_string();
                    numeric(
                        out,
                        ctx,
                        RPL_WHOISIDLE,
                        &[nick, &idle, &signon, "seconds idle, signon time"],
                    );
                }
            }
            numeric(out, ctx, RPL_ENDOFWHOIS, &[nick, "End of /WHOIS list"]);
        }
        EventBody::RoomList { rooms, .. } => {
            numeric(out, ctx, RPL_LISTSTART, &["Channel", "Users  Name"]);
            for (name, n) in rooms {
                numeric(out, ctx, RPL_LIST, &[&chan(name), &n.to_string(), ""]);
            }
            numeric(out, ctx, RPL_LISTEND, &["End of /LIST"]);
        }
        EventBody::Lusers {
            users,
            invisible,
            opers,
            unregistered,
            rooms,
            max_users,
        } => {
            let visible = users - invisible.min(users);
            let clients =
                format!("There are {visible} users and {invisible} invisible on 1 servers");
            numeric(out, ctx, RPL_LUSERCLIENT, &[&clients]);
            numeric(
                out,
                ctx,
                RPL_LUSEROP,
                &[&opers.to_string(), "operator(s) online"],
            );
            let unknown = unregistered.to_string();
            numeric(
                out,
                ctx,
                RPL_LUSERUNKNOWN,
                &[&unknown, "unknown connection(s)"],
            );
            numeric(
                out,
                ctx,
                RPL_LUSERCHANNELS,
                &[&rooms.to_string(), "channels formed"],
            );
            let me = format!("I have {users} clients and 0 servers");
            numeric(out, ctx, RPL_LUSERME, &[&me]);
            let (n, max) = (users.to_string(), max_users.to_string());
            let local = format!("Current local users {users}, max {max_users}");
            numeric(out, ctx, RPL_LOCALUSERS, &[&n, &max, &local]);
            let global = format!("Current global users {users}, max {max_users}");
            numeric(out, ctx, RPL_GLOBALUSERS, &[&n, &max, &global]);
        }
        EventBody::UserModes {
            nick,
            modes,
            changed,
        } => {
            if *changed {
                let src = format!("{nick}!{}@{}", ctx.user, ctx.host);
                line(out, None, &src, "MODE", &[nick], Some(modes));
            } else {
                numeric(out, ctx, RPL_UMODEIS, &[modes]);
            }
        }
        EventBody::Refused(r) => refusal(r, ctx, out),
        EventBody::Info { text } => notice(out, ctx, text),
        EventBody::HistoryTargets { targets } => {
            // In a `draft/chathistory-targets` batch when the client takes batches.
            let batch = ctx.caps.batch.then_some("t");
            if let Some(id) = batch {
                let start = [&*format!("+{id}"), "draft/chathistory-targets"];
                line(out, None, server, "BATCH", &start, None);
            }
            let tag = batch.map(|id| format!("batch={id}"));
            for (target, at_ms, room) in targets {
                let target = match room {
                    true => chan(target),
                    false => target.to_string(),
                };
                let params = ["TARGETS", &*target, &iso8601(*at_ms)];
                line(out, tag.as_deref(), server, "CHATHISTORY", &params, None);
            }
            if let Some(id) = batch {
                line(out, None, server, "BATCH", &[&format!("-{id}")], None);
            }
        }
        EventBody::History {
            room,
            with,
            facts,
            asked,
            ..
        } => {
            let target = match with {
                Some(person) => super::decode::clean_word(person),
                None => chan(room),
            };
            history(&target, facts, *asked, ctx, out)
        }
        EventBody::Help => {
            notice(
                out,
                ctx,
                "natter IRC commands: JOIN PART PRIVMSG NOTICE NICK TOPIC MODE KICK INVITE \
                 NAMES WHO WHOIS LIST LUSERS AWAY MOTD PING QUIT CAP AUTHENTICATE; \
                 accounts: PRIVMSG NickServ :HELP, PRIVMSG ChanServ :HELP",
            );
        }
        EventBody::Shutdown { reason } => {
            notice(out, ctx, &format!("*** Server shutting down: {reason}"));
            closing(out, ctx, "Server shutting down");
        }
        _ => {}
    }
}

/// One page of a long listing: `LIST` (321 first, 322 each, 323 last),
/// `NAMES` (353 lines, 366 last) or `WHO` (352 each, 315 last).
pub fn page(page: &Page, ctx: &Ctx, out: &mut Vec<u8>) {
    match page.body {
        PageBody::Rooms(rooms) => {
            if page.first {
                numeric(out, ctx, RPL_LISTSTART, &["Channel", "Users  Name"]);
            }
            for r in rooms {
                let name = chan(&r.name);
                let n = r.members.to_string();
                let topic = r.topic.as_deref().unwrap_or("");
                numeric(out, ctx, RPL_LIST, &[&name, &n, topic]);
            }
            if page.last {
                numeric(out, ctx, RPL_LISTEND, &["End of /LIST"]);
            }
        }
        PageBody::Names {
            room,
            visibility,
            members,
            asked,
            ..
        } => {
            if !room.is_empty() {
                let room = chan(room);
                let names = member_names(members, ctx.caps);
                listed(
                    out,
                    ctx,
                    RPL_NAMREPLY,
                    &[names_symbol(visibility), &room],
                    &names,
                );
            }
            if page.last {
                let end = match asked {
                    Some(asked) => super::decode::clean_word(asked),
                    None => chan(room),
                };
                numeric(out, ctx, RPL_ENDOFNAMES, &[&end, "End of /NAMES list"]);
            }
        }
        PageBody::Who {
            mask,
            room,
            members,
            ..
        } => {
            let room = room.map(chan);
            for m in members {
                let flags = who_flags(m, ctx.caps);
                let real = format!("0 {}", m.realname);
                let params = [
                    room.as_deref().unwrap_or("*"),
                    &m.user,
                    &m.host,
                    &ctx.info.name,
                    &m.nick,
                    &flags,
                    &real,
                ];
                numeric(out, ctx, RPL_WHOREPLY, &params);
            }
            if page.last {
                numeric(out, ctx, RPL_ENDOFWHO, &[mask, "End of WHO list"]);
            }
        }
    }
}

/// A refusal as its numeric, its subjects in IRC's order (rooms as
/// `#room`); a timeout closes the link; codes with no numeric are notices.
fn refusal(r: &Refusal, ctx: &Ctx, out: &mut Vec<u8>) {
    let Some((num, text)) = super::numerics::for_error(r.code) else {
        return match r.code {
            ErrorCode::Timeout => closing(out, ctx, &r.describe()),
            _ => notice(out, ctx, &r.describe()),
        };
    };
    let detail;
    let text = match (r.code, &r.detail) {
        (ErrorCode::NickInvalid | ErrorCode::NickInUse, Some(why)) => {
            detail = format!("{text}: {why}");
            detail.as_str()
        }
        (ErrorCode::InvalidModeParam, Some(why)) => why,
        (ErrorCode::MonListFull, _) => "Monitor list is full.",
        _ => text,
    };
    // 501 names no mode; the others name what they are about.
    let subjects = match r.code {
        ErrorCode::UnknownUserMode => &[][..],
        _ => &r.about[..],
    };
    let about: Vec<String> = subjects
        .iter()
        .map(|s| match s {
            Subject::Nick(n) => n.to_string(),
            Subject::Room(n) => chan(n),
            Subject::Command(c) => c.to_string(),
            Subject::Mode(m) => m.to_string(),
            Subject::Mask(m) => m.to_string(),
            Subject::Value(v) => v.to_string(),
        })
        .collect();
    let mut params: Vec<&str> = about.iter().map(String::as_str).collect();
    if params.is_empty() && r.code == ErrorCode::NickInUse {
        params.push("*");
    }
    if let (ErrorCode::MonListFull, Some(limit)) = (r.code, &r.detail) {
        params.insert(0, limit); // 734 <limit> <targets>
    }
    params.push(text);
    numeric(out, ctx, num, &params);
}

/// A room's history: in a `chathistory` batch when the client asked with
/// CHATHISTORY and has `batch`, each line with its `time` (server-time) and
/// `msgid` (message-tags), so clients can place and de-duplicate them.
/// A `chathistory` batch for `target` (`#room`, or the person of a
/// private history).
pub fn history(target: &str, facts: &[Fact], asked: bool, ctx: &Ctx, out: &mut Vec<u8>) {
    let server = &*ctx.info.name;
    let batch = (asked && ctx.caps.batch).then(|| match facts.first() {
        Some(f) => format!("h{}", f.seq),
        None => "h0".to_string(),
    });
    if let Some(id) = &batch {
        let params = [format!("+{id}"), "chathistory".into(), target.to_string()];
        let params: Vec<&str> = params.iter().map(String::as_str).collect();
        line(out, None, server, "BATCH", &params, None);
    }
    for fact in facts {
        let Some(ev) = fact.event() else { continue };
        let mut tags = Vec::new();
        if let Some(id) = &batch {
            tags.push(format!("batch={id}"));
        }
        if ctx.caps.server_time {
            tags.push(format!("time={}", iso8601(fact.at_ms)));
        }
        if ctx.caps.message_tags {
            tags.push(format!("msgid={}", fact.id));
            // The client-only tags kept with it (a kept `TAGMSG`).
            for (k, v) in ev.tags.iter().flat_map(|t| t.iter()) {
                let mut tag = k.to_string();
                if !v.is_empty() {
                    tag.push('=');
                    escape_tag(v, &mut tag);
                }
                tags.push(tag);
            }
        }
        let tags = tags.join(";");
        with_tags(&ev, (!tags.is_empty()).then_some(tags.as_str()), out);
    }
    if let Some(id) = &batch {
        line(out, None, server, "BATCH", &[&format!("-{id}")], None);
    }
}

/// `ERROR :Closing Link: host (why)`.
fn closing(out: &mut Vec<u8>, ctx: &Ctx, why: &str) {
    let text = format!("Closing Link: {} ({why})", ctx.host);
    let text = truncate(&text, MAX_BODY - 8);
    out.extend_from_slice(b"ERROR :");
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Renders a session-made reply.
pub fn render_reply(r: &Reply, ctx: &Ctx, out: &mut Vec<u8>) {
    let server = &*ctx.info.name;
    match r {
        Reply::Numeric { code, params } => {
            let params: Vec<&str> = params.iter().map(|p| p.as_str()).collect();
            numeric(out, ctx, *code, &params);
        }
        Reply::Cap { sub, list } => line(out, None, server, "CAP", &[ctx.nick, sub], Some(list)),
        Reply::Pong { token } => line(out, None, server, "PONG", &[server], Some(token)),
        Reply::Authenticate(data) => {
            out.extend_from_slice(b"AUTHENTICATE ");
            out.extend_from_slice(data.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Reply::Service { service, text } => {
            super::services::service_notice(out, ctx, service, text)
        }
        Reply::Closing { why } => closing(out, ctx, why),
        Reply::Notice { text } => notice(out, ctx, text),
        Reply::Fail {
            command,
            code,
            context,
            text,
        } => {
            let mut params = vec![*command, *code];
            params.extend(context.iter().map(String::as_str));
            line(out, None, server, "FAIL", &params, Some(text));
        }
        Reply::Verb { verb, params } => {
            let params: Vec<&str> = params.iter().map(String::as_str).collect();
            line(out, None, server, verb, &params, None);
        }
        Reply::Motd => {
            if ctx.info.motd.is_empty() {
                numeric(out, ctx, ERR_NOMOTD, &["MOTD File is missing"]);
                return;
            }
            let start = format!("- {server} Message of the day - ");
            numeric(out, ctx, RPL_MOTDSTART, &[&start]);
            for l in &ctx.info.motd {
                numeric(out, ctx, RPL_MOTD, &[l]);
            }
            numeric(out, ctx, RPL_ENDOFMOTD, &["End of /MOTD command."]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::irc::{Caps, Limits, ServerInfo};
    use std::sync::Arc;

    fn info() -> ServerInfo {
        ServerInfo::new(
            "natter",
            &Limits {
                monitor_limit: 100,
                history_max_lines: 1000,
                max_nick_chars: 30,
                max_room_chars: 50,
                max_rooms_per_user: 100,
                topic_len: 390,
                max_bans: 100,
            },
            0,
        )
    }

    fn lines(bytes: &[u8]) -> Vec<String> {
        let s = std::str::from_utf8(bytes).unwrap();
        assert!(s.is_empty() || s.ends_with("\r\n"), "{s:?}");
        s.split("\r\n")
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }

    fn body_len(l: &str) -> usize {
        match l.strip_prefix('@') {
            Some(rest) => rest.split_once(' ').map_or(0, |(_, b)| b.len()),
            None => l.len(),
        }
    }

    #[test]
    fn message_with_and_without_time_tag() {
        let mut ev = Event::new(EventBody::Message {
            id: crate::proto::MsgId(1),
            seq: 1,
            room: "lobby".into(),
            from: "alice".into(),
            text: "hi there".into(),
            action: false,
        });
        ev.source = Some("alice!~a@h".into());
        ev.at_ms = 1_795_000_000_000;
        let mut out = Vec::new();
        shared(&ev, false, &mut out);
        assert_eq!(lines(&out), [":alice!~a@h PRIVMSG #lobby :hi there"]);
        out.clear();
        shared(&ev, true, &mut out);
        assert_eq!(
            lines(&out),
            ["@time=2026-11-18T11:06:40.000Z :alice!~a@h PRIVMSG #lobby :hi there"]
        );
    }

    #[test]
    fn long_text_and_actions_split_within_512() {
        let text = "word ".repeat(300) + &"字".repeat(400);
        let mut ev = Event::new(EventBody::Message {
            id: crate::proto::MsgId(1),
            seq: 1,
            room: "lobby".into(),
            from: "alice".into(),
            text: text.as_str().into(),
            action: true,
        });
        ev.source = Some("alice!~a@h".into());
        let mut out = Vec::new();
        shared(&ev, true, &mut out);
        let ls = lines(&out);
        assert!(ls.len() > 4);
        let mut rebuilt = String::new();
        for l in &ls {
            assert!(body_len(l) <= 510, "{} bytes", body_len(l));
            let t = l.split_once(" :\x01ACTION ").unwrap().1;
            let t = t.strip_suffix('\x01').unwrap();
            rebuilt.push_str(t);
        }
        assert_eq!(rebuilt.replace(' ', ""), text.replace(' ', ""));
    }

    #[test]
    fn names_split_and_prefixes() {
        let info = info();
        let members: Vec<MemberInfo> = (0..200)
            .map(|i| MemberInfo {
                nick: format!("user{i:03}").into(),
                user: "u".into(),
                host: "h".into(),
                realname: "r".into(),
                away: false,
                oper: false,
                bot: false,
                op: i == 0,
                voice: i < 2,
                account: None,
            })
            .collect();
        let ev = Event::new(EventBody::Members {
            room: "lobby".into(),
            visibility: crate::proto::Visibility::Public,
            members: crate::proto::member_list(members),
        });
        for multi in [false, true] {
            let ctx = Ctx {
                info: &info,
                nick: "me",
                user: "~me",
                host: "h",
                caps: Caps {
                    multi_prefix: multi,
                    ..Caps::default()
                },
            };
            let mut out = Vec::new();
            reply(&ev, &ctx, &mut out);
            let ls = lines(&out);
            assert!(ls.len() >= 4);
            assert!(ls.iter().all(|l| l.len() <= 510));
            let first = if multi { "@+user000" } else { "@user000" };
            assert!(ls[0].starts_with(":natter 353 me = #lobby :"), "{}", ls[0]);
            assert!(ls[0].contains(first), "{}", ls[0]);
            assert!(ls[0].contains(" +user001 "));
            assert_eq!(
                ls.last().unwrap(),
                ":natter 366 me #lobby :End of /NAMES list"
            );
            let count: usize = ls[..ls.len() - 1]
                .iter()
                .map(|l| l.split_once(" :").unwrap().1.split(' ').count())
                .sum();
            assert_eq!(count, 200);
        }
    }

    #[test]
    fn mode_changes_group_by_four() {
        let changes: Vec<ModeChange> = (0..6)
            .map(|i| ModeChange {
                add: i % 2 == 0,
                mode: 'o',
                arg: Some(Arc::from(format!("n{i}"))),
            })
            .chain([ModeChange {
                add: true,
                mode: 'm',
                arg: None,
            }])
            .collect();
        let mut ev = Event::new(EventBody::ModeChanged {
            room: "r".into(),
            nick: "op".into(),
            changes,
        });
        ev.source = Some("op!~o@h".into());
        let mut out = Vec::new();
        shared(&ev, false, &mut out);
        assert_eq!(
            lines(&out),
            [
                ":op!~o@h MODE #r +o-o+o-o n0 n1 n2 n3",
                ":op!~o@h MODE #r +o-o+m n4 n5"
            ]
        );
    }

    #[test]
    fn registration_burst_and_refusals() {
        let info = info();
        let ctx = Ctx {
            info: &info,
            nick: "alice",
            user: "~a",
            host: "h.ip",
            caps: Caps::default(),
        };
        let mut out = Vec::new();
        reply(
            &Event::new(EventBody::Registered {
                nick: "alice".into(),
                online: 1,
            }),
            &ctx,
            &mut out,
        );
        let ls = lines(&out);
        assert_eq!(
            ls[0],
            ":natter 001 alice :Welcome to the natter IRC Network alice!~a@h.ip"
        );
        let isupport: Vec<_> = ls.iter().filter(|l| l.contains(" 005 ")).collect();
        assert!(isupport.len() >= 2);
        assert!(isupport
            .iter()
            .all(|l| l.split_once(" :").unwrap().0.split(' ').count() <= 15));
        assert!(ls.iter().any(|l| l.contains("CASEMAPPING=ascii")));
        out.clear();
        reply(
            &Event::new(EventBody::Refused(
                Refusal::new(ErrorCode::UserNotInRoom).nick("bob").room("r"),
            )),
            &ctx,
            &mut out,
        );
        assert_eq!(
            lines(&out),
            [":natter 441 alice bob #r :They aren't on that channel"]
        );
    }

    #[test]
    fn split_text_prefers_spaces() {
        assert_eq!(split_text("aaaa bbbb cccc", 10), ["aaaa bbbb", "cccc"]);
        assert_eq!(split_text("abcdefghijkl", 8), ["abcdefgh", "ijkl"]);
        assert_eq!(split_text("", 8), [""]);
    }

    #[test]
    fn split_text_keeps_characters_whole() {
        let text = "你好".repeat(100); // 600 bytes, no spaces
        let parts = split_text(&text, 100);
        assert!(parts.iter().all(|p| p.len() <= 100 && !p.is_empty()));
        assert_eq!(parts.concat(), text);
    }
}
