//! The in-memory store: the last `per_room` facts of each room, gone on
//! restart. Bounded: a room's oldest facts are dropped first, and rooms
//! past `max_rooms` evict the one written to least recently.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::hub::{names, HistoryQuery, Store, StoreError};
use crate::proto::Fact;

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
    fn append(&self, facts: &[Fact]) -> Result<(), StoreError> {
        if self.per_room == 0 {
            return Ok(());
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for fact in facts {
            let Some(room) = &fact.room else { continue };
            inner.clock += 1;
            let (clock, key) = (inner.clock, names::fold(room));
            if !inner.rooms.contains_key(&key) && inner.rooms.len() >= self.max_rooms {
                let oldest = inner.rooms.iter().min_by_key(|(_, (t, _))| *t);
                if let Some(k) = oldest.map(|(k, _)| k.clone()) {
                    inner.rooms.remove(&k);
                }
            }
            let (touched, log) = inner.rooms.entry(key).or_default();
            *touched = clock;
            if log.len() >= self.per_room {
                log.pop_front();
            }
            log.push_back(fact.clone());
        }
        Ok(())
    }

    fn history(
        &self,
        room: &str,
        query: HistoryQuery,
        limit: usize,
    ) -> Result<Vec<Fact>, StoreError> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some((_, log)) = inner.rooms.get(&names::fold(room)) else {
            return Ok(Vec::new());
        };
        let facts: Vec<&Fact> = match query {
            HistoryQuery::Latest => log.iter().rev().take(limit).collect(),
            HistoryQuery::Before(id) => {
                log.iter().rev().filter(|f| f.id < id).take(limit).collect()
            }
            HistoryQuery::After(id) => {
                let mut after: Vec<&Fact> = log.iter().filter(|f| f.id > id).take(limit).collect();
                after.reverse();
                after
            }
        };
        Ok(facts.into_iter().rev().cloned().collect())
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

    fn ids(v: Vec<Fact>) -> Vec<u128> {
        v.into_iter().map(|f| f.id.0).collect()
    }

    #[test]
    fn keeps_the_last_lines_of_each_room_in_order() {
        let s = MemoryStore::new(3, 10);
        let facts: Vec<Fact> = (1..=5).map(|n| said("Lobby", n)).collect();
        s.append(&facts).unwrap();
        assert_eq!(
            ids(s.history("lobby", HistoryQuery::Latest, 10).unwrap()),
            [3, 4, 5]
        );
        assert_eq!(
            ids(s.history("LOBBY", HistoryQuery::Latest, 2).unwrap()),
            [4, 5]
        );
        let before = HistoryQuery::Before(MsgId(5));
        assert_eq!(ids(s.history("lobby", before, 1).unwrap()), [4]);
        let after = HistoryQuery::After(MsgId(3));
        assert_eq!(ids(s.history("lobby", after, 1).unwrap()), [4]);
        assert!(s
            .history("nowhere", HistoryQuery::Latest, 5)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn rooms_are_bounded_too() {
        let s = MemoryStore::new(3, 2);
        s.append(&[said("a", 1), said("b", 2), said("c", 3)])
            .unwrap();
        assert!(s.history("a", HistoryQuery::Latest, 5).unwrap().is_empty());
        assert_eq!(ids(s.history("c", HistoryQuery::Latest, 5).unwrap()), [3]);
    }
}
