//! Per-receiver sequence tracking: which messages of each sender in the
//! receiver's room arrived, and whether any came twice or out of order.
//! Pure data, no I/O.
//!
//! Each sender numbers its messages 0, 1, 2, … . A receiver keeps, per sender
//! slot, the next number it expects, plus a short list of gaps (numbers it
//! skipped). A message below the expected number fills a gap (it came out of
//! order) or, if no gap holds it, is a duplicate. What was never received
//! is counted globally as `expected - unique` at the end of the run.

/// The most gaps remembered per receiver. Beyond that the oldest gap is
/// forgotten: its messages stay lost, and if they turn up later they are
/// counted as duplicates.
pub const MAX_GAPS: usize = 1024;

/// What one received message was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The next expected one.
    InOrder,
    /// Later than expected: `skipped` messages before it have not (yet) arrived.
    Ahead { skipped: u32 },
    /// Earlier than the newest seen, and missing until now.
    Late,
    /// Already received.
    Duplicate,
}

impl Seen {
    /// Whether this delivery is a first one (counts towards unique deliveries).
    pub fn is_new(self) -> bool {
        !matches!(self, Seen::Duplicate)
    }
}

#[derive(Debug, Clone, Copy)]
struct Gap {
    slot: u32,
    /// First missing sequence number.
    from: u32,
    /// One past the last missing one.
    to: u32,
}

/// Sequence state of one receiver for every sender slot of its room.
#[derive(Debug, Default)]
pub struct SeqTracker {
    /// Next expected sequence number, per sender slot. Grown on demand.
    next: Vec<u32>,
    gaps: Vec<Gap>,
}

impl SeqTracker {
    /// Records message `seq` from the sender in `slot`.
    pub fn record(&mut self, slot: u32, seq: u32) -> Seen {
        let i = slot as usize;
        if i >= self.next.len() {
            self.next.resize(i + 1, 0);
        }
        let next = self.next[i];
        if seq == next {
            self.next[i] = next.wrapping_add(1);
            return Seen::InOrder;
        }
        if seq > next {
            if self.gaps.len() >= MAX_GAPS {
                self.gaps.remove(0);
            }
            self.gaps.push(Gap {
                slot,
                from: next,
                to: seq,
            });
            self.next[i] = seq.wrapping_add(1);
            return Seen::Ahead {
                skipped: seq - next,
            };
        }
        let Some(pos) = self
            .gaps
            .iter()
            .position(|g| g.slot == slot && g.from <= seq && seq < g.to)
        else {
            return Seen::Duplicate;
        };
        let g = self.gaps[pos];
        match (g.from < seq, seq + 1 < g.to) {
            (false, false) => {
                self.gaps.remove(pos);
            }
            (true, false) => self.gaps[pos].to = seq,
            (false, true) => self.gaps[pos].from = seq + 1,
            (true, true) => {
                self.gaps[pos].to = seq;
                self.gaps.push(Gap {
                    slot,
                    from: seq + 1,
                    to: g.to,
                });
            }
        }
        Seen::Late
    }

    /// Messages skipped and not (yet) filled in.
    pub fn missing(&self) -> u64 {
        self.gaps.iter().map(|g| (g.to - g.from) as u64).sum()
    }

    /// Distinct messages received from `slot` (given no forgotten gaps).
    pub fn received_from(&self, slot: u32) -> u64 {
        let next = self.next.get(slot as usize).copied().unwrap_or(0) as u64;
        let missing: u64 = self
            .gaps
            .iter()
            .filter(|g| g.slot == slot)
            .map(|g| (g.to - g.from) as u64)
            .sum();
        next - missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream() {
        let mut t = SeqTracker::default();
        for s in 0..100 {
            assert_eq!(t.record(3, s), Seen::InOrder);
        }
        assert_eq!(t.received_from(3), 100);
        assert_eq!(t.received_from(0), 0);
        assert_eq!(t.missing(), 0);
    }

    #[test]
    fn loss_shows_as_gap() {
        let mut t = SeqTracker::default();
        t.record(0, 0);
        assert_eq!(t.record(0, 4), Seen::Ahead { skipped: 3 });
        assert_eq!(t.missing(), 3);
        assert_eq!(t.received_from(0), 2);
    }

    #[test]
    fn reorder_fills_gaps_and_dups_are_caught() {
        let mut t = SeqTracker::default();
        t.record(1, 0);
        t.record(1, 5); // 1..5 missing
        assert_eq!(t.record(1, 3), Seen::Late); // splits into 1..3 and 4..5
        assert_eq!(t.record(1, 3), Seen::Duplicate);
        assert_eq!(t.record(1, 1), Seen::Late);
        assert_eq!(t.record(1, 4), Seen::Late);
        assert_eq!(t.record(1, 2), Seen::Late);
        assert_eq!(t.missing(), 0);
        assert_eq!(t.record(1, 5), Seen::Duplicate);
        assert_eq!(t.record(1, 0), Seen::Duplicate);
        assert_eq!(t.record(1, 6), Seen::InOrder);
        assert_eq!(t.received_from(1), 7);
    }

    #[test]
    fn senders_are_independent() {
        let mut t = SeqTracker::default();
        t.record(0, 0);
        t.record(1, 0);
        t.record(1, 2);
        assert_eq!(t.record(0, 1), Seen::InOrder);
        assert_eq!(t.record(0, 2), Seen::InOrder);
        assert_eq!(t.record(1, 1), Seen::Late);
        assert_eq!(t.record(0, 1), Seen::Duplicate);
    }

    #[test]
    fn gap_memory_is_bounded() {
        let mut t = SeqTracker::default();
        for i in 0..(MAX_GAPS as u32 + 10) {
            t.record(0, i * 2 + 1); // skips every even number
        }
        assert_eq!(t.gaps.len(), MAX_GAPS);
        // The oldest gaps were forgotten: their late arrival reads as a duplicate.
        assert_eq!(t.record(0, 0), Seen::Duplicate);
        assert_eq!(t.record(0, (MAX_GAPS as u32 + 9) * 2), Seen::Late);
    }
}
