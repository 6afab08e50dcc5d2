//! Bar figures (one panel per metric, one bar per run) and sweep lines.
//!
//! - [`comparison_bars`]: runs compared on locality, CV, the three cache-hit
//!   ratios, the error rate, the p99 latency of successful calls and the p99
//!   latency over all calls (a failed call = infinitely slow; the panel
//!   writes "failed" instead of a bar when more than 1 % failed).
//! - [`comparison_bars_ci`]: repeated runs, one bar per label at the mean
//!   of each metric with its 95 % confidence interval as an error bar.
//! - [`sweep_lines`]: one line per series over a swept value, with 95 %
//!   confidence intervals as error bars.
//!
//! Layout: four columns of panels up to 6 runs, two up to 16, then one; the
//! figure grows with the number of runs so that every bar gets at least
//! [`MIN_SLOT_PX`] pixels; every run is named in a legend under the
//! title (wrapped into rows); the x axis names each bar when the longest name
//! fits under it, and numbers the bars (the legend then reads `k: name`)
//! when it does not, so labels never overlap.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{draw_err, font, DrawResult, ImageFormat, PlotError, PALETTE};
use crate::compare::{Comparison, ComparisonRow};
use crate::stats::Estimate;

/// Each bar's slot is at least this wide, in pixels.
pub const MIN_SLOT_PX: u32 = 72;
/// Panel width not given to bars: y labels (70), margins (2 × 12), slack.
const PANEL_EXTRA_PX: u32 = 110;
const PANEL_HEIGHT_PX: u32 = 420;
const TITLE_PX: u32 = 50;
const LEGEND_ROW_PX: u32 = 24;
const LEGEND_FONT: u32 = 15;
const TICK_FONT: u32 = 13;
const VALUE_FONT: u32 = 13;
const RED: RGBColor = RGBColor(200, 30, 30);

/// A generous estimate of a text's width in pixels (DejaVu Sans averages
/// about 0.55 em per character; 0.62 leaves room for wide letters).
pub(crate) fn text_px(text: &str, size: u32) -> u32 {
    (text.chars().count() as f64 * f64::from(size) * 0.62).ceil() as u32
}

/// One panel of a bar figure.
struct BarPanel {
    title: String,
    unit: String,
    /// Per run; `None`: no bar, [`BarPanel::missing`] written instead.
    values: Vec<Option<f64>>,
    /// Half-width of each run's error bar.
    errors: Vec<Option<f64>>,
    /// What a missing value says ("failed", "-").
    missing: &'static str,
    /// The y axis ends here (e.g. 112 for percentages of hit ratios);
    /// `None`: 1.25 × the highest bar (or error bar).
    y_max: Option<f64>,
    decimals: usize,
}

/// Legend entries placed left to right, wrapped: (x, row) per entry.
fn legend_layout(texts: &[String], avail: u32) -> Vec<(u32, u32)> {
    let mut out = Vec::with_capacity(texts.len());
    let (mut x, mut row) = (0u32, 0u32);
    for t in texts {
        let w = 22 + text_px(t, LEGEND_FONT) + 24;
        if x > 0 && x + w > avail {
            x = 0;
            row += 1;
        }
        out.push((x, row));
        x += w;
    }
    out
}

struct BarFigure<'a> {
    title: &'a str,
    /// Under each bar: the names, or "1".."n".
    ticks: Vec<String>,
    legend: Vec<String>,
    legend_at: Vec<(u32, u32)>,
    legend_h: u32,
    panels: &'a [BarPanel],
    cols: usize,
    rows: usize,
}

fn bar_figure(
    title: &str,
    labels: &[String],
    panels: &[BarPanel],
    out: &Path,
) -> Result<(), PlotError> {
    if labels.is_empty() || panels.is_empty() {
        return Err(PlotError::NoData(title.to_string()));
    }
    let n = labels.len() as u32;
    // Fewer, wider columns as runs are added, so the figure stays
    // readable on a page rather than growing into a strip.
    let cols = panels.len().min(match n {
        0..=6 => 4,
        7..=16 => 2,
        _ => 1,
    });
    let rows = panels.len().div_ceil(cols);
    let width = ((MIN_SLOT_PX * n + PANEL_EXTRA_PX) * cols as u32).max(1600);
    let slot = (width / cols as u32 - PANEL_EXTRA_PX) / n;
    let names_fit = labels.iter().all(|l| text_px(l, TICK_FONT) + 10 <= slot);
    let (ticks, legend): (Vec<String>, Vec<String>) = if names_fit {
        (labels.to_vec(), labels.to_vec())
    } else {
        labels
            .iter()
            .enumerate()
            .map(|(i, l)| ((i + 1).to_string(), format!("{}: {l}", i + 1)))
            .unzip()
    };
    let legend_at = legend_layout(&legend, width - 40);
    let legend_rows = legend_at.last().map_or(0, |&(_, r)| r + 1);
    let legend_h = legend_rows * LEGEND_ROW_PX + 12;
    let height = TITLE_PX + legend_h + rows as u32 * PANEL_HEIGHT_PX;
    let figure = BarFigure {
        title,
        ticks,
        legend,
        legend_at,
        legend_h,
        panels,
        cols,
        rows,
    };
    render!(out, (width, height), |root| draw_bar_figure(&root, &figure))
}

fn draw_bar_figure<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, f: &BarFigure) -> DrawResult {
    root.fill(&WHITE).map_err(draw_err)?;
    let root = root.titled(f.title, (font::FAMILY, 26)).map_err(draw_err)?;
    let (legend, body) = root.split_vertically(f.legend_h);
    for (i, (text, &(x, row))) in f.legend.iter().zip(&f.legend_at).enumerate() {
        let (x, y) = (20 + x as i32, 4 + (row * LEGEND_ROW_PX) as i32);
        let colour = PALETTE[i % PALETTE.len()];
        legend
            .draw(&Rectangle::new(
                [(x, y + 1), (x + 14, y + 15)],
                colour.filled(),
            ))
            .map_err(draw_err)?;
        legend
            .draw(&Text::new(
                text.clone(),
                (x + 20, y),
                (font::FAMILY, LEGEND_FONT).into_font(),
            ))
            .map_err(draw_err)?;
    }
    let areas = body.split_evenly((f.rows, f.cols));
    for (area, panel) in areas.iter().zip(f.panels) {
        draw_bar_panel(area, panel, &f.ticks)?;
    }
    Ok(())
}

fn draw_bar_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &BarPanel,
    ticks: &[String],
) -> DrawResult {
    let n = ticks.len();
    let top = p
        .values
        .iter()
        .zip(&p.errors)
        .map(|(v, e)| v.unwrap_or(0.0) + e.unwrap_or(0.0))
        .fold(0.0f64, f64::max);
    let y_max = p.y_max.unwrap_or(if top > 0.0 { top * 1.25 } else { 1.0 });
    // Negative means (or CIs reaching below 0) get room below the axis.
    let bottom = p
        .values
        .iter()
        .zip(&p.errors)
        .filter_map(|(v, e)| v.map(|v| v.min(v - e.unwrap_or(0.0))))
        .fold(0.0f64, f64::min);
    let y_min = bottom * 1.25;
    // Bar i is centred on x = i; the tick labels are drawn below the axis
    // by hand (a segmented axis of one category is degenerate in plotters).
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, (font::FAMILY, 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, y_min..y_max)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(p.unit.as_str())
        .y_labels(6)
        .y_label_formatter(&|v| {
            if y_max >= 10.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        })
        .light_line_style(RGBColor(242, 242, 242))
        .x_labels(0)
        .axis_desc_style((font::FAMILY, 14))
        .label_style((font::FAMILY, TICK_FONT))
        .draw()
        .map_err(draw_err)?;
    let (base_x, base_y) = area.get_base_pixel();
    for (i, tick) in ticks.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64, y_min));
        area.draw(&Text::new(
            tick.clone(),
            (x - base_x, y - base_y + 6),
            TextStyle::from((font::FAMILY, TICK_FONT).into_font())
                .pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(draw_err)?;
    }
    chart
        .draw_series(p.values.iter().enumerate().filter_map(|(i, v)| {
            let (v, x) = ((*v)?, i as f64);
            Some(Rectangle::new(
                [(x - 0.36, 0.0), (x + 0.36, v)],
                PALETTE[i % PALETTE.len()].filled(),
            ))
        }))
        .map_err(draw_err)?;
    chart
        .draw_series(
            p.values
                .iter()
                .zip(&p.errors)
                .enumerate()
                .filter_map(|(i, (v, e))| {
                    let (v, e) = ((*v)?, (*e)?);
                    Some(ErrorBar::new_vertical(
                        i as f64,
                        v - e,
                        v,
                        v + e,
                        BLACK.stroke_width(2),
                        14,
                    ))
                }),
        )
        .map_err(draw_err)?;
    let centred = |size: u32, colour: &'static RGBColor| {
        TextStyle::from((font::FAMILY, size).into_font())
            .color(colour)
            .pos(Pos::new(HPos::Center, VPos::Bottom))
    };
    chart
        .draw_series(
            p.values
                .iter()
                .zip(&p.errors)
                .enumerate()
                .map(|(i, (v, e))| {
                    let (text, y, colour) = match v {
                        Some(v) => (
                            format!("{v:.*}", p.decimals),
                            v + e.unwrap_or(0.0) + y_max * 0.015,
                            &BLACK,
                        ),
                        None => (p.missing.to_string(), y_max * 0.04, &RED),
                    };
                    Text::new(text, (i as f64, y), centred(VALUE_FONT, colour))
                }),
        )
        .map_err(draw_err)?;
    Ok(())
}

/// Bars comparing runs on locality, CV, hit ratios, error rate and p99
/// latency (successful calls, and all calls with failures as infinitely
/// slow), PNG or SVG by extension.
pub fn comparison_bars(comparison: &Comparison, out: &Path) -> Result<(), PlotError> {
    type Metric = (
        &'static str,
        &'static str,
        fn(&ComparisonRow) -> Option<f64>,
    );
    let pct = Some(112.0);
    let metrics: [(Metric, Option<f64>, usize); 8] = [
        (
            (
                "Locality (lower = better)",
                "distinct functions per node per 1-s slot",
                |r| r.locality,
            ),
            None,
            2,
        ),
        (
            (
                "Load imbalance (lower = better)",
                "CV of per-node load",
                |r| r.cv,
            ),
            None,
            2,
        ),
        (
            ("Image reuse (no image build)", "hit ratio (%)", |r| {
                r.image_hit_ratio.map(|v| v * 100.0)
            }),
            pct,
            1,
        ),
        (
            ("Pooled container used", "hit ratio (%)", |r| {
                r.pooled_hit_ratio.map(|v| v * 100.0)
            }),
            pct,
            1,
        ),
        (
            ("Existing REST container used", "hit ratio (%)", |r| {
                r.rest_hit_ratio.map(|v| v * 100.0)
            }),
            pct,
            1,
        ),
        (
            ("Failed calls (lower = better)", "% of calls", |r| {
                Some(r.error_rate * 100.0)
            }),
            None,
            1,
        ),
        (
            ("p99 latency, successful calls", "ms", |r| {
                r.p99_latency_ms.map(|v| v as f64)
            }),
            None,
            0,
        ),
        (
            ("p99 latency, all calls (failed = ∞)", "ms", |r| {
                r.p99_latency_all_ms.map(|v| v as f64)
            }),
            None,
            0,
        ),
    ];
    // Both p99 panels on one scale, so that they compare at a glance.
    let p99_top = comparison
        .rows
        .iter()
        .flat_map(|r| [r.p99_latency_ms, r.p99_latency_all_ms])
        .flatten()
        .max()
        .map(|m| (m as f64 * 1.25).max(1.0));
    let panels: Vec<BarPanel> = metrics
        .iter()
        .map(|&((title, unit, value), y_max, decimals)| BarPanel {
            title: title.to_string(),
            unit: unit.to_string(),
            // A run without a successful call has no bar but its error
            // rate ("failed" instead): its row has no other figure.
            values: comparison.rows.iter().map(value).collect(),
            errors: vec![None; comparison.rows.len()],
            missing: "failed",
            y_max: if unit == "ms" { p99_top } else { y_max },
            decimals,
        })
        .collect();
    let labels: Vec<String> = comparison.rows.iter().map(|r| r.label.clone()).collect();
    bar_figure("Comparison of runs", &labels, &panels, out)
}

/// One label's estimates (mean and 95 % CI over repeated runs), one per
/// metric, for [`comparison_bars_ci`].
#[derive(Debug, Clone, PartialEq)]
pub struct MetricEstimates {
    pub label: String,
    /// (metric name, estimate); the name titles the metric's panel.
    pub metrics: Vec<(String, Estimate)>,
}

/// One panel per metric (in order of first appearance), one bar per label
/// at the mean, with its 95 % confidence interval as an error bar (none when
/// `ci95` is `None`, e.g. a single run); a label without the metric gets
/// "-". PNG or SVG by extension.
pub fn comparison_bars_ci(rows: &[MetricEstimates], path: &Path) -> Result<(), PlotError> {
    let mut names: Vec<&str> = Vec::new();
    for row in rows {
        for (name, _) in &row.metrics {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
    }
    let panels: Vec<BarPanel> = names
        .iter()
        .map(|&name| {
            let found: Vec<Option<&Estimate>> = rows
                .iter()
                .map(|r| r.metrics.iter().find(|(n, _)| n == name).map(|(_, e)| e))
                .collect();
            let scale = found
                .iter()
                .flatten()
                .map(|e| e.mean.abs())
                .fold(0.0f64, f64::max);
            BarPanel {
                title: name.to_string(),
                unit: "mean, 95 % CI".into(),
                values: found.iter().map(|e| e.map(|e| e.mean)).collect(),
                errors: found.iter().map(|e| e.and_then(|e| e.ci95)).collect(),
                missing: "-",
                y_max: None,
                decimals: if scale >= 100.0 {
                    0
                } else if scale >= 1.0 {
                    1
                } else {
                    3
                },
            }
        })
        .collect();
    let labels: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
    bar_figure(
        "Comparison of repeated runs (mean, 95 % CI)",
        &labels,
        &panels,
        path,
    )
}

/// One line of [`sweep_lines`]: a label and its estimate at each swept
/// value.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepSeries {
    pub label: String,
    /// (swept value, estimate), drawn in order of the swept value.
    pub points: Vec<(f64, Estimate)>,
}

/// One line per series over the swept value (x), through the means, with
/// each point's 95 % confidence interval as an error bar. PNG or SVG by
/// extension.
pub fn sweep_lines(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[SweepSeries],
    path: &Path,
) -> Result<(), PlotError> {
    let points = || series.iter().flat_map(|s| s.points.iter());
    let finite = |v: f64| v.is_finite();
    if points().next().is_none() || !points().all(|(x, e)| finite(*x) && finite(e.mean)) {
        return Err(PlotError::NoData(format!(
            "{title}: no points, or a point that is not a finite number"
        )));
    }
    let lo = |e: &Estimate| e.mean - e.ci95.unwrap_or(0.0);
    let hi = |e: &Estimate| e.mean + e.ci95.unwrap_or(0.0);
    let x_min = points().map(|(x, _)| *x).fold(f64::INFINITY, f64::min);
    let x_max = points().map(|(x, _)| *x).fold(f64::NEG_INFINITY, f64::max);
    let y_min = points().map(|(_, e)| lo(e)).fold(0.0f64, f64::min);
    let y_max = points()
        .map(|(_, e)| hi(e))
        .fold(f64::NEG_INFINITY, f64::max);
    let x_pad = if x_max > x_min {
        (x_max - x_min) * 0.05
    } else {
        x_min.abs().max(1.0) * 0.5
    };
    let y_top = if y_max > y_min {
        y_max + (y_max - y_min) * 0.15
    } else {
        y_min + 1.0
    };
    let sorted: Vec<(String, Vec<(f64, Estimate)>)> = series
        .iter()
        .map(|s| {
            let mut p = s.points.clone();
            p.sort_by(|a, b| a.0.total_cmp(&b.0));
            (s.label.clone(), p)
        })
        .collect();
    let ranges = ((x_min - x_pad)..(x_max + x_pad), y_min..y_top);
    render!(path, (1200, 750), |root| draw_sweep(
        &root,
        (title, x_label, y_label),
        &sorted,
        ranges.clone()
    ))
}

fn draw_sweep<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    (title, x_label, y_label): (&str, &str, &str),
    series: &[(String, Vec<(f64, Estimate)>)],
    (x_range, y_range): (std::ops::Range<f64>, std::ops::Range<f64>),
) -> DrawResult {
    root.fill(&WHITE).map_err(draw_err)?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (font::FAMILY, 24))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(80)
        .build_cartesian_2d(x_range, y_range)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .light_line_style(RGBColor(242, 242, 242))
        .axis_desc_style((font::FAMILY, 16))
        .label_style((font::FAMILY, 14))
        .draw()
        .map_err(draw_err)?;
    for (i, (label, points)) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|(x, e)| (*x, e.mean)),
                colour.stroke_width(2),
            ))
            .map_err(draw_err)?
            .label(label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3))
            });
        chart
            .draw_series(
                points
                    .iter()
                    .map(|(x, e)| Circle::new((*x, e.mean), 4, colour.filled())),
            )
            .map_err(draw_err)?;
        chart
            .draw_series(points.iter().filter_map(|(x, e)| {
                let ci = e.ci95?;
                Some(ErrorBar::new_vertical(
                    *x,
                    e.mean - ci,
                    e.mean,
                    e.mean + ci,
                    colour.stroke_width(2),
                    10,
                ))
            }))
            .map_err(draw_err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((font::FAMILY, 15))
        .draw()
        .map_err(draw_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legend_entries_wrap_without_overlapping() {
        let texts: Vec<String> = (0..12).map(|i| format!("algorithm-{i}")).collect();
        let at = legend_layout(&texts, 600);
        assert!(at.last().unwrap().1 >= 2, "wrapped into rows: {at:?}");
        for (i, w) in at.windows(2).enumerate() {
            if w[0].1 == w[1].1 {
                assert!(w[0].0 + text_px(&texts[i], LEGEND_FONT) + 22 < w[1].0);
            }
        }
        assert!(at
            .iter()
            .zip(&texts)
            .all(|(&(x, _), t)| x == 0 || x + 22 + text_px(t, LEGEND_FONT) <= 600));
    }
}
