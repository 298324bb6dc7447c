//! Keeps terminal control out of what users send: nothing a client sends can
//! move a cursor, change colours, retitle a window or reorder text.

/// Removes escape sequences (CSI, OSC, two-byte ESC), C0/C1 control
/// characters and bidirectional overrides; a tab becomes a space.
pub fn strip_controls(input: &str) -> String {
    // The usual line, printable ASCII only, has nothing to remove.
    if input.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return input.to_string();
    }
    let mut out = String::with_capacity(input.len());
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates, then one final byte 0x40..=0x7E
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC / DCS / PM / APC / SOS: up to BEL or ST (ESC \)
                Some(']' | 'P' | '^' | '_' | 'X') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' {
                            if chars.peek() == Some(&'\\') {
                                chars.next();
                            }
                            break;
                        }
                    }
                }
                _ => {} // ESC plus one character
            },
            '\t' => out.push(' '),
            c if is_unsafe(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// True for characters that must never reach a terminal from a user.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() // C0, DEL, C1
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_sequences_and_controls() {
        assert_eq!(strip_controls("\u{1b}[31mred\u{1b}[0m"), "red");
        assert_eq!(strip_controls("a\u{1b}]0;title\u{7}b"), "ab");
        assert_eq!(strip_controls("a\u{1b}]0;t\u{1b}\\b"), "ab");
        assert_eq!(strip_controls("x\u{1b}cy"), "xy");
        assert_eq!(strip_controls("bell\u{7}\u{8}\u{9b}2J"), "bell2J");
        assert_eq!(strip_controls("tab\there"), "tab here");
        assert_eq!(strip_controls("evil\u{202e}txt"), "eviltxt");
        assert_eq!(strip_controls("你好 héllo 👋"), "你好 héllo 👋");
    }
}
