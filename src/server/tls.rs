//! TLS on the server side: the certificate (read from PEM files, or made up
//! at start with `tls_self_signed`), reloading it (SIGHUP, REHASH) while
//! connections go on, the rustls configuration (ring provider only), and
//! [`TlsTransport`], a handshaken TLS connection as a [`Transport`] so that
//! the connection loop runs over it unchanged.
//!
//! The certificate sits behind a resolver that every handshake asks: a
//! reload swaps it for new handshakes, and connections already up keep
//! their session keys. A file that cannot be read or does not match its
//! key on reload leaves the old certificate in place.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use anyhow::Context;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::Digest;
use tracing::{info, warn};

use super::transport::Transport;
use crate::config::Config;
pub(crate) use crate::tlsio::TlsSocket;

/// TLS handshakes that failed or stalled since start (for metrics).
pub static HANDSHAKE_FAILURES: AtomicU64 = AtomicU64::new(0);

/// Counts a failed or stalled handshake.
pub(crate) fn handshake_failed() {
    HANDSHAKE_FAILURES.fetch_add(1, Ordering::Relaxed);
    crate::metrics::metrics().tls_handshake_failures.inc();
}

/// The only crypto natter uses: ring's (no aws-lc, no OpenSSL).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Where the certificate comes from.
#[derive(Debug, Clone)]
enum Source {
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
    /// Made up at start; a reload keeps it.
    SelfSigned,
}

/// The server's TLS: its configuration and the certificate behind it.
pub struct Tls {
    config: Arc<ServerConfig>,
    current: Arc<Current>,
    source: Source,
}

/// The certificate new handshakes get.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl Current {
    fn get(&self) -> Arc<CertifiedKey> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
    fn set(&self, key: CertifiedKey) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

impl Tls {
    /// TLS as the config asks for it: `None` when it is off (no
    /// `tls_cert`/`tls_key` and no `tls_self_signed`). Fails, naming the
    /// file, if a certificate or key cannot be used.
    pub fn from_config(config: &Config) -> anyhow::Result<Option<Tls>> {
        let source = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Source::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            (Some(_), None) => anyhow::bail!("tls_cert is set but tls_key is not"),
            (None, Some(_)) => anyhow::bail!("tls_key is set but tls_cert is not"),
            (None, None) if config.tls_self_signed => Source::SelfSigned,
            (None, None) => return Ok(None),
        };
        let key = match &source {
            Source::Files { cert, key } => load(cert, key)?,
            Source::SelfSigned => {
                let names = vec!["localhost".to_string(), config.server_name.clone()];
                let (cert, key) = self_signed(names)?;
                certified(vec![cert], key)?
            }
        };
        let current = Arc::new(Current(RwLock::new(Arc::new(key))));
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        Ok(Some(Tls {
            config: Arc::new(config),
            current,
            source,
        }))
    }

    /// What accepts TLS connections with the current certificate.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }

    /// The SHA-256 fingerprint of the certificate served now.
    pub fn fingerprint(&self) -> String {
        match self.current.get().cert.first() {
            Some(der) => fingerprint(der),
            None => String::new(),
        }
    }

    /// Whether the certificate was made up at start.
    pub fn self_signed(&self) -> bool {
        matches!(self.source, Source::SelfSigned)
    }

    /// Reads the certificate files again: new connections get the new
    /// certificate, connections already up go on. On error the old
    /// certificate stays and the error says why.
    pub fn reload(&self) -> anyhow::Result<()> {
        match &self.source {
            Source::Files { cert, key } => {
                let key = load(cert, key)?;
                self.current.set(key);
                info!("TLS certificate reloaded: SHA-256 {}", self.fingerprint());
            }
            Source::SelfSigned => info!("TLS certificate is self-signed: nothing to reload"),
        }
        Ok(())
    }

    /// [`Tls::reload`], logging the outcome (for SIGHUP).
    pub fn reload_logged(&self) {
        if let Err(e) = self.reload() {
            warn!("TLS certificate not reloaded, the old one stays: {e:#}");
        }
    }
}

/// `AB:CD:…`: the SHA-256 of a DER certificate, as browsers and
/// `openssl x509 -fingerprint -sha256` show it.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = sha2::Sha256::digest(der);
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// A self-signed certificate for `names` (DNS names or IP addresses), as
/// DER: the certificate and its PKCS#8 key.
pub fn self_signed(
    names: Vec<String>,
) -> anyhow::Result<(CertificateDer<'static>, PrivateKeyDer<'static>)> {
    let made = rcgen::generate_simple_self_signed(names).context("making a certificate")?;
    let key = PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
    Ok((made.cert.der().clone(), key))
}

/// Reads a PEM certificate chain and its key, and checks they match.
fn load(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| {
            format!(
                "cannot read certificates from {} (tls_cert)",
                cert.display()
            )
        })?;
    if chain.is_empty() {
        anyhow::bail!("no certificate in {} (tls_cert)", cert.display());
    }
    let secret = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read a private key from {} (tls_key)", key.display()))?;
    certified(chain, secret).with_context(|| {
        format!(
            "the key in {} does not fit the certificate in {}",
            key.display(),
            cert.display()
        )
    })
}

fn certified(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> anyhow::Result<CertifiedKey> {
    Ok(CertifiedKey::from_der(chain, key, &provider())?)
}

/// A handshaken server-side TLS connection as a [`Transport`]: the
/// readiness and non-blocking calls of [`TlsSocket`] (shared with the
/// bench's TLS clients).
pub(crate) type TlsTransport = TlsSocket<ServerConnection>;

impl Transport for TlsTransport {
    const NAME: &'static str = "tls";
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        TlsSocket::readable(self)
    }
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send {
        TlsSocket::writable(self)
    }
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        TlsSocket::try_read(self, buf)
    }
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        TlsSocket::try_write(self, buf)
    }
    fn flushed(&self) -> bool {
        TlsSocket::flushed(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_colon_separated_sha256() {
        // SHA-256 of the empty string.
        let f = fingerprint(b"");
        assert!(f.starts_with("E3:B0:C4:42:98:FC:1C:14"), "{f}");
        assert_eq!(f.len(), 32 * 3 - 1);
    }

    #[test]
    fn files_that_do_not_fit_are_refused_and_the_old_certificate_stays() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, names: &[&str]| {
            let made = rcgen::generate_simple_self_signed(
                names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
            .unwrap();
            let cert = dir.path().join(format!("{name}.crt"));
            let key = dir.path().join(format!("{name}.key"));
            std::fs::write(&cert, made.cert.pem()).unwrap();
            std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
            (cert, key)
        };
        let (cert_a, key_a) = write("a", &["a.test"]);
        let (_, key_b) = write("b", &["b.test"]);
        let mut config = Config {
            tls_cert: Some(cert_a.clone()),
            tls_key: Some(key_b.clone()),
            ..Config::default()
        };
        let e = Tls::from_config(&config).err().unwrap();
        assert!(format!("{e:#}").contains("does not fit"), "{e:#}");

        config.tls_key = Some(key_a.clone());
        let tls = Tls::from_config(&config).unwrap().unwrap();
        let before = tls.fingerprint();
        // A key that does not fit, then garbage: the old certificate stays.
        std::fs::copy(&key_b, &key_a).unwrap();
        assert!(tls.reload().is_err());
        std::fs::write(&cert_a, "not a certificate").unwrap();
        let e = tls.reload().unwrap_err();
        assert!(format!("{e:#}").contains("tls_cert"), "{e:#}");
        assert_eq!(tls.fingerprint(), before);
        // A good pair again: it is served from now on.
        let (cert_c, key_c) = write("c", &["c.test"]);
        std::fs::copy(&cert_c, &cert_a).unwrap();
        std::fs::copy(&key_c, &key_a).unwrap();
        tls.reload().unwrap();
        assert_ne!(tls.fingerprint(), before);
    }

    #[test]
    fn half_a_configuration_is_an_error() {
        let config = Config {
            tls_cert: Some("x.pem".into()),
            ..Config::default()
        };
        assert!(Tls::from_config(&config).is_err());
        let config = Config::default();
        assert!(Tls::from_config(&config).unwrap().is_none());
    }
}
