//! Plain line mode, for pipes and scripts (used when stdin or stdout is not
//! a terminal): each stdin line is sent (text says it in the current room,
//! `/commands` map to requests, `quit`/`exit` leave), each event is printed
//! as one readable line on stdout (`[12:01] <alice> hi`, `* bob joined
//! #lobby`, `! error: …`). End of stdin quits cleanly, after everything
//! typed has been sent.
//!
//! Safe for scripts: a stdin line is only ever taken as a nickname when a
//! person types it (stdin is a terminal and the server asked for one).
//! Otherwise a refused nickname ends the program with status 1 and the
//! reason, before any line is sent under another name.

use std::io::{BufRead, Write};

use tokio::sync::mpsc;

use super::command::{self, Input, Request};
use super::event::{Event, EventKind, Status};
use super::format::{self, Here, Line};
use super::session::Session;

/// How plain mode behaves.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// ANSI colours in the output.
    pub color: bool,
    /// A person is at stdin: a nickname may be asked for and read from it.
    pub ask_nick: bool,
}

/// Runs until the connection task ends.
pub async fn run(
    mut events: mpsc::Receiver<Event>,
    requests: mpsc::Sender<Request>,
    opts: Options,
) -> anyhow::Result<()> {
    let mut stdin = spawn_stdin_reader();
    let mut stdin_open = true;
    let mut session = Session::default();
    let mut awaiting_nick = false;
    let mut failed: Option<String> = None;
    let stdout = std::io::stdout();
    let print = |lines: &[Line], at_ms: i64| -> std::io::Result<()> {
        let mut out = stdout.lock();
        for l in lines {
            if l.chat {
                write!(out, "[{}] ", format::clock(l.at_ms.unwrap_or(at_ms)))?;
            }
            writeln!(out, "{}", l.ansi(opts.color))?;
        }
        out.flush()
    };
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                session.apply(&ev.kind);
                match &ev.kind {
                    EventKind::LoginFailed { reason } if !opts.ask_nick => {
                        // Nobody to ask: nothing is said without the account.
                        let _ = print(&format::lines(&ev.kind, &session, Here::Anywhere), ev.at_ms);
                        failed = Some(format!("login failed: {}", reason.trim()));
                        let _ = requests.send(Request::Quit(None)).await;
                        stdin_open = false;
                        continue;
                    }
                    // Already leaving (the login failed): not asked again.
                    EventKind::NeedNick { .. } if failed.is_some() => continue,
                    EventKind::NeedNick { refused } if !opts.ask_nick => {
                        // Nobody to ask: say why, and stop before anything
                        // is said under a name the script did not give.
                        let why = refused.as_deref().map_or("no nickname given", format::refusal);
                        let line = EventKind::Error {
                            code: "client".into(),
                            message: format!("{why}; exiting (--nick-fallback takes NICK_ instead)"),
                        };
                        let _ = print(&format::lines(&line, &session, Here::Anywhere), ev.at_ms);
                        failed = Some(format!("nickname refused: {why}"));
                        let _ = requests.send(Request::Quit(None)).await;
                        stdin_open = false;
                        continue;
                    }
                    EventKind::NeedNick { .. } => {
                        awaiting_nick = true;
                        if !stdin_open {
                            // Nobody left to answer: give up cleanly.
                            let _ = requests.send(Request::Quit(None)).await;
                        }
                    }
                    EventKind::Registered { .. } => awaiting_nick = false,
                    EventKind::Status(Status::Lost { reason, retry_in: None, .. }) => {
                        failed.get_or_insert_with(|| format!("connection lost: {reason}"));
                    }
                    _ => {}
                }
                let lines = format::lines(&ev.kind, &session, Here::current(&session));
                if print(&lines, ev.at_ms).is_err() {
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
                    let local = |message: &str| EventKind::Error {
                        code: "client".into(),
                        message: message.to_string(),
                    };
                    match command::parse(&line) {
                        Input::Send(req) => req.in_room(session.current_room()),
                        Input::Help => {
                            let _ = print(&format::help(), 0);
                            continue;
                        }
                        Input::Error(e) => {
                            let _ = print(&format::lines(&local(&e), &session, Here::Anywhere), 0);
                            continue;
                        }
                        input @ (Input::Ignore(_) | Input::Unignore(_)) => {
                            if let Some(said) = command::ignore(&mut session, &input) {
                                let _ = print(&format::lines(&EventKind::Info(said), &session, Here::Anywhere), 0);
                            }
                            continue;
                        }
                        Input::Query(_) | Input::Close | Input::Window(_) => {
                            let e = local("windows are for the full-screen client; use /msg NICK TEXT");
                            let _ = print(&format::lines(&e, &session, Here::Anywhere), 0);
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
    match failed {
        Some(reason) => Err(anyhow::anyhow!(reason)),
        None => Ok(()),
    }
}

/// Reads stdin lines on a thread of its own (stdin reads block); the
/// channel closes at end of input. It holds few lines: a fast script waits
/// here (nothing is dropped) while the connection catches up.
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
