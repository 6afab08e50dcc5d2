//! The worker with the process runtime, over real HTTP (issue 3 §3): every
//! function runs, images are cached and evicted, pools and REST instances
//! serve calls, builds are single-flight, and nothing is left behind.

mod process_support;

use futures_util::StreamExt;
use policy::node::options::CachingOptions;
use process_support::TestWorker;
use std::time::Duration;
use worker_front::runtime::InstanceKind;

fn options() -> CachingOptions {
    CachingOptions::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_function_runs_once_time_scaled_and_returns_200() {
    let w = TestWorker::start("all", options()).await;
    // `/prepare` builds every image first, so no call below builds one.
    let (status, v) = w.get("/prepare").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["Built"], 31, "{v}");
    let names: Vec<String> = sample_functions::catalog()
        .functions
        .iter()
        .map(|f| f.name.clone())
        .collect();
    assert_eq!(names.len(), 31);
    let replies: Vec<(String, protocol::WorkerReply)> = futures_util::stream::iter(names)
        .map(|n| {
            let w = &w;
            async move { (n.clone(), w.execute(&n).await) }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    for (name, r) in &replies {
        assert_eq!(r.result.status_code, 200, "{name}: {r:?}");
        assert!(r.result.body.contains("\"ret\""), "{name}: {r:?}");
        assert!(!r.meta.image_built, "{name}: prepared by /prepare");
        assert!(r.meta.is_cold(), "{name}");
        assert!(r.internal_execution_time >= 0);
        // Both are whole ms, truncated from different clocks: allow 1 ms.
        assert!(
            r.execution_time + 1 >= r.internal_execution_time,
            "{name}: {r:?}"
        );
        assert_eq!(r.meta.image_name, format!("hf-{}", name.to_lowercase()));
    }
    let h = w.health().await;
    assert_eq!(h["Worker"]["ImageBuilds"], 31, "{h}");
    assert_eq!(h["Worker"]["Calls"], 31, "{h}");
    // Its code: version and the commit of the checkout it was built from.
    assert_eq!(h["Version"], env!("CARGO_PKG_VERSION"), "{h}");
    let head =
        source_revision::build::head_commit(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
    assert_eq!(h["Revision"]["Commit"].as_str(), head.as_deref(), "{h}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn first_call_builds_the_image_second_reuses_it() {
    let w = TestWorker::start("cache", options()).await;
    let a = w.execute("W2").await;
    let b = w.execute("W2").await;
    assert!(a.meta.image_built);
    assert!(!b.meta.image_built);
    assert_eq!(a.meta.image_name, b.meta.image_name);
    assert_ne!(
        a.meta.container_name, b.meta.container_name,
        "one instance per call"
    );
    assert!(!b.meta.using_pooled_container && !b.meta.using_existing_rest_container);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_configured_pool_serves_the_next_call() {
    let w = TestWorker::start("pool", options()).await;
    let (status, v) = w
        .get("/configure?container_pool_limit=1&container_pool_num=2")
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["Message"], "configure changed");
    assert_eq!(v["State"]["ContainerPoolLimit"], 1);
    assert_eq!(v["State"]["ContainerPoolNum"], 2);
    let first = w.execute("W7").await;
    assert!(!first.meta.using_pooled_container);
    w.await_health("a pool of 2", |h| h["PooledInstances"] == 2)
        .await;
    let second = w.execute("W7").await;
    assert!(second.meta.using_pooled_container, "{second:?}");
    assert!(!second.meta.image_built);
    // The used instance is removed and the pool topped up again.
    w.await_health("the pool topped up", |h| h["PooledInstances"] == 2)
        .await;
    let used = second.meta.container_name.clone();
    w.await_processes("two pooled W7 processes, the used one gone", |ps| {
        let pooled = ps
            .iter()
            .filter(|i| i.kind == InstanceKind::Pooled && i.function == "W7")
            .count();
        pooled == 2 && !ps.iter().any(|i| i.name == used)
    })
    .await;
    // Another function becomes the most recent: W7's pool goes.
    w.execute("noop").await;
    w.await_processes("W7's pool removed, noop's created", |ps| {
        let w7 = ps.iter().filter(|i| i.function == "W7").count();
        let noop = ps.iter().filter(|i| i.function == "noop").count();
        w7 == 0 && noop == 2
    })
    .await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_mode_reuses_the_instance_and_removes_it_after_its_lifetime() {
    let w = TestWorker::start("rest", options()).await;
    let (status, v) = w
        .get("/configure?using_rest_mode=true&rest_container_life_time=3")
        .await;
    assert_eq!(status, 200, "{v}");
    let a = w.execute("T3").await;
    let b = w.execute("T3").await;
    assert!(!a.meta.using_existing_rest_container);
    assert!(b.meta.using_existing_rest_container, "{b:?}");
    assert_eq!(a.meta.container_name, b.meta.container_name);
    let alive = w.own_processes().await;
    assert!(
        alive
            .iter()
            .any(|i| i.kind == InstanceKind::Rest && i.name == b.meta.container_name),
        "{alive:?}"
    );
    // Idle for its lifetime (3 s): the timer removes it, no call needed.
    w.await_health("the REST instance to expire", |h| h["RestInstances"] == 0)
        .await;
    let gone = b.meta.container_name.clone();
    w.await_processes("the expired process to exit", |ps| {
        !ps.iter().any(|i| i.name == gone)
    })
    .await;
    let c = w.execute("T3").await;
    assert!(!c.meta.using_existing_rest_container);
    assert_ne!(c.meta.container_name, b.meta.container_name);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_rest_instance_is_replaced_within_the_call() {
    let mut o = options();
    o.using_rest_mode = true;
    let w = TestWorker::start("restdead", o).await;
    let a = w.execute("W3").await;
    let victim = w
        .own_processes()
        .await
        .into_iter()
        .find(|i| i.name == a.meta.container_name)
        .expect("the REST instance runs");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim.id.parse().unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let gone = victim.id.clone();
    w.await_processes("the killed instance to die", |ps| {
        !ps.iter().any(|i| i.id == gone)
    })
    .await;
    let b = w.execute("W3").await;
    assert_eq!(b.result.status_code, 200);
    assert!(!b.meta.using_existing_rest_container, "{b:?}");
    assert_ne!(b.meta.container_name, a.meta.container_name);
    let c = w.execute("W3").await;
    assert!(c.meta.using_existing_rest_container);
    assert_eq!(c.meta.container_name, b.meta.container_name);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_mode_concurrent_calls_share_one_instance() {
    let mut o = options();
    o.using_rest_mode = true;
    let w = TestWorker::start("restc", o).await;
    let calls = (0..8).map(|_| w.execute("T5"));
    let replies = futures_util::future::join_all(calls).await;
    let names: std::collections::BTreeSet<_> = replies
        .iter()
        .map(|r| r.meta.container_name.clone())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    let h = w.health().await;
    assert_eq!(h["Worker"]["RestInstances"], 1);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exceeding_the_size_limit_evicts_the_least_recently_used_image() {
    let w = TestWorker::start("lru", options()).await;
    // Three small packages (14 KB payload each; the limit counts the
    // packages, not the hf-fn binary every image holds).
    let first = w.execute("I3").await;
    assert!(first.meta.image_built);
    let one = w.health().await["Worker"]["ImageBytes"].as_u64().unwrap();
    assert_eq!(one, 14_000);
    // Room for two images, not three.
    let limit = 2 * one + one / 2;
    let (status, v) = w
        .get(&format!("/configure?user_code_size_limit={limit}"))
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(w.execute("I4").await.meta.image_built);
    // I3 is now the least recently used: building D4 evicts it.
    assert!(w.execute("D4").await.meta.image_built);
    let h = w.health().await;
    assert_eq!(h["Worker"]["Images"], 2, "{h}");
    assert!(h["Worker"]["ImageBytes"].as_u64().unwrap() <= limit);
    let i3_dir = w.stage_root().join("hf-i3");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while i3_dir.exists() {
        assert!(tokio::time::Instant::now() < deadline, "I3's image stayed");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(w.stage_root().join("hf-i4").exists());
    assert!(!w.execute("I4").await.meta.image_built, "I4 stayed cached");
    assert!(w.execute("I3").await.meta.image_built, "I3 was evicted");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_package_scale_shrinks_what_images_stage_load_and_count() {
    let w = TestWorker::start_config(
        "pkgscale",
        worker_front::WorkerConfig {
            package_scale: 0.25,
            time_scale: 0.01,
            fn_binary: Some(process_support::hf_fn_binary()),
            ..worker_front::WorkerConfig::default()
        },
    )
    .await;
    // W5: 26 MB in the catalog, so 6.5 MB of payload. The instance checks
    // the payload's size against the scale it is given: a call succeeds
    // only if the runtime staged and told the same size.
    let r = w.execute("W5").await;
    assert!(r.meta.image_built);
    assert_eq!(r.result.status_code, 200, "{r:?}");
    let payload = w.stage_root().join("hf-w5").join("payload.bin");
    assert_eq!(std::fs::metadata(&payload).unwrap().len(), 6_500_000);
    let binary = std::fs::metadata(process_support::hf_fn_binary())
        .unwrap()
        .len();
    let h = w.health().await;
    assert_eq!(h["Worker"]["PackageScale"], 0.25, "{h}");
    assert_eq!(h["Worker"]["ImageBytes"], 6_500_000, "{h}");
    assert_eq!(h["Worker"]["ImageStoredBytes"], binary + 6_500_000, "{h}");
    // A warm REST instance loads the same scaled payload.
    let (status, v) = w.get("/configure?using_rest_mode=true").await;
    assert_eq!(status, 200, "{v}");
    w.execute("W5").await;
    assert!(w.execute("W5").await.meta.using_existing_rest_container);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_first_calls_build_the_image_once() {
    let w = TestWorker::start("flight", options()).await;
    let calls = (0..20).map(|_| w.execute("W5"));
    let replies = futures_util::future::join_all(calls).await;
    for r in &replies {
        assert_eq!(r.result.status_code, 200);
        assert!(r.meta.image_built, "every caller waited for the build");
    }
    let h = w.health().await;
    assert_eq!(h["Worker"]["ImageBuilds"], 1, "{h}");
    assert_eq!(h["Worker"]["Calls"], 20);
    assert!(!w.execute("W5").await.meta.image_built);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clear_removes_instances_and_optionally_images() {
    let mut o = options();
    o.using_rest_mode = true;
    let w = TestWorker::start("clear", o).await;
    w.execute("W1").await;
    assert_eq!(w.own_processes().await.len(), 1);
    let (status, v) = w.get("/clear").await;
    assert_eq!(status, 200, "{v}");
    assert!(v["Removed"]["Instances"].as_u64().unwrap() >= 1, "{v}");
    assert!(w.own_processes().await.is_empty());
    let again = w.execute("W1").await;
    assert!(!again.meta.image_built, "images survive a plain /clear");
    assert!(!again.meta.using_existing_rest_container);
    let (status, v) = w.get("/clear?reset_images=true").await;
    assert_eq!(status, 200, "{v}");
    assert!(!w.stage_root().join("hf-w1").exists());
    assert!(w.execute("W1").await.meta.image_built);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_requests_get_json_errors() {
    let w = TestWorker::start("errors", options()).await;
    let (status, v) = w.get("/execute?name=W99").await;
    assert_eq!(status, 404);
    assert_eq!(v["Error"], true);
    assert!(v["Message"].as_str().unwrap().contains("W99"));
    let (status, v) = w.get("/execute").await;
    assert_eq!(status, 400);
    assert_eq!(v["Message"], "param 'name' is not given");
    let (status, v) = w.get("/configure?cache_num=3").await;
    assert_eq!(status, 400);
    assert!(v["Message"].as_str().unwrap().contains("cache_num"));
    let (status, v) = w.get("/configure?container_pool_num=lots").await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = w.get("/configure").await;
    assert_eq!(
        (status, v["Message"].as_str()),
        (200, Some("nothing changed"))
    );
    let (status, _) = w.get("/elsewhere").await;
    assert_eq!(status, 404);
    let (status, _) = w.get("/clear?reset_images=maybe").await;
    assert_eq!(status, 400);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_function_binary_is_503_not_a_panic() {
    let w = TestWorker::start_with(
        "nobin",
        options(),
        Some(std::path::PathBuf::from("/nonexistent/hf-fn")),
    )
    .await;
    let (status, v) = w.get("/execute?name=W1").await;
    assert_eq!(status, 503, "{v}");
    assert!(v["Message"]
        .as_str()
        .unwrap()
        .contains("cargo build -p sample-functions"));
    let (status, _) = w.get("/health").await;
    assert_eq!(status, 503);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_worker_serves_again_once_the_runtime_is_back() {
    let bin_dir = tempfile::tempdir().unwrap();
    let bin = bin_dir.path().join("hf-fn");
    let w = TestWorker::start_with("back", options(), Some(bin.clone())).await;
    let (status, v) = w.get("/execute?name=noop").await;
    assert_eq!(status, 503, "{v}");
    std::fs::copy(process_support::hf_fn_binary(), &bin).unwrap();
    let r = w.execute("noop").await;
    assert_eq!(r.result.status_code, 200);
    assert!(r.meta.image_built);
    w.stop().await;
}
