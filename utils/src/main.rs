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
//! - `utils import azure2019|azure2021 ... --out <scenario.csv>`: an Azure
//!   Functions trace as a scenario (with per-call duration and memory), a
//!   catalog of its synthetic functions and `<out>.meta.json`.
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
    /// over all calls (failed = infinitely slow). Warns on stderr when the
    /// runs' sidecars differ in more than algorithm, parameters and seed
    /// (scenario, producer, cluster size, scales, node and worker settings).
    Compare(CompareArgs),
    /// Every call of the logs (failed ones included) as one CSV row: date,
    /// time, start_ms, end_ms, function, ok, error_class, every field of
    /// the logged JSON flattened with dotted names (Meta.ImageBuilt,
    /// LoadBalancingInfo.WorkerNodeId, ...), run, and algorithm and seed
    /// from the runs' sidecars. Streams the logs (two passes, bounded
    /// memory). CSV only: Parquet is not supported (convert the CSV, e.g.
    /// with pandas' to_parquet).
    Export(ExportArgs),
    /// Import a public trace as a scenario
    /// (`FunctionName,StartTimeMs,DurationMs,MemoryMb`), plus a catalog of
    /// its synthetic functions F001.. (`<out>.catalog.csv` unless
    /// --catalog) and `<out>.meta.json` (sources with their BLAKE2b-256,
    /// every parameter, the seed, per-function counts and Azure ids).
    Import {
        #[command(subcommand)]
        source: ImportCommand,
    },
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

#[derive(Subcommand, Debug)]
enum ImportCommand {
    /// One day of the Azure Functions Trace 2019 (Shahrad et al., ATC
    /// 2020): per-minute call counts spread within each minute, each call's
    /// duration drawn from its function's percentiles, memory from its
    /// app's percentiles shared equally among the app's functions.
    Azure2019(Azure2019Args),
    /// The Azure Functions Invocation Trace 2021 (one row per call: app,
    /// func, end_timestamp, duration in seconds): start = end − duration,
    /// the trace's own durations, a fixed memory.
    Azure2021(Azure2021Args),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PickKind {
    /// The N functions with the most calls in the window.
    Top,
    /// N functions uniformly at random (seeded).
    Random,
    /// Random within decades of call count (1-9, 10-99, ...), N split over
    /// the decades in proportion to their sizes.
    Stratified,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SpreadKind {
    /// Each call at a uniform random ms of its minute (Poisson given the
    /// count).
    Uniform,
    /// Evenly spaced in the minute.
    Even,
}

#[derive(clap::Args, Debug)]
struct ImportCommon {
    /// Output scenario CSV; the sidecar goes to `<out>.meta.json`.
    #[arg(long)]
    out: PathBuf,
    /// The catalog of the picked functions (default `<out>.catalog.csv`),
    /// in the columns of sample-functions/catalog.csv.
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// Replace the outputs if they exist (otherwise an existing one is an
    /// error, and nothing is written).
    #[arg(long)]
    overwrite: bool,
    /// How many functions to keep.
    #[arg(long, default_value_t = 100)]
    functions: usize,
    /// How to pick them.
    #[arg(long, value_enum, default_value_t = PickKind::Top)]
    pick: PickKind,
    /// RNG seed (ChaCha8) for the pick and the calls.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Catalog: share of a call's median duration spent on CPU (the rest
    /// sleeps); the traces do not say.
    #[arg(long, default_value_t = 0.5)]
    cpu_share: f64,
    /// Catalog: package size of every function, bytes (default: the median
    /// of the 30 sample functions, 9.7 MB).
    #[arg(long)]
    package_bytes: Option<u64>,
}

#[derive(clap::Args, Debug)]
struct Azure2019Args {
    /// Directory with invocations_per_function_md.anon.dNN.csv,
    /// function_durations_percentiles.anon.dNN.csv and (optional)
    /// app_memory_percentiles.anon.dNN.csv.
    #[arg(long)]
    dir: PathBuf,
    /// Day of the trace, 1..=14.
    #[arg(long, default_value_t = 1)]
    day: u8,
    /// Minutes of the day, START..END (END excluded; 0 is column `1`).
    #[arg(long, default_value = "0..1440")]
    minutes: utils::import::MinuteWindow,
    /// How calls spread within their minute.
    #[arg(long, value_enum, default_value_t = SpreadKind::Uniform)]
    spread: SpreadKind,
    /// Memory of a function whose app has no memory row (or when the day
    /// has no memory file), MB.
    #[arg(long, default_value_t = 256)]
    default_memory_mb: u32,
    #[command(flatten)]
    common: ImportCommon,
}

#[derive(clap::Args, Debug)]
struct Azure2021Args {
    /// The trace file (AzureFunctionsInvocationTraceForTwoWeeksJan2021.txt,
    /// header `app,func,end_timestamp,duration`).
    #[arg(long)]
    file: PathBuf,
    /// Minutes from timestamp 0, START..END; a call belongs to the window
    /// its start falls in. Default: every call.
    #[arg(long)]
    minutes: Option<utils::import::MinuteWindow>,
    /// Memory of every call, MB (the trace has none).
    #[arg(long, default_value_t = 256)]
    memory_mb: u32,
    #[command(flatten)]
    common: ImportCommon,
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
        Command::Import { source } => run_import(source),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`utils ... | head`): a normal end.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, each cause once (`{e:?}` repeated a cause that the
            // message already names).
            eprintln!("utils: error: {}", utils::error_text(&e));
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
            let text = protocol::text::read_to_string(meta_path)
                .with_context(|| format!("cannot read {}", meta_path.display()))?;
            let meta: generate::ScenarioMeta = protocol::strict::from_json_str(&text)
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
    let mut scenario = generate::generate_calls(&config)?;
    // The command as a user would type it (program name without its path).
    let args: Vec<String> = std::env::args().skip(1).collect();
    scenario.meta.command = Some(format!("utils {}", args.join(" ")));
    let meta = scenario
        .write(&a.out)
        .with_context(|| format!("cannot write {}", a.out.display()))?;
    eprintln!("wrote {} and {}", a.out.display(), meta.display());
    let mut counts = String::new();
    for c in &scenario.meta.counts {
        counts.push_str(&format!("{}: {}\n", c.function, c.count));
    }
    counts.push_str(&format!("total: {}\n", scenario.calls.len()));
    out(&counts)
}

fn run_import(source: ImportCommand) -> Result<()> {
    use utils::import::{self, CatalogDefaults, Outputs, Pick, Spread};
    let common = match &source {
        ImportCommand::Azure2019(a) => &a.common,
        ImportCommand::Azure2021(a) => &a.common,
    };
    let mut outputs = Outputs::new(common.out.clone(), common.catalog.clone());
    for path in outputs.all() {
        refuse_existing(&path, common.overwrite)?;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    outputs.command = Some(format!("utils {}", args.join(" ")));
    let pick = match common.pick {
        PickKind::Top => Pick::Top,
        PickKind::Random => Pick::Random,
        PickKind::Stratified => Pick::Stratified,
    };
    let defaults = CatalogDefaults {
        cpu_share: common.cpu_share,
        package_bytes: common
            .package_bytes
            .unwrap_or_else(import::median_sample_package_bytes),
    };
    let meta = match &source {
        ImportCommand::Azure2019(a) => {
            let mut config = import::azure2019::Azure2019Config::new(a.dir.clone());
            config.day = a.day;
            config.window = a.minutes;
            config.functions = common.functions;
            config.pick = pick;
            config.spread = match a.spread {
                SpreadKind::Uniform => Spread::Uniform,
                SpreadKind::Even => Spread::Even,
            };
            config.seed = common.seed;
            config.default_memory_mb = a.default_memory_mb;
            config.catalog = defaults;
            import::azure2019::import(&config, &outputs)?
        }
        ImportCommand::Azure2021(a) => {
            let mut config = import::azure2021::Azure2021Config::new(a.file.clone());
            config.window = a.minutes;
            config.functions = common.functions;
            config.pick = pick;
            config.seed = common.seed;
            config.memory_mb = a.memory_mb;
            config.catalog = defaults;
            import::azure2021::import(&config, &outputs)?
        }
    };
    eprintln!(
        "wrote {}, {} and {}",
        outputs.scenario.display(),
        outputs.catalog.display(),
        outputs.meta().display()
    );
    let n = &meta.notes;
    if n.without_durations > 0 || n.without_memory > 0 || n.clamped_durations > 0 {
        eprintln!(
            "note: {} functions without durations skipped, {} picked without memory (default used), {} durations cut to a day",
            n.without_durations, n.without_memory, n.clamped_durations
        );
    }
    let mut counts = String::new();
    for f in &meta.functions {
        counts.push_str(&format!("{}: {}\n", f.function, f.count));
    }
    counts.push_str(&format!(
        "total: {} calls of {} functions (of {} candidates)\n",
        meta.total_events,
        meta.functions.len(),
        n.candidates
    ));
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
    let analyses = analyses(&runs, a.nodes, false)?;
    let differences = utils::compare::differences(&analyses);
    if !differences.is_empty() {
        eprintln!("warning: the runs differ in more than their algorithm, parameters and seed:");
        for line in &differences {
            eprintln!("  {line}");
        }
    }
    let table = Comparison::new(&analyses);
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
