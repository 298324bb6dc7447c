//! IRCv3 SASL (`sasl` capability, `AUTHENTICATE`): the mechanisms `PLAIN`
//! and `SCRAM-SHA-256`, payloads in base64 split into 400-byte chunks
//! both ways, and the numerics 900–908. This is the session's half: it
//! collects and decodes what the client sends, asks the accounts through
//! the session ([`AccountRequest`]) and turns the answers (events) into
//! replies. Passwords are checked by the server off the chat; SCRAM proofs
//! are checked here (HMACs, cheap) against the credentials the server
//! looked up.

use std::sync::Arc;

use base64ct::{Base64, Encoding};

use super::numerics::*;
use super::Reply;
use crate::proto::account::answers_login;
use crate::proto::scram::{self, ClientFirst, Credentials};
use crate::proto::{AccountEvent, AccountRequest, EventBody, Name, Password};

/// The mechanisms offered (`CAP LS 302` value, `908`).
pub const MECHANISMS: &str = "PLAIN,SCRAM-SHA-256";
/// The longest `AUTHENTICATE` parameter; a parameter this long means more follows.
pub const CHUNK: usize = 400;
/// The most base64 one SASL message may add up to (longer: `905`).
pub const MAX_MESSAGE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mechanism {
    Plain,
    Scram,
}

/// Where an exchange stands.
#[derive(Debug, Default)]
enum Stage {
    #[default]
    Idle,
    /// The mechanism was chosen: the client's first message is coming.
    First(Mechanism),
    /// A password is being checked (PLAIN, or a SCRAM proof's outcome).
    Checking,
    /// SCRAM: the account's credentials are being looked up.
    Lookup(ClientFirst),
    /// SCRAM: the server's first message was sent; the proof is coming.
    Proof {
        first: ClientFirst,
        server_first: String,
        account: Name,
        credentials: Arc<Credentials>,
    },
    /// SCRAM: the server's signature was sent; the client's `+` is coming.
    Ack { account: Name },
}

/// One connection's SASL state.
#[derive(Debug, Default)]
pub struct Sasl {
    stage: Stage,
    /// Base64 collected from chunks so far.
    buf: String,
    /// Logged in through SASL (a second time gets `907`).
    pub done: bool,
}

/// What `AUTHENTICATE` leads to: replies, and maybe a question for the
/// accounts.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step {
    pub replies: Vec<Reply>,
    pub ask: Option<AccountRequest>,
}

impl Step {
    fn reply(replies: Vec<Reply>) -> Step {
        Step { replies, ask: None }
    }

    fn ask(request: AccountRequest) -> Step {
        Step {
            replies: Vec::new(),
            ask: Some(request),
        }
    }
}

fn numeric(code: u16, text: &str) -> Reply {
    Reply::numeric(code, &[text])
}

fn fail() -> Reply {
    numeric(ERR_SASLFAIL, "SASL authentication failed")
}

/// `AUTHENTICATE` lines carrying `data` (base64-encoded here), in
/// 400-byte chunks; an exact multiple ends with `+`.
pub fn chunks(data: &[u8]) -> Vec<Reply> {
    let encoded = Base64::encode_string(data);
    let mut out: Vec<Reply> = encoded
        .as_bytes()
        .chunks(CHUNK)
        .map(|c| Reply::Authenticate(String::from_utf8_lossy(c).into_owned()))
        .collect();
    if encoded.is_empty() || encoded.len() % CHUNK == 0 {
        out.push(Reply::Authenticate("+".into()));
    }
    out
}

impl Sasl {
    /// Whether an exchange is under way.
    pub fn busy(&self) -> bool {
        !matches!(self.stage, Stage::Idle)
    }

    fn reset(&mut self) {
        self.stage = Stage::Idle;
        self.buf = String::new();
    }

    /// Fails the exchange with `reply`.
    fn abort(&mut self, reply: Reply) -> Step {
        self.reset();
        Step::reply(vec![reply])
    }

    /// One `AUTHENTICATE <param>` from the client.
    pub fn authenticate(&mut self, param: &str) -> Step {
        if param == "*" {
            return self.abort(numeric(ERR_SASLABORTED, "SASL authentication aborted"));
        }
        if let Stage::Idle = self.stage {
            if self.done {
                let text = "You have already authenticated using SASL";
                return self.abort(numeric(ERR_SASLALREADY, text));
            }
            let mechanism = match param.to_ascii_uppercase().as_str() {
                "PLAIN" => Mechanism::Plain,
                "SCRAM-SHA-256" => Mechanism::Scram,
                _ => {
                    let mechs = Reply::numeric(
                        RPL_SASLMECHS,
                        &[MECHANISMS, "are available SASL mechanisms"],
                    );
                    return Step::reply(vec![mechs, fail()]);
                }
            };
            self.stage = Stage::First(mechanism);
            return Step::reply(vec![Reply::Authenticate("+".into())]);
        }
        if param.len() > CHUNK {
            return self.abort(numeric(ERR_SASLTOOLONG, "SASL message too long"));
        }
        if self.buf.len() + param.len() > MAX_MESSAGE {
            return self.abort(fail()); // no mechanism here has such messages
        }
        if param != "+" {
            self.buf.push_str(param);
        }
        if param.len() == CHUNK {
            return Step::default(); // more follows
        }
        let Ok(message) = Base64::decode_vec(&std::mem::take(&mut self.buf)) else {
            return self.abort(fail());
        };
        self.message(&message)
    }

    /// A whole client message.
    fn message(&mut self, message: &[u8]) -> Step {
        match std::mem::take(&mut self.stage) {
            Stage::First(Mechanism::Plain) => {
                let mut parts = message.split(|b| *b == 0);
                let (Some(authzid), Some(authcid), Some(password), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return self.abort(fail());
                };
                let (Ok(authzid), Ok(authcid), Ok(password)) = (
                    std::str::from_utf8(authzid),
                    std::str::from_utf8(authcid),
                    std::str::from_utf8(password),
                ) else {
                    return self.abort(fail());
                };
                if authcid.is_empty() || !(authzid.is_empty() || authzid == authcid) {
                    return self.abort(fail());
                }
                self.stage = Stage::Checking;
                Step::ask(AccountRequest::Login {
                    account: authcid.to_string(),
                    password: Password(password.to_string()),
                })
            }
            Stage::First(Mechanism::Scram) => {
                let first = std::str::from_utf8(message)
                    .ok()
                    .and_then(|m| scram::parse_client_first(m).ok());
                let Some(first) = first else {
                    return self.abort(fail());
                };
                let account = first.user.clone();
                self.stage = Stage::Lookup(first);
                Step::ask(AccountRequest::ScramLookup { account })
            }
            Stage::Proof {
                first,
                server_first,
                account,
                credentials,
            } => {
                let checked = std::str::from_utf8(message)
                    .ok()
                    .map(|m| scram::verify_client_final(m, &first, &server_first, &credentials));
                match checked {
                    Some(Ok(server_final)) => {
                        self.stage = Stage::Ack { account };
                        Step::reply(chunks(server_final.as_bytes()))
                    }
                    // A wrong proof counts as a failed login; its refusal ends the exchange.
                    _ => self.scram_done(&account, false),
                }
            }
            Stage::Ack { account } => self.scram_done(&account, true),
            // Data while waiting for the server: the client is out of step.
            Stage::Idle | Stage::Checking | Stage::Lookup(_) => self.abort(fail()),
        }
    }

    /// The SCRAM proof was checked: the server logs in or counts a failure.
    fn scram_done(&mut self, account: &str, ok: bool) -> Step {
        self.stage = Stage::Checking;
        let account = account.to_string();
        Step::ask(AccountRequest::ScramDone { account, ok })
    }

    /// An event this connection is about to be shown: if it answers the
    /// exchange, the replies that say so (the event itself is then not
    /// shown otherwise). `logged_in` renders the `900` of a login.
    pub fn answer(&mut self, body: &EventBody) -> Option<Vec<Reply>> {
        match (body, &self.stage) {
            (
                EventBody::Account(AccountEvent::Challenge {
                    account,
                    credentials,
                }),
                Stage::Lookup(_),
            ) => {
                let Stage::Lookup(first) = std::mem::take(&mut self.stage) else {
                    return None;
                };
                let mut nonce = [0u8; 18];
                if getrandom::fill(&mut nonce).is_err() {
                    self.reset();
                    return Some(vec![fail()]);
                }
                let server_first =
                    scram::server_first(&first, &Base64::encode_string(&nonce), credentials);
                let replies = chunks(server_first.as_bytes());
                self.stage = Stage::Proof {
                    first,
                    server_first,
                    account: account.clone(),
                    credentials: credentials.clone(),
                };
                Some(replies)
            }
            (EventBody::Account(AccountEvent::LoggedIn { .. }), Stage::Checking) => {
                self.reset();
                self.done = true;
                Some(vec![numeric(
                    RPL_SASLSUCCESS,
                    "SASL authentication successful",
                )])
            }
            (EventBody::Refused(r), Stage::Checking | Stage::Lookup(_))
                if answers_login(r.code) =>
            {
                self.reset();
                Some(vec![fail()])
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &[u8]) -> String {
        Base64::encode_string(s)
    }

    #[test]
    fn plain_asks_for_a_login() {
        let mut s = Sasl::default();
        assert_eq!(
            s.authenticate("plain").replies,
            [Reply::Authenticate("+".into())]
        );
        let step = s.authenticate(&b64(b"\0alice\0secret pw"));
        assert_eq!(
            step.ask,
            Some(AccountRequest::Login {
                account: "alice".into(),
                password: "secret pw".into()
            })
        );
        let refused = EventBody::Refused(crate::proto::Refusal::new(
            crate::proto::ErrorCode::AuthFailed,
        ));
        assert_eq!(s.answer(&refused), Some(vec![fail()]));
        assert!(!s.busy());
    }

    #[test]
    fn chunks_abort_and_limits() {
        let mut s = Sasl::default();
        s.authenticate("PLAIN");
        let long = b64(&vec![b'x'; 600]); // 800 bytes of base64
        assert_eq!(s.authenticate(&long[..400]), Step::default());
        assert_eq!(s.authenticate(&long[400..]), Step::default());
        assert_eq!(s.authenticate("+").replies, [fail()], "no NULs: not PLAIN");
        s.authenticate("PLAIN");
        let r = s.authenticate(&"A".repeat(401)).replies;
        assert_eq!(r[0], numeric(ERR_SASLTOOLONG, "SASL message too long"));
        s.authenticate("PLAIN");
        for _ in 0..MAX_MESSAGE / CHUNK {
            s.authenticate(&"A".repeat(CHUNK));
        }
        let r = s.authenticate(&"A".repeat(CHUNK)).replies;
        assert_eq!(r[0], fail());
        s.authenticate("PLAIN");
        let r = s.authenticate("*").replies;
        assert_eq!(
            r[0],
            numeric(ERR_SASLABORTED, "SASL authentication aborted")
        );
        assert!(!s.busy());
        let r = s.authenticate("DIGEST-MD5").replies;
        assert_eq!(r.len(), 2);
        assert_eq!(
            chunks(&[0u8; 300]).len(),
            2,
            "400 bytes of base64 end with +"
        );
    }

    #[test]
    fn scram_round_trip() {
        let creds = Arc::new(scram::derive(b"pencil", b"salty", 4096));
        let mut s = Sasl::default();
        s.authenticate("SCRAM-SHA-256");
        let bare = "n=alice,r=abcdef";
        let step = s.authenticate(&b64(format!("n,,{bare}").as_bytes()));
        assert_eq!(
            step.ask,
            Some(AccountRequest::ScramLookup {
                account: "alice".into()
            })
        );
        let challenge = EventBody::Account(AccountEvent::Challenge {
            account: "alice".into(),
            credentials: creds,
        });
        let replies = s.answer(&challenge).unwrap();
        let Reply::Authenticate(data) = &replies[0] else {
            panic!("{replies:?}")
        };
        let server_first = String::from_utf8(Base64::decode_vec(data).unwrap()).unwrap();
        let last = scram::client_final("pencil", bare, &server_first).unwrap();
        let step = s.authenticate(&b64(last.as_bytes()));
        assert!(matches!(&step.replies[0], Reply::Authenticate(v) if v != "+"));
        let step = s.authenticate("+");
        assert_eq!(
            step.ask,
            Some(AccountRequest::ScramDone {
                account: "alice".into(),
                ok: true
            })
        );
    }
}
