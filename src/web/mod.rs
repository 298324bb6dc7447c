//! HTTP on an accepted connection: the web chat page (its files are in the
//! binary), `/ws` (a WebSocket that becomes a chat connection, JSON lines
//! or IRC, run by the same connection loop as a TCP client), `/metrics`
//! (Prometheus text), `/healthz`; everything else 404. hyper serves the
//! connection (HTTP/1.1 only) with a header read timeout and a bound on
//! the request head; request bodies are never read.
//!
//! [`serve`] is what the main port's protocol detection calls once the
//! first bytes look like HTTP (`GET`/`HEAD`, see [`looks_like_http`]), and
//! what the `http_listen` port calls for every connection.

mod prefix;
mod routes;
pub mod ws;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;
use tracing::debug;

use crate::metrics::metrics;
use crate::server::connection::{self, Entry};
use crate::server::Shared;

pub use prefix::Prefixed;

/// What serving one HTTP connection needs: the server's shared state, the
/// peer, and the transport it came over (for metrics: `tcp`, `tls`).
pub struct WebContext {
    shared: Arc<Shared>,
    peer: SocketAddr,
    transport: &'static str,
}

impl WebContext {
    pub(crate) fn new(shared: Arc<Shared>, peer: SocketAddr, transport: &'static str) -> Self {
        WebContext {
            shared,
            peer,
            transport,
        }
    }
}

/// A WebSocket handshake that was answered 101: the connection to take
/// over once hyper lets go of it.
struct Upgrade {
    on: hyper::upgrade::OnUpgrade,
    mode: ws::Mode,
}

/// Whether a connection's first bytes are an HTTP request we serve.
pub fn looks_like_http(first: &[u8]) -> bool {
    first.starts_with(b"GET ") || first.starts_with(b"HEAD ")
}

/// Whether `first` could still become the start of one (fewer bytes seen).
fn could_be_http(first: &[u8]) -> bool {
    b"GET ".starts_with(first) || b"HEAD ".starts_with(first)
}

/// What a main-port connection said in its first-bytes window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FirstBytes {
    /// An HTTP request.
    Http,
    /// Something else (a nickname, IRC, JSON).
    Other,
    /// Nothing within the window.
    Silent,
}

/// Waits up to `window` for the first bytes of a main-port connection and
/// tells whether they are HTTP, without consuming them.
pub(crate) async fn sniff(stream: &TcpStream, window: Duration) -> FirstBytes {
    let mut buf = [0u8; 5];
    let deadline = tokio::time::Instant::now() + window;
    loop {
        // A zero window still looks at what has arrived already.
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => return FirstBytes::Other,
            Err(_) => return FirstBytes::Silent,
        };
        if looks_like_http(&buf[..n]) {
            return FirstBytes::Http;
        }
        if n == 0 || !could_be_http(&buf[..n]) {
            return FirstBytes::Other;
        }
        // Part of `GET ` so far: wait for the rest (peek returns at once
        // while those bytes are there, so give the client a moment).
        if tokio::time::Instant::now() >= deadline {
            return FirstBytes::Other;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Serves HTTP on `stream`, whose `first_bytes` were already read from
/// it, until the client closes, the server shuts down or a WebSocket
/// upgrade ends. Never panics on what the client sends.
pub async fn serve<S>(stream: S, first_bytes: Bytes, ctx: WebContext)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ctx = Arc::new(ctx);
    let open = metrics().connection("http", ctx.transport);
    metrics().opened("http", ctx.transport);
    open.inc();
    let (upgrades, mut upgraded) = mpsc::channel::<Upgrade>(1);
    let service = {
        let ctx = ctx.clone();
        service_fn(move |req| {
            let answer = routes::route(req, &ctx, &upgrades);
            async move { Ok::<_, Infallible>(answer) }
        })
    };
    let config = &ctx.shared.config;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.http_header_timeout)
        .max_buf_size(config.http_max_request_bytes.max(8192))
        .keep_alive(true);
    let io = TokioIo::new(Prefixed::new(first_bytes, stream));
    let conn = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    let shutdown = ctx.shared.shutdown.clone();
    let served = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            tokio::time::timeout(config.shutdown_grace, conn.as_mut())
                .await
                .unwrap_or(Ok(()))
        }
    };
    open.dec();
    if let Err(e) = served {
        debug!("http connection: {e}");
    }
    if let Ok(up) = upgraded.try_recv() {
        websocket(up, &ctx).await;
    }
}

/// Runs a chat connection over an upgraded WebSocket.
async fn websocket(up: Upgrade, ctx: &WebContext) {
    let upgraded = match up.on.await {
        Ok(u) => u,
        Err(e) => return debug!("websocket upgrade failed: {e}"),
    };
    let config = ws::config(ctx.shared.config.ws_max_message_bytes);
    let socket =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
    let entry = match up.mode {
        ws::Mode::Json => Entry::Json,
        ws::Mode::IrcText | ws::Mode::IrcBinary => Entry::Irc,
    };
    let host = ctx.shared.cloak(ctx.peer.ip()).into();
    let transport = ws::transport(socket, up.mode, ctx.shared.config.write_timeout);
    connection::run(ctx.shared.clone(), transport, host, entry).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_is_get_or_head() {
        assert!(looks_like_http(b"GET / HTTP/1.1\r\n"));
        assert!(looks_like_http(b"HEAD /healthz HTTP/1.1"));
        assert!(!looks_like_http(b"GETAWAY"));
        assert!(!looks_like_http(b"NICK alice"));
        assert!(!looks_like_http(b"POST / HTTP/1.1"));
        assert!(could_be_http(b"GE"));
        assert!(could_be_http(b"HEA"));
        assert!(!could_be_http(b"GEX"));
    }
}
