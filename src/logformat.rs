//! Cheaper formatting of log lines, byte for byte what
//! `tracing_subscriber::fmt`'s defaults write: the fields of a span or an
//! event ([`Fields`]) and the timestamp ([`Clock`]).
//!
//! A join storm logs three lines per connection, each in a span of its own
//! (`ConnLog`): the defaults spent ≈ 14k instructions per line, most of it
//! growing a span's field string a few bytes at a time (a `realloc` per
//! field) and converting the clock into a calendar date for every line
//! (docs/BENCHMARKS.md, stop 25). [`Fields`] writes the usual kinds of
//! fields straight into a reused buffer (anything else through the default
//! visitor) and hands the result over in one piece; [`Clock`] converts the
//! date once per second; [`Line`] writes the rest of the line without
//! `format!` machinery (stop 26).

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultFields, DefaultVisitor, Format, Full, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

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
            let mut v = Visitor {
                buf: &mut buf,
                empty: true,
                result: Ok(()),
            };
            fields.record(&mut v);
            v.result?;
            writer.write_str(&buf)
        })
    }
}

/// Writes fields as [`DefaultVisitor`] does: strings, integers and
/// `Display`/`Debug` values directly, anything else (errors with their
/// sources, strings that need escaping) through a [`DefaultVisitor`] on
/// the same buffer.
struct Visitor<'a> {
    buf: &'a mut String,
    /// No field written yet (the next one is not preceded by a space).
    empty: bool,
    result: fmt::Result,
}

/// Whether the log's sanitising would change `s` (an ESC, BEL, BS, FF or
/// DEL, or a C1 control, which UTF-8 writes after a 0xC2 byte).
fn needs_escapes(s: &str) -> bool {
    s.bytes()
        .any(|b| matches!(b, 0x07 | 0x08 | 0x0c | 0x1b | 0x7f | 0xc2))
}

/// Appends `s` as `tracing_subscriber`'s message sanitising writes it.
fn push_sanitized(buf: &mut String, s: &str) -> fmt::Result {
    if !needs_escapes(s) {
        buf.push_str(s);
        return Ok(());
    }
    for ch in s.chars() {
        match ch {
            '\x1b' => buf.push_str("\\x1b"),
            '\x07' => buf.push_str("\\x07"),
            '\x08' => buf.push_str("\\x08"),
            '\x0c' => buf.push_str("\\x0c"),
            '\x7f' => buf.push_str("\\x7f"),
            ch if (0x80..=0x9f).contains(&(ch as u32)) => write!(buf, "\\u{{{:x}}}", ch as u32)?,
            ch => buf.push(ch),
        }
    }
    Ok(())
}

impl Visitor<'_> {
    /// A space before every field but the first.
    fn pad(&mut self) {
        match self.empty {
            true => self.empty = false,
            false => self.buf.push(' '),
        }
    }

    /// `name=` (a raw identifier without its `r#`).
    fn name(&mut self, name: &str) {
        self.pad();
        self.buf.push_str(name.strip_prefix("r#").unwrap_or(name));
        self.buf.push('=');
    }

    /// The default visitor, for what is not written here.
    fn default(&mut self) -> DefaultVisitor<'_> {
        let empty = std::mem::replace(&mut self.empty, false);
        DefaultVisitor::new(Writer::new(&mut *self.buf), empty)
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        if field.name() == "message" {
            self.pad();
            self.result = push_sanitized(self.buf, value);
        } else if value
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        {
            // `Debug` of a string that needs no escapes: the string quoted.
            self.name(field.name());
            self.buf.push('"');
            self.buf.push_str(value);
            self.buf.push('"');
        } else {
            let mut v = self.default();
            v.record_str(field, value);
            self.result = v.finish();
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record_debug(field, &value)
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_debug(field, &value)
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.record_debug(field, &value)
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.result.is_err() {
            return;
        }
        let mut v = self.default();
        v.record_error(field, value);
        self.result = v.finish();
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        // `log` metadata the line has shown already (as the default skips it).
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        if name == "message" {
            // Formatted, then sanitised as the default's escaping writer
            // would have sanitised it on the way.
            self.pad();
            let start = self.buf.len();
            self.result = write!(self.buf, "{value:?}");
            if self.result.is_ok() && needs_escapes(&self.buf[start..]) {
                let raw = self.buf.split_off(start);
                self.result = push_sanitized(self.buf, &raw);
            }
            return;
        }
        self.name(name);
        self.result = write!(self.buf, "{value:?}");
    }
}

/// Writes an event's line as the default format (`Format<Full>` with
/// [`Clock`]) writes it without ANSI colours: time, level, the spans from
/// the root (`name{fields}:`), the target, the fields. With colours, and
/// for records that came through the `log` crate (whose metadata the
/// default normalises), it is that format itself.
#[derive(Debug)]
pub struct Line {
    default: Format<Full, Clock>,
    time: bool,
}

impl Default for Line {
    fn default() -> Self {
        Line {
            default: tracing_subscriber::fmt::format().with_timer(Clock),
            time: true,
        }
    }
}

impl Line {
    /// Lines without the time (as the default's `without_time`), for
    /// tests (which write no colours and no `log` records, so the default
    /// format kept for those, with the time, is not used).
    #[cfg(test)]
    fn without_time() -> Line {
        Line {
            time: false,
            ..Line::default()
        }
    }
}

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if writer.has_ansi_escapes() || meta.fields().field("log.target").is_some() {
            return self.default.format_event(ctx, writer, event);
        }
        if self.time {
            if Clock.format_time(&mut writer).is_err() {
                writer.write_str("<unknown time>")?;
            }
            writer.write_char(' ')?;
        }
        writer.write_str(match *meta.level() {
            Level::TRACE => "TRACE ",
            Level::DEBUG => "DEBUG ",
            Level::INFO => " INFO ",
            Level::WARN => " WARN ",
            Level::ERROR => "ERROR ",
        })?;
        if let Some(scope) = ctx.event_scope() {
            let mut seen = false;
            for span in scope.from_root() {
                writer.write_str(span.metadata().name())?;
                seen = true;
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>() {
                    if !fields.is_empty() {
                        writer.write_char('{')?;
                        writer.write_str(fields)?;
                        writer.write_char('}')?;
                    }
                }
                writer.write_char(':')?;
            }
            if seen {
                writer.write_char(' ')?;
            }
        }
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
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
    /// with the defaults (timestamps left out: they differ): each kind of
    /// field, strings that need escaping, messages the sanitising changes,
    /// an error with its source, nested spans and every level.
    #[test]
    fn lines_read_as_with_the_defaults() {
        fn capture(cheap: bool) -> String {
            let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
            let sink = out.clone();
            let make = move || Sink(sink.clone());
            let builder = tracing_subscriber::fmt()
                .with_writer(make)
                .with_ansi(false)
                .with_max_level(Level::TRACE)
                .without_time()
                .with_span_events(FmtSpan::NONE);
            let dispatch = match cheap {
                true => tracing::Dispatch::new(
                    builder
                        .fmt_fields(Fields::default())
                        .event_format(Line::without_time())
                        .finish(),
                ),
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
                let inner = span.in_scope(|| tracing::debug_span!("inner", r#type = "a\"b"));
                inner.in_scope(|| {
                    tracing::error!(neg = -5i64, yes = true, quote = "it's \\ \"so\"", "nested")
                });
                let bare = tracing::trace_span!("bare");
                bare.in_scope(|| tracing::trace!(tab = "a\tb", uni = "caf\u{e9} \u{85}", "é"));
                tracing::info!(
                    message = "\x1b[31mred\x07 \u{9b}x",
                    other = "\x1b",
                    path = "a\\b"
                );
                tracing::info!("formatted \x1b[0m{}", '\u{8f}');
                let err = std::io::Error::other(std::fmt::Error);
                let err: &(dyn std::error::Error + 'static) = &err;
                tracing::warn!(error = err, after = 1u64, "failed");
                let empty = tracing::info_span!("empty", later = tracing::field::Empty);
                empty.in_scope(|| tracing::info!(""));
                empty.record("later", 9u64);
                empty.record("later", "twice");
                empty.in_scope(|| tracing::info!(x = 1u64));
            });
            let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
            text
        }
        let (cheap, default) = (capture(true), capture(false));
        assert!(
            cheap.contains("conn{id=7 peer=127.0.0.1:51234 nick=\"alice\"}"),
            "{cheap}"
        );
        assert!(cheap.lines().count() >= 10, "{cheap}");
        assert_eq!(cheap, default);
    }

    /// Lines with the time are the default's too, but for the time
    /// itself: it is [`Clock`]'s, checked above.
    #[test]
    fn lines_with_the_time_read_as_with_the_defaults() {
        fn capture(cheap: bool) -> String {
            let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
            let sink = out.clone();
            let make = move || Sink(sink.clone());
            let builder = tracing_subscriber::fmt()
                .with_writer(make)
                .with_ansi(false)
                .with_timer(Clock);
            let dispatch = match cheap {
                true => tracing::Dispatch::new(
                    builder
                        .fmt_fields(Fields::default())
                        .event_format(Line::default())
                        .finish(),
                ),
                false => tracing::Dispatch::new(builder.finish()),
            };
            tracing::dispatcher::with_default(&dispatch, || {
                let span = tracing::info_span!("conn", id = 1u64);
                span.in_scope(|| tracing::info!("connected"));
            });
            let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
            text
        }
        let (cheap, default) = (capture(true), capture(false));
        assert_eq!(cheap.len(), default.len(), "{cheap}{default}");
        assert_eq!(cheap[27..], default[27..], "{cheap}{default}");
        assert!(cheap[27..].starts_with("  INFO conn{id=1}: "), "{cheap}");
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
