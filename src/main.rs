//! The `natter` command line: `natter serve` runs the server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use natter::config::{parse_duration, parse_opt_addr, Config, OptAddr};
use natter::server::{shutdown_signal, Server};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "natter",
    version,
    about = "A chat server for telnet, JSON-lines and IRC clients"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the chat server.
    Serve(ServeArgs),
    /// Chat from the terminal (natter's JSON protocol, or IRC with --irc).
    Chat(natter::client::ChatArgs),
    /// Load-test a chat server on loopback (docs/BENCHMARKS.md).
    Bench(natter::bench::BenchArgs),
}

/// Flags override the config file; each also reads a NATTER_* variable.
/// docs/OPERATING.md describes every setting.
#[derive(Args)]
struct ServeArgs {
    /// TOML config file.
    #[arg(long, env = "NATTER_CONFIG")]
    config: Option<PathBuf>,
    /// Main listen address (port 0: any free port, logged on start).
    #[arg(long, env = "NATTER_LISTEN")]
    listen: Option<SocketAddr>,
    #[arg(long, env = "NATTER_SERVER_NAME")]
    server_name: Option<String>,
    #[arg(long, env = "NATTER_DEFAULT_ROOM")]
    default_room: Option<String>,
    #[arg(long, env = "NATTER_MAX_CLIENTS")]
    max_clients: Option<usize>,
    /// 0 = unlimited.
    #[arg(long, env = "NATTER_MAX_PER_IP")]
    max_per_ip: Option<usize>,
    #[arg(long, env = "NATTER_MAX_LINE_BYTES")]
    max_line_bytes: Option<usize>,
    #[arg(long, env = "NATTER_MAX_NICK_CHARS")]
    max_nick_chars: Option<usize>,
    #[arg(long, env = "NATTER_MAX_ROOM_CHARS")]
    max_room_chars: Option<usize>,
    #[arg(long, env = "NATTER_LARGE_ROOM")]
    large_room: Option<usize>,
    #[arg(long, env = "NATTER_SEND_QUEUE")]
    send_queue: Option<usize>,
    #[arg(long, env = "NATTER_LISTEN_BACKLOG")]
    listen_backlog: Option<u32>,
    /// Lines per second per connection (0 = no limit).
    #[arg(long, env = "NATTER_FLOOD_RATE")]
    flood_rate: Option<u32>,
    #[arg(long, env = "NATTER_FLOOD_BURST")]
    flood_burst: Option<u32>,
    #[arg(long, env = "NATTER_REGISTRATION_TIMEOUT", value_parser = parse_duration)]
    registration_timeout: Option<Duration>,
    #[arg(long, env = "NATTER_TCP_KEEPALIVE", value_parser = parse_duration)]
    tcp_keepalive: Option<Duration>,
    #[arg(long, env = "NATTER_WRITE_TIMEOUT", value_parser = parse_duration)]
    write_timeout: Option<Duration>,
    #[arg(long, env = "NATTER_PING_INTERVAL", value_parser = parse_duration)]
    ping_interval: Option<Duration>,
    #[arg(long, env = "NATTER_PING_TIMEOUT", value_parser = parse_duration)]
    ping_timeout: Option<Duration>,
    #[arg(long, env = "NATTER_SHUTDOWN_GRACE", value_parser = parse_duration)]
    shutdown_grace: Option<Duration>,
    /// IRC listen address, or `off` (port 0: any free port, logged on start).
    #[arg(long, env = "NATTER_IRC_LISTEN", value_parser = parse_opt_addr)]
    irc_listen: Option<OptAddr>,
    /// Server password IRC clients must send with PASS.
    #[arg(long, env = "NATTER_IRC_PASSWORD")]
    irc_password: Option<String>,
    #[arg(long, env = "NATTER_MAX_ROOMS_PER_USER")]
    max_rooms_per_user: Option<usize>,
    #[arg(long, env = "NATTER_BANNER_DELAY", value_parser = parse_duration)]
    banner_delay: Option<Duration>,
}

impl ServeArgs {
    fn into_config(self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = self.$field { c.$field = v; } )* };
        }
        set!(
            listen,
            server_name,
            default_room,
            max_clients,
            max_per_ip,
            max_line_bytes,
            max_nick_chars,
            max_room_chars,
            large_room,
            send_queue,
            listen_backlog,
            flood_rate,
            flood_burst,
            registration_timeout,
            tcp_keepalive,
            write_timeout,
            ping_interval,
            ping_timeout,
            shutdown_grace,
            irc_listen,
            max_rooms_per_user,
            banner_delay
        );
        if let Some(p) = self.irc_password {
            c.irc_password = Some(p);
        }
        Ok(c)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NATTER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Cmd::Serve(args) => serve(args),
        Cmd::Chat(args) => natter::client::run(args),
        Cmd::Bench(args) => natter::bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("natter: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.into_config()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let server = Server::bind(config).await?;
        let stop = CancellationToken::new();
        let trigger = stop.clone();
        let signal = shutdown_signal(); // handlers installed now, before "listening on"
        tokio::spawn(async move {
            signal.await;
            trigger.cancel();
        });
        server.run(stop).await
    })
}
