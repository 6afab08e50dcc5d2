//! The balancer's hot-path readers of a worker's reply body
//! (`protocol::reply`: adding `LoadBalancingInfo` without a parse, the
//! cold/warm and run-time scans) and the management check of an
//! `Authorization` header (`protocol::mgmt`). Never a panic; a reply that
//! is a JSON object stays one, with `LoadBalancingInfo` added.
#![no_main]

use protocol::mgmt::ManagementConfig;
use protocol::reply::{append_load_balancing_info, reported_cold, reported_internal_ms};
use protocol::LoadBalancingInfo;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = reported_cold(data);
    let _ = reported_internal_ms(data);
    let info = LoadBalancingInfo {
        worker_node_id: 3,
        worker_node_url: "http://127.0.0.1:8222".into(),
        algorithm: "rr".into(),
        algorithm_latency: 0.01,
        retried_from: None,
    };
    let appended = append_load_balancing_info(data, &info);
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(data) {
        if !map.contains_key("LoadBalancingInfo") {
            let out = appended.expect("a JSON object is a worker reply");
            let parsed: serde_json::Value =
                serde_json::from_slice(&out).expect("still a JSON object");
            assert!(parsed.get("LoadBalancingInfo").is_some());
        }
    }
    let config = ManagementConfig {
        token: Some("0123456789abcdef0123".into()),
        require_token: false,
    };
    let _ = config.check(None, Some(data));
    let _ = config.check(Some([127, 0, 0, 1].into()), Some(data));
});
