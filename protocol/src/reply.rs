//! JSON replies of the worker and of the balancer.
//!
//! Field names and order follow the original Go structs: `Result`,
//! `ExecutionTime`, `InternalExecutionTime`, `Meta`, then
//! `LoadBalancingInfo`. Unknown fields are accepted when reading, so that
//! replies of newer workers (which may add fields) still parse.

use serde::{Deserialize, Serialize};

/// What the function itself returned: `{"statusCode": 200, "body": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FunctionResult {
    #[serde(rename = "statusCode")]
    pub status_code: i32,
    pub body: String,
}

/// One invocation's output as printed by a function instance (`hf-fn`):
/// `{"startTime": ms, "endTime": ms, "result": {...}}`, times in Unix
/// milliseconds measured inside the instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionOutput {
    #[serde(rename = "startTime")]
    pub start_time: i64,
    #[serde(rename = "endTime")]
    pub end_time: i64,
    pub result: FunctionResult,
}

impl FunctionOutput {
    /// `InternalExecutionTime`: the time spent inside the function, in ms.
    pub fn internal_ms(&self) -> i64 {
        self.end_time - self.start_time
    }
}

/// How the worker served the call (the original's `FunctionExecutionMetaData`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ExecutionMeta {
    /// The function's image (or staged package) had to be built for this call.
    pub image_built: bool,
    /// The call ran in a pre-warmed pool instance.
    pub using_pooled_container: bool,
    /// The call ran in a REST-mode instance that was already alive.
    pub using_existing_rest_container: bool,
    pub container_name: String,
    pub image_name: String,
}

impl ExecutionMeta {
    /// A cold start: no warm instance (pooled or REST) served the call.
    pub fn is_cold(&self) -> bool {
        !self.using_pooled_container && !self.using_existing_rest_container
    }
}

/// The worker's reply to `GET /execute?name=F`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct WorkerReply {
    pub result: FunctionResult,
    /// Wall time the worker spent on the call, in ms.
    pub execution_time: i64,
    /// Time spent inside the function, in ms (from [`FunctionOutput`]).
    pub internal_execution_time: i64,
    pub meta: ExecutionMeta,
}

/// Added by the balancer to every forwarded reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct LoadBalancingInfo {
    pub worker_node_id: i64,
    pub worker_node_url: String,
    pub algorithm: String,
    /// Time spent in the scheduler's `select`, in milliseconds (float).
    pub algorithm_latency: f64,
    /// Set when the call was sent again after its first node failed (it
    /// could not be reached, or it died with the call in flight); absent
    /// otherwise, so that an ordinary reply is the original's byte for
    /// byte. Not in the original.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retried_from: Option<RetriedFrom>,
}

/// The node a retried call was first sent to, and why it failed there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct RetriedFrom {
    pub worker_node_id: i64,
    pub worker_node_url: String,
    pub reason: String,
}

/// The balancer's reply to `GET /execute?name=F`: the worker's reply plus
/// [`LoadBalancingInfo`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct BalancerReply {
    #[serde(flatten)]
    pub worker: WorkerReply,
    #[serde(rename = "LoadBalancingInfo")]
    pub load_balancing_info: LoadBalancingInfo,
}

/// The failure reply of every component: `{"Error": true, "Message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorReply {
    pub error: bool,
    pub message: String,
}

impl ErrorReply {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            error: true,
            message: message.into(),
        }
    }

    /// The reply as a JSON string (infallible: only strings and a bool).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"Error":true,"Message":""}"#.into())
    }
}

/// A successful call's [`BalancerReply`], written straight to bytes without
/// serde, for writers of many log lines (the simulator's hot path). The
/// output is exactly what serde writes for the same reply with an empty
/// `Result.body` and status 200 (a test checks it). The text fields are
/// `Display` values that must be JSON-escaped already ([`json_escaped`]).
#[derive(Debug, Clone, Copy)]
pub struct BalancerReplyView<'a> {
    pub execution_time: i64,
    pub internal_execution_time: i64,
    pub image_built: bool,
    pub using_pooled_container: bool,
    pub using_existing_rest_container: bool,
    pub container_name: std::fmt::Arguments<'a>,
    pub image_name: std::fmt::Arguments<'a>,
    pub worker_node_id: i64,
    pub worker_node_url: std::fmt::Arguments<'a>,
    pub algorithm: &'a str,
    pub algorithm_latency: f64,
}

impl BalancerReplyView<'_> {
    /// Appends the reply's JSON (no line end) to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) -> std::io::Result<()> {
        use std::io::Write as _;
        write!(
            out,
            concat!(
                r#"{{"Result":{{"statusCode":200,"body":""}},"ExecutionTime":{},"InternalExecutionTime":{},"#,
                r#""Meta":{{"ImageBuilt":{},"UsingPooledContainer":{},"UsingExistingRestContainer":{},"#,
                r#""ContainerName":"{}","ImageName":"{}"}},"#,
                r#""LoadBalancingInfo":{{"WorkerNodeId":{},"WorkerNodeUrl":"{}","Algorithm":"{}","AlgorithmLatency":"#,
            ),
            self.execution_time,
            self.internal_execution_time,
            self.image_built,
            self.using_pooled_container,
            self.using_existing_rest_container,
            self.container_name,
            self.image_name,
            self.worker_node_id,
            self.worker_node_url,
            self.algorithm,
        )?;
        serde_json::to_writer(&mut *out, &self.algorithm_latency)?;
        out.extend_from_slice(b"}}");
        Ok(())
    }
}

/// `s` as it appears inside a JSON string (without the quotes).
pub fn json_escaped(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    quoted[1..quoted.len() - 1].to_string()
}

/// Adds `"LoadBalancingInfo": {...}` to a worker's JSON object without
/// parsing or re-serializing the rest of it (the balancer's hot path).
///
/// Returns `None` when `worker_json` is not a JSON object (after trimming
/// white space), so that the caller can report a bad worker reply.
pub fn append_load_balancing_info(worker_json: &[u8], info: &LoadBalancingInfo) -> Option<Vec<u8>> {
    let end = worker_json.iter().rposition(|b| !b.is_ascii_whitespace())?;
    let start = worker_json.iter().position(|b| !b.is_ascii_whitespace())?;
    if worker_json[start] != b'{' || worker_json[end] != b'}' {
        return None;
    }
    let inner_is_empty = worker_json[start + 1..end]
        .iter()
        .all(|b| b.is_ascii_whitespace());
    let info_json = serde_json::to_vec(info).ok()?;
    let mut out = Vec::with_capacity(end - start + info_json.len() + 24);
    out.extend_from_slice(&worker_json[start..end]);
    if !inner_is_empty {
        out.push(b',');
    }
    out.extend_from_slice(br#""LoadBalancingInfo":"#);
    out.extend_from_slice(&info_json);
    out.push(b'}');
    Some(out)
}

/// True when a worker's reply says no warm instance served the call: its
/// `Meta` has `UsingPooledContainer` and `UsingExistingRestContainer` both
/// false (the test of [`ExecutionMeta::is_cold`]).
///
/// A cheap scan for the balancer's hot path, no JSON parse: `Meta` closes
/// the worker's reply, so the keys are searched from the end. A reply
/// without these keys counts as warm.
pub fn reported_cold(worker_json: &[u8]) -> bool {
    match (
        json_bool_field(worker_json, b"\"UsingPooledContainer\""),
        json_bool_field(worker_json, b"\"UsingExistingRestContainer\""),
    ) {
        (Some(pooled), Some(rest)) => !pooled && !rest,
        _ => false,
    }
}

/// The worker's `InternalExecutionTime` (ms: the function's own run time),
/// by the same cheap scan from the end as [`reported_cold`]; None when the
/// reply has no such whole number (a failure reply).
pub fn reported_internal_ms(worker_json: &[u8]) -> Option<u64> {
    let rest = json_field_value(worker_json, b"\"InternalExecutionTime\"")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// What follows the colon of the last `quoted_key` in `body`.
fn json_field_value<'a>(body: &'a [u8], quoted_key: &[u8]) -> Option<&'a [u8]> {
    // Compare the key only where its opening quote is.
    let mut end = body.len();
    let at = loop {
        let quote = body[..end].iter().rposition(|&b| b == b'"')?;
        if body[quote..].starts_with(quoted_key) {
            break quote;
        }
        end = quote;
    };
    let rest = &body[at + quoted_key.len()..];
    Some(
        rest.trim_ascii_start()
            .strip_prefix(b":")?
            .trim_ascii_start(),
    )
}

/// The boolean value of the last `quoted_key` in `body`, if it has one.
fn json_bool_field(body: &[u8], quoted_key: &[u8]) -> Option<bool> {
    let rest = json_field_value(body, quoted_key)?;
    if rest.starts_with(b"true") {
        Some(true)
    } else if rest.starts_with(b"false") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A balancer reply exactly as the original Go balancer marshals it.
    const ORIGINAL_BALANCER_REPLY: &str = r#"{"Result":{"statusCode":200,"body":"W3 done"},"ExecutionTime":1234,"InternalExecutionTime":1001,"Meta":{"ImageBuilt":true,"UsingPooledContainer":false,"UsingExistingRestContainer":false,"ContainerName":"hf_w3_1","ImageName":"hf_w3"},"LoadBalancingInfo":{"WorkerNodeId":2,"WorkerNodeUrl":"http://10.0.0.3:8222","Algorithm":"ch","AlgorithmLatency":0.012}}"#;

    #[test]
    fn balancer_reply_round_trips_byte_for_byte() {
        let reply: BalancerReply = serde_json::from_str(ORIGINAL_BALANCER_REPLY).unwrap();
        assert_eq!(reply.worker.result.status_code, 200);
        assert_eq!(reply.worker.result.body, "W3 done");
        assert_eq!(reply.worker.execution_time, 1234);
        assert_eq!(reply.worker.internal_execution_time, 1001);
        assert!(reply.worker.meta.image_built);
        assert_eq!(reply.worker.meta.container_name, "hf_w3_1");
        assert_eq!(reply.load_balancing_info.worker_node_id, 2);
        assert_eq!(reply.load_balancing_info.algorithm, "ch");
        assert_eq!(reply.load_balancing_info.algorithm_latency, 0.012);
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            ORIGINAL_BALANCER_REPLY
        );
    }

    #[test]
    fn worker_reply_round_trips_and_tolerates_new_fields() {
        let original = r#"{"Result":{"statusCode":200,"body":""},"ExecutionTime":4000,"InternalExecutionTime":1000,"Meta":{"ImageBuilt":false,"UsingPooledContainer":true,"UsingExistingRestContainer":false,"ContainerName":"","ImageName":""}}"#;
        let reply: WorkerReply = serde_json::from_str(original).unwrap();
        assert!(reply.meta.using_pooled_container);
        assert!(!reply.meta.is_cold());
        assert_eq!(serde_json::to_string(&reply).unwrap(), original);

        let newer = original.replace(r#""ImageName":"""#, r#""ImageName":"","Node":"x""#);
        let reply2: WorkerReply = serde_json::from_str(&newer).unwrap();
        assert_eq!(reply2, reply);
    }

    #[test]
    fn error_reply_matches_original() {
        let e = ErrorReply::new("param 'name' is not given");
        assert_eq!(
            e.to_json(),
            r#"{"Error":true,"Message":"param 'name' is not given"}"#
        );
        let back: ErrorReply = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn function_output_matches_original() {
        let s = r#"{"startTime":1600000000000,"endTime":1600000001000,"result":{"statusCode":200,"body":"ok"}}"#;
        let out: FunctionOutput = serde_json::from_str(s).unwrap();
        assert_eq!(out.internal_ms(), 1000);
        assert_eq!(serde_json::to_string(&out).unwrap(), s);
    }

    #[test]
    fn appending_info_equals_full_serialization() {
        let reply: BalancerReply = serde_json::from_str(ORIGINAL_BALANCER_REPLY).unwrap();
        let worker_json = serde_json::to_vec(&reply.worker).unwrap();
        let mut padded = b"  ".to_vec();
        padded.extend_from_slice(&worker_json);
        padded.extend_from_slice(b"\n");
        let appended = append_load_balancing_info(&padded, &reply.load_balancing_info).unwrap();
        assert_eq!(
            String::from_utf8(appended).unwrap(),
            ORIGINAL_BALANCER_REPLY
        );
    }

    #[test]
    fn appending_info_rejects_non_objects_and_handles_empty() {
        let info = LoadBalancingInfo::default();
        assert!(append_load_balancing_info(b"[1,2]", &info).is_none());
        assert!(append_load_balancing_info(b"", &info).is_none());
        assert!(append_load_balancing_info(b"not json", &info).is_none());
        let out = append_load_balancing_info(b"{ }", &info).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["LoadBalancingInfo"]["WorkerNodeId"], 0);
    }

    #[test]
    fn cold_flag_is_read_from_meta() {
        let warm = br#"{"Meta":{"ImageBuilt":false,"UsingPooledContainer":false,"UsingExistingRestContainer":true}}"#;
        let cold = br#"{"Meta":{"ImageBuilt":true,"UsingPooledContainer" : false, "UsingExistingRestContainer":false}}"#;
        assert!(!reported_cold(warm));
        assert!(reported_cold(cold));
        assert!(!reported_cold(b"{}"));
    }

    #[test]
    fn internal_time_is_read_from_the_top_level_field() {
        // A function body quoting the key does not fool the scan: the
        // worker's own field comes after `Result`.
        let reply = WorkerReply {
            result: FunctionResult {
                status_code: 200,
                body: r#"{"InternalExecutionTime": 7}"#.into(),
            },
            execution_time: 1249,
            internal_execution_time: 1000,
            ..WorkerReply::default()
        };
        let json = serde_json::to_vec(&reply).unwrap();
        assert_eq!(reported_internal_ms(&json), Some(1000));
        assert_eq!(
            reported_internal_ms(br#"{"InternalExecutionTime" : 0}"#),
            Some(0)
        );
        for bad in [
            &b"{}"[..],
            br#"{"InternalExecutionTime":-3}"#,
            br#"{"InternalExecutionTime":"12"}"#,
            br#"{"InternalExecutionTime":99999999999999999999999}"#,
            br#"{"InternalExecutionTime""#,
        ] {
            assert_eq!(
                reported_internal_ms(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn cold_scan_agrees_with_the_serde_field_names() {
        // The scan spells the keys out; serde derives them from the fields.
        // Every combination, serialized by serde, must read the same.
        for (pooled, rest) in [(false, false), (true, false), (false, true), (true, true)] {
            let reply = WorkerReply {
                meta: ExecutionMeta {
                    using_pooled_container: pooled,
                    using_existing_rest_container: rest,
                    ..ExecutionMeta::default()
                },
                ..WorkerReply::default()
            };
            let json = serde_json::to_vec(&reply).unwrap();
            assert_eq!(
                reported_cold(&json),
                reply.meta.is_cold(),
                "{pooled} {rest}"
            );
        }
    }

    #[test]
    fn the_reply_view_writes_what_serde_writes() {
        for (name, latency) in [("W1", 0.0), ("we\"ird\\", 0.125), ("é", 1e-7)] {
            let escaped = json_escaped(name);
            let view = BalancerReplyView {
                execution_time: 1249,
                internal_execution_time: 1000,
                image_built: true,
                using_pooled_container: false,
                using_existing_rest_container: true,
                container_name: format_args!("c-{escaped}-7"),
                image_name: format_args!("hf-{escaped}"),
                worker_node_id: 3,
                worker_node_url: format_args!("des://node-3"),
                algorithm: "ours",
                algorithm_latency: latency,
            };
            let mut out = Vec::new();
            view.write_json(&mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            let reply: BalancerReply = serde_json::from_str(&text).unwrap();
            assert_eq!(serde_json::to_string(&reply).unwrap(), text);
            assert_eq!(reply.worker.meta.container_name, format!("c-{name}-7"));
            assert_eq!(reply.load_balancing_info.algorithm_latency, latency);
        }
    }
}
