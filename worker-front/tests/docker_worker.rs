//! The worker with the Docker runtime, over real HTTP against the real
//! engine (issue 3 §3): all 30 functions answer 200; the image is built on
//! the first call only; pools and REST-mode containers serve calls; REST
//! containers go after their lifetime; the image cache's byte limit evicts
//! the least recently used image from the engine; concurrent first calls
//! build once; an engine outage is answered with 503 JSON errors and the
//! worker serves again once the engine is back, without a restart; nothing
//! labelled with the test's worker id is left.
//!
//! These tests FAIL (never skip) when no engine answers: CI guarantees one.

// Tests read the clock for deadlines.
#![allow(clippy::disallowed_methods)]

#[path = "docker_support.rs"]
mod support;

use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use policy::node::options::CachingOptions;
use support::{
    containers_of_kind, engine, eventually, image_present, DockerWorker, EngineRelay, LabelScope,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_function_runs_once_through_the_worker() {
    let _docker = engine().await;
    let scope = LabelScope::new("all30");
    let w = DockerWorker::start(&scope, CachingOptions::default()).await;
    let names: Vec<String> = sample_functions::catalog()
        .with_rates()
        .map(|f| f.name.clone())
        .collect();
    assert_eq!(names.len(), 30);
    let started = std::time::Instant::now();
    // Three calls at a time: each first call builds its image (up to 131 MB).
    let replies: Vec<(String, protocol::WorkerReply)> = stream::iter(names)
        .map(|n| {
            let w = &w;
            async move { (n.clone(), w.execute(&n).await) }
        })
        .buffer_unordered(3)
        .collect()
        .await;
    eprintln!(
        "30 functions built and run through the worker in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for (name, r) in &replies {
        assert_eq!(r.result.status_code, 200, "{name}: {r:?}");
        assert!(r.meta.image_built, "{name}: first call builds");
        assert!(r.meta.is_cold(), "{name}");
        assert!(
            r.meta.image_name.starts_with("hotfunctions-"),
            "{name}: {r:?}"
        );
        assert!(r.execution_time >= r.internal_execution_time, "{name}");
    }
    assert_eq!(replies.len(), 30);
    assert_eq!(w.status().await["ImageBuilds"], 30);
    w.stop().await;
    scope.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn first_call_builds_the_image_second_does_not() {
    let docker = engine().await;
    let scope = LabelScope::new("built");
    let w = DockerWorker::start(&scope, CachingOptions::default()).await;
    let a = w.execute("T3").await;
    let b = w.execute("T3").await;
    assert!(a.meta.image_built);
    assert!(!b.meta.image_built);
    assert_eq!(a.result.status_code, 200);
    assert_eq!(b.result.status_code, 200);
    assert_eq!(a.meta.image_name, b.meta.image_name);
    assert!(image_present(&docker, &a.meta.image_name).await);
    assert_ne!(a.meta.container_name, b.meta.container_name);
    assert!(b.meta.is_cold());
    w.stop().await;
    assert!(
        !image_present(&docker, &a.meta.image_name).await,
        "the worker removes its images on shutdown"
    );
    scope.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pool_serves_calls_from_prewarmed_containers() {
    let docker = engine().await;
    let scope = LabelScope::new("pool");
    let caching = CachingOptions {
        container_pool_limit: 1,
        container_pool_num: 2,
        ..Default::default()
    };
    let w = DockerWorker::start(&scope, caching).await;
    let first = w.execute("W4").await;
    assert!(first.meta.image_built);
    assert!(!first.meta.using_pooled_container);
    // The pool fills in the background: two pre-warmed containers.
    eventually("two pooled containers", Duration::from_secs(90), || {
        let (docker, scope) = (&docker, &scope);
        async move { containers_of_kind(docker, scope, "pooled").await >= 2 }
    })
    .await;
    eventually(
        "the worker counts them ready",
        Duration::from_secs(30),
        || {
            let w = &w;
            async move { w.status().await["PooledInstances"].as_u64() >= Some(2) }
        },
    )
    .await;
    let pooled = w.execute("W4").await;
    assert_eq!(pooled.result.status_code, 200);
    assert!(pooled.meta.using_pooled_container, "{pooled:?}");
    assert!(!pooled.meta.image_built);
    w.stop().await;
    scope.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_mode_reuses_the_container_until_its_lifetime_ends() {
    let docker = engine().await;
    let scope = LabelScope::new("rest");
    let caching = CachingOptions {
        using_rest_mode: true,
        rest_container_life_time: 2,
        ..Default::default()
    };
    let w = DockerWorker::start(&scope, caching).await;
    let a = w.execute("W1").await;
    let b = w.execute("W1").await;
    assert_eq!(a.result.status_code, 200);
    assert_eq!(b.result.status_code, 200);
    assert!(!a.meta.using_existing_rest_container);
    assert!(b.meta.using_existing_rest_container, "{b:?}");
    assert_eq!(a.meta.container_name, b.meta.container_name);
    assert_eq!(containers_of_kind(&docker, &scope, "rest").await, 1);
    // Idle for longer than its lifetime: the timer removes it, with no
    // further call.
    eventually(
        "the REST container is removed after its lifetime",
        Duration::from_secs(60),
        || {
            let (docker, scope) = (&docker, &scope);
            async move { containers_of_kind(docker, scope, "rest").await == 0 }
        },
    )
    .await;
    let c = w.execute("W1").await;
    assert!(!c.meta.using_existing_rest_container, "a new instance");
    assert_ne!(c.meta.container_name, a.meta.container_name);
    w.stop().await;
    scope.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_size_limit_evicts_the_least_recently_used_image_from_the_engine() {
    let docker = engine().await;
    let scope = LabelScope::new("lru");
    // I3, I4 and D4 have 14 KB packages (each image holds the static
    // hf-fn too, which the limit does not count). Room for two, not three.
    let w0 = DockerWorker::start(&scope, CachingOptions::default()).await;
    let probe = w0.execute("I3").await;
    let image_bytes = w0.status().await["ImageBytes"].as_u64().unwrap();
    w0.stop().await;
    assert_eq!(image_bytes, 14_000);
    let caching = CachingOptions {
        user_code_size_limit: (image_bytes * 5 / 2) as i64,
        ..Default::default()
    };
    let w = DockerWorker::start(&scope, caching).await;
    let i3 = w.execute("I3").await;
    let i4 = w.execute("I4").await;
    // The same repository; the tag is each worker's own instance id.
    let repository = |name: &str| name.split(':').next().unwrap_or_default().to_string();
    assert_eq!(
        repository(&i3.meta.image_name),
        repository(&probe.meta.image_name)
    );
    assert_ne!(i3.meta.image_name, probe.meta.image_name);
    // I3 used again: I4 is now the least recently used.
    assert!(!w.execute("I3").await.meta.image_built);
    assert!(image_present(&docker, &i3.meta.image_name).await);
    assert!(image_present(&docker, &i4.meta.image_name).await);
    let d4 = w.execute("D4").await;
    assert!(d4.meta.image_built);
    eventually(
        "I4's image leaves the engine",
        Duration::from_secs(60),
        || {
            let (docker, name) = (&docker, i4.meta.image_name.clone());
            async move { !image_present(docker, &name).await }
        },
    )
    .await;
    assert!(image_present(&docker, &i3.meta.image_name).await);
    assert!(image_present(&docker, &d4.meta.image_name).await);
    // I4 is built again on its next call.
    assert!(w.execute("I4").await.meta.image_built);
    w.stop().await;
    scope.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_package_scale_shrinks_the_image_and_what_its_containers_load() {
    let _docker = engine().await;
    let scope = LabelScope::new("pkgscale");
    let config = worker_front::WorkerConfig {
        time_scale: 0.01,
        package_scale: 0.25,
        ..Default::default()
    };
    let w = DockerWorker::start_config(&scope, config).await;
    // W5: 26 MB in the catalog, 6.5 MB at scale 0.25. The container's
    // hf-fn checks its payload against the scale it is given, so the call
    // answers 200 only if the image and the container agree.
    let r = w.execute("W5").await;
    assert!(r.meta.image_built);
    assert_eq!(r.result.status_code, 200, "{r:?}");
    let status = w.status().await;
    assert_eq!(status["PackageScale"], 0.25, "{status}");
    assert_eq!(status["ImageBytes"], 6_500_000, "{status}");
    let stored = status["ImageStoredBytes"].as_u64().unwrap();
    // The static hf-fn plus 6.5 MB of payload: well under the full 26 MB.
    assert!((6_500_000..20_000_000).contains(&stored), "{status}");
    // A REST-mode container loads the same payload.
    let (code, v) = w.get("/configure?using_rest_mode=true").await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(w.execute("W5").await.result.status_code, 200);
    assert!(w.execute("W5").await.meta.using_existing_rest_container);
    w.stop().await;
    scope.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_first_calls_build_the_image_once() {
    let docker = engine().await;
    let scope = LabelScope::new("flight");
    let w = DockerWorker::start(&scope, CachingOptions::default()).await;
    let replies: Vec<protocol::WorkerReply> = stream::iter(0..20)
        .map(|_| w.execute("W7"))
        .buffer_unordered(20)
        .collect()
        .await;
    assert_eq!(replies.len(), 20);
    for r in &replies {
        assert_eq!(r.result.status_code, 200, "{r:?}");
    }
    assert!(replies.iter().any(|r| r.meta.image_built));
    assert_eq!(w.status().await["ImageBuilds"], 1, "one build for 20 calls");
    // One tagged image (the classic builder's untagged intermediate
    // images carry some of the labels too; they go with the image).
    let mut tagged = 0;
    for id in scope.images(&docker).await {
        let i = docker.inspect_image(&id).await.unwrap();
        tagged += usize::from(i.repo_tags.is_some_and(|t| !t.is_empty()));
    }
    assert_eq!(tagged, 1);
    let names: std::collections::HashSet<&str> =
        replies.iter().map(|r| r.meta.image_name.as_str()).collect();
    assert_eq!(names.len(), 1);
    w.stop().await;
    scope.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_functions_are_404_json() {
    let _docker = engine().await;
    let scope = LabelScope::new("unknown");
    let w = DockerWorker::start(&scope, CachingOptions::default()).await;
    let (status, v) = w.get("/execute?name=NOPE").await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["Error"], true);
    let (status, v) = w.get("/health").await;
    assert_eq!(status, 200);
    assert_eq!(v["Runtime"], "docker");
    w.stop().await;
    scope.assert_clean().await;
}

/// `(status, body)` of an error reply: asserts the JSON error shape and that
/// the message says the engine at `url` is unreachable.
fn assert_engine_unreachable(what: &str, status: u16, v: &serde_json::Value, url: &str) {
    assert_eq!(status, 503, "{what}: {v}");
    assert_eq!(v["Error"], true, "{what}: {v}");
    let message = v["Message"].as_str().unwrap_or_default();
    eprintln!("{what}: {status} {message}");
    assert!(
        message.contains(&format!("Docker engine unreachable at {url}")),
        "{what}: {message:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn engine_outage_is_503_json_then_the_worker_recovers_without_restart() {
    let docker = engine().await;
    let scope = LabelScope::new("outage-w");
    let dir = tempfile::tempdir().unwrap();
    let mut relay = EngineRelay::new(dir.path().join("engine.sock"));
    relay.start();
    let url = relay.url();
    let w = DockerWorker::start_with(&scope, CachingOptions::default(), Some(url.clone())).await;
    let first = w.execute("noop").await;
    assert!(first.meta.image_built, "{first:?}");
    assert_eq!(first.result.status_code, 200);

    relay.stop();
    // A call whose image is built: its one-shot container cannot start.
    let (status, v) = w.get("/execute?name=noop").await;
    assert_engine_unreachable("noop during the outage", status, &v, &url);
    // A call whose image is not built yet: the build cannot start.
    let (status, v) = w.get("/execute?name=I3").await;
    assert_engine_unreachable("I3 (not built) during the outage", status, &v, &url);
    let (status, v) = w.get("/health").await;
    assert_engine_unreachable("/health during the outage", status, &v, &url);

    relay.start();
    eventually(
        "noop answers 200 again after the outage",
        Duration::from_secs(60),
        || {
            let w = &w;
            async move { w.get("/execute?name=noop").await.0 == 200 }
        },
    )
    .await;
    let again = w.execute("noop").await;
    assert!(!again.meta.image_built, "noop's image survived: {again:?}");
    let i3 = w.execute("I3").await;
    assert!(i3.meta.image_built, "{i3:?}");
    assert_eq!(i3.result.status_code, 200);
    assert!(image_present(&docker, &i3.meta.image_name).await);
    let status = w.status().await;
    assert_eq!(status["ImageBuilds"], 2, "{status}");
    w.stop().await;
    relay.stop();
    scope.assert_clean().await;
}
