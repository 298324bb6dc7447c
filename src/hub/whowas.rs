//! Who had a nick recently (IRC `WHOWAS`): a bounded list of people as they
//! were when they left or changed nick, newest last, `whowas_entries` at
//! most (the oldest is forgotten first).

use super::{names, ChatState};
use crate::proto::{now_ms, ConnId, ErrorCode, EventBody, Refusal, WhoWasInfo};

impl ChatState {
    /// Remembers `id` as it is now (about to leave or change nick).
    pub(super) fn remember(&mut self, id: ConnId) {
        let max = self.config.whowas_entries;
        if max == 0 {
            return;
        }
        let Some(c) = self.conns.get(&id) else {
            return;
        };
        let Some(nick) = c.nick.clone() else {
            return;
        };
        if self.whowas.len() >= max {
            self.whowas.pop_front();
        }
        self.whowas.push_back(WhoWasInfo {
            nick,
            user: c.user.clone(),
            host: c.host.clone(),
            realname: c.realname.clone(),
            left_ms: now_ms(),
        });
    }

    /// Who had `nick`, newest first, at most `count` of them.
    pub(super) fn whowas(&mut self, id: ConnId, nick: &str, count: Option<usize>) {
        let key = names::fold(nick);
        let entries: Vec<WhoWasInfo> = self
            .whowas
            .iter()
            .rev()
            .filter(|w| names::fold(&w.nick) == key)
            .take(count.unwrap_or(usize::MAX))
            .cloned()
            .collect();
        if entries.is_empty() {
            self.refuse(id, Refusal::new(ErrorCode::WasNoSuchNick).nick(nick));
        }
        let nick = nick.into();
        self.reply(id, EventBody::WhoWas { nick, entries });
    }
}
