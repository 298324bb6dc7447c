//! The `natter` command line: `natter serve` runs the server.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use natter::config::ServeArgs;
use natter::server::{shutdown_signal, Server};
use tokio_util::sync::CancellationToken;

/// The allocator: jemalloc, which gives freed memory back to the OS (see
/// `memory_trim` in docs/OPERATING.md and "Under abuse" in
/// docs/BENCHMARKS.md).
#[cfg(unix)]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read when it starts (the `_RJEM_MALLOC_CONF`
/// environment variable overrides them: the crate's jemalloc is prefixed): its background thread gives pages that have
/// been free for a second back to the OS, at once rather than in two steps.
#[cfg(unix)]
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: MallocConf =
    MallocConf(c"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr());

/// A C string pointer that may be a `static` (jemalloc reads `_rjem_malloc_conf`).
#[cfg(unix)]
#[repr(transparent)]
pub struct MallocConf(*const std::ffi::c_char);
// SAFETY: it points at a string literal, which nothing writes.
#[cfg(unix)]
unsafe impl Sync for MallocConf {}

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
#[allow(clippy::large_enum_variant)] // parsed once, at start
enum Cmd {
    /// Run the chat server.
    Serve(ServeArgs),
    /// Chat from the terminal (natter's JSON protocol, or IRC with --irc).
    Chat(natter::client::ChatArgs),
    /// Load-test a chat server on loopback (docs/BENCHMARKS.md).
    Bench(natter::bench::BenchCommand),
    /// Read a password on standard input and print its argon2 hash (for
    /// the `opers` setting).
    HashPassword,
    /// Look after the database: a consistent backup, an integrity check.
    #[command(subcommand)]
    Db(DbCmd),
}

#[derive(Subcommand)]
enum DbCmd {
    /// Copy the database to PATH while the server runs (SQLite online backup).
    Backup {
        /// Where to write the copy.
        path: std::path::PathBuf,
        /// The database to copy.
        #[arg(long, env = "NATTER_DB", default_value = "natter.db")]
        db: std::path::PathBuf,
    },
    /// Check the database's integrity; exits non-zero on any problem.
    Check {
        /// The database to check.
        #[arg(long, env = "NATTER_DB", default_value = "natter.db")]
        db: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Log lines go to stderr through a thread of their own (`logwriter`).
    let (log, log_guard) = natter::logwriter::spawn(
        std::io::stderr(),
        natter::logwriter::buffer_from_env(),
        natter::logwriter::linger_from_env(),
    );
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NATTER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(log)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .fmt_fields(natter::logformat::Fields::default())
        .event_format(natter::logformat::Line::default())
        .init();
    let result = match cli.command {
        Cmd::Serve(args) => serve(args),
        Cmd::Chat(args) => natter::client::run(args),
        Cmd::Bench(cmd) => natter::bench::command(cmd),
        Cmd::HashPassword => hash_password(),
        Cmd::Db(cmd) => db(cmd),
    };
    // Every log line is out before the last word (and before exit).
    drop(log_guard);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("natter: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The first line of standard input, hashed.
fn hash_password() -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(!password.is_empty(), "no password on standard input");
    let hash = natter::proto::oper::hash_password(password).map_err(anyhow::Error::msg)?;
    println!("{hash}");
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let reload = args.clone();
    let config = args.into_config()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads())
        .enable_all()
        .build()?;
    rt.block_on(async {
        let server = Server::bind(config)
            .await?
            .with_reload(Box::new(move || reload.clone().into_config()));
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

fn db(cmd: DbCmd) -> anyhow::Result<()> {
    use natter::store::sqlite;
    match cmd {
        DbCmd::Backup { path, db } => {
            sqlite::backup(&db, &path)?;
            println!("backed up {} to {}", db.display(), path.display());
        }
        DbCmd::Check { db } => {
            let found = sqlite::check(&db)?;
            if found != ["ok"] {
                anyhow::bail!(
                    "{}: integrity check failed:\n{}",
                    db.display(),
                    found.join("\n")
                );
            }
            println!("{}: ok", db.display());
        }
    }
    Ok(())
}
