//! The terminal shell around the pure [`UiState`]: raw mode and the
//! alternate screen (restored on exit and on panic), a thread that reads
//! terminal events, and the loop that feeds keys and connection events to
//! the state and redraws.

use std::io::stdout;

use crossterm::event::{DisableBracketedPaste, EnableBracketedPaste, Event as TermEvent};
use tokio::sync::mpsc;

use super::command::Request;
use super::event::{Event, EventKind, Status};
use super::ui::{view, Action, UiState};

/// Runs the full-screen UI until the connection task ends (or a forced
/// exit). `color`: false with `NO_COLOR`.
pub async fn run(
    events: mpsc::Receiver<Event>,
    requests: mpsc::Sender<Request>,
    color: bool,
) -> anyhow::Result<()> {
    let mut terminal = ratatui::try_init()?;
    let _ = crossterm::execute!(stdout(), EnableBracketedPaste);
    let result = run_loop(&mut terminal, events, requests, color).await;
    let _ = crossterm::execute!(stdout(), DisableBracketedPaste);
    ratatui::restore();
    result
}

async fn run_loop(
    terminal: &mut ratatui::DefaultTerminal,
    mut events: mpsc::Receiver<Event>,
    requests: mpsc::Sender<Request>,
    color: bool,
) -> anyhow::Result<()> {
    let mut keys = spawn_terminal_reader();
    let mut ui = UiState::new(color);
    let size = terminal.size()?;
    ui.resize(size.width, size.height);
    let mut gave_up = None;
    loop {
        terminal.draw(|f| view::draw(f, &ui))?;
        tokio::select! {
            ev = events.recv() => {
                let Some(mut ev) = ev else { return finish(gave_up) };
                // Take everything that is ready, then draw once.
                loop {
                    if let EventKind::Status(Status::Lost { reason, retry_in: None, .. }) = &ev.kind {
                        gave_up = Some(reason.clone());
                    }
                    ui.on_event(&ev);
                    match events.try_recv() {
                        Ok(next) => ev = next,
                        Err(_) => break,
                    }
                }
            }
            term = keys.recv() => {
                // Take every key that is ready (typing, a paste), then draw once.
                let mut term = term;
                loop {
                    match term {
                        None => return finish(gave_up),
                        Some(TermEvent::Key(key)) => {
                            let stop = match ui.on_key(key) {
                                Some(Action::Send(req)) => requests.send(req).await.is_err(),
                                Some(Action::Exit) => true,
                                Some(Action::Redraw) => terminal.clear().is_err(),
                                None => false,
                            };
                            if stop {
                                return finish(gave_up);
                            }
                        }
                        Some(TermEvent::Paste(text)) => ui.on_paste(&text),
                        Some(TermEvent::Resize(w, h)) => ui.resize(w, h),
                        Some(_) => {}
                    }
                    match keys.try_recv() {
                        Ok(next) => term = Some(next),
                        Err(_) => break,
                    }
                }
            }
        }
    }
}

/// How the UI ended: an error if the connection was lost for good.
fn finish(gave_up: Option<String>) -> anyhow::Result<()> {
    match gave_up {
        Some(reason) => Err(anyhow::anyhow!("connection lost: {reason}")),
        None => Ok(()),
    }
}

/// Reads terminal events on a thread of its own (the read blocks).
fn spawn_terminal_reader() -> mpsc::Receiver<TermEvent> {
    let (tx, rx) = mpsc::channel(256);
    std::thread::spawn(move || {
        while let Ok(ev) = crossterm::event::read() {
            if tx.blocking_send(ev).is_err() {
                break;
            }
        }
    });
    rx
}
