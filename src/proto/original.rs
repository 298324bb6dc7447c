//! The original dialect: the JSON client of the Node.js chat rooms natter
//! grew out of (docs/PROTOCOL.md, "Original dialects"). It writes JSON
//! objects with no line break after them (`login`, `chat`, `keep`, each
//! with `msg` and `nick`) and prints whatever it receives as text, so it
//! is answered in plain text, never JSON: natter's text wording, without
//! colours and without the echo of its own messages. Its heartbeat is the
//! two bytes `::`, which it answers with `keep`; a `chat` saying `quit` or
//! `exit` leaves.
//!
//! A connection speaks it when its first JSON object is not followed by a
//! line break (`Framer::undelimited`); the connection loop then hands it
//! an [`OriginalSession`] instead of asking `session::detect`.

use std::sync::OnceLock;

use super::listing::Page;
use super::session::{
    answered, json_input, profile, timeout_error, Chat, Goodbye, Login, Protocol, Replay,
    SessionConfig,
};
use super::{json, text, Command, Event, EventBody, Flavor, Name, Outcome};

/// The original client's heartbeat, sent in a write of its own: it answers
/// a received chunk that is exactly this.
pub const PING: &[u8] = b"::";

/// A client of the original JSON dialect.
pub struct OriginalSession {
    registered: bool,
    replay: Replay,
    login: Login,
    /// The nickname it goes by (its own messages are not echoed to it).
    nick: Option<String>,
}

impl OriginalSession {
    pub fn new(config: &SessionConfig) -> OriginalSession {
        OriginalSession {
            registered: false,
            replay: config.replay(),
            login: Login::default(),
            nick: None,
        }
    }
}

/// True if a chat message is the original client's way of leaving.
pub fn is_leave(msg: &str) -> bool {
    let msg = msg.trim();
    msg.eq_ignore_ascii_case("quit") || msg.eq_ignore_ascii_case("exit")
}

/// One line of plain text, as the text protocol ends its lines.
fn say(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn people(n: usize) -> &'static str {
    if n == 1 {
        "person"
    } else {
        "people"
    }
}

impl Protocol for OriginalSession {
    fn name(&self) -> &'static str {
        "original"
    }

    /// No welcome of its own: the banner (written as text, or held back
    /// and then rendered here) is the welcome.
    fn start(&mut self, chat: &mut dyn Chat) {
        static USER: OnceLock<Name> = OnceLock::new();
        static REALNAME: OnceLock<Name> = OnceLock::new();
        let p = profile((&USER, "original"), (&REALNAME, "original JSON client"));
        chat.execute(Command::Identify(p));
    }

    fn line(&mut self, line: &str, chat: &mut dyn Chat) -> Outcome {
        let input = match json::parse(line) {
            json::Input::Command(Command::Say {
                room: None,
                text,
                action: false,
            }) if is_leave(&text) => return chat.execute(Command::Quit { reason: None }),
            input => input,
        };
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
        match &ev.body {
            EventBody::Welcome { server, online } => say(
                out,
                &format!(
                    "*** Welcome to {server}! {online} {} chatting.",
                    people(*online)
                ),
            ),
            EventBody::Registered { nick, online } => {
                self.nick = Some(nick.to_string());
                say(
                    out,
                    &format!(
                        "*** You are {nick}. {online} {} chatting. Say quit or exit to leave.",
                        people(*online)
                    ),
                );
            }
            EventBody::Message { from, .. } if self.nick.as_deref() == Some(&**from) => {}
            EventBody::Help => {
                say(out, "*** Commands (JSON objects, one after another):");
                for (_, usage) in json::wire::COMMANDS {
                    say(out, &format!("***   {usage}"));
                }
                say(out, "***   a chat saying quit or exit leaves");
            }
            EventBody::Ping { .. } => {}
            body => {
                if let EventBody::NickChanged { old, new } = body {
                    if self.nick.as_deref() == Some(&**old) {
                        self.nick = Some(new.to_string());
                    }
                }
                out.extend_from_slice(ev.rendered(Flavor::TextPlain));
            }
        }
    }

    fn render_page(&mut self, page: &Page, out: &mut Vec<u8>) {
        text::render_page(page, false, out);
    }

    fn heartbeat(&self) -> bool {
        true
    }

    fn raw_ping(&self) -> Option<&'static [u8]> {
        Some(PING)
    }

    fn flavor(&self) -> Flavor {
        Flavor::TextPlain
    }

    fn json_framing(&self) -> bool {
        true
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
mod tests {
    use super::*;
    use crate::proto::{MsgId, Refusal};
    use bytes::Bytes;

    #[derive(Default)]
    struct Recorder {
        commands: Vec<Command>,
        local: Vec<u8>,
    }

    impl Chat for Recorder {
        fn execute(&mut self, cmd: Command) -> Outcome {
            let quit = matches!(cmd, Command::Quit { .. });
            self.commands.push(cmd);
            if quit {
                Outcome::Close
            } else {
                Outcome::Continue
            }
        }
        fn local(&mut self, bytes: Bytes) {
            self.local.extend_from_slice(&bytes);
        }
        fn online(&mut self) -> usize {
            2
        }
        fn history(&mut self, _request: crate::proto::session::HistoryRequest) {}
        fn mark(&mut self, _mark: crate::proto::session::Mark) {}
        fn in_room(&mut self, _room: &str) -> bool {
            false
        }
    }

    fn config() -> SessionConfig {
        SessionConfig {
            history_on_join: 0,
            ..crate::proto::session::tests::config()
        }
    }

    fn rendered(s: &mut OriginalSession, body: EventBody) -> String {
        let mut out = Vec::new();
        s.render(&Event::new(body), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn logs_in_chats_keeps_and_leaves_with_quit() {
        let mut s = OriginalSession::new(&config());
        let mut chat = Recorder::default();
        s.start(&mut chat);
        let login = r#"{"cmd":"login","msg":"hello server","nick":"alice"}"#;
        assert_eq!(s.line(login, &mut chat), Outcome::Continue);
        assert!(s.registered());
        assert!(matches!(&chat.commands[1], Command::Register { nick } if nick == "alice"));
        s.line(r#"{"cmd":"chat","msg":"hi all","nick":"alice"}"#, &mut chat);
        assert!(matches!(&chat.commands[2], Command::Say { text, .. } if text == "hi all"));
        s.line(r#"{"cmd":"keep","msg":"","nick":"alice"}"#, &mut chat);
        assert_eq!(chat.commands.len(), 3, "keep is no command");
        assert!(chat.local.is_empty());
        s.line(r#"{"cmd":"chat","msg":"oops"#, &mut chat);
        let out = String::from_utf8(std::mem::take(&mut chat.local)).unwrap();
        assert!(out.starts_with("! malformed JSON"), "{out}");
        assert!(!out.contains('{'), "text, not JSON: {out}");
        let quit = r#"{"cmd":"chat","msg":" Exit ","nick":"alice"}"#;
        assert_eq!(s.line(quit, &mut chat), Outcome::Close);
        assert!(matches!(chat.commands[3], Command::Quit { reason: None }));
    }

    #[test]
    fn renders_plain_text_and_no_echo_of_its_own_messages() {
        let mut s = OriginalSession::new(&config());
        let welcome = EventBody::Welcome {
            server: "natter".into(),
            online: 3,
        };
        assert_eq!(
            rendered(&mut s, welcome),
            "*** Welcome to natter! 3 people chatting.\r\n"
        );
        let reg = EventBody::Registered {
            nick: "alice".into(),
            online: 1,
        };
        assert!(rendered(&mut s, reg).contains("You are alice. 1 person chatting."));
        let msg = |from: &str| EventBody::Message {
            id: MsgId(1),
            seq: 1,
            room: "lobby".into(),
            from: from.into(),
            text: "hello".into(),
            action: false,
        };
        assert_eq!(rendered(&mut s, msg("bob")), "bob: hello\r\n");
        assert_eq!(rendered(&mut s, msg("alice")), "");
        let renamed = EventBody::NickChanged {
            old: "alice".into(),
            new: "alicia".into(),
        };
        assert!(rendered(&mut s, renamed).contains("alice is now known as alicia"));
        assert_eq!(rendered(&mut s, msg("alicia")), "");
        let refused = EventBody::Refused(Refusal::new(crate::proto::ErrorCode::NickInUse));
        let out = rendered(&mut s, refused);
        assert!(out.starts_with("! ") && !out.contains('\x1b'), "{out:?}");
        assert_eq!(rendered(&mut s, EventBody::Ping { token: 1 }), "");
    }
}
