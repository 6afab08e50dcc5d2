//! Live mode: worker processes started once per point, a fresh balancer
//! per run, the in-process replay, and the noise measured around each run
//! ([`super::host`]).

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
/// carry. Also when the run fails.
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
    let mut docker_ids = Vec::new();
    let result = run_points(plan, opts, events, dir, record, stop, &mut docker_ids).await;
    // The workers are stopped (dropped) by now.
    for id in &docker_ids {
        remove_docker_leftovers(id);
    }
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
        eprintln!(
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
    docker_ids: &mut Vec<String>,
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
        eprintln!(
            "experiment: note: debug binaries run the functions' CPU work many times slower; \
             for real numbers build with `cargo build --release --workspace` and run target/release/simulator"
        );
    }
    if let Some(h) = &record.host {
        eprintln!("experiment: host: {}", h.describe());
    }

    let client = reqwest::Client::builder()
        .pool_idle_timeout(protocol::timeouts::CLIENT_POOL_IDLE)
        .build()
        .map_err(|e| ExperimentError::BadArgument(format!("HTTP client: {e}")))?;
    let process_logs = dir.join("process-logs");
    let lag_limits = record.noise_thresholds.unwrap_or_default().lag_limits_us(
        host::median_gap(events.iter().map(|e| e.start_ms)),
        record.time_scale,
    );
    let points = plan.points()?;
    let total = points.len() * plan.repeat as usize * plan.algorithms.len();
    let mut n = 0;

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
            if plan.runtime == WorkerRuntime::Docker {
                docker_ids.push(worker_id.clone());
            }
            let mut cmd = Command::new(&worker_bin);
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
        eprintln!(
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
        let urls: Vec<&str> = workers.iter().map(|w| w.url.as_str()).collect();
        let nodes = urls.join(",");

        'reps: for rep in 0..plan.repeat {
            for algorithm in &plan.algorithms {
                if stop.level() != StopLevel::Run {
                    break 'reps;
                }
                n += 1;
                let seed = plan.seed + u64::from(rep);
                let config = run_config(&precord, algorithm, seed)?;
                let id = run_id(point.label.as_deref(), algorithm, rep, plan.repeat);
                let log = log_path(dir, &id)?;
                let mut earlier = Vec::new();
                loop {
                    let attempt = earlier.len() + 1;
                    let run_started = Instant::now();
                    // Every run starts from empty workers: no images, no
                    // warm instances.
                    for w in &workers {
                        reset_worker(&client, &w.url).await?;
                    }
                    // The quiet check: our processes are idle now.
                    let q0 = CpuSample::take(&own_roots(&[]));
                    let load_before = host::load_average();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let q1 = CpuSample::take(&own_roots(&[]));
                    eprintln!(
                        "[{n}/{total}] {id}: starting the balancer{}",
                        if attempt > 1 {
                            format!(" (attempt {attempt})")
                        } else {
                            String::new()
                        }
                    );
                    let mut cmd = Command::new(&balancer_bin);
                    cmd.arg(*algorithm)
                        .args(["--port", "0", "--host", "127.0.0.1"])
                        .args(["--nodes", &nodes])
                        .args(["--seed", &seed.to_string()])
                        .args(["--node-memory-mb", &precord.node_memory_mb.to_string()])
                        .env("RUST_LOG", "warn");
                    for (param, value) in config.params() {
                        cmd.args(["--param", &format!("{algorithm}.{}={value}", param.name())]);
                    }
                    let name = format!("balancer-{}", id.replace('/', "-"));
                    let mut balancer = ChildProcess::spawn(
                        &name,
                        cmd,
                        String::new(),
                        &process_logs.join(format!("{name}.log")),
                        opts.child_nice,
                    )?;
                    tokio::select! {
                        r = balancer.wait_listening(opts.startup_timeout) => r?,
                        _ = stop.reached(StopLevel::Stop) => break 'reps,
                    }
                    record.children.push(child_record(&balancer, None));
                    tokio::select! {
                        r = balancer.wait_healthy(&client, opts.startup_timeout) => r?,
                        _ = stop.reached(StopLevel::Stop) => break 'reps,
                    }
                    let sidecar = live_sidecar(record, &precord, &config);
                    let mut options = ReplayOptions::new(balancer.url.clone());
                    options.time_scale = record.time_scale;
                    options.duration = plan.duration;
                    options.request_timeout = opts.request_timeout;
                    options.progress = opts.progress;
                    options.label = format!("{n}/{total} {id}");
                    // A rerun replaces its own disturbed attempt.
                    options.overwrite = true;
                    options.run = Some(sidecar);
                    let mut tracked: Vec<&ChildProcess> = workers.iter().collect();
                    tracked.push(&balancer);
                    let roots = own_roots(&tracked);
                    let names: Vec<String> = std::iter::once("replayer".to_string())
                        .chain(tracked.iter().map(|c| c.name.clone()))
                        .collect();
                    let d0 = CpuSample::take(&roots);
                    let summary =
                        replay::replay(events, &options, &log, stop)
                            .await
                            .map_err(|source| ExperimentError::Replay {
                                algorithm: algorithm.to_string(),
                                source,
                            })?;
                    let d1 = CpuSample::take(&roots);
                    let by_root = d0.cores_by_root(&d1);
                    let by_process: Vec<host::ProcessCpu> = roots
                        .iter()
                        .zip(names)
                        .map(|(pid, name)| host::ProcessCpu {
                            name,
                            cores: by_root.get(pid).copied().unwrap_or(0.0),
                        })
                        .collect();
                    balancer.stop(Duration::from_secs(5));
                    let attempt = Attempt {
                        label: format!("[{n}/{total}] {id}"),
                        started: run_started,
                        load_before,
                        quiet: q0.until(&q1),
                        during: d0.until(&d1),
                        by_process,
                    };
                    let key = RunKey {
                        id: &id,
                        algorithm,
                        point: pi,
                        repetition: rep,
                        seed,
                        log: &log,
                    };
                    match close_attempt(
                        plan,
                        record,
                        lag_limits,
                        attempt,
                        summary,
                        key,
                        &mut earlier,
                    ) {
                        AfterAttempt::Rerun => continue,
                        AfterAttempt::Recorded { interrupted: true } => break 'reps,
                        AfterAttempt::Recorded { interrupted: false } => break,
                    }
                }
            }
        }
        // Workers are stopped by their Drop; do it here to report it.
        for w in &mut workers {
            w.stop(Duration::from_secs(5));
        }
    }
    Ok(())
}

/// One attempt of a live run, measured around its replay.
pub(super) struct Attempt {
    /// `[n/total] id`, the prefix of the run's progress lines.
    pub label: String,
    pub started: Instant,
    pub load_before: Option<f64>,
    /// The quiet check just before the replay, and the replay itself.
    pub quiet: Option<host::CpuUse>,
    pub during: Option<host::CpuUse>,
    pub by_process: Vec<host::ProcessCpu>,
}

/// Which run an attempt belongs to.
pub(super) struct RunKey<'a> {
    pub id: &'a str,
    pub algorithm: &'a str,
    pub point: usize,
    pub repetition: u32,
    pub seed: u64,
    pub log: &'a Path,
}

/// What follows an attempt.
pub(super) enum AfterAttempt {
    /// Disturbed, with reruns left: run it again.
    Rerun,
    /// Recorded in the experiment (`interrupted`: the replay was cut).
    Recorded { interrupted: bool },
}

/// Judges an attempt's noise ([`Noise::judge`]), prints its result line,
/// and either keeps it for a rerun (disturbed, `--retry-disturbed` not
/// used up) or records the run with its earlier disturbed attempts. The
/// same for local processes and for a cluster.
pub(super) fn close_attempt(
    plan: &Plan,
    record: &mut ExperimentRecord,
    (lag_limit_p50_us, lag_limit_p99_us): (u64, u64),
    attempt: Attempt,
    summary: replay::ReplaySummary,
    key: RunKey<'_>,
    earlier: &mut Vec<Noise>,
) -> AfterAttempt {
    let thresholds = record.noise_thresholds.unwrap_or_default();
    let mut noise = Noise {
        load_before: attempt.load_before,
        load_after: host::load_average(),
        quiet: attempt.quiet,
        during: attempt.during,
        by_process: attempt.by_process,
        dispatch_lag_p50_us: summary.dispatch_lag_p50_us,
        dispatch_lag_p99_us: summary.dispatch_lag_p99_us,
        lag_limit_p50_us,
        lag_limit_p99_us,
        reasons: Vec::new(),
    };
    noise.judge(&thresholds);
    eprintln!(
        "{}: {} calls, {} ok, {} errors{} in {:.1} s (dispatch lag p99 {} us){}",
        attempt.label,
        summary.dispatched,
        summary.ok,
        summary.errors,
        if summary.interrupted {
            ", INTERRUPTED"
        } else {
            ""
        },
        attempt.started.elapsed().as_secs_f64(),
        summary.dispatch_lag_p99_us,
        if noise.disturbed() {
            format!("; DISTURBED: {}", noise.reasons.join("; "))
        } else {
            String::new()
        }
    );
    let interrupted = summary.interrupted;
    if noise.disturbed() && !interrupted && earlier.len() < plan.retry_disturbed as usize {
        earlier.push(noise);
        return AfterAttempt::Rerun;
    }
    record.runs.push(AlgorithmRun {
        id: key.id.to_string(),
        algorithm: key.algorithm.to_string(),
        point: key.point,
        repetition: key.repetition,
        seed: key.seed,
        log: key.log.to_path_buf(),
        replay: Some(summary),
        des: None,
        noise: Some(noise),
        disturbed_attempts: std::mem::take(earlier),
        wall_time_s: attempt.started.elapsed().as_secs_f64(),
    });
    AfterAttempt::Recorded { interrupted }
}

/// What the experiment knows about a live run, for the replay to complete
/// into its log's sidecar: the replay adds the balancer's nodes (with their
/// ids) and every parameter, and records any disagreement with the
/// algorithm and seed given here.
pub(super) fn live_sidecar(
    record: &ExperimentRecord,
    point: &PointRecord,
    config: &SchedulerConfig,
) -> RunSidecar {
    let mut s = RunSidecar::new(
        "simulator experiment (live)",
        env!("CARGO_PKG_VERSION"),
        crate::des::utc_now(),
        Cluster::default(),
    );
    s.git = record.versions.git.clone();
    s.algorithm = Some(config.name().to_string());
    s.seed = Some(config.seed());
    s.scenario = Some(record.scenario.display().to_string());
    s.scales = protocol::sidecar::Scales {
        time_scale: record.time_scale,
        fn_time_scale: Some(point.fn_time_scale),
        package_scale: Some(point.package_scale),
    };
    s.extra
        .insert("experiment".into(), record.name.clone().into());
    if let Some(l) = &point.label {
        s.extra.insert("point".into(), l.clone().into());
    }
    if let Ok(w) = serde_json::to_value(point.worker) {
        s.extra.insert("worker".into(), w);
    }
    s
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
