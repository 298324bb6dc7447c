//! IRC commands and modes beyond everyday chat, over real sockets, as
//! modern.ircdocs.horse and ircv3.net describe them: server operators
//! (OPER, KILL, WALLOPS, REHASH, DIE), WHOWAS, USERHOST, ISON, the server
//! queries (TIME, VERSION, INFO, ADMIN, HELP), secret and private rooms,
//! invisible users, several rooms in one NAMES, mode argument errors,
//! message tags and TAGMSG, and what a line that is too long or not UTF-8
//! gets.

mod common;

use common::*;
use natter::config::{Config, Opers};
use natter::server::Server;
use tokio_util::sync::CancellationToken;

fn irc(srv: &TestServer) -> std::net::SocketAddr {
    srv.irc_addr.expect("IRC listener on")
}

/// An oper block `name` for `*@127.0.0.1` with password `password`.
fn oper_block(name: &str, password: &str) -> Opers {
    let hash = natter::proto::oper::hash_password(password).unwrap();
    format!("{name} *@127.0.0.1 {hash}").parse().unwrap()
}

/// Reads until `code` arrives; returns every line up to and including it.
async fn until(c: &mut IrcClient, code: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let l = c.line().await.expect("connection open");
        let done = l.split(' ').nth(1) == Some(code);
        seen.push(l);
        if done {
            return seen;
        }
    }
}

#[tokio::test]
async fn operators_kill_wallops_rehash_and_die() {
    let mut cfg = config();
    cfg.opers = oper_block("root", "sesame");
    cfg.oper_die = true;
    let reloaded = {
        let mut c = cfg.clone();
        c.opers = oper_block("second", "other");
        c
    };
    let server = Server::bind(cfg)
        .await
        .unwrap()
        .with_reload(Box::new(move || Ok(reloaded.clone())));
    let irc_addr = server.irc_addr().unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(server.run(stop.clone()));

    let mut op = IrcClient::register(irc_addr, "op").await;
    let mut bob = IrcClient::register(irc_addr, "bob").await;
    let mut carol = IrcClient::register(irc_addr, "carol").await;
    carol.join("#room").await;
    bob.join("#room").await;

    // Unprivileged: 481 for what operators do.
    for cmd in ["KILL op :no", "WALLOPS :hi", "REHASH", "DIE"] {
        bob.send(cmd).await;
        let l = bob.numeric("481").await;
        assert!(l.starts_with(":natter 481 bob :"), "{cmd}: {l}");
    }
    // Wrong password, unknown block, missing password.
    op.send("OPER root wrong").await;
    assert_eq!(
        op.numeric("464").await,
        ":natter 464 op :Password incorrect"
    );
    op.send("OPER nobody sesame").await;
    op.numeric("464").await;
    op.send("OPER root").await;
    op.numeric("461").await;
    // Right: +o, then 381.
    op.send("OPER root sesame").await;
    let mode = op.line().await.unwrap();
    assert!(
        mode.starts_with(":op!~op@") && mode.ends_with(" MODE op :+o"),
        "{mode}"
    );
    op.numeric("381").await;
    // Operators show in WHO (*), WHOIS (313), USERHOST (*) and LUSERS (252).
    carol.send("WHO op").await;
    let who = carol.numeric("352").await;
    assert!(who.contains(" op H* :0 op the tester"), "{who}");
    carol.send("WHOIS op").await;
    carol.numeric("313").await;
    carol.send("USERHOST op").await;
    assert!(carol.numeric("302").await.contains(":op*=+~op@"));
    carol.send("LUSERS").await;
    assert_eq!(
        carol.numeric("252").await,
        ":natter 252 carol 1 :operator(s) online"
    );

    // WALLOPS reaches +w people only.
    carol.send("MODE carol +w").await;
    carol.expect("MODE carol :+w").await;
    op.send("WALLOPS :maintenance at noon").await;
    let w = carol.expect("WALLOPS").await;
    assert!(
        w.starts_with(":op!~op@") && w.ends_with(" WALLOPS :maintenance at noon"),
        "{w}"
    );
    let seen = bob.sync().await;
    assert!(seen.iter().all(|l| !l.contains("WALLOPS")), "{seen:?}");

    // KILL: the victim is told and closed; its rooms see it quit.
    op.send("KILL bob :enough").await;
    let rest = bob.c.until_eof().await;
    assert!(
        rest.iter()
            .any(|l| l.starts_with("ERROR :Closing Link: ") && l.contains("Killed (op (enough))")),
        "{rest:?}"
    );
    let quit = carol.expect("QUIT").await;
    assert!(
        quit.starts_with(":bob!~bob@") && quit.contains("Killed (op (enough))"),
        "{quit}"
    );
    op.send("KILL nobody :x").await;
    op.numeric("401").await;
    op.send("WHOWAS bob").await;
    assert!(op.numeric("314").await.contains(" bob ~bob "));

    // REHASH reloads the oper blocks: root is gone, second exists.
    op.send("REHASH").await;
    op.numeric("382").await;
    let mut dave = IrcClient::register(irc_addr, "dave").await;
    dave.send("OPER root sesame").await;
    dave.numeric("464").await;
    dave.send("OPER second other").await;
    dave.numeric("381").await;
    // MODE -o gives it up.
    dave.send("MODE dave -o").await;
    dave.expect("MODE dave :-o").await;
    dave.send("KILL carol").await;
    dave.numeric("481").await;

    // DIE (oper_die is on) stops the server.
    op.send("DIE").await;
    let _ = op.c.until_eof().await;
    tokio::time::timeout(PATIENCE, task)
        .await
        .expect("server stops on DIE")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn die_is_refused_unless_allowed() {
    let mut cfg = config();
    cfg.opers = oper_block("root", "sesame");
    let srv = start(cfg).await;
    let mut op = IrcClient::register(irc(&srv), "op").await;
    op.send("OPER root sesame").await;
    op.numeric("381").await;
    op.send("DIE").await;
    let l = op.expect("DIE").await;
    assert!(l.contains("oper_die"), "{l}");
    op.sync().await;
    srv.shutdown().await;
}

#[tokio::test]
async fn whowas_userhost_ison_and_server_queries() {
    let srv = start(config()).await;
    let mut a = IrcClient::register(irc(&srv), "alice").await;
    let mut b = IrcClient::register(irc(&srv), "bob").await;
    b.send("AWAY :lunch").await;
    b.numeric("306").await;
    // USERHOST: + here, - away; ISON: the online ones, as spelled.
    a.send("USERHOST alice BOB nobody").await;
    let l = a.numeric("302").await;
    assert!(
        l.contains(":alice=+~alice@") && l.contains(" bob=-~bob@"),
        "{l}"
    );
    a.send("ISON nobody Bob alice").await;
    assert_eq!(a.numeric("303").await, ":natter 303 alice :bob alice");
    a.send("USERHOST").await;
    a.numeric("461").await;
    // WHOWAS: newest first, counted, 406 + 369 for nobody.
    b.send("NICK bobby").await;
    b.expect("NICK :bobby").await;
    b.send("QUIT").await;
    b.c.until_eof().await;
    let mut b2 = IrcClient::register(irc(&srv), "bob").await;
    b2.send("QUIT").await;
    b2.c.until_eof().await;
    a.send("WHOWAS bob").await;
    let lines = until(&mut a, "369").await;
    let users: Vec<&String> = lines.iter().filter(|l| l.contains(" 314 ")).collect();
    assert_eq!(users.len(), 2, "{lines:?}");
    assert!(lines
        .last()
        .unwrap()
        .ends_with(" 369 alice bob :End of WHOWAS"));
    a.send("WHOWAS bob 1").await;
    let lines = until(&mut a, "369").await;
    assert_eq!(lines.iter().filter(|l| l.contains(" 314 ")).count(), 1);
    a.send("WHOWAS bobby").await;
    assert!(a.numeric("314").await.contains(" bobby ~bob "));
    a.send("WHOWAS nobody").await;
    assert_eq!(
        a.numeric("406").await,
        ":natter 406 alice nobody :There was no such nickname"
    );
    a.numeric("369").await;
    a.send("WHOWAS").await;
    a.numeric("461").await;
    // TIME, VERSION, INFO, ADMIN; another server name is 402.
    a.send("TIME").await;
    assert!(a
        .numeric("391")
        .await
        .starts_with(":natter 391 alice natter :20"));
    a.send("VERSION").await;
    assert!(a
        .numeric("351")
        .await
        .starts_with(":natter 351 alice natter-"));
    a.numeric("005").await;
    a.send("INFO").await;
    a.numeric("371").await;
    a.numeric("374").await;
    a.send("ADMIN").await;
    for code in ["256", "257", "258", "259"] {
        a.numeric(code).await;
    }
    a.send("TIME elsewhere.example").await;
    assert_eq!(
        a.numeric("402").await,
        ":natter 402 alice elsewhere.example :No such server"
    );
    // HELP: 704, 705…, 706; unknown subjects 524.
    a.send("HELP privmsg").await;
    assert!(a
        .numeric("704")
        .await
        .starts_with(":natter 704 alice PRIVMSG :"));
    assert!(a
        .numeric("706")
        .await
        .starts_with(":natter 706 alice PRIVMSG :"));
    a.send("HELP").await;
    let lines = until(&mut a, "706").await;
    assert!(
        lines.len() >= 3 && lines[0].contains(" 704 alice * :"),
        "{lines:?}"
    );
    a.send("HELP FROB").await;
    a.numeric("524").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn secret_and_private_rooms_and_names_of_several() {
    let srv = start(config()).await;
    let mut a = IrcClient::register(irc(&srv), "alice").await;
    let mut b = IrcClient::register(irc(&srv), "bob").await;
    a.join("#open").await;
    a.join("#hush").await;
    a.join("#priv").await;
    a.send("MODE #hush +s").await;
    a.expect("MODE #hush +s").await;
    a.send("MODE #priv +p").await;
    a.expect("MODE #priv +p").await;
    // Members see the symbol: @ secret, * private.
    a.send("NAMES #hush,#priv,#open,#none").await;
    assert_eq!(a.numeric("353").await, ":natter 353 alice @ #hush :@alice");
    assert_eq!(a.numeric("353").await, ":natter 353 alice * #priv :@alice");
    assert_eq!(a.numeric("353").await, ":natter 353 alice = #open :@alice");
    assert_eq!(
        a.numeric("366").await,
        ":natter 366 alice #hush,#priv,#open,#none :End of /NAMES list"
    );
    // Outsiders: the secret room is nowhere; the private one is listed but
    // not in WHOIS.
    b.send("LIST").await;
    let lines = until(&mut b, "323").await;
    assert!(
        lines.iter().any(|l| l.contains(" 322 bob #priv ")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains(" 322 bob #open ")),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("#hush")), "{lines:?}");
    b.send("NAMES #hush").await;
    assert_eq!(
        b.line().await.unwrap(),
        ":natter 366 bob #hush :End of /NAMES list"
    );
    b.send("WHOIS alice").await;
    assert_eq!(b.numeric("319").await, ":natter 319 bob alice :@#open");
    b.numeric("318").await;
    b.send("WHO #hush").await;
    assert_eq!(
        b.line().await.unwrap(),
        ":natter 315 bob #hush :End of WHO list"
    );
    // JOIN 0 leaves every room.
    a.send("JOIN 0").await;
    let parts = a.sync().await;
    assert_eq!(
        parts.iter().filter(|l| l.contains(" PART #")).count(),
        3,
        "{parts:?}"
    );
    a.send("WHOIS alice").await;
    let l = a.line().await.unwrap();
    assert!(l.contains(" 311 "), "{l}");
    assert!(
        !a.line().await.unwrap().contains(" 319 "),
        "in no room any more"
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn invisible_users_and_userhost_in_names() {
    let srv = start(config()).await;
    let mut evan = IrcClient::register(irc(&srv), "evan").await;
    evan.send("MODE evan +i").await;
    evan.expect("MODE evan :+i").await;
    let mut s = IrcClient::connect(irc(&srv)).await;
    s.send("CAP REQ :userhost-in-names multi-prefix").await;
    s.send("NICK shiv").await;
    s.send("USER shiv 0 * :Shiv").await;
    s.send("CAP END").await;
    s.numeric("376").await;
    // +i hides from masks, not from the exact nick.
    s.send("WHO eva*").await;
    assert_eq!(
        s.line().await.unwrap(),
        ":natter 315 shiv eva* :End of WHO list"
    );
    s.send("WHO evan").await;
    s.numeric("352").await;
    s.send("LUSERS").await;
    assert_eq!(
        s.numeric("251").await,
        ":natter 251 shiv :There are 1 users and 1 invisible on 1 servers"
    );
    // …nor from people sharing a room.
    evan.join("#r").await;
    s.send("JOIN #r").await;
    let names = s.numeric("353").await;
    assert!(
        names.contains("@evan!~evan@") && names.contains(" shiv!~shiv@"),
        "{names}"
    );
    s.send("WHO eva*").await;
    s.numeric("352").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn mode_argument_errors_kick_pairs_and_small_fixes() {
    let srv = start(config()).await;
    let mut a = IrcClient::register(irc(&srv), "alice").await;
    let mut b = IrcClient::register(irc(&srv), "bob").await;
    let mut c = IrcClient::register(irc(&srv), "carol").await;
    a.join("#a").await;
    a.join("#b").await;
    // 696 for keys and limits that are not valid.
    a.send("MODE #a +k :has space").await;
    assert!(a
        .numeric("696")
        .await
        .starts_with(":natter 696 alice #a k * :"));
    a.send("MODE #a +k :").await;
    a.numeric("696").await;
    a.send("MODE #a +l :abc").await;
    assert!(a
        .numeric("696")
        .await
        .starts_with(":natter 696 alice #a l abc :"));
    a.send("MODE #a +l :-1").await;
    a.numeric("696").await;
    // KICK #a,#b bob,carol pairs rooms and people; one KICK line each.
    for x in [&mut b, &mut c] {
        x.join("#a").await;
        x.join("#b").await;
    }
    a.send("KICK #a,#b bob,carol :bye").await;
    let k1 = a.expect(" KICK ").await;
    let k2 = a.expect(" KICK ").await;
    assert!(
        k1.ends_with("KICK #a bob :bye") && k2.ends_with("KICK #b carol :bye"),
        "{k1} {k2}"
    );
    // Messages: 403 for a missing room, 404 from outside a +n room.
    b.send("PRIVMSG #nowhere :hi").await;
    b.numeric("403").await;
    b.send("PRIVMSG #a :hi").await;
    b.numeric("404").await;
    // A nick change to the same nick says nothing.
    a.send("NICK alice").await;
    assert!(a.sync().await.is_empty());
    // USER with an empty real name is 461.
    let mut d = IrcClient::connect(irc(&srv)).await;
    d.send("NICK dave").await;
    d.send("USER d 0 * :").await;
    d.numeric("461").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn message_tags_msgid_and_tagmsg() {
    let srv = start(config()).await;
    let caps = |nick: &'static str, caps: &'static str| {
        let addr = irc(&srv);
        async move {
            let mut c = IrcClient::connect(addr).await;
            c.send(&format!("CAP REQ :{caps}")).await;
            c.send(&format!("NICK {nick}")).await;
            c.send(&format!("USER {nick} 0 * :{nick}")).await;
            c.send("CAP END").await;
            c.numeric("376").await;
            c.join("#t").await;
            c
        }
    };
    let mut alice = caps("alice", "message-tags").await;
    let mut bob = caps("bob", "message-tags echo-message").await;
    let mut carol = caps("carol", "multi-prefix").await;
    let mut dave = caps("dave", "server-time").await;
    for x in [&mut alice, &mut bob, &mut carol] {
        x.sync().await;
    }
    alice.send("@+baz=bat;fizz=buzz PRIVMSG #t :hi").await;
    let got = bob.expect("PRIVMSG #t :hi").await;
    let tags = got.split(' ').next().unwrap();
    assert!(
        tags.contains("+baz=bat") && tags.contains("msgid="),
        "{got}"
    );
    assert!(!tags.contains("fizz"), "server tags are not relayed: {got}");
    let plain = carol.expect("PRIVMSG #t :hi").await;
    assert!(
        plain.starts_with(":alice!"),
        "no tags without the cap: {plain}"
    );
    let timed = dave.expect("PRIVMSG #t :hi").await;
    assert!(
        timed.starts_with("@time=") && !timed.contains("+baz"),
        "{timed}"
    );
    // The echo and the relay share the msgid; values are escaped.
    bob.send(r"@+buzz=fizz\:buzz;+steel=wootz TAGMSG #t").await;
    let echo = bob.expect("TAGMSG #t").await;
    let relay = alice.expect("TAGMSG #t").await;
    let msgid = |l: &str| {
        l.split([';', ' ', '@'])
            .find_map(|t| t.strip_prefix("msgid="))
            .map(String::from)
    };
    assert!(msgid(&echo).is_some());
    assert_eq!(msgid(&echo), msgid(&relay));
    assert!(relay.contains(r"+buzz=fizz\:buzz"), "{relay}");
    // Clients without message-tags never see TAGMSG.
    for x in [&mut carol, &mut dave] {
        let seen = x.sync().await;
        assert!(seen.iter().all(|l| !l.contains("TAGMSG")), "{seen:?}");
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn long_relays_are_cut_and_bad_utf8_gets_fail() {
    let srv = start(config()).await;
    let mut a = IrcClient::register(irc(&srv), "nick1").await;
    let mut b = IrcClient::register(irc(&srv), "nick2").await;
    // The longest text an IRC line can carry: relayed with a longer source,
    // it is cut to fit in one line (never split into two).
    let text = format!("{}😃", "a".repeat(510 - "PRIVMSG nick2 :".len() - 4));
    a.send(&format!("PRIVMSG nick2 :{text}")).await;
    let got = b.expect("PRIVMSG nick2 :").await;
    let body = got.split_once(" :").unwrap().1;
    assert!(text.starts_with(body) && body.len() < text.len(), "{got}");
    let seen = b.sync().await;
    assert!(seen.is_empty(), "one line only: {seen:?}");
    // Not UTF-8: FAIL * INVALID_UTF8, and the connection goes on; also
    // during registration.
    a.c.send_raw(b"PRIVMSG nick2 :hi\xaa\r\n").await;
    let fail = a.expect("FAIL").await;
    assert!(fail.starts_with(":natter FAIL * INVALID_UTF8 :"), "{fail}");
    let mut c = IrcClient::connect(irc(&srv)).await;
    c.send("NICK nick3").await;
    c.c.send_raw(b"USER u * * :i\xe8rc\xe9\r\n").await;
    c.expect("FAIL * INVALID_UTF8").await;
    c.send("USER u * * :ok").await;
    c.numeric("001").await;
    srv.shutdown().await;
}

#[test]
fn opers_setting_reads_from_toml_tables() {
    let hash = natter::proto::oper::hash_password("pw").unwrap();
    let toml = format!("[[opers]]\nname = \"root\"\nhost = \"*@10.*\"\npassword = \"{hash}\"\n");
    let c: Config = toml::from_str(&toml).unwrap();
    assert_eq!(c.opers.names(), ["root"]);
    assert_eq!(c.opers.check("root", "pw", "u", "10.1.1.1"), Ok(()));
    let bad = "[[opers]]\nname = \"root\"\nhost = \"*\"\npassword = \"plain\"\n";
    assert!(
        toml::from_str::<Config>(bad).is_err(),
        "plain passwords are refused"
    );
}

#[tokio::test]
async fn lookalike_nicks_are_refused_for_every_protocol() {
    let srv = start(config()).await;
    let mut alice = srv.user("alice").await;
    // IRC: Cyrillic а, fullwidth and mathematical letters look like alice.
    let mut i = IrcClient::connect(irc(&srv)).await;
    for twin in ["аlice", "Ａｌｉｃｅ", "𝐚𝐥𝐢𝐜𝐞"] {
        i.send(&format!("NICK {twin}")).await;
        let l = i.numeric("433").await;
        assert!(l.contains(&format!(" * {twin} :")), "{l}");
    }
    i.send("NICK alicia").await;
    i.send("USER a 0 * :A").await;
    i.numeric("001").await;
    i.send("NICK аlice").await;
    i.numeric("433").await;
    // JSON and text users are refused the same way.
    let mut j = JsonClient::connect(srv.addr).await;
    j.send(serde_json::json!({"cmd": "login", "nick": "Ａｌｉｃｅ"}))
        .await;
    assert_eq!(j.expect_error().await, "nick_in_use");
    let mut t = srv.client().await;
    t.expect("nickname?").await;
    t.send("𝐚𝐥𝐢𝐜𝐞").await;
    t.expect("looks like alice, who is online").await;
    // Once alice goes by another name, the lookalike is free.
    alice.send("/nick alicette").await;
    alice.expect("alicette").await;
    t.send("аlice").await;
    t.expect("You are now known as аlice").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn ban_and_invite_exceptions_and_the_invite_list() {
    let srv = start(config()).await;
    let mut op = IrcClient::register(irc(&srv), "op").await;
    let mut bar = IrcClient::register(irc(&srv), "bar").await;
    op.join("#c").await;
    // +b ba*, +e *ar: bar is let in after all.
    op.send("MODE #c +b ba*!*@*").await;
    op.expect("MODE #c +b ba*!*@*").await;
    bar.send("JOIN #c").await;
    bar.numeric("474").await;
    op.send("MODE #c +e *ar!*@*").await;
    op.expect("MODE #c +e *ar!*@*").await;
    bar.join("#c").await;
    op.send("MODE #c e").await;
    assert!(op.numeric("348").await.contains(" #c *ar!*@* op "));
    op.numeric("349").await;
    bar.send("PART #c").await;
    bar.expect("PART #c").await;
    // +i with +I: the masks listed need no invitation.
    op.send("MODE #c +i").await;
    op.expect("MODE #c +i").await;
    bar.send("JOIN #c").await;
    bar.numeric("473").await;
    op.send("MODE #c +I bar!*@*").await;
    op.expect("MODE #c +I bar!*@*").await;
    op.send("MODE #c +I").await;
    assert!(op.numeric("346").await.contains(" #c bar!*@* op "));
    op.numeric("347").await;
    bar.join("#c").await;
    // INVITE with no parameters lists one's pending invitations.
    let mut baz = IrcClient::register(irc(&srv), "baz").await;
    op.send("INVITE baz #c").await;
    op.numeric("341").await;
    baz.send("INVITE").await;
    assert_eq!(baz.numeric("336").await, ":natter 336 baz #c");
    baz.numeric("337").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn oper_passwords_are_not_checked_after_three_failures() {
    let mut cfg = config();
    cfg.opers = oper_block("root", "sesame");
    let srv = start(cfg).await;
    let mut a = IrcClient::register(irc(&srv), "guesser").await;
    for guess in ["a", "b", "c"] {
        a.send(&format!("OPER root {guess}")).await;
        a.numeric("464").await;
    }
    a.send("OPER root sesame").await;
    a.numeric("464").await;
    // Another connection is checked as usual.
    let mut b = IrcClient::register(irc(&srv), "admin").await;
    b.send("OPER root sesame").await;
    b.numeric("381").await;
    srv.shutdown().await;
}

/// Issue 14's pages and issue 11's hiding together: with pages of 2, an
/// outsider's `LIST` (plain and with ELIST terms) passes over the secret
/// rooms page by page and still gets every other room once, in order;
/// `NAMES` of several rooms pages through a room larger than a page and
/// ends with one 366; a labeled `LIST` is one batch that closes after its
/// last page, before the next command's answer.
#[tokio::test]
async fn paged_listings_hide_secret_rooms_page_by_page() {
    let mut cfg = config();
    cfg.page_size = 2;
    let srv = start(cfg).await;
    let mut a = IrcClient::register(irc(&srv), "alice").await;
    let mut b = IrcClient::register(irc(&srv), "bob").await;
    let mut c = IrcClient::register(irc(&srv), "carol").await;
    let rooms = ["#r1", "#r2", "#r3", "#r4", "#r5", "#r6", "#r7"];
    for r in rooms {
        a.join(r).await;
    }
    // Every other room secret: r2, r4, r6.
    for r in ["#r2", "#r4", "#r6"] {
        a.send(&format!("MODE {r} +s")).await;
        a.expect(&format!("MODE {r} +s")).await;
    }
    let listed = |lines: &[String], who: &str| -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| l.split_once(&format!(" 322 {who} ")))
            .map(|(_, rest)| rest.split(' ').next().unwrap_or("").to_string())
            .collect()
    };
    b.send("LIST").await;
    let lines = until(&mut b, "323").await;
    assert_eq!(listed(&lines, "bob"), ["#r1", "#r3", "#r5", "#r7"]);
    assert_eq!(lines.iter().filter(|l| l.contains(" 321 ")).count(), 1);
    // The member sees all seven.
    a.send("LIST").await;
    let lines = until(&mut a, "323").await;
    assert_eq!(listed(&lines, "alice"), rooms);
    // ELIST terms filter the same pages: more than 1 member, name masks.
    b.join("#r5").await;
    b.send("LIST >1").await;
    assert_eq!(listed(&until(&mut b, "323").await, "bob"), ["#r5"]);
    b.send("LIST #r*,!#r1").await;
    assert_eq!(
        listed(&until(&mut b, "323").await, "bob"),
        ["#r3", "#r5", "#r7"]
    );
    b.send("LIST C<10").await;
    assert_eq!(
        listed(&until(&mut b, "323").await, "bob"),
        ["#r1", "#r3", "#r5", "#r7"],
        "created under 10 minutes ago"
    );
    b.send("LIST C>10").await;
    assert!(listed(&until(&mut b, "323").await, "bob").is_empty());
    // NAMES of several rooms: #r5 has 3 members (2 pages), #r4 is secret
    // to carol, #r1 has one; one 366 at the end.
    c.join("#r5").await;
    c.send("NAMES #r5,#r4,#r1").await;
    let lines = until(&mut c, "366").await;
    let names: Vec<&str> = lines
        .iter()
        .filter(|l| l.contains(" 353 "))
        .flat_map(|l| l.rsplit_once(" :").map_or("", |(_, n)| n).split(' '))
        .collect();
    let mut r5: Vec<&str> = names.iter().copied().filter(|n| *n != "@alice").collect();
    r5.sort_unstable();
    assert_eq!(r5, ["bob", "carol"], "{lines:?}");
    assert_eq!(names.iter().filter(|n| **n == "@alice").count(), 2);
    assert!(
        !lines
            .iter()
            .any(|l| l.contains(" 353 ") && l.contains("#r4")),
        "{lines:?}"
    );
    assert_eq!(
        lines.last().unwrap(),
        ":natter 366 carol #r5,#r4,#r1 :End of /NAMES list"
    );
    // A labeled LIST: one batch around every page, closed before the
    // answer to the next command.
    c.send("CAP REQ :labeled-response batch").await;
    c.expect("ACK").await;
    c.send("@label=big LIST").await;
    c.send("@label=next PING :after").await;
    let start = c.line().await.unwrap();
    assert!(start.starts_with("@label=big :natter BATCH +"), "{start}");
    let id = start.split(' ').find_map(|t| t.strip_prefix('+')).unwrap();
    let mut inside = Vec::new();
    loop {
        let l = c.line().await.unwrap();
        if l == format!(":natter BATCH -{id}") {
            break;
        }
        assert!(l.starts_with(&format!("@batch={id} ")), "{l}");
        inside.push(l);
    }
    assert_eq!(inside.len(), 6, "321, four 322, 323: {inside:?}");
    assert!(inside.last().unwrap().contains(" 323 "));
    let pong = c.line().await.unwrap();
    assert!(
        pong.starts_with("@label=next ") && pong.contains("PONG"),
        "{pong}"
    );
    srv.shutdown().await;
}

/// Channels above `large_room` members, for IRC clients: a newcomer gets
/// its own `JOIN`, then a notice with the count instead of `353`/`366`
/// (`NAMES` on demand still lists everyone); members are not sent others'
/// `JOIN`s, `PART`s or `QUIT`s; messages still reach everyone. Below the
/// threshold everything is announced as usual.
#[tokio::test]
async fn large_channels_do_not_announce_presence_to_irc_clients() {
    let cfg = Config {
        large_room: 3,
        flood_rate: 0,
        ..config()
    };
    let srv = start(cfg).await;
    let mut first = IrcClient::register(irc(&srv), "first").await;
    first.join("#big").await;
    let mut members = Vec::new();
    for n in 0..2 {
        let mut m = IrcClient::register(irc(&srv), &format!("m{n}")).await;
        m.join("#big").await;
        first.expect(&format!(":m{n}!")).await; // announced: a small room
        members.push(m);
    }
    for m in &mut members {
        let _ = m.sync().await;
    }
    // The fourth member makes the room large.
    let mut late = IrcClient::register(irc(&srv), "late").await;
    late.send("JOIN #big").await;
    late.expect(" JOIN #big").await;
    let notice = late.expect("NOTICE").await;
    assert!(notice.contains("#big has 4 people"), "{notice}");
    late.send("NAMES #big").await;
    let seen = until(&mut late, "366").await;
    assert!(
        !seen[..seen.len() - 1].iter().any(|l| l.contains(" 366 ")),
        "no implicit 366 before the asked one: {seen:?}"
    );
    let names: String = seen
        .iter()
        .filter(|l| l.contains(" 353 "))
        .cloned()
        .collect();
    for nick in ["first", "m0", "m1", "late"] {
        assert!(names.contains(nick), "{names}");
    }
    late.send("PRIVMSG #big :hello all").await;
    first.expect("PRIVMSG #big :hello all").await;
    late.send("QUIT :bye").await;
    late.c.until_eof().await;
    first.send("PRIVMSG #big :still here").await;
    let seen = members[0].sync().await;
    assert!(
        seen.iter()
            .all(|l| !l.contains("JOIN") && !l.contains("QUIT")),
        "no presence from the large room: {seen:?}"
    );
    assert!(seen.iter().any(|l| l.contains("still here")), "{seen:?}");
    srv.shutdown().await;
}
