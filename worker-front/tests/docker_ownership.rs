//! Issue 13 §1 with the Docker runtime and the real binary: two workers
//! with the same worker id and work dir on one engine never touch each
//! other's containers and images; a `kill -9`'d worker's containers and
//! images are removed by the next worker that proves them orphaned (its
//! work area's lock is free), never those of a live one.
//!
//! These tests FAIL (never skip) when no engine answers: CI guarantees one.

// Tests read the clock for deadlines.
#![allow(clippy::disallowed_methods)]

mod started_worker;
#[path = "docker_support.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use started_worker::{get, spawn, Running, BIN};
use support::{engine, objects, static_hf_fn, LabelScope};

/// A Docker-runtime worker with REST mode on (a warm container per
/// function), this id and work dir; returns once it printed its start-up
/// line.
fn start(worker_id: &str, work_dir: &Path) -> Running {
    let mut cmd = Command::new(BIN);
    cmd.args(["start", "0", "--host", "127.0.0.1", "--runtime", "docker"])
        .arg("--worker-id")
        .arg(worker_id)
        .arg("--work-dir")
        .arg(work_dir)
        .arg("--fn-binary")
        .arg(static_hf_fn());
    spawn(cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_docker_workers_with_one_id_never_touch_each_others_objects() {
    let docker = engine().await;
    let scope = LabelScope::new("same-id");
    let dir = tempfile::tempdir().unwrap();
    let mut a = start(&scope.worker_id, dir.path());
    let (status, v) = get(a.port, "/execute?name=noop").await;
    assert_eq!(status, 200, "{v}");
    let (containers, images) = objects(&docker, &scope.worker_id).await;
    assert_eq!(
        (containers.len(), images.len()),
        (1, 1),
        "{containers:?} {images:?}"
    );

    let mut b = start(&scope.worker_id, dir.path());
    let (status, v) = get(b.port, "/execute?name=noop").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["Meta"]["ImageBuilt"], true, "its own image: {v}");
    let (status, v) = get(b.port, "/clear?reset_images=true").await;
    assert_eq!(status, 200, "{v}");
    b.terminate();

    let (c_now, i_now) = objects(&docker, &scope.worker_id).await;
    assert!(
        containers.is_subset(&c_now),
        "{containers:?} gone: {c_now:?}"
    );
    assert!(images.is_subset(&i_now), "{images:?} gone: {i_now:?}");
    let (status, v) = get(a.port, "/execute?name=noop").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["Meta"]["ImageBuilt"], false, "{v}");
    assert_eq!(v["Meta"]["UsingExistingRestContainer"], true, "{v}");
    a.terminate();
    let (c_end, i_end) = objects(&docker, &scope.worker_id).await;
    assert!(c_end.is_empty() && i_end.is_empty(), "{c_end:?} {i_end:?}");
    scope.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_docker_workers_objects_are_removed_by_the_next_worker() {
    let docker = engine().await;
    let (crashed, live, next) = (
        LabelScope::new("crashed"),
        LabelScope::new("live"),
        LabelScope::new("next"),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut a = start(&crashed.worker_id, dir.path());
    let (status, v) = get(a.port, "/execute?name=noop").await;
    assert_eq!(status, 200, "{v}");
    a.kill_9();
    let (c, i) = objects(&docker, &crashed.worker_id).await;
    assert_eq!(
        (c.len(), i.len()),
        (1, 1),
        "the crash left them: {c:?} {i:?}"
    );

    let mut l = start(&live.worker_id, dir.path());
    let (status, v) = get(l.port, "/execute?name=noop").await;
    assert_eq!(status, 200, "{v}");
    let live_objects = objects(&docker, &live.worker_id).await;
    // The start-up line comes once the orphans' objects are gone.
    let mut n = start(&next.worker_id, dir.path());
    let (c, i) = objects(&docker, &crashed.worker_id).await;
    assert!(c.is_empty() && i.is_empty(), "left: {c:?} {i:?}");
    assert_eq!(objects(&docker, &live.worker_id).await, live_objects);
    n.terminate();
    l.terminate();
    for s in [&crashed, &live, &next] {
        s.assert_clean().await;
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
}
