//! Figures (`utils plot`), drawn with plotters as PNG or SVG (chosen by the
//! output file's extension):
//! - [`timeline`]: the per-node view of the original's `visualize.html`
//!   (Prev/HotFunctions, `analyzer/visualize.html`): x = seconds since the
//!   first call, one panel per node, each call a bar from its start to its
//!   end, stacked into the first free lane of its node, coloured by function
//!   (the 20 most called functions get their own colour, the rest grey); at
//!   most [`MAX_TIMELINE_NODES`] panels, and an optional time window.
//! - [`latency_cdf`]: the cumulative distribution of latency (duration -
//!   `InternalExecutionTime`) or duration, one curve per run, log-scaled x.
//!   The y axis is the fraction of *all* calls (failed calls never finish,
//!   so a run with failures tops out below 1), and the legend names each
//!   run's failures: `ch (48 of 131 failed; ok: n=83, p99=...)`.
//! - [`comparison_bars`] ([`bars`]): bars comparing runs (algorithms) on
//!   locality, CV, the three cache-hit ratios, the error rate, and p99
//!   latency of successful calls and of all calls (failed = ∞).
//! - [`comparison_bars_ci`] and [`sweep_lines`] ([`bars`]): repeated runs
//!   (mean and 95 % confidence interval per metric) and sweeps (one line
//!   per series over a swept value, with CI error bars), for `simulator
//!   experiment --repeat/--sweep`.
//!
//! Text needs a TrueType font found at run time (see [`font`]).

pub mod font;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::compare::Comparison;
use crate::logs::{CallRecord, RunLog};

/// Why a figure could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{0}")]
    Font(String),
    #[error("{}: unknown image format (use .png or .svg)", .0.display())]
    UnknownFormat(PathBuf),
    #[error("{0}")]
    BadWindow(String),
    #[error("{0}: nothing to plot")]
    NoData(String),
    #[error("drawing {}: {message}", path.display())]
    Draw { path: PathBuf, message: String },
}

/// Output format, from the file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Svg,
}

impl ImageFormat {
    pub fn from_path(path: &Path) -> Result<Self, PlotError> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("png") => Ok(Self::Png),
            Some("svg") => Ok(Self::Svg),
            _ => Err(PlotError::UnknownFormat(path.to_path_buf())),
        }
    }
}

/// Which per-call quantity a CDF shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CdfMetric {
    /// duration - `InternalExecutionTime`.
    Latency,
    /// end - start.
    Duration,
}

impl CdfMetric {
    fn value(self, r: &CallRecord) -> i64 {
        match self {
            Self::Latency => r.latency_ms(),
            Self::Duration => r.duration_ms(),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Self::Latency => "latency (duration - internal execution time)",
            Self::Duration => "duration (end - start)",
        }
    }
}

/// Distinct colours (Tableau 20), one per function or run.
pub const PALETTE: [RGBColor; 20] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(127, 127, 127),
    RGBColor(174, 199, 232),
    RGBColor(255, 187, 120),
    RGBColor(152, 223, 138),
    RGBColor(255, 152, 150),
    RGBColor(197, 176, 213),
    RGBColor(196, 156, 148),
    RGBColor(247, 182, 210),
    RGBColor(219, 219, 141),
    RGBColor(158, 218, 229),
    RGBColor(199, 199, 199),
];

const OTHER_COLOR: RGBColor = RGBColor(90, 90, 90);

/// Black on light fills, white on dark ones (relative luminance, ITU-R BT.709).
fn label_colour(fill: RGBColor) -> RGBColor {
    let RGBColor(r, g, b) = fill;
    let luminance = 0.2126 * f64::from(r) + 0.7152 * f64::from(g) + 0.0722 * f64::from(b);
    if luminance > 150.0 {
        BLACK
    } else {
        WHITE
    }
}

type DrawResult = Result<(), String>;

fn draw_err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Draws with the backend the extension asks for, then writes the file.
macro_rules! render {
    ($path:expr, $size:expr, |$root:ident| $body:expr) => {{
        let path: &Path = $path;
        font::ensure_font().map_err(PlotError::Font)?;
        let format = ImageFormat::from_path(path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| PlotError::Draw {
                path: path.to_path_buf(),
                message: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        let result: DrawResult = match format {
            ImageFormat::Png => {
                let $root = BitMapBackend::new(path, $size).into_drawing_area();
                $body.and_then(|()| $root.present().map_err(draw_err))
            }
            ImageFormat::Svg => {
                let $root = SVGBackend::new(path, $size).into_drawing_area();
                $body.and_then(|()| $root.present().map_err(draw_err))
            }
        };
        result.map_err(|message| PlotError::Draw {
            path: path.to_path_buf(),
            message,
        })
    }};
}

pub mod bars;
pub use bars::{comparison_bars, comparison_bars_ci, sweep_lines, MetricEstimates, SweepSeries};

/// Options of [`timeline`].
#[derive(Debug, Clone, Default)]
pub struct TimelineOptions {
    /// Title; default: "Per-node timeline: `label`".
    pub title: Option<String>,
    /// Number of node panels; default: max WorkerNodeId + 1 (`utils plot
    /// timeline` passes the sidecar's cluster size when there is one).
    pub nodes: Option<usize>,
    /// Only this window, in seconds since the first call (`from`, `to`);
    /// default: the whole run.
    pub window_s: Option<(f64, f64)>,
}

/// A timeline draws at most this many node panels (the first ones), so that
/// the image stays a sane size for large simulated clusters.
pub const MAX_TIMELINE_NODES: usize = 64;

/// Calls of one node assigned to lanes: the first lane free at the call's
/// start (as `visualize.html` does, without its cap of 8 lanes).
fn assign_lanes(records: &[&CallRecord]) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..records.len()).collect();
    order.sort_by_key(|&i| (records[i].start_ms, records[i].end_ms));
    let mut lane_free_at: Vec<i64> = Vec::new();
    let mut lanes = vec![0; records.len()];
    for i in order {
        let r = records[i];
        match lane_free_at.iter().position(|&free| free <= r.start_ms) {
            Some(l) => {
                lane_free_at[l] = r.end_ms;
                lanes[i] = l;
            }
            None => {
                lanes[i] = lane_free_at.len();
                lane_free_at.push(r.end_ms);
            }
        }
    }
    let count = lane_free_at.len();
    (lanes, count)
}

/// Function colours: the 20 most called get the palette, the rest grey.
fn function_colours(records: &[CallRecord]) -> (Vec<(String, usize)>, HashMap<String, RGBColor>) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for r in records {
        *counts.entry(r.function.as_str()).or_insert(0) += 1;
    }
    let mut by_count: Vec<(String, usize)> = counts
        .into_iter()
        .map(|(f, n)| (f.to_string(), n))
        .collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let colours = by_count
        .iter()
        .enumerate()
        .map(|(i, (f, _))| (f.clone(), PALETTE.get(i).copied().unwrap_or(OTHER_COLOR)))
        .collect();
    (by_count, colours)
}

/// The per-node timeline of one run (PNG or SVG by extension).
pub fn timeline(run: &RunLog, out: &Path, options: &TimelineOptions) -> Result<(), PlotError> {
    let records = &run.records;
    let Some(t0) = records.iter().map(|r| r.start_ms).min() else {
        return Err(PlotError::NoData(run.source.clone()));
    };
    let t_end = records.iter().map(|r| r.end_ms).max().unwrap_or(t0);
    let (from_s, to_s) = match options.window_s {
        Some((from, to)) if from.is_finite() && to.is_finite() && to > from && from >= 0.0 => {
            (from, to)
        }
        Some((from, to)) => {
            return Err(PlotError::BadWindow(format!(
                "window {from}..{to} s: need 0 <= from < to"
            )))
        }
        None => (0.0, ((t_end - t0) as f64 / 1000.0).max(1.0)),
    };
    let in_window = |r: &&CallRecord| {
        let (a, b) = (
            (r.start_ms - t0) as f64 / 1000.0,
            (r.end_ms - t0) as f64 / 1000.0,
        );
        b >= from_s && a <= to_s
    };
    let records: Vec<CallRecord> = records.iter().filter(in_window).cloned().collect();
    let records = &records;
    let all_nodes = options
        .nodes
        .unwrap_or(0)
        .max(records.iter().map(|r| r.node).max().unwrap_or(0) + 1);
    let nodes = all_nodes.min(MAX_TIMELINE_NODES);
    let mut per_node: Vec<Vec<&CallRecord>> = vec![Vec::new(); nodes];
    for r in records.iter().filter(|r| r.node < nodes) {
        per_node[r.node].push(r);
    }
    let lanes: Vec<(Vec<usize>, usize)> = per_node.iter().map(|rs| assign_lanes(rs)).collect();
    let (by_count, colours) = function_colours(records);

    let total_lanes: usize = lanes.iter().map(|(_, n)| (*n).max(1)).sum();
    let lane_px = (2400 / total_lanes.max(1)).clamp(4, 16) as u32;
    let panel_extra = 34u32;
    let header = 50u32;
    let footer = 50u32;
    let panel_heights: Vec<u32> = lanes
        .iter()
        .map(|(_, n)| (*n).max(1) as u32 * lane_px + panel_extra)
        .collect();
    let height = header + panel_heights.iter().sum::<u32>() + footer;
    let width = 1600u32;
    let legend_width = 190u32;
    let mut title = options
        .title
        .clone()
        .unwrap_or_else(|| format!("Per-node timeline: {}", run.label()));
    if nodes < all_nodes {
        title.push_str(&format!(" (nodes 0-{} of {all_nodes})", nodes - 1));
    }

    render!(out, (width, height), |root| draw_timeline(
        &root,
        &TimelineDrawing {
            title: &title,
            t0,
            from_s,
            to_s,
            per_node: &per_node,
            lanes: &lanes,
            by_count: &by_count,
            colours: &colours,
            panel_heights: &panel_heights,
            header,
            legend_width,
            lane_px,
        }
    ))
}

struct TimelineDrawing<'a> {
    title: &'a str,
    t0: i64,
    from_s: f64,
    to_s: f64,
    per_node: &'a [Vec<&'a CallRecord>],
    lanes: &'a [(Vec<usize>, usize)],
    by_count: &'a [(String, usize)],
    colours: &'a HashMap<String, RGBColor>,
    panel_heights: &'a [u32],
    header: u32,
    legend_width: u32,
    lane_px: u32,
}

fn draw_timeline<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    d: &TimelineDrawing,
) -> DrawResult {
    root.fill(&WHITE).map_err(draw_err)?;
    let (width, _) = root.dim_in_pixel();
    let (main, legend) = root.split_horizontally(width - d.legend_width);
    let main = main.titled(d.title, (font::FAMILY, 24)).map_err(draw_err)?;
    let _ = d.header;
    let mut breaks = Vec::new();
    let mut y = 0u32;
    for h in &d.panel_heights[..d.panel_heights.len() - 1] {
        y += h;
        breaks.push(y);
    }
    let panels = main.split_by_breakpoints(Vec::<u32>::new(), breaks);
    let last = panels.len() - 1;
    let y_label_area = 70;
    for (node, panel) in panels.iter().enumerate() {
        let (lane_of, lane_count) = &d.lanes[node];
        let lane_count = (*lane_count).max(1);
        let is_last = node == last;
        let mut chart = ChartBuilder::on(panel)
            .margin_left(10)
            .margin_right(20)
            .margin_top(6)
            .x_label_area_size(if is_last { 45 } else { 0 })
            .y_label_area_size(y_label_area)
            .build_cartesian_2d(d.from_s..d.to_s, 0f64..lane_count as f64)
            .map_err(draw_err)?;
        let mut mesh = chart.configure_mesh();
        mesh.y_labels(0)
            .disable_y_mesh()
            .y_desc(format!("node {node}"))
            .axis_desc_style((font::FAMILY, 15))
            .x_label_style((font::FAMILY, 14))
            .light_line_style(RGBColor(235, 235, 235));
        if is_last {
            mesh.x_desc("time since the first call (s)");
            if d.to_s - d.from_s >= 10.0 {
                mesh.x_label_formatter(&|v| format!("{v:.0}"));
            }
        } else {
            // Keep the vertical grid, drop the tick labels.
            mesh.x_label_formatter(&|_| String::new());
        }
        mesh.draw().map_err(draw_err)?;

        let plot_px = f64::from(width - d.legend_width - y_label_area - 30);
        let px_per_s = plot_px / (d.to_s - d.from_s);
        let clamp = |x: f64| x.clamp(d.from_s, d.to_s);
        let rs = &d.per_node[node];
        chart
            .draw_series(rs.iter().zip(lane_of).map(|(r, &lane)| {
                let x0 = clamp((r.start_ms - d.t0) as f64 / 1000.0);
                let x1 = clamp(((r.end_ms - d.t0) as f64 / 1000.0).max(x0 + 0.5 / px_per_s));
                let top = (lane_count - lane) as f64;
                let colour = d.colours.get(&r.function).copied().unwrap_or(OTHER_COLOR);
                Rectangle::new([(x0, top - 0.1), (x1, top - 0.9)], colour.filled())
            }))
            .map_err(draw_err)?;
        // Labels where the bar is wide and tall enough.
        if d.lane_px >= 12 {
            chart
                .draw_series(rs.iter().zip(lane_of).filter_map(|(r, &lane)| {
                    let x0 = clamp((r.start_ms - d.t0) as f64 / 1000.0);
                    let x1 = clamp((r.end_ms - d.t0) as f64 / 1000.0);
                    let bar_px = (x1 - x0) * px_per_s;
                    (bar_px > 8.0 * r.function.len() as f64 + 4.0).then(|| {
                        let top = (lane_count - lane) as f64;
                        let colour = d.colours.get(&r.function).copied().unwrap_or(OTHER_COLOR);
                        Text::new(
                            r.function.clone(),
                            (x0 + 2.0 / px_per_s, top - 0.2),
                            (font::FAMILY, 11).into_font().color(&label_colour(colour)),
                        )
                    })
                }))
                .map_err(draw_err)?;
        }
    }

    // Legend: colour, name, calls.
    legend
        .draw(&Text::new(
            "function (calls)",
            (10, 60),
            (font::FAMILY, 15).into_font(),
        ))
        .map_err(draw_err)?;
    let shown = d.by_count.iter().take(PALETTE.len());
    let mut y = 84;
    for (f, n) in shown {
        let colour = d.colours[f];
        legend
            .draw(&Rectangle::new([(10, y), (26, y + 14)], colour.filled()))
            .map_err(draw_err)?;
        legend
            .draw(&Text::new(
                format!("{f} ({n})"),
                (32, y),
                (font::FAMILY, 14).into_font(),
            ))
            .map_err(draw_err)?;
        y += 20;
    }
    if d.by_count.len() > PALETTE.len() {
        let rest: usize = d.by_count[PALETTE.len()..].iter().map(|(_, n)| n).sum();
        legend
            .draw(&Rectangle::new(
                [(10, y), (26, y + 14)],
                OTHER_COLOR.filled(),
            ))
            .map_err(draw_err)?;
        legend
            .draw(&Text::new(
                format!("{} others ({rest})", d.by_count.len() - PALETTE.len()),
                (32, y),
                (font::FAMILY, 14).into_font(),
            ))
            .map_err(draw_err)?;
    }
    Ok(())
}

/// At most this many points per CDF curve.
const CDF_POINTS: usize = 2000;

/// One curve of a CDF: the sorted values of the successful calls, over all
/// calls.
struct CdfSeries {
    label: String,
    values: Vec<f64>,
    calls: usize,
    failed: usize,
}

/// CDF of latency or duration, one curve per labelled run (PNG or SVG). The
/// y axis is the fraction of all calls (failed ones never finish); the
/// legend gives each run's failed calls.
pub fn latency_cdf(
    runs: &[(String, &RunLog)],
    metric: CdfMetric,
    out: &Path,
) -> Result<(), PlotError> {
    let series: Vec<CdfSeries> = runs
        .iter()
        .map(|(label, run)| {
            let mut v: Vec<f64> = run
                .records
                .iter()
                .map(|r| metric.value(r).max(1) as f64)
                .collect();
            v.sort_by(f64::total_cmp);
            CdfSeries {
                label: label.clone(),
                values: v,
                calls: run.calls(),
                failed: run.error_lines,
            }
        })
        .collect();
    if series.iter().all(|s| s.values.is_empty()) {
        return Err(PlotError::NoData(
            runs.iter()
                .map(|(l, _)| l.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    let max = series
        .iter()
        .filter_map(|s| s.values.last().copied())
        .fold(1.0f64, f64::max);
    let min = series
        .iter()
        .filter_map(|s| s.values.first().copied())
        .fold(f64::INFINITY, f64::min)
        .max(1.0);
    // From the decade below the smallest value to 1.5 × the largest.
    let x_min = 10f64.powf(min.log10().floor());
    render!(out, (1200, 750), |root| draw_cdf(
        &root,
        &series,
        metric,
        x_min..max * 1.5
    ))
}

fn draw_cdf<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    series: &[CdfSeries],
    metric: CdfMetric,
    x_range: std::ops::Range<f64>,
) -> DrawResult {
    root.fill(&WHITE).map_err(draw_err)?;
    let mut chart = ChartBuilder::on(root)
        .caption(format!("CDF of {}", metric.name()), (font::FAMILY, 24))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range.log_scale(), 0f64..1.0)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("ms (log scale; values below 1 ms shown at 1 ms)")
        .y_desc("fraction of all calls ≤ x (failed calls never finish)")
        .x_label_formatter(&|v| {
            if *v >= 1000.0 {
                format!("{:.0}", v)
            } else {
                format!("{v}")
            }
        })
        .y_labels(11)
        .y_label_formatter(&|v| format!("{v:.1}"))
        .light_line_style(RGBColor(242, 242, 242))
        .axis_desc_style((font::FAMILY, 16))
        .label_style((font::FAMILY, 14))
        .draw()
        .map_err(draw_err)?;
    for (i, s) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let values = &s.values;
        let n = values.len();
        let step = n.div_ceil(CDF_POINTS).max(1);
        // A step function: up at each value, flat in between; over all
        // calls, so failures keep the curve below 1.
        let mut points: Vec<(f64, f64)> = Vec::with_capacity(2 * (n / step) + 4);
        let mut fraction = 0.0;
        let total = s.calls.max(1) as f64;
        if n > 0 {
            for k in (0..n).step_by(step).chain([n - 1]) {
                points.push((values[k], fraction));
                fraction = (k + 1) as f64 / total;
                points.push((values[k], fraction));
            }
        }
        let p99 = if n > 0 {
            format!(
                "{:.0} ms",
                values[((0.99 * n as f64).ceil() as usize).clamp(1, n) - 1]
            )
        } else {
            "-".into()
        };
        let label = if s.failed > 0 {
            format!(
                "{} ({} of {} failed; ok: n={n}, p99={p99})",
                s.label, s.failed, s.calls
            )
        } else {
            format!("{} (n={n}, p99={p99})", s.label)
        };
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(draw_err)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((font::FAMILY, 15))
        .draw()
        .map_err(draw_err)?;
    Ok(())
}

/// A label made safe for a file name: letters, digits, `-`, `_`, `.`;
/// anything else becomes `_`.
pub fn file_label(label: &str) -> String {
    let cleaned: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "run".into()
    } else {
        cleaned
    }
}

/// Every figure for a set of runs, each as PNG and SVG, into `dir`:
/// `comparison.*` (bars), `latency-cdf.*`, `duration-cdf.*`, and
/// `timeline-<label>.*` per run (labels as in `comparison`, made safe for
/// file names). `nodes` sets the number of timeline panels (default: each
/// run's sidecar's cluster size, else max WorkerNodeId + 1). Returns the
/// files written.
pub fn all_figures(
    runs: &[(String, &RunLog)],
    comparison: &Comparison,
    nodes: Option<usize>,
    dir: &Path,
) -> Result<Vec<PathBuf>, PlotError> {
    let mut written = Vec::new();
    let mut both = |stem: &str,
                    draw: &mut dyn FnMut(&Path) -> Result<(), PlotError>|
     -> Result<(), PlotError> {
        for ext in ["png", "svg"] {
            let path = dir.join(format!("{stem}.{ext}"));
            draw(&path)?;
            written.push(path);
        }
        Ok(())
    };
    both("comparison", &mut |p| comparison_bars(comparison, p))?;
    both("latency-cdf", &mut |p| {
        latency_cdf(runs, CdfMetric::Latency, p)
    })?;
    both("duration-cdf", &mut |p| {
        latency_cdf(runs, CdfMetric::Duration, p)
    })?;
    for (label, run) in runs {
        if run.records.is_empty() {
            continue;
        }
        let options = TimelineOptions {
            title: Some(format!("Per-node timeline: {label}")),
            nodes: nodes.or(run.sidecar.as_ref().map(|s| s.cluster.size)),
            window_s: None,
        };
        both(&format!("timeline-{}", file_label(label)), &mut |p| {
            timeline(run, p, &options)
        })?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(start: i64, end: i64) -> CallRecord {
        CallRecord {
            start_ms: start,
            end_ms: end,
            function: "A".into(),
            node: 0,
            internal_ms: 0,
            image_built: false,
            pooled: false,
            rest_reused: false,
            algorithm: None,
            algorithm_latency_ms: None,
        }
    }

    #[test]
    fn lanes_reuse_the_first_free_one() {
        let calls = [call(0, 10), call(5, 20), call(10, 15), call(16, 30)];
        let refs: Vec<&CallRecord> = calls.iter().collect();
        let (lanes, count) = assign_lanes(&refs);
        // 0..10 lane 0; 5..20 lane 1; 10..15 lane 0 again; 16..30 lane 0.
        assert_eq!(lanes, vec![0, 1, 0, 0]);
        assert_eq!(count, 2);
    }

    #[test]
    fn file_labels_are_safe() {
        assert_eq!(file_label("rr (run 2/3)"), "rr__run_2_3_");
        assert_eq!(file_label("ch"), "ch");
        assert_eq!(file_label(""), "run");
    }

    #[test]
    fn format_comes_from_the_extension() {
        assert_eq!(
            ImageFormat::from_path(Path::new("a.PNG")).unwrap(),
            ImageFormat::Png
        );
        assert_eq!(
            ImageFormat::from_path(Path::new("a.svg")).unwrap(),
            ImageFormat::Svg
        );
        assert!(ImageFormat::from_path(Path::new("a.jpg")).is_err());
    }
}
