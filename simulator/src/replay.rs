//! `simulator replay`: replays a scenario in real time against a live
//! balancer and logs every response.
//!
//! Port of the HotFunctions simulator (Prev/HotFunctions, `simulator/`):
//! `GET /clear` on the balancer first, then an *open loop*: every event of the
//! scenario CSV is sent as `GET /execute?name=F` at its start time, whatever
//! is still in flight, and each response becomes one log line
//! `YYYY/MM/DD HH:MM:SS <startMs> <endMs> <function> <json>`
//! ([`protocol::LogLine`]; start/end are Unix ms around the call, the JSON is
//! the balancer's reply). A scenario with per-invocation columns
//! (`FunctionName,StartTimeMs,DurationMs[,MemoryMb]`, as `utils import`
//! writes) sends each row's shape with its call,
//! `/execute?name=F&duration_ms=12.500&memory_mb=256`
//! ([`protocol::query::CallParams`]): the balancer forwards it and a worker
//! started with that import's `--catalog` runs the call for that long
//! (at its own time scale) with that memory. A failed call is logged with an
//! [`protocol::ErrorReply`] JSON so that analyzers skip it. The default log
//! is `results/logs/YYYY-MM-DD/HH:MM:SS.log` (UTC, relative to the current
//! directory), as the original's `logs/...`.
//!
//! Beyond the original (which polled every 10 ms):
//! - a timer-driven dispatcher: a dedicated thread sleeps (futex timeout via
//!   `park_timeout`) until each precomputed send time and hands the call to
//!   the tokio runtime; the *dispatch lag* (actual send time minus scheduled
//!   time, measured when the call's task starts) is recorded in an
//!   HdrHistogram and reported as p50/p99/max;
//! - `time_scale` (2.0 replays twice as fast) and a `duration` cap in
//!   scenario time ([`schedule`]);
//! - progress (bar or plain lines, [`progress`]) and a final
//!   [`ReplaySummary`];
//! - a clean stop ([`StopHandle`]; in the CLI Ctrl-C, SIGTERM or SIGHUP,
//!   [`StopHandle::stop_on_signals`]): dispatching stops, in-flight calls
//!   get a grace period (default 5 s), the rest are cancelled and logged as
//!   errors, and the log is flushed;
//! - a truthful exit status (issue 13): failed calls are counted by cause
//!   ([`failure_cause`]: `HTTP 503`, `connection`, `timeout`, ...) in the
//!   summary, and the CLI exits non-zero when more calls failed than the
//!   failure budget allows ([`FailureBudget`], `--max-failures`, default
//!   0). A run that lost calls is not reported as a success by default,
//!   since a script chaining replay and analysis would otherwise compare
//!   algorithms on partial logs without noticing;
//! - a refusal to start when `GET /clear` failed on a node
//!   ([`clear_balancer`]): a non-2xx status is a failure, and so is a 2xx
//!   plain-text fan-out reply with an `error at <node>` line (today's
//!   balancer answers 200 whatever its nodes did, one `done at`/`error at`
//!   line per node). A replay on workers whose caches were not emptied would
//!   measure warm starts the scenario did not cause.
//!
//! Log lines are written as responses arrive and flushed at once, so a crash
//! loses nothing already written. Bad input fails before anything is sent: a
//! malformed CSV row names its file and line; an unreachable balancer is an
//! error before the replay starts.
//!
//! Beside the log, the replay writes its run description
//! `<log>.meta.json` ([`protocol::sidecar`], built in [`sidecar`]): the
//! balancer's nodes with the `WorkerNodeId` each gets in replies, its
//! algorithm, resolved parameters and seed (`GET /1/lb/scheduler`), the
//! scenario, the time scale, the version and source revision (read
//! before anything is written). It is written before the first call, so
//! a crashed replay is still described, and rewritten at the end with the
//! [`ReplaySummary`] in `extra.replay`. An existing log or sidecar is
//! never replaced without `--overwrite` ([`ReplayOptions::overwrite`]);
//! refusing touches neither.

pub mod progress;
pub mod schedule;
pub mod sidecar;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use protocol::query::CallParams;
use protocol::scenario::CallShape;
use protocol::sidecar::{sidecar_path, RunSidecar};
use protocol::{ErrorReply, LogLine, ScenarioError, ScenarioEvent};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

pub use progress::ProgressMode;
pub use schedule::{parse_duration, parse_timeout, Schedule, ScheduleError};

/// Default scenario of the CLI (the original's `data/events.csv`).
pub const DEFAULT_SCENARIO: &str = "scenarios/events.csv";

/// Why a replay could not run (or could not finish writing its log).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read scenario {path}: {source}")]
    ReadScenario {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error("bad balancer URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("balancer at {url} is unreachable (GET /clear failed: {reason}); is it running?")]
    Unreachable { url: String, reason: String },
    #[error("refusing to start: the balancer at {url} answered GET /clear with HTTP {status} (clearing failed on the balancer or on a node): {body}")]
    ClearRejected {
        url: String,
        status: u16,
        body: String,
    },
    #[error("refusing to start: GET /clear through the balancer at {url} failed on {} node(s): {}", nodes.len(), nodes.join(", "))]
    ClearFailedOnNodes { url: String, nodes: Vec<String> },
    #[error("log file {0} already exists (pass --overwrite to replace it)")]
    LogExists(PathBuf),
    #[error("run description {0} already exists (pass --overwrite to replace it and its log)")]
    SidecarExists(PathBuf),
    #[error("cannot write the run description {path}: {source}")]
    Sidecar {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write log file {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Reads and parses a scenario CSV; errors name the file and line.
pub fn load_scenario(path: &Path) -> Result<Vec<ScenarioEvent>, ReplayError> {
    let bytes = std::fs::read(path).map_err(|source| ReplayError::ReadScenario {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(protocol::scenario::parse_bytes(
        bytes,
        &path.display().to_string(),
    )?)
}

/// Options of one replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Balancer base URL, e.g. `http://127.0.0.1:8111`.
    pub balancer_url: String,
    /// Replay speed: 2.0 sends events twice as fast (default 1.0).
    pub time_scale: f64,
    /// Only events starting before this (scenario time) are sent.
    pub duration: Option<Duration>,
    /// After a stop, how long in-flight calls may still finish (default 5 s).
    pub grace: Duration,
    /// Per-call timeout (default 10 min; a call timing out is logged as an
    /// error).
    pub request_timeout: Duration,
    /// Progress display.
    pub progress: ProgressMode,
    /// Interval of plain progress lines (default 5 s).
    pub progress_interval: Duration,
    /// Prefix of progress output (e.g. the algorithm in an experiment).
    pub label: String,
    /// Replace an existing log file (and its sidecar) instead of failing.
    pub overwrite: bool,
    /// What the caller knows about the run (scales, scenario, `extra`, ...)
    /// for the log's sidecar; the replay completes it ([`sidecar`]).
    pub run: Option<RunSidecar>,
    /// The balancer's management token for the first `/clear`; `None`:
    /// `HF_MGMT_TOKEN`, if set ([`env_token`]).
    pub token: Option<String>,
}

impl ReplayOptions {
    /// Defaults for a balancer URL.
    pub fn new(balancer_url: impl Into<String>) -> Self {
        Self {
            balancer_url: balancer_url.into(),
            time_scale: 1.0,
            duration: None,
            grace: Duration::from_secs(5),
            request_timeout: Duration::from_secs(600),
            progress: ProgressMode::Auto,
            progress_interval: Duration::from_secs(5),
            label: String::new(),
            overwrite: false,
            run: None,
            token: None,
        }
    }
}

/// What a replay did.
#[derive(Debug, Clone, Serialize)]
pub struct ReplaySummary {
    pub balancer_url: String,
    pub log: PathBuf,
    pub time_scale: f64,
    /// Duration cap in scenario seconds, if any.
    pub duration_cap_s: Option<f64>,
    /// Events in the scenario.
    pub scenario_events: usize,
    /// Events left out by the duration cap.
    pub beyond_cap: usize,
    /// Calls sent.
    pub dispatched: u64,
    /// Calls answered with a balancer reply.
    pub ok: u64,
    /// Calls that failed (HTTP error, error reply, timeout, bad JSON).
    pub errors: u64,
    /// The failed calls of `errors` by cause ([`failure_cause`]), e.g.
    /// `{"HTTP 503": 12, "connection": 1}`.
    pub failures_by_cause: BTreeMap<String, u64>,
    /// In-flight calls cancelled after a stop (logged as errors too, not
    /// counted in `errors`).
    pub cancelled: u64,
    /// Scheduled calls never sent because the replay was stopped.
    pub not_dispatched: u64,
    pub interrupted: bool,
    pub wall_time_s: f64,
    /// Dispatch lag (send time - scheduled time), microseconds.
    pub dispatch_lag_p50_us: u64,
    pub dispatch_lag_p99_us: u64,
    pub dispatch_lag_max_us: u64,
    /// Response time seen by the replayer over successful calls, ms.
    pub response_p50_ms: u64,
    pub response_p99_ms: u64,
}

impl std::fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "replay {}: {} events sent to {} in {:.1} s (time scale {}{})",
            if self.interrupted {
                "INTERRUPTED"
            } else {
                "finished"
            },
            self.dispatched,
            self.balancer_url,
            self.wall_time_s,
            self.time_scale,
            match self.duration_cap_s {
                Some(d) => format!(", first {d} s of the scenario"),
                None => String::new(),
            }
        )?;
        writeln!(
            f,
            "  scenario events {}, beyond cap {}, not sent {}",
            self.scenario_events, self.beyond_cap, self.not_dispatched
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
            "  dispatch lag p50 {} us, p99 {} us, max {} us",
            self.dispatch_lag_p50_us, self.dispatch_lag_p99_us, self.dispatch_lag_max_us
        )?;
        writeln!(
            f,
            "  {}",
            response_line(self.ok, self.response_p50_ms, self.response_p99_ms)
        )?;
        write!(f, "  log {}", self.log.display())
    }
}

/// How far a stop has gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StopLevel {
    Run,
    /// Stop dispatching; let in-flight calls finish within the grace period.
    Stop,
    /// Cancel in-flight calls now.
    Cancel,
}

/// Stops a running replay from anywhere (a signal handler, a test, an
/// experiment). Cloning shares the same signal.
#[derive(Debug, Clone)]
pub struct StopHandle {
    tx: Arc<watch::Sender<StopLevel>>,
}

impl Default for StopHandle {
    fn default() -> Self {
        Self::new()
    }
}

impl StopHandle {
    pub fn new() -> Self {
        Self {
            tx: Arc::new(watch::Sender::new(StopLevel::Run)),
        }
    }

    /// Stop dispatching (in-flight calls get the grace period).
    pub fn stop(&self) {
        self.raise(StopLevel::Stop);
    }

    /// Cancel in-flight calls too.
    pub fn cancel(&self) {
        self.raise(StopLevel::Cancel);
    }

    pub fn level(&self) -> StopLevel {
        *self.tx.borrow()
    }

    fn raise(&self, level: StopLevel) {
        self.tx.send_if_modified(|l| {
            if *l < level {
                *l = level;
                true
            } else {
                false
            }
        });
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<StopLevel> {
        self.tx.subscribe()
    }

    /// Resolves once the level reaches `level`.
    pub async fn reached(&self, level: StopLevel) {
        let mut rx = self.subscribe();
        let _ = rx.wait_for(|l| *l >= level).await;
    }

    /// Spawns a task turning the first SIGINT (Ctrl-C), SIGTERM or SIGHUP
    /// into [`StopHandle::stop`] and the second into
    /// [`StopHandle::cancel`]: a service manager's or a closed terminal's
    /// stop is handled as Ctrl-C is (issue 13), so an experiment stops its
    /// children and writes its report instead of dying with them orphaned.
    /// Needs a tokio runtime. Fails if a handler cannot be installed.
    pub fn stop_on_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        let handle = self.clone();
        tokio::spawn(async move {
            let Some(name) = next_signal(&mut int, &mut term, &mut hup).await else {
                return;
            };
            crate::note!("\ninterrupted ({name}): no more calls are sent; waiting briefly for calls in flight (a second signal cancels them)");
            handle.stop();
            if let Some(name) = next_signal(&mut int, &mut term, &mut hup).await {
                crate::note!("\n{name} again: cancelling calls in flight");
                handle.cancel();
            }
        });
        Ok(())
    }
}

/// The name of the next of these signals to arrive (`None` if a stream
/// ended).
async fn next_signal(
    int: &mut tokio::signal::unix::Signal,
    term: &mut tokio::signal::unix::Signal,
    hup: &mut tokio::signal::unix::Signal,
) -> Option<&'static str> {
    tokio::select! {
        s = int.recv() => s.map(|()| "SIGINT"),
        s = term.recv() => s.map(|()| "SIGTERM"),
        s = hup.recv() => s.map(|()| "SIGHUP"),
    }
}

/// Live counters shared by the dispatcher, the calls, the writer and the
/// progress display.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) dispatched: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) ok: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) cancelled: AtomicU64,
}

/// How one call ended.
#[derive(Debug)]
enum Outcome {
    Ok,
    Failed,
    Cancelled,
}

/// One finished call, on its way to the log writer.
#[derive(Debug)]
pub(crate) struct Finished {
    function: Arc<str>,
    start_ms: i64,
    end_ms: i64,
    json: String,
    outcome: Outcome,
    /// Why a failed call failed ([`failure_cause`]).
    cause: Option<String>,
    lag: Duration,
    response: Duration,
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The default log path `results/logs/YYYY-MM-DD/HH:MM:SS.log` (UTC), with
/// a `-2`, `-3`, ... suffix if a replay already used this second.
pub fn default_log_path() -> PathBuf {
    let now = chrono::Utc::now();
    let dir = Path::new("results/logs").join(now.format("%Y-%m-%d").to_string());
    let stem = now.format("%H:%M:%S").to_string();
    let mut path = dir.join(format!("{stem}.log"));
    let mut n = 2;
    while path.exists() {
        path = dir.join(format!("{stem}-{n}.log"));
        n += 1;
    }
    path
}

pub(crate) fn normalize_url(url: &str) -> Result<String, ReplayError> {
    let trimmed = url.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed).map_err(|e| ReplayError::BadUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(ReplayError::BadUrl {
            url: url.to_string(),
            reason: "expected http://host:port".into(),
        });
    }
    Ok(trimmed.to_string())
}

/// The management token of the environment (`HF_MGMT_TOKEN`), if set.
pub fn env_token() -> Option<String> {
    std::env::var(protocol::mgmt::TOKEN_ENV)
        .ok()
        .filter(|t| !t.is_empty())
}

/// Sends `GET /clear` (the original's first step); an error if the balancer
/// cannot be reached, answers a non-2xx status (ours answers 502 with
/// per-node results when a node failed or timed out), or answers a
/// plain-text fan-out reply naming a node with `error at <node>` (the
/// original balancer, which answers 200 whatever its nodes did) or
/// `skipped at <node> (offline)` (ours, for a node it did not call).
/// Carries the management `token` when there is one: a balancer reached
/// over a network (a compose cluster's published port) asks it of
/// `/clear`.
pub async fn clear_balancer(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
) -> Result<(), ReplayError> {
    let mut request = client
        .get(format!("{base}/clear"))
        .timeout(Duration::from_secs(60));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let resp = request.send().await.map_err(|e| ReplayError::Unreachable {
        url: base.to_string(),
        reason: protocol::text::error_line(&e),
    })?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        return Err(ReplayError::ClearRejected {
            url: base.to_string(),
            status: status.as_u16(),
            body: body.trim().chars().take(300).collect(),
        });
    }
    let body = resp.bytes().await.unwrap_or_default();
    let nodes = failed_clear_nodes(&String::from_utf8_lossy(&body));
    if !nodes.is_empty() {
        return Err(ReplayError::ClearFailedOnNodes {
            url: base.to_string(),
            nodes,
        });
    }
    Ok(())
}

/// The nodes a fan-out reply of the balancer names as not cleared: its
/// plain-text reply has one `done at <url>` or `error at <url>` line per
/// node (HotFunctions' format), then `done`; our balancer also writes
/// `skipped at <url> (offline)` for a node it did not call. A skipped node
/// still holds its warm state and may come back during the run, so it
/// counts as not cleared (named with `(offline)`). At most 100 are named.
pub fn failed_clear_nodes(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("error at ")
                .map(|url| url.trim().chars().take(200).collect())
                .or_else(|| {
                    l.strip_prefix("skipped at ").map(|rest| {
                        let url = rest.trim().trim_end_matches("(offline)").trim();
                        format!("{} (offline)", url.chars().take(200).collect::<String>())
                    })
                })
        })
        .take(100)
        .collect()
}

/// How many failed calls a replay may have and still exit with status 0:
/// a count (`--max-failures 10`) or a percentage of the calls sent
/// (`--max-failures 2.5%`). The default, 0, makes any failed call an
/// error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FailureBudget {
    /// At most this many failed calls.
    Count(u64),
    /// At most this percentage (0..=100) of the calls sent.
    Percent(f64),
}

impl Default for FailureBudget {
    fn default() -> Self {
        Self::Count(0)
    }
}

impl FailureBudget {
    /// Whether `failed` failures among `sent` calls are within the budget.
    pub fn allows(self, failed: u64, sent: u64) -> bool {
        match self {
            Self::Count(n) => failed <= n,
            Self::Percent(p) => failed as f64 <= p / 100.0 * sent as f64,
        }
    }
}

impl std::fmt::Display for FailureBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Count(n) => write!(f, "{n}"),
            Self::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl std::str::FromStr for FailureBudget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("{s:?} is not a percentage (e.g. 2.5%)"))?;
            if !(0.0..=100.0).contains(&p) {
                return Err(format!("{s:?}: a percentage is between 0% and 100%"));
            }
            return Ok(Self::Percent(p));
        }
        s.parse().map(Self::Count).map_err(|_| {
            format!("{s:?} is neither a count of calls (e.g. 10) nor a percentage (e.g. 2.5%)")
        })
    }
}

/// A summary's response-time line (replay's and load's): its p50 and p99
/// over the `ok` successful calls, or that there were none (not 0 ms); a
/// p99 over too few calls to bound it says so.
pub fn response_line(ok: u64, p50_ms: u64, p99_ms: u64) -> String {
    if ok == 0 {
        "no response time: no call succeeded".to_string()
    } else {
        format!(
            "response time p50 {p50_ms} ms, p99 {p99_ms} ms (successful calls{})",
            utils::stats::p99_caveat(ok)
                .map(|c| format!("; {c}"))
                .unwrap_or_default()
        )
    }
}

/// `cause × count` pairs on one line, most frequent first.
pub fn causes_text(causes: &BTreeMap<String, u64>) -> String {
    let mut pairs: Vec<_> = causes.iter().collect();
    pairs.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    pairs
        .iter()
        .map(|(cause, n)| format!("{cause} × {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The cause of a failed call, as counted in
/// [`ReplaySummary::failures_by_cause`]: `HTTP <status>` for a non-2xx
/// reply, `error reply` for a 2xx reply carrying an error, `not JSON`,
/// `timeout`, `connection` (refused, reset, DNS) or `request` otherwise.
fn request_cause(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection"
    } else {
        "request"
    }
}

/// The cause of a reply judged a failure by `classify_reply`.
pub fn failure_cause(status: u16, body: &[u8]) -> String {
    if !(200..300).contains(&status) {
        return format!("HTTP {status}");
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(_) => "error reply".into(),
        Err(_) => "not JSON".into(),
    }
}

pub(crate) fn open_log(path: &Path, overwrite: bool) -> Result<File, ReplayError> {
    let io_err = |source| ReplayError::Log {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err)?;
    }
    let mut opts = OpenOptions::new();
    opts.write(true);
    if overwrite {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            ReplayError::LogExists(path.to_path_buf())
        } else {
            io_err(e)
        }
    })
}

/// Replays `events` against the balancer of `options`, logging to `log`.
///
/// Fails before sending anything if the options are bad, the balancer is
/// unreachable or the log cannot be created. Returns the summary also when
/// stopped through `stop` (`interrupted` is then true).
pub async fn replay(
    events: &[ScenarioEvent],
    options: &ReplayOptions,
    log: &Path,
    stop: &StopHandle,
) -> Result<ReplaySummary, ReplayError> {
    // Before anything is written: the source revision and the start.
    let git = match &options.run {
        Some(run) if run.git.is_some() => None,
        _ => crate::source_revision(),
    };
    let started_utc = sidecar::now_utc();
    let base = normalize_url(&options.balancer_url)?;
    let schedule = Schedule::build(events, options.time_scale, options.duration)?;
    let meta_path = sidecar_path(log);
    if !options.overwrite {
        if log.exists() {
            return Err(ReplayError::LogExists(log.to_path_buf()));
        }
        if meta_path.exists() {
            return Err(ReplayError::SidecarExists(meta_path));
        }
    }
    let client = reqwest::Client::builder()
        .timeout(options.request_timeout)
        .pool_idle_timeout(protocol::timeouts::CLIENT_POOL_IDLE)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| ReplayError::Client(e.to_string()))?;
    let token = options.token.clone().or_else(env_token);
    clear_balancer(&client, &base, token.as_deref()).await?;
    let description = sidecar::describe_balancer(&client, &base).await;
    if let Some(warning) = &description.warning {
        crate::note!("replay: warning: {warning}");
    }
    let mut run = sidecar::merge(
        options.run.clone(),
        started_utc,
        options.time_scale,
        &base,
        description,
    );
    if run.git.is_none() {
        run.git = git;
    }
    if !options.overwrite && meta_path.exists() {
        return Err(ReplayError::SidecarExists(meta_path));
    }
    let file = open_log(log, options.overwrite)?;
    let write_sidecar = |run: &RunSidecar| {
        sidecar::write(&meta_path, run).map_err(|source| ReplayError::Sidecar {
            path: meta_path.clone(),
            source,
        })
    };
    write_sidecar(&run)?;

    let total = schedule.calls.len() as u64;
    let counters = Arc::new(Counters::default());
    let (tx, rx) = mpsc::unbounded_channel::<Finished>();
    let log_error: Arc<Mutex<Option<std::io::Error>>> = Arc::default();

    let (progress_done_tx, progress_done_rx) = tokio::sync::oneshot::channel();
    let progress = tokio::spawn(progress::show(
        options.progress,
        options.label.clone(),
        total,
        options.progress_interval,
        counters.clone(),
        progress_done_rx,
    ));
    // On the blocking pool: a write held up by the disk (dirty-page
    // throttling on a busy machine) must not stall the runtime's workers.
    let writer = {
        let (counters, log_error, stop) = (counters.clone(), log_error.clone(), stop.clone());
        tokio::task::spawn_blocking(move || {
            write_log(rx, BufWriter::new(file), &counters, &log_error, &stop)
        })
    };

    // The dispatcher thread: sleeps until each send time, then spawns the call.
    let stop_flag = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let dispatcher = {
        let runtime = tokio::runtime::Handle::current();
        let stop_flag = stop_flag.clone();
        let counters = counters.clone();
        let url: Arc<str> = format!("{base}/execute").into();
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("replay-dispatch".into())
            .spawn(move || {
                for call in schedule.calls {
                    let due = started + call.offset;
                    loop {
                        if stop_flag.load(Ordering::Acquire) {
                            return;
                        }
                        let now = Instant::now();
                        if now >= due {
                            break;
                        }
                        std::thread::park_timeout(due - now);
                    }
                    counters.dispatched.fetch_add(1, Ordering::Relaxed);
                    runtime.spawn(make_call(
                        client.clone(),
                        execute_url(&url, &call.function, call.shape.as_ref()),
                        call.function.into(),
                        due,
                        stop.subscribe(),
                        tx.clone(),
                    ));
                }
            })
            .map_err(|e| ReplayError::Client(format!("cannot start the dispatcher: {e}")))?
    };

    // Wait for the end, or a stop (then a grace period, then cancel).
    let mut writer = writer;
    let mut interrupted = false;
    let mut histograms = None;
    tokio::select! {
        h = &mut writer => histograms = Some(h),
        _ = stop.reached(StopLevel::Stop) => {
            interrupted = true;
            stop_flag.store(true, Ordering::Release);
            dispatcher.thread().unpark();
            tokio::select! {
                h = &mut writer => histograms = Some(h),
                _ = tokio::time::sleep(options.grace) => stop.cancel(),
                _ = stop.reached(StopLevel::Cancel) => {}
            }
        }
    }
    let histograms = match histograms {
        Some(h) => h,
        None => writer.await,
    };
    let _ = dispatcher.join();
    let Written {
        lag,
        response,
        causes,
    } = histograms.unwrap_or_else(|_| Written {
        lag: new_histogram(),
        response: new_histogram(),
        causes: BTreeMap::new(),
    });
    let _ = progress_done_tx.send(());
    let _ = progress.await;

    if let Some(source) = log_error.lock().ok().and_then(|mut e| e.take()) {
        run.extra.insert(
            "replay_error".into(),
            format!("writing the log failed: {source}").into(),
        );
        let _ = write_sidecar(&run);
        return Err(ReplayError::Log {
            path: log.to_path_buf(),
            source,
        });
    }
    let dispatched = counters.dispatched.load(Ordering::Relaxed);
    let summary = ReplaySummary {
        balancer_url: base,
        log: log.to_path_buf(),
        time_scale: options.time_scale,
        duration_cap_s: options.duration.map(|d| d.as_secs_f64()),
        scenario_events: events.len(),
        beyond_cap: events.len() - total as usize,
        dispatched,
        ok: counters.ok.load(Ordering::Relaxed),
        errors: counters.errors.load(Ordering::Relaxed),
        failures_by_cause: causes,
        cancelled: counters.cancelled.load(Ordering::Relaxed),
        not_dispatched: total - dispatched,
        interrupted,
        wall_time_s: started.elapsed().as_secs_f64(),
        dispatch_lag_p50_us: lag.value_at_quantile(0.5),
        dispatch_lag_p99_us: lag.value_at_quantile(0.99),
        dispatch_lag_max_us: lag.max(),
        response_p50_ms: response.value_at_quantile(0.5),
        response_p99_ms: response.value_at_quantile(0.99),
    };
    run.extra.insert(
        "replay".into(),
        serde_json::to_value(&summary).unwrap_or_default(),
    );
    write_sidecar(&run)?;
    Ok(summary)
}

pub(crate) fn new_histogram() -> Histogram<u64> {
    // 1 us .. 1 h at 3 significant digits; saturating records never fail.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// `<base>/execute?name=F`, with the row's shape
/// (`&duration_ms=..&memory_mb=..`) when the scenario has one.
pub(crate) fn execute_url(execute: &str, function: &str, shape: Option<&CallShape>) -> String {
    let mut url = String::with_capacity(execute.len() + function.len() * 3 + 48);
    url.push_str(execute);
    url.push_str("?name=");
    protocol::query::percent_encode_into(function, &mut url);
    if let Some(shape) = shape {
        CallParams::from_shape(shape).append_to(&mut url);
    }
    url
}

/// One call: `GET <url>` (`/execute?name=F[&duration_ms=..]`), timed,
/// turned into a [`Finished`].
pub(crate) async fn make_call(
    client: reqwest::Client,
    url: String,
    function: Arc<str>,
    due: Instant,
    mut stop: watch::Receiver<StopLevel>,
    tx: mpsc::UnboundedSender<Finished>,
) -> CallEnd {
    let sent = Instant::now();
    let lag = sent.saturating_duration_since(due);
    let start_ms = unix_ms();
    let request = async {
        let resp = client.get(&url).send().await.map_err(|e| {
            (
                request_cause(&e).to_string(),
                format!("request failed: {}", protocol::text::error_line(&e)),
            )
        })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| {
            (
                request_cause(&e).to_string(),
                format!(
                    "reading the reply failed: {}",
                    protocol::text::error_line(&e)
                ),
            )
        })?;
        classify_reply(status.as_u16(), &body)
            .map_err(|m| (failure_cause(status.as_u16(), &body), m))
    };
    let result = tokio::select! {
        r = request => Some(r),
        _ = stop.wait_for(|l| *l >= StopLevel::Cancel) => None,
    };
    let end_ms = unix_ms();
    let response = sent.elapsed();
    let (outcome, json, cause, cold) = match result {
        Some(Ok((json, cold))) => (Outcome::Ok, json, None, cold),
        Some(Err((cause, message))) => (
            Outcome::Failed,
            ErrorReply::new(message).to_json(),
            Some(cause),
            false,
        ),
        None => (
            Outcome::Cancelled,
            ErrorReply::new(des::source::CANCELLED).to_json(),
            None,
            false,
        ),
    };
    let reply = match outcome {
        Outcome::Ok => des::Reply::Ok { cold },
        Outcome::Failed => des::Reply::Failed,
        Outcome::Cancelled => des::Reply::Cancelled,
    };
    let _ = tx.send(Finished {
        function,
        start_ms,
        end_ms,
        json,
        outcome,
        cause,
        lag,
        response,
    });
    CallEnd {
        reply,
        response_ms: u64::try_from(end_ms - start_ms).unwrap_or(0),
    }
}

/// How a call of [`make_call`] ended, for a caller that tallies its calls
/// (the closed loop's stages): the reply (cold from its `Meta`) and the
/// log line's end - start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallEnd {
    pub reply: des::Reply,
    pub response_ms: u64,
}

/// The JSON to log for a reply: the balancer's reply as is (on one line),
/// with whether its `Meta` reports a cold start, if it is a success; else
/// an error message.
fn classify_reply(status: u16, body: &[u8]) -> Result<(String, bool), String> {
    let text = String::from_utf8_lossy(body);
    let value: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let is_error_reply = value
        .as_ref()
        .is_some_and(|v| v.get("Error").is_some() || !v.is_object());
    if !(200..300).contains(&status) || is_error_reply {
        let detail = value
            .as_ref()
            .and_then(|v| v.get("Message"))
            .and_then(|m| m.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| text.trim().chars().take(300).collect());
        return Err(format!("HTTP {status} from balancer: {detail}"));
    }
    // Cold when its `Meta` says no warm instance served it (a reply
    // without a readable `Meta` counts as warm), from the one parse above.
    let cold = |v: &serde_json::Value| {
        v.get("Meta")
            .and_then(|m| {
                <protocol::reply::ExecutionMeta as serde::Deserialize>::deserialize(m).ok()
            })
            .is_some_and(|m| m.is_cold())
    };
    match value {
        Some(v) if text.contains('\n') || text.contains('\r') => {
            Ok((serde_json::to_string(&v).unwrap_or_default(), cold(&v)))
        }
        Some(v) => Ok((text.trim().to_string(), cold(&v))),
        None => Err(format!(
            "HTTP {status} from balancer with a reply that is not JSON: {}",
            text.trim().chars().take(300).collect::<String>()
        )),
    }
}

/// Writes each finished call as a log line and flushes, batching whatever
/// arrived together. Blocking: runs on its own thread.
pub(crate) fn write_log(
    mut rx: mpsc::UnboundedReceiver<Finished>,
    mut out: BufWriter<File>,
    counters: &Counters,
    log_error: &Mutex<Option<std::io::Error>>,
    stop: &StopHandle,
) -> Written {
    let mut lag = new_histogram();
    let mut response = new_histogram();
    let mut causes = BTreeMap::new();
    let mut failed = false;
    let mut batch = Vec::with_capacity(64);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(f) => batch.push(f),
                Err(_) => break,
            }
        }
        for mut f in batch.drain(..) {
            lag.saturating_record(f.lag.as_micros().max(1) as u64);
            match f.outcome {
                Outcome::Ok => {
                    response.saturating_record(f.response.as_millis().max(1) as u64);
                    counters.ok.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::Failed => {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    let cause = f.cause.take().unwrap_or_else(|| "unknown".into());
                    *causes.entry(cause).or_insert(0) += 1;
                }
                Outcome::Cancelled => {
                    counters.cancelled.fetch_add(1, Ordering::Relaxed);
                }
            }
            counters.completed.fetch_add(1, Ordering::Relaxed);
            if failed {
                continue;
            }
            let line = LogLine::new(unix_ms(), f.start_ms, f.end_ms, &f.function, &f.json);
            if let Err(e) = writeln!(out, "{line}") {
                failed = true;
                record_log_error(log_error, e, stop);
            }
        }
        if !failed {
            if let Err(e) = out.flush() {
                failed = true;
                record_log_error(log_error, e, stop);
            }
        }
    }
    Written {
        lag,
        response,
        causes,
    }
}

/// What the log writer gathered over the whole replay.
pub(crate) struct Written {
    pub(crate) lag: Histogram<u64>,
    pub(crate) response: Histogram<u64>,
    pub(crate) causes: BTreeMap<String, u64>,
}

fn record_log_error(slot: &Mutex<Option<std::io::Error>>, e: std::io::Error, stop: &StopHandle) {
    if let Ok(mut s) = slot.lock() {
        s.get_or_insert(e);
    }
    stop.cancel();
}

/// Arguments of `simulator replay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Balancer URL, e.g. http://127.0.0.1:8111
    pub lb_url: String,
    /// Scenario CSV (`FunctionName,StartTimeMs` rows).
    #[arg(default_value = DEFAULT_SCENARIO)]
    pub events: PathBuf,
    /// Log file [default: results/logs/YYYY-MM-DD/HH:MM:SS.log, UTC]
    pub out_log: Option<PathBuf>,
    /// Replay speed: 2.0 sends the events twice as fast, 0.5 half as fast.
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Only replay events starting before this scenario time (90s, 5m, ...).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// After Ctrl-C, how long calls in flight may still finish.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub grace: Duration,
    /// Per-call timeout (a call timing out is logged as an error).
    #[arg(long, value_parser = parse_timeout, default_value = "10m")]
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
    /// a percentage of the calls sent (2.5%). Failures are always counted
    /// by cause in the summary.
    #[arg(long, default_value = "0")]
    pub max_failures: FailureBudget,
}

/// Runs `simulator replay`.
pub fn run(args: Args) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let events = load_scenario(&args.events)?;
    let log = args.out_log.clone().unwrap_or_else(default_log_path);
    let mut options = ReplayOptions::new(args.lb_url.clone());
    options.time_scale = args.time_scale;
    options.duration = args.duration;
    options.grace = args.grace;
    options.request_timeout = args.request_timeout;
    options.progress = args.progress;
    options.overwrite = args.overwrite;
    let mut run = RunSidecar::new(
        "simulator replay",
        env!("CARGO_PKG_VERSION"),
        String::new(),
        protocol::sidecar::Cluster::default(),
    );
    run.scenario = Some(args.events.display().to_string());
    run.scenario_blake2b = utils::provenance::file_blake2b(&args.events).ok();
    options.run = Some(run);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let summary = runtime.block_on(async {
        let stop = StopHandle::new();
        stop.stop_on_signals()
            .context("cannot install the signal handlers")?;
        crate::note!(
            "replaying {} ({} events) against {} at time scale {:?}, log {}",
            args.events.display(),
            events.len(),
            options.balancer_url,
            options.time_scale,
            log.display()
        );
        anyhow::Ok(replay(&events, &options, &log, &stop).await?)
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
    if !args.max_failures.allows(summary.errors, summary.dispatched) {
        anyhow::bail!(
            "{} of {} calls failed ({}), over the failure budget (--max-failures {}); log {}",
            summary.errors,
            summary.dispatched,
            causes_text(&summary.failures_by_cause),
            args.max_failures,
            summary.log.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_response_line_says_when_its_p99_is_unbounded() {
        assert_eq!(
            response_line(0, 0, 0),
            "no response time: no call succeeded"
        );
        assert_eq!(
            response_line(100, 3, 40),
            "response time p50 3 ms, p99 40 ms (successful calls; no upper 95 % bound over 100 calls)"
        );
        assert_eq!(
            response_line(400, 3, 40),
            "response time p50 3 ms, p99 40 ms (successful calls)"
        );
    }

    #[test]
    fn a_rows_shape_travels_with_its_call() {
        assert_eq!(
            execute_url("http://lb/execute", "W 1", None),
            "http://lb/execute?name=W%201"
        );
        let shape = CallShape {
            duration_us: 12_500,
            memory_mb: Some(256),
        };
        assert_eq!(
            execute_url("http://lb/execute", "F001", Some(&shape)),
            "http://lb/execute?name=F001&duration_ms=12.500&memory_mb=256"
        );
    }

    #[test]
    fn a_failure_budget_is_a_count_or_a_percentage() {
        assert_eq!("0".parse(), Ok(FailureBudget::Count(0)));
        assert_eq!(" 12 ".parse(), Ok(FailureBudget::Count(12)));
        assert_eq!("2.5%".parse(), Ok(FailureBudget::Percent(2.5)));
        for bad in ["", "-1", "x", "101%", "-1%", "NaN%", "1.5"] {
            assert!(bad.parse::<FailureBudget>().is_err(), "{bad:?}");
        }
        assert!(FailureBudget::default().allows(0, 10));
        assert!(!FailureBudget::default().allows(1, 10));
        assert!(FailureBudget::Count(2).allows(2, 3));
        assert!(!FailureBudget::Count(2).allows(3, 3));
        assert!(FailureBudget::Percent(10.0).allows(1, 10));
        assert!(!FailureBudget::Percent(10.0).allows(2, 10));
        assert!(FailureBudget::Percent(0.0).allows(0, 0));
    }

    #[test]
    fn failed_nodes_are_read_from_the_fan_out_reply() {
        let body = "done at http://a:1\nerror at http://b:2\nerror at http://c:3\ndone\n";
        assert_eq!(failed_clear_nodes(body), ["http://b:2", "http://c:3"]);
        assert!(failed_clear_nodes("done at http://a:1\ndone\n").is_empty());
        assert_eq!(
            failed_clear_nodes("done at http://a:1\nskipped at http://d:4 (offline)\ndone\n"),
            ["http://d:4 (offline)"]
        );
        assert!(failed_clear_nodes(r#"{"Message":"cleared"}"#).is_empty());
    }

    #[test]
    fn causes_name_the_status_or_the_kind_of_failure() {
        assert_eq!(failure_cause(503, b"{}"), "HTTP 503");
        assert_eq!(failure_cause(200, br#"{"Error":"x"}"#), "error reply");
        assert_eq!(failure_cause(200, b"oops"), "not JSON");
        let causes = BTreeMap::from([("HTTP 502".to_string(), 1), ("HTTP 503".to_string(), 4)]);
        assert_eq!(causes_text(&causes), "HTTP 503 × 4, HTTP 502 × 1");
    }
}
