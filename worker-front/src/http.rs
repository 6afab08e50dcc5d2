//! The HTTP edge (actix-web): parses requests into [`crate::worker::Worker`]
//! calls and turns results and errors into JSON replies.
//!
//! Routes (the original's names and reply shapes; Prev/HotFunctions
//! `worker_front/request_handler.go`):
//! - `GET /execute?name=F` → `WorkerReply` (`Result`, `ExecutionTime`,
//!   `InternalExecutionTime`, `Meta`);
//! - `GET /configure?user_code_size_limit=&container_pool_limit=&container_pool_num=&using_rest_mode=&rest_container_life_time=`
//!   → `{"Message": "configure changed" | "nothing changed", "State": {...}}`;
//! - `GET /clear[?reset_images=true]` → `{"Message": "cleared", "Removed": {...}}`;
//! - `GET /prepare` → `{"Message": ..., "Built": n, "Failed": [...]}`;
//! - `GET /health` → `{"Status": "ok", "Runtime", "Engine", ...counters}` or 503.
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
//! Errors are `{"Error": true, "Message": ...}` with 400 (bad query), 404
//! (unknown function or path), 500 (a function or the runtime failed) or 503
//! (the runtime's engine is unreachable). The worker's work runs in tasks
//! of its own, so a client that disconnects never cancels a call halfway:
//! the policies' accounting always completes. Warm REST calls (image cached,
//! instance running: only an HTTP hop to the instance) run on the actix
//! thread that received them; everything else (builds, instance starts,
//! engine calls) runs on the main tokio runtime.

// Early-return `Result<_, HttpResponse>` keeps handlers flat; responses are
// built once per request, so their size does not matter.
#![allow(clippy::result_large_err)]

use crate::runtime::Runtime;
use crate::worker::{Worker, WorkerError};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use protocol::ErrorReply;
use tokio::runtime::Handle;

struct AppState<R> {
    worker: Worker<R>,
    handle: Handle,
}

fn json(status: u16, body: String) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json")
        .body(body)
}

fn error(status: u16, message: impl Into<String>) -> HttpResponse {
    json(status, ErrorReply::new(message).to_json())
}

/// The HTTP status of a worker error (the only place statuses are chosen).
fn worker_error(e: WorkerError) -> HttpResponse {
    let status = match &e {
        WorkerError::UnknownFunction(_) => 404,
        WorkerError::Options(_) => 400,
        WorkerError::Runtime(r) => r.http_status(),
    };
    error(status, e.to_string())
}

fn query_pairs(req: &HttpRequest) -> Result<Vec<(String, String)>, HttpResponse> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| error(400, format!("bad query string: {e}")))
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

async fn execute<R: Runtime>(state: web::Data<AppState<R>>, req: HttpRequest) -> HttpResponse {
    let pairs = match query_pairs(&req) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(name) = pairs.into_iter().find(|(k, _)| k == "name").map(|(_, v)| v) else {
        return error(400, "param 'name' is not given");
    };
    let result = if state.worker.serves_warm(&name) {
        // A warm call is one loopback hop to the instance: run it on this
        // HTTP thread (its own task, so a disconnecting client still never
        // cancels it), where its pooled instance connections live, instead
        // of crossing to the main runtime and back (two thread wake-ups per
        // call on a small machine).
        let w = state.worker.clone();
        actix_web::rt::spawn(async move { w.execute(&name).await })
            .await
            .map_err(|e| error(500, format!("internal task failed: {e}")))
    } else {
        on_main(&state, move |w| async move { w.execute(&name).await }).await
    };
    match result {
        Ok(Ok(reply)) => match serde_json::to_string(&reply) {
            Ok(body) => json(200, body),
            Err(e) => error(500, e.to_string()),
        },
        Ok(Err(e)) => worker_error(e),
        Err(r) => r,
    }
}

async fn configure<R: Runtime>(state: web::Data<AppState<R>>, req: HttpRequest) -> HttpResponse {
    let pairs = match query_pairs(&req) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let r = on_main(&state, move |w| async move {
        w.configure(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    })
    .await;
    match r {
        Ok(Ok((message, options))) => json(
            200,
            serde_json::json!({"Message": message, "State": options}).to_string(),
        ),
        Ok(Err(e)) => worker_error(e),
        Err(r) => r,
    }
}

async fn clear<R: Runtime>(state: web::Data<AppState<R>>, req: HttpRequest) -> HttpResponse {
    let pairs = match query_pairs(&req) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut reset_images = false;
    for (k, v) in pairs {
        match (k.as_str(), v.as_str()) {
            ("reset_images", "true" | "1") => reset_images = true,
            ("reset_images", "false" | "0" | "") => reset_images = false,
            ("reset_images", other) => {
                return error(400, format!("reset_images: {other:?} is not true/false"))
            }
            (other, _) => return error(400, format!("unknown parameter {other:?}")),
        }
    }
    match on_main(&state, move |w| async move { w.clear(reset_images).await }).await {
        Ok(Ok(removed)) => json(
            200,
            serde_json::json!({"Message": "cleared", "ResetImages": reset_images, "Removed": removed})
                .to_string(),
        ),
        Ok(Err(e)) => worker_error(e),
        Err(r) => r,
    }
}

async fn prepare<R: Runtime>(state: web::Data<AppState<R>>) -> HttpResponse {
    match on_main(&state, |w| async move { w.prepare().await }).await {
        Ok((built, failed)) => {
            let status = if failed.is_empty() { 200 } else { 500 };
            json(
                status,
                serde_json::json!({
                    "Message": if failed.is_empty() { "prepared" } else { "some images failed" },
                    "Built": built,
                    "Failed": failed,
                })
                .to_string(),
            )
        }
        Err(r) => r,
    }
}

async fn health<R: Runtime>(state: web::Data<AppState<R>>) -> HttpResponse {
    let r = on_main(&state, |w| async move {
        let h = w.runtime().health().await;
        (h, w.status())
    })
    .await;
    match r {
        Ok((Ok(h), status)) => json(
            200,
            serde_json::json!({
                "Status": "ok",
                "Runtime": h.runtime,
                "Engine": h.engine,
                "Worker": status,
            })
            .to_string(),
        ),
        Ok((Err(e), _)) => error(e.http_status(), e.to_string()),
        Err(r) => r,
    }
}

async fn not_found() -> HttpResponse {
    error(404, "404 Not found on given path")
}

/// Builds the actix server on `listener` (not started until awaited).
pub fn server<R: Runtime>(
    worker: Worker<R>,
    listener: std::net::TcpListener,
    http_workers: usize,
) -> std::io::Result<actix_web::dev::Server> {
    let handle = Handle::current();
    let data = web::Data::new(AppState { worker, handle });
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/execute", web::route().to(execute::<R>))
            .route("/configure", web::route().to(configure::<R>))
            .route("/clear", web::route().to(clear::<R>))
            .route("/prepare", web::route().to(prepare::<R>))
            .route("/health", web::route().to(health::<R>))
            .default_service(web::to(not_found))
    })
    .workers(http_workers.max(1))
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)?
    .run())
}
