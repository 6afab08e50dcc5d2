//! Users' own functions on the real `worker-front` binary with the Docker
//! runtime, on the real engine (issue 14 §2, §3, §4): a static native
//! function and a Glambdar Node.js function (a zip of only `index.js`) are
//! deployed, built into images `FROM scratch` (Node.js on a runtime image
//! made from the host's `node` and its libraries), called in their
//! containers, inspected (`/info`, `/logs`), redeployed (the new version
//! served, the old one's container and image gone); a dynamically linked
//! executable and a one-shot function are refused with a 400 naming the
//! problem while the previous version keeps serving; a delete leaves no
//! container, no image and no file of the function, and the worker's stop
//! leaves nothing at all.
//!
//! Everything the worker makes carries its worker id (the test's
//! [`support::LabelScope`]), which removes it by label when dropped (also
//! when the test fails); the worker process is killed by its guard.

// Tests read the clock for their deadlines.
#![allow(clippy::disallowed_methods)]

#[path = "docker_support.rs"]
mod support;
mod user_functions_support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use user_functions_support::*;

const NODE_ECHO: &str = r#"
exports.handler = async (req) => {
  console.error('greet called with ' + req.method);
  return {
    statusCode: 200,
    headers: { 'x-node': 'yes' },
    body: { method: req.method, query: req.query, got: req.body, node: process.version },
  };
};
"#;

/// Entries of the data dir's `code/` of `function`.
fn code_dirs_of(data: &Path, function: &str) -> Vec<String> {
    std::fs::read_dir(data.join("code"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("{function}.")))
                .collect()
        })
        .unwrap_or_default()
}

/// What each test opens with: the engine, a label scope (its worker id),
/// the worker's directories, the static `hf-fn` and the static user
/// function. Dropped after the test's workers (declared before them):
/// the scope then removes what they left by label.
struct Setup {
    static_fn: Vec<u8>,
    hf_fn: PathBuf,
    dirs: Dirs,
    scope: support::LabelScope,
    docker: bollard::Docker,
}

impl Setup {
    async fn new(test: &str) -> Self {
        let docker = support::engine().await;
        Self {
            scope: support::LabelScope::new(test),
            dirs: Dirs::new(),
            hf_fn: support::static_hf_fn(),
            static_fn: std::fs::read(static_user_fn()).unwrap(),
            docker,
        }
    }

    /// The worker's flags of these tests (REST mode is the support's).
    fn flags(&self) -> Vec<&str> {
        vec![
            "--runtime",
            "docker",
            "--worker-id",
            &self.scope.worker_id,
            "--fn-binary",
            self.hf_fn.to_str().unwrap(),
            // Warm instances outlive the Node.js runtime image's build.
            "--rest-container-life-time",
            "600",
        ]
    }

    /// A worker with [`Setup::flags`] on the test's directories.
    fn start(&self) -> Worker {
        try_start_with(&self.dirs.data(), &self.dirs.work(), &self.flags())
            .expect("worker did not start")
    }

    /// Asserts that nothing labelled with the test's worker id is left.
    async fn nothing_left(&self) {
        let (containers, images) = (
            self.scope.containers(&self.docker).await,
            self.scope.images(&self.docker).await,
        );
        assert!(
            containers.is_empty() && images.is_empty(),
            "left behind: containers {containers:?}, images {images:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_functions_run_in_containers_and_leave_nothing_behind() {
    let setup = Setup::new("userfn").await;
    let Setup {
        docker,
        scope,
        dirs,
        static_fn,
        ..
    } = &setup;
    let w = setup.start();

    // A static native function: built into a FROM scratch image, called in
    // its container (pid 1 there).
    let (s, v) = w
        .deploy("echo.zip", &native_zip_of(static_fn, "v1"), None, None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["Version"], 1);
    let r = w
        .client
        .post(format!("{}/invoke/echo/some/path?x=1", w.base))
        .header("x-test", "abc")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["label"], "v1");
    assert_eq!(
        (body["path"].as_str(), body["query"].as_str()),
        (Some("/some/path"), Some("x=1"))
    );
    assert_eq!(body["body"], "hello");
    assert_eq!(body["test"], "abc");
    assert_eq!(body["pid"], 1, "it runs as a container's first process");
    assert_eq!(
        scope.objects_of(docker, "echo", false).await,
        (1, 1),
        "one warm container and one image of echo"
    );
    let (s, h, _) = w.call("echo", "?status=201").await;
    assert_eq!(s, 201);
    let meta: serde_json::Value = serde_json::from_str(h["x-meta"].to_str().unwrap()).unwrap();
    assert_eq!(meta["UsingExistingRestContainer"], true, "warm: {meta}");

    // A Glambdar function: the Node.js runtime image from the host's node.
    let (s, v) = w
        .deploy("greet.zip", &glambdar_zip(NODE_ECHO), None, None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["Runtime"], "node");
    let r = w
        .client
        .put(format!("{}/invoke/greet?who=me", w.base))
        .header("content-type", "application/json")
        .body(r#"{"a": 1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-node"], "yes");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["got"]["a"], 1, "{body}");
    assert_eq!(body["query"]["who"], "me");
    assert_eq!(body["method"], "PUT");
    assert!(body["node"].as_str().unwrap().starts_with('v'), "{body}");

    // /info and /logs.
    let (s, info) = w.json("GET", "/info/echo", None).await;
    assert_eq!(s, 200, "{info}");
    assert_eq!(
        (info["Version"].as_u64(), info["Calls"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(info["Warm"], true);
    let (s, logs) = w.json("GET", "/logs/greet", None).await;
    assert_eq!(s, 200, "{logs}");
    let last = &logs["Logs"][0];
    assert_eq!(last["Status"], 200, "{logs}");
    assert_eq!(last["Node"], scope.worker_id.as_str());
    // What it wrote to stderr reaches the log of a call (the container's
    // output stream may trail its reply: a later call's row holds it then).
    support::eventually(
        "the function's stderr in its log",
        Duration::from_secs(30),
        || async {
            let (_, logs) = w.json("GET", "/logs/greet", None).await;
            let found = logs["Logs"].as_array().unwrap().iter().any(|row| {
                row["Output"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("greet called with")
            });
            if !found {
                assert_eq!(w.call("greet", "").await.0, 200);
            }
            found
        },
    )
    .await;

    // A redeploy: the new version serves; the old one's container and
    // image go.
    let (s, v) = w
        .deploy("echo.zip", &native_zip_of(static_fn, "v2"), None, None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["Version"].as_u64(), v["Replaced"].as_u64()),
        (Some(2), Some(1))
    );
    let (s, h, text) = w.call("echo", "").await;
    assert_eq!(s, 200, "{text}");
    assert_eq!(h["x-function-version"], "2");
    assert!(text.contains("\"label\":\"v2\""), "{text}");
    support::eventually(
        "the old version's container and image removed",
        Duration::from_secs(60),
        || async { scope.objects_of(docker, "echo", false).await == (1, 1) },
    )
    .await;
    assert_eq!(code_dirs_of(&dirs.data(), "echo").len(), 1);

    // A dynamically linked executable: refused, naming the problem; v2
    // keeps serving.
    let (s, v) = w
        .deploy(
            "echo.zip",
            &native_zip_of(&user_fn_binary(), "dyn"),
            None,
            None,
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let message = v.to_string();
    assert!(
        message.contains("not a statically linked") && message.contains("interpreter"),
        "{message}"
    );
    // A one-shot function: refused under Docker.
    let oneshot = zip_of(&[
        Entry::File(
            "hf-function.json",
            br#"{"runtime": "oneshot", "entry": "fn"}"#,
            0o644,
        ),
        Entry::File("fn", static_fn, 0o755),
    ]);
    let (s, v) = w.deploy("once.zip", &oneshot, None, None).await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("one-shot"), "{v}");
    let (s, h, text) = w.call("echo", "").await;
    assert_eq!(s, 200, "{text}");
    assert_eq!(h["x-function-version"], "2", "the previous version serves");

    // A delete: nothing of the function on the engine or the disk.
    let (s, v) = w.json("DELETE", "/del/echo", None).await;
    assert_eq!(s, 200, "{v}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while scope.objects_of(docker, "echo", true).await != (0, 0) {
        if std::time::Instant::now() > deadline {
            let filters = HashMap::from([(
                "label".to_string(),
                vec!["hotfunctions.function=echo".to_string()],
            )]);
            let c = docker
                .list_containers(Some(bollard::container::ListContainersOptions {
                    all: true,
                    filters: filters.clone(),
                    ..Default::default()
                }))
                .await
                .unwrap();
            let i = docker
                .list_images(Some(bollard::image::ListImagesOptions {
                    all: true,
                    filters,
                    ..Default::default()
                }))
                .await
                .unwrap();
            panic!("echo's objects left after its delete: containers {c:?}, images {i:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(code_dirs_of(&dirs.data(), "echo").is_empty());
    let (s, _, _) = w.call("echo", "").await;
    assert_eq!(s, 404);
    let (s, h, _) = w.call("greet", "").await;
    assert_eq!((s, &h["x-node"]), (200, &"yes".parse().unwrap()));

    // The worker's stop: no container and no image of it at all.
    w.stop();
    setup.nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_docker_worker_runs_every_function_of_its_data_dir_and_leaves_nothing() {
    let setup = Setup::new("userfn-restart").await;
    let Setup {
        docker,
        scope,
        static_fn,
        ..
    } = &setup;
    let w = setup.start();
    let (s, v) = w
        .deploy("echo.zip", &native_zip_of(static_fn, "e1"), None, None)
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = w
        .deploy("greet.zip", &glambdar_zip(NODE_ECHO), None, None)
        .await;
    assert_eq!(s, 200, "{v}");
    for name in ["echo", "greet"] {
        let (s, _, text) = w.call(name, "").await;
        assert_eq!(s, 200, "{name}: {text}");
    }
    w.stop();
    setup.nothing_left().await;

    // Restarted on the same data dir: both known, both run (their images
    // built again by their first calls), then nothing left again.
    for round in 0..2 {
        let w = setup.start();
        let (s, info) = w.json("GET", "/info", None).await;
        assert_eq!((s, info["Count"].as_u64()), (200, Some(2)), "{info}");
        let (s, h, text) = w.call("echo", "").await;
        assert_eq!(s, 200, "round {round}: {text}");
        assert!(text.contains("\"label\":\"e1\""), "{text}");
        let meta: serde_json::Value = serde_json::from_str(h["x-meta"].to_str().unwrap()).unwrap();
        assert_eq!(meta["ImageBuilt"], true, "its image is built again: {meta}");
        let (s, h, text) = w.call("greet", "?who=again").await;
        assert_eq!(s, 200, "round {round}: {text}");
        assert_eq!(h["x-node"], "yes");
        assert_eq!(scope.objects_of(docker, "echo", false).await, (1, 1));
        w.stop();
        setup.nothing_left().await;
    }
}

/// The node model's image cache with the Docker runtime (issue 14 §2, as
/// `user_functions_node.rs` checks it with processes): a cache with room
/// for one user function's package evicts the least recently used one
/// when another enters, and the engine loses its container and its image;
/// its next call builds the image again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_too_small_for_two_docker_user_functions_removes_the_older_image() {
    let setup = Setup::new("userfn-evict").await;
    let Setup {
        docker,
        scope,
        static_fn,
        ..
    } = &setup;
    let w = setup.start();
    let (s, v) = w
        .deploy("a.zip", &native_zip_of(static_fn, "a"), None, None)
        .await;
    assert_eq!(s, 200, "{v}");
    let bytes = v["UnpackedBytes"].as_u64().unwrap();
    // Room for one package, not two.
    let (s, v) = w
        .json(
            "GET",
            &format!("/configure?user_code_size_limit={}", bytes * 3 / 2),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, _, text) = w.call("a", "").await;
    assert_eq!(s, 200, "{text}");
    assert_eq!(
        scope.objects_of(docker, "a", false).await,
        (1, 1),
        "a's warm container and image"
    );

    // b enters the cache: a (least recently used, idle) leaves it, with
    // its container and its image.
    let (s, v) = w
        .deploy("b.zip", &native_zip_of(static_fn, "b"), None, None)
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, _, text) = w.call("b", "").await;
    assert_eq!(s, 200, "{text}");
    support::eventually(
        "a's container and image removed from the engine",
        Duration::from_secs(60),
        || async { scope.objects_of(docker, "a", false).await == (0, 0) },
    )
    .await;
    assert_eq!(scope.objects_of(docker, "b", false).await, (1, 1));
    let (_, h) = w.json("GET", "/health", None).await;
    let h = &h["Worker"];
    assert_eq!(h["Images"].as_u64(), Some(1), "{h}");
    assert!(h["ImageEvictions"].as_u64().unwrap() >= 1, "{h}");

    // a again: its image is built again, and b's goes in turn.
    let (meta, _) = w.call_ok("a").await;
    assert_eq!(meta["ImageBuilt"], true, "a was evicted: {meta}");
    support::eventually(
        "b's container and image removed from the engine",
        Duration::from_secs(60),
        || async { scope.objects_of(docker, "b", false).await == (0, 0) },
    )
    .await;
    assert_eq!(scope.objects_of(docker, "a", false).await, (1, 1));

    w.stop();
    setup.nothing_left().await;
}
