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
//! Management (issue 13): `/configure`, `/clear` and `/prepare` follow
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
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use protocol::ErrorReply;
use tokio::runtime::Handle;

struct AppState<R> {
    worker: Worker<R>,
    handle: Handle,
    mgmt: protocol::mgmt::ManagementConfig,
    /// The separate management listener's address, if any.
    management_addr: Option<std::net::SocketAddr>,
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
        if req.app_config().local_addr() != management {
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

pub(crate) fn error(status: u16, message: impl Into<String>) -> HttpResponse {
    json(status, ErrorReply::new(message).to_json())
}

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

/// Every request: parsed into an [`Action`], handled, answered.
async fn dispatch<R: Runtime>(state: web::Data<AppState<R>>, req: HttpRequest) -> HttpResponse {
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
    };
    r.unwrap_or_else(|response| response)
}

async fn execute<R: Runtime>(
    state: &AppState<R>,
    name: String,
    shape: protocol::query::CallParams,
) -> Result<HttpResponse, HttpResponse> {
    let result = if state.worker.serves_warm(&name) {
        // A warm call is one loopback hop to the instance: run it on this
        // HTTP thread (its own task, so a disconnecting client still never
        // cancels it), where its pooled instance connections live, instead
        // of crossing to the main runtime and back (two thread wake-ups per
        // call on a small machine).
        let w = state.worker.clone();
        actix_web::rt::spawn(async move { w.execute_with(&name, shape).await })
            .await
            .map_err(|e| error(500, format!("internal task failed: {e}")))?
    } else {
        on_main(
            state,
            move |w| async move { w.execute_with(&name, shape).await },
        )
        .await?
    };
    let reply = result.map_err(worker_error)?;
    serde_json::to_string(&reply)
        .map(|body| json(200, body))
        .map_err(|e| error(500, e.to_string()))
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
async fn health<R: Runtime>(state: &AppState<R>) -> Result<HttpResponse, HttpResponse> {
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
                "Runtime": runtime, "Worker": status})
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
    let handle = Handle::current();
    let management_addr = match &listeners.management {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let functions = functions.map(|functions| {
        let mgmt = listeners.mgmt.clone();
        web::Data::new(crate::functions::http::FunctionsState {
            functions,
            handle: handle.clone(),
            authorize: std::sync::Arc::new(move |req: &HttpRequest| {
                authorize_with(&mgmt, management_addr, req)
            }),
        })
    });
    let data = web::Data::new(AppState {
        worker,
        handle,
        mgmt: listeners.mgmt,
        management_addr,
    });
    let server = HttpServer::new(move || {
        let functions = functions.clone();
        App::new()
            .app_data(data.clone())
            .configure(move |cfg| {
                if let Some(f) = functions {
                    crate::functions::http::routes(cfg, f);
                }
            })
            .default_service(web::to(dispatch::<R>))
    })
    .workers(http_workers.max(1))
    // The testbed's HTTP time-outs, not actix's 5-s defaults (module doc
    // of `protocol::timeouts`).
    .client_request_timeout(protocol::timeouts::REQUEST_HEAD)
    .keep_alive(protocol::timeouts::SERVER_KEEP_ALIVE)
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listeners.data)?;
    Ok(match listeners.management {
        Some(l) => server.listen(l)?,
        None => server,
    }
    .run())
}

#[cfg(test)]
mod tests {
    use super::*;

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
