//! One connection's protocol, whatever it is: the [`Protocol`] trait that
//! text, JSON lines and IRC each implement, and what a protocol may ask
//! of the chat while it handles a line ([`Chat`]). A protocol session
//! decodes lines into commands (or answers them itself), renders events,
//! and owns its registration state. The connection loop in `server/`
//! knows no protocol: it frames lines, keeps time and writes bytes.
//!
//! On the main port every connection starts as text; [`detect`] looks at
//! the first line and may switch it to JSON or IRC.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::irc::{self, ServerInfo};
use super::line::LineError;
use super::listing::Page;
use super::oper::Opers;
use super::{
    json, text, AccountEvent, AccountRequest, Command, ErrorCode, Event, EventBody, Flavor,
    HistoryQuery, Name, Outcome, Profile,
};

/// What a protocol session may ask of the chat.
pub trait Chat {
    /// Applies a command; the chat's answers arrive as events.
    fn execute(&mut self, cmd: Command) -> Outcome;
    /// Queues bytes the session rendered itself (its own replies), in
    /// order with the events queued for this connection.
    fn local(&mut self, bytes: Bytes);
    /// People online now.
    fn online(&mut self) -> usize;
    /// Asks for part of a room's history; it arrives later as an
    /// [`EventBody::History`] event (or a refusal).
    fn history(&mut self, request: HistoryRequest);
    /// Asks the accounts for something (register, log in). Passwords are
    /// checked off the chat; the answer arrives later as an
    /// [`EventBody::Account`] event or a refusal. A chat without
    /// accounts answers nothing.
    fn account(&mut self, _request: AccountRequest) {}
    /// Whether this connection is in room `room` now.
    fn in_room(&mut self, room: &str) -> bool;
    /// Asks who this connection's account has private lines with; the
    /// answer arrives later as an [`EventBody::HistoryTargets`] event. A
    /// chat without a store answers nothing.
    fn history_targets(&mut self, _request: TargetsRequest) {}
    /// Queues a marker, in order with everything else queued for this
    /// connection; the session sees it again in [`Protocol::mark`] when it
    /// is written (IRC `labeled-response` brackets a command's answers).
    fn mark(&mut self, mark: Mark);
}

/// A point in a connection's output, set by its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// The answers to one command start here…
    Start,
    /// …and end here.
    End,
}

/// A request for part of a room's history, or of the private lines
/// between the asker and one person (`with`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRequest {
    /// The room (`None`: the current one, unless `with` is given).
    pub room: Option<String>,
    /// The person (nick or account) whose private lines with the asker
    /// are wanted; kept only between two logged-in accounts.
    pub with: Option<String>,
    pub query: HistoryQuery,
    /// Most lines wanted (the server caps it).
    pub limit: usize,
    /// Joins, parts and the like too.
    pub events: bool,
    /// Asked for (else the replay on joining).
    pub asked: bool,
}

/// Who the asker has private lines with, newest within `from_ms`..`to_ms`
/// (IRC `CHATHISTORY TARGETS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetsRequest {
    pub from_ms: u64,
    pub to_ms: u64,
    /// Most people listed (the server caps it).
    pub limit: usize,
}

impl HistoryRequest {
    /// The last `limit` lines of `room`, as the replay on joining it.
    pub fn replay(room: &str, limit: usize) -> HistoryRequest {
        HistoryRequest {
            room: Some(room.to_string()),
            with: None,
            query: HistoryQuery::Latest(None),
            limit,
            events: false,
            asked: false,
        }
    }
}

/// What a session replays when its user enters a room.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The room registering puts text and JSON users in (`None` or empty:
    /// none). Shared with the server's settings: not a string in every
    /// session (`perf16n`).
    pub default_room: Option<Name>,
    /// Lines shown (0: none).
    pub lines: usize,
}

impl Replay {
    /// The room `cmd` will have put the user in if it succeeds.
    fn room_of(&self, cmd: &Command) -> Option<String> {
        match cmd {
            Command::Join { room, .. } | Command::JoinWithKey { room, .. } => Some(room.clone()),
            Command::Register { .. } => self
                .default_room
                .as_deref()
                .filter(|r| !r.is_empty())
                .map(str::to_string),
            _ => None,
        }
    }

    /// Runs `cmd`; once it has put the user in a room, asks for its last
    /// lines (not again for a room the user was in already).
    pub fn execute(&self, cmd: Command, chat: &mut dyn Chat) -> Outcome {
        let room = self
            .room_of(&cmd)
            .filter(|r| self.lines > 0 && !chat.in_room(r));
        let outcome = chat.execute(cmd);
        if let (Some(room), Outcome::Continue) = (room, outcome) {
            chat.history(HistoryRequest::replay(&room, self.lines));
        }
        outcome
    }
}

/// Why the connection loop is closing a connection on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goodbye {
    RegistrationTimeout,
    /// No answer to a ping within this many seconds.
    PingTimeout(u64),
    /// More input than the receive queue holds (`recvq`).
    ExcessFlood,
}

/// One connection's protocol.
pub trait Protocol: Send {
    /// `text`, `json` or `irc` (for logs).
    fn name(&self) -> &'static str;
    /// Called once when the session takes over the connection.
    fn start(&mut self, chat: &mut dyn Chat);
    /// One line from the client.
    fn line(&mut self, line: &str, chat: &mut dyn Chat) -> Outcome;
    /// Appends `ev` to `out` as this client should see it (maybe nothing).
    fn render(&mut self, ev: &Event, out: &mut Vec<u8>);
    /// Appends one page of a long listing to `out`.
    fn render_page(&mut self, page: &Page, out: &mut Vec<u8>);
    /// Appends bytes the session rendered itself (queued with
    /// [`Chat::local`]) to `out`, as they are written.
    fn local(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(bytes);
    }
    /// A marker the session queued with [`Chat::mark`] is being written.
    fn mark(&mut self, _mark: Mark, _out: &mut Vec<u8>) {}
    /// Whether this client answers pings (then the loop sends them).
    fn heartbeat(&self) -> bool;
    /// How shared events are rendered for this client (their size counts
    /// against its send queue).
    fn flavor(&self) -> Flavor;
    /// Longest line accepted and whether telnet negotiation is stripped.
    fn framing(&self, max_line_bytes: usize) -> (usize, bool) {
        (max_line_bytes, false)
    }
    /// Whether the client has a nickname yet.
    fn registered(&self) -> bool;
    /// Tells the client why it is being closed.
    fn goodbye(&mut self, why: Goodbye, chat: &mut dyn Chat);
    /// Called after events were rendered: a session that was waiting for
    /// an answer (a login) goes on with what it was doing (registering).
    fn wake(&mut self, _chat: &mut dyn Chat) {}
    /// Whether the session awaits the answer to something it asked the
    /// accounts: its next lines wait (and the socket is not read), so that
    /// answers come in the order of the lines, as a client expects. The
    /// ping timeout still applies.
    fn waiting(&self) -> bool {
        false
    }
    /// Whether input is cut into JSON values (with or without line breaks
    /// between them) rather than lines.
    fn json_framing(&self) -> bool {
        false
    }
    /// Bytes this client is sent as its heartbeat, each time in a write of
    /// their own, every `original_ping_interval` whatever it says, instead
    /// of [`ping`](Protocol::ping) events after `ping_interval` of silence;
    /// it is dropped after `original_ping_timeout` without a byte from it.
    fn raw_ping(&self) -> Option<&'static [u8]> {
        None
    }

    /// A line that could not be framed (too long, not UTF-8).
    fn bad_line(&mut self, err: LineError, chat: &mut dyn Chat) {
        let body = match err {
            LineError::TooLong { max } => EventBody::error(
                ErrorCode::LineTooLong,
                format!("line too long (max {max} bytes); it was ignored"),
            ),
            LineError::InvalidUtf8 => EventBody::error(
                ErrorCode::InvalidUtf8,
                "line is not valid UTF-8; it was ignored",
            ),
        };
        self.reply(body, chat);
    }

    /// Renders a reply of the session's own and queues it.
    fn reply(&mut self, body: EventBody, chat: &mut dyn Chat) {
        let mut out = Vec::new();
        self.render(&Event::new(body), &mut out);
        chat.local(out.into());
    }

    /// Queues a heartbeat ping.
    fn ping(&mut self, token: u64, chat: &mut dyn Chat) {
        self.reply(EventBody::Ping { token }, chat);
    }
}

/// What sessions need to know about the server.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub server_name: String,
    /// The room newcomers are put in (empty: none).
    pub default_room: Name,
    /// Whether IRC clients are put in `default_room` too.
    pub irc_auto_join: bool,
    /// What IRC clients are told about the server.
    pub irc_info: Arc<ServerInfo>,
    /// The server password IRC clients must give, if any.
    pub irc_password: Option<String>,
    /// The cloaked host shown as `nick!user@host`.
    pub host: Name,
    /// The client's real address (for oper host masks; never shown).
    pub ip: Name,
    /// The oper blocks, as last (re)loaded.
    pub opers: OperBook,
    /// Lines of history replayed on entering a room.
    pub history_on_join: usize,
    /// The IRC `sts` capability's value (`port=…` on plaintext,
    /// `duration=…` over TLS), when TLS is configured.
    pub sts: Option<String>,
}

impl SessionConfig {
    pub fn replay(&self) -> Replay {
        Replay {
            default_room: Some(self.default_room.clone()),
            lines: self.history_on_join,
        }
    }
}

/// The oper blocks, shared by every session and replaced on a rehash.
pub type OperBook = Arc<std::sync::RwLock<Arc<Opers>>>;

/// The protocol a first line asks for: JSON or IRC (`None`: stay text).
/// `banner_shown`: the welcome was already written as text (a JSON session
/// then sends its own; otherwise the held-back one is written as JSON).
pub fn detect(
    first_line: &str,
    config: &SessionConfig,
    banner_shown: bool,
) -> Option<Box<dyn Protocol>> {
    if json::looks_like_json(first_line) {
        Some(Box::new(JsonSession::new(config, banner_shown)))
    } else if irc::decode::looks_like_irc(first_line) {
        Some(Box::new(irc::session::IrcSession::new(config)))
    } else {
        None
    }
}

/// What a listener that refuses a connection writes before closing.
pub fn refusal_line(irc: bool, why: &str) -> String {
    match irc {
        true => format!("ERROR :Closing Link: {why}\r\n"),
        false => format!("! {why}\r\n"),
    }
}

/// A profile name shared by every connection of a kind (allocated once).
pub(crate) fn shared_name(cell: &'static OnceLock<Name>, text: &str) -> Name {
    cell.get_or_init(|| text.into()).clone()
}

pub(super) fn profile(
    user: (&'static OnceLock<Name>, &str),
    realname: (&'static OnceLock<Name>, &str),
) -> Profile {
    Profile {
        user: shared_name(user.0, user.1),
        realname: shared_name(realname.0, realname.1),
        auto_join: true,
        rejoin: false,
    }
}

/// Runs a decoded command, noting a nickname taken, and replays a
/// room's last lines on entering it.
pub(super) fn execute(
    cmd: Command,
    registered: &mut bool,
    replay: &Replay,
    chat: &mut dyn Chat,
) -> Outcome {
    let registering = matches!(cmd, Command::Register { .. });
    let outcome = replay.execute(cmd, chat);
    *registered |= registering && outcome == Outcome::Continue;
    outcome
}

/// The lines `/history` shows when no number is given.
pub(super) const HISTORY_LINES: usize = 50;

/// What a JSON session does with one parsed input: natter's JSON lines and
/// the original dialect act alike and differ only in how they word what
/// they show. `Err` is a reply the caller renders for its client.
pub(super) fn json_input(
    input: json::Input,
    registered: &mut bool,
    replay: &Replay,
    login: &mut Login,
    chat: &mut dyn Chat,
) -> Result<Outcome, EventBody> {
    match input {
        json::Input::Command(cmd) => Ok(execute(cmd, registered, replay, chat)),
        json::Input::History {
            room,
            with,
            query,
            limit,
        } => {
            chat.history(HistoryRequest {
                room,
                with,
                query,
                limit: limit.unwrap_or(HISTORY_LINES),
                events: false,
                asked: true,
            });
            Ok(Outcome::Continue)
        }
        json::Input::Account(request) => {
            login.ask(request, *registered, chat);
            Ok(Outcome::Continue)
        }
        json::Input::Keep => Ok(Outcome::Continue), // any input is proof of life
        json::Input::Help => Err(EventBody::Help),
        json::Input::Error(code, message) => Err(EventBody::error(code, message)),
    }
}

/// What [`json_input`] answered, for `session`: its outcome, or the reply
/// to an input it refused, rendered for the client.
pub(super) fn answered(
    session: &mut impl Protocol,
    answer: Result<Outcome, EventBody>,
    chat: &mut dyn Chat,
) -> Outcome {
    answer.unwrap_or_else(|reply| {
        session.reply(reply, chat);
        Outcome::Continue
    })
}

/// A session's part in logging in before it has a nickname (text and
/// JSON): the nickname whose password is asked for, the login waiting for
/// its answer, and the account to take the nickname of once logged in.
///
/// Every text and JSON session holds one, parked or not, and almost none
/// ever logs in: the names live in a box that exists only while one of
/// them is set (`perf16r`), so a session is 16 bytes smaller for this
/// (three `Option<String>`s inline were 72 bytes and kept the text
/// session in jemalloc's 112-byte class, whose slabs the join storm's
/// short-lived objects leave mostly empty; see [`TextSession`]).
#[derive(Debug, Default)]
pub(super) struct Login {
    /// The names, while one is set.
    names: Option<Box<LoginNames>>,
    /// A login is being checked.
    pending: bool,
    /// Something was asked of the accounts and not answered yet.
    pub(super) waiting: bool,
}

/// What [`Login`] keeps boxed while a login is under way.
#[derive(Debug, Default)]
struct LoginNames {
    /// A registered nickname was refused: the next line is its password.
    prompt: Option<String>,
    /// Logged in: register with this nickname.
    ready: Option<String>,
    /// Logged in after registering: go by the account's nickname.
    rename: Option<String>,
}

impl Login {
    /// The names, boxed on first use.
    fn names(&mut self) -> &mut LoginNames {
        self.names.get_or_insert_with(Box::default)
    }

    /// Takes one of the names; the box goes when the last one does.
    fn take(&mut self, which: fn(&mut LoginNames) -> &mut Option<String>) -> Option<String> {
        let names = self.names.as_deref_mut()?;
        let taken = which(names).take();
        if names.prompt.is_none() && names.ready.is_none() && names.rename.is_none() {
            self.names = None;
        }
        taken
    }

    /// The nickname whose password the next line is, if one was refused.
    pub(super) fn take_prompt(&mut self) -> Option<String> {
        self.take(|n| &mut n.prompt)
    }
}

impl Login {
    /// Sends a login or registration, noting a login made before having a
    /// nickname.
    pub(super) fn ask(&mut self, request: AccountRequest, registered: bool, chat: &mut dyn Chat) {
        self.pending = !registered && matches!(request, AccountRequest::Login { .. });
        self.waiting = true;
        chat.account(request);
    }

    /// Notes what an event says about a login.
    #[inline]
    pub(super) fn seen(&mut self, body: &EventBody, registered: bool) {
        // Everything that is not about accounts passes at once (it is
        // called for every line written to the client).
        if matches!(body, EventBody::Account(_) | EventBody::Refused(_)) {
            self.seen_account(body, registered);
        }
    }

    fn seen_account(&mut self, body: &EventBody, registered: bool) {
        self.waiting &= !super::account::answers_request(body);
        match body {
            EventBody::Account(AccountEvent::LoggedIn { account, nick, .. }) => {
                match nick {
                    None if !registered => self.names().ready = Some(account.to_string()),
                    Some(n) if n.to_lowercase() != account.to_lowercase() => {
                        self.names().rename = Some(account.to_string())
                    }
                    _ => {}
                }
                self.pending = false;
            }
            EventBody::Refused(r)
                if !registered && r.code == ErrorCode::NickRegistered && !self.pending =>
            {
                match r.about_nick() {
                    Some(nick) => self.names().prompt = Some(nick.into()),
                    None => drop(self.take_prompt()),
                }
            }
            EventBody::Refused(r) if self.pending && super::account::answers_login(r.code) => {
                self.pending = false;
            }
            _ => {}
        }
    }

    /// Registers with the account's nickname once logged in, or takes it
    /// (from whoever has it) if already registered.
    pub(super) fn wake(&mut self, registered: &mut bool, replay: &Replay, chat: &mut dyn Chat) {
        if let Some(nick) = self.take(|n| &mut n.ready) {
            if !*registered {
                execute(Command::Register { nick }, registered, replay, chat);
            }
        }
        if let Some(new) = self.take(|n| &mut n.rename) {
            chat.execute(Command::Nick { new });
        }
    }
}

/// People on telnet or netcat.
pub struct TextSession {
    color: bool,
    registered: bool,
    replay: Replay,
    login: Login,
}

impl TextSession {
    pub fn new(config: &SessionConfig) -> TextSession {
        TextSession {
            color: true,
            registered: false,
            replay: config.replay(),
            login: Login::default(),
        }
    }
}

impl Protocol for TextSession {
    fn name(&self) -> &'static str {
        "text"
    }

    fn start(&mut self, chat: &mut dyn Chat) {
        static USER: OnceLock<Name> = OnceLock::new();
        static REALNAME: OnceLock<Name> = OnceLock::new();
        let p = profile((&USER, "text"), (&REALNAME, "natter text user"));
        chat.execute(Command::Identify(p));
    }

    fn line(&mut self, line: &str, chat: &mut dyn Chat) -> Outcome {
        if let Some(nick) = self.login.take_prompt().filter(|_| !self.registered) {
            // The password of the registered nickname just refused.
            let password = line.trim();
            if password.is_empty() {
                let text = "What is your nickname?".into();
                self.reply(EventBody::Info { text }, chat);
                return Outcome::Continue;
            }
            if !password.starts_with('/') {
                let request = AccountRequest::Login {
                    account: nick,
                    password: password.into(),
                };
                self.login.ask(request, false, chat);
                return Outcome::Continue;
            }
        }
        match text::parse(line, self.registered) {
            text::Input::Command(cmd) => execute(cmd, &mut self.registered, &self.replay, chat),
            text::Input::Account(request) => {
                self.login.ask(request, self.registered, chat);
                Outcome::Continue
            }
            text::Input::History(lines) => {
                chat.history(HistoryRequest {
                    room: None,
                    with: None,
                    query: HistoryQuery::Latest(None),
                    limit: lines.unwrap_or(HISTORY_LINES),
                    events: false,
                    asked: true,
                });
                Outcome::Continue
            }
            text::Input::Help => {
                self.reply(EventBody::Help, chat);
                Outcome::Continue
            }
            text::Input::Color(on) => {
                self.color = on;
                let text = if on { "colours on" } else { "colours off" };
                self.reply(EventBody::Info { text: text.into() }, chat);
                Outcome::Continue
            }
            text::Input::Nothing => Outcome::Continue,
            text::Input::Error(code, message) => {
                self.reply(EventBody::error(code, message), chat);
                Outcome::Continue
            }
        }
    }

    fn render(&mut self, ev: &Event, out: &mut Vec<u8>) {
        self.login.seen(&ev.body, self.registered);
        match &ev.body {
            // Before a nickname is taken, a refused one asks for another.
            EventBody::Refused(r) if !self.registered => {
                text::render_refusal(r, self.color, true, out)
            }
            _ => out.extend_from_slice(ev.rendered(self.flavor())),
        }
    }

    fn render_page(&mut self, page: &Page, out: &mut Vec<u8>) {
        text::render_page(page, self.color, out);
    }

    fn heartbeat(&self) -> bool {
        false
    }

    fn flavor(&self) -> Flavor {
        match self.color {
            true => Flavor::TextColor,
            false => Flavor::TextPlain,
        }
    }

    fn framing(&self, max_line_bytes: usize) -> (usize, bool) {
        (max_line_bytes, true)
    }

    fn registered(&self) -> bool {
        self.registered
    }

    fn goodbye(&mut self, why: Goodbye, chat: &mut dyn Chat) {
        self.reply(timeout_error(why), chat);
    }

    fn wake(&mut self, chat: &mut dyn Chat) {
        self.login.wake(&mut self.registered, &self.replay, chat);
    }

    fn waiting(&self) -> bool {
        self.login.waiting
    }
}

/// The error line text and JSON clients get when the server gives up on them.
pub(super) fn timeout_error(why: Goodbye) -> EventBody {
    let (code, message) = match why {
        Goodbye::RegistrationTimeout => (
            ErrorCode::Timeout,
            "registration timeout: no nickname given",
        ),
        Goodbye::PingTimeout(_) => (ErrorCode::Timeout, "ping timeout: no answer to ping"),
        Goodbye::ExcessFlood => (
            ErrorCode::ExcessFlood,
            "excess flood: you sent more than the server holds for you; closing",
        ),
    };
    EventBody::error(code, message)
}

/// Programs speaking JSON lines.
pub struct JsonSession {
    server_name: String,
    registered: bool,
    replay: Replay,
    /// Send a JSON welcome on starting.
    greet: bool,
    login: Login,
}

impl JsonSession {
    pub fn new(config: &SessionConfig, greet: bool) -> JsonSession {
        JsonSession {
            server_name: config.server_name.clone(),
            registered: false,
            replay: config.replay(),
            greet,
            login: Login::default(),
        }
    }
}

impl Protocol for JsonSession {
    fn name(&self) -> &'static str {
        "json"
    }

    /// A JSON welcome, unless the held-back banner will be written as one.
    fn start(&mut self, chat: &mut dyn Chat) {
        static USER: OnceLock<Name> = OnceLock::new();
        static REALNAME: OnceLock<Name> = OnceLock::new();
        let p = profile((&USER, "json"), (&REALNAME, "natter JSON user"));
        chat.execute(Command::Identify(p));
        if !self.greet {
            return;
        }
        let server = self.server_name.as_str().into();
        let online = chat.online();
        self.reply(EventBody::Welcome { server, online }, chat);
    }

    fn line(&mut self, line: &str, chat: &mut dyn Chat) -> Outcome {
        let input = json::parse(line);
        let answer = json_input(
            input,
            &mut self.registered,
            &self.replay,
            &mut self.login,
            chat,
        );
        answered(self, answer, chat)
    }

    fn render(&mut self, ev: &Event, out: &mut Vec<u8>) {
        self.login.seen(&ev.body, self.registered);
        out.extend_from_slice(ev.rendered(Flavor::Json));
    }

    fn render_page(&mut self, page: &Page, out: &mut Vec<u8>) {
        json::render_page(page, 0, out);
    }

    fn heartbeat(&self) -> bool {
        true
    }

    fn json_framing(&self) -> bool {
        true
    }

    fn flavor(&self) -> Flavor {
        Flavor::Json
    }

    fn registered(&self) -> bool {
        self.registered
    }

    fn goodbye(&mut self, why: Goodbye, chat: &mut dyn Chat) {
        self.reply(timeout_error(why), chat);
    }

    fn wake(&mut self, chat: &mut dyn Chat) {
        self.login.wake(&mut self.registered, &self.replay, chat);
    }

    fn waiting(&self) -> bool {
        self.login.waiting
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A chat that accepts everything and records what it was asked.
    #[derive(Default)]
    struct Recorder {
        commands: Vec<Command>,
        local: Vec<u8>,
        history: Vec<HistoryRequest>,
    }

    impl Chat for Recorder {
        fn execute(&mut self, cmd: Command) -> Outcome {
            self.commands.push(cmd);
            Outcome::Continue
        }
        fn local(&mut self, bytes: Bytes) {
            self.local.extend_from_slice(&bytes);
        }
        fn online(&mut self) -> usize {
            3
        }
        fn mark(&mut self, _mark: Mark) {}
        fn history(&mut self, request: HistoryRequest) {
            self.history.push(request);
        }
        fn in_room(&mut self, _room: &str) -> bool {
            false
        }
    }

    pub(crate) fn config() -> SessionConfig {
        let limits = irc::Limits {
            monitor_limit: 100,
            history_max_lines: 1000,
            max_nick_chars: 30,
            max_room_chars: 50,
            max_rooms_per_user: 100,
            topic_len: 390,
            max_bans: 100,
        };
        SessionConfig {
            server_name: "natter".into(),
            default_room: "lobby".into(),
            irc_auto_join: false,
            irc_info: Arc::new(ServerInfo::new("natter", &limits, 0)),
            irc_password: None,
            host: "h.ip".into(),
            ip: "127.0.0.1".into(),
            opers: Default::default(),
            history_on_join: 10,
            sts: None,
        }
    }

    #[test]
    fn first_lines_pick_the_protocol() {
        let c = config();
        let json = detect(r#"{"cmd":"login","nick":"a"}"#, &c, true);
        assert_eq!(json.unwrap().name(), "json");
        assert_eq!(detect("NICK alice", &c, true).unwrap().name(), "irc");
        assert!(detect("alice", &c, true).is_none());
    }

    #[test]
    fn text_registers_then_talks_and_answers_help_itself() {
        let mut s = TextSession::new(&config());
        let mut chat = Recorder::default();
        s.start(&mut chat);
        assert!(matches!(chat.commands[0], Command::Identify(_)));
        s.line("alice", &mut chat);
        assert!(s.registered());
        assert_eq!(
            chat.history,
            [HistoryRequest::replay("lobby", 10)],
            "lobby replayed"
        );
        s.line("/history 5", &mut chat);
        assert!(matches!(
            &chat.history[1],
            HistoryRequest {
                room: None,
                limit: 5,
                asked: true,
                ..
            }
        ));
        s.line("hello", &mut chat);
        assert!(matches!(&chat.commands[2], Command::Say { text, .. } if text == "hello"));
        s.line("/help", &mut chat);
        assert_eq!(chat.commands.len(), 3, "help is answered by the session");
        assert!(String::from_utf8_lossy(&chat.local).contains("/who"));
    }

    #[test]
    fn json_welcomes_in_json_and_reports_bad_lines() {
        let mut s = JsonSession::new(&config(), true);
        let mut chat = Recorder::default();
        s.start(&mut chat);
        let out = String::from_utf8(std::mem::take(&mut chat.local)).unwrap();
        assert!(out.contains(r#""type":"welcome""#), "{out}");
        assert!(out.contains(r#""online":3"#), "{out}");
        s.bad_line(LineError::InvalidUtf8, &mut chat);
        let out = String::from_utf8(chat.local).unwrap();
        assert!(out.contains(r#""code":"invalid_utf8""#), "{out}");
    }
}

#[cfg(test)]
mod size_tests {
    use super::{Login, TextSession};

    /// The login's names exist only while one is set (`perf16r`).
    #[test]
    fn a_logins_names_are_boxed_only_while_one_is_set() {
        let mut login = Login::default();
        assert!(login.names.is_none());
        login.names().prompt = Some("alice".into());
        login.names().ready = Some("alice".into());
        assert_eq!(login.take_prompt().as_deref(), Some("alice"));
        assert!(login.names.is_some(), "one is still set");
        assert_eq!(login.take(|n| &mut n.ready).as_deref(), Some("alice"));
        assert!(login.names.is_none(), "gone with the last one");
        assert_eq!(login.take_prompt(), None);
        assert!(std::mem::size_of::<Login>() <= 16);
    }

    /// Every text connection keeps one (boxed, parked or not): within
    /// jemalloc's 48-byte class since `perf16r`, which boxed the login's
    /// names (112 bytes before, the 112 class, which the join storm's
    /// short-lived objects share and leave ~70 % empty: ~0.3 KiB of
    /// resident pages per connection; 120 bytes before `perf16n`, when its
    /// replay settings held a copy of the default room's name).
    #[test]
    fn a_text_session_stays_small() {
        let size = std::mem::size_of::<TextSession>();
        eprintln!("TextSession: {size} bytes");
        assert!(size <= 48, "a text session is {size} bytes");
    }
}
