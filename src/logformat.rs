//! Cheaper formatting of log lines, byte for byte what
//! `tracing_subscriber::fmt`'s defaults write: the fields of a span or an
//! event ([`Fields`]) and the timestamp ([`Clock`]).
//!
//! A join storm logs three lines per connection, each in a span of its own
//! (`ConnLog`): the defaults spent ≈ 14k instructions per line, most of it
//! growing a span's field string a few bytes at a time (a `realloc` per
//! field) and converting the clock into a calendar date for every line
//! (docs/BENCHMARKS.md, stop 25). [`Fields`] runs the default visitor into
//! a reused buffer and hands the result over in one piece; [`Clock`]
//! converts the date once per second.

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};

use tracing_subscriber::field::{MakeVisitor, RecordFields, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::FormatFields;

/// Formats fields as [`DefaultFields`] does (`a=1 b="x"`, a `message`
/// bare), written into a per-thread buffer and copied to the line in one
/// write. With ANSI colours on, it is [`DefaultFields`] itself (its
/// writer's colour flag cannot be passed on).
#[derive(Debug, Default)]
pub struct Fields {
    default: DefaultFields,
}

thread_local! {
    /// Where fields are formatted before they are copied out; kept, so it
    /// stops growing after the first lines.
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

impl<'writer> FormatFields<'writer> for Fields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        if writer.has_ansi_escapes() || !writer.sanitizes_ansi_escapes() {
            return self.default.format_fields(writer, fields);
        }
        SCRATCH.with(|scratch| {
            // A field's `Debug` that logs would find the buffer taken.
            let Ok(mut buf) = scratch.try_borrow_mut() else {
                return self.default.format_fields(writer.by_ref(), fields);
            };
            buf.clear();
            let mut v = self.default.make_visitor(Writer::new(&mut *buf));
            fields.record(&mut v);
            v.finish()?;
            writer.write_str(&buf)
        })
    }
}

/// The wall clock as `tracing_subscriber::fmt::time::SystemTime` writes
/// it (RFC 3339, UTC, microseconds: `2026-12-01T12:43:40.123456Z`), with
/// the part up to the second converted once per second per thread.
#[derive(Debug, Default, Clone, Copy)]
pub struct Clock;

thread_local! {
    /// The second last written, and its text up to and with the `.`.
    static SECOND: Cell<(u64, [u8; 20])> = const { Cell::new((u64::MAX, [0; 20])) };
}

impl FormatTime for Clock {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let now = std::time::SystemTime::now();
        let Ok(since) = now.duration_since(std::time::UNIX_EPOCH) else {
            return tracing_subscriber::fmt::time::SystemTime.format_time(w);
        };
        let secs = since.as_secs();
        let (cached, mut prefix) = SECOND.get();
        if cached != secs {
            match second_prefix(secs) {
                Some(p) => prefix = p,
                None => return tracing_subscriber::fmt::time::SystemTime.format_time(w),
            }
            SECOND.set((secs, prefix));
        }
        let mut micros = since.subsec_micros();
        let mut tail = *b"000000Z";
        for d in tail[..6].iter_mut().rev() {
            *d = b'0' + (micros % 10) as u8;
            micros /= 10;
        }
        // Both are ASCII digits and punctuation.
        w.write_str(std::str::from_utf8(&prefix).map_err(|_| fmt::Error)?)?;
        w.write_str(std::str::from_utf8(&tail).map_err(|_| fmt::Error)?)
    }
}

/// `YYYY-MM-DDTHH:MM:SS.` for `secs` after the Unix epoch (`None` past
/// the year 9999, which the default writes differently).
fn second_prefix(secs: u64) -> Option<[u8; 20]> {
    let days = i64::try_from(secs / 86_400).ok()?;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    let mut s = String::with_capacity(20);
    write!(
        s,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
    .ok()?;
    s.as_bytes().try_into().ok()
}

/// The proleptic Gregorian date of a day count from 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::fmt::format::FmtSpan;

    #[test]
    fn dates_are_the_calendar() {
        let p = |s| String::from_utf8(second_prefix(s).unwrap().to_vec()).unwrap();
        assert_eq!(p(0), "1970-01-01T00:00:00.");
        assert_eq!(p(951_782_400), "2000-02-29T00:00:00.");
        assert_eq!(p(1_709_251_199), "2024-02-29T23:59:59.");
        assert_eq!(p(1_795_999_999), "2026-11-30T00:53:19.");
        assert_eq!(p(4_102_444_799), "2099-12-31T23:59:59.");
        assert_eq!(p(253_402_300_799), "9999-12-31T23:59:59.");
        assert!(second_prefix(253_402_300_800).is_none());
    }

    /// The clock reads as the default one: the same text up to the
    /// second (formatted again if a second boundary fell between them).
    #[test]
    fn the_clock_writes_what_the_default_writes() {
        loop {
            let (mut a, mut b) = (String::new(), String::new());
            tracing_subscriber::fmt::time::SystemTime
                .format_time(&mut Writer::new(&mut a))
                .unwrap();
            Clock.format_time(&mut Writer::new(&mut b)).unwrap();
            assert_eq!(a.len(), b.len(), "{a} {b}");
            assert!(b.ends_with('Z') && b.as_bytes()[19] == b'.', "{b}");
            if a[..20] == b[..20] {
                break;
            }
        }
    }

    /// Log lines with spans, recorded fields and events read exactly as
    /// with the defaults (timestamps left out: they differ).
    #[test]
    fn lines_read_as_with_the_defaults() {
        fn capture(cheap: bool) -> String {
            let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
            let sink = out.clone();
            let make = move || Sink(sink.clone());
            let builder = tracing_subscriber::fmt()
                .with_writer(make)
                .with_ansi(false)
                .without_time()
                .with_span_events(FmtSpan::NONE);
            let dispatch = match cheap {
                true => tracing::Dispatch::new(builder.fmt_fields(Fields::default()).finish()),
                false => tracing::Dispatch::new(builder.finish()),
            };
            tracing::dispatcher::with_default(&dispatch, || {
                let peer: std::net::SocketAddr = "127.0.0.1:51234".parse().unwrap();
                let nick = tracing::field::Empty;
                let span = tracing::info_span!("conn", id = 7u64, %peer, nick);
                span.in_scope(|| tracing::info!("connected"));
                span.record("nick", "alice");
                span.in_scope(|| tracing::info!(n = 3, what = ?"x y", "registered as {}", "alice"));
                tracing::warn!(reason = %"gone", "a line with no span");
            });
            let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
            text
        }
        let (cheap, default) = (capture(true), capture(false));
        assert!(
            cheap.contains("conn{id=7 peer=127.0.0.1:51234 nick=\"alice\"}"),
            "{cheap}"
        );
        assert_eq!(cheap, default);
    }

    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
