//! Headless tests of the chat screen: state changes through `on_event` and
//! `on_key`, frames drawn on ratatui's `TestBackend`.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};
use ratatui::Terminal;
use unicode_width::UnicodeWidthStr;

use super::*;
use crate::client::event::{Event, EventKind, Status};

fn ev(kind: EventKind) -> Event {
    Event { at_ms: 0, kind }
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

fn typed(ui: &mut UiState, text: &str) {
    for c in text.chars() {
        assert_eq!(ui.on_key(key(KeyCode::Char(c))), None);
    }
}

/// Types `text`, presses Tab: what the input line then holds.
fn tab(ui: &mut UiState, text: &str) -> String {
    typed(ui, text);
    ui.on_key(key(KeyCode::Tab));
    ui.editor.text().to_string()
}

fn msg(from: &str, text: &str) -> EventKind {
    EventKind::Message {
        room: "lobby".into(),
        from: from.into(),
        text: text.into(),
        action: false,
    }
}

/// alice, logged in, in #lobby with bob, carol and 小明.
fn logged_in(color: bool) -> UiState {
    let mut ui = UiState::new(color);
    ui.resize(80, 12);
    for kind in [
        EventKind::Status(Status::Connected {
            addr: "127.0.0.1:7777".into(),
            protocol: "JSON",
        }),
        EventKind::Registered {
            nick: "alice".into(),
            online: Some(4),
        },
        EventKind::Joined {
            room: "lobby".into(),
            nick: "alice".into(),
            members: Some(4),
        },
        EventKind::Presence {
            room: "lobby".into(),
            nicks: vec!["alice".into(), "bob".into(), "carol".into(), "小明".into()],
            ops: vec!["carol".into()],
            voiced: vec![],
        },
    ] {
        ui.on_event(&ev(kind));
    }
    ui
}

fn render(ui: &UiState) -> Terminal<TestBackend> {
    let (w, h) = ui.size();
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    t.draw(|f| view::draw(f, ui)).expect("draw");
    t
}

/// The screen as text rows; a wide character's second cell is skipped.
fn rows(buf: &Buffer) -> Vec<String> {
    let area = buf.area;
    (0..area.height)
        .map(|y| {
            let mut s = String::new();
            let mut skip = 0;
            for x in 0..area.width {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                let sym = buf[(x, y)].symbol();
                skip = sym.width().saturating_sub(1);
                s.push_str(sym);
            }
            s
        })
        .collect()
}

fn screen(ui: &UiState) -> Vec<String> {
    rows(render(ui).backend().buffer())
}

fn find(screen: &[String], needle: &str) -> Option<usize> {
    screen.iter().position(|r| r.contains(needle))
}

#[test]
fn draws_header_scrollback_members_and_input() {
    let mut ui = logged_in(true);
    ui.on_event(&ev(msg("bob", "hello alice")));
    let t = render(&ui);
    let s = rows(t.backend().buffer());
    assert!(s[0].contains("#lobby") && s[0].contains("alice") && s[0].contains("4 here"));
    assert!(s[0].contains("127.0.0.1:7777 (JSON)"), "{}", s[0]);
    let time = format::clock(0);
    let line = find(&s, "<bob> hello alice").expect("message shown");
    assert!(s[line].starts_with(&format!("{time} <bob>")), "{}", s[line]);
    // The member list on the right.
    for n in ["bob", "carol", "小明"] {
        assert!(s.iter().any(|r| r.trim_end().ends_with(n)), "{n}: {s:#?}");
    }
    assert!(s.last().expect("rows").starts_with("#lobby> "));
    let mut t = t;
    t.backend_mut()
        .assert_cursor_position((u16::try_from("#lobby> ".len()).expect("small"), 11));
}

#[test]
fn nick_colours_and_mentions_are_styled() {
    let mut ui = logged_in(true);
    ui.on_event(&ev(msg("bob", "hey alice, look")));
    let t = render(&ui);
    let buf = t.backend().buffer();
    let y = u16::try_from(find(&rows(buf), "hey alice").expect("shown")).expect("row");
    let x_nick = 7; // "HH:MM <" then the nick
    assert_eq!(buf[(x_nick, y)].symbol(), "b");
    assert_eq!(
        buf[(x_nick, y)].fg,
        view::style(
            crate::client::format::Tone::Nick(crate::client::color::nick_hue("bob")),
            true
        )
        .fg
        .expect("a colour")
    );
    let x_text = 12; // "HH:MM <bob> " is 12 columns
    assert_eq!(buf[(x_text, y)].symbol(), "h");
    assert_eq!(buf[(x_text, y)].bg, Color::Yellow);
}

#[test]
fn no_color_means_no_colours_anywhere() {
    let mut ui = logged_in(false);
    ui.on_event(&ev(msg("bob", "hey alice")));
    ui.on_event(&ev(EventKind::Error {
        code: "x".into(),
        message: "bad".into(),
    }));
    let t = render(&ui);
    let buf = t.backend().buffer();
    for cell in buf.content() {
        assert_eq!((cell.fg, cell.bg), (Color::Reset, Color::Reset), "{cell:?}");
    }
    // The mention still stands out, by reversing.
    let y = u16::try_from(find(&rows(buf), "hey alice").expect("shown")).expect("row");
    assert!(buf[(12, y)].modifier.contains(Modifier::REVERSED));
}

#[test]
fn wide_characters_are_laid_out_by_display_width() {
    let mut ui = logged_in(true);
    ui.resize(40, 10); // no member list below 60 columns
    ui.on_event(&ev(msg("小明", "你好世界")));
    let long = "中文字符".repeat(5); // 40 columns of text
    ui.on_event(&ev(msg("bob", &long)));
    let s = screen(&ui);
    assert!(find(&s, "<小明> 你好世界").is_some(), "{s:#?}");
    let first = find(&s, "<bob>").expect("long line");
    // Wrapped, indented under the time stamp, never split or overflowing.
    let wrapped: String = s[first..first + 2]
        .iter()
        .map(|r| r.split("<bob> ").last().unwrap_or(r).trim())
        .collect();
    assert_eq!(wrapped, long);
    let second = &s[first + 1];
    assert!(second.starts_with("      字"), "{second:?}");
    for r in &s {
        assert!(r.width() <= 40, "{r:?}");
    }
    // The input line scrolls by columns, too.
    typed(&mut ui, &"漢字".repeat(30));
    let t = render(&ui);
    let input = rows(t.backend().buffer()).pop().expect("rows");
    assert!(
        input.width() <= 40 && input.trim_end().ends_with('字'),
        "{input:?}"
    );
}

#[test]
fn tab_completes_nicks_and_commands() {
    let mut ui = logged_in(true);
    assert_eq!(tab(&mut ui, "ca"), "carol: ");
    ui.on_key(ctrl('u'));
    assert_eq!(tab(&mut ui, "/jo"), "/join ");
    ui.on_key(ctrl('u'));
    // Our own nick is not offered; CJK nicks are.
    assert_eq!(tab(&mut ui, "hi a"), "hi a");
    ui.on_key(ctrl('w'));
    assert_eq!(tab(&mut ui, "小"), "hi 小明 ");
}

#[test]
fn enter_sends_and_history_recalls() {
    let mut ui = logged_in(true);
    typed(&mut ui, "first");
    assert_eq!(
        ui.on_key(key(KeyCode::Enter)),
        Some(Action::Send(Request::Say {
            room: Some("lobby".into()),
            text: "first".into(),
            action: false
        }))
    );
    typed(&mut ui, "/join rust");
    assert_eq!(
        ui.on_key(key(KeyCode::Enter)),
        Some(Action::Send(Request::Join("rust".into())))
    );
    typed(&mut ui, "draft");
    ui.on_key(key(KeyCode::Up));
    assert_eq!(ui.editor.text(), "/join rust");
    ui.on_key(key(KeyCode::Up));
    assert_eq!(ui.editor.text(), "first");
    ui.on_key(key(KeyCode::Down));
    ui.on_key(key(KeyCode::Down));
    assert_eq!(ui.editor.text(), "draft");
    // Local commands and mistakes do not go to the server.
    ui.on_key(ctrl('u'));
    typed(&mut ui, "/dance");
    assert_eq!(ui.on_key(key(KeyCode::Enter)), None);
    assert!(find(&screen(&ui), "unknown command /dance").is_some());
    typed(&mut ui, "/help");
    assert_eq!(ui.on_key(key(KeyCode::Enter)), None);
    assert!(find(&screen(&ui), "/quit [REASON]").is_some());
}

#[test]
fn page_up_and_down_scroll_and_new_lines_keep_the_view() {
    let mut ui = logged_in(true);
    for i in 0..100 {
        ui.on_event(&ev(msg("bob", &format!("line {i}"))));
    }
    let s = screen(&ui);
    assert!(find(&s, "line 99").is_some());
    ui.on_key(key(KeyCode::PageUp));
    let s = screen(&ui);
    assert!(find(&s, "line 99").is_none());
    assert!(find(&s, "more rows below").is_some());
    let top = s[1].clone();
    // A new line while scrolled up does not move what is shown.
    ui.on_event(&ev(msg("bob", "line 100")));
    assert_eq!(screen(&ui)[1], top);
    for _ in 0..100 {
        ui.on_key(key(KeyCode::PageUp));
    }
    assert!(find(&screen(&ui), "alice joined #lobby").is_some());
    for _ in 0..100 {
        ui.on_key(key(KeyCode::PageDown));
    }
    assert_eq!(ui.scroll(), 0);
    assert!(find(&screen(&ui), "line 100").is_some());
    ui.on_key(key(KeyCode::PageUp));
    ui.on_key(key(KeyCode::Esc));
    assert_eq!(ui.scroll(), 0);
}

#[test]
fn resizes_cleanly_at_any_size() {
    let mut ui = logged_in(true);
    for i in 0..30 {
        ui.on_event(&ev(msg(
            "bob",
            &format!("message number {i} with some words"),
        )));
    }
    ui.on_key(key(KeyCode::PageUp));
    for (w, h) in [(120, 40), (20, 5), (1, 1), (0, 0), (3, 2), (80, 24)] {
        ui.resize(w, h);
        let _ = render(&ui);
    }
    let s = screen(&ui);
    assert_eq!(s.len(), 24);
    assert!(s[0].contains("#lobby"));
}

#[test]
fn members_follow_presence_events() {
    let mut ui = logged_in(true);
    ui.on_event(&ev(EventKind::Joined {
        room: "lobby".into(),
        nick: "dave".into(),
        members: Some(5),
    }));
    ui.on_event(&ev(EventKind::Quit {
        nick: "carol".into(),
        reason: None,
    }));
    ui.on_event(&ev(EventKind::Nick {
        old: "bob".into(),
        new: "robert".into(),
    }));
    let s = screen(&ui);
    let side: Vec<&str> = s
        .iter()
        .filter_map(|r| r.split('│').nth(1))
        .map(str::trim)
        .collect();
    assert!(
        side.contains(&"robert") && side.contains(&"dave"),
        "{side:?}"
    );
    assert!(
        !side.contains(&"carol") && !side.contains(&"bob"),
        "{side:?}"
    );
}

#[test]
fn asks_for_a_nick_and_quits() {
    let mut ui = UiState::new(true);
    ui.resize(60, 8);
    ui.on_event(&ev(EventKind::NeedNick {
        refused: Some("the nickname bob is taken. Pick another nickname:".into()),
    }));
    let s = screen(&ui);
    assert!(s.last().expect("rows").starts_with("nickname: "));
    assert!(find(&s, "bob is taken").is_some());
    assert_eq!(ui.on_key(key(KeyCode::Enter)), None);
    typed(&mut ui, "bobby");
    assert_eq!(
        ui.on_key(key(KeyCode::Enter)),
        Some(Action::Send(Request::Login("bobby".into())))
    );
    assert_eq!(
        ui.on_key(ctrl('c')),
        Some(Action::Send(Request::Quit(None)))
    );
    assert_eq!(ui.on_key(ctrl('c')), Some(Action::Exit));
}

fn alt(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::ALT)
}

fn enter(ui: &mut UiState, text: &str) -> Option<Action> {
    typed(ui, text);
    ui.on_key(key(KeyCode::Enter))
}

/// The window bar: the row above the input.
fn bar(screen: &[String]) -> String {
    screen[screen.len() - 2].clone()
}

fn joined(room: &str, nick: &str) -> EventKind {
    EventKind::Joined {
        room: room.into(),
        nick: nick.into(),
        members: None,
    }
}

#[test]
fn topic_line_and_status_in_the_member_list() {
    let mut ui = logged_in(true);
    let s = screen(&ui);
    assert!(s[1].contains("#lobby has no topic"), "{}", s[1]);
    ui.on_event(&ev(EventKind::Topic {
        room: "lobby".into(),
        topic: Some("Welcome, be kind".into()),
        by: Some("carol".into()),
        changed: true,
    }));
    ui.on_event(&ev(EventKind::Mode {
        room: "lobby".into(),
        by: "carol".into(),
        changes: "+v bob".into(),
    }));
    let s = screen(&ui);
    assert!(s[1].contains("Welcome, be kind"), "{}", s[1]);
    assert!(find(&s, "carol set the topic of #lobby: Welcome, be kind").is_some());
    assert!(find(&s, "carol sets mode +v bob on #lobby").is_some());
    // Operators first, then voiced, then the rest.
    let side: Vec<&str> = s[2..]
        .iter()
        .filter_map(|r| r.split('│').nth(1))
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    assert_eq!(
        side,
        ["4 here", "@carol", "+bob", "alice", "小明"],
        "{s:#?}"
    );
}

#[test]
fn rooms_and_private_conversations_get_windows_with_activity_marks() {
    let mut ui = logged_in(true);
    assert_eq!(ui.active_index(), 1, "the first room comes to the front");
    // /join: its window comes to the front when the join is confirmed.
    assert_eq!(
        enter(&mut ui, "/join rust"),
        Some(Action::Send(Request::Join("rust".into())))
    );
    ui.on_event(&ev(joined("rust", "alice")));
    ui.on_event(&ev(joined("rust", "dave")));
    assert_eq!(ui.room(), Some("rust"));
    // Text goes to the window's room.
    assert_eq!(
        enter(&mut ui, "hi rust"),
        Some(Action::Send(Request::Say {
            room: Some("rust".into()),
            text: "hi rust".into(),
            action: false
        }))
    );
    // Elsewhere: a message marks #lobby, a mention or private message more.
    ui.on_event(&ev(msg("bob", "anyone?")));
    let s = screen(&ui);
    assert!(bar(&s).contains("2:#lobby*"), "{}", bar(&s));
    assert!(bar(&s).contains("[3:#rust]"), "{}", bar(&s));
    assert!(find(&s, "anyone?").is_none(), "not in this window");
    ui.on_event(&ev(msg("bob", "alice: there?")));
    ui.on_event(&ev(EventKind::Private {
        from: "carol".into(),
        to: "alice".into(),
        text: "psst".into(),
        action: false,
    }));
    let b = bar(&screen(&ui));
    assert!(b.contains("2:#lobby!") && b.contains("4:carol!"), "{b}");
    // Alt-2 goes there and clears the mark; Ctrl-N and Ctrl-P cycle.
    ui.on_key(alt('2'));
    let s = screen(&ui);
    assert!(find(&s, "<bob> alice: there?").is_some());
    assert!(bar(&s).contains("[2:#lobby]"), "{}", bar(&s));
    ui.on_key(ctrl('n'));
    ui.on_key(ctrl('n'));
    assert_eq!(ui.window().kind, WindowKind::Private("carol".into()));
    let s = screen(&ui);
    assert!(find(&s, "<carol> psst").is_some(), "{s:#?}");
    assert!(s[0].contains("carol (private)"), "{}", s[0]);
    // In a conversation, text is a private message to the other side.
    assert_eq!(
        enter(&mut ui, "hello you"),
        Some(Action::Send(Request::Private {
            to: "carol".into(),
            text: "hello you".into(),
            action: false
        }))
    );
    ui.on_event(&ev(EventKind::Private {
        from: "alice".into(),
        to: "dave".into(),
        text: "a word".into(),
        action: false,
    }));
    let b = bar(&screen(&ui));
    assert!(
        b.contains(" 5:dave ") && !b.contains("5:dave*"),
        "ours is no news: {b}"
    );
    ui.on_key(ctrl('n'));
    ui.on_key(ctrl('n'));
    assert_eq!(ui.active_index(), 0, "wraps around to window 1");
    ui.on_key(ctrl('p'));
    assert_eq!(ui.active_index(), 4);
    // /close ends a conversation; in a room it parts (the window goes
    // when the server confirms).
    assert_eq!(enter(&mut ui, "/close"), None);
    ui.focus(3);
    assert_eq!(enter(&mut ui, "/close"), None);
    assert_eq!(ui.windows().len(), 3);
    ui.focus(2);
    assert_eq!(
        enter(&mut ui, "/close"),
        Some(Action::Send(Request::Part {
            room: Some("rust".into()),
            reason: None
        }))
    );
    ui.on_event(&ev(EventKind::Left {
        room: "rust".into(),
        nick: "alice".into(),
        members: None,
        reason: None,
    }));
    assert_eq!(ui.windows().len(), 2);
    // /query opens one; quits and nick changes reach the windows involved.
    assert_eq!(enter(&mut ui, "/query bob"), None);
    assert_eq!(ui.window().kind, WindowKind::Private("bob".into()));
    ui.on_event(&ev(EventKind::Nick {
        old: "bob".into(),
        new: "robert".into(),
    }));
    assert_eq!(ui.window().kind, WindowKind::Private("robert".into()));
    assert!(find(&screen(&ui), "bob is now known as robert").is_some());
    ui.on_key(alt('2'));
    assert!(find(&screen(&ui), "bob is now known as robert").is_some());
    ui.on_key(alt('1'));
    assert!(find(&screen(&ui), "bob is now known as robert").is_none());
}

#[test]
fn a_kicked_user_is_out_of_the_room_and_told_why() {
    let mut ui = logged_in(true);
    ui.on_event(&ev(EventKind::Kicked {
        room: "lobby".into(),
        by: "carol".into(),
        nick: "alice".into(),
        reason: Some("too loud".into()),
        members: Some(3),
    }));
    assert!(!ui.session.is_in("lobby"));
    let s = screen(&ui);
    assert!(
        find(&s, "carol kicked you out of #lobby: too loud").is_some(),
        "{s:#?}"
    );
    assert!(s[0].contains("not in this room"), "{}", s[0]);
    assert!(s[1].contains("/join #lobby"), "{}", s[1]);
    assert_eq!(enter(&mut ui, "still here?"), None, "nothing is sent");
    assert!(find(&screen(&ui), "you are not in #lobby").is_some());
    // Somebody else kicked: out of the list.
    ui.on_event(&ev(joined("lobby", "alice")));
    ui.on_event(&ev(joined("lobby", "bob")));
    ui.on_event(&ev(EventKind::Kicked {
        room: "lobby".into(),
        by: "alice".into(),
        nick: "bob".into(),
        reason: None,
        members: Some(1),
    }));
    assert_eq!(ui.session.nicks("lobby"), ["alice"]);
    assert!(find(&screen(&ui), "alice kicked bob out of #lobby").is_some());
}

#[test]
fn history_shows_with_its_own_times_in_its_room() {
    let mut ui = logged_in(true);
    let past = |at_ms, text: &str| Event {
        at_ms,
        kind: msg("bob", text),
    };
    // 01:00 and 02:00 UTC on day one: distinct local times anywhere.
    let (one, two) = (3_600_000, 7_200_000);
    ui.on_event(&ev(EventKind::History {
        room: "lobby".into(),
        lines: vec![past(one, "from before"), past(two, "alice: also before")],
        more: false,
    }));
    let s = screen(&ui);
    let row = find(&s, "<bob> from before").expect("history shown");
    assert!(s[row].starts_with(&format::clock(one)), "{}", s[row]);
    let row = find(&s, "also before").expect("second line");
    assert!(s[row].starts_with(&format::clock(two)), "{}", s[row]);
    assert!(find(&s, "the last 2 lines in #lobby").is_some());
    // Old mentions are not news.
    assert_eq!(ui.windows()[1].activity, Activity::None);
}

#[test]
fn ctrl_l_redraws_and_alt_keys_do_not_type() {
    let mut ui = logged_in(true);
    assert_eq!(ui.on_key(ctrl('l')), Some(Action::Redraw));
    ui.on_key(alt('x'));
    assert!(ui.editor.is_empty());
}

/// Every drawn cell is one a terminal measures as ratatui does: no emoji
/// glue, and frames drawn one after another end as a fresh frame would.
#[test]
fn emoji_sequences_and_cjk_nicks_leave_no_stale_cells() {
    let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
    let mut ui = logged_in(true);
    let (w, h) = ui.size();
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    let lines = [
        format!("family {family} time"),
        "flag \u{1F1EF}\u{1F1F5} heart \u{2764}\u{FE0F} thumbs \u{1F44D}\u{1F3FD}!".to_string(),
        "小明 says 你好 to 王小红".to_string(),
        format!("{family}{family}{family}{family}{family}{family}{family}{family}{family}"),
    ];
    for (i, text) in lines.iter().enumerate() {
        let from = if i % 2 == 0 { "小明" } else { "bob" };
        ui.on_event(&ev(msg(from, text)));
        typed(&mut ui, family);
        t.draw(|f| view::draw(f, &ui)).expect("draw");
    }
    let fresh = render(&ui);
    assert_eq!(t.backend().buffer(), fresh.backend().buffer());
    for cell in t.backend().buffer().content() {
        let sym = cell.symbol();
        assert!(
            !sym.contains(['\u{200D}', '\u{FE0F}', '\u{1F3FD}']),
            "{sym:?}"
        );
    }
    let s = screen(&ui);
    assert!(
        find(&s, "\u{1F468}\u{1F469}\u{1F467} time").is_some(),
        "{s:#?}"
    );
    for r in &s {
        assert!(r.width() <= usize::from(w), "{r:?}");
    }
}

#[test]
fn ignored_nicks_are_not_shown() {
    let mut ui = logged_in(true);
    assert_eq!(enter(&mut ui, "/ignore bob"), None);
    assert!(find(&screen(&ui), "ignoring bob").is_some());
    ui.on_event(&ev(msg("bob", "spam spam")));
    ui.on_event(&ev(EventKind::Private {
        from: "BOB".into(),
        to: "alice".into(),
        text: "more spam".into(),
        action: false,
    }));
    ui.on_event(&ev(msg("carol", "hello")));
    let s = screen(&ui);
    assert!(find(&s, "spam").is_none(), "{s:#?}");
    assert!(find(&s, "<carol> hello").is_some());
    assert_eq!(
        ui.windows().len(),
        2,
        "no window for an ignored conversation"
    );
    assert_eq!(enter(&mut ui, "/unignore bob"), None);
    ui.on_event(&ev(msg("bob", "back again")));
    assert!(find(&screen(&ui), "<bob> back again").is_some());
}
