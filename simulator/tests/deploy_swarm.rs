//! The testbed as a Docker Swarm stack (`deploy/swarm/stack.yml`) on a
//! single-node swarm, with the images `deploy/build-images.sh` builds
//! (local images serve a single-node swarm as they are): the workers join
//! the balancer by themselves, a scenario replays through the
//! balancer's published port with no error over both workers, and scaling the worker service
//! changes the balancer's members.
//!
//! The test makes this engine a swarm only if it is not one already
//! (`docker info`), and leaves the swarm (`docker swarm leave --force`)
//! only if it made it, removing the `docker_gwbridge` network the swarm
//! created if it did not exist before. Its stack (services, tasks,
//! network: label `hotfunctions.deploy=swarm` and the stack's namespace)
//! and its images (label `hotfunctions.test=<stack>`) are removed at the
//! end, pass or fail.

// Tests read the clock for deadlines.
#![allow(clippy::disallowed_methods)]

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::compose::{build_images, docker, members, online, remove_images, Members, TOKEN};
use support::{free_port, workspace_root};

fn docker_output(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The swarm this test made, if it made one: left when dropped.
struct OwnSwarm {
    created: bool,
    gwbridge_existed: bool,
}

impl OwnSwarm {
    /// Joins nothing: uses the engine's swarm if it is a manager of one,
    /// else makes a single-node swarm (`docker swarm init`).
    fn ensure() -> Self {
        let state = docker_output(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        let gwbridge_existed =
            !docker_output(&["network", "ls", "-q", "--filter", "name=^docker_gwbridge$"])
                .is_empty();
        match state.as_str() {
            "inactive" => {
                let mut guard = Self {
                    created: false,
                    gwbridge_existed,
                };
                let out = Command::new("docker")
                    .args(["swarm", "init", "--advertise-addr", "127.0.0.1"])
                    .output()
                    .expect("docker runs");
                // Leave even if init failed half-way.
                guard.created = true;
                assert!(
                    out.status.success(),
                    "docker swarm init: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                guard
            }
            "active" => {
                let manager = docker_output(&["info", "--format", "{{.Swarm.ControlAvailable}}"]);
                assert_eq!(
                    manager, "true",
                    "this engine is a swarm worker, not a manager: cannot deploy a stack"
                );
                Self {
                    created: false,
                    gwbridge_existed,
                }
            }
            other => panic!("the engine's swarm state is {other:?}: expected inactive or active"),
        }
    }
}

impl Drop for OwnSwarm {
    fn drop(&mut self) {
        if !self.created {
            return;
        }
        let out = Command::new("docker")
            .args(["swarm", "leave", "--force"])
            .output();
        if let Ok(out) = out {
            if !out.status.success() {
                eprintln!(
                    "docker swarm leave --force: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        if !self.gwbridge_existed {
            let _ = Command::new("docker")
                .args(["network", "rm", "docker_gwbridge"])
                .output();
        }
    }
}

/// A stack of this test and its images: removed when dropped (the
/// stack's tasks and network are awaited, 60 s at most, before its
/// images go).
struct Stack {
    name: String,
    tag: String,
    port: u16,
}

impl Stack {
    fn deploy(&self, workers: u32) -> Output {
        let out = Command::new("docker")
            .current_dir(workspace_root())
            .args([
                "stack",
                "deploy",
                "-c",
                "deploy/swarm/stack.yml",
                &self.name,
            ])
            .env("HF_TAG", &self.tag)
            .env("HF_MGMT_TOKEN", TOKEN)
            .env("HF_BALANCER_PORT", self.port.to_string())
            .env("HF_WORKERS", workers.to_string())
            .env("HF_ALGORITHM", "rr")
            .env("HF_TIME_SCALE", "0.05")
            .env("HF_PACKAGE_SCALE", "0.25")
            .env("HF_WORKER_CPUS", "0.5")
            .env("HF_WORKER_MEMORY", "512M")
            .output()
            .expect("docker runs");
        assert!(
            out.status.success(),
            "docker stack deploy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn namespace_filter(&self) -> String {
        format!("label=com.docker.stack.namespace={}", self.name)
    }

    /// Waits (deadline 180 s) until the balancer has `n` members, all
    /// online.
    fn wait_online(&self, n: usize) -> Members {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let m = members(self.port);
            if let Some(m) = &m {
                if m.len() == n && online(m) == n {
                    return m.clone();
                }
            }
            assert!(Instant::now() < deadline, "never {n} online members: {m:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["stack", "rm", &self.name])
            .output();
        let filter = self.namespace_filter();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let containers = docker_output(&["ps", "-aq", "--filter", &filter]);
            let networks = docker_output(&["network", "ls", "-q", "--filter", &filter]);
            if containers.is_empty() && networks.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        remove_images(&self.tag);
    }
}

#[test]
fn a_swarm_stack_joins_serves_a_replay_and_scales() {
    let _swarm = OwnSwarm::ensure();
    let pid = std::process::id();
    let stack = Stack {
        name: format!("hftestswarm{pid}"),
        tag: format!("test-swarm-{pid}"),
        port: free_port(),
    };
    build_images(&stack.tag, &stack.name);
    stack.deploy(2);
    let filter = stack.namespace_filter();
    let services = docker_output(&[
        "service",
        "ls",
        "-q",
        "--filter",
        &filter,
        "--filter",
        "label=hotfunctions.deploy=swarm",
    ]);
    assert_eq!(
        services.lines().count(),
        2,
        "the balancer and worker services, labelled"
    );
    stack.wait_online(2);

    // A replay from the host through the published port.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("swarm.log");
    let out = Command::new(env!("CARGO_BIN_EXE_simulator"))
        .arg("replay")
        .arg(format!("http://127.0.0.1:{}", stack.port))
        .arg(workspace_root().join("scenarios/small.csv"))
        .arg(&log)
        .args(["--time-scale", "5", "--overwrite", "--progress", "off"])
        .args(["--request-timeout", "60s"])
        .env("HF_MGMT_TOKEN", TOKEN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let calls: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(&l[l.find('{').unwrap()..]).unwrap())
        .collect();
    assert_eq!(calls.len(), 131, "{stderr}");
    let nodes: std::collections::BTreeSet<&str> = calls
        .iter()
        .filter_map(|c| c["LoadBalancingInfo"]["WorkerNodeUrl"].as_str())
        .collect();
    assert_eq!(nodes.len(), 2, "rr over both tasks: {nodes:?}");

    // Scaling the service changes the members, with no manual step.
    let worker_service = format!("{}_worker", stack.name);
    docker(&[
        "service",
        "scale",
        "--detach",
        &format!("{worker_service}=3"),
    ]);
    stack.wait_online(3);
    docker(&[
        "service",
        "scale",
        "--detach",
        &format!("{worker_service}=1"),
    ]);
    stack.wait_online(1);
}
