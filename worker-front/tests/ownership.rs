//! Issue 13 §1, "never touch what is not ours", with the real
//! `worker-front` binary: two workers with the same worker id and the same
//! work directory (or the same port, hence the same default id, in another
//! network namespace) never affect each other's processes or staged
//! packages; a `kill -9`'d worker's staged packages are removed by the
//! next worker that proves them orphaned; ids such as `a.x` and `a_x`
//! never share a directory.
//!
//! Processes are observed from outside: a worker's function processes are
//! its children (`PPid` in `/proc/<pid>/status`); its staged packages are
//! the files under the work directory.

// Tests read the clock for their deadlines.
#![allow(clippy::disallowed_methods)]

mod process_support;
mod started_worker;

use process_support::{hf_fn_binary, unique_id};
use started_worker::{get, spawn, Running, BIN};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `worker-front start <port> --host 127.0.0.1 --fn-binary ... [extra]`.
fn worker_command(port: u16, extra: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["start", &port.to_string(), "--host", "127.0.0.1"])
        .env("HF_PACKAGE_SCALE", "0.01")
        .arg("--fn-binary")
        .arg(hf_fn_binary())
        .args(extra);
    cmd
}

/// A worker with this id and work directory on a port of its choice.
fn start(worker_id: &str, work_dir: &Path) -> Running {
    let dir = work_dir.to_str().unwrap();
    spawn(worker_command(
        0,
        &["--worker-id", worker_id, "--work-dir", dir],
    ))
}

/// Live children of `pid` (a worker's function processes).
fn children(pid: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let ppid = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .and_then(|v| v.trim().parse::<i32>().ok());
        let zombie = status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'));
        if ppid == Some(pid) && !zombie {
            out.insert(child);
        }
    }
    out
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(p);
            }
        }
    }
    out
}

/// The staged payloads (one per built image) under `dir`.
fn payloads(dir: &Path) -> BTreeSet<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "payload.bin"))
        .collect()
}

/// Checks that worker `a` is untouched: the same function processes alive,
/// the same staged payloads present, and its REST instance still warm.
async fn assert_untouched(
    a: &Running,
    processes: &BTreeSet<i32>,
    staged: &BTreeSet<PathBuf>,
    function: &str,
) {
    let now = children(a.pid());
    assert!(
        processes.is_subset(&now),
        "processes of the first worker were killed: before {processes:?}, now {now:?}"
    );
    for p in staged {
        assert!(
            p.exists(),
            "{} of the first worker was deleted",
            p.display()
        );
    }
    let (status, v) = get(a.port, &format!("/execute?name={function}")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["Meta"]["ImageBuilt"], false, "{v}");
    assert_eq!(v["Meta"]["UsingExistingRestContainer"], true, "{v}");
}

/// Worker `a` serves `function` warm (REST mode): returns its processes.
async fn warm_up(a: &Running, function: &str) -> BTreeSet<i32> {
    let (status, v) = get(a.port, &format!("/execute?name={function}")).await;
    assert_eq!(status, 200, "{v}");
    let processes = children(a.pid());
    assert!(!processes.is_empty(), "no REST instance of {function}");
    processes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_with_one_id_and_one_work_dir_never_touch_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let id = unique_id("same");
    let a = start(&id, dir.path());
    let processes = warm_up(&a, "W1").await;
    let staged = payloads(dir.path());
    assert_eq!(staged.len(), 1, "{staged:?}");

    // The second worker: same id, same directory; it starts, serves the
    // same function, clears everything it has and stops.
    let mut b = start(&id, dir.path());
    let (status, v) = get(b.port, "/execute?name=W1").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["Meta"]["ImageBuilt"], true, "its own image: {v}");
    let (status, v) = get(b.port, "/clear?reset_images=true").await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = get(b.port, "/execute?name=W1").await;
    assert_eq!(status, 200, "{v}");
    b.terminate();

    assert_untouched(&a, &processes, &staged, "W1").await;
    // Stopping the first worker cleans up its own things, all of them.
    let mut a = a;
    a.terminate();
    let left = files_under(dir.path());
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_a_dot_x_and_a_underscore_x_never_share_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let tag = unique_id("ids");
    let (dot, underscore) = (format!("{tag}a.x"), format!("{tag}a_x"));
    let mut a = start(&dot, dir.path());
    let processes = warm_up(&a, "W2").await;
    let staged = payloads(dir.path());
    assert_eq!(staged.len(), 1, "{staged:?}");
    let mut b = start(&underscore, dir.path());
    let (status, v) = get(b.port, "/execute?name=W2").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["Meta"]["ImageBuilt"], true, "{v}");
    let both = payloads(dir.path());
    assert_eq!(both.len(), 2, "one staged W2 per worker: {both:?}");
    let (status, v) = get(b.port, "/clear?reset_images=true").await;
    assert_eq!(status, 200, "{v}");
    b.terminate();
    assert_untouched(&a, &processes, &staged, "W2").await;
    a.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_staged_packages_are_removed_by_the_next_worker() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = start(&unique_id("crashed"), dir.path());
    for f in ["W5", "I4"] {
        let (status, v) = get(a.port, &format!("/execute?name={f}")).await;
        assert_eq!(status, 200, "{v}");
    }
    let staged = payloads(dir.path());
    assert_eq!(staged.len(), 2, "{staged:?}");
    a.kill_9();
    // Its warm instances end with it (their stdin closes); the staged
    // packages stay until someone can prove that nobody owns them.
    assert!(staged.iter().all(|p| p.exists()));

    // A live worker sharing the directory is not an orphan: the next
    // worker removes the dead one's packages and keeps the live one's.
    let mut live = start(&unique_id("live"), dir.path());
    let (status, v) = get(live.port, "/execute?name=W2").await;
    assert_eq!(status, 200, "{v}");
    let live_staged: BTreeSet<PathBuf> =
        payloads(dir.path()).difference(&staged).cloned().collect();
    assert_eq!(live_staged.len(), 1, "{live_staged:?}");

    // The start-up line is printed once the leftovers are gone.
    let mut next = start(&unique_id("next"), dir.path());
    for p in &staged {
        assert!(!p.exists(), "{} of the killed worker stayed", p.display());
    }
    for p in &live_staged {
        assert!(p.exists(), "{} of a live worker was removed", p.display());
    }
    next.terminate();
    live.terminate();
    let left = files_under(dir.path());
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Whether this test may make network namespaces (root, `unshare`, `ip`
/// and `nsenter` present and working).
fn network_namespaces_work() -> bool {
    Command::new("unshare")
        .args(["-n", "sh", "-c", "ip link set lo up && nsenter --version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("curl")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// GET inside the network namespace of `pid` (with `nsenter` and `curl`).
fn get_in_namespace(pid: i32, port: u16, path: &str) -> (u16, serde_json::Value) {
    let out = Command::new("nsenter")
        .args([
            "-t",
            &pid.to_string(),
            "-n",
            "curl",
            "-sS",
            "--noproxy",
            "*",
        ])
        .args(["-w", "\n%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    let v = serde_json::from_str(body).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"));
    (code.parse().unwrap_or(0), v)
}

/// The case: two workers started as `worker-front start <port>`
/// with the defaults (worker id `worker-<port>`, files under the system
/// temp dir, here `TMPDIR`), the second in its own network namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_one_port_in_two_network_namespaces_never_touch_each_other() {
    if !network_namespaces_work() {
        eprintln!("skipped: no network namespaces here (needs root, unshare, ip, nsenter, curl)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // The default id is `worker-<port>`: a real port number, found free.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cmd_a = worker_command(port, &[]);
    cmd_a.env("TMPDIR", tmp.path());
    let a = spawn(cmd_a);
    assert_eq!(a.port, port);
    let processes = warm_up(&a, "W3").await;
    let staged = payloads(tmp.path());
    assert_eq!(staged.len(), 1, "{staged:?}");

    let mut cmd_b = Command::new("unshare");
    cmd_b
        .args(["-n", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
        .arg(BIN)
        .args(["start", &port.to_string(), "--host", "127.0.0.1"])
        .arg("--fn-binary")
        .arg(hf_fn_binary())
        .env("TMPDIR", tmp.path());
    let mut b = spawn(cmd_b);
    assert_eq!(b.port, port);
    let (status, v) = get_in_namespace(b.pid(), port, "/execute?name=W3");
    assert_eq!(status, 200, "{v}");
    let (status, v) = get_in_namespace(b.pid(), port, "/clear?reset_images=true");
    assert_eq!(status, 200, "{v}");
    b.terminate();

    assert_untouched(&a, &processes, &staged, "W3").await;
    let mut a = a;
    a.terminate();
    let left = files_under(tmp.path());
    assert!(left.is_empty(), "left behind: {left:?}");
}
