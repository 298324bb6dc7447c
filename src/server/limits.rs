//! Admission control: the most connections at once, overall and per
//! address, and how fast one address may open new ones. IPv6 addresses
//! count per /64 (what one host or customer usually gets), IPv4-mapped
//! ones as IPv4; addresses in `limit_exempt` (loopback by default) are
//! only counted in the total. A [`Permit`] is held for a connection's
//! life and frees its slot on drop.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::{CidrList, Config};

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    ServerFull(usize),
    TooManyFromIp(usize),
    TooFast,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::ServerFull(n) => write!(f, "server full ({n} connections); try again later"),
            Refusal::TooManyFromIp(n) => {
                write!(f, "too many connections from your address (limit {n})")
            }
            Refusal::TooFast => write!(
                f,
                "connecting too fast from your address; try again in a few seconds"
            ),
        }
    }
}

/// The key an address is counted under: IPv4 as is, IPv6 by its /64.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// One address's connections now and its connect-rate bucket.
struct PerAddress {
    open: usize,
    /// Connects still allowed at once, as of `at`.
    tokens: f64,
    at: Instant,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_addr: HashMap<IpAddr, PerAddress>,
}

/// The limits, from the config.
#[derive(Clone)]
struct Rules {
    max_total: usize,
    max_per_addr: usize,
    rate: f64,
    burst: f64,
    exempt: CidrList,
}

/// Counts connections against the limits (0 = unlimited).
#[derive(Clone)]
pub struct Admission {
    rules: Arc<Rules>,
    counts: Arc<Mutex<Counts>>,
}

/// One admitted connection's slot.
pub struct Permit {
    /// `None`: exempt, only counted in the total.
    key: Option<IpAddr>,
    counts: Arc<Mutex<Counts>>,
}

impl Admission {
    pub fn new(config: &Config) -> Admission {
        Admission {
            rules: Arc::new(Rules {
                max_total: config.max_clients,
                max_per_addr: config.max_per_ip,
                rate: config.connect_rate as f64,
                burst: config.connect_burst.max(1) as f64,
                exempt: config.limit_exempt.clone(),
            }),
            counts: Default::default(),
        }
    }

    pub fn admit(&self, ip: IpAddr) -> Result<Permit, Refusal> {
        self.admit_at(ip, Instant::now())
    }

    fn admit_at(&self, ip: IpAddr, now: Instant) -> Result<Permit, Refusal> {
        let r = &*self.rules;
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if c.total >= r.max_total {
            return Err(Refusal::ServerFull(r.max_total));
        }
        let key = (!r.exempt.contains(ip)).then(|| address_key(ip));
        if let Some(key) = key {
            if c.per_addr.len() > 4096 {
                // Forget addresses with nothing open and a full bucket.
                let (rate, burst) = (r.rate, r.burst);
                c.per_addr
                    .retain(|_, a| a.open > 0 || refill(a, now, rate, burst) < burst);
            }
            let a = c.per_addr.entry(key).or_insert(PerAddress {
                open: 0,
                tokens: r.burst,
                at: now,
            });
            if r.max_per_addr > 0 && a.open >= r.max_per_addr {
                return Err(Refusal::TooManyFromIp(r.max_per_addr));
            }
            if r.rate > 0.0 {
                a.tokens = refill(a, now, r.rate, r.burst);
                a.at = now;
                if a.tokens < 1.0 {
                    return Err(Refusal::TooFast);
                }
                a.tokens -= 1.0;
            }
            a.open += 1;
        }
        c.total += 1;
        Ok(Permit {
            key,
            counts: self.counts.clone(),
        })
    }

    /// Connections admitted and not yet closed.
    pub fn current(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

/// The tokens `a` has at `now`.
fn refill(a: &PerAddress, now: Instant, rate: f64, burst: f64) -> f64 {
    let elapsed = now.saturating_duration_since(a.at).as_secs_f64();
    (a.tokens + elapsed * rate).min(burst)
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.total -= 1;
        if let Some(a) = self.key.and_then(|k| c.per_addr.get_mut(&k)) {
            a.open = a.open.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config(max_total: usize, max_per_ip: usize, rate: u32, burst: u32) -> Config {
        Config {
            max_clients: max_total,
            max_per_ip,
            connect_rate: rate,
            connect_burst: burst,
            limit_exempt: "127.0.0.1/32".parse().unwrap(),
            ..Config::default()
        }
    }

    #[test]
    fn limits_and_release() {
        let a = Admission::new(&config(3, 2, 0, 1));
        let ip1: IpAddr = [10, 0, 0, 1].into();
        let ip2: IpAddr = [10, 0, 0, 2].into();
        let p1 = a.admit(ip1).unwrap();
        let _p2 = a.admit(ip1).unwrap();
        assert_eq!(a.admit(ip1).err(), Some(Refusal::TooManyFromIp(2)));
        let _p3 = a.admit(ip2).unwrap();
        assert_eq!(a.admit(ip2).err(), Some(Refusal::ServerFull(3)));
        drop(p1);
        assert!(a.admit(ip1).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64_and_exempt_addresses_only_in_the_total() {
        let a = Admission::new(&config(100, 2, 0, 1));
        let x: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let y: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let z: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _p = (a.admit(x).unwrap(), a.admit(y).unwrap());
        assert_eq!(
            a.admit(x).err(),
            Some(Refusal::TooManyFromIp(2)),
            "same /64"
        );
        assert!(a.admit(z).is_ok(), "another /64");
        let lo: IpAddr = [127, 0, 0, 1].into();
        let held: Vec<_> = (0..10).map(|_| a.admit(lo).unwrap()).collect();
        assert_eq!(a.current(), 12);
        drop(held);
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address_key(mapped), IpAddr::from([10, 0, 0, 1]));
    }

    #[test]
    fn connect_rate_per_address() {
        let a = Admission::new(&config(100, 0, 2, 3));
        let ip: IpAddr = [10, 0, 0, 1].into();
        let t0 = Instant::now();
        for _ in 0..3 {
            drop(a.admit_at(ip, t0).unwrap());
        }
        assert_eq!(a.admit_at(ip, t0).err(), Some(Refusal::TooFast));
        assert!(
            a.admit_at([10, 0, 0, 2].into(), t0).is_ok(),
            "others are not held up"
        );
        let later = t0 + Duration::from_millis(500);
        assert!(a.admit_at(ip, later).is_ok(), "one more after 1/rate");
        assert_eq!(a.admit_at(ip, later).err(), Some(Refusal::TooFast));
        assert!(a.admit_at([127, 0, 0, 1].into(), later).is_ok(), "exempt");
    }
}
