//! The Glambdar routes on the balancer (the module doc of
//! [`crate::functions`]; shapes as the worker's, `worker_front::functions::http`).
//!
//! | route | what |
//! |---|---|
//! | `POST /deploy` | multipart: `file` (zip), optional `funcName`, `rateLimit` (management) |
//! | `ANY /invoke/:name[/path]` | scheduled like `/execute?name=`: method, headers, query and body go to the chosen worker's `/invoke`, its status, headers and body come back |
//! | `GET /info`, `GET /info/:name` | the store's metadata and the balancer's counters, plus `Nodes` (each node's counters) |
//! | `GET /logs/:name?limit=N` | the nodes' recent calls, merged, newest first |
//! | `DELETE /del/:name` | removed here and on every online node (management) |
//! | `POST /config/:name` | `{"rateLimit": r}` (management) |
//! | `GET /packages/<sha256>` | a stored zip, for the workers (management) |
//!
//! A call's reply carries the worker's headers (`X-Execution-Time`,
//! `X-Internal-Execution-Time`, `X-Meta`, `X-Function-Version`) and the
//! balancer's: `X-Load-Balancing-Info` (the `LoadBalancingInfo` JSON of
//! `/execute`: `WorkerNodeId`, `WorkerNodeUrl`, `Algorithm`,
//! `AlgorithmLatency`, and `RetriedFrom` after a retry) and
//! `X-Balancer-Time` (ms from the request read to the reply). Headers
//! named `X-Hf-*` from the client are dropped.
//!
//! Calls go to the worker over the hot path's keep-alive connections
//! ([`keepalive_http::Pool::send`], the pool `/execute` uses), with the
//! request's method, headers, query and body as they came. A worker that
//! refuses the connection, or dies with the call in flight, is marked
//! offline, and the call follows the one rule `/execute` follows
//! (`crate::server::after_failure`): it goes once to the scheduler's next
//! choice when it never reached the node, or when it did and is safe to
//! repeat: the function's manifest says `"idempotent": true`, or the
//! method is `GET` or `HEAD`. Otherwise the client gets a 502 JSON error
//! saying the worker closed the connection with the call in flight and
//! that the call was not retried. Any other failure (an invalid reply, a
//! reply over [`MAX_CALL_BYTES`]) is a 502.

use super::{FunctionError, FunctionStore};
use crate::server::{
    after_failure, authorize, call_every_node, json_reply, AfterFailure, InFlight, Local,
};
use crate::state::RunClock;
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use bytes::Bytes;
use http_front::{error_reply, read_body, read_form};
use protocol::reply::RetriedFrom;
use protocol::LoadBalancingInfo;
use sample_functions::user::store::CallRow;
pub use sample_functions::user::wire::Route;
use sample_functions::user::wire::{self, deploy_form, hop_by_hop};
use std::time::Duration;

/// The largest call body and reply relayed (the worker's bound on a
/// function's reply).
pub const MAX_CALL_BYTES: u64 = 6 * 1024 * 1024;

fn failure(e: FunctionError) -> HttpResponse {
    error_reply(e.status(), e.to_string())
}

fn ok_json(value: serde_json::Value) -> HttpResponse {
    json_reply(StatusCode::OK, value.to_string())
}

/// Serves `route`. The management and inspection routes' futures are
/// boxed where they are awaited, so that this future, which the data
/// listener allocates for every request, is mostly `/invoke`'s: 1,720
/// bytes, of which `/invoke`'s 1,496 (it was 3,216). That is still past
/// malloc's per-thread cache (1,032 bytes in glibc); boxing `/invoke`'s
/// own parts too brought every piece under it, but changed no measured
/// CPU per call, so they stay inline.
pub(crate) async fn handle(
    route: Route,
    req: &HttpRequest,
    payload: web::Payload,
    local: &Local,
) -> HttpResponse {
    if route.is_management() {
        if let Err(e) = authorize(req, &local.shared) {
            return e.error_response();
        }
    }
    let store = &local.shared.functions;
    match route {
        Route::Deploy => Box::pin(deploy(req, payload, store)).await,
        Route::Invoke { name, tail } => invoke(req, payload, local, &name, &tail).await,
        Route::InfoAll => Box::pin(info_all(local)).await,
        Route::Info(name) => Box::pin(info(local, &name)).await,
        Route::Logs(name) => Box::pin(logs(req, local, &name)).await,
        Route::Delete(name) => Box::pin(delete(local, &name)).await,
        Route::Config(name) => Box::pin(config(req, payload, store, &name)).await,
        Route::Package(digest) => match store.package(&digest) {
            None => error_reply(404, format!("no stored package {digest:?}")),
            Some(path) => match Box::pin(tokio::fs::read(&path)).await {
                Ok(zip) => HttpResponse::Ok()
                    .insert_header(("Content-Type", "application/zip"))
                    .body(zip),
                Err(e) => error_reply(500, format!("reading the package: {e}")),
            },
        },
    }
}

async fn deploy(req: &HttpRequest, payload: web::Payload, store: &FunctionStore) -> HttpResponse {
    let limit = wire::deploy_body_limit(store.limits().max_upload_bytes);
    let form = match read_form(req, payload, limit, deploy_form).await {
        Ok(f) => f,
        Err(e) => return e,
    };
    match store.deploy(&form.name, form.zip, form.rate_limit).await {
        Ok(report) => ok_json(serde_json::to_value(&report).unwrap_or_default()),
        Err(e) => failure(e),
    }
}

async fn invoke(
    req: &HttpRequest,
    payload: web::Payload,
    local: &Local,
    name: &str,
    tail: &str,
) -> HttpResponse {
    let shared = &*local.shared;
    let arrived = RunClock::instant();
    let entry = match shared.functions.get(name) {
        Ok(e) => e,
        Err(e) => return failure(e),
    };
    if let Err(e) = entry.admit(arrived) {
        return failure(e);
    }
    let body = match read_body(req, payload, MAX_CALL_BYTES).await {
        Ok(b) => b,
        Err(e) => return e,
    };
    let method = req.method();
    // A call of this route counts for the scale-to-zero rule
    // (`crate::slim::direct`) while it runs.
    let _counted = local.queue.direct_call(name, || true, shared.clock);
    let call = UserCall {
        method: method.as_str(),
        tail,
        query: req.query_string(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect(),
        body,
        safe_to_repeat: entry.idempotent || *method == Method::GET || *method == Method::HEAD,
    };
    invoke_with(shared, &local.pool, &entry, call, arrived)
        .await
        .unwrap_or_else(|e| e.error_response())
}

/// One call of a user function, as its worker gets it (the module doc):
/// `tail` is the path under the function (`""` or `/...`), `headers` the
/// client's (hop-by-hop and `X-Hf-*` ones are dropped here).
pub(crate) struct UserCall<'a> {
    pub(crate) method: &'a str,
    pub(crate) tail: &'a str,
    pub(crate) query: &'a str,
    pub(crate) headers: Vec<(&'a str, &'a [u8])>,
    pub(crate) body: Bytes,
    /// May it go to another node after its worker died with it in flight.
    pub(crate) safe_to_repeat: bool,
}

/// Sends `call` of `entry` through the scheduler to a worker's `/invoke`
/// (one retry per [`after_failure`]), records it in the store's counters
/// and returns the worker's reply with `X-Load-Balancing-Info` and
/// `X-Balancer-Time` (from `arrived`). Shared by `/invoke/:name` and the
/// SlimFaas routes ([`crate::slim`]); the rate limit is the caller's.
pub(crate) async fn invoke_with(
    shared: &crate::state::Shared,
    pool: &keepalive_http::Pool,
    entry: &super::Entry,
    call: UserCall<'_>,
    arrived: std::time::Instant,
) -> Result<HttpResponse, crate::error::BalancerError> {
    let name = entry.row.name.as_str();
    // The request as the worker gets it (whichever worker): the method,
    // path under the function, query, headers and body as they came,
    // less the hop-by-hop headers and the client's `X-Hf-*`, plus the
    // version to run.
    let mut target = String::with_capacity(8 + name.len() + call.tail.len() + 1 + call.query.len());
    target.push_str("/invoke/");
    target.push_str(name);
    target.push_str(call.tail);
    if !call.query.is_empty() {
        target.push('?');
        target.push_str(call.query);
    }
    let request = forwarded_request(&call, &target, entry, shared)
        .map_err(|e| crate::error::BalancerError::BadBody(e.to_string()))?;
    let mut first_failure: Option<RetriedFrom> = None;
    loop {
        let (selection, latency_ms, selected) = match shared.select(name) {
            Ok(chosen) => chosen,
            Err(e) => {
                let e: crate::error::BalancerError = e.into();
                return Err(match first_failure {
                    Some(first) => crate::error::BalancerError::WorkerUnreachable {
                        url: first.worker_node_url,
                        reason: first.reason,
                        retry: format!("no node left to retry on ({e})"),
                    },
                    None => e,
                });
            }
        };
        let mut in_flight = InFlight::new(shared, name, selection, selected);
        let node_url = in_flight.selection.url.clone();
        let authority = node_url.strip_prefix("http://").unwrap_or(&node_url);
        let time_ms = super::unix_ms();
        let reply = match pool.send(authority, &request).await {
            Ok(r) => r,
            Err(failure) if failure.reply_too_large() => {
                in_flight.finish(false, None, Duration::ZERO);
                return Err(crate::error::BalancerError::WorkerFailed {
                    url: node_url.to_string(),
                    reason: format!("its reply is larger than {MAX_CALL_BYTES} bytes"),
                });
            }
            Err(failure) => match after_failure(
                shared,
                &mut in_flight,
                &failure,
                call.safe_to_repeat,
                first_failure.as_ref(),
                crate::metrics::RetryRoute::Invoke,
                "declare \"idempotent\": true in the function's hf-function.json, or call it with GET",
            ) {
                AfterFailure::Retry(from) => {
                    first_failure = Some(from);
                    continue;
                }
                AfterFailure::Fail(e) => return Err(e),
            },
        };
        let cold = !reply
            .header("x-meta")
            .is_some_and(|m| m.contains("\"UsingExistingRestContainer\":true"));
        let internal = reply
            .header("x-internal-execution-time")
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map_or(Duration::ZERO, |ms| Duration::from_secs_f64(ms / 1e3));
        let duration = in_flight.finish(cold, Some(reply.status), internal);
        let url = in_flight.selection.url.to_string();
        shared.functions.record_call(
            entry,
            CallRow {
                time_ms,
                version: reply
                    .header("x-function-version")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(entry.row.version),
                duration_ms: duration.as_secs_f64() * 1e3,
                status: reply.status,
                cold,
                node: url.clone(),
                output: String::new(),
            },
        );
        let info = LoadBalancingInfo {
            worker_node_id: i64::from(in_flight.selection.node),
            worker_node_url: url,
            algorithm: in_flight.selection.algorithm.to_string(),
            algorithm_latency: latency_ms,
            retried_from: first_failure.take(),
        };
        let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut out = HttpResponse::build(status);
        for (k, v) in &reply.headers {
            if !hop_by_hop(k) {
                out.append_header((k.as_str(), v.as_slice()));
            }
        }
        out.insert_header((
            "X-Load-Balancing-Info",
            serde_json::to_string(&info).unwrap_or_default(),
        ))
        .insert_header((
            "X-Balancer-Time",
            format!(
                "{:.3}",
                RunClock::instant()
                    .saturating_duration_since(arrived)
                    .as_secs_f64()
                    * 1e3
            ),
        ));
        return Ok(out.body(reply.body));
    }
}

/// The request sent to the chosen worker for `call` of `entry` (module
/// doc): Err names a header or method that cannot be relayed.
fn forwarded_request(
    call: &UserCall<'_>,
    target: &str,
    entry: &super::Entry,
    shared: &crate::state::Shared,
) -> Result<keepalive_http::Request, keepalive_http::InvalidRequest> {
    let mut request = keepalive_http::Request::new(call.method, target)?;
    for (k, v) in &call.headers {
        if !hop_by_hop(k) && !k.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("x-hf-")) {
            request.header(k, v)?;
        }
    }
    request
        .header(
            "x-hf-function-version",
            entry.row.version.to_string().as_bytes(),
        )?
        .header("x-hf-function-digest", entry.row.digest.as_bytes())?;
    if let Some(bearer) = shared.config.mgmt.bearer() {
        request.header("x-hf-authorization", bearer.as_bytes())?;
    }
    request
        .body(call.body.clone())
        .max_reply_body(MAX_CALL_BYTES as usize);
    Ok(request)
}

/// Each online node's 200 reply to `GET path`, as JSON, by node URL.
async fn from_nodes(local: &Local, route: &str, path: &str) -> Vec<(String, serde_json::Value)> {
    let timeout = Duration::from_millis(local.shared.config.fanout_timeout_ms);
    call_every_node(local, route, reqwest::Method::GET, path, timeout)
        .await
        .into_iter()
        .filter_map(|(url, call)| match call {
            crate::server::NodeCall::Replied { status: 200, body } => serde_json::from_slice(&body)
                .ok()
                .map(|v| (url.to_string(), v)),
            _ => None,
        })
        .collect()
}

/// The balancer's info of `entry`, with each node's counters in `Nodes`.
fn with_nodes(entry: &super::Entry, nodes: &[(String, &serde_json::Value)]) -> serde_json::Value {
    let mut info = serde_json::to_value(FunctionStore::info_of(entry)).unwrap_or_default();
    let count = |v: &serde_json::Value, k: &str| v.get(k).and_then(|c| c.as_u64()).unwrap_or(0);
    let per_node: Vec<serde_json::Value> = nodes
        .iter()
        .map(|(url, v)| {
            serde_json::json!({"Url": url, "Version": v.get("Version"), "Calls": count(v, "Calls"),
                "Errors": count(v, "Errors"), "Warm": v.get("Warm")})
        })
        .collect();
    if let Some(o) = info.as_object_mut() {
        o.insert(
            "NodeCalls".into(),
            nodes
                .iter()
                .map(|(_, v)| count(v, "Calls"))
                .sum::<u64>()
                .into(),
        );
        o.insert(
            "NodeErrors".into(),
            nodes
                .iter()
                .map(|(_, v)| count(v, "Errors"))
                .sum::<u64>()
                .into(),
        );
        o.insert("Nodes".into(), per_node.into());
    }
    info
}

async fn info(local: &Local, name: &str) -> HttpResponse {
    let entry = match local.shared.functions.get(name) {
        Ok(e) => e,
        Err(e) => return failure(e),
    };
    let replies = from_nodes(local, "info", &format!("/info/{name}")).await;
    let nodes: Vec<(String, &serde_json::Value)> =
        replies.iter().map(|(u, v)| (u.clone(), v)).collect();
    ok_json(with_nodes(&entry, &nodes))
}

async fn info_all(local: &Local) -> HttpResponse {
    let replies = from_nodes(local, "info", "/info").await;
    let all = local.shared.functions.all();
    let functions: Vec<serde_json::Value> = all
        .iter()
        .map(|entry| {
            let nodes: Vec<(String, &serde_json::Value)> = replies
                .iter()
                .filter_map(|(url, v)| {
                    v.get("Functions")?
                        .as_array()?
                        .iter()
                        .find(|f| f.get("Name").and_then(|n| n.as_str()) == Some(&entry.row.name))
                        .map(|f| (url.clone(), f))
                })
                .collect();
            with_nodes(entry, &nodes)
        })
        .collect();
    ok_json(serde_json::json!({"Functions": functions, "Count": functions.len()}))
}

async fn logs(req: &HttpRequest, local: &Local, name: &str) -> HttpResponse {
    if let Err(e) = local.shared.functions.get(name) {
        return failure(e);
    }
    let limit = match wire::logs_limit(req.query_string()) {
        Ok(l) => l,
        Err(e) => return error_reply(400, e),
    };
    let replies = from_nodes(local, "logs", &format!("/logs/{name}?limit={limit}")).await;
    let mut merged: Vec<serde_json::Value> = replies
        .into_iter()
        .flat_map(|(url, v)| {
            let rows = v
                .get("Logs")
                .and_then(|l| l.as_array())
                .cloned()
                .unwrap_or_default();
            rows.into_iter().map(move |mut row| {
                if let Some(o) = row.as_object_mut() {
                    o.insert("NodeUrl".into(), url.clone().into());
                }
                row
            })
        })
        .collect();
    let time = |v: &serde_json::Value| v.get("TimeMs").and_then(|t| t.as_i64()).unwrap_or(0);
    merged.sort_by_key(|v| std::cmp::Reverse(time(v)));
    merged.truncate(limit);
    ok_json(serde_json::json!({"Name": name, "Logs": merged}))
}

async fn delete(local: &Local, name: &str) -> HttpResponse {
    let version = match local.shared.functions.delete(name).await {
        Ok(v) => v,
        Err(e) => return failure(e),
    };
    let timeout = Duration::from_millis(local.shared.config.fanout_timeout_ms);
    let results = call_every_node(
        local,
        "del",
        reqwest::Method::DELETE,
        &format!("/del/{name}"),
        timeout,
    )
    .await;
    let nodes: Vec<serde_json::Value> = results
        .iter()
        .map(|(url, call)| {
            let outcome = match call {
                crate::server::NodeCall::Skipped => "skipped (offline)".to_string(),
                crate::server::NodeCall::Replied { status: 200, .. } => "deleted".into(),
                crate::server::NodeCall::Replied { status: 404, .. } => "had none".into(),
                crate::server::NodeCall::Replied { status, .. } => format!("status {status}"),
                crate::server::NodeCall::Failed(reason) => reason.clone(),
            };
            serde_json::json!({"Url": &**url, "Result": outcome})
        })
        .collect();
    ok_json(
        serde_json::json!({"Message": "deleted", "Name": name, "Version": version,
        "Nodes": nodes}),
    )
}

async fn config(
    req: &HttpRequest,
    payload: web::Payload,
    store: &FunctionStore,
    name: &str,
) -> HttpResponse {
    let read = read_form(req, payload, wire::CONFIG_BODY_LIMIT, |_, body| {
        wire::rate_config(body)
    });
    let rate = match read.await {
        Ok(r) => r,
        Err(e) => return e,
    };
    match store.set_rate(name, rate).await {
        Ok(()) => ok_json(wire::configured(name, rate)),
        Err(e) => failure(e),
    }
}
