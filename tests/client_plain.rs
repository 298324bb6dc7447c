//! `natter chat` in plain line mode, driven through pipes against a real
//! natter server on 127.0.0.1:0: logging in, talking both ways, a refused
//! nickname asked again, end of input, and the server going away.

mod client_support;
mod common;

use client_support::{stamped, Chat};
use common::{config, expect_event, start, Cmd, Event, JsonClient};

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
    chat.expect("* In #lobby (2): alice, bob");
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
fn refused_nick_is_asked_again_and_end_of_input_quits() {
    let rt = runtime();
    let srv = rt.block_on(start(config()));
    let addr = srv.addr.to_string();
    let mut alice = rt.block_on(JsonClient::login(srv.addr, "alice"));

    let mut chat = Chat::spawn(&[&addr, "--nick", "ALICE"]);
    chat.expect("? the nickname ALICE is taken. Pick another nickname:");
    chat.send("a b");
    chat.expect("Pick another nickname:");
    chat.send("alice2");
    chat.expect("you are now known as alice2");
    chat.send("made it");
    let text = rt.block_on(expect_event!(alice, Event::Message { text, .. } => text));
    assert_eq!(text, "made it");
    // End of input: leave cleanly.
    chat.close_stdin();
    let status = chat.wait();
    assert!(status.success(), "{status}: {:#?}", chat.seen);
    assert!(
        chat.seen.iter().any(|l| l.contains("Goodbye")),
        "{:#?}",
        chat.seen
    );
    let quit = rt.block_on(expect_event!(alice, Event::Quit { nick, .. } => nick));
    assert_eq!(quit, "alice2");
    rt.block_on(srv.shutdown());
}

#[test]
fn without_a_nick_the_first_line_is_the_nick_and_queued_lines_follow() {
    let rt = runtime();
    let srv = rt.block_on(start(config()));
    let mut bob = rt.block_on(JsonClient::login(srv.addr, "bob"));
    let mut chat = Chat::spawn(&[&srv.addr.to_string()]);
    chat.expect("? What is your nickname?");
    // All at once, as a script would: the nick, two lines, end of input.
    chat.send("carol");
    chat.send("one");
    chat.send("two");
    chat.close_stdin();
    assert!(chat.wait().success(), "{:#?}", chat.seen);
    let text = rt.block_on(expect_event!(bob, Event::Message { text, .. } => text));
    assert_eq!(text, "one");
    let (from, text) =
        rt.block_on(expect_event!(bob, Event::Message { from, text, .. } => (from, text)));
    assert_eq!((&*from, &*text), ("carol", "two"));
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
