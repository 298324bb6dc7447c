//! The report's charts: every run found in a `--report` directory drawn on
//! the same axes, as SVG (plotters, SVG backend only). [`charts`] turns
//! runs into chart data (pure, tested); [`render`] draws a set of charts
//! as the stacked panels of one SVG file; [`write_dir`] does both for a
//! directory.
//!
//! Files: `latency.svg` (p50 and p99 per second of traffic, log axis),
//! `cdf.svg` (share of messages delivered within a latency, log axis),
//! `server.svg` (server RSS and CPU per second), `throughput.svg`
//! (deliveries per second).

use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::timeline::{read_runs, RunData};

/// How an axis maps values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Linear,
    /// Base 10; values ≤ 0 are left out.
    Log,
}

/// One line: a run's values.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    /// Index of the run (its colour is the same on every chart).
    pub run: usize,
    pub points: Vec<(f64, f64)>,
}

/// One panel.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_scale: Scale,
    pub y_scale: Scale,
    pub series: Vec<Series>,
}

/// One output file: its panels, top to bottom.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartFile {
    pub name: &'static str,
    pub panels: Vec<Chart>,
}

impl Chart {
    fn new(title: &str, x_label: &str, y_label: &str, x_scale: Scale, y_scale: Scale) -> Chart {
        Chart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            x_scale,
            y_scale,
            series: Vec::new(),
        }
    }

    /// Adds a run's points, leaving out what its axes cannot show
    /// (non-finite values, values ≤ 0 on a log axis); a run with nothing
    /// left is not added.
    fn add(&mut self, run: usize, label: &str, points: impl IntoIterator<Item = (f64, f64)>) {
        let (xs, ys) = (self.x_scale, self.y_scale);
        let shown = |v: f64, s: Scale| v.is_finite() && (s == Scale::Linear || v > 0.0);
        let points: Vec<(f64, f64)> = points
            .into_iter()
            .filter(|&(x, y)| shown(x, xs) && shown(y, ys))
            .collect();
        if !points.is_empty() {
            self.series.push(Series {
                label: label.into(),
                run,
                points,
            });
        }
    }

    /// The x and y ranges that hold every point, widened a little (for a
    /// log axis, to whole powers of ten) and never empty; None without points.
    pub fn bounds(&self) -> Option<((f64, f64), (f64, f64))> {
        let pts = self.series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        let mut any = false;
        for &(x, y) in pts {
            any = true;
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
        if !any {
            return None;
        }
        let widen = |lo: f64, hi: f64, s: Scale, from_zero: bool| match s {
            Scale::Log => (
                10f64.powf(lo.log10().floor()),
                10f64.powf(hi.log10().ceil().max(lo.log10().floor() + 1.0)),
            ),
            Scale::Linear => {
                let lo = if from_zero { lo.min(0.0) } else { lo };
                let span = if hi > lo { hi - lo } else { hi.abs().max(1.0) };
                (lo, hi + span * 0.05)
            }
        };
        Some((
            widen(x0, x1, self.x_scale, false),
            widen(y0, y1, self.y_scale, true),
        ))
    }
}

/// The charts for `runs` (each run one colour, in this order).
pub fn charts(runs: &[RunData]) -> Vec<ChartFile> {
    use Scale::{Linear, Log};
    let t = "seconds from the start of traffic (setup < 0)";
    let mut p50 = Chart::new("latency p50 per second of sends", t, "ms", Linear, Log);
    let mut p99 = Chart::new("latency p99 per second of sends", t, "ms", Linear, Log);
    let mut cdf = Chart::new(
        "latency distribution (measured window)",
        "latency, ms",
        "share of messages delivered within it",
        Log,
        Linear,
    );
    let mut rss = Chart::new("server RSS", t, "MiB", Linear, Linear);
    let mut cpu = Chart::new("server CPU", t, "% of one core", Linear, Linear);
    let mut rate = Chart::new("deliveries per second", t, "deliveries/s", Linear, Linear);
    for (i, run) in runs.iter().enumerate() {
        let l = &run.label;
        p50.add(i, l, run.latency.iter().map(|s| (s.t, s.p50_ms)));
        p99.add(i, l, run.latency.iter().map(|s| (s.t, s.p99_ms)));
        cdf.add(i, l, run.cdf.iter().map(|p| (p[0], p[1])));
        let res = &run.resources;
        rss.add(
            i,
            l,
            res.iter()
                .filter_map(|s| Some((s.t, s.rss_kib? as f64 / 1024.0))),
        );
        cpu.add(i, l, res.iter().filter_map(|s| Some((s.t, s.server_cpu?))));
        rate.add(i, l, res.iter().map(|s| (s.t, s.deliveries_per_s)));
    }
    vec![
        ChartFile {
            name: "latency.svg",
            panels: vec![p50, p99],
        },
        ChartFile {
            name: "cdf.svg",
            panels: vec![cdf],
        },
        ChartFile {
            name: "server.svg",
            panels: vec![rss, cpu],
        },
        ChartFile {
            name: "throughput.svg",
            panels: vec![rate],
        },
    ]
}

/// Colours by run index: distinct, readable on white.
fn colour(run: usize) -> RGBColor {
    const PALETTE: [RGBColor; 6] = [
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0xd6, 0x27, 0x28),
        RGBColor(0x2c, 0xa0, 0x2c),
        RGBColor(0xff, 0x7f, 0x0e),
        RGBColor(0x94, 0x67, 0xbd),
        RGBColor(0x8c, 0x56, 0x4b),
    ];
    PALETTE[run % PALETTE.len()]
}

/// Pixels per panel.
const WIDTH: u32 = 900;
const PANEL_HEIGHT: u32 = 380;

/// Draws `panels` stacked in one SVG document.
pub fn render(panels: &[Chart]) -> Result<String, String> {
    let mut svg = String::new();
    {
        let height = PANEL_HEIGHT * panels.len().max(1) as u32;
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let areas = root.split_evenly((panels.len().max(1), 1));
        for (chart, area) in panels.iter().zip(areas.iter()) {
            draw(area, chart)?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

fn draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, chart: &Chart) -> Result<(), String> {
    let Some(((x0, x1), (y0, y1))) = chart.bounds() else {
        area.titled(&format!("{}: no data", chart.title), ("sans-serif", 18))
            .map_err(|e| e.to_string())?;
        return Ok(());
    };
    match (chart.x_scale, chart.y_scale) {
        (Scale::Linear, Scale::Linear) => panel(area, chart, x0..x1, y0..y1),
        (Scale::Linear, Scale::Log) => panel(area, chart, x0..x1, (y0..y1).log_scale()),
        (Scale::Log, Scale::Linear) => panel(area, chart, (x0..x1).log_scale(), y0..y1),
        (Scale::Log, Scale::Log) => panel(area, chart, (x0..x1).log_scale(), (y0..y1).log_scale()),
    }
}

fn panel<DB, X, Y>(area: &DrawingArea<DB, Shift>, chart: &Chart, x: X, y: Y) -> Result<(), String>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let mut ctx = ChartBuilder::on(area)
        .caption(&chart.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)
        .map_err(err)?;
    ctx.configure_mesh()
        .x_desc(&chart.x_label)
        .y_desc(&chart.y_label)
        .x_label_formatter(&|v| short(*v))
        .y_label_formatter(&|v| short(*v))
        .light_line_style(RGBColor(0xee, 0xee, 0xee))
        .draw()
        .map_err(err)?;
    for s in &chart.series {
        let c = colour(s.run);
        ctx.draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
            .map_err(err)?
            .label(&s.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    ctx.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// An axis label: few digits, thousands as k and millions as M.
fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e4 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Writes `run` into `dir` (created if missing; a run with the same label
/// is replaced), then draws every run there. Returns the files written.
pub fn write_run(dir: &Path, run: &RunData) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let path = super::timeline::run_file(dir, &run.label);
    let json = serde_json::to_string_pretty(run).map_err(std::io::Error::other)?;
    std::fs::write(&path, json + "\n")?;
    let mut files = vec![path];
    files.extend(write_dir(dir)?);
    Ok(files)
}

/// Draws every run in `dir` and writes the chart files there; returns their paths.
pub fn write_dir(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let runs = read_runs(dir)?;
    let mut written = Vec::new();
    for file in charts(&runs) {
        let svg = render(&file.panels).map_err(std::io::Error::other)?;
        let path = dir.join(file.name);
        std::fs::write(&path, svg)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::timeline::{ResourceSample, SecondLatency};

    fn run(label: &str, scale: f64) -> RunData {
        RunData {
            label: label.into(),
            scenario: "fanout".into(),
            proto: "text".into(),
            target: "127.0.0.1:1".into(),
            latency: (0..5)
                .map(|s| SecondLatency {
                    t: s as f64,
                    count: 100,
                    p50_ms: scale * (s + 1) as f64,
                    p99_ms: scale * 10.0 * (s + 1) as f64,
                    max_ms: scale * 100.0,
                })
                .collect(),
            cdf: vec![[0.0, 0.0], [scale, 0.5], [scale * 10.0, 1.0]],
            resources: vec![
                ResourceSample {
                    t: -1.0,
                    rss_kib: Some(2048),
                    server_cpu: Some(50.0),
                    bench_cpu: None,
                    deliveries_per_s: 0.0,
                },
                ResourceSample {
                    t: 0.0,
                    rss_kib: None,
                    server_cpu: None,
                    bench_cpu: Some(10.0),
                    deliveries_per_s: 1000.0 * scale,
                },
            ],
        }
    }

    #[test]
    fn every_run_is_a_series_on_every_chart() {
        let runs = [run("natter", 1.0), run("ceiling", 2.0)];
        let files = charts(&runs);
        let names: Vec<_> = files.iter().map(|f| f.name).collect();
        assert_eq!(
            names,
            ["latency.svg", "cdf.svg", "server.svg", "throughput.svg"]
        );
        for panel in files.iter().flat_map(|f| &f.panels) {
            let labels: Vec<_> = panel.series.iter().map(|s| s.label.as_str()).collect();
            assert_eq!(labels, ["natter", "ceiling"], "{}", panel.title);
            assert_eq!(panel.series[1].run, 1);
        }
        let p99 = &files[0].panels[1];
        assert_eq!(p99.series[1].points[4], (4.0, 100.0));
        // The CDF's 0 ms point cannot be on a log axis.
        let cdf = &files[1].panels[0];
        assert_eq!(cdf.series[0].points, [(1.0, 0.5), (10.0, 1.0)]);
        // RSS in MiB, and only where it was read.
        let rss = &files[2].panels[0];
        assert_eq!(rss.series[0].points, [(-1.0, 2.0)]);
        // Bounds: log axes on whole decades, linear ones from zero up.
        let ((x0, x1), (y0, y1)) = cdf.bounds().unwrap();
        assert_eq!((x0, x1), (1.0, 100.0));
        assert!(y0 <= 0.0 && y1 >= 1.0);
        let ((_, _), (l0, l1)) = p99.bounds().unwrap();
        assert_eq!((l0, l1), (10.0, 100.0));
    }

    #[test]
    fn a_chart_without_points_has_no_bounds_and_still_renders() {
        let files = charts(&[]);
        assert!(files[0].panels[0].bounds().is_none());
        let svg = render(&files[0].panels).unwrap();
        assert!(svg.contains("no data"), "{svg}");
    }

    #[test]
    fn rendering_draws_one_line_and_one_legend_entry_per_run() {
        let runs = [run("natter", 1.0), run("ceiling", 2.0)];
        let files = charts(&runs);
        let svg = render(&files[1].panels).unwrap();
        assert!(svg.trim_start().starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(
            has_text(&svg, "natter") && has_text(&svg, "ceiling"),
            "{svg}"
        );
        // One polyline per series plus a legend path each.
        assert!(svg.matches("<polyline").count() >= 2, "{svg}");
        for c in [colour(0), colour(1)] {
            let hex = format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2);
            assert!(svg.contains(&hex), "{hex} missing");
        }
    }

    /// Whether a `<text>` element of `svg` says `what`.
    fn has_text(svg: &str, what: &str) -> bool {
        svg.split("<text").skip(1).any(|t| {
            t.split_once('>')
                .and_then(|(_, rest)| rest.split("</text>").next())
                .is_some_and(|body| body.trim() == what)
        })
    }

    #[test]
    fn axis_labels_are_short() {
        assert_eq!(short(1_500_000.0), "1.5M");
        assert_eq!(short(25_000.0), "25k");
        assert_eq!(short(250.0), "250");
        assert_eq!(short(0.5), "0.5");
        assert_eq!(short(12.0), "12");
    }
}
