//! Bar figures lay out with 1 run and with 12: rendered to SVG, no two
//! (unrotated) text labels overlap; failures show in the figures; the
//! repeated-run and sweep figures render.

use std::path::Path;

use utils::analyze::{analyze, AnalyzeOptions};
use utils::compare::Comparison;
use utils::logs::{CallRecord, RunLog};
use utils::plot::{self, MetricEstimates, SweepSeries};
use utils::stats::Estimate;

/// A text element of an SVG and its estimated box (x0, y0, x1, y1).
#[derive(Debug)]
struct TextBox {
    text: String,
    rect: (f64, f64, f64, f64),
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let from = tag.find(&key)? + key.len();
    let len = tag[from..].find('"')?;
    Some(tag[from..from + len].to_string())
}

/// The unrotated `<text>` elements of plotters' SVG with boxes estimated
/// from the font size (0.55 em per character, ascent 0.76 em, descent
/// 0.24 em), shrunk by 1 px on each side.
fn text_boxes(svg: &str) -> Vec<TextBox> {
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find("<text ") {
        rest = &rest[start..];
        let tag_end = rest.find('>').unwrap();
        let tag = &rest[..tag_end];
        let close = rest.find("</text>").unwrap();
        let text = rest[tag_end + 1..close].trim().to_string();
        rest = &rest[close..];
        if tag.contains("transform=") || text.is_empty() {
            continue;
        }
        let num = |n: &str| attr(tag, n).unwrap().parse::<f64>().unwrap();
        let (x, y, size) = (num("x"), num("y"), num("font-size"));
        let dy = attr(tag, "dy").unwrap_or_default();
        let dy_px = if let Some(em) = dy.strip_suffix("em") {
            em.parse::<f64>().unwrap() * size
        } else if let Some(ex) = dy.strip_suffix("ex") {
            ex.parse::<f64>().unwrap() * size * 0.5
        } else {
            0.0
        };
        let baseline = y + dy_px;
        let width = text.chars().count() as f64 * size * 0.55;
        let x0 = match attr(tag, "text-anchor").as_deref() {
            Some("middle") => x - width / 2.0,
            Some("end") => x - width,
            _ => x,
        };
        out.push(TextBox {
            text,
            rect: (
                x0 + 1.0,
                baseline - 0.76 * size + 1.0,
                x0 + width - 1.0,
                baseline + 0.24 * size - 1.0,
            ),
        });
    }
    out
}

fn overlaps(svg: &str) -> Vec<(String, String)> {
    let boxes = text_boxes(svg);
    let mut found = Vec::new();
    for (i, a) in boxes.iter().enumerate() {
        for b in &boxes[i + 1..] {
            let (a0, a1, a2, a3) = a.rect;
            let (b0, b1, b2, b3) = b.rect;
            if a0 < b2 && b0 < a2 && a1 < b3 && b1 < a3 {
                found.push((a.text.clone(), b.text.clone()));
            }
        }
    }
    found
}

#[test]
fn the_overlap_check_finds_overlapping_labels() {
    let svg = r#"<text x="100" y="10" dy="0.76em" text-anchor="middle" font-size="13">a long label</text>
<text x="130" y="12" dy="0.76em" text-anchor="middle" font-size="13">another label</text>
<text x="400" y="12" dy="0.76em" text-anchor="middle" font-size="13">far away</text>"#;
    assert_eq!(
        overlaps(svg),
        vec![("a long label".to_string(), "another label".to_string())]
    );
}

fn call(node: usize, start: i64, len: i64) -> CallRecord {
    CallRecord {
        start_ms: start,
        end_ms: start + len,
        function: format!("F{}", node % 4),
        node,
        internal_ms: len / 2,
        image_built: start % 3 == 0,
        pooled: start % 5 == 0,
        rest_reused: start % 2 == 0,
        algorithm: None,
        algorithm_latency_ms: None,
    }
}

/// `n` runs with long labels; run k has k × 3 failed calls of 100.
fn comparison(n: usize) -> (Comparison, Vec<RunLog>) {
    let runs: Vec<RunLog> = (0..n)
        .map(|k| {
            let records = (0..100 - 3 * k as i64)
                .map(|i| call(i as usize % 4, i * 37, 200 + 13 * i + 50 * k as i64))
                .collect();
            let mut run = RunLog::from_records(&format!("logs/bounded-load-{k}.log"), records);
            for _ in 0..3 * k {
                run.push_error("every node is at its load bound (2 in-flight calls)");
            }
            run
        })
        .collect();
    let analyses: Vec<_> = runs
        .iter()
        .map(|r| analyze(r, &AnalyzeOptions::default()).unwrap())
        .collect();
    (Comparison::new(&analyses), runs)
}

fn render_svg(draw: impl FnOnce(&Path)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("figure.svg");
    draw(&path);
    std::fs::read_to_string(&path).unwrap()
}

#[test]
fn comparison_bars_lay_out_with_1_and_with_12_runs() {
    for n in [1, 12] {
        let (table, _) = comparison(n);
        let svg = render_svg(|p| plot::comparison_bars(&table, p).unwrap());
        let texts: Vec<String> = text_boxes(&svg).into_iter().map(|b| b.text).collect();
        assert!(
            texts.iter().any(|t| t == "Failed calls (lower = better)"),
            "{texts:?}"
        );
        assert!(texts.iter().any(|t| t.contains("bounded-load-0")));
        if n == 12 {
            // 33 of 100 failed in the last run: its p99 over all calls is a
            // failure, written instead of a bar.
            assert!(texts.iter().any(|t| t == "failed"), "{texts:?}");
            assert!(texts.iter().any(|t| t == "33.0"), "error rate 33 %");
        }
        let clashes = overlaps(&svg);
        assert!(
            clashes.is_empty(),
            "{n} runs: overlapping labels {clashes:?}"
        );
        if n == 1 {
            // Each bar (the first colour, taller than the legend's square)
            // has its run's name centred under it.
            let bars = bar_rects(&svg, "#1F77B4");
            // 8 panels; the error-rate bar is 0 (no failure in run 0).
            assert_eq!(bars.len(), 7, "one bar per panel but the error rate");
            let label = &table.rows[0].label;
            let ticks: Vec<f64> = text_boxes(&svg)
                .iter()
                .filter(|b| &b.text == label)
                .map(|b| (b.rect.0 + b.rect.2) / 2.0)
                .collect();
            for (x0, x1) in bars {
                let centre = (x0 + x1) / 2.0;
                assert!(
                    ticks.iter().any(|t| (t - centre).abs() < 2.0),
                    "no label under the bar {x0}..{x1}: {ticks:?}"
                );
            }
        }
    }
}

/// The x ranges of the `<rect>`s of this fill taller than 14 px.
fn bar_rects(svg: &str, fill: &str) -> Vec<(f64, f64)> {
    svg.split("<rect ")
        .skip(1)
        .map(|r| format!(" {}", &r[..r.find('>').unwrap()]))
        .filter(|r| attr(r, "fill").as_deref() == Some(fill))
        .collect::<Vec<_>>()
        .iter()
        .filter_map(|r| {
            let num = |n: &str| attr(r, n)?.parse::<f64>().ok();
            let (x, w, h) = (num("x")?, num("width")?, num("height")?);
            (h > 14.0).then_some((x, x + w))
        })
        .collect()
}

#[test]
fn the_cdf_legend_counts_failures() {
    let (table, runs) = comparison(3);
    let labelled: Vec<(String, &RunLog)> = table
        .rows
        .iter()
        .map(|r| r.label.clone())
        .zip(&runs)
        .collect();
    let svg = render_svg(|p| plot::latency_cdf(&labelled, plot::CdfMetric::Latency, p).unwrap());
    assert!(svg.contains("(6 of 100 failed; ok: n=94"), "legend");
    assert!(svg.contains("fraction of all calls"));
}

fn estimate(values: &[f64]) -> Estimate {
    Estimate::of(values).unwrap()
}

#[test]
fn repeated_run_bars_with_confidence_intervals_lay_out() {
    for n in [1, 12] {
        let rows: Vec<MetricEstimates> = (0..n)
            .map(|k| MetricEstimates {
                label: format!("algorithm-with-a-long-name-{k}"),
                metrics: vec![
                    (
                        "locality".into(),
                        estimate(&[1.0 + k as f64, 1.2 + k as f64, 0.9 + k as f64]),
                    ),
                    ("CV".into(), estimate(&[0.3])),
                    (
                        "p99 latency (ms)".into(),
                        estimate(&[900.0, 1100.0, 1000.0 + 10.0 * k as f64]),
                    ),
                ],
            })
            .collect();
        let svg = render_svg(|p| plot::comparison_bars_ci(&rows, p).unwrap());
        // Error bars are drawn as lines (one per CI); a single value has
        // no CI, so the CV panel has none.
        assert!(svg.contains("p99 latency (ms)") && svg.contains("locality"));
        let clashes = overlaps(&svg);
        assert!(clashes.is_empty(), "{n} labels: overlapping {clashes:?}");
    }
    let png = tempfile::tempdir().unwrap();
    let rows = vec![MetricEstimates {
        label: "rr".into(),
        metrics: vec![("locality".into(), estimate(&[1.0, 2.0]))],
    }];
    plot::comparison_bars_ci(&rows, &png.path().join("ci.png")).unwrap();
    assert!(std::fs::metadata(png.path().join("ci.png")).unwrap().len() > 1000);
    assert!(plot::comparison_bars_ci(&[], &png.path().join("none.svg")).is_err());
}

#[test]
fn sweep_lines_draw_one_line_per_series() {
    let series: Vec<SweepSeries> = ["rr", "ch", "pasch"]
        .iter()
        .enumerate()
        .map(|(i, label)| SweepSeries {
            label: label.to_string(),
            points: [10.0f64, 100.0, 1000.0]
                .iter()
                .map(|&x| {
                    let y = x.ln() * (i + 1) as f64;
                    (x, estimate(&[y, y * 1.1, y * 0.95]))
                })
                .collect(),
        })
        .collect();
    let svg = render_svg(|p| {
        plot::sweep_lines("Locality by cluster size", "nodes", "locality", &series, p).unwrap()
    });
    for t in ["Locality by cluster size", "nodes", "pasch"] {
        assert!(svg.contains(t), "{t}");
    }
    // Three lines through the means.
    assert!(svg.matches("<polyline").count() >= 3);
    let dir = tempfile::tempdir().unwrap();
    plot::sweep_lines("t", "x", "y", &series, &dir.path().join("s.png")).unwrap();
    let empty = [SweepSeries {
        label: "x".into(),
        points: vec![],
    }];
    assert!(plot::sweep_lines("t", "x", "y", &empty, &dir.path().join("e.svg")).is_err());
}
