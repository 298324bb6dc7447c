//! `natter chat`: the terminal client.
//!
//! ```text
//! stdin/terminal ──► front end ──Request──► conn task ──lines──► server
//!                    (plain.rs  ◄──Event───  (conn.rs:  ◄─lines──
//!                     or tui.rs)             reconnect,
//!                                            Protocol: json | irc)
//! ```
//!
//! * [`protocol`]: the wire, behind the [`protocol::Protocol`] trait —
//!   natter's JSON lines or IRC ([`ircmsg`] is the client's IRC parser).
//! * [`conn`]: one task owning the socket: login, heartbeat replies (via
//!   the protocol), reconnect with exponential backoff.
//! * [`event`], [`command`]: what flows between the two halves.
//! * [`session`], [`format`], [`color`]: pure helpers both front ends use.
//! * [`password`]: the unechoed password prompt.
//! * [`plain`]: line mode for pipes and scripts; [`tui`] + [`ui`]: the
//!   full-screen UI, its state pure and tested headless.

pub mod color;
pub mod command;
pub mod conn;
pub mod event;
pub mod format;
pub mod ircmsg;
pub mod lines;
pub mod password;
pub mod plain;
pub mod protocol;
pub mod session;
pub mod tls;
pub mod tui;
pub mod ui;

use std::io::IsTerminal;
use std::time::Duration;

use clap::Args;
use tokio::sync::mpsc;

use crate::config::parse_duration;
use conn::{Backoff, ConnConfig, Server};
use protocol::irc::IrcProtocol;
use protocol::json::JsonProtocol;
use protocol::Protocol;

/// Where `natter chat` connects without an address.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7777";

/// `natter chat` flags. docs/PROTOCOL.md ("natter chat") describes the
/// client; README.md shows examples.
#[derive(Args, Debug, Clone)]
pub struct ChatArgs {
    /// natter server to connect to (JSON-lines protocol); `tls://HOST[:PORT]`
    /// for TLS, `ircs://HOST[:PORT]` / `irc://HOST[:PORT]` for IRC. Several,
    /// separated by commas (the nodes of a cluster): the first is used, and
    /// when it is lost the next one at once.
    #[arg(value_name = "HOST:PORT[,HOST:PORT…]", conflicts_with = "irc")]
    pub addr: Option<String>,
    /// Speak IRC to this IRC server instead (`ircs://HOST[:PORT]`: over TLS);
    /// several separated by commas, as for the address.
    #[arg(long, value_name = "HOST:PORT[,HOST:PORT…]")]
    pub irc: Option<String>,
    /// Connect over TLS, checking the server's certificate against the
    /// system's root certificates (or --ca).
    #[arg(long)]
    pub tls: bool,
    /// Trust only the CA certificate(s) in this PEM file (implies --tls).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,
    /// TLS without checking the certificate: anyone in between can read and
    /// change everything (implies --tls). For testing only.
    #[arg(long, conflicts_with = "ca")]
    pub insecure: bool,
    /// Nickname. Without it the full-screen client asks; plain mode asks
    /// only a terminal, never takes a line from a pipe as a nickname.
    #[arg(long, env = "NATTER_NICK")]
    pub nick: Option<String>,
    /// If the nickname is taken, try it with `_` appended (the IRC mode
    /// always does). Without it, plain mode exits with status 1 and the
    /// reason when the nickname is refused (the full-screen client asks).
    #[arg(long)]
    pub nick_fallback: bool,
    /// Room to enter after logging in (repeatable: all are joined).
    #[arg(long, value_name = "ROOM")]
    pub join: Vec<String>,
    /// First delay before reconnecting; doubles after each failure.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub reconnect_min: Duration,
    /// Longest delay between reconnect attempts.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub reconnect_max: Duration,
    /// Exit instead of reconnecting when the connection is lost.
    #[arg(long)]
    pub no_reconnect: bool,
    /// After a lost connection, how long our nickname refused as taken is
    /// taken for our old connection still holding it (the server, or the
    /// cluster, has not noticed the loss yet) and the login tried again;
    /// `0` gives it up at once (JSON; on IRC the nickname with `_`
    /// appended is taken instead).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub nick_reclaim: Duration,
    /// Log in to your nickname's account: ask for its password on the
    /// terminal (not echoed). Scripts use --password-file or the
    /// NATTER_PASSWORD variable instead (a password is never a flag's
    /// value: others could read it in the process list).
    #[arg(long, conflicts_with = "password_file")]
    pub password: bool,
    /// Log in to your nickname's account with the password on this file's
    /// first line.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<std::path::PathBuf>,
    /// Plain line mode even on a terminal.
    #[arg(long)]
    pub plain: bool,
}

/// The variable a script may put the account password in.
pub const PASSWORD_VAR: &str = "NATTER_PASSWORD";

/// The account password, if one is to be used: `--password` asks on the
/// terminal, `--password-file` reads the file's first line, else
/// [`PASSWORD_VAR`]. An empty one is refused (it is a mistake, not "none").
fn password(args: &ChatArgs, nick: Option<&str>) -> anyhow::Result<Option<String>> {
    let given = if args.password {
        let prompt = match nick {
            Some(n) => format!("Password for {n}: "),
            None => "Password: ".to_string(),
        };
        password::ask(&prompt)
            .map_err(|e| anyhow::anyhow!("cannot ask for the password (no terminal?): {e}; use --password-file or {PASSWORD_VAR}"))?
    } else if let Some(path) = &args.password_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        first_line(&text).to_string()
    } else {
        match std::env::var(PASSWORD_VAR) {
            Ok(p) => p,
            Err(std::env::VarError::NotPresent) => return Ok(None),
            Err(e) => anyhow::bail!("{PASSWORD_VAR}: {e}"),
        }
    };
    if given.is_empty() {
        anyhow::bail!("the password is empty");
    }
    Ok(Some(given))
}

/// A file's first line without its line ending.
fn first_line(text: &str) -> &str {
    let line = text.split('\n').next().unwrap_or("");
    line.strip_suffix('\r').unwrap_or(line)
}

/// The servers in `addrs` (separated by commas), in order: at least one,
/// all speaking the same protocol the same way (IRC or not, TLS or not).
fn targets(addrs: &str, irc: bool, tls: bool) -> anyhow::Result<Vec<tls::Target>> {
    let targets = addrs
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| tls::parse_target(a, irc, tls))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let Some(first) = targets.first() else {
        anyhow::bail!("no server address in {addrs:?}");
    };
    if let Some(odd) = targets
        .iter()
        .find(|t| (t.irc, t.tls) != (first.irc, first.tls))
    {
        anyhow::bail!(
            "{} and {} speak differently (IRC or not, TLS or not): the servers of one chat must all be the same kind",
            first.addr,
            odd.addr
        );
    }
    Ok(targets)
}

/// Runs `natter chat` to completion.
pub fn run(args: ChatArgs) -> anyhow::Result<()> {
    let color = !color::no_color();
    let stdout_tty = std::io::stdout().is_terminal();
    let stdin_tty = std::io::stdin().is_terminal();
    let tty = !args.plain && stdout_tty && stdin_tty;
    let nick = args
        .nick
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    if nick.is_none() && !stdin_tty {
        // A script's lines are what it wants said: none is a nickname.
        anyhow::bail!(
            "no nickname: give --nick NICK (or set NATTER_NICK); \
             lines from a pipe are never taken as a nickname"
        );
    }
    let password = password(&args, nick.as_deref())?;
    if password.is_some() && nick.is_none() {
        anyhow::bail!("a password logs in to the account of a nickname: give --nick NICK too");
    }
    let want_tls = args.tls || args.ca.is_some() || args.insecure;
    let targets = match (&args.irc, &args.addr) {
        (Some(addrs), _) => targets(addrs, true, want_tls)?,
        (None, Some(addrs)) => targets(addrs, false, want_tls)?,
        (None, None) => targets(DEFAULT_ADDR, false, want_tls)?,
    };
    let target = &targets[0];
    let proto: Box<dyn Protocol> = match target.irc {
        true => Box::new(
            IrcProtocol::new(nick, args.join.clone())
                .with_nick_reclaim(args.nick_reclaim)
                .with_password(password),
        ),
        false => Box::new(
            JsonProtocol::new(nick, args.join.clone())
                .with_nick_fallback(args.nick_fallback)
                .with_nick_reclaim(args.nick_reclaim)
                .with_password(password),
        ),
    };
    let tls = match (target.tls, &args.ca, args.insecure) {
        (false, _, _) => None,
        (true, _, true) => {
            eprintln!(
                "natter: WARNING: --insecure: the server's certificate is NOT checked. \
                 Anyone between you and {} can read and change this chat.",
                target.addr
            );
            Some(tls::client_config(tls::Trust::Insecure)?)
        }
        (true, Some(ca), false) => Some(tls::client_config(tls::Trust::Ca(ca))?),
        (true, None, false) => Some(tls::client_config(tls::Trust::System)?),
    };
    let servers = targets
        .iter()
        .map(|t| Server {
            addr: t.addr.clone(),
            host: t.host.clone(),
        })
        .collect();
    let cfg = ConnConfig {
        servers,
        tls,
        backoff: Backoff::new(args.reconnect_min, args.reconnect_max),
        reconnect: !args.no_reconnect,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async move {
        let (req_tx, req_rx) = mpsc::channel(256);
        let (ev_tx, ev_rx) = mpsc::channel(1024);
        let conn = tokio::spawn(conn::run(cfg, proto, req_rx, ev_tx));
        let result = if tty {
            tui::run(ev_rx, req_tx, color).await
        } else {
            let opts = plain::Options {
                color: color && stdout_tty,
                ask_nick: stdin_tty,
            };
            plain::run(ev_rx, req_tx, opts).await
        };
        conn.abort();
        result
    });
    // Reader threads may still block on stdin; do not wait for them.
    rt.shutdown_background();
    result
}

#[cfg(test)]
mod tests {
    use super::{first_line, targets};

    #[test]
    fn a_password_file_gives_its_first_line() {
        assert_eq!(first_line("s3cret pass\n"), "s3cret pass");
        assert_eq!(first_line("s3cret\r\nother\n"), "s3cret");
        assert_eq!(first_line(" spaced "), " spaced ");
        assert_eq!(first_line(""), "");
    }

    #[test]
    fn several_servers_are_separated_by_commas_and_must_be_alike() {
        let t = targets("127.0.0.1:1, 127.0.0.1:2,", false, false).unwrap();
        let addrs: Vec<_> = t.iter().map(|t| t.addr.as_str()).collect();
        assert_eq!(addrs, ["127.0.0.1:1", "127.0.0.1:2"]);
        let err = targets("tls://a:1,b:2", false, false).unwrap_err();
        assert!(err.to_string().contains("same kind"), "{err}");
        assert!(targets(" , ", false, false).is_err());
        assert!(targets("a:1,nope", false, false).is_err());
    }
}
