//! Server operator blocks: a name, the host masks it may be used from and
//! an argon2 password hash (a PHC string, as `natter hash-password`
//! prints). Protocol sessions check `OPER name password` against them
//! outside the chat lock (hashing is slow on purpose); the hub only learns
//! that the check passed.
//!
//! Written as the `opers` setting, one block per `;`:
//! `NAME HOSTMASK HASH; NAME HOSTMASK HASH`, where HOSTMASK matches
//! `user@ip` (the ident as given, and the real address, not the cloak),
//! e.g. `*@127.0.0.1`; a mask without `@` matches the address alone. In
//! the TOML file the setting may also be an array of tables with keys
//! `name`, `host` and `password`.

use std::fmt;
use std::str::FromStr;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use serde::{Deserialize, Deserializer};

/// One oper block.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperBlock {
    pub name: String,
    /// Wildcard mask of `user@ip` (or of the ip alone).
    pub host: String,
    /// Argon2 PHC string of the password.
    pub password: String,
}

/// Every oper block (the `opers` setting).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Opers(pub Vec<OperBlock>);

/// Why an `OPER` was refused (all are answered alike, so as not to tell
/// which part was wrong).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperError {
    NoSuchBlock,
    WrongHost,
    WrongPassword,
}

impl Opers {
    /// The block names.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|b| b.name.clone()).collect()
    }

    /// Checks an `OPER` from someone with ident `user` at address `ip`.
    pub fn check(&self, name: &str, password: &str, user: &str, ip: &str) -> Result<(), OperError> {
        let block = self
            .0
            .iter()
            .find(|b| b.name == name)
            .ok_or(OperError::NoSuchBlock)?;
        let subject = match block.host.contains('@') {
            true => format!("{user}@{ip}"),
            false => ip.to_string(),
        };
        if !super::wildcard::matches(&block.host, &subject) {
            return Err(OperError::WrongHost);
        }
        match verify_password(password, &block.password) {
            true => Ok(()),
            false => Err(OperError::WrongPassword),
        }
    }
}

/// Whether `password` matches an argon2 PHC string (false for a malformed one).
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// An argon2id PHC string for `password`, with a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash: {e}"))
}

impl FromStr for Opers {
    type Err = String;

    /// `NAME HOSTMASK HASH; …`, or `none` for no blocks.
    fn from_str(s: &str) -> Result<Opers, String> {
        if matches!(s.trim(), "" | "none") {
            return Ok(Opers::default());
        }
        let mut blocks = Vec::new();
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let fields: Vec<&str> = part.split_whitespace().collect();
            let [name, host, password] = fields[..] else {
                return Err(format!(
                    "bad oper block {part:?}: expected NAME HOSTMASK HASH"
                ));
            };
            let block = OperBlock {
                name: name.into(),
                host: host.into(),
                password: password.into(),
            };
            block.validate()?;
            blocks.push(block);
        }
        Ok(Opers(blocks))
    }
}

impl OperBlock {
    fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name.contains(char::is_whitespace) {
            return Err(format!("bad oper name {:?}", self.name));
        }
        if PasswordHash::new(&self.password).is_err() {
            return Err(format!(
                "oper {}: the password must be an argon2 hash (natter hash-password prints one)",
                self.name
            ));
        }
        Ok(())
    }
}

impl fmt::Display for Opers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let blocks: Vec<String> = self
            .0
            .iter()
            .map(|b| format!("{} {} {}", b.name, b.host, b.password))
            .collect();
        f.write_str(&blocks.join("; "))
    }
}

impl<'de> Deserialize<'de> for Opers {
    /// A string as on the command line, or an array of tables.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Opers, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Text(String),
            Tables(Vec<OperBlock>),
        }
        match Form::deserialize(d)? {
            Form::Text(s) => s.parse().map_err(serde::de::Error::custom),
            Form::Tables(blocks) => {
                for b in &blocks {
                    b.validate().map_err(serde::de::Error::custom)?;
                }
                Ok(Opers(blocks))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_parse_and_check() {
        let hash = hash_password("sesame").unwrap();
        let opers: Opers = format!("root *@127.0.0.1 {hash}; far 10.* {hash}")
            .parse()
            .unwrap();
        assert_eq!(opers.names(), ["root", "far"]);
        assert_eq!(opers.check("root", "sesame", "~me", "127.0.0.1"), Ok(()));
        assert_eq!(
            opers.check("root", "wrong", "~me", "127.0.0.1"),
            Err(OperError::WrongPassword)
        );
        assert_eq!(
            opers.check("root", "sesame", "~me", "127.0.0.2"),
            Err(OperError::WrongHost)
        );
        assert_eq!(opers.check("far", "sesame", "x", "10.1.2.3"), Ok(()));
        assert_eq!(
            opers.check("nobody", "sesame", "x", "127.0.0.1"),
            Err(OperError::NoSuchBlock)
        );
        assert_eq!(opers.to_string().parse::<Opers>(), Ok(opers));
        assert_eq!("none".parse::<Opers>(), Ok(Opers::default()));
        assert!("root *@*".parse::<Opers>().is_err());
        assert!("root *@* plaintext"
            .parse::<Opers>()
            .unwrap_err()
            .contains("argon2"));
    }
}
