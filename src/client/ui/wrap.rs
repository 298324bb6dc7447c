//! Wraps a toned line into rows of at most `width` terminal columns:
//! measured per grapheme with unicode-width (a CJK character takes two
//! columns and is never split), breaking after a space where one is
//! available, and indenting continuation rows (under the time stamp) —
//! except inside a URL or a word too long for a row, whose pieces are not
//! indented (a URL starts a row of its own), so they line up unbroken.
//!
//! [`terminal_safe`] is what every drawn string goes through first: emoji
//! sequences whose width terminals disagree on become glyphs they agree on.

use std::borrow::Cow;

use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use crate::client::format::{Seg, Tone};

/// One screen row: segments whose widths add up to at most the width.
pub type Row = Vec<Seg>;

/// Characters that glue emoji into one glyph (ZWJ sequences like families,
/// skin tones, keycaps, tag flags, presentation selectors). Terminals do not
/// agree on how wide the result is (tmux draws a family in 2 columns, VTE in
/// 6, `❤️` in 1 where unicode-width says 2), and a disagreement leaves holes
/// or stale cells behind. Without them every part is a glyph of its own with
/// a width all terminals share.
fn is_emoji_glue(c: char) -> bool {
    matches!(c,
        '\u{200D}'                      // zero-width joiner
        | '\u{FE0E}' | '\u{FE0F}'        // text / emoji presentation
        | '\u{20E3}'                      // combining keycap
        | '\u{1F3FB}'..='\u{1F3FF}'       // skin tone modifiers
        | '\u{E0020}'..='\u{E007F}') // tag characters (subdivision flags)
}

/// Pictographs: where the glue above is emoji glue (a ZWJ in Indic text is not).
fn is_pictograph(c: char) -> bool {
    matches!(c, '\u{2190}'..='\u{2BFF}' | '\u{1F000}'..='\u{1FAFF}' | '\u{20E3}' | '#' | '*' | '0'..='9')
}

/// `s` as a terminal can draw it without disagreeing about widths: emoji
/// sequences split into their parts (👨‍👩‍👧 → 👨👩👧, 👍🏽 → 👍, ❤️ → ❤,
/// 1️⃣ → 1), and anything of zero width standing alone (a combining mark with
/// nothing to combine with) dropped. Flags (two regional indicators) stay:
/// they are two columns everywhere. Other text is returned as it is.
pub fn terminal_safe(s: &str) -> Cow<'_, str> {
    let suspicious =
        |g: &str| (g.chars().any(is_emoji_glue) && g.chars().any(is_pictograph)) || g.width() == 0;
    if s.is_ascii() || !s.graphemes(true).any(suspicious) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    for g in s.graphemes(true) {
        if g.chars().any(is_emoji_glue) && g.chars().any(is_pictograph) {
            out.extend(g.chars().filter(|&c| !is_emoji_glue(c)));
        } else if g.width() > 0 {
            out.push_str(g);
        }
    }
    Cow::Owned(out)
}

/// The display width of `s` as drawn (after [`terminal_safe`]).
pub fn safe_width(s: &str) -> usize {
    terminal_safe(s).width()
}

/// A grapheme placed on a row: its text (`None`: indent), tone, width.
type Cell<'a> = (Option<&'a str>, Tone, usize);

/// Splits `segs` into rows `width` columns wide; rows after the first
/// start with `indent` spaces, except inside a URL or an over-long word.
pub fn wrap(segs: &[Seg], width: usize, indent: usize) -> Vec<Row> {
    let width = width.max(1);
    let indent = if indent * 2 > width { 0 } else { indent };
    let gs: Vec<Cell> = segs
        .iter()
        .flat_map(|s| {
            s.text
                .graphemes(true)
                .map(move |g| (Some(g), s.tone, g.width()))
        })
        .collect();
    let mut rows: Vec<Vec<Cell>> = vec![Vec::new()];
    let mut used = 0;
    let new_row = |rows: &mut Vec<Vec<Cell>>, used: &mut usize, indented: bool| {
        let mut row = Vec::new();
        *used = 0;
        if indented && indent > 0 {
            row.push((None, Tone::Plain, indent));
            *used = indent;
        }
        rows.push(row);
    };
    // True if the last row holds no text yet (at most its indent).
    let bare = |rows: &[Vec<Cell>]| rows.last().is_none_or(|r| r.iter().all(|c| c.0.is_none()));
    let mut i = 0;
    while i < gs.len() {
        let cell = gs[i];
        if cell.0 == Some(" ") {
            if used + cell.2 <= width {
                push(&mut rows, cell, &mut used);
            } else {
                new_row(&mut rows, &mut used, true); // a space at a break is dropped
            }
            i += 1;
            continue;
        }
        let end = gs[i..]
            .iter()
            .position(|c| c.0 == Some(" "))
            .map_or(gs.len(), |n| i + n);
        let word = &gs[i..end];
        i = end;
        let ww: usize = word.iter().map(|c| c.2).sum();
        if used + ww <= width {
            for &c in word {
                push(&mut rows, c, &mut used);
            }
            continue;
        }
        let url = word_text(word).contains("://");
        let wide = word.iter().any(|c| c.2 > 1);
        let long = indent + ww > width;
        if !url && !long && !wide && !bare(&rows) {
            // Fits on the next row: move it there whole.
            new_row(&mut rows, &mut used, true);
            for &c in word {
                push(&mut rows, c, &mut used);
            }
            continue;
        }
        // Broken across rows: a URL or a long word unindented (it starts
        // a row of its own if it is a URL); CJK text anywhere, indented.
        let indented = !url && (wide || !long);
        if url && !bare(&rows) {
            new_row(&mut rows, &mut used, false);
        }
        for &c in word {
            if used + c.2 > width && !bare(&rows) {
                new_row(&mut rows, &mut used, indented);
            }
            push(&mut rows, c, &mut used);
        }
    }
    rows.into_iter()
        .map(|row| {
            let mut out: Row = Vec::new();
            for (g, tone, w) in row {
                let text = g.map_or_else(|| " ".repeat(w), str::to_string);
                match out.last_mut() {
                    Some(last) if last.tone == tone => last.text.push_str(&text),
                    _ => out.push(Seg { text, tone }),
                }
            }
            out
        })
        .collect()
}

fn push<'a>(rows: &mut [Vec<Cell<'a>>], cell: Cell<'a>, used: &mut usize) {
    if let Some(row) = rows.last_mut() {
        row.push(cell);
        *used += cell.2;
    }
}

fn word_text(word: &[Cell]) -> String {
    word.iter().filter_map(|c| c.0).collect()
}

/// The display width of a row.
pub fn row_width(row: &Row) -> usize {
    row.iter().map(|s| s.text.width()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(t: &str) -> Seg {
        Seg {
            text: t.into(),
            tone: Tone::Plain,
        }
    }

    fn texts(rows: &[Row]) -> Vec<String> {
        rows.iter()
            .map(|r| r.iter().map(|s| s.text.as_str()).collect())
            .collect()
    }

    #[test]
    fn breaks_at_spaces_and_indents() {
        let rows = wrap(&[seg("12:00 "), seg("hello there world")], 14, 6);
        assert_eq!(
            texts(&rows),
            ["12:00 hello ", "      there ", "      world"]
        );
        assert!(rows.iter().all(|r| row_width(r) <= 14));
    }

    #[test]
    fn long_words_break_hard() {
        let rows = wrap(&[seg("abcdefghij")], 4, 0);
        assert_eq!(texts(&rows), ["abcd", "efgh", "ij"]);
    }

    #[test]
    fn wide_characters_are_never_split() {
        let rows = wrap(&[seg("ab你好世界")], 5, 0);
        assert_eq!(texts(&rows), ["ab你", "好世", "界"]);
        assert!(rows.iter().all(|r| row_width(r) <= 5));
        // Narrower than one wide character: still progresses.
        let rows = wrap(&[seg("你好")], 1, 0);
        assert_eq!(texts(&rows), ["你", "好"]);
        // CJK text after a space fills the row instead of moving down whole.
        let rows = wrap(&[seg("<bob> 一二三四五六")], 10, 0);
        assert_eq!(texts(&rows), ["<bob> 一二", "三四五六"]);
    }

    #[test]
    fn urls_and_long_words_are_not_indented() {
        let url = "https://example.org/a/very/long/path?with=query";
        let rows = wrap(&[seg("12:00 "), seg("<bob> see "), seg(url)], 20, 6);
        let t = texts(&rows);
        assert_eq!(t[0], "12:00 <bob> see ");
        // The URL starts a row and its pieces follow each other unindented.
        assert_eq!(t[1..].concat(), url, "{t:#?}");
        assert!(t[1..].iter().all(|r| !r.starts_with(' ')), "{t:#?}");
        assert!(rows.iter().all(|r| row_width(r) <= 20));
        // A short URL that fits stays inline.
        let rows = wrap(&[seg("12:00 "), seg("go http://x.io now")], 40, 6);
        assert_eq!(texts(&rows), ["12:00 go http://x.io now"]);
        // A long word continues unindented too.
        let rows = wrap(
            &[seg("12:00 "), seg("a"), seg(" "), seg(&"x".repeat(30))],
            16,
            6,
        );
        let t = texts(&rows);
        assert_eq!(t.concat(), format!("12:00 a {}", "x".repeat(30)), "{t:#?}");
    }

    #[test]
    fn emoji_sequences_become_glyphs_every_terminal_agrees_on() {
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        assert_eq!(terminal_safe(family), "\u{1F468}\u{1F469}\u{1F467}");
        assert_eq!(safe_width(family), 6);
        assert_eq!(terminal_safe("ok \u{2764}\u{FE0F}!"), "ok \u{2764}!");
        assert_eq!(terminal_safe("\u{1F44D}\u{1F3FD}"), "\u{1F44D}");
        assert_eq!(terminal_safe("1\u{FE0F}\u{20E3}"), "1");
        // Flags, CJK, accents and Indic text with a ZWJ are left alone.
        for keep in [
            "\u{1F1EF}\u{1F1F5}",
            "小明",
            "e\u{301}",
            "क\u{94D}\u{200D}ष",
            "plain",
        ] {
            assert_eq!(terminal_safe(keep), keep);
        }
        assert!(matches!(terminal_safe("plain"), Cow::Borrowed(_)));
        // A combining mark with nothing before it is dropped.
        assert_eq!(terminal_safe("\u{301}x"), "x");
    }

    #[test]
    fn tones_are_kept_per_segment() {
        let rows = wrap(
            &[
                Seg {
                    text: "<bob> ".into(),
                    tone: Tone::Notice,
                },
                seg("hi"),
            ],
            80,
            0,
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0][0].tone, Tone::Notice);
        assert_eq!(rows[0][1].text, "hi");
    }
}
