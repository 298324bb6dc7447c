//! TLS over a non-blocking TCP socket, with the socket's own kind of calls:
//! readiness (`readable`, `writable`) and `try_read`/`try_write` that say
//! `WouldBlock`. The server's connection loop runs over it (as a
//! `Transport`) and so do the bench's TLS clients. Records are decrypted
//! into the caller's buffer and encrypted from it, with no other copy;
//! what the socket does not take yet stays in rustls' buffer (bounded,
//! 64 KiB by default) until [`TlsSocket::flushed`] says it is gone, and
//! `try_write(&[])` pushes it.

use std::io::{self, Read, Write};
use std::ops::DerefMut;
use std::sync::{Mutex, MutexGuard};

use rustls::{ClientConnection, ConnectionCommon, ServerConnection, SideData};
use tokio::net::TcpStream;

/// A rustls connection, client or server side.
pub trait TlsConn: DerefMut<Target = ConnectionCommon<Self::Data>> + Send + 'static {
    type Data: SideData;
}

impl TlsConn for ServerConnection {
    type Data = rustls::server::ServerConnectionData;
}

impl TlsConn for ClientConnection {
    type Data = rustls::client::ClientConnectionData;
}

/// A handshaken TLS connection over TCP.
pub struct TlsSocket<C: TlsConn> {
    tcp: TcpStream,
    /// Only the connection's own task uses it: the lock is never contended
    /// (it is there because the calls take `&self`, as the socket's do).
    tls: Mutex<C>,
}

/// The socket as blocking-style I/O that says `WouldBlock`.
struct Io<'a>(&'a TcpStream);

impl Read for Io<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for Io<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Hands encrypted output to the socket; `true` when none is left.
fn push<D: SideData>(tls: &mut ConnectionCommon<D>, tcp: &TcpStream) -> io::Result<bool> {
    while tls.wants_write() {
        match tls.write_tls(&mut Io(tcp)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

impl<C: TlsConn> TlsSocket<C> {
    /// The connection left by a finished handshake (with whatever
    /// plaintext it decrypted and did not hand out yet).
    pub fn new(tcp: TcpStream, tls: C) -> TlsSocket<C> {
        TlsSocket {
            tcp,
            tls: Mutex::new(tls),
        }
    }

    fn lock(&self) -> MutexGuard<'_, C> {
        self.tls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ready to read: decrypted bytes (or the peer's close) are waiting,
    /// or the socket has bytes.
    pub async fn readable(&self) -> io::Result<()> {
        let ready = match self.lock().process_new_packets() {
            Ok(state) => state.plaintext_bytes_to_read() > 0 || state.peer_has_closed(),
            Err(_) => true, // try_read reports it
        };
        match ready {
            true => Ok(()),
            false => self.tcp.readable().await,
        }
    }

    pub async fn writable(&self) -> io::Result<()> {
        self.tcp.writable().await
    }

    /// Reads decrypted bytes; `WouldBlock` if a whole record is not there
    /// yet, `Ok(0)` at the end.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut tls = self.lock();
        loop {
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            // Nothing decrypted: read records until a whole one is there
            // or the socket has no more (its `WouldBlock` clears readiness).
            match tls.read_tls(&mut Io(&self.tcp))? {
                0 => return Ok(0),
                _ => {
                    let processed = tls.process_new_packets();
                    // Alerts, handshake answers, key updates.
                    let pushed = push(&mut tls, &self.tcp);
                    if let Err(e) = processed {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                    pushed?;
                }
            }
        }
    }

    /// Encrypts what rustls takes of `buf` and writes what the socket takes;
    /// `WouldBlock` while earlier output is still waiting for the socket.
    /// `try_write(&[])` only pushes that output.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut tls = self.lock();
        if !push(&mut tls, &self.tcp)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let n = tls.writer().write(buf)?;
        push(&mut tls, &self.tcp)?;
        match n {
            0 => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }
    }

    /// Whether everything written has reached the socket.
    pub fn flushed(&self) -> bool {
        !self.lock().wants_write()
    }
}

impl<C: TlsConn> Drop for TlsSocket<C> {
    /// Says goodbye the TLS way (close_notify) if the socket takes it now.
    fn drop(&mut self) {
        let tls = self.tls.get_mut().unwrap_or_else(|e| e.into_inner());
        tls.send_close_notify();
        let _ = push(tls, &self.tcp);
    }
}
