//! SlimFaas's routes on the balancer (github.com/SlimPlanet/SlimFaas):
//! synchronous and asynchronous calls, a durable queue, retries, a cap on
//! parallel calls per function, and a status API. The rules (the cap,
//! arrival order, synchronous calls first, the retry schedule) are the pure
//! [`policy::admission_queue`]; this module is their I/O edge.
//!
//! Routes (a function is one of the 30 sample functions, one named in
//! the settings file, or a user function the balancer's store knows; any
//! other is a 404 JSON error):
//! - `ANY /function/<fn>/<path...>`: a synchronous call. It waits for a
//!   slot under the function's cap (at most `wait_s`, then 503), then goes
//!   through the balancer's scheduler and dispatch path: a sample
//!   function's as `GET /execute?name=<fn>` (with the query's call shape,
//!   as `/execute`), the reply the worker's with `LoadBalancingInfo`; a
//!   user function's passed through as `/invoke/<fn>/<path...>` passes it
//!   ([`user`]), the reply the function's status, headers and body.
//!   Retried on 500, 502, 503 and time-outs only when the function is safe
//!   to repeat.
//! - `ANY /async-function/<fn>/<path...>`: stored in the queue (SQLite,
//!   [`store`]: method, path, query, headers and body, to be replayed),
//!   then `202 {"id": "<id>", "status_url": "/async-calls/<id>"}` (header
//!   `Location` too); a 429 JSON error, nothing stored, when the
//!   function's `max_queued` or the balancer's `--queue-max` calls are
//!   already queued or running; a 507, nothing stored, when the database
//!   is at `--queue-max-mb` or its disk is full (`StoreTrouble` for the
//!   calls already stored). The drain task runs it under the cap,
//!   after any waiting synchronous call of that function, retrying per the
//!   function's `retry_delays_s`.
//! - `GET /async-calls/<id>`: the call's state (`queued`, `running`,
//!   `done`, `failed`), attempts, and once finished its status and result
//!   (kept for the retention time, then 404 like an unknown id).
//! - `GET /status-functions`, `GET /status-function/<fn>`: per function its
//!   name, calls in flight, waiting (sync, async), stored by state, its
//!   settings, and its `instances`: `ready` and `starting` summed over the
//!   online workers (their `GET /instances`), `requested` (what the
//!   balancer asked for last: a wake's number or the minimum kept, 0 once
//!   scaled to zero, at least 1 after a call; null before any; the
//!   workers' readings: `instances`), `scale_to_zero` (the rule's
//!   state: `busy`, `idle`, `kept_by_min_instances`, `scaling_to_zero`,
//!   `at_zero`, or `untracked` before any call or wake) and
//!   `workers_unanswered` (online workers that did not report).
//! - `GET|PUT /function-settings/<fn>`: a function's settings (PUT: a
//!   management route, a JSON object of [`FunctionSettings`]; not written
//!   back to the file).
//! - `/wake-function/<fn>`: 204 once the workers were asked to start
//!   max(`min_instances`, `instances_at_start`, 1) instances of it, on
//!   the nodes the scheduler would pick for as many calls (each selection
//!   undone at once, as an unusable choice is), each through its
//!   `/scale?name=<fn>&instances=<k>`; the instances come up in the
//!   background (see `/status-function/<fn>`). 502 JSON naming the
//!   workers that failed; 503 when no node is online.
//!
//! # Scale to zero
//! The rule is [`policy::scale_to_zero`]: a function idle (no call in
//! flight, waiting or stored `queued`/`running`) for `idle_before_zero_s`
//! since its last call ended (or its wake) has its instances removed on
//! every online worker (`/scale?name=<fn>&instances=0`: idle instances at
//! once, busy ones when their calls end; images stay), unless its
//! `min_instances` > 0. A task (`scaling::scale_to_zero`) applies it every
//! [`SCALE_TICK`]; a worker that fails is asked again after
//! [`SCALE_RETRY`]. The next call is a cold start: the worker's reply
//! says so in its `Meta` (`UsingExistingRestContainer` and
//! `UsingPooledContainer` false), and the balancer logs
//! `first call since scale to zero`. What is modelled: the calls of these
//! routes and of `/execute` and `/invoke/<fn>` (`direct`: a call
//! arrives, ends; a wake) and the instances the workers' node models own
//! (REST, keep-alive, pooled; a user function's warm instance).
//! `min_instances` is a floor for the rule and for wakes, and a target
//! the balancer keeps up ([`scaling`]: the missing instances are started
//! at its start and after a worker restarts or comes back online). The
//! tasks and the wake are in [`scaling`].
//!
//! # What "exactly once" covers
//! An accepted call (202) is committed before the reply. Each attempt is
//! written `running` before it is sent, and its outcome after the reply.
//! - A call that had not been sent when the balancer died (`kill -9`) runs
//!   exactly once after the restart (unless its retries run out).
//! - A call whose reply was recorded is never sent again.
//! - An attempt that ended with 500, 502, 503 or a time-out is retried:
//!   the function ran (or may have), and runs again; that is the retry
//!   rule, not a duplicate.
//! - An attempt in flight when the balancer died, or whose worker died
//!   mid-call (connection closed or reset before the reply), may or may not
//!   have run: it is repeated only when the function is safe to repeat
//!   (then at least once), otherwise it is `failed` with a message saying
//!   so (then at most once).
//!
pub(crate) mod direct;
pub(crate) mod instances;
pub mod scaling;
pub mod settings;
pub mod store;
pub mod user;

use std::collections::HashSet;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use policy::admission_queue::{
    retry_decision, Admission, AdmissionQueue, AttemptOutcome, CallKind, RetryDecision,
};
use policy::scale_to_zero::{decide, ScaleToZero};
use tokio::sync::{mpsc, oneshot, Notify};

pub use settings::{FunctionSettings, SettingsError, SettingsFile};
use store::Store;

use crate::error::BalancerError;
use crate::state::Shared;

/// Largest request body of a call (synchronous or asynchronous).
pub const MAX_CALL_BODY: usize = 1024 * 1024;
/// How long a call that found no node waits before it tries again.
const NOT_DISPATCHED_POLL: Duration = Duration::from_millis(500);
/// Longest wait of the drain task between two scans of the store.
const SCAN_EVERY: Duration = Duration::from_secs(1);
/// Rows read per page of a scan.
const SCAN_PAGE: u32 = 512;
/// First wait after a failed write to the store ([`StoreTrouble`]).
const STORE_RETRY_MIN: Duration = Duration::from_millis(100);
/// Longest wait between two tries of a failing store.
const STORE_RETRY_MAX: Duration = Duration::from_secs(5);
/// How often a store that keeps failing is reported in the log.
const STORE_REPORT_EVERY: Duration = Duration::from_secs(30);

/// The store's writes failing in a row (a full disk, or the database at
/// its bound). Without it, a call whose state cannot be written was read
/// again at once, failed again, and the balancer spun a core and wrote
/// thousands of log lines a second. Now the drain reads the store again
/// only after a wait that doubles from [`STORE_RETRY_MIN`] to
/// [`STORE_RETRY_MAX`]; the outcome of a call that ran is kept and its
/// write retried on the same schedule (never lost, never run twice); the
/// log says when the trouble starts, every [`STORE_REPORT_EVERY`] while
/// it lasts, and when it ends.
#[derive(Debug, Default)]
pub(crate) struct StoreTrouble {
    failures: u64,
    delay: Duration,
    until: Option<Instant>,
    reported: Option<Instant>,
}

impl StoreTrouble {
    /// Notes a failed write at `now`; returns how long to wait before the
    /// store is tried again, and whether to report it now.
    fn failed(&mut self, now: Instant) -> (Duration, bool) {
        self.failures += 1;
        self.delay = (self.delay * 2).clamp(STORE_RETRY_MIN, STORE_RETRY_MAX);
        self.until = Some(now + self.delay);
        let report = self
            .reported
            .is_none_or(|at| now.saturating_duration_since(at) >= STORE_REPORT_EVERY);
        if report {
            self.reported = Some(now);
        }
        (self.delay, report)
    }

    /// Notes a write that worked; returns the failures before it, if any.
    fn worked(&mut self) -> Option<u64> {
        let failures = self.failures;
        *self = Self::default();
        (failures > 0).then_some(failures)
    }

    /// How long the store is still left alone at `now`.
    fn wait(&self, now: Instant) -> Option<Duration> {
        self.until
            .map(|until| until.saturating_duration_since(now))
            .filter(|d| !d.is_zero())
    }
}

/// How often the scale-to-zero task looks at every tracked function.
pub const SCALE_TICK: Duration = Duration::from_millis(250);
/// How long a function whose scale to zero failed on a worker waits
/// before it is tried again.
pub const SCALE_RETRY: Duration = Duration::from_secs(5);

/// The queue's configuration (part of [`crate::BalancerConfig`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// The SQLite file of the queue (None: in memory, lost on exit).
    pub db: Option<PathBuf>,
    /// The per-function settings file.
    pub settings: Option<PathBuf>,
    /// How long a finished call's result is kept, in s (default 3600).
    pub retention_s: u64,
    /// Most calls queued or running in all (None: no bound; each
    /// function's own is its `max_queued`); over it an asynchronous call
    /// is refused with a 429 and not stored.
    pub max_queued: Option<u64>,
    /// The most the database may grow to, in MB (10^6 bytes; None: the
    /// disk's room). Past it, or on a full disk, an asynchronous call is
    /// refused with a 507 and the drain backs off (`StoreTrouble`).
    pub max_mb: Option<f64>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            db: None,
            settings: None,
            retention_s: 3600,
            max_queued: None,
            max_mb: None,
        }
    }
}

/// Why the queue could not start.
#[derive(Debug, thiserror::Error)]
pub enum QueueStartError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("{path}: {source}")]
    Store {
        path: String,
        source: store::StoreError,
    },
}

/// A failed request on a SlimFaas route: its status and message, as
/// `{"Error": true, "Message": ...}`.
#[derive(Debug, thiserror::Error)]
pub enum SlimError {
    #[error("unknown function {0:?}")]
    UnknownFunction(String),
    #[error("unknown call id {0:?}")]
    UnknownCall(String),
    #[error("request body larger than {MAX_CALL_BODY} bytes")]
    BodyTooLarge,
    #[error("bad request body: {0}")]
    BadBody(String),
    #[error("no slot for {function} within {waited_s} s ({max_parallel} calls in flight at most)")]
    NoSlot {
        function: String,
        waited_s: f64,
        max_parallel: u32,
    },
    #[error("{function}: no reply within its time-out of {timeout_s} s")]
    TimedOut { function: String, timeout_s: f64 },
    #[error("the queue's store failed: {0}")]
    Store(#[from] store::StoreError),
    #[error("no online node to wake {0} on")]
    NoNode(String),
    #[error("waking {function}: {failures}")]
    WakeFailed { function: String, failures: String },
    #[error("method {0} is not allowed here")]
    Method(String),
    #[error("{0}")]
    RateLimited(String),
    #[error("the queue is full: {0}")]
    QueueFull(String),
    #[error("request headers larger than {} bytes", user::MAX_CALL_HEADERS)]
    HeadersTooLarge,
}

impl ResponseError for SlimError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::UnknownFunction(_) | Self::UnknownCall(_) => StatusCode::NOT_FOUND,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BadBody(_) => StatusCode::BAD_REQUEST,
            Self::NoSlot { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::TimedOut { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Store(e) if e.is_full() => StatusCode::INSUFFICIENT_STORAGE,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::NoNode(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::WakeFailed { .. } => StatusCode::BAD_GATEWAY,
            Self::Method(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::RateLimited(_) | Self::QueueFull(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code())
            .content_type("application/json")
            .body(protocol::ErrorReply::new(self.to_string()).to_json())
    }
}

/// A SlimFaas route, parsed from the method and path.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Call { function: String, kind: CallKind },
    AsyncCall(String),
    StatusAll,
    Status(String),
    Wake(String),
    Settings(String),
}

impl Route {
    /// The route of `path`, or None for a path that is not SlimFaas's.
    pub fn parse(path: &str) -> Option<Self> {
        let rest = path.strip_prefix('/')?;
        let (head, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let name = || tail.split('/').next().unwrap_or("").to_string();
        Some(match head {
            "function" => Route::Call {
                function: name(),
                kind: CallKind::Sync,
            },
            "async-function" => Route::Call {
                function: name(),
                kind: CallKind::Async,
            },
            "async-calls" => Route::AsyncCall(tail.to_string()),
            "status-functions" if tail.is_empty() => Route::StatusAll,
            "status-function" => Route::Status(name()),
            "wake-function" => Route::Wake(name()),
            "function-settings" => Route::Settings(name()),
            _ => return None,
        })
    }

    /// Whether the route changes the balancer's configuration (checked as
    /// a management route).
    pub fn is_management(&self, method: &Method) -> bool {
        matches!(self, Route::Settings(_)) && method != Method::GET
    }
}

/// A waiting call: a synchronous caller's channel, or a stored call's id.
#[derive(Debug)]
enum Waiter {
    Sync(oneshot::Sender<Slot>),
    Async(i64),
}

/// A slot under a function's cap; released (and handed to the next
/// waiting call) when dropped.
#[derive(Debug)]
pub struct Slot {
    queue: Arc<Queue>,
    function: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let next = self.queue.admission().finished(&self.function);
        let slot = || Slot {
            queue: self.queue.clone(),
            function: self.function.clone(),
        };
        match next {
            None => {}
            // A caller that gave up drops the slot it is sent: released again.
            Some(Waiter::Sync(tx)) => drop(tx.send(slot())),
            Some(Waiter::Async(id)) => drop(self.queue.launch.send((id, slot()))),
        }
    }
}

/// Stored calls given a slot, for the drain task to run.
pub type Launched = mpsc::UnboundedReceiver<(i64, Slot)>;

/// The queue: settings, admission state and store, shared by every
/// server thread and the drain task.
#[derive(Debug)]
pub struct Queue {
    settings: RwLock<SettingsFile>,
    admission: Mutex<AdmissionQueue<Waiter>>,
    store: Mutex<Store>,
    /// Stored calls in the admission queue or running (not to be read again).
    claimed: Mutex<HashSet<i64>>,
    launch: mpsc::UnboundedSender<(i64, Slot)>,
    scan: Notify,
    retention: Duration,
    accepted: AtomicU64,
    /// The scale-to-zero rule's state ([`policy::scale_to_zero`]).
    activity: Mutex<ScaleToZero>,
    /// Calls in flight through `/execute` and `/invoke` ([`direct`]).
    direct: direct::DirectCalls,
    /// The workers' instances, last read ([`instances`]).
    pub(crate) instances: instances::InstancesCache,
    /// [`QueueConfig::max_queued`].
    max_queued_total: Option<u64>,
    /// Writes to the store failing in a row ([`StoreTrouble`]).
    trouble: Mutex<StoreTrouble>,
}

/// Wall-clock ms since the Unix epoch (the store's times outlive the
/// process).
#[allow(clippy::disallowed_methods)] // the edge reads the clock
fn wall_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Queue {
    /// Opens the store and reads the settings; the calls that were running
    /// when the balancer stopped are requeued or failed (module doc).
    pub fn open(config: &QueueConfig) -> Result<(Arc<Self>, Launched), QueueStartError> {
        let settings = match &config.settings {
            Some(path) => SettingsFile::load(path)?,
            None => SettingsFile::default(),
        };
        let store_error = |source| QueueStartError::Store {
            path: config
                .db
                .as_ref()
                .map_or_else(|| "(in memory)".into(), |p| p.display().to_string()),
            source,
        };
        // MB to bytes; the flag's parser keeps it finite and positive.
        let max_bytes = config.max_mb.map(|mb| (mb * 1e6) as u64);
        let store = Store::open(config.db.as_deref(), max_bytes).map_err(store_error)?;
        let now = wall_ms();
        for call in store.interrupted().map_err(store_error)? {
            let (requeued, result) = if settings.get(&call.function).safe_to_repeat(&call.function)
            {
                let note = "interrupted by a balancer restart; sent again (safe to repeat)";
                (true, store.requeue(call.id, now, false, Some(note)))
            } else {
                let note = "interrupted by a balancer restart with this call in flight; not \
                            sent again (the function is not declared safe to repeat)";
                (
                    false,
                    store.finish(call.id, "failed", None, None, Some(note), now),
                )
            };
            result.map_err(store_error)?;
            tracing::warn!(
                id = call.id,
                function = call.function,
                requeued,
                "asynchronous call interrupted by a restart"
            );
        }
        let mut admission = AdmissionQueue::new(settings.defaults.max_parallel);
        for (function, s) in &settings.functions {
            admission.set_max_parallel(function, s.max_parallel);
        }
        let (launch, launched) = mpsc::unbounded_channel();
        let queue = Arc::new(Self {
            settings: RwLock::new(settings),
            admission: Mutex::new(admission),
            store: Mutex::new(store),
            claimed: Mutex::new(HashSet::new()),
            launch,
            scan: Notify::new(),
            retention: Duration::from_secs(config.retention_s),
            accepted: AtomicU64::new(0),
            activity: Mutex::new(ScaleToZero::new()),
            direct: direct::DirectCalls::default(),
            instances: instances::InstancesCache::default(),
            max_queued_total: config.max_queued,
            trouble: Mutex::new(StoreTrouble::default()),
        });
        Ok((queue, launched))
    }

    fn admission(&self) -> MutexGuard<'_, AdmissionQueue<Waiter>> {
        lock(&self.admission)
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    /// Notes a failed write to the store ([`StoreTrouble`]); returns how
    /// long to leave the store alone.
    #[allow(clippy::disallowed_methods)] // the edge reads the clock
    fn store_failed(&self, what: &str, id: i64, e: &store::StoreError) -> Duration {
        let (wait, report) = lock(&self.trouble).failed(Instant::now());
        if report {
            tracing::error!(
                id,
                error = %e,
                retry_in_ms = wait.as_millis() as u64,
                "asynchronous calls: {what} failed; the queue's store is tried again after a wait (calls already run keep their outcome until it is written)"
            );
        }
        wait
    }

    /// Notes a write to the store that worked.
    fn store_worked(&self) {
        if let Some(failures) = lock(&self.trouble).worked() {
            tracing::info!(
                failures,
                "asynchronous calls: the queue's store works again"
            );
        }
    }

    /// How long the store is still left alone after failures.
    #[allow(clippy::disallowed_methods)] // the edge reads the clock
    fn store_wait(&self) -> Option<Duration> {
        lock(&self.trouble).wait(Instant::now())
    }

    fn activity(&self) -> MutexGuard<'_, ScaleToZero> {
        lock(&self.activity)
    }

    /// A call of `function` arrives (for the scale-to-zero rule); the
    /// first since a scale to zero is logged: it is a cold start.
    fn call_arrived(&self, function: &str, now: policy::Time) {
        if self.activity().call_arrived(function, now) {
            tracing::info!(
                function,
                "first call since scale to zero: a cold start (no instance on any worker)"
            );
        }
    }

    /// Calls of each function in flight, waiting, or stored `queued` or
    /// `running` (what holds it from scaling to zero), for `functions`.
    fn busy(&self, functions: &[&str]) -> Result<Vec<u64>, store::StoreError> {
        let stored = self.store().counts()?;
        let admission = self.admission();
        Ok(functions
            .iter()
            .map(|f| {
                let c = admission.counts(f);
                let stored: u64 = stored
                    .iter()
                    .filter(|(g, state, _)| g == f && (state == "queued" || state == "running"))
                    .map(|(_, _, n)| u64::try_from(*n).unwrap_or(0))
                    .sum();
                u64::from(c.in_flight)
                    + c.sync_waiting as u64
                    + c.async_waiting as u64
                    + stored
                    + self.direct.in_flight(f)
            })
            .collect())
    }

    /// `function`'s settings.
    pub fn settings(&self, function: &str) -> FunctionSettings {
        self.settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(function)
            .clone()
    }

    /// Whether `function` may be called: a sample function or one in the
    /// settings file.
    pub fn known(&self, function: &str) -> bool {
        sample_functions::catalog().get(function).is_some()
            || self
                .settings
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .functions
                .contains_key(function)
    }

    /// Every known function: the sample functions, those in the settings
    /// file, and `user` (the function store's), sorted.
    fn known_functions(&self, user: &[String]) -> Vec<String> {
        let mut names: Vec<String> = sample_functions::catalog()
            .functions
            .iter()
            .map(|f| f.name.clone())
            .collect();
        names.extend(user.iter().cloned());
        names.extend(
            self.settings
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .functions
                .keys()
                .cloned(),
        );
        names.sort();
        names.dedup();
        names
    }

    /// The functions whose `min_instances` > 0 with it (`user`: the
    /// function store's names, which the defaults' minimum covers too).
    pub(crate) fn min_instances_wanted(&self, user: &[String]) -> Vec<(String, u32)> {
        let settings = self.settings.read().unwrap_or_else(PoisonError::into_inner);
        let mut wanted: Vec<(String, u32)> = settings
            .functions
            .iter()
            .filter(|(_, s)| s.min_instances > 0)
            .map(|(f, s)| (f.clone(), s.min_instances))
            .collect();
        let default_min = settings.defaults.min_instances;
        drop(settings);
        if default_min > 0 {
            let listed = self
                .settings
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .functions
                .keys()
                .cloned()
                .collect::<HashSet<_>>();
            wanted.extend(
                self.known_functions(user)
                    .into_iter()
                    .filter(|f| !listed.contains(f))
                    .map(|f| (f, default_min)),
            );
        }
        wanted
    }

    /// Every known function's queue for `GET /metrics` (one admission
    /// lock, one store query), with its instances on the workers when
    /// `instances` is given.
    pub(crate) fn metrics_snapshot(
        &self,
        now: policy::Time,
        user: &[String],
        instances: Option<&instances::WorkerInstances>,
    ) -> Vec<crate::metrics::QueueSnapshot> {
        let stored = self.store().counts().unwrap_or_default();
        let names = self.known_functions(user);
        let caps: Vec<Option<u32>> = names.iter().map(|f| self.settings(f).max_queued).collect();
        let admission = self.admission();
        names
            .into_iter()
            .zip(caps)
            .map(|(function, max_queued)| {
                let counts = admission.counts(&function);
                crate::metrics::QueueSnapshot {
                    instances: instances.map(|i| i.of(&function)),
                    max_queued,
                    in_flight: counts.in_flight,
                    sync_waiting: counts.sync_waiting,
                    async_waiting: counts.async_waiting,
                    oldest_wait: counts
                        .oldest_waiting_since
                        .map(|since| now.saturating_since(since)),
                    stored: stored
                        .iter()
                        .filter(|(f, _, _)| *f == function)
                        .map(|(_, state, n)| (state.clone(), *n))
                        .collect(),
                    function,
                }
            })
            .collect()
    }

    /// A slot for a synchronous call of `function`, waiting at most `wait`.
    async fn acquire_sync(
        self: &Arc<Self>,
        function: &str,
        wait: Duration,
        now: policy::Time,
    ) -> Option<Slot> {
        let (tx, rx) = oneshot::channel();
        match self
            .admission()
            .arrive(function, Waiter::Sync(tx), CallKind::Sync, now)
        {
            Admission::Run => {
                return Some(Slot {
                    queue: self.clone(),
                    function: function.to_string(),
                })
            }
            Admission::Wait => {}
        }
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(slot)) => Some(slot),
            _ => {
                // Gave up: leave the queue (a slot sent meanwhile is
                // dropped with the receiver, and so released).
                self.admission().remove_waiting(
                    function,
                    |w| matches!(w, Waiter::Sync(tx) if tx.is_closed()),
                );
                None
            }
        }
    }
}

/// Handles a SlimFaas route.
pub(crate) async fn handle(
    route: Route,
    req: &HttpRequest,
    payload: web::Payload,
    queue: &Arc<Queue>,
    shared: &Shared,
    pool: &keepalive_http::Pool,
    client: &reqwest::Client,
) -> Result<HttpResponse, actix_web::Error> {
    let known = |function: &str| {
        if queue.known(function) || shared.functions.get(function).is_ok() {
            Ok(())
        } else {
            Err(SlimError::UnknownFunction(function.to_string()))
        }
    };
    let read_body = |payload: web::Payload| async move {
        match payload.to_bytes_limited(MAX_CALL_BODY).await {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(e)) => Err(SlimError::BadBody(e.to_string())),
            Err(_) => Err(SlimError::BodyTooLarge),
        }
    };
    let get_only = |method: &Method| {
        if method == Method::GET {
            Ok(())
        } else {
            Err(SlimError::Method(method.to_string()))
        }
    };
    match route {
        Route::Call {
            function,
            kind: CallKind::Sync,
        } => {
            known(&function)?;
            let user = user::admitted_user(shared, &function)?;
            let body = read_body(payload).await?;
            let request = match user {
                Some(entry) => user::CallRequest::User {
                    entry,
                    method: req.method().as_str(),
                    tail: user::tail_of(req.path()),
                    query: req.query_string(),
                    headers: user::request_headers(req),
                    body,
                },
                None => user::CallRequest::Sample {
                    query: req.query_string(),
                },
            };
            queue.call_arrived(&function, shared.clock.now());
            let reply = call_sync(queue, shared, pool, &function, &request).await;
            queue.activity().call_ended(&function, shared.clock.now());
            reply
        }
        Route::Call {
            function,
            kind: CallKind::Async,
        } => {
            known(&function)?;
            user::admitted_user(shared, &function)?;
            let headers = user::encode_headers(req)?;
            let body = read_body(payload).await?;
            let max_queued = queue.settings(&function).max_queued;
            let id = {
                // Checked and stored under one lock: the cap holds.
                let store = queue.store();
                let (mine, all) = store.pending(&function).map_err(SlimError::from)?;
                if let Some(cap) = max_queued.filter(|cap| mine >= u64::from(*cap)) {
                    return Err(SlimError::QueueFull(format!(
                        "{function} has {mine} calls queued or running (max_queued {cap})"
                    ))
                    .into());
                }
                if let Some(cap) = queue.max_queued_total.filter(|cap| all >= *cap) {
                    return Err(SlimError::QueueFull(format!(
                        "{all} calls queued or running in all (--queue-max {cap})"
                    ))
                    .into());
                }
                let call = store::NewCall {
                    method: req.method().as_str(),
                    path: req.path(),
                    query: req.query_string(),
                    headers: &headers,
                    body: &body,
                };
                store
                    .insert(&function, &call, wall_ms())
                    .map_err(SlimError::from)?
            };
            queue.call_arrived(&function, shared.clock.now());
            queue.accepted.fetch_add(1, Ordering::Relaxed);
            queue.scan.notify_one();
            let status_url = format!("/async-calls/{id}");
            Ok(HttpResponse::Accepted()
                .insert_header((actix_web::http::header::LOCATION, status_url.clone()))
                .content_type("application/json")
                .body(
                    serde_json::json!({"id": id.to_string(), "status_url": status_url}).to_string(),
                ))
        }
        Route::AsyncCall(id) => {
            get_only(req.method())?;
            let call = id
                .parse::<i64>()
                .ok()
                .map(|n| queue.store().get(n))
                .transpose()
                .map_err(SlimError::from)?
                .flatten()
                .ok_or_else(|| SlimError::UnknownCall(id.chars().take(64).collect()))?;
            let result = call.result.as_deref().map(|r| {
                serde_json::from_slice::<serde_json::Value>(r)
                    .unwrap_or_else(|_| String::from_utf8_lossy(r).into_owned().into())
            });
            Ok(json(serde_json::json!({
                "id": call.id.to_string(),
                "function": call.function,
                "state": call.state,
                "attempts": call.attempts,
                "created_ms": call.created_ms,
                "next_at_ms": call.next_at_ms,
                "finished_ms": call.finished_ms,
                "status": call.status,
                "result": result,
                "error": call.error,
            })))
        }
        Route::StatusAll => {
            get_only(req.method())?;
            let instances = queue.instances.fresh(shared, client).await;
            let user: Vec<String> = shared.functions.names();
            let all: Vec<serde_json::Value> = queue
                .known_functions(&user)
                .iter()
                .map(|f| function_status(queue, shared, f, &instances))
                .collect::<Result<_, _>>()?;
            Ok(json(serde_json::Value::Array(all)))
        }
        Route::Status(function) => {
            get_only(req.method())?;
            known(&function)?;
            let instances = queue.instances.fresh(shared, client).await;
            Ok(json(function_status(queue, shared, &function, &instances)?))
        }
        Route::Wake(function) => {
            known(&function)?;
            scaling::wake(queue, shared, client, &function).await?;
            Ok(HttpResponse::NoContent().finish())
        }
        Route::Settings(function) => {
            known(&function)?;
            if req.method() == Method::GET {
                return Ok(json(serde_json::to_value(queue.settings(&function))?));
            }
            if req.method() != Method::PUT {
                return Err(SlimError::Method(req.method().to_string()).into());
            }
            let body = read_body(payload).await?;
            let new: FunctionSettings = protocol::strict::from_json_slice(&body)
                .map_err(|e| SlimError::BadBody(format!("function settings: {e}")))?;
            let admitted = queue
                .admission()
                .set_max_parallel(&function, new.max_parallel);
            queue
                .settings
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .functions
                .insert(function.clone(), new.clone());
            for waiter in admitted {
                let slot = Slot {
                    queue: queue.clone(),
                    function: function.clone(),
                };
                match waiter {
                    Waiter::Sync(tx) => drop(tx.send(slot)),
                    Waiter::Async(id) => drop(queue.launch.send((id, slot))),
                }
            }
            tracing::info!(function, settings = ?new, "function settings changed");
            Ok(json(serde_json::to_value(new)?))
        }
    }
}

fn json(value: serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(value.to_string())
}

fn function_status(
    queue: &Queue,
    shared: &Shared,
    function: &str,
    instances: &instances::WorkerInstances,
) -> Result<serde_json::Value, SlimError> {
    let counts = queue.admission().counts(function);
    let now = shared.clock.now();
    let all_stored = queue.store().counts()?;
    let busy = queue.busy(&[function])?[0];
    let stored: serde_json::Map<String, serde_json::Value> = all_stored
        .into_iter()
        .filter(|(f, _, _)| f == function)
        .map(|(_, state, n)| (state, n.into()))
        .collect();
    let settings = queue.settings(function);
    let activity = queue.activity().activity(function);
    let (ready, starting) = instances.of(function);
    Ok(serde_json::json!({
        "name": function,
        "in_flight": counts.in_flight,
        "waiting_sync": counts.sync_waiting,
        "waiting_async": counts.async_waiting,
        "oldest_waiting_ms": counts
            .oldest_waiting_since
            .map(|since| now.saturating_since(since).as_millis() as u64),
        "stored": stored,
        "instances": {
            "ready": ready,
            "starting": starting,
            "requested": activity.and_then(|a| a.requested),
            "scale_to_zero": activity
                .map_or("untracked", |a| decide(&a, busy, settings.scale_rule(), now).as_str()),
            "workers_unanswered": instances.unanswered,
        },
        "settings": settings,
    }))
}

/// A reply to one attempt: its status, headers and body.
struct Reply {
    status: u16,
    headers: Vec<(
        actix_web::http::header::HeaderName,
        actix_web::http::header::HeaderValue,
    )>,
    body: web::Bytes,
}

/// How one attempt through the balancer's dispatch path ended.
struct Attempt {
    outcome: AttemptOutcome,
    reply: Option<Reply>,
    error: Option<String>,
}

async fn reply_of(response: HttpResponse) -> Reply {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let body = actix_web::body::to_bytes(response.into_body())
        .await
        .unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

/// One attempt of `request` ([`user::CallRequest`]: `/execute`'s path for
/// a sample function, `/invoke`'s for a user function) through the
/// scheduler, within the function's time-out.
async fn attempt(
    shared: &Shared,
    pool: &keepalive_http::Pool,
    function: &str,
    settings: &FunctionSettings,
    request: &user::CallRequest<'_>,
) -> Attempt {
    let safe = request.safe_to_repeat(function, settings);
    let call = request.send(shared, pool, function, safe);
    match tokio::time::timeout(settings.timeout(), call).await {
        Err(_) => Attempt {
            outcome: AttemptOutcome::TimedOut,
            reply: None,
            error: Some(format!("no reply within {} s", settings.timeout_s)),
        },
        Ok(Ok(response)) => {
            let reply = reply_of(response).await;
            Attempt {
                outcome: AttemptOutcome::Replied(reply.status),
                reply: Some(reply),
                error: None,
            }
        }
        Ok(Err(e)) => {
            let outcome = match &e {
                BalancerError::NoOnlineNode
                | BalancerError::AllFull { .. }
                | BalancerError::WorkerUnreachable { .. } => AttemptOutcome::NotDispatched,
                BalancerError::WorkerFailed { .. } => AttemptOutcome::Interrupted,
                other => AttemptOutcome::Replied(other.status_code().as_u16()),
            };
            Attempt {
                outcome,
                reply: Some(reply_of(e.error_response()).await),
                error: Some(e.to_string()),
            }
        }
    }
}

/// `ANY /function/<fn>/...`.
async fn call_sync(
    queue: &Arc<Queue>,
    shared: &Shared,
    pool: &keepalive_http::Pool,
    function: &str,
    request: &user::CallRequest<'_>,
) -> Result<HttpResponse, actix_web::Error> {
    let settings = queue.settings(function);
    let Some(slot) = queue
        .acquire_sync(function, settings.wait(), shared.clock.now())
        .await
    else {
        return Err(SlimError::NoSlot {
            function: function.to_string(),
            waited_s: settings.wait_s,
            max_parallel: settings.max_parallel,
        }
        .into());
    };
    let safe = request.safe_to_repeat(function, &settings);
    let delays = settings.retry_delays();
    let mut retries = 0u32;
    loop {
        let attempt = attempt(shared, pool, function, &settings, request).await;
        // Synchronous calls retry only when safe to repeat, and do not
        // wait for a node (the caller sees the 503 at once).
        let decision = match attempt.outcome {
            _ if !safe => RetryDecision::Done,
            AttemptOutcome::NotDispatched => RetryDecision::Done,
            outcome => retry_decision(
                outcome,
                retries,
                &delays,
                safe,
                NOT_DISPATCHED_POLL,
                shared.clock.now(),
            ),
        };
        if let RetryDecision::RetryAt(at) = decision {
            retries += 1;
            if let Some(metrics) = &shared.metrics {
                metrics.retried(function, crate::metrics::RetryRoute::Sync);
            }
            tokio::time::sleep(at.saturating_since(shared.clock.now())).await;
            continue;
        }
        drop(slot);
        return match attempt.reply {
            Some(reply) => {
                let mut out = HttpResponse::build(
                    StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY),
                );
                for header in reply.headers {
                    out.append_header(header);
                }
                Ok(out
                    .insert_header(("X-Slim-Attempts", (retries + 1).to_string()))
                    .body(reply.body))
            }
            None => Err(SlimError::TimedOut {
                function: function.to_string(),
                timeout_s: settings.timeout_s,
            }
            .into()),
        };
    }
}

/// The drain task: reads due calls from the store, admits them under
/// their function's cap, and runs each admitted one. Runs until dropped.
pub(crate) async fn drain(
    queue: Arc<Queue>,
    mut launched: Launched,
    shared: Arc<Shared>,
    pool: keepalive_http::Pool,
) {
    let pool = Rc::new(pool);
    let mut last_purge = 0i64;
    loop {
        // Scan: every due, unclaimed call enters the admission queue; not
        // while the store's writes fail ([`StoreTrouble`]).
        let now_ms = wall_ms();
        let backing_off = queue.store_wait();
        if backing_off.is_none() {
            if let Err(e) = scan(&queue, &shared, &pool, now_ms) {
                tracing::error!(error = %e, "cannot read the queue's store");
            }
        }
        if backing_off.is_none() && now_ms - last_purge > 60_000 {
            last_purge = now_ms;
            let before = now_ms
                .saturating_sub(i64::try_from(queue.retention.as_millis()).unwrap_or(i64::MAX));
            match queue.store().purge(before) {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "finished asynchronous calls past retention"),
                Err(e) => tracing::error!(error = %e, "cannot purge the queue's store"),
            }
        }
        let next_due = queue.store().next_due().ok().flatten();
        let wait = next_due.map_or(SCAN_EVERY, |at| {
            Duration::from_millis(u64::try_from(at - wall_ms()).unwrap_or(0)).min(SCAN_EVERY)
        });
        let wait = backing_off.unwrap_or(wait);
        tokio::select! {
            Some((id, slot)) = launched.recv() => {
                actix_web::rt::spawn(run_stored(queue.clone(), shared.clone(), pool.clone(), id, slot));
            }
            () = queue.scan.notified() => {}
            () = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
        }
    }
}

fn scan(
    queue: &Arc<Queue>,
    shared: &Arc<Shared>,
    pool: &Rc<keepalive_http::Pool>,
    now_ms: i64,
) -> Result<(), store::StoreError> {
    let mut after = 0;
    loop {
        let page = queue.store().due(now_ms, after, SCAN_PAGE)?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = last.id;
        for call in page {
            if !lock(&queue.claimed).insert(call.id) {
                continue;
            }
            let admission = queue.admission().arrive(
                &call.function,
                Waiter::Async(call.id),
                CallKind::Async,
                shared.clock.now(),
            );
            if admission == Admission::Run {
                let slot = Slot {
                    queue: queue.clone(),
                    function: call.function.clone(),
                };
                actix_web::rt::spawn(run_stored(
                    queue.clone(),
                    shared.clone(),
                    pool.clone(),
                    call.id,
                    slot,
                ));
            }
        }
    }
}

/// Runs one attempt of a stored call that holds a slot, and records what
/// comes of it.
async fn run_stored(
    queue: Arc<Queue>,
    shared: Arc<Shared>,
    pool: Rc<keepalive_http::Pool>,
    id: i64,
    slot: Slot,
) {
    let outcome = run_stored_attempt(&queue, &shared, &pool, id).await;
    if let Err(e) = outcome {
        // Nothing ran: the call stays queued, and the drain waits.
        queue.store_failed("starting a call", id, &e);
    }
    lock(&queue.claimed).remove(&id);
    let function = slot.function.clone();
    drop(slot);
    queue.activity().call_ended(&function, shared.clock.now());
    queue.scan.notify_one();
}

async fn run_stored_attempt(
    queue: &Queue,
    shared: &Shared,
    pool: &keepalive_http::Pool,
    id: i64,
) -> Result<(), store::StoreError> {
    let Some(call) = queue.store().get(id)? else {
        return Ok(());
    };
    if call.state != "queued" {
        return Ok(());
    }
    queue.store().start_attempt(id)?;
    let settings = queue.settings(&call.function);
    let request = match shared.functions.get(&call.function) {
        Ok(entry) => user::CallRequest::User {
            entry,
            method: &call.method,
            tail: user::tail_of(&call.path),
            query: &call.query,
            headers: user::decode_headers(&call.headers),
            body: call.body.clone().into(),
        },
        Err(_) => user::CallRequest::Sample { query: &call.query },
    };
    let attempt = attempt(shared, pool, &call.function, &settings, &request).await;
    let safe = request.safe_to_repeat(&call.function, &settings);
    let now = shared.clock.now();
    let retries_done = call.attempts; // attempts before this one
    let decision = retry_decision(
        attempt.outcome,
        retries_done,
        &settings.retry_delays(),
        safe,
        NOT_DISPATCHED_POLL,
        now,
    );
    let (status, body) = match &attempt.reply {
        Some(r) => (Some(r.status), Some(&r.body[..])),
        None => (None, None),
    };
    /// What the store is told of the attempt.
    enum Record {
        Finish {
            state: &'static str,
            error: Option<String>,
            at_ms: i64,
        },
        Requeue {
            next_ms: i64,
            undo: bool,
        },
    }
    let record = match decision {
        RetryDecision::Done => {
            let (state, error) = match attempt.outcome {
                AttemptOutcome::Interrupted => (
                    "failed",
                    Some(format!(
                        "{}; not sent again (the function is not declared safe to repeat)",
                        attempt.error.clone().unwrap_or_default()
                    )),
                ),
                _ => ("done", attempt.error.clone()),
            };
            Record::Finish {
                state,
                error,
                at_ms: wall_ms(),
            }
        }
        RetryDecision::RetryAt(at) => {
            let delay = at.saturating_since(now);
            let next_ms = wall_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
            let undo = attempt.outcome == AttemptOutcome::NotDispatched;
            if let (false, Some(metrics)) = (undo, &shared.metrics) {
                metrics.retried(&call.function, crate::metrics::RetryRoute::Async);
            }
            Record::Requeue { next_ms, undo }
        }
        RetryDecision::GiveUp => {
            let error = format!(
                "retries spent ({} attempts); last: {}",
                call.attempts + 1,
                attempt
                    .error
                    .clone()
                    .unwrap_or_else(|| format!("status {}", status.unwrap_or(0)))
            );
            Record::Finish {
                state: "failed",
                error: Some(error),
                at_ms: wall_ms(),
            }
        }
    };
    // The attempt has run: its outcome is written, however long the store
    // takes to take it (the call keeps its claim and slot meanwhile).
    loop {
        let written = {
            let store = queue.store();
            match &record {
                Record::Finish {
                    state,
                    error,
                    at_ms,
                } => store.finish(id, state, status, body, error.as_deref(), *at_ms),
                Record::Requeue { next_ms, undo } => {
                    store.requeue(id, *next_ms, *undo, attempt.error.as_deref())
                }
            }
        };
        match written {
            Ok(()) => {
                queue.store_worked();
                return Ok(());
            }
            Err(e) => {
                let wait = queue.store_failed("recording a call's outcome", id, &e);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::disallowed_methods)] // a start instant; times are added to it
    fn a_failing_store_is_left_alone_longer_each_time_and_reported_sparingly() {
        let t0 = Instant::now();
        let mut t = StoreTrouble::default();
        assert_eq!(t.wait(t0), None);
        assert_eq!(t.worked(), None, "no trouble, nothing to report");
        let (wait, report) = t.failed(t0);
        assert_eq!((wait, report), (STORE_RETRY_MIN, true));
        assert_eq!(t.wait(t0), Some(STORE_RETRY_MIN));
        assert_eq!(t.wait(t0 + STORE_RETRY_MIN), None);
        let mut at = t0;
        let mut waits = vec![wait];
        let mut reports = 1;
        for _ in 0..20 {
            at += waits[waits.len() - 1];
            let (wait, report) = t.failed(at);
            waits.push(wait);
            reports += usize::from(report);
        }
        assert_eq!(waits[1], 2 * STORE_RETRY_MIN);
        assert_eq!(waits[2], 4 * STORE_RETRY_MIN);
        assert_eq!(*waits.last().unwrap(), STORE_RETRY_MAX);
        // 21 failures over about 70 s: reported at 0 s, then every 30 s.
        let elapsed = at - t0;
        assert!(elapsed > Duration::from_secs(60) && elapsed < Duration::from_secs(90));
        assert_eq!(reports, 3, "{waits:?}");
        assert_eq!(t.worked(), Some(21));
        assert_eq!(t.wait(at), None);
        assert_eq!(t.failed(at).0, STORE_RETRY_MIN, "a new trouble starts over");
    }

    #[test]
    fn routes_parse() {
        assert_eq!(
            Route::parse("/function/W1/a/b"),
            Some(Route::Call {
                function: "W1".into(),
                kind: CallKind::Sync
            })
        );
        assert_eq!(
            Route::parse("/async-function/W2"),
            Some(Route::Call {
                function: "W2".into(),
                kind: CallKind::Async
            })
        );
        assert_eq!(
            Route::parse("/async-calls/7"),
            Some(Route::AsyncCall("7".into()))
        );
        assert_eq!(Route::parse("/status-functions"), Some(Route::StatusAll));
        assert_eq!(
            Route::parse("/status-function/W1"),
            Some(Route::Status("W1".into()))
        );
        assert_eq!(Route::parse("/execute"), None);
        assert_eq!(Route::parse("/functions"), None);
        assert!(Route::parse("/function-settings/W1")
            .unwrap()
            .is_management(&Method::PUT));
    }
}
