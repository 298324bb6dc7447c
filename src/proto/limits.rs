//! Sizes of what people may write, the same for every protocol: the chat
//! core cuts and checks with them, IRC advertises them in ISUPPORT.

/// Longest topic in bytes (IRC `TOPICLEN`); longer ones are cut.
pub const TOPIC_LEN: usize = 390;
/// Longest kick, part and quit reason in bytes (IRC `KICKLEN`).
pub const REASON_LEN: usize = 255;
/// Longest away message in bytes (IRC `AWAYLEN`).
pub const AWAY_LEN: usize = 200;
/// Longest room key in bytes (IRC `KEYLEN`).
pub const KEY_LEN: usize = 32;
/// Most bans per room (IRC `MAXLIST=b:`).
pub const MAX_BANS: usize = 100;
/// Longest ban mask in bytes.
pub const BAN_MASK_LEN: usize = 100;
