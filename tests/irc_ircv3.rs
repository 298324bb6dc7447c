//! IRCv3 extensions and ISUPPORT features over real sockets, as
//! ircv3.net and modern.ircdocs.horse describe them: MONITOR and
//! extended-monitor, SETNAME, bot mode, WHOX, LIST filters (ELIST),
//! STATUSMSG and LINKS.

mod common;

use common::*;

fn irc(srv: &TestServer) -> std::net::SocketAddr {
    srv.irc_addr.expect("IRC listener on")
}

/// Registers `nick` after asking for `caps`, reading up to the MOTD's end.
async fn with_caps(addr: std::net::SocketAddr, nick: &str, caps: &str) -> IrcClient {
    let mut c = IrcClient::connect(addr).await;
    c.send(&format!("CAP REQ :{caps}")).await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("USER {nick} 0 * :{nick} real")).await;
    c.send("CAP END").await;
    c.expect(" ACK ").await;
    c.numeric("376").await;
    c
}

#[tokio::test]
async fn monitor_tells_who_comes_and_goes() {
    let mut cfg = config();
    cfg.monitor_limit = 3;
    let srv = start(cfg).await;
    let mut w = IrcClient::register(irc(&srv), "watcher").await;
    let _bar = IrcClient::register(irc(&srv), "bar").await;
    w.send("MONITOR + bar,baz,*!*@mask").await;
    let on = w.numeric("730").await;
    assert!(on.starts_with(":natter 730 watcher :bar!~bar@"), "{on}");
    assert_eq!(w.numeric("731").await, ":natter 731 watcher :baz");
    // Someone taking a watched nick comes online; a case change says nothing.
    let mut q = IrcClient::register(irc(&srv), "qux").await;
    q.send("NICK baz").await;
    q.expect("NICK :baz").await;
    assert!(w.numeric("730").await.contains(":baz!~qux@"));
    q.send("NICK BAZ").await;
    q.expect("NICK :BAZ").await;
    assert!(w.sync().await.is_empty());
    // Leaving (nick change or quit) is offline, with the nick as spelled.
    q.send("NICK other").await;
    q.expect("NICK :other").await;
    assert_eq!(w.numeric("731").await, ":natter 731 watcher :BAZ");
    // The list, its limit (734), status, removal and clearing.
    w.send("MONITOR + one,two").await;
    let full = w.numeric("734").await;
    assert_eq!(full, ":natter 734 watcher 3 two :Monitor list is full.");
    w.send("MONITOR L").await;
    let list = w.numeric("732").await;
    assert_eq!(list, ":natter 732 watcher :bar,baz,one");
    w.numeric("733").await;
    w.send("MONITOR - bar").await;
    w.send("MONITOR S").await;
    assert_eq!(w.numeric("731").await, ":natter 731 watcher :baz,one");
    w.send("MONITOR C").await;
    w.send("MONITOR L").await;
    assert_eq!(
        w.line().await.unwrap(),
        ":natter 733 watcher :End of MONITOR list"
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn extended_monitor_and_setname() {
    let srv = start(config()).await;
    let mut w = with_caps(irc(&srv), "watcher", "extended-monitor away-notify setname").await;
    let mut plain = with_caps(irc(&srv), "plain", "away-notify setname").await;
    let mut bar = with_caps(irc(&srv), "bar", "setname").await;
    w.send("MONITOR + bar").await;
    w.numeric("730").await;
    plain.send("MONITOR + bar").await;
    plain.numeric("730").await;
    // No room in common: only the extended-monitor watcher hears of it.
    bar.send("AWAY :afk").await;
    bar.numeric("306").await;
    let away = w.expect("AWAY").await;
    assert!(
        away.starts_with(":bar!~bar@") && away.ends_with(" AWAY :afk"),
        "{away}"
    );
    bar.send("SETNAME :New Name").await;
    let own = bar.expect("SETNAME").await;
    assert!(own.ends_with(" SETNAME :New Name"), "{own}");
    w.expect("SETNAME :New Name").await;
    let seen = plain.sync().await;
    assert!(seen.is_empty(), "{seen:?}");
    w.send("WHOIS bar").await;
    assert!(w.numeric("311").await.ends_with(" * :New Name"));
    bar.send("SETNAME :").await;
    bar.numeric("461").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn bot_mode_is_shown_and_tagged() {
    let srv = start(config()).await;
    let mut bot = IrcClient::register(irc(&srv), "botnick").await;
    let mut user = with_caps(irc(&srv), "user", "message-tags").await;
    let mut isupport = String::new();
    user.send("VERSION").await;
    for l in user.sync().await {
        isupport.push_str(&l);
    }
    assert!(isupport.contains(" BOT=B "), "{isupport}");
    bot.send("MODE botnick +B").await;
    bot.expect("MODE botnick :+B").await;
    bot.join("#c").await;
    user.join("#c").await;
    bot.send("PRIVMSG #c :beep boop").await;
    let got = user.expect("PRIVMSG #c :beep boop").await;
    let tags = got.split(' ').next().unwrap();
    assert!(tags.split([';', '@']).any(|t| t == "bot"), "{got}");
    user.send("WHOIS botnick").await;
    user.numeric("335").await;
    user.send("WHO #c").await;
    let who = user.numeric("352").await;
    assert!(who.contains(" botnick HB@ "), "{who}");
    srv.shutdown().await;
}

#[tokio::test]
async fn whox_answers_the_fields_asked_for() {
    let srv = start(config()).await;
    let mut a = IrcClient::register(irc(&srv), "coolNick").await;
    a.join("#chan").await;
    let mut b = IrcClient::register(irc(&srv), "other").await;
    b.send("WHO coolNick %tcuihsnfdlaor,123").await;
    let l = b.numeric("354").await;
    assert!(
        l.starts_with(":natter 354 other 123 * ~coolNick 255.255.255.255 ")
            && l.contains(" natter coolNick H 0 0 0 n/a :coolNick the tester"),
        "{l}"
    );
    assert_eq!(
        b.numeric("315").await,
        ":natter 315 other coolNick :End of WHO list"
    );
    // Fields come in the fixed order whatever order they were asked in.
    b.send("WHO #chan %nt,7").await;
    assert_eq!(b.numeric("354").await, ":natter 354 other 7 :coolNick");
    b.numeric("315").await;
    // A plain WHO after them is a plain 352 again.
    b.send("WHO coolNick").await;
    b.numeric("352").await;
    srv.shutdown().await;
}

/// The rooms `LIST arg` shows.
async fn list(c: &mut IrcClient, arg: &str) -> Vec<String> {
    c.send(&format!("LIST {arg}")).await;
    let mut rooms = Vec::new();
    loop {
        let l = c.line().await.unwrap();
        if l.contains(" 323 ") {
            return rooms;
        }
        if l.contains(" 322 ") {
            rooms.extend(l.split(' ').nth(3).map(String::from));
        }
    }
}

#[tokio::test]
async fn list_filters_statusmsg_and_links() {
    let srv = start(config()).await;
    let mut op = IrcClient::register(irc(&srv), "op").await;
    let mut joe = IrcClient::register(irc(&srv), "joe").await;
    let mut voiced = IrcClient::register(irc(&srv), "vee").await;
    op.join("#chan1").await;
    op.join("#chan2").await;
    joe.join("#chan2").await;
    voiced.join("#chan2").await;
    assert_eq!(list(&mut joe, "*an1").await, ["#chan1"]);
    assert_eq!(list(&mut joe, "!#c*n1").await, ["#chan2"]);
    assert_eq!(list(&mut joe, ">1").await, ["#chan2"]);
    assert_eq!(list(&mut joe, "<2").await, ["#chan1"]);
    assert_eq!(list(&mut joe, "C<10").await, ["#chan1", "#chan2"]);
    assert!(list(&mut joe, "T>0").await.is_empty(), "no topics yet");
    // STATUSMSG: @#room reaches operators, +#room the voiced too.
    op.send("MODE #chan2 +v vee").await;
    op.expect("MODE #chan2 +v vee").await;
    joe.send("PRIVMSG @#chan2 :ops only").await;
    let got = op.expect("ops only").await;
    assert!(got.ends_with(" PRIVMSG @#chan2 :ops only"), "{got}");
    joe.send("NOTICE +#chan2 :voiced too").await;
    op.expect("NOTICE +#chan2 :voiced too").await;
    voiced.expect("NOTICE +#chan2 :voiced too").await;
    let seen = voiced.sync().await;
    assert!(seen.iter().all(|l| !l.contains("ops only")), "{seen:?}");
    // LINKS: just this server.
    joe.send("LINKS").await;
    assert_eq!(
        joe.numeric("364").await,
        ":natter 364 joe natter natter :0 natter chat server"
    );
    joe.numeric("365").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn labeled_responses_are_tagged_batched_or_acked() {
    let srv = start(config()).await;
    let caps = "labeled-response batch echo-message";
    let mut a = with_caps(irc(&srv), "alice", caps).await;
    let mut b = with_caps(irc(&srv), "bob", caps).await;
    // One answer: tagged.
    a.send("@label=one PRIVMSG bob :hi").await;
    let echo = a.expect("PRIVMSG bob :hi").await;
    assert!(echo.starts_with("@label=one "), "{echo}");
    let got = b.expect("PRIVMSG bob :hi").await;
    assert!(!got.contains("label"), "the recipient gets no label: {got}");
    // Several: one batch, the label on its start.
    a.send("@label=two WHOIS bob").await;
    let start = a.line().await.unwrap();
    assert!(start.starts_with("@label=two :natter BATCH +"), "{start}");
    let id = start
        .split(' ')
        .find_map(|t| t.strip_prefix('+'))
        .unwrap()
        .to_string();
    let mut inside = 0;
    loop {
        let l = a.line().await.unwrap();
        if l == format!(":natter BATCH -{id}") {
            break;
        }
        assert!(l.starts_with(&format!("@batch={id} ")), "{l}");
        inside += 1;
    }
    assert!(inside >= 3, "311, 312, 318 at least");
    // None: ACK.
    a.send("@label=three MONITOR + nobody").await;
    let off = a.line().await.unwrap();
    assert_eq!(off, "@label=three :natter 731 alice :nobody");
    a.send("@label=four MONITOR - nobody").await;
    assert_eq!(a.line().await.unwrap(), "@label=four :natter ACK");
    // A line to oneself comes back twice with echo-message; only the echo
    // is the labeled answer.
    a.send("@label=five PRIVMSG alice :me").await;
    let (l1, l2) = (a.line().await.unwrap(), a.line().await.unwrap());
    assert!(l1.ends_with("PRIVMSG alice :me") && l2.ends_with("PRIVMSG alice :me"));
    assert_eq!(
        [&l1, &l2]
            .iter()
            .filter(|l| l.starts_with("@label=five "))
            .count(),
        1,
        "{l1} / {l2}"
    );
    // Without labeled-response, labels are ignored.
    let mut c = IrcClient::register(irc(&srv), "carol").await;
    c.send("@label=x PING :t").await;
    assert_eq!(c.line().await.unwrap(), ":natter PONG natter :t");
    srv.shutdown().await;
}

#[tokio::test]
async fn read_markers_move_forward_and_come_with_join() {
    let srv = start(config()).await;
    let mut a = with_caps(irc(&srv), "alice", "draft/read-marker").await;
    a.send("JOIN #t").await;
    a.expect("JOIN #t").await;
    assert_eq!(a.line().await.unwrap(), ":natter MARKREAD #t *");
    a.numeric("366").await;
    let (new, old) = ("2019-06-01T12:00:00.000Z", "2019-01-01T00:00:00.000Z");
    a.send(&format!("MARKREAD #T timestamp={new}")).await;
    assert_eq!(
        a.line().await.unwrap(),
        format!(":natter MARKREAD #T timestamp={new}")
    );
    a.send(&format!("MARKREAD #t timestamp={old}")).await;
    assert_eq!(
        a.line().await.unwrap(),
        format!(":natter MARKREAD #t timestamp={new}")
    );
    a.send("MARKREAD #t *").await;
    assert!(a
        .expect("FAIL")
        .await
        .starts_with(":natter FAIL MARKREAD INVALID_PARAMS #t :"));
    a.send("MARKREAD").await;
    a.expect("FAIL MARKREAD NEED_MORE_PARAMS").await;
    a.send("PART #t").await;
    a.send("JOIN #t").await;
    a.expect("JOIN #t").await;
    assert_eq!(
        a.line().await.unwrap(),
        format!(":natter MARKREAD #t timestamp={new}")
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn mute_extban_and_no_implicit_names() {
    let srv = start(config()).await;
    let mut op = IrcClient::register(irc(&srv), "op").await;
    op.join("#c").await;
    op.send("MODE #c +b m:bar!*@*").await;
    op.expect("MODE #c +b m:bar!*@*").await;
    // A muted person may enter but not speak, unless voiced or excepted.
    let mut bar = with_caps(irc(&srv), "bar", "draft/no-implicit-names").await;
    bar.send("JOIN #c").await;
    bar.expect("JOIN #c").await;
    let after = bar.sync().await;
    assert!(
        after
            .iter()
            .all(|l| !l.contains(" 353 ") && !l.contains(" 366 ")),
        "no NAMES after JOIN: {after:?}"
    );
    bar.send("PRIVMSG #c :hi").await;
    bar.numeric("404").await;
    op.send("MODE #c +e m:bar!*@*").await;
    op.expect("MODE #c +e m:bar!*@*").await;
    bar.send("PRIVMSG #c :now I may").await;
    op.expect("PRIVMSG #c :now I may").await;
    // NAMES on request still answers.
    bar.send("NAMES #c").await;
    bar.numeric("353").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn invite_notify_tells_the_rooms_operators() {
    let srv = start(config()).await;
    let mut op = IrcClient::register(irc(&srv), "op").await;
    op.join("#c").await;
    let mut op2 = with_caps(irc(&srv), "optwo", "invite-notify").await;
    let mut op3 = IrcClient::register(irc(&srv), "opthree").await;
    for o in [&mut op2, &mut op3] {
        o.join("#c").await;
    }
    op.send("MODE #c +oo optwo opthree").await;
    op.expect("MODE #c +oo optwo opthree").await;
    let _guest = IrcClient::register(irc(&srv), "guest").await;
    op.send("INVITE guest #c").await;
    op.numeric("341").await;
    let told = op2.expect("INVITE guest").await;
    assert!(
        told.starts_with(":op!~op@") && told.ends_with(" INVITE guest :#c"),
        "{told}"
    );
    let seen = op3.sync().await;
    assert!(
        seen.iter().all(|l| !l.contains("INVITE")),
        "no cap, no notice: {seen:?}"
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn extended_monitor_tells_account_logins_to_account_notify_watchers() {
    let srv = start(config()).await;
    let mut w = with_caps(irc(&srv), "watcher", "extended-monitor account-notify").await;
    let mut plain = with_caps(irc(&srv), "plain", "account-notify").await;
    let mut bar = with_caps(irc(&srv), "bar", "setname").await;
    w.send("MONITOR + bar").await;
    w.numeric("730").await;
    plain.send("MONITOR + bar").await;
    plain.numeric("730").await;
    // No room in common: only the extended-monitor watcher hears of it.
    bar.send("PRIVMSG NickServ :REGISTER hunter2hunter2").await;
    bar.numeric("900").await;
    let acct = w.expect(" ACCOUNT ").await;
    assert!(
        acct.starts_with(":bar!~bar@") && acct.ends_with(" ACCOUNT bar"),
        "{acct}"
    );
    let seen = plain.sync().await;
    assert!(seen.is_empty(), "{seen:?}");
    srv.shutdown().await;
}
