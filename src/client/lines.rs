//! Line framing for what the server sends: splits a byte stream on `\n`
//! (dropping a `\r` before it) however it is chunked, decodes lossily (a bad
//! byte never ends the session), and caps a line's length: a longer line is
//! discarded as it arrives, never buffered whole.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Reads lines from `R`, at most `max` bytes each.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    max: usize,
    /// Inside an over-long line: drop bytes until its end.
    discarding: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub fn new(inner: R, max: usize) -> LineReader<R> {
        LineReader {
            inner,
            buf: Vec::with_capacity(4096),
            max,
            discarding: false,
        }
    }

    /// The next line without its ending; `None` at end of stream (a final
    /// unterminated line is returned first).
    pub async fn next_line(&mut self) -> std::io::Result<Option<String>> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if std::mem::take(&mut self.discarding) || line.len() > self.max {
                    continue;
                }
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            if self.buf.len() > self.max {
                self.buf.clear();
                self.discarding = true;
            }
            let mut chunk = [0u8; 8192];
            let n = self.inner.read(&mut chunk).await?;
            if n == 0 {
                if self.buf.is_empty() || self.discarding {
                    return Ok(None);
                }
                let line = std::mem::take(&mut self.buf);
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn splits_any_chunking_and_caps_length() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut r = LineReader::new(rx, 10);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for chunk in [
                &b"he"[..],
                b"llo\r\nw",
                b"orld\n",
                b"0123456789abcdef",
                b"ghij\nok\n",
                "\u{5c0f}".as_bytes(),
                b"\xff\ntail",
            ] {
                tx.write_all(chunk).await.unwrap();
            }
        });
        let mut got = Vec::new();
        while let Some(l) = r.next_line().await.unwrap() {
            got.push(l);
        }
        writer.await.unwrap();
        assert_eq!(got, ["hello", "world", "ok", "\u{5c0f}\u{fffd}", "tail"]);
    }
}
