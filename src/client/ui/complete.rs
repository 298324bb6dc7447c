//! Tab completion for the input line: the word before the cursor is
//! completed from `/commands` (when it is the first word and starts with
//! `/`) or from the nicks in the room (a nick as the first word gets `: `
//! after it). Tab again cycles through the matches, Shift-Tab backwards.

use super::editor::Editor;

/// An ongoing completion: what the word was replaced with and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    start: usize,
    /// End of the text we inserted (the cursor, while cycling).
    end: usize,
    candidates: Vec<String>,
    index: usize,
}

/// Completes or cycles. `state` is the completion from the previous Tab
/// (clear it on any other key). Returns false if nothing matched.
pub fn complete(
    editor: &mut Editor,
    state: &mut Option<Completion>,
    nicks: &[String],
    commands: &[&str],
    backwards: bool,
) -> bool {
    if let Some(c) = state.as_mut().filter(|c| c.end == editor.cursor()) {
        let n = c.candidates.len();
        c.index = if backwards {
            (c.index + n - 1) % n
        } else {
            (c.index + 1) % n
        };
        editor.splice(c.start, c.end, &c.candidates[c.index]);
        c.end = editor.cursor();
        return true;
    }
    let text = editor.text();
    let cursor = editor.cursor();
    let start = text[..cursor].rfind(char::is_whitespace).map_or(0, |i| {
        i + text[i..].chars().next().map_or(1, char::len_utf8)
    });
    let word = &text[start..cursor];
    if word.is_empty() {
        return false;
    }
    let lower = word.to_lowercase();
    let candidates: Vec<String> = if start == 0 && word.starts_with('/') {
        commands
            .iter()
            .filter(|c| c.starts_with(lower.as_str()))
            .map(|c| format!("{c} "))
            .collect()
    } else {
        let suffix = if start == 0 { ": " } else { " " };
        let mut v: Vec<&String> = nicks
            .iter()
            .filter(|n| n.to_lowercase().starts_with(&lower))
            .collect();
        v.sort_by_key(|n| n.to_lowercase());
        v.into_iter().map(|n| format!("{n}{suffix}")).collect()
    };
    if candidates.is_empty() {
        *state = None;
        return false;
    }
    let index = if backwards { candidates.len() - 1 } else { 0 };
    editor.splice(start, cursor, &candidates[index]);
    *state = Some(Completion {
        start,
        end: editor.cursor(),
        candidates,
        index,
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nicks() -> Vec<String> {
        ["alice", "Albert", "bob", "小明"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn nicks_cycle_and_first_word_gets_a_colon() {
        let mut e = Editor::default();
        let mut st = None;
        e.insert("al");
        assert!(complete(&mut e, &mut st, &nicks(), &[], false));
        assert_eq!(e.text(), "Albert: ");
        assert!(complete(&mut e, &mut st, &nicks(), &[], false));
        assert_eq!(e.text(), "alice: ");
        assert!(complete(&mut e, &mut st, &nicks(), &[], false));
        assert_eq!(e.text(), "Albert: ");
        assert!(complete(&mut e, &mut st, &nicks(), &[], true));
        assert_eq!(e.text(), "alice: ");

        let mut e = Editor::default();
        let mut st = None;
        e.insert("hi 小 there");
        for _ in 0..6 {
            e.left();
        }
        assert!(complete(&mut e, &mut st, &nicks(), &[], false));
        assert_eq!(e.text(), "hi 小明  there");
        assert!(!complete(
            &mut Editor::default(),
            &mut None,
            &nicks(),
            &[],
            false
        ));
        let mut e = Editor::default();
        e.insert("zz");
        assert!(!complete(&mut e, &mut None, &nicks(), &[], false));
        assert_eq!(e.text(), "zz");
    }

    #[test]
    fn commands_complete_only_as_the_first_word() {
        let cmds = ["/join", "/me", "/msg"];
        let mut e = Editor::default();
        let mut st = None;
        e.insert("/m");
        assert!(complete(&mut e, &mut st, &nicks(), &cmds, false));
        assert_eq!(e.text(), "/me ");
        assert!(complete(&mut e, &mut st, &nicks(), &cmds, false));
        assert_eq!(e.text(), "/msg ");
        // Then a nick as the second word.
        st = None;
        e.insert("b");
        assert!(complete(&mut e, &mut st, &nicks(), &cmds, false));
        assert_eq!(e.text(), "/msg bob ");
        let mut e = Editor::default();
        e.insert("see /j");
        assert!(!complete(&mut e, &mut None, &nicks(), &cmds, false));
    }
}
