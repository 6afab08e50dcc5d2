//! The Glambdar routes on the worker (issue 14 §1).
//!
//! | route | what |
//! |---|---|
//! | `POST /deploy` | multipart form: `file` (the zip), optional `funcName` (else the zip's file name without `.zip`), optional `rateLimit` (calls/s, 0 = unlimited) |
//! | `ANY /invoke/:name[/path]` | the call: method, headers, query, body go to the function; its status, headers, body come back |
//! | `GET /info`, `GET /info/:name` | metadata: version, digest, size, deployed at, calls, errors, mean duration, last call, rate limit |
//! | `GET /logs/:name?limit=N` | the last calls (at most `store::LOG_KEEP`), newest first |
//! | `DELETE /del/:name` | removes the function, its code, logs and instances |
//! | `POST /config/:name` | `{"rateLimit": r}`: token bucket at r/s, burst max(1, r/10) |
//!
//! A call's reply carries how it was served in headers: `X-Execution-Time`
//! and `X-Internal-Execution-Time` (ms, the worker's and the function's
//! share, as `ExecutionTime` / `InternalExecutionTime` of `/execute`),
//! `X-Meta` (the `Meta` JSON of `/execute`: `UsingExistingRestContainer`
//! is true for a warm call, `ContainerName` the instance,
//! `ImageName` `<name>@v<version>`) and `X-Function-Version`.
//!
//! A warm call (REST mode, and the function's current version has its
//! instance up: `NodeModel::serves_warm`) runs on the HTTP thread that
//! received it, in a task of its own, and
//! reaches the instance over that thread's keep-alive connections
//! (`instance::invoke`); a cold one (fetch, unpack, start) runs on the
//! worker's main runtime. Either way a client that goes away never
//! cancels a call halfway.
//!
//! Errors are `{"Error": true, "Message": ...}`: 400 (bad name, bad
//! package, bad request), 404 (no such function), 413 (upload over the
//! limit), 429 (over the rate limit), 500 (the store failed), 502 (the
//! function could not start, crashed, or replied too much or badly), 504
//! (its timeout passed), 507 (the worker's disk is full). `/deploy`, `/del` and `/config` are management
//! routes (`protocol::mgmt`: loopback peers, or the bearer token).

use super::instance::{Call, CallError};
use super::{FunctionError, Functions};
use crate::functions::package::PackageError;
use crate::http::{error, json};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use http_front::{read_body, read_form};
use sample_functions::user::wire;
pub use sample_functions::user::wire::{
    boundary, deploy_form, hop_by_hop, parse_multipart, Part, Route,
};
use std::sync::Arc;

/// Who may use the management routes (the worker's rule).
pub type Authorize = Arc<dyn Fn(&HttpRequest) -> Result<(), HttpResponse> + Send + Sync>;

/// What the routes share.
pub struct FunctionsState {
    pub functions: Functions,
    /// The worker's main runtime: calls run there, never cancelled by a
    /// client that goes away.
    pub handle: tokio::runtime::Handle,
    pub authorize: Authorize,
    /// Who may name the version a call must run (`X-Hf-Function-Version`
    /// and `-Digest`, from the balancer): loopback peers, or the token in
    /// `X-Hf-Authorization` (the call's own `Authorization` is the
    /// function's).
    pub authorize_package: Authorize,
}

impl std::fmt::Debug for FunctionsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionsState")
            .field("functions", &self.functions)
            .finish_non_exhaustive()
    }
}

/// The status of a failed call.
pub fn call_status(e: &CallError) -> u16 {
    match e {
        CallError::Timeout { .. } => 504,
        CallError::Start { .. }
        | CallError::Crashed { .. }
        | CallError::ReplyTooLarge { .. }
        | CallError::BadReply { .. } => 502,
    }
}

/// The status of a failure (chosen here only).
pub fn status_of(e: &FunctionError) -> u16 {
    match e {
        FunctionError::Package(PackageError::TooLarge(_)) => 413,
        FunctionError::Package(PackageError::Io(_)) => 500,
        FunctionError::Package(PackageError::NoSpace(_)) => 507,
        FunctionError::Package(_) | FunctionError::BadRequest(_) => 400,
        FunctionError::NotFound(_) => 404,
        FunctionError::RateLimited { .. } => 429,
        FunctionError::Call(c) => call_status(c),
        FunctionError::Store(_) => 500,
        FunctionError::Fetch(_) => 502,
        FunctionError::NothingToStart(_) => 409,
        FunctionError::Busy(_) => 503,
    }
}

fn failure(e: FunctionError) -> HttpResponse {
    error(status_of(&e), e.to_string())
}

/// Serves `route` (of [`Route::parse`]); None for a route that is not
/// the worker's ([`Route::Package`], the balancer's), which the worker's
/// other routes then answer (a 404).
///
/// The server's dispatch parses the route by hand for every request:
/// actix's router would test each of these routes' regular expressions,
/// in turn, on every request that reaches the app, `/execute` included.
pub async fn handle(
    state: &FunctionsState,
    route: Route,
    req: &HttpRequest,
    payload: web::Payload,
) -> Option<HttpResponse> {
    Some(match route {
        Route::Invoke { name, tail } => invoke(state, req, payload, name, tail).await,
        Route::Deploy => Box::pin(deploy(state, req, payload)).await,
        Route::InfoAll => Box::pin(info_all(state)).await,
        Route::Info(name) => Box::pin(info(state, &name)).await,
        Route::Logs(name) => Box::pin(logs(state, req, name)).await,
        Route::Delete(name) => Box::pin(delete(state, req, name)).await,
        Route::Config(name) => Box::pin(config(state, req, payload, name)).await,
        Route::Package(_) => return None,
    })
}

/// Runs `f` on the main runtime.
async fn on_main<T: Send + 'static>(
    state: &FunctionsState,
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, HttpResponse> {
    state
        .handle
        .spawn(f)
        .await
        .map_err(|e| error(500, format!("internal task failed: {e}")))
}

async fn deploy(state: &FunctionsState, req: &HttpRequest, payload: web::Payload) -> HttpResponse {
    if let Err(refused) = (state.authorize)(req) {
        return refused;
    }
    let limit = wire::deploy_body_limit(state.functions.limits().max_upload_bytes);
    let form = match read_form(req, payload, limit, deploy_form).await {
        Ok(f) => f,
        Err(e) => return e,
    };
    let functions = state.functions.clone();
    match on_main(state, async move {
        functions
            .deploy(&form.name, form.zip, form.rate_limit)
            .await
    })
    .await
    {
        Ok(Ok(report)) => json(200, serde_json::to_string(&report).unwrap_or_default()),
        Ok(Err(e)) => failure(e),
        Err(e) => e,
    }
}

/// `/invoke/{name}{tail}`. Its two hops to the main runtime (fetching a
/// version, a call that is not warm) are boxed where they are awaited:
/// actix allocates the server's dispatch future, which holds this one,
/// for every request, and they made it 8,424 bytes; now 328 (the
/// dispatch's, 704).
async fn invoke(
    state: &FunctionsState,
    req: &HttpRequest,
    payload: web::Payload,
    name: String,
    tail: String,
) -> HttpResponse {
    let path = if tail.is_empty() {
        "/".to_string()
    } else {
        tail
    };
    let body = match read_body(req, payload, super::instance::MAX_REPLY_BYTES as u64).await {
        Ok(b) => b,
        Err(e) => return e,
    };
    let wanted = |h: &str| {
        req.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    'ensure: {
        let (Some(version), Some(digest)) = (
            wanted("x-hf-function-version"),
            wanted("x-hf-function-digest"),
        ) else {
            break 'ensure;
        };
        if let Err(refused) = (state.authorize_package)(req) {
            return refused;
        }
        let Ok(version) = version.parse::<u64>() else {
            return error(400, "X-Hf-Function-Version is not a whole number");
        };
        // The usual case, the version is here: no hop to the main runtime.
        if state.functions.has_version(&name, version, &digest) {
            break 'ensure;
        }
        let functions = state.functions.clone();
        let n = name.clone();
        match Box::pin(on_main(state, async move {
            functions.ensure(&n, version, &digest).await
        }))
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return failure(e),
            Err(e) => return e,
        }
    }
    let headers = req
        .headers()
        .iter()
        .filter(|(k, _)| !hop_by_hop(k.as_str()) && !k.as_str().starts_with("x-hf-"))
        .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
        .collect();
    let call = Call {
        method: req.method().as_str().to_string(),
        path,
        query: req.query_string().to_string(),
        headers,
        body,
    };
    let functions = state.functions.clone();
    let warm = state.functions.serves_warm(&name);
    let invoking = async move {
        let invoked = functions.invoke(&name, call).await;
        (name, invoked)
    };
    let invoked = if warm {
        // A warm call is one loopback hop: this HTTP thread carries it, in
        // a task of its own (a client going away does not cancel it), with
        // its own pooled connections to the instance, instead of crossing
        // to the main runtime and back (as `/execute`'s warm calls).
        actix_web::rt::spawn(invoking)
            .await
            .map_err(|e| error(500, format!("internal task failed: {e}")))
    } else {
        Box::pin(on_main(state, invoking)).await
    };
    let (name, invoked) = match invoked {
        Ok((name, Ok(i))) => (name, i),
        Ok((_, Err(e))) => return failure(e),
        Err(e) => return e,
    };
    let meta = protocol::ExecutionMeta {
        image_built: invoked.meta.image_built,
        using_pooled_container: invoked.meta.pooled,
        using_existing_rest_container: invoked.meta.existing_instance,
        container_name: invoked.instance.clone(),
        image_name: format!("{name}@v{}", invoked.version),
    };
    let status = StatusCode::from_u16(invoked.reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out = HttpResponse::build(status);
    for (k, v) in &invoked.reply.headers {
        if let (Ok(k), Ok(v)) = (
            actix_web::http::header::HeaderName::from_bytes(k.as_bytes()),
            actix_web::http::header::HeaderValue::from_bytes(v),
        ) {
            out.append_header((k, v));
        }
    }
    out.insert_header(("X-Execution-Time", format!("{:.3}", invoked.execution_ms)))
        .insert_header((
            "X-Internal-Execution-Time",
            format!("{:.3}", invoked.internal_ms),
        ))
        .insert_header(("X-Meta", serde_json::to_string(&meta).unwrap_or_default()))
        .insert_header(("X-Function-Version", invoked.version.to_string()));
    out.body(invoked.reply.body)
}

async fn info_all(state: &FunctionsState) -> HttpResponse {
    let all = state.functions.info_all().await;
    json(
        200,
        serde_json::json!({"Functions": all, "Count": all.len()}).to_string(),
    )
}

async fn info(state: &FunctionsState, name: &str) -> HttpResponse {
    match state.functions.info(name).await {
        Ok(i) => json(200, serde_json::to_string(&i).unwrap_or_default()),
        Err(e) => failure(e),
    }
}

async fn logs(state: &FunctionsState, req: &HttpRequest, name: String) -> HttpResponse {
    let limit = match wire::logs_limit(req.query_string()) {
        Ok(l) => l,
        Err(e) => return error(400, e),
    };
    match state.functions.logs(&name, limit).await {
        Ok(l) => json(
            200,
            serde_json::json!({"Name": name, "Logs": l}).to_string(),
        ),
        Err(e) => failure(e),
    }
}

async fn delete(state: &FunctionsState, req: &HttpRequest, name: String) -> HttpResponse {
    if let Err(refused) = (state.authorize)(req) {
        return refused;
    }
    let functions = state.functions.clone();
    let n = name.clone();
    match on_main(state, async move { functions.delete(&n).await }).await {
        Ok(Ok(version)) => json(
            200,
            serde_json::json!({"Message": "deleted", "Name": name, "Version": version}).to_string(),
        ),
        Ok(Err(e)) => failure(e),
        Err(e) => e,
    }
}

async fn config(
    state: &FunctionsState,
    req: &HttpRequest,
    payload: web::Payload,
    name: String,
) -> HttpResponse {
    if let Err(refused) = (state.authorize)(req) {
        return refused;
    }
    let read = read_form(req, payload, wire::CONFIG_BODY_LIMIT, |_, body| {
        wire::rate_config(body)
    });
    let rate = match read.await {
        Ok(r) => r,
        Err(e) => return e,
    };
    let functions = state.functions.clone();
    let n = name.clone();
    match on_main(state, async move { functions.set_rate(&n, rate).await }).await {
        Ok(Ok(())) => json(200, wire::configured(&name, rate).to_string()),
        Ok(Err(e)) => failure(e),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `handler` returns.
    fn future_size<'a, F, Fut>(_handler: F) -> usize
    where
        F: Fn(&'a FunctionsState, &'a HttpRequest, web::Payload, String, String) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    /// The server's dispatch future, allocated for every request, holds
    /// `/invoke`'s: it must stay within malloc's per-thread cache (1,032
    /// bytes in glibc), with the cold paths boxed (it was 8,424 bytes with
    /// them inline).
    #[test]
    fn the_invoke_handlers_future_is_small() {
        let size = future_size(invoke);
        assert!(size <= 1024, "/invoke's handler future is {size} bytes");
    }
}
