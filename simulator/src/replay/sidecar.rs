//! The replay's run description, `<log>.meta.json`
//! ([`protocol::sidecar`]): what the balancer says about itself, merged
//! into what the caller already knows.
//!
//! The balancer is asked, in this order:
//! 1. `GET /1/lb/scheduler` (this project's balancer): the algorithm, every
//!    resolved parameter, the seed, and the nodes with the `WorkerNodeId`
//!    its replies carry;
//! 2. `GET /1/lb/nodes` (older balancers, fnlb's node API): the node URLs
//!    in the order listed, taken as ids `0, 1, ...` (true of a balancer
//!    that never had a node removed); `extra.cluster_source` says so;
//! 3. neither answers (e.g. the original HotFunctions balancer): cluster
//!    size 0 (analysis then infers it from the log, as for logs without a
//!    sidecar), a warning on stderr and in `extra.warnings`. The replay
//!    goes on.
//!
//! What the caller put in [`super::ReplayOptions::run`] is kept (its
//! scales, `extra`, and algorithm, parameters and seed if given); the
//! replay fills the rest: cluster, algorithm, parameters and seed when
//! missing, `started_utc`, the scenario when missing, `scales.time_scale`
//! (the replay's own), and the source revision when missing.

use std::path::Path;
use std::time::Duration;

use protocol::sidecar::{Cluster, Node, RunSidecar};
use serde::de::{MapAccess, Visitor};
use serde::Deserialize;

/// What the replay learned from the balancer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BalancerDescription {
    pub cluster: Cluster,
    pub algorithm: Option<String>,
    pub parameters: serde_json::Map<String, serde_json::Value>,
    pub seed: Option<u64>,
    /// Ids of registered nodes that were offline when asked.
    pub offline: Vec<usize>,
    /// The balancer's version, if it said.
    pub version: Option<String>,
    /// The revision of the sources the balancer was built from, if it
    /// said (`{"commit", "dirty"}`).
    pub revision: Option<serde_json::Value>,
    /// Which route described the cluster, and how much to trust it.
    pub source: String,
    /// Set when the cluster could not be learned.
    pub warning: Option<String>,
}

/// `GET /1/lb/scheduler`'s reply (fields added later are ignored).
#[derive(Debug, Deserialize)]
struct SchedulerRoute {
    algorithm: String,
    #[serde(default)]
    parameters: serde_json::Map<String, serde_json::Value>,
    seed: u64,
    nodes: Vec<RouteNode>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    revision: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct RouteNode {
    id: usize,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    state: Option<String>,
}

/// `GET /1/lb/nodes`'s reply, its nodes in the order of the text (a
/// `serde_json::Map` would sort them by URL).
#[derive(Debug, Deserialize)]
struct NodesRoute {
    nodes: OrderedPairs,
}

#[derive(Debug)]
struct OrderedPairs(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for OrderedPairs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PairsVisitor;
        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = OrderedPairs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of node URL to state")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedPairs, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                Ok(OrderedPairs(pairs))
            }
        }
        d.deserialize_map(PairsVisitor)
    }
}

async fn get_text(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let response = client
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| protocol::text::error_line(&e))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| protocol::text::error_line(&e))?;
    if !status.is_success() {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    Ok(text)
}

/// Asks the balancer at `base` what it runs (see the module doc); never
/// fails: what could not be learned is said in `warning`.
pub async fn describe_balancer(client: &reqwest::Client, base: &str) -> BalancerDescription {
    let scheduler_url = format!("{base}/1/lb/scheduler");
    let first = match get_text(client, &scheduler_url).await {
        Ok(text) => match serde_json::from_str::<SchedulerRoute>(&text) {
            Ok(route) => return from_scheduler_route(route),
            Err(e) => format!("GET /1/lb/scheduler answered something else ({e})"),
        },
        Err(e) => format!("GET /1/lb/scheduler failed ({e})"),
    };
    let second = match get_text(client, &format!("{base}/1/lb/nodes")).await {
        Ok(text) => match serde_json::from_str::<NodesRoute>(&text) {
            Ok(route) => {
                let urls: Vec<&str> = route.nodes.0.iter().map(|(u, _)| u.as_str()).collect();
                let offline = route
                    .nodes
                    .0
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, state))| state.as_str() == Some("offline"))
                    .map(|(id, _)| id)
                    .collect();
                return BalancerDescription {
                    cluster: Cluster::from_urls(&urls),
                    offline,
                    source: format!(
                        "GET /1/lb/nodes: ids assumed in the listed order \
                         (true unless nodes were removed); {first}"
                    ),
                    ..Default::default()
                };
            }
            Err(e) => format!("GET /1/lb/nodes answered something else ({e})"),
        },
        Err(e) => format!("GET /1/lb/nodes failed ({e})"),
    };
    let warning = format!(
        "the balancer did not describe its cluster ({first}; {second}): the sidecar \
         records cluster size 0, and analysis will infer it from the WorkerNodeIds in the log"
    );
    BalancerDescription {
        source: "unknown".into(),
        warning: Some(warning),
        ..Default::default()
    }
}

fn from_scheduler_route(route: SchedulerRoute) -> BalancerDescription {
    let offline = route
        .nodes
        .iter()
        .filter(|n| n.state.as_deref() == Some("offline"))
        .map(|n| n.id)
        .collect();
    BalancerDescription {
        cluster: Cluster {
            size: route.nodes.len(),
            nodes: route
                .nodes
                .into_iter()
                .map(|n| Node {
                    id: n.id,
                    url: n.url,
                })
                .collect(),
        },
        algorithm: Some(route.algorithm),
        parameters: route.parameters,
        seed: Some(route.seed),
        offline,
        version: route.version,
        revision: route.revision.filter(|r| r.is_object()),
        source: "GET /1/lb/scheduler".into(),
        warning: None,
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC`, now.
pub fn now_utc() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

/// The sidecar to write: the caller's `run` (or a fresh one) completed
/// with what the replay knows and what the balancer said.
pub fn merge(
    run: Option<RunSidecar>,
    started_utc: String,
    time_scale: f64,
    balancer_url: &str,
    balancer: BalancerDescription,
) -> RunSidecar {
    let mut run = run.unwrap_or_else(|| {
        RunSidecar::new(
            "simulator replay",
            env!("CARGO_PKG_VERSION"),
            String::new(),
            Cluster::default(),
        )
    });
    if run.producer.is_empty() {
        run.producer = "simulator replay".into();
    }
    if run.version.is_empty() {
        run.version = env!("CARGO_PKG_VERSION").into();
    }
    run.started_utc = started_utc;
    run.cluster = balancer.cluster;
    run.scales.time_scale = time_scale;
    let extra = &mut run.extra;
    extra.insert("balancer_url".into(), balancer_url.into());
    extra.insert("cluster_source".into(), balancer.source.into());
    if !balancer.offline.is_empty() {
        extra.insert("offline_nodes".into(), balancer.offline.into());
    }
    if let Some(version) = balancer.version {
        extra.insert("balancer_version".into(), version.into());
    }
    if let Some(revision) = balancer.revision {
        extra.insert("balancer_revision".into(), revision);
    }
    if let Some(w) = balancer.warning {
        push_warning(&mut run, w);
    }
    // What the caller said wins, but a disagreement is recorded.
    let reported = serde_json::json!({
        "algorithm": balancer.algorithm,
        "parameters": balancer.parameters,
        "seed": balancer.seed,
    });
    let mut disagrees = false;
    match (&run.algorithm, balancer.algorithm) {
        (None, found) => run.algorithm = found,
        (Some(given), Some(found)) => disagrees |= *given != found,
        _ => {}
    }
    if run.parameters.is_empty() {
        run.parameters = balancer.parameters;
    } else if !balancer.parameters.is_empty() {
        disagrees |= run.parameters != balancer.parameters;
    }
    match (run.seed, balancer.seed) {
        (None, found) => run.seed = found,
        (Some(given), Some(found)) => disagrees |= given != found,
        _ => {}
    }
    if disagrees {
        run.extra.insert("balancer_reported".into(), reported);
        push_warning(
            &mut run,
            "the balancer reports another algorithm, parameters or seed than the caller \
             (see balancer_reported)"
                .into(),
        );
    }
    run
}

/// Appends to `extra.warnings`.
pub fn push_warning(run: &mut RunSidecar, warning: String) {
    let slot = run
        .extra
        .entry("warnings")
        .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    if let Some(list) = slot.as_array_mut() {
        list.push(warning.into());
    }
}

/// Writes `run` to `path` (a temporary file renamed over it, so a reader
/// never sees half a file).
pub fn write(path: &Path, run: &RunSidecar) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, run.to_json())?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_lists_keep_their_order() {
        let route: NodesRoute =
            serde_json::from_str(r#"{"nodes": {"http://b:1": "online", "http://a:1": "offline"}}"#)
                .unwrap();
        let urls: Vec<&str> = route.nodes.0.iter().map(|(u, _)| u.as_str()).collect();
        assert_eq!(urls, ["http://b:1", "http://a:1"]);
    }

    #[test]
    fn the_caller_wins_and_a_disagreement_is_recorded() {
        let learned = BalancerDescription {
            cluster: Cluster::from_urls(&["http://a:1"]),
            algorithm: Some("ch".into()),
            parameters: serde_json::json!({"T": 8}).as_object().unwrap().clone(),
            seed: Some(3),
            source: "GET /1/lb/scheduler".into(),
            ..Default::default()
        };
        let filled = merge(None, "t".into(), 2.0, "http://lb", learned.clone());
        assert_eq!(filled.algorithm.as_deref(), Some("ch"));
        assert_eq!(filled.seed, Some(3));
        assert_eq!(filled.parameters["T"], 8);
        assert_eq!(filled.scales.time_scale, 2.0);
        assert_eq!(filled.producer, "simulator replay");
        assert!(!filled.extra.contains_key("warnings"));

        let mut given = RunSidecar::new(
            "simulator experiment",
            "9",
            String::new(),
            Cluster::default(),
        );
        given.seed = Some(4);
        given.scales.fn_time_scale = Some(0.1);
        let merged = merge(Some(given), "t".into(), 1.0, "http://lb", learned);
        assert_eq!(merged.producer, "simulator experiment");
        assert_eq!(merged.seed, Some(4));
        assert_eq!(merged.algorithm.as_deref(), Some("ch"));
        assert_eq!(merged.scales.fn_time_scale, Some(0.1));
        assert_eq!(merged.cluster.size, 1);
        assert_eq!(merged.extra["balancer_reported"]["seed"], 3);
        assert_eq!(merged.extra["warnings"].as_array().unwrap().len(), 1);
    }
}
