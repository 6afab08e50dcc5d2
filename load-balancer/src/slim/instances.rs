//! Instances per function on the workers (their `GET /instances`),
//! summed over the online workers, and kept per node; with a cache so
//! that `GET /metrics` and the minimum-instances task
//! ([`super::scaling::keep_min_instances`]) do not ask every worker each
//! time (a reading older than their bound is refreshed, by one caller at
//! a time; the status routes always read afresh and refresh the cache).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::lock;
use crate::state::{RunClock, Shared};

/// Bound on one worker's `/instances`.
const INSTANCES_TIMEOUT: Duration = Duration::from_secs(5);

/// How old a reading `GET /metrics` accepts.
pub const METRICS_MAX_AGE: Duration = Duration::from_secs(2);

/// (ready, starting) instances.
pub(crate) type Counts = (u64, u64);

/// One reading of every online worker's instances.
#[derive(Debug, Default)]
pub(crate) struct WorkerInstances {
    /// Summed over the workers that answered, by function.
    pub(crate) by_function: HashMap<String, Counts>,
    /// By node URL, then function (workers that answered).
    pub(crate) by_node: HashMap<Arc<str>, HashMap<String, Counts>>,
    /// Online workers that did not answer.
    pub(crate) unanswered: usize,
}

impl WorkerInstances {
    /// `function`'s instances summed over the workers.
    pub(crate) fn of(&self, function: &str) -> Counts {
        self.by_function.get(function).copied().unwrap_or_default()
    }

    /// `function`'s instances on the node at `url`.
    pub(crate) fn on_node(&self, url: &str, function: &str) -> Counts {
        self.by_node
            .get(url)
            .and_then(|m| m.get(function))
            .copied()
            .unwrap_or_default()
    }
}

/// Asks every online worker for its instances.
pub(crate) async fn read(shared: &Shared, client: &reqwest::Client) -> WorkerInstances {
    let replies = crate::server::call_online_nodes(
        shared,
        client,
        "instances",
        reqwest::Method::GET,
        "/instances",
        INSTANCES_TIMEOUT,
    )
    .await;
    let mut out = WorkerInstances::default();
    for (url, reply) in replies {
        let crate::server::NodeCall::Replied { status: 200, body } = reply else {
            out.unanswered += usize::from(reply.failed());
            continue;
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
            out.unanswered += 1;
            continue;
        };
        let node = out.by_node.entry(url).or_default();
        for f in v["Functions"].as_array().into_iter().flatten() {
            let (Some(name), Some(ready), Some(starting)) = (
                f["Function"].as_str(),
                f["Ready"].as_u64(),
                f["Starting"].as_u64(),
            ) else {
                continue;
            };
            let e = out.by_function.entry(name.to_string()).or_default();
            e.0 += ready;
            e.1 += starting;
            let e = node.entry(name.to_string()).or_default();
            e.0 += ready;
            e.1 += starting;
        }
    }
    out
}

/// The last reading and when it was taken.
#[derive(Debug, Default)]
pub(crate) struct InstancesCache {
    last: Mutex<Option<(Instant, Arc<WorkerInstances>)>>,
    /// One refresh at a time.
    refreshing: tokio::sync::Mutex<()>,
}

impl InstancesCache {
    /// A reading at most `max_age` old (refreshed when older).
    pub(crate) async fn get(
        &self,
        shared: &Shared,
        client: &reqwest::Client,
        max_age: Duration,
    ) -> Arc<WorkerInstances> {
        if let Some(hit) = self.recent(max_age) {
            return hit;
        }
        let _one = self.refreshing.lock().await;
        // Another caller may have refreshed it meanwhile.
        if let Some(hit) = self.recent(max_age) {
            return hit;
        }
        self.fresh(shared, client).await
    }

    /// A new reading (kept for the next callers).
    pub(crate) async fn fresh(
        &self,
        shared: &Shared,
        client: &reqwest::Client,
    ) -> Arc<WorkerInstances> {
        let reading = Arc::new(read(shared, client).await);
        *lock(&self.last) = Some((RunClock::instant(), reading.clone()));
        reading
    }

    /// Forgets the last reading (the instances were just changed).
    pub(crate) fn invalidate(&self) {
        *lock(&self.last) = None;
    }

    fn recent(&self, max_age: Duration) -> Option<Arc<WorkerInstances>> {
        let last = lock(&self.last);
        let (at, reading) = last.as_ref()?;
        (RunClock::instant().saturating_duration_since(*at) <= max_age).then(|| reading.clone())
    }
}
