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
/// Longest closed loop: one day.
pub const MAX_DURATION: Duration = Duration::from_secs(86_400);

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

    fn arrival_time(&self, t: Time) -> Time {
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
        let i = self.next;
        let &(t, function) = self.workload.arrivals.get(i)?;
        self.next += 1;
        Some(Arrival {
            time: self.arrival_time(t),
            function,
            shape: self.workload.shape(i),
            client: NO_CLIENT,
            kind: CallKind::Sync,
        })
    }

    fn completed(&mut self, _client: u32, _at: Time) {}
}

/// A closed loop's parameters (the options of `simulator load`).
#[derive(Debug, Clone)]
pub struct ClosedLoop {
    /// Clients, 1..=[`MAX_CLIENTS`].
    pub clients: u32,
    /// How long clients start new calls (more than 0, at most
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
}

/// `clients` as a count within bounds.
pub fn check_clients(clients: u64) -> Result<u32, ClosedLoopError> {
    u32::try_from(clients)
        .ok()
        .filter(|c| (1..=MAX_CLIENTS).contains(c))
        .ok_or(ClosedLoopError::BadClients(clients))
}

/// `duration` if within bounds.
pub fn check_duration(duration: Duration) -> Result<Duration, ClosedLoopError> {
    if duration.is_zero() || duration > MAX_DURATION {
        return Err(ClosedLoopError::BadDuration(duration));
    }
    Ok(duration)
}

impl ClosedLoop {
    /// Fails if the clients or the duration are out of bounds.
    pub fn check(&self) -> Result<(), ClosedLoopError> {
        check_clients(self.clients.into())?;
        check_duration(self.duration)?;
        Ok(())
    }

    /// The parameters as run records write them (`extra.load` of a log's
    /// sidecar, live and simulated): clients, duration, think time and its
    /// mean, the mix (spec, size, and each probability when there are at
    /// most 100 names), seed.
    pub fn parameters(&self) -> serde_json::Value {
        let mut value = serde_json::json!({
            "clients": self.clients,
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
    /// Each client's last send (the one-call-per-µs rule).
    last_send: Vec<Time>,
    /// Calls sent by each client.
    calls: Vec<u64>,
    /// Outstanding call per client (a check of the closed loop).
    outstanding: Vec<bool>,
    end: Time,
    last_reply: Time,
}

impl<'c> ClosedLoopSource<'c> {
    /// Every client due at time zero, in index order.
    pub fn new(spec: &'c ClosedLoop) -> Self {
        let n = spec.clients as usize;
        let mut due = EventQueue::with_capacity(n);
        for c in 0..spec.clients {
            due.push(Time::ZERO, c);
        }
        Self {
            spec,
            due,
            rngs: (0..spec.clients)
                .map(|c| ClientRng::new(spec.seed, c))
                .collect(),
            last_send: vec![Time::ZERO; n],
            calls: vec![0; n],
            outstanding: vec![false; n],
            end: Time::from_duration(spec.duration),
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
        if send < self.end {
            self.due.push(send, client);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(clients: u32, duration_ms: u64, think: Think) -> ClosedLoop {
        let names = (1..=5).map(|i| format!("F{i}")).collect();
        ClosedLoop {
            clients,
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
                    s.completed(c, t);
                }
                (Some(_), None) => {
                    let (t, c) = ends.pop().unwrap();
                    s.completed(c, t);
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
}
