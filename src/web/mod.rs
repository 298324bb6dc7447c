//! HTTP on an accepted connection: the web chat page (its files are in the
//! binary), `/ws` (a WebSocket that becomes a chat connection, JSON lines
//! or IRC, run by the same connection loop as a TCP client), `/metrics`
//! (Prometheus text), `/healthz`; everything else 404. hyper serves the
//! connection (HTTP/1.1 only) with a header read timeout and a bound on
//! the request head; request bodies are never read.
//!
//! [`serve`] is what the main port's first-bytes window
//! (`server::detect`) calls once the first bytes are `GET `/`HEAD `, over
//! TCP or inside TLS, and what the `http_listen` port calls for every
//! connection.

mod prefix;
mod routes;
pub mod ws;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;
use tracing::debug;

use crate::metrics::metrics;
use crate::server::connection::{self, Entry, Opening};
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
    // A WebSocket inside TLS is as private as TLS (IRC's WHOIS says so).
    let opening = Opening::new(entry, ctx.transport == "tls");
    connection::run(ctx.shared.clone(), transport, host, ctx.peer.ip(), opening).await;
}
