//! SCRAM-SHA-256 (RFC 5802 with RFC 7677's hash), the server's side and
//! the little a client needs (for tests and clients): pure functions over
//! the messages. The server keeps only [`Credentials`] (salt, iteration
//! count, StoredKey, ServerKey), never the password; deriving them costs
//! one PBKDF2 run, done when the account is created.
//!
//! Channel binding is not offered: a client must send the `n` or `y` GS2
//! flag (`p=…` is refused).

use base64ct::{Base64, Encoding};
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

type HmacSha256 = hmac::Hmac<Sha256>;

/// PBKDF2 rounds for new credentials (RFC 7677's minimum).
pub const ITERATIONS: u32 = 4096;

/// What the server keeps to check a SCRAM-SHA-256 login.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials { .. }") // keys stay out of logs
    }
}

/// Why a SCRAM exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message")]
    Malformed,
    #[error("channel binding is not supported")]
    ChannelBinding,
    #[error("the nonce does not match")]
    Nonce,
    #[error("wrong password")]
    Proof,
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length: this cannot fail.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, iterations).
pub fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations.max(1), &mut out);
    out
}

/// ClientKey = HMAC(SaltedPassword, "Client Key").
pub fn client_key(salted: &[u8]) -> Vec<u8> {
    hmac(salted, b"Client Key")
}

/// The server's credentials for `password` with this salt.
pub fn derive(password: &[u8], salt: &[u8], iterations: u32) -> Credentials {
    let salted = salted_password(password, salt, iterations);
    Credentials {
        salt: salt.to_vec(),
        iterations,
        stored_key: Sha256::digest(client_key(&salted)).to_vec(),
        server_key: hmac(&salted, b"Server Key"),
    }
}

/// Equal, in time that depends only on the lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `=2C` and `=3D` in a SCRAM username back to `,` and `=`.
fn unescape(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The client's first message, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// The GS2 header (`n,,`), which `c=` must repeat.
    pub gs2_header: String,
    /// The message without the header (part of what both sides sign).
    pub bare: String,
    /// The username (the account).
    pub user: String,
    pub nonce: String,
}

/// Reads `n,,n=user,r=nonce`.
pub fn parse_client_first(msg: &str) -> Result<ClientFirst, ScramError> {
    let mut parts = msg.splitn(3, ',');
    let (flag, authzid, bare) = match (parts.next(), parts.next(), parts.next()) {
        (Some(f), Some(a), Some(b)) => (f, a, b),
        _ => return Err(ScramError::Malformed),
    };
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err(ScramError::ChannelBinding),
        _ => return Err(ScramError::Malformed),
    }
    if !(authzid.is_empty() || authzid.starts_with("a=")) {
        return Err(ScramError::Malformed);
    }
    let mut user = None;
    let mut nonce = None;
    for attr in bare.split(',') {
        match attr.split_once('=') {
            Some(("n", u)) => user = Some(unescape(u)?),
            Some(("r", r)) => nonce = Some(r.to_string()),
            Some(("m", _)) => return Err(ScramError::Malformed), // mandatory extensions: none known
            _ => {}
        }
    }
    let (Some(user), Some(nonce)) = (user, nonce) else {
        return Err(ScramError::Malformed);
    };
    let wanted = authzid.strip_prefix("a=").map(unescape).transpose()?;
    if user.is_empty() || nonce.is_empty() || wanted.is_some_and(|a| a != user) {
        return Err(ScramError::Malformed);
    }
    Ok(ClientFirst {
        gs2_header: format!("{flag},{authzid},"),
        bare: bare.to_string(),
        user,
        nonce,
    })
}

/// The server's first message: `r=<client nonce><server nonce>,s=<salt>,i=<n>`.
pub fn server_first(client: &ClientFirst, server_nonce: &str, creds: &Credentials) -> String {
    format!(
        "r={}{server_nonce},s={},i={}",
        client.nonce,
        Base64::encode_string(&creds.salt),
        creds.iterations
    )
}

/// Checks the client's final message; on success returns the server's
/// final message (`v=<server signature>`).
pub fn verify_client_final(
    msg: &str,
    client: &ClientFirst,
    server_first: &str,
    creds: &Credentials,
) -> Result<String, ScramError> {
    let (without_proof, proof) = msg.rsplit_once(",p=").ok_or(ScramError::Malformed)?;
    let mut binding = None;
    let mut nonce = None;
    for attr in without_proof.split(',') {
        match attr.split_once('=') {
            Some(("c", c)) => binding = Some(c),
            Some(("r", r)) => nonce = Some(r),
            _ => {}
        }
    }
    let (Some(binding), Some(nonce)) = (binding, nonce) else {
        return Err(ScramError::Malformed);
    };
    let sent_nonce = server_first
        .strip_prefix("r=")
        .and_then(|r| r.split(',').next())
        .ok_or(ScramError::Malformed)?;
    if nonce != sent_nonce {
        return Err(ScramError::Nonce);
    }
    let header = Base64::decode_vec(binding).map_err(|_| ScramError::Malformed)?;
    if header != client.gs2_header.as_bytes() {
        return Err(ScramError::ChannelBinding);
    }
    let proof = Base64::decode_vec(proof).map_err(|_| ScramError::Malformed)?;
    let auth_message = format!("{},{server_first},{without_proof}", client.bare);
    let signature = hmac(&creds.stored_key, auth_message.as_bytes());
    if proof.len() != signature.len() {
        return Err(ScramError::Proof);
    }
    let key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
    if !same(&Sha256::digest(&key), &creds.stored_key) {
        return Err(ScramError::Proof);
    }
    let server_signature = hmac(&creds.server_key, auth_message.as_bytes());
    Ok(format!("v={}", Base64::encode_string(&server_signature)))
}

/// A client's final message for `password` (clients and tests): the
/// answer to `server_first` after `client_first_bare` was sent with GS2
/// header `n,,`.
pub fn client_final(
    password: &str,
    client_first_bare: &str,
    server_first: &str,
) -> Result<String, ScramError> {
    let mut nonce = None;
    let mut salt = None;
    let mut iterations = None;
    for attr in server_first.split(',') {
        match attr.split_once('=') {
            Some(("r", r)) => nonce = Some(r),
            Some(("s", s)) => salt = Base64::decode_vec(s).ok(),
            Some(("i", i)) => iterations = i.parse::<u32>().ok(),
            _ => {}
        }
    }
    let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
        return Err(ScramError::Malformed);
    };
    let without_proof = format!("c={},r={nonce}", Base64::encode_string(b"n,,"));
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let salted = salted_password(password.as_bytes(), &salt, iterations);
    let key = client_key(&salted);
    let signature = hmac(&Sha256::digest(&key), auth_message.as_bytes());
    let proof: Vec<u8> = key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
    Ok(format!(
        "{without_proof},p={}",
        Base64::encode_string(&proof)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example exchange.
    #[test]
    fn rfc7677_example() {
        let salt = Base64::decode_vec("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let creds = derive(b"pencil", &salt, 4096);
        let first = parse_client_first("n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(first.user, "user");
        let sf = server_first(&first, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", &creds);
        assert_eq!(
            sf,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let cf = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                  p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let v = verify_client_final(cf, &first, &sf, &creds).unwrap();
        assert_eq!(v, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
        assert_eq!(client_final("pencil", &first.bare, &sf).unwrap(), cf);
        let wrong = client_final("pencils", &first.bare, &sf).unwrap();
        assert_eq!(
            verify_client_final(&wrong, &first, &sf, &creds),
            Err(ScramError::Proof)
        );
    }

    #[test]
    fn bad_first_messages_are_refused() {
        for bad in ["", "n,,", "x,,n=a,r=b", "n,,n=a", "n,,r=b", "n,a=b,n=a,r=c"] {
            assert!(parse_client_first(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_client_first("p=tls-unique,,n=a,r=b"),
            Err(ScramError::ChannelBinding)
        );
        assert_eq!(parse_client_first("n,,n=a=2Cb,r=x").unwrap().user, "a,b");
        assert!(parse_client_first("n,,n=a=2,r=x").is_err());
    }
}
