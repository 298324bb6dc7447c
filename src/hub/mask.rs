//! IRC-style masks (`nick!user@host` with `*` and `?` wildcards) for room
//! bans and `WHO`: normalising what an operator typed, and matching.

/// Completes a ban mask: `bob` → `bob!*@*`, `*@host` → `*!*@host`,
/// `bob!u` → `bob!u@*`. `None` if it is empty, longer than `max_len`
/// bytes, or has spaces or controls.
pub fn normalize(mask: &str, max_len: usize) -> Option<String> {
    if mask.is_empty()
        || mask.len() > max_len
        || mask
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ',')
    {
        return None;
    }
    Some(match (mask.contains('!'), mask.contains('@')) {
        (true, true) => mask.to_string(),
        (false, true) => format!("*!{mask}"),
        (true, false) => format!("{mask}@*"),
        (false, false) => format!("{mask}!*@*"),
    })
}

pub use crate::proto::wildcard::matches;

#[cfg(test)]
mod tests {
    use super::*;

    /// From the CC0 ircdocs/parser-tests `mask-match.yaml` vectors.
    #[test]
    fn parser_tests_mask_match() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            (
                "*@127.0.0.1",
                &["coolguy!ab@127.0.0.1", "cooldud3!~bc@127.0.0.1"],
                &["coolguy!ab@127.0.0.5", "cooldud3!~d@124.0.0.1"],
            ),
            (
                "cool*@*",
                &[
                    "coolguy!ab@127.0.0.1",
                    "cooldud3!~bc@127.0.0.1",
                    "cool132!ab@example.com",
                ],
                &["koolguy!ab@127.0.0.5", "cooodud3!~d@124.0.0.1"],
            ),
            (
                "cool!*@*",
                &[
                    "cool!guyab@127.0.0.1",
                    "cool!~dudebc@127.0.0.1",
                    "cool!312ab@example.com",
                ],
                &[
                    "coolguy!ab@127.0.0.1",
                    "cooldud3!~bc@127.0.0.1",
                    "koolguy!ab@127.0.0.5",
                    "cooodud3!~d@124.0.0.1",
                ],
            ),
            (
                "cool!?username@*",
                &["cool!ausername@127.0.0.1", "cool!~username@127.0.0.1"],
                &["cool!username@127.0.0.1"],
            ),
            (
                "cool!a?*@*",
                &["cool!ab@127.0.0.1", "cool!abc@127.0.0.1"],
                &["cool!a@127.0.0.1"],
            ),
            (
                "cool[guy]!*@*",
                &["cool[guy]!guy@127.0.0.1", "cool[guy]!a@example.com"],
                &["coolg!ab@127.0.0.1", "cool[!ac@127.0.1.1"],
            ),
        ];
        for (mask, yes, no) in cases {
            for s in *yes {
                assert!(matches(mask, s), "{mask} should match {s}");
            }
            for s in *no {
                assert!(!matches(mask, s), "{mask} should not match {s}");
            }
        }
    }

    #[test]
    fn normalizes_and_folds() {
        assert_eq!(normalize("bob", 100).as_deref(), Some("bob!*@*"));
        assert_eq!(normalize("*@h.ip", 100).as_deref(), Some("*!*@h.ip"));
        assert_eq!(normalize("b!u", 100).as_deref(), Some("b!u@*"));
        assert_eq!(normalize("a b", 100), None);
        assert_eq!(normalize("", 100), None);
        assert!(matches("BOB!*@*", "bob!~b@x"));
        assert!(matches("Élodie!*@*", "élodie!u@h"));
    }
}
