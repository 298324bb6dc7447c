//! The IRC protocol end to end over raw sockets: registration, CAP,
//! numerics, room modes, cross-protocol talk with text and JSON users.

mod common;

use std::time::Duration;

use common::*;
use natter::proto::json::wire;

fn irc(srv: &TestServer) -> std::net::SocketAddr {
    srv.irc_addr.expect("IRC listener on")
}

#[tokio::test]
async fn registration_burst_isupport_motd_and_default_room() {
    let srv = start(config()).await;
    let mut a = IrcClient::connect(irc(&srv)).await;
    let first = a.line().await.unwrap();
    assert!(
        first.starts_with(":natter NOTICE * :*** Welcome to natter!"),
        "{first}"
    );
    a.send("NICK alice").await;
    a.send("USER al 0 * :Alice Liddell").await;
    let welcome = a.numeric("001").await;
    assert!(welcome.starts_with(":natter 001 alice :Welcome to the natter IRC Network alice!~al@"));
    a.numeric("002").await;
    a.numeric("003").await;
    let myinfo = a.numeric("004").await;
    assert!(myinfo.contains("natter natter-"), "{myinfo}");
    let mut isupport = String::new();
    loop {
        let l = a.line().await.unwrap();
        if l.contains(" 005 ") {
            assert!(l.ends_with(":are supported by this server"), "{l}");
            isupport.push_str(&l);
        } else {
            assert!(l.contains(" 251 "), "LUSERS follow ISUPPORT: {l}");
            break;
        }
    }
    for token in [
        "CASEMAPPING=ascii",
        "CHANTYPES=#",
        "NICKLEN=30",
        "CHANNELLEN=51",
        "PREFIX=(ov)@+",
        "CHANMODES=beI,k,l,imnpst",
        "TOPICLEN=390",
        "LINELEN=512",
        "NETWORK=natter",
        "UTF8ONLY",
    ] {
        assert!(isupport.contains(token), "{token} missing: {isupport}");
    }
    a.numeric("255").await;
    a.numeric("375").await;
    a.numeric("372").await;
    a.numeric("376").await;
    // IRC users join what they ask for: no #lobby by default
    let after = a.sync().await;
    assert!(after.is_empty(), "{after:?}");
    srv.shutdown().await;

    // unless irc_auto_join says so
    let mut cfg = config();
    cfg.irc_auto_join = true;
    let srv = start(cfg).await;
    let mut a = IrcClient::register(irc(&srv), "alice").await;
    let join = a.line().await.unwrap();
    assert!(
        join.starts_with(":alice!~alice@") && join.ends_with(" JOIN #lobby"),
        "{join}"
    );
    assert_eq!(a.numeric("353").await, ":natter 353 alice = #lobby :@alice");
    a.numeric("366").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn cap_negotiation_server_time_and_echo_message() {
    let srv = start(config()).await;
    let mut a = IrcClient::connect(irc(&srv)).await;
    a.send("CAP LS 302").await;
    a.send("NICK alice").await;
    a.send("USER a 0 * :A").await;
    let ls = a.expect("CAP * LS").await;
    for cap in [
        "server-time",
        "echo-message",
        "message-tags",
        "multi-prefix",
        "away-notify",
    ] {
        assert!(ls.contains(cap), "{ls}");
    }
    assert!(ls.contains("sasl=PLAIN,SCRAM-SHA-256"), "{ls}");
    a.send("CAP REQ :server-time echo-message multi-prefix")
        .await;
    assert_eq!(
        a.line().await.unwrap(),
        ":natter CAP * ACK :server-time echo-message multi-prefix"
    );
    a.send("CAP REQ :server-time draft/no-such-cap").await;
    assert_eq!(
        a.line().await.unwrap(),
        ":natter CAP * NAK :server-time draft/no-such-cap"
    );
    a.send("CAP LIST").await;
    assert_eq!(
        a.line().await.unwrap(),
        ":natter CAP * LIST :echo-message multi-prefix server-time"
    );
    a.send("CAP FOO").await;
    assert!(a.line().await.unwrap().starts_with(":natter 410 * FOO"));
    // Registration waits for CAP END.
    let before = a.sync().await;
    assert!(before.iter().all(|l| !l.contains(" 001 ")), "{before:?}");
    a.send("CAP END").await;
    a.numeric("001").await;
    a.numeric("376").await;
    a.join("#lobby").await;

    let mut bob = srv.user("bob").await;
    a.expect("JOIN #lobby").await;
    a.send("PRIVMSG #lobby :hello bob").await;
    let echoed = a.expect("PRIVMSG #lobby :hello bob").await;
    let (tag, rest) = echoed.split_once(' ').unwrap();
    assert!(
        tag.starts_with("@time=20") && tag.ends_with('Z'),
        "{echoed}"
    );
    assert!(rest.starts_with(":alice!~a@"), "{echoed}");
    bob.expect("alice: hello bob").await;
    bob.send("hi alice").await;
    let got = a.expect("PRIVMSG #lobby :hi alice").await;
    assert!(got.starts_with("@time="), "{got}");
    assert!(got.contains(" :bob!text@"), "{got}");
    srv.shutdown().await;
}

#[tokio::test]
async fn without_echo_message_own_lines_are_not_sent_back() {
    let srv = start(config()).await;
    let mut a = IrcClient::register_lobby(irc(&srv), "alice").await;
    a.send("PRIVMSG #lobby :just once").await;
    a.send("PRIVMSG alice :note to self").await;
    let seen = a.sync().await;
    assert!(
        !seen.iter().any(|l| l.contains("just once")),
        "no echo: {seen:?}"
    );
    assert_eq!(
        seen.iter().filter(|l| l.contains("note to self")).count(),
        1,
        "a message to yourself arrives once: {seen:?}"
    );
    assert!(
        seen.iter().all(|l| !l.starts_with('@')),
        "no tags: {seen:?}"
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn irc_text_and_json_users_share_rooms_and_actions() {
    let srv = start(config()).await;
    let mut bob = srv.user("bob").await;
    let mut carol = JsonClient::login(srv.addr, "carol").await;
    let mut a = IrcClient::register_lobby(irc(&srv), "alice").await;
    bob.expect("alice joined #lobby").await;
    a.send("PRIVMSG #lobby :hello from irc").await;
    bob.expect("alice: hello from irc").await;
    let (from, text) =
        expect_event!(carol, Event::Message { from, text, .. } => (from, text)).await;
    assert_eq!((&*from, &*text), ("alice", "hello from irc"));
    bob.send("hello from text").await;
    let l = a.expect("hello from text").await;
    assert!(
        l.starts_with(":bob!text@") && l.ends_with(" PRIVMSG #lobby :hello from text"),
        "{l}"
    );
    bob.send("/me waves").await;
    a.expect("PRIVMSG #lobby :\u{1}ACTION waves\u{1}").await;
    carol
        .send(Cmd::Me {
            msg: "nods".into(),
            room: None,
        })
        .await;
    let l = a.expect("ACTION nods").await;
    assert!(l.starts_with(":carol!json@"), "{l}");
    a.send("PRIVMSG #lobby :\u{1}ACTION dances\u{1}").await;
    bob.expect("* alice dances").await;
    let (action, from) = expect_event!(carol, Event::Message { text, action, from, .. }
        if text == "dances" => (action, from))
    .await;
    assert_eq!((action, &*from), (true, "alice"));
    // private messages both ways
    a.send("PRIVMSG bob :psst").await;
    bob.expect("[private] alice -> bob: psst").await;
    bob.send("/msg alice back").await;
    let l = a.expect("back").await;
    assert!(
        l.starts_with(":bob!text@") && l.ends_with(" PRIVMSG alice :back"),
        "{l}"
    );
    // a long text line reaches IRC split, nothing lost
    let long = "word ".repeat(200);
    bob.send(long.trim()).await;
    let mut got = String::new();
    while got.split_whitespace().count() < 200 {
        let l = a.expect("PRIVMSG #lobby :word").await;
        got.push_str(l.split_once(" :").unwrap().1);
        got.push(' ');
    }
    assert_eq!(got.split_whitespace().count(), 200);
    // IRC JOIN keeps other rooms; text users joining see the IRC user
    a.send("JOIN #rust").await;
    a.numeric("366").await;
    a.send("PRIVMSG #lobby :still here").await;
    bob.expect("alice: still here").await;
    a.send("QUIT :bye now").await;
    assert!(a
        .expect("ERROR :Closing Link")
        .await
        .contains("Quit: bye now"));
    bob.expect("alice quit (quit: bye now)").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn nick_collisions_across_protocols() {
    let srv = start(config()).await;
    let _bob = srv.user("bob").await;
    let mut a = IrcClient::connect(irc(&srv)).await;
    a.send("NICK Bob").await;
    assert_eq!(
        a.numeric("433").await,
        ":natter 433 * Bob :Nickname is already in use"
    );
    a.send("NICK 9lives").await;
    assert!(a
        .numeric("432")
        .await
        .starts_with(":natter 432 * 9lives :Erroneous nickname"));
    a.send("NICK bob2").await;
    a.send("USER b 0 * :B").await;
    a.numeric("001").await;
    a.numeric("376").await;
    let mut t = srv.client().await;
    t.expect("nickname?").await;
    t.send("BOB2").await;
    t.expect("is taken").await;
    a.send("NICK bob").await;
    a.numeric("433").await;
    a.send("NICK Élodie").await;
    a.expect("NICK :Élodie").await;
    t.send("élodie").await;
    t.expect("is taken").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn bad_and_unknown_commands_get_numerics() {
    let srv = start(config()).await;
    let mut a = IrcClient::connect(irc(&srv)).await;
    a.send("JOIN #x").await;
    a.numeric("451").await;
    a.send("NICK alice").await;
    a.send("USER a 0 * :A").await;
    a.numeric("376").await;
    a.join("#lobby").await;
    let cases = [
        (
            "FROBNICATE now",
            "421",
            ":natter 421 alice FROBNICATE :Unknown command",
        ),
        (
            "JOIN",
            "461",
            ":natter 461 alice JOIN :Not enough parameters",
        ),
        (
            "USER a 0 * :again",
            "462",
            ":natter 462 alice :You may not reregister",
        ),
        (
            "PRIVMSG",
            "411",
            ":natter 411 alice :No recipient given (PRIVMSG)",
        ),
        (
            "PRIVMSG #lobby",
            "412",
            ":natter 412 alice :No text to send",
        ),
        (
            "PRIVMSG nobody :hi",
            "401",
            ":natter 401 alice nobody :No such nick/channel",
        ),
        (
            "PART #nowhere",
            "403",
            ":natter 403 alice #nowhere :No such channel",
        ),
        (
            "JOIN lobby",
            "403",
            ":natter 403 alice lobby :No such channel",
        ),
        (
            "JOIN #bad!name",
            "479",
            ":natter 479 alice #bad!name :Illegal channel name",
        ),
        (
            "TOPIC #nowhere",
            "403",
            ":natter 403 alice #nowhere :No such channel",
        ),
        (
            "MODE #lobby +x",
            "472",
            ":natter 472 alice x :is unknown mode char to me",
        ),
        (
            "MODE bob",
            "401",
            ":natter 401 alice bob :No such nick/channel",
        ),
        (
            "MODE alice +z",
            "501",
            ":natter 501 alice :Unknown MODE flag",
        ),
        ("PING", "409", ":natter 409 alice :No origin specified"),
        ("NICK", "431", ":natter 431 alice :No nickname given"),
        (
            "KICK #lobby",
            "461",
            ":natter 461 alice KICK :Not enough parameters",
        ),
    ];
    for (line, code, want) in cases {
        a.send(line).await;
        assert_eq!(a.numeric(code).await, want, "for {line:?}");
    }
    a.send("MODE alice").await;
    assert_eq!(a.numeric("221").await, ":natter 221 alice +");
    a.send("MODE alice +i").await;
    a.expect("MODE alice :+i").await;
    // still connected
    a.sync().await;
    srv.shutdown().await;
}

#[tokio::test]
async fn long_lines_get_417_and_the_connection_stays() {
    let srv = start(config()).await;
    let mut a = IrcClient::register_lobby(irc(&srv), "alice").await;
    let mut bob = srv.user("bob").await;
    a.send(&format!("PRIVMSG #lobby :{}", "x".repeat(600)))
        .await;
    assert_eq!(
        a.numeric("417").await,
        ":natter 417 alice :Input line was too long"
    );
    a.send(&format!("PRIVMSG #lobby :{}", "y".repeat(6000)))
        .await;
    a.numeric("417").await;
    // tags may take up to 4094 bytes on top of the 512
    a.send(&format!(
        "@+x={} PRIVMSG #lobby :tagged ok",
        "v".repeat(4000)
    ))
    .await;
    bob.expect("alice: tagged ok").await;
    let max = format!("PRIVMSG #lobby :{}", "z".repeat(510 - 16));
    assert_eq!(max.len(), 510);
    a.send(&max).await;
    bob.expect("alice: zzzz").await;
    a.sync().await;
    srv.shutdown().await;
}

#[tokio::test]
async fn ping_pong_and_ping_timeout() {
    let mut cfg = config();
    cfg.ping_interval = Duration::from_millis(200);
    cfg.ping_timeout = Duration::from_millis(400);
    let srv = start(cfg).await;
    let mut bob = srv.user("bob").await;
    let mut a = IrcClient::register_lobby(irc(&srv), "alice").await;
    a.send("PING :abc").await;
    assert_eq!(a.expect("PONG").await, ":natter PONG natter :abc");
    let ping = a.expect("PING :").await;
    let token = ping.split_once(':').unwrap().1.to_string();
    a.send(&format!("PONG :{token}")).await;
    a.expect("PING :").await; // alive: pinged again, not dropped
    let rest = a.c.until_eof().await;
    assert!(
        rest.iter()
            .any(|l| l.starts_with("ERROR :Closing Link: ")
                && l.ends_with("(Ping timeout: 0 seconds)")),
        "{rest:?}"
    );
    bob.expect("alice quit (ping timeout)").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn room_modes_are_enforced_for_every_protocol() {
    let srv = start(config()).await;
    let mut op = IrcClient::register(irc(&srv), "op").await;
    let mut bob = IrcClient::register(irc(&srv), "bob").await;
    op.send("JOIN #m").await;
    assert_eq!(op.numeric("353").await, ":natter 353 op = #m :@op");
    bob.send("JOIN #m").await;
    bob.numeric("366").await;
    op.expect("JOIN #m").await;
    // non-operators are refused
    bob.send("MODE #m +k nope").await;
    assert_eq!(
        bob.numeric("482").await,
        ":natter 482 bob #m :You're not channel operator"
    );
    bob.send("TOPIC #m :mine").await;
    bob.numeric("482").await; // +t by default
    op.send("MODE #m").await;
    assert_eq!(op.numeric("324").await, ":natter 324 op #m +nt");
    op.numeric("329").await;
    // +k: text and IRC users need the key
    op.send("MODE #m +k sesame").await;
    assert!(op.expect("MODE #m +k sesame").await.starts_with(":op!~op@"));
    bob.expect("MODE #m +k sesame").await;
    let mut text = srv.user("carol").await;
    text.send("/join m").await;
    text.expect("! #m needs a key (+k): /key m KEY").await;
    text.send("/key m sesame").await;
    text.expect("carol joined #m").await;
    let mut dave = IrcClient::register(irc(&srv), "dave").await;
    dave.send("JOIN #m").await;
    assert_eq!(
        dave.numeric("475").await,
        ":natter 475 dave #m :Cannot join channel (+k)"
    );
    dave.send("JOIN #m wrong").await;
    dave.numeric("475").await;
    // +l
    op.send("MODE #m -k+l * 3").await;
    op.expect("MODE #m -k+l * 3").await;
    dave.send("JOIN #m").await;
    assert_eq!(
        dave.numeric("471").await,
        ":natter 471 dave #m :Cannot join channel (+l)"
    );
    let mut json = JsonClient::login(srv.addr, "erin").await;
    json.send(Cmd::Join {
        room: "m".into(),
        key: None,
        switch: true,
    })
    .await;
    assert_eq!(json.expect_error().await, "room_full");
    // +b by mask: dave may not join even after -l
    op.send("MODE #m -l+b dave").await;
    op.expect("MODE #m -l+b dave!*@*").await;
    dave.send("JOIN #m").await;
    assert_eq!(
        dave.numeric("474").await,
        ":natter 474 dave #m :Cannot join channel (+b)"
    );
    op.send("MODE #m b").await;
    assert!(op.numeric("367").await.contains("#m dave!*@* op "));
    op.numeric("368").await;
    // +m: only voiced members and operators speak
    op.send("MODE #m +m").await;
    bob.expect("MODE #m +m").await;
    bob.send("PRIVMSG #m :can I?").await;
    assert_eq!(
        bob.numeric("404").await,
        ":natter 404 bob #m :Cannot send to channel"
    );
    text.send("hello?").await;
    text.expect("! you cannot speak in #m: it is moderated (+m)")
        .await;
    op.send("MODE #m +v bob").await;
    bob.expect("MODE #m +v bob").await;
    bob.send("PRIVMSG #m :now I can").await;
    text.expect("bob: now I can").await;
    // +i with INVITE
    op.send("MODE #m -b+i dave!*@*").await;
    op.expect("MODE #m -b+i dave!*@*").await;
    dave.send("JOIN #m").await;
    assert_eq!(
        dave.numeric("473").await,
        ":natter 473 dave #m :Cannot join channel (+i)"
    );
    bob.send("INVITE dave #m").await;
    bob.numeric("482").await;
    op.send("INVITE dave #m").await;
    assert_eq!(op.numeric("341").await, ":natter 341 op dave #m");
    assert!(dave.expect("INVITE dave").await.starts_with(":op!~op@"));
    dave.send("JOIN #m").await;
    dave.numeric("366").await;
    op.send("INVITE dave #m").await;
    op.numeric("443").await;
    // NAMES with prefixes
    op.send("NAMES #m").await;
    let names = op.numeric("353").await;
    assert!(names.ends_with(":+bob carol dave @op"), "{names}");
    // KICK
    op.send("KICK #m dave :out you go").await;
    assert!(dave
        .expect("KICK #m dave :out you go")
        .await
        .starts_with(":op!~op@"));
    text.expect("dave was kicked from #m by op (out you go)")
        .await;
    dave.send("PRIVMSG #m :hey").await;
    dave.numeric("404").await;
    bob.send("KICK #m op").await;
    bob.numeric("482").await;
    op.send("KICK #m nobody").await;
    op.numeric("401").await;
    op.send("KICK #m dave").await;
    assert_eq!(
        op.numeric("441").await,
        ":natter 441 op dave #m :They aren't on that channel"
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn topics_whois_list_and_lusers() {
    let srv = start(config()).await;
    let mut a = IrcClient::register(irc(&srv), "alice").await;
    a.send("JOIN #rust").await;
    a.numeric("366").await;
    a.send("TOPIC #rust").await;
    assert_eq!(
        a.numeric("331").await,
        ":natter 331 alice #rust :No topic is set"
    );
    a.send("TOPIC #rust :Rust and 🦀").await;
    a.expect("TOPIC #rust :Rust and 🦀").await;
    a.send("TOPIC #rust").await;
    assert_eq!(
        a.numeric("332").await,
        ":natter 332 alice #rust :Rust and 🦀"
    );
    assert!(a
        .numeric("333")
        .await
        .starts_with(":natter 333 alice #rust alice "));
    let mut b = IrcClient::register(irc(&srv), "bob").await;
    b.send("JOIN #rust").await;
    b.numeric("332").await;
    b.numeric("353").await;
    let mut t = srv.user("carol").await;
    t.send("/join rust").await;
    t.expect("*** Topic of #rust: Rust and 🦀 (set by alice)")
        .await;
    // WHOIS
    a.send("WHOIS carol").await;
    let user = a.numeric("311").await;
    assert!(
        user.starts_with(":natter 311 alice carol text ") && user.ends_with(" * :natter text user"),
        "{user}"
    );
    assert_eq!(a.numeric("319").await, ":natter 319 alice carol :#rust");
    a.numeric("312").await;
    a.numeric("317").await;
    a.numeric("318").await;
    a.send("WHOIS nobody").await;
    a.numeric("401").await;
    assert_eq!(
        a.numeric("318").await,
        ":natter 318 alice nobody :End of /WHOIS list"
    );
    // WHO
    a.send("WHO #rust").await;
    let who = a.numeric("352").await;
    assert!(
        who.contains(" #rust ~alice ") && who.contains(" alice H@ :0 alice the tester"),
        "{who}"
    );
    a.numeric("315").await;
    // LIST
    a.send("LIST").await;
    a.numeric("321").await;
    let mut rows = Vec::new();
    loop {
        let l = a.line().await.unwrap();
        if l.contains(" 323 ") {
            break;
        }
        rows.push(l);
    }
    assert_eq!(rows.len(), 1, "carol left #lobby for #rust: {rows:?}");
    assert!(
        rows.contains(&":natter 322 alice #rust 3 :Rust and 🦀".to_string()),
        "{rows:?}"
    );
    // LUSERS
    a.send("LUSERS").await;
    assert_eq!(
        a.numeric("251").await,
        ":natter 251 alice :There are 3 users and 0 invisible on 1 servers"
    );
    assert_eq!(
        a.numeric("254").await,
        ":natter 254 alice 1 :channels formed"
    );
    a.numeric("266").await;
    a.send("MOTD").await;
    a.numeric("376").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn away_and_away_notify() {
    let srv = start(config()).await;
    let mut a = IrcClient::connect(irc(&srv)).await;
    a.send("CAP REQ away-notify").await;
    a.send("NICK alice").await;
    a.send("USER a 0 * :A").await;
    a.send("CAP END").await;
    a.numeric("376").await;
    a.join("#lobby").await;
    let mut b = IrcClient::register_lobby(irc(&srv), "bob").await;
    let mut text = srv.user("carol").await;
    b.send("AWAY :gone to lunch").await;
    assert_eq!(
        b.numeric("306").await,
        ":natter 306 bob :You have been marked as being away"
    );
    assert!(a
        .expect("AWAY :gone to lunch")
        .await
        .starts_with(":bob!~bob@"));
    text.expect("*** bob is away: gone to lunch").await;
    a.send("PRIVMSG bob :lunch?").await;
    assert_eq!(
        a.numeric("301").await,
        ":natter 301 alice bob :gone to lunch"
    );
    a.send("WHO #lobby").await;
    let who: Vec<String> = {
        let mut v = Vec::new();
        loop {
            let l = a.line().await.unwrap();
            if l.contains(" 315 ") {
                break v;
            }
            v.push(l);
        }
    };
    assert!(who.iter().any(|l| l.contains(" bob G")), "{who:?}");
    b.send("AWAY").await;
    b.numeric("305").await;
    let back = a.expect("AWAY").await;
    assert!(back.ends_with(" AWAY"), "{back}");
    // without away-notify: no AWAY lines
    let mut c = IrcClient::register_lobby(irc(&srv), "dave").await;
    b.send("AWAY :again").await;
    b.numeric("306").await;
    let seen = c.sync().await;
    assert!(seen.iter().all(|l| !l.contains(" AWAY")), "{seen:?}");
    srv.shutdown().await;
}

#[tokio::test]
async fn server_password() {
    let mut cfg = config();
    cfg.irc_password = Some("s3cret".into());
    let srv = start(cfg).await;
    let mut a = IrcClient::connect(irc(&srv)).await;
    a.send("NICK alice").await;
    a.send("USER a 0 * :A").await;
    assert_eq!(a.numeric("464").await, ":natter 464 * :Password incorrect");
    let rest = a.c.until_eof().await;
    assert!(
        rest.iter()
            .any(|l| l.contains("ERROR :Closing Link") && l.contains("Bad Password")),
        "{rest:?}"
    );
    let mut b = IrcClient::connect(irc(&srv)).await;
    b.send("PASS wrong").await;
    b.send("NICK bob").await;
    b.send("USER b 0 * :B").await;
    b.numeric("464").await;
    let mut c = IrcClient::connect(irc(&srv)).await;
    c.send("PASS :s3cret").await;
    c.send("NICK carol").await;
    c.send("USER c 0 * :C").await;
    c.numeric("001").await;
    c.send("PASS again").await;
    c.numeric("462").await;
    // text users do not need the IRC password
    srv.user("dave").await;
    srv.shutdown().await;

    // and without a password set, PASS is accepted and ignored
    let srv = start(config()).await;
    let mut d = IrcClient::connect(irc(&srv)).await;
    d.send("PASS whatever").await;
    d.send("NICK dave").await;
    d.send("USER d 0 * :D").await;
    d.numeric("001").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn irc_on_the_main_port_never_sees_the_text_banner() {
    let mut cfg = config();
    cfg.banner_delay = Duration::from_secs(2); // ample, even on a loaded machine
    let srv = start(cfg).await;
    let mut a = IrcClient::connect(srv.addr).await;
    a.send("NICK alice").await;
    a.send("USER a 0 * :A").await;
    let first = a.line().await.unwrap();
    assert!(
        first.starts_with(":natter NOTICE * :*** Welcome"),
        "{first}"
    );
    assert!(a.line().await.unwrap().starts_with(":natter 001 alice "));
    a.numeric("376").await;
    let mut b = IrcClient::connect(srv.addr).await;
    b.send("CAP LS 302").await;
    b.expect("CAP * LS").await;
    b.send("NICK bob").await;
    b.send("USER b 0 * :B").await;
    b.send("CAP END").await;
    b.numeric("001").await;
    // the IRC line limit applies, not max_line_bytes
    b.send(&format!("PRIVMSG #lobby :{}", "x".repeat(600)))
        .await;
    b.numeric("417").await;
    // a JSON client that speaks first gets the banner as its JSON welcome only
    let mut j = Client::connect(srv.addr).await;
    j.send(r#"{"cmd":"login","nick":"jay"}"#).await;
    let event = |line: Option<String>| line.and_then(|l| wire::parse_event(&l)).map(|s| s.event);
    let first = event(j.line().await);
    assert!(matches!(first, Some(Event::Welcome { .. })), "{first:?}");
    let second = event(j.line().await);
    assert!(
        matches!(second, Some(Event::Registered { .. })),
        "{second:?}"
    );
    // a text user still gets the banner, a nickname "nick" is still a nickname
    let mut t = srv.client().await;
    t.expect("*** What is your nickname?").await;
    t.send("nick").await;
    t.expect("You are now known as nick").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn irc_can_be_turned_off_and_shutdown_says_error() {
    let mut cfg = config();
    cfg.irc_listen = "off".parse().unwrap();
    let srv = start(cfg).await;
    assert!(srv.irc_addr.is_none());
    let mut a = IrcClient::register(srv.addr, "alice").await;
    srv.stop.cancel();
    let rest = a.c.until_eof().await;
    assert!(
        rest.iter()
            .any(|l| l.contains("ERROR :Closing Link") && l.contains("Server shutting down")),
        "{rest:?}"
    );
    let _ = tokio::time::timeout(PATIENCE, srv.task).await;
}
