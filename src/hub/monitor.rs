//! Watching nicks (IRCv3 `MONITOR`): each person keeps a list of nicks
//! (at most `monitor_limit`), and is told when one comes online (registers
//! or takes the nick) or goes offline (leaves or drops the nick). With
//! `extended-monitor` ([`Command::WatchDetails`](crate::proto::Command)) they
//! also hear of watched people's away and real-name changes, room in
//! common or not. Also here: changing one's real name (`SETNAME`), which
//! room peers and such watchers are told of.

use std::sync::Arc;

use super::{names, Audience, ChatState};
use crate::proto::{ConnId, ErrorCode, Event, EventBody, Monitor, Name, Refusal};

/// Longest real name, in characters.
const REALNAME_CHARS: usize = 100;

impl ChatState {
    pub(super) fn monitor(&mut self, id: ConnId, op: Monitor) {
        match op {
            Monitor::Add(nicks) => self.watch(id, nicks),
            Monitor::Remove(nicks) => {
                let Some(c) = self.conns.get_mut(&id).and_then(|c| c.rare.as_deref_mut()) else {
                    return; // watches nobody
                };
                let gone: Vec<Name> = nicks
                    .iter()
                    .filter_map(|n| {
                        let key = names::fold(n);
                        let pos = c.watching.iter().position(|w| names::fold(w) == key)?;
                        Some(c.watching.remove(pos))
                    })
                    .collect();
                self.unwatch_all(id, &gone);
            }
            Monitor::Clear => {
                let Some(c) = self.conns.get_mut(&id).and_then(|c| c.rare.as_deref_mut()) else {
                    return; // watches nobody
                };
                let gone = std::mem::take(&mut c.watching);
                self.unwatch_all(id, &gone);
            }
            Monitor::List => {
                let nicks = self.watching(id);
                self.reply(id, EventBody::MonList { nicks });
            }
            Monitor::Status => {
                let nicks = self.watching(id);
                self.tell_status(id, &nicks);
            }
        }
    }

    /// The nicks `id` watches.
    fn watching(&self, id: ConnId) -> Vec<Name> {
        self.conns
            .get(&id)
            .map(|c| c.rare().watching.clone())
            .unwrap_or_default()
    }

    /// Adds nicks to `id`'s list (valid nicks only, up to the limit) and
    /// says which of them are on and off line.
    fn watch(&mut self, id: ConnId, nicks: Vec<String>) {
        let (limit, max_chars) = (self.config.monitor_limit, self.config.max_nick_chars);
        let Some(c) = self.conns.get_mut(&id).map(|c| c.rare_mut()) else {
            return;
        };
        let mut added = Vec::new();
        let mut refused = Vec::new();
        for nick in nicks {
            if names::check_nick(&nick, max_chars).is_err() {
                continue; // masks and junk: nothing to watch
            }
            let key = names::fold(&nick);
            if c.watching.iter().any(|w| names::fold(w) == key) {
                added.push(Name::from(nick.as_str()));
                continue;
            }
            if c.watching.len() >= limit {
                refused.push(nick);
                continue;
            }
            let name: Name = nick.as_str().into();
            c.watching.push(name.clone());
            added.push(name);
            let list = self.watchers.entry(key).or_default();
            if !list.contains(&id) {
                list.push(id);
            }
        }
        if !refused.is_empty() {
            let refusal = Refusal::new(ErrorCode::MonListFull)
                .value(&refused.join(","))
                .detail(limit.to_string());
            self.refuse(id, refusal);
        }
        self.tell_status(id, &added);
    }

    /// Forgets that `id` watches `nicks` (already taken off its own list).
    pub(super) fn unwatch_all(&mut self, id: ConnId, nicks: &[Name]) {
        for n in nicks {
            let key = names::fold(n);
            if let Some(list) = self.watchers.get_mut(&key) {
                list.retain(|w| *w != id);
                if list.is_empty() {
                    self.watchers.remove(&key);
                }
            }
        }
    }

    /// Tells `id` which of `nicks` are online (730) and offline (731).
    fn tell_status(&mut self, id: ConnId, nicks: &[Name]) {
        let mut people = Vec::new();
        let mut offline = Vec::new();
        for n in nicks {
            match self
                .nicks
                .get(&*names::fold(n))
                .and_then(|c| self.mask_of(*c))
            {
                Some(mask) => people.push(mask),
                None => offline.push(n.clone()),
            }
        }
        if !people.is_empty() {
            self.reply(id, EventBody::MonOnline { people });
        }
        if !offline.is_empty() {
            self.reply(id, EventBody::MonOffline { nicks: offline });
        }
    }

    /// Those watching `nick`.
    fn watchers_of(&self, nick: &str) -> Vec<ConnId> {
        self.watchers
            .get(&names::fold(nick))
            .cloned()
            .unwrap_or_default()
    }

    /// `id` now goes by `nick`: its watchers are told.
    pub(super) fn announce_online(&mut self, id: ConnId, nick: &str) {
        let watchers = self.watchers_of(nick);
        let Some(mask) = self.mask_of(id).filter(|_| !watchers.is_empty()) else {
            return;
        };
        let ev = Event::shared(EventBody::MonOnline { people: vec![mask] });
        self.send(Audience::Conns(watchers), ev);
    }

    /// Nobody goes by `nick` any more: its watchers are told.
    pub(super) fn announce_offline(&mut self, nick: &Name) {
        let watchers = self.watchers_of(nick);
        if watchers.is_empty() {
            return;
        }
        let ev = Event::shared(EventBody::MonOffline {
            nicks: vec![nick.clone()],
        });
        self.send(Audience::Conns(watchers), ev);
    }

    /// Adds those who watch `id`'s nick and asked for details to `audience`.
    pub(super) fn add_detail_watchers(&self, id: ConnId, audience: &mut Vec<ConnId>) {
        let Some(nick) = self.nick_of(id) else {
            return;
        };
        for w in self.watchers_of(nick) {
            if self.conns.get(&w).is_some_and(|c| c.rare().watch_details) {
                audience.push(w);
            }
        }
        audience.sort_unstable();
        audience.dedup();
    }

    /// `SETNAME`: a new real name, told to room peers and detail watchers.
    pub(super) fn set_name(&mut self, id: ConnId, realname: String) {
        let realname: String = realname.trim().chars().take(REALNAME_CHARS).collect();
        if realname.is_empty() {
            let refusal = Refusal::new(ErrorCode::BadArguments).command("SETNAME");
            return self.refuse(id, refusal.detail("a real name cannot be empty"));
        }
        let realname: Name = Arc::from(realname);
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        c.realname = realname.clone();
        let Some(nick) = c.nick.clone() else {
            return;
        };
        let mut audience = self.peers(id, true);
        self.add_detail_watchers(id, &mut audience);
        let ev = Event::by(
            self.mask_of(id),
            EventBody::RealnameChanged { nick, realname },
        );
        self.send(Audience::Conns(audience), ev);
    }
}
