//! The Lambda model's keep-alive policies in the live worker (process
//! runtime, real HTTP): under a node memory of two instances, `lru` evicts
//! the least recently used idle instance for a third function; the
//! `histogram` policy keeps an instance past a zero fixed keep-alive once
//! it has seen an idle time; bad options are clear errors of the binary.

mod process_support;

use process_support::{hf_fn_binary, TestWorker};
use std::process::Command;
use worker_front::{RuntimeKind, WorkerConfig};

fn lambda_config(policy: &str, keep_alive_s: f64, node_memory_mb: u32) -> WorkerConfig {
    WorkerConfig {
        runtime: RuntimeKind::Process,
        fn_binary: Some(hf_fn_binary()),
        time_scale: 0.01,
        http_workers: 2,
        expiry_tick_ms: 50,
        keep_alive_policy: Some(policy.into()),
        keep_alive_s: Some(keep_alive_s),
        node_memory_mb,
        ..WorkerConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lru_evicts_the_least_recently_used_instance_under_the_node_memory() {
    // Every catalog function takes 256 MB: room for two instances.
    let w = TestWorker::start_config("ka-lru", lambda_config("lru", 600.0, 512)).await;
    let h = w.health().await;
    assert_eq!(h["Worker"]["InstanceModel"]["policy"]["name"], "lru", "{h}");
    assert_eq!(h["Worker"]["NodeMemoryMb"], 512, "{h}");
    let a = w.execute("W2").await;
    let b = w.execute("W4").await;
    assert!(a.meta.is_cold() && b.meta.is_cold());
    assert_eq!(w.health().await["Worker"]["MemoryInUseMb"], 512);
    // W1 needs room: W2's instance, idle longest, is evicted.
    let c = w.execute("W1").await;
    assert!(c.meta.is_cold());
    let h = w.health().await;
    assert_eq!(h["Worker"]["MemoryEvictions"], 1, "{h}");
    assert_eq!(h["Worker"]["MemoryInUseMb"], 512, "{h}");
    // W4 was kept: warm, on the same instance.
    let b2 = w.execute("W4").await;
    assert!(b2.meta.using_existing_rest_container, "{b2:?}");
    assert_eq!(b2.meta.container_name, b.meta.container_name);
    // W2 was evicted: cold, on a new instance (evicting W1's now).
    let a2 = w.execute("W2").await;
    assert!(a2.meta.is_cold(), "{a2:?}");
    assert!(!a2.meta.image_built, "the image stays; the instance went");
    assert_ne!(a2.meta.container_name, a.meta.container_name);
    let h = w.health().await;
    assert_eq!(h["Worker"]["MemoryEvictions"], 2, "{h}");
    assert_eq!(h["Worker"]["KeepAliveIdle"], 2, "{h}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_histogram_keeps_an_instance_the_fixed_keep_alive_would_drop() {
    // A fixed keep-alive of 0: the histogram's fallback drops instances at
    // once; after one short idle time (first 1-minute bin) it keeps them
    // for 66 s.
    let w = TestWorker::start_config("ka-hist", lambda_config("histogram", 0.0, 2048)).await;
    let first = w.execute("W4").await;
    let second = w.execute("W4").await;
    assert!(first.meta.is_cold());
    assert!(second.meta.is_cold(), "kept for 0 s: {second:?}");
    let third = w.execute("W4").await;
    assert!(third.meta.using_existing_rest_container, "{third:?}");
    assert_eq!(third.meta.container_name, second.meta.container_name);
    w.stop().await;
}

#[test]
fn bad_keep_alive_options_are_errors_of_the_binary() {
    let bin = env!("CARGO_BIN_EXE_worker-front");
    for (args, expect) in [
        (vec!["--keep-alive-policy", "lfu"], "greedy-dual"),
        (
            vec![
                "--instance-model",
                "hotfunctions",
                "--keep-alive-policy",
                "lru",
            ],
            "needs the Lambda model",
        ),
        (vec!["--instance-model", "vm"], "hotfunctions, lambda"),
        (vec!["--keep-alive-s=-5"], "--keep-alive-s"),
        (
            vec!["--instance-model", "hotfunctions", "--keep-alive-s", "60"],
            "--keep-alive-s 60 needs the Lambda model",
        ),
        (vec!["--node-memory-mb", "0"], "--node-memory-mb"),
    ] {
        let out = Command::new(bin)
            .args(["start", "0"])
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}
