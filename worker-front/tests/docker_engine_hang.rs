//! Issue 13 §3, "a Docker-runtime worker whose engine hangs", with the
//! real binary and the real engine behind a fault: the worker reaches the
//! engine through a unix-socket relay of this test, which is switched
//! mid-test to "accept but never answer" (connections open, bytes never
//! relayed, both for new connections and for those already open). Then:
//! - `/health` is 503 with a JSON message naming the engine (awaited: the
//!   probe runs every second, bounded by the engine time-out, at most
//!   10 s);
//! - a call that needs the engine is a 503 naming it, after the bound
//!   (`--engine-timeout-s 20`; asserted generously: within 60 s), while a
//!   warm call, which needs no engine, still answers;
//! - SIGTERM while a call waits on the hung engine exits within 10 s,
//!   successfully, and leaves the worker's objects (it cannot reach the
//!   engine) recorded in its work area;
//! - the next worker started with the same work dir (on the real engine)
//!   removes them before its start-up line: nothing the first worker
//!   created is left (and the test removes its label's objects anyway).
//!
//! Before the change, every engine request had an hour's bound: `/health`
//! and the call hung (the test's requests timed out), and SIGTERM waited
//! for the engine. This test FAILS (never skips) when no engine answers.

// Tests read the clock for deadlines.
#![allow(clippy::disallowed_methods)]

mod started_worker;
#[path = "docker_support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use started_worker::{spawn, Running, BIN};
use support::{engine, objects, static_hf_fn, LabelScope};
use tokio::net::{UnixListener, UnixStream};

/// The engine's socket (as `DOCKER_HOST` says when it is `unix://`).
fn engine_socket() -> PathBuf {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"))
}

/// A unix socket relayed to the real engine until [`HangingRelay::hang`]:
/// from then on it accepts connections and never answers on any of them.
struct HangingRelay {
    path: PathBuf,
    hung: tokio::sync::watch::Sender<bool>,
    /// Owns the relayed connections (a `JoinSet`): aborted on drop.
    accept: tokio::task::JoinHandle<()>,
}

impl HangingRelay {
    fn start(path: PathBuf) -> Self {
        let listener = UnixListener::bind(&path).expect("bind relay socket");
        let (hung, rx) = tokio::sync::watch::channel(false);
        let upstream = engine_socket();
        let accept = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                while connections.try_join_next().is_some() {}
                connections.spawn(relay_one(client, upstream.clone(), rx.clone()));
            }
        });
        Self { path, hung, accept }
    }

    fn url(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// From now on, no byte goes either way; connections stay open.
    fn hang(&self) {
        self.hung.send_replace(true);
    }
}

impl Drop for HangingRelay {
    fn drop(&mut self) {
        self.accept.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Relays one connection until the relay hangs, then holds it silently.
async fn relay_one(
    mut client: UnixStream,
    upstream: PathBuf,
    mut hung: tokio::sync::watch::Receiver<bool>,
) {
    if !*hung.borrow() {
        let Ok(mut engine) = UnixStream::connect(&upstream).await else {
            return;
        };
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut engine) => return,
            _ = hung.wait_for(|h| *h) => {}
        }
    }
    // Accepted, never answered: the worker's side stays open.
    let _held = client;
    std::future::pending::<()>().await;
}

/// A Docker-runtime worker binary (REST mode: a warm container per
/// function) with this id and work dir, reaching the engine at `socket`
/// (None: the local engine), engine time-out 20 s.
fn start(worker_id: &str, work_dir: &Path, socket: Option<&str>) -> Running {
    let mut cmd = Command::new(BIN);
    cmd.args(["start", "0", "--host", "127.0.0.1", "--runtime", "docker"])
        .args(["--engine-timeout-s", "20"])
        .arg("--worker-id")
        .arg(worker_id)
        .arg("--work-dir")
        .arg(work_dir)
        .arg("--fn-binary")
        .arg(static_hf_fn());
    if let Some(s) = socket {
        cmd.arg("--docker-socket").arg(s);
    }
    spawn(cmd)
}

/// GET `http://127.0.0.1:<port><path>`: (status, JSON body), failing the
/// test (instead of hanging it) when no reply comes within 90 s: the
/// worker of before this change never answered `/health` with the engine
/// hung.
async fn get(port: u16, path: &str) -> (u16, serde_json::Value) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(90))
        .build()
        .unwrap();
    let r = client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: no reply: {e}"));
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"));
    (status, v)
}

/// Asserts a 503 JSON error whose message names the engine at `url`.
fn assert_names_the_engine(what: &str, status: u16, v: &serde_json::Value, url: &str) {
    assert_eq!(status, 503, "{what}: {v}");
    assert_eq!(v["Error"], true, "{what}: {v}");
    let message = v["Message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Docker engine") && message.contains(url),
        "{what}: {message:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_engine_is_unhealthy_fails_calls_in_bound_and_does_not_hold_sigterm() {
    let docker = engine().await;
    let scope = LabelScope::new("hang");
    let work_dir = scope.work_dir();
    let dir = tempfile::tempdir().unwrap();
    let relay = HangingRelay::start(dir.path().join("engine.sock"));
    let url = relay.url();
    let mut w = start(&scope.worker_id, &work_dir, Some(&url));

    // Something of the worker's on the engine: noop's image and its REST
    // container.
    let (status, v) = get(w.port, "/execute?name=noop").await;
    assert_eq!(status, 200, "{v}");
    let (created_c, created_i) = objects(&docker, &scope.worker_id).await;
    assert_eq!((created_c.len(), created_i.len()), (1, 1));
    let (status, h) = get(w.port, "/health").await;
    assert_eq!(status, 200, "{h}");

    relay.hang();

    // /health turns 503, naming the engine.
    let deadline = Instant::now() + Duration::from_secs(60);
    let h = loop {
        let (status, h) = get(w.port, "/health").await;
        if status == 503 {
            break h;
        }
        assert_eq!(status, 200, "{h}");
        assert!(
            Instant::now() < deadline,
            "/health still 200 a minute into the hang: {h}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("/health during the hang: {h}");
    assert_names_the_engine("/health during the hang", 503, &h, &url);
    assert_eq!(h["Status"], "unhealthy", "{h}");
    assert_eq!(h["Worker"]["WorkerId"], scope.worker_id.as_str(), "{h}");

    // A call that needs the engine (I3's image is not built): 503 after
    // the 20 s bound (60 s is the generous ceiling asserted here).
    let asked = Instant::now();
    let (status, v) = get(w.port, "/execute?name=I3").await;
    let took = asked.elapsed();
    eprintln!("I3 during the hang: {status} after {took:?}: {v}");
    assert_names_the_engine("I3 during the hang", status, &v, &url);
    assert!(took < Duration::from_secs(60), "{took:?}");
    // A warm call needs no engine: noop's REST container still answers.
    let (status, v) = get(w.port, "/execute?name=noop").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["Meta"]["UsingExistingRestContainer"], true, "{v}");

    // SIGTERM while a call waits on the hung engine (for up to 20 s).
    let port = w.port;
    let pending = tokio::spawn(async move {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        client
            .get(format!("http://127.0.0.1:{port}/execute?name=I4"))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, h) = get(w.port, "/health").await;
        if h["Worker"]["CallsInFlight"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "I4 never in flight: {h}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let signalled = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(w.pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let exit = loop {
        if let Some(st) = w.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "no exit within 10 s of SIGTERM with the engine hung"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!("exited {exit} {:?} after SIGTERM", signalled.elapsed());
    assert!(exit.success(), "{exit}");
    pending.abort();

    // It could not remove them: they are left, and recorded.
    let (left_c, left_i) = objects(&docker, &scope.worker_id).await;
    assert!(
        created_c.is_subset(&left_c) && created_i.is_subset(&left_i),
        "left: {left_c:?} {left_i:?}"
    );
    drop(relay);

    // The next worker with the same work dir, on the real engine, removes
    // them before its start-up line.
    let mut next = start(&scope.worker_id, &work_dir, None);
    let (c, i) = objects(&docker, &scope.worker_id).await;
    assert!(c.is_empty() && i.is_empty(), "left: {c:?} {i:?}");
    next.terminate();
    scope.assert_clean().await;
}
