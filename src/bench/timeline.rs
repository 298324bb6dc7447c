//! A run over time, for `--report DIR`: latency per second (by scheduled
//! send time), the latency distribution, and the server's RSS and CPU and
//! the delivery rate sampled once a second. [`RunData`] is what one run
//! writes into the report directory (`LABEL.run.json`), so that runs
//! against different servers (natter, the ceiling relay, ngIRCd) can be
//! drawn on the same axes by [`super::charts`].

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Seconds of traffic tracked per second at most (later sends are not
/// charted; the run's totals still count them).
const MAX_SECONDS: usize = 3600;
/// Latencies are charted in microseconds, up to an hour, at 2 significant digits.
const HIST_MAX_US: u64 = 3_600_000_000;

/// One received message's latency, as a connection task collects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lat {
    /// Microseconds from its scheduled send time to its arrival.
    pub us: u64,
    /// Whole seconds from the start of traffic to its scheduled send time.
    pub second: u32,
    /// Scheduled in the measured window (it counts in the run's percentiles).
    pub measured: bool,
}

/// Per-second latency histograms, sharded like [`super::stats::Shards`].
pub struct Timeline(Vec<Mutex<Vec<Histogram<u64>>>>);

impl Timeline {
    pub fn new(shards: usize) -> Timeline {
        Timeline((0..shards.max(1)).map(|_| Mutex::new(Vec::new())).collect())
    }

    /// Records `lats` into the shard chosen by `key`.
    pub fn record(&self, key: usize, lats: &[Lat]) {
        if lats.is_empty() {
            return;
        }
        let mut secs = self.0[key % self.0.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for l in lats {
            let s = l.second as usize;
            if s >= MAX_SECONDS {
                continue;
            }
            if secs.len() <= s {
                secs.resize_with(s + 1, new_histogram);
            }
            secs[s].saturating_record(l.us.max(1));
        }
    }

    /// p50/p99/max of each second that has samples.
    pub fn per_second(&self) -> Vec<SecondLatency> {
        let mut all: Vec<Histogram<u64>> = Vec::new();
        for shard in &self.0 {
            let secs = shard.lock().unwrap_or_else(|e| e.into_inner());
            if all.len() < secs.len() {
                all.resize_with(secs.len(), new_histogram);
            }
            for (a, h) in all.iter_mut().zip(secs.iter()) {
                // Same bounds on both sides: cannot fail.
                let _ = a.add(h);
            }
        }
        all.iter()
            .enumerate()
            .filter(|(_, h)| !h.is_empty())
            .map(|(s, h)| SecondLatency {
                t: s as f64,
                count: h.len(),
                p50_ms: h.value_at_quantile(0.5) as f64 / 1000.0,
                p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
                max_ms: h.max() as f64 / 1000.0,
            })
            .collect()
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 2).expect("constant, valid histogram bounds")
}

/// The quantiles the distribution is kept at: every percent, then finer
/// towards the tail (99.9 %, 99.99 %), and the maximum.
pub fn cdf_quantiles() -> Vec<f64> {
    let mut q: Vec<f64> = (0..99).map(|i| i as f64 / 100.0).collect();
    q.extend((0..10).map(|i| 0.99 + i as f64 / 1000.0));
    q.extend((1..10).map(|i| 0.999 + i as f64 / 10_000.0));
    q.push(1.0);
    q
}

/// The latency distribution of a histogram of microseconds, as
/// (milliseconds, fraction of messages at or below it).
pub fn cdf_points(h: &Histogram<u64>) -> Vec<[f64; 2]> {
    if h.is_empty() {
        return Vec::new();
    }
    cdf_quantiles()
        .into_iter()
        .map(|q| [h.value_at_quantile(q) as f64 / 1000.0, q])
        .collect()
}

/// Latency of the messages scheduled in one second of traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondLatency {
    /// Seconds from the start of traffic (warm-up included).
    pub t: f64,
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// One once-a-second reading of the server and the bench.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceSample {
    /// Seconds from the start of traffic (of holding, for `idle`); setup is negative.
    pub t: f64,
    /// The server's VmRSS (with `--pid`).
    pub rss_kib: Option<u64>,
    /// The server's CPU use since the last sample, percent of one core.
    pub server_cpu: Option<f64>,
    /// The bench's own CPU use since the last sample.
    pub bench_cpu: Option<f64>,
    /// First deliveries per second since the last sample.
    pub deliveries_per_s: f64,
}

/// What one run writes into the report directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunData {
    /// The name it has on the charts (`--label`).
    pub label: String,
    pub scenario: String,
    pub proto: String,
    pub target: String,
    pub latency: Vec<SecondLatency>,
    /// (latency ms, fraction), measured window only.
    pub cdf: Vec<[f64; 2]>,
    pub resources: Vec<ResourceSample>,
}

/// The file a run with `label` writes: `LABEL.run.json`, with anything
/// but letters, digits, `.`, `-` and `_` replaced by `_`.
pub fn run_file(dir: &Path, label: &str) -> PathBuf {
    let safe: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("{safe}.run.json"))
}

/// Every `*.run.json` in `dir`, ordered by label.
pub fn read_runs(dir: &Path) -> std::io::Result<Vec<RunData>> {
    let mut runs = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_run = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".run.json"));
        if !is_run {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let run: RunData = serde_json::from_str(&text).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        runs.push(run);
    }
    runs.sort_by(|a, b| a.label.cmp(&b.label));
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_kept_apart_and_merged_across_shards() {
        let t = Timeline::new(3);
        let lat = |us, second| Lat {
            us,
            second,
            measured: true,
        };
        t.record(0, &[lat(1000, 0), lat(3000, 0)]);
        t.record(1, &[lat(2000, 0), lat(50_000, 2)]);
        let s = t.per_second();
        assert_eq!(s.len(), 2, "second 1 had nothing: {s:?}");
        assert_eq!((s[0].t, s[0].count), (0.0, 3));
        assert!((s[0].p50_ms - 2.0).abs() < 0.05, "{s:?}");
        assert!((s[0].max_ms - 3.0).abs() < 0.05, "{s:?}");
        assert_eq!((s[1].t, s[1].count), (2.0, 1));
        assert!((s[1].p99_ms - 50.0).abs() < 0.5, "{s:?}");
    }

    #[test]
    fn cdf_rises_to_one_at_the_maximum() {
        let mut h = Histogram::<u64>::new_with_bounds(1, HIST_MAX_US, 3).unwrap();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let pts = cdf_points(&h);
        assert!(pts
            .windows(2)
            .all(|w| w[0][0] <= w[1][0] && w[0][1] < w[1][1]));
        let last = pts.last().unwrap();
        assert_eq!(last[1], 1.0);
        assert!((last[0] - 1000.0).abs() < 1.0, "{last:?}");
        let median = pts.iter().find(|p| p[1] == 0.5).unwrap();
        assert!((median[0] - 500.0).abs() < 1.0, "{median:?}");
        assert!(cdf_points(&Histogram::new(2).unwrap()).is_empty());
    }

    #[test]
    fn run_files_are_named_safely() {
        let p = run_file(Path::new("/r"), "natter@127.0.0.1:7777");
        assert_eq!(p, Path::new("/r/natter_127.0.0.1_7777.run.json"));
    }
}
