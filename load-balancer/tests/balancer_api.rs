//! The balancer's HTTP API against real stub workers: reply fields,
//! `/configure`, `/clear`, `/prepare`, node management, fake mode and every
//! error code.

mod support;

use std::sync::Arc;

use load_balancer::BalancerConfig;
use policy::scheduler::ParamSet;
use protocol::BalancerReply;
use support::{calls_in_flight, client, config, dead_url, wait_for, Balancer, StubWorker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_carry_the_worker_reply_and_every_load_balancing_field() {
    let a = StubWorker::start("s0", &["--delay-ms", "20"]);
    let b = StubWorker::start("s1", &["--delay-ms", "20"]);
    let balancer = Balancer::start(config("rr", &[&a, &b]));
    for (call, stub) in [(0u32, &a), (1, &b), (2, &a)] {
        let response = balancer.get("/execute?name=W1").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        let text = response.text().await.unwrap();
        let reply: BalancerReply = serde_json::from_str(&text).unwrap();
        let info = &reply.load_balancing_info;
        assert_eq!(info.worker_node_id, i64::from(call % 2), "{text}");
        assert_eq!(info.worker_node_url, stub.url);
        assert_eq!(info.algorithm, "rr");
        assert!(
            info.algorithm_latency.is_finite() && info.algorithm_latency >= 0.0,
            "{text}"
        );
        // The worker's part is passed through untouched.
        assert_eq!(reply.worker.result.status_code, 200);
        assert_eq!(reply.worker.result.body, "W1 done");
        assert_eq!(reply.worker.internal_execution_time, 20);
        assert!(reply.worker.execution_time >= 20, "{text}");
        assert_eq!(reply.worker.meta.container_name, format!("{}-W1", stub.id));
        assert_eq!(
            reply.worker.meta.image_built,
            call < 2,
            "first call per stub is cold"
        );
        assert_eq!(reply.worker.meta.using_existing_rest_container, call >= 2);
        // Field order as the original: worker fields, then LoadBalancingInfo.
        assert!(text.starts_with(r#"{"Result":"#), "{text}");
        assert!(
            text.contains(r#"},"LoadBalancingInfo":{"WorkerNodeId":"#),
            "{text}"
        );
        // AlgorithmLatency is a float number, in ms.
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(
            v["LoadBalancingInfo"]["AlgorithmLatency"].is_f64(),
            "{text}"
        );
    }
    // Names are passed on percent-encoded.
    let (status, reply) = balancer.execute("a%20b%26c").await;
    assert_eq!(status, 200);
    assert_eq!(reply["Result"]["body"], "a b&c done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configure_switches_the_algorithm_and_forwards_the_rest() {
    let a = StubWorker::start("s0", &[]);
    let b = StubWorker::start("s1", &[]);
    let balancer = Balancer::start(config("rr", &[&a, &b]));

    let response = balancer.get("/configure?lb=ll&image_limit=3").await;
    assert_eq!(response.status(), 200);
    let reply: serde_json::Value = response.json().await.unwrap();
    let object = reply.as_object().unwrap();
    assert_eq!(object.len(), 3, "{reply}");
    assert_eq!(reply["lb"], "ll");
    for stub in [&a, &b] {
        assert_eq!(reply[&stub.url]["Id"], stub.id, "{reply}");
        assert_eq!(reply[&stub.url]["State"]["image_limit"], "3");
        assert_eq!(
            stub.stats().await["configure"],
            serde_json::json!(["image_limit=3"])
        );
    }
    // ll now decides: idle nodes, always the first.
    for _ in 0..4 {
        let (_, r) = balancer.execute("W1").await;
        assert_eq!(r["LoadBalancingInfo"]["Algorithm"], "ll");
        assert_eq!(r["LoadBalancingInfo"]["WorkerNodeId"], 0);
    }
    let (_, status) = balancer.get_json("/status").await;
    assert_eq!(status["algorithm"], "ll");

    // The alias is accepted and reported by its canonical name.
    let (code, reply) = balancer.get_json("/configure?lb=hash").await;
    assert_eq!((code, reply["lb"].clone()), (200, "ch".into()));
    let (_, r) = balancer.execute("W1").await;
    assert_eq!(r["LoadBalancingInfo"]["Algorithm"], "ch");

    // Without lb the algorithm stays; the query still reaches the workers.
    let (code, reply) = balancer.get_json("/configure?container_pool_num=2").await;
    assert_eq!((code, reply["lb"].clone()), (200, "ch".into()));
    assert_eq!(reply[&a.url]["State"]["container_pool_num"], "2");

    // An unknown algorithm is a 400 and changes nothing.
    let (code, reply) = balancer.get_json("/configure?lb=nope").await;
    assert_eq!(code, 400);
    assert_eq!(reply["Error"], true);
    assert!(
        reply["Message"].as_str().unwrap().contains("nope"),
        "{reply}"
    );
    let (_, status) = balancer.get_json("/status").await;
    assert_eq!(status["algorithm"], "ch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_and_prepare_reach_every_worker() {
    let a = StubWorker::start("s0", &[]);
    let b = StubWorker::start("s1", &[]);
    let mut cfg = config("rr", &[&a, &b]);
    let dead = dead_url();
    cfg.nodes.push(dead.url.clone());
    let balancer = Balancer::start(cfg);
    for route in ["clear", "prepare"] {
        // The dead node is online until a health check says otherwise:
        // the route fails on it, and says so.
        let (status, reply) = balancer.get_json(&format!("/{route}")).await;
        assert_eq!(status, 502, "{reply}");
        assert_eq!(reply["Error"], true, "{reply}");
        let nodes = reply["nodes"].as_array().unwrap();
        let by_url = |url: &str| nodes.iter().find(|n| n["url"] == url).unwrap().clone();
        for stub in [&a, &b] {
            assert_eq!(by_url(&stub.url)["ok"], true, "{reply}");
            assert_eq!(stub.stats().await[route], 1, "{route} on {}", stub.id);
        }
        assert_eq!(by_url(&dead.url)["ok"], false, "{reply}");
        assert!(by_url(&dead.url)["error"].is_string(), "{reply}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_are_added_and_removed_at_run_time() {
    let a = StubWorker::start("s0", &[]);
    let c = StubWorker::start("s2", &[]);
    // No health check after the first: an added node stays offline.
    let balancer = Balancer::start(config("rr", &[&a]));
    let http = client();
    let nodes_url = format!("{}/1/lb/nodes", balancer.url);

    let added = http
        .put(&nodes_url)
        .body(format!(r#"{{"node": "{}"}}"#, c.url))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 200);
    assert_eq!(
        added.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"msg": "node added"})
    );
    let states = balancer.node_states().await;
    assert_eq!(states[&a.url], "online");
    assert_eq!(states[&c.url], "offline");
    for _ in 0..4 {
        assert_eq!(
            balancer.execute_node("W1").await,
            0,
            "offline node got a call"
        );
    }
    // Duplicates and bad bodies are refused.
    let again = http
        .put(&nodes_url)
        .body(format!(r#"{{"node": "{}"}}"#, c.url))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    for body in ["{}", "nope", r#"{"node": "not a url"}"#] {
        let r = http.put(&nodes_url).body(body).send().await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let e: serde_json::Value = r.json().await.unwrap();
        assert_eq!(e["Error"], true);
    }

    let deleted = http
        .delete(&nodes_url)
        .body(format!(r#"{{"node": "{}"}}"#, a.url))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    assert_eq!(
        deleted.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"msg": "node deleted"})
    );
    assert!(!balancer.node_states().await.contains_key(&a.url));
    // Only the offline node is left: no node to serve.
    let (status, _) = balancer.execute("W1").await;
    assert_eq!(status, 503);
    let missing = http
        .delete(&nodes_url)
        .body(format!(r#"{{"node": "{}"}}"#, a.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_node_comes_online_after_a_passing_check_and_gets_calls() {
    let a = StubWorker::start("s0", &[]);
    let c = StubWorker::start("s1", &[]);
    let mut cfg = config("rr", &[&a]);
    cfg.health.interval_ms = 200;
    let balancer = Balancer::start(cfg);
    let r = client()
        .put(format!("{}/1/lb/nodes", balancer.url))
        .body(format!(r#"{{"node": "{}/"}}"#, c.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_for("the added node online", || async {
        balancer.node_states().await[&c.url] == "online"
    })
    .await;
    let (_, status) = balancer.get_json("/status").await;
    assert_eq!(status["nodes"][1]["id"], 1, "next id: {status}");
    let mut served = Vec::new();
    for _ in 0..4 {
        let (_, reply) = balancer.execute("W1").await;
        served.push(reply["Meta"]["ContainerName"].as_str().unwrap().to_string());
    }
    assert!(served.contains(&"s1-W1".to_string()), "{served:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_400_404_and_405() {
    let a = StubWorker::start("s0", &[]);
    let balancer = Balancer::start(config("rr", &[&a]));
    for (path, code, message) in [
        ("/execute", 400, "param 'name' is not given"),
        ("/execute?name=", 400, "param 'name' is not given"),
        ("/execute?other=W1", 400, "param 'name' is not given"),
        ("/nope", 404, "404 Not found on given path"),
        ("/", 404, "404 Not found on given path"),
    ] {
        let (status, reply) = balancer.get_json(path).await;
        assert_eq!(status, code, "{path}: {reply}");
        assert_eq!(
            reply,
            serde_json::json!({"Error": true, "Message": message}),
            "{path}"
        );
    }
    let r = client()
        .post(format!("{}/execute?name=W1", balancer.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["Error"], true);
    assert_eq!(a.stats().await["execute"], serde_json::json!({}));
}

/// ch with T=1 over two nodes: two slow calls fill both, the third finds
/// every node at its bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bounded_node_full_is_503() {
    let a = StubWorker::start("s0", &["--delay", "slow=5000"]);
    let b = StubWorker::start("s1", &["--delay", "slow=5000"]);
    let mut cfg = config("ch", &[&a, &b]);
    cfg.params.set("T", "1").unwrap();
    let balancer = Arc::new(Balancer::start(cfg));
    let calls = calls_in_flight(&balancer, "slow", 2).await;
    let (status, reply) = balancer.execute("W1").await;
    assert_eq!(status, 503, "{reply}");
    assert_eq!(reply["Error"], true);
    assert!(
        reply["Message"].as_str().unwrap().contains("load bound"),
        "{reply}"
    );
    for call in calls {
        assert_eq!(call.await.unwrap().0, 200);
    }
    // Completions free the nodes again.
    assert_eq!(balancer.execute("W1").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_worker_is_retried_once_on_the_next_choice() {
    let live = StubWorker::start("s1", &[]);
    let dead = dead_url();
    let cfg = BalancerConfig {
        nodes: vec![dead.url.clone(), live.url.clone()],
        ..config("rr", &[])
    };
    let balancer = Balancer::start(cfg);
    // rr picks the dead node 0 first; the retry lands on node 1.
    let (status, reply) = balancer.execute("W1").await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["LoadBalancingInfo"]["WorkerNodeId"], 1);
    assert_eq!(reply["Meta"]["ContainerName"], "s1-W1");
    // The dead node is offline now and gets no more calls.
    assert_eq!(balancer.node_states().await[&dead.url], "offline");
    for _ in 0..3 {
        assert_eq!(balancer.execute_node("W1").await, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_after_the_retry_is_502_then_no_online_node_is_503() {
    let (d0, d1) = (dead_url(), dead_url());
    let cfg = BalancerConfig {
        nodes: vec![d0.url.clone(), d1.url.clone()],
        ..config("rr", &[])
    };
    let balancer = Balancer::start(cfg);
    let (status, reply) = balancer.execute("W1").await;
    assert_eq!(status, 502, "{reply}");
    assert_eq!(reply["Error"], true);
    let message = reply["Message"].as_str().unwrap();
    assert!(
        message.contains(&d0.url) && message.contains(&d1.url),
        "{message}"
    );
    let (status, reply) = balancer.execute("W1").await;
    assert_eq!(status, 503, "{reply}");
    assert_eq!(
        reply,
        serde_json::json!({"Error": true, "Message": "no online node"})
    );
}

/// A worker's own failure reply (a failed function) is passed through
/// with its status, and the call is still counted as finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_failure_replies_pass_through() {
    let a = StubWorker::start("s0", &["--fail", "BAD"]);
    let balancer = Balancer::start(config("ll", &[&a]));
    for _ in 0..3 {
        let (status, reply) = balancer.execute("BAD").await;
        assert_eq!(status, 500);
        assert_eq!(
            reply,
            serde_json::json!({"Error": true, "Message": "function BAD failed"})
        );
    }
    assert_eq!(balancer.loads().await, [(0, 0)]);
    assert_eq!(balancer.execute("W1").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_mode_answers_like_the_original_without_workers() {
    let cfg = BalancerConfig {
        algorithm: "rr".into(),
        fake_nodes: 3,
        fake_delay_ms: 30,
        threads: 2,
        ..Default::default()
    };
    let balancer = Balancer::start(cfg);
    for id in [0, 1, 2, 0] {
        let (status, reply) = balancer.execute("W1").await;
        assert_eq!(status, 200, "{reply}");
        assert_eq!(
            reply,
            serde_json::json!({
                "Result": {"statusCode": 0, "body": ""},
                "ExecutionTime": 30,
                "InternalExecutionTime": 30,
                "Meta": {"ImageBuilt": false, "UsingPooledContainer": false,
                         "UsingExistingRestContainer": false, "ContainerName": "", "ImageName": ""},
                "LoadBalancingInfo": {"WorkerNodeId": id, "WorkerNodeUrl": "", "Algorithm": "rr",
                                      "AlgorithmLatency": reply["LoadBalancingInfo"]["AlgorithmLatency"]},
            })
        );
    }
    // Calls overlap: 4 calls of 30 ms in flight at once all complete.
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let c = client();
            let url = format!("{}/execute?name=W2", balancer.url);
            tokio::spawn(async move { c.get(url).send().await.unwrap().status() })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
    let (_, status) = balancer.get_json("/status").await;
    assert!(
        status["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["load"] == 0),
        "{status}"
    );
    let r = client()
        .put(format!("{}/1/lb/nodes", balancer.url))
        .body(r#"{"node": "http://127.0.0.1:1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_status_report_the_run() {
    let a = StubWorker::start("s0", &[]);
    let mut cfg = config("tradeoff", &[&a]);
    cfg.params.set("seed", "1234").unwrap();
    cfg.params.set("ALPHA", "0.25").unwrap();
    let balancer = Balancer::start(cfg);
    let (code, health) = balancer.get_json("/health").await;
    assert_eq!((code, health), (200, serde_json::json!({"status": "ok"})));
    let (code, status) = balancer.get_json("/status").await;
    assert_eq!(code, 200);
    assert_eq!(status["algorithm"], "tradeoff");
    assert_eq!(status["seed"], 1234);
    assert_eq!(status["params"]["ALPHA"], 0.25);
    assert_eq!(status["params"]["T"], 8);
    assert_eq!(
        status["scheduler"],
        serde_json::json!({
            "algorithm": "tradeoff",
            "params": {"ALPHA": 0.25, "BETA": 0.5},
            "seed": 1234
        })
    );
    assert_eq!(status["nodes"][0]["url"], a.url);
    assert_eq!(status["nodes"][0]["status"], "online");
    assert_eq!(status["nodes"][0]["capacity"], 64);
}

/// Two `slow` calls of one function at once under `ch`; returns the
/// in-flight loads per node while both run (sorted), then waits for them.
async fn two_slow_calls_at_once(balancer: &Arc<Balancer>) -> Vec<u64> {
    let calls = calls_in_flight(balancer, "slow", 2).await;
    let mut loads: Vec<u64> = balancer.loads().await.iter().map(|(_, l)| *l).collect();
    loads.sort_unstable();
    for call in calls {
        assert_eq!(call.await.unwrap().0, 200);
    }
    loads
}

/// `/configure?T=4` used to answer 200 and change nothing. Now scheduler
/// parameters are checked by the registry and applied (a fresh scheduler),
/// only the workers' options are forwarded, and a bad value is a 400 that
/// names it, with nothing changed (workers included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configure_applies_scheduler_parameters_or_refuses_them() {
    let stubs: Vec<StubWorker> = (0..3)
        .map(|i| StubWorker::start(&format!("s{i}"), &["--delay", "slow=1500"]))
        .collect();
    let balancer = Arc::new(Balancer::start(config(
        "ch",
        &stubs.iter().collect::<Vec<_>>(),
    )));
    // T = 8: both calls stay on the function's ring node.
    assert_eq!(two_slow_calls_at_once(&balancer).await, [0, 0, 2]);

    let (code, reply) = balancer.get_json("/configure?T=1&image_limit=3").await;
    assert_eq!((code, reply["lb"].clone()), (200, "ch".into()), "{reply}");
    for stub in &stubs {
        // The scheduler's T is not a worker option: not forwarded.
        assert_eq!(
            stub.stats().await["configure"],
            serde_json::json!(["image_limit=3"])
        );
    }
    let (_, status) = balancer.get_json("/status").await;
    assert_eq!(status["params"]["T"], 1);
    assert_eq!(status["scheduler"]["params"], serde_json::json!({"T": 1}));
    // T = 1: the second call spills to another node.
    assert_eq!(two_slow_calls_at_once(&balancer).await, [0, 1, 1]);

    // Refused: 400 naming the key; nothing changes, nothing is forwarded.
    for (query, key) in [
        ("T=0&image_limit=5", "T"),
        ("lb=ll&ch.T=0", "ch.T"),
        ("tradeoff.ALPHA=2", "tradeoff.ALPHA"),
        ("ch.T1=3", "ch.T1"),
        ("nope.T=3", "nope.T"),
        ("lb=ll&seed=x", "seed"),
    ] {
        let (code, reply) = balancer.get_json(&format!("/configure?{query}")).await;
        assert_eq!(code, 400, "{query}: {reply}");
        assert_eq!(reply["Error"], true);
        let message = reply["Message"].as_str().unwrap();
        assert!(
            message.contains(&format!("{key:?}")) || message.contains(&format!("{key}=")),
            "{query}: {message}"
        );
        let (_, status) = balancer.get_json("/status").await;
        assert_eq!(status["algorithm"], "ch", "{query}");
        assert_eq!(status["params"]["T"], 1, "{query}");
    }
    for stub in &stubs {
        assert_eq!(
            stub.stats().await["configure"],
            serde_json::json!(["image_limit=3"])
        );
    }
    assert_eq!(two_slow_calls_at_once(&balancer).await, [0, 1, 1]);

    // One algorithm's key sets only that algorithm; switching keeps it.
    let (code, _) = balancer.get_json("/configure?ch.T=4&lb=pasch").await;
    assert_eq!(code, 200);
    let (_, status) = balancer.get_json("/status").await;
    assert_eq!(status["algorithm"], "pasch");
    assert_eq!(status["params"]["ch.T"], 4);
    assert_eq!(status["params"]["pasch.T"], 1);
    assert_eq!(status["scheduler"]["params"], serde_json::json!({"T": 1}));

    // /configure accepts and refuses exactly what the registry does.
    for (key, value) in [
        ("T", "5"),
        ("T", "0"),
        ("T", "10001"),
        ("pasch.T", "10001"),
        ("ALPHA", "1.5"),
        ("tradeoff.BETA", "0.3"),
        ("ours.T1", "x"),
        ("rr.T", "1"),
        ("seed", "3"),
    ] {
        let registry = ParamSet::default().set(key, value).is_ok();
        let (code, reply) = balancer
            .get_json(&format!("/configure?{key}={value}"))
            .await;
        assert_eq!(code == 200, registry, "{key}={value}: {reply}");
    }
}

/// `GET /1/lb/scheduler`: the algorithm with every resolved parameter, the
/// seed, and the nodes under the `WorkerNodeId` replies carry; it follows
/// `/configure` and node changes, and `/1/lb/nodes` keeps its old shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_route_describes_the_run_and_follows_configure() {
    let a = StubWorker::start("s0", &[]);
    let b = StubWorker::start("s1", &[]);
    let mut cfg = config("hash", &[&a, &b]);
    cfg.params.set("seed", "42").unwrap();
    let balancer = Balancer::start(cfg);
    let (code, mut v) = balancer.get_json("/1/lb/scheduler").await;
    assert_eq!(code, 200);
    // The sources it was built from: this checkout's HEAD (null without
    // git); whether they were dirty depends on the checkout.
    let revision = v.as_object_mut().unwrap().remove("revision");
    let head =
        source_revision::build::head_commit(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
    let revision = revision.expect("a revision field");
    assert_eq!(revision["commit"].as_str(), head.as_deref(), "{revision}");
    assert_eq!(revision["dirty"].is_boolean(), head.is_some(), "{revision}");
    assert_eq!(
        v,
        serde_json::json!({
            "algorithm": "ch",
            "parameters": {"T": 8},
            "seed": 42,
            "nodes": [
                {"id": 0, "url": a.url, "state": "online", "capacity": 64, "cores": 2, "memory_mb": 2048},
                {"id": 1, "url": b.url, "state": "online", "capacity": 64, "cores": 2, "memory_mb": 2048},
            ],
            "version": env!("CARGO_PKG_VERSION"),
        })
    );
    // The ids are those of the replies.
    for function in ["W1", "W2", "W3", "W4", "W5", "W6"] {
        let (status, reply) = balancer.execute(function).await;
        assert_eq!(status, 200, "{reply}");
        let info = &reply["LoadBalancingInfo"];
        let id = info["WorkerNodeId"].as_u64().unwrap() as usize;
        assert_eq!(v["nodes"][id]["url"], info["WorkerNodeUrl"], "{reply}");
    }
    // The original's node list is unchanged.
    let (_, nodes) = balancer.get_json("/1/lb/nodes").await;
    assert_eq!(
        nodes,
        serde_json::json!({"nodes": {a.url.clone(): "online", b.url.clone(): "online"}})
    );

    // /configure?T=4 applies at once, as does ch.T, seed and lb=.
    let (code, reply) = balancer.get_json("/configure?T=4").await;
    assert_eq!(code, 200, "{reply}");
    let (_, v) = balancer.get_json("/1/lb/scheduler").await;
    assert_eq!(v["parameters"], serde_json::json!({"T": 4}), "{v}");
    let (code, _) = balancer.get_json("/configure?ch.T=5&seed=7").await;
    assert_eq!(code, 200);
    let (_, v) = balancer.get_json("/1/lb/scheduler").await;
    assert_eq!(
        (v["parameters"]["T"].clone(), v["seed"].clone()),
        (5.into(), 7.into())
    );
    let (code, _) = balancer.get_json("/configure?lb=tradeoff&ALPHA=0.25").await;
    assert_eq!(code, 200);
    let (_, v) = balancer.get_json("/1/lb/scheduler").await;
    assert_eq!(v["algorithm"], "tradeoff");
    assert_eq!(
        v["parameters"],
        serde_json::json!({"ALPHA": 0.25, "BETA": 0.5}),
        "defaults included"
    );

    // A key no one knows: 400 with a JSON message, nothing changed or forwarded.
    for query in ["bogus=1", "lb=rr&bogus=1", "T=4&image_limit=lots"] {
        let (code, reply) = balancer.get_json(&format!("/configure?{query}")).await;
        assert_eq!(code, 400, "{query}: {reply}");
        assert_eq!(reply["Error"], true);
        let message = reply["Message"].as_str().unwrap();
        assert!(
            message.contains("bogus") || message.contains("lots"),
            "{query}: {message}"
        );
    }
    let (_, v) = balancer.get_json("/1/lb/scheduler").await;
    assert_eq!(v["algorithm"], "tradeoff");
    assert_eq!(v["parameters"]["ALPHA"], 0.25);
    for stub in [&a, &b] {
        assert_eq!(
            stub.stats().await["configure"],
            serde_json::json!(["", "", ""]),
            "only the three accepted calls reached the workers"
        );
    }

    // Removed and re-added with its own resources: a new id, offline
    // until a check passes.
    let http = client();
    let nodes_url = format!("{}/1/lb/nodes", balancer.url);
    let body = format!(r#"{{"node": "{}"}}"#, a.url);
    let body_with_resources = format!(r#"{{"node": "{}", "cores": 8, "memory_mb": 4096}}"#, a.url);
    assert_eq!(
        http.delete(&nodes_url)
            .body(body.clone())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.put(&nodes_url)
            .body(body_with_resources)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (_, v) = balancer.get_json("/1/lb/scheduler").await;
    assert_eq!(
        v["nodes"],
        serde_json::json!([
            {"id": 1, "url": b.url, "state": "online", "capacity": 64, "cores": 2, "memory_mb": 2048},
            {"id": 2, "url": a.url, "state": "offline", "capacity": 64, "cores": 8, "memory_mb": 4096},
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_route_of_fake_mode_has_nodes_without_urls() {
    let balancer = Balancer::start(BalancerConfig {
        algorithm: "rr".into(),
        fake_nodes: 2,
        fake_delay_ms: 1,
        threads: 1,
        ..Default::default()
    });
    let (code, v) = balancer.get_json("/1/lb/scheduler").await;
    assert_eq!(code, 200);
    assert_eq!(v["algorithm"], "rr");
    assert_eq!(v["parameters"], serde_json::json!({}));
    assert_eq!(
        v["nodes"],
        serde_json::json!([
            {"id": 0, "url": null, "state": "online", "capacity": 64, "cores": 2, "memory_mb": 2048},
            {"id": 1, "url": null, "state": "online", "capacity": 64, "cores": 2, "memory_mb": 2048},
        ])
    );
}

/// One `GET` of `target` on a fresh connection, with `Connection: close`
/// when `close` (actix-http serves it) or without (the express lane
/// does): the status line, the `content-type` and the JSON body.
async fn raw_get(url: &str, target: &str, close: bool) -> (String, String, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.strip_prefix("http://").unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connection = if close { "Connection: close\r\n" } else { "" };
    let request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\n{connection}\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let (head, body) = loop {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(30), s.read(&mut buf))
            .await
            .expect("a reply within 30 s")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .expect("content-length")
                .parse()
                .unwrap();
            if body.len() >= length {
                break (head.to_owned(), body[..length].to_owned());
            }
        }
    };
    let status = head.lines().next().unwrap().to_owned();
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or("")
        .to_owned();
    (status, content_type, serde_json::from_str(&body).unwrap())
}

/// The express lane (`http_front::express`) and actix-http answer
/// `/execute` alike: the same status line, content type and JSON (but
/// the timings), for a call served, a worker's failure passed through,
/// a refused request and no online node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_is_answered_alike_in_the_express_lane_and_by_actix() {
    fn untimed(mut v: serde_json::Value) -> serde_json::Value {
        v["LoadBalancingInfo"]["AlgorithmLatency"] = serde_json::Value::Null;
        v["ExecutionTime"] = serde_json::Value::Null;
        v
    }
    let a = StubWorker::start("s0", &["--fail", "BAD"]);
    let balancer = Balancer::start(config("ch", &[&a]));
    for target in ["/execute?name=W1", "/execute?name=BAD", "/execute?nom=W1"] {
        // The first call of a function is the stub's cold start.
        raw_get(&balancer.url, target, true).await;
        let (lane_status, lane_type, lane_body) = raw_get(&balancer.url, target, false).await;
        let (status, content_type, body) = raw_get(&balancer.url, target, true).await;
        assert_eq!(lane_status, status, "{target}");
        assert_eq!(lane_type, content_type, "{target}");
        assert_eq!(untimed(lane_body), untimed(body), "{target}");
    }
    assert_eq!(
        raw_get(&balancer.url, "/execute?name=W1", false).await.0,
        "HTTP/1.1 200 OK"
    );

    let dead = dead_url();
    let cfg = BalancerConfig {
        nodes: vec![dead.url.clone()],
        ..config("rr", &[])
    };
    let balancer = Balancer::start(cfg);
    // The first call finds the node unreachable (502); then none is online.
    let first = raw_get(&balancer.url, "/execute?name=W1", false).await;
    assert_eq!(first.0, "HTTP/1.1 502 Bad Gateway", "{first:?}");
    let lane = raw_get(&balancer.url, "/execute?name=W1", false).await;
    let actix = raw_get(&balancer.url, "/execute?name=W1", true).await;
    assert_eq!(lane, actix);
    assert_eq!(lane.0, "HTTP/1.1 503 Service Unavailable");
}
