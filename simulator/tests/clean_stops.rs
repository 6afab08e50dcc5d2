//! Issue 13, part 4 ("Clean stops"), on the real binaries:
//! - `simulator replay` exits non-zero when calls failed, naming the
//!   failures by cause in its summary; `--max-failures` is a budget;
//! - it refuses to start when `GET /clear` failed on a node;
//! - `simulator experiment` on SIGTERM or SIGHUP stops as on Ctrl-C: it
//!   exits 130, writes its report, and every child it started is gone
//!   (no process, nothing listening on its port);
//! - its children die with it even when it is `kill -9`'d (their guards).
//!
//! Builds the testbed first with the `cargo` running this test (a no-op
//! when current).

mod support;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::{alive, build_testbed, free_port, get, start_printing_url, workspace_root, Server};

fn balancer(nodes: &str) -> Server {
    let bin = build_testbed().join("load-balancer");
    start_printing_url(
        &bin,
        &["rr", "--port", "0", "--host", "127.0.0.1", "--nodes", nodes],
        Stdio::null(),
    )
}

fn replay(dir: &Path, url: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_simulator"))
        .current_dir(dir)
        .args(["replay", url, "events.csv", "out.log", "--progress", "off"])
        .arg("--overwrite")
        .args(extra)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn replay_exits_non_zero_when_calls_failed_unless_within_the_budget() {
    let bins = build_testbed();
    // One node whose W1 calls fail (500 error reply), W2 calls succeed.
    let stub = start_printing_url(
        &bins.join("stub-worker"),
        &["--host", "127.0.0.1", "--port", "0", "--fail", "W1"],
        Stdio::null(),
    );
    let lb = balancer(&stub.url);
    // Until the balancer has the node online, W2 calls get 503.
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(lb.port(), "/execute?name=W2").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the balancer never took its node"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("events.csv"), "W1,0\nW2,10\nW1,20\n").unwrap();

    let out = replay(dir.path(), &lb.url, &[]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("ok 1, errors 2"), "{all}");
    assert!(
        all.contains("FAILED calls 2 by cause: HTTP 500 × 2"),
        "{all}"
    );
    assert!(
        all.contains("2 of 3 calls failed (HTTP 500 × 2), over the failure budget"),
        "{all}"
    );
    // The log format is unchanged: one line per call, failed ones included.
    let log = std::fs::read_to_string(dir.path().join("out.log")).unwrap();
    assert_eq!(log.lines().count(), 3, "{log}");

    // A budget of 2 calls (or 70 %) lets the run pass; 50 % does not.
    for (budget, ok) in [("2", true), ("70%", true), ("50%", false), ("1", false)] {
        let out = replay(dir.path(), &lb.url, &["--max-failures", budget]);
        assert_eq!(out.status.success(), ok, "budget {budget}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("FAILED calls 2 by cause"),
            "{}",
            text(&out)
        );
    }
    let out = replay(dir.path(), &lb.url, &["--max-failures", "lots"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn replay_refuses_to_start_when_clear_failed_on_a_node() {
    // The only node is a dead URL: its /clear fails.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let lb = balancer(&dead);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("events.csv"), "W1,0\n").unwrap();
    let out = replay(dir.path(), &lb.url, &["--max-failures", "100%"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("refusing to start"), "{all}");
    assert!(all.contains("/clear"), "{all}");
    assert!(all.contains(&dead), "the failed node is named: {all}");
    assert!(
        !dir.path().join("out.log").exists(),
        "nothing is written before the refusal"
    );
}

/// The pids whose parent is `parent` (from `/proc`).
fn children_of(parent: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            pids.push(pid);
        }
    }
    pids
}

/// Every `http://host:port` in `lines`.
fn urls_in(lines: &[String]) -> Vec<String> {
    let mut urls = Vec::new();
    for line in lines {
        for (i, _) in line.match_indices("http://") {
            let url: String = line[i..]
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != ',' && *c != ')')
                .collect();
            let url = url.trim_end_matches('/').to_string();
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
    }
    urls
}

fn listening(url: &str) -> bool {
    let authority = url.trim_start_matches("http://").trim_end_matches('/');
    TcpStream::connect_timeout(&authority.parse().unwrap(), Duration::from_secs(1)).is_ok()
}

/// Starts a live experiment (2 workers, rr then ch, unscaled so that it
/// runs for tens of seconds), waits until its first replay runs, sends
/// `signal`, and checks the stop: exit 130 within a bound, a report marked
/// INTERRUPTED, every child gone and its port closed.
/// With SIGKILL, the experiment cannot stop anything: the guards must.
fn experiment_stops_on(signal: Signal, name: &str) {
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    use std::os::unix::process::ExitStatusExt as _;

    let bins = build_testbed();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_simulator"))
        .current_dir(workspace_root())
        .args(["experiment", "--name", name, "--time-scale", "1"])
        .args(["--algorithms", "rr,ch", "--workers", "2"])
        .args(["--progress", "lines"])
        .arg("--results-dir")
        .arg(dir.path())
        .arg("--bin-dir")
        .arg(&bins)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // On a failed assertion: the experiment and, since they would be
    // orphaned, the process groups of its children (each child leads its
    // own group) are killed.
    struct KillOnDrop {
        experiment: u32,
        groups: Vec<u32>,
    }
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            use nix::sys::signal::{killpg, Signal::SIGKILL};
            let _ = kill(Pid::from_raw(self.experiment as i32), SIGKILL);
            for pid in &self.groups {
                if alive(*pid) {
                    let _ = killpg(Pid::from_raw(*pid as i32), SIGKILL);
                }
            }
        }
    }
    let mut guard = KillOnDrop {
        experiment: child.id(),
        groups: Vec::new(),
    };
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("the first replay never started: {seen:#?}"));
        let found = line.contains("replaying") || line.contains("[1/2 rr]");
        seen.push(line);
        if found {
            break;
        }
    }
    let run = dir.path().join(name);
    // The balancer is up once the replay runs: 2 workers + 1 balancer.
    let all = children_of(child.id());
    guard.groups = all.clone();
    // The children, and a guard per child (`simulator guard`).
    let (guards, pids): (Vec<u32>, Vec<u32>) = all.iter().partition(|pid| {
        std::fs::read_link(format!("/proc/{pid}/exe"))
            .is_ok_and(|exe| exe.file_name().is_some_and(|n| n == "simulator"))
    });
    assert_eq!(pids.len(), 2 + 1, "{pids:?}: {seen:#?}");
    assert_eq!(guards.len(), pids.len(), "one guard per child: {all:?}");
    let urls = urls_in(&seen);
    assert!(urls.len() >= 2, "the workers' URLs are printed: {seen:#?}");
    for url in &urls {
        assert!(listening(url), "{url} is not serving before the signal");
    }

    kill(Pid::from_raw(child.id() as i32), signal).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the experiment ignored {signal}: {seen:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    seen.extend(lines.try_iter());
    if signal == Signal::SIGKILL {
        assert_eq!(status.signal(), Some(9), "{seen:#?}");
    } else {
        assert_eq!(status.code(), Some(130), "{signal}: {seen:#?}");
        let report = std::fs::read_to_string(run.join("report.md"))
            .unwrap_or_else(|e| panic!("no report after {signal} ({e}): {seen:#?}"));
        assert!(report.contains("INTERRUPTED"), "{report}");
    }
    // The experiment reaps its children before exiting; allow the kernel a
    // moment to tear down grandchildren.
    let deadline = Instant::now() + Duration::from_secs(20);
    for pid in &all {
        while alive(*pid) {
            assert!(
                Instant::now() < deadline,
                "child pid {pid} survived {signal}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    for url in &urls {
        while listening(url) {
            assert!(
                Instant::now() < deadline,
                "{url} still serves after {signal}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
/// Live experiments run one at a time (each loads the machine's cores).
static LIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn experiment_stops_cleanly_on_sigterm() {
    let _live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    experiment_stops_on(Signal::SIGTERM, "sigterm");
}

#[test]
fn experiment_stops_cleanly_on_sighup() {
    let _live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    experiment_stops_on(Signal::SIGHUP, "sighup");
}

#[test]
fn children_die_with_a_kill_9ed_experiment() {
    let _live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    experiment_stops_on(Signal::SIGKILL, "sigkill");
}
