//! What a new connection speaks, before the connection loop takes it: the
//! main port's first-bytes window (`banner_delay`), TLS handshakes (on the
//! main port when the first byte is a TLS handshake record, and on the
//! IRC-over-TLS port), and the hand-off of HTTP to `crate::web`.
//!
//! Clients that speak first (TLS, HTTP, IRC, JSON) do so at once; whatever
//! arrives within the window decides. [`classify`] tells TLS and HTTP apart
//! from line protocols (text, JSON, IRC), which the connection loop tells
//! apart by their first line (`proto::session::detect`). A connection that
//! stays silent through the window is a person on telnet: the banner goes
//! out then. Over TLS the same happens again inside the encrypted stream.
//!
//! Plain TCP is only peeked at (nothing is read, nothing copied): the
//! connection loop then reads the socket itself.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::Either;
use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{debug, info, Instrument};

use super::connection::{self, ConnLog, Entry, Opening};
use super::limits::Permit;
use super::tls::{self, Tls, TlsTransport};
use super::Shared;
use crate::proto::Name;

/// What the first bytes of a connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum First {
    /// A TLS handshake record (`0x16`).
    Tls,
    /// `GET ` or `HEAD `: HTTP (the web page, WebSocket, metrics).
    Http,
    /// Anything else: lines (text, JSON or IRC, told by the first line).
    Lines,
}

/// Most bytes [`classify`] needs to decide.
const SNIFF: usize = 5;

/// What `bytes` (the first a connection sent) say, or `None` while they
/// are a beginning of `GET `/`HEAD ` and more must be seen.
pub(crate) fn classify(bytes: &[u8]) -> Option<First> {
    let starts = |word: &[u8]| {
        let n = bytes.len().min(word.len());
        bytes[..n] == word[..n]
    };
    match bytes.first()? {
        0x16 => Some(First::Tls),
        _ if starts(b"GET ") || starts(b"HEAD ") => match bytes.len() {
            n if n >= 4 && starts(b"GET ") => Some(First::Http),
            n if n >= 5 => Some(First::Http),
            _ => None,
        },
        _ => Some(First::Lines),
    }
}

/// Peeks at a new main-port connection for up to `window`: `None` if it
/// stayed silent (or closed), else what its first bytes say. Nothing is
/// consumed.
async fn sniff_tcp(stream: &TcpStream, window: Duration) -> std::io::Result<Option<First>> {
    let deadline = Instant::now() + window;
    let mut buf = [0u8; SNIFF];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Err(_) => return Ok(None),
            Ok(r) => r?,
        };
        if n == 0 {
            return Ok(None); // closed: the loop finds out itself
        }
        if let Some(first) = classify(&buf[..n]) {
            return Ok(Some(first));
        }
        // `GE`…: peeking again at once would find the same bytes; the rest
        // of a first line arrives within a round trip.
        if Instant::now() >= deadline {
            return Ok(Some(First::Lines));
        }
        tokio::time::sleep(Duration::from_millis(5).min(window)).await;
    }
}

/// Reads the first bytes of a stream for up to `window` (over TLS, where
/// peeking is not possible): what they say, and the bytes themselves.
async fn sniff_read<S: AsyncRead + Unpin>(
    stream: &mut S,
    window: Duration,
) -> std::io::Result<(Option<First>, Vec<u8>)> {
    let deadline = Instant::now() + window;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) if got.is_empty() => return Ok((None, got)),
            Err(_) => return Ok((Some(First::Lines), got)),
            Ok(r) => r?,
        };
        if n == 0 {
            return Ok((None, got));
        }
        got.extend_from_slice(&buf[..n]);
        if let Some(first) = classify(&got) {
            return Ok((Some(first), got));
        }
    }
}

/// A connection's whole life on a rare path (TLS, HTTP): boxed, so that
/// it does not size every plain connection's task.
pub(crate) type Boxed = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Serves a connection on the main port: waits out the first-bytes
/// window, then hands it to TLS, HTTP or the connection loop.
///
/// Two phases in one future that holds one at a time (`then`): the window
/// (the socket and a peek), then the connection. An `async fn` would keep
/// its arguments beside the connection loop for the connection's whole
/// life.
pub(crate) fn main_port(
    shared: Arc<Shared>,
    stream: TcpStream,
    host: Name,
    peer: SocketAddr,
    log: ConnLog,
    permit: Permit,
) -> impl Future<Output = ()> + Send {
    let window = shared.config.banner_delay;
    let sniff = async move {
        let first = match window.is_zero() {
            true => Ok(None),
            false => sniff_tcp(&stream, window).await,
        };
        (stream, first)
    };
    sniff.then(move |(stream, first)| {
        let first = match first {
            Ok(first) => first,
            Err(e) => {
                log.span(None)
                    .in_scope(|| debug!("closed while detecting: {e}"));
                return Either::Right(Box::pin(std::future::ready(())) as Boxed);
            }
        };
        match first {
            None | Some(First::Lines) => {
                let opening = Opening {
                    silent: first.is_none(),
                    log,
                    permit: Some(permit),
                    ..Opening::new(Entry::Main, false)
                };
                Either::Left(connection::run(shared, stream, host, peer.ip(), opening))
            }
            // In a span of their own for their whole life, like the
            // connections of the IRC-over-TLS and HTTP ports.
            Some(First::Http) => {
                let span = log.span(None);
                Either::Right(Box::pin(
                    http(stream, Bytes::new(), shared, peer, "tcp")
                        .instrument(span)
                        .map(move |()| drop(permit)),
                ))
            }
            Some(First::Tls) => match shared.tls.clone() {
                Some(tls) => {
                    let span = log.span(None);
                    Either::Right(Box::pin(
                        async move {
                            over_tls(shared, &tls, stream, host, peer, Entry::Main).await;
                            drop(permit);
                        }
                        .instrument(span),
                    ))
                }
                None => {
                    tls::handshake_failed();
                    let _log = log.span(None).entered();
                    info!("TLS handshake on a server without a certificate (set tls_cert and tls_key): closed");
                    Either::Right(Box::pin(std::future::ready(())))
                }
            },
        }
    })
}

/// Serves a connection on the IRC-over-TLS port.
pub(crate) async fn irc_tls_port(
    shared: Arc<Shared>,
    stream: TcpStream,
    host: Name,
    peer: SocketAddr,
) {
    if let Some(tls) = shared.tls.clone() {
        over_tls(shared, &tls, stream, host, peer, Entry::Irc).await
    }
}

/// Shakes hands (within `registration_timeout`), then serves the inner
/// stream: on the main port its first bytes decide again (HTTP or lines),
/// on the IRC port it is IRC.
async fn over_tls(
    shared: Arc<Shared>,
    tls: &Tls,
    stream: TcpStream,
    host: Name,
    peer: SocketAddr,
    entry: Entry,
) {
    let limit = shared.config.registration_timeout;
    let mut stream = match tokio::time::timeout(limit, tls.acceptor().accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tls::handshake_failed();
            return info!("TLS handshake failed: {e}");
        }
        Err(_) => {
            tls::handshake_failed();
            return info!("TLS handshake not done within {limit:?} (registration_timeout): closed");
        }
    };
    debug!(
        "TLS {:?} {:?}",
        stream.get_ref().1.protocol_version(),
        stream
            .get_ref()
            .1
            .negotiated_cipher_suite()
            .map(|s| s.suite())
    );
    let window = shared.config.banner_delay;
    let (first, input) = match entry == Entry::Main && !window.is_zero() {
        true => match sniff_read(&mut stream, window).await {
            Ok(x) => x,
            Err(e) => return debug!("closed while detecting: {e}"),
        },
        false => (None, Vec::new()),
    };
    if first == Some(First::Http) {
        return http(stream, input.into(), shared, peer, "tls").await;
    }
    let (tcp, conn) = stream.into_inner();
    let opening = Opening {
        silent: first.is_none(),
        input,
        ..Opening::new(entry, true)
    };
    connection::run(
        shared,
        TlsTransport::new(tcp, conn),
        host,
        peer.ip(),
        opening,
    )
    .await
}

/// The HTTP hand-off to `crate::web`: `first` is what was already read
/// from `stream` (nothing for plain TCP, which was only peeked at);
/// `transport` is `tcp` or `tls`.
async fn http<S>(
    stream: S,
    first: Bytes,
    shared: Arc<Shared>,
    peer: SocketAddr,
    transport: &'static str,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    crate::web::serve(
        stream,
        first,
        crate::web::WebContext::new(shared, peer, transport),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_decide() {
        assert_eq!(classify(b""), None);
        assert_eq!(classify(&[0x16, 0x03, 0x01]), Some(First::Tls));
        assert_eq!(classify(&[0x16]), Some(First::Tls));
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(First::Http));
        assert_eq!(classify(b"GET "), Some(First::Http));
        assert_eq!(classify(b"HEAD /"), Some(First::Http));
        // Beginnings of a method: wait for more.
        for partial in [&b"G"[..], b"GE", b"GET", b"H", b"HE", b"HEA", b"HEAD"] {
            assert_eq!(classify(partial), None, "{partial:?}");
        }
        // A nickname that starts like a method is a nickname.
        assert_eq!(classify(b"GETTY\r\n"), Some(First::Lines));
        assert_eq!(classify(b"HEADLESS\r\n"), Some(First::Lines));
        assert_eq!(classify(b"GET\r\n"), Some(First::Lines));
        assert_eq!(classify(b"{\"cmd\""), Some(First::Lines));
        assert_eq!(classify(b"CAP LS 302\r\n"), Some(First::Lines));
        assert_eq!(classify(b"alice\r\n"), Some(First::Lines));
        assert_eq!(classify(&[0xff, 0xfb, 0x01]), Some(First::Lines)); // telnet IAC
    }
}
