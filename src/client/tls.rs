//! Where `natter chat` connects and whether over TLS: addresses with a
//! scheme (`ircs://host:6697`, `irc://host`, `tls://host:7777`) or plain
//! `HOST:PORT` with `--tls`, and the TLS client configuration: the system's
//! root certificates (rustls-native-certs: the operating system's own
//! store, so a CA the administrator added is trusted and nothing stale is
//! compiled in), or only the CA in `--ca FILE`, or, with `--insecure`, no
//! verification at all (said loudly).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;

/// Where to connect, as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port` for the socket.
    pub addr: String,
    /// The host name the certificate must be for.
    pub host: String,
    /// Speak IRC (else natter's JSON lines).
    pub irc: bool,
    pub tls: bool,
}

/// Reads an address: `ircs://HOST[:PORT]` (IRC over TLS, port 6697 by
/// default), `irc://HOST[:PORT]` (6667), `tls://HOST[:PORT]` (JSON over
/// TLS, 7777) or `HOST:PORT` (IRC if `irc`, TLS if `tls`).
pub fn parse_target(s: &str, irc: bool, tls: bool) -> anyhow::Result<Target> {
    let (rest, irc, tls, port) = match s.split_once("://") {
        Some(("ircs", rest)) => (rest, true, true, 6697),
        Some(("irc", rest)) => (rest, true, tls, 6667),
        Some(("tls", rest)) => (rest, irc, true, 7777),
        Some((scheme, _)) => {
            anyhow::bail!("unknown scheme {scheme}:// in {s:?} (ircs://, irc://, tls://)")
        }
        None => (s, irc, tls, 0),
    };
    let rest = rest.trim_end_matches('/');
    // `[::1]:6697`, `host:6697`, `host`.
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && p.chars().all(|c| c.is_ascii_digit()) => {
            let p: u16 = p.parse().with_context(|| format!("bad port in {s:?}"))?;
            (h.to_string(), p)
        }
        _ if port != 0 => (rest.to_string(), port),
        _ => anyhow::bail!("no port in {s:?} (HOST:PORT)"),
    };
    if host.is_empty() {
        anyhow::bail!("no host in {s:?}");
    }
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok(Target {
        addr: format!("{host}:{port}"),
        host: bare,
        irc,
        tls,
    })
}

/// How the server's certificate is checked.
pub enum Trust<'a> {
    /// The operating system's root certificates.
    System,
    /// Only the CA certificates in this PEM file.
    Ca(&'a Path),
    /// None: anyone in the middle can read and change everything.
    Insecure,
}

/// The TLS client configuration for `trust` (ring provider only).
pub fn client_config(trust: Trust<'_>) -> anyhow::Result<Arc<ClientConfig>> {
    // ring only, as the server (no aws-lc, no OpenSSL).
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let config = match trust {
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth(),
        Trust::Ca(file) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(file)
                .and_then(|c| c.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("cannot read certificates from {}", file.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                anyhow::bail!("no usable certificate in {}", file.display());
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::System => {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                let why = found.errors.first().map(|e| e.to_string());
                anyhow::bail!(
                    "no system root certificates found{} (install ca-certificates, or use --ca FILE)",
                    why.map(|w| format!(": {w}")).unwrap_or_default()
                );
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

/// `--insecure`: accepts any certificate (signatures are still checked,
/// so the handshake itself is sound; who is at the other end is not).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str, irc: bool, tls: bool) -> Target {
        parse_target(s, irc, tls).unwrap()
    }

    #[test]
    fn addresses_with_and_without_schemes() {
        let x = t("ircs://irc.example.org", false, false);
        assert_eq!(x.addr, "irc.example.org:6697");
        assert_eq!(x.host, "irc.example.org");
        assert!(x.irc && x.tls);
        let x = t("ircs://irc.example.org:7000/", false, false);
        assert_eq!(x.addr, "irc.example.org:7000");
        let x = t("irc://localhost", false, false);
        assert_eq!(
            (x.addr.as_str(), x.irc, x.tls),
            ("localhost:6667", true, false)
        );
        let x = t("tls://chat.example.org", false, false);
        assert_eq!(
            (x.addr.as_str(), x.irc, x.tls),
            ("chat.example.org:7777", false, true)
        );
        let x = t("127.0.0.1:7777", false, true);
        assert_eq!((x.host.as_str(), x.irc, x.tls), ("127.0.0.1", false, true));
        let x = t("[::1]:6697", true, true);
        assert_eq!((x.addr.as_str(), x.host.as_str()), ("[::1]:6697", "::1"));
        assert!(parse_target("localhost", false, false).is_err());
        assert!(parse_target("gopher://x:1", false, false).is_err());
        assert!(parse_target("ircs://:6697", false, false).is_err());
    }
}
