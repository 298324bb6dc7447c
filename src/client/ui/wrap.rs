//! Wraps a toned line into rows of at most `width` terminal columns:
//! measured per grapheme with unicode-width (a CJK character takes two
//! columns and is never split), breaking after a space where one is
//! available, and indenting continuation rows (under the time stamp).

use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use crate::client::format::{Seg, Tone};

/// One screen row: segments whose widths add up to at most the width.
pub type Row = Vec<Seg>;

/// Splits `segs` into rows `width` columns wide; rows after the first
/// start with `indent` spaces.
pub fn wrap(segs: &[Seg], width: usize, indent: usize) -> Vec<Row> {
    let width = width.max(1);
    let indent = if indent * 2 > width { 0 } else { indent };
    // Graphemes per row; `None` text is the indent of a continuation row.
    let mut rows: Vec<Vec<(Option<&str>, Tone, usize)>> = vec![Vec::new()];
    let mut used = 0;
    for seg in segs {
        for g in seg.text.graphemes(true) {
            let w = g.width();
            let Some(row) = rows.last_mut() else {
                break; // never: `rows` starts with one row and only grows
            };
            let bare = row.iter().all(|(g, ..)| g.is_none());
            if used + w <= width || bare {
                row.push((Some(g), seg.tone, w));
                used += w;
                continue;
            }
            // Does not fit: start a new row, taking the last word along
            // when it then fits (not for CJK text, which may break anywhere).
            let mut next = Vec::new();
            if indent > 0 {
                next.push((None, Tone::Plain, indent));
            }
            if g != " " {
                let wide = w > 1 || row.last().is_some_and(|(.., w)| *w > 1);
                if let Some(sp) = row
                    .iter()
                    .rposition(|(g, ..)| *g == Some(" "))
                    .filter(|_| !wide)
                {
                    let moved: usize = row[sp + 1..].iter().map(|(.., w)| w).sum();
                    if sp + 1 < row.len() && indent + moved + w <= width {
                        next.extend(row.drain(sp + 1..));
                    }
                }
                next.push((Some(g), seg.tone, w));
            }
            used = next.iter().map(|(.., w)| w).sum();
            rows.push(next);
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
