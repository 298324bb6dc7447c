//! Named scenarios and their default parameters, and the resolved
//! [`BenchConfig`] a run uses. Pure data: flags override defaults in
//! `BenchArgs::into_config`.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use super::driver::{Proto, TextOptions};
use super::payload::HEADER_LEN;

/// A named load shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// One room of 1000 members; everyone sends and everyone receives every message.
    Fanout,
    /// Many small rooms (10 members each).
    Rooms,
    /// Registered connections that say nothing: server memory per connection.
    Idle,
    /// 10k clients join one room at once: time until all are in.
    Storm,
    /// 100k connections in rooms of 10, 2 % of them talking.
    Mixed,
    /// Attacks one after another next to a canary member: server memory
    /// and the canary's latency (see `abuse`).
    Abuse,
}

/// The parameters a scenario starts from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Defaults {
    pub clients: usize,
    pub rooms: usize,
    /// Messages per second per active client.
    pub rate: f64,
    /// Share of clients that send, 0..=1.
    pub active: f64,
    /// Payload bytes per message.
    pub size: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Connections set up at once; None: all of them.
    pub connect_concurrency: Option<usize>,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Fanout => "fanout",
            Scenario::Rooms => "rooms",
            Scenario::Idle => "idle",
            Scenario::Storm => "storm",
            Scenario::Mixed => "mixed",
            Scenario::Abuse => "abuse",
        }
    }

    /// The documented defaults (docs/BENCHMARKS.md lists them).
    pub fn defaults(self) -> Defaults {
        let base = Defaults {
            clients: 1000,
            rooms: 1,
            rate: 1.0,
            active: 1.0,
            size: 64,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            connect_concurrency: Some(500),
        };
        match self {
            Scenario::Fanout => base,
            Scenario::Rooms => Defaults {
                clients: 10_000,
                rooms: 1000,
                ..base
            },
            Scenario::Idle => Defaults {
                clients: 10_000,
                rooms: 100,
                rate: 0.0,
                active: 0.0,
                duration: Duration::from_secs(5),
                warmup: Duration::ZERO,
                ..base
            },
            Scenario::Storm => Defaults {
                clients: 10_000,
                rooms: 1,
                rate: 0.0,
                active: 0.0,
                duration: Duration::ZERO,
                warmup: Duration::ZERO,
                connect_concurrency: None,
                ..base
            },
            Scenario::Mixed => Defaults {
                clients: 100_000,
                rooms: 10_000,
                active: 0.02,
                ..base
            },
            Scenario::Abuse => Defaults {
                duration: Duration::from_secs(15),
                ..base
            },
        }
    }
}

/// Everything one run needs, resolved and checked by [`BenchConfig::validate`].
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub scenario: Scenario,
    /// Loopback address of the server under test (the first of `targets`).
    pub target: SocketAddr,
    /// Every server under test (the nodes of a cluster): client `i` goes
    /// to `targets[i % len]`. At least `target`.
    pub targets: Vec<SocketAddr>,
    pub proto: Proto,
    pub clients: usize,
    pub rooms: usize,
    /// Messages per second per active client.
    pub rate: f64,
    /// Share of clients that send.
    pub active: f64,
    /// Payload bytes per message (at least the header).
    pub size: usize,
    /// The measured part of the run.
    pub duration: Duration,
    /// Sending before measuring starts.
    pub warmup: Duration,
    /// Longest wait after the last send for deliveries to arrive.
    pub drain: Duration,
    /// Connections in setup at once.
    pub connect_concurrency: usize,
    /// Longest one connection may take to connect, register and join.
    pub setup_timeout: Duration,
    /// Connections per source address (0: do not bind a source address).
    pub per_source: usize,
    pub room_prefix: String,
    pub nick_prefix: String,
    /// Whether a sender receives its own messages.
    pub echo: bool,
    pub text: TextOptions,
    /// The server's process id, for its memory and CPU.
    pub pid: Option<u32>,
    /// Print a progress line on stderr.
    pub progress: bool,
    /// Connect over TLS (the server's certificate is not checked: the
    /// bench measures, it does not trust).
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Keep per-second latency and resource samples for the charts
    /// (`Report::run_data`; `--report`).
    pub timeline: bool,
    /// This run's name on the charts.
    pub label: String,
    /// Written (the number of clients ready) once setup is over.
    pub ready_file: Option<std::path::PathBuf>,
    /// Traffic starts only once this file exists (waited for after setup:
    /// a cluster's nodes caught up, or several bench processes together).
    pub go_file: Option<std::path::PathBuf>,
}

impl BenchConfig {
    /// The scenario's defaults against `target`, speaking `proto`.
    pub fn new(scenario: Scenario, target: SocketAddr, proto: Proto) -> BenchConfig {
        let d = scenario.defaults();
        BenchConfig {
            scenario,
            target,
            targets: vec![target],
            proto,
            clients: d.clients,
            rooms: d.rooms,
            rate: d.rate,
            active: d.active,
            size: d.size,
            duration: d.duration,
            warmup: d.warmup,
            drain: Duration::from_secs(5),
            connect_concurrency: d.connect_concurrency.unwrap_or(d.clients),
            setup_timeout: Duration::from_secs(60),
            per_source: 50,
            room_prefix: "bench".into(),
            nick_prefix: "b".into(),
            echo: proto.default_echo(),
            text: TextOptions::default(),
            pid: None,
            progress: false,
            tls: None,
            timeline: false,
            label: target.to_string(),
            ready_file: None,
            go_file: None,
        }
    }

    /// Clients that send: the first `active_clients()` ids, spread over all rooms.
    pub fn active_clients(&self) -> usize {
        if self.rate <= 0.0 || self.active <= 0.0 {
            return 0;
        }
        ((self.clients as f64 * self.active).round() as usize).clamp(1, self.clients)
    }

    /// The room client `id` is in.
    pub fn room_of(&self, id: usize) -> usize {
        id % self.rooms
    }

    pub fn room_name(&self, room: usize) -> String {
        format!("{}{room}", self.room_prefix)
    }

    /// The server client `id` connects to.
    pub fn target_of(&self, id: usize) -> SocketAddr {
        match self.targets.len() {
            0 => self.target,
            n => self.targets[id % n],
        }
    }

    pub fn nick(&self, id: usize) -> String {
        format!("{}{id}", self.nick_prefix)
    }

    /// Checks the parameters make sense together.
    pub fn validate(&self) -> Result<(), String> {
        super::net::check_loopback(self.target)?;
        for t in &self.targets {
            super::net::check_loopback(*t)?;
        }
        if self.clients == 0 || self.clients > u32::MAX as usize {
            return Err("--clients must be at least 1".into());
        }
        if self.rooms == 0 || self.rooms > self.clients {
            return Err(format!(
                "--rooms must be between 1 and --clients ({})",
                self.clients
            ));
        }
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            return Err("--rate must be a number of messages per second, 0 or more".into());
        }
        if self.rate > 0.0 && 1e9 / self.rate < 1.0 {
            return Err("--rate is above 1e9 messages per second per client".into());
        }
        if !(0.0..=1.0).contains(&self.active) {
            return Err("--active is a share of clients between 0 and 1".into());
        }
        if self.size < HEADER_LEN {
            return Err(format!(
                "--size must be at least {HEADER_LEN} bytes (the payload header)"
            ));
        }
        if self.scenario == Scenario::Idle && self.pid.is_none() {
            return Err(
                "the idle scenario measures the server's memory per connection: give --pid PID"
                    .into(),
            );
        }
        if self.connect_concurrency == 0 {
            return Err("--connect-concurrency must be at least 1".into());
        }
        if self.proto == super::driver::Proto::Text
            && self.text.join.trim().is_empty()
            && self.rooms > 1
        {
            return Err(
                "without a --text-join command every client stays in the server's one room: use --rooms 1"
                    .into(),
            );
        }
        if self.nick_prefix.is_empty()
            || self
                .nick_prefix
                .starts_with(|c: char| c.is_ascii_digit() || c == '-')
            || self.nick_prefix.contains(char::is_whitespace)
        {
            return Err("--nick-prefix must be a non-empty word not starting with a digit".into());
        }
        if self.room_prefix.is_empty() || self.room_prefix.contains(char::is_whitespace) {
            return Err("--room-prefix must be a non-empty word".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> SocketAddr {
        "127.0.0.1:7777".parse().unwrap()
    }

    #[test]
    fn scenario_defaults() {
        let f = Scenario::Fanout.defaults();
        assert_eq!((f.clients, f.rooms, f.active), (1000, 1, 1.0));
        assert!(f.rate > 0.0);
        let r = Scenario::Rooms.defaults();
        assert_eq!(r.clients / r.rooms, 10);
        let i = Scenario::Idle.defaults();
        assert_eq!((i.clients, i.rate), (10_000, 0.0));
        let s = Scenario::Storm.defaults();
        assert_eq!(
            (s.clients, s.rooms, s.connect_concurrency),
            (10_000, 1, None)
        );
        let m = Scenario::Mixed.defaults();
        assert_eq!(m.clients, 100_000);
        assert!(m.active > 0.0 && m.active < 0.1);
        for s in [
            Scenario::Fanout,
            Scenario::Rooms,
            Scenario::Idle,
            Scenario::Storm,
            Scenario::Mixed,
        ] {
            let mut c = BenchConfig::new(s, target(), Proto::Text);
            c.pid = Some(1);
            assert_eq!(c.validate(), Ok(()), "{}", s.name());
        }
        assert_eq!(
            BenchConfig::new(Scenario::Storm, target(), Proto::Text).connect_concurrency,
            10_000
        );
    }

    #[test]
    fn clients_are_spread_over_the_targets_in_turn() {
        let mut c = BenchConfig::new(Scenario::Fanout, target(), Proto::Text);
        assert_eq!(c.target_of(5), target());
        let (a, b): (SocketAddr, SocketAddr) = (
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        );
        c.targets = vec![a, b];
        assert_eq!([c.target_of(0), c.target_of(1), c.target_of(2)], [a, b, a]);
        c.targets.push("10.0.0.1:3".parse().unwrap());
        assert!(c.validate().is_err(), "every target is on loopback");
    }

    #[test]
    fn active_clients_and_rooms() {
        let mut c = BenchConfig::new(Scenario::Mixed, target(), Proto::Text);
        assert_eq!(c.active_clients(), 2000);
        c.rate = 0.0;
        assert_eq!(c.active_clients(), 0);
        let mut c = BenchConfig::new(Scenario::Fanout, target(), Proto::Text);
        c.active = 0.0001;
        assert_eq!(c.active_clients(), 1);
        let c = BenchConfig::new(Scenario::Rooms, target(), Proto::Irc);
        assert_eq!((c.room_of(0), c.room_of(1001)), (0, 1));
        assert_eq!(c.room_name(7), "bench7");
        assert_eq!(c.nick(42), "b42");
        assert!(!c.echo);
    }

    #[test]
    fn bad_parameters_are_refused() {
        let ok = BenchConfig::new(Scenario::Fanout, target(), Proto::Text);
        let mut c = ok.clone();
        c.target = "10.1.2.3:7777".parse().unwrap();
        c.targets = vec![c.target];
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.size = 10;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.rooms = 2000;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.rooms = 2;
        c.text.join.clear();
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.active = 1.5;
        assert!(c.validate().is_err());
        let mut c = ok;
        c.nick_prefix = "1x".into();
        assert!(c.validate().is_err());
        let c = BenchConfig::new(Scenario::Idle, target(), Proto::Text);
        assert!(c.validate().unwrap_err().contains("--pid"));
    }
}
