//! Server operators: becoming one (the protocol session has checked the
//! oper block's password and host mask; the hub records who is one) and
//! what only they may do — disconnect someone (`KILL`), write to everyone
//! with user mode `+w` (`WALLOPS`), reload the configuration (`REHASH`)
//! and, when the configuration allows it, shut the server down (`DIE`).

use std::sync::Arc;

use super::{cap, names, Audience, ChatState, Control};
use crate::proto::{ConnId, ErrorCode, Event, EventBody, Refusal};

impl ChatState {
    /// Whether `id` is a server operator.
    pub(super) fn is_oper(&self, id: ConnId) -> bool {
        self.conns.get(&id).is_some_and(|c| c.rare().oper.is_some())
    }

    /// Refuses `id` unless it is a server operator; true if it is.
    fn need_oper(&mut self, id: ConnId, command: &'static str) -> bool {
        if self.is_oper(id) {
            return true;
        }
        let refusal = Refusal::new(ErrorCode::NoPrivileges);
        self.refuse(
            id,
            refusal.detail(format!("{command} is for server operators")),
        );
        false
    }

    /// Server operators online.
    pub(super) fn oper_count(&self) -> usize {
        self.conns
            .values()
            .filter(|c| c.rare().oper.is_some())
            .count()
    }

    pub(super) fn oper_up(&mut self, id: ConnId, name: &str) {
        if !self.config.opers.iter().any(|o| o == name) {
            return self.refuse(id, Refusal::new(ErrorCode::NoOperHost));
        }
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let Some(nick) = c.nick.clone() else {
            return;
        };
        let was = c.rare_mut().oper.replace(name.into()).is_some();
        if !was {
            self.reply(
                id,
                EventBody::UserModes {
                    nick: nick.clone(),
                    modes: "+o".into(),
                    changed: true,
                },
            );
        }
        self.reply(id, EventBody::OperUp { nick });
    }

    pub(super) fn kill(&mut self, id: ConnId, nick: &str, reason: &str) {
        if !self.need_oper(id, "KILL") {
            return;
        }
        let target = self
            .nicks
            .get(&*names::fold(nick))
            .copied()
            .filter(|t| t.node == self.config.node);
        let Some(target) = target else {
            return self.refuse(id, Refusal::new(ErrorCode::NoSuchNick).nick(nick));
        };
        let Some(by) = self.nick_of(id).cloned() else {
            return;
        };
        let reason = match reason.trim() {
            "" => by.to_string(),
            r => r.to_string(),
        };
        let reason: Arc<str> = cap(&reason, self.config.reason_len);
        let ev = Event::shared(EventBody::Killed {
            by: by.clone(),
            reason: reason.clone(),
        });
        self.send(Audience::Conn(target), ev);
        let quit = format!("Killed ({by} ({reason}))");
        self.remove(target, &cap(&quit, self.config.reason_len));
        self.fx.control.push(Control::Close(target));
    }

    pub(super) fn wallops(&mut self, id: ConnId, text: String) {
        if !self.need_oper(id, "WALLOPS") {
            return;
        }
        if text.trim().is_empty() {
            let refusal = Refusal::new(ErrorCode::BadArguments).command("WALLOPS");
            return self.refuse(id, refusal);
        }
        let Some(from) = self.nick_of(id).cloned() else {
            return;
        };
        let mut audience: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.wallops && c.nick.is_some())
            .map(|(k, _)| *k)
            .collect();
        audience.sort_unstable();
        let text: Arc<str> = cap(&text, self.config.topic_len);
        let ev = Event::by(self.mask_of(id), EventBody::Wallops { from, text });
        self.send(Audience::Conns(audience), ev);
    }

    pub(super) fn rehash(&mut self, id: ConnId) {
        if !self.need_oper(id, "REHASH") {
            return;
        }
        self.reply(id, EventBody::Rehashing);
        self.fx.control.push(Control::Rehash);
    }

    pub(super) fn die(&mut self, id: ConnId) {
        if !self.need_oper(id, "DIE") {
            return;
        }
        if !self.config.oper_die {
            let refusal = Refusal::new(ErrorCode::Disabled).command("DIE");
            return self.refuse(id, refusal.detail("DIE is turned off (oper_die)"));
        }
        self.fx.control.push(Control::Shutdown);
    }

    /// Takes new settings that may change while running (after a rehash):
    /// the oper blocks and `oper_die`. Operators whose block is gone stay
    /// operators until they leave.
    pub fn reconfigure(&mut self, opers: Vec<String>, oper_die: bool) {
        self.config.opers = opers;
        self.config.oper_die = oper_die;
    }
}
