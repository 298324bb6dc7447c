//! The IRC side of a connection: registration (`PASS`, `NICK`, `USER`,
//! `CAP` negotiation), turning decoded lines into chat commands, answering
//! what needs no chat state (`PING`, `CAP`, `MOTD`, parse errors) itself,
//! and choosing how each event is written (shared rendering, per-recipient
//! numerics, or not at all: `echo-message` and `away-notify` are filters
//! here).

use std::sync::{Arc, OnceLock};

use super::decode::{self, Cap, Input, Step};
use super::labeled;
use super::numerics::*;
use super::readmarker::ReadMarkers;
use super::sasl::{self, Sasl};
use super::whox::{self, Whox};
use super::{about, render, services, Caps, Ctx, Reply, ServerInfo, CAPS, USER_LEN};
use crate::proto::line::LineError;
use crate::proto::listing::{Page, PageBody};
use crate::proto::oper::OperError;
use crate::proto::session::{
    shared_name, Chat, Goodbye, HistoryRequest, Mark, OperBook, Protocol, Replay, SessionConfig,
};
use crate::proto::{
    AccountEvent, AccountRequest, Command, ErrorCode, Event, EventBody, Flavor, Name, Outcome,
    Password, Profile, Target,
};

/// Most WHOs awaiting their answer whose WHOX fields a session remembers.
const MAX_PENDING_WHO: usize = 16;
/// Most labeled commands awaiting their answers; more are answered unlabeled.
const MAX_PENDING_LABELS: usize = 64;
/// Refused `OPER`s after which a connection's passwords are not checked.
const MAX_OPER_FAILURES: u8 = 3;

/// One IRC connection's protocol state.
pub struct IrcSession {
    info: Arc<ServerInfo>,
    /// The server password, if one is required.
    password: Option<String>,
    /// The room to join on registering (empty: none).
    default_room: String,
    /// The cloaked host shown as `nick!user@host`.
    host: Name,
    /// The real address, for oper host masks.
    ip: Name,
    opers: OperBook,
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
    /// WHOX fields of the WHOs for masks sent and not answered yet, oldest
    /// first (`None`: a plain WHO).
    whox: std::collections::VecDeque<Option<Whox>>,
    /// The same for `WHO #room`, answered in pages…
    whox_pages: std::collections::VecDeque<Option<Whox>>,
    /// …and the fields of the one being paged out.
    paged_whox: Option<Whox>,
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
    /// Something was asked of the accounts or of the history (read off
    /// the chat lock, answered later) and not answered yet: lines wait,
    /// so that the answer comes before what answers the next lines.
    waiting: bool,
    /// Labels of commands sent and not answered yet (`labeled-response`).
    labels: std::collections::VecDeque<String>,
    /// While a labeled command's answers are written: its label, and the
    /// first line or the open batch.
    labeling: Option<labeled::Labeled>,
    /// Numbers the labeled-response batches.
    batches: u64,
    /// How far this client has read each target (`draft/read-marker`).
    read_markers: ReadMarkers,
    /// `OPER` attempts refused so far.
    oper_failures: u8,
    /// The `sts` capability's value, when TLS is configured.
    sts: Option<String>,
}

impl IrcSession {
    pub fn new(config: &SessionConfig) -> IrcSession {
        IrcSession {
            info: config.irc_info.clone(),
            labels: Default::default(),
            labeling: None,
            batches: 0,
            read_markers: ReadMarkers::default(),
            oper_failures: 0,
            password: config.irc_password.clone(),
            default_room: match config.irc_auto_join {
                true => config.default_room.to_string(),
                false => String::new(),
            },
            host: config.host.clone(),
            ip: config.ip.clone(),
            opers: config.opers.clone(),
            user: "~user".into(),
            pass: None,
            nick: None,
            registered: false,
            user_params: None,
            negotiating: false,
            caps: Caps::default(),
            whox: Default::default(),
            whox_pages: Default::default(),
            paged_whox: None,
            out_nick: "*".into(),
            replay: Replay {
                default_room: None, // JOINs name their rooms
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
                    if probe.extended_monitor != self.caps.extended_monitor {
                        let on = probe.extended_monitor;
                        chat.execute(Command::WatchDetails { on });
                    }
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

    /// `OPER name password`: checks the block's host mask and password
    /// here (slow on purpose, so outside the chat lock), then tells the hub.
    fn oper(&mut self, chat: &mut dyn Chat, name: &str, password: &str) -> Outcome {
        let opers = match self.opers.read() {
            Ok(book) => book.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let ident = self.user_params.as_ref().map_or("", |(u, _)| u.as_str());
        // Each check hashes (slow on purpose): after a few wrong ones this
        // connection is not checked any more.
        let checked = match self.oper_failures < MAX_OPER_FAILURES {
            true => opers.check(name, password, ident, &self.ip),
            false => Err(OperError::WrongPassword),
        };
        match checked {
            Ok(()) => self.run(
                chat,
                Command::OperUp {
                    name: name.to_string(),
                },
            ),
            Err(why) => {
                self.oper_failures = self.oper_failures.saturating_add(1);
                tracing::info!("OPER {name:?} refused: {why:?}");
                self.push(
                    chat,
                    Reply::numeric(ERR_PASSWDMISMATCH, &["Password incorrect"]),
                );
                Outcome::Refused
            }
        }
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
            rejoin: true,
        };
        chat.execute(Command::Identify(profile));
        if chat.execute(Command::Register { nick }) != Outcome::Continue {
            self.nick = None; // refused (433/432 sent): wait for another NICK
            return Outcome::Continue;
        }
        self.registered = true;
        chat.execute(Command::Lusers);
        self.push(chat, Reply::Motd);
        // Logged in before registering (SASL, PASS): back in the account's
        // channels, after the welcome (`rejoin_on_login`).
        chat.execute(Command::Rejoin);
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

    /// Whether `ev` answers this client's own command (server replies, and
    /// what it did itself), as opposed to something others did or sent it.
    fn answers_me(&self, ev: &Event) -> bool {
        let me = self.out_nick.as_str();
        match &ev.body {
            EventBody::Private { to, .. }
            | EventBody::Notice { to: Some(to), .. }
            | EventBody::TagMsg { to: Some(to), .. }
                if **to == *me && !ev.echo =>
            {
                false // received, even from itself
            }
            _ => match ev.source.as_deref() {
                Some(src) => src.split('!').next() == Some(me),
                None => true,
            },
        }
    }

    /// Handles one line (its label, if any, is the caller's business).
    fn handle_line(&mut self, line: &str, chat: &mut dyn Chat) -> Outcome {
        let registered = self.registered;
        match decode::decode_line(line) {
            Input::Nothing => {}
            Input::MarkRead { .. } if !registered => self.push(
                chat,
                Reply::numeric(ERR_NOTREGISTERED, &["You have not registered"]),
            ),
            Input::MarkRead { target, value } => {
                let reply = match value {
                    None => Ok(self.read_markers.get(&target)),
                    Some(v) => {
                        let set = self.read_markers.set(&target, &v);
                        // Kept for the account too (if logged in to one).
                        if let Some(at) = v.strip_prefix("timestamp=").filter(|_| set.is_ok()) {
                            let (target, at) = (target.clone(), at.to_string());
                            chat.execute(Command::MarkRead { target, at });
                        }
                        set
                    }
                };
                let reply = match reply {
                    Ok(mark) => Reply::Verb {
                        verb: "MARKREAD",
                        params: vec![target, mark],
                    },
                    Err(_) => Reply::Fail {
                        command: "MARKREAD",
                        code: "INVALID_PARAMS",
                        context: vec![target],
                        text: "The timestamp is not valid",
                    },
                };
                self.push(chat, reply);
            }
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
            Input::Help(subject) => {
                for r in about::help(subject.as_deref()) {
                    self.push(chat, r);
                }
            }
            Input::About(kind, target) => {
                for r in about::about(kind, target.as_deref(), &self.info) {
                    self.push(chat, r);
                }
            }
            Input::Oper { name, password } => return self.oper(chat, &name, &password),
            Input::Who { target, whox } => {
                // `WHO #room` is answered in pages, a mask by an event: two
                // queues, each in the order the answers come. At most a few
                // remembered: a client cannot make them grow.
                let pending = match target {
                    Target::Room(_) => &mut self.whox_pages,
                    Target::Person(_) => &mut self.whox,
                };
                if pending.len() >= MAX_PENDING_WHO {
                    pending.pop_front();
                }
                pending.push_back(whox);
                return self.run(chat, Command::WhoDetail { target });
            }
            // A channel one is not in (or that does not exist) is not a
            // valid target, and the answer does not tell which.
            Input::History { sub, room, .. }
                if decode::is_channel(&room) && !chat.in_room(&room) =>
            {
                self.push(
                    chat,
                    Reply::Fail {
                        command: "CHATHISTORY",
                        code: "INVALID_TARGET",
                        context: vec![sub, decode::clean_word(&room)],
                        text: "Messages could not be retrieved",
                    },
                )
            }
            Input::HistoryTargets(request) => {
                self.waiting = true;
                chat.history_targets(request)
            }
            // A nick: the private lines with them (accounts or guest sessions).
            Input::History {
                room, query, limit, ..
            } if !decode::is_channel(&room) => {
                self.waiting = true;
                chat.history(HistoryRequest {
                    room: None,
                    with: Some(room),
                    query,
                    limit,
                    events: self.caps.event_playback,
                    asked: true,
                })
            }
            Input::History {
                room, query, limit, ..
            } => {
                self.waiting = true;
                chat.history(HistoryRequest {
                    room: Some(room),
                    with: None,
                    query,
                    limit,
                    events: self.caps.event_playback,
                    asked: true,
                })
            }
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
    fn render_event(&mut self, ev: &Event, out: &mut Vec<u8>) {
        if let EventBody::ReadMarkers { marks, tell } = &ev.body {
            for (target, at) in marks {
                let Ok(now) = self.read_markers.set(target, &format!("timestamp={at}")) else {
                    continue;
                };
                if *tell && self.caps.read_marker {
                    let reply = Reply::Verb {
                        verb: "MARKREAD",
                        params: vec![target.to_string(), now],
                    };
                    render::render_reply(&reply, &self.ctx(&self.out_nick), out);
                }
            }
            return;
        }
        self.waiting &=
            !crate::proto::account::answers_request(&ev.body) && !answers_history(&ev.body);
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
            EventBody::TagMsg { .. } if !self.caps.message_tags => true,
            // The sender's copy of a line to itself: only with echo-message.
            _ if ev.echo => !echo,
            EventBody::Away { .. } => !self.caps.away_notify,
            EventBody::RealnameChanged { .. } => !self.caps.setname,
            // Others' invitations reach operators who asked (invite-notify).
            EventBody::Invited { nick, target, .. } => {
                **nick != *me && **target != *me && !self.caps.invite_notify
            }
            // IRC clients get Members only on joining (NAMES is Names).
            EventBody::Members { .. } => self.caps.no_implicit_names,
            EventBody::TagMsg {
                from,
                room: Some(_),
                ..
            } => !echo && **from == *me,
            EventBody::TagMsg {
                from, to: Some(to), ..
            } => !echo && **from == *me && **to != *me,
            EventBody::Message { from, .. }
            | EventBody::StatusMessage { from, .. }
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
        if let EventBody::WhoReply {
            room,
            members,
            mask,
        } = &ev.body
        {
            if let Some(Some(whox)) = self.whox.pop_front() {
                whox::render(
                    &whox,
                    room.as_deref(),
                    members,
                    &self.ctx(&self.out_nick),
                    out,
                );
                let mask = decode::clean_word(mask);
                let end = Reply::numeric(RPL_ENDOFWHO, &[&mask, "End of WHO list"]);
                render::render_reply(&end, &self.ctx(&self.out_nick), out);
                return;
            }
        }
        if render::is_shared(&ev.body) {
            if services::decorated(ev, self.caps, out).is_none() {
                out.extend_from_slice(ev.rendered(self.flavor()));
            }
            // read-marker: on joining, the marker of the channel (before NAMES).
            if let EventBody::Joined { room, nick, .. } = &ev.body {
                if self.caps.read_marker && **nick == *self.out_nick {
                    let target = render::chan(room);
                    let mark = self.read_markers.get(&target);
                    let reply = Reply::Verb {
                        verb: "MARKREAD",
                        params: vec![target, mark],
                    };
                    render::render_reply(&reply, &self.ctx(&self.out_nick), out);
                }
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
            rejoin: true,
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
        match (self.caps.server_time, self.caps.message_tags) {
            (false, false) => Flavor::Irc,
            (true, false) => Flavor::IrcTagged,
            (false, true) => Flavor::IrcMsgTags,
            (true, true) => Flavor::IrcAllTags,
        }
    }

    fn registered(&self) -> bool {
        self.registered
    }

    /// A labeled line (with `labeled-response`) has its answers bracketed
    /// by markers; see [`labeled`].
    fn line(&mut self, line: &str, chat: &mut dyn Chat) -> Outcome {
        let label = match self.caps.labeled_response {
            true => labeled::label_of(line),
            false => None,
        };
        let Some(label) = label.filter(|_| self.labels.len() < MAX_PENDING_LABELS) else {
            return self.handle_line(line, chat);
        };
        self.labels.push_back(label);
        chat.mark(Mark::Start);
        let outcome = self.handle_line(line, chat);
        chat.mark(Mark::End);
        outcome
    }

    /// The session's own replies and the pages of long listings: labeled
    /// while a labeled command's answers are written.
    fn local(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        match &mut self.labeling {
            Some(l) => l.write(bytes, &self.info.name, self.batches + 1, out),
            None => out.extend_from_slice(bytes),
        }
    }

    fn mark(&mut self, mark: Mark, out: &mut Vec<u8>) {
        match mark {
            Mark::Start => {
                self.labeling = self.labels.pop_front().map(labeled::Labeled::new);
            }
            Mark::End => {
                if let Some(l) = self.labeling.take() {
                    self.batches += 1;
                    l.finish(&self.info.name, out);
                }
            }
        }
    }

    /// Renders one event, labeled when it answers a labeled command.
    fn render(&mut self, ev: &Event, out: &mut Vec<u8>) {
        match self.labeling.is_some() && self.answers_me(ev) {
            true => {
                let mut lines = Vec::new();
                self.render_event(ev, &mut lines);
                self.local(&lines, out);
            }
            false => self.render_event(ev, out),
        }
    }

    /// A line over IRC's limit gets `417`; one that is not UTF-8 a
    /// standard reply `FAIL * INVALID_UTF8` (natter is `UTF8ONLY`). Either
    /// way the line is dropped and registration goes on.
    fn bad_line(&mut self, err: LineError, chat: &mut dyn Chat) {
        let reply = match err {
            LineError::TooLong { .. } => {
                Reply::numeric(ERR_INPUTTOOLONG, &["Input line was too long"])
            }
            LineError::InvalidUtf8 => Reply::Fail {
                command: "*",
                code: "INVALID_UTF8",
                context: Vec::new(),
                text: "Message rejected: it is not valid UTF-8",
            },
        };
        self.push(chat, reply);
    }

    /// A page of a long listing; a `WHO #room` answer in the WHOX fields
    /// it asked for (`354`), if it did.
    fn render_page(&mut self, page: &Page, out: &mut Vec<u8>) {
        let PageBody::Who {
            mask,
            room,
            members,
            ..
        } = page.body
        else {
            return render::page(page, &self.ctx(&self.out_nick), out);
        };
        if page.first {
            self.paged_whox = self.whox_pages.pop_front().flatten();
        }
        let ctx = self.ctx(&self.out_nick);
        match &self.paged_whox {
            Some(whox) => {
                whox::render(whox, room, members, &ctx, out);
                if page.last {
                    let mask = decode::clean_word(mask);
                    let end = Reply::numeric(RPL_ENDOFWHO, &[&mask, "End of WHO list"]);
                    render::render_reply(&end, &ctx, out);
                }
            }
            None => render::page(page, &ctx, out),
        }
        if page.last {
            self.paged_whox = None;
        }
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

/// Whether `body` answers a `CHATHISTORY` the session is waiting for
/// (the history, the targets, or why they could not be read).
fn answers_history(body: &EventBody) -> bool {
    match body {
        EventBody::History { asked, .. } => *asked,
        EventBody::HistoryTargets { .. } => true,
        EventBody::Refused(r) => matches!(r.code, ErrorCode::StoreFailed | ErrorCode::NotInRoom),
        _ => false,
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
