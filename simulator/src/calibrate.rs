//! `simulator calibrate <worker_url>`: measures a live worker's cold and
//! warm path costs through its real HTTP API and writes a cost profile
//! ([`::des::CostProfile`]) for `simulator des`.
//!
//! Every figure is worker overhead outside the function: `ExecutionTime -
//! InternalExecutionTime` of the worker's reply, on a path identified by
//! the reply's `Meta` flags (medians over `--repeats` samples):
//!
//! - `instance_create_ms`: `noop`, per-call instance, image present
//!   (`/configure?using_rest_mode=false&container_pool_limit=-1`);
//! - `pooled_ms`: `noop` served by a pre-warmed instance
//!   (`container_pool_limit=1&container_pool_num=2`, calls spaced so the
//!   pool refills; only replies with `UsingPooledContainer` count);
//! - `rest_start_ms` / `rest_warm_ms`: `noop` in REST mode, the first call
//!   after a `/clear` (instance start) and the following ones
//!   (`UsingExistingRestContainer`);
//! - `lambda_cold_ms` / `lambda_warm_ms`: the same two numbers (a REST-mode
//!   instance start is the nearest live analogue of a Lambda cold start);
//! - image build `a + b · MB`: for functions of different package sizes
//!   (`noop` 0 B, T3 0.5 MB, W4 2 MB, W7 17 MB, W5 26 MB, W3 54 MB, T1 98 MB),
//!   after `/clear?reset_images=true`, the overhead of the first call
//!   (`ImageBuilt`) minus that of the second; a least-squares line over
//!   the MB the worker really stages (its `/health` `PackageScale` times
//!   the catalog size);
//! - `instance_load_ms_per_mb`: the slope of a least-squares line through
//!   the second calls' overheads (a per-call instance, image present) over
//!   the same package sizes: an instance start loads its package;
//! - `network_ms`: the client's round trip minus `ExecutionTime` of warm
//!   REST calls (the HTTP hop, counted once per call);
//! - `balancer_ms` (with `--balancer-url`, a load balancer whose only node
//!   is this worker, checked in its `GET /1/lb/nodes`): median round trip of warm REST `noop` calls through
//!   the balancer minus the median of the same calls sent directly,
//!   interleaved (`--hop-samples` each), so both see the same machine
//!   state; 0 without a balancer;
//! - `cpu_scale`: `InternalExecutionTime` of warm REST calls of W1 (750 ms
//!   of CPU in the catalog) over 750 times the time scale the worker
//!   reports in `/health` (`HF_TIME_SCALE`, which scales the functions'
//!   work; recorded in `samples`);
//! - `cores`: this machine's available parallelism (the worker must run on
//!   this machine: the URL should be loopback);
//! - `spread`: how well each figure is determined ([`des::Spread`]): the
//!   fits' standard errors (least squares), the medians' lowest and
//!   highest samples (the balancer hop, a difference of two medians, has
//!   none); calibrate prints them, and warns of a figure whose
//!   uncertainty exceeds a quarter of its value (beyond the worker's
//!   whole-ms resolution);
//! - `--runs N` (default 1): N whole calibrations, one after the other;
//!   each figure is the median of theirs, and its spread their range
//!   beside the largest uncertainty one of them gave it
//!   ([`des::Spread::pooled`]); every calibration's figures, spreads and
//!   samples stay in `samples.runs`. A machine's costs drift between
//!   calibrations minutes apart by more than one calibration's samples
//!   show (this project's machine, process runtime: 3.45, 3.11, 1.79 and
//!   1.19 ms per MB of image build within an hour): calibrate warns of
//!   each figure that moved so;
//! - `measured_on`: this machine (CPU model, cores, memory, kernel), the
//!   1-minute load average before and after, the time and the simulator's
//!   version and revision ([`crate::profile_origin`]): every DES output
//!   says whether its profile was measured on the kind of machine it runs
//!   on. A worker URL whose host is not loopback gets a warning: the
//!   record then describes this machine, not the worker's.
//!
//! The worker must run HotFunctions' instance model (its `/health`
//! `InstanceModel`): a worker of the Lambda model has none of the paths
//! above, and is refused with that reason before anything is measured.
//! The profile records the runtime the worker reports in `/health`
//! (`--runtime`, if given, must be that one: a profile labelled with
//! another runtime than it measured is refused before measuring). It goes
//! to `--out`, by default where `simulator des` reads its profile first
//! ([`crate::des::profile_destination`]: in the workspace,
//! `simulator/profiles/process.json`), or for the docker runtime
//! `docker.json` beside it, where `simulator experiment --mode des
//! --runtime docker` reads; an existing file is kept (an error before
//! anything is measured) unless `--overwrite`.
//!
//! The worker is left in its default configuration (`/configure` with the
//! original defaults, then `/clear?reset_images=true`, which also removes
//! the images the measurements built). Raw samples go into the profile's
//! `samples` for the record.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use protocol::WorkerReply;
use serde_json::json;

use des::{CostProfile, Spread};

/// Arguments of `simulator calibrate`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Base URL of a live worker, e.g. http://127.0.0.1:8222.
    pub worker_url: String,
    /// Where to write the profile (default: where `simulator des` reads
    /// it first: $HF_DES_PROFILE if set, else an existing
    /// profiles/process.json next to the executable, else the workspace's
    /// simulator/profiles/process.json).
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Replace an existing profile (checked before measuring).
    #[arg(long)]
    pub overwrite: bool,
    /// The worker's runtime (process or docker), recorded in the profile:
    /// by default the one the worker reports in `/health`; given, it must
    /// be that one.
    #[arg(long, value_parser = ["process", "docker"])]
    pub runtime: Option<String>,
    /// Samples per warm/cold path.
    #[arg(long, default_value_t = 7)]
    pub repeats: usize,
    /// Repetitions of each image build measurement.
    #[arg(long, default_value_t = 2)]
    pub build_repeats: usize,
    /// Whole calibrations to pool (1-20): each figure is the median of
    /// theirs, and its spread their range, which shows how far the
    /// machine's costs drift between calibrations (more than one
    /// calibration's samples show). Each calibration is recorded in the
    /// profile's `samples.runs`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=20))]
    pub runs: u16,
    /// Skip the slow parts (image builds of large packages, W1 CPU scale):
    /// for tests; the profile says so in its description.
    #[arg(long)]
    pub quick: bool,
    /// A load balancer whose only node is this worker: measure the
    /// balancer hop (`balancer_ms`).
    #[arg(long)]
    pub balancer_url: Option<String>,
    /// Samples per side of the balancer-hop measurement.
    #[arg(long, default_value_t = 40)]
    pub hop_samples: usize,
    /// Per-request timeout, seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_s: u64,
}

/// Why calibration failed.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    #[error("worker at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("worker at {url} answered {path} with HTTP {status}: {body}")]
    Http {
        url: String,
        path: String,
        status: u16,
        body: String,
    },
    #[error("worker at {url} answered {path} with a reply that is not a worker reply: {reason}")]
    BadReply {
        url: String,
        path: String,
        reason: String,
    },
    #[error("calibration could not observe {what}: {why}")]
    NotObserved { what: String, why: String },
    #[error("worker at {url} runs the {reported} runtime, not {given} (--runtime {given}): a profile labelled {given} would hold the {reported} runtime's costs")]
    WrongRuntime {
        url: String,
        reported: String,
        given: String,
    },
    #[error("the balancer at {balancer} has {online} online nodes ({nodes}): the balancer hop is measured through a balancer whose only node is the worker measured, {worker}")]
    HopNodes {
        balancer: String,
        worker: String,
        online: usize,
        nodes: String,
    },
    #[error("worker at {url} runs the {model} instance model: calibrate measures the paths of HotFunctions' model (per-call instances, the pool, REST mode; a Lambda cold and warm start are taken as a REST start and a warm REST call); start the worker without --instance-model, --keep-alive-s or --keep-alive-policy")]
    InstanceModel { url: String, model: String },
    #[error("worker at {url} reports a time scale of {scale} (HF_TIME_SCALE): the functions' CPU work cannot be measured at it; start the worker with a time scale above 0")]
    BadTimeScale { url: String, scale: f64 },
}

/// Functions used for the image-build fit (name, package bytes from the
/// catalog at run time).
const BUILD_FUNCTIONS: &[&str] = &["noop", "T3", "W4", "W7", "W5", "W3", "T1"];
const BUILD_FUNCTIONS_QUICK: &[&str] = &["noop", "T3", "W4"];

struct Client {
    base: String,
    http: reqwest::Client,
}

/// One `/execute` reply with the client's round trip.
#[derive(Debug, Clone)]
struct Sample {
    reply: WorkerReply,
    round_trip_ms: f64,
}

impl Sample {
    fn overhead_ms(&self) -> f64 {
        (self.reply.execution_time - self.reply.internal_execution_time) as f64
    }
}

impl Client {
    async fn get(&self, path: &str) -> Result<(String, f64), CalibrateError> {
        let url = format!("{}{}", self.base, path);
        let start = Instant::now();
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| CalibrateError::Unreachable {
                url: self.base.clone(),
                reason: e.to_string(),
            })?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| CalibrateError::Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        })?;
        let rtt = start.elapsed().as_secs_f64() * 1000.0;
        if !status.is_success() {
            return Err(CalibrateError::Http {
                url: self.base.clone(),
                path: path.to_string(),
                status: status.as_u16(),
                body,
            });
        }
        Ok((body, rtt))
    }

    async fn execute(&self, function: &str) -> Result<Sample, CalibrateError> {
        let path = format!("/execute?name={function}");
        let (body, rtt) = self.get(&path).await?;
        let reply: WorkerReply =
            serde_json::from_str(&body).map_err(|e| CalibrateError::BadReply {
                url: self.base.clone(),
                path,
                reason: e.to_string(),
            })?;
        Ok(Sample {
            reply,
            round_trip_ms: rtt,
        })
    }

    async fn configure(&self, query: &str) -> Result<(), CalibrateError> {
        self.get(&format!("/configure?{query}")).await.map(|_| ())
    }

    async fn clear(&self, reset_images: bool) -> Result<(), CalibrateError> {
        let path = if reset_images {
            "/clear?reset_images=true"
        } else {
            "/clear"
        };
        self.get(path).await.map(|_| ())
    }
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// A least-squares line `y = a + b x` and its coefficients' standard
/// errors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LineFit {
    pub a: f64,
    pub b: f64,
    /// Standard errors of `a` and `b` (ordinary least squares, residual
    /// variance over `n - 2`); None with fewer than three points or one
    /// distinct x.
    pub se_a: Option<f64>,
    pub se_b: Option<f64>,
}

/// Least-squares line `y = a + b x` ([`LineFit`]); with one distinct x,
/// `b = 0`.
pub fn fit_line(points: &[(f64, f64)]) -> LineFit {
    let n = points.len() as f64;
    if points.is_empty() {
        return LineFit {
            a: 0.0,
            b: 0.0,
            se_a: None,
            se_b: None,
        };
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let a = my - b * mx;
    let (se_a, se_b) = if points.len() >= 3 && sxx > 0.0 {
        let ssr: f64 = points.iter().map(|p| (p.1 - a - b * p.0).powi(2)).sum();
        let s2 = ssr / (n - 2.0);
        (
            Some((s2 * (1.0 / n + mx * mx / sxx)).sqrt()),
            Some((s2 / sxx).sqrt()),
        )
    } else {
        (None, None)
    };
    LineFit { a, b, se_a, se_b }
}

/// The figures that are medians of the worker's whole-millisecond
/// overheads (`network_ms` is the client's, to the microsecond).
const WHOLE_MS_MEDIANS: [&str; 6] = [
    "instance_create_ms",
    "pooled_ms",
    "rest_start_ms",
    "rest_warm_ms",
    "lambda_cold_ms",
    "lambda_warm_ms",
];

/// Below this a figure's uncertainty is the worker's resolution, not
/// noise: half a millisecond for the medians it reports in whole ms.
fn resolution(name: &str) -> f64 {
    if WHOLE_MS_MEDIANS.contains(&name) {
        0.5
    } else {
        0.0
    }
}

/// The figures of `profile` whose uncertainty ([`des::Spread`]) exceeds a
/// quarter of their value (and, for the medians the worker reports in
/// whole ms, half a millisecond): the name, and `name value spread`.
fn poorly_determined(profile: &CostProfile) -> Vec<(&'static str, String)> {
    profile
        .figures()
        .into_iter()
        .filter_map(|(name, value)| {
            let spread = profile.spread.get(name)?;
            let u = spread.uncertainty()?;
            (u > resolution(name) && u > 0.25 * value.abs())
                .then(|| (name, format!("{name} {value:.3} {}", spread.describe())))
        })
        .collect()
}

/// The profile of several calibrations of one worker (`--runs`): each
/// figure the median of theirs, its spread [`Spread::pooled`] (their
/// range, and the largest uncertainty one of them gave it), each
/// calibration's figures, spreads and samples in `samples.runs`. One
/// calibration is returned as it is.
pub fn pool_runs(mut runs: Vec<CostProfile>) -> CostProfile {
    if runs.len() <= 1 {
        return runs.pop().unwrap_or_default();
    }
    let mut pooled = runs[0].clone();
    let mut spread = std::collections::BTreeMap::new();
    for (j, (name, value)) in pooled.figures_mut().into_iter().enumerate() {
        // `figures` and `figures_mut` list them in one order.
        let figures: Vec<f64> = runs.iter().map(|r| r.figures()[j].1).collect();
        *value = median(&figures).unwrap_or(0.0);
        let each: Vec<(f64, Option<&Spread>)> = runs
            .iter()
            .zip(&figures)
            .map(|(r, f)| (*f, r.spread.get(name)))
            .collect();
        spread.insert(name.to_string(), Spread::pooled(&each));
    }
    pooled.spread = spread;
    pooled.description = format!(
        "{}; each figure the median of {} calibrations",
        runs[0].description,
        runs.len()
    );
    let first = &runs[0].samples;
    let each: Vec<serde_json::Value> = runs
        .iter()
        .map(|r| {
            json!({
                "figures": r.figures().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
                "spread": r.spread,
                "samples": r.samples,
            })
        })
        .collect();
    pooled.samples = json!({
        "worker_time_scale": first["worker_time_scale"],
        "worker_package_scale": first["worker_package_scale"],
        "runs": each,
    });
    pooled
}

/// The pooled figures that moved between calibrations by more than one
/// calibration's uncertainty ([`Spread::drifts`]), beyond the worker's
/// whole-ms resolution: `name range`.
fn drifting(profile: &CostProfile) -> Vec<String> {
    profile
        .figures()
        .into_iter()
        .filter_map(|(name, _)| {
            let spread = profile.spread.get(name)?;
            (spread.drifts() && spread.half_range()? > resolution(name))
                .then(|| format!("{name} {}", spread.describe()))
        })
        .collect()
}

fn not_observed(what: &str, why: &str) -> CalibrateError {
    CalibrateError::NotObserved {
        what: what.to_string(),
        why: why.to_string(),
    }
}

/// What a worker says of itself in `/health` that the measurement
/// depends on.
#[derive(Debug, Clone, PartialEq)]
struct WorkerFigures {
    /// `Worker.PackageScale` (1 if not reported): the fits are per MB the
    /// worker really stages and loads.
    package_scale: f64,
    /// `Worker.TimeScale` (`HF_TIME_SCALE`; 1 if not reported): the
    /// functions' work runs this much of the catalog's, so `cpu_scale` is
    /// W1's time over `750 ms × time scale`.
    time_scale: f64,
    /// `Runtime` (`process`, `docker`), if reported.
    runtime: Option<String>,
    /// `Worker.InstanceModel.model` (`hot_functions`, `lambda`), if
    /// reported: the paths measured are the HotFunctions model's.
    instance_model: Option<String>,
    /// `Version` and `Revision`: the worker's code, as the profile
    /// records it (`measured_on.worker`), if reported.
    build: Option<String>,
}

impl WorkerFigures {
    fn of(health: &str) -> Self {
        let v = serde_json::from_str::<serde_json::Value>(health).unwrap_or_default();
        Self {
            package_scale: v["Worker"]["PackageScale"].as_f64().unwrap_or(1.0),
            time_scale: v["Worker"]["TimeScale"].as_f64().unwrap_or(1.0),
            runtime: v["Runtime"].as_str().map(str::to_string),
            instance_model: v["Worker"]["InstanceModel"]["model"]
                .as_str()
                .map(str::to_string),
            build: v["Version"].as_str().map(|version| {
                let revision = &v["Revision"];
                match revision["Commit"].as_str() {
                    Some(commit) => {
                        let git = protocol::sidecar::GitRevision {
                            commit: commit.to_string(),
                            dirty: revision["Dirty"] == true,
                        };
                        format!("worker-front {version} (git {git})")
                    }
                    None => format!("worker-front {version}"),
                }
            }),
        }
    }

    /// The runtime the profile records: the worker's, which `given` (the
    /// `--runtime` flag) must match; `process` when neither says.
    fn runtime(&self, url: &str, given: Option<&str>) -> Result<String, CalibrateError> {
        match (self.runtime.as_deref(), given) {
            (Some(reported), Some(given)) if reported != given => {
                Err(CalibrateError::WrongRuntime {
                    url: url.to_string(),
                    reported: reported.to_string(),
                    given: given.to_string(),
                })
            }
            (Some(r), _) | (None, Some(r)) => Ok(r.to_string()),
            (None, None) => Ok("process".to_string()),
        }
    }
}

const DEFAULTS_QUERY: &str = "using_rest_mode=false&container_pool_limit=-1&container_pool_num=6&user_code_size_limit=-1&rest_container_life_time=10";

/// The worker to measure, as it describes itself.
struct Worker {
    client: Client,
    figures: WorkerFigures,
    /// The runtime the profile records ([`WorkerFigures::runtime`]).
    runtime: String,
}

/// Reads the worker's `/health`: what it runs and at which scales. Fails
/// if it is unreachable, runs another runtime than `--runtime`, or runs
/// functions at a time scale of 0.
async fn connect(args: &Args) -> Result<Worker, CalibrateError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout_s))
        .pool_idle_timeout(protocol::timeouts::CLIENT_POOL_IDLE)
        .build()
        .map_err(|e| CalibrateError::Unreachable {
            url: args.worker_url.clone(),
            reason: e.to_string(),
        })?;
    let client = Client {
        base: args.worker_url.trim_end_matches('/').to_string(),
        http,
    };
    let (health, _) = client.get("/health").await?;
    let figures = WorkerFigures::of(&health);
    let runtime = figures.runtime(&client.base, args.runtime.as_deref())?;
    if let Some(model) = figures
        .instance_model
        .as_deref()
        .filter(|m| *m != "hot_functions")
    {
        return Err(CalibrateError::InstanceModel {
            url: client.base.clone(),
            model: model.to_string(),
        });
    }
    if !(figures.time_scale.is_finite() && figures.time_scale > 0.0) {
        return Err(CalibrateError::BadTimeScale {
            url: client.base.clone(),
            scale: figures.time_scale,
        });
    }
    Ok(Worker {
        client,
        figures,
        runtime,
    })
}

/// Measures the worker at `args.worker_url`; returns the profile.
pub async fn calibrate(args: &Args) -> Result<CostProfile, CalibrateError> {
    let worker = connect(args).await?;
    calibrate_worker(args, &worker).await
}

/// One calibration of `worker`.
async fn calibrate_worker(args: &Args, worker: &Worker) -> Result<CostProfile, CalibrateError> {
    let Worker {
        client: c,
        figures,
        runtime,
    } = worker;
    let repeats = args.repeats.max(1);
    let balancer = args.balancer_url.as_ref().map(|u| Client {
        base: u.trim_end_matches('/').to_string(),
        http: c.http.clone(),
    });
    if let Some(b) = &balancer {
        b.get("/health").await?;
        match b.get("/1/lb/nodes").await {
            Ok((nodes, _)) => check_hop_nodes(&b.base, &c.base, &nodes)?,
            Err(e) => crate::note!(
                "calibrate: warning: cannot list the balancer's nodes ({e}); the balancer hop \
                 assumes this worker is its only node"
            ),
        }
    }
    let result = measure(
        c,
        balancer.as_ref(),
        args,
        repeats,
        figures,
        runtime.clone(),
    )
    .await;
    // Leave the worker as the original defaults, whatever happened, and
    // remove the images and instances the measurements made.
    let _ = c.configure(DEFAULTS_QUERY).await;
    let _ = c.clear(true).await;
    result
}

async fn measure(
    c: &Client,
    balancer: Option<&Client>,
    args: &Args,
    repeats: usize,
    worker: &WorkerFigures,
    runtime: String,
) -> Result<CostProfile, CalibrateError> {
    let package_scale = worker.package_scale;
    let catalog = sample_functions::catalog();
    c.configure(DEFAULTS_QUERY).await?;

    // Image builds: first call (ImageBuilt) vs second call, per package size.
    let functions = if args.quick {
        BUILD_FUNCTIONS_QUICK
    } else {
        BUILD_FUNCTIONS
    };
    let mut build_points = Vec::new();
    // The second call: a per-call instance with the image present, whose
    // start loads the package (`instance_load_ms_per_mb`).
    let mut load_points = Vec::new();
    for _ in 0..args.build_repeats.max(1) {
        c.clear(true).await?;
        for f in functions {
            let bytes = catalog.get(f).map_or(0, |s| {
                sample_functions::payload::scaled_bytes(s.package_bytes, package_scale)
            });
            let first = c.execute(f).await?;
            let second = c.execute(f).await?;
            if !first.reply.meta.image_built || second.reply.meta.image_built {
                return Err(not_observed(
                    "image builds",
                    &format!(
                        "{f}: ImageBuilt was not true then false after /clear?reset_images=true"
                    ),
                ));
            }
            let build = (first.overhead_ms() - second.overhead_ms()).max(0.0);
            build_points.push((bytes as f64 / 1e6, build));
            load_points.push((bytes as f64 / 1e6, second.overhead_ms()));
        }
    }
    let build_fit = fit_line(&build_points);
    let load_fit = fit_line(&load_points);

    // Per-call instance (image present, no pool, no REST).
    let mut create = Vec::new();
    for _ in 0..repeats {
        let s = c.execute("noop").await?;
        if !s.reply.meta.using_pooled_container && !s.reply.meta.using_existing_rest_container {
            create.push(s.overhead_ms());
        }
    }

    // Pre-warmed pool: one function, two instances; space calls so the
    // pool refills (poll with a deadline).
    c.configure("container_pool_limit=1&container_pool_num=2")
        .await?;
    c.clear(false).await?;
    let mut pooled = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60 + 10 * repeats as u64);
    while pooled.len() < repeats && Instant::now() < deadline {
        let s = c.execute("noop").await?;
        if s.reply.meta.using_pooled_container {
            pooled.push(s.overhead_ms());
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    c.configure(DEFAULTS_QUERY).await?;

    // REST mode: starts and warm calls.
    c.configure("using_rest_mode=true").await?;
    let mut rest_start = Vec::new();
    let mut rest_warm = Vec::new();
    let mut network = Vec::new();
    for i in 0..repeats {
        c.clear(false).await?;
        let first = c.execute("noop").await?;
        if !first.reply.meta.using_existing_rest_container {
            rest_start.push(first.overhead_ms());
        }
        let warm_calls = if i == 0 { 3 } else { 1 };
        for _ in 0..warm_calls {
            let s = c.execute("noop").await?;
            if s.reply.meta.using_existing_rest_container {
                rest_warm.push(s.overhead_ms());
                network.push((s.round_trip_ms - s.reply.execution_time as f64).max(0.0));
            }
        }
    }

    // The balancer hop: warm REST noop calls, direct and through the
    // balancer, interleaved. The round trips are the client's (µs
    // resolution), not the worker's whole-ms figures.
    let mut hop_direct = Vec::new();
    let mut hop_balancer = Vec::new();
    if let Some(b) = balancer {
        c.execute("noop").await?;
        b.get("/execute?name=noop").await?;
        for _ in 0..args.hop_samples.max(1) {
            hop_direct.push(c.execute("noop").await?.round_trip_ms);
            hop_balancer.push(b.get("/execute?name=noop").await?.1);
        }
    }
    let balancer_ms = match (median(&hop_balancer), median(&hop_direct)) {
        (Some(b), Some(d)) => (b - d).max(0.0),
        _ => 0.0,
    };

    // CPU speed: warm REST calls of W1 (750 ms of CPU in the catalog).
    let mut cpu_scale = Vec::new();
    if !args.quick {
        let w1_cpu = catalog.get("W1").map_or(750, |s| s.cpu_ms()) as f64;
        c.execute("W1").await?;
        for _ in 0..3 {
            let s = c.execute("W1").await?;
            cpu_scale.push(s.reply.internal_execution_time as f64 / (w1_cpu * worker.time_scale));
        }
    }
    c.configure(DEFAULTS_QUERY).await?;

    let need = |v: &[f64], what: &str| {
        median(v).ok_or_else(|| not_observed(what, "no reply took that path"))
    };
    let instance_create_ms = need(&create, "per-call instance starts")?;
    let pooled_ms = need(&pooled, "pooled instances (UsingPooledContainer)")?;
    let rest_start_ms = need(&rest_start, "REST instance starts")?;
    let rest_warm_ms = need(&rest_warm, "warm REST calls (UsingExistingRestContainer)")?;
    let network_ms = median(&network).unwrap_or(0.0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let mut spread = std::collections::BTreeMap::new();
    let builds = build_points.len();
    spread.insert(
        "image_build_base_ms".to_string(),
        Spread::fitted(builds, build_fit.se_a),
    );
    spread.insert(
        "image_build_ms_per_mb".to_string(),
        Spread::fitted(builds, build_fit.se_b),
    );
    spread.insert(
        "instance_load_ms_per_mb".to_string(),
        Spread::fitted(load_points.len(), load_fit.se_b),
    );
    for (name, samples) in [
        ("instance_create_ms", &create),
        ("pooled_ms", &pooled),
        ("rest_start_ms", &rest_start),
        ("rest_warm_ms", &rest_warm),
        ("lambda_cold_ms", &rest_start),
        ("lambda_warm_ms", &rest_warm),
        ("network_ms", &network),
        ("cpu_scale", &cpu_scale),
    ] {
        if !samples.is_empty() {
            spread.insert(name.to_string(), Spread::of_samples(samples));
        }
    }
    Ok(CostProfile {
        description: format!(
            "measured by `simulator calibrate {}` ({} runtime, {} cores){}{}",
            c.base,
            runtime,
            cores,
            if worker.time_scale != 1.0 && !args.quick {
                format!(
                    "; the worker ran functions at HF_TIME_SCALE={}, which cpu_scale divides out",
                    worker.time_scale
                )
            } else {
                String::new()
            },
            if args.quick {
                "; --quick: small packages only, cpu_scale not measured"
            } else {
                ""
            }
        ),
        runtime,
        cores,
        image_build_base_ms: build_fit.a.max(0.0),
        image_build_ms_per_mb: build_fit.b.max(0.0),
        instance_create_ms,
        pooled_ms,
        rest_start_ms,
        rest_warm_ms,
        instance_load_ms_per_mb: load_fit.b.max(0.0),
        lambda_cold_ms: rest_start_ms,
        lambda_warm_ms: rest_warm_ms,
        network_ms,
        balancer_ms,
        cpu_scale: median(&cpu_scale).unwrap_or(1.0),
        measured_on: None,
        spread,
        samples: json!({
            "image_build_mb_ms": build_points,
            "instance_start_mb_ms": load_points,
            "instance_create_ms": create,
            "pooled_ms": pooled,
            "rest_start_ms": rest_start,
            "rest_warm_ms": rest_warm,
            "network_ms": network,
            "hop_direct_round_trip_ms": hop_direct,
            "hop_balancer_round_trip_ms": hop_balancer,
            "cpu_scale": cpu_scale,
            "worker_time_scale": worker.time_scale,
            "worker_package_scale": worker.package_scale,
        }),
        file: None,
    })
}

/// Runs `simulator calibrate`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let git = crate::source_revision();
    let load_at_start = crate::experiment::host::load_average();
    if !is_loopback_url(&args.worker_url) {
        crate::note!(
            "calibrate: warning: {} is not on loopback: the profile records this machine, which \
             should be the worker's",
            args.worker_url
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // Refuse an existing profile before measuring (a minute or two), and
    // write nothing then: before contacting the worker when the
    // destination does not depend on its runtime.
    let env_set = std::env::var_os(crate::des::PROFILE_ENV).is_some();
    let known = args
        .out
        .clone()
        .or_else(|| env_set.then(crate::des::profile_destination));
    if let Some(out) = &known {
        crate::des::refuse_existing(&[out], args.overwrite)?;
    }
    let worker = rt.block_on(connect(&args))?;
    let out = match known {
        Some(out) => out,
        None => {
            let out = default_destination(crate::des::profile_destination(), &worker.runtime);
            crate::des::refuse_existing(&[&out], args.overwrite)?;
            out
        }
    };
    crate::note!(
        "calibrate: measuring {} ({} runtime) into {} (this builds images and runs functions; a minute or two)",
        args.worker_url,
        worker.runtime,
        out.display()
    );
    let runs = usize::from(args.runs);
    let mut each = Vec::with_capacity(runs);
    for i in 1..=runs {
        let profile = rt.block_on(calibrate_worker(&args, &worker))?;
        if runs > 1 {
            crate::note!(
                "calibrate: calibration {i} of {runs}: {}",
                figures_line(&profile)
            );
        }
        each.push(profile);
    }
    let mut profile = pool_runs(each);
    profile.measured_on = Some(crate::profile_origin::measured_here(
        load_at_start,
        git.as_ref(),
        worker.figures.build.clone(),
    ));
    profile.check(&out.display().to_string())?;
    let json = serde_json::to_string_pretty(&profile)?;
    let mut f = crate::des::create(&out, args.overwrite)?;
    writeln!(f, "{json}").with_context(|| format!("cannot write {}", out.display()))?;
    crate::note!(
        "calibrate: wrote {}: {}{}; on {}",
        out.display(),
        figures_line(&profile),
        if runs > 1 {
            format!(" (each the median of {runs} calibrations)")
        } else {
            String::new()
        },
        profile
            .measured_on
            .as_ref()
            .map_or_else(String::new, des::MeasuredOn::machine)
    );
    let spreads: Vec<String> = profile
        .spread
        .iter()
        .map(|(name, s)| format!("{name} {}", s.describe()))
        .collect();
    crate::note!("calibrate: spread: {}", spreads.join(", "));
    for (name, figure) in poorly_determined(&profile) {
        crate::note!(
            "calibrate: warning: {figure} is poorly determined (its uncertainty is over a \
             quarter of its value): {} or a quieter machine narrow it",
            narrowed_by(name)
        );
    }
    for figure in drifting(&profile) {
        crate::note!(
            "calibrate: warning: {figure}: it moved between calibrations by more than one \
             calibration's uncertainty, so a single calibration understates how little is \
             known of it"
        );
    }
    Ok(())
}

/// The flags that take more samples of figure `name`.
fn narrowed_by(name: &str) -> &'static str {
    match name {
        "image_build_base_ms" | "image_build_ms_per_mb" | "instance_load_ms_per_mb" => {
            "more builds (--build-repeats), more calibrations (--runs)"
        }
        "balancer_ms" => "more hop samples (--hop-samples), more calibrations (--runs)",
        // Three W1 calls per calibration.
        "cpu_scale" => "more calibrations (--runs)",
        _ => "more samples (--repeats), more calibrations (--runs)",
    }
}

/// A profile's figures in a line.
fn figures_line(p: &CostProfile) -> String {
    format!(
        "build {:.1} ms + {:.2} ms/MB, create {:.1} ms + {:.2} ms/MB (any instance start), pooled {:.1} ms, REST start {:.1} ms, REST warm {:.1} ms, network {:.2} ms, balancer hop {:.2} ms, cpu scale {:.3}",
        p.image_build_base_ms,
        p.image_build_ms_per_mb,
        p.instance_create_ms,
        p.instance_load_ms_per_mb,
        p.pooled_ms,
        p.rest_start_ms,
        p.rest_warm_ms,
        p.network_ms,
        p.balancer_ms,
        p.cpu_scale,
    )
}

/// Checks the balancer's `GET /1/lb/nodes` reply (`{"nodes": {url:
/// "online"|"offline"}}`) for the hop measurement: exactly one online
/// node. One under another URL than `worker` (the same worker by another
/// name, perhaps) is a warning; a reply of another shape is taken as is.
fn check_hop_nodes(balancer: &str, worker: &str, reply: &str) -> Result<(), CalibrateError> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(reply) else {
        return Ok(());
    };
    let Some(nodes) = v["nodes"].as_object() else {
        return Ok(());
    };
    let online: Vec<&str> = nodes
        .iter()
        .filter(|(_, state)| state.as_str() == Some("online"))
        .map(|(url, _)| url.as_str())
        .collect();
    if online.len() != 1 {
        return Err(CalibrateError::HopNodes {
            balancer: balancer.to_string(),
            worker: worker.to_string(),
            online: online.len(),
            nodes: if online.is_empty() {
                "none".to_string()
            } else {
                online.join(", ")
            },
        });
    }
    if online[0].trim_end_matches('/') != worker.trim_end_matches('/') {
        crate::note!(
            "calibrate: warning: the balancer's only node is {}, not {worker}: the hop assumes it \
             is this worker",
            online[0]
        );
    }
    Ok(())
}

/// Whether `url`'s host is `localhost` or a loopback address, by the
/// management routes' rule ([`protocol::mgmt::is_loopback`], IPv4-mapped
/// IPv6 included); a URL without a scheme is read as `http://`.
fn is_loopback_url(url: &str) -> bool {
    let with_scheme = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    let Ok(parsed) = reqwest::Url::parse(&with_scheme) else {
        return false;
    };
    let host = parsed.host_str().unwrap_or("");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(protocol::mgmt::is_loopback)
}

/// Where a profile of `runtime` goes without `--out` or
/// `$HF_DES_PROFILE`: `first`, where `simulator des` reads first
/// (`process`), or `<runtime>.json` beside it, where `simulator
/// experiment --mode des --runtime <runtime>` reads
/// ([`crate::des::profile_of_runtime`]).
fn default_destination(first: PathBuf, runtime: &str) -> PathBuf {
    if runtime == "process" {
        first
    } else {
        first.with_file_name(format!("{runtime}.json"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fits_standard_errors_are_those_of_least_squares() {
        // On a line: no error.
        let exact: Vec<(f64, f64)> = (0..5).map(|x| (x as f64, 1.0 + 2.0 * x as f64)).collect();
        let f = fit_line(&exact);
        assert!(f.se_a.unwrap() < 1e-9 && f.se_b.unwrap() < 1e-9, "{f:?}");
        // y = 0, 2, 1, 3 at x = 0..3: b = 0.8, a = 0.3, residuals -0.3,
        // 0.9, -0.9, 0.3 (SSR 1.8, s² = 0.9), Sxx = 5, mean x 1.5:
        // se(b) = sqrt(0.9 / 5), se(a) = sqrt(0.9 (1/4 + 2.25/5)).
        let pts = [(0.0, 0.0), (1.0, 2.0), (2.0, 1.0), (3.0, 3.0)];
        let f = fit_line(&pts);
        assert!(
            (f.b - 0.8).abs() < 1e-12 && (f.a - 0.3).abs() < 1e-12,
            "{f:?}"
        );
        assert!(
            (f.se_b.unwrap() - (0.9f64 / 5.0).sqrt()).abs() < 1e-12,
            "{f:?}"
        );
        assert!(
            (f.se_a.unwrap() - (0.9f64 * 0.7).sqrt()).abs() < 1e-12,
            "{f:?}"
        );
        // Too few points, or one size: no standard error.
        assert_eq!(fit_line(&pts[..2]).se_b, None);
        assert_eq!(fit_line(&[(1.0, 1.0); 4]).se_b, None);
    }

    #[test]
    fn poorly_determined_figures_are_named() {
        let mut p = CostProfile {
            instance_load_ms_per_mb: 2.67,
            instance_create_ms: 286.0,
            rest_warm_ms: 0.0,
            cpu_scale: 1.0,
            ..CostProfile::default()
        };
        p.spread.insert(
            "instance_load_ms_per_mb".into(),
            Spread::fitted(14, Some(0.9)),
        );
        p.spread.insert(
            "instance_create_ms".into(),
            Spread::of_samples(&[270.0, 286.0, 300.0]),
        );
        // Whole-ms reports: 0-1 ms is the worker's resolution, not noise.
        p.spread
            .insert("rest_warm_ms".into(), Spread::of_samples(&[0.0, 1.0, 0.0]));
        p.spread
            .insert("cpu_scale".into(), Spread::of_samples(&[0.9, 1.1, 1.0]));
        assert_eq!(
            poorly_determined(&p),
            vec![(
                "instance_load_ms_per_mb",
                "instance_load_ms_per_mb 2.670 ±0.900 (standard error, 14 points)".to_string()
            )]
        );
        assert!(narrowed_by("instance_load_ms_per_mb").contains("--build-repeats"));
        assert!(narrowed_by("balancer_ms").contains("--hop-samples"));
        assert!(narrowed_by("rest_warm_ms").contains("--repeats"));
        p.spread
            .insert("cpu_scale".into(), Spread::of_samples(&[0.5, 1.1, 1.0]));
        assert_eq!(poorly_determined(&p).len(), 2);
        // The client's round trips are to the microsecond: no floor.
        p.network_ms = 0.3;
        p.spread.insert(
            "network_ms".into(),
            Spread::of_samples(&[0.109, 0.3, 0.356]),
        );
        assert_eq!(poorly_determined(&p).len(), 3);
    }

    #[test]
    fn calibrations_are_pooled_by_their_medians_and_range() {
        let run = |build_per_mb: f64, se: f64, hop: f64, create: &[f64]| {
            let mut p = CostProfile {
                description: "measured by `simulator calibrate u` (process runtime, 2 cores)"
                    .into(),
                runtime: "process".into(),
                image_build_ms_per_mb: build_per_mb,
                instance_create_ms: median(create).unwrap(),
                balancer_ms: hop,
                samples: json!({"worker_time_scale": 0.1, "worker_package_scale": 0.01}),
                ..CostProfile::default()
            };
            p.spread
                .insert("image_build_ms_per_mb".into(), Spread::fitted(14, Some(se)));
            p.spread
                .insert("instance_create_ms".into(), Spread::of_samples(create));
            p
        };
        let one = run(3.45, 0.3, 0.5, &[280.0, 286.0, 300.0]);
        assert_eq!(pool_runs(vec![one.clone()]), one);
        let pooled = pool_runs(vec![
            one,
            run(1.19, 0.2, 0.9, &[270.0, 275.0, 290.0]),
            run(1.79, 0.25, 0.7, &[281.0, 284.0, 299.0]),
        ]);
        // Each figure the median of the three.
        assert_eq!(pooled.image_build_ms_per_mb, 1.79);
        assert_eq!(pooled.instance_create_ms, 284.0);
        assert_eq!(pooled.balancer_ms, 0.7);
        let build = &pooled.spread["image_build_ms_per_mb"];
        assert_eq!(
            (build.calibrations, build.low, build.high, build.within_run),
            (Some(3), Some(1.19), Some(3.45), Some(0.3))
        );
        // The hop, which one calibration gives no spread, has one now.
        assert_eq!(pooled.spread["balancer_ms"].uncertainty(), Some(0.2));
        assert!(pooled.description.ends_with("the median of 3 calibrations"));
        let runs = pooled.samples["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 3);
        assert_eq!(runs[1]["figures"]["image_build_ms_per_mb"], 1.19);
        assert_eq!(runs[1]["spread"]["instance_create_ms"]["low"], 270.0);
        assert_eq!(pooled.samples["worker_time_scale"], 0.1);
        // The build cost moved by ±1.13 against one calibration's ±0.3;
        // instance creation's range (275-286, ±5.5) is within one
        // calibration's (±10); the hop had no spread to compare with.
        assert_eq!(
            drifting(&pooled),
            vec!["image_build_ms_per_mb (3 calibrations 1.19-3.45; one calibration ±0.300; 42 points)".to_string()]
        );
    }

    #[test]
    fn loopback_urls_are_told_from_others() {
        for url in [
            "http://127.0.0.1:8222",
            "http://localhost:8222/",
            "http://[::1]:8222",
            "127.0.0.2:1",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in [
            "http://10.0.0.3:8222",
            "http://worker-1:8222",
            "http://[2001:db8::1]:8222",
        ] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }

    #[test]
    fn line_fit_recovers_a_line_and_medians() {
        let pts: Vec<(f64, f64)> = (0..5).map(|x| (x as f64, 3.0 + 2.0 * x as f64)).collect();
        let f = fit_line(&pts);
        assert!((f.a - 3.0).abs() < 1e-9 && (f.b - 2.0).abs() < 1e-9);
        let one_size = fit_line(&[(1.0, 5.0), (1.0, 7.0)]);
        assert_eq!((one_size.a, one_size.b), (6.0, 0.0));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn the_workers_scales_and_runtime_come_from_its_health() {
        let w = WorkerFigures::of(
            r#"{"Status":"ok","Runtime":"docker","Worker":{"PackageScale":0.25,"TimeScale":0.1}}"#,
        );
        assert_eq!(
            w,
            WorkerFigures {
                package_scale: 0.25,
                time_scale: 0.1,
                runtime: Some("docker".into()),
                instance_model: None,
                build: None,
            }
        );
        // The worker's code, as the profile records it.
        let built = |health: &str| WorkerFigures::of(health).build;
        assert_eq!(
            built(r#"{"Version":"0.1.0","Revision":{"Commit":"0123456789abcdef","Dirty":true}}"#)
                .as_deref(),
            Some("worker-front 0.1.0 (git 0123456789ab-dirty)")
        );
        assert_eq!(
            built(r#"{"Version":"0.1.0","Revision":null}"#).as_deref(),
            Some("worker-front 0.1.0")
        );
        let lambda = WorkerFigures::of(
            r#"{"Worker":{"InstanceModel":{"keep_alive_s":60.0,"model":"lambda"}}}"#,
        );
        assert_eq!(lambda.instance_model.as_deref(), Some("lambda"));
        let none = WorkerFigures {
            package_scale: 1.0,
            time_scale: 1.0,
            runtime: None,
            instance_model: None,
            build: None,
        };
        assert_eq!(WorkerFigures::of(r#"{"Status":"ok","Worker":{}}"#), none);
        assert_eq!(WorkerFigures::of("not json"), none);

        // The runtime: the worker's; a --runtime that differs is refused.
        assert_eq!(w.runtime("u", None).unwrap(), "docker");
        assert_eq!(w.runtime("u", Some("docker")).unwrap(), "docker");
        let e = w.runtime("u", Some("process")).unwrap_err().to_string();
        assert!(e.contains("runs the docker runtime, not process"), "{e}");
        assert_eq!(none.runtime("u", Some("docker")).unwrap(), "docker");
        assert_eq!(none.runtime("u", None).unwrap(), "process");
    }

    #[test]
    fn the_hop_is_measured_through_a_balancer_of_this_worker_alone() {
        let w = "http://127.0.0.1:1";
        let one = r#"{"nodes":{"http://127.0.0.1:1":"online","http://127.0.0.1:2":"offline"}}"#;
        assert!(check_hop_nodes("b", w, one).is_ok());
        let two = r#"{"nodes":{"http://127.0.0.1:1":"online","http://127.0.0.1:2":"online"}}"#;
        let e = check_hop_nodes("b", w, two).unwrap_err().to_string();
        assert!(
            e.contains("2 online nodes (http://127.0.0.1:1, http://127.0.0.1:2)"),
            "{e}"
        );
        let e = check_hop_nodes("b", w, r#"{"nodes":{}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("0 online nodes (none)"), "{e}");
        // Another name for it: a warning only; another shape: as it is.
        assert!(check_hop_nodes("b", w, r#"{"nodes":{"http://localhost:1":"online"}}"#).is_ok());
        assert!(check_hop_nodes("b", w, "[]").is_ok());
    }

    #[test]
    fn a_docker_profile_goes_beside_the_process_one() {
        let first = PathBuf::from("/w/simulator/profiles/process.json");
        assert_eq!(
            default_destination(first.clone(), "docker"),
            PathBuf::from("/w/simulator/profiles/docker.json")
        );
        assert_eq!(default_destination(first.clone(), "process"), first);
    }
}
