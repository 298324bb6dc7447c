//! The full-screen chat UI as a pure state machine, after osa1/tiny: all
//! UI state lives in [`UiState`] (windows with their scrollback, the input
//! line, history, completion, who is online), changed only by
//! [`on_event`](UiState::on_event) (from the connection) and
//! [`on_key`](UiState::on_key) / [`on_paste`](UiState::on_paste) (from
//! the user), and drawn by [`view::draw`] onto any ratatui backend. No
//! terminal I/O here, so it is tested headless with `TestBackend`; the
//! terminal shell around it is `client/tui.rs`.
//!
//! Windows, as irssi and weechat users expect: window 1 holds what the
//! server and the connection say, then one window per room we are in and
//! one per private conversation. Each event goes to the windows it is
//! about; a window not being looked at collects an activity mark (events,
//! messages, or a highlight: our nick mentioned, a private message, a
//! kick). Alt-1…9/0 or `/win N` go to a window, Ctrl-N/Ctrl-P (or
//! Alt-Right/Left) to the next or previous.

pub mod complete;
pub mod editor;
pub mod view;
pub mod wrap;

use std::collections::VecDeque;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::command::{self, Input, Request, COMMANDS};
use super::event::{Event, EventKind, Status};
use super::format::{self, show_room, Here, Line, Seg};
use super::protocol::same_nick;
use super::session::{same_room, Session};
use complete::Completion;
use editor::{Editor, History};

/// Scrollback kept per window (older lines are dropped).
pub const MAX_LINES: usize = 5000;
/// Input lines remembered for Up/Down.
const MAX_HISTORY: usize = 500;
/// Width of the `HH:MM ` column (continuation rows are indented by it).
pub const TIME_COLS: usize = 6;

/// One scrollback line: when, and what (its text made safe to draw).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub time: String,
    pub line: Line,
}

/// What a window shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowKind {
    /// The server's and the connection's messages (window 1).
    Status,
    /// A room (kept after a kick, so the reason stays readable).
    Room(String),
    /// A private conversation with this nick.
    Private(String),
}

/// How much happened in a window since it was last looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Activity {
    None,
    /// Joins, leaves and the like.
    Events,
    /// Somebody said something.
    Messages,
    /// Our nick was mentioned, a private message came, we were kicked.
    Highlight,
}

/// A window: what it is for, its scrollback and where it is scrolled to.
#[derive(Debug, Clone)]
pub struct Window {
    pub kind: WindowKind,
    entries: VecDeque<Entry>,
    /// Rows scrolled up from the bottom (0: following new lines).
    scroll: usize,
    pub activity: Activity,
}

impl Window {
    fn new(kind: WindowKind) -> Window {
        Window {
            kind,
            entries: VecDeque::new(),
            scroll: 0,
            activity: Activity::None,
        }
    }

    /// The window's name as the window bar shows it.
    pub fn title(&self) -> String {
        match &self.kind {
            WindowKind::Status => "status".to_string(),
            WindowKind::Room(r) => show_room(r),
            WindowKind::Private(n) => n.clone(),
        }
    }

    /// The room this window is for.
    pub fn room(&self) -> Option<&str> {
        match &self.kind {
            WindowKind::Room(r) => Some(r),
            _ => None,
        }
    }

    /// The scrollback, oldest first.
    pub fn entries(&self) -> impl DoubleEndedIterator<Item = &Entry> + ExactSizeIterator {
        self.entries.iter()
    }

    /// Where lines of this window are shown, for how they read.
    fn here(&self) -> Here<'_> {
        match &self.kind {
            WindowKind::Status => Here::Anywhere,
            WindowKind::Room(r) => Here::Room(r),
            WindowKind::Private(n) => Here::Private(n),
        }
    }
}

/// What the UI asks its shell to do after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send to the connection.
    Send(Request),
    /// Leave now, without waiting for the server (second Ctrl-C).
    Exit,
    /// Redraw the whole screen (Ctrl-L).
    Redraw,
}

/// Everything the chat screen shows and remembers.
#[derive(Debug, Clone)]
pub struct UiState {
    pub session: Session,
    windows: Vec<Window>,
    /// The window being looked at.
    active: usize,
    pub editor: Editor,
    history: History,
    completion: Option<Completion>,
    width: u16,
    height: u16,
    /// Use colours (false with `NO_COLOR`).
    pub color: bool,
    /// The connection's state, for the header.
    pub status: String,
    /// The next Enter answers "what is your nickname?".
    awaiting_nick: bool,
    /// A quit was sent; a second Ctrl-C exits at once.
    quitting: bool,
    /// A room the user asked to join: its window comes to the front.
    wanted: Option<String>,
}

impl UiState {
    pub fn new(color: bool) -> UiState {
        UiState {
            session: Session::default(),
            windows: vec![Window::new(WindowKind::Status)],
            active: 0,
            editor: Editor::default(),
            history: History::new(MAX_HISTORY),
            completion: None,
            width: 80,
            height: 24,
            color,
            status: String::new(),
            awaiting_nick: false,
            quitting: false,
            wanted: None,
        }
    }

    /// Every window, in window-bar order (window 1 first).
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// The index of the window being looked at (0 is window 1).
    pub fn active_index(&self) -> usize {
        self.active
    }

    /// The window being looked at.
    pub fn window(&self) -> &Window {
        &self.windows[self.active.min(self.windows.len() - 1)]
    }

    fn window_mut(&mut self) -> &mut Window {
        let i = self.active.min(self.windows.len() - 1);
        &mut self.windows[i]
    }

    /// The scrollback of the window being looked at, oldest first.
    pub fn entries(&self) -> impl DoubleEndedIterator<Item = &Entry> + ExactSizeIterator {
        self.window().entries()
    }

    /// The room of the window being looked at.
    pub fn room(&self) -> Option<&str> {
        self.window().room()
    }

    /// Rows the window being looked at is scrolled up from the bottom.
    pub fn scroll(&self) -> usize {
        self.window().scroll
    }

    /// The terminal size the UI lays itself out for.
    pub fn size(&self) -> (u16, u16) {
        (self.width, self.height)
    }

    pub fn awaiting_nick(&self) -> bool {
        self.awaiting_nick
    }

    /// The terminal was resized.
    pub fn resize(&mut self, width: u16, height: u16) {
        self.width = width;
        self.height = height;
        let max = self.max_scroll();
        let w = self.window_mut();
        w.scroll = w.scroll.min(max);
    }

    /// The chat pane's size (columns, rows) at the current terminal size.
    pub fn chat_size(&self) -> (usize, usize) {
        let areas = view::areas(
            ratatui::layout::Rect::new(0, 0, self.width, self.height),
            view::members_width(self),
        );
        (
            usize::from(areas.chat.width),
            usize::from(areas.chat.height),
        )
    }

    /// How many screen rows `entry` takes at chat width `cols`.
    fn rows_of(entry: &Entry, cols: usize) -> usize {
        view::entry_rows(entry, cols).len()
    }

    fn total_rows(&self) -> usize {
        let (cols, _) = self.chat_size();
        self.entries().map(|e| Self::rows_of(e, cols)).sum()
    }

    fn max_scroll(&self) -> usize {
        let (_, rows) = self.chat_size();
        if self.scroll() == 0 {
            return 0; // cheap common case: no need to wrap everything
        }
        self.total_rows().saturating_sub(rows)
    }

    /// Goes to window `i` (0 is window 1), clearing its activity.
    pub fn focus(&mut self, i: usize) {
        if i < self.windows.len() {
            self.active = i;
            self.windows[i].activity = Activity::None;
        }
    }

    /// The window for `kind`, opened (at the end) if there is none.
    fn open(&mut self, kind: WindowKind) -> usize {
        if let Some(i) = self.find(&kind) {
            return i;
        }
        self.windows.push(Window::new(kind));
        self.windows.len() - 1
    }

    fn find(&self, kind: &WindowKind) -> Option<usize> {
        self.windows.iter().position(|w| match (&w.kind, kind) {
            (WindowKind::Status, WindowKind::Status) => true,
            (WindowKind::Room(a), WindowKind::Room(b)) => same_room(a, b),
            (WindowKind::Private(a), WindowKind::Private(b)) => same_nick(a, b),
            _ => false,
        })
    }

    fn room_window(&self, room: &str) -> Option<usize> {
        self.find(&WindowKind::Room(room.to_string()))
    }

    fn private_window(&self, nick: &str) -> Option<usize> {
        self.find(&WindowKind::Private(nick.to_string()))
    }

    /// Closes window `i` (never window 1).
    fn close(&mut self, i: usize) {
        if i == 0 || i >= self.windows.len() {
            return;
        }
        self.windows.remove(i);
        if self.active >= i {
            self.active = self.active.saturating_sub(1).min(self.windows.len() - 1);
        }
        self.windows[self.active].activity = Activity::None;
    }

    /// Adds a line to window `i` (keeping its view still if scrolled up),
    /// marking activity if it is not being looked at.
    pub fn push_to(&mut self, i: usize, at_ms: i64, line: Line) {
        let Some(w) = self.windows.get(i) else {
            return;
        };
        let level = if line.mention {
            Activity::Highlight
        } else if line.chat {
            Activity::Messages
        } else {
            Activity::Events
        };
        let entry = Entry {
            time: format::clock(line.at_ms.unwrap_or(at_ms)),
            line: Line {
                segs: line
                    .segs
                    .into_iter()
                    .map(|s| Seg {
                        text: wrap::terminal_safe(&s.text).into_owned(),
                        tone: s.tone,
                    })
                    .collect(),
                ..line
            },
        };
        let rows = if w.scroll > 0 && i == self.active {
            Self::rows_of(&entry, self.chat_size().0)
        } else {
            0
        };
        let active = i == self.active;
        let w = &mut self.windows[i];
        w.scroll += rows;
        if !active {
            w.scroll = 0; // new lines show when it is looked at
            w.activity = w.activity.max(level);
        }
        w.entries.push_back(entry);
        if w.entries.len() > MAX_LINES {
            w.entries.pop_front();
            if active {
                let max = self.max_scroll();
                let w = self.window_mut();
                w.scroll = w.scroll.min(max);
            }
        }
    }

    /// Adds a line to the window being looked at.
    pub fn push(&mut self, at_ms: i64, line: Line) {
        self.push_to(self.active, at_ms, line);
    }

    /// The windows an event is shown in, worked out before it changes
    /// what we know (who was in which room before a quit).
    fn targets(&mut self, kind: &EventKind) -> Vec<usize> {
        let active = self.active;
        let my_nick = self.session.nick.clone();
        let me = |nick: &str| my_nick.as_deref().is_some_and(|m| same_nick(m, nick));
        match kind {
            EventKind::Status(Status::Lost { .. })
            | EventKind::Shutdown { .. }
            | EventKind::LoginFailed { .. }
            | EventKind::NeedNick { .. } => vec![0, active],
            EventKind::Status(_) | EventKind::Registered { .. } => vec![0],
            EventKind::Message { room, .. }
            | EventKind::Topic { room, .. }
            | EventKind::Mode { room, .. }
            | EventKind::History { room, .. } => {
                vec![self.open(WindowKind::Room(room.clone()))]
            }
            EventKind::Joined { room, nick, .. } => {
                let new = self.room_window(room).is_none();
                let i = self.open(WindowKind::Room(room.clone()));
                if me(nick) {
                    // Asked for, or the first room: to the front. A rejoin
                    // after a reconnect leaves the view alone.
                    let asked = self.wanted.as_deref().is_some_and(|w| same_room(w, room));
                    if asked || (new && self.active == 0) {
                        self.wanted = None;
                        self.focus(i);
                    }
                }
                vec![i]
            }
            EventKind::Left { room, .. } | EventKind::Kicked { room, .. } => {
                self.room_window(room).map_or(vec![active], |i| vec![i])
            }
            EventKind::Presence { room, .. } => {
                self.room_window(room).map_or(vec![active], |i| vec![i])
            }
            EventKind::Private { from, to, .. } => {
                let other = if me(from) { to } else { from };
                vec![self.open(WindowKind::Private(other.clone()))]
            }
            EventKind::Notice {
                from,
                room: Some(room),
                ..
            } if !me(from) || self.room_window(room).is_some() => {
                vec![self.open(WindowKind::Room(room.clone()))]
            }
            EventKind::Notice { from, to, .. } => {
                let other = if me(from) {
                    to.as_deref()
                } else {
                    Some(from.as_str())
                };
                other
                    .and_then(|n| self.private_window(n))
                    .map_or(vec![active], |i| vec![i])
            }
            EventKind::Away { nick, .. } => {
                self.private_window(nick).map_or(vec![active], |i| vec![i])
            }
            EventKind::Quit { nick, .. } | EventKind::Nick { old: nick, .. } => {
                let mut out: Vec<usize> = if me(nick) {
                    (0..self.windows.len()).collect()
                } else {
                    self.session
                        .rooms_of(nick)
                        .iter()
                        .filter_map(|r| self.room_window(r))
                        .collect()
                };
                out.extend(self.private_window(nick));
                if out.is_empty() && matches!(kind, EventKind::Nick { .. }) {
                    out.push(0);
                }
                out
            }
            EventKind::Focus { room } => {
                let i = self.open(WindowKind::Room(room.clone()));
                self.focus(i);
                vec![]
            }
            EventKind::Invited { .. }
            | EventKind::AwayStatus { .. }
            | EventKind::Rooms(_)
            | EventKind::Info(_)
            | EventKind::Error { .. } => vec![active],
        }
    }

    /// Something from the connection.
    pub fn on_event(&mut self, ev: &Event) {
        if let EventKind::Message { from, .. }
        | EventKind::Private { from, .. }
        | EventKind::Notice { from, .. } = &ev.kind
        {
            if self.session.is_ignored(from) && !self.session.is_me(from) {
                return; // not even a window of its own
            }
        }
        let mut targets = self.targets(&ev.kind);
        targets.sort_unstable();
        targets.dedup();
        self.session.apply(&ev.kind);
        match &ev.kind {
            EventKind::Status(Status::Connecting { addr }) => {
                self.status = format!("connecting to {addr}");
            }
            EventKind::Status(Status::Connected { addr, protocol }) => {
                self.status = format!("{addr} ({protocol})");
            }
            EventKind::Status(Status::Lost { retry_in, .. }) => {
                self.status = match retry_in {
                    Some(d) => format!("disconnected; retrying in {}", format::secs(*d)),
                    None => "disconnected".into(),
                };
            }
            EventKind::NeedNick { .. } => self.awaiting_nick = true,
            EventKind::Registered { .. } => self.awaiting_nick = false,
            // A private conversation follows the other side's new nick.
            EventKind::Nick { old, new } => {
                if let Some(i) = self.private_window(old) {
                    self.windows[i].kind = WindowKind::Private(new.clone());
                }
            }
            _ => {}
        }
        // What we said ourselves is no news in any window.
        let ours = match &ev.kind {
            EventKind::Message { from, .. }
            | EventKind::Private { from, .. }
            | EventKind::Notice { from, .. } => self.session.is_me(from),
            _ => false,
        };
        for i in targets {
            let Some(w) = self.windows.get(i) else {
                continue;
            };
            let before = w.activity;
            let lines = format::lines(&ev.kind, &self.session, w.here());
            for line in lines {
                self.push_to(i, ev.at_ms, line);
            }
            if ours {
                self.windows[i].activity = before;
            }
        }
        // Leaving a room closes its window (a kick leaves it open, to read).
        if let EventKind::Left { room, nick, .. } = &ev.kind {
            if self.session.is_me(nick) {
                if let Some(i) = self.room_window(room) {
                    self.close(i);
                }
            }
        }
    }

    /// Pasted text goes into the input line (line breaks become spaces).
    pub fn on_paste(&mut self, text: &str) {
        self.completion = None;
        self.editor.insert(text);
    }

    /// A key press. Returns what the shell should do, if anything.
    pub fn on_key(&mut self, key: KeyEvent) -> Option<Action> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        if !matches!(key.code, KeyCode::Tab | KeyCode::BackTab) {
            self.completion = None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let n = self.windows.len();
        match key.code {
            KeyCode::Char('c') if ctrl => return self.quit(),
            KeyCode::Char('d') if ctrl && self.editor.is_empty() => return self.quit(),
            KeyCode::Char('a') if ctrl => self.editor.home(),
            KeyCode::Char('e') if ctrl => self.editor.end(),
            KeyCode::Char('u') if ctrl => self.editor.kill_to_start(),
            KeyCode::Char('k') if ctrl => self.editor.kill_to_end(),
            KeyCode::Char('w') if ctrl => self.editor.delete_word(),
            KeyCode::Char('l') if ctrl => return Some(Action::Redraw),
            KeyCode::Char('n') if ctrl => self.focus((self.active + 1) % n),
            KeyCode::Char('p') if ctrl => self.focus((self.active + n - 1) % n),
            KeyCode::Right if alt => self.focus((self.active + 1) % n),
            KeyCode::Left if alt => self.focus((self.active + n - 1) % n),
            KeyCode::Char(d @ '0'..='9') if alt => {
                let i = d.to_digit(10).map_or(0, |d| (d as usize + 9) % 10);
                self.focus(i);
            }
            KeyCode::Char(_) if ctrl || alt => {}
            KeyCode::Char(c) => self.editor.insert(c.encode_utf8(&mut [0; 4])),
            KeyCode::Enter => return self.submit(),
            KeyCode::Backspace => self.editor.backspace(),
            KeyCode::Delete => self.editor.delete(),
            KeyCode::Left => self.editor.left(),
            KeyCode::Right => self.editor.right(),
            KeyCode::Home => self.editor.home(),
            KeyCode::End => self.editor.end(),
            KeyCode::Up => {
                if let Some(line) = self.history.up(self.editor.text()) {
                    let line = line.to_string();
                    self.editor.set(&line);
                }
            }
            KeyCode::Down => {
                if let Some(line) = self.history.down() {
                    self.editor.set(&line);
                }
            }
            KeyCode::Tab | KeyCode::BackTab => self.complete(key.code == KeyCode::BackTab),
            KeyCode::PageUp => self.page(true),
            KeyCode::PageDown => self.page(false),
            KeyCode::Esc => self.window_mut().scroll = 0,
            _ => {}
        }
        None
    }

    fn quit(&mut self) -> Option<Action> {
        if std::mem::replace(&mut self.quitting, true) {
            return Some(Action::Exit);
        }
        Some(Action::Send(Request::Quit(None)))
    }

    fn complete(&mut self, backwards: bool) {
        let nicks: Vec<String> = match &self.window().kind {
            WindowKind::Room(r) => self.session.nicks(r),
            WindowKind::Private(n) => vec![n.clone()],
            WindowKind::Status => Vec::new(),
        }
        .into_iter()
        .filter(|n| !self.session.is_me(n))
        .collect();
        let commands: Vec<&str> = COMMANDS.iter().map(|(c, _)| *c).collect();
        complete::complete(
            &mut self.editor,
            &mut self.completion,
            &nicks,
            &commands,
            backwards,
        );
    }

    /// PageUp / PageDown: one screen less a row, so a row stays in view.
    fn page(&mut self, up: bool) {
        let (_, rows) = self.chat_size();
        let step = rows.saturating_sub(1).max(1);
        let max = if up {
            self.total_rows().saturating_sub(rows)
        } else {
            0
        };
        let w = self.window_mut();
        w.scroll = if up {
            (w.scroll + step).min(max)
        } else {
            w.scroll.saturating_sub(step)
        };
    }

    /// A local error line in the window being looked at.
    fn local_error(&mut self, message: String) {
        let err = EventKind::Error {
            code: "client".into(),
            message,
        };
        for l in format::lines(&err, &self.session, Here::Anywhere) {
            self.push(super::event::now_ms(), l);
        }
    }

    fn submit(&mut self) -> Option<Action> {
        let line = self.editor.take();
        self.window_mut().scroll = 0;
        if self.awaiting_nick {
            let nick = line.trim();
            if nick.is_empty() {
                return None;
            }
            self.awaiting_nick = false;
            return Some(Action::Send(Request::Login(nick.to_string())));
        }
        self.history.push(&line);
        match command::parse(&line) {
            Input::Send(req) => self.send(req),
            Input::Help => {
                for l in format::help() {
                    self.push(super::event::now_ms(), l);
                }
                None
            }
            Input::Clear => {
                self.window_mut().entries.clear();
                None
            }
            Input::Query(nick) => {
                let i = self.open(WindowKind::Private(nick));
                self.focus(i);
                None
            }
            Input::Close => match self.window().kind.clone() {
                WindowKind::Status => {
                    self.local_error("window 1 stays open".into());
                    None
                }
                WindowKind::Private(_) => {
                    self.close(self.active);
                    None
                }
                WindowKind::Room(r) if self.session.is_in(&r) => {
                    Some(Action::Send(Request::Part {
                        room: Some(r),
                        reason: None,
                    }))
                }
                WindowKind::Room(_) => {
                    self.close(self.active);
                    None
                }
            },
            Input::Window(n) => {
                if n <= self.windows.len() {
                    self.focus(n - 1);
                } else {
                    self.local_error(format!("there is no window {n}"));
                }
                None
            }
            input @ (Input::Ignore(_) | Input::Unignore(_)) => {
                if let Some(said) = command::ignore(&mut self.session, &input) {
                    for l in format::lines(&EventKind::Info(said), &self.session, Here::Anywhere) {
                        self.push(super::event::now_ms(), l);
                    }
                }
                None
            }
            Input::Nothing => None,
            Input::Error(e) => {
                self.local_error(e);
                None
            }
        }
    }

    /// A request typed in the window being looked at: text goes to its
    /// room or conversation, room commands are about its room.
    fn send(&mut self, req: Request) -> Option<Action> {
        let req = match (&self.window().kind, req) {
            (
                WindowKind::Private(to),
                Request::Say {
                    room: None,
                    text,
                    action,
                },
            ) => Request::Private {
                to: to.clone(),
                text,
                action,
            },
            (WindowKind::Status, Request::Say { room: None, .. }) => {
                let hint = match self.windows.len() {
                    1 => "this is the status window: /join a room to talk".to_string(),
                    _ => "this is the status window: Alt-2 (or Ctrl-N) goes to a room".to_string(),
                };
                self.local_error(hint);
                return None;
            }
            (WindowKind::Room(r), Request::Say { room: None, .. }) if !self.session.is_in(r) => {
                let r = show_room(r);
                self.local_error(format!("you are not in {r}: /join {r} to go back"));
                return None;
            }
            (WindowKind::Room(r), req) => req.in_room(Some(r)),
            (_, req) => req,
        };
        match &req {
            Request::Quit(_) => self.quitting = true,
            Request::Join(room) => self.wanted = Some(room.clone()),
            _ => {}
        }
        Some(Action::Send(req))
    }
}

#[cfg(test)]
mod tests;
