//! The runs of one point (repetitions × algorithms), the same loop for
//! local processes ([`super::live`]) and for a cluster
//! ([`super::cluster`]). Each attempt of a run:
//!
//! 1. is prepared by its target ([`RunTarget::prepare`]: empty the
//!    workers; on a cluster, also configure the algorithm);
//! 2. waits half a second while the CPU of the experiment's processes is
//!    measured (the quiet check of [`super::host::Noise`]);
//! 3. is started ([`RunTarget::start`]: a fresh balancer, or the
//!    cluster's);
//! 4. replays the scenario, or runs the closed loop (`simulator load`'s
//!    [`crate::load::load`]), with the CPU measured around it;
//! 5. is judged for noise, then rerun or recorded ([`close_attempt`]).

use std::collections::HashMap;

use super::*;
use crate::load::LoadOptions;

/// What the point's runs share.
pub(super) struct PointRuns<'a> {
    pub plan: &'a Plan,
    pub opts: &'a RunOptions,
    pub events: &'a [ScenarioEvent],
    pub dir: &'a Path,
    pub stop: &'a StopHandle,
    /// The dispatch-lag limits of the noise check (p50, p99), in µs.
    pub lag_limits: (u64, u64),
    /// Runs of the whole experiment, and how many have begun (for the
    /// `[n/total]` progress prefix).
    pub total: usize,
    pub begun: usize,
}

impl<'a> PointRuns<'a> {
    pub fn new(
        plan: &'a Plan,
        opts: &'a RunOptions,
        events: &'a [ScenarioEvent],
        dir: &'a Path,
        stop: &'a StopHandle,
        record: &ExperimentRecord,
    ) -> Result<Self, ExperimentError> {
        let points = plan.points()?.len();
        Ok(Self {
            plan,
            opts,
            events,
            dir,
            stop,
            lag_limits: record.noise_thresholds.unwrap_or_default().lag_limits_us(
                host::median_gap(events.iter().map(|e| e.start_ms)),
                record.time_scale,
            ),
            total: points * plan.repeat as usize * plan.algorithms.len(),
            begun: 0,
        })
    }
}

/// One attempt of a run, as its target sees it.
pub(super) struct RunSpec<'a> {
    /// `[n/total] id`, the prefix of the run's progress lines.
    pub label: &'a str,
    /// The run's id (its log's name).
    pub id: &'a str,
    pub algorithm: &'a str,
    pub seed: u64,
    pub config: &'a SchedulerConfig,
    pub point: &'a PointRecord,
    /// 1 for the first attempt, more for reruns of a disturbed one.
    pub attempt: usize,
}

impl RunSpec<'_> {
    /// ` (attempt N)` after the first attempt, else nothing.
    pub fn attempt_note(&self) -> String {
        if self.attempt > 1 {
            format!(" (attempt {})", self.attempt)
        } else {
            String::new()
        }
    }
}

/// The balancer a run replays against.
pub(super) struct Started {
    pub url: String,
    pub token: Option<String>,
}

/// Where a point's runs happen.
pub(super) trait RunTarget {
    /// Before the quiet check: empties the workers, and on a cluster
    /// configures the run's algorithm.
    async fn prepare(&mut self, run: &RunSpec<'_>) -> Result<(), ExperimentError>;

    /// The roots of the processes whose CPU counts as the experiment's
    /// (this process first).
    fn roots(&self) -> Vec<u32>;

    /// After the quiet check: the balancer to replay against, or `None`
    /// when a stop came while it was starting.
    async fn start(
        &mut self,
        run: &RunSpec<'_>,
        record: &mut ExperimentRecord,
        stop: &StopHandle,
    ) -> Result<Option<Started>, ExperimentError>;

    /// The sidecar of the run's log.
    fn sidecar(&self, record: &ExperimentRecord, run: &RunSpec<'_>) -> RunSidecar {
        live_sidecar(record, run.point, run.config)
    }

    /// The CPU used during the replay, by process, from each root's cores.
    fn cpu_by_process(&self, roots: &[u32], cores: &HashMap<u32, f64>) -> Vec<host::ProcessCpu>;

    /// After the replay (stops a balancer started for the run).
    fn end(&mut self) {}
}

/// Runs every repetition of every algorithm of point `pi` on `target`.
/// Returns `false` when the experiment stops (a stop, or an interrupted
/// replay).
pub(super) async fn run_point<T: RunTarget>(
    runs: &mut PointRuns<'_>,
    target: &mut T,
    record: &mut ExperimentRecord,
    pi: usize,
    point: &Point,
) -> Result<bool, ExperimentError> {
    let precord = record.points[pi].clone();
    let plan = runs.plan;
    for rep in 0..plan.repeat {
        for algorithm in &plan.algorithms {
            if runs.stop.level() != StopLevel::Run {
                return Ok(false);
            }
            runs.begun += 1;
            let seed = plan.seed + u64::from(rep);
            let config = run_config(&precord, algorithm, seed)?;
            let id = run_id(point.label.as_deref(), algorithm, rep, plan.repeat);
            let log = log_path(runs.dir, &id)?;
            let label = format!("[{}/{}] {id}", runs.begun, runs.total);
            let mut earlier = Vec::new();
            loop {
                let run = RunSpec {
                    label: &label,
                    id: &id,
                    algorithm,
                    seed,
                    config: &config,
                    point: &precord,
                    attempt: earlier.len() + 1,
                };
                let started_at = Instant::now();
                target.prepare(&run).await?;
                // The quiet check: our processes are idle now.
                let quiet_roots = target.roots();
                let q0 = CpuSample::take(&quiet_roots);
                let load_before = host::load_average();
                tokio::time::sleep(Duration::from_millis(500)).await;
                let q1 = CpuSample::take(&quiet_roots);
                let Some(balancer) = target.start(&run, record, runs.stop).await? else {
                    return Ok(false);
                };
                let sidecar = target.sidecar(record, &run);
                let roots = target.roots();
                let d0 = CpuSample::take(&roots);
                let summary = match &plan.closed_loop {
                    None => {
                        let mut options = ReplayOptions::new(balancer.url);
                        options.time_scale = record.time_scale;
                        options.duration = plan.duration;
                        options.request_timeout = runs.opts.request_timeout;
                        options.progress = runs.opts.progress;
                        options.label = format!("{}/{} {id}", runs.begun, runs.total);
                        // A rerun replaces its own disturbed attempt.
                        options.overwrite = true;
                        options.run = Some(sidecar);
                        options.token = balancer.token;
                        let summary = replay::replay(runs.events, &options, &log, runs.stop)
                            .await
                            .map_err(|source| ExperimentError::Replay {
                                algorithm: algorithm.to_string(),
                                source,
                            })?;
                        Sent::Replay(summary)
                    }
                    Some(closed) => {
                        let options = LoadOptions {
                            balancer_url: balancer.url,
                            closed_loop: repetition_loop(closed, rep),
                            request_timeout: runs.opts.request_timeout,
                            progress: runs.opts.progress,
                            progress_interval: Duration::from_secs(5),
                            overwrite: true,
                            run: Some(sidecar),
                            token: balancer.token,
                        };
                        let summary = crate::load::load(&options, &log, runs.stop).await.map_err(
                            |source| ExperimentError::Load {
                                algorithm: algorithm.to_string(),
                                source,
                            },
                        )?;
                        Sent::Load(Box::new(summary))
                    }
                };
                let d1 = CpuSample::take(&roots);
                let by_process = target.cpu_by_process(&roots, &d0.cores_by_root(&d1));
                target.end();
                let attempt = Attempt {
                    label: label.clone(),
                    started: started_at,
                    load_before,
                    quiet: q0.until(&q1),
                    during: d0.until(&d1),
                    by_process,
                };
                let key = RunKey {
                    id: &id,
                    algorithm,
                    point: pi,
                    repetition: rep,
                    seed,
                    log: &log,
                };
                match close_attempt(
                    plan,
                    record,
                    runs.lag_limits,
                    attempt,
                    summary,
                    key,
                    &mut earlier,
                ) {
                    AfterAttempt::Rerun => continue,
                    AfterAttempt::Recorded { interrupted: true } => return Ok(false),
                    AfterAttempt::Recorded { interrupted: false } => break,
                }
            }
        }
    }
    Ok(true)
}

/// What a live run sent: a scenario's replay, or a closed loop.
pub(super) enum Sent {
    Replay(replay::ReplaySummary),
    Load(Box<LoadSummary>),
}

/// The figures of a run's calls that the noise check and the report use.
#[derive(Debug, Clone, Copy)]
pub(super) struct SentFigures {
    pub dispatched: u64,
    pub ok: u64,
    pub errors: u64,
    pub interrupted: bool,
    /// The replay's dispatch lag p50 (a closed loop measures only p99).
    pub lag_p50_us: Option<u64>,
    /// The replay's dispatch lag p99, or a closed loop's send lag p99 (a
    /// client's intended send time, its last reply plus its think time,
    /// to the send).
    pub lag_p99_us: u64,
}

impl Sent {
    fn figures(&self) -> SentFigures {
        match self {
            Self::Replay(s) => SentFigures::of_replay(s),
            Self::Load(s) => SentFigures::of_load(s),
        }
    }
}

impl SentFigures {
    pub fn of_replay(s: &replay::ReplaySummary) -> Self {
        Self {
            dispatched: s.dispatched,
            ok: s.ok,
            errors: s.errors,
            interrupted: s.interrupted,
            lag_p50_us: Some(s.dispatch_lag_p50_us),
            lag_p99_us: s.dispatch_lag_p99_us,
        }
    }

    pub fn of_load(s: &LoadSummary) -> Self {
        Self {
            dispatched: s.calls,
            ok: s.ok,
            errors: s.errors,
            interrupted: s.interrupted,
            lag_p50_us: None,
            lag_p99_us: s.send_lag_p99_us,
        }
    }
}

/// One attempt of a live run, measured around its replay.
struct Attempt {
    label: String,
    started: Instant,
    load_before: Option<f64>,
    /// The quiet check just before the replay, and the replay itself.
    quiet: Option<host::CpuUse>,
    during: Option<host::CpuUse>,
    by_process: Vec<host::ProcessCpu>,
}

/// Which run an attempt belongs to.
struct RunKey<'a> {
    id: &'a str,
    algorithm: &'a str,
    point: usize,
    repetition: u32,
    seed: u64,
    log: &'a Path,
}

/// What follows an attempt.
enum AfterAttempt {
    /// Disturbed, with reruns left: run it again.
    Rerun,
    /// Recorded in the experiment (`interrupted`: the replay was cut).
    Recorded { interrupted: bool },
}

/// Judges an attempt's noise ([`Noise::judge`]), prints its result line,
/// and either keeps it for a rerun (disturbed, `--retry-disturbed` not
/// used up) or records the run with its earlier disturbed attempts. The
/// same for local processes and for a cluster.
fn close_attempt(
    plan: &Plan,
    record: &mut ExperimentRecord,
    (lag_limit_p50_us, lag_limit_p99_us): (u64, u64),
    attempt: Attempt,
    sent: Sent,
    key: RunKey<'_>,
    earlier: &mut Vec<Noise>,
) -> AfterAttempt {
    let thresholds = record.noise_thresholds.unwrap_or_default();
    let summary = sent.figures();
    let mut noise = Noise {
        load_before: attempt.load_before,
        load_after: host::load_average(),
        quiet: attempt.quiet,
        during: attempt.during,
        by_process: attempt.by_process,
        dispatch_lag_p50_us: summary.lag_p50_us.unwrap_or(0),
        dispatch_lag_p99_us: summary.lag_p99_us,
        lag_limit_p50_us,
        lag_limit_p99_us,
        reasons: Vec::new(),
    };
    noise.judge(&thresholds);
    crate::note!(
        "{}: {} calls, {} ok, {} errors{} in {:.1} s ({} lag p99 {} us){}",
        attempt.label,
        summary.dispatched,
        summary.ok,
        summary.errors,
        if summary.interrupted {
            ", INTERRUPTED"
        } else {
            ""
        },
        attempt.started.elapsed().as_secs_f64(),
        if summary.lag_p50_us.is_some() {
            "dispatch"
        } else {
            "send"
        },
        summary.lag_p99_us,
        if noise.disturbed() {
            format!("; DISTURBED: {}", noise.reasons.join("; "))
        } else {
            String::new()
        }
    );
    let interrupted = summary.interrupted;
    if noise.disturbed() && !interrupted && earlier.len() < plan.retry_disturbed as usize {
        earlier.push(noise);
        return AfterAttempt::Rerun;
    }
    record.runs.push(AlgorithmRun {
        id: key.id.to_string(),
        algorithm: key.algorithm.to_string(),
        point: key.point,
        repetition: key.repetition,
        seed: key.seed,
        log: key.log.to_path_buf(),
        load_seed: match &sent {
            Sent::Load(l) => Some(l.seed),
            Sent::Replay(_) => None,
        },
        replay: None,
        load: None,
        des: None,
        noise: Some(noise),
        disturbed_attempts: std::mem::take(earlier),
        wall_time_s: attempt.started.elapsed().as_secs_f64(),
    });
    if let Some(run) = record.runs.last_mut() {
        match sent {
            Sent::Replay(s) => run.replay = Some(s),
            Sent::Load(s) => run.load = Some(*s),
        }
    }
    AfterAttempt::Recorded { interrupted }
}

/// What the experiment knows about a live run, for the replay to complete
/// into its log's sidecar: the replay adds the balancer's nodes (with their
/// ids) and every parameter, and records any disagreement with the
/// algorithm and seed given here.
pub(super) fn live_sidecar(
    record: &ExperimentRecord,
    point: &PointRecord,
    config: &SchedulerConfig,
) -> RunSidecar {
    let mut s = RunSidecar::new(
        "simulator experiment (live)",
        env!("CARGO_PKG_VERSION"),
        crate::des::utc_now(),
        Cluster::default(),
    );
    s.git = record.versions.git.clone();
    s.algorithm = Some(config.name().to_string());
    s.seed = Some(config.seed());
    s.scenario = Some(record.scenario.display().to_string());
    s.scenario_blake2b = record.scenario_blake2b.clone();
    s.scales = protocol::sidecar::Scales {
        time_scale: record.time_scale,
        fn_time_scale: Some(point.fn_time_scale),
        package_scale: Some(point.package_scale),
    };
    s.extra
        .insert("experiment".into(), record.name.clone().into());
    if let Some(l) = &point.label {
        s.extra.insert("point".into(), l.clone().into());
    }
    if let Ok(w) = serde_json::to_value(point.worker) {
        s.extra.insert("worker".into(), w);
    }
    s
}
