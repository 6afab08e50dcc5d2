//! Users' functions in the worker's node model (issue 14 §2, "a user
//! function is just a function with a package"), on the real
//! `worker-front` binary with the process runtime: a deployed version's
//! package counts in the image cache by its size and is evicted least
//! recently used first (its idle instance with it; the next call stages
//! it again, `ImageBuilt`), `/clear` removes its instances, and the pool
//! and per-call rules of HotFunctions apply as configured.

// Tests read the clock for their deadlines.
#![allow(clippy::disallowed_methods)]

mod user_functions_support;

use user_functions_support::*;

/// `/configure` with `query`; its new `State`.
async fn configure(w: &Worker, query: &str) -> serde_json::Value {
    let (s, v) = w.json("GET", &format!("/configure?{query}"), None).await;
    assert_eq!(s, 200, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_too_small_for_two_user_functions_evicts_the_older_one() {
    let dirs = Dirs::new();
    let w = start(&dirs.data(), &dirs.work());
    let (s, v) = w.deploy("a.zip", &native_zip("a", None), None, None).await;
    assert_eq!(s, 200, "{v}");
    let bytes = v["UnpackedBytes"].as_u64().unwrap();
    // Room for one package, not two.
    configure(&w, &format!("user_code_size_limit={}", bytes * 3 / 2)).await;
    let (m, pid_a) = w.call_ok("a").await;
    assert_eq!(
        (&m["ImageBuilt"], &m["UsingExistingRestContainer"]),
        (&false.into(), &false.into()),
        "staged by the deploy, cold instance: {m}"
    );
    let (m, pid) = w.call_ok("a").await;
    assert_eq!(
        (&m["UsingExistingRestContainer"], pid),
        (&true.into(), pid_a),
        "{m}"
    );
    assert_eq!(w.instances("a").await, (1, 0));
    let (_, h) = w.json("GET", "/health", None).await;
    let h = &h["Worker"];
    assert_eq!(
        (h["Images"].as_u64(), h["ImageBytes"].as_u64()),
        (Some(1), Some(bytes)),
        "{h}"
    );

    // b's package enters the cache: a's (least recently used, idle) goes,
    // with its instance.
    let (s, v) = w.deploy("b.zip", &native_zip("b", None), None, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(w.instances("a").await, (0, 0));
    await_true("a's instance is stopped", || !alive(pid_a)).await;
    let (_, h) = w.json("GET", "/health", None).await;
    let h = &h["Worker"];
    assert_eq!(h["Images"].as_u64(), Some(1), "{h}");
    assert!(h["ImageEvictions"].as_u64().unwrap() >= 1, "{h}");
    // The staged copies: b's only.
    let staged = || {
        std::fs::read_dir(dirs.data().join("staged"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
    };
    await_true("a's staged copy is removed", || {
        let s = staged();
        s.len() == 1 && s[0].starts_with("b@")
    })
    .await;

    // a again: staged again (ImageBuilt) and cold; now b goes.
    let (m, pid) = w.call_ok("a").await;
    assert_eq!(
        (&m["ImageBuilt"], &m["UsingExistingRestContainer"]),
        (&true.into(), &false.into()),
        "{m}"
    );
    assert_ne!(pid, pid_a);
    let (m, _) = w.call_ok("b").await;
    assert_eq!(m["ImageBuilt"], true, "b was evicted by a: {m}");
    let (_, v) = w.json("GET", "/info/a", None).await;
    assert_eq!(v["Warm"], false, "a was evicted by b: {v}");
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_removes_a_user_functions_instances_and_with_reset_its_image() {
    let dirs = Dirs::new();
    let w = start(&dirs.data(), &dirs.work());
    let (s, v) = w.deploy("c.zip", &native_zip("c", None), None, None).await;
    assert_eq!(s, 200, "{v}");
    let (_, pid) = w.call_ok("c").await;
    assert_eq!(w.instances("c").await, (1, 0));
    let (s, v) = w.json("GET", "/clear", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(w.instances("c").await, (0, 0));
    await_true("the instance is stopped by /clear", || !alive(pid)).await;
    let (m, pid2) = w.call_ok("c").await;
    assert_eq!(
        (&m["ImageBuilt"], &m["UsingExistingRestContainer"]),
        (&false.into(), &false.into()),
        "cold, the package still staged: {m}"
    );
    let (s, v) = w.json("GET", "/clear?reset_images=true", None).await;
    assert_eq!(s, 200, "{v}");
    await_true("the instance is stopped", || !alive(pid2)).await;
    let (m, _) = w.call_ok("c").await;
    assert_eq!(m["ImageBuilt"], true, "staged again after the reset: {m}");
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_rest_mode_calls_get_instances_of_their_own_or_pooled_ones() {
    let dirs = Dirs::new();
    // The worker's defaults: HotFunctions, no REST mode, no pool.
    let w = try_start_exactly(&dirs.data(), &dirs.work(), &[]).unwrap();
    let (s, v) = w.deploy("p.zip", &native_zip("p", None), None, None).await;
    assert_eq!(s, 200, "{v}");
    let (m1, pid1) = w.call_ok("p").await;
    let (m2, pid2) = w.call_ok("p").await;
    for m in [&m1, &m2] {
        assert_eq!(m["UsingExistingRestContainer"], false, "{m}");
        assert_eq!(m["UsingPooledContainer"], false, "{m}");
    }
    assert_ne!(pid1, pid2, "one instance per call");
    await_true("the per-call instances end", || {
        !alive(pid1) && !alive(pid2)
    })
    .await;
    assert_eq!(w.instances("p").await, (0, 0));
    // A wake has nothing to start ahead here.
    let (s, v) = w.json("GET", "/scale?name=p&instances=1", None).await;
    assert_eq!(s, 409, "{v}");

    // Pools for the 2 most recent functions, 2 instances each.
    configure(&w, "container_pool_limit=2&container_pool_num=2").await;
    let (m, _) = w.call_ok("p").await;
    assert_eq!(
        m["UsingPooledContainer"], false,
        "the pool fills after: {m}"
    );
    let mut ready = (0, 0);
    for _ in 0..1000 {
        ready = w.instances("p").await;
        if ready == (2, 0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(ready, (2, 0), "two pre-warmed instances");
    let (m, _) = w.call_ok("p").await;
    assert_eq!(m["UsingPooledContainer"], true, "{m}");
    w.stop();
}
