//! Draws a [`UiState`] with ratatui: a header (room, nick, connection), the
//! scrollback (time stamps, coloured nicks, highlighted mentions, wrapped
//! by display width), the list of who is in the room on the right when the
//! terminal is wide enough, and the input line with its cursor. Pure
//! function of the state: any backend, `TestBackend` in tests.

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line as TextLine, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

use super::editor::width;
use super::wrap::{wrap, Row};
use super::{Entry, UiState, TIME_COLS};
use crate::client::color::Hue;
use crate::client::format::{show_room, Seg, Tone};

/// Terminals narrower than this get no member list.
const MEMBERS_MIN_TERMINAL: u16 = 60;

/// Where each part of the screen goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    pub header: Rect,
    pub chat: Rect,
    pub members: Option<Rect>,
    pub input: Rect,
}

/// The member list's width for this state (0: none).
pub fn members_width(ui: &UiState) -> u16 {
    let (w, _) = ui.size();
    if w < MEMBERS_MIN_TERMINAL {
        return 0;
    }
    let widest = ui
        .session
        .current_members()
        .iter()
        .map(|n| width(n))
        .chain(ui.session.current_room().map(|r| width(&show_room(r)) + 5))
        .max()
        .unwrap_or(0);
    u16::try_from(widest + 2).unwrap_or(u16::MAX).clamp(14, 24)
}

/// Splits the screen: header row, chat (and members) in the middle, input
/// row at the bottom.
pub fn areas(area: Rect, members: u16) -> Areas {
    let header = Rect {
        height: area.height.min(1),
        ..area
    };
    let input = Rect {
        y: area.y + area.height.saturating_sub(1),
        height: u16::from(area.height >= 2),
        ..area
    };
    let middle = Rect {
        y: area.y + header.height,
        height: area.height.saturating_sub(header.height + input.height),
        ..area
    };
    if members == 0 || middle.width < members + 20 {
        return Areas {
            header,
            chat: middle,
            members: None,
            input,
        };
    }
    let chat = Rect {
        width: middle.width - members,
        ..middle
    };
    let side = Rect {
        x: middle.x + chat.width,
        width: members,
        ..middle
    };
    Areas {
        header,
        chat,
        members: Some(side),
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
    draw_chat(frame, ui, a.chat);
    if let Some(side) = a.members {
        draw_members(frame, ui, side);
    }
    draw_input(frame, ui, a.input);
}

fn draw_header(frame: &mut Frame, ui: &UiState, area: Rect) {
    let room = ui
        .session
        .current_room()
        .map_or_else(|| "(no room)".to_string(), show_room);
    let nick = ui.session.nick.as_deref().unwrap_or("(no nickname)");
    let count = ui.session.current_members().len();
    let text = format!(" natter │ {room} │ {nick} │ {count} here │ {}", ui.status);
    let style = if ui.color {
        Style::default().fg(Color::White).bg(Color::Blue)
    } else {
        Style::default().add_modifier(Modifier::REVERSED)
    };
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

fn draw_members(frame: &mut Frame, ui: &UiState, area: Rect) {
    let members = ui.session.current_members();
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
    for n in &members[..shown] {
        let tone = Tone::Nick(crate::client::color::nick_hue(n));
        let mut s = style(tone, ui.color);
        if !ui.session.is_me(n) {
            s = s.remove_modifier(Modifier::BOLD);
        }
        lines.push(TextLine::from(Span::styled(n.clone(), s)));
    }
    if shown < members.len() {
        lines.push(TextLine::from(format!("+{} more", members.len() - shown)));
    }
    let block = Block::default().borders(Borders::LEFT);
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_input(frame: &mut Frame, ui: &UiState, area: Rect) {
    if area.height == 0 {
        return;
    }
    let prompt = if ui.awaiting_nick() {
        "nickname: ".to_string()
    } else {
        match ui.session.current_room() {
            Some(r) => format!("{}> ", show_room(r)),
            None => "> ".to_string(),
        }
    };
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
        Span::raw(shown.to_string()),
    ]);
    frame.render_widget(Paragraph::new(line), area);
    let x = area.x + u16::try_from(pw + col).unwrap_or(area.width);
    frame.set_cursor_position((x.min(area.x + area.width.saturating_sub(1)), area.y));
}
