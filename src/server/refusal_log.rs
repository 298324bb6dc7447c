//! Refused connections, logged in summary so that a flood of them costs a
//! few log lines, not one each: the first refusal of a kind from an
//! address is logged at once; further ones within `refusal_log_interval`
//! are only counted, and when the interval ends one line says how many
//! ("refused 1234 more connections from 1.2.3.4 in the last 10s: too many
//! connections from your address (limit 64)"). Pure bookkeeping: the
//! caller logs the lines and calls [`RefusalLog::due`] on a timer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::limits::Refusal;

/// Most addresses counted one by one; refusals from further addresses
/// are counted together ("from other addresses"), so a flood from many
/// addresses cannot grow this without bound.
pub const MAX_TRACKED: usize = 1024;

/// What a refusal is counted under: its address (`None`: one of the
/// addresses beyond [`MAX_TRACKED`]) and its kind.
type Key = (Option<IpAddr>, u8);

/// Refusals counted since an address's last log line.
struct Window {
    /// When the interval started.
    since: Instant,
    /// Refusals not logged yet.
    unlogged: u64,
    /// The last refusal, for the summary's wording.
    last: Refusal,
}

/// The counts behind the summarised log lines.
pub struct RefusalLog {
    interval: Duration,
    windows: HashMap<Key, Window>,
}

fn kind(r: &Refusal) -> u8 {
    match r {
        Refusal::ServerFull(_) => 0,
        Refusal::TooManyFromIp(_) => 1,
        Refusal::TooFast => 2,
    }
}

impl RefusalLog {
    /// Summaries every `interval` (zero: every refusal is logged).
    pub fn new(interval: Duration) -> RefusalLog {
        RefusalLog {
            interval,
            windows: HashMap::new(),
        }
    }

    /// A connection from `ip` was refused at `now`; the line to log now,
    /// if any (the first of its kind from that address in an interval).
    pub fn note(&mut self, ip: IpAddr, refusal: Refusal, now: Instant) -> Option<String> {
        if self.interval.is_zero() {
            return Some(format!("refused {ip}: {refusal}"));
        }
        let mut key = (Some(ip), kind(&refusal));
        if !self.windows.contains_key(&key) && self.windows.len() >= MAX_TRACKED {
            key.0 = None;
        }
        match self.windows.get_mut(&key) {
            Some(w) => {
                w.unlogged += 1;
                w.last = refusal;
                None
            }
            None => {
                let w = Window {
                    since: now,
                    unlogged: u64::from(key.0.is_none()),
                    last: refusal,
                };
                self.windows.insert(key, w);
                // Other addresses are only ever summarised.
                key.0.map(|ip| format!("refused {ip}: {refusal}"))
            }
        }
    }

    /// The summaries of intervals that ended by `now`. An address still
    /// refused starts a new interval; a quiet one is forgotten, so its
    /// next refusal is logged at once again.
    pub fn due(&mut self, now: Instant) -> Vec<String> {
        let interval = self.interval;
        let mut lines = Vec::new();
        self.windows.retain(|(ip, _), w| {
            if now.duration_since(w.since) < interval {
                return true;
            }
            if w.unlogged == 0 {
                return false;
            }
            let from = ip.map_or_else(|| "other addresses".to_string(), |ip| ip.to_string());
            let (n, more) = (w.unlogged, if ip.is_some() { " more" } else { "" });
            let s = if n == 1 { "" } else { "s" };
            lines.push(format!(
                "refused {n}{more} connection{s} from {from} in the last {}: {}",
                secs(interval),
                w.last
            ));
            w.since = now;
            w.unlogged = 0;
            true
        });
        lines
    }
}

/// `10s`, `1.5s`, `250ms`.
fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_flood_is_one_line_then_one_summary_per_interval() {
        let t0 = Instant::now();
        let sec = Duration::from_secs(1);
        let mut log = RefusalLog::new(Duration::from_secs(10));
        let flood = Refusal::TooManyFromIp(64);
        let a = ip("192.0.2.7");
        assert_eq!(
            log.note(a, flood, t0).as_deref(),
            Some("refused 192.0.2.7: too many connections from your address (limit 64)")
        );
        for _ in 0..1233 {
            assert_eq!(log.note(a, flood, t0 + sec), None);
        }
        // Another kind from the same address is its own line.
        assert!(log.note(a, Refusal::TooFast, t0 + sec).is_some());
        assert!(
            log.due(t0 + 9 * sec).is_empty(),
            "not before the interval ends"
        );
        assert_eq!(
            log.due(t0 + 10 * sec),
            [
                "refused 1233 more connections from 192.0.2.7 in the last 10s: \
              too many connections from your address (limit 64)"
            ]
        );
        // Still refused: counted again; then quiet: forgotten.
        log.note(a, flood, t0 + 11 * sec);
        assert_eq!(log.due(t0 + 20 * sec).len(), 1);
        assert!(log.due(t0 + 30 * sec).is_empty());
        assert!(
            log.note(a, flood, t0 + 31 * sec).is_some(),
            "logged at once again"
        );
    }

    #[test]
    fn many_addresses_are_counted_together_past_the_limit() {
        let t0 = Instant::now();
        let mut log = RefusalLog::new(Duration::from_secs(10));
        let mut logged = 0;
        for i in 0..(MAX_TRACKED as u32 + 500) {
            let a = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            logged += usize::from(log.note(a, Refusal::TooFast, t0).is_some());
        }
        assert_eq!(logged, MAX_TRACKED);
        assert!(log.windows.len() <= MAX_TRACKED + 1);
        let lines = log.due(t0 + Duration::from_secs(10));
        assert_eq!(
            lines,
            [
                "refused 500 connections from other addresses in the last 10s: \
              connecting too fast from your address; try again in a few seconds"
            ]
        );
    }

    #[test]
    fn zero_interval_logs_every_refusal() {
        let mut log = RefusalLog::new(Duration::ZERO);
        let now = Instant::now();
        for _ in 0..3 {
            assert!(log.note(ip("::1"), Refusal::ServerFull(5), now).is_some());
        }
        assert!(log.due(now).is_empty());
    }
}
