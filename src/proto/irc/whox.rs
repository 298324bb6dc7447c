//! IRCv3 WHOX: `WHO <mask> %<fields>[,<token>]` asks for chosen fields of
//! each person, answered with `354 RPL_WHOSPCRPL` (fields always in the
//! order `t c u i h s n f d l a o r`) instead of `352`. The session keeps
//! the fields of each WHO it sent until its answer is rendered.

use super::numerics::*;
use super::render::{chan, numeric, who_flags};
use super::Ctx;
use crate::proto::MemberInfo;

/// The order WHOX fields are answered in.
const ORDER: &str = "tcuihsnfdlaor";

/// The fields (and token) one WHO asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Whox {
    fields: String,
    token: String,
}

impl Whox {
    /// Reads `%fields[,token]`; `None` if it is not a WHOX request.
    pub fn parse(arg: &str) -> Option<Whox> {
        let rest = arg.strip_prefix('%')?;
        let (fields, token) = rest.split_once(',').unwrap_or((rest, ""));
        let fields: String = ORDER.chars().filter(|c| fields.contains(*c)).collect();
        // The token is 1 to 3 digits (it is echoed back).
        let token: String = token.chars().filter(char::is_ascii_digit).take(3).collect();
        let token = if token.is_empty() { "0".into() } else { token };
        Some(Whox { fields, token })
    }
}

/// One `354` per member of `room` (or of the people matched).
pub fn render(
    whox: &Whox,
    room: Option<&str>,
    members: &[MemberInfo],
    ctx: &Ctx,
    out: &mut Vec<u8>,
) {
    let room = room.map(chan);
    for m in members {
        let flags = who_flags(m, ctx.caps);
        let params: Vec<&str> = whox
            .fields
            .chars()
            .map(|f| match f {
                't' => whox.token.as_str(),
                'c' => room.as_deref().unwrap_or("*"),
                'u' => &m.user,
                'i' => "255.255.255.255", // addresses are never shown
                'h' => &m.host,
                's' => &ctx.info.name,
                'n' => &m.nick,
                'f' => flags.as_str(),
                'd' => "0",
                'l' => "0",
                'a' => m.account.as_deref().unwrap_or("0"), // 0: not logged in
                'o' => "n/a",
                _ => &m.realname, // 'r', the last
            })
            .collect();
        // The last field is sent as the trailing parameter (the real name
        // may hold spaces).
        numeric(out, ctx, RPL_WHOSPCRPL, &params);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_in_the_answer_order() {
        let w = Whox::parse("%rn,42").unwrap();
        assert_eq!((w.fields.as_str(), w.token.as_str()), ("nr", "42"));
        assert_eq!(Whox::parse("%tcuihsnfdlaor,123").unwrap().fields, ORDER);
        assert_eq!(Whox::parse("coolnick"), None);
    }
}
