//! Users' own functions on a real cluster of Docker-runtime workers (issue
//! 14 §4, "and the Docker runtime on the real engine"): the real
//! `load-balancer` binary holds the store; two `worker-front` binaries with
//! `--runtime docker` join it, fetch a static native function's package
//! from it on first use, and run it in a `FROM scratch` container of their
//! own (pid 1 there). The function is called through the balancer under two
//! algorithms (both nodes serve under rr), redeployed (the next calls run
//! version 2 on every node, and each node's old container and image go),
//! and deleted (nothing of it left on the engine on either node); the
//! workers' stop leaves nothing at all.
//!
//! Each worker's objects carry its own worker id (a
//! [`support::LabelScope`] each, which removes them by label when dropped,
//! also when the test fails); the processes are killed by their guards.
//! The Node.js variant runs in `user_functions_docker.rs` (one worker) and
//! `user_functions_cluster.rs` (process runtime): this test adds what only
//! a cluster of Docker workers does.

// Tests read the clock for their deadlines.
#![allow(clippy::disallowed_methods)]

#[path = "docker_support.rs"]
mod support;
mod user_functions_support;

use std::collections::BTreeSet;
use std::time::Duration;

use user_functions_support::cluster::*;
use user_functions_support::*;

/// Calls `echo` through the balancer `n` times: every reply 200, from
/// version `version` labelled `label`, run as its container's first
/// process; returns the nodes that served.
async fn calls_served_by(lb: &Worker, n: usize, version: &str, label: &str) -> BTreeSet<String> {
    let mut nodes = BTreeSet::new();
    for i in 0..n {
        let (s, h, body) = lb.call("echo", &format!("/p?i={i}")).await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(h["x-function-version"], version, "{body}");
        let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(echo["label"], label, "{echo}");
        assert_eq!(echo["pid"], 1, "it runs as a container's first process");
        assert_eq!(
            (echo["path"].as_str(), echo["query"].as_str()),
            (Some("/p"), Some(format!("i={i}").as_str()))
        );
        nodes.insert(lb_info(&h)["WorkerNodeUrl"].as_str().unwrap().to_string());
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_functions_run_in_containers_on_every_docker_worker_of_a_cluster() {
    let docker = support::engine().await;
    let scopes = [
        support::LabelScope::new("ucd-a"),
        support::LabelScope::new("ucd-b"),
    ];
    let hf_fn = support::static_hf_fn();
    let static_fn = std::fs::read(static_user_fn()).unwrap();
    let lb_dirs = Dirs::new();
    let lb = start_balancer(&lb_dirs.data(), 0).await;
    let dirs = [Dirs::new(), Dirs::new()];
    let workers: Vec<Worker> = scopes
        .iter()
        .zip(&dirs)
        .map(|(scope, d)| {
            start_worker_with(
                d,
                &lb.base,
                &[
                    "--runtime",
                    "docker",
                    "--worker-id",
                    &scope.worker_id,
                    "--fn-binary",
                    hf_fn.to_str().unwrap(),
                ],
            )
        })
        .collect();
    await_online(&lb, 2).await;

    // Deployed at the balancer: no worker holds anything of it yet.
    let (s, v) = lb
        .deploy("echo.zip", &native_zip_of(&static_fn, "v1"), None, None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["Version"], 1);
    for scope in &scopes {
        assert_eq!(scope.objects_of(&docker, "echo", false).await, (0, 0));
    }

    // rr spreads the calls over both nodes, each building its own image
    // from the package it fetched; ll serves them too.
    let (s, v) = lb.json("GET", "/configure?lb=rr", None).await;
    assert_eq!(s, 200, "{v}");
    let nodes = calls_served_by(&lb, 4, "1", "v1").await;
    let bases: BTreeSet<String> = workers.iter().map(|w| w.base.clone()).collect();
    assert_eq!(nodes, bases, "rr used both nodes");
    let (s, v) = lb.json("GET", "/configure?lb=ll", None).await;
    assert_eq!(s, 200, "{v}");
    let nodes = calls_served_by(&lb, 2, "1", "v1").await;
    assert!(nodes.is_subset(&bases), "{nodes:?}");
    for scope in &scopes {
        assert_eq!(
            scope.objects_of(&docker, "echo", false).await,
            (1, 1),
            "{}: one warm container and one image of echo",
            scope.worker_id
        );
    }
    let (s, v) = lb.json("GET", "/info/echo", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["Calls"], 6, "{v}");
    assert_eq!(v["Nodes"].as_array().unwrap().len(), 2, "{v}");

    // A redeploy: version 2 on every node; each node's version 1
    // container and image go.
    let (s, v) = lb
        .deploy("echo.zip", &native_zip_of(&static_fn, "v2"), None, None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["Version"].as_u64(), v["Replaced"].as_u64()),
        (Some(2), Some(1))
    );
    let (s, v) = lb.json("GET", "/configure?lb=rr", None).await;
    assert_eq!(s, 200, "{v}");
    let nodes = calls_served_by(&lb, 4, "2", "v2").await;
    assert_eq!(nodes, bases, "rr used both nodes after the redeploy");
    for scope in &scopes {
        support::eventually(
            "version 1's container and image removed on each node",
            Duration::from_secs(60),
            || async { scope.objects_of(&docker, "echo", false).await == (1, 1) },
        )
        .await;
    }

    // A delete at the balancer: nothing of the function on the engine,
    // on either node.
    let (s, v) = lb.json("DELETE", "/del/echo", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["Nodes"].as_array().unwrap().len(), 2, "{v}");
    for scope in &scopes {
        support::eventually(
            "echo's containers and images removed on each node",
            Duration::from_secs(60),
            || async { scope.objects_of(&docker, "echo", true).await == (0, 0) },
        )
        .await;
    }
    let (s, _, _) = lb.call("echo", "").await;
    assert_eq!(s, 404);

    // The workers' stop: nothing of either left on the engine.
    for (w, scope) in workers.into_iter().zip(&scopes) {
        w.stop();
        let (c, i) = (scope.containers(&docker).await, scope.images(&docker).await);
        assert!(
            c.is_empty() && i.is_empty(),
            "{}: left behind: containers {c:?}, images {i:?}",
            scope.worker_id
        );
    }
    drop(lb);
}
