//! Admission of calls at the balancer: a cap on parallel calls per
//! function, waiting calls in arrival order, synchronous calls ahead of
//! queued asynchronous ones, and the retry schedule of a failed attempt.
//!
//! The rules are SlimFaas's (github.com/SlimPlanet/SlimFaas, its
//! `NumberParallelRequest` per function, default 10; the asynchronous
//! queue drained under that cap; retries on 500, 502, 503 and time-outs
//! after 2, 4 and 8 s by default), written here as pure state so that the
//! live balancer (its `slim` module: HTTP routes, SQLite store, drain
//! task) and the discrete-event simulator run the same code. Time is an
//! argument; nothing here reads a clock, sleeps or opens a socket.
//!
//! - [`AdmissionQueue::arrive`]: a call of a function runs at once when the
//!   function has fewer than its cap in flight and nobody of its kind (or,
//!   for an asynchronous call, of either kind) waits before it; otherwise
//!   it waits.
//! - [`AdmissionQueue::finished`]: a call ended; the slot goes to the
//!   oldest waiting synchronous call, else to the oldest asynchronous one.
//!   The number in flight never exceeds the cap (a lowered cap lets
//!   the excess drain without admitting anyone).
//! - [`retry_decision`]: after an attempt, whether the call is done, is
//!   tried again at a given time, or gives up.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::time::Time;

/// SlimFaas's default `NumberParallelRequest`.
pub const DEFAULT_MAX_PARALLEL: u32 = 10;

/// SlimFaas's default retry delays (2, 4, 8 s).
pub const DEFAULT_RETRY_DELAYS: [Duration; 3] = [
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
];

/// How a call was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// The caller waits for the reply (`/function/...`).
    Sync,
    /// Accepted into the queue, run later (`/async-function/...`).
    Async,
}

/// What [`AdmissionQueue::arrive`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The call holds a slot now; call [`AdmissionQueue::finished`] when
    /// it ends.
    Run,
    /// The call waits; a later [`AdmissionQueue::finished`] hands it its
    /// slot.
    Wait,
}

#[derive(Debug)]
struct Waiting<K> {
    key: K,
    since: Time,
}

#[derive(Debug)]
struct FunctionQueue<K> {
    max_parallel: u32,
    in_flight: u32,
    sync_waiting: VecDeque<Waiting<K>>,
    async_waiting: VecDeque<Waiting<K>>,
}

impl<K> FunctionQueue<K> {
    fn new(max_parallel: u32) -> Self {
        Self {
            max_parallel: max_parallel.max(1),
            in_flight: 0,
            sync_waiting: VecDeque::new(),
            async_waiting: VecDeque::new(),
        }
    }
}

/// One function's counts, as reported by the status routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueCounts {
    pub max_parallel: u32,
    pub in_flight: u32,
    pub sync_waiting: usize,
    pub async_waiting: usize,
    /// Arrival of the oldest waiting call, if any.
    pub oldest_waiting_since: Option<Time>,
}

/// The admission state of every function; `K` identifies a waiting call
/// (the live balancer's: a channel to a waiting request, or a stored call
/// id; the simulator's: its own call index).
#[derive(Debug)]
pub struct AdmissionQueue<K> {
    default_max_parallel: u32,
    functions: HashMap<String, FunctionQueue<K>>,
}

impl<K> AdmissionQueue<K> {
    /// An empty queue; functions not given a cap get `default_max_parallel`
    /// (at least 1).
    pub fn new(default_max_parallel: u32) -> Self {
        Self {
            default_max_parallel: default_max_parallel.max(1),
            functions: HashMap::new(),
        }
    }

    fn function(&mut self, function: &str) -> &mut FunctionQueue<K> {
        // Looked up before inserting: the name is copied once per
        // function, not once per call (the simulator calls this per event).
        if !self.functions.contains_key(function) {
            let default = self.default_max_parallel;
            self.functions
                .insert(function.to_string(), FunctionQueue::new(default));
        }
        self.functions
            .get_mut(function)
            .expect("the function's queue was inserted above")
    }

    /// Sets `function`'s cap (at least 1). Raising it admits waiting calls
    /// at once: their keys are returned, in the order they get their slot.
    pub fn set_max_parallel(&mut self, function: &str, max_parallel: u32) -> Vec<K> {
        self.function(function).max_parallel = max_parallel.max(1);
        let mut admitted = Vec::new();
        while let Some(key) = self.admit_next(function) {
            admitted.push(key);
        }
        admitted
    }

    /// A call of `function` arrives at `now`.
    pub fn arrive(&mut self, function: &str, key: K, kind: CallKind, now: Time) -> Admission {
        let queue = self.function(function);
        let has_room = queue.in_flight < queue.max_parallel;
        let nobody_ahead = match kind {
            CallKind::Sync => queue.sync_waiting.is_empty(),
            CallKind::Async => queue.sync_waiting.is_empty() && queue.async_waiting.is_empty(),
        };
        if has_room && nobody_ahead {
            queue.in_flight += 1;
            return Admission::Run;
        }
        let waiting = Waiting { key, since: now };
        match kind {
            CallKind::Sync => queue.sync_waiting.push_back(waiting),
            CallKind::Async => queue.async_waiting.push_back(waiting),
        }
        Admission::Wait
    }

    /// A call of `function` that held a slot ended (at any time: the
    /// order of events is what counts). Returns the waiting call that gets
    /// the slot, if any: synchronous ones first, each kind in arrival order.
    pub fn finished(&mut self, function: &str) -> Option<K> {
        let queue = self.function(function);
        queue.in_flight = queue.in_flight.saturating_sub(1);
        self.admit_next(function)
    }

    fn admit_next(&mut self, function: &str) -> Option<K> {
        let queue = self.function(function);
        if queue.in_flight >= queue.max_parallel {
            return None;
        }
        let next = queue
            .sync_waiting
            .pop_front()
            .or_else(|| queue.async_waiting.pop_front())?;
        queue.in_flight += 1;
        Some(next.key)
    }

    /// Removes the waiting calls for which `gone` holds (a caller that
    /// gave up); returns how many.
    pub fn remove_waiting(&mut self, function: &str, mut gone: impl FnMut(&K) -> bool) -> usize {
        let queue = self.function(function);
        let before = queue.sync_waiting.len() + queue.async_waiting.len();
        queue.sync_waiting.retain(|w| !gone(&w.key));
        queue.async_waiting.retain(|w| !gone(&w.key));
        before - queue.sync_waiting.len() - queue.async_waiting.len()
    }

    /// `function`'s counts (zeros and the default cap for one never seen).
    pub fn counts(&self, function: &str) -> QueueCounts {
        match self.functions.get(function) {
            None => QueueCounts {
                max_parallel: self.default_max_parallel,
                in_flight: 0,
                sync_waiting: 0,
                async_waiting: 0,
                oldest_waiting_since: None,
            },
            Some(q) => QueueCounts {
                max_parallel: q.max_parallel,
                in_flight: q.in_flight,
                sync_waiting: q.sync_waiting.len(),
                async_waiting: q.async_waiting.len(),
                oldest_waiting_since: [q.sync_waiting.front(), q.async_waiting.front()]
                    .into_iter()
                    .flatten()
                    .map(|w| w.since)
                    .min(),
            },
        }
    }
}

/// How one attempt of a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The function's reply arrived with this HTTP status.
    Replied(u16),
    /// No reply within the function's request time-out.
    TimedOut,
    /// No node could take it (none online, or all full): the call never
    /// left the balancer, so the attempt does not count.
    NotDispatched,
    /// The exchange broke with the call in flight (the worker died): the
    /// function may have run.
    Interrupted,
}

/// What to do with a call after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Its outcome is final (success or a failure that is not retried).
    Done,
    /// Try again at this time.
    RetryAt(Time),
    /// Retriable, but its retries are spent.
    GiveUp,
}

/// Whether an HTTP status is retried (SlimFaas's 500, 502, 503).
pub fn retriable_status(status: u16) -> bool {
    matches!(status, 500 | 502 | 503)
}

/// The fate of a call after an attempt that ended at `now`.
///
/// `retries_done` is how many retries already ran (0 after the first
/// attempt); `delays[i]` is the wait before retry `i + 1`, so a call runs
/// at most `delays.len() + 1` times. `safe_to_repeat`: an interrupted
/// attempt (the function may have run) is retried only when the function
/// is declared safe to repeat. A call not dispatched waits `poll` and
/// tries again without spending a retry.
pub fn retry_decision(
    outcome: AttemptOutcome,
    retries_done: u32,
    delays: &[Duration],
    safe_to_repeat: bool,
    poll: Duration,
    now: Time,
) -> RetryDecision {
    let retriable = match outcome {
        AttemptOutcome::NotDispatched => return RetryDecision::RetryAt(now + poll),
        AttemptOutcome::Replied(status) => retriable_status(status),
        AttemptOutcome::TimedOut => true,
        AttemptOutcome::Interrupted => safe_to_repeat,
    };
    if !retriable {
        return RetryDecision::Done;
    }
    match usize::try_from(retries_done)
        .ok()
        .and_then(|i| delays.get(i))
    {
        Some(delay) => RetryDecision::RetryAt(now + *delay),
        None => RetryDecision::GiveUp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Time = Time::ZERO;

    #[test]
    fn runs_up_to_the_cap_then_waits_in_arrival_order() {
        let mut q = AdmissionQueue::new(2);
        assert_eq!(q.arrive("f", 1, CallKind::Async, T0), Admission::Run);
        assert_eq!(q.arrive("f", 2, CallKind::Async, T0), Admission::Run);
        assert_eq!(q.arrive("f", 3, CallKind::Async, T0), Admission::Wait);
        assert_eq!(q.arrive("f", 4, CallKind::Async, T0), Admission::Wait);
        // Another function has its own cap.
        assert_eq!(q.arrive("g", 9, CallKind::Async, T0), Admission::Run);
        assert_eq!(q.counts("f").in_flight, 2);
        assert_eq!(q.finished("f"), Some(3));
        assert_eq!(q.finished("f"), Some(4));
        assert_eq!(q.finished("f"), None);
        assert_eq!(q.counts("f").in_flight, 1);
    }

    #[test]
    fn sync_calls_go_before_queued_async_ones() {
        let mut q = AdmissionQueue::new(1);
        assert_eq!(q.arrive("f", 1, CallKind::Async, T0), Admission::Run);
        assert_eq!(q.arrive("f", 2, CallKind::Async, T0), Admission::Wait);
        assert_eq!(
            q.arrive("f", 3, CallKind::Sync, Time::from_secs(1)),
            Admission::Wait
        );
        assert_eq!(q.counts("f").oldest_waiting_since, Some(T0));
        assert_eq!(q.finished("f"), Some(3));
        assert_eq!(q.finished("f"), Some(2));
        // With room, a sync call passes waiting async ones only when there
        // is a slot; an async call never passes anyone.
        let mut q = AdmissionQueue::new(2);
        q.arrive("f", 1, CallKind::Async, T0);
        q.arrive("f", 2, CallKind::Async, T0);
        assert_eq!(q.arrive("f", 3, CallKind::Async, T0), Admission::Wait);
        q.finished("f");
        assert_eq!(q.arrive("f", 4, CallKind::Async, T0), Admission::Wait);
    }

    #[test]
    fn the_cap_is_never_exceeded_whatever_the_order() {
        // A small exhaustive walk: every sequence of 10 events from
        // {sync arrival, async arrival, finish}.
        for seq in 0..3u32.pow(10) {
            let mut q = AdmissionQueue::new(3);
            let mut running = 0u32;
            let mut s = seq;
            for i in 0..10 {
                match s % 3 {
                    0 | 1 => {
                        let kind = if s % 3 == 0 {
                            CallKind::Sync
                        } else {
                            CallKind::Async
                        };
                        if q.arrive("f", i, kind, T0) == Admission::Run {
                            running += 1;
                        }
                    }
                    _ if running > 0 => {
                        running -= 1;
                        if q.finished("f").is_some() {
                            running += 1;
                        }
                    }
                    _ => {}
                }
                s /= 3;
                assert!(running <= 3);
                assert_eq!(q.counts("f").in_flight, running);
            }
        }
    }

    #[test]
    fn raising_the_cap_admits_waiters_and_lowering_it_drains() {
        let mut q = AdmissionQueue::new(1);
        q.arrive("f", 1, CallKind::Async, T0);
        q.arrive("f", 2, CallKind::Async, T0);
        q.arrive("f", 3, CallKind::Sync, T0);
        assert_eq!(q.set_max_parallel("f", 3), vec![3, 2]);
        assert!(q.set_max_parallel("f", 1).is_empty());
        q.arrive("f", 4, CallKind::Sync, T0);
        assert_eq!(q.finished("f"), None);
        assert_eq!(q.finished("f"), None);
        assert_eq!(q.finished("f"), Some(4));
    }

    #[test]
    fn a_caller_that_gave_up_leaves_the_queue() {
        let mut q = AdmissionQueue::new(1);
        q.arrive("f", 1, CallKind::Sync, T0);
        q.arrive("f", 2, CallKind::Sync, T0);
        q.arrive("f", 3, CallKind::Sync, T0);
        assert_eq!(q.remove_waiting("f", |k| *k == 2), 1);
        assert_eq!(q.finished("f"), Some(3));
    }

    #[test]
    fn retries_follow_the_delays_then_give_up() {
        let d = DEFAULT_RETRY_DELAYS;
        let poll = Duration::from_millis(500);
        let now = Time::from_secs(10);
        let decide = |o, n| retry_decision(o, n, &d, false, poll, now);
        assert_eq!(decide(AttemptOutcome::Replied(200), 0), RetryDecision::Done);
        assert_eq!(decide(AttemptOutcome::Replied(404), 0), RetryDecision::Done);
        assert_eq!(
            decide(AttemptOutcome::Replied(500), 0),
            RetryDecision::RetryAt(Time::from_secs(12))
        );
        assert_eq!(
            decide(AttemptOutcome::Replied(503), 1),
            RetryDecision::RetryAt(Time::from_secs(14))
        );
        assert_eq!(
            decide(AttemptOutcome::TimedOut, 2),
            RetryDecision::RetryAt(Time::from_secs(18))
        );
        assert_eq!(
            decide(AttemptOutcome::Replied(502), 3),
            RetryDecision::GiveUp
        );
        // Not dispatched: waits, spends nothing, even past the last retry.
        assert_eq!(
            decide(AttemptOutcome::NotDispatched, 3),
            RetryDecision::RetryAt(now + poll)
        );
        // Interrupted: only when safe to repeat.
        assert_eq!(decide(AttemptOutcome::Interrupted, 0), RetryDecision::Done);
        assert_eq!(
            retry_decision(AttemptOutcome::Interrupted, 0, &d, true, poll, now),
            RetryDecision::RetryAt(Time::from_secs(12))
        );
        assert_eq!(
            retry_decision(AttemptOutcome::Replied(500), 0, &[], true, poll, now),
            RetryDecision::GiveUp
        );
    }
}
