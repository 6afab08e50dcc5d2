//! A synthetic function on the Docker runtime (issue 12 §2, live): a
//! worker given a catalog file builds the function's image with its row
//! staged as `/function.csv`, and both a one-shot container (`--call`)
//! and a REST-mode container (`GET /invoke?...`) run the call's own
//! shape: its `InternalExecutionTime` follows the duration at the time
//! scale, and the container touches the memory asked for. Everything is
//! labelled with the test's worker id and removed.
//!
//! These tests FAIL (never skip) when no engine answers: CI guarantees one.

// Tests read the clock for deadlines.
#![allow(clippy::disallowed_methods)]

#[path = "docker_support.rs"]
mod support;

use std::io::Write;
use support::{engine, DockerWorker, LabelScope};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_synthetic_function_runs_its_shape_in_containers() {
    let _docker = engine().await;
    let scope = LabelScope::new("synthetic");
    let mut catalog = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        catalog,
        "{}\nF1,azure2021,unknown,0.5,~1s,none,20000,1,30,70,0,32",
        sample_functions::catalog::catalog_header()
    )
    .unwrap();
    let config = worker_front::WorkerConfig {
        time_scale: 0.01,
        catalog: Some(catalog.path().to_path_buf()),
        ..Default::default()
    };
    let w = DockerWorker::start_config(&scope, config).await;
    let call = |query: &'static str| {
        let w = &w;
        async move {
            let (status, v) = w.get(&format!("/execute?name=F1&{query}")).await;
            assert_eq!(status, 200, "{query}: {v}");
            let r: protocol::WorkerReply = serde_json::from_value(v).unwrap();
            let body: serde_json::Value = serde_json::from_str(&r.result.body).unwrap();
            (r, body)
        }
    };
    // One-shot: 20 s of scenario time at scale 0.01, 64 MB touched. F1's
    // row is 30 % CPU (calibrated work: sooner on a fast idle core, later
    // on a loaded one) and 70 % sleep, which holds anywhere: 140 ms.
    let (r, body) = call("duration_ms=20000&memory_mb=64").await;
    assert!(r.meta.image_built, "{r:?}");
    assert!(r.internal_execution_time >= 126, "{r:?}");
    assert_eq!(body["memoryMb"], 64, "{body}");
    assert!(body["residentKib"].as_u64().unwrap() >= 64 * 1024, "{body}");
    // REST mode: the same shape through the warm path.
    let (code, v) = w.get("/configure?using_rest_mode=true").await;
    assert_eq!(code, 200, "{v}");
    let (first, _) = call("duration_ms=1").await;
    let (r, body) = call("duration_ms=20000&memory_mb=64").await;
    assert!(r.meta.using_existing_rest_container, "{r:?}");
    assert_eq!(r.meta.container_name, first.meta.container_name);
    assert!(r.internal_execution_time >= 126, "{r:?}");
    assert!(body["residentKib"].as_u64().unwrap() >= 64 * 1024, "{body}");
    let (status, v) = w.get("/execute?name=F1&memory_mb=99999").await;
    assert_eq!(status, 400, "{v}");
    w.stop().await;
    scope.assert_clean().await;
}
