//! The IRC side of a session: registration (`PASS`, `NICK`, `USER`, `CAP`
//! negotiation), turning decoded lines into hub commands, and choosing how
//! each queued event is written (shared rendering, per-recipient numerics,
//! or not at all: `echo-message` and `away-notify` are filters here).

use std::sync::Arc;

use super::session::Queue;
use crate::hub::{ConnId, Hub, Outcome, Profile};
use crate::proto::irc::decode::{self, Cap, Input, Step};
use crate::proto::irc::numerics::*;
use crate::proto::irc::{render, Caps, Ctx, Reply, ServerInfo, CAPS, USER_LEN};
use crate::proto::{Command, Event, EventBody, Flavor};

/// One IRC connection's protocol state.
pub(crate) struct IrcSession {
    info: Arc<ServerInfo>,
    /// The server password, if one is required.
    password: Option<String>,
    default_room: String,
    /// The cloaked host shown as `nick!user@host`.
    host: String,
    /// Shown username (`~ident`) once `USER` was given.
    user: String,
    pass: Option<String>,
    /// The nick asked for before registration.
    nick: Option<String>,
    /// `USER` parameters: ident and real name.
    user_params: Option<(String, String)>,
    /// Inside `CAP LS`/`REQ` … `CAP END`: registration waits.
    negotiating: bool,
    caps: Caps,
    /// The nick as of the events written so far (`*` before registration):
    /// numerics carry it and echo filtering compares with it.
    out_nick: String,
}

/// Pushes a session-made IRC reply into the connection's queue (so it is
/// written in order with everything else).
fn push(hub: &mut Hub<Queue>, id: ConnId, r: Reply) {
    hub.reply(id, EventBody::Irc(Box::new(r)));
}

impl IrcSession {
    pub fn new(
        info: Arc<ServerInfo>,
        password: Option<String>,
        default_room: String,
        host: String,
    ) -> IrcSession {
        IrcSession {
            info,
            password,
            default_room,
            host,
            user: "~user".into(),
            pass: None,
            nick: None,
            user_params: None,
            negotiating: false,
            caps: Caps::default(),
            out_nick: "*".into(),
        }
    }

    /// How shared events are rendered for this client.
    pub fn flavor(&self) -> Flavor {
        match self.caps.server_time {
            true => Flavor::IrcTagged,
            false => Flavor::Irc,
        }
    }

    /// Handles one line from the client.
    pub fn handle(&mut self, hub: &mut Hub<Queue>, id: ConnId, line: &str) -> Outcome {
        let registered = hub.nick_of(id).is_some();
        match decode::decode_line(line) {
            Input::Nothing => {}
            Input::Reply(r) => push(hub, id, r),
            Input::Ping(token) => push(hub, id, Reply::Pong { token }),
            Input::Quit(reason) => {
                let (why, reason) = match reason {
                    Some(r) => (format!("Quit: {r}"), format!("quit: {r}")),
                    None => ("Client Quit".to_string(), "quit".to_string()),
                };
                push(hub, id, Reply::Closing { why });
                hub.disconnect(id, &reason);
                return Outcome::Close;
            }
            Input::Cap(cap) => return self.cap(hub, id, cap),
            Input::Pass(_) if registered => push(hub, id, already_registered()),
            Input::Pass(p) => self.pass = Some(p),
            Input::User { .. } if registered => push(hub, id, already_registered()),
            Input::User { user, realname } => {
                self.user_params = Some((user, realname));
                return self.try_register(hub, id);
            }
            Input::Nick(new) if registered => {
                return hub.handle(id, Command::Nick { new });
            }
            Input::Nick(nick) => match hub.nick_problem(id, &nick) {
                Some(problem) => hub.reply(id, problem),
                None => {
                    self.nick = Some(nick);
                    return self.try_register(hub, id);
                }
            },
            _ if !registered => push(
                hub,
                id,
                Reply::numeric(ERR_NOTREGISTERED, &["You have not registered"]),
            ),
            Input::Motd => push(hub, id, Reply::Motd),
            Input::Help => hub.reply(id, EventBody::Help),
            Input::Steps(steps) => {
                for step in steps {
                    match step {
                        Step::Hub(cmd) => {
                            if hub.handle(id, cmd) == Outcome::Close {
                                return Outcome::Close;
                            }
                        }
                        Step::Reply(r) => push(hub, id, r),
                    }
                }
            }
        }
        Outcome::Continue
    }

    fn cap(&mut self, hub: &mut Hub<Queue>, id: ConnId, cap: Cap) -> Outcome {
        let registered = hub.nick_of(id).is_some();
        match cap {
            Cap::Ls(_) => {
                self.negotiating |= !registered;
                let list = CAPS.join(" ");
                push(hub, id, Reply::Cap { sub: "LS", list });
            }
            Cap::List => {
                let list = self.caps.list();
                push(hub, id, Reply::Cap { sub: "LIST", list });
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
                push(hub, id, Reply::Cap { sub, list });
            }
            Cap::End => {
                self.negotiating = false;
                return self.try_register(hub, id);
            }
            Cap::Unknown(sub) => push(
                hub,
                id,
                Reply::numeric(ERR_INVALIDCAPCMD, &[&sub, "Invalid CAP command"]),
            ),
        }
        Outcome::Continue
    }

    /// Registers once `NICK` and `USER` are in and `CAP` negotiation is
    /// over: checks the password, then the welcome burst (001–005, LUSERS,
    /// MOTD) and the default room.
    fn try_register(&mut self, hub: &mut Hub<Queue>, id: ConnId) -> Outcome {
        if self.negotiating || hub.nick_of(id).is_some() {
            return Outcome::Continue;
        }
        let (Some(nick), Some((ident, realname))) = (self.nick.clone(), self.user_params.clone())
        else {
            return Outcome::Continue;
        };
        if let Some(expected) = &self.password {
            if self.pass.as_deref() != Some(expected.as_str()) {
                push(
                    hub,
                    id,
                    Reply::numeric(ERR_PASSWDMISMATCH, &["Password incorrect"]),
                );
                push(
                    hub,
                    id,
                    Reply::Closing {
                        why: "Bad Password".into(),
                    },
                );
                hub.disconnect(id, "bad password");
                return Outcome::Close;
            }
        }
        self.user = shown_user(&ident);
        hub.set_profile(
            id,
            Profile {
                user: self.user.as_str().into(),
                realname: realname_of(&realname).into(),
                host: self.host.as_str().into(),
                auto_join: false,
            },
        );
        hub.handle(id, Command::Register { nick });
        if hub.nick_of(id).is_none() {
            self.nick = None; // refused (433/432 sent): wait for another NICK
            return Outcome::Continue;
        }
        hub.handle(id, Command::Lusers);
        push(hub, id, Reply::Motd);
        let room = format!("#{}", self.default_room);
        hub.handle(
            id,
            Command::Join {
                room,
                switch: false,
            },
        )
    }

    /// Renders one queued event into `out`, or nothing when this client
    /// did not ask for it (its own messages without `echo-message`, away
    /// changes without `away-notify`).
    pub fn write(&mut self, ev: &Event, out: &mut Vec<u8>) {
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
            out.extend_from_slice(ev.rendered(self.flavor()));
        } else {
            if let EventBody::Registered { nick, .. } = &ev.body {
                self.out_nick = nick.to_string();
            }
            let ctx = Ctx {
                info: &self.info,
                nick: &self.out_nick,
                user: &self.user,
                host: &self.host,
                caps: self.caps,
            };
            render::reply(ev, &ctx, out);
        }
        if let EventBody::NickChanged { old, new } = &ev.body {
            if **old == *self.out_nick {
                self.out_nick = new.to_string();
            }
        }
    }

    /// The `ERROR` line a closing connection gets, queued.
    pub fn closing(&self, hub: &mut Hub<Queue>, id: ConnId, why: &str) {
        push(hub, id, Reply::Closing { why: why.into() });
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
