//! The I/O shell: listeners, admission, one session task per connection,
//! and graceful shutdown. All chat logic lives in the hub; all wire formats
//! in `proto`.

mod limits;
mod session;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument};

use crate::config::Config;
use crate::hub::{Hub, HubConfig};
use crate::proto::EventBody;

pub use limits::{Admission, Refusal};
use session::Queue;

/// State shared by every session.
pub(crate) struct Shared {
    pub config: Config,
    hub: Mutex<Hub<Queue>>,
    pub shutdown: CancellationToken,
}

impl Shared {
    /// The hub, locked. Sessions hold it only for synchronous work.
    pub fn hub(&self) -> MutexGuard<'_, Hub<Queue>> {
        self.hub.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    admission: Admission,
}

impl Server {
    /// Binds the listener. Fails with a message naming the address.
    pub async fn bind(config: Config) -> anyhow::Result<Server> {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let hub = Hub::new(HubConfig::from_config(&config));
        let admission = Admission::new(config.max_clients, config.max_per_ip);
        let shared = Arc::new(Shared {
            config,
            hub: Mutex::new(hub),
            shutdown: CancellationToken::new(),
        });
        Ok(Server {
            listener,
            shared,
            admission,
        })
    }

    /// The address actually bound (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.shared.config.listen)
    }

    /// Accepts connections until `stop` is cancelled, then tells everyone the
    /// server is going down, flushes their queues (within `shutdown_grace`)
    /// and returns.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        info!("listening on {}", self.local_addr());
        let tracker = TaskTracker::new();
        let mut next_id = 0u64;
        loop {
            let (stream, peer) = tokio::select! {
                _ = stop.cancelled() => break,
                r = self.listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            next_id += 1;
            let permit = match self.admission.admit(peer.ip()) {
                Ok(p) => p,
                Err(refusal) => {
                    info!(%peer, "refused: {refusal}");
                    tracker.spawn(refuse(stream, refusal));
                    continue;
                }
            };
            configure(&stream, &self.shared.config);
            let span =
                tracing::info_span!("conn", id = next_id, %peer, nick = tracing::field::Empty);
            let shared = self.shared.clone();
            tracker.spawn(
                async move {
                    session::run(shared, stream, next_id).await;
                    drop(permit);
                }
                .instrument(span),
            );
        }
        info!(
            "shutting down: telling {} connections",
            self.admission.current()
        );
        self.shared.hub().broadcast(EventBody::Shutdown {
            reason: "server is going down".into(),
        });
        self.shared.shutdown.cancel();
        tracker.close();
        let grace = self.shared.config.shutdown_grace + Duration::from_secs(1);
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            warn!("some connections did not close within {grace:?}");
        }
        info!("stopped");
        Ok(())
    }
}

/// TCP options for an accepted socket: keepalive finds dead peers, no Nagle delay.
fn configure(stream: &TcpStream, config: &Config) {
    let _ = stream.set_nodelay(true);
    if !config.tcp_keepalive.is_zero() {
        let ka = socket2::TcpKeepalive::new()
            .with_time(config.tcp_keepalive)
            .with_interval(config.tcp_keepalive / 4 + Duration::from_secs(1));
        if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&ka) {
            warn!("cannot set keepalive: {e}");
        }
    }
}

async fn refuse(mut stream: TcpStream, why: Refusal) {
    let line = format!("! {why}\r\n");
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = stream.write_all(line.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Waits for SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => info!("SIGINT received"),
                    _ = term.recv() => info!("SIGTERM received"),
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
