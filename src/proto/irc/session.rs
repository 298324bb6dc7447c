//! The IRC side of a connection: registration (`PASS`, `NICK`, `USER`,
//! `CAP` negotiation), turning decoded lines into chat commands, answering
//! what needs no chat state (`PING`, `CAP`, `MOTD`, parse errors) itself,
//! and choosing how each event is written (shared rendering, per-recipient
//! numerics, or not at all: `echo-message` and `away-notify` are filters
//! here).

use std::sync::{Arc, OnceLock};

use super::decode::{self, Cap, Input, Step};
use super::numerics::*;
use super::sasl::{self, Sasl};
use super::{render, services, Caps, Ctx, Reply, ServerInfo, CAPS, USER_LEN};
use crate::proto::session::{
    shared_name, Chat, Goodbye, HistoryRequest, Protocol, Replay, SessionConfig,
};
use crate::proto::{
    AccountEvent, AccountRequest, Command, Event, EventBody, Flavor, Name, Outcome, Password,
    Profile,
};

/// One IRC connection's protocol state.
pub struct IrcSession {
    info: Arc<ServerInfo>,
    /// The server password, if one is required.
    password: Option<String>,
    default_room: String,
    /// The cloaked host shown as `nick!user@host`.
    host: Name,
    /// Shown username (`~ident`) once `USER` was given.
    user: String,
    pass: Option<String>,
    /// The nick asked for before registration; then the nick as of the
    /// commands handled so far (for the session's own numerics).
    nick: Option<String>,
    registered: bool,
    /// `USER` parameters: ident and real name.
    user_params: Option<(String, String)>,
    /// Inside `CAP LS`/`REQ` … `CAP END`: registration waits.
    negotiating: bool,
    caps: Caps,
    /// The nick as of the events written so far (`*` before registration):
    /// numerics carry it and echo filtering compares with it.
    out_nick: String,
    /// History replayed on joining, for clients that do not fetch it.
    replay: Replay,
    /// SASL (`AUTHENTICATE`).
    sasl: Sasl,
    /// `PASS` as an account password: the login is being checked, and
    /// registration waits for it.
    pass_pending: bool,
    /// That login was answered: registration goes on.
    pass_answered: bool,
    /// Something was asked of the accounts and not answered yet: lines wait.
    waiting: bool,
    /// The `sts` capability's value, when TLS is configured.
    sts: Option<String>,
}

impl IrcSession {
    pub fn new(config: &SessionConfig) -> IrcSession {
        IrcSession {
            info: config.irc_info.clone(),
            password: config.irc_password.clone(),
            default_room: config.default_room.clone(),
            host: config.host.clone(),
            user: "~user".into(),
            pass: None,
            nick: None,
            registered: false,
            user_params: None,
            negotiating: false,
            caps: Caps::default(),
            out_nick: "*".into(),
            replay: Replay {
                default_room: String::new(), // JOINs name their rooms
                lines: config.history_on_join,
            },
            sasl: Sasl::default(),
            pass_pending: false,
            pass_answered: false,
            waiting: false,
            sts: config.sts.clone(),
        }
    }

    /// Asks the accounts; later lines wait for the answer.
    fn ask(&mut self, chat: &mut dyn Chat, request: AccountRequest) {
        self.waiting = true;
        chat.account(request);
    }

    /// Renders a reply of the session's own, addressed to the nick as of
    /// the commands handled so far, and queues it.
    fn push(&self, chat: &mut dyn Chat, r: Reply) {
        let nick = match (self.registered, &self.nick) {
            (true, Some(n)) => n.as_str(),
            _ => "*",
        };
        let mut out = Vec::new();
        render::render_reply(&r, &self.ctx(nick), &mut out);
        chat.local(out.into());
    }

    fn ctx<'a>(&'a self, nick: &'a str) -> Ctx<'a> {
        Ctx {
            info: &self.info,
            nick,
            user: &self.user,
            host: &self.host,
            caps: self.caps,
        }
    }

    /// Runs a chat command, keeping track of the nick it may change.
    fn run(&mut self, chat: &mut dyn Chat, cmd: Command) -> Outcome {
        let new_nick = match &cmd {
            Command::Nick { new } => Some(new.clone()),
            _ => None,
        };
        let outcome = match self.caps.chathistory {
            true => chat.execute(cmd),
            false => self.replay.execute(cmd, chat),
        };
        if let (Some(n), Outcome::Continue) = (new_nick, outcome) {
            self.nick = Some(n);
        }
        outcome
    }

    fn cap(&mut self, chat: &mut dyn Chat, cap: Cap) -> Outcome {
        let registered = self.registered;
        match cap {
            Cap::Ls(version) => {
                self.negotiating |= !registered;
                // CAP LS 302 gives values: the SASL mechanisms.
                let mut list = CAPS
                    .iter()
                    .map(|&c| match (c, version >= 302) {
                        ("sasl", true) => format!("sasl={}", sasl::MECHANISMS),
                        _ => c.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                // STS needs values, which only 302 clients are given; it
                // is never requested (a REQ for it is refused as unknown).
                if let (Some(sts), true) = (&self.sts, version >= 302) {
                    list.push_str(" sts=");
                    list.push_str(sts);
                }
                self.push(chat, Reply::Cap { sub: "LS", list });
            }
            Cap::List => {
                let list = self.caps.list();
                self.push(chat, Reply::Cap { sub: "LIST", list });
            }
            Cap::Req(wanted) => {
                self.negotiating |= !registered;
                let list = wanted
                    .iter()
                    .map(|(n, on)| if *on { n.clone() } else { format!("-{n}") })
                    .collect::<Vec<_>>()
                    .join(" ");
                let mut probe = self.caps;
                let known = !wanted.is_empty() && wanted.iter().all(|(n, on)| probe.set(n, *on));
                let sub = if known {
                    self.caps = probe;
                    "ACK"
                } else {
                    "NAK"
                };
                self.push(chat, Reply::Cap { sub, list });
            }
            Cap::End => {
                self.negotiating = false;
                return self.try_register(chat);
            }
            Cap::Unknown(sub) => self.push(
                chat,
                Reply::numeric(ERR_INVALIDCAPCMD, &[&sub, "Invalid CAP command"]),
            ),
        }
        Outcome::Continue
    }

    /// Registers once `NICK` and `USER` are in and `CAP` negotiation is
    /// over: checks the password, then the welcome burst (001–005, LUSERS,
    /// MOTD) and the default room.
    fn try_register(&mut self, chat: &mut dyn Chat) -> Outcome {
        if self.negotiating || self.registered {
            return Outcome::Continue;
        }
        let (Some(nick), Some((ident, realname))) = (self.nick.clone(), self.user_params.clone())
        else {
            return Outcome::Continue;
        };
        if let Some(expected) = &self.password {
            if self.pass.as_deref() != Some(expected.as_str()) {
                let mismatch = Reply::numeric(ERR_PASSWDMISMATCH, &["Password incorrect"]);
                self.push(chat, mismatch);
                let why = "Bad Password".into();
                self.push(chat, Reply::Closing { why });
                return Outcome::Close;
            }
        } else if let Some(pass) = self.pass.take().filter(|_| !self.sasl.done) {
            // No server password: PASS is an account's (`account:password`,
            // or the password of the nick's account). Registration waits.
            let (account, password) = match pass.split_once(':') {
                Some((a, p)) if !a.is_empty() && !p.is_empty() => (a.to_string(), p.to_string()),
                _ => (nick.clone(), pass),
            };
            self.pass_pending = true;
            let password = Password(password);
            self.ask(chat, AccountRequest::Login { account, password });
            return Outcome::Continue;
        }
        if self.pass_pending {
            return Outcome::Continue;
        }
        self.user = shown_user(&ident);
        let profile = Profile {
            user: self.user.as_str().into(),
            realname: realname_of(&realname).into(),
            auto_join: false,
        };
        chat.execute(Command::Identify(profile));
        if chat.execute(Command::Register { nick }) != Outcome::Continue {
            self.nick = None; // refused (433/432 sent): wait for another NICK
            return Outcome::Continue;
        }
        self.registered = true;
        chat.execute(Command::Lusers);
        self.push(chat, Reply::Motd);
        if self.default_room.is_empty() {
            return Outcome::Continue;
        }
        let room = format!("#{}", self.default_room);
        let join = Command::Join {
            room,
            switch: false,
        };
        match self.run(chat, join) {
            Outcome::Close => Outcome::Close,
            _ => Outcome::Continue,
        }
    }
}

impl Protocol for IrcSession {
    fn name(&self) -> &'static str {
        "irc"
    }

    fn start(&mut self, chat: &mut dyn Chat) {
        static USER: OnceLock<Name> = OnceLock::new();
        static REALNAME: OnceLock<Name> = OnceLock::new();
        let profile = Profile {
            user: shared_name(&USER, "~user"),
            realname: shared_name(&REALNAME, "natter IRC user"),
            auto_join: false,
        };
        chat.execute(Command::Identify(profile));
    }

    /// IRC line limits: 512 bytes plus 4096 of tags, whatever
    /// `max_line_bytes` says, and no telnet stripping.
    fn framing(&self, _max_line_bytes: usize) -> (usize, bool) {
        (super::parse::MAX_LINE, false)
    }

    fn heartbeat(&self) -> bool {
        true
    }

    /// How shared events are rendered for this client.
    fn flavor(&self) -> Flavor {
        match self.caps.server_time {
            true => Flavor::IrcTagged,
            false => Flavor::Irc,
        }
    }

    fn registered(&self) -> bool {
        self.registered
    }

    fn line(&mut self, line: &str, chat: &mut dyn Chat) -> Outcome {
        let registered = self.registered;
        match decode::decode_line(line) {
            Input::Nothing => {}
            Input::Reply(r) => self.push(chat, r),
            Input::Ping(token) => self.push(chat, Reply::Pong { token }),
            Input::Quit(reason) => {
                let why = match &reason {
                    Some(r) => format!("Quit: {r}"),
                    None => "Client Quit".to_string(),
                };
                chat.execute(Command::Quit { reason });
                self.push(chat, Reply::Closing { why });
                return Outcome::Close;
            }
            Input::Cap(cap) => return self.cap(chat, cap),
            Input::Authenticate(param) => {
                let step = self.sasl.authenticate(&param);
                for r in step.replies {
                    self.push(chat, r);
                }
                if let Some(request) = step.ask {
                    self.ask(chat, request);
                }
            }
            Input::Pass(_) if registered => self.push(chat, already_registered()),
            Input::Pass(p) => self.pass = Some(p),
            Input::User { .. } if registered => self.push(chat, already_registered()),
            Input::User { user, realname } => {
                self.user_params = Some((user, realname));
                return self.try_register(chat);
            }
            Input::Nick(new) if registered => return self.run(chat, Command::Nick { new }),
            Input::Nick(nick) => {
                let check = Command::CheckNick { nick: nick.clone() };
                if chat.execute(check) == Outcome::Continue {
                    self.nick = Some(nick);
                    return self.try_register(chat);
                }
            }
            _ if !registered => self.push(
                chat,
                Reply::numeric(ERR_NOTREGISTERED, &["You have not registered"]),
            ),
            Input::Motd => self.push(chat, Reply::Motd),
            Input::Account(request) => self.ask(chat, request),
            Input::History { room, query, limit } => chat.history(HistoryRequest {
                room: Some(room),
                query,
                limit,
                events: self.caps.event_playback,
                asked: true,
            }),
            Input::Help => self.reply(EventBody::Help, chat),
            Input::Steps(steps) => {
                for step in steps {
                    match step {
                        Step::Hub(cmd) => {
                            if self.run(chat, cmd) == Outcome::Close {
                                return Outcome::Close;
                            }
                        }
                        Step::Reply(r) => self.push(chat, r),
                    }
                }
            }
        }
        Outcome::Continue
    }

    /// Renders one event into `out`, or nothing when this client did not
    /// ask for it (its own messages without `echo-message`, away changes
    /// without `away-notify`).
    fn render(&mut self, ev: &Event, out: &mut Vec<u8>) {
        self.waiting &= !crate::proto::account::answers_request(&ev.body);
        if self.pass_pending {
            let answered = match &ev.body {
                EventBody::Account(AccountEvent::LoggedIn { .. }) => true,
                EventBody::Refused(r) => crate::proto::account::answers_login(r.code),
                _ => false,
            };
            if answered {
                self.pass_pending = false;
                self.pass_answered = true;
            }
        }
        if let Some(replies) = self.sasl.answer(&ev.body) {
            let ctx = self.ctx(&self.out_nick);
            services::render(ev, &ctx, out); // the 900 of a login
            for r in replies {
                render::render_reply(&r, &ctx, out);
            }
            return;
        }
        if services::render(ev, &self.ctx(&self.out_nick), out).is_some() {
            return;
        }
        // Events carry nicks exactly as the hub spells them, and out_nick is
        // taken from those events: plain equality is enough.
        let me = self.out_nick.as_str();
        let echo = self.caps.echo_message;
        let skip = match &ev.body {
            EventBody::Away { .. } => !self.caps.away_notify,
            EventBody::Message { from, .. }
            | EventBody::Notice {
                from,
                room: Some(_),
                ..
            } => !echo && **from == *me,
            EventBody::Private { from, to, .. }
            | EventBody::Notice {
                from, to: Some(to), ..
            } => !echo && **from == *me && **to != *me,
            _ => false,
        };
        if skip {
            return;
        }
        if render::is_shared(&ev.body) {
            if services::decorated(ev, self.caps, out).is_none() {
                out.extend_from_slice(ev.rendered(self.flavor()));
            }
        } else {
            if let EventBody::Registered { nick, .. } = &ev.body {
                self.out_nick = nick.to_string();
            }
            let ctx = self.ctx(&self.out_nick);
            if services::tagged_invite(ev, &ctx, out).is_none() {
                render::reply(ev, &ctx, out);
            }
        }
        if let EventBody::NickChanged { old, new } = &ev.body {
            if **old == *self.out_nick {
                self.out_nick = new.to_string();
                // The server renamed us (a login took an account's nick,
                // or a grace period ran out): our own replies follow.
                if self.registered {
                    self.nick = Some(new.to_string());
                }
            }
        }
    }

    fn render_page(&mut self, page: &crate::proto::listing::Page, out: &mut Vec<u8>) {
        render::page(page, &self.ctx(&self.out_nick), out);
    }

    fn waiting(&self) -> bool {
        self.waiting
    }

    /// A `PASS` login was answered: registration goes on.
    fn wake(&mut self, chat: &mut dyn Chat) {
        if std::mem::take(&mut self.pass_answered) {
            self.try_register(chat);
        }
    }

    fn goodbye(&mut self, why: Goodbye, chat: &mut dyn Chat) {
        let why = match why {
            Goodbye::RegistrationTimeout => "Registration timed out".to_string(),
            Goodbye::PingTimeout(secs) => format!("Ping timeout: {secs} seconds"),
            Goodbye::ExcessFlood => "Excess Flood".to_string(),
        };
        self.push(chat, Reply::Closing { why });
    }
}

fn already_registered() -> Reply {
    Reply::numeric(ERR_ALREADYREGISTERED, &["You may not reregister"])
}

/// `~ident`, keeping letters, digits and `-_.` of what the client sent.
fn shown_user(ident: &str) -> String {
    let clean: String = ident
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .take(USER_LEN - 1)
        .collect();
    format!("~{}", if clean.is_empty() { "user" } else { &clean })
}

/// The real name, cleaned and cut to 100 characters.
fn realname_of(raw: &str) -> String {
    let clean = decode::clean_text(raw);
    let clean: String = clean.trim().chars().take(100).collect();
    if clean.is_empty() {
        "natter IRC user".into()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_cleaned() {
        assert_eq!(shown_user("alice"), "~alice");
        assert_eq!(shown_user("a l!ce"), "~alce");
        assert_eq!(shown_user("verylongusername"), "~verylongu");
        assert_eq!(shown_user("!!"), "~user");
        assert_eq!(realname_of("\x02Bold\x02 Name"), "Bold Name");
    }
}
