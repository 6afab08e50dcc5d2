//! Live experiments on a cluster (issue 16, part 3): `simulator experiment
//! --cluster compose` or `--cluster http://balancer:8111`.
//!
//! Without `--cluster`, every node of a live experiment is a process on
//! this machine, sharing its cores with the others and with the replayer.
//! With it, the nodes are whatever the cluster runs:
//!
//! - **`compose`**: the experiment brings up `deploy/compose/docker-compose.yml`
//!   (`--compose-file`) as its own Compose project (`hfexp-<pid>`, images
//!   `hotfunctions/*:<--image-tag>` built by `deploy/build-images.sh`;
//!   nothing is pulled), with `--workers` worker containers of
//!   `--worker-cpus` CPUs and `--worker-memory` memory each (Docker's CPU
//!   quota and memory limit: isolated nodes), a fresh management token and
//!   the balancer published on a free loopback port. Workers join the
//!   balancer by themselves. A sweep of `workers`, `load_factor` or
//!   `package_scale` re-applies the project per point (Compose recreates
//!   the workers whose settings changed). At the end, and on any error or
//!   stop, `docker-compose down` removes the project's containers and
//!   network (by project, i.e. by Compose's labels): nothing else.
//! - **a URL**: a balancer already running with its workers registered
//!   (any orchestrator: Swarm, Kubernetes, hosts of your own). The
//!   management token comes from `HF_MGMT_TOKEN`, as for the servers. The
//!   experiment changes nothing but the balancer's scheduler and the
//!   workers' caching options, which every run sets anyway.
//!
//! Each run then goes through the balancer's own management API instead of
//! a fresh balancer process: `GET /configure?lb=<algorithm>&seed=<seed>&
//! <algorithm>.<param>=...&<worker options>` (a fresh scheduler with the
//! run's seed and parameters, and the worker options on every node), then
//! `GET /clear?reset_images=true` on every node (no images, no instances:
//! no algorithm inherits another's), then the replay against the balancer.
//!
//! **What is recorded** (`run.json` `cluster`, and the report's setup
//! table): the kind, the balancer URL, the node count and URLs, CPUs and
//! memory per node (compose: what the experiment set; a URL: not known to
//! the experiment, said so), the images' ids (compose), and each node's
//! own `/health` reading where the experiment can reach the node (its
//! runtime, functions' time scale, package scale and node memory). A
//! worker whose time scale or package scale differs from the experiment's
//! is an error before any run: the report would describe another
//! experiment than the one measured.
//!
//! **Noise**: the same rule as on processes ([`super::host`]); "ours" are
//! this process and, on compose, the containers' process trees (their
//! host pids, from `docker inspect`), so the containers' work is not
//! counted as another program's. On a URL cluster the nodes' CPU is not
//! visible from here: only the replayer's host is judged.
//!
//! **The Docker runtime** (`--runtime docker`): on compose, the project
//! also gets `docker-compose.docker-runtime.yml` (beside `--compose-file`),
//! so each worker runs its functions as sibling containers through the
//! engine's socket, made under the worker container's own cgroup
//! (`--docker-cgroup-parent auto`): each node's `--worker-cpus` and
//! `--worker-memory` bound the worker and its functions together. The
//! function images and containers carry the label
//! `hotfunctions.deploy=<project>`; the workers remove them
//! when the project goes down, and whatever a worker left (killed) is
//! removed by that label after. On a URL cluster, `--runtime` says which
//! runtime the nodes must report. Either way, a node whose `/health`
//! names another runtime than `--runtime` is an error before any run, and
//! `run.json`'s `cluster.runtime` and the report's Mode line say which.
//! The function containers are not in the workers' process trees: their
//! CPU counts as foreign CPU in the noise figures (see [`super::host`]).
//!
//! Limits, refused with a clear error: the Lambda instance model and
//! catalogs (not passed into the containers yet), and, on a URL cluster, a
//! sweep of `workers`, `load_factor` or `package_scale` (the experiment
//! cannot restart the cluster's workers).

use super::runs::{live_sidecar, run_point, PointRuns, RunSpec, RunTarget, Started};
use super::*;
use std::collections::{BTreeMap, HashMap};
use std::process::Output;

/// Where the experiment's nodes run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ClusterPlan {
    /// A Compose project of the experiment's own.
    Compose {
        /// CPUs of each worker container (Docker's `cpus`).
        cpus: f64,
        /// Memory limit of each worker container (`1g`, `512m`).
        memory: String,
    },
    /// A running balancer with its workers.
    Url { url: String },
}

impl ClusterPlan {
    /// Reads `--cluster compose` or a balancer URL.
    pub fn parse(
        text: &str,
        cpus: Option<f64>,
        memory: Option<&str>,
    ) -> Result<Self, ExperimentError> {
        let bad = |m: String| ExperimentError::BadArgument(m);
        let text = text.trim();
        if text == "compose" {
            let cpus = cpus.unwrap_or(1.0);
            let host_cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            if !(cpus.is_finite() && cpus >= 0.01 && cpus <= host_cores) {
                return Err(bad(format!(
                    "--worker-cpus must be between 0.01 and this machine's {host_cores} cores, got {cpus}"
                )));
            }
            let memory = memory.unwrap_or("1g").trim().to_ascii_lowercase();
            check_memory(&memory).map_err(|e| bad(format!("--worker-memory {memory:?}: {e}")))?;
            return Ok(Self::Compose { cpus, memory });
        }
        if cpus.is_some() || memory.is_some() {
            return Err(bad(
                "--worker-cpus and --worker-memory apply to --cluster compose only (a running cluster keeps its own)".into(),
            ));
        }
        let url = text.trim_end_matches('/');
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            bad(format!(
                "--cluster {text:?}: expected `compose` or a balancer URL http://host:port"
            ))
        })?;
        if rest.is_empty() || rest.contains(['/', '?', '#', ' ']) {
            return Err(bad(format!(
                "--cluster {text:?}: expected a balancer URL http://host:port, with no path"
            )));
        }
        Ok(Self::Url {
            url: url.to_string(),
        })
    }

    /// `compose` or the URL, as `--cluster` takes it.
    pub fn arg(&self) -> String {
        match self {
            Self::Compose { .. } => "compose".into(),
            Self::Url { url } => url.clone(),
        }
    }
}

/// `1g`, `512m`, `1073741824`: Docker's memory sizes, at least 64 MB.
fn check_memory(text: &str) -> Result<(), String> {
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| "expected a size such as 1g or 512m".to_string())?;
    let factor: u64 = match unit {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        _ => return Err(format!("unknown unit {unit:?} (b, k, m, g)")),
    };
    let bytes = n.saturating_mul(factor);
    if bytes < 64 << 20 {
        return Err("a worker needs at least 64m".into());
    }
    Ok(())
}

/// What `run.json` says about the cluster.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterRecord {
    /// `compose` or `url`.
    pub kind: String,
    /// The balancer the replays went to.
    pub balancer: String,
    /// The Compose project and file (compose).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compose_project: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compose_file: Option<PathBuf>,
    /// Image name -> id (compose).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, String>,
    /// The compose file of the Docker runtime given on top (compose, with
    /// `--runtime docker`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compose_override: Option<PathBuf>,
    /// The workers' runtime the experiment asked for (`process`, `docker`);
    /// each node's own reading is in `points`.
    pub runtime: String,
    /// Docker runtime: where the function containers' cgroups are
    /// (compose: `auto`, the worker container's own) and their label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_cgroup_parent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_label: Option<String>,
    /// CPUs and memory limit of each worker, when the experiment set them.
    pub cpus_per_node: Option<f64>,
    pub memory_per_node: Option<String>,
    /// Per point: the nodes that ran it.
    pub points: Vec<ClusterPoint>,
}

/// The nodes of one point.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterPoint {
    pub nodes: Vec<NodeReading>,
}

/// One node, and what its `/health` said (if the experiment reached it).
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeReading {
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_scale: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package_scale: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_memory_mb: Option<u64>,
    /// How it schedules its function processes (process runtime only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_sched: Option<FunctionSched>,
    /// Why there is no reading.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreachable: Option<String>,
}

impl ClusterRecord {
    /// One line for the report's setup table.
    pub fn describe(&self) -> String {
        let nodes = self.points.first().map_or(0, |p| p.nodes.len());
        let shape = match (&self.cpus_per_node, &self.memory_per_node) {
            (Some(c), Some(m)) => format!("{c} CPU and {m} memory per worker container"),
            _ => "CPU and memory per node as deployed (not known to the experiment)".into(),
        };
        let runtime = self
            .points
            .first()
            .and_then(|p| p.nodes.iter().find_map(|n| n.runtime.clone()))
            .unwrap_or_else(|| "unknown".into());
        match self.kind.as_str() {
            "compose" if runtime == "docker" => format!(
                "Docker Compose project `{}`: {nodes} worker containers, {shape}, docker runtime: each worker's functions in sibling containers under its cgroup (bounded by its limits); balancer {}",
                self.compose_project.as_deref().unwrap_or("?"),
                self.balancer
            ),
            "compose" => format!(
                "Docker Compose project `{}`: {nodes} worker containers, {shape}, {runtime} runtime inside each; balancer {}",
                self.compose_project.as_deref().unwrap_or("?"),
                self.balancer
            ),
            _ => format!(
                "running cluster behind {}: {nodes} nodes, {shape}, {runtime} runtime",
                self.balancer
            ),
        }
    }
}

/// The Docker runtime's compose file, looked for beside `--compose-file`.
pub const DOCKER_RUNTIME_OVERRIDE: &str = "docker-compose.docker-runtime.yml";

fn cluster_err(m: impl Into<String>) -> ExperimentError {
    ExperimentError::Cluster(m.into())
}

/// The experiment's Compose project: brought up by [`ComposeProject::up`],
/// taken down on drop.
struct ComposeProject {
    /// The compose file, then the overrides on top.
    files: Vec<PathBuf>,
    project: String,
    env: Vec<(&'static str, String)>,
    /// Docker runtime: the label of the function images and containers the
    /// workers make (removed by it after `down`).
    function_label: Option<String>,
}

impl ComposeProject {
    fn command(&self) -> Command {
        let mut c = Command::new("docker-compose");
        for f in &self.files {
            c.arg("-f").arg(f);
        }
        c.args(["-p", &self.project]);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn run(&self, args: &[&str], what: &str) -> Result<Output, ExperimentError> {
        let out = self
            .command()
            .args(args)
            .output()
            .map_err(|e| cluster_err(format!("{what}: cannot run docker-compose: {e}")))?;
        if !out.status.success() {
            return Err(cluster_err(format!(
                "{what}: docker-compose {} failed ({}): {}",
                args.join(" "),
                out.status,
                tail(&String::from_utf8_lossy(&out.stderr), 12)
            )));
        }
        Ok(out)
    }

    /// `up -d --scale worker=N` with this point's settings.
    fn apply(&mut self, workers: u32, point: &PointRecord) -> Result<(), ExperimentError> {
        set_env(
            &mut self.env,
            "HF_TIME_SCALE",
            point.fn_time_scale.to_string(),
        );
        set_env(
            &mut self.env,
            "HF_PACKAGE_SCALE",
            point.package_scale.to_string(),
        );
        set_env(
            &mut self.env,
            "HF_NODE_MEMORY_MB",
            point.node_memory_mb.to_string(),
        );
        let scale = format!("worker={workers}");
        self.run(
            &["up", "-d", "--remove-orphans", "--scale", &scale],
            "starting the compose cluster",
        )?;
        Ok(())
    }

    /// The host pids of the project's containers (for CPU accounting).
    fn pids(&self) -> Vec<u32> {
        let Ok(out) = self.run(&["ps", "-q"], "listing the cluster's containers") else {
            return Vec::new();
        };
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect();
        if ids.is_empty() {
            return Vec::new();
        }
        Command::new("docker")
            .args(["inspect", "--format", "{{.State.Pid}}"])
            .args(&ids)
            .output()
            .ok()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok())
                    .filter(|&p| p > 0)
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        crate::note!(
            "experiment: taking the compose cluster down (project {})",
            self.project
        );
        // The Docker runtime's workers remove their function containers
        // and images on SIGTERM: give them the compose file's grace period.
        let timeout = if self.function_label.is_some() {
            "60"
        } else {
            "20"
        };
        let _ = self
            .command()
            .args([
                "down",
                "--volumes",
                "--remove-orphans",
                "--timeout",
                timeout,
            ])
            .output();
        if let Some(label) = &self.function_label {
            remove_labelled(label);
        }
    }
}

/// Removes the containers, then the images, that carry `label` (what the
/// experiment's workers made and did not remove themselves).
fn remove_labelled(label: &str) {
    let filter = format!("label={label}");
    for (list, remove) in [
        (&["ps", "-aq", "--filter"][..], &["rm", "-f"][..]),
        (&["images", "-aq", "--filter"][..], &["rmi", "-f"][..]),
    ] {
        let Ok(out) = Command::new("docker").args(list).arg(&filter).output() else {
            return;
        };
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect();
        if !ids.is_empty() {
            crate::note!(
                "experiment: removing {} object(s) left with {label}",
                ids.len()
            );
            let _ = Command::new("docker").args(remove).args(&ids).output();
        }
    }
}

fn set_env(env: &mut Vec<(&'static str, String)>, key: &'static str, value: String) {
    env.retain(|(k, _)| *k != key);
    env.push((key, value));
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A free TCP port on loopback (for the balancer's published port).
fn free_port() -> Result<u16, ExperimentError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| cluster_err(format!("finding a free port: {e}")))?;
    Ok(l.local_addr()
        .map_err(|e| cluster_err(e.to_string()))?
        .port())
}

/// A fresh management token (hex of 24 random bytes).
fn fresh_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The balancer's management API, with the token.
struct Balancer {
    url: String,
    token: Option<String>,
    client: reqwest::Client,
}

impl Balancer {
    async fn get(&self, path: &str, timeout: Duration) -> Result<(u16, String), String> {
        let mut request = self
            .client
            .get(format!("{}{path}", self.url))
            .timeout(timeout);
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|e| e.to_string())?;
        Ok((status, body))
    }

    /// `GET /1/lb/nodes`: the online nodes' URLs.
    async fn online_nodes(&self) -> Result<Vec<String>, String> {
        let (status, body) = self.get("/1/lb/nodes", Duration::from_secs(5)).await?;
        if status != 200 {
            return Err(format!("HTTP {status}: {}", tail(&body, 3)));
        }
        let v: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| format!("not JSON ({e}): {}", tail(&body, 3)))?;
        let mut nodes: Vec<String> = v["nodes"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(_, s)| s.as_str() == Some("online"))
                    .map(|(u, _)| u.clone())
                    .collect()
            })
            .unwrap_or_default();
        nodes.sort();
        Ok(nodes)
    }

    /// Waits until `expected` nodes are online (or, with `None`, at least
    /// one), for at most `timeout`.
    async fn wait_nodes(
        &self,
        expected: Option<u32>,
        timeout: Duration,
        stop: &StopHandle,
    ) -> Result<Vec<String>, ExperimentError> {
        let deadline = Instant::now() + timeout;
        let mut last;
        loop {
            match self.online_nodes().await {
                Ok(nodes) => {
                    let enough = match expected {
                        Some(n) => nodes.len() == n as usize,
                        None => !nodes.is_empty(),
                    };
                    if enough {
                        return Ok(nodes);
                    }
                    last = format!("{} online: {}", nodes.len(), nodes.join(" "));
                }
                Err(e) => last = e,
            }
            if Instant::now() >= deadline {
                return Err(cluster_err(format!(
                    "{}: {} online nodes not seen within {:?} (last: {last})",
                    self.url,
                    expected.map_or("any".to_string(), |n| n.to_string()),
                    timeout
                )));
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = stop.reached(StopLevel::Stop) => return Err(ExperimentError::Interrupted),
            }
        }
    }

    /// A management call that must answer 200.
    async fn manage(&self, path: &str) -> Result<String, ExperimentError> {
        match self.get(path, Duration::from_secs(120)).await {
            Ok((200, body)) => Ok(body),
            Ok((status, body)) => Err(cluster_err(format!(
                "{}{path}: HTTP {status}: {}{}",
                self.url,
                tail(&body, 5),
                if status == 401 || status == 403 {
                    " (set HF_MGMT_TOKEN to the cluster's management token)"
                } else {
                    ""
                }
            ))),
            Err(e) => Err(cluster_err(format!("{}{path}: {e}", self.url))),
        }
    }
}

/// Reads every node's `/health` (`urls`), notes those it cannot reach
/// (their settings are not checked), and checks the others against the
/// point ([`check_nodes`]): a cluster's nodes, and the local workers.
pub(super) async fn read_and_check_nodes(
    client: &reqwest::Client,
    urls: impl IntoIterator<Item = &str>,
    point: &PointRecord,
    runtime: WorkerRuntime,
    sched: FunctionSched,
) -> Result<Vec<NodeReading>, ExperimentError> {
    let mut readings = Vec::new();
    for u in urls {
        readings.push(read_node(client, u).await);
    }
    for r in readings.iter().filter(|r| r.unreachable.is_some()) {
        crate::note!(
            "experiment: note: node {} is not reachable from here ({}); its settings are not checked",
            r.url,
            r.unreachable.as_deref().unwrap_or("")
        );
    }
    check_nodes(point, runtime, sched, &readings)?;
    Ok(readings)
}

/// A node's `/health`, if the experiment can reach it.
async fn read_node(client: &reqwest::Client, url: &str) -> NodeReading {
    let mut reading = NodeReading {
        url: url.to_string(),
        ..Default::default()
    };
    let answer = client
        .get(format!("{url}/health"))
        .timeout(Duration::from_secs(3))
        .send()
        .await;
    let body = match answer {
        Ok(r) => r.text().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match body
        .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).map_err(|e| e.to_string()))
    {
        Ok(v) => {
            reading.runtime = v["Runtime"].as_str().map(String::from);
            let w = &v["Worker"];
            reading.time_scale = w["TimeScale"].as_f64();
            reading.package_scale = w["PackageScale"].as_f64();
            reading.node_memory_mb = w["NodeMemoryMb"].as_u64();
            reading.function_sched = w["FunctionSched"].as_str().and_then(|s| s.parse().ok());
        }
        Err(e) => reading.unreachable = Some(e),
    }
    reading
}

/// The worker options of a point as `/configure` takes them (the
/// environment names in lower case).
fn worker_query(point: &PointRecord) -> String {
    worker_entries(&point.worker)
        .iter()
        .map(|(name, value)| format!("{}={value}", name.to_ascii_lowercase()))
        .collect::<Vec<_>>()
        .join("&")
}

/// Checks that the nodes run what the experiment describes (`runtime`: the
/// `--runtime` asked for; `sched`: the `--function-sched`, which only a
/// process-runtime node reports).
fn check_nodes(
    point: &PointRecord,
    runtime: WorkerRuntime,
    sched: FunctionSched,
    nodes: &[NodeReading],
) -> Result<(), ExperimentError> {
    let differs = |a: f64, b: f64| (a - b).abs() > 1e-9 * a.abs().max(b.abs()).max(1.0);
    for n in nodes {
        if let Some(t) = n.time_scale.filter(|&t| differs(t, point.fn_time_scale)) {
            return Err(cluster_err(format!(
                "node {} runs the functions at HF_TIME_SCALE {t}, this experiment at {}: pass --fn-time-scale {t}, or restart the workers with HF_TIME_SCALE={}",
                n.url, point.fn_time_scale, point.fn_time_scale
            )));
        }
        if let Some(p) = n.package_scale.filter(|&p| differs(p, point.package_scale)) {
            return Err(cluster_err(format!(
                "node {} has HF_PACKAGE_SCALE {p}, this experiment {}: pass --package-scale {p}, or restart the workers with HF_PACKAGE_SCALE={}",
                n.url, point.package_scale, point.package_scale
            )));
        }
        if let Some(r) = n.runtime.as_deref().filter(|r| *r != runtime.as_str()) {
            return Err(cluster_err(format!(
                "node {} uses the {r} runtime, this experiment the {}: pass --runtime {r}",
                n.url,
                runtime.as_str()
            )));
        }
        if let Some(s) = n.function_sched.filter(|&s| s != sched) {
            return Err(cluster_err(format!(
                "node {} schedules its function processes as {}, this experiment as {}: pass --function-sched {}, or restart the workers with --function-sched {}",
                n.url,
                s.as_str(),
                sched.as_str(),
                s.as_str(),
                sched.as_str()
            )));
        }
    }
    Ok(())
}

/// Runs the live points on the cluster.
pub(super) async fn run_cluster(
    cluster: &ClusterPlan,
    plan: &Plan,
    opts: &RunOptions,
    events: &[ScenarioEvent],
    dir: &Path,
    record: &mut ExperimentRecord,
    stop: &StopHandle,
) -> Result<(), ExperimentError> {
    let client = reqwest::Client::builder()
        .pool_idle_timeout(protocol::timeouts::CLIENT_POOL_IDLE)
        .build()
        .map_err(|e| ExperimentError::BadArgument(format!("HTTP client: {e}")))?;
    let mut info = ClusterRecord {
        kind: match cluster {
            ClusterPlan::Compose { .. } => "compose".into(),
            ClusterPlan::Url { .. } => "url".into(),
        },
        runtime: plan.runtime.as_str().into(),
        ..Default::default()
    };
    let mut compose = None;
    let balancer = match cluster {
        ClusterPlan::Compose { cpus, memory } => {
            let tag = opts.image_tag.clone();
            for image in ["load-balancer", "worker"] {
                let name = format!("hotfunctions/{image}:{tag}");
                let out = Command::new("docker")
                    .args(["image", "inspect", "--format", "{{.Id}}", &name])
                    .output()
                    .map_err(|e| cluster_err(format!("cannot run docker: {e}")))?;
                if !out.status.success() {
                    return Err(cluster_err(format!(
                        "image {name} not found: build it first with `deploy/build-images.sh` (tag {tag}: HF_TAG={tag})"
                    )));
                }
                info.images.insert(
                    name,
                    String::from_utf8_lossy(&out.stdout).trim().to_string(),
                );
            }
            let file = opts.compose_file.clone();
            if !file.is_file() {
                return Err(cluster_err(format!(
                    "{}: no such compose file (--compose-file)",
                    file.display()
                )));
            }
            let port = free_port()?;
            let token = fresh_token();
            let project = format!("hfexp-{}", std::process::id());
            let first = &record.points[0];
            let mut files = vec![file.clone()];
            let mut function_label = None;
            if plan.runtime == WorkerRuntime::Docker {
                let overlay = file.with_file_name(DOCKER_RUNTIME_OVERRIDE);
                if !overlay.is_file() {
                    return Err(cluster_err(format!(
                        "--runtime docker: {} not found (it is looked for beside --compose-file)",
                        overlay.display()
                    )));
                }
                files.push(overlay.clone());
                info.compose_override = Some(overlay);
                function_label = Some(format!("hotfunctions.deploy={project}"));
                info.function_cgroup_parent = Some(
                    "auto: each worker container's own cgroup (functions bounded by its limits)"
                        .into(),
                );
                info.function_label = function_label.clone();
            }
            let mut env = vec![
                ("HF_TAG", tag),
                ("HF_MGMT_TOKEN", token.clone()),
                ("HF_BALANCER_PORT", port.to_string()),
                ("HF_WORKER_CPUS", cpus.to_string()),
                ("HF_WORKER_MEMORY", memory.clone()),
                ("HF_ALGORITHM", plan.algorithms[0].to_string()),
                ("HF_TIME_SCALE", first.fn_time_scale.to_string()),
                (
                    "HF_FUNCTION_SCHED",
                    plan.function_sched.as_str().to_string(),
                ),
            ];
            if let Some(label) = &function_label {
                env.push(("HF_FUNCTION_LABEL", label.clone()));
                env.push(("HF_FUNCTION_CGROUP_PARENT", "auto".into()));
            }
            info.compose_project = Some(project.clone());
            info.compose_file = Some(file.clone());
            info.cpus_per_node = Some(*cpus);
            info.memory_per_node = Some(memory.clone());
            compose = Some(ComposeProject {
                files,
                project,
                env,
                function_label,
            });
            Balancer {
                url: format!("http://127.0.0.1:{port}"),
                token: Some(token),
                client: client.clone(),
            }
        }
        ClusterPlan::Url { url } => Balancer {
            url: url.clone(),
            token: replay::env_token(),
            client: client.clone(),
        },
    };
    info.balancer = balancer.url.clone();
    record.versions.binaries = Some(match cluster {
        ClusterPlan::Compose { .. } => {
            format!("release (static, images hotfunctions/*:{})", opts.image_tag)
        }
        ClusterPlan::Url { .. } => "the cluster's".into(),
    });
    let result = run_points_on(
        &balancer,
        compose.as_mut(),
        &mut info,
        plan,
        opts,
        events,
        dir,
        record,
        stop,
    )
    .await;
    record.cluster = Some(info);
    drop(compose);
    result
}

#[allow(clippy::too_many_arguments)]
async fn run_points_on(
    balancer: &Balancer,
    mut compose: Option<&mut ComposeProject>,
    info: &mut ClusterRecord,
    plan: &Plan,
    opts: &RunOptions,
    events: &[ScenarioEvent],
    dir: &Path,
    record: &mut ExperimentRecord,
    stop: &StopHandle,
) -> Result<(), ExperimentError> {
    let points = plan.points()?;
    let mut runs = PointRuns::new(plan, opts, events, dir, stop, record)?;
    for (pi, point) in points.iter().enumerate() {
        if stop.level() != StopLevel::Run {
            break;
        }
        let precord = record.points[pi].clone();
        let expected = match compose.as_deref_mut() {
            Some(c) => {
                crate::note!(
                    "experiment: compose cluster: {} workers{}",
                    point.workers,
                    point
                        .label
                        .as_ref()
                        .map(|l| format!(" for {l}"))
                        .unwrap_or_default()
                );
                c.apply(point.workers, &precord)?;
                Some(point.workers)
            }
            None => None,
        };
        let urls = balancer
            .wait_nodes(expected, opts.startup_timeout, stop)
            .await?;
        let readings = read_and_check_nodes(
            &balancer.client,
            urls.iter().map(String::as_str),
            &precord,
            plan.runtime,
            plan.function_sched,
        )
        .await?;
        crate::note!(
            "experiment: {} nodes online behind {}: {}",
            urls.len(),
            balancer.url,
            urls.join(" ")
        );
        info.points.push(ClusterPoint { nodes: readings });
        if compose.is_none() {
            // The cluster's size, not --workers.
            record.points[pi].workers = urls.len() as u32;
            if pi == 0 {
                record.workers = urls.len() as u32;
            }
        }
        let pids = compose
            .as_deref()
            .map(ComposeProject::pids)
            .unwrap_or_default();
        let mut target = ClusterTarget {
            balancer,
            roots: std::iter::once(std::process::id()).chain(pids).collect(),
            describe: info.describe(),
            compose: compose.is_some(),
        };
        if !run_point(&mut runs, &mut target, record, pi, point).await? {
            break;
        }
    }
    Ok(())
}

/// A running cluster: each run configures its balancer and empties its
/// workers.
struct ClusterTarget<'a> {
    balancer: &'a Balancer,
    /// This process and the cluster's containers (compose).
    roots: Vec<u32>,
    /// The cluster's shape, for the runs' sidecars.
    describe: String,
    compose: bool,
}

impl RunTarget for ClusterTarget<'_> {
    /// `/configure` with the run's algorithm, seed, parameters and worker
    /// options (a fresh scheduler), then `/clear?reset_images=true`.
    async fn prepare(&mut self, run: &RunSpec<'_>) -> Result<(), ExperimentError> {
        let algorithm = run.algorithm;
        let mut query = format!("/configure?lb={algorithm}&seed={}", run.seed);
        for (param, value) in run.config.params() {
            query.push_str(&format!("&{algorithm}.{}={value}", param.name()));
        }
        query.push('&');
        query.push_str(&worker_query(run.point));
        crate::note!(
            "{}: configuring the cluster{}",
            run.label,
            run.attempt_note()
        );
        self.balancer.manage(&query).await?;
        self.balancer.manage("/clear?reset_images=true").await?;
        Ok(())
    }

    fn roots(&self) -> Vec<u32> {
        self.roots.clone()
    }

    async fn start(
        &mut self,
        _run: &RunSpec<'_>,
        _record: &mut ExperimentRecord,
        _stop: &StopHandle,
    ) -> Result<Option<Started>, ExperimentError> {
        Ok(Some(Started {
            url: self.balancer.url.clone(),
            token: self.balancer.token.clone(),
        }))
    }

    fn sidecar(&self, record: &ExperimentRecord, run: &RunSpec<'_>) -> RunSidecar {
        let mut sidecar = live_sidecar(record, run.point, run.config);
        sidecar.extra.insert(
            "cluster".into(),
            serde_json::Value::from(self.describe.clone()),
        );
        sidecar
    }

    /// One figure: the containers' processes are not told apart.
    fn cpu_by_process(&self, _roots: &[u32], cores: &HashMap<u32, f64>) -> Vec<host::ProcessCpu> {
        vec![host::ProcessCpu {
            name: if self.compose {
                "replayer and cluster containers".into()
            } else {
                "replayer".into()
            },
            cores: cores.values().sum(),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_arguments_are_checked() {
        assert_eq!(
            ClusterPlan::parse("compose", None, None).unwrap(),
            ClusterPlan::Compose {
                cpus: 1.0,
                memory: "1g".into()
            }
        );
        assert_eq!(
            ClusterPlan::parse("http://10.0.0.5:8111/", None, None).unwrap(),
            ClusterPlan::Url {
                url: "http://10.0.0.5:8111".into()
            }
        );
        for (text, cpus, memory, expected) in [
            ("compose", Some(0.0), None, "--worker-cpus"),
            ("compose", Some(f64::NAN), None, "--worker-cpus"),
            ("compose", Some(1e6), None, "--worker-cpus"),
            ("compose", None, Some("12q"), "unknown unit"),
            ("compose", None, Some("10m"), "at least 64m"),
            ("compose", None, Some("lots"), "expected a size"),
            ("swarm", None, None, "expected `compose` or a balancer URL"),
            ("https://x:1", None, None, "expected `compose`"),
            ("http://x:1/lb", None, None, "no path"),
            ("http://", None, None, "balancer URL"),
            ("http://x:1", Some(1.0), None, "compose only"),
        ] {
            let e = ClusterPlan::parse(text, cpus, memory)
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "{text} {cpus:?} {memory:?}: {e}");
        }
        assert!(
            check_memory("512m").is_ok()
                && check_memory("2G".to_ascii_lowercase().as_str()).is_ok()
        );
    }

    #[test]
    fn nodes_that_run_another_experiment_are_refused() {
        let point = PointRecord {
            fn_time_scale: 0.05,
            package_scale: 0.25,
            ..PointRecord::for_tests()
        };
        let node = |t: Option<f64>, p: Option<f64>, r: Option<&str>| NodeReading {
            url: "http://w:8222".into(),
            runtime: r.map(String::from),
            time_scale: t,
            package_scale: p,
            ..Default::default()
        };
        let process = WorkerRuntime::Process;
        let normal = FunctionSched::Normal;
        assert!(check_nodes(
            &point,
            process,
            normal,
            &[node(Some(0.05), Some(0.25), Some("process"))]
        )
        .is_ok());
        // Not reachable: nothing to check.
        assert!(check_nodes(&point, process, normal, &[node(None, None, None)]).is_ok());
        let e = check_nodes(
            &point,
            process,
            normal,
            &[node(Some(1.0), Some(0.25), None)],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("HF_TIME_SCALE 1") && e.contains("--fn-time-scale 1"),
            "{e}"
        );
        let e = check_nodes(&point, process, normal, &[node(None, Some(1.0), None)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("HF_PACKAGE_SCALE 1"), "{e}");
        let e = check_nodes(&point, process, normal, &[node(None, None, Some("docker"))])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--runtime docker"), "{e}");
        assert!(check_nodes(
            &point,
            WorkerRuntime::Docker,
            normal,
            &[node(None, None, Some("docker"))]
        )
        .is_ok());
        let e = check_nodes(
            &point,
            WorkerRuntime::Docker,
            normal,
            &[node(None, None, Some("process"))],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("--runtime process"), "{e}");
        // A node whose function processes run under another policy.
        let batch = NodeReading {
            function_sched: Some(FunctionSched::Batch),
            ..node(None, None, Some("process"))
        };
        let e = check_nodes(&point, process, normal, std::slice::from_ref(&batch))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("as batch, this experiment as normal")
                && e.contains("--function-sched batch"),
            "{e}"
        );
        assert!(check_nodes(&point, process, FunctionSched::Batch, &[batch]).is_ok());
    }

    #[test]
    fn worker_options_go_to_configure_by_their_query_names() {
        let q = worker_query(&PointRecord::for_tests());
        assert_eq!(
            q,
            "user_code_size_limit=-1&container_pool_limit=-1&container_pool_num=6&using_rest_mode=false&rest_container_life_time=10"
        );
    }
}
