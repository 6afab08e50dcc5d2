//! `simulator load`: closed-loop load against a live balancer (issue 12,
//! part 3).
//!
//! The rule, after k6's virtual users (the `constant-vus` executor): `N`
//! clients run at once from the start; each sends `GET /execute?name=F`,
//! waits for the reply, optionally thinks ([`Think`]), and sends its next
//! call, until the duration has passed. So at most `N` calls are ever in
//! flight, and the offered load adapts to how fast the cluster answers
//! (where `simulator replay` is an open loop that sends at the scenario's
//! times whatever is in flight). Each call's function is drawn from a
//! [`FunctionMix`] (`uniform`, `zipf:S`, `catalog`, `catalog:FILE`,
//! `file:FILE`; see [`mix`]), each client from its own seeded streams, so
//! the sequence of functions a client calls depends on the seed and the
//! client's index only. The mix, the think times and the clients' streams
//! are pure and live in the `des` crate ([`des::mix`]), which runs the same
//! clients on its virtual clock (`simulator des --clients`,
//! [`des::source`]): live and simulated clients of the same seed call the
//! same sequence of functions.
//!
//! Everything else is `simulator replay`'s, reused rather than repeated:
//! `GET /clear` first (a refusal when a node was not cleared), the HTTP
//! call and its classification, the log writer (one line per reply in the
//! original's format, `YYYY/MM/DD HH:MM:SS <startMs> <endMs> <function>
//! <json>`, so `utils analyze` reads it unchanged), failures counted by
//! cause, the sidecar `<log>.meta.json` (the balancer's nodes, algorithm
//! and seed, plus `extra.load`: every load parameter and the load's seed,
//! written before the first call; `extra.load_summary` at the end), the
//! stop handling (Ctrl-C, SIGTERM, SIGHUP: no new calls, a grace period for
//! calls in flight, a second signal cancels them), `--overwrite`, and the
//! exit status (1 when more calls failed than `--max-failures` allows, 130
//! when interrupted).
//!
//! Stages (k6's `stages`, as the Hiku paper's load): `--clients
//! 20,50,100 --duration 100s` runs 20 clients for 100 s, then 50, then
//! 100, back to back against the same (warm) cluster; one number is one
//! stage, the behaviour above. The rules are the simulated clients' (module
//! doc of [`des::source`], [`des::Stages::active_from`]): when the count
//! rises the new clients (the next indices) start at the boundary; when it
//! falls the surplus clients (the highest indices) start no new call (a
//! call in flight completes and is logged); a client's streams depend on
//! the seed and its index only. The summary then adds `stages`: per stage,
//! calls, successes, errors, cancelled, throughput (successes over the
//! stage's duration), response mean, p50 and p99 (the log line's end -
//! start) and cold starts (from the replies' `Meta`), each call counted in
//! the stage its client started it in (by the client's monotonic clock).
//! The log is one file in the original's format, as without stages.
//!
//! Choices where k6 and the issue are silent:
//! - When the duration ends, no client starts a new call; calls in flight
//!   get `--grace` (default 30 s, k6's `gracefulStop`) to finish, then are
//!   cancelled and logged as errors (counted as `cancelled`). A client
//!   whose think time would end after the duration stops at once.
//! - Throughput is successful calls per second of wall time, from the
//!   start to the last reply (or cancellation).
//! - Bounds: 1..=[`MAX_CLIENTS`] clients (each is a tokio task and at most
//!   one open connection), a duration of at most [`MAX_DURATION`], think
//!   times of at most [`mix::MAX_THINK`].

pub use des::mix;

use std::collections::BTreeMap;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protocol::sidecar::{sidecar_path, RunSidecar};
use serde::Serialize;
use tokio::sync::mpsc;

pub use des::source::{
    ClosedLoop, ClosedLoopError, StageSummary, StageTally, Stages, MAX_CLIENTS, MAX_DURATION,
    MAX_STAGES,
};
pub use mix::{ClientRng, FunctionMix, MixError, MixSpec, Think};

use crate::replay::{
    self, causes_text, parse_duration, Counters, FailureBudget, Finished, ProgressMode,
    ReplayError, StopHandle, StopLevel, Written,
};

/// Why a load run could not run (or could not finish writing its log).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Bounds(#[from] ClosedLoopError),
    #[error(transparent)]
    Mix(#[from] MixError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
}

/// Options of one load run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Balancer base URL, e.g. `http://127.0.0.1:8111`.
    pub balancer_url: String,
    /// The closed loop run (clients, duration, think time, mix, seed,
    /// grace): the one `simulator des --clients` simulates.
    pub closed_loop: ClosedLoop,
    /// Per-call timeout (a call timing out is logged as an error).
    pub request_timeout: Duration,
    pub progress: ProgressMode,
    /// Interval of plain progress lines (default 5 s).
    pub progress_interval: Duration,
    /// Replace an existing log file (and its sidecar) instead of failing.
    pub overwrite: bool,
    /// What the caller knows about the run, for the sidecar.
    pub run: Option<RunSidecar>,
    /// The balancer's management token for the first `/clear`; `None`:
    /// `HF_MGMT_TOKEN`, if set (as replay's).
    pub token: Option<String>,
}

impl LoadOptions {
    /// Defaults (no think time, seed 1, grace 30 s) for these essentials.
    pub fn new(
        balancer_url: impl Into<String>,
        clients: impl Into<Stages>,
        duration: Duration,
        mix: FunctionMix,
        functions: impl Into<String>,
    ) -> Self {
        Self {
            balancer_url: balancer_url.into(),
            closed_loop: ClosedLoop {
                clients: clients.into(),
                duration,
                think: Think::None,
                mix: Arc::new(mix),
                functions: functions.into(),
                seed: 1,
                grace: Duration::from_secs(30),
            },
            request_timeout: Duration::from_secs(600),
            progress: ProgressMode::Auto,
            progress_interval: Duration::from_secs(5),
            overwrite: false,
            run: None,
            token: None,
        }
    }

    /// The run's parameters as recorded in the sidecar's `extra.load`:
    /// the closed loop's ([`ClosedLoop::parameters`], as `simulator des
    /// --clients` records them, with the grace period), then the timeout.
    pub fn parameters(&self) -> serde_json::Value {
        let mut value = self.closed_loop.parameters();
        value["request_timeout_s"] = self.request_timeout.as_secs_f64().into();
        value
    }
}

/// What a load run did.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    pub balancer_url: String,
    pub log: PathBuf,
    /// Clients (with stages, the most at once).
    pub clients: u32,
    /// How long clients started calls (with stages, each stage).
    pub duration_s: f64,
    pub think: String,
    pub functions: String,
    pub seed: u64,
    /// Calls sent.
    pub calls: u64,
    /// Calls answered with a balancer reply.
    pub ok: u64,
    /// Calls that failed (HTTP error, error reply, timeout, bad JSON).
    pub errors: u64,
    /// The failed calls by cause (`HTTP 503`, `connection`, ...).
    pub failures_by_cause: BTreeMap<String, u64>,
    /// Calls in flight cancelled after the grace period (logged as errors
    /// too, not counted in `errors`).
    pub cancelled: u64,
    /// Calls sent by each client, by index.
    pub calls_per_client: Vec<u64>,
    pub interrupted: bool,
    pub wall_time_s: f64,
    /// Successful calls per second of wall time.
    pub throughput_per_s: f64,
    /// Response time seen by the clients over successful calls, ms.
    pub response_p50_ms: u64,
    pub response_p99_ms: u64,
    /// Delay between a client's intended send time (its last reply plus
    /// its think time) and the send, microseconds.
    pub send_lag_p99_us: u64,
    /// Each stage's figures, when there are several (`--clients A,B,...`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageSummary>,
}

impl std::fmt::Display for LoadSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "load {}: {} calls by {} clients to {} in {:.1} s (duration {} s, think {}, functions {}, seed {})",
            if self.interrupted { "INTERRUPTED" } else { "finished" },
            self.calls,
            self.clients,
            self.balancer_url,
            self.wall_time_s,
            self.duration_s,
            self.think,
            self.functions,
            self.seed
        )?;
        writeln!(
            f,
            "  ok {}, errors {}, cancelled {}",
            self.ok, self.errors, self.cancelled
        )?;
        if !self.failures_by_cause.is_empty() {
            writeln!(
                f,
                "  FAILED calls {} by cause: {}",
                self.errors,
                causes_text(&self.failures_by_cause)
            )?;
        }
        writeln!(
            f,
            "  throughput {:.2} calls/s (successful calls over the wall time)",
            self.throughput_per_s
        )?;
        writeln!(
            f,
            "  {}",
            replay::response_line(self.ok, self.response_p50_ms, self.response_p99_ms)
        )?;
        for st in &self.stages {
            writeln!(f, "  {}", crate::des::stage_line(st))?;
        }
        write!(f, "  log {}", self.log.display())
    }
}

/// Runs the closed loop of `options` (its clients, for its duration)
/// against the balancer, logging every reply to `log`.
///
/// Fails before sending anything if the options are bad, the balancer is
/// unreachable or refuses `GET /clear`, or the log cannot be created.
/// Returns the summary also when stopped through `stop` (`interrupted`
/// is then true).
pub async fn load(
    options: &LoadOptions,
    log: &Path,
    stop: &StopHandle,
) -> Result<LoadSummary, LoadError> {
    options.closed_loop.check()?;
    let git = match &options.run {
        Some(run) if run.git.is_some() => None,
        _ => crate::source_revision(),
    };
    let started_utc = replay::sidecar::now_utc();
    let base = replay::normalize_url(&options.balancer_url)?;
    let meta_path = sidecar_path(log);
    if !options.overwrite {
        if log.exists() {
            return Err(ReplayError::LogExists(log.to_path_buf()).into());
        }
        if meta_path.exists() {
            return Err(ReplayError::SidecarExists(meta_path).into());
        }
    }
    let client = reqwest::Client::builder()
        .timeout(options.request_timeout)
        .pool_idle_timeout(protocol::timeouts::CLIENT_POOL_IDLE)
        .pool_max_idle_per_host(options.closed_loop.clients.max() as usize)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| ReplayError::Client(e.to_string()))?;
    let token = options.token.clone().or_else(replay::env_token);
    replay::clear_balancer(&client, &base, token.as_deref()).await?;
    let description = replay::sidecar::describe_balancer(&client, &base).await;
    if let Some(warning) = &description.warning {
        crate::note!("load: warning: {warning}");
    }
    let given = options.run.clone().unwrap_or_else(|| {
        RunSidecar::new(
            "simulator load",
            env!("CARGO_PKG_VERSION"),
            String::new(),
            protocol::sidecar::Cluster::default(),
        )
    });
    let mut run = replay::sidecar::merge(Some(given), started_utc, 1.0, &base, description);
    if run.git.is_none() {
        run.git = git;
    }
    if run.scenario.is_none() {
        run.scenario = Some(format!(
            "closed loop, --functions {}",
            options.closed_loop.functions
        ));
    }
    run.extra.insert("load".into(), options.parameters());
    if !options.overwrite && meta_path.exists() {
        return Err(ReplayError::SidecarExists(meta_path).into());
    }
    let file = replay::open_log(log, options.overwrite)?;
    let write_sidecar = |run: &RunSidecar| {
        replay::sidecar::write(&meta_path, run).map_err(|source| ReplayError::Sidecar {
            path: meta_path.clone(),
            source,
        })
    };
    write_sidecar(&run)?;

    let counters = Arc::new(Counters::default());
    let (tx, rx) = mpsc::unbounded_channel::<Finished>();
    let log_error: Arc<Mutex<Option<std::io::Error>>> = Arc::default();
    let writer = {
        let (counters, log_error, stop) = (counters.clone(), log_error.clone(), stop.clone());
        tokio::task::spawn_blocking(move || {
            replay::write_log(rx, BufWriter::new(file), &counters, &log_error, &stop)
        })
    };
    let started = Instant::now();
    let deadline = started + options.closed_loop.total_duration();
    let (progress_done_tx, progress_done_rx) = tokio::sync::oneshot::channel();
    let progress = tokio::spawn(show_progress(
        options.progress,
        options.closed_loop.total_duration(),
        options.progress_interval,
        counters.clone(),
        progress_done_rx,
    ));

    let url: Arc<str> = format!("{base}/execute").into();
    let names: Arc<[Arc<str>]> = options
        .closed_loop
        .mix
        .names()
        .iter()
        .map(|n| Arc::from(n.as_str()))
        .collect();
    let stages = Arc::new(options.closed_loop.clients.clone());
    let tally = Arc::new(Mutex::new(StageTally::new(stages.len())));
    let mut clients = tokio::task::JoinSet::new();
    for index in 0..stages.max() {
        clients.spawn(run_client(Client {
            index,
            rng: ClientRng::new(options.closed_loop.seed, index),
            mix: options.closed_loop.mix.clone(),
            names: names.clone(),
            think: options.closed_loop.think,
            started,
            deadline,
            stages: stages.clone(),
            stage: options.closed_loop.duration,
            tally: tally.clone(),
            http: client.clone(),
            url: url.clone(),
            stop: stop.clone(),
            counters: counters.clone(),
            tx: tx.clone(),
        }));
    }
    drop(tx);

    // Until the duration ends (or a stop), then a grace period for the
    // calls in flight, then cancel them.
    let mut calls_per_client = vec![0u64; stages.max() as usize];
    let mut interrupted = false;
    let mut all_done = false;
    tokio::select! {
        _ = join_clients(&mut clients, &mut calls_per_client) => all_done = true,
        _ = stop.reached(StopLevel::Stop) => interrupted = true,
        _ = tokio::time::sleep_until(deadline.into()) => {}
    }
    if !all_done {
        tokio::select! {
            _ = join_clients(&mut clients, &mut calls_per_client) => all_done = true,
            _ = tokio::time::sleep(options.closed_loop.grace) => stop.cancel(),
            _ = stop.reached(StopLevel::Cancel) => {}
        }
        if !all_done {
            join_clients(&mut clients, &mut calls_per_client).await;
        }
    }
    let wall_time_s = started.elapsed().as_secs_f64();
    let Written {
        lag,
        response,
        causes,
    } = writer.await.unwrap_or_else(|_| Written {
        lag: replay::new_histogram(),
        response: replay::new_histogram(),
        causes: BTreeMap::new(),
    });
    let _ = progress_done_tx.send(());
    let _ = progress.await;

    if let Some(source) = log_error.lock().ok().and_then(|mut e| e.take()) {
        run.extra.insert(
            "load_error".into(),
            format!("writing the log failed: {source}").into(),
        );
        let _ = write_sidecar(&run);
        return Err(ReplayError::Log {
            path: log.to_path_buf(),
            source,
        }
        .into());
    }
    let ok = counters.ok.load(Ordering::Relaxed);
    let stage_summaries = if stages.is_single() {
        Vec::new()
    } else {
        let tally = tally.lock().unwrap_or_else(|e| e.into_inner());
        tally.summaries(&stages, options.closed_loop.duration)
    };
    let summary = LoadSummary {
        balancer_url: base,
        log: log.to_path_buf(),
        clients: stages.max(),
        duration_s: options.closed_loop.duration.as_secs_f64(),
        think: options.closed_loop.think.to_string(),
        functions: options.closed_loop.functions.clone(),
        seed: options.closed_loop.seed,
        calls: counters.dispatched.load(Ordering::Relaxed),
        ok,
        errors: counters.errors.load(Ordering::Relaxed),
        failures_by_cause: causes,
        cancelled: counters.cancelled.load(Ordering::Relaxed),
        calls_per_client,
        interrupted,
        wall_time_s,
        throughput_per_s: if wall_time_s > 0.0 {
            ok as f64 / wall_time_s
        } else {
            0.0
        },
        response_p50_ms: response.value_at_quantile(0.5),
        response_p99_ms: response.value_at_quantile(0.99),
        send_lag_p99_us: lag.value_at_quantile(0.99),
        stages: stage_summaries,
    };
    run.extra.insert(
        "load_summary".into(),
        serde_json::to_value(&summary).unwrap_or_default(),
    );
    write_sidecar(&run)?;
    Ok(summary)
}

/// Waits for the clients still running, recording each one's call count.
async fn join_clients(clients: &mut tokio::task::JoinSet<(u32, u64)>, calls: &mut [u64]) {
    while let Some(joined) = clients.join_next().await {
        if let Ok((index, n)) = joined {
            calls[index as usize] = n;
        }
    }
}

/// One virtual client's state.
struct Client {
    index: u32,
    rng: ClientRng,
    mix: Arc<FunctionMix>,
    names: Arc<[Arc<str>]>,
    think: Think,
    /// The run's start: stage `i` begins at `started + i * stage`.
    started: Instant,
    /// The end of the last stage.
    deadline: Instant,
    stages: Arc<Stages>,
    /// One stage's length.
    stage: Duration,
    tally: Arc<Mutex<StageTally>>,
    http: reqwest::Client,
    url: Arc<str>,
    stop: StopHandle,
    counters: Arc<Counters>,
    tx: mpsc::UnboundedSender<Finished>,
}

/// The closed loop: call, wait for the reply, think, call again, in the
/// stages the client is active in ([`Stages::active_from`]), until the
/// deadline or a stop. Returns the client's index and its calls.
async fn run_client(mut c: Client) -> (u32, u64) {
    let stage_us = u64::try_from(c.stage.as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    let offset_us = |t: Instant| {
        u64::try_from(t.saturating_duration_since(c.started).as_micros()).unwrap_or(u64::MAX)
    };
    let mut calls = 0;
    let mut due = c.started;
    // The client's next send: when it is due, or the start of its next
    // stage if it is not active then (none: the client is done).
    while let Some(at) = c.stages.active_from(c.index, offset_us(due), stage_us) {
        due = c.started + Duration::from_micros(at);
        if due > Instant::now() {
            tokio::select! {
                _ = tokio::time::sleep_until(due.into()) => {}
                _ = c.stop.reached(StopLevel::Stop) => break,
            }
        }
        let now = Instant::now();
        if c.stop.level() != StopLevel::Run || now >= c.deadline {
            break;
        }
        let now_us = offset_us(now);
        if c.stages.active_from(c.index, now_us, stage_us) != Some(now_us) {
            due = now; // late into a stage the client is not active in
            continue;
        }
        let stage = c.stages.stage_at(now_us, stage_us);
        c.tally
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sent(stage);
        let function = c.names[c.mix.pick(&mut c.rng.choices)].clone();
        c.counters.dispatched.fetch_add(1, Ordering::Relaxed);
        let end = replay::make_call(
            c.http.clone(),
            replay::execute_url(&c.url, &function, None),
            function,
            due,
            c.stop.subscribe(),
            c.tx.clone(),
        )
        .await;
        c.tally
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ended(stage, end.reply, end.response_ms);
        calls += 1;
        let pause = c.think.draw(&mut c.rng.think);
        due = Instant::now() + pause;
    }
    (c.index, calls)
}

/// Progress of a running load: a bar over the duration when stderr is a
/// terminal, plain lines otherwise ([`ProgressMode`], as replay's).
async fn show_progress(
    mode: ProgressMode,
    duration: Duration,
    line_interval: Duration,
    counters: Arc<Counters>,
    done: tokio::sync::oneshot::Receiver<()>,
) {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    let started = Instant::now();
    let status = |c: &Counters| {
        let sent = c.dispatched.load(Ordering::Relaxed);
        let completed = c.completed.load(Ordering::Relaxed);
        let ok = c.ok.load(Ordering::Relaxed);
        let elapsed = started.elapsed().as_secs_f64().max(1e-3);
        format!(
            "{completed} calls done, in flight {}, errors {}, {:.1} calls/s",
            sent.saturating_sub(completed),
            c.errors.load(Ordering::Relaxed),
            ok as f64 / elapsed
        )
    };
    tokio::pin!(done);
    match mode.resolve() {
        ProgressMode::Off | ProgressMode::Auto => {
            let _ = done.await;
        }
        ProgressMode::Bar => {
            let total_s = duration.as_secs().max(1);
            let bar = ProgressBar::with_draw_target(Some(total_s), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("[{elapsed_precise}] {wide_bar} {pos}/{len} s, {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = &mut done => break,
                    _ = tick.tick() => {
                        bar.set_position(started.elapsed().as_secs().min(total_s));
                        bar.set_message(status(&counters));
                    }
                }
            }
            bar.finish_and_clear();
            crate::note!(
                "{} in {:.1} s",
                status(&counters),
                started.elapsed().as_secs_f64()
            );
        }
        ProgressMode::Lines => {
            let mut tick = tokio::time::interval(line_interval);
            tick.tick().await; // the first tick is immediate
            loop {
                tokio::select! {
                    _ = &mut done => break,
                    _ = tick.tick() => crate::note!(
                        "{:>6.1}s/{}s: {}",
                        started.elapsed().as_secs_f64(),
                        duration.as_secs_f64(),
                        status(&counters)
                    ),
                }
            }
        }
    }
}

/// Arguments of `simulator load`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Balancer URL, e.g. http://127.0.0.1:8111
    #[arg(long)]
    pub balancer: String,
    /// Virtual clients, each with at most one call in flight (1..=10000);
    /// or stages, e.g. 20,50,100: 20 clients for --duration, then 50, then
    /// 100, back to back (at most 32 stages).
    #[arg(long)]
    pub clients: String,
    /// How long clients start new calls, per stage (90s, 5m, ...; all
    /// stages at most 1 day).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Duration,
    #[command(flatten)]
    pub mix: MixArgs,
    /// Seed of the clients' function choices and think times.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Log file [default: results/logs/YYYY-MM-DD/HH:MM:SS.log, UTC]
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// After the duration or Ctrl-C, how long calls in flight may finish.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub grace: Duration,
    /// Per-call timeout (a call timing out is logged as an error).
    #[arg(long, value_parser = crate::replay::parse_timeout, default_value = "10m")]
    pub request_timeout: Duration,
    /// Progress display.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Replace the log file and its sidecar (`<log>.meta.json`) if they exist.
    #[arg(long)]
    pub overwrite: bool,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    pub summary_json: Option<PathBuf>,
    /// Failed calls allowed before the exit status is 1: a count (10) or
    /// a percentage of the calls sent (2.5%).
    #[arg(long, default_value = "0")]
    pub max_failures: FailureBudget,
}

/// The think-time and function-mix options of a closed loop, shared by
/// `simulator load` and `simulator des --clients` (both have `--clients`,
/// which these options require).
#[derive(Debug, Clone, clap::Args)]
pub struct MixArgs {
    /// Constant think time between a reply and the client's next call, ms.
    #[arg(long, conflicts_with = "think", requires = "clients")]
    pub think_ms: Option<f64>,
    /// Think time: none, MS or const:MS (constant), exp:MS (exponential
    /// with mean MS), uniform:MIN:MAX; milliseconds, at most one hour.
    #[arg(long, default_value = "none", requires = "clients")]
    pub think: Think,
    /// Function popularity: uniform, zipf:S (the k-th name weighted 1/k^S),
    /// catalog (the sample catalog's rates), catalog:FILE (a catalog file's
    /// rate_per_s, e.g. from `utils import`), file:FILE (FunctionName,Weight
    /// rows).
    #[arg(long, default_value = "uniform", requires = "clients")]
    pub functions: MixSpec,
    /// Names for uniform and zipf, most popular first (default: the 30
    /// sample functions W1..D8).
    #[arg(long, requires = "clients")]
    pub names: Option<String>,
}

impl Default for MixArgs {
    /// The flags' defaults: no think time, uniform over the samples.
    fn default() -> Self {
        Self {
            think_ms: None,
            think: Think::None,
            functions: MixSpec::Uniform,
            names: None,
        }
    }
}

impl MixArgs {
    /// The think time (`--think-ms` or `--think`) and the mix (reads its
    /// file, if any).
    pub fn resolve(&self) -> Result<(Think, FunctionMix), MixError> {
        let think = match self.think_ms {
            Some(ms) => Think::constant_ms(ms)?,
            None => self.think,
        };
        let mix = FunctionMix::from_spec(&self.functions, self.names.as_deref())?;
        Ok((think, mix))
    }
}

/// Runs `simulator load`.
pub fn run(args: Args) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let clients = Stages::parse(&args.clients).map_err(LoadError::from)?;
    des::source::check_duration(args.duration).map_err(LoadError::from)?;
    des::source::check_total(clients.len(), args.duration).map_err(LoadError::from)?;
    let (think, mix) = args.mix.resolve()?;
    let log = args.log.clone().unwrap_or_else(replay::default_log_path);
    let mut options = LoadOptions::new(
        args.balancer.clone(),
        clients,
        args.duration,
        mix,
        args.mix.functions.to_string(),
    );
    options.closed_loop.think = think;
    options.closed_loop.seed = args.seed;
    options.closed_loop.grace = args.grace;
    options.request_timeout = args.request_timeout;
    options.progress = args.progress;
    options.overwrite = args.overwrite;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let summary = runtime.block_on(async {
        let stop = StopHandle::new();
        stop.stop_on_signals()
            .context("cannot install the signal handlers")?;
        crate::note!(
            "load: {} clients for {:.0} s{} against {} (functions {} over {} names, think {}, seed {}), log {}",
            options.closed_loop.clients,
            options.closed_loop.duration.as_secs_f64(),
            if options.closed_loop.clients.is_single() { "" } else { " each" },
            options.balancer_url,
            options.closed_loop.functions,
            options.closed_loop.mix.len(),
            options.closed_loop.think,
            options.closed_loop.seed,
            log.display()
        );
        anyhow::Ok(load(&options, &log, &stop).await?)
    })?;
    crate::say!("{summary}");
    if let Some(path) = &args.summary_json {
        let json = serde_json::to_string_pretty(&summary)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if summary.interrupted {
        std::process::exit(130);
    }
    if !args.max_failures.allows(summary.errors, summary.calls) {
        anyhow::bail!(
            "{} of {} calls failed ({}), over the failure budget (--max-failures {}); log {}",
            summary.errors,
            summary.calls,
            causes_text(&summary.failures_by_cause),
            args.max_failures,
            summary.log.display()
        );
    }
    Ok(())
}
