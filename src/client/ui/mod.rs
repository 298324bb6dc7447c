//! The full-screen chat UI as a pure state machine, after osa1/tiny: all
//! UI state lives in [`UiState`] (scrollback, input line, history,
//! completion, scrolling, who is online), changed only by
//! [`on_event`](UiState::on_event) (from the connection) and
//! [`on_key`](UiState::on_key) / [`on_paste`](UiState::on_paste) (from
//! the user), and drawn by [`view::draw`] onto any ratatui backend. No
//! terminal I/O here, so it is tested headless with `TestBackend`; the
//! terminal shell around it is `client/tui.rs`.

pub mod complete;
pub mod editor;
pub mod view;
pub mod wrap;

use std::collections::VecDeque;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::command::{self, Input, Request, COMMANDS};
use super::event::{Event, EventKind, Status};
use super::format::{self, Line};
use super::session::Session;
use complete::Completion;
use editor::{Editor, History};

/// Scrollback kept (older lines are dropped).
pub const MAX_LINES: usize = 5000;
/// Input lines remembered for Up/Down.
const MAX_HISTORY: usize = 500;
/// Width of the `HH:MM ` column (continuation rows are indented by it).
pub const TIME_COLS: usize = 6;

/// One scrollback line: when, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub time: String,
    pub line: Line,
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
    entries: VecDeque<Entry>,
    pub editor: Editor,
    history: History,
    completion: Option<Completion>,
    /// Rows scrolled up from the bottom (0: following new lines).
    scroll: usize,
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
}

impl UiState {
    pub fn new(color: bool) -> UiState {
        UiState {
            session: Session::default(),
            entries: VecDeque::new(),
            editor: Editor::default(),
            history: History::new(MAX_HISTORY),
            completion: None,
            scroll: 0,
            width: 80,
            height: 24,
            color,
            status: String::new(),
            awaiting_nick: false,
            quitting: false,
        }
    }

    /// The scrollback, oldest first.
    pub fn entries(&self) -> impl DoubleEndedIterator<Item = &Entry> + ExactSizeIterator {
        self.entries.iter()
    }

    /// Rows scrolled up from the bottom.
    pub fn scroll(&self) -> usize {
        self.scroll
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
        self.scroll = self.scroll.min(self.max_scroll());
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
        self.entries.iter().map(|e| Self::rows_of(e, cols)).sum()
    }

    fn max_scroll(&self) -> usize {
        let (_, rows) = self.chat_size();
        if self.scroll == 0 {
            return 0; // cheap common case: no need to wrap everything
        }
        self.total_rows().saturating_sub(rows)
    }

    /// Adds a line to the scrollback (keeping the view still if scrolled up).
    pub fn push(&mut self, at_ms: i64, line: Line) {
        let entry = Entry {
            time: format::clock(at_ms),
            line,
        };
        if self.scroll > 0 {
            let (cols, _) = self.chat_size();
            self.scroll += Self::rows_of(&entry, cols);
        }
        self.entries.push_back(entry);
        if self.entries.len() > MAX_LINES {
            self.entries.pop_front();
            self.scroll = self.scroll.min(self.max_scroll());
        }
    }

    /// Something from the connection.
    pub fn on_event(&mut self, ev: &Event) {
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
            _ => {}
        }
        for line in format::lines(&ev.kind, &self.session) {
            self.push(ev.at_ms, line);
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
        match key.code {
            KeyCode::Char('c') if ctrl => return self.quit(),
            KeyCode::Char('d') if ctrl && self.editor.is_empty() => return self.quit(),
            KeyCode::Char('a') if ctrl => self.editor.home(),
            KeyCode::Char('e') if ctrl => self.editor.end(),
            KeyCode::Char('u') if ctrl => self.editor.kill_to_start(),
            KeyCode::Char('k') if ctrl => self.editor.kill_to_end(),
            KeyCode::Char('w') if ctrl => self.editor.delete_word(),
            KeyCode::Char('l') if ctrl => return Some(Action::Redraw),
            KeyCode::Char(_) if ctrl || key.modifiers.contains(KeyModifiers::ALT) => {}
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
            KeyCode::Esc => self.scroll = 0,
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
        let nicks: Vec<String> = self
            .session
            .current_members()
            .iter()
            .filter(|n| !self.session.is_me(n))
            .cloned()
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
        if up {
            let max = self.total_rows().saturating_sub(rows);
            self.scroll = (self.scroll + step).min(max);
        } else {
            self.scroll = self.scroll.saturating_sub(step);
        }
    }

    fn submit(&mut self) -> Option<Action> {
        let line = self.editor.take();
        self.scroll = 0;
        if self.awaiting_nick {
            let nick = line.trim();
            if nick.is_empty() {
                return None;
            }
            self.awaiting_nick = false;
            return Some(Action::Send(Request::Login(nick.to_string())));
        }
        self.history.push(&line);
        let now = super::event::now_ms();
        match command::parse(&line) {
            Input::Send(req) => {
                if matches!(req, Request::Quit(_)) {
                    self.quitting = true;
                }
                Some(Action::Send(req))
            }
            Input::Help => {
                for l in format::help() {
                    self.push(now, l);
                }
                None
            }
            Input::Clear => {
                self.entries.clear();
                None
            }
            Input::Nothing => None,
            Input::Error(e) => {
                self.push(
                    now,
                    format::lines(
                        &EventKind::Error {
                            code: "client".into(),
                            message: e,
                        },
                        &self.session,
                    )
                    .into_iter()
                    .next()
                    .unwrap_or_default(),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
