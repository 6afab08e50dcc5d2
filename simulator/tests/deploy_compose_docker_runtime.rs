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
//! Owned by the test: the images (`Cluster::build`), the compose project,
//! and the function label `hotfunctions.test-functions=<project>`; the
//! [`Cluster`] guard removes the project and images, pass or fail, and
//! anything left with the function label is removed at the end too.

// Tests read the clock for deadlines.
#![allow(clippy::disallowed_methods)]

mod support;

use std::process::Command;

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

#[test]
fn compose_workers_run_functions_as_sibling_containers_and_leave_nothing() {
    let mut cluster = Cluster::build("dockerrt", &[("HF_USING_REST_MODE", "true")]);
    let label = format!("hotfunctions.test-functions={}", cluster.project);
    let _leftovers = RemoveLabelled(label.clone());
    cluster.overrides.push(DOCKER_RUNTIME.to_string());
    cluster
        .env
        .push(("HF_FUNCTION_LABEL".into(), label.clone()));

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
