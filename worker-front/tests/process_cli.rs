//! The real `worker-front` binary: `--help`, `start [port]` with the
//! original's environment variables, and a crashing function answered with
//! 500 and the tail of its stderr; output to files (start-up line, no
//! colour codes, no line per call); `--runtime docker` without its static
//! `hf-fn` stops at start-up.

// Tests read the clock for their deadlines.
#![allow(clippy::disallowed_methods)]

mod process_support;

use process_support::{hf_fn_binary, unique_id};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_worker-front");

#[test]
fn help_names_the_flags() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let out = Command::new(BIN)
        .args(["start", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--runtime",
        "--port",
        "--fn-binary",
        "--container-pool-num",
        "--docker-socket",
    ] {
        assert!(text.contains(flag), "{flag} missing in {text}");
    }
    let bad = Command::new(BIN)
        .args(["start", "--runtime", "vm"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let bad = Command::new(BIN)
        .args(["start", "0"])
        .env("CONTAINER_POOL_NUM", "many")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("CONTAINER_POOL_NUM"));
    // The engine's address only means something to the docker runtime.
    let bad = Command::new(BIN)
        .args([
            "start",
            "0",
            "--docker-socket",
            "unix:///var/run/docker.sock",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("docker runtime only"), "{err}");
    // An address of no known form is refused before any engine call.
    let bad = Command::new(BIN)
        .args([
            "start",
            "0",
            "--runtime",
            "docker",
            "--docker-socket",
            "ssh://me@host",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("expected unix:///"), "{err}");
}

struct Running {
    child: Child,
    port: u16,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on port 0 and reads the bound port from its log.
fn start(envs: &[(&str, &str)], worker_id: &str, work_dir: &std::path::Path) -> Running {
    start_with_stderr(envs, worker_id, work_dir, Stdio::null())
}

fn start_with_stderr(
    envs: &[(&str, &str)],
    worker_id: &str,
    work_dir: &std::path::Path,
    stderr: Stdio,
) -> Running {
    let mut cmd = Command::new(BIN);
    cmd.args(["start", "0", "--host", "127.0.0.1", "--time-scale", "0.01"])
        .arg("--worker-id")
        .arg(worker_id)
        .arg("--fn-binary")
        .arg(hf_fn_binary())
        .arg("--work-dir")
        .arg(work_dir)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(stderr);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("worker exited before listening")
            .unwrap();
        if let Some(rest) = line.split(" on 127.0.0.1:").nth(1) {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            break digits.parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Running { child, port }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_function_is_a_500_with_its_stderr_and_env_options_apply() {
    let dir = tempfile::tempdir().unwrap();
    let id = unique_id("cli");
    let w = start(
        &[
            ("HF_FAIL_FUNCTION", "W11"),
            ("CONTAINER_POOL_NUM", "3"),
            ("USING_REST_MODE", "false"),
        ],
        &id,
        dir.path(),
    );
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("http://127.0.0.1:{}", w.port);
    let get = |path: &str| {
        let url = format!("{base}{path}");
        let client = client.clone();
        async move {
            let r = client.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
            (status, v)
        }
    };
    let (status, v) = get("/configure").await;
    assert_eq!(status, 200);
    assert_eq!(v["State"]["ContainerPoolNum"], 3, "{v}");
    let (status, v) = get("/execute?name=W11").await;
    assert_eq!(status, 500, "{v}");
    assert_eq!(v["Error"], true);
    let msg = v["Message"].as_str().unwrap();
    assert!(
        msg.contains("failed on purpose"),
        "stderr tail missing: {msg}"
    );
    assert!(msg.contains("exit status: 1"), "{msg}");
    // Other functions are unaffected; the worker keeps serving.
    let (status, v) = get("/execute?name=W10").await;
    assert_eq!(status, 200, "{v}");
    // SIGTERM: clean shutdown removes the staged images.
    let pid = w.child.id().to_string();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid.parse().unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut w = w;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = w.child.try_wait().unwrap() {
            assert!(st.success(), "{st}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A log pipe whose reader has gone loses the events, not the worker:
/// tracing reported the failed write with an `eprintln!`, which panicked
/// on the same closed stderr at the first event (exit status 101, staged
/// images and instances left behind).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stderr_loses_the_log_not_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut w = start_with_stderr(&[], &unique_id("stderr"), dir.path(), Stdio::from(writer));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    // Each first call builds an image: an event each.
    for name in ["W1", "W2", "W3", "W1"] {
        let url = format!("http://127.0.0.1:{}/execute?name={name}", w.port);
        let r = client.get(url).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{name}");
    }
    assert!(w.child.try_wait().unwrap().is_none(), "the worker ended");
    terminate(&mut w.child);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_instances_end_with_a_killed_worker() {
    use worker_front::runtime::InstanceKind;
    let dir = tempfile::tempdir().unwrap();
    let id = unique_id("orphans");
    let mut w = start(&[("USING_REST_MODE", "true")], &id, dir.path());
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = client
        .get(format!("http://127.0.0.1:{}/execute?name=I4", w.port))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let rest = process_support::marked_processes(&id);
    assert!(
        rest.iter().any(|i| i.kind == InstanceKind::Rest),
        "{rest:?}"
    );
    // SIGKILL: no chance to clean up; the REST instance must still end.
    w.child.kill().unwrap();
    w.child.wait().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = process_support::marked_processes(&id);
        if left.is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "orphans: {left:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // The staged image stays, until a worker proves it orphaned (see
    // tests/ownership.rs); the temporary directory goes with the test.
}

/// Waits (polling, 30 s at most) until `path` holds `needle`; returns the text.
fn wait_for_text(path: &std::path::Path, needle: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{needle:?} never appeared in {}: {text:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM, then waits (30 s at most) for a clean exit.
fn terminate(child: &mut Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no exit after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Output to files (an experiment's process logs): the start-up line on
/// stdout whatever RUST_LOG says; events on stderr without colour codes,
/// one per image build, none per call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_to_files_has_the_start_line_no_colour_codes_and_no_line_per_call() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for level in ["info", "warn"] {
        let work = tempfile::tempdir().unwrap();
        let (out, err) = (
            dir.path().join(format!("{level}.out")),
            dir.path().join(format!("{level}.err")),
        );
        let mut child = Command::new(BIN)
            .args(["start", "0", "--host", "127.0.0.1", "--time-scale", "0.01"])
            .arg("--worker-id")
            .arg(unique_id("output"))
            .arg("--fn-binary")
            .arg(hf_fn_binary())
            .arg("--work-dir")
            .arg(work.path())
            .env("RUST_LOG", level)
            .env_remove("NO_COLOR")
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        let banner = wait_for_text(&out, "\n");
        assert!(
            banner.starts_with(concat!("worker-front ", env!("CARGO_PKG_VERSION"), " ")),
            "{banner}"
        );
        for needle in [
            "process runtime",
            "hf-fn /",
            "time scale 0.01",
            "\"ContainerPoolNum\":6",
        ] {
            assert!(banner.contains(needle), "{needle}: {banner}");
        }
        let port: u16 = banner
            .split(" listening on 127.0.0.1:")
            .nth(1)
            .unwrap()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap();
        let call = || async {
            let r = client
                .get(format!("http://127.0.0.1:{port}/execute?name=W2"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
        };
        call().await;
        let logged = if level == "info" {
            wait_for_text(&err, " built (")
        } else {
            std::fs::read_to_string(&err).unwrap()
        };
        for _ in 0..5 {
            call().await;
        }
        // Warm calls (one-shot runs of a cached image) add no line.
        assert_eq!(std::fs::read_to_string(&err).unwrap(), logged, "{level}");
        if level == "warn" {
            assert_eq!(logged, "", "nothing to warn about");
        }
        terminate(&mut child);
        for path in [&out, &err] {
            let text = std::fs::read_to_string(path).unwrap();
            assert!(
                !text.contains('\x1b'),
                "escape codes in {}: {text:?}",
                path.display()
            );
        }
    }
}

/// `--runtime docker` without its static hf-fn stops at start-up with
/// what was looked for and the command that builds it (no engine needed:
/// it fails before contacting one).
#[test]
fn the_docker_runtime_without_its_static_hf_fn_fails_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-hf-fn");
    let run = |envs: &[(&str, &std::ffi::OsStr)], extra: &[&std::ffi::OsStr]| {
        let mut cmd = Command::new(BIN);
        cmd.args(["start", "0", "--host", "127.0.0.1", "--runtime", "docker"])
            .args(extra)
            .env_remove("HF_FN_STATIC")
            .env_remove("HF_FN_STATIC_BINARY")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the worker started without its static hf-fn");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(!status.success(), "{stderr}");
        stderr
    };
    for var in ["HF_FN_STATIC", "HF_FN_STATIC_BINARY"] {
        let err = run(&[(var, missing.as_os_str())], &[]);
        assert!(
            err.contains(&format!(
                "{var} names {}, which does not exist",
                missing.display()
            )),
            "{err}"
        );
        assert!(err.contains("scripts/build-static-hf-fn.sh"), "{err}");
    }
    // A dynamically linked binary is refused up front too.
    let err = run(&[], &["--fn-binary".as_ref(), BIN.as_ref()]);
    assert!(err.contains("not a statically linked"), "{err}");
    assert!(err.contains("scripts/build-static-hf-fn.sh"), "{err}");
}
