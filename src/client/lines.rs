//! Lines from what the server sends: an async reader around the shared
//! [`LineDecoder`] (src/proto/line.rs), set up for a client: no telnet
//! stripping, lossy UTF-8 (a bad byte never ends the session or hides a
//! line), a capped line length (a longer line is dropped as it arrives,
//! never buffered whole), and a final unterminated line kept at the end.

use std::collections::VecDeque;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::proto::line::LineDecoder;

/// Reads lines from `R`, at most `max` bytes each.
pub struct LineReader<R> {
    inner: R,
    decoder: LineDecoder,
    /// Lines decoded but not yet returned.
    ready: VecDeque<String>,
    /// The stream has ended.
    ended: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub fn new(inner: R, max: usize) -> LineReader<R> {
        let mut decoder = LineDecoder::new(max);
        decoder.without_telnet();
        decoder.lossy_utf8();
        LineReader {
            inner,
            decoder,
            ready: VecDeque::new(),
            ended: false,
        }
    }

    /// The next line without its ending; `None` at end of stream (a final
    /// unterminated line is returned first). Cancel-safe: nothing read is
    /// lost if the future is dropped (it is raced in a `select!`).
    pub async fn next_line(&mut self) -> std::io::Result<Option<String>> {
        loop {
            if let Some(line) = self.ready.pop_front() {
                return Ok(Some(line));
            }
            if self.ended {
                return Ok(None);
            }
            let mut chunk = [0u8; 8192];
            let n = self.inner.read(&mut chunk).await?;
            // Over-long lines (the only error when decoding lossily) are dropped.
            let ready = &mut self.ready;
            let keep = |line: Result<String, _>| ready.extend(line.ok());
            if n == 0 {
                self.ended = true;
                self.decoder.end(keep);
            } else {
                self.decoder.feed(&chunk[..n], keep);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The framing itself is tested with the decoder (src/proto/line.rs);
    // this checks the reader around it: reads of any size, dropped
    // over-long lines, and the unterminated last line.
    #[tokio::test]
    async fn reads_lines_drops_long_ones_and_keeps_the_tail() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut r = LineReader::new(rx, 10);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for chunk in [&b"he"[..], b"llo\r\n0123456789abc", b"def\n\xff", b"\ntail"] {
                tx.write_all(chunk).await.unwrap();
            }
        });
        let mut got = Vec::new();
        while let Some(l) = r.next_line().await.unwrap() {
            got.push(l);
        }
        writer.await.unwrap();
        assert_eq!(got, ["hello", "\u{fffd}", "tail"]);
    }
}
