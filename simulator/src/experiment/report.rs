//! The report: the logs analysed with `utils`, per-run and aggregated
//! tables (mean and 95 % confidence interval over repetitions), plots, and
//! `report.md`, `summary.csv`, `runs.csv`, `run.json`, `experiment.toml`.

use super::*;

/// The metrics aggregated over repetitions: key, title, value. A run's
/// row has no figure of successful calls when it had none
/// ([`utils::compare::ComparisonRow`]): it is then left out of the
/// metric's mean and interval (its log's analysis gives 0 there, the
/// original's rule for one log, which would pull a mean down as if
/// measured).
type MetricFn = fn(&utils::compare::ComparisonRow) -> Option<f64>;
const METRICS: &[(&str, &str, MetricFn)] = &[
    ("mean_latency_ms", "mean latency, ok calls (ms)", |r| {
        r.mean_latency_ms
    }),
    ("p50_latency_ms", "p50 latency, ok calls (ms)", |r| {
        r.p50_latency_ms.map(|v| v as f64)
    }),
    ("p99_latency_ms", "p99 latency, ok calls (ms)", |r| {
        r.p99_latency_ms.map(|v| v as f64)
    }),
    ("mean_duration_ms", "mean duration, ok calls (ms)", |r| {
        r.mean_duration_ms
    }),
    ("failed_pct", "failed calls (%)", |r| {
        Some(100.0 * r.error_rate)
    }),
    ("locality", "locality (functions/node/s)", |r| r.locality),
    ("cv", "imbalance CV", |r| r.cv),
    ("image_hit_ratio", "image hits", |r| r.image_hit_ratio),
    ("pooled_hit_ratio", "pooled instances", |r| {
        r.pooled_hit_ratio
    }),
    ("rest_hit_ratio", "REST instances", |r| r.rest_hit_ratio),
    ("cold_start_ratio", "cold starts", |r| r.cold_start_ratio),
];

/// A closed loop's figures of a run (not in its log): key, title, value.
type RunMetricFn = fn(&AlgorithmRun) -> Option<f64>;
const LOAD_METRICS: &[(&str, &str, RunMetricFn)] = &[
    ("throughput_per_s", "throughput (ok calls/s)", |r| {
        r.throughput_per_s()
    }),
    ("cancelled", "cancelled calls", |r| {
        r.cancelled().map(|c| c as f64)
    }),
];

/// One algorithm at one point, over its repetitions.
struct Aggregate {
    point: usize,
    algorithm: String,
    /// Runs of this algorithm at this point; a metric over successful
    /// calls may have fewer values, one per run with one.
    runs: usize,
    /// Runs with a successful call.
    runs_with_ok_calls: usize,
    estimates: Vec<Option<Estimate>>,
    /// [`LOAD_METRICS`] (closed loops only, else empty).
    load_estimates: Vec<Option<Estimate>>,
    disturbed: usize,
}

impl Aggregate {
    /// Whether its runs, two or more, gave the same value of every metric.
    fn identical(&self) -> bool {
        self.runs > 1
            && self
                .estimates
                .iter()
                .chain(&self.load_estimates)
                .flatten()
                .all(|e| e.n == self.runs && e.min == e.max)
    }
}

/// A cell of the repeated runs' table: `mean ± ci95`, with the count of
/// values when fewer than the `runs` (runs without a successful call have
/// no value of a metric over them), `-` with none.
fn estimate_cell(e: Option<&Estimate>, runs: usize, decimals: usize) -> String {
    match e {
        None => "-".into(),
        Some(e) if e.n < runs => format!("{} ({} of {runs} runs)", e.display(decimals), e.n),
        Some(e) => e.display(decimals),
    }
}

/// Per point and algorithm, the estimates of every metric over its runs'
/// `rows` (one per run of the record, in its order).
fn aggregate(record: &ExperimentRecord, rows: &[utils::compare::ComparisonRow]) -> Vec<Aggregate> {
    let mut out = Vec::new();
    for (pi, _) in record.points.iter().enumerate() {
        for alg in &record.algorithms {
            let runs: Vec<usize> = record
                .runs
                .iter()
                .enumerate()
                .filter(|(_, r)| r.point == pi && &r.algorithm == alg)
                .map(|(i, _)| i)
                .collect();
            if runs.is_empty() {
                continue;
            }
            let estimates = METRICS
                .iter()
                .map(|(_, _, f)| {
                    let v: Vec<f64> = runs.iter().filter_map(|&i| f(&rows[i])).collect();
                    Estimate::of(&v)
                })
                .collect();
            let load_estimates = if record.closed_loop.is_some() {
                LOAD_METRICS
                    .iter()
                    .map(|(_, _, f)| {
                        let v: Vec<f64> = runs.iter().filter_map(|&i| f(&record.runs[i])).collect();
                        Estimate::of(&v)
                    })
                    .collect()
            } else {
                Vec::new()
            };
            out.push(Aggregate {
                point: pi,
                algorithm: alg.clone(),
                runs: runs.len(),
                runs_with_ok_calls: runs.iter().filter(|&&i| rows[i].ok_calls > 0).count(),
                estimates,
                load_estimates,
                disturbed: runs.iter().filter(|&&i| record.runs[i].disturbed()).count(),
            });
        }
    }
    out
}

/// Analyses the logs and writes report.md, summary.csv, runs.csv,
/// run.json, experiment.toml and plots.
pub(super) fn write_report(
    opts: &RunOptions,
    dir: &Path,
    record: &ExperimentRecord,
) -> Result<(), ExperimentError> {
    use utils::{analyze, compare::Comparison, logs::RunLog, plot};
    let mut runs = Vec::new();
    let mut analyses = Vec::new();
    for r in &record.runs {
        let log = RunLog::read(&r.log).map_err(|e| ExperimentError::Analysis(e.to_string()))?;
        let options = analyze::AnalyzeOptions {
            nodes: Some(record.points[r.point].workers as usize),
            label: Some(r.id.clone()),
            ..Default::default()
        };
        let a = analyze::analyze(&log, &options)
            .map_err(|e| ExperimentError::Analysis(format!("{}: {e}", r.log.display())))?;
        analyses.push(a);
        runs.push(log);
    }
    let single = record.repeat == 1 && record.points.len() == 1;
    let table = Comparison::new(&analyses);
    let aggregates = aggregate(record, &table.rows);
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(io_err(format!("writing {}", p.display())))
    };
    let per_run = with_noise_columns(&table.to_csv(), record);
    write("runs.csv", per_run.clone())?;
    if single {
        write("summary.csv", per_run)?;
    } else {
        write("summary.csv", aggregate_csv(record, &aggregates))?;
    }
    write(
        "run.json",
        serde_json::to_string_pretty(record).unwrap_or_default() + "\n",
    )?;
    let toml = record.file.to_toml();
    write("experiment.toml", toml.clone())?;
    if let Some(csv) = variants_csv(record) {
        write("profile-variants.csv", csv)?;
    }

    let mut plots: Vec<(String, String)> = Vec::new();
    let mut plot_errors = Vec::new();
    if !opts.no_plots {
        let mut try_plot = |file: &str, title: String, r: Result<(), plot::PlotError>| match r {
            Ok(()) => plots.push((title, format!("plots/{file}"))),
            Err(e) => plot_errors.push(format!("{file}: {e}")),
        };
        let p = dir.join("plots");
        if single {
            try_plot(
                "comparison.png",
                "Algorithms compared".into(),
                plot::comparison_bars(&table, &p.join("comparison.png")),
            );
            let labelled: Vec<(String, &RunLog)> = record
                .runs
                .iter()
                .map(|r| r.algorithm.clone())
                .zip(&runs)
                .collect();
            try_plot(
                "latency-cdf.png",
                "Latency CDF (duration - InternalExecutionTime)".into(),
                plot::latency_cdf(
                    &labelled,
                    plot::CdfMetric::Latency,
                    &p.join("latency-cdf.png"),
                ),
            );
            for (r, log) in record.runs.iter().zip(&runs) {
                let file = format!("timeline-{}.png", r.algorithm);
                let options = plot::TimelineOptions {
                    title: Some(format!("{}: running functions per node", r.algorithm)),
                    nodes: Some(record.workers as usize),
                    ..Default::default()
                };
                try_plot(
                    &file,
                    format!("Timeline, {}", r.algorithm),
                    plot::timeline(log, &p.join(&file), &options),
                );
            }
        } else {
            for (title, file, r) in repeated_plots(record, &aggregates, &p) {
                try_plot(&file, title, r);
            }
        }
        for e in &plot_errors {
            crate::note!("experiment: warning: plot {e}");
        }
    }
    write(
        "report.md",
        report_markdown(
            record,
            &format!("{}{}", table.to_markdown(), failures_markdown(&analyses)),
            (!single).then(|| aggregate_markdown(record, &aggregates)),
            closed_loop_markdown(record, &aggregates),
            &toml,
            &plots,
            &plot_errors,
        ),
    )?;
    Ok(())
}

fn point_label(record: &ExperimentRecord, i: usize) -> String {
    record.points[i].label.clone().unwrap_or_default()
}

/// summary.csv of repeated runs: one row per point and algorithm: its
/// runs, the runs with a successful call (the values of every metric over
/// successful calls), the disturbed runs, and the mean
/// and 95 % CI half-width of every metric (empty when it has no value, or
/// one value for the interval).
fn aggregate_csv(record: &ExperimentRecord, aggregates: &[Aggregate]) -> String {
    let mut o = String::from("point,algorithm,runs,runs_with_ok_calls,disturbed");
    let load_metrics = if record.closed_loop.is_some() {
        LOAD_METRICS
    } else {
        &[]
    };
    let keys = METRICS.iter().map(|m| m.0);
    for key in keys.chain(load_metrics.iter().map(|m| m.0)) {
        let _ = write!(o, ",{key}_mean,{key}_ci95");
    }
    o.push('\n');
    for a in aggregates {
        let _ = write!(
            o,
            "{},{},{},{},{}",
            point_label(record, a.point),
            a.algorithm,
            a.runs,
            a.runs_with_ok_calls,
            a.disturbed
        );
        for e in a.estimates.iter().chain(&a.load_estimates) {
            match e {
                Some(e) => {
                    let _ = write!(
                        o,
                        ",{},{}",
                        e.mean,
                        e.ci95.map(|h| h.to_string()).unwrap_or_default()
                    );
                }
                None => o.push_str(",,"),
            }
        }
        o.push('\n');
    }
    o
}

/// The report's table of repeated runs: mean ± 95 % CI.
fn aggregate_markdown(record: &ExperimentRecord, aggregates: &[Aggregate]) -> String {
    let mut o = String::new();
    let swept = record.sweep.is_some();
    if swept {
        o.push_str("| point ");
    }
    o.push_str("| algorithm | runs |");
    for (_, title, _) in METRICS {
        let _ = write!(o, " {title} |");
    }
    o.push('\n');
    if swept {
        o.push_str("|---");
    }
    o.push_str("|---|---|");
    for _ in METRICS {
        o.push_str("---|");
    }
    o.push('\n');
    for a in aggregates {
        if swept {
            let _ = write!(o, "| {} ", point_label(record, a.point));
        }
        let _ = write!(
            o,
            "| {} | {}{} |",
            a.algorithm,
            a.runs,
            if a.disturbed > 0 {
                format!(" ({} disturbed)", a.disturbed)
            } else {
                String::new()
            }
        );
        for ((key, _, _), e) in METRICS.iter().zip(&a.estimates) {
            let decimals = if key.ends_with("_ms") || key.ends_with("_pct") {
                1
            } else {
                3
            };
            let _ = write!(o, " {} |", estimate_cell(e.as_ref(), a.runs, decimals));
        }
        o.push('\n');
    }
    o.push_str(
        "\nEach cell: mean over the runs ± the half-width of its 95 % confidence interval \
         (Student's t; none for one run). Latency figures are over successful calls only; \
         \"failed calls\" counts the rest, so an algorithm that rejects calls shows it there. \
         A run without a successful call has no value of a metric over them (its log's \
         analysis gives 0, which would pass for a measurement): such cells give the runs \
         they are over, \"(k of n runs)\", or \"-\" for none.\n",
    );
    o.push_str(&aggregate_notes(record, aggregates));
    o
}

/// Warnings under the repeated runs' table: runs without a successful
/// call, and repetitions that were all the same.
fn aggregate_notes(record: &ExperimentRecord, aggregates: &[Aggregate]) -> String {
    let name = |a: &Aggregate| match &record.points[a.point].label {
        Some(l) => format!("{} at {l}", a.algorithm),
        None => a.algorithm.clone(),
    };
    let mut o = String::new();
    let failed: Vec<String> = aggregates
        .iter()
        .filter(|a| a.runs_with_ok_calls < a.runs)
        .map(|a| {
            format!(
                "{} ({} of {})",
                name(a),
                a.runs - a.runs_with_ok_calls,
                a.runs
            )
        })
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(
            o,
            "\n**Runs without a successful call**: {}. Their metrics over successful calls \
             are left out of those cells; \"failed calls\" counts them.",
            failed.join(", ")
        );
    }
    let identical: Vec<String> = aggregates
        .iter()
        .filter(|a| a.identical())
        .map(name)
        .collect();
    if !identical.is_empty() {
        let _ = writeln!(
            o,
            "\n**Identical repetitions**: {}. Every run of each gave the same value of every \
             metric, so its intervals are 0 by construction, not a measured spread: the seed \
             (repetition k uses seed + k) changed nothing in these runs.{}",
            identical.join(", "),
            if record.mode == Mode::Des {
                " A simulation's seed drives only its random draws (sampled durations and \
                 think times, randomized algorithms such as random and p2c); it says nothing \
                 about how live runs vary."
            } else {
                ""
            }
        );
    }
    o
}

type PlotResult = Result<(), utils::plot::PlotError>;

/// The figures of repeated runs and sweeps: per point, bars with 95 % CI
/// error bars; for a sweep, one line plot per metric against the value.
fn repeated_plots(
    record: &ExperimentRecord,
    aggregates: &[Aggregate],
    dir: &Path,
) -> Vec<(String, String, PlotResult)> {
    use utils::plot::{self, MetricEstimates, SweepSeries};
    let mut out = Vec::new();
    for (pi, p) in record.points.iter().enumerate() {
        let rows: Vec<MetricEstimates> = aggregates
            .iter()
            .filter(|a| a.point == pi)
            .map(|a| MetricEstimates {
                label: a.algorithm.clone(),
                metrics: METRICS
                    .iter()
                    .zip(&a.estimates)
                    .filter_map(|((_, title, _), e)| e.map(|e| (title.to_string(), e)))
                    .collect(),
            })
            .collect();
        let (file, title) = match &p.label {
            Some(l) => (
                format!("comparison-{}.png", safe_name(l)),
                format!("Algorithms compared, {l} (mean, 95 % CI)"),
            ),
            None => (
                "comparison.png".to_string(),
                format!(
                    "Algorithms compared (mean, 95 % CI over {} runs)",
                    record.repeat
                ),
            ),
        };
        let r = plot::comparison_bars_ci(&rows, &dir.join(&file));
        out.push((title, file, r));
    }
    if let Some(param) = &record.sweep {
        if record.points.iter().all(|p| p.x.is_some()) {
            for (mi, (key, title, _)) in METRICS.iter().enumerate() {
                let series: Vec<SweepSeries> = record
                    .algorithms
                    .iter()
                    .map(|alg| SweepSeries {
                        label: alg.clone(),
                        points: aggregates
                            .iter()
                            .filter(|a| &a.algorithm == alg)
                            .filter_map(|a| Some((record.points[a.point].x?, a.estimates[mi]?)))
                            .collect(),
                    })
                    .collect();
                let file = format!("sweep-{key}.png");
                let r = plot::sweep_lines(title, param, title, &series, &dir.join(&file));
                out.push((format!("{title} against {param}"), file, r));
            }
        }
    }
    out
}

/// The build and run commands that regenerate a run.
fn reproduce_command(record: &ExperimentRecord) -> String {
    let args = format!(
        "experiment --file {} --results-dir {} --name {}-again",
        record
            .results_dir
            .join(&record.name)
            .join("experiment.toml")
            .display(),
        record.results_dir.display(),
        record.name
    );
    match record.mode {
        Mode::Des => format!("cargo run --release -p simulator -- {args}"),
        Mode::Live => {
            let release = record.versions.binaries.as_deref() != Some("debug");
            let profile = if release { "release" } else { "debug" };
            format!(
                "cargo build{} --workspace && target/{profile}/simulator {args}",
                if release { " --release" } else { "" }
            )
        }
    }
}

/// The closed loop's table (None for a scenario): per algorithm (and
/// point), throughput, latency, cold starts, failed and cancelled calls,
/// each the mean ± 95 % CI over the repetitions.
fn closed_loop_markdown(record: &ExperimentRecord, aggregates: &[Aggregate]) -> Option<String> {
    record.closed_loop.as_ref()?;
    let metric = |a: &Aggregate, key: &str| -> Option<Estimate> {
        let i = METRICS.iter().position(|(k, _, _)| *k == key)?;
        a.estimates[i]
    };
    let load = |a: &Aggregate, key: &str| -> Option<Estimate> {
        let i = LOAD_METRICS.iter().position(|(k, _, _)| *k == key)?;
        a.load_estimates.get(i).copied().flatten()
    };
    let swept = record.sweep.is_some();
    let mut o = String::new();
    if swept {
        o.push_str("| point ");
    }
    o.push_str("| algorithm | runs | throughput (ok calls/s) | mean latency (ms) | p99 latency (ms) | cold starts | failed calls (%) | cancelled calls |\n");
    if swept {
        o.push_str("|---");
    }
    o.push_str("|---|---|---|---|---|---|---|---|\n");
    for a in aggregates {
        if swept {
            let _ = write!(o, "| {} ", point_label(record, a.point));
        }
        let cell =
            |e: Option<Estimate>, decimals: usize| estimate_cell(e.as_ref(), a.runs, decimals);
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            a.algorithm,
            a.runs,
            cell(load(a, "throughput_per_s"), 2),
            cell(metric(a, "mean_latency_ms"), 1),
            cell(metric(a, "p99_latency_ms"), 1),
            cell(metric(a, "cold_start_ratio"), 3),
            cell(metric(a, "failed_pct"), 1),
            cell(load(a, "cancelled"), 1),
        );
    }
    Some(o)
}

fn report_markdown(
    record: &ExperimentRecord,
    table: &str,
    aggregate_table: Option<String>,
    closed_loop_table: Option<String>,
    toml: &str,
    plots: &[(String, String)],
    plot_errors: &[String],
) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Experiment `{}`\n", record.name);
    if record.interrupted {
        let _ = writeln!(
            o,
            "**INTERRUPTED**: only the runs below finished (the last one may be partial).\n"
        );
    }
    let disturbed = record.runs.iter().filter(|r| r.disturbed()).count();
    if disturbed > 0 {
        let _ = writeln!(
            o,
            "**DISTURBED**: {disturbed} of {} runs ran on a disturbed machine (see Noise below); \
             their numbers are not comparable with quiet runs.\n",
            record.runs.len()
        );
    }
    if !record.inputs_changed.is_empty() {
        let _ = writeln!(
            o,
            "**INPUTS CHANGED** since the experiment file was written, so this is not the run \
             that wrote it and its figures may differ: {}.\n",
            record.inputs_changed.join("; ")
        );
    }
    let _ = writeln!(o, "| | |\n|---|---|");
    let _ = writeln!(o, "| Command | `{}` |", record.command);
    let _ = writeln!(
        o,
        "| Reproduce | `{}` (from the workspace root; `experiment.toml` holds every resolved value) |",
        reproduce_command(record)
    );
    let _ = writeln!(o, "| Started | {} |", record.started_utc);
    match &record.closed_loop {
        Some(c) => {
            // Stages are a list of counts, each stage `duration_s` long.
            let clients = match c["clients"].as_array() {
                Some(stages) => format!(
                    "stages of {} clients, {} s each",
                    stages
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", then "),
                    c["duration_s"]
                ),
                None => format!("{} clients for {} s", c["clients"], c["duration_s"]),
            };
            let _ = writeln!(
                o,
                "| Workload | closed loop (`simulator load`'s clients): {clients}, think `{}`, functions `{}` ({} names), load seed {}{}, grace {} s |",
                c["think"].as_str().unwrap_or("-"),
                c["functions"].as_str().unwrap_or("-"),
                c["function_count"],
                c["seed"],
                if record.repeat > 1 {
                    " (repetition k uses load seed + k)"
                } else {
                    ""
                },
                c["grace_s"]
            );
        }
        None => {
            let _ = writeln!(
                o,
                "| Scenario | `{}`: {} events over {:.1} s |",
                record.scenario.display(),
                record.scenario_events,
                record.scenario_span_s
            );
        }
    }
    let _ = writeln!(
        o,
        "| Mode | {} |",
        match record.mode {
            Mode::Live => match &record.cluster {
                Some(c) => format!(
                    "live on a cluster: {}; per run, `/configure?lb=<algorithm>&seed=<seed>` (a fresh scheduler) and `/clear?reset_images=true` through the balancer",
                    c.describe()
                ),
                None => format!(
                    "live: {} `worker-front` nodes ({} runtime), one fresh `load-balancer` per run",
                    record.workers,
                    record.runtime.as_str()
                ),
            },
            Mode::Des => format!(
                "discrete-event simulation (`simulator des`), {} nodes, virtual time, on the {} runtime's cost profile",
                record.workers,
                record.runtime.as_str()
            ),
        }
    );
    if record.mode == Mode::Des {
        let p = &record.points[0];
        let _ = writeln!(
            o,
            "| Cores | {} |",
            match (p.machine_cores, p.node_cores) {
                (Some(m), _) => format!(
                    "the simulated nodes share one machine of {m} cores (`--machine-cores`)"
                ),
                (None, Some(c)) =>
                    format!("{c} per simulated node (`--node-cores`); the host's do not matter"),
                (None, None) => "the profile's per node".into(),
            }
        );
        if let Some(origin) = &record.cost_profile {
            let _ = writeln!(
                o,
                "| Cost profile | {}{} |",
                origin.text,
                origin
                    .flag()
                    .map_or_else(String::new, |f| format!(" (**{f}**)"))
            );
        }
    }
    if let Some(h) = &record.host {
        let _ = writeln!(o, "| Host | {} |", h.describe());
    }
    if !record.settings.is_empty() {
        let list: Vec<String> = record
            .settings
            .iter()
            .map(|s| format!("`{}={}`", s.name, s.value))
            .collect();
        let _ = writeln!(o, "| Settings | {} |", list.join(", "));
    }
    if let Some(p) = record.points.first() {
        let model = match p.instances {
            policy::node::InstanceModel::HotFunctions => {
                "HotFunctions' (the caching options above)".to_string()
            }
            policy::node::InstanceModel::Lambda { keep_alive, policy } => format!(
                "Lambda, one call per instance, keep-alive policy `{policy}`, keep-alive {} s",
                keep_alive.as_secs_f64()
            ),
        };
        let _ = writeln!(
            o,
            "| Instances | {model}; node memory {} MB |",
            p.node_memory_mb
        );
    }
    if record.closed_loop.is_some() {
        let _ = writeln!(
            o,
            "| Time scale | real time (a closed loop); functions `HF_TIME_SCALE={:.4}` |",
            record.fn_time_scale
        );
    } else {
        let _ = writeln!(
            o,
            "| Time scale | replay x{} (events sent {} times faster); functions `HF_TIME_SCALE={:.4}`, \
             so the offered load is {:.2}x the scenario's |",
            record.time_scale,
            record.time_scale,
            record.fn_time_scale,
            record.fn_time_scale * record.time_scale
        );
    }
    if record.package_scale != 1.0 {
        let _ = writeln!(
            o,
            "| Package scale | `HF_PACKAGE_SCALE={}`: packages are that much of the original's sizes |",
            record.package_scale
        );
    }
    if let Some(sched) = record.function_sched {
        let policy = match sched {
            worker_front::runtime::spawn::FunctionSched::Normal => "SCHED_OTHER",
            worker_front::runtime::spawn::FunctionSched::Batch => {
                "SCHED_BATCH (a woken function does not preempt the thread running)"
            }
        };
        let _ = writeln!(
            o,
            "| Function processes | `--function-sched {}`: {policy} |",
            sched.as_str()
        );
    }
    if let Some(cap) = record.duration_cap_s {
        let _ = writeln!(o, "| Duration cap | first {cap} s of the scenario |");
    }
    let _ = writeln!(
        o,
        "| Seed | {}{} |",
        record.seed,
        if record.repeat > 1 {
            format!(
                " (repetition k uses seed + k: {}..={})",
                record.seed,
                record.seed + u64::from(record.repeat) - 1
            )
        } else {
            " (scheduler RNG)".into()
        }
    );
    if record.repeat > 1 {
        let _ = writeln!(
            o,
            "| Repetitions | {} per algorithm{} |",
            record.repeat,
            if record.mode == Mode::Live {
                ", interleaved"
            } else {
                ""
            }
        );
    }
    if let Some(s) = &record.sweep {
        let values: Vec<String> = record
            .points
            .iter()
            .filter_map(|p| p.label.clone())
            .collect();
        let _ = writeln!(o, "| Sweep | `{s}`: {} |", values.join(", "));
    }
    let _ = writeln!(
        o,
        "| Versions | simulator {}, git {}{} |",
        record.versions.simulator,
        record
            .versions
            .git
            .as_ref()
            .map(|g| g.to_string())
            .unwrap_or_else(|| "unknown".into()),
        record
            .versions
            .binaries
            .as_ref()
            .map(|b| format!(", {b} binaries"))
            .unwrap_or_default()
    );
    let _ = writeln!(o, "| Wall time of the runs | {:.1} s |", record.wall_time_s);

    if let Some(t) = &closed_loop_table {
        let _ = writeln!(o, "\n## Closed loop\n");
        let _ = writeln!(o, "{}", t.trim_end());
        let _ = writeln!(
            o,
            "\nThroughput: successful calls per second from the start to the last reply ({}). \
             Cancelled: calls still in flight at the end of the grace period after the duration, \
             logged as errors. Each cell: mean ± 95 % CI over the repetitions (none for one run).",
            if record.mode == Mode::Live {
                "wall time"
            } else {
                "virtual time"
            }
        );
    }
    if let Some(agg) = &aggregate_table {
        let _ = writeln!(o, "\n## Comparison (mean ± 95 % confidence interval)\n");
        let _ = writeln!(o, "{}", agg.trim_end());
        let _ = writeln!(o, "\n## Every run\n");
    } else {
        let _ = writeln!(o, "\n## Comparison\n");
    }
    let _ = writeln!(o, "{}", table.trim_end());
    let _ = writeln!(
        o,
        "\nLocality: distinct functions per node per 1-s slot (lower: each node serves fewer functions, \
         so caches hit more). CV: coefficient of variation of the per-node executions per slot \
         (lower: better balance). Latency = call duration - InternalExecutionTime, over successful \
         calls only. Metrics as in the original HotFunctions analyzer; failed calls are counted \
         apart (error lines)."
    );
    if record.mode == Mode::Live && record.time_scale != 1.0 {
        let _ = writeln!(
            o,
            "Slots are 1 s of wall time: with time scale {} a slot spans {} s of scenario time, so \
             compare these numbers across algorithms, not with unscaled runs.",
            record.time_scale, record.time_scale
        );
    }

    if let Some(sensitivity) = sensitivity_markdown(record) {
        o.push_str(&sensitivity);
    }

    if record.mode == Mode::Live {
        let _ = writeln!(o, "\n## Replays and noise\n");
        if let Some(t) = &record.noise_thresholds {
            let _ = writeln!(
                o,
                "A run is **disturbed** if its dispatch lag exceeds its limits (p50: max({} ms, {:.0} % \
                 of the scenario's median gap between calls in wall time); p99: max({} ms, {:.0} %)), \
                 other processes used more than {} cores during it or {} cores in the 0.5-s check \
                 before it, or CPU steal exceeded {:.0} % (`simulator/src/experiment/host.rs` says why).\n",
                t.lag_p50_floor_us as f64 / 1e3,
                t.lag_p50_gap_ratio * 100.0,
                t.lag_p99_floor_us as f64 / 1e3,
                t.lag_p99_gap_ratio * 100.0,
                t.foreign_cores,
                t.quiet_foreign_cores,
                t.steal_ratio * 100.0
            );
        }
        let _ = writeln!(
            o,
            "| run | seed | sent | ok | errors | {} lag p50 / p99 (us) | lag limits (us) | other processes (cores) | ours (cores) | steal | load before / after | verdict |",
            if record.closed_loop.is_some() {
                "send"
            } else {
                "dispatch"
            }
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        for r in &record.runs {
            let s = match (&r.replay, &r.load) {
                (Some(s), _) => super::runs::SentFigures::of_replay(s),
                (None, Some(l)) => super::runs::SentFigures::of_load(l),
                (None, None) => continue,
            };
            let Some(n) = &r.noise else {
                continue;
            };
            let f2 = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} / {} | {} / {} | {} | {} | {} | {} / {} | {}{} |",
                r.id,
                r.seed,
                s.dispatched,
                s.ok,
                s.errors,
                s.lag_p50_us
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into()),
                s.lag_p99_us,
                n.lag_limit_p50_us,
                n.lag_limit_p99_us,
                f2(n.during.map(|d| d.foreign_cores)),
                ours_cell(n),
                n.during
                    .map(|d| format!("{:.1} %", d.steal_ratio * 100.0))
                    .unwrap_or_else(|| "-".into()),
                f2(n.load_before),
                f2(n.load_after),
                if n.disturbed() {
                    format!("DISTURBED: {}", n.reasons.join("; "))
                } else {
                    "quiet".into()
                },
                if r.disturbed_attempts.is_empty() {
                    String::new()
                } else {
                    format!(" (after {} disturbed attempts)", r.disturbed_attempts.len())
                }
            );
        }
    }

    if !plots.is_empty() || !plot_errors.is_empty() {
        let _ = writeln!(o, "\n## Plots\n");
        for (title, path) in plots {
            let _ = writeln!(o, "### {title}\n\n![{title}]({path})\n");
        }
        for e in plot_errors {
            let _ = writeln!(o, "- plot failed: {e}");
        }
    }

    let _ = writeln!(o, "\n## Experiment file\n");
    let _ = writeln!(
        o,
        "`experiment.toml`, every value resolved; `simulator experiment --file` runs it again:\n\n```toml\n{}```",
        toml
    );

    let _ = writeln!(o, "\n## Files\n");
    let _ = writeln!(
        o,
        "- `summary.csv`: the comparison table{}\n- `runs.csv`: one row per run\n- `run.json`: every parameter, per-run summary and noise figures\n- `experiment.toml`: the resolved experiment\n- `logs/<run>.log`: the logs (original HotFunctions format; `utils analyze` reads them), each with its `.meta.json` sidecar",
        if aggregate_table.is_some() { " (means and 95 % CIs)" } else { "" }
    );
    if record.profile_variants.is_some() {
        let _ = writeln!(
            o,
            "- `profile-variants.csv`: each algorithm's figures on the cost profile (variant 0) and on each variant"
        );
    }
    if record.mode == Mode::Live {
        let _ = writeln!(o, "- `process-logs/`: output of the workers and balancers");
    }
    let _ = writeln!(o, "- `plots/`: the figures above");
    o
}

/// The failed calls of every run that had some, by cause.
/// `--profile-variants`: each algorithm's figures on the cost profile and
/// their range over it and its variants, and whether the algorithms'
/// ranking by mean latency holds on every variant.
fn sensitivity_markdown(record: &ExperimentRecord) -> Option<String> {
    let v = record.profile_variants.as_ref()?;
    let mut o = String::new();
    let _ = writeln!(o, "\n## Sensitivity to the cost profile\n");
    let list = |names: &[String]| {
        if names.is_empty() {
            "none".to_string()
        } else {
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let _ = writeln!(
        o,
        "Every algorithm was simulated again on {} variants of the cost profile, with the first \
         repetition's seed: each figure with a recorded spread moved within its value ± its \
         uncertainty, independently of the others (`des::CostProfile::variant`). Moved: {}. \
         Held (a spread of 0, or none recorded): {}. A range is the lowest and highest value over the \
         profile and its variants; a difference between algorithms within their ranges is not \
         established by this profile.",
        v.count,
        list(&v.varied),
        list(&v.held)
    );
    let figures = VARIANT_FIGURES;
    for (pi, _) in record.points.iter().enumerate() {
        let runs: Vec<&VariantRun> = v.runs.iter().filter(|r| r.point == pi).collect();
        if runs.is_empty() {
            continue;
        }
        if record.points.len() > 1 {
            let _ = writeln!(o, "\n### {}", point_label(record, pi));
        }
        let _ = write!(o, "\n| algorithm |");
        for (title, _, _) in &figures {
            let _ = write!(o, " {title}: profile | range |");
        }
        let _ = writeln!(o, "\n|---|{}", "---|---|".repeat(figures.len()));
        for alg in &record.algorithms {
            let of_alg: Vec<&VariantRun> = runs
                .iter()
                .copied()
                .filter(|r| &r.algorithm == alg)
                .collect();
            let _ = write!(o, "| {alg} |");
            for figure in &figures {
                let (cell, range) = on_profile_and_range(&of_alg, figure);
                let _ = write!(o, " {cell} | {range} |");
            }
            let _ = writeln!(o);
        }
        let _ = writeln!(o, "\n{}", ranking_sentence(&record.algorithms, &runs));
    }
    Some(o)
}

/// `profile-variants.csv`: one row per point, algorithm and variant of
/// the cost profile (0: the profile itself); empty cells where no call
/// succeeded.
fn variants_csv(record: &ExperimentRecord) -> Option<String> {
    let v = record.profile_variants.as_ref()?;
    let mut o = String::from(
        "point,algorithm,variant,mean_latency_ms,p99_latency_ms,cold_start_ratio,failed_pct\n",
    );
    let opt = |x: Option<f64>| x.map_or_else(String::new, |x| x.to_string());
    for r in &v.runs {
        // As summary.csv's: a swept value (no comma) or empty.
        let _ = writeln!(
            o,
            "{},{},{},{},{},{},{}",
            point_label(record, r.point),
            r.algorithm,
            r.variant,
            opt(r.mean_latency_ms),
            opt(r.p99_latency_ms),
            r.cold_start_ratio,
            r.failed_pct
        );
    }
    Some(o)
}

/// The algorithms by mean latency on each variant (0: the profile), as
/// a sentence: the profile's order and on how many variants it holds.
fn ranking_sentence(algorithms: &[String], runs: &[&VariantRun]) -> String {
    let mut variants: Vec<u32> = runs.iter().map(|r| r.variant).collect();
    variants.sort_unstable();
    variants.dedup();
    let order = |variant: u32| -> Vec<&str> {
        let mut algs: Vec<(&str, Option<f64>)> = algorithms
            .iter()
            .map(|a| {
                let latency = runs
                    .iter()
                    .find(|r| r.variant == variant && &r.algorithm == a)
                    .and_then(|r| r.mean_latency_ms);
                (a.as_str(), latency)
            })
            .collect();
        // Lowest first; no successful call last; ties in the list's order.
        algs.sort_by(|a, b| match (a.1, b.1) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
        algs.into_iter().map(|a| a.0).collect()
    };
    let show = |o: &[&str]| {
        o.iter()
            .map(|a| format!("`{a}`"))
            .collect::<Vec<_>>()
            .join(" < ")
    };
    let base = order(0);
    let others: Vec<u32> = variants.into_iter().filter(|&k| k > 0).collect();
    let differing: Vec<(u32, Vec<&str>)> = others
        .iter()
        .map(|&k| (k, order(k)))
        .filter(|(_, o)| *o != base)
        .collect();
    let mut s = format!(
        "Ranking by mean latency on the profile: {}; the same on {} of {} variants.",
        show(&base),
        others.len() - differing.len(),
        others.len()
    );
    if let Some((k, o)) = differing.first() {
        s.push_str(&format!(
            " **The ranking depends on the profile within its uncertainty**: on variant {k}, {}{}.",
            show(o),
            if differing.len() > 1 {
                format!(" ({} variants differ)", differing.len())
            } else {
                String::new()
            }
        ));
    }
    s
}

fn failures_markdown(analyses: &[utils::analyze::Analysis]) -> String {
    let mut o = String::new();
    for a in analyses.iter().filter(|a| a.failed > 0) {
        let causes: Vec<String> = a
            .errors_by_class
            .iter()
            .map(|(class, c)| {
                let example: String = c
                    .example
                    .chars()
                    .take(120)
                    .map(|ch| if ch.is_control() { ' ' } else { ch })
                    .collect();
                format!("{} {} (e.g. \"{example}\")", c.count, class.as_str())
            })
            .collect();
        let _ = writeln!(
            o,
            "- {}: {} of {} calls failed: {}",
            a.label,
            a.failed,
            a.calls,
            causes.join("; ")
        );
    }
    if o.is_empty() {
        o
    } else {
        format!("\n**Failed calls by cause**\n\n{o}")
    }
}

/// "total (replayer a, balancer b, workers c)", in cores.
fn ours_cell(n: &Noise) -> String {
    let Some(d) = n.during else {
        return "-".into();
    };
    if n.by_process.is_empty() {
        return format!("{:.2}", d.ours_cores);
    }
    let sum = |pred: &dyn Fn(&str) -> bool| -> f64 {
        n.by_process
            .iter()
            .filter(|p| pred(&p.name))
            .map(|p| p.cores)
            .sum()
    };
    format!(
        "{:.2} (replayer {:.2}, balancer {:.2}, workers {:.2})",
        d.ours_cores,
        sum(&|n| n == "replayer"),
        sum(&|n| n.starts_with("balancer")),
        sum(&|n| n.contains("worker")),
    )
}

/// The per-run CSV with each run's seed and disturbed verdict appended
/// (rows are in the order of `record.runs`).
fn with_noise_columns(csv: &str, record: &ExperimentRecord) -> String {
    let mut out = String::with_capacity(csv.len() + 64 * record.runs.len());
    for (i, line) in csv.lines().enumerate() {
        out.push_str(line);
        let closed = record.closed_loop.is_some();
        if i == 0 {
            out.push_str(",seed,disturbed,disturbed_reasons");
            if closed {
                out.push_str(",load_seed,throughput_per_s,cancelled");
            }
        } else if let Some(r) = record.runs.get(i - 1) {
            let reasons = r
                .noise
                .as_ref()
                .map(|n| n.reasons.join("; ").replace([',', '"'], " "))
                .unwrap_or_default();
            let _ = write!(out, ",{},{},{reasons}", r.seed, r.disturbed());
            if closed {
                let text = |v: Option<String>| v.unwrap_or_default();
                let _ = write!(
                    out,
                    ",{},{},{}",
                    text(r.load_seed.map(|s| s.to_string())),
                    text(r.throughput_per_s().map(|t| t.to_string())),
                    text(r.cancelled().map(|c| c.to_string()))
                );
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ranking_sentence_says_where_the_order_changes() {
        let run = |algorithm: &str, variant: u32, latency: Option<f64>| VariantRun {
            point: 0,
            algorithm: algorithm.into(),
            variant,
            mean_latency_ms: latency,
            p99_latency_ms: latency,
            cold_start_ratio: 0.0,
            failed_pct: 0.0,
        };
        let algorithms = vec!["rr".to_string(), "ch".to_string(), "ll".to_string()];
        let mut runs = vec![
            run("rr", 0, Some(8.0)),
            run("ch", 0, Some(4.0)),
            run("ll", 0, None),
            run("rr", 1, Some(9.0)),
            run("ch", 1, Some(5.0)),
            run("ll", 1, None),
        ];
        let refs: Vec<&VariantRun> = runs.iter().collect();
        // No successful call ranks last.
        assert_eq!(
            ranking_sentence(&algorithms, &refs),
            "Ranking by mean latency on the profile: `ch` < `rr` < `ll`; the same on 1 of 1 variants."
        );
        runs.extend([
            run("rr", 2, Some(5.0)),
            run("ch", 2, Some(6.0)),
            run("ll", 2, Some(7.0)),
            run("rr", 3, Some(5.0)),
            run("ch", 3, Some(5.0)),
            run("ll", 3, None),
        ]);
        let refs: Vec<&VariantRun> = runs.iter().collect();
        // Variant 3's tie keeps the list's order: rr before ch.
        assert_eq!(
            ranking_sentence(&algorithms, &refs),
            "Ranking by mean latency on the profile: `ch` < `rr` < `ll`; the same on 1 of 3 \
             variants. **The ranking depends on the profile within its uncertainty**: on \
             variant 2, `rr` < `ch` < `ll` (2 variants differ)."
        );
    }
}
