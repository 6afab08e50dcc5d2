//! Issue 13 §6 and the worker's part of §5, over real HTTP:
//! `/configure` ignores (and reports) the balancer's keys (`lb` and the
//! scheduler registry's parameters, as the original Go balancer forwards
//! its whole query) while still rejecting bad values of the worker's own
//! keys and unknown keys; an empty `name` is answered like a missing one;
//! a very long `name` gets a short JSON error body: from the handler up to
//! the HTTP layer's limit, and beyond it (a URI over 65,534 bytes, e.g. a
//! 100 KB name, which actix-http would refuse with a bare 400) from the
//! server's front (`http_front`, a JSON 414).

mod process_support;

use policy::node::options::CachingOptions;
use process_support::TestWorker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configure_ignores_and_reports_the_balancers_keys() {
    let w = TestWorker::start("cfg-lb", CachingOptions::default()).await;
    let (status, v) = w
        .get("/configure?lb=ch&T=4&ch.T=4&seed=7&container_pool_num=3&tradeoff.ALPHA=0.2")
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["Message"], "configure changed", "{v}");
    assert_eq!(v["State"]["ContainerPoolNum"], 3, "{v}");
    assert_eq!(
        v["Ignored"],
        serde_json::json!(["lb", "T", "ch.T", "seed", "tradeoff.ALPHA"]),
        "{v}"
    );
    // Only the balancer's keys: nothing changes, still a 200.
    let (status, v) = w.get("/configure?lb=rr").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["Message"], "nothing changed", "{v}");
    assert_eq!(v["Ignored"], serde_json::json!(["lb"]), "{v}");
    // Nothing ignored: an empty list.
    let (status, v) = w.get("/configure").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["Ignored"], serde_json::json!([]), "{v}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configure_still_rejects_bad_values_and_unknown_keys() {
    let w = TestWorker::start("cfg-bad", CachingOptions::default()).await;
    for (query, needle) in [
        ("lb=ch&container_pool_num=many", "container_pool_num"),
        ("T=4&using_rest_mode=perhaps", "using_rest_mode"),
        ("lb=ch&container_pool_nun=3", "container_pool_nun"),
    ] {
        let (status, v) = w.get(&format!("/configure?{query}")).await;
        assert_eq!(status, 400, "{query}: {v}");
        assert_eq!(v["Error"], true, "{query}: {v}");
        let message = v["Message"].as_str().unwrap();
        assert!(message.contains(needle), "{query}: {message}");
        // A refused query changes nothing.
        let (_, now) = w.get("/configure").await;
        assert_eq!(now["State"]["ContainerPoolNum"], 6, "{query}: {now}");
        assert_eq!(now["State"]["UsingRestMode"], false, "{query}: {now}");
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_name_is_a_missing_name_and_a_long_one_gets_a_short_json_error() {
    let w = TestWorker::start("names", CachingOptions::default()).await;
    for query in ["", "?name=", "?name", "?x=1&name="] {
        let (status, v) = w.get(&format!("/execute{query}")).await;
        assert_eq!(status, 400, "{query}: {v}");
        assert_eq!(v["Message"], "param 'name' is not given", "{query}: {v}");
    }
    // Up to the HTTP layer's limit the handler answers; beyond it (sent
    // over a plain socket: HTTP clients refuse to build such a URI), the
    // front does.
    for len in [60_000, 100_000] {
        let (status, text) = raw_get(&w.base, &format!("/execute?name={}", "W".repeat(len)));
        assert!((400..500).contains(&status), "{len}: {status}: {text:.200}");
        let v: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{len}: {status}: not JSON ({e}): {text:.200}"));
        assert_eq!(v["Error"], true, "{len}: {v:.200}");
        assert!(
            text.len() < 1000,
            "{len}: the name is not echoed whole: {text:.200}"
        );
    }
    // The worker still serves.
    assert_eq!(w.execute("W1").await.result.status_code, 200);
    w.stop().await;
}

/// `GET path` over a fresh connection: (status, body).
fn raw_get(base: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let authority = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(authority).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("read the reply");
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}
