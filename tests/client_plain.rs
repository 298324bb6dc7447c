//! `natter chat` in plain line mode, driven through pipes against a real
//! natter server on 127.0.0.1:0: logging in, talking both ways, a refused
//! nickname asked again, end of input, and the server going away.

mod client_support;
mod common;

use client_support::{stamped, Chat};
use common::{config, expect_event, start, Cmd, Event, IrcClient, JsonClient};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn logs_in_talks_both_ways_and_quits() {
    let rt = runtime();
    let srv = rt.block_on(start(config()));
    let addr = srv.addr.to_string();
    let mut bob = rt.block_on(JsonClient::login(srv.addr, "bob"));

    let mut chat = Chat::spawn(&[&addr, "--nick", "alice"]);
    chat.expect(&format!("connected to {addr} (JSON)"));
    chat.expect("you are now known as alice (2 online)");
    chat.expect("* alice joined #lobby (2 here)");
    chat.expect("* In #lobby (2): alice, @bob");
    let joined = rt.block_on(expect_event!(bob, Event::Joined { nick, .. } => nick));
    assert_eq!(joined, "alice");

    // alice → bob
    chat.send("hello from alice");
    let (from, text) =
        rt.block_on(expect_event!(bob, Event::Message { from, text, .. } => (from, text)));
    assert_eq!((&*from, &*text), ("alice", "hello from alice"));
    let echoed = chat.expect("<alice> hello from alice");
    assert!(stamped(&echoed), "{echoed}");

    // bob → alice, with CJK text
    rt.block_on(bob.send(Cmd::chat("hi alice, 你好")));
    let text = rt.block_on(expect_event!(bob, Event::Message { text, .. } => text));
    assert_eq!(text, "hi alice, 你好");
    let got = chat.expect("<bob> hi alice, 你好");
    assert!(stamped(&got), "{got}");

    // Commands map to JSON commands.
    chat.send("/me waves");
    let (text, action) =
        rt.block_on(expect_event!(bob, Event::Message { text, action, .. } => (text, action)));
    assert_eq!((&*text, action), ("waves", true));
    chat.expect("* alice waves");
    chat.send("/msg bob psst");
    let text = rt.block_on(expect_event!(bob, Event::Private { text, .. } => text));
    assert_eq!(text, "psst");
    chat.expect("[private] alice -> bob: psst");
    chat.send("/rooms");
    chat.expect("* Rooms (1): #lobby (2)");
    chat.send("/nope");
    chat.expect("! error: unknown command /nope; try /help");
    chat.send("/msg ghost boo");
    chat.expect("! error:");

    chat.send("/quit");
    chat.expect("Goodbye");
    assert!(chat.wait().success());
    let quit = rt.block_on(expect_event!(bob, Event::Quit { nick, .. } => nick));
    assert_eq!(quit, "alice");
    rt.block_on(srv.shutdown());
}

#[test]
fn a_refused_nick_exits_with_the_reason_and_says_nothing_under_another() {
    let rt = runtime();
    let srv = rt.block_on(start(config()));
    let addr = srv.addr.to_string();
    let mut alice = rt.block_on(JsonClient::login(srv.addr, "alice"));

    let mut chat = Chat::spawn(&[&addr, "--nick", "ALICE"]);
    // Lines a script sends at once: none may become a nickname or be said.
    chat.send("hello");
    chat.send("bob");
    chat.close_stdin();
    let status = chat.wait();
    assert_eq!(status.code(), Some(1), "{:#?}", chat.seen);
    assert!(
        chat.seen
            .iter()
            .any(|l| l.starts_with("! error: the nickname ALICE is taken")),
        "{:#?}",
        chat.seen
    );
    let stderr = chat.stderr();
    assert!(
        stderr.iter().any(|l| l.contains("nickname refused")),
        "{stderr:?}"
    );
    // Nobody else came in, and nothing was said.
    rt.block_on(alice.send(Cmd::Who { room: None }));
    let (nicks, said) = rt.block_on(async {
        let mut said = Vec::new();
        loop {
            match alice.next().await.expect("event") {
                Event::Presence { nicks, .. } => return (nicks, said),
                ev @ (Event::Message { .. } | Event::Joined { .. }) => said.push(ev),
                _ => {}
            }
        }
    });
    assert_eq!(nicks, ["alice"]);
    assert!(said.is_empty(), "{said:?}");
    rt.block_on(srv.shutdown());
}

#[test]
fn nick_fallback_takes_the_nick_with_an_underscore() {
    let rt = runtime();
    let srv = rt.block_on(start(config()));
    let addr = srv.addr.to_string();
    let mut alice = rt.block_on(JsonClient::login(srv.addr, "alice"));
    let mut chat = Chat::spawn(&[&addr, "--nick", "alice", "--nick-fallback"]);
    chat.send("made it");
    chat.close_stdin();
    assert!(chat.wait().success(), "{:#?}", chat.seen);
    assert!(chat.seen.iter().any(|l| l.contains("trying alice_")));
    let (from, text) =
        rt.block_on(expect_event!(alice, Event::Message { from, text, .. } => (from, text)));
    assert_eq!((&*from, &*text), ("alice_", "made it"));
    rt.block_on(srv.shutdown());
}

#[test]
fn without_a_nick_a_pipe_is_never_read_for_one() {
    let rt = runtime();
    let srv = rt.block_on(start(config()));
    let mut chat = Chat::spawn(&[&srv.addr.to_string()]);
    chat.send("carol");
    chat.send("one");
    chat.close_stdin();
    let status = chat.wait();
    assert_eq!(status.code(), Some(1));
    let stderr = chat.stderr();
    assert!(
        stderr.iter().any(|l| l.contains("--nick")),
        "{stderr:?} {:#?}",
        chat.seen
    );
    rt.block_on(srv.shutdown());
}

/// A script faster than the server's flood control (10 lines a second
/// after a burst of 20): the server paces the lines, and the client waits
/// for all of them before it closes. It used to close 3 s after its quit,
/// and the server dropped what it had not read yet.
#[test]
fn a_fast_script_loses_no_line() {
    let rt = runtime();
    let srv = rt.block_on(start(config()));
    let addr = srv.addr.to_string();
    let mut bob = rt.block_on(JsonClient::login(srv.addr, "bob"));
    let mut chat = Chat::spawn(&[&addr, "--nick", "script"]);
    const LINES: usize = 60;
    for i in 0..LINES {
        chat.send(&format!("line {i}"));
    }
    chat.close_stdin();
    assert!(chat.wait().success(), "{:#?}", chat.seen);
    for i in 0..LINES {
        let text = rt.block_on(expect_event!(bob, Event::Message { text, .. } => text));
        assert_eq!(text, format!("line {i}"));
    }
    let echoed = chat
        .seen
        .iter()
        .filter(|l| l.contains("<script> line "))
        .count();
    assert_eq!(echoed, LINES);
    rt.block_on(srv.shutdown());
}

/// What an IRC operator does to a natter chat user reaches it: topic,
/// notice, mode, kick; kicked, it is out of the room.
#[test]
fn topics_notices_modes_and_a_kick_are_shown() {
    let rt = runtime();
    let srv = rt.block_on(start(config()));
    let addr = srv.addr.to_string();
    let mut op = rt.block_on(IrcClient::register(srv.addr, "oper"));
    rt.block_on(op.send("JOIN #ops"));
    rt.block_on(op.numeric("366"));
    rt.block_on(op.send("TOPIC #ops :ops only"));
    rt.block_on(op.expect("TOPIC #ops"));

    let mut chat = Chat::spawn(&[&addr, "--nick", "alice", "--join", "ops"]);
    chat.expect("* alice joined #ops");
    chat.expect("* topic of #ops: ops only (set by oper)");
    chat.expect("* In #ops (2): alice, @oper");
    rt.block_on(op.expect("JOIN"));
    rt.block_on(op.send("TOPIC #ops :new rules"));
    chat.expect("* oper set the topic of #ops: new rules");
    rt.block_on(op.send("NOTICE #ops :heads up"));
    chat.expect("-oper- heads up");
    rt.block_on(op.send("MODE #ops +v alice"));
    chat.expect("* oper sets mode +v alice on #ops");
    rt.block_on(op.send("KICK #ops alice :enough"));
    chat.expect("! oper kicked you out of #ops: enough");
    // Out of the room: text goes to the room it is still in.
    chat.send("where am I?");
    let line = chat.expect("<alice> where am I?");
    assert!(!line.contains("[#ops]"), "{line}");
    rt.block_on(op.send("NAMES #ops"));
    let names = rt.block_on(op.numeric("353"));
    assert!(!names.contains("alice"), "{names}");
    chat.send("/quit");
    assert!(chat.wait().success());
    rt.block_on(srv.shutdown());
}

#[test]
fn server_going_away_is_reported_and_the_client_reconnects_and_rejoins() {
    let rt = runtime();
    let srv = rt.block_on(start(config()));
    let addr = srv.addr;
    let mut chat = Chat::spawn(&[
        &addr.to_string(),
        "--nick",
        "alice",
        "--reconnect-min",
        "50ms",
        "--reconnect-max",
        "200ms",
    ]);
    chat.expect("you are now known as alice");
    chat.send("/join rust");
    chat.expect("* alice joined #rust");

    rt.block_on(srv.shutdown());
    chat.expect("! the server is shutting down");
    chat.expect(&format!(
        "! {addr}: the server closed the connection; reconnecting in 0.05s"
    ));

    // The same address again (the listener sets SO_REUSEADDR). A tiny race:
    // some other socket could take the port in between; then bind fails.
    let mut cfg = config();
    cfg.listen = addr;
    let srv = rt.block_on(start(cfg));
    chat.expect(&format!("connected to {addr} (JSON)"));
    chat.expect("you are now known as alice");
    chat.expect("* alice joined #rust");

    let mut bob = rt.block_on(JsonClient::login(addr, "bob"));
    rt.block_on(bob.send(Cmd::Who {
        room: Some("rust".into()),
    }));
    let nicks = rt.block_on(expect_event!(bob, Event::Presence { nicks, .. } => nicks));
    assert_eq!(nicks, ["alice"]);
    chat.send("quit");
    assert!(chat.wait().success());
    rt.block_on(srv.shutdown());
}

#[test]
fn no_reconnect_gives_up_with_a_clear_message() {
    // A port with nothing listening: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut chat = Chat::spawn(&[&addr, "--nick", "alice", "--no-reconnect"]);
    let line = chat.expect("cannot connect");
    assert!(
        line.starts_with(&format!("! {addr}: cannot connect:")),
        "{line}"
    );
    assert!(line.ends_with("; not reconnecting"), "{line}");
    let status = chat.wait();
    assert_eq!(status.code(), Some(1));
    assert!(chat.stderr().iter().any(|l| l.contains("connection lost")));
}

/// Joining a room shows its last lines (the server's replay), each with
/// the time it was said.
#[test]
fn history_is_shown_on_joining() {
    let rt = runtime();
    let srv = rt.block_on(start(config()));
    let addr = srv.addr.to_string();
    let mut bob = rt.block_on(JsonClient::login(srv.addr, "bob"));
    for text in ["said before", "and again"] {
        rt.block_on(bob.send(Cmd::chat(text)));
        rt.block_on(expect_event!(bob, Event::Message { .. }));
    }
    let mut chat = Chat::spawn(&[&addr, "--nick", "alice"]);
    chat.expect("* the last 2 lines in #lobby:");
    let first = chat.expect("<bob> said before");
    assert!(stamped(&first), "{first}");
    chat.expect("<bob> and again");
    chat.expect("* end of history of #lobby");
    chat.send("/quit");
    assert!(chat.wait().success());
    rt.block_on(srv.shutdown());
}

const PW: &str = "correct horse battery";

/// A server where `alice` is an account with the password [`PW`] (she
/// registered it over the text protocol and left).
fn server_with_alice(rt: &tokio::runtime::Runtime) -> common::TestServer {
    let srv = rt.block_on(start(config()));
    rt.block_on(async {
        let mut a = srv.user("alice").await;
        a.send(&format!("/register {PW}")).await;
        a.expect("The account alice is registered").await;
        a.send("/quit").await;
    });
    srv
}

/// `--password-file` and `NATTER_PASSWORD` log in to the account (JSON);
/// a wrong password stops a script with status 1 and the reason.
#[test]
fn a_password_logs_in_to_the_account_and_a_wrong_one_stops_the_script() {
    let rt = runtime();
    let srv = server_with_alice(&rt);
    let addr = srv.addr.to_string();
    let dir = client_support::TempDir::new("pw");
    let file = dir.path().join("password");
    std::fs::write(&file, format!("{PW}\n")).expect("write the password file");
    let file = file.to_string_lossy().into_owned();

    let mut chat = Chat::spawn(&[&addr, "--nick", "alice", "--password-file", &file]);
    chat.expect("logged in as alice");
    chat.expect("you are now known as alice");
    chat.send("/quit");
    assert!(chat.wait().success());

    let mut chat = Chat::spawn_with(&[&addr, "--nick", "alice"], &[("NATTER_PASSWORD", PW)]);
    chat.expect("logged in as alice");
    chat.send("/quit");
    assert!(chat.wait().success());

    let mut chat = Chat::spawn_with(
        &[&addr, "--nick", "alice"],
        &[("NATTER_PASSWORD", "not the password")],
    );
    chat.send("must never be said");
    chat.expect("! login failed: wrong account or password");
    assert_eq!(chat.wait().code(), Some(1));
    let stderr = chat.stderr();
    assert!(
        stderr.iter().any(|l| l.contains("login failed")),
        "{stderr:?}"
    );
    assert!(
        !chat.seen.iter().any(|l| l.contains("must never be said")),
        "{:#?}",
        chat.seen
    );
    rt.block_on(srv.shutdown());
}

/// In IRC mode the password logs in with SASL PLAIN before registering.
#[test]
fn irc_mode_logs_in_with_sasl() {
    let rt = runtime();
    let srv = server_with_alice(&rt);
    let irc_addr = srv.irc_addr.expect("IRC listener on").to_string();

    let mut chat = Chat::spawn_with(
        &["--irc", &irc_addr, "--nick", "alice", "--join", "#lobby"],
        &[("NATTER_PASSWORD", PW)],
    );
    chat.expect("You are now logged in as alice");
    chat.expect("you are now known as alice");
    chat.expect("* In #lobby");
    chat.send("/quit");
    assert!(chat.wait().success());

    let mut chat = Chat::spawn_with(
        &["--irc", &irc_addr, "--nick", "alice"],
        &[("NATTER_PASSWORD", "not the password")],
    );
    chat.expect("! login failed:");
    assert_eq!(chat.wait().code(), Some(1));
    assert!(
        !chat.seen.iter().any(|l| l.contains("you are now known as")),
        "{:#?}",
        chat.seen
    );
    rt.block_on(srv.shutdown());
}

/// Host names work where addresses do: `natter serve --listen
/// localhost:0` listens on loopback, and `natter chat localhost:PORT`
/// (resolved, each address tried in turn) reaches it.
#[test]
fn serve_and_chat_take_host_names() {
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};
    /// Ends the server however the test ends.
    struct Server(Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut server = Command::new(client_support::BIN)
        .args([
            "serve",
            "--listen",
            "localhost:0",
            "--irc-listen",
            "localhost:0",
        ])
        .env("NATTER_LOG", "info")
        .env("NATTER_DB", "off")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn natter serve");
    let stderr = server.stderr.take().expect("stderr");
    let _server = Server(server);
    let mut lines = BufReader::new(stderr).lines();
    let addr: std::net::SocketAddr = loop {
        let line = lines
            .next()
            .expect("natter serve exited before listening")
            .expect("read the log");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest
                .trim()
                .parse()
                .expect("an address in the listening line");
        }
    };
    // Keep reading the log so the server never blocks on stderr.
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    assert!(addr.ip().is_loopback(), "{addr}");
    let by_name = format!("localhost:{}", addr.port());

    let mut chat = Chat::spawn(&[&by_name, "--nick", "alice"]);
    chat.expect(&format!("connected to {by_name} (JSON)"));
    chat.expect("you are now known as alice");
    chat.send("/quit");
    assert!(chat.wait().success());
}
