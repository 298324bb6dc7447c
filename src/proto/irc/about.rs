//! What the server says about itself, answered by the IRC session with no
//! chat state: `TIME`, `VERSION`, `INFO`, `ADMIN`, `LINKS` (natter and
//! its services' pseudo-server), `WHOIS` of a service, and `HELP`.

use super::decode::About;
use super::numerics::*;
use super::{iso8601, Reply, ServerInfo};
use crate::proto::now_ms;

/// Help for each command: (command, lines).
const HELP: &[(&str, &[&str])] = &[
    ("ADMIN", &["ADMIN: who runs this server."]),
    (
        "AWAY",
        &["AWAY [:message]: mark yourself away, or back with no message."],
    ),
    (
        "CAP",
        &["CAP LS|REQ|LIST|END: negotiate IRCv3 capabilities."],
    ),
    (
        "DIE",
        &["DIE: shut the server down (operators, when allowed)."],
    ),
    ("HELP", &["HELP [command]: this help."]),
    ("INFO", &["INFO: about the server software."]),
    (
        "INVITE",
        &["INVITE nick #room: let someone into an invite-only room."],
    ),
    ("ISON", &["ISON nick…: which of these nicks are online."]),
    (
        "JOIN",
        &["JOIN #room[,#room…] [key,…]: enter rooms; JOIN 0 leaves them all."],
    ),
    (
        "KICK",
        &["KICK #room nick[,nick…] [:reason]: put people out (room operators)."],
    ),
    (
        "KILL",
        &["KILL nick :reason: disconnect someone (server operators)."],
    ),
    (
        "LIST",
        &["LIST [#room,…]: rooms with their member counts and topics."],
    ),
    (
        "LUSERS",
        &["LUSERS: how many people, operators and rooms there are."],
    ),
    (
        "MODE",
        &[
            "MODE #room [+-modes [args]]: room modes b k l i m n p s t o v.",
            "MODE nick [+-modes]: your own modes i w (and -o).",
        ],
    ),
    ("MOTD", &["MOTD: the message of the day."]),
    ("NAMES", &["NAMES #room[,#room…]: who is in a room."]),
    ("NICK", &["NICK newnick: change your nickname."]),
    (
        "NOTICE",
        &["NOTICE target :text: like PRIVMSG, never answered automatically."],
    ),
    ("OPER", &["OPER name password: become a server operator."]),
    ("PART", &["PART #room[,#room…] [:reason]: leave rooms."]),
    ("PING", &["PING token: the server answers PONG token."]),
    (
        "PRIVMSG",
        &[
            "PRIVMSG target[,target…] :text: say something.",
            "A target is #room or a nick; text users and JSON users read it too.",
        ],
    ),
    ("QUIT", &["QUIT [:reason]: leave the server."]),
    (
        "REHASH",
        &["REHASH: reload the configuration file (server operators)."],
    ),
    ("TIME", &["TIME: the server's clock."]),
    (
        "TOPIC",
        &["TOPIC #room [:topic]: show or set a room's topic."],
    ),
    (
        "USERHOST",
        &["USERHOST nick…: user@host of up to five people."],
    ),
    ("VERSION", &["VERSION: the server's version and features."]),
    (
        "WALLOPS",
        &["WALLOPS :text: write to everyone with mode +w (operators)."],
    ),
    (
        "WHO",
        &["WHO #room|mask: details of a room's members or matching people."],
    ),
    ("WHOIS", &["WHOIS nick: everything about one person."]),
    ("WHOWAS", &["WHOWAS nick [count]: who recently had a nick."]),
];

/// The lines of `INFO`.
const INFO: &[&str] = &[
    "natter: one chat for telnet, JSON-lines and IRC users.",
    "Text users, JSON programs and IRC clients share the same rooms.",
    "Written in Rust; MIT licensed.",
];

fn numeric(code: u16, params: &[&str]) -> Reply {
    Reply::numeric(code, params)
}

/// The replies to `TIME`, `VERSION`, `INFO` or `ADMIN`; `target`, when
/// given, must name this server (there is no other).
pub fn about(kind: About, target: Option<&str>, info: &ServerInfo) -> Vec<Reply> {
    let server = &*info.name;
    if let Some(t) = target.filter(|t| !t.eq_ignore_ascii_case(server)) {
        let t = super::decode::clean_word(t);
        return vec![numeric(ERR_NOSUCHSERVER, &[&t, "No such server"])];
    }
    match kind {
        About::Time => {
            let now = iso8601(now_ms());
            vec![numeric(RPL_TIME, &[server, &now])]
        }
        About::Version => {
            let mut out = vec![numeric(
                RPL_VERSION,
                &[&info.version, server, &info.description],
            )];
            for tokens in info.isupport.chunks(12) {
                let mut params: Vec<&str> = tokens.iter().map(|t| t.as_str()).collect();
                params.push("are supported by this server");
                out.push(numeric(RPL_ISUPPORT, &params));
            }
            out
        }
        About::Info => INFO
            .iter()
            .map(|l| numeric(RPL_INFO, &[l]))
            .chain([numeric(RPL_ENDOFINFO, &["End of INFO list"])])
            .collect(),
        // natter, and its built-in services shown as a server one hop away,
        // as IRC networks show theirs.
        About::Links => vec![
            numeric(
                RPL_LINKS,
                &[server, server, &format!("0 {}", info.description)],
            ),
            numeric(
                RPL_LINKS,
                &[
                    &info.services,
                    server,
                    &format!("1 {}", super::services::DESCRIPTION),
                ],
            ),
            numeric(RPL_ENDOFLINKS, &["*", "End of /LINKS list"]),
        ],
        About::Service(service) => super::services::whois(service, info),
        About::Admin => vec![
            numeric(RPL_ADMINME, &[server, "Administrative info"]),
            numeric(RPL_ADMINLOC1, &[&format!("{server}, a natter server")]),
            numeric(RPL_ADMINLOC2, &["Ask the server's operators"]),
            numeric(RPL_ADMINEMAIL, &["no address given"]),
        ],
    }
}

/// The replies to `HELP [subject]`: 704, 705…, 706, or 524 for an unknown subject.
pub fn help(subject: Option<&str>) -> Vec<Reply> {
    let (subject, lines): (String, Vec<String>) = match subject {
        None => {
            let names: Vec<&str> = HELP.iter().map(|(c, _)| *c).collect();
            let mut lines = vec!["natter understands these commands:".to_string()];
            lines.extend(names.chunks(10).map(|c| c.join(" ")));
            lines.push("HELP <command> tells more about one.".to_string());
            ("*".into(), lines)
        }
        Some(s) => match HELP.iter().find(|(c, _)| c.eq_ignore_ascii_case(s)) {
            Some((c, text)) => (c.to_string(), text.iter().map(|l| l.to_string()).collect()),
            None => {
                let s = super::decode::clean_word(s);
                return vec![numeric(
                    ERR_HELPNOTFOUND,
                    &[&s, "No help available on this topic"],
                )];
            }
        },
    };
    let mut out = Vec::with_capacity(lines.len() + 1);
    for (i, l) in lines.iter().enumerate() {
        let code = if i == 0 { RPL_HELPSTART } else { RPL_HELPTXT };
        out.push(numeric(code, &[&subject, l]));
    }
    out.push(numeric(RPL_ENDOFHELP, &[&subject, "End of /HELP"]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_has_start_text_end_or_not_found() {
        let r = help(Some("privmsg"));
        assert!(
            matches!(&r[0], Reply::Numeric { code: RPL_HELPSTART, params } if params[0] == "PRIVMSG"),
            "{r:?}"
        );
        assert!(matches!(
            r.last(),
            Some(Reply::Numeric {
                code: RPL_ENDOFHELP,
                ..
            })
        ));
        let r = help(Some("NOPE"));
        assert_eq!(
            r,
            [numeric(
                ERR_HELPNOTFOUND,
                &["NOPE", "No help available on this topic"]
            )]
        );
        assert!(help(None).len() > 3);
    }
}
