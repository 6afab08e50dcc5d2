//! Users' own functions on a real cluster (issue 14 §4, process runtime):
//! the real `load-balancer` binary holding the store, and `worker-front`
//! binaries that join it and fetch packages from it. A native function
//! and a Glambdar Node.js function (skipped, with the reason printed, when
//! `node` is not on the machine) are deployed through the balancer, called
//! under two algorithms, inspected (`/info`, `/logs`), redeployed,
//! rate-limited (429s counted), deleted (nothing left in the workers' data
//! dirs), called again after a balancer restart, and run by a third worker
//! that joined after every deploy.
//!
//! The balancer binary is taken from the same target directory as this
//! test (`cargo build --release -p load-balancer` first).

// Tests read the clock for their deadlines.
#![allow(clippy::disallowed_methods)]

mod user_functions_support;

use std::process::Command;
use user_functions_support::cluster::*;
use user_functions_support::*;

const NODE_GREET: &str = r#"
exports.handler = async (req) => ({
  statusCode: 200,
  headers: { 'x-node': 'yes' },
  body: { hello: req.query.who || 'nobody', method: req.method },
});
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_functions_run_on_a_cluster_that_holds_them_at_the_balancer() {
    let lb_dirs = Dirs::new();
    let lb_data = lb_dirs.data();
    let lb = start_balancer(&lb_data, 0).await;
    let (d1, d2, d3) = (Dirs::new(), Dirs::new(), Dirs::new());
    let w1 = start_worker(&d1, &lb.base);
    let w2 = start_worker(&d2, &lb.base);
    await_online(&lb, 2).await;

    // Deploys through the balancer: the workers hold nothing yet.
    let (s, v) = lb
        .deploy("echo.zip", &native_zip("v1", None), None, None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["Version"], 1);
    let digest1 = v["Digest"].as_str().unwrap().to_string();
    let (s, v) = lb
        .deploy("gone.zip", &native_zip("g", None), None, None)
        .await;
    assert_eq!(s, 200, "{v}");
    let gone_digest = v["Digest"].as_str().unwrap().to_string();
    let (s, v) = lb.deploy("bad.zip", b"not a zip at all", None, None).await;
    assert_eq!(s, 400, "{v}");
    for w in [&w1, &w2] {
        let (_, v) = w.json("GET", "/info", None).await;
        assert_eq!(v["Count"], 0, "{v}");
    }
    assert!(std::path::Path::new(&lb_data)
        .join("blobs")
        .join(format!("{digest1}.zip"))
        .is_file());

    let node_ok = Command::new(std::env::var("HF_NODE").unwrap_or_else(|_| "node".into()))
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if node_ok {
        let (s, v) = lb
            .deploy("greet.zip", &glambdar_zip(NODE_GREET), None, None)
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["Runtime"], "node");
    } else {
        println!("skipping the Node.js function: no `node` on this machine (or HF_NODE)");
    }

    // Two algorithms: every call reaches a worker (which fetches the
    // package on first use) and comes back with the balancer's info.
    let mut algorithms = Vec::new();
    for lb_name in ["rr", "ll"] {
        let (s, v) = lb
            .json("GET", &format!("/configure?lb={lb_name}"), None)
            .await;
        assert_eq!(s, 200, "{v}");
        let mut nodes = std::collections::BTreeSet::new();
        for i in 0..4 {
            // The path after the name arrives as it was sent, escapes
            // and all, across both hops.
            let (s, h, body) = lb.call("echo", &format!("/p%20{i}/q%2F?i={i}")).await;
            assert_eq!(s, 200, "{body}");
            let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(echo["label"], "v1");
            assert_eq!(echo["path"], format!("/p%20{i}/q%2F"));
            assert_eq!(echo["query"], format!("i={i}"));
            assert!(
                echo["headers"].get("x-hf-function-digest").is_none(),
                "{echo}"
            );
            assert_eq!(h["x-function-version"], "1");
            let info = lb_info(&h);
            nodes.insert(info["WorkerNodeUrl"].as_str().unwrap().to_string());
            algorithms.push(info["Algorithm"].as_str().unwrap().to_string());
        }
        for _ in 0..(if node_ok { 2 } else { 0 }) {
            let (s, h, body) = lb.call("greet", "?who=ada").await;
            assert_eq!(s, 200, "{body}");
            assert_eq!(h["x-node"], "yes");
            assert_eq!(lb_info(&h)["Algorithm"], algorithms[algorithms.len() - 1]);
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["hello"], "ada");
        }
        if lb_name == "rr" {
            assert_eq!(nodes.len(), 2, "rr used both nodes: {nodes:?}");
        }
    }
    algorithms.dedup();
    assert_eq!(algorithms.len(), 2, "two algorithms: {algorithms:?}");

    // /info and /logs aggregate over the nodes.
    let (s, v) = lb.json("GET", "/info/echo", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["Calls"], 8, "{v}");
    assert_eq!(v["NodeCalls"], 8, "{v}");
    assert_eq!(v["Nodes"].as_array().unwrap().len(), 2, "{v}");
    let (_, all) = lb.json("GET", "/info", None).await;
    assert_eq!(all["Count"], if node_ok { 3 } else { 2 }, "{all}");
    let (s, v) = lb.json("GET", "/logs/echo?limit=5", None).await;
    assert_eq!(s, 200, "{v}");
    let logs = v["Logs"].as_array().unwrap();
    assert_eq!(logs.len(), 5, "{v}");
    assert!(logs
        .iter()
        .all(|l| l["NodeUrl"].is_string() && l["Status"] == 200));

    // Redeploy: the next calls run version 2 on every node.
    let (s, v) = lb
        .deploy("echo.zip", &native_zip("v2", None), None, None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["Version"].as_u64(), v["Replaced"].as_u64()),
        (Some(2), Some(1))
    );
    for _ in 0..4 {
        let (s, h, body) = lb.call("echo", "").await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(h["x-function-version"], "2");
        assert!(body.contains("\"v2\""), "{body}");
    }

    // Rate limit at the balancer: 2/s, burst 1.
    let (s, v) = lb
        .json("POST", "/config/echo", Some(r#"{"rateLimit": 2}"#))
        .await;
    assert_eq!(s, 200, "{v}");
    let mut limited = 0;
    for _ in 0..20 {
        let (s, _, body) = lb.call("echo", "").await;
        if s == 429 {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["Error"], true);
            limited += 1;
        } else {
            assert_eq!(s, 200, "{body}");
        }
    }
    assert!(limited >= 10, "only {limited} of 20 calls limited");
    let (_, v) = lb.json("GET", "/info/echo", None).await;
    assert_eq!(v["Throttled"], limited, "{v}");
    assert_eq!(v["RateLimit"], 2.0);
    let (s, _) = lb
        .json("POST", "/config/echo", Some(r#"{"rateLimit": 0}"#))
        .await;
    assert_eq!(s, 200);

    // Delete: gone from the balancer and from every worker's disk.
    for _ in 0..2 {
        let (s, _, body) = lb.call("gone", "").await;
        assert_eq!(s, 200, "{body}");
    }
    let (s, v) = lb.json("DELETE", "/del/gone", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["Nodes"].as_array().unwrap().len(), 2, "{v}");
    let (s, _) = lb.json("GET", "/info/gone", None).await;
    assert_eq!(s, 404);
    let (s, _, _) = lb.call("gone", "").await;
    assert_eq!(s, 404);
    assert!(!lb_data
        .join("blobs")
        .join(format!("{gone_digest}.zip"))
        .exists());
    for d in [&d1, &d2] {
        let data = d.data();
        await_true("the deleted function's code leaves the worker", || {
            entries(&data.join("code"), "gone.").is_empty()
                && entries(&data.join("blobs"), &gone_digest).is_empty()
        })
        .await;
    }
    for w in [&w1, &w2] {
        let (s, _) = w.json("GET", "/info/gone", None).await;
        assert_eq!(s, 404);
    }

    // A restarted balancer (same address: the workers join it again)
    // still knows every function.
    let port = lb.port;
    drop(lb);
    let lb = start_balancer(&lb_data, port).await;
    await_online(&lb, 2).await;
    let (s, v) = lb.json("GET", "/info/echo", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["Version"], 2, "{v}");
    let (s, h, body) = lb.call("echo", "").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(h["x-function-version"], "2");
    if node_ok {
        let (s, _, body) = lb.call("greet", "?who=bob").await;
        assert_eq!(s, 200, "{body}");
    }

    // A third worker, joining after every deploy, runs them.
    let w3 = start_worker(&d3, &lb.base);
    await_online(&lb, 3).await;
    let mut on_w3 = 0;
    for _ in 0..6 {
        let (s, h, body) = lb.call("echo", "").await;
        assert_eq!(s, 200, "{body}");
        assert!(body.contains("\"v2\""), "{body}");
        if lb_info(&h)["WorkerNodeUrl"] == w3.base.as_str() {
            on_w3 += 1;
        }
    }
    assert!(on_w3 > 0, "the new worker ran no call");
    let (_, v) = w3.json("GET", "/info/echo", None).await;
    assert_eq!(v["Version"], 2, "{v}");
    assert_eq!(v["Digest"].as_str().map(str::len), Some(64));
    drop((w1, w2, w3, lb));
}

/// A worker of the retry test, named `id` (its instances see it as
/// `HF_WORKER_ID`).
fn start_named_worker(dirs: &Dirs, balancer: &str, id: &str) -> Worker {
    start_worker_with(dirs, balancer, &["--worker-id", id])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_flight_on_a_killed_worker_is_retried_only_when_safe_to_repeat() {
    // (function, method, retried on the other worker?)
    let cases = [
        ("safe", "POST", true),
        ("unsafe", "GET", true),
        ("unsafe", "POST", false),
    ];
    for (i, (function, method, retried)) in cases.into_iter().enumerate() {
        let case = format!("{method} /invoke/{function}");
        let lb_dirs = Dirs::new();
        let lb = start_balancer(&lb_dirs.data(), 0).await;
        let (da, db) = (Dirs::new(), Dirs::new());
        let (ida, idb) = (format!("retry-a{i}"), format!("retry-b{i}"));
        let mut workers = vec![
            (ida.clone(), start_named_worker(&da, &lb.base, &ida)),
            (idb.clone(), start_named_worker(&db, &lb.base, &idb)),
        ];
        await_online(&lb, 2).await;
        let (s, v) = lb
            .deploy(
                "safe.zip",
                &native_zip_with("safe", ", \"idempotent\": true"),
                None,
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let (s, v) = lb
            .deploy("unsafe.zip", &native_zip("unsafe", None), None, None)
            .await;
        assert_eq!(s, 200, "{v}");

        // The call waits in the function until `go` exists.
        let wait = tempfile::tempdir().unwrap();
        let url = format!(
            "{}/invoke/{function}/wait?dir={}",
            lb.base,
            wait.path().display()
        );
        let request = lb
            .client
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url)
            .header("x-test-case", &case);
        let request = if method == "POST" {
            request.body(format!("payload of {case}"))
        } else {
            request
        };
        let in_flight = tokio::spawn(async move {
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            (status, headers, r.text().await.unwrap())
        });
        let dir = wait.path().to_path_buf();
        await_true(&format!("{case}: the call reaches a function"), || {
            !entries(&dir, "arrived-").is_empty()
        })
        .await;
        let arrived = entries(&dir, "arrived-");
        assert_eq!(arrived.len(), 1, "{case}: {arrived:?}");
        let victim_id = arrived[0].trim_start_matches("arrived-").to_string();
        let victim_at = workers
            .iter()
            .position(|(id, _)| *id == victim_id)
            .unwrap_or_else(|| panic!("{case}: no worker {victim_id}"));
        let (_, mut victim) = workers.remove(victim_at);
        let (survivor_id, survivor) = &workers[0];
        // kill -9 by the pid this test spawned, the call in flight.
        victim.child.kill().unwrap();
        victim.child.wait().unwrap();
        std::fs::write(dir.join("go"), b"").unwrap();

        let (status, headers, body) =
            tokio::time::timeout(std::time::Duration::from_secs(120), in_flight)
                .await
                .unwrap_or_else(|_| panic!("{case}: no reply"))
                .unwrap();
        if retried {
            assert_eq!(status, 200, "{case}: {body}");
            let info = lb_info(&headers);
            assert_eq!(
                info["WorkerNodeUrl"],
                survivor.base.as_str(),
                "{case}: {info}"
            );
            assert_eq!(
                info["RetriedFrom"]["WorkerNodeUrl"],
                victim.base.as_str(),
                "{case}: {info}"
            );
            assert!(
                info["RetriedFrom"]["Reason"]
                    .as_str()
                    .unwrap()
                    .contains("with the call in flight"),
                "{case}: {info}"
            );
            let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(echo["method"], method, "{case}: {echo}");
            assert_eq!(echo["path"], "/wait", "{case}: {echo}");
            assert_eq!(
                echo["headers"]["x-test-case"],
                case.as_str(),
                "{case}: {echo}"
            );
            let sent = if method == "POST" {
                format!("payload of {case}")
            } else {
                String::new()
            };
            assert_eq!(
                echo["body"],
                sent.as_str(),
                "{case}: the retry carries the body"
            );
            assert!(
                entries(&dir, "arrived-").contains(&format!("arrived-{survivor_id}")),
                "{case}: the survivor ran it"
            );
        } else {
            assert_eq!(status, 502, "{case}: {body}");
            let v: serde_json::Value =
                serde_json::from_str(&body).unwrap_or_else(|_| panic!("{case}: not JSON: {body}"));
            assert_eq!(v["Error"], true, "{case}: {v}");
            let message = v["Message"].as_str().unwrap();
            for part in [
                victim.base.as_str(),
                "the worker closed the connection with the call in flight",
                "not retried",
                "idempotent",
            ] {
                assert!(message.contains(part), "{case}: {part:?} not in {message}");
            }
            assert_eq!(entries(&dir, "arrived-").len(), 1, "{case}: ran once only");
        }
        drop((victim, workers, lb));
    }
}
