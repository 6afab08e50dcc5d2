//! Issue 13 §3, "health answers must not queue behind calls": the real
//! `worker-front` binary (process runtime) with every call it holds busy
//! in a long call still answers `/health`, reports those calls
//! (`Worker.CallsInFlight`), and does so while they run: each health reply
//! arrives while every call is still in flight (no call has answered), and
//! no wall-clock bound is asserted (a loaded machine only delays both).
//!
//! Before the change `/health` ran on the worker's main runtime, the one
//! carrying the calls, asked the engine on every request, and reported no
//! calls in flight: this test timed out waiting for "CallsInFlight == 8".

// Tests read the clock for deadlines.
#![allow(clippy::disallowed_methods)]

mod process_support;
mod started_worker;

use std::io::Write as _;
use std::process::Command;
use std::time::Duration;

use process_support::{hf_fn_binary, unique_id};
use started_worker::{get, spawn, BIN};

/// Long calls held at once (one HTTP thread serves them all).
const CALLS: usize = 8;

/// A catalog file with `Sleepy`: sleep only, no CPU work.
fn catalog_file() -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        f,
        "{}\nSleepy,azure2021,unknown,0.5,~1s,none,1000,1,0,50,0,16",
        sample_functions::catalog::catalog_header()
    )
    .unwrap();
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_busy_with_long_calls_answers_health_while_they_run() {
    let catalog = catalog_file();
    let work = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["start", "0", "--host", "127.0.0.1", "--runtime", "process"])
        .args(["--http-workers", "1", "--using-rest-mode", "false"])
        .arg("--worker-id")
        .arg(unique_id("busy-health"))
        .arg("--work-dir")
        .arg(work.path())
        .arg("--fn-binary")
        .arg(hf_fn_binary())
        .arg("--catalog")
        .arg(catalog.path());
    // HF_TIME_SCALE is 0.01 (`spawn`): 6,000 s of scenario time is 60 s,
    // far longer than this test needs; SIGTERM ends the calls.
    let mut worker = spawn(cmd);
    let port = worker.port;
    let calls: Vec<_> = (0..CALLS)
        .map(|_| {
            tokio::spawn(async move {
                // Ends with an error when the worker stops: not asserted.
                let client = reqwest::Client::builder().no_proxy().build().unwrap();
                client
                    .get(format!(
                        "http://127.0.0.1:{port}/execute?name=Sleepy&duration_ms=6000000&cpu_share=0"
                    ))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();

    // Every call is in flight (each poll is a /health that must answer).
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (status, h) = get(port, "/health").await;
        assert_eq!(status, 200, "{h}");
        if h["Worker"]["CallsInFlight"] == CALLS {
            break;
        }
        assert!(
            calls.iter().all(|c| !c.is_finished()),
            "a long call ended early: {h}"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for CallsInFlight == {CALLS}: {h}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // More health answers while they all run, each reporting them, each
    // arriving before any call answered.
    for _ in 0..20 {
        let (status, h) = get(port, "/health").await;
        assert_eq!(status, 200, "{h}");
        assert_eq!(h["Status"], "ok", "{h}");
        assert_eq!(h["Runtime"], "process", "{h}");
        assert_eq!(h["Worker"]["CallsInFlight"], CALLS, "{h}");
        assert!(h["EngineCheckedMsAgo"].is_u64(), "{h}");
        let done = calls.iter().filter(|c| c.is_finished()).count();
        assert_eq!(done, 0, "calls answered before the health reply: {h}");
    }

    worker.terminate();
    for c in calls {
        c.abort();
    }
}
