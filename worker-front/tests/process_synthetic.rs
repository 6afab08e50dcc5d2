//! Synthetic functions on the process runtime (issue 12 §2, live): a
//! worker given `--catalog` serves the file's functions beside the samples;
//! a call's own shape (`duration_ms`, `memory_mb`, `cpu_share`) sets how
//! long it runs (its `InternalExecutionTime` follows it, at the worker's
//! time scale) and how much memory it touches (the instance reports its
//! resident size while holding it); bad shapes, samples given a shape and
//! unknown functions are JSON errors; a bad catalog file stops the real
//! binary at start-up with its path and line. Timing bounds are loose
//! (a loaded machine only lengthens calls).

// Tests read the clock for their deadlines.
#![allow(clippy::disallowed_methods)]

mod process_support;

use policy::node::options::CachingOptions;
use process_support::{hf_fn_binary, unique_id, TestWorker};
use std::io::Write;
use std::process::{Command, Stdio};
use worker_front::{RuntimeKind, WorkerConfig};

const BIN: &str = env!("CARGO_BIN_EXE_worker-front");

/// The worker's time scale in these tests.
const SCALE: f64 = 0.01;

/// A catalog file with `F1` (30 ms CPU + 70 ms sleep, 32 MB) and `F2`
/// (sleep only, 16 MB).
fn catalog_file() -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        f,
        "{}\nF1,azure2021,unknown,0.5,~1s,none,20000,1,30,70,0,32\nF2,azure2021,unknown,0.5,~1s,none,1000,1,0,50,0,16",
        sample_functions::catalog::catalog_header()
    )
    .unwrap();
    f
}

async fn start(
    tag: &str,
    caching: CachingOptions,
    catalog: &tempfile::NamedTempFile,
) -> TestWorker {
    let config = WorkerConfig {
        runtime: RuntimeKind::Process,
        fn_binary: Some(hf_fn_binary()),
        time_scale: SCALE,
        caching,
        http_workers: 2,
        expiry_tick_ms: 50,
        catalog: Some(catalog.path().to_path_buf()),
        ..WorkerConfig::default()
    };
    TestWorker::start_config(tag, config).await
}

/// `/execute?name=F&<query>`, expecting a 200 reply; (reply, body JSON).
async fn call(
    w: &TestWorker,
    name: &str,
    query: &str,
) -> (protocol::WorkerReply, serde_json::Value) {
    let (status, v) = w.get(&format!("/execute?name={name}&{query}")).await;
    assert_eq!(status, 200, "{name}?{query}: {v}");
    let reply: protocol::WorkerReply = serde_json::from_value(v).unwrap();
    let body = serde_json::from_str(&reply.result.body).unwrap();
    (reply, body)
}

async fn shapes_and_memory(w: &TestWorker) {
    // 20 s of scenario time at scale 0.01: 200 ms, half CPU.
    let (long, _) = call(w, "F1", "duration_ms=20000&cpu_share=0.5").await;
    let (short, _) = call(w, "F1", "duration_ms=500").await;
    // The CPU half is calibrated work (as the samples' CPU phases): a
    // faster or idle core finishes it sooner, a loaded one later; the
    // sleep half holds on any machine.
    assert!(
        long.internal_execution_time as f64 >= 20_000.0 * SCALE * 0.5 * 0.9,
        "{long:?}"
    );
    assert!(
        long.internal_execution_time > short.internal_execution_time + 100,
        "long {long:?}, short {short:?}"
    );
    // Sleep only (F2's row has no CPU): the duration holds the same.
    let (sleeper, _) = call(w, "F2", "duration_ms=15000").await;
    assert!(
        sleeper.internal_execution_time as f64 >= 15_000.0 * SCALE * 0.9,
        "{sleeper:?}"
    );

    // 64 MB allocated and touched: resident while the call holds it.
    let (_, body) = call(w, "F2", "duration_ms=10&memory_mb=64").await;
    assert_eq!(body["memoryMb"], 64, "{body}");
    let resident = body["residentKib"].as_u64().unwrap();
    assert!(resident >= 64 * 1024, "{body}");
    // Without a shape: the row's memory and work.
    let (_, body) = call(w, "F1", "").await;
    assert_eq!(body["memoryMb"], 32, "{body}");

    // A sample is exactly as before, and refuses a shape.
    let (w1, body) = call(w, "W1", "").await;
    assert_eq!(w1.result.status_code, 200);
    assert!(body.get("memoryMb").is_none(), "{body}");
    let (status, v) = w.get("/execute?name=W1&duration_ms=10").await;
    assert_eq!(status, 400, "{v}");
    assert!(v["Message"].as_str().unwrap().contains("sample"), "{v}");
    // Beyond the node's memory (2048 MB by default), or not a number.
    let (status, v) = w.get("/execute?name=F1&memory_mb=5000").await;
    assert_eq!(status, 400, "{v}");
    assert!(v["Message"].as_str().unwrap().contains("2048"), "{v}");
    let (status, v) = w.get("/execute?name=F1&duration_ms=soon").await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["Message"].as_str().unwrap().contains("duration_ms"),
        "{v}"
    );
    // Unknown functions: the same 404 as without a catalog.
    let (status, v) = w.get("/execute?name=F9&duration_ms=10").await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["Error"], true, "{v}");

    let h = w.health().await;
    assert_eq!(
        h["Worker"]["Functions"],
        sample_functions::catalog().functions.len() + 2,
        "{h}"
    );
    assert_eq!(h["Worker"]["MaxCallMemoryMb"], 2048, "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_shot_calls_follow_their_shape() {
    let catalog = catalog_file();
    let w = start("syn-oneshot", CachingOptions::default(), &catalog).await;
    shapes_and_memory(&w).await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn warm_rest_calls_follow_their_shape() {
    let catalog = catalog_file();
    let caching = CachingOptions {
        using_rest_mode: true,
        rest_container_life_time: 60,
        ..CachingOptions::default()
    };
    let w = start("syn-rest", caching, &catalog).await;
    shapes_and_memory(&w).await;
    // The calls above were served by one REST instance per function.
    let (r, _) = call(&w, "F1", "duration_ms=1").await;
    assert!(r.meta.using_existing_rest_container, "{r:?}");
    w.stop().await;
}

#[test]
fn a_bad_catalog_stops_the_start_naming_file_and_line() {
    let mut bad = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        bad,
        "{}\nF1,x,unknown,0.5,~1s,none,1000,1,30,70,0,32\nW1,x,unknown,0.5,~1s,none,1000,1,30,70,0,32",
        sample_functions::catalog::catalog_header()
    )
    .unwrap();
    let work_dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["start", "0", "--host", "127.0.0.1", "--catalog"])
        .arg(bad.path())
        .arg("--work-dir")
        .arg(work_dir.path())
        .args(["--worker-id", &unique_id("syn-bad")])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&bad.path().display().to_string()), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("sample"), "{err}");
    let missing = Command::new(BIN)
        .args(["start", "0", "--catalog", "/nonexistent/catalog.csv"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("/nonexistent/catalog.csv"), "{err}");
    // One line, each cause once.
    assert!(
        err.starts_with("worker-front: error: ") && err.lines().count() == 1,
        "{err}"
    );
    // A byte that is not UTF-8: named by line.
    let mut bytes = format!(
        "{}\nF1,x,unknown,0.5,~1s,none,1000,1,30,70,0,32\n",
        sample_functions::catalog::catalog_header()
    )
    .into_bytes();
    bytes.extend_from_slice(b"F\xff2,x\n");
    std::fs::write(bad.path(), bytes).unwrap();
    let out = Command::new(BIN)
        .args(["start", "0", "--host", "127.0.0.1", "--catalog"])
        .arg(bad.path())
        .arg("--work-dir")
        .arg(work_dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3: not UTF-8 text"), "{err}");
}
