//! Short questions about several rooms or people at once (`NAMES #a,#b`,
//! `USERHOST`, `ISON`), and leaving every room (`JOIN 0`).

use super::{names, ChatState};
use crate::proto::{ConnId, EventBody, Name, RoomMembers, UserHostInfo};

/// Most nicks one `USERHOST` answers (as RFC 2812 says).
const MAX_USERHOST: usize = 5;

impl ChatState {
    /// Members of each room asked for that exists and that `id` may see.
    pub(super) fn names(&mut self, id: ConnId, asked: &[String]) {
        let mut rooms = Vec::new();
        // One IRC line bounds how many rooms and nicks are asked about.
        for name in asked {
            let Ok(name) = names::check_room(name, self.config.max_room_chars) else {
                continue;
            };
            let key = names::fold(name);
            let Some(r) = self.rooms.get(key.as_str()) else {
                continue;
            };
            if !r.shown_to(id, false) {
                continue;
            }
            rooms.push(RoomMembers {
                room: r.name.clone(),
                visibility: r.visibility(),
                members: self.members_of(&key),
            });
        }
        let asked = asked.iter().map(|a| Name::from(a.as_str())).collect();
        self.reply(id, EventBody::Names { asked, rooms });
    }

    pub(super) fn userhost(&mut self, id: ConnId, nicks: &[String]) {
        let people = nicks
            .iter()
            .take(MAX_USERHOST)
            .filter_map(|n| {
                let c = self.conns.get(self.nicks.get(&*names::fold(n))?)?;
                Some(UserHostInfo {
                    nick: c.nick.clone()?,
                    user: c.user.clone(),
                    host: c.host.clone(),
                    away: c.rare().away.is_some(),
                    oper: c.rare().oper.is_some(),
                })
            })
            .collect();
        self.reply(id, EventBody::UserHosts { people });
    }

    pub(super) fn ison(&mut self, id: ConnId, asked: &[String]) {
        let nicks = asked
            .iter()
            .filter_map(|n| self.nick_of(*self.nicks.get(&*names::fold(n))?).cloned())
            .collect();
        self.reply(id, EventBody::IsOn { nicks });
    }

    /// Leaves every room, as if parting each.
    pub(super) fn part_all(&mut self, id: ConnId) {
        let rooms = self
            .conns
            .get(&id)
            .map(|c| c.rooms.clone())
            .unwrap_or_default();
        for key in rooms {
            self.leave_room(id, &key, None);
            self.forget_room(id, &key);
        }
    }
}
