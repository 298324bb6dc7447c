//! Plain line mode, for pipes and scripts (used when stdin or stdout is not
//! a terminal): each stdin line is sent (text says it, `/commands` map to
//! requests, `quit`/`exit` leave), each event is printed as one readable
//! line on stdout (`[12:01] <alice> hi`, `* bob joined #lobby`,
//! `! error: …`). When asked for a nickname it prints a `?` prompt line and
//! takes the next stdin line as the nick. End of stdin quits cleanly.

use std::io::{BufRead, Write};

use tokio::sync::mpsc;

use super::command::{self, Input, Request};
use super::event::{Event, EventKind, Status};
use super::format::{self, Line};
use super::session::Session;

/// Runs until the connection task ends. `color`: ANSI colours in output.
pub async fn run(
    mut events: mpsc::Receiver<Event>,
    requests: mpsc::Sender<Request>,
    color: bool,
) -> anyhow::Result<()> {
    let mut stdin = spawn_stdin_reader();
    let mut stdin_open = true;
    let mut session = Session::default();
    let mut awaiting_nick = false;
    let mut gave_up: Option<String> = None;
    let stdout = std::io::stdout();
    let print = |lines: &[Line], at_ms: i64| -> std::io::Result<()> {
        let mut out = stdout.lock();
        for l in lines {
            if l.chat {
                write!(out, "[{}] ", format::clock(at_ms))?;
            }
            writeln!(out, "{}", l.ansi(color))?;
        }
        out.flush()
    };
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                session.apply(&ev.kind);
                match &ev.kind {
                    EventKind::NeedNick { .. } => {
                        awaiting_nick = true;
                        if !stdin_open {
                            // Nobody left to answer: give up cleanly.
                            let _ = requests.send(Request::Quit(None)).await;
                        }
                    }
                    EventKind::Registered { .. } => awaiting_nick = false,
                    EventKind::Status(Status::Lost { reason, retry_in: None, .. }) => {
                        gave_up = Some(reason.clone());
                    }
                    _ => {}
                }
                if print(&format::lines(&ev.kind, &session), ev.at_ms).is_err() {
                    break; // stdout is gone: nobody is listening
                }
            }
            line = stdin.recv(), if stdin_open => {
                let Some(line) = line else {
                    stdin_open = false;
                    let _ = requests.send(Request::Quit(None)).await;
                    continue;
                };
                let req = if awaiting_nick {
                    let nick = line.trim();
                    if nick.is_empty() {
                        continue;
                    }
                    awaiting_nick = false;
                    Request::Login(nick.to_string())
                } else {
                    match command::parse(&line) {
                        Input::Send(req) => req,
                        Input::Help => {
                            let _ = print(&format::help(), 0);
                            continue;
                        }
                        Input::Error(e) => {
                            let err = EventKind::Error { code: "client".into(), message: e };
                            let _ = print(&format::lines(&err, &session), 0);
                            continue;
                        }
                        Input::Clear | Input::Nothing => continue,
                    }
                };
                if requests.send(req).await.is_err() {
                    break;
                }
            }
        }
    }
    match gave_up {
        Some(reason) => Err(anyhow::anyhow!("connection lost: {reason}")),
        None => Ok(()),
    }
}

/// Before connecting without `--nick`: prints the nickname prompt and
/// reads the first non-empty stdin line. `None` at end of input.
pub fn ask_nick() -> std::io::Result<Option<String>> {
    let mut out = std::io::stdout().lock();
    let stdin = std::io::stdin();
    loop {
        writeln!(out, "? What is your nickname?")?;
        out.flush()?;
        let mut buf = Vec::new();
        if stdin.lock().read_until(b'\n', &mut buf)? == 0 {
            return Ok(None);
        }
        let line = String::from_utf8_lossy(&buf);
        let nick = line.trim();
        if !nick.is_empty() {
            return Ok(Some(nick.to_string()));
        }
    }
}

/// Reads stdin lines on a thread of its own (stdin reads block); the
/// channel closes at end of input.
fn spawn_stdin_reader() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match lock.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\r', '\n']).to_string();
                    if tx.blocking_send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}
