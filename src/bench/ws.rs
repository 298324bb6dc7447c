//! The bench's WebSocket side (`--proto ws`): the upgrade request, client
//! frames around each line, and server frames back into lines, so the
//! connection task keeps handling lines. Frame headers are tungstenite's
//! (`FrameHeader`); the rest stays in the bench's own buffers, as cheap as
//! the line path.
//!
//! Client frames carry a mask key of zeros: the mask bit is set as RFC
//! 6455 requires of clients, and the payload is left as it is, so a
//! message template framed once can still be rewritten in place for each
//! send. (A browser picks a random key; the server does the same work
//! either way.)

use std::io::Cursor;
use std::net::SocketAddr;

use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

/// The HTTP request that opens `/ws` on `target`.
pub fn upgrade_request(target: SocketAddr) -> Vec<u8> {
    format!(
        "GET /ws HTTP/1.1\r\nHost: {target}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: bmF0dGVyIGJlbmNoIGtleQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// Looks for the end of the upgrade answer in `buf`: `None` while it is
/// incomplete, then the length of the head, or the status line if it is
/// not `101`.
pub fn upgrade_response(buf: &[u8]) -> Option<Result<usize, String>> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let status = buf[..end].split(|&b| b == b'\r').next().unwrap_or(b"");
    let status = String::from_utf8_lossy(status).into_owned();
    Some(match status.split(' ').nth(1) {
        Some("101") => Ok(end),
        _ => Err(status),
    })
}

fn header() -> FrameHeader {
    FrameHeader {
        opcode: OpCode::Data(Data::Text),
        mask: Some([0; 4]),
        ..FrameHeader::default()
    }
}

/// Appends `payload` as one client text frame; returns the header's length.
pub fn frame(payload: &[u8], out: &mut Vec<u8>) -> usize {
    let h = header();
    let len = payload.len() as u64;
    // Writing into a Vec cannot fail.
    let _ = h.format(len, out);
    out.extend_from_slice(payload);
    h.len(len)
}

/// Appends each line of `lines` (ended by `\n` or `\r\n`) as one frame.
pub fn frame_lines(lines: &[u8], out: &mut Vec<u8>) {
    for line in lines.split_inclusive(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.is_empty() {
            frame(line, out);
        }
    }
}

/// Turns the server's frames back into lines: each data message's payload
/// and a `\n`. Control frames (ping, close) are skipped.
#[derive(Debug, Default)]
pub struct Deframer {
    /// An incomplete frame from the last read.
    partial: Vec<u8>,
}

impl Deframer {
    /// Appends the lines in `input` to `out`. `Err` on a frame the server
    /// should never send (one too big to buffer).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let mut joined;
        let data: &[u8] = if self.partial.is_empty() {
            input
        } else {
            joined = std::mem::take(&mut self.partial);
            joined.extend_from_slice(input);
            &joined
        };
        let mut cursor = Cursor::new(data);
        loop {
            let start = cursor.position() as usize;
            let (header, len) = match FrameHeader::parse(&mut cursor) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(e) => return Err(format!("bad frame from the server: {e}")),
            };
            if len > super::client::MAX_LINE as u64 {
                return Err(format!("a {len}-byte frame from the server"));
            }
            let at = cursor.position() as usize;
            let end = at + len as usize;
            if end > data.len() {
                cursor.set_position(start as u64);
                break;
            }
            cursor.set_position(end as u64);
            if let OpCode::Data(_) = header.opcode {
                let payload = &data[at..end];
                match header.mask {
                    None => out.extend_from_slice(payload),
                    Some(key) => {
                        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]))
                    }
                }
                if header.is_final {
                    out.push(b'\n');
                }
            }
        }
        let used = cursor.position() as usize;
        self.partial = data[used..].to_vec();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server frame (unmasked).
    fn server_frame(payload: &[u8], out: &mut Vec<u8>) {
        let h = FrameHeader {
            opcode: OpCode::Data(Data::Text),
            ..FrameHeader::default()
        };
        h.format(payload.len() as u64, out).unwrap();
        out.extend_from_slice(payload);
    }

    #[test]
    fn frames_become_lines_however_they_are_cut() {
        let mut wire = Vec::new();
        server_frame(b"{\"type\":\"welcome\"}", &mut wire);
        server_frame(&[b'x'; 300], &mut wire);
        let mut want = b"{\"type\":\"welcome\"}\n".to_vec();
        want.extend_from_slice(&[b'x'; 300]);
        want.push(b'\n');
        for cut in 0..wire.len() {
            let (mut d, mut out) = (Deframer::default(), Vec::new());
            d.feed(&wire[..cut], &mut out).unwrap();
            d.feed(&wire[cut..], &mut out).unwrap();
            assert_eq!(out, want, "cut at {cut}");
        }
    }

    #[test]
    fn client_frames_are_masked_and_one_per_line() {
        let mut out = Vec::new();
        frame_lines(b"{\"cmd\":\"login\"}\r\n{\"cmd\":\"who\"}\n", &mut out);
        assert_eq!(out[0], 0x81, "final text frame");
        assert_eq!(out[1], 0x80 | 15, "masked, 15 bytes");
        assert_eq!(&out[6..21], b"{\"cmd\":\"login\"}");
        assert_eq!(out.len(), 2 * 6 + 15 + 13);
        let mut long = Vec::new();
        assert_eq!(frame(&[b'a'; 200], &mut long), 8, "16-bit length + mask");
    }

    #[test]
    fn the_upgrade_answer_is_checked() {
        assert_eq!(upgrade_response(b"HTTP/1.1 101 Switching"), None);
        let ok = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00";
        assert_eq!(upgrade_response(ok), Some(Ok(ok.len() - 2)));
        let no = b"HTTP/1.1 403 Forbidden\r\n\r\n";
        assert_eq!(
            upgrade_response(no),
            Some(Err("HTTP/1.1 403 Forbidden".into()))
        );
    }
}
