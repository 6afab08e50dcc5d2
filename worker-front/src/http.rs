//! The HTTP edge (actix-web): parses requests into a typed
//! [`crate::action::Action`], has the [`crate::worker::Worker`] carry it
//! out, and turns results and errors into JSON replies (HTTP statuses are
//! chosen here, and only here).
//!
//! Routes (the original's names and reply shapes; Prev/HotFunctions
//! `worker_front/request_handler.go`):
//! - `GET /execute?name=F` → `WorkerReply` (`Result`, `ExecutionTime`,
//!   `InternalExecutionTime`, `Meta`); with `&duration_ms=&memory_mb=&cpu_share=`
//!   a catalog file's function runs that shape (`crate::worker`; 400 when
//!   refused);
//! - `GET /configure?user_code_size_limit=&container_pool_limit=&container_pool_num=&using_rest_mode=&rest_container_life_time=`
//!   → `{"Message": "configure changed" | "nothing changed", "State": {...},
//!   "Ignored": [...]}`;
//! - `GET /clear[?reset_images=true]` → `{"Message": "cleared", "Removed": {...}}`;
//! - `GET /prepare` → `{"Message": ..., "Built": n, "Failed": [...]}`;
//! - `GET /health` → `{"Status": "ok", "Runtime", "Engine",
//!   "EngineCheckedMsAgo", "Worker": {...counters, "CallsInFlight"}}`, or
//!   503 `{"Error": true, "Message": <why, naming the engine>, "Status":
//!   "unhealthy", ...}` when the engine did not answer its latest probe
//!   (or a call found it unavailable since); answered on the HTTP thread
//!   from state kept current elsewhere, so function work cannot starve it
//!   ([`crate::health`]).
//!
//! - `GET /metrics` → the worker's Prometheus metrics in the OpenMetrics
//!   text format ([`crate::metrics`]; open like `/health`), or 404 with
//!   `--no-metrics`.
//! - `GET /instances?name=F` → `{"Function": F, "Ready": r, "Starting":
//!   s}`: F's instances on this worker (a sample's, as the node model
//!   counts them: pooled, REST or keep-alive instances, not one-shot
//!   ones; a user function's warm instance); `GET /instances` →
//!   `{"Functions": [...]}`, every function that has any. Open like
//!   `/health`. For the balancer's scale to zero (issue 15).
//! - `GET /scale?name=F&instances=N` (management): `N = 0` removes every
//!   instance of F (busy ones once their calls end; the image stays) →
//!   `{"Message": "scaled to zero", "Removed": n, ...}`; `N > 0` (at most
//!   `action::MAX_SCALE_INSTANCES`) starts instances of F up to N on this
//!   worker, building its image first if needed → `{"Message":
//!   "starting", "Started": n, ...}` (they come up in the background:
//!   `/instances` shows them). What can start depends on the instance
//!   model (`policy::node::NodeModel::start_instances`): the Lambda model
//!   starts keep-alive instances, REST mode the function's one REST
//!   instance; HotFunctions without REST mode has none to start (409), a
//!   user function its one warm instance. Unknown function: 404; a bad or
//!   missing `name` or `instances`: 400; an image being built by another
//!   request: 503 (ask again).
//!
//! As in the original, any method is accepted (`GET` is what clients use).
//!
//! Differences from the original, on purpose: switching `using_rest_mode`
//! keeps the images (one `hf-fn` binary serves both modes, where the
//! original needed other images and forgot its image list); switching it
//! off removes the REST instances, switching it on removes the pools.
//! `/clear` also stops calls still running in one-shot instances (they
//! answer 500), as the original's forced container removal did.
//!
//! `/configure` and the balancer's keys: the original Go balancer forwards
//! its whole `/configure` query to every worker, `lb=` and its algorithm
//! parameters included, and the original worker ignores keys it does not
//! know. This worker ignores exactly the balancer's keys (`lb`, `seed`, the
//! scheduler registry's parameter names such as `T` or `ALPHA`, and any
//! `<alg>.<NAME>`; [`split_configure_query`]) and lists them in the reply's
//! `Ignored`; bad values of its own keys are still a 400, and so is any
//! other unknown key (on purpose, unlike the original: a typo such as
//! `container_pool_nun=3` must not silently leave an experiment
//! misconfigured). A refused query changes nothing.
//!
//! Management (issue 13): `/configure`, `/clear`, `/prepare` and `/scale` follow
//! [`protocol::mgmt`]'s rule, checked before the request is parsed:
//! loopback peers need no token (unless `--mgmt-require-token`), others
//! need `Authorization: Bearer <token>` (401), and a worker without a
//! token refuses them outright (403). With a separate management listener
//! (`--mgmt-listen`), they are served there only (403 on the data port).
//! `/execute` and `/health` are always open. `/configure` values beyond
//! their bounds ([`crate::limits`]) are a 400 that changes nothing.
//!
//! Errors are `{"Error": true, "Message": ...}` with 400 (bad query), 401
//! and 403 (management refused), 404
//! (unknown function or path), 500 (a function or the runtime failed) or 503
//! (the runtime's engine is unreachable). The worker's work runs in tasks
//! of its own, so a client that disconnects never cancels a call halfway:
//! the policies' accounting always completes. `/health` never leaves the
//! HTTP thread that received it. Warm REST calls (image cached,
//! instance running: only an HTTP hop to the instance) run on the actix
//! thread that received them; everything else (builds, instance starts,
//! engine calls) runs on the main tokio runtime.

// Early-return `Result<_, HttpResponse>` keeps handlers flat; responses are
// built once per request, so their size does not matter.
#![allow(clippy::result_large_err)]

use crate::action::{Action, ActionError};
use crate::runtime::{Runtime, RuntimeError};
use crate::worker::{Worker, WorkerError};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse};
use tokio::runtime::Handle;

struct AppState<R> {
    worker: Worker<R>,
    handle: Handle,
    mgmt: protocol::mgmt::ManagementConfig,
    /// The separate management listener's address, if any.
    management_addr: Option<std::net::SocketAddr>,
    /// `/metrics` (None: `--no-metrics`).
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
    /// Users' own functions, when they are served: their routes
    /// (`/deploy`, `/invoke/:name`...), `/instances` and `/scale`.
    functions: Option<crate::functions::http::FunctionsState>,
}

impl<R> AppState<R> {
    /// Users' own functions, if served.
    fn user_functions(&self) -> Option<&crate::functions::Functions> {
        self.functions.as_ref().map(|f| &f.functions)
    }
}

/// The sockets the worker serves and who may manage it.
#[derive(Debug)]
pub struct Listeners {
    /// Every route (management ones too unless `management` is given).
    pub data: std::net::TcpListener,
    /// Where management routes are served, if apart from `data`.
    pub management: Option<std::net::TcpListener>,
    pub mgmt: protocol::mgmt::ManagementConfig,
}

/// Refuses a management request that may not go on (module doc).
fn authorize<R>(state: &AppState<R>, req: &HttpRequest) -> Result<(), HttpResponse> {
    authorize_with(&state.mgmt, state.management_addr, req)
}

/// [`authorize`] from its parts (the user functions' routes use it too).
fn authorize_with(
    mgmt: &protocol::mgmt::ManagementConfig,
    management_addr: Option<std::net::SocketAddr>,
    req: &HttpRequest,
) -> Result<(), HttpResponse> {
    if let Some(management) = management_addr {
        if http_front::local_addr(req) != Some(management) {
            return Err(error(
                403,
                format!(
                    "management routes are served on the management listener only ({management})"
                ),
            ));
        }
    }
    let authorization = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    mgmt
        .check(req.peer_addr().map(|a| a.ip()), authorization)
        .map_err(|denied| {
            tracing::warn!(peer = ?req.peer_addr(), path = req.path(), %denied, "management request refused");
            let mut reply = error(denied.status(), denied.to_string());
            if denied.status() == 401 {
                reply.headers_mut().insert(
                    actix_web::http::header::WWW_AUTHENTICATE,
                    actix_web::http::header::HeaderValue::from_static("Bearer"),
                );
            }
            reply
        })
}

pub(crate) fn json(status: u16, body: String) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json")
        .body(body)
}

/// The testbed's JSON error reply (one builder for the worker, the
/// balancer and their HTTP front: [`http_front::error_reply`]).
pub(crate) use http_front::error_reply as error;

/// The HTTP status of a runtime failure: 503 when the engine does not
/// answer (the worker keeps serving; a later call tries again), else 500.
pub fn runtime_status(e: &RuntimeError) -> u16 {
    match e {
        RuntimeError::EngineUnavailable(_) => 503,
        _ => 500,
    }
}

/// The HTTP status of a worker error (statuses are chosen here only).
fn worker_error(e: WorkerError) -> HttpResponse {
    let status = match &e {
        WorkerError::UnknownFunction(_) => 404,
        WorkerError::Options(_) | WorkerError::BadCall(_) => 400,
        WorkerError::Runtime(r) => runtime_status(r),
        WorkerError::Busy(_) => 503,
        WorkerError::NothingToStart(_) => 409,
    };
    error(status, e.to_string())
}

fn action_error(e: ActionError) -> HttpResponse {
    let status = match e {
        ActionError::MissingName | ActionError::BadParameter(_) => 400,
        ActionError::NotFound => 404,
    };
    error(status, e.to_string())
}

/// Runs `f` on the main runtime and awaits it.
async fn on_main<R, T, F, Fut>(state: &AppState<R>, f: F) -> Result<T, HttpResponse>
where
    R: Runtime,
    T: Send + 'static,
    F: FnOnce(Worker<R>) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    state
        .handle
        .spawn(f(state.worker.clone()))
        .await
        .map_err(|e| error(500, format!("internal task failed: {e}")))
}

/// Every request: a Glambdar route of users' functions when they are
/// served (`functions::http::Route`), else parsed into an [`Action`];
/// handled, answered. Both parsed by hand: no router's regex runs per
/// request.
async fn dispatch<R: Runtime>(
    state: web::Data<AppState<R>>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    if let Some(functions) = &state.functions {
        if let Some(route) = crate::functions::http::Route::parse(req.method().as_str(), req.path())
        {
            if let Some(reply) =
                crate::functions::http::handle(functions, route, &req, payload).await
            {
                return reply;
            }
        }
    }
    if crate::action::is_management(req.path()) {
        if let Err(refused) = authorize(&state, &req) {
            return refused;
        }
    }
    let action = match Action::parse(req.path(), req.query_string()) {
        Ok(a) => a,
        Err(e) => return action_error(e),
    };
    let r = match action {
        Action::Execute { function, shape } => execute(&state, function, shape).await,
        Action::Configure { pairs } => configure(&state, pairs).await,
        Action::Clear { reset_images } => clear(&state, reset_images).await,
        Action::Prepare => prepare(&state).await,
        Action::Health => health(&state).await,
        Action::Metrics => Ok(metrics_reply(&state)),
        Action::Instances { function } => instances(&state, function),
        Action::Scale {
            function,
            instances,
        } => scale(&state, function, instances).await,
    };
    r.unwrap_or_else(|response| response)
}

async fn execute<R: Runtime>(
    state: &AppState<R>,
    name: String,
    shape: protocol::query::CallParams,
) -> Result<HttpResponse, HttpResponse> {
    #[allow(clippy::disallowed_methods)] // the call's duration for `/metrics`
    let started = state.metrics.as_ref().map(|_| std::time::Instant::now());
    let (name, result) = if state.worker.serves_warm(&name) {
        // A warm call is one loopback hop to the instance: run it on this
        // HTTP thread (its own task, so a disconnecting client still never
        // cancels it), where its pooled instance connections live, instead
        // of crossing to the main runtime and back (two thread wake-ups per
        // call on a small machine).
        let w = state.worker.clone();
        actix_web::rt::spawn(async move {
            let r = w.execute_with(&name, shape).await;
            (name, r)
        })
        .await
        .map_err(|e| error(500, format!("internal task failed: {e}")))?
    } else {
        on_main(state, move |w| async move {
            let r = w.execute_with(&name, shape).await;
            (name, r)
        })
        .await?
    };
    let reply = result.map_err(worker_error).and_then(|reply| {
        serde_json::to_string(&reply)
            .map(|body| (json(200, body), reply.meta.is_cold()))
            .map_err(|e| error(500, e.to_string()))
    });
    if let (Some(metrics), Some(started)) = (&state.metrics, started) {
        let (status, cold) = match &reply {
            Ok((r, cold)) => (r.status().as_u16(), Some(*cold)),
            Err(r) => (r.status().as_u16(), None),
        };
        // A function the worker does not serve is not given a label.
        let served = status != 404;
        metrics.call_finished(
            served.then_some(name.as_str()),
            status,
            cold,
            started.elapsed(),
        );
    }
    reply.map(|(r, _)| r)
}

/// A function's instances on this worker: a sample's (the node model's
/// count), else a user function's warm instance; 404 for neither.
fn instances_of<R: Runtime>(
    state: &AppState<R>,
    function: &str,
) -> Result<(usize, usize), HttpResponse> {
    match state.worker.function_instances(function) {
        Ok(counts) => Ok(counts),
        Err(WorkerError::UnknownFunction(_)) if state.functions.is_some() => state
            .user_functions()
            .map_or(Ok((0, 0)), |f| f.warm_instances(function))
            .map_err(|e| error(crate::functions::http::status_of(&e), e.to_string())),
        Err(e) => Err(worker_error(e)),
    }
}

fn instances_json(function: &str, (ready, starting): (usize, usize)) -> serde_json::Value {
    serde_json::json!({"Function": function, "Ready": ready, "Starting": starting})
}

/// `/instances[?name=F]` (module doc).
fn instances<R: Runtime>(
    state: &AppState<R>,
    function: Option<String>,
) -> Result<HttpResponse, HttpResponse> {
    if let Some(f) = function {
        let counts = instances_of(state, &f)?;
        return Ok(json(200, instances_json(&f, counts).to_string()));
    }
    // A user function's versions are the model's `<name>@<deploy>`:
    // counted under the function's name (a replaced version's draining
    // instances with the new one's).
    let mut users: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    let mut all: Vec<serde_json::Value> = Vec::new();
    for (f, ready, starting) in state.worker.instances_by_function() {
        match crate::functions::Functions::name_of_key(&f) {
            Some(name) => {
                let counts = users.entry(name.to_string()).or_default();
                counts.0 += ready;
                counts.1 += starting;
            }
            None => all.push(instances_json(&f, (ready, starting))),
        }
    }
    all.extend(users.iter().map(|(f, counts)| instances_json(f, *counts)));
    Ok(json(
        200,
        serde_json::json!({ "Functions": all }).to_string(),
    ))
}

/// `/scale?name=F&instances=N` (module doc).
async fn scale<R: Runtime>(
    state: &AppState<R>,
    function: String,
    n: u32,
) -> Result<HttpResponse, HttpResponse> {
    let sample = match state.worker.function_instances(&function) {
        Ok(_) => true,
        Err(WorkerError::UnknownFunction(_)) => false,
        Err(e) => return Err(worker_error(e)),
    };
    let user_error = |e: crate::functions::FunctionError| {
        error(crate::functions::http::status_of(&e), e.to_string())
    };
    let user = || {
        state
            .user_functions()
            .cloned()
            .ok_or_else(|| worker_error(WorkerError::UnknownFunction(function.clone())))
    };
    let (message, key, count) = if n == 0 {
        let removed = if sample {
            state
                .worker
                .remove_function_instances(&function)
                .map_err(worker_error)?
        } else {
            user()?.stop_warm(&function).map_err(user_error)?
        };
        ("scaled to zero", "Removed", removed)
    } else if sample {
        let name = function.clone();
        let started = on_main(state, move |w| async move {
            w.start_instances(&name, n as usize).await
        })
        .await?
        .map_err(worker_error)?;
        ("starting", "Started", started)
    } else {
        let functions = user()?;
        let name = function.clone();
        let started = state
            .handle
            .spawn(async move { functions.start_warm(&name, n as usize).await })
            .await
            .map_err(|e| error(500, format!("internal task failed: {e}")))?
            .map_err(user_error)?;
        ("starting", "Started", started)
    };
    let mut reply = instances_json(&function, instances_of(state, &function)?);
    reply["Message"] = message.into();
    reply[key] = count.into();
    Ok(json(200, reply.to_string()))
}

/// `GET /metrics` ([`crate::metrics`]): 404 with `--no-metrics`.
fn metrics_reply<R: Runtime>(state: &AppState<R>) -> HttpResponse {
    let Some(metrics) = &state.metrics else {
        return error(404, "metrics are off (--no-metrics)");
    };
    HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(metrics.render(&state.worker.metrics_snapshot()))
}

/// The `/configure` key that names the balancer's algorithm.
pub const BALANCER_ALGORITHM_KEY: &str = "lb";

/// Splits a `/configure` query into the worker's pairs and the keys that
/// belong to the balancer (`lb`, and whatever the scheduler registry
/// claims: `seed`, a parameter name such as `T`, or `<alg>.<NAME>`), which
/// the worker ignores: the original Go balancer forwards its whole query.
/// The ignored keys come back in query order, each once.
pub fn split_configure_query(pairs: Vec<(String, String)>) -> (Vec<(String, String)>, Vec<String>) {
    let mut ignored: Vec<String> = Vec::new();
    let mut own = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        if k == BALANCER_ALGORITHM_KEY || policy::scheduler::ParamSet::claims(&k) {
            if !ignored.contains(&k) {
                ignored.push(k);
            }
        } else {
            own.push((k, v));
        }
    }
    (own, ignored)
}

async fn configure<R: Runtime>(
    state: &AppState<R>,
    pairs: Vec<(String, String)>,
) -> Result<HttpResponse, HttpResponse> {
    let (own, ignored) = split_configure_query(pairs);
    crate::limits::check_query(own.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| error(400, e.to_string()))?;
    let (message, options) = on_main(state, move |w| async move {
        w.configure(own.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    })
    .await?
    .map_err(worker_error)?;
    Ok(json(
        200,
        serde_json::json!({"Message": message, "State": options, "Ignored": ignored}).to_string(),
    ))
}

async fn clear<R: Runtime>(
    state: &AppState<R>,
    reset_images: bool,
) -> Result<HttpResponse, HttpResponse> {
    let removed = on_main(state, move |w| async move { w.clear(reset_images).await })
        .await?
        .map_err(worker_error)?;
    Ok(json(
        200,
        serde_json::json!({"Message": "cleared", "ResetImages": reset_images, "Removed": removed})
            .to_string(),
    ))
}

async fn prepare<R: Runtime>(state: &AppState<R>) -> Result<HttpResponse, HttpResponse> {
    let (built, failed) = on_main(state, |w| async move { w.prepare().await }).await?;
    let status = if failed.is_empty() { 200 } else { 500 };
    Ok(json(
        status,
        serde_json::json!({
            "Message": if failed.is_empty() { "prepared" } else { "some images failed" },
            "Built": built,
            "Failed": failed,
        })
        .to_string(),
    ))
}

/// `/health`, answered on this HTTP thread from the worker's counters and
/// the latest engine reading (`crate::health`): never queued behind
/// function work on the main runtime, never waiting for the engine (only,
/// right after start, for the first probe, bounded).
/// What `/health` says of the worker's own code: its version, and the
/// revision of the sources it was built from (`null` if unknown), so a
/// profile calibrated on it or a run served by it can record them.
fn build_json() -> (serde_json::Value, serde_json::Value) {
    let revision = source_revision::built_from!()
        .map(|r| serde_json::json!({"Commit": r.commit, "Dirty": r.dirty}));
    (env!("CARGO_PKG_VERSION").into(), revision.into())
}

async fn health<R: Runtime>(state: &AppState<R>) -> Result<HttpResponse, HttpResponse> {
    let (version, revision) = build_json();
    let w = &state.worker;
    let first_probe = crate::health::MAX_PROBE_BOUND + crate::health::PROBE_INTERVAL;
    let reading = w.engine_reading_within(first_probe).await;
    let status = w.status();
    let runtime = w.runtime().name();
    let Some(reading) = reading else {
        let message = format!(
            "runtime engine unavailable: no engine probe of {} has finished within {} ms of the worker's start",
            w.runtime().engine_label(),
            first_probe.as_millis()
        );
        return Ok(json(
            503,
            serde_json::json!({"Error": true, "Message": message, "Status": "unhealthy",
                "Runtime": runtime, "Worker": status, "Version": version,
                "Revision": revision})
            .to_string(),
        ));
    };
    let age = reading.age_ms();
    match reading.result {
        Ok(h) => Ok(json(
            200,
            serde_json::json!({
                "Status": "ok",
                "Runtime": h.runtime,
                "Engine": h.engine,
                "EngineCheckedMsAgo": age,
                "Worker": status,
                "Version": version,
                "Revision": revision,
            })
            .to_string(),
        )),
        Err(message) => Ok(json(
            503,
            serde_json::json!({
                "Error": true,
                "Message": message,
                "Status": "unhealthy",
                "Runtime": runtime,
                "Engine": w.runtime().engine_label(),
                "EngineCheckedMsAgo": age,
                "EngineCheckedBy": reading.source,
                "Worker": status,
                "Version": version,
                "Revision": revision,
            })
            .to_string(),
        )),
    }
}

/// Builds the actix server on `listener` (not started until awaited),
/// management from loopback peers only.
pub fn server<R: Runtime>(
    worker: Worker<R>,
    listener: std::net::TcpListener,
    http_workers: usize,
) -> std::io::Result<actix_web::dev::Server> {
    server_with(
        worker,
        Listeners {
            data: listener,
            management: None,
            mgmt: Default::default(),
        },
        http_workers,
    )
}

/// Builds the actix server on `listeners` (not started until awaited).
pub fn server_with<R: Runtime>(
    worker: Worker<R>,
    listeners: Listeners,
    http_workers: usize,
) -> std::io::Result<actix_web::dev::Server> {
    server_with_functions(worker, listeners, http_workers, None)
}

/// [`server_with`], serving users' own functions too (the Glambdar
/// routes of [`crate::functions::http`]) when `functions` is given.
pub fn server_with_functions<R: Runtime>(
    worker: Worker<R>,
    listeners: Listeners,
    http_workers: usize,
    functions: Option<crate::functions::Functions>,
) -> std::io::Result<actix_web::dev::Server> {
    let metrics = Some(std::sync::Arc::new(crate::metrics::Metrics::new()));
    server_with_metrics(worker, listeners, http_workers, functions, metrics)
}

/// [`server_with_functions`], counting calls for `/metrics` into
/// `metrics` (None: `/metrics` answers 404, nothing is counted).
pub fn server_with_metrics<R: Runtime>(
    worker: Worker<R>,
    listeners: Listeners,
    http_workers: usize,
    functions: Option<crate::functions::Functions>,
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
) -> std::io::Result<actix_web::dev::Server> {
    let handle = Handle::current();
    let management_addr = match &listeners.management {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let functions = functions.map(|functions| {
        let mgmt = listeners.mgmt.clone();
        crate::functions::http::FunctionsState {
            functions,
            handle: handle.clone(),
            authorize_package: {
                let mgmt = mgmt.clone();
                std::sync::Arc::new(move |req: &HttpRequest| {
                    let token = req
                        .headers()
                        .get("x-hf-authorization")
                        .map(|v| v.as_bytes());
                    mgmt.check(req.peer_addr().map(|a| a.ip()), token)
                        .map_err(|denied| error(denied.status(), denied.to_string()))
                })
            },
            authorize: std::sync::Arc::new(move |req: &HttpRequest| {
                authorize_with(&mgmt, management_addr, req)
            }),
        }
    });
    let data = web::Data::new(AppState {
        worker,
        handle,
        mgmt: listeners.mgmt,
        management_addr,
        metrics,
        functions,
    });
    let mut all = vec![listeners.data];
    all.extend(listeners.management);
    // The testbed's HTTP time-outs, not actix's 5-s defaults (module doc
    // of `protocol::timeouts`), and a JSON answer to an over-long request
    // line (`http_front`).
    let settings = http_front::Settings {
        workers: http_workers.max(1),
        ..Default::default()
    };
    http_front::serve(
        move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(dispatch::<R>))
        },
        all,
        &settings,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `handler` returns.
    fn future_size<F, Fut>(_handler: F) -> usize
    where
        F: Fn(
            web::Data<AppState<crate::runtime::process::ProcessRuntime>>,
            HttpRequest,
            web::Payload,
        ) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    /// actix allocates the dispatch future for every request (`/execute`
    /// and `/invoke` alike): it must stay within malloc's per-thread
    /// cache (1,032 bytes in glibc).
    #[test]
    fn the_dispatch_future_is_small() {
        let size = future_size(dispatch::<crate::runtime::process::ProcessRuntime>);
        assert!(size <= 1024, "the dispatch future is {size} bytes");
    }

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_balancers_keys_are_split_off_and_the_workers_kept() {
        let (own, ignored) = split_configure_query(pairs(&[
            ("lb", "ch"),
            ("T", "4"),
            ("container_pool_num", "3"),
            ("ch.T", "4"),
            ("seed", "7"),
            ("T", "5"),
            ("container_pool_nun", "3"),
        ]));
        assert_eq!(
            own,
            pairs(&[("container_pool_num", "3"), ("container_pool_nun", "3")])
        );
        assert_eq!(ignored, ["lb", "T", "ch.T", "seed"]);
        // None of the worker's own keys is a scheduler parameter's.
        for key in [
            "user_code_size_limit",
            "image_limit",
            "container_pool_limit",
            "container_pool_num",
            "using_rest_mode",
            "rest_container_life_time",
        ] {
            let (own, ignored) = split_configure_query(pairs(&[(key, "1")]));
            assert_eq!((own.len(), ignored.len()), (1, 0), "{key}");
        }
    }
}
