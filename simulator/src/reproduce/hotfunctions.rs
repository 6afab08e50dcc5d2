//! `reproduce hotfunctions`: the original HotFunctions comparison.
//!
//! Source: HotFunctions (github.com/Prev/HotFunctions): its simulator
//! replays `data/events.csv` (2,216 calls over 5 minutes of the 30 sample
//! functions) against its balancer, its README recommending "at least 8
//! worker nodes with 4 vCPU for each node (e.g. EC2 m4.xlarge)"; its
//! analyzer reports locality (distinct functions per node per second),
//! the imbalance (CV of executions per node per second) and the cache hit
//! rows. The original publishes its setup and tools, not result figures.
//!
//! This study is `simulator experiment` ([`crate::experiment`]) on that
//! scenario with 8 live process-runtime workers and the six algorithms,
//! written into `<out>/experiment/` (its own report, logs, plots,
//! `experiment.toml`), then summarised with the original's metrics.

use serde_json::json;
use utils::analyze::{analyze_logs, Analysis, AnalyzeOptions};

use super::{Context, Report, Table};
use crate::experiment::{self, ExperimentOutcome};
use crate::replay::StopHandle;

/// The original's scenario.
pub const SCENARIO: &str = "scenarios/events.csv";
/// Workers, as the original's README recommends.
pub const WORKERS: u32 = 8;
/// Replay speed-up.
pub const TIME_SCALE: &str = "5";
/// The functions' work relative to the arrivals (HF_TIME_SCALE = this / time scale).
pub const LOAD_FACTOR: &str = "0.1";
/// The short version's share of the scenario (its first minute).
pub const SHORT_DURATION: &str = "45s";

#[derive(clap::Parser)]
struct ExperimentCli {
    #[command(flatten)]
    args: experiment::Args,
}

/// The experiment's arguments for this study.
pub fn experiment_args(ctx: &Context) -> anyhow::Result<experiment::Args> {
    use clap::Parser as _;
    let results_dir = ctx.out.display().to_string();
    let seed = ctx.seed.to_string();
    // The scenario replayed 5x faster (a minute for its 5 minutes), the
    // functions at a tenth of the arrivals' scale (HF_TIME_SCALE 0.02): at
    // 1x the original's load asks for about 6 cores, and all 8 workers
    // share this machine's 2. Short: the scenario's first 45 s.
    let mut argv: Vec<String> = [
        "experiment",
        "--scenario",
        SCENARIO,
        "--workers",
        "8",
        "--algorithms",
        "rr,ll,ch,pasch,ours,tradeoff",
        "--name",
        "experiment",
        "--results-dir",
        &results_dir,
        "--seed",
        &seed,
        "--time-scale",
        TIME_SCALE,
        "--load-factor",
        LOAD_FACTOR,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if ctx.short {
        argv.extend(["--duration".to_string(), SHORT_DURATION.to_string()]);
    }
    if ctx.overwrite {
        argv.push("--overwrite".into());
    }
    if let Some(d) = &ctx.bin_dir {
        argv.push("--bin-dir".into());
        argv.push(d.display().to_string());
    }
    Ok(ExperimentCli::try_parse_from(argv)?.args)
}

pub async fn run(ctx: &Context, stop: &StopHandle) -> anyhow::Result<()> {
    let args = experiment_args(ctx)?;
    let outcome: ExperimentOutcome = experiment::run_experiment(&args, &ctx.command, stop).await?;
    if outcome.record.interrupted {
        anyhow::bail!("the experiment was interrupted; no report written");
    }
    let logs: Vec<_> = outcome.record.runs.iter().map(|r| r.log.clone()).collect();
    let analyses: Vec<Analysis> = analyze_logs(
        &logs,
        &AnalyzeOptions {
            nodes: Some(WORKERS as usize),
            ..AnalyzeOptions::default()
        },
    )?;
    let rec = &outcome.record;

    let mut table = Table::new([
        "algorithm",
        "calls",
        "failed",
        "locality (distinct functions / node / s)",
        "imbalance CV",
        "image reuse",
        "cold starts",
        "mean latency (ms)",
        "p99 latency (ms)",
        "disturbed",
    ]);
    for (run, a) in rec.runs.iter().zip(&analyses) {
        table.row([
            run.algorithm.clone(),
            a.calls.to_string(),
            a.failed.to_string(),
            format!("{:.2}", a.locality.mean_distinct_functions),
            format!("{:.3}", a.imbalance.cv),
            format!("{:.1} %", a.cache.image_reuse.hit_ratio * 100.0),
            format!("{:.1} %", a.cold_start_ratio * 100.0),
            format!("{:.1}", a.mean_latency_ms),
            a.latency_ms.p99.to_string(),
            run.noise
                .as_ref()
                .map_or("-", |n| if n.disturbed() { "yes" } else { "no" })
                .to_string(),
        ]);
    }
    let by = |alg: &str| {
        rec.runs
            .iter()
            .zip(&analyses)
            .find(|(r, _)| r.algorithm == alg)
            .map(|(_, a)| a)
    };
    let metric = |alg: &str, f: &dyn Fn(&Analysis) -> f64| by(alg).map_or(f64::NAN, f);
    let loc = |a: &Analysis| a.locality.mean_distinct_functions;
    let cvf = |a: &Analysis| a.imbalance.cv;
    let mut expected = Table::new([
        "expectation (from the algorithms' design in the original)",
        "ours",
        "holds",
    ]);
    // Why an expectation can fail at this scale, said in the report when
    // it does (an honest difference is a result).
    let mut missed = Vec::new();
    for (text, a, b, f, name, why) in [
        (
            "ch (hashing) runs fewer distinct functions per node than rr",
            "ch",
            "rr",
            &loc as &dyn Fn(&Analysis) -> f64,
            "locality",
            "",
        ),
        (
            "rr spreads calls more evenly (lower CV) than ch",
            "rr",
            "ch",
            &cvf,
            "CV",
            "",
        ),
        (
            "ours runs fewer distinct functions per node than rr (it assigns functions to nodes)",
            "ours",
            "rr",
            &loc,
            "locality",
            "",
        ),
        (
            "ours spreads calls more evenly (lower CV) than ch (it bounds a node's load)",
            "ours",
            "ch",
            &cvf,
            "CV",
            "`ours` bounds a node's load only once it runs `TOpt` (5) or more calls at once; \
             below that, each function stays on the node its first call went to (the least \
             loaded one at that instant). With every call 10x shorter relative to the arrivals \
             (the load factor above), nodes rarely reach 5 calls in flight, so `ours` \
             places functions as a hash would, once, and its CV measures how those first \
             placements fell (a few popular functions on one node), not its balancing. At the \
             original's load (8 nodes of 4 vCPU, unscaled calls) the bound would apply more \
             often.",
        ),
    ] {
        let (x, y) = (metric(a, f), metric(b, f));
        let holds = (x.is_finite() && y.is_finite()).then_some(x < y);
        let shown = format!("{name}: {a} {x:.3}, {b} {y:.3}");
        if holds == Some(false) && !why.is_empty() {
            missed.push(format!("{text}: not here ({shown}). {why}"));
        }
        expected.row([text.to_string(), shown, yes_no(holds)]);
    }
    let mut r = Report::new(
        "HotFunctions: the original comparison (events.csv, 8 workers, six algorithms)",
    );
    r.paragraph(&ctx.provenance_text());
    r.section("The study");
    r.paragraph(
        "HotFunctions (github.com/Prev/HotFunctions) compares six load-balancing algorithms (rr, \
         ll, ch, pasch, ours, tradeoff) by replaying `events.csv` (2,216 calls of its 30 sample \
         functions over 5 minutes) against its balancer and Docker workers; its simulator README \
         recommends at least 8 worker nodes with 4 vCPU each (EC2 m4.xlarge), and its analyzer \
         reports locality (distinct functions per node per 1-s slot), the imbalance (CV of \
         executions per node per slot) and cache hits. The original publishes its setup and its \
         tools, not result figures, so the \"published\" side below is the setup and the behaviour \
         its algorithms are designed for.",
    );
    r.section("Our setup and what we changed");
    r.bullets([
        format!(
            "`simulator experiment` on `{SCENARIO}` ({} calls, {:.0} s), {} live workers on the \
             embedded process runtime, all on this machine's cores ({}), instead of 8 machines of 4 vCPU.",
            rec.scenario_events,
            rec.scenario_span_s,
            rec.workers,
            rec.host.as_ref().map_or("host unknown".to_string(), |h| h.describe())
        ),
        format!(
            "Time: the scenario is replayed {}x faster and the functions run at HF_TIME_SCALE {:.4} \
             (load factor {LOAD_FACTOR}: each call 10x shorter relative to the arrivals), because \
             at 1x the original's load asks for about 6 cores and all 8 workers share this machine's 2{}; packages at {} of their size. Locality \
             and CV use 1-s slots of wall time, so they compare algorithms, not absolute values with \
             an unscaled run.",
            rec.time_scale,
            rec.fn_time_scale,
            if ctx.short { " (short: the scenario's first 45 s only)" } else { "" },
            rec.package_scale
        ),
        "Every run starts from empty workers (no images, no instances) and a fresh balancer; seeds \
         and every resolved option are in `experiment/experiment.toml` and `experiment/run.json`."
            .to_string(),
    ]);
    r.section("Published vs ours");
    r.table(&expected);
    r.paragraph("The original's metrics, per algorithm (`utils analyze` of each run's log):");
    r.table(&table);
    r.figure(
        "experiment/plots/comparison.png",
        "The original's metrics per algorithm (the original shows the same quantities in its visualize.html)",
    );
    r.figure(
        "experiment/plots/latency-cdf.png",
        "Latency CDF per algorithm",
    );
    r.section("Where ours differ, and why we think so");
    r.paragraph(
        "There are no published numbers to differ from. Against a run on 8 machines our absolute \
         figures differ because all 8 workers share 2 cores (a CPU-heavy call slows every node), \
         the functions run scaled, and the process runtime starts instances in milliseconds where \
         Docker takes hundreds; the experiment's report (`experiment/report.md`) gives the noise \
         around every run and marks disturbed ones.",
    );
    if !missed.is_empty() {
        r.bullets(missed);
    }
    r.paragraph(
        "Cold starts are 100 % for every algorithm by design: the original's default (REST mode \
         off, kept here) runs every call in a new instance; what the algorithms change is image \
         reuse (a cached package, the original's \"cache hit\"), shown beside it.",
    );
    r.write(&ctx.out)?;
    ctx.write_run_json(
        json!({
            "experiment_file": rec.file,
            "scenario": SCENARIO,
            "workers": WORKERS,
            "time_scale": rec.time_scale,
            "fn_time_scale": rec.fn_time_scale,
            "package_scale": rec.package_scale,
            "experiment_dir": outcome.dir,
        }),
        json!({ "analyses": analyses.iter().map(|a| json!({
            "label": a.label, "calls": a.calls, "failed": a.failed,
            "locality": a.locality.mean_distinct_functions, "cv": a.imbalance.cv,
            "image_hit_ratio": a.cache.image_reuse.hit_ratio, "cold_start_ratio": a.cold_start_ratio,
            "mean_latency_ms": a.mean_latency_ms, "p99_latency_ms": a.latency_ms.p99,
        })).collect::<Vec<_>>() }),
    )?;
    Ok(())
}

fn yes_no(v: Option<bool>) -> String {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    }
    .to_string()
}
