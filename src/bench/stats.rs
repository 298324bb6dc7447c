//! What a run counts while it runs: shared atomic counters, sharded
//! latency histograms, the tally of errors by kind, and readings of
//! /proc (a process's RSS and CPU time).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

use hdrhistogram::Histogram;

/// Latencies are recorded in microseconds, up to an hour.
const HIST_MAX_US: u64 = 3_600_000_000;

/// Counters every connection task adds to.
#[derive(Default)]
pub struct Counters {
    /// Connections that finished connect + register + join.
    pub ready: AtomicUsize,
    /// Connections whose setup failed.
    pub failed: AtomicUsize,
    /// Connections never tried because an earlier error stopped connecting.
    pub skipped: AtomicUsize,
    /// Ready connections that closed before the traffic phase.
    pub lost_before_start: AtomicUsize,
    /// Ready connections that closed during the traffic phase.
    pub dropped: AtomicUsize,
    /// Messages written to the server (all phases).
    pub sent: AtomicU64,
    /// First deliveries of a message to a receiver (all phases).
    pub unique: AtomicU64,
    /// Deliveries received in the measured window (by receive time).
    pub in_window: AtomicU64,
    /// Messages that first reached a member of their room in the window
    /// (each counted once; see `Shared::reached`).
    pub messages_in_window: AtomicU64,
    pub duplicates: AtomicU64,
    /// Messages that arrived after a later one from the same sender.
    pub late: AtomicU64,
    /// Times a receiver saw a sender's sequence jump forward.
    pub gaps: AtomicU64,
    /// Payloads that should not have reached that receiver (other room,
    /// own echo when none is expected, unknown sender).
    pub unexpected: AtomicU64,
    /// Active senders still sending or flushing.
    pub pending_senders: AtomicUsize,
    /// Nanoseconds since the epoch: first connect attempt (u64::MAX: none yet).
    pub first_connect_ns: AtomicU64,
    /// Nanoseconds since the epoch: last connection ready.
    pub last_ready_ns: AtomicU64,
}

impl Counters {
    pub fn new() -> Counters {
        Counters {
            first_connect_ns: AtomicU64::new(u64::MAX),
            ..Default::default()
        }
    }

    pub fn note_connect(&self, ns: u64) {
        self.first_connect_ns.fetch_min(ns, Relaxed);
    }

    pub fn note_ready(&self, ns: u64) {
        self.last_ready_ns.fetch_max(ns, Relaxed);
        self.ready.fetch_add(1, Relaxed);
    }
}

/// Histograms split in shards so tasks on different threads rarely share a lock.
pub struct Shards(Vec<Mutex<Histogram<u64>>>);

impl Shards {
    pub fn new(n: usize) -> Shards {
        Shards((0..n.max(1)).map(|_| Mutex::new(new_histogram())).collect())
    }

    /// Records microsecond values into the shard chosen by `key`.
    pub fn record_all(&self, key: usize, values_us: impl IntoIterator<Item = u64>) {
        let mut values = values_us.into_iter().peekable();
        if values.peek().is_none() {
            return;
        }
        let mut h = self.0[key % self.0.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for v in values {
            h.saturating_record(v.max(1));
        }
    }

    /// All shards added together.
    pub fn merged(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for s in &self.0 {
            let h = s.lock().unwrap_or_else(|e| e.into_inner());
            // Same bounds on both sides: cannot fail.
            let _ = all.add(&*h);
        }
        all
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("constant, valid histogram bounds")
}

/// Errors by kind, with a count and the first example seen.
#[derive(Default)]
pub struct Errors(Mutex<BTreeMap<String, (u64, String)>>);

impl Errors {
    pub fn add(&self, kind: &str, example: &str) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let e = m
            .entry(kind.to_string())
            .or_insert_with(|| (0, example.chars().take(200).collect()));
        e.0 += 1;
    }

    /// (kind, count, example), by kind.
    pub fn list(&self) -> Vec<(String, u64, String)> {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.iter()
            .map(|(k, (n, ex))| (k.clone(), *n, ex.clone()))
            .collect()
    }
}

/// Memory of a process from /proc/PID/status, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mem {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

/// Reads VmRSS and VmHWM of `pid`; None if the process is gone.
pub fn read_mem(pid: u32) -> Option<Mem> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(parse_status(&s))
}

/// Parses the VmRSS and VmHWM lines of a /proc status file.
pub fn parse_status(s: &str) -> Mem {
    let kib = |key: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Mem {
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
    }
}

/// CPU time (user + system) of a process in seconds; None if unreadable.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let s = std::fs::read_to_string(path).ok()?;
    let ticks = parse_stat_ticks(&s)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(ticks as f64 / if hz > 0 { hz as f64 } else { 100.0 })
}

/// utime + stime from a /proc/PID/stat line (fields 14 and 15; the command
/// name in parentheses may contain spaces).
pub fn parse_stat_ticks(s: &str) -> Option<u64> {
    let after = &s[s.rfind(')')? + 1..];
    let mut f = after.split_whitespace();
    // After ")": state is field 3, so utime (14) is the 12th from here.
    let utime: u64 = f.nth(11)?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_parsing() {
        let status =
            "Name:\tnatter\nVmPeak:\t  99999 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(
            parse_status(status),
            Mem {
                rss_kib: 10240,
                hwm_kib: 20480
            }
        );
        let stat = "1234 (my (odd) prog) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0 1";
        assert_eq!(parse_stat_ticks(stat), Some(175));
        assert!(cpu_seconds(None).is_some());
    }

    #[test]
    fn shards_merge() {
        let s = Shards::new(3);
        s.record_all(0, [100, 200]);
        s.record_all(4, [300, 0]);
        let h = s.merged();
        assert_eq!(h.len(), 4);
        assert_eq!(h.min(), 1);
        assert!(h.max() >= 300);
    }

    #[test]
    fn errors_tally() {
        let e = Errors::default();
        e.add("EMFILE", "first");
        e.add("EMFILE", "second");
        e.add("refused", "! server full");
        assert_eq!(
            e.list(),
            vec![
                ("EMFILE".into(), 2, "first".into()),
                ("refused".into(), 1, "! server full".into())
            ]
        );
    }
}
