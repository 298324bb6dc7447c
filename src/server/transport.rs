//! The byte streams a connection runs over. The connection loop needs
//! readiness and non-blocking reads and writes (so output is written from a
//! per-thread buffer with no allocation per message); a TCP socket has them
//! natively, and TLS or WebSocket transports provide the same calls
//! (the WebSocket one is `web::ws::WsTransport`).
//!
//! A transport that encodes (TLS) may accept bytes it could not hand to the
//! socket yet: it says so with [`Transport::flushed`], and the loop then
//! waits for writability and calls `try_write(&[])` until it is. For TCP
//! `flushed` is a constant `true`, so its path is what it was.

use std::future::Future;
use std::io;

use tokio::net::TcpStream;

/// A non-blocking byte stream with readiness.
pub(crate) trait Transport: Send + Sync + 'static {
    /// The transport's name in metrics (`tcp`, `ws`, `tls`).
    const NAME: &'static str;
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send;
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send;
    /// Reads what is there; `WouldBlock` if nothing is, `Ok(0)` at EOF.
    /// Called only once [`Transport::readable`] has said so, by the one
    /// task that waits on it (it may take that wait's place).
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes what the stream takes now; `WouldBlock` if nothing.
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
    /// Whether everything accepted by `try_write` reached the socket
    /// (`try_write(&[])` pushes the rest, `WouldBlock` while it cannot).
    fn flushed(&self) -> bool {
        true
    }
    /// Whether a quiet connection over it may park (`server::park`): the
    /// transport is a bare socket, all its state in the kernel.
    const PARKS: bool = false;
    /// The socket, out of tokio's reactor, for a connection that parks
    /// (only asked when [`Transport::PARKS`]).
    fn into_fd(self) -> io::Result<std::os::fd::OwnedFd>
    where
        Self: Sized,
    {
        Err(io::ErrorKind::Unsupported.into())
    }
}

impl Transport for TcpStream {
    const NAME: &'static str = "tcp";
    /// Through the socket's one reader waker (`poll_read_ready`), not a
    /// waiter node of its own: the future is a reference (8 bytes instead
    /// of ~100 in every idle connection's task). Only the connection's
    /// loop waits for a socket's input, so the one waker is enough.
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        std::future::poll_fn(move |cx| self.poll_read_ready(cx))
    }
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send {
        TcpStream::writable(self)
    }
    /// Through tokio's `poll_read`, which, unlike `try_read`, takes a
    /// read that did not fill `buf` as the socket drained and clears its
    /// readiness: the loop then waits for more instead of finding it out
    /// with one more `recv` that fails with `EAGAIN` (one system call per
    /// input saved). Its waker is a no-op: when it finds nothing, the loop
    /// goes back to [`Transport::readable`], whose wait replaces it.
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use tokio::io::AsyncRead;
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut buf = tokio::io::ReadBuf::new(buf);
        match std::pin::Pin::new(self).poll_read(&mut cx, &mut buf) {
            std::task::Poll::Ready(r) => r.map(|()| buf.filled().len()),
            std::task::Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        TcpStream::try_write(self, buf)
    }
    const PARKS: bool = true;
    fn into_fd(self) -> io::Result<std::os::fd::OwnedFd> {
        self.into_std().map(Into::into)
    }
}
