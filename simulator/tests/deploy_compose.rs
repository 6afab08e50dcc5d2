//! The testbed on Docker Compose (`deploy/compose/docker-compose.yml`),
//! with the images `deploy/build-images.sh` builds FROM scratch: workers
//! join the balancer by themselves, a scenario replays through the cluster
//! with no error, scaling the worker service up and down changes the
//! balancer's members, and a killed worker goes offline.
//!
//! Everything the test creates carries its own names: images tagged
//! `test-compose-<pid>` with the label `hotfunctions.test=<project>`, a
//! compose project of its own (its containers and network), all removed
//! at the end, pass or fail ([`support::compose::Cluster`]).

// Tests read the clock for deadlines.
#![allow(clippy::disallowed_methods)]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::compose::{Cluster, TOKEN};
use support::{get, workspace_root};

#[test]
fn a_compose_cluster_joins_serves_a_replay_scales_and_loses_a_killed_worker() {
    let cluster = Cluster::build("compose", &[]);

    cluster.scale(2);
    cluster.wait_online(2);

    // A replay from the host, through the published port: /clear needs
    // the token from there (the balancer sees the network's gateway).
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("compose.log");
    let base = cluster.url();
    let replay = |token: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_simulator"));
        cmd.arg("replay")
            .arg(&base)
            .arg(workspace_root().join("scenarios/small.csv"))
            .arg(&log)
            .args(["--time-scale", "5", "--overwrite"])
            .env_remove("HF_MGMT_TOKEN");
        if let Some(t) = token {
            cmd.env("HF_MGMT_TOKEN", t);
        }
        cmd.output().unwrap()
    };
    let refused = replay(None);
    assert!(!refused.status.success(), "a /clear without the token");
    let out = replay(Some(TOKEN));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<serde_json::Value> = lines
        .lines()
        // `<date> <time> <start ms> <end ms> <function> <reply JSON>`
        .map(|l| serde_json::from_str(&l[l.find('{').unwrap()..]).unwrap())
        .collect();
    assert_eq!(calls.len(), 131, "{stderr}");
    let nodes: std::collections::BTreeSet<&str> = calls
        .iter()
        .filter_map(|c| c["LoadBalancingInfo"]["WorkerNodeUrl"].as_str())
        .collect();
    assert_eq!(nodes.len(), 2, "rr over both containers: {nodes:?}");

    // Scaling the service changes the members, with no manual step.
    cluster.scale(3);
    cluster.wait_online(3);
    cluster.scale(1);
    cluster.wait_online(1);

    // A worker killed without leaving goes offline by health check.
    cluster.scale(2);
    cluster.wait_online(2);
    let victim = cluster.containers("worker")[0].clone();
    let killed = Command::new("docker")
        .args(["kill", "--signal", "KILL", &victim])
        .output()
        .unwrap();
    assert!(killed.status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = cluster.members().unwrap_or_default();
        if m.len() == 2 && m.values().filter(|s| *s == "offline").count() == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the killed worker stays online: {m:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = get(cluster.port, "/execute?name=W3");
    assert_eq!(status, 200, "the other worker still serves: {body}");
}
