//! `stub-worker`: a minimal real HTTP worker for tests and benchmarks.
//!
//! Answers like a HotFunctions worker (Prev/HotFunctions, `worker_front`)
//! without running anything:
//! - `GET /execute?name=F`: waits the configured delay, then replies in the
//!   worker format (`Result`, `ExecutionTime`, `InternalExecutionTime`,
//!   `Meta`). The first call of a function reports a cold start
//!   (`ImageBuilt`), later ones a warm REST instance. `Meta.ContainerName`
//!   is `<id>-<function>`, so callers can tell which stub served them.
//!   Functions named with `--fail` answer 500 with an error reply instead.
//! - `GET /health` (after `--health-delay-ms`, as a busy worker's health
//!   reply can be), `GET /clear`, `GET /prepare`, `GET /configure?...`
//!   (echoes the query in `State`).
//! - `GET /stats`: calls counted per route and function (`execute`
//!   counts the successful ones), and per function: calls that failed
//!   (`failed`), the most in flight at once (`max_in_flight`), and the
//!   arrival times of its first 64 calls in ms since the stub started
//!   (`arrivals_ms`).
//!
//! `/clear`, `/prepare` and `/configure` follow the workers' management
//! rule (`protocol::mgmt`): loopback peers free, others need the token of
//! `--mgmt-token-file` (401/403 JSON errors otherwise).
//!
//! Prints `stub-worker listening on http://<addr>` on stdout once bound
//! (`--port 0` picks a free port).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use clap::Parser;
use protocol::{ErrorReply, ExecutionMeta, FunctionResult, WorkerReply};

#[derive(Debug, Parser)]
#[command(about = "A stub FaaS worker answering /execute in the HotFunctions format")]
struct Cli {
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 8222)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Name of this stub, used in Meta.ContainerName.
    #[arg(long, default_value = "stub")]
    id: String,
    /// Delay of every call, in ms.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Delay of one function, `NAME=MS` (repeatable; overrides --delay-ms).
    #[arg(long = "delay", value_parser = parse_delay)]
    delays: Vec<(String, u64)>,
    /// Make calls of this function fail with a 500 error reply, as a
    /// worker does when a function fails (repeatable).
    #[arg(long = "fail")]
    failing: Vec<String>,
    /// Delay of every `/health` reply, in ms (a busy worker whose health
    /// answers late while its calls are served).
    #[arg(long, default_value_t = 0)]
    health_delay_ms: u64,
    /// HTTP server threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Management token file (as the worker's `--mgmt-token-file`).
    #[arg(long)]
    mgmt_token_file: Option<std::path::PathBuf>,
}

fn parse_delay(s: &str) -> Result<(String, u64), String> {
    let (name, ms) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=MS, found {s:?}"))?;
    let ms = ms
        .parse()
        .map_err(|_| format!("delay {ms:?} is not a whole number of ms"))?;
    Ok((name.to_string(), ms))
}

#[derive(Debug, Default)]
struct Stats {
    execute: BTreeMap<String, u64>,
    clear: u64,
    prepare: u64,
    configure: Vec<String>,
    health: u64,
    failed: BTreeMap<String, u64>,
    in_flight: BTreeMap<String, u64>,
    max_in_flight: BTreeMap<String, u64>,
    arrivals_ms: BTreeMap<String, Vec<u64>>,
}

/// Arrival times kept per function.
const MAX_ARRIVALS: usize = 64;

/// A call of a function in flight at the stub; counted out when dropped
/// (also when the caller hangs up).
struct Running<'a> {
    stub: &'a Stub,
    name: String,
}

impl<'a> Running<'a> {
    fn start(stub: &'a Stub, name: &str) -> Self {
        let now_ms = u64::try_from(stub.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut stats = stub.stats.lock().unwrap_or_else(PoisonError::into_inner);
        let n = stats.in_flight.entry(name.to_string()).or_insert(0);
        *n += 1;
        let n = *n;
        let max = stats.max_in_flight.entry(name.to_string()).or_insert(0);
        *max = (*max).max(n);
        let arrivals = stats.arrivals_ms.entry(name.to_string()).or_default();
        if arrivals.len() < MAX_ARRIVALS {
            arrivals.push(now_ms);
        }
        Self {
            stub,
            name: name.to_string(),
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut stats = self
            .stub
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = stats.in_flight.get_mut(&self.name) {
            *n = n.saturating_sub(1);
        }
    }
}

#[derive(Debug)]
struct Stub {
    id: String,
    delay_ms: u64,
    delays: HashMap<String, u64>,
    failing: Vec<String>,
    health_delay_ms: u64,
    mgmt: protocol::mgmt::ManagementConfig,
    stats: Mutex<Stats>,
    started: tokio::time::Instant,
}

fn query_value(query: &str, key: &str) -> Option<String> {
    protocol::query::query_value(query, key).map(|v| v.into_owned())
}

async fn handle(req: HttpRequest, stub: web::Data<Stub>) -> HttpResponse {
    let json = |body: String| {
        HttpResponse::Ok()
            .content_type("application/json")
            .body(body)
    };
    if matches!(req.path(), "/clear" | "/prepare" | "/configure") {
        let authorization = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        if let Err(denied) = stub
            .mgmt
            .check(req.peer_addr().map(|a| a.ip()), authorization)
        {
            return HttpResponse::build(
                actix_web::http::StatusCode::from_u16(denied.status())
                    .unwrap_or(actix_web::http::StatusCode::FORBIDDEN),
            )
            .content_type("application/json")
            .body(ErrorReply::new(denied.to_string()).to_json());
        }
    }
    match req.path() {
        "/execute" => {
            let Some(name) = query_value(req.query_string(), "name").filter(|n| !n.is_empty())
            else {
                return HttpResponse::BadRequest()
                    .content_type("application/json")
                    .body(ErrorReply::new("param 'name' is not given").to_json());
            };
            let _running = Running::start(&stub, &name);
            let delay = stub.delays.get(&name).copied().unwrap_or(stub.delay_ms);
            let started = tokio::time::Instant::now();
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if stub.failing.contains(&name) {
                *stub
                    .stats
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .failed
                    .entry(name.clone())
                    .or_insert(0) += 1;
                return HttpResponse::InternalServerError()
                    .content_type("application/json")
                    .body(ErrorReply::new(format!("function {name} failed")).to_json());
            }
            let cold = {
                let mut stats = stub.stats.lock().unwrap_or_else(PoisonError::into_inner);
                let count = stats.execute.entry(name.clone()).or_insert(0);
                *count += 1;
                *count == 1
            };
            let reply = WorkerReply {
                result: FunctionResult {
                    status_code: 200,
                    body: format!("{name} done"),
                },
                execution_time: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
                internal_execution_time: i64::try_from(delay).unwrap_or(i64::MAX),
                meta: ExecutionMeta {
                    image_built: cold,
                    using_pooled_container: false,
                    using_existing_rest_container: !cold,
                    container_name: format!("{}-{name}", stub.id),
                    image_name: format!("hf_{}", name.to_lowercase()),
                },
            };
            json(serde_json::to_string(&reply).unwrap_or_default())
        }
        "/health" => {
            // Counted on arrival: a check that gives up early still counts.
            stub.stats
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .health += 1;
            if stub.health_delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(stub.health_delay_ms)).await;
            }
            json(r#"{"status":"ok"}"#.to_string())
        }
        "/clear" => {
            stub.stats
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear += 1;
            json(r#"{"Message":"cleared"}"#.to_string())
        }
        "/prepare" => {
            stub.stats
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .prepare += 1;
            json(r#"{"Message":"prepared"}"#.to_string())
        }
        "/configure" => {
            let query = req.query_string().to_string();
            let state: BTreeMap<String, String> = query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (k.to_string(), v.to_string())
                })
                .collect();
            stub.stats
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .configure
                .push(query);
            json(
                serde_json::json!({"Message": "configure changed", "State": state, "Id": stub.id})
                    .to_string(),
            )
        }
        "/stats" => {
            let stats = stub.stats.lock().unwrap_or_else(PoisonError::into_inner);
            json(
                serde_json::json!({
                    "id": stub.id,
                    "execute": stats.execute,
                    "clear": stats.clear,
                    "prepare": stats.prepare,
                    "configure": stats.configure,
                    "health": stats.health,
                    "failed": stats.failed,
                    "max_in_flight": stats.max_in_flight,
                    "arrivals_ms": stats.arrivals_ms,
                })
                .to_string(),
            )
        }
        _ => HttpResponse::NotFound()
            .content_type("application/json")
            .body(ErrorReply::new("404 Not found on given path").to_json()),
    }
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(cli.threads > 0, "--threads must be at least 1");
    let stub = web::Data::from(Arc::new(Stub {
        id: cli.id,
        delay_ms: cli.delay_ms,
        delays: cli.delays.into_iter().collect(),
        failing: cli.failing,
        health_delay_ms: cli.health_delay_ms,
        mgmt: protocol::mgmt::ManagementConfig::from_sources(
            cli.mgmt_token_file.as_deref(),
            None,
            false,
        )?,
        stats: Mutex::new(Stats::default()),
        started: tokio::time::Instant::now(),
    }));
    let listener = std::net::TcpListener::bind((cli.host.as_str(), cli.port))
        .map_err(|e| anyhow::anyhow!("cannot listen on {}:{}: {e}", cli.host, cli.port))?;
    let addr = listener.local_addr()?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(stub.clone())
            .default_service(web::to(handle))
    })
    .workers(cli.threads)
    .client_request_timeout(protocol::timeouts::REQUEST_HEAD)
    .keep_alive(protocol::timeouts::SERVER_KEEP_ALIVE)
    .listen(listener)?
    .run();
    println!("stub-worker listening on http://{addr}");
    server.await?;
    Ok(())
}
