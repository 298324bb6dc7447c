//! Accounts end to end, over real sockets and real SQLite files: register
//! and log in from text, JSON and IRC (SASL PLAIN and SCRAM-SHA-256, PASS,
//! NickServ), nick protection, throttling, registered rooms, and all of
//! it surviving a restart.

mod common;

use std::path::Path;
use std::time::Duration;

use base64ct::{Base64, Encoding};
use common::*;
use natter::config::Config;
use natter::proto::scram;
use serde_json::json;

const PW: &str = "hunter2hunter2";

/// A server on the database file `db`; registered nicks are refused.
fn db_config(db: &Path) -> Config {
    Config {
        db: db.display().to_string(),
        nick_grace: Duration::ZERO,
        ..config()
    }
}

/// A database file in a new temporary directory (gone with the directory).
fn temp_db() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("natter.db");
    (dir, db)
}

/// SASL PLAIN with `payload` (`authzid NUL authcid NUL password`).
async fn sasl_plain(i: &mut IrcClient, payload: &str) {
    i.send("AUTHENTICATE PLAIN").await;
    i.expect("AUTHENTICATE +").await;
    i.send(&format!("AUTHENTICATE {}", b64(payload))).await;
}

fn irc(srv: &TestServer) -> std::net::SocketAddr {
    srv.irc_addr.expect("IRC listener on")
}

/// A text user who registered `nick` as an account.
async fn registered_text_user(srv: &TestServer, nick: &str) -> Client {
    let mut c = srv.user(nick).await;
    c.send(&format!("/register {PW}")).await;
    c.expect(&format!("The account {nick} is registered")).await;
    c
}

fn b64(s: &str) -> String {
    Base64::encode_string(s.as_bytes())
}

/// Reads `AUTHENTICATE <data>` and decodes it.
async fn authenticate_data(i: &mut IrcClient) -> String {
    let l = i.expect("AUTHENTICATE ").await;
    let data = l.trim_start_matches("AUTHENTICATE ");
    String::from_utf8(Base64::decode_vec(data).expect("base64")).expect("utf8")
}

#[tokio::test]
async fn text_accounts_survive_a_restart_and_protect_their_nick() {
    let (_dir, db) = temp_db();
    let srv = start(db_config(&db)).await;
    let mut a = srv.user("alice").await;
    a.send("/register short").await;
    a.expect("unusable password: a password has at least 8 characters")
        .await;
    a.send(&format!("/register {PW}")).await;
    a.expect("The account alice is registered and you are logged in to it")
        .await;
    a.send("/register another-password").await;
    a.expect("alice is registered already").await;
    srv.shutdown().await;

    let srv = start(db_config(&db)).await;
    let mut b = srv.client().await;
    b.expect("What is your nickname?").await;
    b.send("Alice").await;
    b.expect("Alice is a registered nickname: log in to use it. Type its password")
        .await;
    b.send("").await; // an empty line: another nickname after all
    b.expect("What is your nickname?").await;
    b.send("Alice").await;
    b.expect("Type its password").await;
    b.send("wrong password").await;
    b.expect("wrong account or password. Pick a nickname:")
        .await;
    b.send("alice").await;
    b.expect("Type its password").await;
    b.send(PW).await;
    b.expect("You are now logged in as alice.").await;
    b.expect("You are now known as alice").await;
    b.expect("*** In #lobby").await;
    // Logged in, /nick and back work; nobody else can take it.
    let mut c = srv.user("carol").await;
    c.send("/nick alice").await;
    c.expect("alice is a registered nickname: log in to use it (/login NICK PASSWORD)")
        .await;
    c.send("/login alice not-it").await;
    c.expect("wrong account or password").await;
    c.send("hello").await;
    c.expect("carol: hello").await;
    // Logged in (after picking a nick), carol goes by the account's nick,
    // taken from its other holder.
    c.send(&format!("/login alice {PW}")).await;
    c.expect("You are now logged in as alice.").await;
    c.expect("carol is now known as alice").await;
    b.expect("you are now Guest").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn logged_in_users_take_their_nick_back_and_guests_are_renamed() {
    let (_dir, db) = temp_db();
    let grace = Config {
        nick_grace: Duration::from_millis(300),
        ..db_config(&db)
    };
    let srv = start(grace.clone()).await;
    registered_text_user(&srv, "alice").await;
    srv.shutdown().await;

    let srv = start(grace).await;
    // Somebody takes "alice" without logging in: warned, then renamed.
    let mut guest = srv.client().await;
    guest.send("alice").await;
    guest.expect("You are now known as alice").await;
    guest
        .expect("alice is a registered nickname: /login alice PASSWORD within 1s")
        .await;
    let renamed = guest.expect("you are now Guest").await;
    assert!(renamed.contains("alice belongs to an account"), "{renamed}");
    // Another takes it again; alice comes back (JSON, with a password) and
    // gets her nick at once.
    let mut squatter = srv.client().await;
    squatter.send("alice").await;
    squatter.expect("You are now known as alice").await;
    let mut j = JsonClient::connect(srv.addr).await;
    j.send(json!({"cmd": "login", "nick": "alice", "password": "nope-nope"}))
        .await;
    assert_eq!(j.expect_error().await, "auth_failed");
    j.send(json!({"cmd": "login", "nick": "alice", "password": PW}))
        .await;
    let (account, created) =
        expect_event!(j, Event::LoggedIn { account, created, .. } => (account, created)).await;
    assert_eq!((&*account, created), ("alice", false));
    let nick = expect_event!(j, Event::Registered { nick, .. } => nick).await;
    assert_eq!(nick, "alice");
    squatter.expect("you are now Guest").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn json_register_login_and_throttling() {
    let cfg = Config {
        auth_max_failures: 2,
        ..config() // accounts in memory
    };
    let srv = start(cfg).await;
    let mut a = JsonClient::login(srv.addr, "dora").await;
    a.send(json!({"cmd": "register", "password": "x"})).await;
    assert_eq!(a.expect_error().await, "bad_password");
    a.send(json!({"cmd": "register", "password": 7})).await;
    assert_eq!(a.expect_error().await, "bad_arguments");
    a.send(json!({"cmd": "register", "password": PW})).await;
    let created = expect_event!(a, Event::LoggedIn { created, .. } => created).await;
    assert!(created);
    // dora made #den, so she operates it and may register it.
    a.send(json!({"cmd": "join", "room": "den"})).await;
    expect_event!(a, Event::Presence { .. }).await;
    a.send(json!({"cmd": "register_room"})).await;
    let (room, founder) =
        expect_event!(a, Event::RoomRegistered { room, founder } => (room, founder)).await;
    assert_eq!((&*room, &*founder), ("den", "dora"));
    a.send(json!({"cmd": "register_room", "room": "den"})).await;
    assert_eq!(a.expect_error().await, "room_registered");
    // Two wrong passwords, then even the right one is throttled.
    let mut b = JsonClient::connect(srv.addr).await;
    for _ in 0..2 {
        b.send(json!({"cmd": "login", "nick": "dora", "password": "wrong-one"}))
            .await;
        assert_eq!(b.expect_error().await, "auth_failed");
    }
    b.send(json!({"cmd": "login", "nick": "dora", "password": PW}))
        .await;
    assert_eq!(b.expect_error().await, "throttled");
    // The session goes on: a plain nick still works.
    b.send(json!({"cmd": "login", "nick": "dora"})).await;
    assert_eq!(b.expect_error().await, "nick_in_use");
    b.send(json!({"cmd": "login", "nick": "eve"})).await;
    expect_event!(b, Event::Registered { .. }).await;
    srv.shutdown().await;
}

/// An IRC client that negotiates `caps` (and `sasl`) before registering.
async fn irc_with_caps(addr: std::net::SocketAddr, nick: &str, caps: &str) -> IrcClient {
    let mut i = IrcClient::connect(addr).await;
    i.send("CAP LS 302").await;
    i.send(&format!("NICK {nick}")).await;
    i.send(&format!("USER {nick} 0 * :{nick} real")).await;
    i.send(&format!("CAP REQ :{caps}")).await;
    i.expect("CAP * ACK").await;
    i
}

#[tokio::test]
async fn sasl_plain_success_failure_abort_and_oversized() {
    let srv = start(config()).await;
    registered_text_user(&srv, "alice").await;
    let mut i = irc_with_caps(irc(&srv), "alicia", "sasl").await;
    // Aborted mid-way.
    i.send("AUTHENTICATE PLAIN").await;
    assert_eq!(i.line().await.unwrap(), "AUTHENTICATE +");
    i.send("AUTHENTICATE *").await;
    i.numeric("906").await;
    // Unknown mechanism: the list, then a failure.
    i.send("AUTHENTICATE EXTERNAL").await;
    let mechs = i.numeric("908").await;
    assert!(mechs.contains("PLAIN,SCRAM-SHA-256"), "{mechs}");
    i.numeric("904").await;
    // A chunk over 400 bytes.
    i.send("AUTHENTICATE PLAIN").await;
    i.expect("AUTHENTICATE +").await;
    i.send(&format!("AUTHENTICATE {}", "A".repeat(401))).await;
    i.numeric("905").await;
    // A message over the limit in 400-byte chunks.
    i.send("AUTHENTICATE PLAIN").await;
    i.expect("AUTHENTICATE +").await;
    for _ in 0..11 {
        i.send(&format!("AUTHENTICATE {}", "A".repeat(400))).await;
    }
    i.numeric("904").await;
    // Not base64.
    i.send("AUTHENTICATE PLAIN").await;
    i.expect("AUTHENTICATE +").await;
    i.send("AUTHENTICATE !!!!").await;
    i.numeric("904").await;
    // A wrong password.
    sasl_plain(&mut i, "\0alice\0wrong password").await;
    i.numeric("904").await;
    // The right one, with a PING right behind it: answers come in order.
    i.send("AUTHENTICATE PLAIN").await;
    i.expect("AUTHENTICATE +").await;
    let payload = b64(&format!("alice\0alice\0{PW}"));
    i.c.send_raw(format!("AUTHENTICATE {payload}\r\nPING :after\r\n").as_bytes())
        .await;
    let logged = i.line().await.unwrap();
    assert!(logged.contains(" 900 "), "login before PONG: {logged}");
    assert!(
        logged.contains(" alice :You are now logged in as alice"),
        "{logged}"
    );
    assert!(i.line().await.unwrap().contains(" 903 "));
    assert!(i.line().await.unwrap().contains("PONG"));
    i.send("AUTHENTICATE PLAIN").await;
    i.numeric("907").await;
    i.send("CAP END").await;
    i.numeric("001").await;
    i.send("WHOIS alicia").await;
    let account = i.numeric("330").await;
    assert!(
        account.contains(" alicia alice :is logged in as"),
        "{account}"
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn sasl_scram_sha_256_and_a_wrong_proof() {
    let srv = start(config()).await;
    registered_text_user(&srv, "alice").await;
    for (password, ok) in [("not the password", false), (PW, true)] {
        let mut i = irc_with_caps(irc(&srv), "alice", "sasl").await;
        i.send("AUTHENTICATE SCRAM-SHA-256").await;
        assert_eq!(i.line().await.unwrap(), "AUTHENTICATE +");
        let bare = "n=alice,r=fyko+d2lbbFgONRv9qkxdawL";
        i.send(&format!("AUTHENTICATE {}", b64(&format!("n,,{bare}"))))
            .await;
        let server_first = authenticate_data(&mut i).await;
        assert!(server_first.contains(",i=4096"), "{server_first}");
        let last = scram::client_final(password, bare, &server_first).unwrap();
        i.send(&format!("AUTHENTICATE {}", b64(&last))).await;
        if !ok {
            i.numeric("904").await;
            // The session goes on: registration works, as a guest.
            i.send("NICK notalice").await;
            i.send("CAP END").await;
            i.numeric("001").await;
            continue;
        }
        let server_final = authenticate_data(&mut i).await;
        assert!(server_final.starts_with("v="), "{server_final}");
        i.send("AUTHENTICATE +").await;
        i.numeric("900").await;
        i.numeric("903").await;
        i.send("CAP END").await;
        let welcome = i.numeric("001").await;
        assert!(welcome.contains(" 001 alice "), "{welcome}");
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn pass_and_nickserv_and_the_account_caps() {
    let srv = start(config()).await;
    registered_text_user(&srv, "alice").await;
    // An observer with account-notify, account-tag and extended-join.
    let mut obs = irc_with_caps(irc(&srv), "obs", "account-notify account-tag extended-join").await;
    obs.send("CAP END").await;
    obs.numeric("376").await;
    // IRC users join what they ask for: everyone here joins #lobby.
    obs.join("#lobby").await;
    // A wrong PASS: a notice, and registration goes on without an account.
    let mut w = IrcClient::connect(irc(&srv)).await;
    w.send("PASS not-the-password").await;
    w.send("NICK walter").await;
    w.send("USER walter 0 * :Walter").await;
    w.expect("NOTICE * :wrong account or password").await;
    w.numeric("001").await;
    w.send("JOIN #lobby").await;
    let join = obs.expect(" JOIN #lobby").await;
    assert!(join.ends_with(" JOIN #lobby * :Walter"), "{join}");
    // PASS as the account password.
    let mut p = IrcClient::connect(irc(&srv)).await;
    p.send(&format!("PASS alice:{PW}")).await;
    p.send("NICK alice").await;
    p.send("USER alice 0 * :Alice Liddell").await;
    p.numeric("900").await;
    p.numeric("001").await;
    p.send("JOIN #lobby").await;
    let join = obs.expect(" JOIN #lobby").await;
    assert!(
        join.ends_with(" JOIN #lobby alice :Alice Liddell"),
        "{join}"
    );
    p.send("PRIVMSG #lobby :hi all").await;
    let msg = obs.expect("PRIVMSG #lobby :hi all").await;
    assert!(msg.starts_with("@account=alice :alice!"), "{msg}");
    // NickServ: register a new account, then identify from another connection.
    let mut n = IrcClient::register_lobby(irc(&srv), "nico").await;
    let join = obs.expect("JOIN #lobby").await;
    assert!(join.contains(" JOIN #lobby * :nico the tester"), "{join}");
    n.send("PRIVMSG NickServ :REGISTER").await;
    n.expect("NickServ!NickServ@services.natter NOTICE nico :Syntax: REGISTER")
        .await;
    n.send(&format!("PRIVMSG NickServ :REGISTER {PW} nico@example.org"))
        .await;
    n.numeric("900").await;
    let notify = obs.expect(" ACCOUNT ").await;
    assert!(
        notify.starts_with(":nico!") && notify.ends_with(" ACCOUNT nico"),
        "{notify}"
    );
    let mut m = IrcClient::register(irc(&srv), "mallory").await;
    m.send("PRIVMSG NickServ :IDENTIFY nico wrongwrong").await;
    m.expect("wrong account or password").await;
    m.send(&format!("PRIVMSG NickServ :IDENTIFY nico {PW}"))
        .await;
    m.numeric("900").await;
    // Logged in to nico, mallory may take the nick; the other nico is a guest now.
    m.send("NICK nico").await;
    m.expect("NICK :nico").await;
    n.expect("NICK :Guest").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn registered_rooms_keep_topic_modes_bans_and_exceptions_across_restarts() {
    let (_dir, db) = temp_db();
    let srv = start(db_config(&db)).await;
    let mut a = registered_text_user(&srv, "alice").await;
    let mut guest = srv.user("guest").await;
    guest.send("/register-room").await;
    guest.expect("log in to an account first").await;
    // IRC: alice (logged in with SASL) makes #rust, sets it up, registers it.
    let mut i = irc_with_caps(irc(&srv), "alice", "sasl").await;
    sasl_plain(&mut i, &format!("\0alice\0{PW}")).await;
    i.numeric("903").await;
    i.send("CAP END").await;
    i.numeric("001").await;
    a.expect("you are now Guest").await; // the text alice made way
    i.send("JOIN #rust").await;
    i.numeric("366").await;
    i.send("TOPIC #rust :all about crabs").await;
    i.expect("TOPIC #rust :all about crabs").await;
    i.send("MODE #rust +b *!*@banned.example").await;
    i.expect("MODE #rust +b *!*@banned.example").await;
    i.send("PRIVMSG ChanServ :REGISTER #rust").await;
    i.expect("ChanServ!ChanServ@services.natter NOTICE alice :#rust is now registered to alice")
        .await;
    i.send("PRIVMSG ChanServ :REGISTER #rust").await;
    i.expect("#rust is registered already").await;
    // Changes after registering are kept too.
    i.send("MODE #rust +kl sesame 10").await;
    i.expect("MODE #rust +kl sesame 10").await;
    i.send("MODE #rust +p").await;
    i.expect("MODE #rust +p").await;
    i.send("MODE #rust +eI *!*@friend.example *!*@invited.example")
        .await;
    i.expect("MODE #rust +eI *!*@friend.example *!*@invited.example")
        .await;
    let _ = i.sync().await;
    srv.shutdown().await;

    let srv = start(db_config(&db)).await;
    // A newcomer gets the topic and modes back, and no operator status.
    let mut b = IrcClient::register(irc(&srv), "bob").await;
    b.send("JOIN #rust").await;
    b.numeric("475").await; // the key is back
    b.send("JOIN #rust sesame").await;
    let topic = b.numeric("332").await;
    assert!(topic.ends_with("#rust :all about crabs"), "{topic}");
    let who = b.numeric("333").await;
    assert!(who.contains("#rust alice "), "{who}");
    let names = b.numeric("353").await;
    assert!(
        names.ends_with(":bob"),
        "not op in a registered room: {names}"
    );
    assert!(names.contains(" * #rust "), "+p is back: {names}");
    b.send("MODE #rust b").await;
    let ban = b.numeric("367").await;
    assert!(ban.contains("#rust *!*@banned.example alice"), "{ban}");
    // Ban and invite exceptions are back too (issue 9).
    b.send("MODE #rust e").await;
    let except = b.numeric("348").await;
    assert!(
        except.contains("#rust *!*@friend.example alice"),
        "{except}"
    );
    b.numeric("349").await;
    b.send("MODE #rust I").await;
    let invex = b.numeric("346").await;
    assert!(invex.contains("#rust *!*@invited.example alice"), "{invex}");
    b.numeric("347").await;
    b.send("MODE #rust").await;
    let modes = b.numeric("324").await;
    assert!(modes.contains("+nptkl sesame 10"), "{modes}");
    // The founder (text, logged in) regains operator status on joining.
    let mut a = srv.client().await;
    a.send(&format!("/login alice {PW}")).await;
    a.expect("You are now known as alice").await;
    a.send("/key rust sesame").await;
    let names = a.expect("*** In #rust").await;
    assert!(names.contains("bob"), "{names}");
    let names = b.expect(" JOIN #rust").await;
    assert!(names.starts_with(":alice!"), "{names}");
    b.send("NAMES #rust").await;
    let names = b.numeric("353").await;
    assert!(names.contains("@alice"), "founder is op: {names}");
    srv.shutdown().await;
}

/// An IRC client with `caps` that registers `nick` as an account with
/// NickServ or (`login`) logs in to it with SASL.
async fn irc_account(addr: std::net::SocketAddr, nick: &str, caps: &str, login: bool) -> IrcClient {
    let mut i = IrcClient::connect(addr).await;
    let caps = if login {
        format!("{caps} sasl")
    } else {
        caps.to_string()
    };
    i.send(&format!("CAP REQ :{caps}")).await;
    i.send(&format!("NICK {nick}")).await;
    i.send(&format!("USER {nick} 0 * :{nick}")).await;
    i.expect(" ACK ").await;
    if login {
        sasl_plain(&mut i, &format!("\0{nick}\0{PW}")).await;
        i.numeric("903").await;
    }
    i.send("CAP END").await;
    i.numeric("376").await;
    if !login {
        i.send(&format!("PRIVMSG NickServ :REGISTER {PW}")).await;
        i.numeric("900").await;
    }
    i
}

/// The lines of the next batch (`BATCH +id type target…` … `BATCH -id`):
/// its start line and the lines inside, tags stripped.
async fn next_batch(i: &mut IrcClient) -> (String, Vec<String>) {
    let start = i.expect(" BATCH +").await;
    let id = start
        .split(' ')
        .find_map(|w| w.strip_prefix('+'))
        .expect("batch id")
        .to_string();
    let mut inside = Vec::new();
    loop {
        let l = i.line().await.expect("batch line");
        if l.ends_with(&format!("BATCH -{id}")) {
            return (start, inside);
        }
        let tags = l
            .strip_prefix('@')
            .map_or("", |r| r.split(' ').next().unwrap_or(""));
        assert!(tags.contains(&format!("batch={id}")), "{l}");
        inside.push(l);
    }
}

fn msgid(l: &str) -> Option<String> {
    l.strip_prefix('@')?
        .split(' ')
        .next()?
        .split(';')
        .find_map(|t| t.strip_prefix("msgid="))
        .map(String::from)
}

/// Private lines between two accounts are kept for both (CHATHISTORY on a
/// nick, with the msgid they were delivered with), listed by
/// `CHATHISTORY TARGETS`, and kept across a restart; a guest's are kept
/// only for the guest's session (see the test below).
#[tokio::test]
async fn private_history_between_accounts_survives_a_restart() {
    let (_dir, db) = temp_db();
    let srv = start(db_config(&db)).await;
    let caps = "batch draft/chathistory server-time message-tags";
    let mut alice = irc_account(irc(&srv), "alice", caps, false).await;
    let mut bob = irc_account(irc(&srv), "bob", caps, false).await;
    let mut carol = IrcClient::register(irc(&srv), "carol").await;
    alice.send("PRIVMSG bob :one").await;
    let live = bob.expect("PRIVMSG bob :one").await;
    bob.send("PRIVMSG alice :two").await;
    alice.expect("PRIVMSG alice :two").await;
    carol.send("PRIVMSG alice :from a guest").await;
    alice.expect("from a guest").await;
    for (who, other) in [(&mut alice, "bob"), (&mut bob, "alice")] {
        who.send(&format!("CHATHISTORY LATEST {other} * 10")).await;
        let (opened, lines) = next_batch(who).await;
        assert!(
            opened.ends_with(&format!("chathistory {other}")),
            "{opened}"
        );
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].ends_with("PRIVMSG bob :one"), "{lines:?}");
        assert!(lines[1].ends_with("PRIVMSG alice :two"), "{lines:?}");
        assert_eq!(
            msgid(&lines[0]),
            msgid(&live),
            "the id it was delivered with"
        );
    }
    alice.send("CHATHISTORY LATEST carol * 10").await;
    let (_, lines) = next_batch(&mut alice).await;
    assert_eq!(lines.len(), 1, "the guest's session is online: {lines:?}");
    let window = "timestamp=2000-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z";
    alice
        .send(&format!("CHATHISTORY TARGETS {window} 10"))
        .await;
    let (opened, lines) = next_batch(&mut alice).await;
    assert!(opened.ends_with("draft/chathistory-targets"), "{opened}");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains(" CHATHISTORY TARGETS bob 20"),
        "{lines:?}"
    );
    assert!(
        lines[1].contains(" CHATHISTORY TARGETS carol 20"),
        "{lines:?}"
    );
    carol.send("QUIT").await;
    carol.c.until_eof().await;
    let _ = alice.sync().await;
    srv.shutdown().await;

    let srv = start(db_config(&db)).await;
    let mut alice = irc_account(irc(&srv), "alice", caps, true).await;
    alice.send("CHATHISTORY LATEST bob * 10").await;
    let (_, lines) = next_batch(&mut alice).await;
    assert_eq!(lines.len(), 2, "kept across a restart: {lines:?}");
    alice.send("CHATHISTORY LATEST carol * 10").await;
    assert!(
        next_batch(&mut alice).await.1.is_empty(),
        "the guest's session is over"
    );
    // JSON: the same lines, asked for `with` a person; the key they are
    // kept under is never shown.
    let mut bob = JsonClient::connect(srv.addr).await;
    bob.send(json!({"cmd": "login", "nick": "bob", "password": PW}))
        .await;
    expect_event!(bob, Event::LoggedIn { .. }).await;
    bob.send(json!({"cmd": "history", "with": "alice", "limit": 10}))
        .await;
    let (room, with, texts) =
        expect_event!(bob, Event::History { room, with, messages, replay: false, .. } => {
            let texts: Vec<String> = messages
                .into_iter()
                .map(|m| match m.event {
                    Event::Private { text, .. } => text.to_string(),
                    other => panic!("not a private line: {other:?}"),
                })
                .collect();
            (room.to_string(), with.map(|w| w.to_string()), texts)
        })
        .await;
    assert_eq!((room.as_str(), with.as_deref()), ("alice", Some("alice")));
    assert_eq!(texts, ["one", "two"]);
    // A guest asking gets nothing, whoever it names.
    let mut dan = IrcClient::register(irc(&srv), "dan").await;
    dan.send("CAP REQ :batch").await;
    dan.expect(" ACK ").await;
    dan.send("CHATHISTORY LATEST alice * 10").await;
    assert!(next_batch(&mut dan).await.1.is_empty());
    srv.shutdown().await;
}

/// A guest's private lines are kept under its session: reachable by both
/// sides while it lasts, under the nick it has now; never by whoever has
/// the nick next, nor after the guest leaves.
#[tokio::test]
async fn guest_private_history_lasts_as_long_as_the_session() {
    let srv = start(config()).await;
    let caps = "batch draft/chathistory server-time message-tags";
    let mut alice = irc_account(irc(&srv), "alice", caps, false).await;
    let mut carol = IrcClient::register(irc(&srv), "carol").await;
    carol.send("CAP REQ :batch").await;
    carol.expect(" ACK ").await;
    carol.send("PRIVMSG alice :psst").await;
    alice.expect("PRIVMSG alice :psst").await;
    alice.send("PRIVMSG carol :yes?").await;
    carol.expect("PRIVMSG carol :yes?").await;
    let texts = |lines: &[String]| -> Vec<String> {
        let text = |l: &String| l.rsplit_once(" :").map(|(_, t)| t.to_string());
        lines.iter().filter_map(text).collect()
    };
    carol.send("CHATHISTORY LATEST alice * 10").await;
    assert_eq!(texts(&next_batch(&mut carol).await.1), ["psst", "yes?"]);
    alice.send("CHATHISTORY LATEST carol * 10").await;
    assert_eq!(texts(&next_batch(&mut alice).await.1), ["psst", "yes?"]);
    let window = "timestamp=2000-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z";
    carol
        .send(&format!("CHATHISTORY TARGETS {window} 10"))
        .await;
    let (_, lines) = next_batch(&mut carol).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains(" TARGETS alice "), "{lines:?}");
    // A new nick: the same session, reached under its new nick only.
    carol.send("NICK carla").await;
    carol.expect(" NICK ").await;
    alice.send("CHATHISTORY LATEST carla * 10").await;
    assert_eq!(texts(&next_batch(&mut alice).await.1), ["psst", "yes?"]);
    alice.send("CHATHISTORY LATEST carol * 10").await;
    assert!(next_batch(&mut alice).await.1.is_empty());
    alice
        .send(&format!("CHATHISTORY TARGETS {window} 10"))
        .await;
    let (_, lines) = next_batch(&mut alice).await;
    assert!(lines[0].contains(" TARGETS carla "), "{lines:?}");
    // The guest leaves; someone else takes the nick: nothing for either.
    carol.send("QUIT").await;
    carol.c.until_eof().await;
    let mut other = IrcClient::register(irc(&srv), "carla").await;
    other.send("CAP REQ :batch").await;
    other.expect(" ACK ").await;
    other.send("CHATHISTORY LATEST alice * 10").await;
    assert!(next_batch(&mut other).await.1.is_empty());
    alice.send("CHATHISTORY LATEST carla * 10").await;
    assert!(next_batch(&mut alice).await.1.is_empty());
    alice
        .send(&format!("CHATHISTORY TARGETS {window} 10"))
        .await;
    assert!(next_batch(&mut alice).await.1.is_empty());
    srv.shutdown().await;
}

/// An IRC session of `account` (logged in with SASL) under `nick`.
async fn irc_session(
    addr: std::net::SocketAddr,
    nick: &str,
    account: &str,
    caps: &str,
) -> IrcClient {
    let mut i = IrcClient::register_sasl(addr, nick, account, PW, caps).await;
    i.numeric("376").await;
    i
}

/// `draft/read-marker`: an account's markers are told to its other
/// sessions when they move, kept in the database across a restart, and
/// given on joining; a guest's are its connection's alone.
#[tokio::test]
async fn read_markers_belong_to_the_account_and_survive_a_restart() {
    let (_dir, db) = temp_db();
    let srv = start(db_config(&db)).await;
    let caps = "draft/read-marker";
    let mut first = irc_account(irc(&srv), "alice", caps, false).await;
    let mut second = irc_session(irc(&srv), "alice2", "alice", caps).await;
    let mut guest = IrcClient::register(irc(&srv), "gus").await;
    guest.send("CAP REQ :draft/read-marker").await;
    guest.expect(" ACK ").await;
    let ts = "2024-05-06T07:08:09.010Z";
    first.send(&format!("MARKREAD #books timestamp={ts}")).await;
    let line = first.expect("MARKREAD").await;
    assert!(
        line.ends_with(&format!("MARKREAD #books timestamp={ts}")),
        "{line}"
    );
    let line = second.expect("MARKREAD").await;
    assert!(
        line.ends_with(&format!("MARKREAD #books timestamp={ts}")),
        "told to the other session: {line}"
    );
    // Older: the kept one comes back, and nobody else is told.
    second
        .send("MARKREAD #books timestamp=2020-01-01T00:00:00.000Z")
        .await;
    let line = second.expect("MARKREAD").await;
    assert!(line.ends_with(&format!("timestamp={ts}")), "{line}");
    assert!(first.sync().await.iter().all(|l| !l.contains("MARKREAD")));
    // A guest's markers are its own.
    guest.send("MARKREAD #books").await;
    let line = guest.expect("MARKREAD").await;
    assert!(line.ends_with("MARKREAD #books *"), "{line}");
    guest.send(&format!("MARKREAD bob timestamp={ts}")).await;
    guest.expect("MARKREAD bob").await;
    first.send("MARKREAD bob").await;
    let line = first.expect("MARKREAD").await;
    assert!(line.ends_with("MARKREAD bob *"), "{line}");
    let _ = first.sync().await;
    srv.shutdown().await;

    let srv = start(db_config(&db)).await;
    let mut again = irc_account(irc(&srv), "alice", caps, true).await;
    again.send("JOIN #books").await;
    let mut marker = None;
    loop {
        let l = again.line().await.expect("a line");
        if l.contains(" 366 ") {
            break;
        }
        if l.contains("MARKREAD") {
            marker = Some(l);
        }
    }
    let marker = marker.expect("MARKREAD before 366");
    assert!(
        marker.ends_with(&format!("MARKREAD #books timestamp={ts}")),
        "{marker}"
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn whox_account_field_shows_the_account_or_zero() {
    let srv = start(config()).await;
    let mut n = IrcClient::register(irc(&srv), "nico").await;
    n.send(&format!("PRIVMSG NickServ :REGISTER {PW}")).await;
    n.numeric("900").await;
    let mut obs = IrcClient::register(irc(&srv), "obs").await;
    obs.send("WHO nico %tna,7").await;
    let line = obs.numeric("354").await;
    assert!(line.ends_with(" 354 obs 7 nico :nico"), "{line}");
    obs.numeric("315").await;
    // Someone not logged in: account 0.
    obs.send("WHO obs %na").await;
    let line = obs.numeric("354").await;
    assert!(line.ends_with(" 354 obs obs :0"), "{line}");
    srv.shutdown().await;
}
