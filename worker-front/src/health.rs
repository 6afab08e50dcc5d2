//! Truthful health that function work cannot starve (issue 13 §3).
//!
//! Before: `/health` ran on the worker's main task runtime, the one that
//! carries function work, and asked the engine on every request; under a
//! 50 calls/s replay on a loaded 2-core host it took 3-4 s at p90 and the
//! balancer took four healthy workers offline 28 times in 45 s; with an
//! engine that accepted requests and never answered, `/health` said 200
//! "ok" (or hung) while every call hung.
//!
//! Now `/health` is answered on the HTTP thread that received it, from
//! state that is kept current elsewhere:
//! - the worker's counters (`crate::worker::Worker::status`: atomics and
//!   a lock never held across an `.await`), calls in flight included;
//! - the latest [`EngineReading`]: an engine probe ([`probe_engine`]) runs
//!   on its own every [`PROBE_INTERVAL`], each probe bounded by
//!   [`probe_bound`] (the engine time-out, at most [`MAX_PROBE_BOUND`]); a
//!   call that finds the engine unavailable records that at once, so a
//!   failure shows before the next probe.
//!
//! So a `/health` never waits for the engine (only, right after start, for
//! the first probe, itself bounded) nor for the worker's main runtime. An
//! engine that does not answer a probe within its bound is unhealthy:
//! `/health` is 503 with a JSON message naming the engine and the bound.
//! A reading says how old it is (`EngineCheckedMsAgo`). The pattern is
//! Kubernetes' kubelet's: its `/healthz` reports whether its periodic
//! relist of the container runtime (the PLEG) ran recently, instead of
//! calling the runtime per request.
//!
//! Shutdown ([`crate::run`]): the engine clean-up is skipped when the
//! engine is found unresponsive ([`engine_answers`], bounded by
//! [`SHUTDOWN_PING_BOUND`]); what is left stays recorded in the worker's
//! work area (`crate::runtime::ownership`) for the next worker sharing the
//! work dir to remove.

// The live worker's clock: readings are stamped when taken.
#![allow(clippy::disallowed_methods)]

use crate::runtime::{EngineHealth, Runtime, RuntimeError};
use std::time::{Duration, Instant};

/// How often the engine is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// The longest a probe may take: a Docker engine that does not answer
/// `GET /version` within it is unhealthy, whatever the engine time-out
/// (which also bounds builds' context uploads, and so may be longer).
pub const MAX_PROBE_BOUND: Duration = Duration::from_secs(10);

/// At shutdown, how long the engine may take to answer before its
/// clean-up is skipped (a hung engine must not hold a SIGTERM).
pub const SHUTDOWN_PING_BOUND: Duration = Duration::from_secs(3);

/// The bound of one probe: the engine time-out, at most
/// [`MAX_PROBE_BOUND`].
pub fn probe_bound(engine_timeout: Duration) -> Duration {
    engine_timeout.min(MAX_PROBE_BOUND)
}

/// What is known of the engine, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineReading {
    /// The engine's description, or why it is unavailable (the message of
    /// a [`RuntimeError`]).
    pub result: Result<EngineHealth, String>,
    /// When it was taken (a probe: when it began, so that a probe that
    /// began before a call found the engine gone never hides that).
    pub at: Instant,
    /// Who took it: a probe or a call.
    pub source: ReadingSource,
}

/// Who took an [`EngineReading`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ReadingSource {
    Probe,
    Call,
}

impl EngineReading {
    /// A reading taken now.
    pub fn now(result: Result<EngineHealth, String>, source: ReadingSource) -> Self {
        Self {
            result,
            at: Instant::now(),
            source,
        }
    }

    /// Milliseconds since it was taken.
    pub fn age_ms(&self) -> u64 {
        u64::try_from(self.at.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// One probe: the runtime's own health check, bounded by `bound`. An
/// engine that does not answer within it is unavailable, and the message
/// names the engine and the bound.
pub async fn probe_once<R: Runtime>(runtime: &R, bound: Duration) -> Result<EngineHealth, String> {
    match tokio::time::timeout(bound, runtime.health()).await {
        Ok(Ok(h)) => Ok(h),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(RuntimeError::EngineUnavailable(format!(
            "{} did not answer the health probe within {} ms",
            runtime.engine_label(),
            bound.as_millis()
        ))
        .to_string()),
    }
}

/// Whether the engine answers within `bound` (at shutdown): Err only when
/// it did not answer in time (a quick refusal, or the process runtime's
/// missing `hf-fn`, still lets the clean-up run: it fails fast, or works).
pub async fn engine_answers<R: Runtime>(runtime: &R, bound: Duration) -> Result<(), String> {
    match tokio::time::timeout(bound, runtime.health()).await {
        Ok(_) => Ok(()),
        Err(_) => Err(RuntimeError::EngineUnavailable(format!(
            "{} did not answer within {} ms",
            runtime.engine_label(),
            bound.as_millis()
        ))
        .to_string()),
    }
}

/// Probes the engine every [`PROBE_INTERVAL`] (each probe bounded by
/// `bound`) and hands each reading to `record`, forever: the caller
/// aborts the task.
pub async fn probe_engine<R: Runtime>(
    runtime: &R,
    bound: Duration,
    record: impl Fn(EngineReading),
) {
    let mut interval = tokio::time::interval(PROBE_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let at = Instant::now();
        let result = probe_once(runtime, bound).await;
        if let Err(e) = &result {
            tracing::debug!("engine probe: {e}");
        }
        record(EngineReading {
            result,
            at,
            source: ReadingSource::Probe,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_is_bounded_by_the_engine_timeout_and_at_most_ten_seconds() {
        assert_eq!(probe_bound(Duration::from_secs(2)), Duration::from_secs(2));
        assert_eq!(probe_bound(Duration::from_secs(3600)), MAX_PROBE_BOUND);
    }
}
