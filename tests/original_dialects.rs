//! The original programs natter grew out of, driven byte for byte as they
//! behave (issue 15, docs/PROTOCOL.md "Original dialects"): the JSON client
//! that writes objects with no line break after them and prints whatever
//! it receives, answers `::` with `keep` and leaves with a `quit` chat;
//! and the text room's client, which registers with `NAME#` and writes
//! raw stdin lines. Each test checks what the original client receives
//! and what a text user and a JSON-lines user in the same room see.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The original JSON client: one `write()` per object, no line breaks;
/// what it receives is text, read in chunks as they arrive.
struct Original {
    nick: String,
    stream: TcpStream,
    /// Received and not yet matched by [`Original::expect`].
    unread: String,
    /// Everything received.
    all: String,
}

impl Original {
    /// Connects and at once writes the login, as the original does.
    async fn login(addr: SocketAddr, nick: &str) -> Original {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let mut o = Original {
            nick: nick.into(),
            stream,
            unread: String::new(),
            all: String::new(),
        };
        o.send("login", "hello server").await;
        o
    }

    /// `{"cmd":CMD,"msg":MSG,"nick":NICK}` as the original writes it.
    fn object(&self, cmd: &str, msg: &str) -> String {
        json!({"cmd": cmd, "msg": msg, "nick": self.nick}).to_string()
    }

    async fn send(&mut self, cmd: &str, msg: &str) {
        let object = self.object(cmd, msg);
        assert!(object.starts_with(r#"{"cmd":"#) && !object.contains('\n'));
        self.write(object.as_bytes()).await;
    }

    /// One write of its own (the socket has no delay: one segment).
    async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
        self.stream.flush().await.expect("flush");
    }

    /// The next chunk as it arrives (lossy text); None at EOF or reset.
    async fn chunk(&mut self) -> Option<String> {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(PATIENCE, self.stream.read(&mut buf))
            .await
            .expect("timed out waiting for data")
            .unwrap_or(0);
        if n == 0 {
            return None;
        }
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        self.all.push_str(&text);
        Some(text)
    }

    /// Reads until what arrived holds `needle`; returns that line and
    /// forgets what came before it.
    async fn expect(&mut self, needle: &str) -> String {
        loop {
            if let Some(at) = self.unread.find(needle) {
                let start = self.unread[..at].rfind('\n').map_or(0, |i| i + 1);
                let end = self.unread[at..]
                    .find('\n')
                    .map_or(self.unread.len(), |i| at + i);
                let line = strip_ansi(self.unread[start..end].trim_end());
                self.unread.drain(..end);
                return line;
            }
            match self.chunk().await {
                Some(text) => self.unread.push_str(&text),
                None => panic!("EOF waiting for {needle:?}; got {:?}", self.all),
            }
        }
    }

    /// Reads until the server closes; returns everything received.
    async fn until_eof(&mut self) -> String {
        while self.chunk().await.is_some() {}
        self.all.clone()
    }

    /// Never JSON: what the original client prints must be text (and,
    /// past the text banner it is sent before it speaks, no colours).
    fn assert_plain_text(&self) {
        assert!(
            !self.all.contains('{'),
            "the original client got JSON: {:?}",
            self.all
        );
        let after_banner = self
            .all
            .split("nickname?\x1b[0m")
            .last()
            .unwrap_or_default();
        assert!(!after_banner.contains('\x1b'), "{after_banner:?}");
    }
}

/// A text user and a JSON-lines user in the lobby, to watch the room.
async fn watchers(srv: &TestServer) -> (Client, JsonClient) {
    let text = srv.user("texter").await;
    let json = JsonClient::login(srv.addr, "jason").await;
    (text, json)
}

async fn said_by(j: &mut JsonClient, who: &str) -> String {
    expect_event!(j, Event::Message { from, text, .. } if from == who => text.into_owned()).await
}

#[tokio::test]
async fn original_client_logs_in_and_chats_with_no_line_breaks() {
    let srv = start(config()).await;
    let (mut t, mut j) = watchers(&srv).await;
    let mut o = Original::login(srv.addr, "alice").await;
    // A welcome with the number of people chatting, then its login answered.
    assert_eq!(
        o.expect("Welcome").await,
        "*** Welcome to natter! 2 people online."
    );
    assert_eq!(
        o.expect("You are").await,
        "*** You are alice. 3 people chatting. Say quit or exit to leave."
    );
    // Who is online, as text.
    let here = o.expect("*** In #lobby (3)").await;
    for nick in ["alice", "texter", "jason"] {
        assert!(here.contains(nick), "{here}");
    }
    t.expect("*** alice joined #lobby (3 here)").await;
    let joined = expect_event!(j, Event::Joined { nick, .. } => nick).await;
    assert_eq!(joined, "alice");

    o.send("chat", "hello from the original").await;
    t.expect("alice: hello from the original").await;
    assert_eq!(said_by(&mut j, "alice").await, "hello from the original");

    // Others' messages arrive as `NICK: TEXT` lines.
    t.send("hi alice").await;
    assert_eq!(o.expect("hi alice").await, "texter: hi alice");
    j.send(Cmd::chat("hi from json")).await;
    assert_eq!(o.expect("hi from json").await, "jason: hi from json");
    // Its own message was not echoed back to it, and nothing was JSON.
    assert!(!o.all.contains("alice: hello"), "{:?}", o.all);
    o.assert_plain_text();

    // Leaving is a notice for the others.
    drop(o);
    t.expect("*** alice quit").await;
    expect_event!(j, Event::Quit { nick, .. } if nick == "alice").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn with_a_banner_delay_the_welcome_waits_for_the_login_and_is_plain() {
    let mut cfg = config();
    cfg.banner_delay = Duration::from_secs(30);
    let srv = start(cfg).await;
    let mut o = Original::login(srv.addr, "alice").await;
    let first = o.chunk().await.expect("a welcome");
    assert!(
        first.starts_with("*** Welcome to natter! 0 people chatting.\r\n"),
        "{first:?}"
    );
    o.unread = first;
    o.expect("You are alice. 1 person chatting.").await;
    o.send("chat", "hi").await;
    o.send("chat", "exit").await;
    let all = o.until_eof().await;
    assert!(!all.contains('\x1b') && !all.contains('{'), "{all:?}");
    srv.shutdown().await;
}

#[tokio::test]
async fn objects_merged_and_split_across_segments_arrive_whole() {
    let srv = start(config()).await;
    let (mut t, mut j) = watchers(&srv).await;
    let mut o = Original::login(srv.addr, "alice").await;
    o.expect("You are alice").await;
    let one = o.object("chat", "one");
    let two = o.object("chat", "two");
    let three = o.object("chat", "three 你好");

    // Two quick lines in one segment.
    o.write(format!("{one}{two}").as_bytes()).await;
    assert_eq!(said_by(&mut j, "alice").await, "one");
    assert_eq!(said_by(&mut j, "alice").await, "two");

    // An object split across segments, cut in a key or inside a
    // character: its first piece rides behind a whole object (and
    // whitespace), whose arrival in the room shows that the server has
    // read the piece before the rest is sent.
    let bytes = three.as_bytes();
    for (before, cut) in [
        (&one, three.find("msg").unwrap() + 1),
        (&two, three.find('你').unwrap() + 1),
    ] {
        let mut first = format!("{before} \r\n\t").into_bytes();
        first.extend_from_slice(&bytes[..cut]);
        o.write(&first).await;
        let said = said_by(&mut j, "alice").await;
        assert!(said == "one" || said == "two", "{said}");
        o.write(&bytes[cut..]).await;
        assert_eq!(said_by(&mut j, "alice").await, "three 你好");
        t.expect("alice: three 你好").await;
    }

    // A malformed object gets an error line, and the next object is read.
    o.write(format!("{{\"cmd\":\"chat\",\"msg\":}}{two}").as_bytes())
        .await;
    assert!(o
        .expect("! ")
        .await
        .starts_with("! malformed JSON: expected value"));
    assert_eq!(said_by(&mut j, "alice").await, "two");

    // An object that never ends is refused once and not held: the
    // connection goes on once it does end.
    let endless = format!("{{\"cmd\":\"chat\",\"msg\":\"{}", "x".repeat(10_000));
    o.write(endless.as_bytes()).await;
    o.expect("! line too long (max 4096 bytes)").await;
    o.write(format!("\"}}{two}").as_bytes()).await;
    assert_eq!(said_by(&mut j, "alice").await, "two");
    o.assert_plain_text();
    srv.shutdown().await;
}

#[tokio::test]
async fn json_lines_clients_are_unaffected_and_need_no_line_breaks_either() {
    let srv = start(config()).await;
    let (mut t, _) = watchers(&srv).await;
    // A JSON-lines client (line break after its first object) gets JSON.
    let mut j = JsonClient::login(srv.addr, "jay").await;
    let one = json!({"cmd": "chat", "msg": "one"}).to_string();
    let two = json!({"cmd": "chat", "msg": "two"}).to_string();
    j.c.send_raw(format!("{one}{two}  ").as_bytes()).await;
    assert_eq!(said_by(&mut j, "jay").await, "one");
    assert_eq!(said_by(&mut j, "jay").await, "two");
    j.c.send_raw(format!("{one}\n{}", &two[..5]).as_bytes())
        .await;
    assert_eq!(said_by(&mut j, "jay").await, "one");
    j.c.send_raw(format!("{}\r\n", &two[5..]).as_bytes()).await;
    assert_eq!(said_by(&mut j, "jay").await, "two");
    t.expect("jay: two").await;
    // Errors stay JSON error objects.
    j.c.send_raw(b"{\"cmd\":\"chat\",\"msg\":}\n").await;
    assert_eq!(j.expect_error().await, "malformed");
    j.c.send_raw(b"hello{\"cmd\":\"dance\"}").await;
    assert_eq!(j.expect_error().await, "malformed");
    assert_eq!(j.expect_error().await, "unknown_command");
    srv.shutdown().await;
}

#[tokio::test]
async fn heartbeat_is_answered_by_keep_and_a_silent_client_is_dropped() {
    let mut cfg = config();
    cfg.original_ping_interval = Duration::from_millis(200);
    cfg.original_ping_timeout = Duration::from_millis(1200);
    let srv = start(cfg).await;
    let (mut t, mut j) = watchers(&srv).await;
    let mut keeper = Original::login(srv.addr, "keeper").await;
    keeper.expect("You are keeper").await;
    let mut silent = Original::login(srv.addr, "silent").await;
    silent.expect("You are silent").await;
    // `keeper` answers each `::` chunk with keep, as the original does,
    // for longer than the timeout.
    let (mut answered, mut whole) = (0, 0);
    while answered < 10 {
        let chunk = keeper.chunk().await.expect("still connected");
        whole += usize::from(chunk == "::");
        if !chunk.is_empty() && chunk.bytes().all(|b| b == b':') && chunk.len() % 2 == 0 {
            keeper.send("keep", "").await;
            answered += 1;
        }
    }
    assert!(whole > 0, "`::` comes in a write of its own");
    // `silent` never answered: dropped, its leave announced.
    let got = silent.until_eof().await;
    assert!(got.contains("::"), "{got:?}");
    assert!(got.contains("! ping timeout"), "{got:?}");
    silent.assert_plain_text();
    t.expect("*** silent quit (ping timeout)").await;
    let reason = expect_event!(j, Event::Quit { nick, reason } if nick == "silent" => reason).await;
    assert_eq!(reason, "ping timeout");
    // `keeper` is still there.
    t.send("still there?").await;
    keeper.expect("texter: still there?").await;
    keeper.assert_plain_text();
    srv.shutdown().await;
}

#[tokio::test]
async fn quit_or_exit_as_a_message_leaves() {
    let srv = start(config()).await;
    let (mut t, mut j) = watchers(&srv).await;
    let mut o = Original::login(srv.addr, "alice").await;
    o.expect("You are alice").await;
    // The original sends `quit` as a chat and then closes its socket.
    o.send("chat", "quit").await;
    drop(o);
    t.expect("*** alice quit").await;
    expect_event!(j, Event::Quit { nick, .. } if nick == "alice").await;
    // `exit`, left open: the server closes it.
    let mut b = Original::login(srv.addr, "bob").await;
    b.expect("You are bob").await;
    b.send("chat", "exit").await;
    b.until_eof().await;
    t.expect("*** bob quit").await;
    // Neither word was said in the room.
    t.send("done").await;
    let said = expect_event!(j, Event::Message { from, text, .. } => (from, text)).await;
    assert_eq!((&*said.0, &*said.1), ("texter", "done"));
    srv.shutdown().await;
}

#[tokio::test]
async fn text_room_client_registers_with_hash_and_writes_raw_lines() {
    let srv = start(config()).await;
    let mut j = JsonClient::login(srv.addr, "jason").await;
    let mut o = Original::login(srv.addr, "orig").await;
    o.expect("You are orig").await;
    // The original text client: raw stdin, lines ending in `\n` only.
    let mut c = srv.client().await;
    c.expect("What is your nickname?").await;
    c.send_raw(b"alice#\n").await;
    c.expect("You are now known as alice.").await;
    expect_event!(j, Event::Joined { nick, .. } if nick == "alice").await;
    c.send_raw(b"hello everyone\n").await;
    assert_eq!(said_by(&mut j, "alice").await, "hello everyone");
    assert_eq!(o.expect("hello everyone").await, "alice: hello everyone");
    // Two lines typed quickly, and one line in two pieces.
    c.send_raw(b"one\ntwo\nthr").await;
    assert_eq!(said_by(&mut j, "alice").await, "one");
    assert_eq!(said_by(&mut j, "alice").await, "two");
    c.send_raw(b"ee\n").await;
    assert_eq!(said_by(&mut j, "alice").await, "three");
    // It prints what arrives: others' messages.
    j.send(Cmd::chat("hi alice")).await;
    c.expect("jason: hi alice").await;
    // Once registered, a `#` is just text.
    c.send_raw(b"bob#\n").await;
    assert_eq!(said_by(&mut j, "alice").await, "bob#");
    srv.shutdown().await;
}

#[tokio::test]
async fn merged_objects_count_against_flood_control_and_the_recvq() {
    let mut cfg = config();
    cfg.flood_rate = 1;
    cfg.flood_burst = 5;
    cfg.recvq = 2048;
    let srv = start(cfg).await;
    let mut t = srv.user("texter").await;
    let mut o = Original::login(srv.addr, "flooder").await;
    o.expect("You are flooder").await;
    // A hundred objects in one write, no line breaks: each is one line
    // for flood control, and what waits is bounded by the recvq.
    let keep = o.object("keep", "");
    o.write(keep.repeat(100).as_bytes()).await;
    let got = o.until_eof().await;
    assert!(got.contains("! excess flood"), "{got:?}");
    t.expect("*** flooder quit (Excess Flood)").await;
    srv.shutdown().await;
}
