//! Every server setting, declared once: the [`Config`] struct below is at the
//! same time the TOML file's schema (field name = key), the `natter serve`
//! flags (`--field-name`), their `NATTER_FIELD_NAME` variables, the defaults
//! (`default_value`, also what [`Config::default`] returns) and the help text
//! (the doc comment, shown by `natter serve --help`).
//!
//! Precedence, highest first: a command-line flag, its `NATTER_*`
//! environment variable, the `--config` TOML file, the default.
//! docs/OPERATING.md lists every setting (a test keeps it in step).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Args, Command, FromArgMatches};
use serde::{Deserialize, Deserializer};

pub use crate::proto::oper::Opers;

/// Declares [`Config`] as written and, from the same field list,
/// [`Config::NAMES`] and [`Config::take_given`], so that adding a field is
/// all it takes to add a setting.
macro_rules! settings {
    (
        $(#[$meta:meta])*
        pub struct Config {
            $(
                $(#[$field_meta:meta])*
                pub $field:ident: $ty:ty,
            )*
        }
    ) => {
        $(#[$meta])*
        pub struct Config {
            $(
                $(#[$field_meta])*
                pub $field: $ty,
            )*
        }

        impl Config {
            /// Every setting's name: the field, the TOML key and the clap
            /// argument id (the flag is the name with `-` for `_`).
            pub const NAMES: &'static [&'static str] = &[$(stringify!($field)),*];

            /// Replaces each setting named in `given` with its value in `from`.
            fn take_given(&mut self, from: Config, given: &[&str]) {
                $(
                    if given.contains(&stringify!($field)) {
                        self.$field = from.$field;
                    }
                )*
            }
        }
    };
}

settings! {
    /// The server's configuration, one field per setting.
    #[derive(Debug, Clone, PartialEq, Eq, Deserialize, Args)]
    #[serde(default, deny_unknown_fields)]
    #[command(next_help_heading = "Settings")]
    pub struct Config {
        /// Address of the main listener: text, JSON lines and IRC, told apart
        /// by the first line (port 0: any free port, logged on start). HOST
        /// may be a name (`localhost:7777`): its first address is used.
        #[arg(
            long,
            env = "NATTER_LISTEN",
            value_name = "HOST:PORT",
            default_value = "127.0.0.1:7777",
            value_parser = parse_listen,
        )]
        #[serde(deserialize_with = "de_listen")]
        pub listen: SocketAddr,
        /// Name the server reports in banners and IRC prefixes.
        #[arg(long, env = "NATTER_SERVER_NAME", value_name = "NAME", default_value = "natter")]
        pub server_name: String,
        /// One line about the server, shown by IRC's LINKS and VERSION.
        #[arg(
            long,
            env = "NATTER_SERVER_INFO",
            value_name = "TEXT",
            default_value = "natter chat server"
        )]
        pub server_info: String,
        /// Name of the pseudo-server IRC clients see natter's built-in
        /// services (NickServ, ChanServ) on: LINKS, WHOIS, their notices'
        /// host (unset: `services.` and the server name).
        #[arg(long, env = "NATTER_SERVICES_NAME", value_name = "NAME")]
        pub services_name: Option<String>,
        /// Room every text and JSON newcomer is put in (empty: none; IRC
        /// users too with irc_auto_join).
        #[arg(long, env = "NATTER_DEFAULT_ROOM", value_name = "ROOM", default_value = "lobby")]
        pub default_room: String,
        /// Put IRC users in the default room when they register (IRC clients
        /// normally join what they ask for, so off by default).
        #[arg(
            long,
            env = "NATTER_IRC_AUTO_JOIN",
            value_name = "BOOL",
            default_value = "false",
            action = clap::ArgAction::Set,
        )]
        pub irc_auto_join: bool,
        /// Remember, per account, the rooms its IRC sessions are in (parting
        /// forgets one, quitting does not), and put an IRC session that
        /// logs in back in them (rooms whose key, bans, invite-only or limit
        /// refuse it are skipped, told and forgotten).
        #[arg(
            long,
            env = "NATTER_REJOIN_ON_LOGIN",
            value_name = "BOOL",
            default_value = "true",
            action = clap::ArgAction::Set,
        )]
        pub rejoin_on_login: bool,
        /// Most connections at once (registered or not); more are refused.
        #[arg(long, env = "NATTER_MAX_CLIENTS", value_name = "N", default_value = "120000")]
        pub max_clients: usize,
        /// Most connections at once from one address (IPv6: one /64), 0 =
        /// unlimited; addresses in limit_exempt are not counted.
        #[arg(long, env = "NATTER_MAX_PER_IP", value_name = "N", default_value = "64")]
        pub max_per_ip: usize,
        /// New connections per second one address (IPv6: one /64) may open,
        /// sustained, once connect_burst is used up (0 = no limit).
        #[arg(long, env = "NATTER_CONNECT_RATE", value_name = "N", default_value = "1")]
        pub connect_rate: u32,
        /// New connections one address may open at once before connect_rate
        /// applies.
        #[arg(long, env = "NATTER_CONNECT_BURST", value_name = "N", default_value = "16")]
        pub connect_burst: u32,
        /// Addresses the per-address limits (max_per_ip, connect_rate) do not
        /// apply to: comma-separated CIDRs, or none.
        #[arg(
            long,
            env = "NATTER_LIMIT_EXEMPT",
            value_name = "CIDR,…",
            default_value = "127.0.0.0/8,::1/128",
            value_parser = parse_cidrs,
        )]
        pub limit_exempt: CidrList,
        /// Longest accepted input line in bytes, without its line ending
        /// (IRC sessions use IRC's own limit).
        #[arg(long, env = "NATTER_MAX_LINE_BYTES", value_name = "BYTES", default_value = "4096")]
        pub max_line_bytes: usize,
        /// Longest nickname in characters.
        #[arg(long, env = "NATTER_MAX_NICK_CHARS", value_name = "N", default_value = "30")]
        pub max_nick_chars: usize,
        /// Longest room name in characters.
        #[arg(long, env = "NATTER_MAX_ROOM_CHARS", value_name = "N", default_value = "50")]
        pub max_room_chars: usize,
        /// Rooms with more members than this stop announcing every join and
        /// part, and newcomers get the member count instead of the full list.
        #[arg(long, env = "NATTER_LARGE_ROOM", value_name = "N", default_value = "1000")]
        pub large_room: usize,
        /// Rooms whose names list (what a join shows) is kept made between
        /// joins, the ones joined last: a join then adds its newcomer to
        /// the list instead of making it again. Each costs about 90 bytes
        /// per member while kept; 0: none kept.
        #[arg(long, env = "NATTER_NAMES_CACHE", value_name = "ROOMS", default_value = "8")]
        pub names_cache: usize,
        /// Send queue of one client, in bytes of what will be written to it
        /// (output its socket has not taken yet included); a client that
        /// lets it overflow is disconnected as a slow consumer.
        #[arg(
            long,
            env = "NATTER_SENDQ",
            value_name = "BYTES",
            default_value = "96KiB",
            value_parser = parse_size,
        )]
        #[serde(deserialize_with = "de_size")]
        pub sendq: usize,
        /// How long a client's send queue, once emptied, keeps the buffer
        /// it grew (for the next burst) before giving it back: an idle
        /// client holds none (a join storm's notices left ~0.4 KiB in each);
        /// 0: given back whenever it is emptied.
        #[arg(
            long,
            env = "NATTER_SENDQ_KEEP",
            value_name = "DURATION",
            default_value = "1s",
            value_parser = parse_duration,
        )]
        #[serde(deserialize_with = "de_duration")]
        pub sendq_keep: Duration,
        /// How long a plain-TCP connection stays quiet (nothing read,
        /// nothing written) before it gives up its task and waits in the
        /// worker's shared poller until its socket is readable, its
        /// mailbox gets something or one of its timers is due (it parks
        /// after between this and twice this of silence); 0: never.
        #[arg(
            long,
            env = "NATTER_PARK_AFTER",
            value_name = "DURATION",
            default_value = "5s",
            value_parser = parse_duration,
        )]
        #[serde(deserialize_with = "de_duration")]
        pub park_after: Duration,
        /// Ingest paced by egress: deliveries waiting server-wide in the
        /// send queues of clients that keep up, above which connections
        /// stop reading their sockets until the queues drain to half of
        /// it (what waits inside the server is bounded; clients that do
        /// not read are bounded by their sendq and never count); 0: off
        /// (the default until a quiet-box measurement shows it helps).
        #[arg(
            long,
            env = "NATTER_INGEST_BUDGET",
            value_name = "DELIVERIES",
            default_value = "0"
        )]
        pub ingest_budget: usize,
        /// Most lines to one room pushed to its members as one entry of
        /// each member's queue: lines said one after another wait until
        /// the worker has run the tasks that were ready, or until this
        /// many, and nothing else is queued ahead of them; 0 or 1: each
        /// line is pushed at once.
        #[arg(long, env = "NATTER_LINE_BATCH", value_name = "LINES", default_value = "64")]
        pub line_batch: usize,
        /// Threads that run connections and the chat (tokio workers); 0:
        /// one per core but one (at least one), which leaves a core to the
        /// kernel's network work, the store's writer and the log.
        #[arg(long, env = "NATTER_WORKERS", value_name = "N", default_value = "0")]
        pub workers: usize,
        /// A connection woken by output lets the worker's other ready
        /// tasks run before it writes (one pass of the scheduler), so that
        /// what a pass queues for it leaves in one write: fewer, larger
        /// writes under load, a pass of delay when idle (never when a full
        /// write's worth is queued already).
        #[arg(
            long,
            env = "NATTER_DEFER_WRITES",
            value_name = "BOOL",
            default_value = "true",
            action = clap::ArgAction::Set,
        )]
        pub defer_writes: bool,
        /// Receive queue of one client: bytes of input read but not yet
        /// handled (waiting for flood control); past it the client is
        /// disconnected with "Excess Flood".
        #[arg(
            long,
            env = "NATTER_RECVQ",
            value_name = "BYTES",
            default_value = "16KiB",
            value_parser = parse_size,
        )]
        #[serde(deserialize_with = "de_size")]
        pub recvq: usize,
        /// Kernel send buffer of each client socket (SO_SNDBUF; Linux
        /// doubles it); 0: the kernel's own, which grows to megabytes for a
        /// client that does not read.
        #[arg(
            long,
            env = "NATTER_SOCKET_SENDBUF",
            value_name = "BYTES",
            default_value = "64KiB",
            value_parser = parse_size,
        )]
        #[serde(deserialize_with = "de_size")]
        pub socket_sendbuf: usize,
        /// Flood control: lines per second one connection may send, sustained
        /// (0 = no limit). Lines beyond it wait; the connection is not read
        /// meanwhile.
        #[arg(long, env = "NATTER_FLOOD_RATE", value_name = "N", default_value = "10")]
        pub flood_rate: u32,
        /// Flood control: lines one connection may send at once before the
        /// rate applies.
        #[arg(long, env = "NATTER_FLOOD_BURST", value_name = "N", default_value = "20")]
        pub flood_burst: u32,
        /// Pending connections the kernel queues on each listener before
        /// accept (capped by the kernel's net.core.somaxconn).
        #[arg(long, env = "NATTER_LISTEN_BACKLOG", value_name = "N", default_value = "4096")]
        pub listen_backlog: u32,
        /// A connection that has not picked a nickname within this time is
        /// dropped.
        #[arg(
            long,
            env = "NATTER_REGISTRATION_TIMEOUT",
            value_name = "DURATION",
            default_value = "60s",
            value_parser = parse_duration,
        )]
        #[serde(deserialize_with = "de_duration")]
        pub registration_timeout: Duration,
        /// TCP keepalive idle time on accepted sockets (0 = off).
        #[arg(
            long,
            env = "NATTER_TCP_KEEPALIVE",
            value_name = "DURATION",
            default_value = "60s",
            value_parser = parse_duration,
        )]
        #[serde(deserialize_with = "de_duration")]
        pub tcp_keepalive: Duration,
        /// A write to a client that makes no progress for this long ends the
        /// connection.
        #[arg(
            long,
            env = "NATTER_WRITE_TIMEOUT",
            value_name = "DURATION",
            default_value = "30s",
            value_parser = parse_duration,
        )]
        #[serde(deserialize_with = "de_duration")]
        pub write_timeout: Duration,
        /// How often JSON and IRC clients are pinged.
        #[arg(
            long,
            env = "NATTER_PING_INTERVAL",
            value_name = "DURATION",
            default_value = "30s",
            value_parser = parse_duration,
        )]
        #[serde(deserialize_with = "de_duration")]
        pub ping_interval: Duration,
        /// A pinged client that sends nothing for this long after a ping is
        /// dropped.
        #[arg(
            long,
            env = "NATTER_PING_TIMEOUT",
            value_name = "DURATION",
            default_value = "60s",
            value_parser = parse_duration,
        )]
        #[serde(deserialize_with = "de_duration")]
        pub ping_timeout: Duration,
        /// How often clients of the original JSON dialect are sent their
        /// heartbeat, the two bytes `::` (they answer with `keep`).
        #[arg(
            long,
            env = "NATTER_ORIGINAL_PING_INTERVAL",
            value_name = "DURATION",
            default_value = "3s",
            value_parser = parse_duration,
        )]
        #[serde(deserialize_with = "de_duration")]
        pub original_ping_interval: Duration,
        /// A client of the original JSON dialect that sends nothing (no
        /// `keep`) for this long is dropped.
        #[arg(
            long,
            env = "NATTER_ORIGINAL_PING_TIMEOUT",
            value_name = "DURATION",
            default_value = "10s",
            value_parser = parse_duration,
        )]
        #[serde(deserialize_with = "de_duration")]
        pub original_ping_timeout: Duration,
        /// On shutdown, how long queued output may take to flush before
        /// sockets are closed.
        #[arg(
            long,
            env = "NATTER_SHUTDOWN_GRACE",
            value_name = "DURATION",
            default_value = "5s",
            value_parser = parse_duration,
        )]
        #[serde(deserialize_with = "de_duration")]
        pub shutdown_grace: Duration,
        /// How often all freed memory is given back to the OS at once
        /// (jemalloc also does it on its own after a second); 0: never.
        #[arg(
            long,
            env = "NATTER_MEMORY_TRIM",
            value_name = "DURATION",
            default_value = "10s",
            value_parser = parse_duration,
        )]
        #[serde(deserialize_with = "de_duration")]
        pub memory_trim: Duration,
        /// Refused connections are logged in summary: the first of a kind
        /// from an address at once, then one line per this interval saying
        /// how many more were refused; 0: every one is logged.
        #[arg(
            long,
            env = "NATTER_REFUSAL_LOG_INTERVAL",
            value_name = "DURATION",
            default_value = "10s",
            value_parser = parse_duration,
        )]
        #[serde(deserialize_with = "de_duration")]
        pub refusal_log_interval: Duration,
        /// Address of the IRC-only listener, or off (port 0: any free port,
        /// logged on start).
        #[arg(
            long,
            env = "NATTER_IRC_LISTEN",
            value_name = "HOST:PORT|off",
            default_value = "127.0.0.1:6667",
            value_parser = parse_opt_addr,
        )]
        pub irc_listen: OptAddr,
        /// Server password IRC clients must give with PASS (unset: no
        /// password). Prefer the variable or the file: a flag shows in ps.
        #[arg(long, env = "NATTER_IRC_PASSWORD", value_name = "PASSWORD", hide_env_values = true)]
        pub irc_password: Option<String>,
        /// Most rooms one person may be in at once (IRC users can join
        /// several).
        #[arg(long, env = "NATTER_MAX_ROOMS_PER_USER", value_name = "N", default_value = "100")]
        pub max_rooms_per_user: usize,
        /// Most rooms on the server; joining a new one beyond it is refused.
        #[arg(long, env = "NATTER_MAX_ROOMS", value_name = "N", default_value = "10000")]
        pub max_rooms: usize,
        /// Rooms one connection may create per minute (0 = no limit).
        #[arg(long, env = "NATTER_ROOMS_PER_MINUTE", value_name = "N", default_value = "10")]
        pub rooms_per_minute: u32,
        /// Most bans per room (IRC MAXLIST).
        #[arg(long, env = "NATTER_MAX_BANS", value_name = "N", default_value = "100")]
        pub max_bans: usize,
        /// Most pending invitations one person holds; older ones are forgotten.
        #[arg(long, env = "NATTER_MAX_INVITES", value_name = "N", default_value = "100")]
        pub max_invites: usize,
        /// Longest room topic in bytes (IRC TOPICLEN); longer ones are cut.
        #[arg(long, env = "NATTER_TOPIC_LEN", value_name = "BYTES", default_value = "390")]
        pub topic_len: usize,
        /// Entries per page of long listings (room list, members, WHO),
        /// produced as the client reads them.
        #[arg(long, env = "NATTER_PAGE_SIZE", value_name = "N", default_value = "100")]
        pub page_size: usize,
        /// The main port's first-bytes window: how long a new connection is
        /// given to speak first. What it sends decides the protocol (TLS,
        /// HTTP, IRC, JSON); only a silent one gets the text banner, after
        /// the window. 0: the banner is sent at once (then TLS and HTTP on
        /// the main port would see it: keep it above the clients' round trip).
        #[arg(
            long,
            env = "NATTER_BANNER_DELAY",
            value_name = "DURATION",
            default_value = "150ms",
            value_parser = parse_duration,
        )]
        #[serde(deserialize_with = "de_duration")]
        pub banner_delay: Duration,
        /// PEM file with the TLS certificate chain (leaf first); with
        /// tls_key it turns TLS on: on the main port (a connection that
        /// starts with a TLS handshake) and on irc_tls_listen. Reloaded on
        /// SIGHUP.
        #[arg(long, env = "NATTER_TLS_CERT", value_name = "PATH")]
        pub tls_cert: Option<PathBuf>,
        /// PEM file with the TLS certificate's private key (PKCS#8, PKCS#1
        /// or SEC1). Reloaded on SIGHUP.
        #[arg(long, env = "NATTER_TLS_KEY", value_name = "PATH")]
        pub tls_key: Option<PathBuf>,
        /// Turn TLS on with a certificate made up at start (for localhost,
        /// for testing): its SHA-256 fingerprint is printed. Ignored when
        /// tls_cert is set.
        #[arg(
            long,
            env = "NATTER_TLS_SELF_SIGNED",
            value_name = "BOOL",
            default_value = "false",
            num_args = 0..=1,
            default_missing_value = "true",
            action = clap::ArgAction::Set,
        )]
        pub tls_self_signed: bool,
        /// Address of the IRC-over-TLS listener (used only when TLS is on),
        /// or off (port 0: any free port, logged on start).
        #[arg(
            long,
            env = "NATTER_IRC_TLS_LISTEN",
            value_name = "HOST:PORT|off",
            default_value = "127.0.0.1:6697",
            value_parser = parse_opt_addr,
        )]
        pub irc_tls_listen: OptAddr,
        /// How long IRC clients that saw the `sts` capability keep to TLS
        /// (the policy's duration, sent on TLS connections; 0 tells them
        /// to forget it).
        #[arg(
            long,
            env = "NATTER_STS_DURATION",
            value_name = "DURATION",
            default_value = "0",
            value_parser = parse_duration,
        )]
        #[serde(deserialize_with = "de_duration")]
        pub sts_duration: Duration,
        /// Server operator blocks for IRC's OPER: `NAME HOSTMASK HASH`,
        /// separated by `;` (HOSTMASK matches user@ip; HASH from `natter
        /// hash-password`); none: no operators. Reloaded by REHASH/SIGHUP.
        #[arg(
            long,
            env = "NATTER_OPERS",
            value_name = "NAME HOSTMASK HASH;…",
            default_value = "none",
            hide_env_values = true,
            value_parser = parse_opers,
        )]
        pub opers: Opers,
        /// Whether server operators may shut the server down with DIE.
        #[arg(
            long,
            env = "NATTER_OPER_DIE",
            value_name = "BOOL",
            default_value = "false",
            action = clap::ArgAction::Set,
        )]
        pub oper_die: bool,
        /// Departed nicks remembered for IRC's WHOWAS (0: none).
        #[arg(long, env = "NATTER_WHOWAS_ENTRIES", value_name = "N", default_value = "1000")]
        pub whowas_entries: usize,
        /// Most nicks one IRC client may watch with MONITOR (ISUPPORT
        /// MONITOR).
        #[arg(long, env = "NATTER_MONITOR_LIMIT", value_name = "N", default_value = "100")]
        pub monitor_limit: usize,
        /// Address of a listener that serves only HTTP (the web page, /ws,
        /// /metrics, /healthz), or off: the main port serves HTTP too.
        #[arg(
            long,
            env = "NATTER_HTTP_LISTEN",
            value_name = "HOST:PORT|off",
            default_value = "off",
            value_parser = parse_opt_addr,
        )]
        pub http_listen: OptAddr,
        /// How long an HTTP client may take to send a request's headers
        /// (slowloris); it is then closed.
        #[arg(
            long,
            env = "NATTER_HTTP_HEADER_TIMEOUT",
            value_name = "DURATION",
            default_value = "10s",
            value_parser = parse_duration,
        )]
        #[serde(deserialize_with = "de_duration")]
        pub http_header_timeout: Duration,
        /// Largest HTTP request head (request line and headers); a larger
        /// one is answered 431 and closed.
        #[arg(
            long,
            env = "NATTER_HTTP_MAX_REQUEST_BYTES",
            value_name = "BYTES",
            default_value = "16KiB",
            value_parser = parse_size,
        )]
        #[serde(deserialize_with = "de_size")]
        pub http_max_request_bytes: usize,
        /// Web pages allowed to open WebSockets: comma-separated origins
        /// (`https://chat.example.org`), `self` (pages served from the
        /// host in the request's Host header), or `*` for any.
        #[arg(long, env = "NATTER_WS_ORIGINS", value_name = "ORIGINS", default_value = "self")]
        pub ws_origins: String,
        /// Largest WebSocket message taken at all: a longer one closes the
        /// connection (1009). Messages over max_line_bytes (IRC: 8191) but
        /// within this are refused like long lines.
        #[arg(
            long,
            env = "NATTER_WS_MAX_MESSAGE_BYTES",
            value_name = "BYTES",
            default_value = "64KiB",
            value_parser = parse_size,
        )]
        #[serde(deserialize_with = "de_size")]
        pub ws_max_message_bytes: usize,
        /// The SQLite database that keeps history, accounts and registered
        /// rooms, or off to keep them in memory only (gone on restart).
        #[arg(long, env = "NATTER_DB", value_name = "PATH|off", default_value = "natter.db")]
        pub db: String,
        /// Largest size the database may grow to, in bytes (0: no limit);
        /// past it, messages are refused with an error instead of stored.
        #[arg(long, env = "NATTER_DB_MAX_BYTES", value_name = "BYTES", default_value = "0")]
        pub db_max_bytes: u64,
        /// When a commit counts as done: full (its lines are shown only
        /// after an fsync of the WAL, which a thread of its own runs while
        /// the next commits go on: a shown line survives a crash of the
        /// machine) or normal (no fsync before showing: it survives a crash
        /// of natter, not of the machine).
        #[arg(
            long,
            env = "NATTER_DB_SYNC",
            value_name = "full|normal",
            default_value = "full",
            value_parser = parse_db_sync,
        )]
        pub db_sync: DbSync,
        /// Lines (facts) that may wait for the database's commit at once;
        /// past it, connections stop reading what their clients send until
        /// the writer has caught up, so a disk that cannot keep up slows
        /// the senders instead of filling send queues with lines not yet
        /// shown (0: no limit).
        #[arg(long, env = "NATTER_DB_MAX_PENDING", value_name = "N", default_value = "10000")]
        pub db_max_pending: usize,
        /// How long stored facts that nobody waits for (joins, parts,
        /// quits, nick changes: shown before they are stored) may wait for
        /// the database writer, so that a crowd's comings and goings share
        /// a few commits; a message, a history read or 1 000 waiting facts
        /// start a commit at once (0: every submission starts one).
        #[arg(
            long,
            env = "NATTER_DB_LINGER",
            value_name = "DURATION",
            default_value = "20ms",
            value_parser = parse_duration,
        )]
        #[serde(deserialize_with = "de_duration")]
        pub db_linger: Duration,
        /// Size of the database's write-ahead log past which the writer
        /// checkpoints it between two commits so that it is written from
        /// its beginning again (0: it grows while commits keep coming).
        #[arg(
            long,
            env = "NATTER_DB_WAL_MAX",
            value_name = "BYTES",
            default_value = "64MiB",
            value_parser = parse_size,
        )]
        #[serde(deserialize_with = "de_size")]
        pub db_wal_max: usize,
        /// Largest page cache of each of the database's connections (the
        /// writer, each reader of the history): pages past it are read
        /// again from the file (the OS's cache) when needed. At least
        /// 64KiB.
        #[arg(
            long,
            env = "NATTER_DB_CACHE",
            value_name = "BYTES",
            default_value = "512KiB",
            value_parser = parse_size,
        )]
        #[serde(deserialize_with = "de_size")]
        pub db_cache: usize,
        /// Lines of a room's history shown on joining it (0: none).
        #[arg(long, env = "NATTER_HISTORY_ON_JOIN", value_name = "N", default_value = "10")]
        pub history_on_join: usize,
        /// Most lines one history request returns (bigger asks are capped).
        #[arg(long, env = "NATTER_HISTORY_MAX_LINES", value_name = "N", default_value = "1000")]
        pub history_max_lines: usize,
        /// Lines a history read without events (a join's replay, /history,
        /// CHATHISTORY without event-playback) looks through at most to
        /// find its messages, past joins, parts and the like.
        #[arg(long, env = "NATTER_HISTORY_SCAN", value_name = "N", default_value = "5000")]
        pub history_scan: usize,
        /// History reads (and database connections for them) at once; more
        /// wait their turn (a burst of joins does not open a connection
        /// and a thread for each).
        #[arg(long, env = "NATTER_HISTORY_READERS", value_name = "N", default_value = "4")]
        pub history_readers: usize,
        /// Lines kept per room; older ones are deleted (0: keep all).
        #[arg(long, env = "NATTER_HISTORY_PER_ROOM", value_name = "N", default_value = "100000")]
        pub history_per_room: usize,
        /// How long lines are kept (0: for ever).
        #[arg(
            long,
            env = "NATTER_HISTORY_MAX_AGE",
            value_name = "DURATION",
            default_value = "0",
            value_parser = parse_duration,
        )]
        #[serde(deserialize_with = "de_duration")]
        pub history_max_age: Duration,
        /// How long someone may use a registered nick without logging in
        /// to its account before being renamed to a guest nick (0: such
        /// nicks are refused at once).
        #[arg(
            long,
            env = "NATTER_NICK_GRACE",
            value_name = "DURATION",
            default_value = "30s",
            value_parser = parse_duration,
        )]
        #[serde(deserialize_with = "de_duration")]
        pub nick_grace: Duration,
        /// Shortest password an account may be registered with, in characters.
        #[arg(long, env = "NATTER_PASSWORD_MIN_CHARS", value_name = "N", default_value = "8")]
        pub password_min_chars: usize,
        /// Failed logins to one account within auth_failure_window before
        /// further tries are refused until the window ends.
        #[arg(long, env = "NATTER_AUTH_MAX_FAILURES", value_name = "N", default_value = "5")]
        pub auth_max_failures: u32,
        /// Failed logins (and account registrations) from one address within
        /// auth_failure_window before further tries are refused.
        #[arg(
            long,
            env = "NATTER_AUTH_MAX_FAILURES_PER_HOST",
            value_name = "N",
            default_value = "20"
        )]
        pub auth_max_failures_per_host: u32,
        /// The window in which failed logins are counted.
        #[arg(
            long,
            env = "NATTER_AUTH_FAILURE_WINDOW",
            value_name = "DURATION",
            default_value = "5m",
            value_parser = parse_duration,
        )]
        #[serde(deserialize_with = "de_duration")]
        pub auth_failure_window: Duration,
        /// Password hashes computed at once (each takes tens of ms and
        /// 19 MiB); more logins wait their turn.
        #[arg(long, env = "NATTER_AUTH_CONCURRENCY", value_name = "N", default_value = "2")]
        pub auth_concurrency: usize,
        /// NATS server(s) of the cluster this node joins, nats://HOST:PORT
        /// (comma-separated for several; user:password@ in the URL; tls://
        /// for TLS), or off: a lone server (docs/OPERATING.md, Several nodes).
        #[arg(long, env = "NATTER_CLUSTER", value_name = "URL|off", default_value = "off")]
        pub cluster: String,
        /// This node's number, unique in the cluster (1-65535); part of every
        /// connection key and message id. 0 only for a lone server.
        #[arg(long, env = "NATTER_NODE", value_name = "N", default_value = "0")]
        pub node: u16,
        /// NATS credentials file (user JWT and NKey seed, as `nsc` writes
        /// it), or none.
        #[arg(long, env = "NATTER_CLUSTER_CREDS", value_name = "FILE|none", default_value = "none")]
        pub cluster_creds: String,
        /// How long to wait for NATS: to connect at start, to store a
        /// message, to claim a nick. Past it the action is refused.
        #[arg(
            long,
            env = "NATTER_CLUSTER_TIMEOUT",
            value_name = "DURATION",
            default_value = "5s",
            value_parser = parse_duration,
        )]
        #[serde(deserialize_with = "de_duration")]
        pub cluster_timeout: Duration,
        /// How often this node tells the cluster it is alive (and checks
        /// which nodes are not).
        #[arg(
            long,
            env = "NATTER_CLUSTER_HEARTBEAT",
            value_name = "DURATION",
            default_value = "2s",
            value_parser = parse_duration,
        )]
        #[serde(deserialize_with = "de_duration")]
        pub cluster_heartbeat: Duration,
        /// A node not heard from for this long is dead: another node
        /// announces its users' quits and frees their nicks.
        #[arg(
            long,
            env = "NATTER_CLUSTER_NODE_TTL",
            value_name = "DURATION",
            default_value = "8s",
            value_parser = parse_duration,
        )]
        #[serde(deserialize_with = "de_duration")]
        pub cluster_node_ttl: Duration,
        /// A node cut off from NATS for this long fences itself: it tells
        /// its users and disconnects them (so they reconnect to another
        /// node) and takes nobody until NATS is back. Keep it at most
        /// cluster_node_ttl minus cluster_heartbeat: fenced before the
        /// others announce its users' quits.
        #[arg(
            long,
            env = "NATTER_CLUSTER_FENCE",
            value_name = "DURATION",
            default_value = "5s",
            value_parser = parse_duration,
        )]
        #[serde(deserialize_with = "de_duration")]
        pub cluster_fence: Duration,
        /// Messages of the cluster's stream a node reads when it starts, for
        /// the history (CHATHISTORY, /history, lines on joining) of what was
        /// said before it started: the newest this many. 0: none.
        #[arg(
            long,
            env = "NATTER_CLUSTER_HISTORY_BACKFILL",
            value_name = "N",
            default_value = "100000"
        )]
        pub cluster_history_backfill: u64,
        /// Fault injection, for testing: a node drops every Nth room line
        /// it receives live from NATS, as if lost on the way (it notices
        /// the gap at the room's next line and reads the lost ones from the
        /// stream). 0: off.
        #[arg(
            long,
            env = "NATTER_CLUSTER_DROP_LIVE",
            value_name = "N",
            default_value = "0"
        )]
        pub cluster_drop_live: u64,
        /// How long a fact received out of order (the one before it on its
        /// subject not received yet: NATS may republish facts stored at
        /// the same moment in another order) waits for the missing ones
        /// before they are read from the stream as lost.
        #[arg(
            long,
            env = "NATTER_CLUSTER_GAP_WAIT",
            value_name = "DURATION",
            default_value = "250ms",
            value_parser = parse_duration,
        )]
        #[serde(deserialize_with = "de_duration")]
        pub cluster_gap_wait: Duration,
        /// Fault injection, for testing: a node drops every Nth fact other
        /// than a room line (joins, topics, nick changes...) it receives
        /// live from NATS, as if lost on the way. 0: off.
        #[arg(
            long,
            env = "NATTER_CLUSTER_DROP_LIVE_STATE",
            value_name = "N",
            default_value = "0"
        )]
        pub cluster_drop_live_state: u64,
        /// Live facts the NATS client holds for each of this node's
        /// subscriptions while its reader is behind; beyond it NATS drops
        /// them ("slow consumer") and the node reads them again from the
        /// stream as gaps.
        #[arg(
            long,
            env = "NATTER_CLUSTER_SUBSCRIPTION_CAPACITY",
            value_name = "N",
            default_value = "262144"
        )]
        pub cluster_subscription_capacity: usize,
        /// When more subjects than this have a gap due at once (of room
        /// lines, or of the other facts), they are filled by one consumer
        /// on all such subjects from the lowest missing sequence instead
        /// of one consumer each.
        #[arg(
            long,
            env = "NATTER_CLUSTER_GAP_COALESCE",
            value_name = "N",
            default_value = "4"
        )]
        pub cluster_gap_coalesce: usize,
        /// Rooms this node starts following together (their first members
        /// here joined at about the same time): one flush to NATS for all,
        /// and their newest-line requests in flight at once.
        #[arg(
            long,
            env = "NATTER_CLUSTER_FOLLOW_BATCH",
            value_name = "N",
            default_value = "256"
        )]
        pub cluster_follow_batch: usize,
        /// Most facts published as one NATS message: the changes of who is
        /// where that one thing someone did makes at once (coming online
        /// and entering the default room, leaving a room for another, a
        /// gone node's quits) go together on `natter.user.state`; 1: each
        /// fact alone on its own subject.
        #[arg(
            long,
            env = "NATTER_CLUSTER_BUNDLE",
            value_name = "N",
            default_value = "64"
        )]
        pub cluster_bundle: usize,
        /// A NATTER stream made by an older natter (before the stream
        /// republished what it stores) cannot be given republishing by
        /// nats-server 2.9: with this, a starting node deletes it and makes
        /// it anew (its history is lost; stop every node first). Without
        /// it such a node refuses to start and says so.
        #[arg(
            long,
            env = "NATTER_CLUSTER_RECREATE_STREAM",
            value_name = "BOOL",
            default_value = "false",
            action = clap::ArgAction::Set,
        )]
        pub cluster_recreate_stream: bool,
    }
}

/// Parses `--opers` (for clap).
pub fn parse_opers(s: &str) -> Result<Opers, String> {
    s.parse()
}

/// Parses `--db-sync` (for clap).
pub fn parse_db_sync(s: &str) -> Result<DbSync, String> {
    s.parse()
}

/// When the database counts a commit as done (SQLite's `synchronous` in
/// WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbSync {
    /// A commit's lines are released after an fsync of the WAL that
    /// started after its `COMMIT` (src/store/wal_sync.rs); SQLite itself
    /// runs with `synchronous = NORMAL` then, or `FULL` if the sync
    /// thread cannot start.
    Full,
    /// The WAL is written at every commit and fsynced at checkpoints
    /// (`synchronous = NORMAL`).
    Normal,
}

impl DbSync {
    /// The value of SQLite's `synchronous` pragma.
    pub fn pragma(self) -> &'static str {
        match self {
            DbSync::Full => "FULL",
            DbSync::Normal => "NORMAL",
        }
    }
}

impl std::str::FromStr for DbSync {
    type Err = String;
    fn from_str(s: &str) -> Result<DbSync, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "full" => Ok(DbSync::Full),
            "normal" => Ok(DbSync::Normal),
            other => Err(format!("{other:?}: full or normal")),
        }
    }
}

impl std::fmt::Display for DbSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DbSync::Full => "full",
            DbSync::Normal => "normal",
        })
    }
}

impl<'de> Deserialize<'de> for DbSync {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<DbSync, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A listen address that can be turned off: `HOST:PORT` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptAddr(pub Option<SocketAddr>);

impl std::str::FromStr for OptAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<OptAddr, String> {
        match s.trim() {
            "off" | "none" | "" => Ok(OptAddr(None)),
            a => resolve_one(a)
                .map(|a| OptAddr(Some(a)))
                .map_err(|e| format!("{e} (HOST:PORT or off)")),
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

/// One block of addresses, `ADDR/BITS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: std::net::IpAddr,
    pub bits: u8,
}

impl Cidr {
    /// Whether `ip` is in this block (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        let ip = match ip {
            V6(v6) => v6.to_ipv4_mapped().map_or(ip, V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (V4(net), V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.bits),
            (V6(net), V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.bits),
            _ => false,
        }
    }
}

/// Whether the first `bits` bits of `a` and `b` are equal.
fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let bits = (bits as usize).min(a.len() * 8);
    let (full, rest) = (bits / 8, bits % 8);
    a[..full] == b[..full] && (rest == 0 || (a[full] ^ b[full]) & (0xffu8 << (8 - rest)) == 0)
}

/// Comma-separated CIDRs (`none` or empty: no addresses).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CidrList(pub Vec<Cidr>);

impl CidrList {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }
}

impl std::str::FromStr for CidrList {
    type Err = String;
    fn from_str(s: &str) -> Result<CidrList, String> {
        let s = s.trim();
        if s.is_empty() || s == "none" {
            return Ok(CidrList::default());
        }
        s.split(',')
            .map(|part| {
                let part = part.trim();
                let bad = || format!("bad CIDR {part:?} (e.g. 10.0.0.0/8, fd00::/8)");
                let (addr, bits) = match part.split_once('/') {
                    Some((a, b)) => (a, Some(b)),
                    None => (part, None),
                };
                let addr: std::net::IpAddr = addr.parse().map_err(|_| bad())?;
                let max = if addr.is_ipv4() { 32 } else { 128 };
                let bits = match bits {
                    Some(b) => b.parse::<u8>().ok().filter(|b| *b <= max).ok_or_else(bad)?,
                    None => max,
                };
                Ok(Cidr { addr, bits })
            })
            .collect::<Result<_, _>>()
            .map(CidrList)
    }
}

impl std::fmt::Display for CidrList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|c| format!("{}/{}", c.addr, c.bits))
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl<'de> Deserialize<'de> for CidrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CidrList, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Parses `--limit-exempt` (for clap).
pub fn parse_cidrs(s: &str) -> Result<CidrList, String> {
    s.parse()
}

/// `HOST:PORT` as an address to listen on: an IP address as written, or a
/// host name resolved now (its first address, in the resolver's order).
pub fn resolve_one(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    if s.rsplit_once(':')
        .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
    {
        return Err(format!("bad address {s:?}: expected HOST:PORT"));
    }
    use std::net::ToSocketAddrs;
    match s.to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("bad address {s:?}: the name has no address")),
        Err(e) => Err(format!("bad address {s:?}: {e}")),
    }
}

/// Parses `--listen` (for clap): see [`resolve_one`].
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    resolve_one(s)
}

/// `listen` in the TOML file: see [`resolve_one`].
fn de_listen<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    resolve_one(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// Parses `--irc-listen` (for clap).
pub fn parse_opt_addr(s: &str) -> Result<OptAddr, String> {
    s.parse()
}

impl Default for Config {
    /// Every setting at its declared `default_value` (as `natter serve
    /// --help` shows it), whatever the environment says.
    fn default() -> Self {
        static DEFAULT: OnceLock<Config> = OnceLock::new();
        DEFAULT
            .get_or_init(|| {
                let cmd = Config::augment_args(Command::new("defaults"))
                    .mut_args(|a| a.env(None::<&str>));
                let matches = cmd
                    .try_get_matches_from(["defaults"])
                    .unwrap_or_else(|e| panic!("a setting's default_value does not parse: {e}"));
                Config::from_arg_matches(&matches)
                    .unwrap_or_else(|e| panic!("a setting's default_value does not parse: {e}"))
            })
            .clone()
    }
}

impl Config {
    /// The name of the pseudo-server natter's built-in services are shown
    /// on: `services_name`, else `services.` and the server name.
    pub fn services_name(&self) -> String {
        match self.services_name.as_deref().map(str::trim) {
            Some(name) if !name.is_empty() => name.to_string(),
            _ => format!("services.{}", self.server_name),
        }
    }

    /// The runtime's worker threads: `workers`, or for 0 the cores this
    /// process may use but one, at least one. On 2 cores, a second worker
    /// split each fan-out's writes between the threads (more, smaller
    /// writes: 26–40 % more CPU per delivery) and took the core the
    /// kernel's loopback/NIC work and the store's writer need
    /// (docs/BENCHMARKS.md, stop 24).
    pub fn worker_threads(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .saturating_sub(1)
                .max(1),
            n => n,
        }
    }

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

/// `natter serve`'s command line: `--config FILE` and every [`Config`]
/// setting as a flag (each also read from its `NATTER_*` variable).
///
/// Clap fills in a flag's `default_value` when neither the flag nor its
/// variable is given, so this also records which settings really were given:
/// only those override the file.
#[derive(Debug, Clone)]
pub struct ServeArgs {
    /// The TOML file, if any.
    config: Option<PathBuf>,
    /// Every setting as clap resolved it: flag, else variable, else default.
    cli: Config,
    /// The settings given by flag or variable (not defaulted by clap).
    given: Vec<&'static str>,
}

impl ServeArgs {
    /// The configuration to run with: each setting from its flag, else its
    /// `NATTER_*` variable, else the `--config` file, else its default.
    pub fn into_config(self) -> anyhow::Result<Config> {
        let file = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        Ok(self.over(file))
    }

    /// `base` (the file's settings) with the given flags and variables applied.
    fn over(self, mut base: Config) -> Config {
        base.take_given(self.cli, &self.given);
        base
    }
}

impl Args for ServeArgs {
    fn augment_args(cmd: Command) -> Command {
        let cmd = cmd
            .arg(
                Arg::new("config")
                    .long("config")
                    .env("NATTER_CONFIG")
                    .value_name("FILE")
                    .value_parser(clap::value_parser!(PathBuf))
                    .help("TOML config file: the settings below as keys, with _ for -"),
            )
            .after_help(
                "Each setting comes from its flag, else its NATTER_* variable, else the \
                 --config file, else its default. docs/OPERATING.md describes them all.",
            );
        Config::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for ServeArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Self::from_arg_matches_mut(&mut matches.clone())
    }

    fn from_arg_matches_mut(matches: &mut ArgMatches) -> Result<Self, clap::Error> {
        // Before Config takes its values out of `matches`, and their sources with them.
        let given = Config::NAMES
            .iter()
            .copied()
            .filter(|name| {
                matches!(
                    matches.value_source(name),
                    Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                )
            })
            .collect();
        Ok(ServeArgs {
            config: matches.remove_one::<PathBuf>("config"),
            given,
            cli: Config::from_arg_matches_mut(matches)?,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
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
    secs_to_duration(secs).ok_or_else(|| format!("bad duration {s:?}"))
}

/// Parses a size in bytes: `98304`, `96KiB` (or `96k`), `1MiB` (or `1m`).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("bad size {s:?}: expected e.g. 98304, 96KiB, 1MiB"))?;
    let scale: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        other => return Err(format!("bad size unit {other:?} in {s:?} (use KiB, MiB)")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("bad size {s:?}: too large"))
}

/// A size in the TOML file: a string [`parse_size`] reads, or a number of bytes.
fn de_size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    d.deserialize_any(StrOrNumber {
        expecting: "a size such as \"96KiB\" or a number of bytes",
        parse: parse_size,
        whole: |n| usize::try_from(n).map_err(|e| e.to_string()),
        fraction: None,
    })
}

/// A setting the TOML file may write as a string (read with `parse`) or as
/// a number (a whole one, or with a fraction where `fraction` takes it).
struct StrOrNumber<T> {
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
    whole: fn(u64) -> Result<T, String>,
    fraction: Option<fn(f64) -> Result<T, String>>,
}

impl<T> serde::de::Visitor<'_> for StrOrNumber<T> {
    type Value = T;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.expecting)
    }
    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<T, E> {
        (self.parse)(s).map_err(E::custom)
    }
    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<T, E> {
        (self.whole)(n).map_err(E::custom)
    }
    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<T, E> {
        let negative = |_| E::custom(format!("{n} is negative: expected {}", self.expecting));
        let n = u64::try_from(n).map_err(negative)?;
        (self.whole)(n).map_err(E::custom)
    }
    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<T, E> {
        match self.fraction {
            Some(f) => f(n).map_err(E::custom),
            None => Err(E::invalid_type(serde::de::Unexpected::Float(n), &self)),
        }
    }
}

fn secs_to_duration(secs: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(secs).ok()
}

/// A duration in the TOML file: a string [`parse_duration`] reads, or a
/// number of seconds (as a bare number on the command line is).
fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(StrOrNumber {
        expecting: "a duration such as \"500ms\", \"30s\", \"5m\", or a number of seconds",
        parse: parse_duration,
        whole: |n| Ok(Duration::from_secs(n)),
        fraction: Some(|n| secs_to_duration(n).ok_or_else(|| format!("bad duration {n}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// docs/natter.toml, the sample file README.md points to, names every
    /// setting and holds exactly the defaults.
    #[test]
    fn the_sample_config_holds_every_setting_at_its_default() {
        let text = include_str!("../docs/natter.toml");
        let parsed: Config = toml::from_str(text).expect("docs/natter.toml parses");
        assert_eq!(
            parsed,
            Config::default(),
            "docs/natter.toml is not the defaults"
        );
        for name in Config::NAMES {
            let key = format!("{name} = ");
            let listed = text.lines().any(|l| {
                l.starts_with(&key) || l.strip_prefix("# ").is_some_and(|l| l.starts_with(&key))
            });
            assert!(listed, "docs/natter.toml does not list {name}");
        }
    }

    #[test]
    fn listen_addresses_may_be_host_names() {
        assert_eq!(
            resolve_one("localhost:7777").map(|a| (a.ip().is_loopback(), a.port())),
            Ok((true, 7777))
        );
        assert_eq!(resolve_one("[::1]:6667"), Ok("[::1]:6667".parse().unwrap()));
        assert_eq!(
            parse_listen("127.0.0.1:0"),
            Ok("127.0.0.1:0".parse().unwrap())
        );
        for bad in ["localhost", "localhost:http", ":7777", "localhost:99999"] {
            assert!(resolve_one(bad).is_err(), "{bad}");
        }
        let c: Config =
            toml::from_str("listen = \"localhost:7001\"\nirc_listen = \"localhost:7002\"\n")
                .unwrap();
        assert!(c.listen.ip().is_loopback() && c.listen.port() == 7001);
        assert_eq!(c.irc_listen.0.map(|a| a.port()), Some(7002));
        assert!(toml::from_str::<Config>("listen = \"nowhere\"").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("7 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999999999h").is_err());
    }

    #[test]
    fn cidrs_parse_and_match() {
        let l: CidrList = "127.0.0.0/8, ::1/128,2001:db8::/32".parse().unwrap();
        assert!(l.contains("127.3.4.5".parse().unwrap()));
        assert!(l.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(l.contains("::1".parse().unwrap()));
        assert!(l.contains("2001:db8:1::7".parse().unwrap()));
        assert!(!l.contains("128.0.0.1".parse().unwrap()));
        assert!(!l.contains("2001:db9::1".parse().unwrap()));
        let one: CidrList = "10.1.2.3".parse().unwrap();
        assert!(one.contains("10.1.2.3".parse().unwrap()));
        assert!(!one.contains("10.1.2.4".parse().unwrap()));
        assert_eq!("none".parse::<CidrList>().unwrap().to_string(), "none");
        assert!("10.0.0.0/33".parse::<CidrList>().is_err());
        assert!("nowhere".parse::<CidrList>().is_err());
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("98304"), Ok(98304));
        assert_eq!(parse_size("96KiB"), Ok(96 * 1024));
        assert_eq!(parse_size("96k"), Ok(96 * 1024));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
        let c: Config = toml::from_str("sendq = \"1MiB\"\nrecvq = 512\n").unwrap();
        assert_eq!((c.sendq, c.recvq), (1 << 20, 512));
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
    fn toml_durations_read_like_flags() {
        let c: Config =
            toml::from_str("ping_interval = 7\nping_timeout = 1.5\nwrite_timeout = \"2m\"\n")
                .unwrap();
        assert_eq!(c.ping_interval, parse_duration("7").unwrap());
        assert_eq!(c.ping_timeout, parse_duration("1.5").unwrap());
        assert_eq!(c.write_timeout, parse_duration("2m").unwrap());
        for bad in [
            "ping_interval = \"soon\"",
            "ping_interval = -1",
            "ping_interval = true",
        ] {
            let e = toml::from_str::<Config>(bad).unwrap_err().to_string();
            assert!(e.contains("duration"), "{bad}: {e}");
        }
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

    #[test]
    fn defaults_are_the_documented_ones() {
        let expected = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7777)),
            server_name: "natter".into(),
            server_info: "natter chat server".into(),
            services_name: None,
            default_room: "lobby".into(),
            irc_auto_join: false,
            rejoin_on_login: true,
            max_clients: 120_000,
            max_per_ip: 64,
            connect_rate: 1,
            connect_burst: 16,
            limit_exempt: "127.0.0.0/8,::1/128".parse().unwrap(),
            max_line_bytes: 4096,
            max_nick_chars: 30,
            max_room_chars: 50,
            large_room: 1000,
            names_cache: 8,
            sendq: 96 * 1024,
            sendq_keep: Duration::from_secs(1),
            park_after: Duration::from_secs(5),
            ingest_budget: 0,
            line_batch: 64,
            workers: 0,
            defer_writes: true,
            recvq: 16 * 1024,
            socket_sendbuf: 64 * 1024,
            listen_backlog: 4096,
            flood_rate: 10,
            flood_burst: 20,
            registration_timeout: Duration::from_secs(60),
            tcp_keepalive: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(30),
            ping_timeout: Duration::from_secs(60),
            original_ping_interval: Duration::from_secs(3),
            original_ping_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
            memory_trim: Duration::from_secs(10),
            refusal_log_interval: Duration::from_secs(10),
            irc_listen: OptAddr(Some(SocketAddr::from(([127, 0, 0, 1], 6667)))),
            irc_password: None,
            max_rooms_per_user: 100,
            max_rooms: 10_000,
            rooms_per_minute: 10,
            max_bans: 100,
            max_invites: 100,
            topic_len: 390,
            page_size: 100,
            banner_delay: Duration::from_millis(150),
            tls_cert: None,
            tls_key: None,
            tls_self_signed: false,
            irc_tls_listen: OptAddr(Some(SocketAddr::from(([127, 0, 0, 1], 6697)))),
            sts_duration: Duration::ZERO,
            opers: Opers::default(),
            oper_die: false,
            whowas_entries: 1000,
            monitor_limit: 100,
            http_listen: OptAddr(None),
            http_header_timeout: Duration::from_secs(10),
            http_max_request_bytes: 16 * 1024,
            ws_origins: "self".into(),
            ws_max_message_bytes: 64 * 1024,
            db: "natter.db".into(),
            db_max_bytes: 0,
            db_sync: DbSync::Full,
            db_max_pending: 10_000,
            db_linger: Duration::from_millis(20),
            db_wal_max: 64 << 20,
            db_cache: crate::store::sqlite::DEFAULT_CACHE_BYTES,
            history_on_join: 10,
            history_max_lines: 1000,
            history_scan: 5000,
            history_readers: 4,
            history_per_room: 100_000,
            history_max_age: Duration::ZERO,
            nick_grace: Duration::from_secs(30),
            password_min_chars: 8,
            auth_max_failures: 5,
            auth_max_failures_per_host: 20,
            auth_failure_window: Duration::from_secs(300),
            auth_concurrency: 2,
            cluster: "off".into(),
            node: 0,
            cluster_creds: "none".into(),
            cluster_timeout: Duration::from_secs(5),
            cluster_heartbeat: Duration::from_secs(2),
            cluster_node_ttl: Duration::from_secs(8),
            cluster_fence: Duration::from_secs(5),
            cluster_history_backfill: 100_000,
            cluster_drop_live: 0,
            cluster_gap_wait: Duration::from_millis(250),
            cluster_drop_live_state: 0,
            cluster_subscription_capacity: 262_144,
            cluster_gap_coalesce: 4,
            cluster_follow_batch: 256,
            cluster_bundle: 64,
            cluster_recreate_stream: false,
        };
        assert_eq!(Config::default(), expected);
        assert_eq!(toml::from_str::<Config>("").unwrap(), expected);
        assert_eq!(parse(&[], &[]).unwrap().over(Config::default()), expected);
    }

    /// The settings' clap arguments (without `--config`).
    fn setting_args() -> Vec<Arg> {
        Config::augment_args(Command::new("serve"))
            .get_arguments()
            .cloned()
            .collect()
    }

    fn flag(name: &str) -> String {
        format!("--{}", name.replace('_', "-"))
    }

    fn env_name(name: &str) -> String {
        format!("NATTER_{}", name.to_uppercase())
    }

    fn default_of(arg: &Arg) -> Option<String> {
        let d = arg.get_default_values();
        assert!(d.len() <= 1, "{:?}", arg.get_id());
        d.first().map(|d| d.to_string_lossy().into_owned())
    }

    /// Serialises the tests that set `NATTER_*` variables.
    static ENV: Mutex<()> = Mutex::new(());

    /// Parses `natter serve ARGV` with the `NATTER_*` variables `env` set
    /// (and no others, whatever the test's own environment holds).
    fn parse(argv: &[&str], env: &[(&str, &str)]) -> Result<ServeArgs, clap::Error> {
        let cmd = {
            let _lock = ENV.lock().unwrap_or_else(|e| e.into_inner());
            for (k, v) in env {
                std::env::set_var(k, v);
            }
            // Arg::env reads the variable now.
            let cmd = ServeArgs::augment_args(Command::new("serve")).mut_args(|a| {
                let ours = a
                    .get_env()
                    .is_some_and(|e| env.iter().any(|(k, _)| e == std::ffi::OsStr::new(k)));
                if ours {
                    a
                } else {
                    a.env(None::<&str>)
                }
            });
            for (k, _) in env {
                std::env::remove_var(k);
            }
            cmd
        };
        let matches =
            cmd.try_get_matches_from(std::iter::once("serve").chain(argv.iter().copied()))?;
        ServeArgs::from_arg_matches(&matches)
    }

    /// A value for each setting that is not its default.
    fn sample(name: &str) -> &'static str {
        match name {
            "listen" => "0.0.0.0:7000",
            "server_name" => "chatty",
            "server_info" => "a test server",
            "default_room" => "hall",
            "irc_auto_join" => "true",
            "rejoin_on_login" => "false",
            "services_name" => "services.example",
            "max_clients" => "5",
            "max_per_ip" => "0",
            "connect_rate" => "0",
            "connect_burst" => "3",
            "limit_exempt" => "10.0.0.0/8,fd00::/8",
            "max_line_bytes" => "100",
            "max_nick_chars" => "9",
            "max_room_chars" => "12",
            "large_room" => "7",
            "names_cache" => "3",
            "sendq" => "8KiB",
            "sendq_keep" => "250ms",
            "park_after" => "0",
            "ingest_budget" => "65536",
            "line_batch" => "5",
            "workers" => "3",
            "defer_writes" => "false",
            "recvq" => "4096",
            "socket_sendbuf" => "0",
            "flood_rate" => "0",
            "flood_burst" => "3",
            "listen_backlog" => "16",
            "registration_timeout" => "250ms",
            "tcp_keepalive" => "0",
            "write_timeout" => "2m",
            "ping_interval" => "1h",
            "ping_timeout" => "1.5",
            "original_ping_interval" => "500ms",
            "original_ping_timeout" => "2s",
            "shutdown_grace" => "0s",
            "memory_trim" => "1m",
            "refusal_log_interval" => "30s",
            "irc_listen" => "off",
            "irc_password" => "s3cret",
            "max_rooms_per_user" => "2",
            "max_rooms" => "5",
            "rooms_per_minute" => "0",
            "max_bans" => "7",
            "max_invites" => "3",
            "topic_len" => "80",
            "page_size" => "9",
            "banner_delay" => "300ms",
            "opers" => SAMPLE_OPERS,
            "oper_die" => "true",
            "whowas_entries" => "5",
            "monitor_limit" => "7",
            "tls_cert" => "cert.pem",
            "tls_key" => "key.pem",
            "tls_self_signed" => "true",
            "irc_tls_listen" => "off",
            "sts_duration" => "720h",
            "http_listen" => "127.0.0.1:0",
            "http_header_timeout" => "2s",
            "http_max_request_bytes" => "9KiB",
            "ws_origins" => "*",
            "ws_max_message_bytes" => "1MiB",
            "db" => "off",
            "db_max_bytes" => "1000000",
            "db_sync" => "normal",
            "db_max_pending" => "77",
            "db_linger" => "5ms",
            "db_wal_max" => "1MiB",
            "db_cache" => "3MiB",
            "history_on_join" => "0",
            "history_max_lines" => "20",
            "history_scan" => "300",
            "history_readers" => "2",
            "history_per_room" => "500",
            "history_max_age" => "168h",
            "nick_grace" => "0",
            "password_min_chars" => "12",
            "auth_max_failures" => "3",
            "auth_max_failures_per_host" => "100",
            "auth_failure_window" => "1h",
            "auth_concurrency" => "4",
            "cluster" => "nats://127.0.0.1:4222",
            "node" => "3",
            "cluster_creds" => "/etc/natter/node.creds",
            "cluster_timeout" => "2s",
            "cluster_heartbeat" => "1s",
            "cluster_node_ttl" => "30s",
            "cluster_fence" => "20s",
            "cluster_history_backfill" => "5000",
            "cluster_drop_live" => "7",
            "cluster_gap_wait" => "1s",
            "cluster_drop_live_state" => "5",
            "cluster_subscription_capacity" => "1000",
            "cluster_gap_coalesce" => "9",
            "cluster_follow_batch" => "17",
            "cluster_bundle" => "5",
            "cluster_recreate_stream" => "true",
            _ => panic!("give the new setting {name} a sample value here"),
        }
    }

    /// An oper block (the hash of "sesame").
    const SAMPLE_OPERS: &str = "root *@127.0.0.1 $argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$kFV3Hn1bZ8XqnV/WQd/6lxUSRI4/ZXcVFb+Vb9RWfM8";

    /// The sample as a TOML value: numbers bare, the rest quoted.
    fn toml_value(sample: &str) -> String {
        match sample.parse::<u64>() {
            Ok(n) => n.to_string(),
            Err(_) if sample == "true" || sample == "false" => sample.to_string(),
            Err(_) => format!("{sample:?}"),
        }
    }

    #[test]
    fn every_setting_has_its_key_flag_variable_default_and_help() {
        let args = setting_args();
        let ids: Vec<&str> = args.iter().map(|a| a.get_id().as_str()).collect();
        assert_eq!(ids, Config::NAMES);
        for arg in &args {
            let name = arg.get_id().as_str();
            assert_eq!(arg.get_long().map(|l| format!("--{l}")), Some(flag(name)));
            assert_eq!(
                arg.get_env().map(|e| e.to_string_lossy().into_owned()),
                Some(env_name(name))
            );
            assert!(
                arg.get_help().is_some_and(|h| !h.to_string().is_empty()),
                "{name} has no help"
            );
            assert!(
                default_of(arg).is_some()
                    || matches!(
                        name,
                        "irc_password" | "tls_cert" | "tls_key" | "services_name"
                    ),
                "{name} has no default_value"
            );
        }
        let help = ServeArgs::augment_args(Command::new("serve"))
            .render_long_help()
            .to_string();
        for arg in &args {
            let name = arg.get_id().as_str();
            assert!(help.contains(&flag(name)), "{help}");
            assert!(
                help.contains(&format!("[env: {}", env_name(name))),
                "{help}"
            );
            if let Some(d) = default_of(arg) {
                // clap quotes a default that has spaces
                assert!(
                    help.contains(&format!("[default: {d}]"))
                        || help.contains(&format!("[default: \"{d}\"]")),
                    "{help}"
                );
            }
        }
    }

    #[test]
    fn key_flag_and_variable_set_the_same_field() {
        let default = Config::default();
        for &name in Config::NAMES {
            let value = sample(name);
            let from_toml: Config = toml::from_str(&format!("{name} = {}", toml_value(value)))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_ne!(from_toml, default, "{name} = {value} is the default");
            let from_flag = parse(&[&flag(name), value], &[])
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .over(Config::default());
            assert_eq!(from_flag, from_toml, "{name}: flag and TOML key differ");
            let from_env = parse(&[], &[(&env_name(name), value)])
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .over(Config::default());
            assert_eq!(from_env, from_toml, "{name}: variable and TOML key differ");
        }
    }

    #[test]
    fn flag_beats_variable_beats_file_beats_default() {
        let file: Config = toml::from_str(
            "server_name = \"file\"\ndefault_room = \"file\"\nmax_per_ip = 1\nping_interval = \"1s\"\n",
        )
        .unwrap();
        let c = parse(
            &["--server-name", "flag", "--ping-interval", "2s"],
            &[
                ("NATTER_SERVER_NAME", "env"),
                ("NATTER_DEFAULT_ROOM", "env"),
                ("NATTER_FLOOD_BURST", "5"),
            ],
        )
        .unwrap()
        .over(file);
        assert_eq!(c.server_name, "flag"); // flag over variable and file
        assert_eq!(c.ping_interval, Duration::from_secs(2)); // flag over file
        assert_eq!(c.default_room, "env"); // variable over file
        assert_eq!(c.flood_burst, 5); // variable over default
        assert_eq!(c.max_per_ip, 1); // file over default
        assert_eq!(c.max_clients, Config::default().max_clients); // default
    }

    #[test]
    fn bad_values_are_refused_wherever_they_come_from() {
        let e = parse(&["--ping-interval", "soon"], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad duration"), "{e}");
        let e = parse(&[], &[("NATTER_IRC_LISTEN", "nowhere")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("HOST:PORT or off"), "{e}");
        let e = toml::from_str::<Config>("irc_listen = \"nowhere\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("HOST:PORT or off"), "{e}");
        let e = parse(&[], &[("NATTER_MAX_CLIENTS", "lots")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("lots"), "{e}");
    }

    #[test]
    fn operating_md_lists_every_setting() {
        let doc = include_str!("../docs/OPERATING.md");
        let table: Vec<&str> = doc
            .split("\n## Settings\n")
            .nth(1)
            .expect("a Settings section")
            .split("\n## ")
            .next()
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("| `"))
            .collect();
        assert_eq!(
            table.len(),
            Config::NAMES.len(),
            "one row per setting in docs/OPERATING.md"
        );
        for arg in setting_args() {
            let name = arg.get_id().as_str();
            let default = match default_of(&arg) {
                Some(d) => format!("`{d}`"),
                None => "none".into(),
            };
            let row = format!(
                "| `{name}` | `{}` / `{}` | {default} | ",
                flag(name),
                env_name(name)
            );
            assert!(
                table.iter().any(|l| l.starts_with(&row)),
                "docs/OPERATING.md has no row starting {row:?}"
            );
        }
    }
}
