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
