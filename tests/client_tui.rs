//! The full-screen `natter chat` in a real terminal: tmux runs it against a
//! natter server on 127.0.0.1:0; the test types with send-keys and reads
//! the screen with capture-pane (polling until the expected text shows, with
//! a timeout). Skipped, with the reason printed, only where tmux is missing
//! (never in CI).

mod client_support;
mod common;

use client_support::{Tmux, BIN};
use common::{config, expect_event, start, Cmd, Event, IrcClient, JsonClient};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The input row: the screen's last non-empty line.
fn input_row(screen: &str) -> &str {
    screen.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("")
}

#[test]
fn tui_chats_in_a_real_terminal() {
    let rt = runtime();
    let srv = rt.block_on(start(config()));
    let mut bob = rt.block_on(JsonClient::login(srv.addr, "bob"));
    let cmd = format!("env -u NO_COLOR {BIN} chat {} --nick alice", srv.addr);
    let Some(tmux) = Tmux::start(&cmd, 100, 30) else {
        return;
    };

    // Logged in: header with room and nick, bob in the member list.
    let screen = tmux.wait_screen("the header and member list", |s| {
        let top = s.lines().next().unwrap_or("");
        top.contains("#lobby")
            && top.contains("alice")
            && top.contains("2 here")
            && s.contains("@bob")
    });
    assert!(input_row(&screen).starts_with("#lobby>"), "{screen}");
    let joined = rt.block_on(expect_event!(bob, Event::Joined { nick, .. } => nick));
    assert_eq!(joined, "alice");

    // Type a message: it is sent, and echoed with a time stamp.
    tmux.type_text("hello from the tui");
    tmux.keys(&["Enter"]);
    let (from, text) =
        rt.block_on(expect_event!(bob, Event::Message { from, text, .. } => (from, text)));
    assert_eq!((&*from, &*text), ("alice", "hello from the tui"));
    let screen = tmux.wait_screen("our own message", |s| {
        s.contains("<alice> hello from the tui")
    });
    let line = screen
        .lines()
        .find(|l| l.contains("<alice> hello"))
        .unwrap_or("");
    assert!(
        line.as_bytes().get(2) == Some(&b':'),
        "HH:MM first: {line:?}"
    );

    // A line from another client, with wide characters, mentioning us.
    rt.block_on(bob.send(Cmd::chat("hi alice 你好世界")));
    let from = rt.block_on(expect_event!(bob, Event::Message { from, .. } => from));
    assert_eq!(from, "bob");
    tmux.wait_screen("bob's CJK line", |s| s.contains("<bob> hi alice 你好世界"));
    // Mentions are highlighted: a yellow background (SGR 43, or 48;5;3 as
    // tmux reports it) on that row.
    let raw = tmux.capture(true);
    let row = raw.lines().find(|l| l.contains("hi alice")).unwrap_or("");
    assert!(row.contains("[43m") || row.contains("48;5;3m"), "{row:?}");

    // Emoji sequences and CJK nicks leave no holes or stale cells: the
    // member list's border stays in one column on every row.
    let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
    let mut cjk = rt.block_on(JsonClient::login(srv.addr, "小明"));
    tmux.wait_screen("小明 in the list", |s| s.contains("小明 joined"));
    for text in [
        format!("family {family} flag \u{1F1EF}\u{1F1F5} heart \u{2764}\u{FE0F} end"),
        format!("{family}{family}{family} 你好 \u{1F44D}\u{1F3FD} end"),
    ] {
        rt.block_on(cjk.send(Cmd::chat(&*text)));
    }
    let screen = tmux.wait_screen("the emoji lines", |s| s.matches(" end").count() >= 2);
    let borders: std::collections::BTreeSet<usize> = screen
        .lines()
        .skip(2)
        .filter_map(|l| l.find('│').map(|i| unicode_width(&l[..i])))
        .collect();
    assert_eq!(borders.len(), 1, "the border moved: {borders:?}\n{screen}");
    drop(cjk);

    // Typing CJK works too, and reaches the other side intact.
    tmux.type_text("日本語のテキスト");
    tmux.keys(&["Enter"]);
    let text = rt
        .block_on(expect_event!(bob, Event::Message { from, text, .. } if from == "alice" => text));
    assert_eq!(text, "日本語のテキスト");
    tmux.wait_screen("our CJK line", |s| s.contains("<alice> 日本語のテキスト"));

    // Tab completes bob's nick; history brings back the last line.
    tmux.type_text("bo");
    tmux.keys(&["Tab"]);
    tmux.wait_screen("completion", |s| input_row(s) == "#lobby> bob:");
    tmux.keys(&["C-u", "Up"]);
    tmux.wait_screen("history", |s| input_row(s) == "#lobby> 日本語のテキスト");
    tmux.keys(&["C-u"]);

    // Presence updates: carol arrives, bob leaves.
    let carol = rt.block_on(JsonClient::login(srv.addr, "carol"));
    tmux.wait_screen("carol in the list", |s| {
        s.contains("carol joined #lobby") && s.contains("3 here")
    });
    rt.block_on(bob.send(Cmd::Quit { reason: None }));
    tmux.wait_screen("bob gone", |s| {
        s.contains("bob quit") && s.contains("2 here")
    });
    println!("--- screen ---\n{}--------------", tmux.capture(false));
    drop(carol);

    // /quit leaves cleanly: the program exits with status 0.
    tmux.type_text("/quit");
    tmux.keys(&["Enter"]);
    assert_eq!(tmux.wait_exit(), "exit 0");
    rt.block_on(srv.shutdown());
}

/// `--password` asks on the terminal before the full screen starts, without
/// echoing what is typed; the account is logged in to, and joining shows
/// the room's last lines (its history).
#[test]
fn tui_asks_for_the_password_unechoed_and_shows_history_on_joining() {
    const PW: &str = "correct horse battery";
    let rt = runtime();
    let srv = rt.block_on(start(config()));
    rt.block_on(async {
        let mut a = srv.user("alice").await;
        a.send(&format!("/register {PW}")).await;
        a.expect("The account alice is registered").await;
        a.send("/quit").await;
    });
    let mut bob = rt.block_on(JsonClient::login(srv.addr, "bob"));
    for text in ["said before alice came", "and once more"] {
        rt.block_on(bob.send(Cmd::chat(text)));
        rt.block_on(expect_event!(bob, Event::Message { .. }));
    }
    let cmd = format!(
        "env -u NATTER_PASSWORD {BIN} chat {} --nick alice --password",
        srv.addr
    );
    let Some(tmux) = Tmux::start(&cmd, 100, 30) else {
        return;
    };
    tmux.wait_screen("the password prompt", |s| s.contains("Password for alice:"));
    tmux.type_text(PW);
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_screen("the room's history", |s| {
        s.contains("<bob> said before alice came") && s.contains("<bob> and once more")
    });
    assert!(!screen.contains(PW), "{screen}");
    // The normal screen, kept by tmux while the full screen is up, holds
    // the prompt and whatever the terminal echoed before the switch: not
    // the password.
    let normal = tmux.run(&["capture-pane", "-p", "-a", "-t", "chat"]);
    assert!(normal.contains("Password for alice:"), "{normal}");
    assert!(!normal.contains(PW), "the password was echoed:\n{normal}");
    assert!(screen.contains("the last 2 lines in #lobby"), "{screen}");
    let joined = rt.block_on(expect_event!(bob, Event::Joined { nick, .. } => nick));
    assert_eq!(joined, "alice");
    // The login is told in the status window (Alt-1).
    tmux.keys(&["M-1"]);
    let screen = tmux.wait_screen("the login in the status window", |s| {
        s.contains("logged in as alice")
    });
    assert!(!screen.contains(PW), "{screen}");
    tmux.keys(&["C-c"]);
    assert_eq!(tmux.wait_exit(), "exit 0");
    rt.block_on(srv.shutdown());
}

#[test]
fn tui_honours_no_color_and_resizes() {
    let rt = runtime();
    let srv = rt.block_on(start(config()));
    let mut bob = rt.block_on(JsonClient::login(srv.addr, "bob"));
    let cmd = format!("env NO_COLOR=1 {BIN} chat {} --nick alice", srv.addr);
    let Some(tmux) = Tmux::start(&cmd, 80, 20) else {
        return;
    };
    tmux.wait_screen("login", |s| s.contains("alice joined #lobby"));
    rt.block_on(bob.send(Cmd::chat("hey alice")));
    tmux.wait_screen("bob's line", |s| s.contains("<bob> hey alice"));
    let raw = tmux.capture(true);
    for sgr in raw.split("\x1b[").skip(1) {
        let params = sgr.split('m').next().unwrap_or("");
        for p in params.split(';') {
            let n: u32 = p.parse().unwrap_or(0);
            assert!(
                !matches!(n, 30..=38 | 40..=48 | 90..=97 | 100..=107),
                "colour SGR {params:?} with NO_COLOR"
            );
        }
    }
    // Narrow the terminal: the member list goes, long lines wrap, nothing breaks.
    tmux.run(&["resize-window", "-t", "chat", "-x", "30", "-y", "12"]);
    rt.block_on(bob.send(Cmd::chat("一二三四五六七八九十一二三四五六七八九十")));
    let screen = tmux.wait_screen("the wrapped line", |s| s.contains("<bob> 一二"));
    assert!(screen.lines().all(|l| unicode_width(l) <= 30), "{screen}");
    tmux.keys(&["C-c"]);
    assert_eq!(tmux.wait_exit(), "exit 0");
    rt.block_on(srv.shutdown());
}

/// The window bar: the row above the input row.
fn bar_row(screen: &str) -> &str {
    let rows: Vec<&str> = screen.lines().filter(|l| !l.trim().is_empty()).collect();
    rows.len().checked_sub(2).map_or("", |i| rows[i])
}

/// The walk-through: a second room (with its topic, changed while
/// we look), activity in the other window, a private conversation in a
/// window of its own, a kick out of the room, Ctrl-L, and a clean exit.
#[test]
fn tui_windows_topic_second_room_private_conversation_and_kick() {
    let rt = runtime();
    let srv = rt.block_on(start(config()));
    let mut bob = rt.block_on(JsonClient::login(srv.addr, "bob"));
    // An IRC operator of #ops, with a topic set.
    let mut op = rt.block_on(IrcClient::register(srv.addr, "oper"));
    rt.block_on(op.send("JOIN #ops"));
    rt.block_on(op.numeric("366"));
    rt.block_on(op.send("TOPIC #ops :ops only"));
    rt.block_on(op.expect("TOPIC #ops"));

    let cmd = format!("env -u NO_COLOR {BIN} chat {} --nick alice", srv.addr);
    let Some(tmux) = Tmux::start(&cmd, 100, 30) else {
        return;
    };
    tmux.wait_screen("lobby", |s| s.contains("alice joined #lobby"));

    // A second room: its window comes to the front with its topic.
    tmux.type_text("/join ops");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_screen("the #ops window", |s| {
        let mut rows = s.lines();
        let (top, topic) = (rows.next().unwrap_or(""), rows.next().unwrap_or(""));
        top.contains("#ops") && topic.contains("ops only") && s.contains("@oper")
    });
    assert!(bar_row(&screen).contains("[3:#ops]"), "{screen}");
    assert!(input_row(&screen).starts_with("#ops>"), "{screen}");
    rt.block_on(op.expect("JOIN"));

    // The topic changes while we look.
    rt.block_on(op.send("TOPIC #ops :new rules"));
    tmux.wait_screen("the new topic", |s| {
        s.lines().nth(1).is_some_and(|t| t.contains("new rules"))
            && s.contains("oper set the topic of #ops: new rules")
    });

    // Talk in #ops; a mention in #lobby marks its window.
    tmux.type_text("hello ops");
    tmux.keys(&["Enter"]);
    rt.block_on(op.expect("PRIVMSG #ops :hello ops"));
    rt.block_on(bob.send(Cmd::chat("alice, are you there?")));
    let screen = tmux.wait_screen("a highlight on #lobby", |s| {
        bar_row(s).contains("2:#lobby!")
    });
    assert!(!screen.contains("are you there"), "{screen}");
    tmux.keys(&["M-2"]);
    tmux.wait_screen("#lobby", |s| {
        s.contains("<bob> alice, are you there?") && bar_row(s).contains("[2:#lobby]")
    });

    // A private message opens a window of its own.
    rt.block_on(bob.send(Cmd::Msg {
        to: "alice".into(),
        msg: "psst, just you".into(),
        action: false,
    }));
    tmux.wait_screen("the conversation's window", |s| {
        bar_row(s).contains("4:bob!")
    });
    tmux.keys(&["C-n", "C-n"]);
    let screen = tmux.wait_screen("the conversation", |s| s.contains("<bob> psst, just you"));
    assert!(
        screen
            .lines()
            .next()
            .unwrap_or("")
            .contains("bob (private)"),
        "{screen}"
    );
    tmux.type_text("only for you");
    tmux.keys(&["Enter"]);
    let (from, to, text) = rt.block_on(
        expect_event!(bob, Event::Private { from, to, text, .. } if from == "alice" => (from, to, text)),
    );
    assert_eq!((&*from, &*to, &*text), ("alice", "bob", "only for you"));
    tmux.wait_screen("our private line", |s| s.contains("<alice> only for you"));

    // Kicked out of #ops: told why, and out of the room.
    tmux.keys(&["M-3"]);
    tmux.wait_screen("#ops again", |s| input_row(s).starts_with("#ops>"));
    rt.block_on(op.send("KICK #ops alice :that will do"));
    let screen = tmux.wait_screen("the kick", |s| {
        s.contains("oper kicked you out of #ops: that will do")
    });
    assert!(
        screen
            .lines()
            .next()
            .unwrap_or("")
            .contains("not in this room"),
        "{screen}"
    );
    tmux.type_text("am I still here?");
    tmux.keys(&["Enter"]);
    tmux.wait_screen("refused locally", |s| {
        s.contains("! error: you are not in #ops: /join #ops to go back")
    });
    rt.block_on(op.send("NAMES #ops"));
    let names = rt.block_on(op.numeric("353"));
    assert!(!names.contains("alice"), "{names}");

    // Ctrl-L redraws everything.
    tmux.keys(&["C-l"]);
    tmux.wait_screen("the redrawn screen", |s| {
        s.contains("oper kicked you out") && bar_row(s).contains("[3:#ops]")
    });
    println!("--- screen ---\n{}--------------", tmux.capture(false));

    tmux.type_text("/quit");
    tmux.keys(&["Enter"]);
    assert_eq!(tmux.wait_exit(), "exit 0");
    rt.block_on(srv.shutdown());
}

/// Display width without a dependency: CJK ideographs and emoji count two
/// (what tmux draws them in).
fn unicode_width(s: &str) -> usize {
    s.chars()
        .map(|c| {
            if ('\u{2e80}'..='\u{9fff}').contains(&c) || ('\u{1F300}'..='\u{1FAFF}').contains(&c) {
                2
            } else {
                1
            }
        })
        .sum()
}
