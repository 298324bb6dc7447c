//! IRC (RFC 1459/2812 as modern servers speak it, plus the IRCv3 parts
//! clients rely on): [`parse`] splits a line, [`decode`] turns it into hub
//! commands and session steps, [`render`] turns events into IRC lines and
//! [`numerics`] names the numeric replies. Everything here is pure.
//!
//! Rendering comes in two kinds. Events that look the same to every
//! recipient (`:nick!user@host PRIVMSG #room :text`, JOIN, PART, …) are
//! rendered once per [`Flavor`](super::Flavor) (`Irc`, or `IrcTagged` with
//! `@time=`) and shared; replies that carry the recipient's nick (numerics)
//! are rendered per recipient with a [`Ctx`].

pub mod about;
pub mod decode;
pub mod labeled;
pub mod numerics;
pub mod parse;
pub mod readmarker;
pub mod render;
pub mod sasl;
pub mod services;
pub mod session;
pub mod whox;

use std::sync::Arc;

/// Room modes natter knows, as ISUPPORT `CHANMODES` lists them: list modes,
/// modes that always take an argument, modes that take one only when set,
/// and flags.
pub const CHANMODES: &str = "beI,k,l,imnpst";
/// Room member prefixes, ISUPPORT `PREFIX`.
pub const PREFIX: &str = "(ov)@+";
/// Most mode changes with an argument in one `MODE` command (ISUPPORT `MODES`).
pub const MODES_PER_COMMAND: usize = 4;
/// Most targets of one `PRIVMSG`/`NOTICE` (ISUPPORT `TARGMAX`).
pub const MAX_TARGETS: usize = 4;
pub use super::limits::{AWAY_LEN, BAN_MASK_LEN, KEY_LEN, MAX_BANS, REASON_LEN, TOPIC_LEN};
/// Longest username (ident) in bytes (ISUPPORT `USERLEN`), `~` included.
pub const USER_LEN: usize = 10;

/// The IRCv3 capabilities natter offers, as `CAP LS` lists them.
pub const CAPS: &[&str] = &[
    "account-notify",
    "account-tag",
    "away-notify",
    "batch",
    "cap-notify",
    "draft/no-implicit-names",
    "draft/read-marker",
    "draft/chathistory",
    "draft/event-playback",
    "echo-message",
    "extended-join",
    "extended-monitor",
    "invite-notify",
    "labeled-response",
    "message-tags",
    "multi-prefix",
    "sasl",
    "server-time",
    "setname",
    "userhost-in-names",
];

/// Capabilities one client has enabled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps {
    pub account_notify: bool,
    pub account_tag: bool,
    pub away_notify: bool,
    pub batch: bool,
    /// The client fetches history itself (no replay on join).
    pub chathistory: bool,
    /// History includes joins, parts, kicks, topics and modes.
    pub event_playback: bool,
    pub echo_message: bool,
    pub extended_join: bool,
    pub message_tags: bool,
    pub multi_prefix: bool,
    pub sasl: bool,
    pub server_time: bool,
    pub userhost_in_names: bool,
    pub extended_monitor: bool,
    pub setname: bool,
    pub labeled_response: bool,
    pub read_marker: bool,
    /// No `NAMES` after one's own `JOIN` (the client asks when it wants them).
    pub no_implicit_names: bool,
    /// Told of invitations into rooms one operates.
    pub invite_notify: bool,
    /// Told of capabilities coming and going (natter's never change while
    /// it runs, so this asks for nothing more).
    pub cap_notify: bool,
}

impl Caps {
    /// Turns a capability on or off; false if natter does not know it.
    pub fn set(&mut self, name: &str, on: bool) -> bool {
        let slot = match name {
            "account-notify" => &mut self.account_notify,
            "account-tag" => &mut self.account_tag,
            "away-notify" => &mut self.away_notify,
            "batch" => &mut self.batch,
            "draft/chathistory" => &mut self.chathistory,
            "draft/event-playback" => &mut self.event_playback,
            "echo-message" => &mut self.echo_message,
            "extended-join" => &mut self.extended_join,
            "message-tags" => &mut self.message_tags,
            "multi-prefix" => &mut self.multi_prefix,
            "sasl" => &mut self.sasl,
            "server-time" => &mut self.server_time,
            "userhost-in-names" => &mut self.userhost_in_names,
            "extended-monitor" => &mut self.extended_monitor,
            "setname" => &mut self.setname,
            "labeled-response" => &mut self.labeled_response,
            "draft/read-marker" => &mut self.read_marker,
            "draft/no-implicit-names" => &mut self.no_implicit_names,
            "invite-notify" => &mut self.invite_notify,
            "cap-notify" => &mut self.cap_notify,
            _ => return false,
        };
        *slot = on;
        true
    }

    /// Which tags shared events carry for this client.
    pub fn tagging(&self) -> render::Tagging {
        render::Tagging {
            time: self.server_time,
            message_tags: self.message_tags,
        }
    }

    /// The enabled capabilities, space-separated (for `CAP LIST`).
    pub fn list(&self) -> String {
        CAPS.iter()
            .copied()
            .filter(|c| {
                let mut probe = *self;
                probe.set(c, false);
                probe != *self
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A reply that only IRC sessions make; rendered with the recipient's
/// nick by [`render::reply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `:server CODE <nick> <params…>`; the last parameter is sent as the
    /// trailing one.
    Numeric { code: u16, params: Vec<String> },
    /// `:server CAP <nick|*> <sub> :<list>`.
    Cap { sub: &'static str, list: String },
    /// `:server PONG <server> :<token>`.
    Pong { token: String },
    /// `ERROR :Closing Link: <host> (<why>)`; the connection closes next.
    Closing { why: String },
    /// `:server NOTICE <nick> :<text>`.
    Notice { text: String },
    /// The message of the day (375, 372…, 376).
    Motd,
    /// An IRCv3 standard reply: `FAIL <command> <code> [<context>…] :<text>`.
    Fail {
        command: &'static str,
        code: &'static str,
        context: Vec<String>,
        text: &'static str,
    },
    /// `:server VERB params…` with no trailing parameter (`MARKREAD`).
    Verb {
        verb: &'static str,
        params: Vec<String>,
    },
    /// `AUTHENTICATE <data>` (SASL; `+` for nothing).
    Authenticate(String),
    /// `:Service!Service@<services> NOTICE <nick> :<text>`.
    Service { service: &'static str, text: String },
}

impl Reply {
    /// A numeric reply with these parameters after the recipient's nick.
    pub fn numeric(code: u16, params: &[&str]) -> Reply {
        Reply::Numeric {
            code,
            params: params.iter().map(|p| p.to_string()).collect(),
        }
    }
}

/// What the server says about itself to IRC clients: built once from the
/// configuration and shared by every IRC session.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub name: Arc<str>,
    pub version: String,
    /// When this server started, for `003 RPL_CREATED`.
    pub created: String,
    /// ISUPPORT tokens (`005`), in order.
    pub isupport: Vec<String>,
    /// Lines of the message of the day.
    pub motd: Vec<String>,
    /// One line about the server (`LINKS`, `VERSION`).
    pub description: String,
    /// The pseudo-server the built-in services (NickServ, ChanServ) are
    /// shown on: `LINKS`, `WHOIS`, the host of their notices.
    pub services: Arc<str>,
}

/// The settings [`ServerInfo`] advertises.
#[derive(Debug, Clone)]
pub struct Limits {
    pub monitor_limit: usize,
    /// Most lines one CHATHISTORY request returns (ISUPPORT `CHATHISTORY`).
    pub history_max_lines: usize,
    pub max_nick_chars: usize,
    pub max_room_chars: usize,
    pub max_rooms_per_user: usize,
    /// Longest topic in bytes (`TOPICLEN`) and most bans per room (`MAXLIST`).
    pub topic_len: usize,
    pub max_bans: usize,
}

impl ServerInfo {
    pub fn new(name: &str, limits: &Limits, started_ms: u64) -> ServerInfo {
        let isupport = vec![
            format!("AWAYLEN={AWAY_LEN}"),
            "BOT=B".to_string(),
            // natter folds nicks with Unicode lower case: for ASCII nicks this
            // is exactly `ascii` ([]\~ are not folded). See docs/PROTOCOL.md.
            "CASEMAPPING=ascii".to_string(),
            format!("CHATHISTORY={}", limits.history_max_lines),
            format!("CHANLIMIT=#:{}", limits.max_rooms_per_user),
            format!("CHANMODES={CHANMODES}"),
            "EXCEPTS=e".to_string(),
            "EXTBAN=,m".to_string(),
            "INVEX=I".to_string(),
            format!("CHANNELLEN={}", limits.max_room_chars + 1),
            "CHANTYPES=#".to_string(),
            "ELIST=CMNTU".to_string(),
            format!("KEYLEN={KEY_LEN}"),
            format!("KICKLEN={REASON_LEN}"),
            "LINELEN=512".to_string(),
            format!("MAXLIST=beI:{}", limits.max_bans),
            "MSGREFTYPES=msgid,timestamp".to_string(),
            format!("MODES={MODES_PER_COMMAND}"),
            format!("MONITOR={}", limits.monitor_limit),
            format!("NETWORK={name}"),
            format!("NICKLEN={}", limits.max_nick_chars),
            format!("PREFIX={PREFIX}"),
            "SAFELIST".to_string(),
            "STATUSMSG=@+".to_string(),
            format!("TARGMAX=JOIN:,KICK:,NAMES:,NOTICE:{MAX_TARGETS},PART:,PRIVMSG:{MAX_TARGETS},WHOIS:1"),
            format!("TOPICLEN={}", limits.topic_len),
            format!("USERLEN={USER_LEN}"),
            "UTF8ONLY".to_string(),
            "WHOX".to_string(),
        ];
        let motd = vec![
            format!("- Welcome to {name}, a natter chat server."),
            "- IRC, telnet and JSON-lines users share the same rooms:".to_string(),
            "- #room here is room `room` for everyone else.".to_string(),
            "- /join the rooms you like (text users start in the default one), /part to leave."
                .to_string(),
        ];
        ServerInfo {
            name: name.into(),
            version: format!("natter-{}", env!("CARGO_PKG_VERSION")),
            created: iso8601(started_ms),
            isupport,
            motd,
            description: "natter chat server".into(),
            services: format!("services.{name}").into(),
        }
    }
}

/// Who a per-recipient reply is for.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub info: &'a ServerInfo,
    /// The recipient's nick, `*` before registration.
    pub nick: &'a str,
    pub user: &'a str,
    pub host: &'a str,
    pub caps: Caps,
}

/// `2026-11-25T13:14:15.123Z` for a time in milliseconds since the epoch
/// (IRCv3 `server-time` format).
pub fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (year, month, day) = crate::logformat::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

/// Reads a `server-time` timestamp (`2026-11-25T13:14:15.123Z`, the
/// fraction optional) back into milliseconds since the epoch.
pub fn parse_iso8601(s: &str) -> Option<u64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let ms: u64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm), the inverse of `iso8601`.
    let y = year - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    Some(((days * 86_400 + h * 3600 + m * 60 + sec) * 1000) + ms)
}

/// Removes IRC formatting (bold, colours with their digits, italics, …);
/// other control characters are left for [`strip_controls`](super::sanitize::strip_controls).
pub fn strip_formatting(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x03' => {
                // ^C[fg[,bg]]: up to two digits each
                let digits = |chars: &mut std::iter::Peekable<std::str::Chars>| {
                    let mut n = 0;
                    while n < 2 && chars.peek().is_some_and(|c| c.is_ascii_digit()) {
                        chars.next();
                        n += 1;
                    }
                    n
                };
                if digits(&mut chars) > 0 && chars.peek() == Some(&',') {
                    let mut look = chars.clone();
                    look.next();
                    if look.peek().is_some_and(|c| c.is_ascii_digit()) {
                        chars.next();
                        digits(&mut chars);
                    }
                }
            }
            '\x04' => {
                // ^D[RRGGBB[,RRGGBB]]
                let hex = |chars: &mut std::iter::Peekable<std::str::Chars>| {
                    let look: String = chars.clone().take(6).collect();
                    if look.len() == 6 && look.chars().all(|c| c.is_ascii_hexdigit()) {
                        for _ in 0..6 {
                            chars.next();
                        }
                        true
                    } else {
                        false
                    }
                };
                if hex(&mut chars) && chars.peek() == Some(&',') {
                    let mut look = chars.clone();
                    look.next();
                    if hex(&mut look) {
                        chars.next();
                        hex(&mut chars);
                    }
                }
            }
            '\x02' | '\x0f' | '\x11' | '\x16' | '\x1d' | '\x1e' | '\x1f' => {}
            c => out.push(c),
        }
    }
    out
}

/// Cuts `s` to at most `max` bytes at a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_formats_server_time() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601(1_795_000_000_000), "2026-11-18T11:06:40.000Z");
    }

    #[test]
    fn formatting_is_stripped() {
        assert_eq!(strip_formatting("\x02bold\x02 \x0304red\x03"), "bold red");
        assert_eq!(strip_formatting("\x0304,12x\x03,y"), "x,y");
        assert_eq!(strip_formatting("\x031,2,3"), ",3");
        assert_eq!(strip_formatting("\x04ff0000red\x0f"), "red");
        assert_eq!(strip_formatting("\x1ditalic\x1f"), "italic");
        assert_eq!(strip_formatting("plain 你好"), "plain 你好");
    }

    #[test]
    fn caps_set_and_list() {
        let mut c = Caps::default();
        assert!(c.set("server-time", true));
        assert!(c.set("echo-message", true));
        assert!(!c.set("sasl=PLAIN", true));
        assert_eq!(c.list(), "echo-message server-time");
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
