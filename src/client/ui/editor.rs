//! The input line: a single-line editor whose cursor moves by grapheme
//! (so `é` made of two code points, or a CJK character, is one step), and
//! whose view scrolls sideways to keep the cursor visible, measured in
//! terminal columns (a CJK character is two). Also the input history
//! ([`History`]). Pure data; no terminal code.

use unicode_segmentation::UnicodeSegmentation;

use super::wrap::safe_width;

/// One line of text and a cursor (a byte offset on a grapheme boundary).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Editor {
    text: String,
    cursor: usize,
}

/// Display width of `s` in terminal columns, as drawn (emoji sequences
/// split as [`terminal_safe`](super::wrap::terminal_safe) splits them).
pub fn width(s: &str) -> usize {
    s.graphemes(true).map(safe_width).sum()
}

impl Editor {
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The cursor as a byte offset into [`text`](Self::text).
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Inserts at the cursor. Line breaks become spaces; other control
    /// characters are dropped (they would corrupt the display).
    pub fn insert(&mut self, s: &str) {
        let clean: String = s
            .chars()
            .filter(|&c| c != '\r')
            .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
            .filter(|c| !c.is_control())
            .collect();
        self.text.insert_str(self.cursor, &clean);
        self.cursor += clean.len();
    }

    fn prev(&self) -> Option<usize> {
        let g = self.text[..self.cursor].graphemes(true).next_back()?;
        Some(self.cursor - g.len())
    }

    fn next(&self) -> Option<usize> {
        let g = self.text[self.cursor..].graphemes(true).next()?;
        Some(self.cursor + g.len())
    }

    pub fn backspace(&mut self) {
        if let Some(p) = self.prev() {
            self.text.replace_range(p..self.cursor, "");
            self.cursor = p;
        }
    }

    pub fn delete(&mut self) {
        if let Some(n) = self.next() {
            self.text.replace_range(self.cursor..n, "");
        }
    }

    pub fn left(&mut self) {
        if let Some(p) = self.prev() {
            self.cursor = p;
        }
    }

    pub fn right(&mut self) {
        if let Some(n) = self.next() {
            self.cursor = n;
        }
    }

    pub fn home(&mut self) {
        self.cursor = 0;
    }

    pub fn end(&mut self) {
        self.cursor = self.text.len();
    }

    /// Ctrl-U: delete everything before the cursor.
    pub fn kill_to_start(&mut self) {
        self.text.replace_range(..self.cursor, "");
        self.cursor = 0;
    }

    /// Ctrl-K: delete everything after the cursor.
    pub fn kill_to_end(&mut self) {
        self.text.truncate(self.cursor);
    }

    /// Ctrl-W: delete the word before the cursor (and spaces after it).
    pub fn delete_word(&mut self) {
        let before = &self.text[..self.cursor];
        let trimmed = before.trim_end();
        let start = trimmed.rfind(char::is_whitespace).map_or(0, |i| {
            i + trimmed[i..].chars().next().map_or(1, char::len_utf8)
        });
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Replaces the text; the cursor goes to the end.
    pub fn set(&mut self, text: &str) {
        self.text = text.to_string();
        self.cursor = self.text.len();
    }

    /// Replaces `start..end` (byte offsets on char boundaries) with `with`
    /// and puts the cursor after it.
    pub fn splice(&mut self, start: usize, end: usize, with: &str) {
        self.text.replace_range(start..end, with);
        self.cursor = start + with.len();
    }

    /// Empties the editor, returning what it held.
    pub fn take(&mut self) -> String {
        self.cursor = 0;
        std::mem::take(&mut self.text)
    }

    /// What a field `cols` columns wide shows: the visible slice and the
    /// cursor's column in it. Scrolls so the cursor stays visible.
    pub fn view(&self, cols: usize) -> (&str, usize) {
        if cols == 0 {
            return ("", 0);
        }
        let mut start = 0;
        // The cursor needs a cell of its own: at most cols-1 columns before it.
        let mut before = width(&self.text[..self.cursor]);
        let mut graphemes = self.text[..self.cursor].grapheme_indices(true);
        while before >= cols {
            match graphemes.next() {
                Some((i, g)) => {
                    before -= safe_width(g);
                    start = i + g.len();
                }
                None => break,
            }
        }
        let mut end = start;
        let mut used = 0;
        for (i, g) in self.text[start..].grapheme_indices(true) {
            let w = safe_width(g);
            if used + w > cols {
                break;
            }
            used += w;
            end = start + i + g.len();
        }
        (&self.text[start..end], before)
    }
}

/// What was typed before, for Up/Down. Bounded; skips repeats.
#[derive(Debug, Clone)]
pub struct History {
    entries: Vec<String>,
    /// Browsing: the entry shown.
    pos: Option<usize>,
    /// What was being typed when browsing began.
    draft: String,
    cap: usize,
}

impl History {
    pub fn new(cap: usize) -> History {
        History {
            entries: Vec::new(),
            pos: None,
            draft: String::new(),
            cap: cap.max(1),
        }
    }

    /// Remembers a submitted line and stops browsing.
    pub fn push(&mut self, line: &str) {
        self.pos = None;
        if line.trim().is_empty() || self.entries.last().is_some_and(|l| l == line) {
            return;
        }
        if self.entries.len() == self.cap {
            self.entries.remove(0);
        }
        self.entries.push(line.to_string());
    }

    /// Up: the previous entry (`current` is kept as the draft).
    pub fn up(&mut self, current: &str) -> Option<&str> {
        let pos = match self.pos {
            None if self.entries.is_empty() => return None,
            None => {
                self.draft = current.to_string();
                self.entries.len() - 1
            }
            Some(0) => return None,
            Some(i) => i - 1,
        };
        self.pos = Some(pos);
        self.entries.get(pos).map(String::as_str)
    }

    /// Down: the next entry, and after the newest, the draft again.
    pub fn down(&mut self) -> Option<String> {
        let i = self.pos?;
        if i + 1 < self.entries.len() {
            self.pos = Some(i + 1);
            return self.entries.get(i + 1).cloned();
        }
        self.pos = None;
        Some(std::mem::take(&mut self.draft))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_by_grapheme() {
        let mut e = Editor::default();
        e.insert("hé\u{301}llo 世界");
        assert_eq!(e.text(), "hé\u{301}llo 世界");
        e.backspace();
        assert_eq!(e.text(), "hé\u{301}llo 世");
        e.home();
        e.right();
        e.right(); // over "é+combining acute" in one step
        e.delete();
        assert_eq!(e.text(), "hé\u{301}lo 世");
        e.insert("X\n\x07Y");
        assert_eq!(e.text(), "hé\u{301}X Ylo 世");
        e.kill_to_end();
        assert_eq!(e.text(), "hé\u{301}X Y");
        e.delete_word();
        assert_eq!(e.text(), "hé\u{301}X ");
        e.delete_word();
        assert_eq!(e.text(), "");
        e.set("one two");
        e.left();
        e.left();
        e.left();
        e.kill_to_start();
        assert_eq!((e.text(), e.cursor()), ("two", 0));
        assert_eq!(e.take(), "two");
        assert!(e.is_empty());
    }

    #[test]
    fn view_scrolls_by_columns_with_wide_chars() {
        let mut e = Editor::default();
        e.insert("你好世界abc");
        // 4 wide chars (8 cols) + 3 = 11 columns, cursor at the end.
        assert_eq!(e.view(20), ("你好世界abc", 11));
        let (shown, col) = e.view(6);
        assert!(width(shown) <= 6 && col < 6, "{shown:?} {col}");
        assert!(shown.ends_with("abc"));
        e.home();
        assert_eq!(e.view(5), ("你好", 0));
        e.right();
        e.right();
        e.right();
        let (shown, col) = e.view(5);
        assert!(
            shown.starts_with('好') || shown.starts_with('世'),
            "{shown}"
        );
        assert!(col < 5);
        assert_eq!(e.view(0), ("", 0));
    }

    #[test]
    fn history_browses_and_restores_the_draft() {
        let mut h = History::new(3);
        assert_eq!(h.up("x"), None);
        for l in ["one", "two", "two", "three", "four"] {
            h.push(l);
        }
        assert_eq!(h.up("draft"), Some("four"));
        assert_eq!(h.up(""), Some("three"));
        assert_eq!(h.up(""), Some("two"));
        assert_eq!(h.up(""), None); // "one" fell off (cap 3)
        assert_eq!(h.down().as_deref(), Some("three"));
        assert_eq!(h.down().as_deref(), Some("four"));
        assert_eq!(h.down().as_deref(), Some("draft"));
        assert_eq!(h.down(), None);
    }
}
