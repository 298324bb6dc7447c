//! The vocabulary of accounts, shared by every protocol: what a session
//! asks of the accounts ([`AccountRequest`], answered later by events,
//! since checking a password is slow work done off the chat), and what the
//! hub tells about accounts ([`AccountEvent`]). Passwords never appear in
//! `Debug` output, so never in logs.

use std::sync::Arc;

use super::scram::Credentials;
use super::{ErrorCode, Name};

/// A password that does not show itself in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Password {
        Password(s.to_string())
    }
}

/// What a session asks of the accounts. The answer comes as an
/// [`AccountEvent`] or a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountRequest {
    /// Create an account named after the current nick, and log in to it.
    Register { password: Password },
    /// Log in to `account` with a password.
    Login { account: String, password: Password },
    /// SCRAM: the stored credentials of `account` are wanted (answered
    /// with [`AccountEvent::Challenge`]).
    ScramLookup { account: String },
    /// SCRAM: the session checked the client's proof for `account`; log in
    /// (`ok`) or count a failure.
    ScramDone { account: String, ok: bool },
}

/// Whether a refusal with this code answers a login (rather than
/// something else the client asked for).
pub fn answers_login(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::AuthFailed | ErrorCode::Throttled | ErrorCode::StoreFailed
    )
}

/// Whether `body` answers an [`AccountRequest`]: a login (or a new
/// account), SCRAM credentials, or a refusal of the kinds requests get.
pub fn answers_request(body: &super::EventBody) -> bool {
    use super::EventBody;
    match body {
        EventBody::Account(AccountEvent::LoggedIn { .. } | AccountEvent::Challenge { .. }) => true,
        EventBody::Refused(r) => {
            answers_login(r.code)
                || matches!(
                    r.code,
                    ErrorCode::AccountExists | ErrorCode::BadPassword | ErrorCode::NotRegistered
                )
        }
        _ => false,
    }
}

/// What the hub tells about accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountEvent {
    /// You are logged in to `account` (`created`: it was just made).
    LoggedIn {
        account: Name,
        nick: Option<Name>,
        created: bool,
    },
    /// SCRAM credentials of `account`, for this session's exchange only
    /// (IRC; nothing is shown).
    Challenge {
        account: Name,
        credentials: Arc<Credentials>,
    },
    /// `nick` logged in to `account` (IRC `account-notify`, to the
    /// people who share a room with them).
    Changed { nick: Name, account: Option<Name> },
    /// Your nick is registered to an account you are not logged in to:
    /// log in within `grace_secs` seconds or be renamed.
    NickProtected { nick: Name, grace_secs: u64 },
    /// You were renamed from `old` because it belongs to an account.
    Renamed { old: Name, new: Name },
    /// `room` is registered, with `founder` as its founder.
    RoomRegistered { room: Name, founder: Name },
}
