//! Draws a [`UiState`] with ratatui: a header (window, nick, connection),
//! the topic line, the window's scrollback (time stamps, coloured nicks,
//! highlighted mentions, wrapped by display width), the list of who is in
//! the room on the right (operators `@` and voiced `+` first) when the
//! terminal is wide enough, the window bar with activity marks (`*` new
//! messages, `!` a highlight), and the input line with its cursor. Pure
//! function of the state: any backend, `TestBackend` in tests. Every string
//! goes through [`terminal_safe`] so the terminal and ratatui agree on its
//! width.

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line as TextLine, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

use super::editor::width;
use super::wrap::{terminal_safe, wrap, Row};
use super::{Activity, Entry, UiState, WindowKind, TIME_COLS};
use crate::client::color::Hue;
use crate::client::format::{show_room, Seg, Tone};
use crate::client::session::Member;

/// Terminals narrower than this get no member list.
const MEMBERS_MIN_TERMINAL: u16 = 60;

/// Where each part of the screen goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    pub header: Rect,
    pub topic: Rect,
    pub chat: Rect,
    pub members: Option<Rect>,
    /// The window bar.
    pub bar: Rect,
    pub input: Rect,
}

/// The member list's width for this state (0: none).
pub fn members_width(ui: &UiState) -> u16 {
    let (w, _) = ui.size();
    let Some(room) = ui.room().filter(|r| ui.session.is_in(r)) else {
        return 0; // no room, or not in it any more
    };
    if w < MEMBERS_MIN_TERMINAL {
        return 0;
    }
    let widest = ui
        .session
        .members(room)
        .iter()
        .map(|m| width(&m.nick) + m.prefix().len())
        .chain(Some(width(&show_room(room)) + 5))
        .max()
        .unwrap_or(0);
    u16::try_from(widest + 2).unwrap_or(u16::MAX).clamp(14, 24)
}

/// Splits the screen: header row, topic row, chat (and members) in the
/// middle, window bar and input row at the bottom. Rows go in that order
/// of need: input, header, window bar, topic.
pub fn areas(area: Rect, members: u16) -> Areas {
    let h = area.height;
    let row = |y: u16, on: bool| Rect {
        y: area.y + y,
        height: u16::from(on),
        ..area
    };
    let header = row(0, h >= 1);
    let input = row(h.saturating_sub(1), h >= 2);
    let bar = row(h.saturating_sub(2), h >= 4);
    let topic = row(1, h >= 6);
    let top = header.height + topic.height;
    let middle = Rect {
        y: area.y + top,
        height: h.saturating_sub(top + bar.height + input.height),
        ..area
    };
    let (chat, members) = if members == 0 || middle.width < members + 20 {
        (middle, None)
    } else {
        let chat = Rect {
            width: middle.width - members,
            ..middle
        };
        let side = Rect {
            x: middle.x + chat.width,
            width: members,
            ..middle
        };
        (chat, Some(side))
    };
    Areas {
        header,
        topic,
        chat,
        members,
        bar,
        input,
    }
}

/// How `tone` looks: colours, or only bold/reverse without them.
pub fn style(tone: Tone, color: bool) -> Style {
    let s = Style::default();
    match (tone, color) {
        (Tone::Plain, _) => s,
        (Tone::Time | Tone::Room, _) => s.add_modifier(Modifier::DIM),
        (Tone::Nick(h), true) => s.fg(hue(h)).add_modifier(Modifier::BOLD),
        (Tone::Nick(_), false) => s.add_modifier(Modifier::BOLD),
        (Tone::Mention, true) => s
            .fg(Color::Black)
            .bg(Color::Yellow)
            .add_modifier(Modifier::BOLD),
        (Tone::Mention, false) => s.add_modifier(Modifier::REVERSED | Modifier::BOLD),
        (Tone::Notice, true) => s.fg(Color::Yellow),
        (Tone::Error, true) => s.fg(Color::LightRed).add_modifier(Modifier::BOLD),
        (Tone::Prompt, true) => s.fg(Color::Cyan).add_modifier(Modifier::BOLD),
        (Tone::Private, true) => s.fg(Color::Magenta),
        (Tone::Error | Tone::Prompt, false) => s.add_modifier(Modifier::BOLD),
        (Tone::Notice | Tone::Private, false) => s,
    }
}

fn hue(h: Hue) -> Color {
    match h {
        Hue::Red => Color::Red,
        Hue::Green => Color::Green,
        Hue::Yellow => Color::Yellow,
        Hue::Blue => Color::Blue,
        Hue::Magenta => Color::Magenta,
        Hue::Cyan => Color::Cyan,
        Hue::LightRed => Color::LightRed,
        Hue::LightGreen => Color::LightGreen,
        Hue::LightYellow => Color::LightYellow,
        Hue::LightBlue => Color::LightBlue,
        Hue::LightMagenta => Color::LightMagenta,
        Hue::LightCyan => Color::LightCyan,
    }
}

/// One scrollback entry as screen rows `cols` wide (time stamp first,
/// continuation rows indented under it).
pub fn entry_rows(entry: &Entry, cols: usize) -> Vec<Row> {
    let mut segs = Vec::with_capacity(entry.line.segs.len() + 1);
    segs.push(Seg {
        text: format!("{} ", entry.time),
        tone: Tone::Time,
    });
    segs.extend(entry.line.segs.iter().cloned());
    wrap(&segs, cols, TIME_COLS)
}

fn text_line(row: Row, color: bool) -> TextLine<'static> {
    TextLine::from(
        row.into_iter()
            .map(|s| Span::styled(s.text, style(s.tone, color)))
            .collect::<Vec<_>>(),
    )
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, ui: &UiState) {
    let a = areas(frame.area(), members_width(ui));
    draw_header(frame, ui, a.header);
    draw_topic(frame, ui, a.topic);
    draw_chat(frame, ui, a.chat);
    if let Some(side) = a.members {
        draw_members(frame, ui, side);
    }
    draw_bar(frame, ui, a.bar);
    draw_input(frame, ui, a.input);
}

fn bar_style(ui: &UiState) -> Style {
    if ui.color {
        Style::default().fg(Color::White).bg(Color::Blue)
    } else {
        Style::default().add_modifier(Modifier::REVERSED)
    }
}

fn draw_header(frame: &mut Frame, ui: &UiState, area: Rect) {
    if area.height == 0 {
        return;
    }
    let w = ui.window();
    let place = match &w.kind {
        WindowKind::Status => "status".to_string(),
        WindowKind::Room(r) => show_room(r),
        WindowKind::Private(n) => format!("{n} (private)"),
    };
    let nick = ui.session.nick.as_deref().unwrap_or("(no nickname)");
    let away = if ui.session.away { " (away)" } else { "" };
    let count = match w.room() {
        Some(r) if ui.session.is_in(r) => format!("{} here │ ", ui.session.members(r).len()),
        Some(_) => "not in this room │ ".to_string(),
        None => String::new(),
    };
    let text = format!(" natter │ {place} │ {nick}{away} │ {count}{}", ui.status);
    let text = terminal_safe(&text).into_owned();
    frame.render_widget(Paragraph::new(text).style(bar_style(ui)), area);
}

fn draw_topic(frame: &mut Frame, ui: &UiState, area: Rect) {
    if area.height == 0 {
        return;
    }
    let text = match &ui.window().kind {
        WindowKind::Status => " server messages; Alt-N or Ctrl-N/Ctrl-P switch windows".into(),
        WindowKind::Private(n) => format!(" private conversation with {n}"),
        WindowKind::Room(r) if !ui.session.is_in(r) => {
            format!(
                " you are not in {r}; /join {r} to go back",
                r = show_room(r)
            )
        }
        WindowKind::Room(r) => match ui.session.topic(r) {
            Some(t) => format!(" {t}"),
            None => format!(" {} has no topic", show_room(r)),
        },
    };
    let text = terminal_safe(&text).into_owned();
    let style = Style::default().add_modifier(Modifier::UNDERLINED);
    frame.render_widget(Paragraph::new(text).style(style), area);
}

fn draw_chat(frame: &mut Frame, ui: &UiState, area: Rect) {
    let (cols, height) = (usize::from(area.width), usize::from(area.height));
    if cols == 0 || height == 0 {
        return;
    }
    // Wrap only as many entries as the view needs, newest first.
    let need = height + ui.scroll();
    let mut rows: Vec<Row> = Vec::new();
    for e in ui.entries().rev() {
        rows.extend(entry_rows(e, cols).into_iter().rev());
        if rows.len() >= need {
            break;
        }
    }
    rows.reverse();
    let end = rows.len().saturating_sub(ui.scroll());
    let start = end.saturating_sub(height);
    let mut lines: Vec<TextLine> = rows
        .drain(start..end)
        .map(|r| text_line(r, ui.color))
        .collect();
    if ui.scroll() > 0 {
        if let Some(last) = lines.last_mut() {
            *last = TextLine::from(Span::styled(
                format!("-- {} more rows below: PgDn --", ui.scroll()),
                Style::default().add_modifier(Modifier::REVERSED),
            ));
        }
    }
    frame.render_widget(Paragraph::new(lines), area);
}

/// Operators, then voiced, then everyone, each by name.
fn ranked(members: &[Member]) -> Vec<&Member> {
    let mut list: Vec<&Member> = members.iter().collect();
    list.sort_by_key(|m| m.rank());
    list
}

fn draw_members(frame: &mut Frame, ui: &UiState, area: Rect) {
    let Some(room) = ui.room() else {
        return;
    };
    let members = ranked(ui.session.members(room));
    let mut lines = vec![TextLine::from(Span::styled(
        format!("{} here", members.len()),
        Style::default().add_modifier(Modifier::BOLD),
    ))];
    let room_for = usize::from(area.height).saturating_sub(1);
    let shown = if members.len() > room_for {
        room_for.saturating_sub(1)
    } else {
        members.len()
    };
    for m in &members[..shown] {
        let tone = Tone::Nick(crate::client::color::nick_hue(&m.nick));
        let mut s = style(tone, ui.color);
        if !ui.session.is_me(&m.nick) {
            s = s.remove_modifier(Modifier::BOLD);
        }
        let nick = terminal_safe(&m.nick).into_owned();
        lines.push(TextLine::from(vec![
            Span::styled(m.prefix(), Style::default().add_modifier(Modifier::BOLD)),
            Span::styled(nick, s),
        ]));
    }
    if shown < members.len() {
        lines.push(TextLine::from(format!("+{} more", members.len() - shown)));
    }
    let block = Block::default().borders(Borders::LEFT);
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// The window bar: `1:status 2:#lobby* 3:bob!`, the window looked at in
/// brackets, activity marked (`*` messages, `!` highlight; events only
/// dimly).
fn draw_bar(frame: &mut Frame, ui: &UiState, area: Rect) {
    if area.height == 0 {
        return;
    }
    let mut spans = vec![Span::raw(" ")];
    for (i, w) in ui.windows().iter().enumerate() {
        let title = terminal_safe(&w.title()).into_owned();
        let mark = match w.activity {
            Activity::Highlight => "!",
            Activity::Messages => "*",
            Activity::Events | Activity::None => "",
        };
        let base = bar_style(ui);
        let style = match (i == ui.active_index(), w.activity, ui.color) {
            (true, ..) => base.add_modifier(Modifier::BOLD),
            (false, Activity::Highlight, true) => {
                base.fg(Color::LightMagenta).add_modifier(Modifier::BOLD)
            }
            (false, Activity::Messages, true) => base.fg(Color::LightYellow),
            (false, Activity::Highlight | Activity::Messages, false) => {
                base.add_modifier(Modifier::BOLD)
            }
            (false, Activity::Events, _) => base,
            (false, Activity::None, _) => base.add_modifier(Modifier::DIM),
        };
        let text = if i == ui.active_index() {
            format!("[{}:{title}]", i + 1)
        } else {
            format!("{}:{title}{mark}", i + 1)
        };
        spans.push(Span::styled(text, style));
        spans.push(Span::raw(" "));
    }
    frame.render_widget(
        Paragraph::new(TextLine::from(spans)).style(bar_style(ui)),
        area,
    );
}

fn draw_input(frame: &mut Frame, ui: &UiState, area: Rect) {
    if area.height == 0 {
        return;
    }
    let prompt = if ui.awaiting_nick() {
        "nickname: ".to_string()
    } else {
        match &ui.window().kind {
            WindowKind::Room(r) => format!("{}> ", show_room(r)),
            WindowKind::Private(n) => format!("{n}> "),
            WindowKind::Status => "> ".to_string(),
        }
    };
    let prompt = terminal_safe(&prompt).into_owned();
    let cols = usize::from(area.width);
    // Keep at least half the line for the text.
    let prompt = if width(&prompt) > cols / 2 {
        "> ".to_string()
    } else {
        prompt
    };
    let pw = width(&prompt);
    let (shown, col) = ui.editor.view(cols.saturating_sub(pw));
    let line = TextLine::from(vec![
        Span::styled(prompt, style(Tone::Prompt, ui.color)),
        Span::raw(terminal_safe(shown).into_owned()),
    ]);
    frame.render_widget(Paragraph::new(line), area);
    let x = area.x + u16::try_from(pw + col).unwrap_or(area.width);
    frame.set_cursor_position((x.min(area.x + area.width.saturating_sub(1)), area.y));
}
