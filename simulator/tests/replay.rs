//! `simulator replay` against a real HTTP server on loopback (the stub in
//! `replay_stub.rs`), through the library and through the real binary.

#[path = "replay_stub.rs"]
mod replay_stub;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use protocol::{BalancerReply, LogLine, ScenarioEvent};
use replay_stub::StubBalancer;
use simulator::replay::{self, ProgressMode, ReplayOptions, StopHandle};

fn events(rows: &[(&str, u64)]) -> Vec<ScenarioEvent> {
    rows.iter()
        .map(|&(f, ms)| ScenarioEvent::new(f, ms))
        .collect()
}

fn quiet(url: &str) -> ReplayOptions {
    let mut o = ReplayOptions::new(url);
    o.progress = ProgressMode::Off;
    o
}

fn read_log(path: &Path) -> Vec<LogLine> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| LogLine::parse(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'/'
        && b[7] == b'/'
        && s.chars().filter(char::is_ascii_digit).count() == 8
}

fn is_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 8
        && b[2] == b':'
        && b[5] == b':'
        && s.chars().filter(char::is_ascii_digit).count() == 6
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_every_response_in_the_original_format() {
    let stub = StubBalancer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("nested/run.log");
    let evs = events(&[
        ("W1", 0),
        ("W2", 50),
        ("FAIL1", 100),
        ("BAD1", 150),
        ("W1", 200),
    ]);
    let summary = replay::replay(&evs, &quiet(&stub.url), &log, &StopHandle::new())
        .await
        .unwrap();

    assert_eq!(summary.dispatched, 5);
    assert_eq!(summary.ok, 3);
    assert_eq!(summary.errors, 2);
    assert_eq!(summary.cancelled, 0);
    assert!(!summary.interrupted);

    // /clear first, then the balancer's description (this stub has
    // neither route), then one /execute per event.
    let reqs = stub.requests();
    let targets: Vec<&str> = reqs.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets[..3], ["/clear", "/1/lb/scheduler", "/1/lb/nodes"]);
    let mut executed: Vec<_> = reqs[3..].iter().map(|r| r.target.clone()).collect();
    executed.sort();
    assert_eq!(
        executed,
        [
            "/execute?name=BAD1",
            "/execute?name=FAIL1",
            "/execute?name=W1",
            "/execute?name=W1",
            "/execute?name=W2"
        ]
    );

    let raw = std::fs::read_to_string(&log).unwrap();
    let lines = read_log(&log);
    assert_eq!(lines.len(), 5, "{raw}");
    for (line, text) in lines.iter().zip(raw.lines()) {
        assert!(is_date(&line.date) && is_time(&line.time), "{text}");
        assert!(line.start_ms > 1_600_000_000_000 && line.start_ms <= line.end_ms);
        assert_eq!(line.to_string(), text, "a line must round-trip exactly");
        match line.function.as_str() {
            "FAIL1" => {
                assert!(line.is_error());
                assert!(line.json.contains("HTTP 500") && line.json.contains("boom"));
            }
            "BAD1" => {
                assert!(line.is_error());
                assert!(line.json.contains("not JSON"), "{}", line.json);
            }
            _ => {
                assert!(!line.is_error(), "{text}");
                let reply: BalancerReply = serde_json::from_str(&line.json).unwrap();
                assert_eq!(reply.load_balancing_info.algorithm, "stub");
                // The balancer's JSON is logged byte for byte.
                assert!(replay_stub::REPLY.starts_with(&line.json[..40]));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_scale_divides_start_times_and_duration_caps_in_scenario_time() {
    let stub = StubBalancer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("scaled.log");
    // At scale 8, the event at 8 s is sent about 1 s after the first; the
    // event at 40 s is beyond the 30 s cap.
    let evs = events(&[("A", 0), ("B", 8000), ("C", 40_000)]);
    let mut opts = quiet(&stub.url);
    opts.time_scale = 8.0;
    opts.duration = Some(Duration::from_secs(30));
    let called = std::time::Instant::now();
    let summary = replay::replay(&evs, &opts, &log, &StopHandle::new())
        .await
        .unwrap();
    assert_eq!(summary.dispatched, 2);
    assert_eq!(summary.beyond_cap, 1);
    assert_eq!(summary.ok, 2);

    let reqs = stub.requests();
    let at = |name: &str| {
        reqs.iter()
            .find(|r| r.target.ends_with(name))
            .unwrap_or_else(|| panic!("{name} not received"))
            .at
    };
    // B is due 1 s after the replay's start (which is after `called`):
    // never earlier than that, and far sooner than the unscaled 8 s.
    let b = at("=B").duration_since(called);
    assert!(b >= Duration::from_secs(1), "{b:?}");
    assert!(b < Duration::from_secs(6), "{b:?}");
    assert!(at("=A") <= at("=B"));
    assert!(!reqs.iter().any(|r| r.target.ends_with("=C")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_cancels_calls_in_flight_and_keeps_the_log() {
    let stub = StubBalancer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stopped.log");
    // Two quick calls, two that hang, and one scheduled far in the future.
    let evs = events(&[
        ("W1", 0),
        ("W2", 0),
        ("SLOW1", 0),
        ("SLOW2", 0),
        ("W3", 600_000),
    ]);
    let mut opts = quiet(&stub.url);
    opts.grace = Duration::from_millis(300);
    let stop = StopHandle::new();
    let stopper = {
        let stop = stop.clone();
        let received = stub.received.clone();
        let log = log.clone();
        tokio::spawn(async move {
            // Stop once both slow calls reached the server and both quick
            // ones are logged.
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            let ready = || {
                let slow = received
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|r| r.target.contains("SLOW"))
                    .count();
                let logged = std::fs::read_to_string(&log)
                    .is_ok_and(|t| t.contains(" W1 ") && t.contains(" W2 "));
                slow == 2 && logged
            };
            while !ready() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "slow calls never arrived"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            stop.stop();
        })
    };
    let summary = tokio::time::timeout(
        Duration::from_secs(60),
        replay::replay(&evs, &opts, &log, &stop),
    )
    .await
    .expect("the stop must end the replay")
    .unwrap();
    stopper.await.unwrap();

    assert!(summary.interrupted);
    assert_eq!(summary.dispatched, 4);
    assert_eq!(summary.not_dispatched, 1);
    assert_eq!(summary.ok, 2);
    assert_eq!(summary.cancelled, 2);
    let lines = read_log(&log);
    assert_eq!(lines.len(), 4);
    let cancelled: Vec<_> = lines.iter().filter(|l| l.is_error()).collect();
    assert_eq!(cancelled.len(), 2);
    assert!(cancelled
        .iter()
        .all(|l| l.function.starts_with("SLOW") && l.json.contains("cancelled")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_log_is_not_overwritten_by_default() {
    let stub = StubBalancer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("kept.log");
    std::fs::write(&log, "precious\n").unwrap();
    let err = replay::replay(
        &events(&[("W1", 0)]),
        &quiet(&stub.url),
        &log,
        &StopHandle::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "precious\n");
    // Refused before anything: no call (not even /clear), no sidecar.
    assert!(stub.requests().is_empty());
    assert!(!protocol::sidecar::sidecar_path(&log).exists());
}

/// What the caller puts in `ReplayOptions::run` is kept; the replay adds
/// what it knows (time scale, start, source revision, summary).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_run_description_is_completed_not_replaced() {
    use protocol::sidecar::{Cluster, RunSidecar};
    let stub = StubBalancer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("rr.log");
    let mut given = RunSidecar::new(
        "simulator experiment",
        "9.9.9",
        String::new(),
        Cluster::default(),
    );
    given.scales.fn_time_scale = Some(0.05);
    given.scales.package_scale = Some(0.25);
    given.scenario = Some("scenarios/x.csv".into());
    given.algorithm = Some("rr".into());
    given.extra.insert("repetition".into(), 2.into());
    let mut options = quiet(&stub.url);
    options.time_scale = 4.0;
    options.run = Some(given);
    let summary = replay::replay(
        &events(&[("W1", 0), ("W2", 4)]),
        &options,
        &log,
        &StopHandle::new(),
    )
    .await
    .unwrap();
    let text = std::fs::read_to_string(protocol::sidecar::sidecar_path(&log)).unwrap();
    let run = RunSidecar::parse(&text).unwrap();
    assert_eq!(run.producer, "simulator experiment");
    assert_eq!(run.version, "9.9.9");
    assert_eq!(run.scales.time_scale, 4.0);
    assert_eq!(run.scales.fn_time_scale, Some(0.05));
    assert_eq!(run.scales.package_scale, Some(0.25));
    assert_eq!(run.scenario.as_deref(), Some("scenarios/x.csv"));
    assert_eq!(run.algorithm.as_deref(), Some("rr"));
    assert_eq!(run.extra["repetition"], 2);
    assert_eq!(run.extra["replay"]["ok"], summary.ok);
    assert_eq!(run.extra["replay"]["dispatched"], 2);
    // The revision the binary was built from (none outside a checkout).
    assert_eq!(
        run.git.map(|g| g.commit),
        simulator::source_revision().map(|g| g.commit),
        "{text}"
    );
    assert!(run.started_utc.ends_with(" UTC"), "{text}");
}

// ---- the real binary ----

fn simulator() -> Command {
    Command::new(env!("CARGO_BIN_EXE_simulator"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_writes_the_default_log_path_and_a_summary() {
    let stub = StubBalancer::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("events.csv"), "W1,0\nW2,10\nFAIL,20\n").unwrap();
    let url = stub.url.clone();
    let cwd = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        simulator()
            .current_dir(&cwd)
            // One call fails (FAIL): within the budget, the exit is 0.
            .args(["replay", &url, "events.csv", "--progress", "lines"])
            .args(["--max-failures", "1"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("ok 2, errors 1"), "{stdout}");
    assert!(stdout.contains("dispatch lag p50"), "{stdout}");

    // results/logs/YYYY-MM-DD/HH:MM:SS.log under the working directory.
    let days: Vec<_> = std::fs::read_dir(dir.path().join("results/logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(days.len(), 1);
    let day = days[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(day.len() == 10 && day.as_bytes()[4] == b'-', "{day}");
    let mut logs: Vec<_> = std::fs::read_dir(&days[0])
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    logs.sort();
    // The log and its sidecar.
    assert_eq!(logs.len(), 2, "{logs:?}");
    assert_eq!(logs[1], protocol::sidecar::sidecar_path(&logs[0]));
    let name = logs[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(name.ends_with(".log") && is_time(&name[..8]), "{name}");
    assert_eq!(read_log(&logs[0]).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_rejects_a_malformed_row_before_sending_anything() {
    let stub = StubBalancer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("bad.csv");
    std::fs::write(&csv, "W1,0\nW2,soon\nW3,20\n").unwrap();
    let log = dir.path().join("out.log");
    let (url, csv2, log2) = (stub.url.clone(), csv.clone(), log.clone());
    let out = tokio::task::spawn_blocking(move || {
        simulator()
            .arg("replay")
            .arg(&url)
            .arg(&csv2)
            .arg(&log2)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("{}:2:", csv.display())),
        "error must name file and line: {stderr}"
    );
    assert!(stub.requests().is_empty(), "nothing may be sent");
    assert!(!log.exists());
}

#[test]
fn cli_reports_an_unreachable_balancer_before_starting() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("e.csv");
    std::fs::write(&csv, "W1,0\n").unwrap();
    let log = dir.path().join("out.log");
    let out = simulator()
        .arg("replay")
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(&csv)
        .arg(&log)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("unreachable"), "{stderr}");
    assert!(stderr.contains(&port.to_string()), "{stderr}");
    assert!(!log.exists(), "no log for a replay that never started");
}

#[test]
fn cli_refuses_a_zero_timeout_before_starting() {
    // Every call would time out at once: a usage error, not a failed run.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("e.csv");
    std::fs::write(&csv, "W1,0\n").unwrap();
    let log = dir.path().join("out.log");
    let out = simulator()
        .args(["replay", "http://127.0.0.1:9"])
        .arg(&csv)
        .arg(&log)
        .args(["--request-timeout", "0s"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--request-timeout") && stderr.contains("more than 0"),
        "{stderr}"
    );
    assert!(!log.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_ctrl_c_stops_cleanly_and_flushes_the_log() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    let stub = StubBalancer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("events.csv");
    std::fs::write(&csv, "W1,0\nSLOW1,0\nW2,600000\n").unwrap();
    let log = dir.path().join("out.log");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_simulator"))
        .arg("replay")
        .arg(&stub.url)
        .arg(&csv)
        .arg(&log)
        .args(["--grace", "200ms", "--progress", "off"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the slow call is in flight and the quick one is logged.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let slow_sent = stub.requests().iter().any(|r| r.target.ends_with("SLOW1"));
        let logged = std::fs::read_to_string(&log).is_ok_and(|t| t.contains(" W1 "));
        if slow_sent && logged {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "replay never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kill(Pid::from_raw(child.id().unwrap() as i32), Signal::SIGINT).unwrap();
    let out = tokio::time::timeout(Duration::from_secs(60), async {
        use tokio::io::AsyncReadExt;
        let mut stdout = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .await
            .unwrap();
        (child.wait().await.unwrap(), stdout)
    })
    .await
    .expect("Ctrl-C must end the replay");
    let (status, stdout) = out;
    assert_eq!(status.code(), Some(130), "{stdout}");
    assert!(stdout.contains("INTERRUPTED"), "{stdout}");
    assert!(stdout.contains("not sent 1"), "{stdout}");
    let lines = read_log(&log);
    assert_eq!(lines.len(), 2, "the quick call and the cancelled slow one");
    assert!(lines
        .iter()
        .any(|l| l.function == "SLOW1" && l.json.contains("cancelled")));
}
