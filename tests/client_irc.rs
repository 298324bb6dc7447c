//! `natter chat --irc` in plain mode: against a scripted IRC server (exact
//! lines: registration, 433, auto-join, NAMES, PING/PONG, PRIVMSG, QUIT) and
//! against a real ngircd on a free loopback port (two clients in #test
//! talking, presence events, nick collision). Skipped, with the reason
//! printed, only where ngircd is missing (never in CI). And against natter's
//! own IRC port, sharing a room with a telnet-style text user.

mod client_support;
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

use client_support::{stamped, Chat, Ngircd, PATIENCE};

/// One accepted connection, spoken to line by line.
struct FakeServer {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl FakeServer {
    fn accept(listener: &TcpListener) -> FakeServer {
        let (stream, _) = listener.accept().expect("accept");
        stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
        let writer = stream.try_clone().expect("clone");
        FakeServer {
            reader: BufReader::new(stream),
            writer,
        }
    }

    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("write");
    }

    /// The next line from the client (CRLF removed); "" at EOF.
    fn line(&mut self) -> String {
        let mut s = String::new();
        self.reader.read_line(&mut s).expect("read a line in time");
        s.trim_end_matches(['\r', '\n']).to_string()
    }
}

#[test]
fn speaks_irc_line_by_line() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let mut chat = Chat::spawn(&["--irc", &addr, "--nick", "alice", "--join", "test"]);
    let mut srv = FakeServer::accept(&listener);
    assert_eq!(srv.line(), "NICK alice");
    assert_eq!(srv.line(), "USER natter 0 * :natter chat");
    srv.send(":irc.test 433 * alice :Nickname is already in use");
    assert_eq!(srv.line(), "NICK alice_");
    chat.expect("the nickname alice is in use; trying alice_");
    srv.send(":irc.test 001 alice_ :Welcome to the test network alice_");
    assert_eq!(srv.line(), "JOIN #test");
    chat.expect("you are now known as alice_");
    srv.send(":alice_!u@127.0.0.1 JOIN :#test");
    srv.send(":irc.test 353 alice_ = #test :alice_ @bob +carol");
    srv.send(":irc.test 366 alice_ #test :End of NAMES list");
    chat.expect("* alice_ joined #test");
    chat.expect("* In #test (3): alice_, @bob, +carol");

    srv.send("PING :tok-123");
    assert_eq!(srv.line(), "PONG tok-123");

    srv.send(":bob!b@h PRIVMSG #test :hi there alice_");
    let l = chat.expect("<bob> hi there alice_");
    assert!(stamped(&l), "{l}");
    srv.send(":bob!b@h PRIVMSG alice_ :\u{1}ACTION whispers\u{1}");
    chat.expect("[private] * bob whispers");
    srv.send(":carol!c@h NICK :caroline");
    chat.expect("* carol is now known as caroline");
    srv.send(":bob!b@h QUIT :Client closed");
    chat.expect("* bob quit (Client closed)");

    chat.send("hello all");
    assert_eq!(srv.line(), "PRIVMSG #test :hello all");
    chat.expect("<alice_> hello all"); // shown locally: IRC does not echo
    chat.send("/me waves");
    assert_eq!(srv.line(), "PRIVMSG #test :\u{1}ACTION waves\u{1}");
    chat.send("/msg caroline 你好");
    assert_eq!(srv.line(), "PRIVMSG caroline 你好");
    chat.send("/who");
    assert_eq!(srv.line(), "NAMES #test");
    srv.send(":irc.test 401 alice_ ghost :No such nick/channel");
    chat.expect("! error: ghost: No such nick/channel");

    chat.send("/quit");
    assert_eq!(srv.line(), "QUIT :natter chat");
    srv.send("ERROR :Closing connection");
    drop(srv);
    assert!(chat.wait().success(), "{:#?}", chat.seen);
}

#[test]
fn two_clients_talk_through_ngircd_and_a_taken_nick_gets_an_underscore() {
    let Some(irc) = Ngircd::start() else {
        return;
    };
    let addr = irc.addr();
    let mut alice = Chat::spawn(&["--irc", &addr, "--nick", "alice", "--join", "#test"]);
    alice.expect("you are now known as alice");
    alice.expect("* alice joined #test");
    alice.expect("* In #test (1): @alice");

    let mut bob = Chat::spawn(&["--irc", &addr, "--nick", "bob", "--join", "#test"]);
    bob.expect("* In #test (2): @alice, bob");
    alice.expect("* bob joined #test");

    alice.send("hello bob, 你好");
    let l = bob.expect("<alice> hello bob, 你好");
    assert!(stamped(&l), "{l}");
    bob.send("/me waves back");
    alice.expect("* bob waves back");
    bob.send("/msg alice just for you");
    alice.expect("[private] bob -> alice: just for you");

    // Same nick again: 433, so the client tries alice_ and gets in.
    let mut twin = Chat::spawn(&["--irc", &addr, "--nick", "alice", "--join", "#test"]);
    twin.expect("the nickname alice is in use; trying alice_");
    twin.expect("you are now known as alice_");
    twin.expect("* In #test (3): @alice, alice_, bob");
    alice.expect("* alice_ joined #test");
    twin.send("/nick twin");
    alice.expect("* alice_ is now known as twin");
    twin.send("/part");
    alice.expect("* twin left #test");
    twin.send("quit");
    assert!(twin.wait().success());

    bob.send("/quit see you");
    alice.expect("* bob quit");
    assert!(bob.wait().success());
    alice.close_stdin();
    let status = alice.wait();
    assert!(status.success(), "{status}");
    // The server stays up throughout: the clients left, nobody was dropped.
    assert!(
        !alice.seen.iter().any(|l| l.contains("reconnecting")),
        "{:#?}",
        alice.seen
    );
    drop(irc);
}

#[test]
fn irc_mode_against_natter_itself_shares_a_room_with_a_text_user() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let srv = rt.block_on(common::start(common::config()));
    let irc_addr = srv.irc_addr.expect("IRC listener on").to_string();
    let mut texter = rt.block_on(srv.user("texter"));

    let mut alice = Chat::spawn(&["--irc", &irc_addr, "--nick", "alice", "--join", "#lobby"]);
    alice.expect("you are now known as alice");
    alice.expect("* In #lobby (2): alice, @texter");
    rt.block_on(texter.expect("alice joined #lobby"));

    // IRC client -> text user, and back.
    alice.send("hello from IRC, 你好");
    rt.block_on(texter.expect("alice: hello from IRC, 你好"));
    rt.block_on(texter.send("hello from telnet"));
    let l = alice.expect("<texter> hello from telnet");
    assert!(stamped(&l), "{l}");
    alice.send("/me waves");
    rt.block_on(texter.expect("* alice waves"));
    rt.block_on(texter.send("/msg alice psst"));
    alice.expect("[private] texter -> alice: psst");

    // A nick the text user holds is taken on IRC too (one namespace): 433, then alice_.
    let mut twin = Chat::spawn(&["--irc", &irc_addr, "--nick", "TEXTER", "--join", "#lobby"]);
    twin.expect("the nickname TEXTER is in use; trying TEXTER_");
    twin.expect("you are now known as TEXTER_");
    twin.send("quit");
    assert!(twin.wait().success());

    alice.send("/quit bye");
    rt.block_on(texter.expect("alice quit"));
    assert!(alice.wait().success());
    rt.block_on(srv.shutdown());
}
