//! Benchmark of the worker's runtimes (issue 3, section 4), in one run:
//!
//! 1. **Docker cold start** with the image present: the Docker runtime's
//!    one-shot call (create, attach, start, read output, wait; removal is off
//!    the path) against `docker run --rm` of the same image with the same
//!    command, interleaved call by call (each measured after the previous
//!    one's container is gone), for `noop` and `W1` (9.7 MB package).
//!    Target: runtime / `docker run` median ≤ 1.5.
//! 2. **Warm REST-mode throughput** of `noop` through the real worker binary
//!    (`worker-front start`, `USING_REST_MODE=true`), in the process and in
//!    the Docker runtime, against a bare loopback HTTP server (actix-web, a
//!    fixed 2-byte body: the physical limit of this machine's loopback HTTP)
//!    measured in the same run with the same `wrk` settings. All targets
//!    run at once and are measured in turn, `--rounds` times (the order
//!    rotating); the report gives medians, and the share of the bare
//!    server's throughput as the median and the lowest of the rounds'
//!    ratios (each a pair of figures taken seconds apart).
//!    Target: worker throughput ≥ 30 % of the bare server's. For reference
//!    the run also measures the second hop alone: a Docker REST-mode `noop`
//!    instance called directly.
//!
//! Run with `bench/worker-runtimes.sh` (builds what is needed first), or
//! `cargo bench -p worker-front --bench worker_runtimes -- [options]`:
//! `--calls N` cold starts per side (20), `--duration S` per wrk run (10),
//! `--rounds R` of the warm measurements (3),
//! `--connections C` (16), `--threads T` wrk threads (2), `--time-scale X`
//! for W1 (0.001), `--worker-bin PATH` (target/release/worker-front),
//! `--json PATH` to also write the figures as JSON, `--skip-worker` (cold
//! start only), `--skip-cold` (warm throughput only). Everything it creates carries `hotfunctions.worker=bench-…`
//! labels and is removed at the end, also on failure; worker processes are
//! killed with the benchmark.

// A benchmark reads the clock.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use worker_front::runtime::docker::DockerRuntime;
use worker_front::runtime::{Image, InstanceKind, Runtime, RuntimeOptions};

#[derive(Debug, Clone)]
struct Args {
    calls: usize,
    duration_s: u64,
    rounds: usize,
    connections: u32,
    threads: u32,
    time_scale: f64,
    worker_bin: PathBuf,
    json: Option<PathBuf>,
    skip_worker: bool,
    skip_cold: bool,
    /// Prefix of every worker id this run uses (`<run-id>-cold`,
    /// `<run-id>-process`, `<run-id>-docker`).
    run_id: String,
}

fn parse_args() -> Result<Args> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut a = Args {
        calls: 20,
        duration_s: 10,
        rounds: 3,
        connections: 16,
        threads: 2,
        time_scale: 0.001,
        worker_bin: root.join("target/release/worker-front"),
        json: None,
        skip_worker: false,
        skip_cold: false,
        run_id: format!("bench-{}", std::process::id()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--calls" => a.calls = value("--calls")?.parse()?,
            "--duration" => a.duration_s = value("--duration")?.parse()?,
            "--rounds" => a.rounds = value("--rounds")?.parse()?,
            "--connections" => a.connections = value("--connections")?.parse()?,
            "--threads" => a.threads = value("--threads")?.parse()?,
            "--time-scale" => a.time_scale = value("--time-scale")?.parse()?,
            "--worker-bin" => a.worker_bin = value("--worker-bin")?.into(),
            "--json" => a.json = Some(value("--json")?.into()),
            "--skip-worker" => a.skip_worker = true,
            "--skip-cold" => a.skip_cold = true,
            "--run-id" => a.run_id = value("--run-id")?,
            // Passed by `cargo bench`.
            "--bench" => {}
            other => bail!(
                "unknown argument {other:?} (see the module docs of benches/worker_runtimes.rs)"
            ),
        }
    }
    if a.calls < 3 || a.duration_s == 0 || a.duration_s > 120 || !(1..=20).contains(&a.rounds) {
        bail!("--calls must be ≥ 3, --duration within 1..=120 s and --rounds within 1..=20");
    }
    Ok(a)
}

/// Median and 90th percentile of durations, in ms.
fn summary(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i].as_secs_f64() * 1e3
    };
    (at(0.5), at(0.9))
}

#[derive(Debug, Clone, serde::Serialize)]
struct ColdStart {
    function: String,
    runtime_median_ms: f64,
    runtime_p90_ms: f64,
    docker_run_median_ms: f64,
    docker_run_p90_ms: f64,
    ratio: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
struct Throughput {
    target: String,
    requests_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Medians over the rounds.
    errors: u64,
    /// Median over the rounds of (this target / echo, same round).
    ratio_to_echo: f64,
    ratio_to_echo_min: f64,
    rounds_requests_per_s: Vec<f64>,
}

/// Removes everything carrying `hotfunctions.worker=<id>` (CLI: no state).
fn remove_by_label(worker_id: &str) {
    let filter = format!("label=hotfunctions.worker={worker_id}");
    for (list, remove) in [
        (vec!["ps", "-aq", "--filter", &filter], vec!["rm", "-f"]),
        (vec!["images", "-q", "--filter", &filter], vec!["rmi", "-f"]),
    ] {
        let Ok(out) = std::process::Command::new("docker").args(&list).output() else {
            continue;
        };
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if !ids.is_empty() {
            let _ = std::process::Command::new("docker")
                .args(&remove)
                .args(&ids)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Cleans a worker id's Docker objects when dropped (also on error/panic).
struct LabelCleanup(Vec<String>);

impl Drop for LabelCleanup {
    fn drop(&mut self) {
        for id in &self.0 {
            remove_by_label(id);
        }
    }
}

async fn wait_until_no_containers(rt: &DockerRuntime) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !rt.list_own_instances().await?.is_empty() {
        if Instant::now() > deadline {
            bail!("containers of the cold-start runtime did not go away");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn docker_run_once(image: &Image, time_scale: f64) -> Result<Duration> {
    let started = Instant::now();
    let out = tokio::process::Command::new("docker")
        .args(["run", "--rm", "--network", "none", "-e"])
        .arg(format!("HF_TIME_SCALE={time_scale}"))
        .arg(&image.name)
        .arg(&image.function)
        .output()
        .await
        .context("running docker (is the CLI installed?)")?;
    let took = started.elapsed();
    if !out.status.success() || !String::from_utf8_lossy(&out.stdout).contains("\"statusCode\":200")
    {
        bail!(
            "docker run {} failed: {}",
            image.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(took)
}

async fn cold_start(args: &Args, static_bin: PathBuf) -> Result<Vec<ColdStart>> {
    let worker_id = format!("{}-cold", args.run_id);
    let _cleanup = LabelCleanup(vec![worker_id.clone()]);
    let rt = DockerRuntime::new(RuntimeOptions {
        worker_id,
        fn_binary: static_bin,
        time_scale: args.time_scale,
        package_scale: 1.0,
        work_dir: std::env::temp_dir(),
    })?;
    rt.health().await.context("the Docker engine must answer")?;
    let mut out = Vec::new();
    for name in ["noop", "W1"] {
        let spec = sample_functions::catalog()
            .get(name)
            .context("function in catalog")?;
        let image = rt.build_image(spec).await?;
        // Warm-up: first runs pay page-cache misses for the image's layers.
        for _ in 0..2 {
            rt.run_once(&image).await?;
            wait_until_no_containers(&rt).await?;
            docker_run_once(&image, args.time_scale).await?;
        }
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for i in 0..args.calls {
            // Alternate which side goes first.
            for side in [i % 2, 1 - i % 2] {
                if side == 0 {
                    let started = Instant::now();
                    let call = rt.run_once(&image).await?;
                    ours.push(started.elapsed());
                    if call.output.result.status_code != 200 {
                        bail!("{name}: status {}", call.output.result.status_code);
                    }
                    wait_until_no_containers(&rt).await?;
                } else {
                    theirs.push(docker_run_once(&image, args.time_scale).await?);
                }
            }
        }
        let (om, o90) = summary(&mut ours);
        let (tm, t90) = summary(&mut theirs);
        let row = ColdStart {
            function: name.into(),
            runtime_median_ms: om,
            runtime_p90_ms: o90,
            docker_run_median_ms: tm,
            docker_run_p90_ms: t90,
            ratio: om / tm,
        };
        eprintln!(
            "cold start {name}: runtime median {om:.1} ms (p90 {o90:.1}), docker run --rm median {tm:.1} ms (p90 {t90:.1}), ratio {:.2}",
            row.ratio
        );
        out.push(row);
        rt.remove_image(&image).await?;
    }
    // Removes the runtime's work area too.
    rt.shutdown().await?;
    Ok(out)
}

/// A bare loopback HTTP server: any GET answers 200 "ok".
fn start_echo_server() -> Result<(u16, actix_web::dev::ServerHandle)> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let system = actix_web::rt::System::new();
        system.block_on(async move {
            let server = actix_web::HttpServer::new(|| {
                actix_web::App::new().default_service(actix_web::web::to(|| async {
                    actix_web::HttpResponse::Ok()
                        .content_type("application/json")
                        .body("ok")
                }))
            })
            .workers(2)
            .bind(("127.0.0.1", 0));
            let server = match server {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            let port = server.addrs()[0].port();
            let running = server.run();
            let _ = tx.send(Ok((port, running.handle())));
            let _ = running.await;
        });
    });
    rx.recv()
        .context("echo server thread")?
        .map_err(|e| anyhow::anyhow!("echo server: {e}"))
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs wrk against `url`; returns (requests/s, p50 ms, p99 ms, errors).
async fn wrk(args: &Args, url: &str) -> Result<(f64, f64, f64, u64)> {
    let out = tokio::process::Command::new("wrk")
        .arg(format!("-t{}", args.threads))
        .arg(format!("-c{}", args.connections))
        .arg(format!("-d{}s", args.duration_s))
        .arg("--latency")
        .arg(url)
        .kill_on_drop(true)
        .output()
        .await
        .context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    parse_wrk(&text).with_context(|| format!("unreadable wrk output:\n{text}"))
}

fn parse_wrk(text: &str) -> Option<(f64, f64, f64, u64)> {
    let to_ms = |s: &str| -> Option<f64> {
        let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
        let v: f64 = num.parse().ok()?;
        Some(match unit {
            "us" => v / 1e3,
            "ms" => v,
            "s" => v * 1e3,
            "m" => v * 60e3,
            _ => return None,
        })
    };
    let mut rps = None;
    let (mut p50, mut p99) = (None, None);
    let mut errors = 0;
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["Requests/sec:", v] => rps = v.parse().ok(),
            ["50%", v] => p50 = to_ms(v),
            ["99%", v] => p99 = to_ms(v),
            ["Non-2xx", "or", "3xx", "responses:", n] => errors += n.parse::<u64>().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                for n in rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                {
                    errors += n;
                }
            }
            _ => {}
        }
    }
    Some((rps?, p50?, p99?, errors))
}

/// A worker binary running in REST mode; stopped when dropped.
struct WorkerProcess {
    child: tokio::process::Child,
    port: u16,
}

/// Asks a process to stop (SIGTERM: the worker removes what it created).
fn terminate(pid: Option<u32>) {
    if let Some(pid) = pid {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // Reached only when the benchmark fails or is interrupted; `stop`
        // is the normal path. Give the worker time to clean up, then kill.
        terminate(self.child.id());
        for _ in 0..300 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.start_kill();
    }
}

async fn start_worker(
    args: &Args,
    runtime: &str,
    static_bin: &std::path::Path,
) -> Result<WorkerProcess> {
    let port = free_port()?;
    let child = tokio::process::Command::new(&args.worker_bin)
        .args(["start", "--runtime", runtime, "--port", &port.to_string()])
        .env("USING_REST_MODE", "true")
        .env("REST_CONTAINER_LIFE_TIME", "3600")
        .env("HF_FN_STATIC_BINARY", static_bin)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (cargo build --release -p worker-front)",
                args.worker_bin.display()
            )
        })?;
    let worker = WorkerProcess { child, port };
    let client = reqwest::Client::new();
    let health = format!("http://127.0.0.1:{port}/health");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(&health).send().await {
            if r.status().is_success() {
                break;
            }
        }
        if Instant::now() > deadline {
            bail!("worker ({runtime}) did not answer {health} within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // First call: builds the image and starts the REST instance.
    let first = client
        .get(format!("http://127.0.0.1:{port}/execute?name=noop"))
        .send()
        .await?;
    let status = first.status();
    let body = first.text().await?;
    if !status.is_success() {
        bail!("worker ({runtime}) first call: HTTP {status}: {body}");
    }
    let second: serde_json::Value = client
        .get(format!("http://127.0.0.1:{port}/execute?name=noop"))
        .send()
        .await?
        .json()
        .await?;
    if second["Meta"]["UsingExistingRestContainer"] != serde_json::Value::Bool(true) {
        bail!("worker ({runtime}) is not in REST mode: {second}");
    }
    Ok(worker)
}

impl WorkerProcess {
    /// SIGTERM (the worker removes its instances and images), then wait.
    async fn stop(mut self) {
        terminate(self.child.id());
        if tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
        }
    }
}

/// Median of `values` (not empty).
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// All four targets run at once; each round measures them in turn (the
/// order rotates by one each round), so a slow spell of the machine
/// touches every target alike, and each round's ratios compare figures
/// taken seconds apart.
async fn throughput(args: &Args, static_bin: PathBuf) -> Result<Vec<Throughput>> {
    let (echo_port, echo) = start_echo_server()?;
    // The second hop alone: a Docker REST-mode instance of noop, called
    // directly (the ceiling of a worker that cost nothing is roughly
    // 1 / (1/echo + 1/instance)).
    let instance_id = format!("{}-instance", args.run_id);
    let _cleanup = LabelCleanup(vec![
        instance_id.clone(),
        format!("{}-process", args.run_id),
        format!("{}-docker", args.run_id),
    ]);
    let rt = DockerRuntime::new(RuntimeOptions {
        worker_id: instance_id,
        fn_binary: static_bin.clone(),
        time_scale: 1.0,
        package_scale: 1.0,
        work_dir: std::env::temp_dir(),
    })?;
    let spec = sample_functions::catalog().get("noop").context("noop")?;
    let image = rt.build_image(spec).await?;
    let instance = rt.start_instance(&image, InstanceKind::Rest).await?;
    let instance_port = rt.instance_port(&instance).await?;
    let process = start_worker(args, "process", &static_bin).await?;
    let docker = start_worker(args, "docker", &static_bin).await?;
    let targets = [
        (
            "bare loopback HTTP server".to_string(),
            format!("http://127.0.0.1:{echo_port}/execute?name=noop"),
        ),
        (
            "noop instance in Docker, direct (no worker)".to_string(),
            format!("http://127.0.0.1:{instance_port}/invoke"),
        ),
        (
            "worker, process runtime, REST mode".to_string(),
            format!("http://127.0.0.1:{}/execute?name=noop", process.port),
        ),
        (
            "worker, docker runtime, REST mode".to_string(),
            format!("http://127.0.0.1:{}/execute?name=noop", docker.port),
        ),
    ];
    // samples[target][round] = (req/s, p50, p99, errors)
    let mut samples = vec![Vec::new(); targets.len()];
    let mut failure = None;
    'rounds: for round in 0..args.rounds {
        for k in 0..targets.len() {
            let t = (k + round) % targets.len();
            let (name, url) = &targets[t];
            match wrk(args, url).await {
                Ok(m) => {
                    eprintln!(
                        "round {}/{}: {name}: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms, {} errors",
                        round + 1,
                        args.rounds,
                        m.0,
                        m.1,
                        m.2,
                        m.3
                    );
                    samples[t].push(m);
                }
                Err(e) => {
                    failure = Some(e.context(format!("measuring {name}")));
                    break 'rounds;
                }
            }
        }
    }
    process.stop().await;
    docker.stop().await;
    echo.stop(true).await;
    rt.shutdown().await?;
    if let Some(e) = failure {
        return Err(e);
    }
    let echo_rps: Vec<f64> = samples[0].iter().map(|m| m.0).collect();
    let rows = targets
        .iter()
        .zip(&samples)
        .map(|((name, _), ms)| {
            let rps: Vec<f64> = ms.iter().map(|m| m.0).collect();
            let ratios: Vec<f64> = rps.iter().zip(&echo_rps).map(|(r, e)| r / e).collect();
            let p50: Vec<f64> = ms.iter().map(|m| m.1).collect();
            let p99: Vec<f64> = ms.iter().map(|m| m.2).collect();
            Throughput {
                target: name.clone(),
                requests_per_s: median(&rps),
                p50_ms: median(&p50),
                p99_ms: median(&p99),
                errors: ms.iter().map(|m| m.3).sum(),
                ratio_to_echo: median(&ratios),
                ratio_to_echo_min: ratios.iter().copied().fold(f64::INFINITY, f64::min),
                rounds_requests_per_s: rps,
            }
        })
        .collect();
    Ok(rows)
}

fn static_binary() -> PathBuf {
    DockerRuntime::default_static_fn_binary()
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // On Ctrl-C or SIGTERM the measurement is dropped, and with it every
    // guard: worker processes are stopped and labelled objects removed.
    tokio::select! {
        r = measure(args) => r,
        _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        _ = term.recv() => bail!("terminated"),
    }
}

async fn measure(args: Args) -> Result<()> {
    let static_bin = static_binary();
    if !static_bin.is_file() {
        bail!(
            "{} is missing: run scripts/build-static-hf-fn.sh",
            static_bin.display()
        );
    }
    let cold = if args.skip_cold {
        Vec::new()
    } else {
        cold_start(&args, static_bin.clone()).await?
    };
    let warm = if args.skip_worker {
        Vec::new()
    } else {
        throughput(&args, static_bin).await?
    };
    if !cold.is_empty() {
        println!(
            "\n## Docker cold start, image present ({} calls per side)\n",
            args.calls
        );
        println!("| function | runtime median (p90) ms | docker run --rm median (p90) ms | ratio (target ≤ 1.5) |");
        println!("|---|---|---|---|");
    }
    for c in &cold {
        println!(
            "| {} | {:.1} ({:.1}) | {:.1} ({:.1}) | {:.2} |",
            c.function,
            c.runtime_median_ms,
            c.runtime_p90_ms,
            c.docker_run_median_ms,
            c.docker_run_p90_ms,
            c.ratio
        );
    }
    if !warm.is_empty() {
        println!(
            "\n## Warm REST-mode noop, wrk -t{} -c{} -d{}s\n",
            args.threads, args.connections, args.duration_s
        );
        println!("Medians of {} rounds; the share of echo is the median (and the lowest) of the rounds' ratios.\n", args.rounds);
        println!("| target | req/s | p50 ms | p99 ms | errors | share of echo, median (lowest); target ≥ 30 % |");
        println!("|---|---|---|---|---|---|");
        for w in &warm {
            println!(
                "| {} | {:.0} | {:.3} | {:.3} | {} | {:.0} % ({:.0} %) |",
                w.target,
                w.requests_per_s,
                w.p50_ms,
                w.p99_ms,
                w.errors,
                100.0 * w.ratio_to_echo,
                100.0 * w.ratio_to_echo_min
            );
        }
    }
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "calls": args.calls,
            "wrk": {"threads": args.threads, "connections": args.connections, "duration_s": args.duration_s},
            "rounds": args.rounds,
            "time_scale": args.time_scale,
            "cold_start": cold,
            "warm_rest_noop": warm,
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
