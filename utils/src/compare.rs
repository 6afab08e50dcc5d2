//! One table across runs (`utils compare`, and the experiment's `report.md`
//! and `summary.csv`): one row per analyzed log, labelled by algorithm.
//!
//! Columns: calls (every call line), failed calls and error rate, nodes
//! (with where the count came from: given, the run's sidecar, or
//! inferred), locality (mean distinct functions per node per slot), CV of
//! the per-node load, hit ratios of the original's three caches, cold-start
//! ratio, mean duration and latency, p50/p99 latency, p99 duration, mean
//! algorithm latency, and `p99 all`. Ratios are fractions (0-1) in CSV and
//! JSON and percentages in the text and Markdown tables.
//!
//! Every metric but the call counts is over successful calls only, which
//! flatters an algorithm that rejects calls; the text and Markdown tables
//! say so in a footnote right under the table ([`FOOTNOTE`]). A run
//! without a successful call has none of them: `-` in the tables, empty in
//! CSV, `null` in JSON (its analysis's 0 is no measurement). `p99 all`
//! ([`crate::analyze::Analysis::p99_latency_all_ms`]) is the one latency an
//! algorithm cannot improve by rejecting calls: a failed call counts as
//! infinitely slow, and the cell reads `failed` when more than 1 % of the
//! calls failed (empty in CSV, `null` in JSON).
//!
//! [`differences`] lists what the runs' sidecars say they were given
//! differently beyond the algorithm, its parameters and the seed (`utils
//! compare` prints it as a warning on stderr).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::analyze::{Analysis, NodeCountRule};

/// The note printed under the text and Markdown tables.
pub const FOOTNOTE: &str =
    "* over successful calls only: failed calls are in no column but calls/failed/error %.\n\
p99 all: p99 latency over all calls, a failed call counting as infinitely slow \
(\"failed\" when more than 1 % of the calls failed).\n\
nodes: the cluster size (given: --nodes; sidecar: the run's .meta.json file beside its log; \
inferred: max WorkerNodeId + 1, which misses idle nodes).";

/// One run's summary. Every figure of successful calls is `None` for a
/// run that had none (the analysis's 0 there is no measurement): `-` in
/// the text tables, empty in CSV, `null` in JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComparisonRow {
    /// Unique within the table: the algorithm, with the file name added when
    /// two runs share one.
    pub label: String,
    pub source: String,
    /// Every call line (successful and failed).
    pub calls: usize,
    pub ok_calls: usize,
    pub failed: usize,
    /// `failed / calls`.
    pub error_rate: f64,
    pub unparseable_lines: usize,
    pub nodes: usize,
    pub node_count_rule: NodeCountRule,
    pub locality: Option<f64>,
    pub locality_stddev: Option<f64>,
    pub cv: Option<f64>,
    pub image_hit_ratio: Option<f64>,
    pub pooled_hit_ratio: Option<f64>,
    pub rest_hit_ratio: Option<f64>,
    pub cold_start_ratio: Option<f64>,
    pub mean_duration_ms: Option<f64>,
    pub mean_latency_ms: Option<f64>,
    pub p50_latency_ms: Option<u64>,
    pub p99_latency_ms: Option<u64>,
    /// p99 latency over all calls, failed = infinitely slow; `None` when
    /// more than 1 % failed.
    pub p99_latency_all_ms: Option<u64>,
    pub p99_duration_ms: Option<u64>,
    pub mean_algorithm_latency_us: Option<f64>,
    /// The 95 % interval of the p99 latency (any distribution:
    /// [`crate::analyze::Interval`]); `None` on a side the run's
    /// successful calls are too few to bound.
    pub p99_latency_low_ms: Option<u64>,
    pub p99_latency_high_ms: Option<u64>,
}

/// The table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub rows: Vec<ComparisonRow>,
}

/// Labels made unique: a repeated label gets its source's file name added.
pub fn unique_labels(labels_and_sources: &[(String, String)]) -> Vec<String> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (label, _) in labels_and_sources {
        *seen.entry(label.as_str()).or_insert(0) += 1;
    }
    labels_and_sources
        .iter()
        .map(|(label, source)| {
            if seen[label.as_str()] > 1 {
                let stem = Path::new(source)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| source.clone());
                format!("{label} ({stem})")
            } else {
                label.clone()
            }
        })
        .collect()
}

/// The analyses' labels made unique (a table's row labels).
fn labels_of(analyses: &[Analysis]) -> Vec<String> {
    unique_labels(
        &analyses
            .iter()
            .map(|a| (a.label.clone(), a.source.clone()))
            .collect::<Vec<_>>(),
    )
}

impl Comparison {
    pub fn new(analyses: &[Analysis]) -> Self {
        let labels = labels_of(analyses);
        let rows = analyses
            .iter()
            .zip(labels)
            .map(|(a, label)| {
                // Figures of successful calls: none without one.
                let ok = a.ok_calls > 0;
                let f = |v: f64| ok.then_some(v);
                let u = |v: u64| ok.then_some(v);
                ComparisonRow {
                    label,
                    source: a.source.clone(),
                    calls: a.calls,
                    ok_calls: a.ok_calls,
                    failed: a.failed,
                    error_rate: a.error_rate,
                    unparseable_lines: a.unparseable_lines,
                    nodes: a.nodes,
                    node_count_rule: a.node_count_rule,
                    locality: f(a.locality.mean_distinct_functions),
                    locality_stddev: f(a.locality.stddev),
                    cv: f(a.imbalance.cv),
                    image_hit_ratio: f(a.cache.image_reuse.hit_ratio),
                    pooled_hit_ratio: f(a.cache.pooled_container.hit_ratio),
                    rest_hit_ratio: f(a.cache.existing_rest_container.hit_ratio),
                    cold_start_ratio: f(a.cold_start_ratio),
                    mean_duration_ms: f(a.mean_duration_ms),
                    mean_latency_ms: f(a.mean_latency_ms),
                    p50_latency_ms: u(a.latency_ms.p50),
                    p99_latency_ms: u(a.latency_ms.p99),
                    p99_latency_all_ms: a.p99_latency_all_ms,
                    p99_duration_ms: u(a.duration_ms.p99),
                    mean_algorithm_latency_us: a.mean_algorithm_latency_us,
                    p99_latency_low_ms: a.latency_ms.ci95.p99.low,
                    p99_latency_high_ms: a.latency_ms.ci95.p99.high,
                }
            })
            .collect();
        Self { rows }
    }

    const HEADERS: [&'static str; 17] = [
        "run",
        "calls",
        "failed",
        "error %",
        "nodes",
        "locality*",
        "CV*",
        "image hit*",
        "pool hit*",
        "REST hit*",
        "cold*",
        "mean dur ms*",
        "mean lat ms*",
        "p50 lat ms*",
        "p99 lat ms*",
        "p99 all ms",
        "alg µs*",
    ];

    fn cells(&self) -> Vec<Vec<String>> {
        let dash = || "-".to_string();
        let fixed =
            |v: Option<f64>, decimals: usize| v.map_or_else(dash, |v| format!("{v:.decimals$}"));
        let pct = |r: f64| format!("{:.1}%", r * 100.0);
        let pct_of = |r: Option<f64>| r.map_or_else(dash, pct);
        let whole = |v: Option<u64>| v.map_or_else(dash, |v| v.to_string());
        self.rows
            .iter()
            .map(|r| {
                vec![
                    r.label.clone(),
                    r.calls.to_string(),
                    r.failed.to_string(),
                    pct(r.error_rate),
                    format!(
                        "{} ({})",
                        r.nodes,
                        match r.node_count_rule {
                            NodeCountRule::Given => "given",
                            NodeCountRule::Sidecar => "sidecar",
                            NodeCountRule::MaxIdPlusOne => "inferred",
                        }
                    ),
                    fixed(r.locality, 2),
                    fixed(r.cv, 2),
                    pct_of(r.image_hit_ratio),
                    pct_of(r.pooled_hit_ratio),
                    pct_of(r.rest_hit_ratio),
                    pct_of(r.cold_start_ratio),
                    fixed(r.mean_duration_ms, 0),
                    fixed(r.mean_latency_ms, 0),
                    whole(r.p50_latency_ms),
                    whole(r.p99_latency_ms),
                    r.p99_latency_all_ms
                        .map_or_else(|| "failed".into(), |v| v.to_string()),
                    fixed(r.mean_algorithm_latency_us, 1),
                ]
            })
            .collect()
    }

    /// A plain-text table with aligned columns.
    pub fn to_text(&self) -> String {
        let cells = self.cells();
        let widths: Vec<usize> = (0..Self::HEADERS.len())
            .map(|c| {
                cells
                    .iter()
                    .map(|row| row[c].chars().count())
                    .chain([Self::HEADERS[c].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let line = |out: &mut String, row: &[String]| {
            for (c, cell) in row.iter().enumerate() {
                let pad = widths[c] - cell.chars().count();
                if c == 0 {
                    let _ = write!(out, "{cell}{}", " ".repeat(pad));
                } else {
                    let _ = write!(out, "  {}{cell}", " ".repeat(pad));
                }
            }
            out.push('\n');
        };
        let headers: Vec<String> = Self::HEADERS.iter().map(|h| h.to_string()).collect();
        line(&mut out, &headers);
        for row in &cells {
            line(&mut out, row);
        }
        out.push('\n');
        out.push_str(FOOTNOTE);
        out.push('\n');
        if let Some(note) = self.unbounded_p99_note() {
            out.push_str(&note);
            out.push('\n');
        }
        out
    }

    /// A note naming the runs whose p99 latency has no upper 95 % bound
    /// (too few successful calls), if any: their p99 is little more than
    /// their slowest call, and comparing it says little.
    pub fn unbounded_p99_note(&self) -> Option<String> {
        let runs: Vec<&str> = self
            .rows
            .iter()
            .filter(|r| r.p99_latency_ms.is_some() && r.p99_latency_high_ms.is_none())
            .map(|r| r.label.as_str())
            .collect();
        (!runs.is_empty()).then(|| {
            format!(
                "p99 lat: too few successful calls to bound it above with 95 % confidence \
                 (whatever the distribution; 368 are needed) in {}: there it is little \
                 more than the slowest call.",
                runs.join(", ")
            )
        })
    }

    /// A GitHub-flavoured Markdown table (for `report.md`).
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "| {} |", Self::HEADERS.join(" | "));
        let _ = writeln!(
            out,
            "|{}",
            Self::HEADERS
                .iter()
                .enumerate()
                .map(|(i, _)| if i == 0 { "---|" } else { "---:|" })
                .collect::<String>()
        );
        for row in self.cells() {
            let escaped: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
            let _ = writeln!(out, "| {} |", escaped.join(" | "));
        }
        // A blank line ends the table; each note line is its own paragraph
        // line (two trailing spaces: a Markdown line break).
        out.push('\n');
        for note in FOOTNOTE
            .lines()
            .map(str::to_string)
            .chain(self.unbounded_p99_note())
        {
            let _ = writeln!(out, "{}  ", note.replace('*', "\\*"));
        }
        out
    }

    /// CSV with a header, one row per run, ratios as fractions (for
    /// `summary.csv` and scripts).
    pub fn to_csv(&self) -> String {
        let mut writer = csv::Writer::from_writer(Vec::new());
        for row in &self.rows {
            // Serializing plain numbers and strings into memory cannot fail.
            let _ = writer.serialize(row);
        }
        if self.rows.is_empty() {
            let _ = writer.write_record(Self::csv_header());
        }
        let bytes = writer.into_inner().unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn csv_header() -> [&'static str; 25] {
        [
            "label",
            "source",
            "calls",
            "ok_calls",
            "failed",
            "error_rate",
            "unparseable_lines",
            "nodes",
            "node_count_rule",
            "locality",
            "locality_stddev",
            "cv",
            "image_hit_ratio",
            "pooled_hit_ratio",
            "rest_hit_ratio",
            "cold_start_ratio",
            "mean_duration_ms",
            "mean_latency_ms",
            "p50_latency_ms",
            "p99_latency_ms",
            "p99_latency_all_ms",
            "p99_duration_ms",
            "mean_algorithm_latency_us",
            "p99_latency_low_ms",
            "p99_latency_high_ms",
        ]
    }
}

/// Settings a sidecar's `extra` may record that hold for the whole run
/// (not measurements of it): the balancer's version and source revision
/// (a live run's), the nodes', the workers' and the instance model's.
const SETTINGS_IN_EXTRA: [&str; 13] = [
    "balancer_version",
    "balancer_revision",
    "worker",
    "capacity",
    "cores_per_node",
    "machine_cores",
    "node_memory_mb",
    "instance_model",
    "profile",
    "catalog",
    "default_function",
    "semantics",
    "function_settings",
];

/// What the runs of one table were given differently beyond their
/// algorithm, its parameters and their seeds, from their sidecars: the
/// scenario, the producer (a live run or a simulation), its version and
/// source revision (and any run built from uncommitted changes), the
/// cluster's size, the scales, and the node, worker and instance settings
/// a simulation or an experiment records. Each line names the setting and
/// every run's value (`scenario: rr: a.csv; ch: b.csv`); a run without a
/// sidecar is named on a line of its own when others have one. Empty when
/// the runs agree on all of them: a comparison of algorithms means little
/// across such differences, so `utils compare` warns of them.
pub fn differences(analyses: &[Analysis]) -> Vec<String> {
    let labels = labels_of(analyses);
    let with: Vec<(&str, &protocol::sidecar::RunSidecar)> = labels
        .iter()
        .zip(analyses)
        .filter_map(|(label, a)| a.sidecar.as_ref().map(|s| (label.as_str(), s)))
        .collect();
    let mut lines = Vec::new();
    if with.is_empty() {
        return lines;
    }
    let without: Vec<&str> = labels
        .iter()
        .zip(analyses)
        .filter(|(_, a)| a.sidecar.is_none())
        .map(|(label, _)| label.as_str())
        .collect();
    // A setting's line, where two runs that record it differ (a run that
    // does not record it, an older sidecar or another producer, is left
    // out of that setting). A value is (what is compared, what is shown).
    let mut setting =
        |name: &str, value: &dyn Fn(&protocol::sidecar::RunSidecar) -> Option<(String, String)>| {
            let values: Vec<(&str, (String, String))> = with
                .iter()
                .filter_map(|(label, s)| value(s).map(|v| (*label, v)))
                .collect();
            if values.iter().any(|(_, v)| v.0 != values[0].1 .0) {
                let listed: Vec<String> = values
                    .iter()
                    .map(|(label, v)| format!("{label}: {}", v.1))
                    .collect();
                lines.push(format!("{name}: {}", listed.join("; ")));
            }
        };
    let same = |v: String| Some((v.clone(), v));
    let shown = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        v => {
            let text = v.to_string();
            match text.char_indices().nth(100) {
                Some((cut, _)) => format!("{}...", &text[..cut]),
                None => text,
            }
        }
    };
    setting("producer", &|s| same(s.producer.clone()));
    // The code: runs of two revisions compare two programs as well as two
    // algorithms.
    setting("version", &|s| same(s.version.clone()));
    setting("source revision", &|s| {
        s.git.as_ref().and_then(|g| same(g.to_string()))
    });
    // The same bytes are the same scenario, whatever their path: compared
    // by digest where the sidecar has one, else by the path resolved where
    // it still resolves (the same file by another relative path).
    setting("scenario", &|s| {
        let path = s.scenario.as_ref()?;
        Some(match &s.scenario_blake2b {
            Some(digest) => (
                digest.clone(),
                format!(
                    "{path} (blake2b {})",
                    crate::provenance::short_digest(digest)
                ),
            ),
            None => (
                std::fs::canonicalize(path)
                    .map_or_else(|_| path.clone(), |c| c.display().to_string()),
                path.clone(),
            ),
        })
    });
    setting("cluster size", &|s| same(s.cluster.size.to_string()));
    setting("time scale", &|s| same(s.scales.time_scale.to_string()));
    setting("function time scale", &|s| {
        s.scales.fn_time_scale.and_then(|x| same(x.to_string()))
    });
    setting("package scale", &|s| {
        s.scales.package_scale.and_then(|x| same(x.to_string()))
    });
    for key in SETTINGS_IN_EXTRA {
        setting(key, &|s| s.extra.get(key).and_then(|v| same(shown(v))));
    }
    // Built from uncommitted changes: one revision may then name two
    // programs, which no sidecar can tell apart.
    let dirty: Vec<&str> = with
        .iter()
        .filter(|(_, s)| s.git.as_ref().is_some_and(|g| g.dirty))
        .map(|(label, _)| *label)
        .collect();
    if !dirty.is_empty() && analyses.len() > 1 {
        lines.push(format!(
            "built from uncommitted changes (their code may differ unseen): {}",
            dirty.join(", ")
        ));
    }
    if !without.is_empty() {
        lines.push(format!(
            "no sidecar (settings unknown): {}",
            without.join(", ")
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_labels_get_the_file_name() {
        let labels = unique_labels(&[
            ("rr".into(), "a/one.log".into()),
            ("rr".into(), "b/two.log".into()),
            ("ch".into(), "c.log".into()),
        ]);
        assert_eq!(labels, vec!["rr (one)", "rr (two)", "ch"]);
    }

    #[test]
    fn the_empty_tables_header_is_the_rows_header() {
        let log = "2020/05/17 14:03:21 1000 2500 W3 {\"Result\":{\"statusCode\":200,\"body\":\"\"},\"ExecutionTime\":1300,\"InternalExecutionTime\":1001,\"Meta\":{\"ImageBuilt\":false,\"UsingPooledContainer\":false,\"UsingExistingRestContainer\":true,\"ContainerName\":\"c\",\"ImageName\":\"i\"},\"LoadBalancingInfo\":{\"WorkerNodeId\":1,\"WorkerNodeUrl\":\"u\"}}\n";
        let run = crate::logs::RunLog::parse(log, "a.log");
        let a = crate::analyze::analyze(&run, &Default::default()).unwrap();
        let full = Comparison::new(&[a]).to_csv();
        let empty = Comparison { rows: vec![] }.to_csv();
        assert_eq!(full.lines().next(), empty.lines().next());
    }

    /// A run whose every call failed has no figure of successful calls:
    /// empty in CSV and `null` in JSON (as `-` in the text tables), not the
    /// analysis's 0, which a script averaging a column would count.
    #[test]
    fn a_run_without_a_successful_call_has_no_figures_of_them() {
        let log = "2020/01/01 00:00:01 1000 2000 D8 {\"Error\":true,\"Message\":\"cancelled\"}\n";
        let run = crate::logs::RunLog::parse(log, "lost.log");
        let a = crate::analyze::analyze(&run, &Default::default()).unwrap();
        assert_eq!((a.ok_calls, a.mean_latency_ms), (0, 0.0));
        let table = Comparison::new(&[a]);
        let csv = table.to_csv();
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let row: Vec<&str> = lines.next().unwrap().split(',').collect();
        let cell = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
        assert_eq!(
            (cell("calls"), cell("ok_calls"), cell("failed")),
            ("1", "0", "1")
        );
        assert_eq!(cell("error_rate"), "1.0");
        for name in [
            "mean_latency_ms",
            "p50_latency_ms",
            "locality",
            "cv",
            "cold_start_ratio",
        ] {
            assert_eq!(cell(name), "", "{name}: {csv}");
        }
        let json = serde_json::to_value(&table).unwrap();
        assert!(json["rows"][0]["mean_latency_ms"].is_null(), "{json}");
        assert_eq!(json["rows"][0]["failed"], 1);
        assert!(table.to_text().contains(" - "), "{}", table.to_text());
    }

    /// Under 368 successful calls a p99 has no upper 95 % bound: the CSV
    /// leaves it empty and the tables name the run in a note; with 400
    /// calls it is bounded and no note is written.
    #[test]
    fn a_p99_over_too_few_calls_is_said_to_be_unbounded() {
        let table_of = |calls: u64| {
            let log: String = (0..calls)
                .map(|i| {
                    format!(
                        "2020/05/17 14:03:21 {} {} W3 {{\"Result\":{{\"statusCode\":200,\"body\":\"\"}},\"ExecutionTime\":1300,\"InternalExecutionTime\":1001,\"Meta\":{{\"ImageBuilt\":false,\"UsingPooledContainer\":false,\"UsingExistingRestContainer\":true,\"ContainerName\":\"c\",\"ImageName\":\"i\"}},\"LoadBalancingInfo\":{{\"WorkerNodeId\":1,\"WorkerNodeUrl\":\"u\"}}}}\n",
                        1000 + i,
                        2000 + i + i % 7
                    )
                })
                .collect();
            let run = crate::logs::RunLog::parse(&log, "a.log");
            Comparison::new(&[crate::analyze::analyze(&run, &Default::default()).unwrap()])
        };
        let few = table_of(50);
        let row = &few.rows[0];
        assert!(row.p99_latency_ms.is_some() && row.p99_latency_low_ms.is_some());
        assert_eq!(row.p99_latency_high_ms, None);
        let note = few.unbounded_p99_note().expect("a note");
        assert!(note.contains(&row.label), "{note}");
        assert!(few.to_text().contains(&note), "{}", few.to_text());
        assert!(few.to_markdown().contains(&note), "{}", few.to_markdown());
        let csv = few.to_csv();
        let header = csv.lines().next().unwrap();
        assert!(
            header.ends_with(",p99_latency_low_ms,p99_latency_high_ms"),
            "{header}"
        );
        assert!(csv.lines().nth(1).unwrap().ends_with(','), "{csv}");

        let many = table_of(400);
        assert!(many.rows[0].p99_latency_high_ms.is_some());
        assert_eq!(many.unbounded_p99_note(), None);
        assert!(!many.to_text().contains("too few successful calls"));
    }

    #[test]
    fn empty_csv_still_has_the_header() {
        let csv = Comparison { rows: vec![] }.to_csv();
        assert!(csv.starts_with("label,source,calls,"), "{csv}");
    }
}
