//! Watching a run from the coordinator: the server's memory (sampled for
//! its peak), CPU time of the bench and of the server per phase, and the
//! progress line on stderr.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use super::stats::{cpu_seconds, read_mem, Mem};
use super::timeline::ResourceSample;

/// CPU seconds and wall time at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    at: Instant,
    bench: Option<f64>,
    server: Option<f64>,
}

/// Samples the server (when its pid is known) and the bench itself.
pub struct Monitor {
    pub pid: Option<u32>,
    /// Highest VmRSS seen, KiB.
    pub max_rss_kib: u64,
    /// Latest reading.
    pub last: Option<Mem>,
}

impl Monitor {
    pub fn new(pid: Option<u32>) -> Monitor {
        let mut m = Monitor {
            pid,
            max_rss_kib: 0,
            last: None,
        };
        m.sample();
        m
    }

    /// Reads the server's memory now; remembers the peak.
    pub fn sample(&mut self) -> Option<Mem> {
        let mem = read_mem(self.pid?)?;
        self.max_rss_kib = self.max_rss_kib.max(mem.rss_kib).max(mem.hwm_kib);
        self.last = Some(mem);
        Some(mem)
    }

    pub fn mark(&self) -> Mark {
        Mark {
            at: Instant::now(),
            bench: cpu_seconds(None),
            server: self.pid.and_then(|p| cpu_seconds(Some(p))),
        }
    }
}

impl Mark {
    /// (bench, server) CPU use between `self` and `later`, percent of one core.
    pub fn cpu_until(&self, later: &Mark) -> (Option<f64>, Option<f64>) {
        let wall = later.at.duration_since(self.at).as_secs_f64();
        let pct = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if wall > 0.0 => Some((b - a) / wall * 100.0),
            _ => None,
        };
        (pct(self.bench, later.bench), pct(self.server, later.server))
    }
}

/// Once-a-second readings of the server and the bench for the charts
/// (`--report`): RSS, CPU since the last reading, delivery rate.
pub struct Sampler {
    enabled: bool,
    last: Option<(Mark, u64)>,
    /// (when, reading) with `t` still unset: the zero is known only later.
    taken: Vec<(Instant, ResourceSample)>,
}

impl Sampler {
    pub fn new(enabled: bool) -> Sampler {
        Sampler {
            enabled,
            last: None,
            taken: Vec::new(),
        }
    }

    /// Takes a reading if a second has passed since the last one;
    /// `delivered` is the run's first-delivery count so far.
    pub fn tick(&mut self, mon: &Monitor, delivered: u64) {
        let due = self
            .last
            .is_none_or(|(prev, _)| prev.at.elapsed() >= Duration::from_secs(1));
        if !self.enabled || !due {
            return;
        }
        let now = mon.mark();
        let Some((prev, prev_delivered)) = self.last else {
            self.last = Some((now, delivered));
            return;
        };
        let secs = now.at.duration_since(prev.at).as_secs_f64();
        if secs < 1.0 {
            return;
        }
        let (bench_cpu, server_cpu) = prev.cpu_until(&now);
        let rss_kib = mon.pid.and_then(read_mem).map(|m| m.rss_kib);
        self.taken.push((
            now.at,
            ResourceSample {
                t: 0.0,
                rss_kib,
                server_cpu,
                bench_cpu,
                deliveries_per_s: delivered.saturating_sub(prev_delivered) as f64 / secs,
            },
        ));
        self.last = Some((now, delivered));
    }

    /// The readings, timed from `zero` (negative before it).
    pub fn samples(&self, zero: Instant) -> Vec<ResourceSample> {
        self.taken
            .iter()
            .map(|(at, s)| {
                let t = if *at >= zero {
                    at.duration_since(zero).as_secs_f64()
                } else {
                    -zero.duration_since(*at).as_secs_f64()
                };
                ResourceSample { t, ..s.clone() }
            })
            .collect()
    }
}

/// The one-line progress report on stderr: redrawn in place on a terminal,
/// one line per tick otherwise.
pub struct Progress {
    enabled: bool,
    tty: bool,
    next: Instant,
    every: Duration,
    last_mark: Option<Mark>,
    last_delivered: u64,
    drawn: bool,
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        let tty = std::io::stderr().is_terminal();
        Progress {
            enabled,
            tty,
            next: Instant::now(),
            every: Duration::from_secs(if tty { 1 } else { 2 }),
            last_mark: None,
            last_delivered: 0,
            drawn: false,
        }
    }

    /// Whether a line is due.
    pub fn due(&self) -> bool {
        self.enabled && Instant::now() >= self.next
    }

    /// Prints `text` plus the delivery rate and CPU since the last line.
    pub fn show(&mut self, text: &str, delivered: u64, mark: Mark) {
        if !self.enabled {
            return;
        }
        self.next = Instant::now() + self.every;
        let mut line = text.to_string();
        if let Some(prev) = self.last_mark {
            let secs = mark.at.duration_since(prev.at).as_secs_f64();
            if secs > 0.0 && delivered > self.last_delivered {
                let rate = (delivered - self.last_delivered) as f64 / secs;
                line.push_str(&format!(" ({:.0}/s)", rate));
            }
            let (b, s) = prev.cpu_until(&mark);
            if let Some(b) = b {
                line.push_str(&format!(" | cpu bench {b:.0}%"));
            }
            if let Some(s) = s {
                line.push_str(&format!(" server {s:.0}%"));
            }
        }
        self.last_mark = Some(mark);
        self.last_delivered = delivered;
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
            self.drawn = true;
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    /// Ends the in-place line before the report is printed.
    pub fn finish(&mut self) {
        if self.enabled && self.tty && self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}
