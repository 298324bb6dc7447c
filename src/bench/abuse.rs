//! `natter bench abuse`: the attacks of issue 14, one after another, at the
//! server's default settings, next to a canary — a member of its own room
//! that says a line 8 times a second and times how long its own line takes
//! to come back. For each attack it reports the server's peak RSS (given
//! `--pid`) and the canary's latency; at the end, the RSS `--drain` after
//! the last attack (default 60 s). docs/BENCHMARKS.md has the figures.
//!
//! The attacks (`--duration` is how long each is held):
//! * `list`: 9 900 rooms (990 IRC members make 10 each), then 64
//!   connections each send `LIST` 20 times and never read;
//! * `rooms`: 160 text connections each ask `/rooms` and never read;
//! * `stall`: 500 JSON members of one room stop reading while 50 text
//!   members say 4 KB lines of `"` (8 KB once JSON-escaped), 5 a second each;
//! * `bans`: 64 IRC connections each make 5 rooms and fill their ban lists;
//! * `backlog`: a client pushes 177 000 lines into its socket and closes
//!   it; reported is how long until its nick is free again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::stats::read_mem;
use super::BenchArgs;

/// How often the canary speaks.
const CANARY_EVERY: Duration = Duration::from_millis(125);
/// How often the server's RSS is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// One connection, line by line.
struct Conn {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
}

impl Conn {
    async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        let s = TcpStream::connect(addr).await.context("connect")?;
        s.set_nodelay(true)?;
        let (r, w) = s.into_split();
        Ok(Conn {
            r: BufReader::new(r),
            w,
        })
    }

    async fn send(&mut self, line: &str) -> anyhow::Result<()> {
        self.w.write_all(format!("{line}\r\n").as_bytes()).await?;
        Ok(())
    }

    /// Reads until a line contains `needle`.
    async fn until(&mut self, needle: &str) -> anyhow::Result<()> {
        let mut line = String::new();
        loop {
            line.clear();
            let n = tokio::time::timeout(Duration::from_secs(30), self.r.read_line(&mut line))
                .await
                .with_context(|| format!("waiting for {needle:?}"))??;
            anyhow::ensure!(n > 0, "closed while waiting for {needle:?}");
            if line.contains(needle) {
                return Ok(());
            }
        }
    }

    /// An IRC client registered as `nick`, past the message of the day.
    async fn irc(addr: SocketAddr, nick: &str) -> anyhow::Result<Conn> {
        let mut c = Conn::open(addr).await?;
        c.send(&format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}"))
            .await?;
        c.until(" 376 ").await?;
        Ok(c)
    }

    /// A text user registered as `nick`.
    async fn text(addr: SocketAddr, nick: &str) -> anyhow::Result<Conn> {
        let mut c = Conn::open(addr).await?;
        c.send(nick).await?;
        c.until("You are now known as").await?;
        Ok(c)
    }

    /// A JSON user logged in as `nick`, in `room`.
    async fn json(addr: SocketAddr, nick: &str, room: &str) -> anyhow::Result<Conn> {
        let mut c = Conn::open(addr).await?;
        c.send(&format!(r#"{{"cmd":"login","nick":"{nick}"}}"#))
            .await?;
        c.until("\"registered\"").await?;
        c.send(&format!(r#"{{"cmd":"join","room":"{room}"}}"#))
            .await?;
        c.until("\"presence\"").await?;
        Ok(c)
    }

    /// Reads and discards everything from now on (a well-behaved idle member).
    fn drain(self) -> (OwnedWriteHalf, JoinHandle<()>) {
        let mut r = self.r;
        let task = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut r, &mut tokio::io::sink()).await;
        });
        (self.w, task)
    }
}

/// Opens `n` connections with `open`, one after another.
async fn many<F, Fut>(n: usize, open: F) -> anyhow::Result<Vec<Conn>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Conn>>,
{
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(open(i).await?);
    }
    Ok(out)
}

/// What the canary and the RSS sampler saw during one phase.
#[derive(Default)]
struct Window {
    latencies_us: Vec<u64>,
    peak_rss_kib: u64,
}

/// The canary and the sampler write here; the coordinator swaps windows.
#[derive(Default)]
struct Watch {
    window: Mutex<Window>,
    rss_kib: AtomicU64,
    stop: AtomicBool,
}

impl Watch {
    fn take(&self) -> Window {
        std::mem::take(&mut *self.window.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// One phase's figures.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    pub attack: String,
    pub peak_rss_mib: f64,
    pub canary_lines: usize,
    pub canary_p50_ms: f64,
    pub canary_p99_ms: f64,
    pub canary_max_ms: f64,
    /// Anything else worth saying (e.g. how long a nick took to free).
    pub note: String,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct AbuseReport {
    pub baseline_rss_mib: f64,
    pub phases: Vec<PhaseReport>,
    pub peak_rss_mib: f64,
    pub settle_secs: u64,
    pub rss_after_settle_mib: f64,
}

fn mib(kib: u64) -> f64 {
    (kib as f64 / 1024.0 * 10.0).round() / 10.0
}

fn phase(attack: &str, w: Window, note: String) -> PhaseReport {
    let mut l = w.latencies_us;
    l.sort_unstable();
    let pct = |p: f64| match l.len() {
        0 => 0.0,
        n => l[((n - 1) as f64 * p).round() as usize] as f64 / 1000.0,
    };
    PhaseReport {
        attack: attack.to_string(),
        peak_rss_mib: mib(w.peak_rss_kib),
        canary_lines: l.len(),
        canary_p50_ms: pct(0.50),
        canary_p99_ms: pct(0.99),
        canary_max_ms: pct(1.0),
        note,
    }
}

/// `natter bench abuse`.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let addr = super::net::parse_target(&args.target).map_err(anyhow::Error::msg)?;
    super::net::check_loopback(addr).map_err(anyhow::Error::msg)?;
    let _ = super::net::raise_nofile(20_000);
    let hold = args.duration.unwrap_or(Duration::from_secs(15));
    let settle = args.drain.unwrap_or(Duration::from_secs(60));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    let report = rt.block_on(soak(addr, args.pid, hold, settle, args.quiet))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report));
    }
    Ok(())
}

fn table(r: &AbuseReport) -> String {
    let mut s = format!(
        "baseline RSS {:.1} MiB\n{:<8} {:>10} {:>7} {:>9} {:>9} {:>9}  note\n",
        r.baseline_rss_mib, "attack", "peak MiB", "lines", "p50 ms", "p99 ms", "max ms"
    );
    for p in &r.phases {
        s += &format!(
            "{:<8} {:>10.1} {:>7} {:>9.1} {:>9.1} {:>9.1}  {}\n",
            p.attack,
            p.peak_rss_mib,
            p.canary_lines,
            p.canary_p50_ms,
            p.canary_p99_ms,
            p.canary_max_ms,
            p.note
        );
    }
    s += &format!(
        "peak RSS {:.1} MiB; RSS {} s after the last attack {:.1} MiB\n",
        r.peak_rss_mib, r.settle_secs, r.rss_after_settle_mib
    );
    s
}

/// Starts the RSS sampler and the canary.
async fn watchers(addr: SocketAddr, pid: Option<u32>, watch: &Arc<Watch>) -> anyhow::Result<()> {
    if let Some(pid) = pid {
        let w = watch.clone();
        tokio::spawn(async move {
            while !w.stop.load(Relaxed) {
                if let Some(m) = read_mem(pid) {
                    w.rss_kib.store(m.rss_kib, Relaxed);
                    let mut win = w.window.lock().unwrap_or_else(|e| e.into_inner());
                    win.peak_rss_kib = win.peak_rss_kib.max(m.rss_kib);
                }
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
        });
    }
    let mut canary = Conn::text(addr, "canary").await?;
    canary.send("/color off\r\n/join canary").await?;
    canary.until("*** In #canary").await?;
    let (mut w, mut r) = (canary.w, canary.r);
    let start = Instant::now();
    let stop = watch.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CANARY_EVERY);
        while !stop.stop.load(Relaxed) {
            tick.tick().await;
            let line = format!("c {}\r\n", start.elapsed().as_micros());
            if w.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let w = watch.clone();
    tokio::spawn(async move {
        let mut line = String::new();
        while let Ok(n) = r.read_line(&mut line).await {
            if n == 0 {
                return;
            }
            let sent = line
                .trim_end()
                .strip_prefix("canary: c ")
                .and_then(|t| t.parse::<u64>().ok());
            if let Some(sent) = sent {
                let took = (start.elapsed().as_micros() as u64).saturating_sub(sent);
                let mut win = w.window.lock().unwrap_or_else(|e| e.into_inner());
                win.latencies_us.push(took);
            }
            line.clear();
        }
    });
    Ok(())
}

fn say(quiet: bool, what: &str) {
    if !quiet {
        eprintln!("abuse: {what}");
    }
}

async fn soak(
    addr: SocketAddr,
    pid: Option<u32>,
    hold: Duration,
    settle: Duration,
    quiet: bool,
) -> anyhow::Result<AbuseReport> {
    let watch = Arc::new(Watch::default());
    watchers(addr, pid, &watch).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let baseline = watch.rss_kib.load(Relaxed);
    let mut phases = Vec::new();
    let mut peak = baseline;
    let mut end = |name: &str, note: String, phases: &mut Vec<PhaseReport>| {
        let w = watch.take();
        peak = peak.max(w.peak_rss_kib);
        phases.push(phase(name, w, note));
    };

    say(quiet, "list: making 9 900 rooms");
    let makers = many(990, |i| async move {
        let mut c = Conn::irc(addr, &format!("mk{i}")).await?;
        let rooms: Vec<String> = (0..10).map(|j| format!("#l{i}x{j}")).collect();
        c.send(&format!("JOIN {}", rooms.join(","))).await?;
        c.until(&format!("#l{i}x9 :End")).await?;
        Ok(c)
    })
    .await?;
    let makers: Vec<_> = makers.into_iter().map(Conn::drain).collect();
    watch.take();
    say(quiet, "list: 64 connections × 20 LIST, never read");
    let hogs = many(64, |i| async move {
        let mut c = Conn::irc(addr, &format!("lister{i}")).await?;
        c.w.write_all("LIST\r\n".repeat(20).as_bytes()).await?;
        Ok(c)
    })
    .await?;
    tokio::time::sleep(hold).await;
    drop(hogs);
    end("list", "9 900 rooms".into(), &mut phases);

    say(quiet, "rooms: 160 × /rooms, never read");
    let askers = many(160, |i| async move {
        let mut c = Conn::text(addr, &format!("asker{i}")).await?;
        c.send("/rooms").await?;
        Ok(c)
    })
    .await?;
    tokio::time::sleep(hold).await;
    drop(askers);
    for (w, task) in makers {
        drop(w);
        task.abort();
    }
    end("rooms", "9 900 rooms".into(), &mut phases);

    say(
        quiet,
        "stall: 500 JSON members stop reading, 50 say 4 KB lines",
    );
    let stalled = many(500, |i| async move {
        Conn::json(addr, &format!("st{i}"), "stall").await
    })
    .await?;
    let talkers = many(50, |i| async move {
        let mut c = Conn::text(addr, &format!("tk{i}")).await?;
        c.send("/join stall").await?;
        c.until("*** In #stall").await?;
        Ok(c)
    })
    .await?;
    let text = "\"".repeat(4000);
    let stop_talking = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in talkers {
        let (mut w, reader) = c.drain();
        let (stop, text) = (stop_talking.clone(), text.clone());
        tasks.push(reader);
        tasks.push(tokio::spawn(async move {
            let line = format!("{text}\r\n");
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            while !stop.load(Relaxed) {
                tick.tick().await;
                if w.write_all(line.as_bytes()).await.is_err() {
                    return;
                }
            }
        }));
    }
    tokio::time::sleep(hold).await;
    stop_talking.store(true, Relaxed);
    for t in tasks {
        t.abort();
    }
    drop(stalled);
    end(
        "stall",
        "500 × 4 KB-line readers stalled".into(),
        &mut phases,
    );

    say(quiet, "bans: 64 connections × 5 rooms × full ban lists");
    let mut banners = Vec::new();
    for i in 0..64 {
        // At once: each is held to flood_rate, so one after another would
        // take minutes.
        banners.push(tokio::spawn(async move {
            let mut c = Conn::irc(addr, &format!("ban{i}")).await?;
            for r in 0..5 {
                c.send(&format!("JOIN #b{i}x{r}")).await?;
                for k in (0..100).step_by(4) {
                    let masks: Vec<String> = (k..k + 4)
                        .map(|m| format!("*!*@evil{m}.x{i}.example"))
                        .collect();
                    c.send(&format!("MODE #b{i}x{r} +bbbb {}", masks.join(" ")))
                        .await?;
                }
                // One room at a time: its 26 lines wait for flood control
                // within the receive queue.
                c.send(&format!("PING :room{r}")).await?;
                c.until(&format!("room{r}")).await?;
            }
            anyhow::Ok(c)
        }));
    }
    let mut held = Vec::new();
    for b in banners {
        held.push(b.await??);
    }
    tokio::time::sleep(hold).await;
    drop(held);
    end("bans", "32 000 bans".into(), &mut phases);

    say(
        quiet,
        "backlog: 177 000 lines pushed, then the socket closed",
    );
    let mut flooder = Conn::text(addr, "flooder").await?;
    let lines = "x\r\n".repeat(177_000);
    let _ = flooder.w.write_all(lines.as_bytes()).await;
    drop(flooder);
    let closed = Instant::now();
    let mut freed = None;
    while closed.elapsed() < hold {
        let mut probe = Conn::open(addr).await?;
        probe.send("flooder").await?;
        let mut line = String::new();
        let mut taken = false;
        loop {
            line.clear();
            if probe.r.read_line(&mut line).await? == 0 {
                break;
            }
            if line.contains("You are now known as flooder") {
                freed = Some(closed.elapsed());
                break;
            }
            if line.contains("taken") {
                taken = true;
                break;
            }
        }
        if freed.is_some() || !taken {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let note = match freed {
        Some(t) => format!("nick free {} ms after close", t.as_millis()),
        None => "nick still taken".into(),
    };
    tokio::time::sleep(hold).await;
    end("backlog", note, &mut phases);

    say(quiet, &format!("settling for {} s", settle.as_secs()));
    tokio::time::sleep(settle).await;
    let after = watch.rss_kib.load(Relaxed);
    watch.stop.store(true, Relaxed);
    Ok(AbuseReport {
        baseline_rss_mib: mib(baseline),
        phases,
        peak_rss_mib: mib(peak),
        settle_secs: settle.as_secs(),
        rss_after_settle_mib: mib(after),
    })
}
