//! The log's writer: a formatted log line is handed to one thread of its
//! own, which writes what has piled up to standard error in one `write`
//! and then rests a few milliseconds (`NATTER_LOG_LINGER`), so the
//! runtime's workers never make a system call for a log line (no write,
//! and no wakeup of the writer while it rests) or block on a slow terminal
//! or a full pipe. A join storm logs three lines
//! per connection; written by the workers themselves they were ~3 % of its
//! server CPU (docs/BENCHMARKS.md, stop 23).
//!
//! Bounded: at most `NATTER_LOG_BUFFER` lines wait (default
//! [`DEFAULT_LINES`]); a worker that finds the buffer full waits for room,
//! as it used to wait for stderr, so no line is lost. The order of lines
//! from one thread is kept; lines from different threads are written in
//! the order they were handed over. [`LogGuard`], dropped when `main`
//! returns, writes what is left before the process exits.

use std::io::Write;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::Duration;

/// Lines that may wait for the writer thread, unless `NATTER_LOG_BUFFER`
/// says otherwise (docs/OPERATING.md).
pub const DEFAULT_LINES: usize = 4096;

/// How long the writer rests after a write unless `NATTER_LOG_LINGER`
/// (milliseconds) says otherwise: lines that come meanwhile wait in the
/// buffer, and their threads do not wake the writer (a wakeup per line cost
/// a futex call and a context switch each, as much as the write it saved).
pub const DEFAULT_LINGER: Duration = Duration::from_millis(10);

/// How long [`LogGuard`]'s drop waits for the writer to finish.
const FLUSH_PATIENCE: Duration = Duration::from_secs(5);

enum Msg {
    Line(Vec<u8>),
    /// Write everything before this, then answer.
    Flush(SyncSender<()>),
}

/// Hands formatted lines to the writer thread (a `tracing_subscriber`
/// `MakeWriter`: cheap to clone, one per event).
#[derive(Clone)]
pub struct LogWriter {
    tx: SyncSender<Msg>,
}

/// Flushes the log when dropped (keep it alive until `main` returns).
pub struct LogGuard {
    tx: SyncSender<Msg>,
}

/// Starts the writer thread over `out` with room for `lines` waiting lines
/// (at least 1). If the thread cannot be started, says so on stderr and
/// the log's lines are dropped (nothing waits for a thread that is not there).
pub fn spawn<W: Write + Send + 'static>(
    out: W,
    lines: usize,
    linger: Duration,
) -> (LogWriter, LogGuard) {
    let (tx, rx) = sync_channel(lines.max(1));
    let started = std::thread::Builder::new()
        .name("natter-log".into())
        .spawn(move || write_loop(rx, out, linger));
    if let Err(e) = started {
        eprintln!("natter: cannot start the log thread ({e}); log lines are lost");
    }
    (LogWriter { tx: tx.clone() }, LogGuard { tx })
}

/// The number of lines `NATTER_LOG_BUFFER` asks for, or the default.
pub fn buffer_from_env() -> usize {
    std::env::var("NATTER_LOG_BUFFER")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_LINES)
}

/// The rest after each write that `NATTER_LOG_LINGER` asks for (in
/// milliseconds, 0: none), or the default.
pub fn linger_from_env() -> Duration {
    std::env::var("NATTER_LOG_LINGER")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map_or(DEFAULT_LINGER, Duration::from_millis)
}

/// The writer thread: waits for a line, then takes every line already
/// waiting, writes them together and rests for `linger` (a flush request
/// is answered once what came before it is written).
fn write_loop<W: Write>(rx: Receiver<Msg>, out: W, linger: Duration) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Line(line) => {
                    // A log that cannot be written has nowhere to say so.
                    let _ = out.write_all(&line);
                }
                Msg::Flush(done) => {
                    let _ = out.flush();
                    let _ = done.send(());
                }
            }
            next = rx.try_recv().ok();
        }
        let _ = out.flush();
        if !linger.is_zero() {
            std::thread::sleep(linger);
        }
    }
    let _ = out.flush();
}

impl Write for LogWriter {
    /// `tracing_subscriber::fmt` formats an event into one buffer and
    /// writes it with one call: one message per line.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .send(Msg::Line(buf.to_vec()))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        self.clone()
    }
}

impl LogGuard {
    /// Waits until every line handed over before this call is written.
    pub fn flush(&self) {
        let (done_tx, done_rx) = sync_channel(1);
        if self.tx.send(Msg::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(FLUSH_PATIENCE);
        }
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A `Write` that keeps what it is given and counts the calls.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut s = self.0.lock().expect("sink");
            s.0.extend_from_slice(buf);
            s.1 += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_in_order_and_a_flush_waits_for_them() {
        let sink = Sink::default();
        // A buffer of 2 lines: senders wait for room, nothing is lost.
        let (w, guard) = spawn(sink.clone(), 2, Duration::from_millis(1));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        w.write_all(format!("t{t} {i}\n").as_bytes())
                            .expect("handed over");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("sender");
        }
        guard.flush();
        let text = String::from_utf8(sink.0.lock().expect("sink").0.clone()).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2000);
        for t in 0..4 {
            let mine: Vec<usize> = lines
                .iter()
                .filter_map(|l| l.strip_prefix(&format!("t{t} ")))
                .map(|n| n.parse().expect("a number"))
                .collect();
            assert_eq!(mine, (0..500).collect::<Vec<_>>(), "thread {t}");
        }
    }

    #[test]
    fn lines_that_pile_up_leave_in_one_write() {
        let sink = Sink::default();
        let (tx, rx) = sync_channel(10_000);
        for i in 0..5000 {
            tx.send(Msg::Line(format!("line {i}\n").into_bytes()))
                .expect("queued");
        }
        drop(tx);
        write_loop(rx, sink.clone(), Duration::ZERO);
        let s = sink.0.lock().expect("sink");
        let text = String::from_utf8(s.0.clone()).expect("utf-8");
        assert_eq!(text.lines().count(), 5000);
        assert!(text.ends_with("line 4999\n"));
        // One write per line would be 5000; through the 64 KiB buffer,
        // 48 890 bytes that were all waiting leave in one.
        assert_eq!(s.1, 1, "{} writes for 5000 lines", s.1);
    }
}
