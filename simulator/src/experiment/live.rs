//! Live mode: worker processes started once per point, a fresh balancer
//! per run, the in-process replay, and the noise measured around each run
//! ([`super::host`]).

use std::collections::HashMap;

use super::runs::{run_point, PointRuns, RunSpec, RunTarget, Started};
use super::*;

/// The processes of this experiment, for CPU accounting: this one (the
/// replayer) and everything under it.
fn own_roots(children: &[&ChildProcess]) -> Vec<u32> {
    std::iter::once(std::process::id())
        .chain(children.iter().map(|c| c.pid()))
        .collect()
}

/// Runs the live points, then removes every container and image that the
/// experiment's Docker workers left behind (a worker removes its own when
/// stopped; one killed after the grace period, or an aborted run, leaves
/// them), found by the worker-id label that only this experiment's workers
/// carry, and then the work areas they left
/// ([`children::remove_work_areas`]). Also when the run fails.
pub(super) async fn run_live(
    plan: &Plan,
    opts: &RunOptions,
    events: &[ScenarioEvent],
    dir: &Path,
    record: &mut ExperimentRecord,
    stop: &StopHandle,
) -> Result<(), ExperimentError> {
    if let Some(c) = &plan.cluster {
        return cluster::run_cluster(c, plan, opts, events, dir, record, stop).await;
    }
    let mut worker_ids = Vec::new();
    let result = run_points(plan, opts, events, dir, record, stop, &mut worker_ids).await;
    // The workers are stopped (dropped) by now.
    if plan.runtime == WorkerRuntime::Docker {
        for id in &worker_ids {
            remove_docker_leftovers(id);
        }
    }
    children::remove_work_areas(&worker_ids);
    result
}

/// Removes the containers, then the images, labelled with worker id `id`,
/// and the dangling intermediate images of a build the worker did not
/// finish (they carry only the Dockerfile's labels: its build scope, which
/// is the worker id as image names spell it, and this id is made of
/// lower-case letters, digits and `-` already, unique to this experiment's
/// process).
fn remove_docker_leftovers(id: &str) {
    let filters = [
        format!("label={}={id}", worker_front::runtime::LABEL_WORKER),
        format!("label=hotfunctions.build-scope={id}"),
    ];
    let list = |what: &[&str]| -> Vec<String> {
        let mut ids = Vec::new();
        for filter in &filters {
            let out = Command::new("docker")
                .args(what)
                .args(["--filter", filter, "-q"])
                .output()
                .ok()
                .filter(|o| o.status.success());
            if let Some(o) = out {
                ids.extend(
                    String::from_utf8_lossy(&o.stdout)
                        .split_whitespace()
                        .map(String::from),
                );
            }
        }
        ids
    };
    // Containers first: an image in use cannot go.
    for (what, list_args, remove) in [
        ("container", &["ps", "-a"][..], "rm"),
        ("image", &["images", "-a"][..], "rmi"),
    ] {
        let mut ids = list(list_args);
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            continue;
        }
        crate::note!(
            "experiment: removing {} {what}(s) left by worker {id}",
            ids.len()
        );
        let _ = Command::new("docker")
            .args([remove, "-f"])
            .args(&ids)
            .output();
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_points(
    plan: &Plan,
    opts: &RunOptions,
    events: &[ScenarioEvent],
    dir: &Path,
    record: &mut ExperimentRecord,
    stop: &StopHandle,
    all_ids: &mut Vec<String>,
) -> Result<(), ExperimentError> {
    let bin_dir = match &opts.bin_dir {
        Some(d) => d.clone(),
        None => children::default_bin_dir().ok_or_else(|| {
            ExperimentError::BadArgument(
                "cannot find this executable's directory; pass --bin-dir".into(),
            )
        })?,
    };
    let balancer_bin = children::locate(&bin_dir, "load-balancer", "load-balancer")?;
    let worker_bin = children::locate(&bin_dir, "worker-front", "worker-front")?;
    // The functions' binary, checked before anything starts.
    let static_hf_fn = match plan.runtime {
        WorkerRuntime::Process => {
            children::locate(&bin_dir, "hf-fn", "sample-functions")?;
            None
        }
        WorkerRuntime::Docker => Some(
            worker_front::locate_static_hf_fn(Some(&bin_dir))
                .map_err(ExperimentError::BadArgument)?,
        ),
    };
    record.versions.binaries = bin_dir.file_name().map(|n| n.to_string_lossy().to_string());
    // Relative to the working directory when inside it (portable run.json).
    record.versions.bin_dir = Some(
        std::env::current_dir()
            .ok()
            .and_then(|cwd| bin_dir.strip_prefix(cwd).ok().map(Path::to_path_buf))
            .unwrap_or_else(|| bin_dir.clone()),
    );
    if record.versions.binaries.as_deref() == Some("debug") {
        crate::note!(
            "experiment: note: debug binaries run the functions' CPU work many times slower; \
             for real numbers build with `cargo build --release --workspace` and run target/release/simulator"
        );
    }
    if let Some(h) = &record.host {
        crate::note!("experiment: host: {}", h.describe());
    }

    let client = reqwest::Client::builder()
        .pool_idle_timeout(protocol::timeouts::CLIENT_POOL_IDLE)
        .build()
        .map_err(|e| ExperimentError::BadArgument(format!("HTTP client: {e}")))?;
    let process_logs = dir.join("process-logs");
    let points = plan.points()?;
    let mut runs = PointRuns::new(plan, opts, events, dir, stop, record)?;

    for (pi, point) in points.iter().enumerate() {
        if stop.level() != StopLevel::Run {
            break;
        }
        let precord = record.points[pi].clone();
        // Workers, started once per point; each run's GET /clear resets them.
        let mut workers: Vec<ChildProcess> = Vec::new();
        let mut worker_ids: Vec<String> = Vec::new();
        let worker_settings: Vec<(&'static str, String)> = worker_entries(&precord.worker).into();
        for i in 0..point.workers {
            // An id no other worker on this host carries: this process's
            // pid, the point and the worker's index.
            let worker_id = format!("hfexp-{}-{pi}-{i}", std::process::id());
            worker_ids.push(worker_id.clone());
            all_ids.push(worker_id.clone());
            let mut cmd = Command::new(&worker_bin);
            // What the worker would take from this environment and no
            // record would say: the experiment's workers are its own.
            children::scrub_worker_env(&mut cmd);
            // Port 0: the worker binds a free port and prints it.
            cmd.arg("start")
                .arg("0")
                .args(["--host", "127.0.0.1", "--runtime", plan.runtime.as_str()])
                .args(["--worker-id", &worker_id])
                .env("RUST_LOG", "warn")
                .env(TIME_SCALE_ENV, precord.fn_time_scale.to_string())
                .env(PACKAGE_SCALE_ENV, precord.package_scale.to_string());
            for (name, value) in &worker_settings {
                cmd.env(name, value);
            }
            cmd.args(["--node-memory-mb", &precord.node_memory_mb.to_string()]);
            if plan.runtime == WorkerRuntime::Process {
                cmd.args(["--function-sched", plan.function_sched.as_str()]);
            }
            if let InstanceModel::Lambda { keep_alive, policy } = precord.instances {
                cmd.args(["--instance-model", "lambda"])
                    .args(["--keep-alive-policy", &policy.to_string()])
                    .args(["--keep-alive-s", &keep_alive.as_secs_f64().to_string()]);
            }
            if let Some(f) = &static_hf_fn {
                cmd.arg("--fn-binary").arg(f);
            }
            if let Some(catalog) = &plan.catalog {
                cmd.arg("--catalog").arg(catalog);
            }
            let name = match &point.label {
                Some(l) => format!("{}-worker-{i}", safe_name(l)),
                None => format!("worker-{i}"),
            };
            workers.push(ChildProcess::spawn(
                &name,
                cmd,
                String::new(),
                &process_logs.join(format!("{name}.log")),
                opts.child_nice,
            )?);
        }
        for (w, worker_id) in workers.iter_mut().zip(&worker_ids) {
            tokio::select! {
                r = w.wait_listening(opts.startup_timeout) => r?,
                _ = stop.reached(StopLevel::Stop) => return Err(ExperimentError::Interrupted),
            }
            record.children.push(child_record(w, Some(worker_id)));
        }
        crate::note!(
            "experiment: started {} workers ({} runtime){}: {}",
            workers.len(),
            plan.runtime.as_str(),
            point
                .label
                .as_ref()
                .map(|l| format!(" for {l}"))
                .unwrap_or_default(),
            workers
                .iter()
                .map(|w| w.url.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
        for w in &mut workers {
            tokio::select! {
                r = w.wait_healthy(&client, opts.startup_timeout) => r?,
                _ = stop.reached(StopLevel::Stop) => return Err(ExperimentError::Interrupted),
            }
        }
        // Each worker runs what the record says (its own report).
        cluster::read_and_check_nodes(
            &client,
            workers.iter().map(|w| w.url.as_str()),
            &precord,
            plan.runtime,
            plan.function_sched,
        )
        .await?;
        let nodes = workers
            .iter()
            .map(|w| w.url.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let mut target = LocalTarget {
            client: &client,
            workers: &workers,
            nodes,
            balancer_bin: &balancer_bin,
            process_logs: &process_logs,
            opts,
            balancer: None,
        };
        let go_on = run_point(&mut runs, &mut target, record, pi, point).await;
        drop(target);
        // Workers are stopped by their Drop; do it here to report it.
        for w in &mut workers {
            w.stop();
        }
        if !go_on? {
            break;
        }
    }
    Ok(())
}

/// Local worker processes, with a fresh balancer process for each run.
struct LocalTarget<'a> {
    client: &'a reqwest::Client,
    workers: &'a [ChildProcess],
    /// The workers' URLs, comma-separated (the balancer's `--nodes`).
    nodes: String,
    balancer_bin: &'a Path,
    process_logs: &'a Path,
    opts: &'a RunOptions,
    /// The balancer of the run under way.
    balancer: Option<ChildProcess>,
}

impl RunTarget for LocalTarget<'_> {
    /// Every run starts from empty workers: no images, no warm instances.
    async fn prepare(&mut self, _run: &RunSpec<'_>) -> Result<(), ExperimentError> {
        for w in self.workers {
            reset_worker(self.client, &w.url).await?;
        }
        Ok(())
    }

    fn roots(&self) -> Vec<u32> {
        let children: Vec<&ChildProcess> = self.workers.iter().chain(&self.balancer).collect();
        own_roots(&children)
    }

    async fn start(
        &mut self,
        run: &RunSpec<'_>,
        record: &mut ExperimentRecord,
        stop: &StopHandle,
    ) -> Result<Option<Started>, ExperimentError> {
        crate::note!("{}: starting the balancer{}", run.label, run.attempt_note());
        let (algorithm, opts) = (run.algorithm, self.opts);
        let mut cmd = Command::new(self.balancer_bin);
        cmd.arg(algorithm)
            .args(["--port", "0", "--host", "127.0.0.1"])
            .args(["--nodes", &self.nodes])
            .args(["--seed", &run.seed.to_string()])
            .args(["--node-memory-mb", &run.point.node_memory_mb.to_string()])
            .env("RUST_LOG", "warn");
        for (param, value) in run.config.params() {
            cmd.args(["--param", &format!("{algorithm}.{}={value}", param.name())]);
        }
        let name = format!("balancer-{}", run.id.replace('/', "-"));
        let mut balancer = ChildProcess::spawn(
            &name,
            cmd,
            String::new(),
            &self.process_logs.join(format!("{name}.log")),
            opts.child_nice,
        )?;
        tokio::select! {
            r = balancer.wait_listening(opts.startup_timeout) => r?,
            _ = stop.reached(StopLevel::Stop) => return Ok(None),
        }
        record.children.push(child_record(&balancer, None));
        tokio::select! {
            r = balancer.wait_healthy(self.client, opts.startup_timeout) => r?,
            _ = stop.reached(StopLevel::Stop) => return Ok(None),
        }
        let url = balancer.url.clone();
        self.balancer = Some(balancer);
        Ok(Some(Started { url, token: None }))
    }

    fn cpu_by_process(&self, roots: &[u32], cores: &HashMap<u32, f64>) -> Vec<host::ProcessCpu> {
        let names = std::iter::once("replayer".to_string()).chain(
            self.workers
                .iter()
                .chain(&self.balancer)
                .map(|c| c.name.clone()),
        );
        roots
            .iter()
            .zip(names)
            .map(|(pid, name)| host::ProcessCpu {
                name,
                cores: cores.get(pid).copied().unwrap_or(0.0),
            })
            .collect()
    }

    fn end(&mut self) {
        if let Some(mut b) = self.balancer.take() {
            b.stop();
        }
    }
}

fn child_record(c: &ChildProcess, worker_id: Option<&str>) -> ChildRecord {
    ChildRecord {
        name: c.name.clone(),
        pid: c.pid(),
        url: c.url.clone(),
        worker_id: worker_id.map(String::from),
    }
}

/// Empties a worker: `GET /clear?reset_images=true` (instances and images).
async fn reset_worker(client: &reqwest::Client, url: &str) -> Result<(), ExperimentError> {
    let target = format!("{url}/clear?reset_images=true");
    let failed = |detail: String| ExperimentError::WorkerReset {
        url: url.to_string(),
        detail,
    };
    let response = client
        .get(&target)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        return Err(failed(format!("{status}: {body}")));
    }
    Ok(())
}
