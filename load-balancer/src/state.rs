//! State shared by the HTTP handlers and the health checker: the run's
//! clock, the configuration, and the [`Cluster`] behind its lock.
//!
//! Its own module so that [`crate::server`] (the handlers) and
//! [`crate::health`] (the checker) both depend on it and not on each other.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use policy::scheduler::{SelectError, Time};

use crate::cluster::{Cluster, Selection};
use crate::config::BalancerConfig;

/// The run's clock: an epoch read once, and `Instant`s relative to it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunClock {
    epoch: Instant,
}

impl RunClock {
    #[allow(clippy::disallowed_methods)] // the edge reads the clock; policies get the time
    pub(crate) fn instant() -> Instant {
        Instant::now()
    }

    pub(crate) fn start() -> Self {
        Self {
            epoch: Self::instant(),
        }
    }

    /// Time since the run's epoch, as passed to the scheduler.
    pub(crate) fn now(&self) -> Time {
        self.since_epoch(Self::instant())
    }

    pub(crate) fn since_epoch(&self, instant: Instant) -> Time {
        Time::from_duration(instant.saturating_duration_since(self.epoch))
    }
}

/// State shared by every server thread and the health checker.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) cluster: Mutex<Cluster>,
    pub(crate) clock: RunClock,
    pub(crate) config: BalancerConfig,
    /// Fake mode's prepared worker reply (None with real workers).
    pub(crate) fake_reply: Option<Vec<u8>>,
    /// The separate management listener's address, if there is one.
    pub(crate) management_addr: Option<std::net::SocketAddr>,
    /// `GET /metrics`'s counters (None with `--no-metrics`).
    pub(crate) metrics: Option<crate::metrics::Metrics>,
    /// Users' own functions ([`crate::functions`]).
    pub(crate) functions: crate::functions::FunctionStore,
}

impl Shared {
    pub(crate) fn cluster(&self) -> MutexGuard<'_, Cluster> {
        self.cluster.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Selects a node; also returns the time spent in `select` (ms) and
    /// the instant it returned.
    pub(crate) fn select(&self, function: &str) -> Result<(Selection, f64, Instant), SelectError> {
        let mut cluster = self.cluster();
        let started = RunClock::instant();
        let selection = cluster.select(function, self.clock.since_epoch(started))?;
        let selected = RunClock::instant();
        let latency_ms = selected.duration_since(started).as_secs_f64() * 1e3;
        Ok((selection, latency_ms, selected))
    }
}
