//! WebSocket as a [`Transport`]: the same connection loop and protocol
//! sessions as a TCP client, with one line per WebSocket message each way
//! (no line ending in the message). A pump task owns the WebSocket and
//! moves bytes between it and two bounded buffers that the connection
//! loop reads and writes with the non-blocking calls it uses on a TCP
//! socket; the TCP path is untouched (the loop is generic).
//!
//! Incoming: each text or binary message becomes one line (for JSON a line
//! break inside a message is whitespace; for IRC it would end the line, as
//! on TCP). A message over the session's line limit reaches the line
//! decoder and is refused like any long line; one over
//! `ws_max_message_bytes` closes the connection (1009). Outgoing: the
//! session's output is cut at line ends and each line sent as one message,
//! text for JSON and `text.ircv3.net`, binary for `binary.ircv3.net`.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tracing::debug;

use crate::server::transport::Transport;

/// What a WebSocket speaks, chosen by its subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No IRC subprotocol: natter's JSON lines.
    Json,
    /// `text.ircv3.net`: IRC lines in text messages.
    IrcText,
    /// `binary.ircv3.net`: IRC lines in binary messages.
    IrcBinary,
}

impl Mode {
    /// The mode for the subprotocols a client offers (comma-separated, in
    /// its order of preference), and the one to name in the answer.
    pub fn choose(offered: &str) -> (Mode, Option<&'static str>) {
        for p in offered.split(',').map(str::trim) {
            match p {
                "text.ircv3.net" => return (Mode::IrcText, Some("text.ircv3.net")),
                "binary.ircv3.net" => return (Mode::IrcBinary, Some("binary.ircv3.net")),
                _ => {}
            }
        }
        (Mode::Json, None)
    }
}

/// Input read ahead of the connection loop, at most (then the pump stops
/// reading the socket until the loop has taken some).
const INBOUND_CAP: usize = 16 * 1024;
/// Output the loop may hand over before it waits (one batch may go past it).
const OUTBOUND_CAP: usize = 64 * 1024;

/// The WebSocket settings for a server side connection.
pub fn config(max_message_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(OUTBOUND_CAP * 4)
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes))
}

#[derive(Default)]
struct Inbound {
    buf: BytesMut,
    /// The peer closed (or the socket failed): after `buf`, end of stream.
    eof: bool,
}

#[derive(Default)]
struct Outbound {
    buf: Vec<u8>,
    /// The connection loop is done: send what is left, then close.
    closing: bool,
    /// The socket failed: writes fail.
    broken: bool,
}

/// The two buffers between the connection loop and the pump.
#[derive(Default)]
struct Pipe {
    inbound: Mutex<Inbound>,
    outbound: Mutex<Outbound>,
    /// Input arrived (or ended): for the loop.
    readable: Notify,
    /// Output was sent: for the loop.
    writable: Notify,
    /// The loop took input: for the pump.
    took: Notify,
    /// Output waits (or the loop ended): for the pump.
    to_send: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The connection loop's end of a WebSocket.
pub struct WsTransport {
    pipe: Arc<Pipe>,
}

impl Drop for WsTransport {
    fn drop(&mut self) {
        lock(&self.pipe.outbound).closing = true;
        self.pipe.to_send.notify_one();
    }
}

impl Transport for WsTransport {
    const NAME: &'static str = "ws";

    async fn readable(&self) -> io::Result<()> {
        loop {
            {
                let i = lock(&self.pipe.inbound);
                if !i.buf.is_empty() || i.eof {
                    return Ok(());
                }
            }
            // A notify_one() since the check left a permit: no lost wakeup.
            self.pipe.readable.notified().await;
        }
    }

    async fn writable(&self) -> io::Result<()> {
        loop {
            {
                let o = lock(&self.pipe.outbound);
                if o.buf.len() < OUTBOUND_CAP || o.broken {
                    return Ok(());
                }
            }
            self.pipe.writable.notified().await;
        }
    }

    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut i = lock(&self.pipe.inbound);
        if i.buf.is_empty() {
            return match i.eof {
                true => Ok(0),
                false => Err(io::ErrorKind::WouldBlock.into()),
            };
        }
        let n = i.buf.len().min(buf.len());
        buf[..n].copy_from_slice(&i.buf.split_to(n));
        if i.buf.is_empty() {
            i.buf = BytesMut::new(); // an idle connection holds no buffer
        }
        drop(i);
        self.pipe.took.notify_one();
        Ok(n)
    }

    /// Takes all of `buf` while below the cap, so output stays cut at line
    /// ends (the loop writes whole rendered lines).
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut o = lock(&self.pipe.outbound);
        if o.broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if o.buf.len() >= OUTBOUND_CAP {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        o.buf.extend_from_slice(buf);
        drop(o);
        self.pipe.to_send.notify_one();
        Ok(buf.len())
    }
}

/// Starts the pump for `ws` and returns the loop's end of it. A peer that
/// takes no output for `write_timeout` is dropped (as on TCP).
pub fn transport<S>(ws: WebSocketStream<S>, mode: Mode, write_timeout: Duration) -> WsTransport
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let pipe = Arc::new(Pipe::default());
    tokio::spawn(pump(ws, pipe.clone(), mode, write_timeout));
    WsTransport { pipe }
}

/// Appends one incoming message to the input as a line.
fn push_line(input: &mut BytesMut, payload: &[u8], mode: Mode) {
    let payload = payload.strip_suffix(b"\n").unwrap_or(payload);
    let payload = payload.strip_suffix(b"\r").unwrap_or(payload);
    match mode {
        // A line break in a JSON message can only be whitespace.
        Mode::Json => input.extend(payload.iter().map(|&b| match b {
            b'\r' | b'\n' => b' ',
            b => b,
        })),
        Mode::IrcText | Mode::IrcBinary => input.extend_from_slice(payload),
    }
    input.extend_from_slice(b"\n");
}

/// Cuts `out` into lines without their line ends (complete lines only).
fn lines(out: &[u8]) -> impl Iterator<Item = &[u8]> {
    let end = out.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    out[..end].split_inclusive(|&b| b == b'\n').map(|l| {
        let l = l.strip_suffix(b"\n").unwrap_or(l);
        l.strip_suffix(b"\r").unwrap_or(l)
    })
}

/// Moves messages in and lines out until the connection loop has ended
/// and its output is sent, or the socket fails.
async fn pump<S>(ws: WebSocketStream<S>, pipe: Arc<Pipe>, mode: Mode, write_timeout: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let mut reading = true;
    let mut close: Option<CloseFrame> = None;
    loop {
        let room = lock(&pipe.inbound).buf.len() < INBOUND_CAP;
        tokio::select! {
            msg = stream.next(), if reading && room => {
                let payload: Option<Bytes> = match msg {
                    Some(Ok(Message::Text(t))) => Some(Bytes::from(t)),
                    Some(Ok(Message::Binary(b))) => Some(b),
                    Some(Ok(Message::Close(_))) | None => None,
                    // Pings are answered by tungstenite itself.
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        debug!("websocket read: {e}");
                        if let WsError::Capacity(_) = e {
                            close = Some(CloseFrame {
                                code: CloseCode::Size,
                                reason: "message too long".into(),
                            });
                        }
                        None
                    }
                };
                let mut i = lock(&pipe.inbound);
                match payload {
                    Some(p) => push_line(&mut i.buf, &p, mode),
                    None => {
                        i.eof = true;
                        reading = false;
                    }
                }
                drop(i);
                pipe.readable.notify_one();
            }
            _ = pipe.took.notified(), if reading && !room => {}
            _ = pipe.to_send.notified() => {
                let (out, closing) = {
                    let mut o = lock(&pipe.outbound);
                    let end = o.buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                    let out: Vec<u8> = o.buf.drain(..end).collect();
                    if o.buf.is_empty() {
                        o.buf = Vec::new(); // an idle connection holds no buffer
                    }
                    (out, o.closing)
                };
                let write = async {
                    for line in lines(&out).filter(|l| !l.is_empty()) {
                        let msg = match mode {
                            Mode::IrcBinary => Message::Binary(Bytes::copy_from_slice(line)),
                            _ => Message::text(String::from_utf8_lossy(line).into_owned()),
                        };
                        sink.feed(msg).await?;
                    }
                    sink.flush().await
                };
                let sent = match tokio::time::timeout(write_timeout, write).await {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err("write timeout".to_string()),
                };
                if let Err(e) = sent {
                    debug!("websocket write: {e}");
                    lock(&pipe.outbound).broken = true;
                    lock(&pipe.inbound).eof = true;
                    pipe.readable.notify_one();
                    pipe.writable.notify_one();
                    return;
                }
                pipe.writable.notify_one();
                if closing {
                    let frame = close.take().unwrap_or(CloseFrame {
                        code: CloseCode::Normal,
                        reason: "".into(),
                    });
                    let close = async {
                        let _ = sink.send(Message::Close(Some(frame))).await;
                        let _ = sink.close().await;
                    };
                    let _ = tokio::time::timeout(write_timeout, close).await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subprotocols_choose_the_mode() {
        assert_eq!(Mode::choose(""), (Mode::Json, None));
        assert_eq!(Mode::choose("chat, xmpp"), (Mode::Json, None));
        assert_eq!(
            Mode::choose("binary.ircv3.net, text.ircv3.net"),
            (Mode::IrcBinary, Some("binary.ircv3.net"))
        );
        assert_eq!(
            Mode::choose("foo,text.ircv3.net"),
            (Mode::IrcText, Some("text.ircv3.net"))
        );
    }

    #[test]
    fn a_message_is_one_line() {
        let mut b = BytesMut::new();
        push_line(&mut b, b"{\"cmd\":\n\"who\"}", Mode::Json);
        push_line(&mut b, b"PRIVMSG #a :hi\r\n", Mode::IrcText);
        assert_eq!(&b[..], b"{\"cmd\": \"who\"}\nPRIVMSG #a :hi\n");
    }

    #[test]
    fn output_is_cut_at_line_ends() {
        let got: Vec<&[u8]> = lines(b"a\r\nbc\n\r\nd").collect();
        assert_eq!(got, vec![&b"a"[..], b"bc", b""]);
    }
}
