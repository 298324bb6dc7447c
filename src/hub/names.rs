//! Rules for nicknames and room names, and the case folding that makes
//! `Alice` and `alice` the same person.

/// Characters besides letters and digits that a nick may contain (the IRC set).
const NICK_SPECIALS: &str = "_-[]\\`^{}|";

/// The comparison key of a nick or room: Unicode lower case (for ASCII,
/// which most names are, the same as ASCII lower case, made without
/// Unicode's tables).
pub fn fold(name: &str) -> String {
    match name.is_ascii() {
        true => name.to_ascii_lowercase(),
        false => name.to_lowercase(),
    }
}

/// [`fold`], borrowing `name` when it is folded already (ASCII with no
/// capital letter: most nicks), so that sorting by it allocates nothing.
pub fn folded(name: &str) -> std::borrow::Cow<'_, str> {
    match name
        .bytes()
        .all(|b| b.is_ascii() && !b.is_ascii_uppercase())
    {
        true => std::borrow::Cow::Borrowed(name),
        false => std::borrow::Cow::Owned(fold(name)),
    }
}

/// What a nick looks like (Unicode TR39 confusable skeleton of its folded
/// form, folded again): `alice`, `аlice` with a Cyrillic а, fullwidth
/// `Ａｌｉｃｅ` and mathematical `𝐚𝐥𝐢𝐜𝐞` all look like `alice`. Two people
/// may not hold nicks that look alike.
pub fn lookalike(nick: &str) -> String {
    if nick.is_ascii() {
        // ASCII is its own normal form: where every character's skeleton
        // is ASCII too, the skeleton is theirs, one by one.
        let table = ascii_skeletons();
        let mut out = String::with_capacity(nick.len() + 4);
        let all = nick.bytes().all(|b| {
            let one = table.get(usize::from(b.to_ascii_lowercase()));
            one.and_then(Option::as_deref)
                .map(|s| out.push_str(s))
                .is_some()
        });
        if all {
            out.make_ascii_lowercase();
            return out;
        }
    }
    let skeleton: String = unicode_security::skeleton(&fold(nick)).collect();
    fold(&skeleton)
}

/// The skeleton of each ASCII character where it is ASCII (`None` where
/// Unicode's tables map it to something else; made once).
fn ascii_skeletons() -> &'static [Option<String>] {
    static TABLE: std::sync::OnceLock<Vec<Option<String>>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0u8..128)
            .map(|b| {
                let s: String = unicode_security::skeleton(&char::from(b).to_string()).collect();
                s.is_ascii().then_some(s)
            })
            .collect()
    })
}

/// Checks a nickname; the error says what is wrong, for the user.
pub fn check_nick(nick: &str, max_chars: usize) -> Result<(), String> {
    let count = nick.chars().count();
    let first = nick
        .chars()
        .next()
        .ok_or_else(|| "a nickname cannot be empty".to_string())?;
    if count > max_chars {
        return Err(format!("a nickname has at most {max_chars} characters"));
    }
    if let Some(bad) = nick
        .chars()
        .find(|c| !(c.is_alphanumeric() || NICK_SPECIALS.contains(*c)))
    {
        return Err(if bad.is_whitespace() {
            "a nickname cannot contain spaces".to_string()
        } else if bad.is_control() || crate::proto::sanitize::is_unsafe(bad) {
            "a nickname cannot contain control characters".to_string()
        } else {
            format!("a nickname cannot contain {bad:?}; use letters, digits and _-[]\\`^{{}}|")
        });
    }
    if first.is_ascii_digit() || first == '-' {
        return Err("a nickname cannot start with a digit or '-'".to_string());
    }
    Ok(())
}

/// Normalises and checks a room name: an optional leading `#` is dropped.
pub fn check_room(room: &str, max_chars: usize) -> Result<&str, String> {
    let name = room.strip_prefix('#').unwrap_or(room);
    if name.is_empty() {
        return Err("a room name cannot be empty".to_string());
    }
    if name.chars().count() > max_chars {
        return Err(format!("a room name has at most {max_chars} characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || "-_.".contains(c))
    {
        return Err("a room name may contain letters, digits and -_. only".to_string());
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookalikes_share_a_key_and_others_do_not() {
        let alice = lookalike("alice");
        for twin in [
            "Alice",
            "\u{430}lice",
            "\u{FF21}\u{FF4C}\u{FF49}\u{FF43}\u{FF45}",
            "\u{1D4EA}\u{1D4F5}\u{1D4F2}\u{1D4EC}\u{1D4EE}",
        ] {
            assert_eq!(lookalike(twin), alice, "{twin}");
        }
        for other in ["alicia", "bob", "alice_", "\u{5C0F}\u{660E}"] {
            assert_ne!(lookalike(other), alice, "{other}");
        }
        assert_ne!(lookalike("\u{5C0F}\u{660E}"), lookalike("\u{5C0F}\u{7EA2}"));
    }

    #[test]
    fn nicks() {
        assert!(check_nick("alice", 30).is_ok());
        assert!(check_nick("小明", 30).is_ok());
        assert!(check_nick("[bot]_x|y", 30).is_ok());
        assert!(check_nick("", 30).is_err());
        assert!(check_nick("a b", 30).unwrap_err().contains("spaces"));
        assert!(check_nick("a\u{1b}[31m", 30)
            .unwrap_err()
            .contains("control"));
        assert!(check_nick("9lives", 30).is_err());
        assert!(check_nick("#room", 30).is_err());
        assert!(check_nick(&"x".repeat(31), 30).is_err());
        assert!(check_nick(&"字".repeat(30), 30).is_ok());
        assert_eq!(fold("Alice"), fold("aLICE"));
        assert_eq!(fold("ÉLODIE"), "élodie");
    }

    #[test]
    fn folded_borrows_only_what_fold_leaves_alone() {
        for name in [
            "b123",
            "alice",
            "[bot]_x|y",
            "Alice",
            "ÉLODIE",
            "élodie",
            "ΣΑΣ",
            "小明",
        ] {
            let f = folded(name);
            assert_eq!(f, fold(name), "{name}");
            let borrowed = matches!(f, std::borrow::Cow::Borrowed(_));
            assert_eq!(borrowed, name.is_ascii() && fold(name) == name, "{name}");
        }
    }

    /// Folding ASCII without Unicode's tables gives what they give, for
    /// every ASCII character in every place.
    #[test]
    fn ascii_folds_as_unicode_does() {
        for b in 0u8..0x80 {
            let c = char::from(b);
            let name = format!("{c}a{c}Z{c}");
            assert_eq!(fold(&name), name.to_lowercase(), "{b:#x}");
        }
    }

    /// The ASCII shortcut gives what the full Unicode path gives, for
    /// every printable ASCII pair.
    #[test]
    fn ascii_lookalikes_are_the_unicode_skeleton() {
        let ascii = ascii_skeletons();
        assert!((b'a'..=b'z').all(|b| ascii[usize::from(b)].is_some()));
        assert!((b'0'..=b'9').all(|b| ascii[usize::from(b)].is_some()));
        let slow = |n: &str| {
            let skeleton: String = unicode_security::skeleton(&fold(n)).collect();
            fold(&skeleton)
        };
        for a in 0x20u8..0x7f {
            for b in 0x20u8..0x7f {
                let n = String::from_utf8(vec![a, b, b'x', a]).unwrap();
                assert_eq!(lookalike(&n), slow(&n), "{n:?}");
            }
        }
    }

    #[test]
    fn lookalikes_share_a_skeleton() {
        let alice = lookalike("alice");
        for twin in ["аlice", "Ａｌｉｃｅ", "𝐚𝐥𝐢𝐜𝐞", "ALICE", "a\u{200b}lice"]
        {
            assert_eq!(lookalike(twin), alice, "{twin}");
        }
        assert_ne!(lookalike("alicia"), alice);
        assert_ne!(lookalike("小明"), lookalike("小红"));
    }

    #[test]
    fn rooms() {
        assert_eq!(check_room("#rust", 50), Ok("rust"));
        assert_eq!(check_room("中文", 50), Ok("中文"));
        assert!(check_room("#", 50).is_err());
        assert!(check_room("a room", 50).is_err());
        assert!(check_room("a,b", 50).is_err());
    }
}
