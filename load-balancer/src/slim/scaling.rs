//! The balancer's part in a function's instances on the workers: a wake
//! (`/wake-function/<fn>`), scale to zero (`scale_to_zero`, the rule
//! [`policy::scale_to_zero`]), and the minimum kept running
//! (`keep_min_instances`). All act through the workers'
//! `/scale?name=<fn>&instances=<k>` (k = 0: remove every instance; k > 0:
//! start instances up to k on that worker).
//!
//! # Minimum instances
//! A function whose settings say `min_instances` = k > 0 is brought to k
//! instances (ready or starting, summed over the online workers) without
//! waiting for a call or a wake: every [`KEEP_TICK`] the task reads the
//! workers' instances (the cache of `super::instances`, at most one
//! tick old), and when a function has fewer than k it starts the missing
//! ones on the nodes the scheduler would pick for as many calls (as a
//! wake does), each worker asked for what it has plus its share. So the
//! minimum is reached at the balancer's start (once the workers are
//! online), and again after a worker restarted (its instances gone) or
//! came back online. A reading with an online worker that did not answer
//! is not acted on (its instances are unknown); a worker that refuses
//! (e.g. one that runs every call in an instance of its own: 409) is
//! asked again after [`SCALE_RETRY`]. The minimum is a floor: instances
//! above it are left to the workers' own keep-alive.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use policy::scale_to_zero::{decide, Decision};

use super::{Queue, SlimError, SCALE_RETRY, SCALE_TICK};
use crate::server::NodeCall;
use crate::state::Shared;

/// Bound on one worker's `/scale` (a wake may build an image first).
const SCALE_TIMEOUT: Duration = Duration::from_secs(120);

/// How often the minimum-instances task looks.
pub const KEEP_TICK: Duration = Duration::from_secs(1);

/// The nodes the scheduler would pick for `n` calls of `function`, with
/// how many each (each selection undone at once, as an unusable choice
/// is: no call runs).
fn pick_nodes(
    shared: &Shared,
    function: &str,
    n: u32,
) -> Result<BTreeMap<Arc<str>, u32>, SlimError> {
    let mut per_node: BTreeMap<Arc<str>, u32> = BTreeMap::new();
    if shared.fake_reply.is_some() {
        return Ok(per_node);
    }
    let mut cluster = shared.cluster();
    for _ in 0..n {
        let now = shared.clock.now();
        let selection = cluster
            .select(function, now)
            .map_err(|e| SlimError::NoNode(format!("{function} ({e})")))?;
        cluster.finished(
            &selection,
            function,
            crate::cluster::Outcome::default(),
            now,
        );
        *per_node.entry(selection.url.clone()).or_default() += 1;
    }
    Ok(per_node)
}

/// Asks each node of `targets` for `/scale?name=<function>&instances=<k>`
/// at once; the replies by node.
async fn scale_nodes<'a>(
    shared: &Shared,
    client: &reqwest::Client,
    function: &str,
    targets: &'a BTreeMap<Arc<str>, u32>,
) -> Vec<(&'a Arc<str>, u32, NodeCall)> {
    let mut name = String::new();
    protocol::query::percent_encode_into(function, &mut name);
    let calls = targets.iter().map(|(url, k)| {
        let path = format!("/scale?name={name}&instances={k}");
        async move {
            let r = crate::server::call_node(
                shared,
                client,
                url,
                reqwest::Method::GET,
                &path,
                SCALE_TIMEOUT,
            )
            .await;
            (url, *k, r)
        }
    });
    futures_util::future::join_all(calls).await
}

/// `/wake-function/<fn>` (the module doc of [`super`]): asks the nodes
/// the scheduler would pick to start the function's instances.
pub(crate) async fn wake(
    queue: &Queue,
    shared: &Shared,
    client: &reqwest::Client,
    function: &str,
) -> Result<(), SlimError> {
    let n = queue.settings(function).wake_instances();
    let per_node = pick_nodes(shared, function, n)?;
    let mut failures = Vec::new();
    for (url, k, reply) in scale_nodes(shared, client, function, &per_node).await {
        match &reply {
            r if r.ok() => tracing::info!(function, url = &**url, instances = k, "woken"),
            NodeCall::Replied { status: 409, body } => tracing::info!(
                function,
                url = &**url,
                reply = %String::from_utf8_lossy(body),
                "woken: that worker has no instance to start ahead"
            ),
            NodeCall::Replied { status, body } => failures.push(format!(
                "{url}: status {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            )),
            r => failures.push(format!("{url}: {}", r.error().unwrap_or_default())),
        }
    }
    queue.instances.invalidate();
    queue.activity().woken(function, n, shared.clock.now());
    if failures.is_empty() {
        Ok(())
    } else {
        Err(SlimError::WakeFailed {
            function: function.to_string(),
            failures: failures.join("; "),
        })
    }
}

/// The scale-to-zero task (module doc of [`super`]): every
/// [`SCALE_TICK`], the tracked functions the rule says are due have
/// their instances removed on every online worker. Runs until dropped.
pub(crate) async fn scale_to_zero(queue: Arc<Queue>, shared: Arc<Shared>, client: reqwest::Client) {
    let mut retry_after: HashMap<String, policy::Time> = HashMap::new();
    let mut tick = tokio::time::interval(SCALE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = shared.clock.now();
        let tracked: Vec<(String, policy::scale_to_zero::Activity)> = queue
            .activity()
            .tracked()
            .map(|(f, a)| (f.to_string(), *a))
            .collect();
        let names: Vec<&str> = tracked.iter().map(|(f, _)| f.as_str()).collect();
        let busy = match queue.busy(&names) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "scale to zero: cannot read the queue's store");
                continue;
            }
        };
        for ((function, activity), busy) in tracked.iter().zip(busy) {
            if retry_after.get(function).is_some_and(|t| now < *t) {
                continue;
            }
            let rule = queue.settings(function).scale_rule();
            if decide(activity, busy, rule, now) != Decision::ScaleToZero {
                continue;
            }
            let mut path = String::from("/scale?name=");
            protocol::query::percent_encode_into(function, &mut path);
            path.push_str("&instances=0");
            let replies = crate::server::call_online_nodes(
                &shared,
                &client,
                "scale to zero",
                reqwest::Method::GET,
                &path,
                SCALE_TIMEOUT,
            )
            .await;
            queue.instances.invalidate();
            // A worker that does not know the function has nothing of it.
            let failed = replies
                .iter()
                .filter(|(_, r)| r.failed() && !matches!(r, NodeCall::Replied { status: 404, .. }))
                .count();
            if failed > 0 {
                tracing::warn!(
                    function,
                    failed,
                    "scale to zero failed on some workers; trying again in {} s",
                    SCALE_RETRY.as_secs()
                );
                retry_after.insert(function.clone(), now.saturating_add(SCALE_RETRY));
                continue;
            }
            retry_after.remove(function);
            if queue.activity().scaled_to_zero(function, activity.arrivals) {
                tracing::info!(
                    function,
                    workers = replies.len(),
                    idle_s = now.saturating_since(activity.idle_since).as_secs_f64(),
                    "scaled to zero: its instances removed on every worker"
                );
            }
        }
    }
}

/// The minimum-instances task (module doc): every [`KEEP_TICK`], each
/// function with `min_instances` > 0 that has fewer instances on the
/// online workers gets the missing ones started. Runs until dropped.
pub(crate) async fn keep_min_instances(
    queue: Arc<Queue>,
    shared: Arc<Shared>,
    client: reqwest::Client,
) {
    let mut retry_after: HashMap<String, policy::Time> = HashMap::new();
    let mut tick = tokio::time::interval(KEEP_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let user: Vec<String> = shared.functions.names();
        let wanted = queue.min_instances_wanted(&user);
        if wanted.is_empty() || shared.fake_reply.is_some() {
            continue;
        }
        let reading = queue.instances.get(&shared, &client, KEEP_TICK).await;
        if reading.unanswered > 0 || reading.by_node.is_empty() {
            continue;
        }
        let now = shared.clock.now();
        let mut changed = false;
        for (function, min) in wanted {
            if retry_after.get(&function).is_some_and(|t| now < *t) {
                continue;
            }
            let (ready, starting) = reading.of(&function);
            let have = ready + starting;
            if have >= u64::from(min) {
                continue;
            }
            let missing = u32::try_from(u64::from(min) - have).unwrap_or(min);
            let added = match pick_nodes(&shared, &function, missing) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(function, error = %e, "minimum instances: no node");
                    continue;
                }
            };
            // Each worker is asked for what it has plus its share.
            let targets: BTreeMap<Arc<str>, u32> = added
                .into_iter()
                .map(|(url, k)| {
                    let (r, s) = reading.on_node(&url, &function);
                    let has = u32::try_from(r + s).unwrap_or(u32::MAX);
                    (url, has.saturating_add(k))
                })
                .collect();
            changed = true;
            let replies = scale_nodes(&shared, &client, &function, &targets).await;
            let failures: Vec<String> = replies
                .iter()
                .filter(|(_, _, r)| !r.ok())
                .map(|(url, _, r)| format!("{url}: {}", r.error().unwrap_or_default()))
                .collect();
            if failures.is_empty() {
                retry_after.remove(&function);
                queue.activity().woken(&function, min, now);
                tracing::info!(
                    function,
                    min_instances = min,
                    had = have,
                    "minimum instances: missing ones started"
                );
            } else {
                tracing::warn!(
                    function,
                    failures = failures.join("; "),
                    "minimum instances: some workers did not start them; trying again in {} s",
                    SCALE_RETRY.as_secs()
                );
                retry_after.insert(function, now.saturating_add(SCALE_RETRY));
            }
        }
        if changed {
            queue.instances.invalidate();
        }
    }
}
