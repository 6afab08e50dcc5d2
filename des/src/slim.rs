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
//! ([`crate::source::Arrival::kind`]). Retries are not simulated: a
//! simulated attempt never ends with a 500, 502, 503 or a time-out.
//!
//! Scale to zero ([`SlimSettings::scale_to_zero`]): SlimFaas removes a
//! function's instances once it has had no call for `idle_before_zero_s`
//! (default 300 s). In the simulator this is the Lambda instance model
//! with the `fixed` keep-alive policy and `keep_alive = idle_before_zero_s`
//! ([`SlimSettings::instance_model`]): an idle instance goes after that
//! long without a call, so the function's last instance goes
//! `idle_before_zero_s` after its last call ended, and the next call is a
//! cold start, as after a scale to zero. The difference: SlimFaas keeps
//! every replica until the whole function is idle, the keep-alive pool lets
//! each idle instance go on its own (with several instances, the count
//! falls one by one rather than at once). The keep-alive is one period per
//! node model, so every function of a run shares one `idle_before_zero_s`,
//! and `min_instances` must be 0 (the node model has no per-function floor
//! a driver can set); [`SlimSettings::check`] refuses other settings rather
//! than simulating something else.
//!
//! Validation (`tests/slim.rs`): hand-worked timelines (cap 1, three calls
//! of 1 s at 0, 0.1, 0.2 s start at 0, 1, 2 s and wait 0, 0.9, 1.8 s;
//! synchronous ahead of asynchronous; the `wait_s` time-out; scale to
//! zero), the cap never exceeded, and queueing theory: Poisson 12.5/s,
//! 1 s service, cap 16 (M/D/16) waits 41.2 ms on average, under M/M/16's
//! 75.5 ms (Erlang C) and near the usual M/D/c estimate of half of it.

use std::collections::BTreeMap;
use std::time::Duration;

use policy::admission_queue::{Admission, AdmissionQueue, CallKind};
use policy::node::{InstanceModel, KeepAlivePolicy};
use policy::Time;
use serde::Serialize;

use crate::engine::{LatencySummary, MsStats};

/// Longest `wait_s` and `idle_before_zero_s` (a day, as the live settings).
pub const MAX_SECONDS: f64 = 86_400.0;

/// One function's settings, as far as the simulation uses them (the live
/// balancer's `FunctionSettings` has more: retries, time-outs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SlimFunction {
    /// Parallel calls at most (SlimFaas's `NumberParallelRequest`).
    pub max_parallel: u32,
    /// How long a synchronous call waits for a slot before it fails, s.
    pub wait_s: f64,
    /// Idle time before the function's instances are removed, s (used
    /// with [`SlimSettings::scale_to_zero`]).
    pub idle_before_zero_s: f64,
    /// Instances kept however idle (must be 0: module doc).
    pub min_instances: u32,
}

impl Default for SlimFunction {
    /// SlimFaas's defaults, as the live balancer's.
    fn default() -> Self {
        Self {
            max_parallel: policy::admission_queue::DEFAULT_MAX_PARALLEL,
            wait_s: 120.0,
            idle_before_zero_s: 300.0,
            min_instances: 0,
        }
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
    #[error("scale to zero: {function}'s idle_before_zero_s ({value} s) differs from the defaults' ({defaults} s); the simulator keeps one keep-alive period for every function (des::slim)")]
    IdleTimesDiffer {
        function: String,
        value: f64,
        defaults: f64,
    },
    #[error("scale to zero: {function} has min_instances {value}; the simulator cannot keep a minimum of instances per function yet (des::slim), only 0")]
    MinInstances { function: String, value: u32 },
}

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
            if !self.scale_to_zero {
                continue;
            }
            if s.min_instances != 0 {
                return Err(SlimError::MinInstances {
                    function: function.to_string(),
                    value: s.min_instances,
                });
            }
            if s.idle_before_zero_s != self.defaults.idle_before_zero_s {
                return Err(SlimError::IdleTimesDiffer {
                    function: function.to_string(),
                    value: s.idle_before_zero_s,
                    defaults: self.defaults.idle_before_zero_s,
                });
            }
        }
        Ok(())
    }

    /// The instance model of scale to zero: Lambda, `fixed` keep-alive of
    /// the (common, [`SlimSettings::check`]) `idle_before_zero_s`.
    pub fn instance_model(&self) -> InstanceModel {
        InstanceModel::lambda(
            Duration::from_secs_f64(self.defaults.idle_before_zero_s),
            KeepAlivePolicy::Fixed,
        )
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
}

/// What the SlimFaas layer did: the summary's `queue`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct QueueSummary {
    #[serde(flatten)]
    pub overall: WaitSummary,
    /// The functions whose calls waited at least once (every other
    /// function's calls all ran at once: their waits are 0).
    pub functions: BTreeMap<String, WaitSummary>,
}

/// Per function: its counts, and its waits once one of its calls waited.
#[derive(Debug, Default)]
struct FunctionStats {
    calls: u64,
    waited: u64,
    timed_out: u64,
    dispatched: u64,
    max_queue_length: u64,
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
    /// The job and function id of each waiting key.
    waiting: rustc_hash::FxHashMap<u64, (u32, u32)>,
    next_key: u64,
    /// By function id: how long a synchronous call may wait.
    wait: Vec<Duration>,
    stats: Vec<FunctionStats>,
    overall: MsStats,
    overall_max_queue: u64,
}

impl Gate {
    /// The gate of `settings` for the functions `names` (ids index it).
    pub fn new(settings: &SlimSettings, names: &[String]) -> Self {
        let mut queue = AdmissionQueue::new(settings.defaults.max_parallel);
        let mut wait = Vec::with_capacity(names.len());
        for name in names {
            let s = settings.get(name);
            if s.max_parallel != settings.defaults.max_parallel {
                queue.set_max_parallel(name, s.max_parallel);
            }
            wait.push(Duration::from_secs_f64(s.wait_s.clamp(0.0, MAX_SECONDS)));
        }
        Self {
            queue,
            waiting: rustc_hash::FxHashMap::default(),
            next_key: 0,
            wait,
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
        let key = self.next_key;
        self.next_key += 1;
        let f = function as usize;
        self.stats[f].calls += 1;
        match self.queue.arrive(name, key, kind, now) {
            Admission::Run => {
                self.dispatched(function, Duration::ZERO);
                Gated::Run
            }
            Admission::Wait => {
                self.waiting.insert(key, (job, function));
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

    /// A call of `name` that held a slot ended: the job that gets the
    /// slot, if any (dispatch it now, and count its wait with
    /// [`Gate::dispatched`]).
    pub fn finished(&mut self, name: &str) -> Option<u32> {
        let key = self.queue.finished(name)?;
        self.waiting.remove(&key).map(|(job, _)| job)
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
        let (job, function) = self.waiting.remove(&key)?;
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
            dispatched += s.dispatched;
            if s.waited == 0 {
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
                },
            );
        }
        overall.wait_ms = self.overall.summary(dispatched);
        QueueSummary { overall, functions }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_to_zero_refuses_what_the_keep_alive_cannot_express() {
        let mut s = SlimSettings {
            scale_to_zero: true,
            ..SlimSettings::default()
        };
        assert_eq!(s.check(), Ok(()));
        assert_eq!(
            s.instance_model(),
            InstanceModel::lambda(Duration::from_secs(300), KeepAlivePolicy::Fixed)
        );
        s.functions.insert(
            "W1".into(),
            SlimFunction {
                idle_before_zero_s: 60.0,
                ..SlimFunction::default()
            },
        );
        let e = s.check().unwrap_err().to_string();
        assert!(e.contains("W1") && e.contains("60"), "{e}");
        s.functions.insert(
            "W1".into(),
            SlimFunction {
                min_instances: 1,
                ..SlimFunction::default()
            },
        );
        let e = s.check().unwrap_err().to_string();
        assert!(e.contains("W1") && e.contains("min_instances 1"), "{e}");
        // Without scale to zero, both are only recorded.
        s.scale_to_zero = false;
        assert_eq!(s.check(), Ok(()));
        s.defaults.wait_s = -1.0;
        assert!(s.check().unwrap_err().to_string().contains("wait_s"));
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
        assert_eq!(gate.finished("f"), Some(11));
        gate.dispatched(0, Duration::from_millis(900));
        // The async call waits on; a stale give-up of a dispatched key is
        // nothing.
        assert_eq!(gate.give_up(1, &names), None);
        assert_eq!(gate.finished("f"), Some(12));
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
