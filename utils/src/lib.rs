//! Scenario generation, log analysis, plots and comparisons for the
//! HotFunctions testbed: a Rust port and extension of the original's
//! `generate_events_stream.py`, `analyzer.py` and `visualize.html`
//! (Prev/HotFunctions).
//!
//! # Layout
//! - [`generate`]: scenarios. [`generate::generate`] turns a
//!   [`generate::GeneratorConfig`] (seed, duration, rate scale,
//!   [`generate::Arrivals`] uniform/Poisson/bursty,
//!   [`generate::Popularity`] catalog/Zipf) into a [`generate::Scenario`];
//!   [`generate::write_scenario`] writes the CSV and its `<file>.meta.json`.
//! - [`import`]: trace import (`utils import`): the Azure Functions traces
//!   ([`import::azure2019::import`], [`import::azure2021::import`]) as a
//!   scenario with per-call duration and memory, a catalog of synthetic
//!   functions and a sidecar; streamed, in bounded memory.
//! - [`logs`]: reading replay logs. [`logs::RunLog::read`] /
//!   [`logs::RunLog::parse`] give the successful calls
//!   ([`logs::CallRecord`]), count the failed calls by cause
//!   ([`logs::ErrorClass`]: load bound, no online node, worker error,
//!   timeout, other) and the unreadable lines; `read` also reads the run's
//!   sidecar `<log>.meta.json` ([`logs::RunLog::sidecar`],
//!   [`protocol::sidecar`]) when there is one; [`logs::RunLog::label`] is
//!   the sidecar's algorithm, else the logged algorithm, else the file name.
//! - [`analyze`]: the original analyzer's metrics and more.
//!   [`analyze::analyze`] (one [`logs::RunLog`]) and
//!   [`analyze::analyze_logs`] (paths) return [`analyze::Analysis`]
//!   (serde `Serialize`: calls, failed calls, error rate and causes,
//!   locality, imbalance CV, cache hits, percentiles of successful calls,
//!   the p99 over all calls with failures as infinitely slow, per function,
//!   per node, and per 1-s slot with [`analyze::AnalyzeOptions::per_slot`]).
//!   The cluster size (idle nodes count in locality and CV) is
//!   [`analyze::AnalyzeOptions::nodes`], else the sidecar's `cluster.size`,
//!   else `max WorkerNodeId + 1`; [`analyze::Analysis::node_count_rule`]
//!   says which.
//! - [`report`]: [`report::analysis_text`], the text report of one analysis.
//! - [`compare`]: [`compare::Comparison::new`] over analyses, rendered with
//!   `to_text`, `to_markdown` (report.md) and `to_csv` (summary.csv): calls,
//!   failed, error rate, nodes and their origin for every run, a footnote
//!   saying which columns cover successful calls only.
//! - [`export`]: [`export::export_csv`], every call of a set of logs as one
//!   CSV row (failed calls included, JSON fields flattened), streamed.
//! - [`plot`]: [`plot::timeline`], [`plot::latency_cdf`] (over all calls,
//!   failures in the legend) and [`plot::comparison_bars`] (with an error
//!   rate panel), PNG or SVG by the output's extension;
//!   [`plot::all_figures`] writes all of them (PNG + SVG) into a directory.
//!   For repeated runs and sweeps: [`plot::comparison_bars_ci`] (mean and
//!   95 % CI per metric, from [`plot::MetricEstimates`]) and
//!   [`plot::sweep_lines`] ([`plot::SweepSeries`]). Fonts from
//!   [`plot::font`] (Debian: `fonts-dejavu-core`, or
//!   `HF_PLOT_FONT=/path/to/font.ttf`).
//!
//! - [`stats`]: [`stats::Estimate`], mean and 95 % confidence interval of
//!   repeated runs.
//! - [`provenance`]: [`provenance::source_revision`], the revision of the
//!   sources the binary was built from, which a run records.
//! - [`error_text`]: an error and its causes in one line, as the tools
//!   (`utils`, `simulator`) print them.
//!
//! A typical experiment, after one log per algorithm:
//! ```no_run
//! use utils::{analyze, compare::Comparison, logs::RunLog, plot};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runs: Vec<RunLog> = ["rr.log", "ch.log"]
//!     .iter()
//!     .map(|p| RunLog::read(p.as_ref()))
//!     .collect::<Result<_, _>>()?;
//! let options = analyze::AnalyzeOptions {
//!     nodes: Some(4),
//!     ..Default::default()
//! };
//! let analyses = runs
//!     .iter()
//!     .map(|r| analyze::analyze(r, &options))
//!     .collect::<Result<Vec<_>, _>>()?;
//! let table = Comparison::new(&analyses);
//! std::fs::write("report.md", table.to_markdown())?;
//! std::fs::write("summary.csv", table.to_csv())?;
//! plot::comparison_bars(&table, "bars.png".as_ref())?;
//! let labelled: Vec<(String, &RunLog)> =
//!     table.rows.iter().map(|r| r.label.clone()).zip(&runs).collect();
//! plot::latency_cdf(&labelled, plot::CdfMetric::Latency, "cdf.svg".as_ref())?;
//! plot::timeline(&runs[0], "timeline-rr.png".as_ref(), &plot::TimelineOptions::default())?;
//! // Or every figure at once, PNG and SVG:
//! plot::all_figures(&labelled, &table, Some(4), "results/x".as_ref())?;
//! # Ok(()) }
//! ```

pub mod analyze;
pub mod compare;
pub mod export;
pub mod generate;
pub mod import;
pub mod logs;
pub mod plot;
pub mod provenance;
pub mod report;
pub mod stats;

/// An error and its causes in one line, as `{:#}` prints them, but without
/// a cause whose text the message before it already contains (errors that
/// name their source in their own message, `cannot read x: No such file`,
/// would otherwise print it twice).
pub fn error_text(error: &anyhow::Error) -> String {
    protocol::text::error_line(error.as_ref())
}

#[cfg(test)]
mod error_text_tests {
    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::new(io).context("cannot read x.csv: no such file");
        assert_eq!(super::error_text(&e), "cannot read x.csv: no such file");
        let e = anyhow::anyhow!("root cause").context("while loading");
        assert_eq!(super::error_text(&e), "while loading: root cause");
    }
}
