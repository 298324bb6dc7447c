//! Colour choices shared by both front ends: a stable colour per nickname
//! (FNV-1a hash of the lower-cased nick, so it is the same on every run and
//! machine) and the `NO_COLOR` convention.

/// The colours nicknames are drawn in (readable on dark and light themes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hue {
    Red,
    Green,
    Yellow,
    Blue,
    Magenta,
    Cyan,
    LightRed,
    LightGreen,
    LightYellow,
    LightBlue,
    LightMagenta,
    LightCyan,
}

const PALETTE: [Hue; 12] = [
    Hue::Red,
    Hue::Green,
    Hue::Yellow,
    Hue::Blue,
    Hue::Magenta,
    Hue::Cyan,
    Hue::LightRed,
    Hue::LightGreen,
    Hue::LightYellow,
    Hue::LightBlue,
    Hue::LightMagenta,
    Hue::LightCyan,
];

impl Hue {
    /// The ANSI SGR foreground code.
    pub fn sgr(self) -> u8 {
        match self {
            Hue::Red => 31,
            Hue::Green => 32,
            Hue::Yellow => 33,
            Hue::Blue => 34,
            Hue::Magenta => 35,
            Hue::Cyan => 36,
            Hue::LightRed => 91,
            Hue::LightGreen => 92,
            Hue::LightYellow => 93,
            Hue::LightBlue => 94,
            Hue::LightMagenta => 95,
            Hue::LightCyan => 96,
        }
    }
}

/// The colour of `nick`: the same for the same nick ignoring case.
pub fn nick_hue(nick: &str) -> Hue {
    let mut h: u32 = 0x811c_9dc5;
    for b in nick.to_lowercase().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    PALETTE[h as usize % PALETTE.len()]
}

/// True if the user asked for no colour (`NO_COLOR` set and not empty).
pub fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nick_colours_are_stable_and_spread() {
        assert_eq!(nick_hue("alice"), nick_hue("ALICE"));
        assert_eq!(nick_hue("alice"), nick_hue("alice"));
        let nicks = ["alice", "bob", "carol", "dave", "erin", "frank", "小明"];
        let hues: std::collections::HashSet<_> = nicks.iter().map(|n| nick_hue(n)).collect();
        assert!(hues.len() >= 4, "{hues:?}");
    }
}
