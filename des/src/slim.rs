//! The balancer's SlimFaas layer in the simulation: a cap on parallel
//! calls per function, the calls over it waiting in arrival order
//! (synchronous ones ahead of asynchronous ones), a bounded wait for
//! synchronous calls, and scale-to-zero.
//!
//! The rules are the live balancer's, run here as the same code:
//! [`policy::admission_queue::AdmissionQueue`] decides, unchanged, whether
//! a call runs at once or waits and which waiting call gets a freed slot
//! (the live balancer's `load_balancer::slim` module is its other driver).
//! This module only holds the settings the simulator needs, the queue with
//! its keys, and the figures of the wait; the engine
//! ([`crate::engine`]) calls it:
//!
//! - A call arrives ([`Gate::arrive`]): it runs at once (the scheduler
//!   picks its node now), or waits. A waiting synchronous call gives up
//!   after its function's `wait_s` (the live rule: a 503 there; here a
//!   failed call, an error line `no slot for F within S s`).
//! - A call that held a slot ends (completed, failed or rejected by every
//!   node) ([`Gate::finished`]): the slot goes to the call the queue names,
//!   which is dispatched at that instant (the scheduler chooses its node
//!   then). A call's wait is part of its response time (the log line's
//!   start is its arrival) and is reported apart ([`QueueSummary`]); the
//!   scheduler hears of its duration from its dispatch, as live, where
//!   the balancer dispatches a call once it holds a slot.
//!
//! Synchronous or asynchronous: the scenario format
//! (`FunctionName,StartTimeMs[,DurationMs[,MemoryMb]]`) has no column for
//! it, so scenario and closed-loop calls are synchronous; an
//! [`crate::ArrivalSource`] may say otherwise per call
//! ([`crate::source::Arrival::kind`]).
//!
//! # Scale to zero ([`SlimSettings::scale_to_zero`])
//! SlimFaas removes a function's instances once it has had no call for
//! its `idle_before_zero_s` (default 300 s). In the simulator this is the
//! Lambda instance model with the `fixed` keep-alive policy and
//! `keep_alive` = the defaults' `idle_before_zero_s`
//! ([`SlimSettings::instance_model`]); a function with an idle time of its
//! own has it as its keep-alive in the node model
//! ([`SlimSettings::own_keep_alives`], `policy::node::FunctionTable::set_keep_alive`).
//! An idle instance goes after that long without a call, so the
//! function's last instance goes `idle_before_zero_s` after its last call
//! ended, and the next call is a cold start, as after a scale to zero.
//!
//! Why not the balancer's rule itself (`policy::scale_to_zero::decide`,
//! run on the DES clock)? With every instance's keep-alive equal to the
//! idle time, each instance has been idle at least as long as its
//! function when the rule would fire, so it is gone already: the rule
//! would remove nothing. Where the two differ: SlimFaas keeps every
//! replica until the whole function is idle; the keep-alive pool lets each
//! idle instance go on its own (with several instances, the count falls
//! one by one, earlier than live). The live balancer looks every 250 ms
//! (its `SCALE_TICK`) and the worker removes the instances after an HTTP
//! round trip; here they go at the exact instant.
//!
//! # Minimum instances (`min_instances` > 0)
//! As the live balancer's task (`load_balancer::slim::scaling`): every
//! [`KEEP_TICK`] (1 s) from time 0, a function whose instances (ready or
//! starting, summed over the nodes: `NodeModel::function_instances`)
//! number fewer than its minimum gets the missing ones started on the
//! nodes the scheduler picks for as many calls (each selection ended at
//! once as an unsuccessful call, as live), each node asked for what it has
//! plus its share (`NodeModel::start_instances`; a node without the
//! function's image builds it first). They cost what a cold start costs
//! (`lambda_cold_ms` plus the package load), are idle once up, and expire
//! by the keep-alive like any idle instance (the live worker's keep-alive
//! trims them too): the next tick starts them again. The count is the
//! summary's `queue.min_instances_started`. Only functions of the run
//! (the scenario's or the mix's) are kept; the instance model must be
//! able to start instances (Lambda, or REST mode: there one per node).
//! The live tick reads the workers' instances over HTTP (at most one tick
//! old); here the model's counts at the tick.
//!
//! # Retries
//! The live balancer retries an attempt that ended with 500, 502, 503 or
//! a time-out after the function's `retry_delays_s` (2, 4, 8 s by
//! default), a synchronous call only when the function is safe to repeat
//! (the sample functions are, by default), keeping its slot meanwhile; an
//! asynchronous call goes back to the queue at its retry time and gives
//! its slot back. [`Gate::retry`] takes that decision with the live code
//! (`policy::admission_queue::retry_decision`). What counts as what in the
//! simulator:
//!
//! - a call every node refused for room (the node admission rules,
//!   `--max-running` with `--overflow reject|elsewhere`) is the live
//!   worker's 503: retried;
//! - no node from the scheduler is the live "not dispatched": a
//!   synchronous call fails at once (the live 503), an asynchronous one
//!   is tried again after [`NOT_DISPATCHED_POLL`] without spending a
//!   retry;
//! - a synchronous call that waited `wait_s` for a slot is the balancer's
//!   own 503 to its client, not an attempt: never retried (as live);
//! - no simulated attempt times out or ends with a 500 or 502 (the model
//!   runs every call to its end; `timeout_s` is not modelled).
//!
//! A retried call keeps its arrival as its log line's start; a call that
//! fails with its retries spent says so in its error line
//! (`retries spent (N attempts)`). The summary's `queue.retries` and
//! `queue.retries_spent` count them, overall and per function.
//!
//! Validation (`tests/slim.rs`): hand-worked timelines (cap 1, three calls
//! of 1 s at 0, 0.1, 0.2 s start at 0, 1, 2 s and wait 0, 0.9, 1.8 s;
//! synchronous ahead of asynchronous; the `wait_s` time-out; scale to
//! zero), the cap never exceeded, and queueing theory: Poisson 12.5/s,
//! 1 s service, cap 16 (M/D/16) waits 41.2 ms on average, under M/M/16's
//! 75.5 ms (Erlang C) and near the usual M/D/c estimate of half of it.

use std::collections::BTreeMap;
use std::time::Duration;

use policy::admission_queue::{
    retry_decision, Admission, AdmissionQueue, AttemptOutcome, CallKind, RetryDecision,
    DEFAULT_RETRY_DELAYS,
};
use policy::node::{InstanceModel, KeepAlivePolicy};
use policy::Time;
use serde::Serialize;

use crate::engine::{LatencySummary, MsStats};

/// Longest `wait_s` and `idle_before_zero_s` (a day, as the live settings).
pub const MAX_SECONDS: f64 = 86_400.0;

/// How soon an asynchronous call that no node took is tried again,
/// without spending a retry (the live balancer's poll).
pub const NOT_DISPATCHED_POLL: Duration = Duration::from_millis(500);

/// How often the minimum instances are looked at (the live balancer's
/// `KEEP_TICK`).
pub const KEEP_TICK: Duration = Duration::from_secs(1);

/// One function's settings, as far as the simulation uses them (the live
/// balancer's `FunctionSettings` has more: time-outs, `max_queued`,
/// `instances_at_start`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlimFunction {
    /// Parallel calls at most (SlimFaas's `NumberParallelRequest`).
    pub max_parallel: u32,
    /// How long a synchronous call waits for a slot before it fails, s.
    pub wait_s: f64,
    /// Idle time before the function's instances are removed, s (used
    /// with [`SlimSettings::scale_to_zero`]).
    pub idle_before_zero_s: f64,
    /// Instances kept started on the nodes, summed (module doc).
    pub min_instances: u32,
    /// Delays before each retry, s (default 2, 4, 8; recorded only when
    /// other than that, so that summaries of runs without retries are as
    /// before).
    #[serde(skip_serializing_if = "is_default_delays")]
    pub retry_delays_s: Vec<f64>,
    /// Whether a call may run twice (a synchronous call is retried only
    /// then). None: the 30 sample functions are, any other is not (the
    /// live default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safe_to_repeat: Option<bool>,
}

fn default_delays() -> Vec<f64> {
    DEFAULT_RETRY_DELAYS
        .iter()
        .map(Duration::as_secs_f64)
        .collect()
}

fn is_default_delays(delays: &[f64]) -> bool {
    delays == default_delays().as_slice()
}

impl Default for SlimFunction {
    /// SlimFaas's defaults, as the live balancer's.
    fn default() -> Self {
        Self {
            max_parallel: policy::admission_queue::DEFAULT_MAX_PARALLEL,
            wait_s: 120.0,
            idle_before_zero_s: 300.0,
            min_instances: 0,
            retry_delays_s: default_delays(),
            safe_to_repeat: None,
        }
    }
}

impl SlimFunction {
    /// Whether a call of `function` may run twice (the field, or the live
    /// default: the sample functions are).
    pub fn safe_to_repeat(&self, function: &str) -> bool {
        self.safe_to_repeat
            .unwrap_or_else(|| sample_functions::catalog().get(function).is_some())
    }
}

/// The SlimFaas layer of a run (`simulator des --function-settings FILE`,
/// `--max-parallel N`, `--scale-to-zero`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SlimSettings {
    /// Settings of the functions not in `functions`.
    pub defaults: SlimFunction,
    pub functions: BTreeMap<String, SlimFunction>,
    /// The settings file they were read from, if any (recorded).
    pub file: Option<String>,
    /// Instances are removed after `idle_before_zero_s` without a call
    /// (module doc); the run's instance model is then
    /// [`SlimSettings::instance_model`].
    pub scale_to_zero: bool,
}

/// Settings the simulation cannot follow.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SlimError {
    #[error("{function}: {field} must be in {range}, is {value}")]
    OutOfRange {
        function: String,
        field: &'static str,
        range: &'static str,
        value: f64,
    },
    #[error("{function}: retry_delays_s has {count} delays, at most {MAX_RETRIES}")]
    TooManyRetries { function: String, count: usize },
}

/// Most retries a function may ask for (the live settings' bound).
pub const MAX_RETRIES: usize = 16;

impl SlimSettings {
    /// The settings of `function`.
    pub fn get(&self, function: &str) -> &SlimFunction {
        self.functions.get(function).unwrap_or(&self.defaults)
    }

    /// Every function's settings within bounds, and (with scale to zero)
    /// what the instance model can express (module doc).
    pub fn check(&self) -> Result<(), SlimError> {
        let all = std::iter::once(("defaults", &self.defaults))
            .chain(self.functions.iter().map(|(n, s)| (n.as_str(), s)));
        for (function, s) in all {
            let bad = |field, range, value| SlimError::OutOfRange {
                function: function.to_string(),
                field,
                range,
                value,
            };
            if s.max_parallel == 0 {
                return Err(bad("max_parallel", "1..", 0.0));
            }
            if !(0.0..=MAX_SECONDS).contains(&s.wait_s) {
                return Err(bad("wait_s", "[0, 86400]", s.wait_s));
            }
            if !(s.idle_before_zero_s > 0.0 && s.idle_before_zero_s <= MAX_SECONDS) {
                return Err(bad(
                    "idle_before_zero_s",
                    "(0, 86400]",
                    s.idle_before_zero_s,
                ));
            }
            let retry_ok = |d: &f64| (0.0..=MAX_SECONDS).contains(d);
            if let Some(d) = s.retry_delays_s.iter().find(|d| !retry_ok(d)) {
                return Err(bad("retry_delays_s", "[0, 86400]", *d));
            }
            if s.retry_delays_s.len() > MAX_RETRIES {
                return Err(SlimError::TooManyRetries {
                    function: function.to_string(),
                    count: s.retry_delays_s.len(),
                });
            }
        }
        Ok(())
    }

    /// The instance model of scale to zero: Lambda, `fixed` keep-alive of
    /// the defaults' `idle_before_zero_s` (functions with another have
    /// their own: [`SlimSettings::own_keep_alives`]).
    pub fn instance_model(&self) -> InstanceModel {
        InstanceModel::lambda(
            Duration::from_secs_f64(self.defaults.idle_before_zero_s),
            KeepAlivePolicy::Fixed,
        )
    }

    /// With scale to zero, the functions whose `idle_before_zero_s`
    /// differs from the defaults', with it: their keep-alive in the node
    /// model (`policy::node::FunctionTable::set_keep_alive`). Empty
    /// without scale to zero, and when every function has the defaults'.
    pub fn own_keep_alives(&self) -> impl Iterator<Item = (&str, Duration)> {
        let common = self.defaults.idle_before_zero_s;
        self.functions
            .iter()
            .filter(move |(_, f)| self.scale_to_zero && f.idle_before_zero_s != common)
            .map(|(name, f)| {
                (
                    name.as_str(),
                    Duration::from_secs_f64(f.idle_before_zero_s.clamp(0.0, MAX_SECONDS)),
                )
            })
    }
}

/// The wait figures of one function, or of all.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct WaitSummary {
    /// Calls that went through the queue (dispatched or gave up).
    pub calls: u64,
    /// Calls that had to wait (the function was at its cap, or others
    /// waited before them).
    pub waited: u64,
    /// Synchronous calls that waited `wait_s` without a slot (failed).
    pub timed_out: u64,
    /// Wait of the dispatched calls (0 for those that ran at once), whole
    /// ms: mean and percentiles (per function from a histogram of 3
    /// significant digits, overall of 4).
    pub wait_ms: LatencySummary,
    /// Most calls waiting at once.
    pub max_queue_length: u64,
    /// Attempts tried again after a failure the live balancer retries
    /// (module doc; absent when none).
    #[serde(skip_serializing_if = "is_zero")]
    pub retries: u64,
    /// Calls that failed with their retries spent (absent when none).
    #[serde(skip_serializing_if = "is_zero")]
    pub retries_spent: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What the SlimFaas layer did: the summary's `queue`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct QueueSummary {
    #[serde(flatten)]
    pub overall: WaitSummary,
    /// The functions whose calls waited or were retried at least once
    /// (every other function's calls all ran at once: their waits are 0).
    pub functions: BTreeMap<String, WaitSummary>,
    /// Instances started to keep the functions' `min_instances` (module
    /// doc; absent when none).
    #[serde(skip_serializing_if = "is_zero")]
    pub min_instances_started: u64,
}

/// Per function: its counts, and its waits once one of its calls waited.
#[derive(Debug, Default)]
struct FunctionStats {
    calls: u64,
    waited: u64,
    timed_out: u64,
    dispatched: u64,
    max_queue_length: u64,
    retries: u64,
    retries_spent: u64,
    /// Created at its first wait (with the zero waits before it).
    waits: Option<Box<MsStats>>,
}

/// What [`Gate::arrive`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gated {
    /// Dispatch the call now.
    Run,
    /// The call waits under this key; a synchronous call gives up at
    /// `give_up_at`.
    Wait { key: u64, give_up_at: Option<Time> },
}

/// The queue of a run: [`AdmissionQueue`] keyed by a call number, each
/// waiting key's job, the per-function settings resolved by function id,
/// and the figures.
#[derive(Debug)]
pub struct Gate {
    queue: AdmissionQueue<u64>,
    /// The job, function id and start of the wait of each waiting key.
    waiting: rustc_hash::FxHashMap<u64, (u32, u32, Time)>,
    next_key: u64,
    /// By function id: how long a synchronous call may wait.
    wait: Vec<Duration>,
    /// By function id: its retry delays and whether it is safe to repeat.
    retry: Vec<(Vec<Duration>, bool)>,
    stats: Vec<FunctionStats>,
    overall: MsStats,
    overall_max_queue: u64,
}

impl Gate {
    /// The gate of `settings` for the functions `names` (ids index it).
    pub fn new(settings: &SlimSettings, names: &[String]) -> Self {
        let mut queue = AdmissionQueue::new(settings.defaults.max_parallel);
        let mut wait = Vec::with_capacity(names.len());
        let mut retry = Vec::with_capacity(names.len());
        let seconds = |s: f64| Duration::from_secs_f64(s.clamp(0.0, MAX_SECONDS));
        for name in names {
            let s = settings.get(name);
            if s.max_parallel != settings.defaults.max_parallel {
                queue.set_max_parallel(name, s.max_parallel);
            }
            wait.push(seconds(s.wait_s));
            let delays = s
                .retry_delays_s
                .iter()
                .take(MAX_RETRIES)
                .map(|d| seconds(*d));
            retry.push((delays.collect(), s.safe_to_repeat(name)));
        }
        Self {
            queue,
            waiting: rustc_hash::FxHashMap::default(),
            next_key: 0,
            wait,
            retry,
            stats: (0..names.len()).map(|_| FunctionStats::default()).collect(),
            overall: MsStats::default(),
            overall_max_queue: 0,
        }
    }

    /// Call `job` of `function` (id, named `name`) arrives at `now`.
    pub fn arrive(
        &mut self,
        function: u32,
        name: &str,
        job: u32,
        kind: CallKind,
        now: Time,
    ) -> Gated {
        self.stats[function as usize].calls += 1;
        self.enter(function, name, job, kind, now)
    }

    /// An asynchronous call whose attempt failed enters the queue again
    /// at its retry time (as live: it is stored `queued` again, and the
    /// drain admits it under the cap). Not a new call; a wait again.
    pub fn requeue(&mut self, function: u32, name: &str, job: u32, now: Time) -> Gated {
        self.enter(function, name, job, CallKind::Async, now)
    }

    fn enter(&mut self, function: u32, name: &str, job: u32, kind: CallKind, now: Time) -> Gated {
        let key = self.next_key;
        self.next_key += 1;
        let f = function as usize;
        match self.queue.arrive(name, key, kind, now) {
            Admission::Run => {
                self.dispatched(function, Duration::ZERO);
                Gated::Run
            }
            Admission::Wait => {
                self.waiting.insert(key, (job, function, now));
                let counts = self.queue.counts(name);
                let queued = (counts.sync_waiting + counts.async_waiting) as u64;
                let s = &mut self.stats[f];
                s.waited += 1;
                s.max_queue_length = s.max_queue_length.max(queued);
                let all: u64 = self.waiting.len() as u64;
                self.overall_max_queue = self.overall_max_queue.max(all);
                let give_up_at = (kind == CallKind::Sync).then(|| now.saturating_add(self.wait[f]));
                Gated::Wait { key, give_up_at }
            }
        }
    }

    /// A call of `function` of `kind` whose attempt ended with `outcome`
    /// at `now`, after `retries_done` retries: the live balancer's
    /// decision (`policy::admission_queue::retry_decision`, with the
    /// synchronous route's rules: no retry unless safe to repeat, none
    /// when no node took it), counted.
    pub fn retry(
        &mut self,
        function: u32,
        kind: CallKind,
        outcome: AttemptOutcome,
        retries_done: u32,
        now: Time,
    ) -> RetryDecision {
        let f = function as usize;
        let (delays, safe) = &self.retry[f];
        let decision = match (kind, outcome) {
            (CallKind::Sync, _) if !safe => RetryDecision::Done,
            (CallKind::Sync, AttemptOutcome::NotDispatched) => RetryDecision::Done,
            _ => retry_decision(
                outcome,
                retries_done,
                delays,
                *safe,
                NOT_DISPATCHED_POLL,
                now,
            ),
        };
        match decision {
            RetryDecision::RetryAt(_) if outcome != AttemptOutcome::NotDispatched => {
                self.stats[f].retries += 1;
            }
            RetryDecision::GiveUp => self.stats[f].retries_spent += 1,
            _ => {}
        }
        decision
    }

    /// A call of `name` that held a slot ended: the job that gets the
    /// slot, if any, with when its wait began (dispatch it now, and count
    /// its wait with [`Gate::dispatched`]).
    pub fn finished(&mut self, name: &str) -> Option<(u32, Time)> {
        let key = self.queue.finished(name)?;
        self.waiting
            .remove(&key)
            .map(|(job, _, since)| (job, since))
    }

    /// The job's wait ended with a slot, after `waited`: counted.
    pub fn dispatched(&mut self, function: u32, waited: Duration) {
        let ms = waited.as_millis() as u64;
        self.overall.record(ms);
        let s = &mut self.stats[function as usize];
        s.dispatched += 1;
        if ms > 0 || s.waits.is_some() {
            let before = s.dispatched - 1;
            let waits = s.waits.get_or_insert_with(|| {
                let mut h = Box::new(MsStats::with_sigfig(3));
                h.record_zeros(before);
                h
            });
            waits.record(ms);
        }
    }

    /// The waiting call `key` gives up (its synchronous wait is over): its
    /// job, if it still waits (functions named by `names`).
    pub fn give_up(&mut self, key: u64, names: &[String]) -> Option<u32> {
        let (job, function, _) = self.waiting.remove(&key)?;
        self.queue
            .remove_waiting(&names[function as usize], |k| *k == key);
        self.stats[function as usize].timed_out += 1;
        Some(job)
    }

    /// How long a synchronous call of `function` may wait, s.
    pub fn wait_s(&self, function: u32) -> f64 {
        self.wait[function as usize].as_secs_f64()
    }

    /// The cap of `name`.
    pub fn max_parallel(&self, name: &str) -> u32 {
        self.queue.counts(name).max_parallel
    }

    /// The figures, functions named by `names`.
    pub fn summary(&self, names: &[String]) -> QueueSummary {
        let mut overall = WaitSummary {
            max_queue_length: self.overall_max_queue,
            ..WaitSummary::default()
        };
        let mut dispatched = 0;
        let mut functions = BTreeMap::new();
        for (s, name) in self.stats.iter().zip(names) {
            overall.calls += s.calls;
            overall.waited += s.waited;
            overall.timed_out += s.timed_out;
            overall.retries += s.retries;
            overall.retries_spent += s.retries_spent;
            dispatched += s.dispatched;
            if s.waited == 0 && s.retries == 0 && s.retries_spent == 0 {
                continue;
            }
            let wait_ms = s
                .waits
                .as_ref()
                .map(|w| w.summary(s.dispatched))
                .unwrap_or_default();
            functions.insert(
                name.clone(),
                WaitSummary {
                    calls: s.calls,
                    waited: s.waited,
                    timed_out: s.timed_out,
                    wait_ms,
                    max_queue_length: s.max_queue_length,
                    retries: s.retries,
                    retries_spent: s.retries_spent,
                },
            );
        }
        overall.wait_ms = self.overall.summary(dispatched);
        QueueSummary {
            overall,
            functions,
            min_instances_started: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_idle_times_become_keep_alives_and_bad_delays_are_refused() {
        let mut s = SlimSettings {
            scale_to_zero: true,
            ..SlimSettings::default()
        };
        assert_eq!(s.check(), Ok(()));
        assert_eq!(
            s.instance_model(),
            InstanceModel::lambda(Duration::from_secs(300), KeepAlivePolicy::Fixed)
        );
        let idle = |idle_before_zero_s| SlimFunction {
            idle_before_zero_s,
            min_instances: 2,
            ..SlimFunction::default()
        };
        s.functions.insert("W1".into(), idle(60.0));
        s.functions.insert("W2".into(), idle(300.0));
        assert_eq!(s.check(), Ok(()));
        let own: Vec<_> = s.own_keep_alives().collect();
        assert_eq!(own, vec![("W1", Duration::from_secs(60))]);
        // Without scale to zero, the idle times are only recorded.
        s.scale_to_zero = false;
        assert_eq!(s.own_keep_alives().count(), 0);
        s.defaults.retry_delays_s = vec![1.0; MAX_RETRIES + 1];
        let e = s.check().unwrap_err().to_string();
        assert!(e.contains("defaults") && e.contains("17 delays"), "{e}");
        s.defaults.retry_delays_s = vec![-1.0];
        assert!(s
            .check()
            .unwrap_err()
            .to_string()
            .contains("retry_delays_s"));
        s.defaults.retry_delays_s = default_delays();
        s.defaults.wait_s = -1.0;
        assert!(s.check().unwrap_err().to_string().contains("wait_s"));
    }

    /// The live rules of a retry: a synchronous call of a sample function
    /// (safe to repeat) after a 503 at 10 s is tried again at 12, 14 (+4
    /// after the second failure's 10 s) ... until its delays are spent; a
    /// function not safe to repeat is not retried when synchronous; a
    /// call no node took is not retried when synchronous, and polled
    /// without spending a retry when asynchronous.
    #[test]
    fn retries_follow_the_live_rules() {
        let names = vec!["W1".to_string(), "mine".to_string()];
        let mut gate = Gate::new(&SlimSettings::default(), &names);
        let t = Time::from_secs;
        let busy = AttemptOutcome::Replied(503);
        let sync = CallKind::Sync;
        assert_eq!(
            gate.retry(0, sync, busy, 0, t(10)),
            RetryDecision::RetryAt(t(12))
        );
        assert_eq!(
            gate.retry(0, sync, busy, 1, t(10)),
            RetryDecision::RetryAt(t(14))
        );
        assert_eq!(
            gate.retry(0, sync, busy, 2, t(10)),
            RetryDecision::RetryAt(t(18))
        );
        assert_eq!(gate.retry(0, sync, busy, 3, t(10)), RetryDecision::GiveUp);
        assert_eq!(
            gate.retry(0, sync, AttemptOutcome::Replied(404), 0, t(10)),
            RetryDecision::Done
        );
        assert_eq!(gate.retry(1, sync, busy, 0, t(10)), RetryDecision::Done);
        assert_eq!(
            gate.retry(1, CallKind::Async, busy, 0, t(10)),
            RetryDecision::RetryAt(t(12))
        );
        let none = AttemptOutcome::NotDispatched;
        assert_eq!(gate.retry(0, sync, none, 0, t(10)), RetryDecision::Done);
        assert_eq!(
            gate.retry(0, CallKind::Async, none, 3, t(10)),
            RetryDecision::RetryAt(t(10) + NOT_DISPATCHED_POLL)
        );
        let q = gate.summary(&names);
        assert_eq!((q.overall.retries, q.overall.retries_spent), (4, 1));
        assert_eq!(
            (q.functions["W1"].retries, q.functions["mine"].retries),
            (3, 1)
        );
    }

    #[test]
    fn the_gate_counts_waits_and_queue_lengths() {
        let names = vec!["f".to_string(), "g".to_string()];
        let settings = SlimSettings {
            defaults: SlimFunction {
                max_parallel: 1,
                wait_s: 5.0,
                ..SlimFunction::default()
            },
            ..SlimSettings::default()
        };
        let mut gate = Gate::new(&settings, &names);
        let t = Time::from_millis;
        assert_eq!(gate.arrive(0, "f", 10, CallKind::Sync, t(0)), Gated::Run);
        assert_eq!(
            gate.arrive(0, "f", 11, CallKind::Sync, t(100)),
            Gated::Wait {
                key: 1,
                give_up_at: Some(t(5100))
            }
        );
        assert_eq!(
            gate.arrive(0, "f", 12, CallKind::Async, t(200)),
            Gated::Wait {
                key: 2,
                give_up_at: None
            }
        );
        assert_eq!(gate.arrive(1, "g", 13, CallKind::Sync, t(0)), Gated::Run);
        assert_eq!(gate.finished("f"), Some((11, t(100))));
        gate.dispatched(0, Duration::from_millis(900));
        // The async call waits on; a stale give-up of a dispatched key is
        // nothing.
        assert_eq!(gate.give_up(1, &names), None);
        assert_eq!(gate.finished("f"), Some((12, t(200))));
        gate.dispatched(0, Duration::from_millis(1800));
        let q = gate.summary(&names);
        assert_eq!(
            (q.overall.calls, q.overall.waited, q.overall.timed_out),
            (4, 2, 0)
        );
        assert_eq!(q.overall.max_queue_length, 2);
        // Waits 0, 900, 1800 for f and 0 for g.
        assert_eq!(q.overall.wait_ms.mean, 675.0);
        assert_eq!(q.overall.wait_ms.max, 1800.0);
        let f = &q.functions["f"];
        assert_eq!((f.calls, f.waited, f.max_queue_length), (3, 2, 2));
        assert_eq!(f.wait_ms.mean, 900.0);
        assert_eq!(f.wait_ms.p50, 900.0);
        assert!(!q.functions.contains_key("g"));
    }
}
