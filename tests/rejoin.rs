//! `rejoin_on_login` end to end, over real sockets and a real SQLite file:
//! an account keeps the channels its IRC sessions are in, and an IRC
//! session logging in (SASL before registering, NickServ IDENTIFY after)
//! is put back in them at the end of its welcome, with `MARKREAD` for each
//! (`draft/read-marker`); parting forgets a channel, quitting does not;
//! keys, bans and invite-only are respected; the lists survive a restart.
//! Also the services' pseudo-server (`services_name`) as IRC clients see
//! it: `LINKS`, `WHOIS NickServ`, the host of service notices.

mod common;

use std::time::Duration;

use common::*;
use natter::config::Config;

const PW: &str = "hunter2hunter2";

fn irc(srv: &TestServer) -> std::net::SocketAddr {
    srv.irc_addr.expect("IRC listener on")
}

/// An IRC client that registers `nick` and the account `nick` (NickServ).
async fn new_account(srv: &TestServer, nick: &str) -> IrcClient {
    let mut i = IrcClient::register(irc(srv), nick).await;
    i.send(&format!("PRIVMSG NickServ :REGISTER {PW}")).await;
    i.numeric("900").await;
    i
}

/// Connects as `nick` with `caps`, logs in to `account` with SASL PLAIN
/// and ends registration; returns the lines from `001` on, up to the
/// `PONG` of a `PING` sent after the welcome (so the whole burst).
async fn sasl_login(
    addr: std::net::SocketAddr,
    nick: &str,
    account: &str,
    caps: &str,
) -> (IrcClient, Vec<String>) {
    let mut i = IrcClient::register_sasl(addr, nick, account, PW, caps).await;
    let mut burst = vec![i.numeric("001").await];
    burst.extend(i.sync().await);
    (i, burst)
}

/// The channels `JOIN`ed by `nick` in `lines`, in order.
fn joins(lines: &[String], nick: &str) -> Vec<String> {
    let prefix = format!(":{nick}!");
    lines
        .iter()
        .map(|l| match l.strip_prefix('@') {
            Some(tagged) => tagged.split_once(' ').map_or("", |(_, rest)| rest),
            None => l,
        })
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.split(" JOIN ").nth(1))
        .map(|rest| rest.split(' ').next().unwrap_or(rest).to_string())
        .collect()
}

/// Position of the first line containing `needle`.
fn at(lines: &[String], needle: &str) -> usize {
    lines
        .iter()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in {lines:#?}"))
}

fn db_config(db: &std::path::Path) -> Config {
    Config {
        db: db.display().to_string(),
        nick_grace: Duration::ZERO,
        ..config()
    }
}

#[tokio::test]
async fn sasl_login_rejoins_kept_channels_after_the_welcome_across_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("natter.db");
    let srv = start(db_config(&db)).await;
    let mut a = new_account(&srv, "alice").await;
    a.send("CAP REQ :draft/read-marker").await;
    a.expect(" ACK ").await;
    for room in ["#books", "#films", "#gone"] {
        a.join(room).await;
    }
    let ts = "2024-05-06T07:08:09.010Z";
    a.send(&format!("MARKREAD #books timestamp={ts}")).await;
    a.expect("MARKREAD #books").await;
    a.send("PART #gone").await;
    a.expect(" PART #gone").await;
    a.send("QUIT :bye").await;
    a.c.until_eof().await;

    // Back with SASL: the JOINs (with their NAMES) come after the end of
    // the MOTD, each followed by its MARKREAD; #gone was parted.
    let caps = "draft/read-marker";
    let (a, burst) = sasl_login(irc(&srv), "alice", "alice", caps).await;
    assert_eq!(joins(&burst, "alice"), ["#books", "#films"], "{burst:#?}");
    let motd_end = at(&burst, " 376 ");
    let join = at(&burst, " JOIN #books");
    let names_end = at(&burst, " 366 alice #books ");
    let mark = at(&burst, &format!("MARKREAD #books timestamp={ts}"));
    assert!(
        motd_end < join && join < mark && mark < names_end,
        "{burst:#?}"
    );
    let films = at(&burst, " JOIN #films");
    assert!(burst[films + 1..]
        .iter()
        .any(|l| l.ends_with("MARKREAD #films *")));
    drop(a);
    srv.shutdown().await;

    // The list is in the database: a restarted server puts alice back too,
    // and a session that registers but does not log in is in no channel.
    let srv = start(db_config(&db)).await;
    let mut guest = IrcClient::register(irc(&srv), "gus").await;
    assert!(joins(&guest.sync().await, "gus").is_empty());
    let (_a, burst) = sasl_login(irc(&srv), "alice", "alice", caps).await;
    assert_eq!(joins(&burst, "alice"), ["#books", "#films"], "{burst:#?}");
    srv.shutdown().await;
}

#[tokio::test]
async fn identify_after_registering_rejoins_but_keys_bans_and_invites_are_respected() {
    let srv = start(config()).await;
    // bob runs the channels and stays in them.
    let mut bob = IrcClient::register(irc(&srv), "bob").await;
    for room in ["#open", "#keyed", "#banned", "#invite"] {
        bob.join(room).await;
    }
    bob.send("MODE #keyed +k sesame").await;
    bob.expect("MODE #keyed +k").await;
    let mut a = new_account(&srv, "alice").await;
    a.join("#open").await;
    a.join("#keyed sesame").await;
    a.join("#banned").await;
    a.join("#invite").await;
    a.send("QUIT").await;
    a.c.until_eof().await;
    // While alice is away #banned bans her and #invite becomes invite-only.
    bob.send("MODE #banned +b alice*!*@*").await;
    bob.expect("MODE #banned +b").await;
    bob.send("MODE #invite +i").await;
    bob.expect("MODE #invite +i").await;

    // Logging in after registering puts her back where she may go (the
    // key she entered with still works); the others are refused as a JOIN
    // would be, and forgotten.
    let mut a = IrcClient::register(irc(&srv), "alice_").await;
    a.send(&format!("PRIVMSG NickServ :IDENTIFY alice {PW}"))
        .await;
    a.numeric("900").await;
    let lines = a.sync().await;
    assert_eq!(joins(&lines, "alice_"), ["#open", "#keyed"], "{lines:#?}");
    at(&lines, " 474 alice_ #banned ");
    at(&lines, " 473 alice_ #invite ");
    a.send("QUIT").await;
    a.c.until_eof().await;
    bob.send("MODE #banned -b alice*!*@*").await;
    bob.expect("MODE #banned -b").await;
    let (_a, burst) = sasl_login(irc(&srv), "alice", "alice", "server-time").await;
    assert_eq!(joins(&burst, "alice"), ["#open", "#keyed"], "{burst:#?}");
    assert!(!burst.iter().any(|l| l.contains(" 474 ")), "{burst:#?}");
    srv.shutdown().await;
}

#[tokio::test]
async fn other_sessions_keep_a_channel_parted_and_join_0_forgets_all() {
    let srv = start(config()).await;
    let mut one = new_account(&srv, "alice").await;
    one.join("#a").await;
    one.join("#b").await;
    // A second session is put in the account's channels as it logs in.
    let (mut two, burst) = sasl_login(irc(&srv), "alice2", "alice", "server-time").await;
    assert_eq!(joins(&burst, "alice2"), ["#a", "#b"], "{burst:#?}");
    // One session parting #a keeps it for the account while the other is in it.
    one.send("PART #a").await;
    one.expect(" PART #a").await;
    let (mut three, burst) = sasl_login(irc(&srv), "alice3", "alice", "server-time").await;
    assert_eq!(joins(&burst, "alice3"), ["#a", "#b"], "{burst:#?}");
    // JOIN 0 parts everything; the last session to leave a channel
    // forgets it for the account.
    for s in [&mut one, &mut two, &mut three] {
        s.send("JOIN 0").await;
        s.expect(" PART #b").await;
        s.sync().await;
    }
    let (_four, burst) = sasl_login(irc(&srv), "alice4", "alice", "server-time").await;
    assert!(joins(&burst, "alice4").is_empty(), "{burst:#?}");
    srv.shutdown().await;
}

#[tokio::test]
async fn rejoin_off_and_text_users_keep_nothing() {
    let srv = start(Config {
        rejoin_on_login: false,
        ..config()
    })
    .await;
    let mut a = new_account(&srv, "alice").await;
    a.join("#books").await;
    a.send("QUIT").await;
    a.c.until_eof().await;
    let (_a, burst) = sasl_login(irc(&srv), "alice", "alice", "server-time").await;
    assert!(joins(&burst, "alice").is_empty(), "{burst:#?}");
    srv.shutdown().await;

    // A text user's rooms are not an IRC session's: logging in over text
    // and moving rooms leaves the account's IRC channels alone.
    let srv = start(config()).await;
    let mut a = new_account(&srv, "alice").await;
    a.join("#books").await;
    a.send("QUIT").await;
    a.c.until_eof().await;
    let mut t = srv.user("alice_t").await;
    t.send(&format!("/login alice {PW}")).await;
    t.expect("You are now logged in as alice.").await;
    t.send("/join films").await;
    t.expect("films").await;
    t.send("/quit").await;
    t.until_eof().await;
    let (_a, burst) = sasl_login(irc(&srv), "alice", "alice", "server-time").await;
    assert_eq!(joins(&burst, "alice"), ["#books"], "{burst:#?}");
    srv.shutdown().await;
}

#[tokio::test]
async fn services_are_shown_on_their_own_server() {
    let srv = start(Config {
        server_name: "chat.example".into(),
        server_info: "a test server".into(),
        ..config()
    })
    .await;
    let mut i = IrcClient::register(irc(&srv), "alice").await;
    i.send("LINKS").await;
    let lines = i.sync().await;
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[0].ends_with(" 364 alice chat.example chat.example :0 a test server"),
        "{lines:#?}"
    );
    assert!(
        lines[1].contains(" 364 alice services.chat.example chat.example :1 "),
        "{lines:#?}"
    );
    assert!(lines[2].contains(" 365 alice * :"), "{lines:#?}");
    i.send("WHOIS nickserv").await;
    let lines = i.sync().await;
    at(
        &lines,
        " 311 alice NickServ NickServ services.chat.example * :",
    );
    at(&lines, " 312 alice NickServ services.chat.example :");
    at(&lines, " 318 alice NickServ ");
    i.send("PRIVMSG NickServ :HELP").await;
    i.expect(":NickServ!NickServ@services.chat.example NOTICE alice :")
        .await;
    srv.shutdown().await;

    let srv = start(Config {
        services_name: Some("services.example.net".into()),
        ..config()
    })
    .await;
    let mut i = IrcClient::register(irc(&srv), "alice").await;
    i.send("WHOIS ChanServ").await;
    i.expect(" 312 alice ChanServ services.example.net :").await;
    i.send("LINKS").await;
    i.expect(" 364 alice services.example.net natter :1 ").await;
    srv.shutdown().await;
}
