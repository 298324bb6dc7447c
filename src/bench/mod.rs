//! `natter bench`: the load generator. It opens many client connections to
//! a chat server on loopback, registers them and puts them in rooms, then
//! runs a timetable of messages and measures what arrives: deliveries per
//! second, end-to-end latency without coordinated omission, loss,
//! duplication and reordering per sender, connect rate, and (given the
//! server's pid) its memory and CPU. docs/BENCHMARKS.md documents every flag.
//!
//! The parts: [`scenario`] (named defaults and the resolved config),
//! [`payload`] and [`tracker`] (pure encoding and sequence bookkeeping),
//! [`driver`] (what each protocol says), [`net`] (sockets, limits, the
//! loopback rule), `client` (one connection's task), [`stats`] and
//! `monitor` (counters, /proc readings, progress), [`report`] (the result).
//! This file is the coordinator: it runs the phases.

pub mod abuse;
pub mod charts;
mod client;
pub mod driver;
mod monitor;
pub mod net;
pub mod payload;
pub mod report;
pub mod scenario;
pub mod stats;
pub mod timeline;
pub mod tracker;
pub mod ws;

use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::config::parse_duration;
use client::{Phase, Plan, Shared};
pub use driver::{Proto, TextOptions};
use monitor::{Monitor, Progress, Sampler};
pub use report::Report;
use report::{Cpu, ErrorEntry, Params, Percentiles, ServerReport, SetupReport, TrafficReport};
pub use scenario::{BenchConfig, Scenario};

/// `natter bench`: run a scenario (its flags), or `natter bench report DIR`.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchCommand {
    /// Something other than running a scenario.
    #[command(subcommand)]
    pub tool: Option<BenchTool>,
    /// The scenario to run and its flags.
    #[command(flatten)]
    pub run: BenchArgs,
}

/// `natter bench` tools that run no scenario.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchTool {
    /// Redraw the SVG charts from the `*.run.json` files in DIR (written by
    /// earlier runs with `--report DIR`), running nothing.
    Report {
        /// The directory the runs were written into.
        dir: std::path::PathBuf,
    },
}

/// `natter bench` flags. Unset flags take the scenario's defaults.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The scenario whose defaults to start from.
    #[arg(value_enum, default_value = "fanout")]
    pub scenario: Scenario,
    /// Server address; loopback only (127.0.0.0/8, ::1, localhost).
    /// Several, comma-separated (the nodes of a cluster): client i
    /// connects to the (i mod N)-th.
    #[arg(long, default_value = "127.0.0.1:7777")]
    pub target: String,
    /// Protocol the clients speak.
    #[arg(long, value_enum, default_value = "text")]
    pub proto: Proto,
    /// Connections to open.
    #[arg(long)]
    pub clients: Option<usize>,
    /// Rooms; client i joins room i mod ROOMS.
    #[arg(long)]
    pub rooms: Option<usize>,
    /// Messages per second per sending client.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Share of clients that send (0..1).
    #[arg(long)]
    pub active: Option<f64>,
    /// Payload bytes per message (at least 39).
    #[arg(long)]
    pub size: Option<usize>,
    /// Measured time (e.g. 10s); for idle, how long to hold the connections.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Sending before measuring starts.
    #[arg(long, value_parser = parse_duration)]
    pub warmup: Option<Duration>,
    /// Longest wait after the last scheduled send for deliveries.
    #[arg(long, value_parser = parse_duration)]
    pub drain: Option<Duration>,
    /// Connections connecting/registering at once.
    #[arg(long)]
    pub connect_concurrency: Option<usize>,
    /// Longest one connection may take to connect, register and join.
    #[arg(long, value_parser = parse_duration)]
    pub setup_timeout: Option<Duration>,
    /// Connections per source address (127.1.0.1, 127.1.0.2, …); 0: no bind.
    #[arg(long)]
    pub per_source: Option<usize>,
    /// Rooms are named PREFIX0, PREFIX1, … .
    #[arg(long)]
    pub room_prefix: Option<String>,
    /// Nicknames are PREFIX0, PREFIX1, … .
    #[arg(long)]
    pub nick_prefix: Option<String>,
    /// Whether senders get their own messages back (default: text true, irc false).
    #[arg(long)]
    pub echo: Option<bool>,
    /// Text: line sent after the nickname ("" for none).
    #[arg(long)]
    pub text_setup: Option<String>,
    /// Text: line that joins the room ("" for none); {room} and {nick} are filled in.
    #[arg(long)]
    pub text_join: Option<String>,
    /// Text: a client is ready once a line contains this; {nick}, {room} filled in.
    #[arg(long)]
    pub ready: Option<String>,
    /// Connect over TLS (to the main port, or an IRC TLS port with
    /// --proto irc); the certificate is not checked.
    #[arg(long)]
    pub tls: bool,
    /// Server process id: report its RSS and CPU.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Bench runtime threads (1: a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Write this run's per-second samples into DIR (`LABEL.run.json`) and
    /// draw every run found there on the same axes (SVG charts).
    #[arg(long, value_name = "DIR")]
    pub report: Option<std::path::PathBuf>,
    /// This run's name on the charts (default: the target address).
    #[arg(long)]
    pub label: Option<String>,
    /// Write this file (the number of clients ready) once setup is over.
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<std::path::PathBuf>,
    /// After setup, start sending only once this file exists (made by
    /// whoever runs the bench: e.g. bench/cluster.sh once every node has
    /// read every login); the wait is not part of any figure.
    #[arg(long, value_name = "PATH")]
    pub go_file: Option<std::path::PathBuf>,
}

impl BenchArgs {
    /// The scenario's defaults with every given flag applied.
    pub fn into_config(self) -> anyhow::Result<BenchConfig> {
        let targets = self
            .target
            .split(',')
            .map(|t| net::parse_target(t.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(anyhow::Error::msg)?;
        let Some(&target) = targets.first() else {
            anyhow::bail!("no --target");
        };
        let mut c = BenchConfig::new(self.scenario, target, self.proto);
        c.targets = targets;
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = self.$field { c.$field = v; } )* };
        }
        set!(
            clients,
            rooms,
            rate,
            active,
            size,
            duration,
            warmup,
            drain,
            setup_timeout,
            per_source,
            room_prefix,
            nick_prefix,
            echo
        );
        c.connect_concurrency = self.connect_concurrency.unwrap_or(
            self.scenario
                .defaults()
                .connect_concurrency
                .unwrap_or(c.clients),
        );
        if let Some(v) = self.text_setup {
            c.text.setup = v;
        }
        if let Some(v) = self.text_join {
            c.text.join = v;
        }
        if let Some(v) = self.ready {
            c.text.ready = v;
        }
        c.pid = self.pid;
        c.progress = !self.quiet;
        c.timeline = self.report.is_some();
        if let Some(label) = self.label {
            c.label = label;
        }
        c.ready_file = self.ready_file;
        c.go_file = self.go_file;
        if self.tls {
            c.tls = Some(crate::client::tls::client_config(
                crate::client::tls::Trust::Insecure,
            )?);
        }
        c.validate().map_err(anyhow::Error::msg)?;
        Ok(c)
    }
}

/// The `natter bench` command: a tool ([`BenchTool`]), or a scenario.
pub fn command(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd.tool {
        Some(BenchTool::Report { dir }) => redraw(&dir),
        None => run(cmd.run),
    }
}

/// `natter bench report DIR`: draws every run found in DIR again, as
/// `--report DIR` does after a run, and names the files written.
pub fn redraw(dir: &std::path::Path) -> anyhow::Result<()> {
    let runs = timeline::read_runs(dir)
        .with_context(|| format!("cannot read the runs in {}", dir.display()))?;
    if runs.is_empty() {
        anyhow::bail!(
            "no run in {} (runs are the *.run.json files that `natter bench … --report DIR` writes)",
            dir.display()
        );
    }
    let files = charts::write_dir(dir)
        .with_context(|| format!("cannot write the charts into {}", dir.display()))?;
    let labels: Vec<&str> = runs.iter().map(|r| r.label.as_str()).collect();
    eprintln!("{} runs: {}", runs.len(), labels.join(", "));
    for f in files {
        eprintln!("wrote {}", f.display());
    }
    Ok(())
}

/// Runs a scenario on the bench's own runtime and prints the report
/// (table or JSON) on stdout.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.scenario == Scenario::Abuse {
        return abuse::run(&args);
    }
    let threads = args.threads.max(1);
    let json = args.json;
    let report_dir = args.report.clone();
    let config = args.into_config()?;
    let rt = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    let report = rt.block_on(execute(config))?;
    let text = if json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        report.table()
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // `natter bench … | head` is fine.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        r => r.context("cannot write the report")?,
    }
    if let (Some(dir), Some(run)) = (&report_dir, &report.run_data) {
        let files = charts::write_run(dir, run)
            .with_context(|| format!("cannot write the charts into {}", dir.display()))?;
        for f in files {
            eprintln!("wrote {}", f.display());
        }
    }
    if report.setup.ready == 0 {
        anyhow::bail!("no client got ready; see the errors above");
    }
    Ok(())
}

/// Runs one bench on the current tokio runtime and returns what it measured.
pub async fn execute(cfg: BenchConfig) -> anyhow::Result<Report> {
    cfg.validate().map_err(anyhow::Error::msg)?;
    let mut warnings = Vec::new();
    let nofile = match net::raise_nofile(cfg.clients as u64 + 256) {
        Ok(n) => {
            if n.soft < cfg.clients as u64 + 16 {
                warnings.push(format!(
                    "open-file limit is {} (hard {}), below --clients {}: expect EMFILE",
                    n.soft, n.hard, cfg.clients
                ));
            }
            Some(n)
        }
        Err(e) => {
            warnings.push(format!("cannot read or raise RLIMIT_NOFILE: {e}"));
            None
        }
    };
    let mut mon = Monitor::new(cfg.pid);
    let mem_before = match cfg.pid {
        Some(pid) => Some(mon.last.with_context(|| {
            format!("--pid {pid}: cannot read /proc/{pid}/status (no such process?)")
        })?),
        None => None,
    };
    let shared = Arc::new(Shared::new(cfg.clone()));
    let n = cfg.clients;
    let mut progress = Progress::new(cfg.progress);
    let mut sampler = Sampler::new(cfg.timeline);
    let (phase_tx, phase_rx) = watch::channel(Phase::Setup);
    let t0 = mon.mark();
    let mut tasks = Vec::with_capacity(n);
    for id in 0..n {
        tasks.push(tokio::spawn(client::run(
            shared.clone(),
            id,
            phase_rx.clone(),
        )));
    }
    drop(phase_rx);

    // Setup: every client connected, registered and in its room, or failed.
    let c = &shared.counters;
    loop {
        let (ready, failed, skipped) = (
            c.ready.load(Relaxed),
            c.failed.load(Relaxed),
            c.skipped.load(Relaxed),
        );
        mon.sample();
        sampler.tick(&mon, 0);
        if progress.due() {
            progress.show(
                &format!("[setup] ready {ready}/{n}, failed {failed}, not tried {skipped}"),
                ready as u64,
                mon.mark(),
            );
        }
        if ready + failed + skipped >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t_setup = mon.mark();
    let mem_setup = mon.sample();
    let ready = c.ready.load(Relaxed);
    let setup_secs = if ready > 0 {
        let first = c.first_connect_ns.load(Relaxed);
        c.last_ready_ns.load(Relaxed).saturating_sub(first) as f64 / 1e9
    } else {
        0.0
    };

    if let Some(path) = &cfg.ready_file {
        if let Err(e) = std::fs::write(path, format!("{ready}\n")) {
            warnings.push(format!("cannot write {}: {e}", path.display()));
        }
    }
    if let Some(path) = &cfg.go_file {
        let since = std::time::Instant::now();
        while !path.exists() {
            mon.sample();
            sampler.tick(&mon, 0);
            if progress.due() {
                let waited = since.elapsed().as_secs();
                let line = format!(
                    "[wait] {ready} ready, {waited} s waiting for {}",
                    path.display()
                );
                progress.show(&line, ready as u64, mon.mark());
            }
            // Polling a file another process makes.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!(
            "waited {:.1} s after setup for {}",
            since.elapsed().as_secs_f64(),
            path.display()
        );
    }

    // Traffic (or, with nothing to send, holding the connections).
    let active = cfg.active_clients();
    let sends = active > 0 && ready > 0 && !(cfg.duration + cfg.warmup).is_zero();
    let mut traffic = None;
    // Time zero of the charts: the start of traffic, or of holding.
    let mut zero = std::time::Instant::now();
    if sends {
        let (t, start) =
            traffic_phase(&shared, &phase_tx, &mut mon, &mut progress, &mut sampler).await;
        traffic = Some(t);
        zero = start;
    } else if ready > 0 && !cfg.duration.is_zero() {
        let until = tokio::time::Instant::now() + cfg.duration + cfg.warmup;
        while tokio::time::Instant::now() < until {
            mon.sample();
            sampler.tick(&mon, 0);
            if progress.due() {
                let alive = ready - c.lost_before_start.load(Relaxed);
                progress.show(&format!("[hold] {alive} connections open"), 0, mon.mark());
            }
            let step = Duration::from_millis(100);
            tokio::time::sleep_until(until.min(tokio::time::Instant::now() + step)).await;
        }
    }
    let t_run = mon.mark();
    let mem_end = mon.sample();
    progress.finish();

    let _ = phase_tx.send(Phase::Stop);
    let stop_deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for t in tasks {
        if tokio::time::timeout_at(stop_deadline, t).await.is_err() {
            warnings.push("some connection tasks did not stop within 10 s".into());
            break;
        }
    }

    let (bench_setup, server_setup) = t0.cpu_until(&t_setup);
    let (bench_run, server_run) = t_setup.cpu_until(&t_run);
    let server = match (cfg.pid, mem_before) {
        (Some(pid), Some(before)) => {
            let after = mem_setup.map(|m| m.rss_kib);
            Some(ServerReport {
                pid,
                rss_before_kib: before.rss_kib,
                rss_after_setup_kib: after,
                rss_end_kib: mem_end.map(|m| m.rss_kib),
                peak_rss_kib: mon.max_rss_kib,
                rss_per_conn_bytes: after
                    .filter(|_| ready > 0)
                    .map(|after| (after as f64 - before.rss_kib as f64) * 1024.0 / ready as f64),
                rss_per_conn_end_bytes: mem_end.filter(|_| ready > 0).map(|end| {
                    (end.rss_kib as f64 - before.rss_kib as f64) * 1024.0 / ready as f64
                }),
                cpu: Cpu {
                    setup_percent: server_setup,
                    run_percent: if sends || !cfg.duration.is_zero() {
                        server_run
                    } else {
                        None
                    },
                },
            })
        }
        _ => None,
    };
    let lat = shared.latency.merged();
    let lag = shared.send_lag.merged();
    let target = cfg
        .targets
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let run_data = cfg.timeline.then(|| timeline::RunData {
        label: cfg.label.clone(),
        scenario: cfg.scenario.name().into(),
        proto: cfg.proto.name().into(),
        target: target.clone(),
        latency: shared
            .timeline
            .as_ref()
            .map(timeline::Timeline::per_second)
            .unwrap_or_default(),
        cdf: timeline::cdf_points(&lat),
        resources: sampler.samples(zero),
    });
    Ok(Report {
        scenario: cfg.scenario.name(),
        proto: cfg.proto.name(),
        target,
        params: Params {
            clients: n,
            rooms: cfg.rooms,
            active_clients: active,
            rate_per_client: cfg.rate,
            size_bytes: cfg.size,
            duration_s: cfg.duration.as_secs_f64(),
            warmup_s: cfg.warmup.as_secs_f64(),
            echo: cfg.echo,
            connect_concurrency: cfg.connect_concurrency,
        },
        nofile,
        setup: SetupReport {
            ready,
            failed: c.failed.load(Relaxed),
            skipped: c.skipped.load(Relaxed),
            lost_before_start: c.lost_before_start.load(Relaxed),
            seconds: setup_secs,
            connects_per_s: if setup_secs > 0.0 {
                ready as f64 / setup_secs
            } else {
                0.0
            },
        },
        traffic,
        latency_ms: Percentiles::from_us(&lat),
        send_lag_ms: Percentiles::from_us(&lag),
        bench_cpu: Cpu {
            setup_percent: bench_setup,
            run_percent: if sends || !cfg.duration.is_zero() {
                bench_run
            } else {
                None
            },
        },
        server,
        errors: shared
            .errors
            .list()
            .into_iter()
            .map(|(kind, count, example)| ErrorEntry {
                kind,
                count,
                example,
            })
            .collect(),
        warnings,
        run_data,
    })
}

/// Receivers of each sender: the ready members of its room (minus itself
/// without echo), as the run starts.
fn receivers_per_room(shared: &Shared) -> Vec<u64> {
    let cfg = &shared.cfg;
    let mut members = vec![0u64; cfg.rooms];
    for (id, r) in shared.ready.iter().enumerate() {
        if r.load(Relaxed) {
            members[cfg.room_of(id)] += 1;
        }
    }
    if !cfg.echo {
        for m in &mut members {
            *m = m.saturating_sub(1);
        }
    }
    members
}

/// Deliveries the messages written so far should produce.
fn expected(shared: &Shared, receivers: &[u64], active: usize) -> u64 {
    (0..active)
        .map(|id| shared.sent_by[id].load(Relaxed) as u64 * receivers[shared.cfg.room_of(id)])
        .sum()
}

/// Sends the timetable, waits for the deliveries, and tallies the traffic.
async fn traffic_phase(
    shared: &Shared,
    phase_tx: &watch::Sender<Phase>,
    mon: &mut Monitor,
    progress: &mut Progress,
    sampler: &mut Sampler,
) -> (TrafficReport, std::time::Instant) {
    let cfg = &shared.cfg;
    let c = &shared.counters;
    let active = cfg.active_clients();
    let receivers = receivers_per_room(shared);
    // Start a little ahead so every task has the plan before its first send.
    let lead = Duration::from_millis(100) + Duration::from_micros(2 * cfg.clients as u64);
    let start_ns = shared.now_ns() + lead.as_nanos() as u64;
    let warm_end_ns = start_ns + cfg.warmup.as_nanos() as u64;
    let end_ns = warm_end_ns + cfg.duration.as_nanos() as u64;
    let plan = Plan {
        start_ns,
        warm_end_ns,
        end_ns,
        interval_ns: (1e9 / cfg.rate).round().max(1.0) as u64,
        active: active as u32,
    };
    let _ = phase_tx.send(Phase::Go(plan));
    let offered_msgs = active as f64 * cfg.rate;
    let offered_deliveries: f64 = (0..active)
        .map(|id| cfg.rate * receivers[cfg.room_of(id)] as f64)
        .sum();

    let end = shared.instant_at(end_ns);
    let drain_deadline = end + cfg.drain;
    let mut drain_timed_out = false;
    loop {
        let now = tokio::time::Instant::now();
        mon.sample();
        let sending = now < end;
        let unique = c.unique.load(Relaxed);
        sampler.tick(mon, unique);
        if progress.due() {
            let t = shared.now_ns() as f64 / 1e9 - start_ns as f64 / 1e9;
            let label = if sending {
                format!("[run {t:.1}/{:.0}s]", (end_ns - start_ns) as f64 / 1e9)
            } else {
                "[drain]".to_string()
            };
            progress.show(
                &format!(
                    "{label} sent {}, delivered {unique}, dropped {}",
                    c.sent.load(Relaxed),
                    c.dropped.load(Relaxed)
                ),
                unique,
                mon.mark(),
            );
        }
        if !sending {
            let done = c.pending_senders.load(Relaxed) == 0
                && unique >= expected(shared, &receivers, active);
            if done {
                break;
            }
            if now >= drain_deadline {
                drain_timed_out = true;
                break;
            }
        }
        let step = if sending { 100 } else { 5 };
        tokio::time::sleep(Duration::from_millis(step)).await;
    }
    let drain_seconds = tokio::time::Instant::now()
        .saturating_duration_since(end)
        .as_secs_f64();
    let sent = c.sent.load(Relaxed);
    let expected_deliveries = expected(shared, &receivers, active);
    let delivered = c.unique.load(Relaxed);
    let in_window = c.in_window.load(Relaxed);
    let messages = c.messages_in_window.load(Relaxed);
    let sending_secs = (end_ns - start_ns) as f64 / 1e9;
    let window_secs = cfg.duration.as_secs_f64();
    let report = TrafficReport {
        sent,
        sent_per_s: if sending_secs > 0.0 {
            sent as f64 / sending_secs
        } else {
            0.0
        },
        offered_messages_per_s: offered_msgs,
        offered_deliveries_per_s: offered_deliveries,
        expected_deliveries,
        delivered,
        lost: expected_deliveries.saturating_sub(delivered),
        duplicated: c.duplicates.load(Relaxed),
        out_of_order: c.late.load(Relaxed),
        sequence_gaps: c.gaps.load(Relaxed),
        unexpected: c.unexpected.load(Relaxed),
        delivered_in_window: in_window,
        deliveries_per_s: if window_secs > 0.0 {
            in_window as f64 / window_secs
        } else {
            0.0
        },
        messages_delivered_in_window: messages,
        messages_per_s: if window_secs > 0.0 {
            messages as f64 / window_secs
        } else {
            0.0
        },
        dropped_connections: c.dropped.load(Relaxed),
        drain_seconds,
        drain_timed_out,
    };
    (report, shared.instant_at(start_ns).into_std())
}
