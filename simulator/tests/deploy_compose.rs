//! The testbed on Docker Compose (`deploy/compose/docker-compose.yml`),
//! with the images `deploy/build-images.sh` builds FROM scratch: workers
//! join the balancer by themselves, a scenario replays through the cluster
//! with no error, scaling the worker service up and down changes the
//! balancer's members, and a killed worker goes offline.
//!
//! Everything the test creates carries its own names: images tagged
//! `test-<pid>` with the label `hotfunctions.test=<project>`, a compose
//! project of its own (its containers and network), all removed at the
//! end, pass or fail.

// Tests read the clock for deadlines.
#![allow(clippy::disallowed_methods)]

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::{free_port, get, workspace_root};

const TOKEN: &str = "compose-test-token-0123456789";

/// The compose project, its images and the settings every
/// `docker-compose` call needs; `down` and `rmi` when dropped.
struct Cluster {
    project: String,
    tag: String,
    port: u16,
}

impl Cluster {
    fn compose(&self, args: &[&str]) -> Output {
        let out = Command::new("docker-compose")
            .current_dir(workspace_root())
            .args([
                "-f",
                "deploy/compose/docker-compose.yml",
                "-p",
                &self.project,
            ])
            .args(args)
            .env("HF_TAG", &self.tag)
            .env("HF_MGMT_TOKEN", TOKEN)
            .env("HF_BALANCER_PORT", self.port.to_string())
            .env("HF_ALGORITHM", "rr")
            .env("HF_TIME_SCALE", "0.05")
            .env("HF_PACKAGE_SCALE", "0.25")
            .env("HF_WORKER_CPUS", "0.5")
            .env("HF_WORKER_MEMORY", "512m")
            .output()
            .expect("docker-compose runs");
        assert!(
            out.status.success(),
            "docker-compose {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn scale(&self, workers: u32) {
        self.compose(&["up", "-d", "--scale", &format!("worker={workers}")]);
    }

    /// The balancer's members (URL -> status), or none while it is not up.
    fn members(&self) -> Option<BTreeMap<String, String>> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        drop(s.set_read_timeout(Some(Duration::from_secs(5))));
        use std::io::{Read, Write};
        s.write_all(b"GET /1/lb/nodes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut reply = String::new();
        s.read_to_string(&mut reply).ok()?;
        let body = reply.split_once("\r\n\r\n")?.1;
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        Some(
            v["nodes"]
                .as_object()?
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect(),
        )
    }

    /// Waits (deadline 120 s) until the balancer has `n` members, all
    /// online.
    fn wait_online(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let m = self.members();
            if m.as_ref()
                .is_some_and(|m| m.len() == n && m.values().all(|s| s == "online"))
            {
                return;
            }
            assert!(Instant::now() < deadline, "never {n} online members: {m:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("docker-compose")
            .current_dir(workspace_root())
            .args([
                "-f",
                "deploy/compose/docker-compose.yml",
                "-p",
                &self.project,
            ])
            .args(["down", "--volumes", "--remove-orphans", "--timeout", "20"])
            .env("HF_TAG", &self.tag)
            .env("HF_MGMT_TOKEN", TOKEN)
            .output();
        for role in ["load-balancer", "worker", "replayer"] {
            let _ = Command::new("docker")
                .args([
                    "rmi",
                    "--force",
                    &format!("hotfunctions/{role}:{}", self.tag),
                ])
                .output();
        }
    }
}

#[test]
fn a_compose_cluster_joins_serves_a_replay_scales_and_loses_a_killed_worker() {
    let project = format!("hftest{}", std::process::id());
    let cluster = Cluster {
        tag: format!("test-{}", std::process::id()),
        project: project.clone(),
        port: free_port(),
    };
    let built = Command::new("bash")
        .current_dir(workspace_root())
        .args(["deploy/build-images.sh", "--tag", &cluster.tag, "--label"])
        .arg(format!("hotfunctions.test={project}"))
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "build-images.sh: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let names = String::from_utf8_lossy(&built.stdout);
    assert_eq!(names.lines().count(), 3, "{names}");

    cluster.scale(2);
    cluster.wait_online(2);

    // A replay from the host, through the published port: /clear needs
    // the token from there (the balancer sees the network's gateway).
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("compose.log");
    let base = format!("http://127.0.0.1:{}", cluster.port);
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
    let ids = cluster.compose(&["ps", "-q", "worker"]);
    let ids = String::from_utf8_lossy(&ids.stdout);
    let victim = ids.lines().next().unwrap().trim().to_string();
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
