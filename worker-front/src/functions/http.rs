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
//! Errors are `{"Error": true, "Message": ...}`: 400 (bad name, bad
//! package, bad request), 404 (no such function), 413 (upload over the
//! limit), 429 (over the rate limit), 500 (the store failed), 502 (the
//! function could not start, crashed, or replied too much or badly), 504
//! (its timeout passed). `/deploy`, `/del` and `/config` are management
//! routes (`protocol::mgmt`: loopback peers, or the bearer token).

use super::instance::{hop_by_hop, Call, CallError};
use super::{FunctionError, Functions};
use crate::functions::package::PackageError;
use crate::http::{error, json};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
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
        FunctionError::Package(_) | FunctionError::BadRequest(_) => 400,
        FunctionError::NotFound(_) => 404,
        FunctionError::RateLimited { .. } => 429,
        FunctionError::Call(c) => call_status(c),
        FunctionError::Store(_) => 500,
    }
}

fn failure(e: FunctionError) -> HttpResponse {
    error(status_of(&e), e.to_string())
}

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig, state: web::Data<FunctionsState>) {
    cfg.app_data(state)
        .route("/deploy", web::post().to(deploy))
        .route("/invoke/{name}", web::route().to(invoke))
        .route("/invoke/{name}/{tail:.*}", web::route().to(invoke))
        .route("/info", web::get().to(info_all))
        .route("/info/{name}", web::get().to(info))
        .route("/logs/{name}", web::get().to(logs))
        .route("/del/{name}", web::delete().to(delete))
        .route("/config/{name}", web::post().to(config));
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

/// Reads the body, refusing it (413) past `max` bytes: early when its
/// Content-Length says so, else when the bytes read pass it.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    max: u64,
) -> Result<Bytes, HttpResponse> {
    let too_large = || {
        error(
            413,
            format!("request body too large: more than {max} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| error(400, format!("reading the request body: {e}")))?;
        if (body.len() + chunk.len()) as u64 > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// One part of a multipart form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub data: Bytes,
}

/// The boundary of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
            .filter(|b| !b.is_empty() && b.len() <= 200)
    })
}

fn disposition_param(line: &str, key: &str) -> Option<String> {
    line.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        (k.trim().eq_ignore_ascii_case(key)).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Splits a `multipart/form-data` body (RFC 7578) into its parts.
pub fn parse_multipart(body: &Bytes, boundary: &str) -> Result<Vec<Part>, String> {
    use super::instance::find;
    let delim = format!("--{boundary}");
    let mut at = find(body, delim.as_bytes()).ok_or("no multipart boundary in the body")?;
    let mut parts = Vec::new();
    let next_delim = format!("\r\n--{boundary}");
    loop {
        at += delim.len();
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        let rest = rest
            .strip_prefix(b"\r\n")
            .ok_or("malformed multipart body (no line break after a boundary)")?;
        let head_end = find(rest, b"\r\n\r\n").ok_or("malformed multipart part (no header end)")?;
        let head = String::from_utf8_lossy(&rest[..head_end]);
        let content_start = at + 2 + head_end + 4;
        let len = find(&body[content_start..], next_delim.as_bytes())
            .ok_or("malformed multipart body (no closing boundary)")?;
        let mut name = None;
        let mut filename = None;
        for line in head.lines() {
            if let Some((k, v)) = line.split_once(':') {
                if k.trim().eq_ignore_ascii_case("content-disposition") {
                    name = disposition_param(v, "name");
                    filename = disposition_param(v, "filename");
                }
            }
        }
        if parts.len() >= 16 {
            return Err("too many multipart parts (at most 16)".into());
        }
        parts.push(Part {
            name: name.ok_or("a multipart part without a name")?,
            filename,
            data: body.slice(content_start..content_start + len),
        });
        at = content_start + len + 2;
    }
}

async fn deploy(
    state: web::Data<FunctionsState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    if let Err(refused) = (state.authorize)(&req) {
        return refused;
    }
    let limits = *state.functions.limits();
    // The form around the zip adds a little.
    let body = match read_body(&req, payload, limits.max_upload_bytes + 64 * 1024).await {
        Ok(b) => b,
        Err(e) => return e,
    };
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(boundary) = boundary(content_type) else {
        return error(
            400,
            "POST /deploy takes a multipart/form-data body (a zip in field `file`)",
        );
    };
    let parts = match parse_multipart(&body, &boundary) {
        Ok(p) => p,
        Err(e) => return error(400, e),
    };
    let field = |n: &str| parts.iter().find(|p| p.name == n);
    let Some(file) = field("file") else {
        return error(400, "no `file` field (the function's zip) in the form");
    };
    let name = match field("funcName") {
        Some(p) => String::from_utf8_lossy(&p.data).trim().to_string(),
        None => match &file.filename {
            Some(f) => {
                let base = f.rsplit(['/', '\\']).next().unwrap_or(f);
                base.strip_suffix(".zip").unwrap_or(base).to_string()
            }
            None => return error(400, "no `funcName` field and no file name to take it from"),
        },
    };
    let rate = match field("rateLimit") {
        None => None,
        Some(p) => match String::from_utf8_lossy(&p.data).trim().parse::<f64>() {
            Ok(r) => Some(r),
            Err(_) => return error(400, "rateLimit is not a number"),
        },
    };
    let zip = file.data.clone();
    let functions = state.functions.clone();
    match on_main(
        &state,
        async move { functions.deploy(&name, zip, rate).await },
    )
    .await
    {
        Ok(Ok(report)) => json(200, serde_json::to_string(&report).unwrap_or_default()),
        Ok(Err(e)) => failure(e),
        Err(e) => e,
    }
}

async fn invoke(
    state: web::Data<FunctionsState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let name = req.match_info().get("name").unwrap_or("").to_string();
    let path = format!("/{}", req.match_info().get("tail").unwrap_or(""));
    let body = match read_body(&req, payload, super::instance::MAX_REPLY_BYTES as u64).await {
        Ok(b) => b,
        Err(e) => return e,
    };
    let headers = req
        .headers()
        .iter()
        .filter(|(k, _)| !hop_by_hop(k.as_str()))
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
    let invoked = match on_main(&state, async move { functions.invoke(&name, call).await }).await {
        Ok(Ok(i)) => i,
        Ok(Err(e)) => return failure(e),
        Err(e) => return e,
    };
    let meta = protocol::ExecutionMeta {
        image_built: false,
        using_pooled_container: false,
        using_existing_rest_container: !invoked.cold,
        container_name: invoked.instance.clone(),
        image_name: format!(
            "{}@v{}",
            req.match_info().get("name").unwrap_or(""),
            invoked.version
        ),
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

async fn info_all(state: web::Data<FunctionsState>) -> HttpResponse {
    let all = state.functions.info_all().await;
    json(
        200,
        serde_json::json!({"Functions": all, "Count": all.len()}).to_string(),
    )
}

async fn info(state: web::Data<FunctionsState>, name: web::Path<String>) -> HttpResponse {
    match state.functions.info(&name).await {
        Ok(i) => json(200, serde_json::to_string(&i).unwrap_or_default()),
        Err(e) => failure(e),
    }
}

async fn logs(state: web::Data<FunctionsState>, req: HttpRequest) -> HttpResponse {
    let name = req.match_info().get("name").unwrap_or("").to_string();
    let mut limit = 100usize;
    for (k, v) in protocol::query::query_pairs(req.query_string()) {
        if k == "limit" {
            match v.parse::<usize>() {
                Ok(n) if n >= 1 => limit = n.min(super::store::LOG_KEEP),
                _ => {
                    return error(
                        400,
                        format!(
                            "limit {v:?} is not a whole number from 1 to {}",
                            super::store::LOG_KEEP
                        ),
                    )
                }
            }
        }
    }
    match state.functions.logs(&name, limit).await {
        Ok(l) => json(
            200,
            serde_json::json!({"Name": name, "Logs": l}).to_string(),
        ),
        Err(e) => failure(e),
    }
}

async fn delete(state: web::Data<FunctionsState>, req: HttpRequest) -> HttpResponse {
    if let Err(refused) = (state.authorize)(&req) {
        return refused;
    }
    let name = req.match_info().get("name").unwrap_or("").to_string();
    let functions = state.functions.clone();
    let n = name.clone();
    match on_main(&state, async move { functions.delete(&n).await }).await {
        Ok(Ok(version)) => json(
            200,
            serde_json::json!({"Message": "deleted", "Name": name, "Version": version}).to_string(),
        ),
        Ok(Err(e)) => failure(e),
        Err(e) => e,
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RateConfig {
    #[serde(rename = "rateLimit")]
    rate_limit: f64,
}

async fn config(
    state: web::Data<FunctionsState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    if let Err(refused) = (state.authorize)(&req) {
        return refused;
    }
    let name = req.match_info().get("name").unwrap_or("").to_string();
    let body = match read_body(&req, payload, 4096).await {
        Ok(b) => b,
        Err(e) => return e,
    };
    let rc: RateConfig = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(400, format!("the body must be {{\"rateLimit\": r}}: {e}")),
    };
    let functions = state.functions.clone();
    let n = name.clone();
    match on_main(&state, async move {
        functions.set_rate(&n, rc.rate_limit).await
    })
    .await
    {
        Ok(Ok(())) => json(
            200,
            serde_json::json!({"Message": "configured", "Name": name, "RateLimit": rc.rate_limit,
                "Burst": (rc.rate_limit / 10.0).max(1.0)})
            .to_string(),
        ),
        Ok(Err(e)) => failure(e),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_bodies_are_split() {
        assert_eq!(
            boundary("multipart/form-data; boundary=\"abc\"").as_deref(),
            Some("abc")
        );
        assert_eq!(boundary("application/json"), None);
        let body = Bytes::from_static(
            b"--XY\r\nContent-Disposition: form-data; name=\"funcName\"\r\n\r\nhello\r\n\
--XY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.zip\"\r\n\
Content-Type: application/zip\r\n\r\nPK\r\n\x00\x01\r\n--XY--\r\n",
        );
        let parts = parse_multipart(&body, "XY").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "funcName");
        assert_eq!(&parts[0].data[..], b"hello");
        assert_eq!(parts[1].filename.as_deref(), Some("f.zip"));
        assert_eq!(&parts[1].data[..], b"PK\r\n\x00\x01");
        assert!(parse_multipart(&Bytes::from_static(b"--XY\r\nbad"), "XY").is_err());
        assert!(parse_multipart(&Bytes::from_static(b"nothing"), "XY").is_err());
    }
}
