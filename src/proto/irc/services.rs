//! `PRIVMSG NickServ` and `PRIVMSG ChanServ` for IRC clients that only
//! know services: NickServ `REGISTER`/`IDENTIFY`, ChanServ `REGISTER`.
//! There are no service bots; these messages are read here and answered
//! as notices from the service's name. Also the account-related events as
//! IRC shows them: `900`, `ACCOUNT` (account-notify), `extended-join`'s
//! `JOIN`, and `account-tag`.

use super::decode::{Input, Step};
use super::parse::Message;
use super::render::{chan, escape_tag, line, tag_section, with_tags};
use super::{iso8601, Caps, Ctx, Reply, ServerInfo};
use crate::proto::{AccountEvent, AccountRequest, Command, Event, EventBody};

/// The nick service.
pub const NICKSERV: &str = "NickServ";
/// The room service.
pub const CHANSERV: &str = "ChanServ";
/// What `LINKS` and `WHOIS` say about the services' pseudo-server.
pub const DESCRIPTION: &str = "natter's built-in services (NickServ, ChanServ)";

/// The service named `nick` (any case), if it is one.
pub fn named(nick: &str) -> Option<&'static str> {
    [NICKSERV, CHANSERV]
        .into_iter()
        .find(|s| s.eq_ignore_ascii_case(nick))
}

/// `WHOIS` of a service: `311` with the services' pseudo-server as its
/// host and what it does as its real name, `312` naming that server,
/// `318`.
pub fn whois(service: &'static str, info: &ServerInfo) -> Vec<Reply> {
    use super::numerics::{RPL_ENDOFWHOIS, RPL_WHOISSERVER, RPL_WHOISUSER};
    let what = match service {
        NICKSERV => "Nickname service",
        _ => "Channel service",
    };
    vec![
        Reply::numeric(
            RPL_WHOISUSER,
            &[service, service, &info.services, "*", what],
        ),
        Reply::numeric(RPL_WHOISSERVER, &[service, &info.services, DESCRIPTION]),
        Reply::numeric(RPL_ENDOFWHOIS, &[service, "End of /WHOIS list"]),
    ]
}

fn notice(service: &'static str, text: impl Into<String>) -> Input {
    Input::Reply(Reply::Service {
        service,
        text: text.into(),
    })
}

/// A `PRIVMSG` to a service, read; `None` for any other message.
pub fn decode(verb: &str, m: &Message) -> Option<Input> {
    let joined: String;
    let (target, text) = match verb {
        "PRIVMSG" => (m.param(0)?, m.param(1).unwrap_or("")),
        "NICKSERV" | "NS" => {
            joined = m.params.join(" ");
            (NICKSERV, joined.as_str())
        }
        "CHANSERV" | "CS" => {
            joined = m.params.join(" ");
            (CHANSERV, joined.as_str())
        }
        _ => return None,
    };
    let words: Vec<&str> = text.split_whitespace().collect();
    let sub = words.first().map(|w| w.to_ascii_uppercase());
    if target.eq_ignore_ascii_case(NICKSERV) {
        Some(match (sub.as_deref(), &words[..]) {
            (Some("REGISTER"), [_, password, ..]) => Input::Account(AccountRequest::Register {
                password: (*password).into(),
            }),
            (Some("IDENTIFY"), [_, password]) => Input::Account(AccountRequest::Login {
                account: String::new(),
                password: (*password).into(),
            }),
            (Some("IDENTIFY"), [_, account, password]) => Input::Account(AccountRequest::Login {
                account: account.to_string(),
                password: (*password).into(),
            }),
            (Some("REGISTER"), _) => notice(NICKSERV, "Syntax: REGISTER <password> [email]"),
            (Some("IDENTIFY"), _) => notice(NICKSERV, "Syntax: IDENTIFY [account] <password>"),
            _ => notice(
                NICKSERV,
                "Commands: REGISTER <password>, IDENTIFY [account] <password>",
            ),
        })
    } else if target.eq_ignore_ascii_case(CHANSERV) {
        Some(match (sub.as_deref(), &words[..]) {
            (Some("REGISTER"), [_, room, ..]) if room.starts_with('#') => {
                Input::Steps(vec![Step::Hub(Command::RegisterRoom {
                    room: Some(room.to_string()),
                })])
            }
            (Some("REGISTER"), _) => notice(CHANSERV, "Syntax: REGISTER #room"),
            _ => notice(CHANSERV, "Commands: REGISTER #room"),
        })
    } else {
        None
    }
}

/// Renders an account event for one IRC client; `None` for other events.
pub fn render(ev: &Event, ctx: &Ctx, out: &mut Vec<u8>) -> Option<()> {
    let EventBody::Account(a) = &ev.body else {
        return None;
    };
    let server = &*ctx.info.name;
    match a {
        AccountEvent::LoggedIn { account, nick, .. } => {
            let me = nick.as_deref().unwrap_or(ctx.nick);
            let mask = format!("{me}!{}@{}", ctx.user, ctx.host);
            let text = format!("You are now logged in as {account}");
            let code = format!("{:03}", super::numerics::RPL_LOGGEDIN);
            line(
                out,
                None,
                server,
                &code,
                &[ctx.nick, &mask, account],
                Some(&text),
            );
        }
        AccountEvent::Changed { nick, account } if ctx.caps.account_notify => {
            let src = ev.source.as_deref().unwrap_or(nick);
            let tags = ctx
                .caps
                .server_time
                .then(|| format!("time={}", iso8601(ev.at_ms)));
            let account = account.as_deref().unwrap_or("*");
            line(out, tags.as_deref(), src, "ACCOUNT", &[account], None);
        }
        AccountEvent::NickProtected { nick, grace_secs } => service_notice(
            out,
            ctx,
            NICKSERV,
            &format!(
                "{nick} is a registered nickname: identify with /msg NickServ IDENTIFY \
                 <password> within {grace_secs} seconds, or you will be renamed"
            ),
        ),
        AccountEvent::Renamed { old, new } => service_notice(
            out,
            ctx,
            NICKSERV,
            &format!("{old} belongs to an account you are not logged in to: you are now {new}"),
        ),
        AccountEvent::RoomRegistered { room, founder } => service_notice(
            out,
            ctx,
            CHANSERV,
            &format!("{} is now registered to {founder}", chan(room)),
        ),
        AccountEvent::Changed { .. } | AccountEvent::Challenge { .. } => {}
    }
    Some(())
}

/// `:Service!Service@<services> NOTICE <nick> :<text>`, `<services>`
/// the services' pseudo-server (`services_name`).
pub fn service_notice(out: &mut Vec<u8>, ctx: &Ctx, service: &str, text: &str) {
    let src = format!("{service}!{service}@{}", ctx.info.services);
    for piece in super::render::split_text(text, 400) {
        line(out, None, &src, "NOTICE", &[ctx.nick], Some(piece));
    }
}

/// An `INVITE` to this client from a logged-in user, with `account-tag`;
/// `None` when the usual rendering serves.
pub fn tagged_invite(ev: &Event, ctx: &Ctx, out: &mut Vec<u8>) -> Option<()> {
    let EventBody::Invited { room, nick, target } = &ev.body else {
        return None;
    };
    let account = ev.actor.as_deref()?.account.as_deref()?;
    if !ctx.caps.account_tag || **target != *ctx.nick {
        return None;
    }
    let tags = format!("account={account}");
    let src = ev.source.as_deref().unwrap_or(nick);
    line(
        out,
        Some(&tags),
        src,
        "INVITE",
        &[target],
        Some(&chan(room)),
    );
    Some(())
}

/// A shared event decorated for this client's `account-tag` and
/// `extended-join`, or `None` when the shared rendering serves.
pub fn decorated(ev: &Event, caps: Caps, out: &mut Vec<u8>) -> Option<()> {
    let actor = ev.actor.as_deref()?;
    let join = caps.extended_join && matches!(ev.body, EventBody::Joined { .. });
    let tag = caps.account_tag && actor.account.is_some();
    if !join && !tag {
        return None;
    }
    // server-time and message-tags as for everyone, plus the account.
    let mut tags = tag_section(ev, caps.tagging()).unwrap_or_default();
    if let (true, Some(a)) = (tag, &actor.account) {
        if !tags.is_empty() {
            tags.push(';');
        }
        tags.push_str("account=");
        escape_tag(a, &mut tags);
    }
    let tags = (!tags.is_empty()).then_some(tags);
    match &ev.body {
        EventBody::Joined { room, nick, .. } if join => {
            let src = ev.source.as_deref().unwrap_or(nick);
            let account = actor.account.as_deref().unwrap_or("*");
            line(
                out,
                tags.as_deref(),
                src,
                "JOIN",
                &[&chan(room), account],
                Some(&actor.realname),
            );
        }
        _ => with_tags(ev, tags.as_deref(), out),
    }
    Some(())
}
