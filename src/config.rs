//! Every server setting, its default, and how it is read: defaults, then an
//! optional TOML file, then command-line flags / `NATTER_*` environment
//! variables. docs/OPERATING.md lists them all.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The server's configuration. Field names are the TOML keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the main listener (text, JSON lines, IRC detected by first line).
    pub listen: SocketAddr,
    /// Name the server reports in banners and IRC prefixes.
    pub server_name: String,
    /// Room every newcomer is put in.
    pub default_room: String,
    /// Most connections at once (registered or not).
    pub max_clients: usize,
    /// Most connections at once from one IP address; 0 = unlimited.
    pub max_per_ip: usize,
    /// Longest accepted input line in bytes, without its line ending.
    pub max_line_bytes: usize,
    /// Longest nickname in characters.
    pub max_nick_chars: usize,
    /// Longest room name in characters.
    pub max_room_chars: usize,
    /// Rooms with more members than this stop announcing every join and
    /// part, and newcomers get the member count instead of the full list.
    pub large_room: usize,
    /// Events queued for one client before it counts as a slow consumer and is disconnected.
    pub send_queue: usize,
    /// Flood control: lines per second one connection may send, sustained
    /// (0 = no limit). Lines beyond it wait; the connection is not read meanwhile.
    pub flood_rate: u32,
    /// Flood control: lines one connection may send at once before the rate applies.
    pub flood_burst: u32,
    /// Pending connections the kernel queues on each listener before
    /// `accept` (capped by the kernel's `net.core.somaxconn`).
    pub listen_backlog: u32,
    /// A connection that has not picked a nickname within this time is dropped.
    #[serde(deserialize_with = "de_duration")]
    pub registration_timeout: Duration,
    /// TCP keepalive idle time on accepted sockets (0 = off).
    #[serde(deserialize_with = "de_duration")]
    pub tcp_keepalive: Duration,
    /// A write to a client that makes no progress for this long ends the connection.
    #[serde(deserialize_with = "de_duration")]
    pub write_timeout: Duration,
    /// How often JSON and IRC clients are pinged.
    #[serde(deserialize_with = "de_duration")]
    pub ping_interval: Duration,
    /// A pinged client that sends nothing for this long after a ping is dropped.
    #[serde(deserialize_with = "de_duration")]
    pub ping_timeout: Duration,
    /// On shutdown, how long queued output may take to flush before sockets are closed.
    #[serde(deserialize_with = "de_duration")]
    pub shutdown_grace: Duration,
    /// Address of the IRC-only listener, or `off`.
    pub irc_listen: OptAddr,
    /// Server password IRC clients must give with `PASS` (none: no password).
    pub irc_password: Option<String>,
    /// Most rooms one person may be in at once (IRC users can join several).
    pub max_rooms_per_user: usize,
    /// On the main port, how long the text banner waits for the client to
    /// speak first (IRC and JSON clients do, and then never see it). 0: the
    /// banner is sent at once, as telnet users expect.
    #[serde(deserialize_with = "de_duration")]
    pub banner_delay: Duration,
}

/// A listen address that can be turned off: `HOST:PORT` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptAddr(pub Option<SocketAddr>);

impl std::str::FromStr for OptAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<OptAddr, String> {
        match s.trim() {
            "off" | "none" | "" => Ok(OptAddr(None)),
            a => a
                .parse()
                .map(|a| OptAddr(Some(a)))
                .map_err(|e| format!("bad address {a:?}: {e} (HOST:PORT or off)")),
        }
    }
}

impl std::fmt::Display for OptAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(a) => a.fmt(f),
            None => f.write_str("off"),
        }
    }
}

impl<'de> Deserialize<'de> for OptAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<OptAddr, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Parses `--irc-listen` (for clap).
pub fn parse_opt_addr(s: &str) -> Result<OptAddr, String> {
    s.parse()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7777)),
            server_name: "natter".into(),
            default_room: "lobby".into(),
            max_clients: 120_000,
            max_per_ip: 64,
            max_line_bytes: 4096,
            max_nick_chars: 30,
            max_room_chars: 50,
            large_room: 1000,
            send_queue: 4096,
            listen_backlog: 4096,
            flood_rate: 10,
            flood_burst: 20,
            registration_timeout: Duration::from_secs(60),
            tcp_keepalive: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(30),
            ping_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(5),
            irc_listen: OptAddr(Some(SocketAddr::from(([127, 0, 0, 1], 6667)))),
            irc_password: None,
            max_rooms_per_user: 100,
            banner_delay: Duration::ZERO,
        }
    }
}

impl Config {
    /// Time one line costs under flood control (zero: no limit).
    pub fn flood_interval(&self) -> Duration {
        match self.flood_rate {
            0 => Duration::ZERO,
            rate => Duration::from_secs(1) / rate,
        }
    }

    /// Reads a TOML file; keys it does not set keep their defaults.
    pub fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("bad config {}: {e}", path.display()))
    }
}

/// Parses `500ms`, `30s`, `5m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?}: expected e.g. 500ms, 30s, 5m"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "bad duration unit {other:?} in {s:?} (use ms, s, m, h)"
            ))
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("bad duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Secs(n) => Ok(Duration::from_secs(n)),
        Raw::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("7 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn toml_overrides_only_what_it_sets() {
        let c: Config = toml::from_str("max_per_ip = 3\nping_interval = \"250ms\"\n").unwrap();
        assert_eq!(c.max_per_ip, 3);
        assert_eq!(c.ping_interval, Duration::from_millis(250));
        assert_eq!(c.max_clients, Config::default().max_clients);
        assert!(toml::from_str::<Config>("no_such_key = 1").is_err());
    }

    #[test]
    fn irc_settings() {
        let c = Config::default();
        assert_eq!(c.irc_listen.to_string(), "127.0.0.1:6667");
        let c: Config =
            toml::from_str("irc_listen = \"off\"\nirc_password = \"s3cret\"\n").unwrap();
        assert_eq!(c.irc_listen, OptAddr(None));
        assert_eq!(c.irc_password.as_deref(), Some("s3cret"));
        let c: Config = toml::from_str("irc_listen = \"0.0.0.0:0\"\n").unwrap();
        assert_eq!(c.irc_listen.to_string(), "0.0.0.0:0");
        assert!(toml::from_str::<Config>("irc_listen = \"nowhere\"").is_err());
    }
}
