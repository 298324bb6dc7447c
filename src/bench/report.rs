//! What a run found: the [`Report`] (serialised as-is for `--json`) and its
//! human-readable table.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::net::Nofile;

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub proto: &'static str,
    pub target: String,
    pub params: Params,
    pub nofile: Option<Nofile>,
    pub setup: SetupReport,
    /// None when the scenario sends nothing (idle, storm).
    pub traffic: Option<TrafficReport>,
    /// End-to-end latency of the measured messages, from their scheduled send time.
    pub latency_ms: Option<Percentiles>,
    /// How late the bench itself sent (already part of `latency_ms`).
    pub send_lag_ms: Option<Percentiles>,
    pub bench_cpu: Cpu,
    pub server: Option<ServerReport>,
    pub errors: Vec<ErrorEntry>,
    pub warnings: Vec<String>,
    /// Per-second samples for the charts (with `BenchConfig::timeline`);
    /// written to the report directory, not into the JSON report.
    #[serde(skip)]
    pub run_data: Option<super::timeline::RunData>,
}

/// The parameters the run used.
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    pub clients: usize,
    pub rooms: usize,
    pub active_clients: usize,
    pub rate_per_client: f64,
    pub size_bytes: usize,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub echo: bool,
    pub connect_concurrency: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct SetupReport {
    /// Registered and in their room.
    pub ready: usize,
    pub failed: usize,
    /// Never tried: an earlier error stopped connecting.
    pub skipped: usize,
    /// Ready, then closed before traffic started.
    pub lost_before_start: usize,
    /// From the first connect attempt until the last client was in its room.
    pub seconds: f64,
    pub connects_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrafficReport {
    /// Messages fully written to the server (warm-up included).
    pub sent: u64,
    pub sent_per_s: f64,
    /// What the timetable asked for.
    pub offered_messages_per_s: f64,
    pub offered_deliveries_per_s: f64,
    /// Sum over sent messages of the room members that should receive each.
    pub expected_deliveries: u64,
    /// First deliveries received (all phases).
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Forward jumps in a sender's sequence seen by a receiver.
    pub sequence_gaps: u64,
    /// Payloads that reached a client they were not meant for.
    pub unexpected: u64,
    /// Deliveries received during the measured window.
    pub delivered_in_window: u64,
    pub deliveries_per_s: f64,
    /// Messages that reached their room during the measured window, each
    /// counted once (at the first member it reached). Against a server with a database
    /// (natter's default), a message reaches nobody before it is
    /// committed: this is the persisted-and-delivered throughput.
    pub messages_delivered_in_window: u64,
    pub messages_per_s: f64,
    /// Connections closed during traffic.
    pub dropped_connections: usize,
    pub drain_seconds: f64,
    /// Deliveries were still missing when `--drain` ran out.
    pub drain_timed_out: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    /// From a histogram of microseconds; None when empty.
    pub fn from_us(h: &Histogram<u64>) -> Option<Percentiles> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Percentiles {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        })
    }
}

/// CPU use in percent of one core (200 = two cores busy).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Cpu {
    pub setup_percent: Option<f64>,
    pub run_percent: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerReport {
    pub pid: u32,
    pub rss_before_kib: u64,
    /// None when /proc could not be read then (e.g. the bench was out of descriptors).
    pub rss_after_setup_kib: Option<u64>,
    pub rss_end_kib: Option<u64>,
    /// The larger of VmHWM and the highest VmRSS sampled.
    pub peak_rss_kib: u64,
    /// (RSS after setup − RSS before) / ready connections.
    pub rss_per_conn_bytes: Option<f64>,
    /// (RSS at the end − RSS before) / ready connections: for `idle`, after
    /// holding them `--duration` (long enough, quiet connections have
    /// parked by then: the server's `park_after`).
    pub rss_per_conn_end_bytes: Option<f64>,
    pub cpu: Cpu,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorEntry {
    pub kind: String,
    pub count: u64,
    pub example: String,
}

/// 1234567 → "1.23M".
fn si(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn pct(p: Option<f64>) -> String {
    p.map(|p| format!("{p:.0}%"))
        .unwrap_or_else(|| "n/a".into())
}

impl Report {
    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let p = &self.params;
        let _ = writeln!(
            o,
            "natter bench: {} over {} to {}",
            self.scenario, self.proto, self.target
        );
        let _ = write!(
            o,
            "  {} clients in {} room(s), {} sending {} msg/s each, {}-byte payloads",
            p.clients, p.rooms, p.active_clients, p.rate_per_client, p.size_bytes
        );
        let _ = writeln!(
            o,
            ", {} s measured after {} s warm-up, echo {}",
            p.duration_s, p.warmup_s, p.echo
        );
        let s = &self.setup;
        let _ = writeln!(
            o,
            "setup      {} ready, {} failed, {} not tried; {:.3} s from first connect to last joined ({} connections/s)",
            s.ready,
            s.failed,
            s.skipped,
            s.seconds,
            si(s.connects_per_s)
        );
        if s.lost_before_start > 0 {
            let _ = writeln!(
                o,
                "           {} ready connections closed before traffic started",
                s.lost_before_start
            );
        }
        if let Some(t) = &self.traffic {
            let _ = writeln!(
                o,
                "sent       {} messages ({}/s; timetable {}/s, {} deliveries/s offered)",
                t.sent,
                si(t.sent_per_s),
                si(t.offered_messages_per_s),
                si(t.offered_deliveries_per_s)
            );
            let _ = writeln!(
                o,
                "delivered  {} of {} expected; measured window: {} deliveries/s, {} messages/s \
                 (with a database: committed, then delivered)",
                t.delivered,
                t.expected_deliveries,
                si(t.deliveries_per_s),
                si(t.messages_per_s)
            );
            let _ = writeln!(
                o,
                "integrity  lost {}, duplicated {}, out of order {}, sequence gaps {}, unexpected {}, connections dropped {}",
                t.lost, t.duplicated, t.out_of_order, t.sequence_gaps, t.unexpected, t.dropped_connections
            );
            let _ = writeln!(
                o,
                "drain      {:.2} s after the last scheduled send{}",
                t.drain_seconds,
                if t.drain_timed_out {
                    " (gave up: --drain ran out)"
                } else {
                    ""
                }
            );
        }
        if let Some(l) = &self.latency_ms {
            let _ = writeln!(
                o,
                "latency    p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  ({} samples, from scheduled send time)",
                l.p50, l.p90, l.p99, l.p999, l.max, l.count
            );
        }
        if let Some(l) = &self.send_lag_ms {
            let _ = writeln!(
                o,
                "send lag   p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms  (how late the bench sent; included above)",
                l.p50, l.p99, l.max
            );
        }
        let _ = write!(
            o,
            "cpu        bench {} during setup, {} during traffic",
            pct(self.bench_cpu.setup_percent),
            pct(self.bench_cpu.run_percent)
        );
        if let Some(srv) = &self.server {
            let _ = write!(
                o,
                "; server {} / {}",
                pct(srv.cpu.setup_percent),
                pct(srv.cpu.run_percent)
            );
        }
        o.push('\n');
        if let Some(srv) = &self.server {
            let per = srv
                .rss_per_conn_bytes
                .map(|b| format!("{:.2} KiB per connection", b / 1024.0))
                .unwrap_or_else(|| "n/a per connection".into());
            let end = srv
                .rss_per_conn_end_bytes
                .map(|b| format!(" ({:.2} KiB per connection)", b / 1024.0))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "server     pid {}: RSS {} before, {} after setup ({per}), {} at end{end}, {} peak",
                srv.pid,
                mib(srv.rss_before_kib),
                srv.rss_after_setup_kib.map_or("n/a".into(), mib),
                srv.rss_end_kib.map_or("n/a".into(), mib),
                mib(srv.peak_rss_kib)
            );
        }
        if self.errors.is_empty() {
            let _ = writeln!(o, "errors     none");
        }
        for e in &self.errors {
            let _ = writeln!(o, "error      {} × {}", e.count, e.kind);
            if !e.example.is_empty() {
                let _ = writeln!(o, "             e.g. {}", e.example);
            }
        }
        for w in &self.warnings {
            let _ = writeln!(o, "warning    {w}");
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(si(1_234_567.0), "1.23M");
        assert_eq!(si(12_345.0), "12.3k");
        assert_eq!(si(999.0), "999");
        assert_eq!(si(2.5), "2.50");
        assert_eq!(si(0.0), "0");
    }

    #[test]
    fn percentiles_in_ms() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        assert!(Percentiles::from_us(&h).is_none());
        for v in 1..=1000u64 {
            h.record(v * 10).unwrap();
        }
        let p = Percentiles::from_us(&h).unwrap();
        assert_eq!(p.count, 1000);
        assert!((p.p50 - 5.0).abs() < 0.01, "{}", p.p50);
        assert!((p.max - 10.0).abs() < 0.01);
    }
}
