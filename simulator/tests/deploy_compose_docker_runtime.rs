//! The compose testbed with the Docker runtime (issue 16 §1):
//! `deploy/compose/docker-compose.yml` with
//! `deploy/compose/docker-compose.docker-runtime.yml` on top, so that each
//! worker container runs its functions as sibling containers through the
//! mounted engine socket. A balancer and 2 workers; two functions called
//! through the balancer; each reply's `Meta` names a Docker image that the
//! engine holds with the test's label (so the Docker runtime built it,
//! through the engine's API, with no registry) and a container of the
//! runtime; after `docker-compose down`, no container or image with that
//! label is left: the workers removed what they created when they stopped.
//!
//! The node is bounded (`--docker-cgroup-parent auto`, which the override
//! sets): a worker of `cpus: 0.5` and `mem_limit: 512m` runs four
//! CPU-bound calls at once in REST-mode containers; each function
//! container's cgroup is under the worker container's, in the CPU and
//! memory controllers, whose cgroup holds the quota (50 ms per 100 ms) and
//! the memory limit, hierarchical; and the CPU the node's cgroup used
//! (its `cpuacct.usage`, functions included) over the calls stays within
//! half a core, with one CFS period of slack (a bound that load on the
//! machine only makes easier to meet).
//!
//! Owned by the tests: the images (`Cluster::build`), the compose projects,
//! and the function labels `hotfunctions.test-functions=<project>`; the
//! [`Cluster`] guard removes the project and images, pass or fail, and
//! anything left with the function label is removed at the end too.

// Tests read the clock for deadlines.
#![allow(clippy::disallowed_methods)]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::compose::{docker, Cluster};
use support::get;

/// The override file that selects the Docker runtime.
const DOCKER_RUNTIME: &str = "deploy/compose/docker-compose.docker-runtime.yml";

/// Ids of the containers (`ps`), images with their build's intermediate
/// layers (`images`), or tagged images (`tagged`) with `label`.
fn labelled(what: &str, label: &str) -> Vec<String> {
    let args: &[&str] = match what {
        "ps" => &["ps", "-a", "-q", "--filter"],
        "tagged" => &["images", "-q", "--filter"],
        _ => &["images", "-a", "-q", "--filter"],
    };
    let out = docker(&[args, &[&format!("label={label}")]].concat());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Removes whatever is left with `label` (only on failure: the test's
/// assertion says what it was).
struct RemoveLabelled(String);

impl Drop for RemoveLabelled {
    fn drop(&mut self) {
        for id in labelled("ps", &self.0) {
            let _ = Command::new("docker").args(["rm", "-f", &id]).output();
        }
        for id in labelled("images", &self.0) {
            let _ = Command::new("docker").args(["rmi", "-f", &id]).output();
        }
    }
}

/// `cluster` with the Docker runtime's override and a function label of
/// its own, and a guard that drops it in this order: the project goes down
/// (the workers remove what they made), then whatever is left with the
/// label.
fn with_docker_runtime(mut cluster: Cluster) -> ((Cluster, RemoveLabelled), String) {
    let label = format!("hotfunctions.test-functions={}", cluster.project);
    cluster.overrides.push(DOCKER_RUNTIME.to_string());
    cluster
        .env
        .push(("HF_FUNCTION_LABEL".into(), label.clone()));
    ((cluster, RemoveLabelled(label.clone())), label)
}

#[test]
fn compose_workers_run_functions_as_sibling_containers_and_leave_nothing() {
    let cluster = Cluster::build("dockerrt", &[("HF_USING_REST_MODE", "true")]);
    let (owned, label) = with_docker_runtime(cluster);
    let cluster = &owned.0;

    cluster.scale(2);
    cluster.wait_online(2);

    // Two functions, each called on both workers (round robin: A B A B).
    let mut nodes = std::collections::BTreeSet::new();
    for function in ["W1", "T1", "T1", "W1"] {
        let (status, body) = get(cluster.port, &format!("/execute?name={function}"));
        assert_eq!(status, 200, "{function}: {body}");
        let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
        nodes.insert(
            reply["LoadBalancingInfo"]["WorkerNodeUrl"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        let meta = &reply["Meta"];
        let image = meta["ImageName"].as_str().unwrap();
        let container = meta["ContainerName"].as_str().unwrap();
        // The Docker runtime's names: `hotfunctions-<worker>-<function>`
        // images tagged with its instance id, and containers named after
        // them; the engine holds the image, with the test's label.
        let lower = function.to_ascii_lowercase();
        assert!(
            image.starts_with("hotfunctions-") && image.contains(&format!("-{lower}:")),
            "{function}: {meta}"
        );
        assert!(
            container.starts_with("hotfunctions-") && container.contains(&format!("-{lower}-")),
            "{function}: {meta}"
        );
        let inspected = docker(&[
            "image",
            "inspect",
            "--format",
            "{{ index .Config.Labels \"hotfunctions.test-functions\" }}",
            image,
        ]);
        assert_eq!(
            String::from_utf8_lossy(&inspected.stdout).trim(),
            cluster.project,
            "{function}: image {image}"
        );
    }
    assert_eq!(nodes.len(), 2, "both workers served calls: {nodes:?}");
    // Each worker built an image of each function (cached: the REST
    // instances may have expired by now, the images stay).
    assert_eq!(labelled("tagged", &label).len(), 4);

    // `down` stops the workers (SIGTERM): each removes what it created.
    cluster.compose(&["down", "--timeout", "60"]);
    assert_eq!(
        labelled("ps", &label),
        Vec::<String>::new(),
        "containers left"
    );
    assert_eq!(
        labelled("images", &label),
        Vec::<String>::new(),
        "images left"
    );
}

/// The cgroup (v1) path of `pid` in the hierarchy that holds `controller`,
/// from `/proc/<pid>/cgroup`.
fn cgroup_of(pid: &str, controller: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    text.lines()
        .find_map(|l| {
            let mut p = l.splitn(3, ':');
            let (_, controllers, path) = (p.next()?, p.next()?, p.next()?);
            controllers
                .split(',')
                .any(|c| c == controller)
                .then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("no {controller} cgroup for pid {pid}: {text}"))
}

/// A file of `cgroup` in the v1 hierarchy of `controller` (mounted at
/// /sys/fs/cgroup/<controller>, alone or with its pair).
fn cgroup_file(controller: &str, cgroup: &str, file: &str) -> String {
    let mounts = [
        format!("/sys/fs/cgroup/{controller}"),
        "/sys/fs/cgroup/cpu,cpuacct".to_string(),
    ];
    let path = mounts
        .iter()
        .map(|m| format!("{m}{cgroup}/{file}"))
        .find(|p| std::path::Path::new(p).is_file())
        .unwrap_or_else(|| panic!("{file} of {cgroup} ({controller}) not found"));
    std::fs::read_to_string(&path).unwrap().trim().to_string()
}

/// `docker inspect --format FORMAT ID`, trimmed.
fn inspect(format: &str, id: &str) -> String {
    let out = docker(&["inspect", "--format", format, id]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_compose_workers_cpus_and_mem_limit_bound_its_function_containers() {
    // cgroup v1 with the cgroupfs driver is what `auto` supports (and what
    // this project's machines run); the worker refuses to start elsewhere.
    let engine = docker(&["info", "--format", "{{.CgroupDriver}} {{.CgroupVersion}}"]);
    assert_eq!(
        String::from_utf8_lossy(&engine.stdout).trim(),
        "cgroupfs 1",
        "this test needs an engine with the cgroupfs driver on cgroup v1"
    );
    let cluster = Cluster::build(
        "cgroup",
        &[
            ("HF_USING_REST_MODE", "true"),
            // Full-length calls: W6, W8, W10, W11 spin 1 s of CPU each (on
            // the reference core).
            ("HF_TIME_SCALE", "1.0"),
            ("HF_WORKER_CPUS", "0.5"),
            ("HF_WORKER_MEMORY", "512m"),
        ],
    );
    let (owned, label) = with_docker_runtime(cluster);
    let cluster = &owned.0;
    cluster.scale(1);
    cluster.wait_online(1);

    let worker = cluster.containers("worker").remove(0);
    let worker_pid = inspect("{{.State.Pid}}", &worker);
    let node = cgroup_of(&worker_pid, "cpu");
    assert!(node.ends_with(&worker), "the worker's cgroup {node}");
    assert_eq!(cgroup_of(&worker_pid, "memory"), node);
    // The node's cgroup holds its limits: 0.5 CPU, 512 MiB, hierarchical.
    let period: u64 = cgroup_file("cpu", &node, "cpu.cfs_period_us")
        .parse()
        .unwrap();
    let quota: u64 = cgroup_file("cpu", &node, "cpu.cfs_quota_us")
        .parse()
        .unwrap();
    assert_eq!(quota * 2, period, "quota {quota} per {period} us");
    assert_eq!(
        cgroup_file("memory", &node, "memory.limit_in_bytes"),
        (512u64 << 20).to_string()
    );
    assert_eq!(cgroup_file("memory", &node, "memory.use_hierarchy"), "1");

    let usage = || -> u64 {
        cgroup_file("cpuacct", &node, "cpuacct.usage")
            .parse()
            .unwrap()
    };
    let functions = ["W6", "W8", "W10", "W11"];
    let (u0, t0) = (usage(), Instant::now());
    let port = cluster.port;
    let calls: Vec<_> = functions
        .into_iter()
        .map(|f| std::thread::spawn(move || get(port, &format!("/execute?name={f}"))))
        .collect();

    // While they run: each function container is under the node's cgroup
    // (checked as soon as it runs; REST-mode containers outlive their call
    // by 10 s).
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut checked = std::collections::BTreeSet::new();
    while checked.len() < functions.len() {
        // The running REST-mode containers (one per function).
        let out = docker(&[
            "ps",
            "-q",
            "--filter",
            &format!("label={label}"),
            "--filter",
            "label=hotfunctions.kind=rest",
        ]);
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if checked.contains(id) {
                continue;
            }
            // (It may have gone since: then it is not checked.)
            let Some((parent, pid)) = Command::new("docker")
                .args(["inspect", "--format"])
                .arg("{{.HostConfig.CgroupParent}} {{.State.Pid}}")
                .arg(id)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| {
                    let text = String::from_utf8_lossy(&o.stdout).into_owned();
                    let (parent, pid) = text.trim().split_once(' ')?;
                    Some((parent.to_string(), pid.to_string()))
                })
                .filter(|(_, pid)| pid != "0")
            else {
                continue;
            };
            assert_eq!(parent, node, "{id}");
            for controller in ["cpu", "cpuacct", "memory"] {
                let cgroup = cgroup_of(&pid, controller);
                assert!(
                    cgroup.starts_with(&format!("{node}/")),
                    "function container {id}: {controller} cgroup {cgroup}, not under {node}"
                );
            }
            checked.insert(id.to_string());
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} function containers seen running",
            checked.len(),
            functions.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    for call in calls {
        let (status, body) = call.join().unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let (used, elapsed) = (Duration::from_nanos(usage() - u0), t0.elapsed());
    let throttled = cgroup_file("cpu", &node, "cpu.stat");
    eprintln!(
        "node cgroup {node}: {:.2} s of CPU in {:.2} s ({:.2} cores); cpu.stat: {}",
        used.as_secs_f64(),
        elapsed.as_secs_f64(),
        used.as_secs_f64() / elapsed.as_secs_f64(),
        throttled.replace('\n', ", ")
    );
    // The functions' CPU is counted in the node's cgroup (four calls of
    // 1 s of CPU on the reference core: well over 1 s on any machine of
    // this project) ...
    assert!(used > Duration::from_secs(1), "{used:?}");
    // ... and stays within the node's half core, plus one period of slack.
    let bound = elapsed.mul_f64(0.5) + Duration::from_micros(period);
    assert!(
        used <= bound,
        "{used:?} of CPU in {elapsed:?}: over 0.5 core"
    );

    cluster.compose(&["down", "--timeout", "60"]);
    assert_eq!(
        labelled("ps", &label),
        Vec::<String>::new(),
        "containers left"
    );
}
