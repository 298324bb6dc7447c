//! One room's state: members with their operator/voice status, topic,
//! modes (`+i +k +l +m +n +t`) and bans, and the rules they imply — who
//! may enter and who may speak. Pure data and checks; the hub applies them.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::mask;
use crate::proto::{BanInfo, ConnId, ErrorCode, ModeChange, Name, Refusal, TopicState};

/// A member's place in a room.
pub(crate) struct Member {
    pub op: bool,
    pub voice: bool,
}

/// The flag and value modes of a room.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Modes {
    /// `+i`: only invited people may join.
    pub invite_only: bool,
    /// `+m`: only voiced members and operators may speak.
    pub moderated: bool,
    /// `+n`: only members may speak in the room.
    pub no_external: bool,
    /// `+t`: only operators may set the topic.
    pub topic_ops: bool,
    /// `+k`: the key needed to join.
    pub key: Option<Arc<str>>,
    /// `+l`: most members.
    pub limit: Option<usize>,
}

pub(crate) struct Room {
    pub name: Name,
    /// By connection, in order: long member lists are paged by it.
    pub members: BTreeMap<ConnId, Member>,
    /// The sequence number of the room's last fact.
    pub seq: u64,
    pub topic: Option<TopicState>,
    pub modes: Modes,
    pub bans: Vec<BanInfo>,
    pub created_ms: u64,
}

impl Room {
    /// A new, empty room with the usual defaults `+nt`, whose order
    /// continues after `seq`.
    pub fn new(name: Name, seq: u64) -> Room {
        Room {
            name,
            members: BTreeMap::new(),
            seq,
            topic: None,
            modes: Modes {
                no_external: true,
                topic_ops: true,
                ..Modes::default()
            },
            bans: Vec::new(),
            created_ms: crate::proto::now_ms(),
        }
    }

    /// Whether `user_mask` (`nick!user@host`) matches a ban.
    pub fn is_banned(&self, user_mask: &str) -> bool {
        self.bans.iter().any(|b| mask::matches(&b.mask, user_mask))
    }

    /// May someone with `user_mask` enter, giving `key`? An invitation
    /// lets them past `+i`, `+k` and `+l`, not past a ban.
    pub fn admits(&self, user_mask: &str, key: Option<&str>, invited: bool) -> Result<(), Refusal> {
        let refuse = |code| Err(Refusal::new(code).room(&self.name));
        if self.is_banned(user_mask) {
            return refuse(ErrorCode::Banned);
        }
        if invited {
            return Ok(());
        }
        if self.modes.invite_only {
            return refuse(ErrorCode::InviteOnly);
        }
        if let Some(k) = &self.modes.key {
            if key != Some(&**k) {
                return refuse(ErrorCode::BadKey);
            }
        }
        if let Some(limit) = self.modes.limit {
            if self.members.len() >= limit {
                let refusal = Refusal::new(ErrorCode::RoomFull).room(&self.name);
                return Err(refusal.detail(limit.to_string()));
            }
        }
        Ok(())
    }

    /// May `id` (with `user_mask`) say something here?
    pub fn may_speak(&self, id: ConnId, user_mask: &str) -> Result<(), Refusal> {
        let cannot = |why: &'static str| {
            let refusal = Refusal::new(ErrorCode::CannotSend).room(&self.name);
            Err(if why.is_empty() {
                refusal
            } else {
                refusal.detail(why)
            })
        };
        let Some(m) = self.members.get(&id) else {
            return match self.modes.no_external {
                true => Err(Refusal::new(ErrorCode::NotInRoom).room(&self.name)),
                false if self.modes.moderated || self.is_banned(user_mask) => cannot(""),
                false => Ok(()),
            };
        };
        if m.op || m.voice {
            return Ok(());
        }
        if self.modes.moderated {
            return cannot("it is moderated (+m)");
        }
        if self.is_banned(user_mask) {
            return cannot("you are banned");
        }
        Ok(())
    }

    /// The current modes as `+` changes; the key is shown only to members.
    pub fn mode_list(&self, show_key: bool) -> Vec<ModeChange> {
        let flag = |on: bool, mode: char| {
            on.then_some(ModeChange {
                add: true,
                mode,
                arg: None,
            })
        };
        let m = &self.modes;
        let mut out: Vec<ModeChange> = [
            flag(m.invite_only, 'i'),
            flag(m.moderated, 'm'),
            flag(m.no_external, 'n'),
            flag(m.topic_ops, 't'),
        ]
        .into_iter()
        .flatten()
        .collect();
        if let Some(k) = &m.key {
            out.push(ModeChange {
                add: true,
                mode: 'k',
                arg: Some(if show_key { k.clone() } else { "*".into() }),
            });
        }
        if let Some(l) = m.limit {
            out.push(ModeChange {
                add: true,
                mode: 'l',
                arg: Some(l.to_string().into()),
            });
        }
        out
    }

    /// Sets or clears a flag mode; true if it changed.
    pub fn set_flag(&mut self, mode: char, on: bool) -> bool {
        let slot = match mode {
            'i' => &mut self.modes.invite_only,
            'm' => &mut self.modes.moderated,
            'n' => &mut self.modes.no_external,
            't' => &mut self.modes.topic_ops,
            _ => return false,
        };
        std::mem::replace(slot, on) != on
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> ConnId {
        ConnId::new(0, n)
    }

    fn room() -> Room {
        let mut r = Room::new("r".into(), 0);
        let (op, member) = (
            Member {
                op: true,
                voice: false,
            },
            Member {
                op: false,
                voice: false,
            },
        );
        r.members.insert(id(1), op);
        r.members.insert(id(2), member);
        r
    }

    #[test]
    fn admission_rules_and_invites() {
        let mut r = room();
        assert!(r.admits("c!u@h", None, false).is_ok());
        r.modes.key = Some("sesame".into());
        assert_eq!(
            r.admits("c!u@h", None, false).unwrap_err().code,
            ErrorCode::BadKey
        );
        assert!(r.admits("c!u@h", Some("sesame"), false).is_ok());
        assert!(r.admits("c!u@h", None, true).is_ok());
        r.modes.limit = Some(2);
        assert_eq!(
            r.admits("c!u@h", Some("sesame"), false).unwrap_err().code,
            ErrorCode::RoomFull
        );
        r.modes.invite_only = true;
        assert_eq!(
            r.admits("c!u@h", None, false).unwrap_err().code,
            ErrorCode::InviteOnly
        );
        r.bans.push(BanInfo {
            mask: "*!*@h".into(),
            set_by: "op".into(),
            set_at_ms: 0,
        });
        assert_eq!(
            r.admits("c!u@h", None, true).unwrap_err().code,
            ErrorCode::Banned
        );
    }

    #[test]
    fn speaking_rules() {
        let mut r = room();
        assert!(r.may_speak(id(2), "b!u@h").is_ok());
        assert_eq!(
            r.may_speak(id(3), "x!u@h").unwrap_err().code,
            ErrorCode::NotInRoom
        );
        r.set_flag('n', false);
        assert!(r.may_speak(id(3), "x!u@h").is_ok());
        r.set_flag('m', true);
        assert_eq!(
            r.may_speak(id(2), "b!u@h").unwrap_err().code,
            ErrorCode::CannotSend
        );
        assert!(r.may_speak(id(1), "a!u@h").is_ok(), "ops always speak");
        assert_eq!(
            r.mode_list(true).iter().map(|m| m.mode).collect::<String>(),
            "mt"
        );
    }
}
