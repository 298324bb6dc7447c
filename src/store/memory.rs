//! The in-memory store: the last `per_room` facts of each room, gone on
//! restart. Bounded: a room's oldest facts are dropped first, and rooms
//! past `max_rooms` evict the one written to least recently.

use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::hub::{names, Store, StoreError, Watermark};
use crate::proto::{Anchor, Fact, History, HistoryQuery};

/// Recent room history in memory.
pub struct MemoryStore {
    per_room: usize,
    max_rooms: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    rooms: HashMap<String, (u64, VecDeque<Fact>)>,
    /// Bumped on every write: the age of a room's last write.
    clock: u64,
}

impl MemoryStore {
    /// Keeps `per_room` facts for each of at most `max_rooms` rooms.
    pub fn new(per_room: usize, max_rooms: usize) -> MemoryStore {
        MemoryStore {
            per_room,
            max_rooms: max_rooms.max(1),
            inner: Mutex::default(),
        }
    }
}

impl Store for MemoryStore {
    fn submit(&self, facts: Vec<Fact>) -> u64 {
        if self.per_room == 0 {
            return 0;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for fact in facts {
            let Some(room) = &fact.room else { continue };
            inner.clock += 1;
            // Borrowed when folded already: a room kept has no new key made.
            let (clock, key) = (inner.clock, names::folded(room));
            let known = inner.rooms.contains_key(&*key);
            if !known && inner.rooms.len() >= self.max_rooms {
                let oldest = inner.rooms.iter().min_by_key(|(_, (t, _))| *t);
                if let Some(k) = oldest.map(|(k, _)| k.clone()) {
                    inner.rooms.remove(&k);
                }
            }
            if !known {
                inner.rooms.insert(key.to_string(), Default::default());
            }
            let Some((touched, log)) = inner.rooms.get_mut(&*key) else {
                continue; // just inserted: not reached
            };
            *touched = clock;
            // A fact read late (a cluster filling a gap from its stream)
            // goes in its place in the room's order, once.
            if fact.seq != 0 && log.back().is_some_and(|b| b.seq > fact.seq) {
                let at = log.partition_point(|f| f.seq < fact.seq);
                if log.get(at).is_some_and(|f| f.seq == fact.seq) {
                    continue;
                }
                if log.len() >= self.per_room {
                    if at == 0 {
                        continue; // older than all it keeps
                    }
                    log.pop_front();
                    log.insert(at - 1, fact);
                } else {
                    log.insert(at, fact);
                }
                continue;
            }
            if log.len() >= self.per_room {
                log.pop_front();
            }
            log.push_back(fact);
        }
        0
    }

    fn history(
        &self,
        room: &str,
        query: HistoryQuery,
        limit: usize,
        events: bool,
    ) -> Result<History, StoreError> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some((_, log)) = inner.rooms.get(&names::fold(room)) else {
            return Ok(History::default());
        };
        if !events {
            if let Some(h) = newest_messages(log, &query, limit) {
                return Ok(h);
            }
        }
        let (front, back) = log.as_slices();
        let all: Vec<&Fact> = front
            .iter()
            .chain(back)
            .filter(|f| events || f.body.is_message())
            .collect();
        Ok(select(&all, query, limit))
    }

    fn private_targets(
        &self,
        account: &str,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(String, u64)> = inner
            .rooms
            .iter()
            .filter_map(|(key, (_, log))| {
                let peer = crate::proto::fact::private_peer(key, account)?;
                let last = log.back()?.at_ms;
                (last > from_ms && last < to_ms).then(|| (peer.to_string(), last))
            })
            .collect();
        out.sort_by_key(|(_, t)| *t);
        out.truncate(limit);
        Ok(out)
    }

    fn latest_lines(
        &self,
        rooms: &[String],
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Ok(rooms
            .iter()
            .filter_map(|key| {
                let (_, log) = inner.rooms.get(key)?;
                let last = log.iter().rev().find(|f| f.body.is_message())?.at_ms;
                (last > from_ms && last < to_ms).then(|| (key.clone(), last))
            })
            .collect())
    }

    fn room_seqs(&self) -> Result<Vec<(String, u64)>, StoreError> {
        Ok(Vec::new())
    }

    fn watermark(&self) -> Option<Arc<Watermark>> {
        None
    }
}

/// Where a fact stands against an anchor.
fn cmp(f: &Fact, a: &Anchor) -> Ordering {
    match a {
        Anchor::Id(id) => f.id.cmp(id),
        Anchor::Time(t) => f.at_ms.cmp(t),
        Anchor::Seq(n) => f.seq.cmp(n),
    }
}

/// The newest `limit` messages of `log` (before the anchor of a
/// `Before`), walked back from its end, as [`select`] would pick them
/// from the messages alone: a join's replay in a room of many joins and
/// few lines stops at the messages it needs instead of filtering and
/// copying the whole log. None for queries it does not answer.
fn newest_messages(log: &VecDeque<Fact>, query: &HistoryQuery, limit: usize) -> Option<History> {
    let anchor = match query {
        HistoryQuery::Latest(None) => None,
        HistoryQuery::Before(a @ Anchor::Seq(_)) => Some(a),
        _ => return None,
    };
    let mut facts: Vec<Fact> = log
        .iter()
        .rev()
        .skip_while(|f| anchor.is_some_and(|a| cmp(f, a) != Ordering::Less))
        .filter(|f| f.body.is_message())
        .take(limit.saturating_add(1))
        .cloned()
        .collect();
    let more = facts.len() > limit;
    facts.truncate(limit);
    facts.reverse();
    Some(History { facts, more })
}

/// Answers `query` from facts in order (oldest first).
pub(crate) fn select(all: &[&Fact], query: HistoryQuery, limit: usize) -> History {
    let after = |a: &Anchor| all.partition_point(|f| cmp(f, a) != Ordering::Greater);
    let before = |a: &Anchor| all.partition_point(|f| cmp(f, a) == Ordering::Less);
    // (range, take the newest of it?)
    let (lo, hi, newest) = match query {
        HistoryQuery::Latest(None) => (0, all.len(), true),
        HistoryQuery::Latest(Some(a)) => (after(&a), all.len(), true),
        HistoryQuery::Before(a) => (0, before(&a), true),
        HistoryQuery::After(a) => (after(&a), all.len(), false),
        HistoryQuery::Around(a) => {
            let mid = before(&a);
            let lo = mid.saturating_sub(limit / 2);
            let hi = (lo + limit).min(all.len());
            (hi.saturating_sub(limit).min(lo), hi, false)
        }
        HistoryQuery::Between(a, b) => {
            let forward = before(&a) <= before(&b);
            match forward {
                true => (after(&a), before(&b).max(after(&a)), false),
                false => (after(&b), before(&a).max(after(&b)), true),
            }
        }
    };
    let (lo, hi) = (lo.min(all.len()), hi.min(all.len()));
    let (start, end) = match newest {
        true => (hi.saturating_sub(limit).max(lo), hi),
        false => (lo, (lo + limit).min(hi)),
    };
    // AROUND has no direction: more means lines beyond either end.
    let more = match query {
        HistoryQuery::Around(_) => start > 0 || end < all.len(),
        _ => start > lo || end < hi,
    };
    History {
        facts: all[start..end].iter().map(|f| (*f).clone()).collect(),
        more,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{ConnId, FactBody, MsgId};

    fn said(room: &str, n: u128) -> Fact {
        Fact {
            id: MsgId(n),
            at_ms: n as u64,
            by: ConnId::new(0, 1),
            source: "a!u@h".into(),
            room: Some(room.into()),
            seq: n as u64,
            body: FactBody::Said {
                from: "a".into(),
                text: format!("line {n}").into(),
                action: false,
            },
        }
    }

    fn ids(h: History) -> Vec<u128> {
        h.facts.into_iter().map(|f| f.id.0).collect()
    }

    #[test]
    fn private_targets_are_the_logs_an_account_is_in() {
        let store = MemoryStore::new(10, 10);
        store.submit(vec![
            said("@alice@bob", 5),
            said("@alice@bob", 9),
            said("@alice@carol", 7),
            said("@bob@carol", 8),
            said("lobby", 6),
        ]);
        let t = store.private_targets("alice", 0, 100, 10).unwrap();
        assert_eq!(t, [("carol".to_string(), 7), ("bob".to_string(), 9)]);
        // A conversation whose newest line is past the window is not listed.
        let t = store.private_targets("alice", 0, 9, 10).unwrap();
        assert_eq!(t, [("carol".to_string(), 7)]);
        assert_eq!(store.private_targets("alice", 0, 100, 1).unwrap().len(), 1);
        assert!(store
            .private_targets("lobby", 0, 100, 10)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn keeps_the_last_lines_of_each_room_in_order() {
        let s = MemoryStore::new(3, 10);
        let facts: Vec<Fact> = (1..=5).map(|n| said("Lobby", n)).collect();
        assert_eq!(s.submit(facts), 0, "kept at once: nothing to wait for");
        let latest = HistoryQuery::Latest(None);
        assert_eq!(
            ids(s.history("lobby", latest, 10, false).unwrap()),
            [3, 4, 5]
        );
        let h = s.history("LOBBY", latest, 2, false).unwrap();
        assert!(h.more);
        assert_eq!(ids(h), [4, 5]);
        let before = HistoryQuery::Before(Anchor::Id(MsgId(5)));
        assert_eq!(ids(s.history("lobby", before, 1, false).unwrap()), [4]);
        let after = HistoryQuery::After(Anchor::Id(MsgId(3)));
        assert_eq!(ids(s.history("lobby", after, 1, false).unwrap()), [4]);
        let nowhere = s.history("nowhere", latest, 5, false).unwrap();
        assert!(nowhere.facts.is_empty() && !nowhere.more);
    }

    #[test]
    fn a_replay_walks_back_to_the_messages_it_needs_and_picks_as_select_does() {
        let s = MemoryStore::new(1000, 10);
        // Messages at every 7th seq among joins, as in a busy room.
        let facts: Vec<Fact> = (1..=300u128)
            .map(|n| match n % 7 {
                0 => said("r", n),
                _ => Fact {
                    body: FactBody::Joined {
                        nick: format!("n{n}").into(),
                    },
                    ..said("r", n)
                },
            })
            .collect();
        s.submit(facts);
        let log = s.inner.lock().unwrap().rooms.get("r").unwrap().1.clone();
        let messages: Vec<&Fact> = log.iter().filter(|f| f.body.is_message()).collect();
        for limit in [1, 3, 10, 42, 43, 100] {
            for at in [0, 1, 7, 8, 50, 294, 295, 300, 301, 1000] {
                let q = HistoryQuery::Before(Anchor::Seq(at));
                let fast = newest_messages(&log, &q, limit).unwrap();
                let slow = select(&messages, q, limit);
                let seqs = |h: &History| h.facts.iter().map(|f| f.seq).collect::<Vec<_>>();
                assert_eq!(
                    (seqs(&fast), fast.more),
                    (seqs(&slow), slow.more),
                    "{at} {limit}"
                );
            }
            let q = HistoryQuery::Latest(None);
            let fast = newest_messages(&log, &q, limit).unwrap();
            assert_eq!(fast.facts.len(), limit.min(42));
            assert_eq!(fast.more, limit < 42);
        }
        let time = HistoryQuery::Before(Anchor::Time(5));
        assert!(
            newest_messages(&log, &time, 3).is_none(),
            "select answers it"
        );
    }

    #[test]
    fn rooms_are_bounded_too() {
        let s = MemoryStore::new(3, 2);
        s.submit(vec![said("a", 1), said("b", 2), said("c", 3)]);
        let latest = HistoryQuery::Latest(None);
        assert!(s.history("a", latest, 5, false).unwrap().facts.is_empty());
        assert_eq!(ids(s.history("c", latest, 5, false).unwrap()), [3]);
    }

    #[test]
    fn every_selector_picks_the_right_slice() {
        let all: Vec<Fact> = (1..=10).map(|n| said("r", n)).collect();
        let refs: Vec<&Fact> = all.iter().collect();
        let id = |n| Anchor::Id(MsgId(n));
        let pick = |q, limit| ids(select(&refs, q, limit));
        assert_eq!(pick(HistoryQuery::Latest(Some(id(7))), 10), [8, 9, 10]);
        assert_eq!(pick(HistoryQuery::Before(id(4)), 10), [1, 2, 3]);
        assert_eq!(pick(HistoryQuery::Before(id(9)), 2), [7, 8]);
        assert_eq!(pick(HistoryQuery::After(id(8)), 5), [9, 10]);
        assert_eq!(pick(HistoryQuery::Around(id(5)), 4), [3, 4, 5, 6]);
        assert_eq!(pick(HistoryQuery::Between(id(2), id(6)), 10), [3, 4, 5]);
        assert_eq!(pick(HistoryQuery::Between(id(6), id(2)), 2), [4, 5]);
        assert_eq!(pick(HistoryQuery::Before(Anchor::Time(3)), 10), [1, 2]);
    }
}
