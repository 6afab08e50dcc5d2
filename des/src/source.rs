//! Where the simulated calls come from: an [`ArrivalSource`], asked by the
//! engine for its next arrival and told when each of its calls ends.
//!
//! - [`ScenarioSource`]: the open loop. A scenario's rows arrive at their
//!   times (divided by `time_scale`), whatever is in flight; it ignores
//!   completions. This is `simulator replay` and `simulator des SCENARIO`.
//! - [`ClosedLoopSource`]: the closed loop of `simulator load`, after k6's
//!   virtual users (the `constant-vus` executor). [`ClosedLoop::clients`]
//!   clients all send their first call at time zero (client 0 first); a
//!   client sends its next call when its last one has ended (as the client
//!   saw it: the log line's end, i.e. the worker's end plus the profile's
//!   network and balancer round trips, or the moment a call failed) plus a
//!   think time ([`Think`]), and stops at the first send that would not be
//!   before [`ClosedLoop::duration`]. So each client has at most one call
//!   outstanding, and the offered load follows how fast the cluster
//!   answers. Calls in flight at the end of the duration get
//!   [`ClosedLoop::grace`] (`--grace`, 30 s by default) to end, then are
//!   cancelled as the live clients cancel them: logged as errors
//!   ([`CANCELLED`]) from their start to the end of the grace, not counted
//!   as completed (the nodes still run them to their end, as live workers
//!   do).
//!
//! The clients draw their functions and think times exactly as the live
//! clients do ([`crate::mix`]: client `c`'s choices from the ChaCha8 stream
//! `(seed, 2c)`, its think times from `(seed, 2c + 1)`), so a simulated
//! client calls the same sequence of functions as the live one of the same
//! seed and index; only when they are sent differs, with the cluster.
//!
//! # Stages (k6's `stages`)
//!
//! [`ClosedLoop::clients`] is a list of [`Stages`]: `--clients 20,50,100
//! --duration 100s` runs 20 clients for 100 s, then 50, then 100, back to
//! back on the same (warm) cluster, as k6's `stages` (the Hiku paper's
//! load); one number is one stage, the behaviour above. Stage `i` covers
//! `[i D, (i + 1) D)` of the run (`D` = [`ClosedLoop::duration`]), and
//! client `k` is *active* in it when `k` is below the stage's count
//! ([`Stages::active_from`]; the same rule drives the live clients):
//!
//! - When the count rises, the new clients (the next indices) send their
//!   first call at the boundary.
//! - When it falls, the surplus clients (the highest indices) start no new
//!   call; a call in flight completes and is recorded. A client whose next
//!   send falls in a stage where it is not active sends at the start of
//!   the next stage where it is (if any), else stops.
//! - The run ends after the last stage; the grace period follows it.
//! - A call belongs to the stage in which it *started* ([`StageTally`],
//!   the per-stage figures of `simulator load` and `simulator des`).
//!
//! Client `k`'s streams depend on the seed and `k` only, whatever the
//! stages, so a client is the same client in every stage it runs in.
//!
//! One rule the live clients do not need: a client sends at most one call
//! per microsecond (the virtual clock's resolution), so that calls taking
//! no virtual time (an `--ideal` profile, zero work) cannot stall the
//! clock at one instant.

use std::sync::Arc;
use std::time::Duration;

use policy::admission_queue::CallKind;
use policy::Time;
use protocol::scenario::CallShape;

use crate::mix::{ClientRng, FunctionMix, Think};
use crate::queue::EventQueue;
use crate::workload::Workload;

/// The client of a call that has none (a scenario row, an image build).
pub const NO_CLIENT: u32 = u32::MAX;

/// Most clients of one closed loop (live, each is a task and at most one
/// open connection).
pub const MAX_CLIENTS: u32 = 10_000;
/// Longest closed loop (all its stages together): one day.
pub const MAX_DURATION: Duration = Duration::from_secs(86_400);
/// Most stages of one closed loop (`--clients A,B,...`).
pub const MAX_STAGES: usize = 32;

/// One call as its source sends it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrival {
    pub time: Time,
    /// Index into the source's names.
    pub function: u32,
    /// Per-invocation columns (a scenario row's `DurationMs`, `MemoryMb`).
    pub shape: Option<CallShape>,
    /// The client that sent it, or [`NO_CLIENT`].
    pub client: u32,
    /// Synchronous or asynchronous, for the SlimFaas queue
    /// ([`crate::slim`]): scenario rows and clients' calls are synchronous
    /// (the scenario format has no column for it).
    pub kind: CallKind,
}

/// What the engine asks of whatever sends calls (module doc).
pub trait ArrivalSource {
    /// The time of the next arrival, if one is due (a closed loop whose
    /// clients all wait for replies has none until one returns).
    fn peek(&self) -> Option<Time>;
    /// Takes the arrival [`ArrivalSource::peek`] named.
    fn next(&mut self) -> Option<Arrival>;
    /// `client`'s call ended at `at` (when its client had the reply).
    fn completed(&mut self, client: u32, at: Time);
    /// As [`ArrivalSource::completed`], with how the call ended (the
    /// engine calls this one; a source that tallies replies overrides it).
    fn replied(&mut self, client: u32, at: Time, reply: Reply) {
        let _ = reply;
        self.completed(client, at);
    }
}

/// How a client's call ended, as its client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// A reply; `cold` when no warm instance (pooled or REST) served it.
    Ok { cold: bool },
    /// An error (no node, no slot, refused, ...).
    Failed,
    /// Cancelled at the end of the grace period.
    Cancelled,
}

/// A scenario's rows, in order, at their times over `time_scale`.
#[derive(Debug)]
pub struct ScenarioSource<'w> {
    workload: &'w Workload,
    next: usize,
    time_scale: f64,
}

impl<'w> ScenarioSource<'w> {
    pub fn new(workload: &'w Workload, time_scale: f64) -> Self {
        Self {
            workload,
            next: 0,
            time_scale,
        }
    }

    /// The scenario's `i`th call (0-based, in the arrivals' order), as
    /// [`ArrivalSource::next`] sends it.
    pub fn arrival(&self, i: usize) -> Option<Arrival> {
        let &(t, function) = self.workload.arrivals.get(i)?;
        Some(Arrival {
            time: self.arrival_time(t),
            function,
            shape: self.workload.shape(i),
            client: NO_CLIENT,
            kind: CallKind::Sync,
        })
    }

    pub(crate) fn arrival_time(&self, t: Time) -> Time {
        if self.time_scale == 1.0 {
            t
        } else {
            Time::from_micros_f64(t.as_micros() as f64 / self.time_scale)
        }
    }
}

impl ArrivalSource for ScenarioSource<'_> {
    fn peek(&self) -> Option<Time> {
        let &(t, _) = self.workload.arrivals.get(self.next)?;
        Some(self.arrival_time(t))
    }

    fn next(&mut self) -> Option<Arrival> {
        let arrival = self.arrival(self.next)?;
        self.next += 1;
        Some(arrival)
    }

    fn completed(&mut self, _client: u32, _at: Time) {}
}

/// A closed loop's parameters (the options of `simulator load`).
#[derive(Debug, Clone)]
pub struct ClosedLoop {
    /// Clients of each stage, 1..=[`MAX_CLIENTS`] each (one stage: a
    /// constant count).
    pub clients: Stages,
    /// How long each stage lasts, i.e. how long clients start new calls
    /// when there is one stage (more than 0; all stages together at most
    /// [`MAX_DURATION`]).
    pub duration: Duration,
    pub think: Think,
    pub mix: Arc<FunctionMix>,
    /// How the mix was given (`--functions`), for the records.
    pub functions: String,
    /// Seed of the clients' choices and think times.
    pub seed: u64,
    /// After the duration, how long calls in flight may finish before
    /// they are cancelled (`--grace`, as `simulator load`'s).
    pub grace: Duration,
}

/// The error message of a call cancelled at the end of the grace period
/// (the live replayer's and closed loop's, and the DES's).
pub const CANCELLED: &str = "cancelled: the replay was stopped";

/// Closed-loop parameters out of bounds.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClosedLoopError {
    #[error("--clients must be 1..={MAX_CLIENTS}, got {0}")]
    BadClients(u64),
    #[error("--duration must be more than 0 and at most one day (86400 s), got {0:?}")]
    BadDuration(Duration),
    #[error("--clients {list:?}: {reason}")]
    BadStages { list: String, reason: String },
    #[error("--clients with {stages} stages of --duration {duration:?} last more than one day (86400 s)")]
    TooLong { stages: usize, duration: Duration },
}

/// The client counts of a closed loop's consecutive stages (module doc),
/// each 1..=[`MAX_CLIENTS`], 1..=[`MAX_STAGES`] of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stages(Vec<u32>);

impl Stages {
    /// One stage of `clients` (a constant count; not checked).
    pub fn one(clients: u32) -> Self {
        Self(vec![clients])
    }

    /// `20` or `20,50,100` (spaces around the numbers allowed), checked.
    pub fn parse(list: &str) -> Result<Self, ClosedLoopError> {
        let bad = |reason: String| ClosedLoopError::BadStages {
            list: list.to_string(),
            reason,
        };
        let mut counts = Vec::new();
        for (i, part) in list.split(',').enumerate() {
            if i == MAX_STAGES {
                return Err(bad(format!("at most {MAX_STAGES} stages")));
            }
            let part = part.trim();
            if part.is_empty() {
                return Err(bad(format!(
                    "stage {} is empty (give client counts separated by commas, e.g. 20,50,100)",
                    i + 1
                )));
            }
            let n: u64 = part.parse().map_err(|_| {
                bad(format!(
                    "stage {}: {part:?} is not a count of clients (e.g. 20,50,100)",
                    i + 1
                ))
            })?;
            counts.push(check_clients(n)?);
        }
        Ok(Self(counts))
    }

    /// Fails if a count or the number of stages is out of bounds.
    pub fn check(&self) -> Result<(), ClosedLoopError> {
        if self.0.is_empty() || self.0.len() > MAX_STAGES {
            return Err(ClosedLoopError::BadStages {
                list: self.to_string(),
                reason: format!("give 1..={MAX_STAGES} stages"),
            });
        }
        for &n in &self.0 {
            check_clients(n.into())?;
        }
        Ok(())
    }

    /// The clients of each stage.
    pub fn counts(&self) -> &[u32] {
        &self.0
    }

    /// How many stages.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true for checked stages.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One stage only (a constant count, the records of which are those
    /// of a closed loop without stages).
    pub fn is_single(&self) -> bool {
        self.0.len() == 1
    }

    /// The most clients at once (how many clients the run has).
    pub fn max(&self) -> u32 {
        self.0.iter().copied().max().unwrap_or(0)
    }

    /// The stage in which an offset of `at_us` from the start lies, with
    /// stages `stage_us` long (the last one for offsets past the end).
    pub fn stage_at(&self, at_us: u64, stage_us: u64) -> usize {
        let i = at_us.checked_div(stage_us).unwrap_or(0);
        usize::try_from(i)
            .unwrap_or(usize::MAX)
            .min(self.0.len().saturating_sub(1))
    }

    /// The first offset at or after `at_us` at which `client` may start a
    /// call, stages being `stage_us` long: `at_us` itself if the client is
    /// active in that stage, else the start of the next stage in which it
    /// is; `None` if there is none before the end.
    pub fn active_from(&self, client: u32, at_us: u64, stage_us: u64) -> Option<u64> {
        let first = usize::try_from(at_us.checked_div(stage_us)?).ok()?;
        let i = (first..self.0.len()).find(|&i| client < self.0[i])?;
        Some(if i == first {
            at_us
        } else {
            i as u64 * stage_us
        })
    }
}

impl From<u32> for Stages {
    fn from(clients: u32) -> Self {
        Self::one(clients)
    }
}

impl std::fmt::Display for Stages {
    /// `20` or `20,50,100`, as parsed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, n) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{n}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Stages {
    type Err = ClosedLoopError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// One stage's figures, calls attributed to the stage in which they
/// started (`simulator load` and `simulator des` summaries).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StageSummary {
    /// 1-based.
    pub stage: usize,
    pub clients: u32,
    /// Offset of its start from the run's, seconds.
    pub start_s: f64,
    pub duration_s: f64,
    /// Calls started in the stage.
    pub calls: u64,
    /// Those answered with a reply.
    pub ok: u64,
    /// Those that failed (not counting cancelled ones).
    pub errors: u64,
    /// Those cancelled after the grace period.
    pub cancelled: u64,
    /// Successful calls per second of the stage's duration.
    pub throughput_per_s: f64,
    /// Response time (log line end - start, whole ms) of successful calls.
    pub response_mean_ms: f64,
    pub response_p50_ms: u64,
    pub response_p99_ms: u64,
    /// Successful calls that no warm instance served (from the replies'
    /// `Meta`).
    pub cold_starts: u64,
}

/// Per-stage counts of a closed loop's calls (a call counts in the stage
/// in which it started): the one tally of the live and simulated clients.
#[derive(Debug, Clone)]
pub struct StageTally {
    stages: Vec<StageCounts>,
}

#[derive(Debug, Clone)]
struct StageCounts {
    calls: u64,
    ok: u64,
    errors: u64,
    cancelled: u64,
    cold: u64,
    response_sum_ms: u64,
    response: hdrhistogram::Histogram<u64>,
}

impl StageTally {
    /// Zero counts for `stages` stages.
    pub fn new(stages: usize) -> Self {
        let counts = StageCounts {
            calls: 0,
            ok: 0,
            errors: 0,
            cancelled: 0,
            cold: 0,
            response_sum_ms: 0,
            // 1 ms .. 1 day at 3 significant digits; records saturate.
            response: hdrhistogram::Histogram::new_with_bounds(1, 86_400_000, 3)
                .unwrap_or_else(|_| hdrhistogram::Histogram::new(3).expect("valid bounds")),
        };
        Self {
            stages: vec![counts; stages],
        }
    }

    /// A call started in `stage`.
    pub fn sent(&mut self, stage: usize) {
        if let Some(s) = self.stages.get_mut(stage) {
            s.calls += 1;
        }
    }

    /// A call started in `stage` ended so, after `response_ms` (its log
    /// line's end - start).
    pub fn ended(&mut self, stage: usize, reply: Reply, response_ms: u64) {
        let Some(s) = self.stages.get_mut(stage) else {
            return;
        };
        match reply {
            Reply::Ok { cold } => {
                s.ok += 1;
                s.cold += u64::from(cold);
                s.response_sum_ms = s.response_sum_ms.saturating_add(response_ms);
                s.response.saturating_record(response_ms.max(1));
            }
            Reply::Failed => s.errors += 1,
            Reply::Cancelled => s.cancelled += 1,
        }
    }

    /// The figures of each stage of `stages`, each `duration` long.
    pub fn summaries(&self, stages: &Stages, duration: Duration) -> Vec<StageSummary> {
        let d = duration.as_secs_f64();
        self.stages
            .iter()
            .zip(stages.counts())
            .enumerate()
            .map(|(i, (s, &clients))| {
                let (p50, p99) = if s.ok == 0 {
                    (0, 0)
                } else {
                    (
                        s.response.value_at_quantile(0.5),
                        s.response.value_at_quantile(0.99),
                    )
                };
                StageSummary {
                    stage: i + 1,
                    clients,
                    start_s: i as f64 * d,
                    duration_s: d,
                    calls: s.calls,
                    ok: s.ok,
                    errors: s.errors,
                    cancelled: s.cancelled,
                    throughput_per_s: if d > 0.0 { s.ok as f64 / d } else { 0.0 },
                    response_mean_ms: if s.ok == 0 {
                        0.0
                    } else {
                        s.response_sum_ms as f64 / s.ok as f64
                    },
                    response_p50_ms: p50,
                    response_p99_ms: p99,
                    cold_starts: s.cold,
                }
            })
            .collect()
    }
}

/// `clients` as a count within bounds.
pub fn check_clients(clients: u64) -> Result<u32, ClosedLoopError> {
    u32::try_from(clients)
        .ok()
        .filter(|c| (1..=MAX_CLIENTS).contains(c))
        .ok_or(ClosedLoopError::BadClients(clients))
}

/// Fails if `stages` stages of `duration` last more than [`MAX_DURATION`].
pub fn check_total(stages: usize, duration: Duration) -> Result<(), ClosedLoopError> {
    let total = u32::try_from(stages)
        .ok()
        .and_then(|n| duration.checked_mul(n));
    match total {
        Some(t) if t <= MAX_DURATION => Ok(()),
        _ => Err(ClosedLoopError::TooLong { stages, duration }),
    }
}

/// `duration` if within bounds.
pub fn check_duration(duration: Duration) -> Result<Duration, ClosedLoopError> {
    if duration.is_zero() || duration > MAX_DURATION {
        return Err(ClosedLoopError::BadDuration(duration));
    }
    Ok(duration)
}

impl ClosedLoop {
    /// Fails if the stages or the duration are out of bounds.
    pub fn check(&self) -> Result<(), ClosedLoopError> {
        self.clients.check()?;
        check_duration(self.duration)?;
        check_total(self.clients.len(), self.duration)?;
        Ok(())
    }

    /// All stages together: how long clients start new calls.
    pub fn total_duration(&self) -> Duration {
        self.duration
            .saturating_mul(u32::try_from(self.clients.len()).unwrap_or(u32::MAX))
    }

    /// One stage's length in µs (at least 1).
    fn stage_us(&self) -> u64 {
        u64::try_from(self.duration.as_micros())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// The parameters as run records write them (`extra.load` of a log's
    /// sidecar, live and simulated): clients, duration, think time and its
    /// mean, the mix (spec, size, and each probability when there are at
    /// most 100 names), seed.
    pub fn parameters(&self) -> serde_json::Value {
        let clients = if self.clients.is_single() {
            serde_json::json!(self.clients.max())
        } else {
            serde_json::json!(self.clients.counts())
        };
        let mut value = serde_json::json!({
            "clients": clients,
            "duration_s": self.duration.as_secs_f64(),
            "grace_s": self.grace.as_secs_f64(),
            "think": self.think.to_string(),
            "think_mean_ms": self.think.mean().as_secs_f64() * 1000.0,
            "functions": self.functions,
            "function_count": self.mix.len(),
            "seed": self.seed,
        });
        // Small mixes are written out in full (a file's may be huge).
        if self.mix.len() <= 100 {
            let probabilities: serde_json::Map<String, serde_json::Value> = (0..self.mix.len())
                .map(|i| (self.mix.names()[i].clone(), self.mix.probability(i).into()))
                .collect();
            value["probabilities"] = probabilities.into();
        }
        if !self.clients.is_single() {
            value["stages"] = self.clients.len().into();
            value["total_duration_s"] = self.total_duration().as_secs_f64().into();
        }
        value
    }
}

/// The clients of a [`ClosedLoop`] as an [`ArrivalSource`]; function ids
/// are indices into the mix's names.
#[derive(Debug)]
pub struct ClosedLoopSource<'c> {
    spec: &'c ClosedLoop,
    /// Clients waiting to send, by send time (ties: first queued first).
    due: EventQueue<u32>,
    rngs: Vec<ClientRng>,
    /// Each client's last send (the one-call-per-µs rule, and the start
    /// of its outstanding call).
    last_send: Vec<Time>,
    /// Calls sent by each client.
    calls: Vec<u64>,
    /// Outstanding call per client (a check of the closed loop).
    outstanding: Vec<bool>,
    /// The stage of each client's last call.
    stage_of_call: Vec<u32>,
    tally: StageTally,
    stage_us: u64,
    last_reply: Time,
}

impl<'c> ClosedLoopSource<'c> {
    /// The first stage's clients due at time zero, in index order; each
    /// later client at the start of the first stage it is active in.
    pub fn new(spec: &'c ClosedLoop) -> Self {
        let n = spec.clients.max() as usize;
        let stage_us = spec.stage_us();
        let mut due = EventQueue::with_capacity(n);
        for c in 0..spec.clients.max() {
            if let Some(at) = spec.clients.active_from(c, 0, stage_us) {
                due.push(Time::from_micros(at), c);
            }
        }
        Self {
            spec,
            due,
            rngs: (0..spec.clients.max())
                .map(|c| ClientRng::new(spec.seed, c))
                .collect(),
            last_send: vec![Time::ZERO; n],
            calls: vec![0; n],
            outstanding: vec![false; n],
            stage_of_call: vec![0; n],
            tally: StageTally::new(spec.clients.len()),
            stage_us,
            last_reply: Time::ZERO,
        }
    }

    /// Calls sent by each client, by index.
    pub fn calls_per_client(&self) -> &[u64] {
        &self.calls
    }

    /// When the last reply reached its client.
    pub fn last_reply(&self) -> Time {
        self.last_reply
    }

    /// The figures of each stage (calls counted in the stage in which
    /// they started).
    pub fn stage_summaries(&self) -> Vec<StageSummary> {
        self.tally.summaries(&self.spec.clients, self.spec.duration)
    }
}

impl ArrivalSource for ClosedLoopSource<'_> {
    fn peek(&self) -> Option<Time> {
        self.due.peek_time()
    }

    fn next(&mut self) -> Option<Arrival> {
        let (time, client) = self.due.pop()?;
        let c = client as usize;
        let mix = &self.spec.mix;
        let function = mix.pick(&mut self.rngs[c].choices) as u32;
        self.calls[c] += 1;
        self.outstanding[c] = true;
        self.last_send[c] = time;
        let stage = self.spec.clients.stage_at(time.as_micros(), self.stage_us);
        self.stage_of_call[c] = stage as u32;
        self.tally.sent(stage);
        Some(Arrival {
            time,
            function,
            shape: None,
            client,
            kind: CallKind::Sync,
        })
    }

    fn completed(&mut self, client: u32, at: Time) {
        let c = client as usize;
        if !self.outstanding.get(c).copied().unwrap_or(false) {
            return; // not one of ours, or told twice
        }
        self.outstanding[c] = false;
        self.last_reply = self.last_reply.max(at);
        let pause = self.spec.think.draw(&mut self.rngs[c].think);
        let send = at
            .saturating_add(pause)
            .max(self.last_send[c].add_micros(1));
        if let Some(send) = self
            .spec
            .clients
            .active_from(client, send.as_micros(), self.stage_us)
        {
            self.due.push(Time::from_micros(send), client);
        }
    }

    fn replied(&mut self, client: u32, at: Time, reply: Reply) {
        let c = client as usize;
        if self.outstanding.get(c).copied().unwrap_or(false) {
            // Whole ms, as the log line's end - start.
            let ms = at.as_millis().saturating_sub(self.last_send[c].as_millis());
            self.tally.ended(self.stage_of_call[c] as usize, reply, ms);
        }
        self.completed(client, at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(clients: u32, duration_ms: u64, think: Think) -> ClosedLoop {
        let names = (1..=5).map(|i| format!("F{i}")).collect();
        ClosedLoop {
            clients: Stages::one(clients),
            duration: Duration::from_millis(duration_ms),
            think,
            mix: Arc::new(FunctionMix::zipf(names, 1.0).unwrap()),
            functions: "zipf:1".into(),
            seed: 9,
            grace: Duration::from_secs(30),
        }
    }

    const MS: u64 = 1000;

    /// Drives a source as the engine would, every call taking `service`
    /// µs: the arrivals, in order.
    fn drive(s: &mut ClosedLoopSource<'_>, service: u64) -> Vec<Arrival> {
        let mut ends: EventQueue<u32> = EventQueue::with_capacity(8);
        let mut out = Vec::new();
        loop {
            match (ends.peek_time(), s.peek()) {
                (Some(e), Some(a)) if e <= a => {
                    let (t, c) = ends.pop().unwrap();
                    s.replied(c, t, Reply::Ok { cold: false });
                }
                (Some(_), None) => {
                    let (t, c) = ends.pop().unwrap();
                    s.replied(c, t, Reply::Ok { cold: false });
                }
                (_, Some(_)) => {
                    let a = s.next().unwrap();
                    ends.push(a.time.add_micros(service), a.client);
                    out.push(a);
                }
                (None, None) => return out,
            }
        }
    }

    #[test]
    fn each_client_has_one_call_outstanding_and_sends_at_completion_plus_think() {
        let spec = spec(3, 100, Think::Constant(Duration::from_millis(5)));
        let mut s = ClosedLoopSource::new(&spec);
        // All three due at zero, in index order; none more until a reply.
        for c in 0..3 {
            assert_eq!(s.peek(), Some(Time::ZERO));
            assert_eq!(s.next().unwrap().client, c);
        }
        assert_eq!(s.peek(), None);
        // Client 1's reply at 12 ms: its next call at 12 + 5 ms.
        s.completed(1, Time::from_millis(12));
        assert_eq!(s.peek(), Some(Time::from_millis(17)));
        // A second completion of the same call is ignored.
        s.completed(1, Time::from_millis(13));
        let a = s.next().unwrap();
        assert_eq!((a.client, a.time), (1, Time::from_millis(17)));
        assert_eq!(s.peek(), None);
        assert_eq!(s.calls_per_client(), [1, 2, 1]);
        // A client that never heard back sends nothing more.
        s.completed(NO_CLIENT, Time::from_millis(20));
        assert_eq!(s.peek(), None);
    }

    #[test]
    fn the_duration_bounds_the_sends() {
        // 1 client, 10 ms calls, no think, 100 ms: sends at 0, 10, ..., 90.
        let spec1 = spec(1, 100, Think::None);
        let mut s = ClosedLoopSource::new(&spec1);
        let sent = drive(&mut s, 10 * MS);
        let times: Vec<u64> = sent.iter().map(|a| a.time.as_millis()).collect();
        assert_eq!(times, (0..10).map(|i| i * 10).collect::<Vec<_>>());
        assert_eq!(s.last_reply(), Time::from_millis(100));
        // With 3 ms of think: 0, 13, 26, ..., 91 (a send at 104 is past).
        let spec2 = spec(2, 100, Think::Constant(Duration::from_millis(3)));
        let mut s = ClosedLoopSource::new(&spec2);
        let sent = drive(&mut s, 10 * MS);
        assert_eq!(sent.len(), 16);
        assert!(sent.iter().all(|a| a.time < Time::from_millis(100)));
        assert_eq!(s.calls_per_client(), [8, 8]);
    }

    #[test]
    fn a_client_sends_at_most_once_per_microsecond() {
        let spec = spec(1, 1, Think::None);
        let mut s = ClosedLoopSource::new(&spec);
        let sent = drive(&mut s, 0);
        assert_eq!(sent.len(), 1000);
        assert_eq!(sent[999].time, Time::from_micros(999));
    }

    #[test]
    fn clients_call_the_live_clients_sequences() {
        let spec = spec(4, 50, Think::Exponential(Duration::from_millis(2)));
        let mut s = ClosedLoopSource::new(&spec);
        let sent = drive(&mut s, 3 * MS);
        for c in 0..4u32 {
            let simulated: Vec<&str> = sent
                .iter()
                .filter(|a| a.client == c)
                .map(|a| spec.mix.names()[a.function as usize].as_str())
                .collect();
            assert!(!simulated.is_empty());
            let live = crate::mix::client_sequence(&spec.mix, spec.seed, c, simulated.len());
            assert_eq!(simulated, live, "client {c}");
        }
    }

    #[test]
    fn bounds_are_checked() {
        assert_eq!(check_clients(1), Ok(1));
        assert_eq!(check_clients(10_000), Ok(10_000));
        for bad in [0, 10_001, u64::MAX] {
            assert_eq!(check_clients(bad), Err(ClosedLoopError::BadClients(bad)));
        }
        assert!(check_duration(Duration::ZERO).is_err());
        assert!(check_duration(Duration::from_secs(86_401)).is_err());
        assert!(spec(2, 10, Think::None).check().is_ok());
        let p = spec(2, 1500, Think::Constant(Duration::from_millis(4))).parameters();
        assert_eq!(p["clients"], 2);
        assert_eq!(p["duration_s"], 1.5);
        assert_eq!(p["think"], "const:4");
        assert_eq!(p["function_count"], 5);
        assert_eq!(p["seed"], 9);
        assert!(p["probabilities"]["F1"].as_f64().unwrap() > 0.4);
    }

    #[test]
    fn stage_lists_parse_and_are_bounded() {
        assert_eq!(Stages::parse("20").unwrap().counts(), [20]);
        let s = Stages::parse("20, 50,100").unwrap();
        assert_eq!((s.counts(), s.max(), s.len()), (&[20, 50, 100][..], 100, 3));
        assert_eq!(s.to_string(), "20,50,100");
        let reason = |list: &str| Stages::parse(list).unwrap_err().to_string();
        assert!(
            reason("20,,50").contains("stage 2 is empty"),
            "{}",
            reason("20,,50")
        );
        assert!(reason("").contains("stage 1 is empty"));
        assert!(reason("20,x").contains("\"x\" is not a count"));
        assert!(reason("0").contains("--clients must be 1..=10000, got 0"));
        assert!(reason("5,10001").contains("got 10001"));
        let many = vec!["1"; MAX_STAGES + 1].join(",");
        assert!(reason(&many).contains("at most 32 stages"));
        assert!(Stages::parse(&vec!["1"; MAX_STAGES].join(",")).is_ok());
        assert!(check_total(32, Duration::from_secs(2700)).is_ok());
        assert!(check_total(32, Duration::from_secs(2701)).is_err());
    }

    #[test]
    fn clients_are_active_in_the_stages_their_index_is_below_the_count_of() {
        let s = Stages::parse("2,4,1").unwrap();
        // Stages of 10 µs: [0, 10) 2 clients, [10, 20) 4, [20, 30) 1.
        assert_eq!(s.active_from(0, 0, 10), Some(0));
        assert_eq!(s.active_from(1, 25, 10), None);
        assert_eq!(s.active_from(3, 0, 10), Some(10));
        assert_eq!(s.active_from(3, 15, 10), Some(15));
        assert_eq!(s.active_from(0, 29, 10), Some(29));
        assert_eq!(s.active_from(0, 30, 10), None);
        assert_eq!(
            (s.stage_at(9, 10), s.stage_at(10, 10), s.stage_at(99, 10)),
            (0, 1, 2)
        );
    }

    #[test]
    fn stages_add_clients_at_the_boundary_and_stop_the_surplus() {
        // 10 ms calls, no think, stages of 100 ms: 1 client, then 3, then 1.
        let mut spec = spec(1, 100, Think::None);
        spec.clients = Stages::parse("1,3,1").unwrap();
        let mut s = ClosedLoopSource::new(&spec);
        let sent = drive(&mut s, 10 * MS);
        // Client 0: every 10 ms for 300 ms; clients 1 and 2: every 10 ms
        // from 100 ms to 200 ms.
        assert_eq!(s.calls_per_client(), [30, 10, 10]);
        for a in &sent {
            let t = a.time.as_millis();
            assert!(a.client == 0 || (100..200).contains(&t), "{a:?}");
        }
        let calls: Vec<u64> = s.stage_summaries().iter().map(|x| x.calls).collect();
        assert_eq!(calls, [10, 30, 10]);
        let ok: Vec<u64> = s.stage_summaries().iter().map(|x| x.ok).collect();
        assert_eq!(ok, [10, 30, 10]);
        assert_eq!(s.stage_summaries()[1].response_p99_ms, 10);
    }
}
