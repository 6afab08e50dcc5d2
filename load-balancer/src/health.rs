//! Active health checks of the worker nodes.
//!
//! Every `interval_ms` (default 1 s), `GET <worker>/health` on every
//! registered node at once, each with a `timeout_ms` budget (default 1 s);
//! a 2xx reply passes. The pure [`crate::cluster::Cluster`] counts
//! consecutive results (HAProxy's `fall` 2 / `rise` 1 by default) and tells
//! the scheduler when a node goes offline or comes back. Not run in fake
//! mode.
//!
//! A round also passes for a node that answered a call successfully since
//! its previous round, whatever its `/health` said (passive health, the
//! rule is [`crate::cluster::Cluster::health_result`]'s): a busy worker
//! whose `/health` answers late is not taken offline while it serves
//! calls; once calls stop, failed checks take it offline as before.

use std::sync::Arc;
use std::time::Duration;

use crate::cluster::NodeStatus;
use crate::state::Shared;

/// Checks all nodes forever (the caller aborts the task on shutdown).
pub(crate) async fn check_forever(shared: Arc<Shared>, client: reqwest::Client) {
    let health = shared.config.health.clone();
    let timeout = Duration::from_millis(health.timeout_ms);
    let period = Duration::from_millis(health.interval_ms);
    // Nodes start online; the first check is one interval in.
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let targets: Vec<_> = shared
            .cluster()
            .nodes()
            .map(|n| (n.id, n.url.clone()))
            .collect();
        let checks = targets.iter().map(|(id, url)| {
            let request = client.get(format!("{url}/health")).timeout(timeout);
            async move {
                let passed = matches!(request.send().await, Ok(r) if r.status().is_success());
                (*id, passed)
            }
        });
        let results = futures_util::future::join_all(checks).await;
        let now = shared.clock.now();
        let mut cluster = shared.cluster();
        for ((id, passed), (_, url)) in results.into_iter().zip(&targets) {
            match cluster.health_result(id, passed, now) {
                // A node lost mid-run disturbs it: a warning, seen at the
                // experiments' RUST_LOG=warn.
                Some(NodeStatus::Offline) => tracing::warn!(
                    node = id,
                    url = &**url,
                    "health checks failed: node offline"
                ),
                Some(NodeStatus::Online) => {
                    tracing::info!(node = id, url = &**url, "health check passed: node online")
                }
                None => {}
            }
        }
    }
}
