//! `simulator des` as a user runs it: the real binary on the checked-in
//! small scenario. Same inputs give byte-identical logs and summaries equal
//! but for their wall-clock `performance` and start time; the seed, the
//! version, the command line and every resolved parameter are recorded; a
//! log comes with its sidecar and only when asked for; the cost profile is
//! read at run time; the summary's latency is `utils analyze`'s; bad input
//! is a clear error naming the file and line; an existing log, sidecar,
//! summary or profile is never overwritten by accident; `calibrate`
//! records the live worker's own runtime and divides out its time scale.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use protocol::sidecar::{sidecar_path, RunSidecar};
use protocol::LogLine;
use support::{check_closed_loop_log, check_load_parameters, des, json, ok};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_simulator"))
}

fn small() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/small.csv")
}

/// The summary without what differs between runs of the same inputs: the
/// wall-clock `performance`, the start time, and the command line (whose
/// output paths differ here).
fn summary_without_performance(path: &Path) -> serde_json::Value {
    let mut v = json(path);
    let perf = v
        .as_object_mut()
        .unwrap()
        .remove("performance")
        .expect("performance section");
    assert!(perf["wall_seconds"].as_f64().unwrap() >= 0.0);
    let run = v["run"].as_object_mut().expect("run section");
    for key in ["started_utc", "command_line", "log", "sidecar"] {
        run.remove(key).expect(key);
    }
    v
}

#[test]
fn same_inputs_give_byte_identical_logs_and_the_seed_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = small();
    let mut logs = Vec::new();
    let mut summaries = Vec::new();
    for (i, seed) in ["7", "7", "8"].iter().enumerate() {
        let log = dir.path().join(format!("run{i}.log"));
        let summary = dir.path().join(format!("run{i}.json"));
        let out = des(&[
            scenario.to_str().unwrap(),
            "--algorithm",
            "tradeoff",
            "--ALPHA",
            "0.3",
            "--nodes",
            "4",
            "--seed",
            seed,
            "--USING_REST_MODE",
            "true",
            "--log",
            log.to_str().unwrap(),
            "--summary-json",
            summary.to_str().unwrap(),
            "--quiet",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        logs.push(std::fs::read(&log).unwrap());
        summaries.push(summary_without_performance(&summary));
    }
    assert_eq!(logs[0], logs[1], "same seed: byte-identical logs");
    assert_eq!(summaries[0], summaries[1]);
    assert_eq!(summaries[0]["seed"], 7);
    assert_eq!(summaries[2]["seed"], 8);
    let scheduler = &summaries[0]["config"]["scheduler"];
    assert_eq!(scheduler["algorithm"], "tradeoff");
    assert_eq!(scheduler["params"]["ALPHA"], 0.3);
    assert_eq!(
        scheduler["params"]["BETA"], 0.5,
        "defaults are recorded too"
    );
    assert_eq!(scheduler["seed"], 7);
    assert_eq!(summaries[0]["config"]["worker"]["UsingRestMode"], true);
    assert_ne!(
        logs[0], logs[2],
        "tradeoff's random choices follow the seed"
    );
    let text = String::from_utf8(logs[0].clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 131);
    for l in &lines {
        let line = protocol::LogLine::parse(l).unwrap();
        assert!(!line.is_error(), "{l}");
        assert!(line.date.starts_with("2020/01/01"), "virtual epoch: {l}");
    }
}

#[test]
fn no_log_unless_asked_and_dash_is_standard_output() {
    let scenario = small();
    let dir = tempfile::tempdir().unwrap();
    // The default: no log anywhere, a hint on stderr.
    let out = bin()
        .current_dir(dir.path())
        .args(["des", scenario.to_str().unwrap()])
        .env_remove("HF_DES_PROFILE")
        .output()
        .unwrap();
    ok(&out);
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--log FILE"), "{err}");
    assert!(
        err.contains("latency (duration - internal execution time, successful calls)"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // --log -: the log on stdout.
    let out = des(&[scenario.to_str().unwrap(), "-q", "--log", "-"]);
    ok(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 131);
    assert!(protocol::LogLine::parse(text.lines().next().unwrap()).is_ok());
    // --no-log, the old way to ask for the default, is still accepted.
    let out = des(&[scenario.to_str().unwrap(), "-q", "--no-log"]);
    ok(&out);
    assert!(out.stdout.is_empty());
}

#[test]
fn a_log_comes_with_its_sidecar_and_the_summary_records_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("logs/ch.log");
    let summary = dir.path().join("ch.json");
    let out = des(&[
        small().to_str().unwrap(),
        "-q",
        "--algorithm",
        "ch",
        "--T",
        "5",
        "--seed",
        "11",
        "--nodes",
        "6",
        "--machine-cores",
        "3",
        "--capacity",
        "9",
        "--time-scale",
        "2",
        "--package-scale",
        "0.5",
        "--instance-model",
        "lambda",
        "--keep-alive-s",
        "30",
        "--log",
        log.to_str().unwrap(),
        "--summary-json",
        summary.to_str().unwrap(),
    ]);
    ok(&out);
    let side = json(&protocol::sidecar::sidecar_path(&log));
    let parsed = protocol::sidecar::RunSidecar::parse(&side.to_string()).unwrap();
    assert_eq!(parsed.producer, "simulator des");
    assert_eq!(parsed.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(parsed.cluster.size, 6);
    assert_eq!(parsed.algorithm.as_deref(), Some("ch"));
    assert_eq!(parsed.parameters["T"], 5);
    assert_eq!(parsed.seed, Some(11));
    assert_eq!(parsed.scenario.as_deref(), small().to_str());
    // Which scenario, by its bytes (as `b2sum -l 256` prints it).
    assert_eq!(
        parsed.scenario_blake2b,
        Some(utils::provenance::file_blake2b(&small()).unwrap())
    );
    assert_eq!(parsed.scales.time_scale, 2.0);
    assert_eq!(parsed.scales.fn_time_scale, Some(0.5));
    assert_eq!(parsed.scales.package_scale, Some(0.5));
    assert!(
        parsed.started_utc.ends_with(" UTC"),
        "{}",
        parsed.started_utc
    );
    assert_eq!(parsed.extra["machine_cores"], 3);
    assert!(parsed.extra.get("cores_per_node").is_none());
    assert_eq!(parsed.extra["capacity"], 9);
    assert_eq!(parsed.extra["instance_model"]["model"], "lambda");
    assert_eq!(parsed.extra["instance_model"]["keep_alive_s"], 30.0);
    let profile_file = parsed.extra["profile"]["file"].as_str().unwrap();
    assert!(
        profile_file.ends_with("simulator/profiles/process.json"),
        "{profile_file}"
    );

    let s = json(&summary);
    // The fields other code reads are kept.
    for key in ["latency_ms", "duration_ms", "failed", "seed", "invocations"] {
        assert!(s.get(key).is_some(), "{key} missing: {s}");
    }
    let c = &s["config"];
    assert_eq!(c["scheduler"]["algorithm"], "ch");
    assert_eq!(c["scheduler"]["params"]["T"], 5);
    assert_eq!(c["scheduler"]["seed"], 11);
    assert_eq!(c["nodes"], 6);
    assert_eq!(c["machine_cores"], 3);
    assert_eq!(c["node_capacity"], 9);
    assert_eq!(c["instances"]["keep_alive_s"], 30.0);
    assert_eq!(c["worker"]["ContainerPoolNum"], 6, "defaults included");
    assert_eq!(c["time_scale"], 2.0);
    assert_eq!(c["fn_time_scale"], 0.5);
    assert_eq!(c["package_scale"], 0.5);
    assert!(c["epoch_ms"].is_i64());
    assert_eq!(c["profile"]["file"], profile_file);
    assert!(c["profile"]["image_build_base_ms"].is_f64());
    let run = &s["run"];
    assert_eq!(run["producer"], "simulator des");
    assert_eq!(run["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(run["profile_found_by"], "workspace");
    assert_eq!(run["started_utc"], side["started_utc"]);
    assert_eq!(run["git"], side["git"]);
    let argv: Vec<&str> = run["command_line"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(argv[1], "des");
    assert!(argv.contains(&"--machine-cores"), "{argv:?}");
    assert_eq!(run["log"], log.to_str().unwrap());
}

#[test]
fn summary_latency_is_utils_analyze_latency() {
    let dir = tempfile::tempdir().unwrap();
    for (algorithm, extra) in [
        ("rr", "--USING_REST_MODE=false"),
        ("ours", "--USING_REST_MODE=true"),
    ] {
        let log = dir.path().join(format!("{algorithm}.log"));
        let summary = dir.path().join(format!("{algorithm}.json"));
        let out = des(&[
            small().to_str().unwrap(),
            "-q",
            "--algorithm",
            algorithm,
            extra,
            "--nodes",
            "3",
            "--log",
            log.to_str().unwrap(),
            "--summary-json",
            summary.to_str().unwrap(),
        ]);
        ok(&out);
        let s = json(&summary);
        let run = utils::logs::RunLog::read(&log).unwrap();
        let a = utils::analyze::analyze(&run, &Default::default()).unwrap();
        assert_eq!(s["completed"].as_u64().unwrap() as usize, a.calls);
        assert_eq!(
            s["latency_ms"]["mean"].as_f64().unwrap(),
            a.mean_latency_ms,
            "{algorithm}: the summary's mean latency is utils analyze's"
        );
        assert_eq!(
            s["duration_ms"]["mean"].as_f64().unwrap(),
            a.mean_duration_ms
        );
        assert_eq!(
            s["latency_ms"]["max"].as_f64().unwrap(),
            a.latency_ms.max as f64
        );
        assert!(a.mean_latency_ms < a.mean_duration_ms);
    }
}

/// A run without a successful call says so on its summary line, instead
/// of a latency of 0 ms over no call; its cancelled calls, error lines of
/// its log as failed calls are, are counted on the line. One client for
/// 1 s with no grace, calling D8 (about 90 s): its one call is cancelled.
#[test]
fn a_run_without_a_successful_call_prints_no_latency() {
    // One stage or two, each of one client calling D8 for 1 s.
    let lost = |clients: &str| {
        let out = des(&[
            "--clients",
            clients,
            "--duration",
            "1s",
            "--grace",
            "0s",
            "--functions",
            "uniform",
            "--names",
            "D8",
            "--fn-time-scale",
            "1",
        ]);
        ok(&out);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let line_of = |stderr: &str, start: &str| {
        stderr
            .lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no {start:?} line: {stderr}"))
            .to_string()
    };
    let line = line_of(&lost("1"), "des: 1 calls");
    assert!(line.contains("(0 failed, 1 cancelled, 0 cold)"), "{line}");
    assert!(line.contains("no latency: no call succeeded"), "{line}");
    assert!(!line.contains("mean 0.0 ms"), "{line}");
    let line = line_of(&lost("1,1"), "des: stage 1 ");
    assert!(
        line.contains("no response time (no successful call)"),
        "{line}"
    );
}

#[test]
fn the_profile_is_read_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let mean_latency = |profile: Option<&Path>| -> (f64, serde_json::Value) {
        let summary = dir.path().join("s.json");
        let mut c = bin();
        c.args(["des", small().to_str().unwrap(), "-q", "--overwrite"])
            .arg("--summary-json")
            .arg(&summary)
            .env_remove("HF_DES_PROFILE");
        if let Some(p) = profile {
            c.env("HF_DES_PROFILE", p);
        }
        let out = c.output().unwrap();
        ok(&out);
        let s = json(&summary);
        (s["latency_ms"]["mean"].as_f64().unwrap(), s)
    };
    let (base, _) = mean_latency(None);
    let slow = dir.path().join("slow.json");
    std::fs::write(&slow, r#"{"runtime": "test", "image_build_base_ms": 5000}"#).unwrap();
    let (slower, s) = mean_latency(Some(&slow));
    assert!(
        slower > base + 1000.0,
        "5 s builds raise the mean latency: {base} -> {slower}"
    );
    assert_eq!(s["config"]["profile"]["file"], slow.to_str().unwrap());
    assert_eq!(s["run"]["profile_found_by"], "HF_DES_PROFILE");
    assert_eq!(
        s["run"]["environment"]["HF_DES_PROFILE"],
        slow.to_str().unwrap()
    );

    // A named profile that is missing is an error naming it, not a fallback.
    let missing = dir.path().join("missing.json");
    let out = bin()
        .args(["des", small().to_str().unwrap(), "-q"])
        .env("HF_DES_PROFILE", &missing)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("HF_DES_PROFILE") && err.contains("missing.json"),
        "{err}"
    );
}

#[test]
fn calibrate_keeps_an_existing_profile_unless_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("process.json");
    std::fs::write(&profile, "{}\n").unwrap();
    // Refused before any measurement: the worker URL is never contacted.
    let out = bin()
        .args(["calibrate", "http://127.0.0.1:9", "--out"])
        .arg(&profile)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--overwrite") && err.contains("process.json"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&profile).unwrap(), "{}\n");
    // The default destination is the one des reads first.
    let out = bin()
        .args(["calibrate", "http://127.0.0.1:9"])
        .env("HF_DES_PROFILE", &profile)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(profile.to_str().unwrap()), "{err}");
    assert_eq!(std::fs::read_to_string(&profile).unwrap(), "{}\n");
}

/// `calibrate` takes what the worker says of itself in `/health`: its
/// runtime (a `--runtime` naming another one is refused before anything
/// is measured or written) and its time scale, which `cpu_scale` divides
/// out; a `--balancer-url` with other nodes than the worker, and a worker
/// of the Lambda instance model (none of the paths measured), are refused. A real process worker whose functions run at 0.1 of their work
/// (and packages at 0.01 of their size, so its images build at once).
#[test]
fn calibrate_takes_the_workers_runtime_and_time_scale() {
    let bins = support::build_testbed();
    let staging = support::staging_dir();
    let port = support::free_port();
    let mut worker = Command::new(bins.join("worker-front"));
    worker
        .args(["start", &port.to_string(), "--host", "127.0.0.1"])
        .args(["--runtime", "process"])
        .arg("--work-dir")
        .arg(staging.path())
        .env("HF_TIME_SCALE", "0.1")
        .env("HF_PACKAGE_SCALE", "0.01")
        .env("RUST_LOG", "warn")
        .env_remove("USING_REST_MODE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut guard = support::Guard(worker.spawn().expect("start worker-front"));
    support::wait_healthy(port, &mut guard.0);
    let url = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();

    // Calibrations to pool: 1 to 20, refused before anything is measured.
    let out = bin()
        .args(["calibrate", &url, "--runs", "0", "--out"])
        .arg(dir.path().join("none.json"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--runs") && err.contains("1..=20"), "{err}");

    let mislabelled = dir.path().join("docker.json");
    let out = bin()
        .args(["calibrate", &url, "--runtime", "docker", "--out"])
        .arg(&mislabelled)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("runs the process runtime, not docker"),
        "{err}"
    );
    assert!(!mislabelled.exists());

    // The balancer hop is measured through a balancer whose only node is
    // this worker: one of two nodes (the other a stub worker) is refused
    // before measuring.
    let stub = support::start_printing_url(
        &support::workspace_bins_with(&["stub-worker"]).join("stub-worker"),
        &["--host", "127.0.0.1", "--port", "0", "--id", "other"],
        std::process::Stdio::null(),
    );
    let balancer = support::start_printing_url(
        &bins.join("load-balancer"),
        &[
            "rr",
            "--port",
            "0",
            "--host",
            "127.0.0.1",
            "--nodes",
            &format!("{url},{}", stub.url),
        ],
        std::process::Stdio::null(),
    );
    let shared = dir.path().join("shared.json");
    let out = bin()
        .args(["calibrate", &url, "--balancer-url", &balancer.url, "--out"])
        .arg(&shared)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has 2 online nodes"), "{err}");
    assert!(!shared.exists());
    drop(balancer);
    drop(stub);

    // A worker of the Lambda model has none of the paths measured.
    let lambda_port = support::free_port();
    let lambda_work = staging.path().join("lambda");
    std::fs::create_dir_all(&lambda_work).unwrap();
    let mut lambda = Command::new(bins.join("worker-front"));
    lambda
        .args(["start", &lambda_port.to_string(), "--host", "127.0.0.1"])
        .args(["--runtime", "process", "--keep-alive-s", "60"])
        .arg("--work-dir")
        .arg(&lambda_work)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut lambda = support::Guard(lambda.spawn().expect("start worker-front"));
    support::wait_healthy(lambda_port, &mut lambda.0);
    let out = bin()
        .args([
            "calibrate",
            &format!("http://127.0.0.1:{lambda_port}"),
            "--out",
        ])
        .arg(dir.path().join("lambda.json"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("runs the lambda instance model"), "{err}");
    drop(lambda);

    let profile = dir.path().join("process.json");
    let out = bin()
        .args(["calibrate", &url, "--repeats", "1", "--build-repeats", "1"])
        .args(["--runs", "2", "--out"])
        .arg(&profile)
        .output()
        .unwrap();
    ok(&out);
    let p = json(&profile);
    assert_eq!(p["runtime"], "process");
    assert_eq!(p["samples"]["worker_time_scale"], 0.1);
    assert_eq!(p["samples"]["worker_package_scale"], 0.01);
    // W1's 750 ms of CPU ran about 75 ms: the machine's speed is near 1
    // (1.07 on this project's machines), not the time scale's 0.1.
    let cpu_scale = p["cpu_scale"].as_f64().unwrap();
    assert!(
        (0.4..5.0).contains(&cpu_scale),
        "cpu_scale {cpu_scale}: {p}"
    );
    // How well each figure is determined: in each of the two
    // calibrations, the fits' standard errors over the 7 package sizes
    // and the medians' ranges; pooled, each figure is the median of the
    // two calibrations' (their mean), and its spread their range beside
    // the largest uncertainty one of them gave it. Printed too.
    let runs = p["samples"]["runs"].as_array().expect("samples.runs");
    assert_eq!(runs.len(), 2, "{p}");
    for run in runs {
        let spread = &run["spread"];
        assert_eq!(spread["image_build_ms_per_mb"]["n"], 7, "{spread}");
        assert!(
            spread["image_build_ms_per_mb"]["standard_error"].is_f64(),
            "{spread}"
        );
        assert!(
            spread["instance_load_ms_per_mb"]["standard_error"].is_f64(),
            "{spread}"
        );
    }
    let spread = &p["spread"];
    let build = &spread["image_build_ms_per_mb"];
    assert_eq!(
        (&build["calibrations"], &build["n"]),
        (&2.into(), &14.into())
    );
    assert!(build["within_run"].is_f64(), "{spread}");
    for figure in ["instance_create_ms", "image_build_ms_per_mb", "cpu_scale"] {
        let (a, b) = (
            runs[0]["figures"][figure].as_f64().unwrap(),
            runs[1]["figures"][figure].as_f64().unwrap(),
        );
        let pooled = p[figure].as_f64().unwrap();
        assert!((pooled - (a + b) / 2.0).abs() < 1e-9, "{figure}: {p}");
        assert_eq!(
            spread[figure]["low"].as_f64().unwrap(),
            a.min(b),
            "{figure}"
        );
        assert_eq!(
            spread[figure]["high"].as_f64().unwrap(),
            a.max(b),
            "{figure}"
        );
    }
    assert!(
        p["description"]
            .as_str()
            .unwrap()
            .ends_with("each figure the median of 2 calibrations"),
        "{p}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("calibrate: calibration 2 of 2: build ")
            && stderr.contains("calibrate: spread: ")
            && stderr.contains("image_build_ms_per_mb (2 calibrations "),
        "{stderr}"
    );
    // Where and when: this machine, as /proc describes it.
    let m = &p["measured_on"];
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(m["cores"], cores, "{m}");
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if let Some(model) = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
    {
        assert_eq!(m["cpu_model"], model.1.trim(), "{m}");
    }
    assert!(m["at"].as_str().unwrap().ends_with(" UTC"), "{m}");
    assert!(m["load_at_start"].is_f64(), "{m}");
    assert!(
        m["simulator"]
            .as_str()
            .unwrap()
            .starts_with(env!("CARGO_PKG_VERSION")),
        "{m}"
    );
    // And the worker it measured, as its /health describes its code.
    let worker = m["worker"].as_str().unwrap_or_default();
    assert!(
        worker.starts_with(&format!("worker-front {}", env!("CARGO_PKG_VERSION"))),
        "{m}"
    );
    if let Some(g) = simulator::source_revision() {
        assert!(worker.contains(&format!("(git {}", &g.commit[..12])), "{m}");
    }
    // A run on it says it was measured on this kind of machine, and
    // prints nothing about it.
    let summary = dir.path().join("on-this-machine.json");
    let out = bin()
        .args(["des", small().to_str().unwrap(), "--profile"])
        .arg(&profile)
        .arg("--summary-json")
        .arg(&summary)
        .output()
        .unwrap();
    ok(&out);
    let origin = &json(&summary)["run"]["profile_origin"];
    if m["cpu_model"].is_string() {
        assert_eq!(origin["verdict"], "same_kind", "{origin}");
    }
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("cost profile"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_run_says_which_machine_its_cost_profile_describes() {
    let dir = tempfile::tempdir().unwrap();
    let run = |profile: &[&str]| -> (serde_json::Value, String) {
        let summary = dir.path().join("s.json");
        let out = bin()
            .args(["des", small().to_str().unwrap(), "--overwrite"])
            .args(profile)
            .arg("--summary-json")
            .arg(&summary)
            .env_remove("HF_DES_PROFILE")
            .output()
            .unwrap();
        ok(&out);
        (
            json(&summary)["run"]["profile_origin"].clone(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let elsewhere = dir.path().join("elsewhere.json");
    support::write_profile_of_another_machine(&elsewhere);
    let (origin, stderr) = run(&["--profile", elsewhere.to_str().unwrap()]);
    assert_eq!(origin["verdict"], "other_kind", "{origin}");
    assert_eq!(origin["measured_on"]["cpu_model"], "Imaginary CPU 9000");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("des: cost profile: "))
        .unwrap_or_else(|| panic!("no cost profile line: {stderr}"));
    assert!(
        line.contains("another kind of machine (Imaginary CPU 9000, 96 cores, on 2026-01-02")
            && line.contains("not this one"),
        "{line}"
    );
    // One that records no machine says so.
    let unrecorded = dir.path().join("unrecorded.json");
    std::fs::write(&unrecorded, r#"{"runtime": "process"}"#).unwrap();
    let (origin, stderr) = run(&["--profile", unrecorded.to_str().unwrap()]);
    assert_eq!(origin["verdict"], "not_recorded", "{origin}");
    assert!(
        stderr.contains("does not say which machine it was measured on"),
        "{stderr}"
    );
    // The ideal profile describes no machine, and nothing is said.
    let (origin, stderr) = run(&["--ideal"]);
    assert_eq!(origin["verdict"], "ideal", "{origin}");
    assert!(!stderr.contains("cost profile"), "{stderr}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "W1,0\nW2,soon\n").unwrap();
    let out = des(&[bad.to_str().unwrap(), "-q", "--no-log"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.csv:2"), "{err}");

    let unknown = dir.path().join("unknown.csv");
    std::fs::write(&unknown, "W1,0\nmyfn,10\n").unwrap();
    let log = dir.path().join("unknown.log");
    let out = des(&[
        unknown.to_str().unwrap(),
        "-q",
        "--log",
        log.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("myfn") && err.contains("row 2"), "{err}");
    assert!(err.contains("unknown.csv: "), "names the file: {err}");
    assert!(
        !log.exists() && !protocol::sidecar::sidecar_path(&log).exists(),
        "refused before any output is created"
    );
    let out = des(&[
        unknown.to_str().unwrap(),
        "-q",
        "--no-log",
        "--default-function",
        "cpu:100+sleep:50",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let profile = dir.path().join("profile.json");
    std::fs::write(&profile, r#"{"rest_warm_ms": "fast"}"#).unwrap();
    let out = des(&[
        small().to_str().unwrap(),
        "-q",
        "--no-log",
        "--profile",
        profile.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("profile.json"), "{err}");

    // The worker's bounds, as the worker and the balancer apply them.
    for (flag, value) in [
        ("--CONTAINER_POOL_NUM", "65"),
        ("--CONTAINER_POOL_NUM", "4294967295"),
        ("--CONTAINER_POOL_LIMIT", "1001"),
        ("--REST_CONTAINER_LIFE_TIME", "31536001"),
    ] {
        let out = des(&[small().to_str().unwrap(), "-q", "--no-log", flag, value]);
        assert!(!out.status.success(), "{flag} {value} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("beyond its bound"), "{flag} {value}: {err}");
    }

    // The simulation's own bounds: 0 cores was taken as 1 without a word.
    for (flag, value, what) in [
        ("--cores", "0", "cores is 0"),
        ("--machine-cores", "0", "machine cores is 0"),
        ("--nodes", "100001", "nodes is 100001"),
    ] {
        let out = des(&[small().to_str().unwrap(), "-q", "--no-log", flag, value]);
        assert!(!out.status.success(), "{flag} {value} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(what) && err.contains("outside its bounds"),
            "{flag} {value}: {err}"
        );
    }

    // An empty scenario: an error, not a run of zero calls that exits 0.
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "\n\n").unwrap();
    let out = des(&[empty.to_str().unwrap(), "-q", "--no-log"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("empty.csv: no calls"), "{err}");

    // A start past a century (the microsecond clock saturated near
    // u64::MAX ms, and the run never ended).
    let late = dir.path().join("late.csv");
    std::fs::write(&late, "W1,0\nW1,18446744073709551615\n").unwrap();
    let out = des(&[late.to_str().unwrap(), "-q", "--no-log"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("late.csv:2") && err.contains("100 years"),
        "{err}"
    );

    let out = des(&[small().to_str().unwrap(), "-q", "--algorithm", "fastest"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown algorithm"));
}

#[test]
fn an_existing_log_sidecar_or_summary_is_kept_unless_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("keep.log");
    let sidecar = protocol::sidecar::sidecar_path(&log);
    let summary = dir.path().join("keep.json");
    let run = |overwrite: bool| {
        let mut a = vec![
            small().to_str().unwrap().to_string(),
            "-q".into(),
            "--log".into(),
            log.to_str().unwrap().into(),
            "--summary-json".into(),
            summary.to_str().unwrap().into(),
        ];
        if overwrite {
            a.push("--overwrite".into());
        }
        des(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    // Each existing output alone stops the run before anything is written.
    for existing in [&log, &sidecar, &summary] {
        for p in [&log, &sidecar, &summary] {
            let _ = std::fs::remove_file(p);
        }
        std::fs::write(existing, "precious\n").unwrap();
        let out = run(false);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--overwrite") && err.contains(existing.to_str().unwrap()),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(existing).unwrap(), "precious\n");
        for p in [&log, &sidecar, &summary] {
            assert_eq!(p.exists(), p == existing, "{}", p.display());
        }
    }
    let out = run(true);
    ok(&out);
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 131);
    assert!(
        protocol::sidecar::RunSidecar::parse(&std::fs::read_to_string(&sidecar).unwrap()).is_ok()
    );
    assert!(json(&summary)["latency_ms"]["mean"].is_f64());
}

#[test]
fn lambda_model_reports_instances() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("s.json");
    let out = des(&[
        small().to_str().unwrap(),
        "-q",
        "--instance-model",
        "lambda",
        "--keep-alive-s",
        "60",
        "--summary-json",
        summary.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = summary_without_performance(&summary);
    let inst = &v["instances"];
    let total = inst["mean_instances"].as_f64().unwrap();
    let busy = inst["mean_busy"].as_f64().unwrap();
    assert!(total > busy && busy > 0.0, "{inst}");
    assert_eq!(v["config"]["instances"]["model"], "lambda");
    assert_eq!(v["config"]["instances"]["keep_alive_s"], 60.0);
    // A keep-alive alone selects the model (before, HotFunctions' model
    // ran and ignored it); with that model named, it is an error.
    let alone = dir.path().join("alone.json");
    let out = des(&[
        small().to_str().unwrap(),
        "-q",
        "--keep-alive-s",
        "60",
        "--summary-json",
        alone.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert_eq!(summary_without_performance(&alone), v);
    let out = des(&[
        small().to_str().unwrap(),
        "-q",
        "--instance-model",
        "hotfunctions",
        "--keep-alive-s",
        "60",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--keep-alive-s 60 needs the Lambda model"),
        "{stderr}"
    );
}

#[test]
fn per_invocation_columns_are_simulated_and_mixed_columns_refused() {
    let dir = tempfile::tempdir().unwrap();
    let shaped = dir.path().join("shaped.csv");
    // W1 is all CPU: its row's 12.5 ms are CPU work, so the call takes
    // 12 or 13 ms (whole ms) on the ideal platform instead of W1's 750.
    std::fs::write(&shaped, "W1,0,12.5\n\nW2,10,3\n").unwrap();
    let log = dir.path().join("shaped.log");
    let out = des(&[
        shaped.to_str().unwrap(),
        "-q",
        "--ideal",
        "--log",
        log.to_str().unwrap(),
    ]);
    ok(&out);
    let text = std::fs::read_to_string(&log).unwrap();
    let first = protocol::LogLine::parse(text.lines().next().unwrap()).unwrap();
    assert!(first.end_ms - first.start_ms <= 13, "{text}");
    // A row whose columns differ from the first row's: refused, naming
    // the file's line (blank line 2 counted), before any output.
    std::fs::write(&shaped, "W1,0,12.5\n\nW2,10\n").unwrap();
    std::fs::remove_file(&log).unwrap();
    let out = des(&[
        shaped.to_str().unwrap(),
        "-q",
        "--log",
        log.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("shaped.csv:3"), "{err}");
    assert!(!log.exists(), "refused before any output is created");
}

// Closed loop (`--clients`): the closed loop of `simulator load`,
// simulated. Its log is the live command's: `utils analyze` (the real
// binary) reads it; its sidecar records the load's parameters as `simulator
// load` does; each client calls the functions the live client of the same
// seed and index calls; never more calls are in flight than clients; the
// same seed gives a byte-identical log; bad options are clear errors.

const CLIENTS: usize = 4;

/// A closed loop of 4 clients on 2 nodes for 30 s of virtual time.
fn closed_loop(log: &Path, load_seed: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "--clients",
        "4",
        "--duration",
        "30s",
        "--functions",
        "zipf:1",
        "--names",
        "W1,W2,W3,W4",
        "--think",
        "exp:100",
        "--load-seed",
        load_seed,
        "--ideal",
        "--nodes",
        "2",
        "--algorithm",
        "ll",
        "--log",
        log.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    des(&args)
}

#[test]
fn a_simulated_closed_loop_writes_the_live_log_and_utils_analyze_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("closed.log");
    let summary = dir.path().join("closed.json");
    let out = closed_loop(&log, "5", &["--summary-json", summary.to_str().unwrap()]);
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("closed loop of 4 clients"), "{stderr}");

    let s = json(&summary);
    let calls = s["invocations"].as_u64().unwrap() as usize;
    assert!(calls > 40, "{s}");
    assert_eq!(s["completed"].as_u64().unwrap() as usize, calls);
    let closed = &s["closed_loop"];
    let per_client: Vec<usize> = closed["calls_per_client"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(per_client.len(), CLIENTS);
    assert_eq!(per_client.iter().sum::<usize>(), calls);
    assert!(closed["throughput_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(closed["parameters"]["seed"], 5);
    assert_eq!(
        s["run"]["scenario"], "closed loop, --functions zipf:1",
        "{s}"
    );

    // One line per call, each client's seeded sequence (as tests/load.rs
    // checks live), read by `utils analyze`; never more in flight than
    // clients.
    let in_flight = check_closed_loop_log(&log, 5, &per_client, 2);
    assert!((1..=CLIENTS).contains(&in_flight), "{in_flight}");
    // Every call was sent within the 30 s (from the virtual epoch).
    let text_log = std::fs::read_to_string(&log).unwrap();
    let epoch = des::DEFAULT_EPOCH_MS;
    assert!(text_log
        .lines()
        .all(|l| LogLine::parse(l).unwrap().start_ms - epoch < 30_000));

    // The sidecar records the load as `simulator load` does.
    let run = RunSidecar::parse(&std::fs::read_to_string(sidecar_path(&log)).unwrap()).unwrap();
    assert_eq!(run.producer, "simulator des");
    assert_eq!(run.algorithm.as_deref(), Some("ll"));
    assert_eq!(run.cluster.size, 2);
    assert_eq!(
        run.scenario.as_deref(),
        Some("closed loop, --functions zipf:1")
    );
    check_load_parameters(&run.extra["load"], CLIENTS, 5, 30.0, "exp:100");
}

#[test]
fn the_same_load_seed_gives_a_byte_identical_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut logs = Vec::new();
    for (i, seed) in ["7", "7", "8"].iter().enumerate() {
        let log = dir.path().join(format!("run{i}.log"));
        let out = closed_loop(&log, seed, &["-q"]);
        ok(&out);
        logs.push(std::fs::read(&log).unwrap());
    }
    assert_eq!(logs[0], logs[1]);
    assert_ne!(logs[0], logs[2]);
}

#[test]
fn bad_closed_loop_options_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/small.csv");
    let scenario = scenario.to_str().unwrap();
    let probs = dir.path().join("p.csv");
    std::fs::write(&probs, "W1,1\nW2,x\n").unwrap();
    let file = format!("file:{}", probs.display());
    for (args, needle) in [
        (
            vec![scenario, "--clients", "2", "--duration", "5s"],
            "cannot be used with",
        ),
        (vec!["--clients", "2"], "--duration"),
        (vec!["--duration", "5s"], "--clients"),
        (vec![scenario, "--think", "exp:5"], "--clients"),
        (
            vec!["--clients", "0", "--duration", "5s"],
            "--clients must be 1..=10000",
        ),
        (vec!["--clients", "2", "--duration", "2d"], "--duration"),
        (
            vec!["--clients", "2", "--duration", "5s", "--functions", &file],
            "p.csv line 2",
        ),
        (
            vec!["--clients", "2", "--duration", "5s", "--names", "NOPE"],
            "not in the catalog",
        ),
        (
            vec!["--clients", "2", "--duration", "5s", "--time-scale", "2"],
            "cannot be used with",
        ),
    ] {
        let mut all = args.clone();
        all.extend(["--ideal", "-q"]);
        let out = des(&all);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {needle:?} not in {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// A `--summary-json` that cannot be written (here a directory, with
/// `--overwrite`) fails before the simulation and before any other output:
/// it failed only after the run, its log already written.
#[test]
fn a_summary_that_cannot_be_written_fails_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.log");
    let summary = dir.path().join("taken");
    std::fs::create_dir(&summary).unwrap();
    let out = bin()
        .args(["des", small().to_str().unwrap(), "-q", "--overwrite"])
        .arg("--log")
        .arg(&log)
        .arg("--summary-json")
        .arg(&summary)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&summary.display().to_string()), "{stderr}");
    assert!(!log.exists(), "the run went ahead: {stderr}");
    assert!(!sidecar_path(&log).exists());
}

/// A run records the revision of the sources its binary was built from,
/// whatever directory it is started in: not the commit of another git
/// repository it runs inside (a researcher's paper, say), and not nothing
/// outside any checkout.
#[test]
fn a_run_records_the_revision_its_binary_was_built_from() {
    let git = |dir: &Path, args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
            .args(args)
            .output()
            .expect("run git");
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap().trim().to_string())
    };
    let built_from = git(
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &["rev-parse", "HEAD"],
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let other_repo = elsewhere.path().join("paper");
    let plain = elsewhere.path().join("plain");
    std::fs::create_dir_all(&other_repo).unwrap();
    std::fs::create_dir_all(&plain).unwrap();
    git(&other_repo, &["init", "-q"]).expect("git init");
    git(
        &other_repo,
        &["commit", "-q", "--allow-empty", "-m", "paper"],
    )
    .expect("git commit");
    let paper_commit = git(&other_repo, &["rev-parse", "HEAD"]).unwrap();
    for dir in [&other_repo, &plain] {
        let out = bin()
            .current_dir(dir)
            .args(["des", small().to_str().unwrap(), "-q"])
            .args(["--summary-json", "s.json"])
            .env_remove("HF_DES_PROFILE")
            .output()
            .unwrap();
        ok(&out);
        let recorded = json(&dir.join("s.json"))["run"]["git"]["commit"].clone();
        assert_ne!(recorded, paper_commit.as_str(), "in {}", dir.display());
        assert_eq!(
            recorded.as_str(),
            built_from.as_deref(),
            "in {}",
            dir.display()
        );
    }
}

/// `--profile-variants N` runs the scenario again on N variants of the
/// cost profile: the summary records each run (variant 0 is the run
/// itself), the summary line gives each figure's range, the latency
/// follows the varied costs, and a run on variant k is the same in every
/// run. A profile without a spread, `--ideal` and more than 64 variants
/// are refused before anything is written.
#[test]
fn a_run_on_variants_of_the_cost_profile_gives_each_results_range() {
    let dir = tempfile::tempdir().unwrap();
    // Instance starts of 50-150 ms (three calibrations' range), nothing else
    // varied: every call here is cold, so its latency follows them.
    let spread = dir.path().join("spread.json");
    std::fs::write(
        &spread,
        r#"{"runtime": "process", "instance_create_ms": 100, "network_ms": 1,
            "spread": {"instance_create_ms": {"n": 21, "low": 50, "high": 150, "calibrations": 3}}}"#,
    )
    .unwrap();
    let run = |summary: &str| -> (serde_json::Value, String) {
        let out = des(&[
            small().to_str().unwrap(),
            "--profile",
            spread.to_str().unwrap(),
            "--profile-variants",
            "4",
            "--summary-json",
            dir.path().join(summary).to_str().unwrap(),
        ]);
        ok(&out);
        (
            json(&dir.path().join(summary)),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (s, stderr) = run("a.json");
    let v = &s["profile_variants"];
    assert_eq!(v["count"], 4, "{v}");
    assert_eq!(v["varied"], serde_json::json!(["instance_create_ms"]));
    assert!(v["held"].as_array().unwrap().len() > 5, "{v}");
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 5, "{v}");
    let variants: Vec<u64> = runs
        .iter()
        .map(|r| r["variant"].as_u64().unwrap())
        .collect();
    assert_eq!(variants, [0, 1, 2, 3, 4]);
    assert!(runs.iter().all(|r| r["algorithm"] == "rr"), "{v}");
    // Variant 0 is the run itself.
    assert_eq!(runs[0]["mean_latency_ms"], s["latency_ms"]["mean"], "{v}");
    assert_eq!(runs[0]["p99_latency_ms"], s["latency_ms"]["p99"], "{v}");
    let mean: Vec<f64> = runs
        .iter()
        .map(|r| r["mean_latency_ms"].as_f64().unwrap())
        .collect();
    let (low, high) = (
        mean.iter().copied().fold(f64::MAX, f64::min),
        mean.iter().copied().fold(f64::MIN, f64::max),
    );
    // Each cold call pays its instance start: the range follows 50-150 ms.
    assert!(
        high - low > 20.0,
        "latency did not follow the costs: {mean:?}"
    );
    assert!(low > 40.0 && high < 170.0, "{mean:?}");
    assert!(stderr.contains("[variant 4/4]"), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("over the profile and 4 variants of it: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        line.contains(&format!(
            "mean latency (ms) {:.1} ({low:.1}-{high:.1})",
            mean[0]
        )),
        "{line}"
    );
    // The same variants in every run.
    let (again, _) = run("b.json");
    assert_eq!(again["profile_variants"], s["profile_variants"]);

    // Refusals, before any output.
    let no_spread = dir.path().join("no-spread.json");
    std::fs::write(
        &no_spread,
        r#"{"runtime": "process", "instance_create_ms": 100}"#,
    )
    .unwrap();
    let refused = dir.path().join("refused.json");
    let cases: [&[&str]; 3] = [
        &[
            "--profile",
            no_spread.to_str().unwrap(),
            "--profile-variants",
            "2",
        ],
        &["--ideal", "--profile-variants", "2"],
        &[
            "--profile",
            spread.to_str().unwrap(),
            "--profile-variants",
            "65",
        ],
    ];
    let wants = ["records none", "cannot be used with", "0..=64"];
    for (case, want) in cases.iter().zip(wants) {
        let mut argv = vec![small().to_str().unwrap().to_string()];
        argv.extend(case.iter().map(|a| a.to_string()));
        argv.extend(["--summary-json".into(), refused.display().to_string()]);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = des(&argv);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{case:?} was accepted");
        assert!(stderr.contains(want), "{case:?}: {stderr}");
        assert!(!refused.exists(), "{case:?} wrote its summary");
    }
}

/// A p99 over fewer calls than bound it (368) says so on the summary line;
/// over enough calls it does not.
#[test]
fn a_p99_over_too_few_calls_says_it_has_no_upper_bound() {
    let line = |scenario: &str| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios")
            .join(scenario);
        let out = des(&[path.to_str().unwrap(), "--ideal"]);
        ok(&out);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        stderr
            .lines()
            .find(|l| l.starts_with("des: ") && l.contains(" calls ("))
            .unwrap_or_else(|| panic!("{stderr}"))
            .to_string()
    };
    let few = line("small.csv");
    assert!(few.starts_with("des: 131 calls"), "{few}");
    assert!(
        few.contains(" ms (no upper 95 % bound over 131 calls); seed"),
        "{few}"
    );
    let many = line("events.csv");
    assert!(many.contains(", p99 "), "{many}");
    assert!(!many.contains("no upper 95 % bound"), "{many}");
}
