//! The Docker runtime against the real engine (no fakes): images built
//! `FROM scratch`, pooled and REST-mode containers, clear errors, clean-up
//! by label, and an engine outage survived without a restart. (Every
//! function through the worker: `docker_worker.rs`.)
//!
//! These tests FAIL (never skip) when no engine answers: CI guarantees one.
//! They build the static `hf-fn` first (scripts/build-static-hf-fn.sh).

// Tests read the clock for deadlines.
#![allow(clippy::disallowed_methods)]

#[path = "docker_support.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use futures_util::stream::{self, StreamExt};
use support::{engine, static_hf_fn, EngineRelay, LabelScope, TEST_LABEL};
use worker_front::runtime::docker::{DockerRuntime, DockerSettings};
use worker_front::runtime::{InstanceKind, Runtime, RuntimeError, RuntimeOptions};

/// Time scale of the functions in these tests: D1 (131 s at 1.0) takes 1.3 s.
const TIME_SCALE: f64 = 0.01;

fn runtime(scope: &LabelScope, settings: DockerSettings) -> DockerRuntime {
    let mut settings = settings;
    settings
        .extra_labels
        .insert(TEST_LABEL.into(), scope.worker_id.clone());
    DockerRuntime::with_settings(
        RuntimeOptions {
            worker_id: scope.worker_id.clone(),
            fn_binary: static_hf_fn(),
            time_scale: TIME_SCALE,
            package_scale: 1.0,
            work_dir: scope.work_dir(),
        },
        settings,
    )
    .expect("runtime")
}

fn spec(name: &str) -> &'static sample_functions::FunctionSpec {
    sample_functions::catalog().get(name).expect("in catalog")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_instances_serve_calls_and_are_removed() {
    let docker = engine().await;
    let scope = LabelScope::new("warm");
    let rt = runtime(&scope, DockerSettings::default());
    let image = rt.build_image(spec("W4")).await.expect("build W4");
    assert!(rt.image_exists("W4").await.unwrap());

    // A pool member: started ahead of time, invoked once.
    let pooled = rt
        .start_instance(&image, InstanceKind::Pooled)
        .await
        .expect("pooled instance");
    let call = rt.invoke(&pooled).await.expect("pooled call");
    assert_eq!(call.output.result.status_code, 200);
    assert_eq!(call.instance_name, pooled.name);

    // A REST-mode instance serves many calls, also concurrently.
    let rest = rt
        .start_instance(&image, InstanceKind::Rest)
        .await
        .expect("REST instance");
    let calls: Vec<_> = stream::iter(0..6)
        .map(|_| rt.invoke(&rest))
        .buffer_unordered(3)
        .collect()
        .await;
    for c in calls {
        let c = c.expect("REST call");
        assert_eq!(c.output.result.status_code, 200);
        assert_eq!(c.instance_name, rest.name);
        assert!(c.output.end_time >= c.output.start_time);
    }
    let mut listed = rt.list_own_instances().await.unwrap();
    listed.sort_by_key(|i| i.kind.label());
    let kinds: Vec<InstanceKind> = listed.iter().map(|i| i.kind).collect();
    assert_eq!(kinds, vec![InstanceKind::Pooled, InstanceKind::Rest]);
    assert!(listed.iter().all(|i| i.function == "W4"));

    // A second runtime with the same worker id (another worker, or this
    // one restarted) owns none of them, and its clean-up leaves them be.
    let again = runtime(&scope, DockerSettings::default());
    assert!(again.list_own_instances().await.unwrap().is_empty());
    assert!(again.list_own_images().await.unwrap().is_empty());
    again.shutdown().await.unwrap();
    assert_eq!(rt.list_own_instances().await.unwrap().len(), 2);
    assert_eq!(
        rt.invoke(&rest).await.unwrap().output.result.status_code,
        200
    );

    rt.remove_instance(&pooled).await.unwrap();
    rt.remove_instance(&rest).await.unwrap();
    rt.remove_instance(&rest)
        .await
        .expect("removing twice is fine");
    assert!(rt.invoke(&rest).await.is_err());
    assert!(scope.containers(&docker).await.is_empty());

    // The image really leaves the engine.
    rt.remove_image(&image).await.unwrap();
    assert!(!rt.image_exists("W4").await.unwrap());
    rt.remove_image(&image)
        .await
        .expect("removing twice is fine");
    scope.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_clear_errors() {
    let _docker = engine().await;
    let scope = LabelScope::new("fail");
    let rt = runtime(&scope, DockerSettings::default());
    // An image that is not (or no longer) there.
    let image = rt.build_image(spec("I3")).await.expect("build I3");
    rt.remove_image(&image).await.unwrap();
    let err = rt.run_once(&image).await.unwrap_err();
    assert_eq!(worker_front::http::runtime_status(&err), 500);
    assert!(err.to_string().contains("missing"), "{err}");

    // A dynamically linked hf-fn cannot run FROM scratch: refused up front.
    let dynamic = DockerRuntime::new(RuntimeOptions {
        worker_id: scope.worker_id.clone(),
        fn_binary: std::env::current_exe().unwrap(),
        time_scale: TIME_SCALE,
        package_scale: 1.0,
        work_dir: scope.work_dir(),
    })
    .unwrap();
    let err = dynamic.build_image(spec("I3")).await.unwrap_err();
    assert!(matches!(err, RuntimeError::Build { .. }), "{err:?}");
    assert!(err.to_string().contains("statically linked"), "{err}");
    let missing = DockerRuntime::new(RuntimeOptions {
        worker_id: scope.worker_id.clone(),
        fn_binary: PathBuf::from("/nonexistent/hf-fn"),
        time_scale: TIME_SCALE,
        package_scale: 1.0,
        work_dir: scope.work_dir(),
    })
    .unwrap();
    let err = missing.build_image(spec("I3")).await.unwrap_err();
    assert!(err.to_string().contains("build-static-hf-fn.sh"), "{err}");
    scope.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_outage_gives_unavailable_then_recovers_without_restart() {
    let _docker = engine().await;
    let scope = LabelScope::new("outage");
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("engine.sock");
    let mut relay = EngineRelay::new(socket);
    relay.start();
    let rt = runtime(
        &scope,
        DockerSettings {
            socket: Some(relay.url()),
            extra_labels: BTreeMap::new(),
            ..Default::default()
        },
    );
    let health = rt.health().await.expect("engine through the relay");
    assert!(health.engine.starts_with("Docker "), "{health:?}");
    let image = rt.build_image(spec("noop")).await.expect("build noop");

    relay.stop();
    let err = rt.run_once(&image).await.unwrap_err();
    assert!(matches!(err, RuntimeError::EngineUnavailable(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("Docker engine unreachable at {}", relay.url())),
        "{err}"
    );
    assert!(matches!(err, RuntimeError::EngineUnavailable(_)), "{err:?}");
    let health = rt.health().await.unwrap_err();
    assert_eq!(worker_front::http::runtime_status(&health), 503);

    relay.start();
    let call = rt
        .run_once(&image)
        .await
        .expect("works again after the outage");
    assert_eq!(call.output.result.status_code, 200);
    rt.shutdown().await.unwrap();
    relay.stop();
    scope.assert_clean().await;
}
