//! `utils`: scenario generation, log analysis, plots and comparisons.
//!
//! - `utils generate <out.csv>`: a scenario (the original generator by
//!   default) plus `<out.csv>.meta.json`; per-function counts on stdout.
//!   Refuses to replace either file unless `--overwrite`.
//! - `utils analyze <log>...`: the original analyzer's report per log
//!   (`--json`, `--csv` for scripts), with failed calls by cause and the
//!   node count's origin (`--nodes`, the log's sidecar, or inferred).
//! - `utils compare <log>...`: one table across runs (`--markdown`, `--csv`,
//!   `--json`), with calls, failed calls and error rate per run.
//! - `utils export <log>... --out <file.csv>`: one CSV row per call, every
//!   field of the log (`--overwrite` to replace the output).
//! - `utils plot timeline|cdf|bars|all ... -o <file.png|file.svg>`.
//!
//! Output to a closed pipe (`utils generate ... | head`) ends the command
//! quietly with status 0.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use utils::analyze::{analyze, AnalyzeOptions};
use utils::compare::Comparison;
use utils::generate::{self, Arrivals, GeneratorConfig, Popularity};
use utils::logs::RunLog;
use utils::plot;

#[derive(Parser, Debug)]
#[command(
    name = "utils",
    version,
    about = "HotFunctions scenarios, log analysis, plots and comparisons"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate a scenario CSV (`FunctionName,StartTimeMs`) and its
    /// `<out>.meta.json` sidecar (seed, parameters, counts).
    Generate(GenerateArgs),
    /// Analyze replay logs: the original analyzer's metrics and more.
    Analyze(AnalyzeArgs),
    /// One table across runs (label = algorithm, or file name): calls,
    /// failed calls and error rate, node count (and where it came from),
    /// locality, CV, cache hits, latency of successful calls, and the p99
    /// over all calls (failed = infinitely slow).
    Compare(CompareArgs),
    /// Every call of the logs (failed ones included) as one CSV row: date,
    /// time, start_ms, end_ms, function, ok, error_class, every field of
    /// the logged JSON flattened with dotted names (Meta.ImageBuilt,
    /// LoadBalancingInfo.WorkerNodeId, ...), run, and algorithm and seed
    /// from the runs' sidecars. Streams the logs (two passes, bounded
    /// memory). CSV only: Parquet is not supported (convert the CSV, e.g.
    /// with pandas' to_parquet).
    Export(ExportArgs),
    /// Draw figures (PNG or SVG, by the output's extension).
    Plot {
        #[command(subcommand)]
        figure: PlotCommand,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ArrivalKind {
    /// The original: round(rate × duration) calls at uniform random times.
    Uniform,
    /// Exponential inter-arrival times.
    Poisson,
    /// On/off modulated Poisson (cluster-wide ON and OFF periods).
    Bursty,
}

#[derive(clap::Args, Debug)]
struct GenerateArgs {
    /// Output CSV; the sidecar goes to `<out>.meta.json`.
    out: PathBuf,
    /// Replace the output CSV and its sidecar if they exist (otherwise an
    /// existing one is an error, and nothing is written).
    #[arg(long)]
    overwrite: bool,
    /// RNG seed (default: a random one, printed and recorded in the sidecar).
    #[arg(long)]
    seed: Option<u64>,
    /// Repeat the configuration recorded in a sidecar (`<file>.meta.json`);
    /// the other options are ignored except --seed.
    #[arg(long)]
    from_meta: Option<PathBuf>,
    /// Scenario length in seconds.
    #[arg(long, default_value_t = generate::DEFAULT_DURATION_S)]
    duration: f64,
    /// Multiplies every rate.
    #[arg(long, default_value_t = 1.0)]
    rate_scale: f64,
    #[arg(long, value_enum, default_value_t = ArrivalKind::Uniform)]
    arrivals: ArrivalKind,
    /// Bursty: mean ON period, seconds.
    #[arg(long, default_value_t = 10.0)]
    on_s: f64,
    /// Bursty: mean OFF period, seconds.
    #[arg(long, default_value_t = 20.0)]
    off_s: f64,
    /// Only these catalog functions (comma-separated), at their catalog rates.
    #[arg(long, value_delimiter = ',', conflicts_with = "zipf")]
    functions: Option<Vec<String>>,
    /// Zipf popularity over this many synthetic functions F001.. (for the
    /// discrete-event simulator: workers do not know these names).
    #[arg(long)]
    zipf: Option<usize>,
    /// Zipf exponent s (rate of the k-th function ∝ k^-s).
    #[arg(long, default_value_t = 1.0)]
    zipf_exponent: f64,
    /// Zipf: total rate over all functions, per second (default: the
    /// catalog's total, 7.39/s).
    #[arg(long)]
    total_rate: Option<f64>,
}

#[derive(clap::Args, Debug)]
struct AnalyzeArgs {
    /// Replay logs (original format).
    #[arg(required = true)]
    logs: Vec<PathBuf>,
    /// Cluster size; idle nodes count. Default: the `cluster.size` of the
    /// log's sidecar (`<log>.meta.json`), else max WorkerNodeId + 1.
    #[arg(long)]
    nodes: Option<usize>,
    /// Print the full analyses as JSON (an array, one per log).
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print one summary CSV row per log.
    #[arg(long)]
    csv: bool,
    /// Also report every 1-s slot: mean distinct functions per node and the
    /// CV across nodes (the original analyzer's detail mode).
    #[arg(long)]
    per_slot: bool,
}

#[derive(clap::Args, Debug)]
struct CompareArgs {
    #[arg(required = true)]
    logs: Vec<PathBuf>,
    /// Cluster size of every log. Default, per log: its sidecar's
    /// `cluster.size`, else max WorkerNodeId + 1.
    #[arg(long)]
    nodes: Option<usize>,
    #[arg(long, conflicts_with_all = ["csv", "json"])]
    markdown: bool,
    #[arg(long, conflicts_with = "json")]
    csv: bool,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct ExportArgs {
    /// Replay logs (original format); each log's sidecar is read if present.
    #[arg(required = true)]
    logs: Vec<PathBuf>,
    /// Output CSV (Parquet is not supported).
    #[arg(long)]
    out: PathBuf,
    /// Replace the output if it exists.
    #[arg(long)]
    overwrite: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum CdfKind {
    Latency,
    Duration,
}

#[derive(Subcommand, Debug)]
enum PlotCommand {
    /// Per-node timeline of one run (the original's visualize.html).
    Timeline {
        log: PathBuf,
        /// Output file(s): .png or .svg; repeat for both.
        #[arg(short, long = "out", required = true)]
        out: Vec<PathBuf>,
        #[arg(long)]
        nodes: Option<usize>,
        #[arg(long)]
        title: Option<String>,
        /// Start of the window to draw, seconds since the first call.
        #[arg(long)]
        from: Option<f64>,
        /// End of the window to draw, seconds since the first call.
        #[arg(long)]
        to: Option<f64>,
    },
    /// CDF of latency (or duration), one curve per log, over all calls (a
    /// run with failed calls tops out below 1; the legend counts them).
    Cdf {
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        #[arg(short, long = "out", required = true)]
        out: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = CdfKind::Latency)]
        metric: CdfKind,
    },
    /// Every figure (bars, latency and duration CDFs, one timeline per log),
    /// PNG and SVG, into a directory.
    All {
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        #[arg(long)]
        out_dir: PathBuf,
        #[arg(long)]
        nodes: Option<usize>,
    },
    /// Bars comparing logs on locality, CV, hit ratios, failed calls (%),
    /// p99 latency of successful calls and p99 over all calls (failed =
    /// infinitely slow).
    Bars {
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        #[arg(short, long = "out", required = true)]
        out: Vec<PathBuf>,
        #[arg(long)]
        nodes: Option<usize>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(args) => run_generate(args),
        Command::Analyze(args) => run_analyze(args),
        Command::Compare(args) => run_compare(args),
        Command::Export(args) => run_export(args),
        Command::Plot { figure } => run_plot(figure),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`utils ... | head`): a normal end.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:?}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes to stdout, returning its error (`print!` would panic on a closed
/// pipe).
fn out(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Refuses to replace `path` unless `overwrite`.
fn refuse_existing(path: &Path, overwrite: bool) -> Result<()> {
    if !overwrite && path.exists() {
        bail!(
            "{} exists; pass --overwrite to replace it (nothing was written)",
            path.display()
        );
    }
    Ok(())
}

fn run_generate(a: GenerateArgs) -> Result<()> {
    // Refuse before writing anything, so that neither file is replaced.
    refuse_existing(&a.out, a.overwrite)?;
    refuse_existing(&generate::meta_path(&a.out), a.overwrite)?;
    let seed = a.seed.unwrap_or_else(rand::random);
    if a.seed.is_none() && a.from_meta.is_none() {
        eprintln!("seed: {seed} (random; pass --seed {seed} to repeat)");
    }
    let popularity = match (a.zipf, a.functions) {
        (Some(n), _) => Popularity::Zipf {
            functions: n,
            exponent: a.zipf_exponent,
            total_rate_per_s: a.total_rate.unwrap_or_else(catalog_total_rate),
        },
        (None, functions) => {
            if a.total_rate.is_some() {
                bail!("--total-rate applies to --zipf only (use --rate-scale for the catalog)");
            }
            Popularity::Catalog { functions }
        }
    };
    let config = match &a.from_meta {
        Some(meta_path) => {
            let text = std::fs::read_to_string(meta_path)
                .with_context(|| format!("cannot read {}", meta_path.display()))?;
            let meta: generate::ScenarioMeta = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a scenario sidecar", meta_path.display()))?;
            GeneratorConfig {
                seed: a.seed.unwrap_or(meta.config.seed),
                ..meta.config
            }
        }
        None => GeneratorConfig {
            seed,
            duration_s: a.duration,
            rate_scale: a.rate_scale,
            arrivals: match a.arrivals {
                ArrivalKind::Uniform => Arrivals::Uniform,
                ArrivalKind::Poisson => Arrivals::Poisson,
                ArrivalKind::Bursty => Arrivals::Bursty {
                    on_s: a.on_s,
                    off_s: a.off_s,
                },
            },
            popularity,
        },
    };
    let mut scenario = generate::generate(&config)?;
    // The command as a user would type it (program name without its path).
    let args: Vec<String> = std::env::args().skip(1).collect();
    scenario.meta.command = Some(format!("utils {}", args.join(" ")));
    let meta = generate::write_scenario(&scenario, &a.out)
        .with_context(|| format!("cannot write {}", a.out.display()))?;
    eprintln!("wrote {} and {}", a.out.display(), meta.display());
    let mut counts = String::new();
    for c in &scenario.meta.counts {
        counts.push_str(&format!("{}: {}\n", c.function, c.count));
    }
    counts.push_str(&format!("total: {}\n", scenario.events.len()));
    out(&counts)
}

fn catalog_total_rate() -> f64 {
    generate::function_rates(&GeneratorConfig::default())
        .map(|r| r.iter().map(|(_, rate)| rate).sum())
        .unwrap_or(0.0)
}

fn read_runs(paths: &[PathBuf]) -> Result<Vec<RunLog>> {
    paths
        .iter()
        .map(|p| RunLog::read(p).map_err(anyhow::Error::from))
        .collect()
}

fn analyses(
    runs: &[RunLog],
    nodes: Option<usize>,
    per_slot: bool,
) -> Result<Vec<utils::analyze::Analysis>> {
    let options = AnalyzeOptions {
        nodes,
        label: None,
        per_slot,
    };
    runs.iter()
        .map(|r| analyze(r, &options).map_err(anyhow::Error::from))
        .collect()
}

fn run_analyze(a: AnalyzeArgs) -> Result<()> {
    let runs = read_runs(&a.logs)?;
    let analyses = analyses(&runs, a.nodes, a.per_slot)?;
    if a.json {
        out(&(serde_json::to_string_pretty(&analyses)? + "\n"))?;
    } else if a.csv {
        out(&Comparison::new(&analyses).to_csv())?;
    } else {
        for (i, analysis) in analyses.iter().enumerate() {
            if i > 0 {
                out("\n")?;
            }
            out(&utils::report::analysis_text(analysis))?;
        }
    }
    for an in &analyses {
        if an.unparseable_lines > 0 {
            eprintln!(
                "warning: {}: {} unreadable lines skipped",
                an.source, an.unparseable_lines
            );
        }
    }
    Ok(())
}

fn run_compare(a: CompareArgs) -> Result<()> {
    let runs = read_runs(&a.logs)?;
    let table = Comparison::new(&analyses(&runs, a.nodes, false)?);
    if a.json {
        out(&(serde_json::to_string_pretty(&table)? + "\n"))
    } else if a.csv {
        out(&table.to_csv())
    } else if a.markdown {
        out(&table.to_markdown())
    } else {
        out(&table.to_text())
    }
}

fn run_export(a: ExportArgs) -> Result<()> {
    let summary = utils::export::export_csv(&a.logs, &a.out, a.overwrite)?;
    for (log, n) in &summary.skipped {
        eprintln!("warning: {}: {n} unreadable lines skipped", log.display());
    }
    eprintln!(
        "wrote {} ({} calls, {} failed; {} columns)",
        a.out.display(),
        summary.rows,
        summary.failed,
        summary.columns.len()
    );
    Ok(())
}

fn for_each_out(
    outs: &[PathBuf],
    mut draw: impl FnMut(&Path) -> Result<(), plot::PlotError>,
) -> Result<()> {
    for out in outs {
        draw(out)?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

fn run_plot(figure: PlotCommand) -> Result<()> {
    match figure {
        PlotCommand::Timeline {
            log,
            out,
            nodes,
            title,
            from,
            to,
        } => {
            let run = RunLog::read(&log)?;
            let window_s = match (from, to) {
                (None, None) => None,
                (from, to) => Some((from.unwrap_or(0.0), to.unwrap_or(f64::MAX))),
            };
            let window_s = match window_s {
                Some((from, to)) if to == f64::MAX => {
                    let t0 = run.records.iter().map(|r| r.start_ms).min().unwrap_or(0);
                    let end = run.records.iter().map(|r| r.end_ms).max().unwrap_or(t0);
                    Some((from, ((end - t0) as f64 / 1000.0).max(from + 1.0)))
                }
                other => other,
            };
            let options = plot::TimelineOptions {
                title,
                nodes: nodes.or(run.sidecar.as_ref().map(|s| s.cluster.size)),
                window_s,
            };
            for_each_out(&out, |o| plot::timeline(&run, o, &options))
        }
        PlotCommand::Cdf { logs, out, metric } => {
            let runs = read_runs(&logs)?;
            let labels = utils::compare::unique_labels(
                &runs
                    .iter()
                    .map(|r| (r.label(), r.source.clone()))
                    .collect::<Vec<_>>(),
            );
            let labelled: Vec<(String, &RunLog)> = labels.into_iter().zip(&runs).collect();
            let metric = match metric {
                CdfKind::Latency => plot::CdfMetric::Latency,
                CdfKind::Duration => plot::CdfMetric::Duration,
            };
            for_each_out(&out, |o| plot::latency_cdf(&labelled, metric, o))
        }
        PlotCommand::All {
            logs,
            out_dir,
            nodes,
        } => {
            let runs = read_runs(&logs)?;
            let table = Comparison::new(&analyses(&runs, nodes, false)?);
            let labelled: Vec<(String, &RunLog)> = table
                .rows
                .iter()
                .map(|r| r.label.clone())
                .zip(&runs)
                .collect();
            for path in plot::all_figures(&labelled, &table, nodes, &out_dir)? {
                eprintln!("wrote {}", path.display());
            }
            Ok(())
        }
        PlotCommand::Bars { logs, out, nodes } => {
            let runs = read_runs(&logs)?;
            let table = Comparison::new(&analyses(&runs, nodes, false)?);
            for_each_out(&out, |o| plot::comparison_bars(&table, o))
        }
    }
}
