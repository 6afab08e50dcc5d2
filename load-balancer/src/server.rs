//! The HTTP edge of the balancer (actix-web): parses requests into
//! [`Action`]s, reads the clock, talks to the workers, and turns
//! [`BalancerError`]s into HTTP replies.
//!
//! The hot path, `GET /execute?name=F` (HotFunctions' balancer,
//! Prev/HotFunctions `load_balancer/request_handler.go`):
//! 1. lock the [`Cluster`], time `select` (`AlgorithmLatency`, ms), unlock;
//! 2. forward `GET <worker>/execute?name=F` over a pooled keep-alive
//!    connection ([`keepalive_http::Pool`]: one pool per server thread,
//!    driven by the handler's own task);
//! 3. append `LoadBalancingInfo` to the worker's JSON without re-parsing it
//!    ([`protocol::reply::append_load_balancing_info`]);
//! 4. report the completion (measured duration, cold flag read from
//!    `Meta`) before replying, whatever happened, also when the client
//!    hangs up mid-call (a drop guard does it).
//!
//! A plain `GET /execute` (HTTP/1.1, no body, no close asked) is served in
//! the front's express lane ([`http_front::express`], `execute_lane`):
//! the same steps, the same reply, without actix-http's request and
//! response objects; any other request, and the rest of its connection,
//! goes through actix-web and `dispatch` as before.
//!
//! If the chosen worker cannot be reached (connection refused or timed
//! out), the node goes offline at once (health checks bring it back), and
//! the call is tried once more on the scheduler's next choice; a second
//! failure is a 502.
//!
//! If the worker dies with the call in flight (its connection closes or is
//! reset before the whole reply came: `kill -9`, a crash, a lost host),
//! the node goes offline at once too, and the call is tried once more on
//! another node when it is safe to repeat (issue 13): the caller says so
//! with `idempotent=true|false` on `/execute`; without it, the sample
//! functions are (they keep no state) and any other function is not. A
//! call that is not is a 502 that says why. A reply that is not valid HTTP
//! is not retried, and there is no time-out on a call (functions may run
//! for minutes), so a slow worker is never mistaken for a dead one. A
//! retried call's reply carries `LoadBalancingInfo.RetriedFrom`
//! (`{"WorkerNodeId", "WorkerNodeUrl", "Reason"}` of the first node); the
//! other fields describe the node that answered. One retry at most.
//!
//! Management routes (`/configure`, `/clear`, `/prepare`, `PUT`/`DELETE
//! /1/lb/nodes`: [`crate::action::is_management`]) are checked before
//! anything is read or changed: by [`protocol::mgmt`]'s rule (loopback
//! peers free, others need the bearer token; 401/403 otherwise), and, with
//! a separate management listener ([`run_with_management`]), only there
//! (403 on the data listener). The balancer sends its token, if it has
//! one, with every fan-out call to the workers.
//!
//! Server-side request forgery (issue 13): a node's URL is checked
//! strictly and canonicalised ([`crate::config::normalize_node_url`]), so
//! one node cannot be registered twice under two spellings (409), nor, at
//! run time, under two names that resolve to one address (a host name and
//! its IP address: 409 naming the registered node); with
//! `node_allow`, a node added at run time must resolve only to addresses
//! on those networks (403); and a node's reply to a fan-out route is shown
//! only when it parses as a worker's reply (a JSON object with a string
//! `Message`), otherwise as a summary (`status 200, 1234 bytes, not a
//! worker's reply`), so that the balancer never relays another service's
//! page.
//!
//! A successful call also counts as a passed health check of its node
//! (passive health: [`crate::cluster`]'s module doc).
//!
//! Fan-out routes (`/clear`, `/prepare`, `/configure`) call every online
//! worker at once, each within a budget (`fanout_timeout_ms`, default
//! 10 s; `prepare_timeout_ms`, default 10 min), and skip offline ones.
//! When every called worker succeeded they answer as the original does
//! (200; `/clear`, `/prepare`: `done at <url>` lines then `done`;
//! `/configure`: `{"lb": ..., "<url>": <reply>}`), with offline workers
//! listed as skipped. When any failed (no reply in time, refused, a
//! non-2xx status), the reply is a 502 `{"Error": true, "Message": ...,
//! "nodes": [{"url", "ok", "skipped", "status", "error", "reply"}]}`
//! naming each node's result; a caller never waits longer than the
//! budget for a hung worker.
//!
//! `GET /1/lb/scheduler` describes what a run needs to be reproduced and
//! analysed (read-only; `simulator replay` writes it into its log's
//! sidecar):
//!
//! ```json
//! {"algorithm": "ch", "parameters": {"T": 8}, "seed": 0,
//!  "nodes": [{"id": 0, "url": "http://10.0.0.2:8222", "state": "online",
//!             "capacity": 64, "cores": 2, "memory_mb": 2048}],
//!  "version": "0.1.0"}
//! ```
//!
//! `algorithm` is the canonical name (what replies carry in
//! `LoadBalancingInfo.Algorithm`); `parameters` are all of its parameters
//! as resolved (defaults included, by bare name); `seed` is the scheduler
//! RNG's; `nodes` are the registered nodes in id order, `id` being the
//! `WorkerNodeId` of the replies (ids are never reused: a node removed and
//! added again gets a new one), `url` null for fake-mode nodes, `state`
//! `online` or `offline`; `version` is the balancer's. It follows `/configure` (`lb=` switches the
//! algorithm, `T=4` / `ch.T=4` / `seed=7` change the parameters) and node
//! changes at once. `GET /1/lb/nodes` keeps the original's
//! `{"nodes": {"<url>": "online"|"offline"}}`.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse};
use protocol::reply::{
    append_load_balancing_info, reported_cold, reported_internal_ms, RetriedFrom,
};
use protocol::LoadBalancingInfo;

use crate::action::Action;
use crate::cluster::{Cluster, NodeStatus, Outcome, Selection, Thresholds};
use crate::config::{BalancerConfig, ConfigError};
use crate::error::BalancerError;
use crate::state::{RunClock, Shared};
use keepalive_http::CallError;
use policy::scheduler::NodeId;
use protocol::query::percent_encode_into;

/// A call counted in flight by the scheduler; reports its completion
/// exactly once, as a failure if dropped unreported.
pub(crate) struct InFlight<'a> {
    shared: &'a Shared,
    function: &'a str,
    pub(crate) selection: Selection,
    started: Instant,
    reported: bool,
    metrics: Option<crate::metrics::CallMetrics>,
}

impl<'a> InFlight<'a> {
    pub(crate) fn new(
        shared: &'a Shared,
        function: &'a str,
        selection: Selection,
        started: Instant,
    ) -> Self {
        let metrics = shared.metrics.as_ref().map(|m| {
            let call = m.call(function, selection.node);
            call.started();
            call
        });
        Self {
            shared,
            function,
            selection,
            started,
            reported: false,
            metrics,
        }
    }

    /// Reports the call: `cold` and `internal` (the function's own run
    /// time) as the worker's reply gave them, `status` its HTTP status
    /// (None: no reply).
    pub(crate) fn finish(
        &mut self,
        cold: bool,
        status: Option<u16>,
        internal: Duration,
    ) -> Duration {
        let ended = RunClock::instant();
        let duration = ended.saturating_duration_since(self.started);
        if !self.reported {
            self.reported = true;
            let ok = matches!(status, Some(200..=299));
            if let Some(metrics) = &self.metrics {
                metrics.finished(status, cold, duration);
            }
            let now = self.shared.clock.since_epoch(ended);
            self.shared.cluster().finished(
                &self.selection,
                self.function,
                Outcome {
                    duration,
                    cold,
                    ok,
                    internal,
                },
                now,
            );
        }
        duration
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.finish(false, None, Duration::ZERO);
    }
}

/// Per-server-thread state.
/// Idle keep-alive connections kept per worker and server thread.
const MAX_IDLE_PER_WORKER: usize = 256;

#[derive(Debug)]
pub(crate) struct Local {
    pub(crate) shared: Arc<Shared>,
    /// Cold paths (fan-out to workers).
    pub(crate) client: reqwest::Client,
    /// The hot path's keep-alive connections of this thread (`/execute`,
    /// the user functions' `/invoke`).
    pub(crate) pool: keepalive_http::Pool,
    /// The SlimFaas routes' queue ([`crate::slim`]).
    pub(crate) queue: Arc<crate::slim::Queue>,
}

/// Why the balancer could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot serve: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error(transparent)]
    Queue(#[from] crate::slim::QueueStartError),
    #[error("user functions: {0}")]
    Functions(String),
}

/// A pool of the hot path's keep-alive connections to the workers (one
/// per thread that calls them: see `keepalive_http`'s module doc).
fn worker_pool(config: &BalancerConfig) -> keepalive_http::Pool {
    keepalive_http::Pool::new(
        MAX_IDLE_PER_WORKER,
        Some(Duration::from_millis(config.connect_timeout_ms)),
    )
}

/// Builds the client used to reach workers: keep-alive pool, no proxy
/// (workers are addressed directly), Nagle off.
pub(crate) fn worker_client(config: &BalancerConfig) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
        .pool_idle_timeout(protocol::timeouts::CLIENT_POOL_IDLE)
        .build()
}

/// Serves the balancer on `listener` until `shutdown` completes (then
/// stops gracefully) or the server fails.
///
/// Must be called inside a tokio runtime (e.g. `#[actix_web::main]` or
/// `#[tokio::main]`): the health checker runs on it.
pub async fn run(
    listener: std::net::TcpListener,
    config: BalancerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    run_with_management(listener, None, config, shutdown).await
}

/// [`run`], with the management routes served on `management` only when
/// it is given (fnlb's `--mgmt-listen`); every route is served there.
pub async fn run_with_management(
    listener: std::net::TcpListener,
    management: Option<std::net::TcpListener>,
    config: BalancerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    run_announced(listener, management, config, shutdown, || {}).await
}

/// [`run_with_management`], calling `announce` once everything that can
/// fail at the start has succeeded (the configuration, the queue's and
/// the functions' stores, the clients) and the server is about to serve:
/// the binary prints its start-up line there, so that a line read means
/// a balancer that serves (it was printed before the stores opened, and a
/// balancer refused its `--queue-db` or `--data-dir` had announced
/// itself).
pub async fn run_announced(
    listener: std::net::TcpListener,
    management: Option<std::net::TcpListener>,
    config: BalancerConfig,
    shutdown: impl Future<Output = ()>,
    announce: impl FnOnce(),
) -> Result<(), RunError> {
    let config = config.validated()?;
    let (queue, launched) = crate::slim::Queue::open(&config.queue)?;
    let clock = RunClock::start();
    let thresholds = Thresholds {
        fall: config.health.fall,
        rise: config.health.rise,
    };
    let urls: Vec<String> = if config.fake_nodes > 0 {
        vec![String::new(); config.fake_nodes as usize]
    } else {
        config.nodes.clone()
    };
    let cluster = Cluster::new(
        &config.algorithm,
        config.params.clone(),
        &urls,
        config.node_resources(Default::default()),
        thresholds,
        clock.now(),
    )
    .map_err(ConfigError::from)?;
    let fake_reply =
        (config.fake_nodes > 0).then(|| crate::fake::fake_worker_reply(config.fake_delay_ms));
    let addr = listener.local_addr()?;
    let management_addr = match &management {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    tracing::info!(
        %addr,
        management = ?management_addr,
        mgmt = shared_mgmt_description(&config),
        algorithm = %config.algorithm,
        seed = config.params.seed(),
        params = %serde_json::to_string(&config.params).unwrap_or_default(),
        nodes = ?config.nodes,
        fake_nodes = config.fake_nodes,
        "load balancer starting"
    );
    let config_metrics = config.metrics;
    let functions = crate::functions::FunctionStore::open(config.data_dir.as_deref())
        .await
        .map_err(RunError::Functions)?;
    tracing::info!(
        "user functions: {} deployed, kept in {}{}",
        functions.len(),
        functions.dir().display(),
        if config.data_dir.is_none() {
            " (temporary: give --data-dir to keep them)"
        } else {
            ""
        }
    );
    let shared = Arc::new(Shared {
        functions,
        cluster: Mutex::new(cluster),
        clock,
        config,
        fake_reply,
        management_addr,
        metrics: config_metrics.then(crate::metrics::Metrics::new),
    });
    // Fail early on a client that cannot be built.
    let health_client = worker_client(&shared.config)?;

    let factory_shared = shared.clone();
    let factory_queue = queue.clone();
    let mut listeners = vec![listener];
    listeners.extend(management);
    // The testbed's HTTP time-outs, not actix's 5-s defaults (module doc
    // of `protocol::timeouts`), and a JSON answer to an over-long request
    // line (`http_front`).
    let lane_shared = shared.clone();
    let lane_queue = queue.clone();
    let settings = http_front::Settings {
        workers: shared.config.threads,
        express: Some(Arc::new(move || {
            execute_lane(lane_shared.clone(), lane_queue.clone())
        })),
        ..Default::default()
    };
    let server = http_front::serve(
        move || {
            let client = worker_client(&factory_shared.config).unwrap_or_default();
            App::new()
                .app_data(web::Data::new(Local {
                    shared: factory_shared.clone(),
                    client,
                    pool: worker_pool(&factory_shared.config),
                    queue: factory_queue.clone(),
                }))
                .default_service(web::to(dispatch))
        },
        listeners,
        &settings,
    )?;
    let handle = server.handle();

    let health = (shared.config.fake_nodes == 0)
        .then(|| tokio::spawn(crate::health::check_forever(shared.clone(), health_client)));

    let keeper = actix_web::rt::spawn(crate::slim::scaling::keep_min_instances(
        queue.clone(),
        shared.clone(),
        worker_client(&shared.config)?,
    ));
    let scaler = actix_web::rt::spawn(crate::slim::scaling::scale_to_zero(
        queue.clone(),
        shared.clone(),
        worker_client(&shared.config)?,
    ));
    let drain = actix_web::rt::spawn(crate::slim::drain(
        queue,
        launched,
        shared.clone(),
        worker_pool(&shared.config),
    ));

    announce();
    let mut server = std::pin::pin!(server);
    let result = tokio::select! {
        r = &mut server => r,
        () = shutdown => {
            // The command is sent at once; the server future (polled
            // below) carries it out and completes when it is done.
            drop(handle.stop(true));
            server.await
        }
    };
    if let Some(task) = health {
        task.abort();
    }
    drain.abort();
    scaler.abort();
    keeper.abort();
    shared.functions.close().await;
    tracing::info!("load balancer stopped");
    Ok(result?)
}

fn shared_mgmt_description(config: &BalancerConfig) -> &'static str {
    config.mgmt.describe()
}

/// Largest request body read (only node management has one).
const MAX_REQUEST_BODY: usize = 64 * 1024;

/// May this request use a management route? (module doc)
pub(crate) fn authorize(req: &HttpRequest, shared: &Shared) -> Result<(), BalancerError> {
    if let Some(management) = shared.management_addr {
        if http_front::local_addr(req) != Some(management) {
            return Err(BalancerError::ManagementElsewhere(management.to_string()));
        }
    }
    let authorization = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    shared
        .config
        .mgmt
        .check(req.peer_addr().map(|a| a.ip()), authorization)
        .map_err(|denied| {
            tracing::warn!(
                peer = ?req.peer_addr(),
                path = req.path(),
                %denied,
                "management request refused"
            );
            BalancerError::Denied(denied)
        })
}

/// The addresses a node URL's host resolves to (at most the connect
/// time-out), or why it did not resolve.
async fn resolve_node(shared: &Shared, url: &str) -> Result<Vec<std::net::SocketAddr>, String> {
    let authority = url.strip_prefix("http://").unwrap_or(url);
    let mut addrs: Vec<std::net::SocketAddr> = tokio::time::timeout(
        Duration::from_millis(shared.config.connect_timeout_ms),
        tokio::net::lookup_host(authority),
    )
    .await
    .map_err(|_| "its name did not resolve in time".to_string())?
    .map_err(|e| format!("its name does not resolve: {e}"))?
    // IPv4-mapped IPv6 and IPv4 spell one address.
    .map(|a| std::net::SocketAddr::new(a.ip().to_canonical(), a.port()))
    .collect();
    addrs.sort_unstable();
    addrs.dedup();
    if addrs.is_empty() {
        return Err("its name resolves to no address".into());
    }
    Ok(addrs)
}

/// With `node_allow`, checks that `url`'s host resolved (`resolved`) only
/// to addresses on the allowed networks.
fn check_node_allowed(
    shared: &Shared,
    url: &str,
    resolved: &Result<Vec<std::net::SocketAddr>, String>,
) -> Result<(), BalancerError> {
    let allow = &shared.config.node_allow;
    if allow.is_empty() {
        return Ok(());
    }
    let refuse = |reason: String| BalancerError::NodeNotAllowed {
        url: url.to_string(),
        reason,
    };
    let addrs = resolved.as_ref().map_err(|e| refuse(e.clone()))?;
    for addr in addrs {
        if !allow.iter().any(|net| net.contains(addr.ip())) {
            let nets: Vec<String> = allow.iter().map(ToString::to_string).collect();
            return Err(refuse(format!(
                "{} is on none of {}",
                addr.ip(),
                nets.join(", ")
            )));
        }
    }
    Ok(())
}

/// Every route of the data listener. The cold routes' futures are boxed
/// where they are awaited: actix allocates the handler's future for each
/// request, and unboxed they made it 2,824 bytes, past malloc's
/// per-thread cache; now it is the hot path's (`/execute`) size.
async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    local: web::Data<Local>,
) -> Result<HttpResponse, BalancerError> {
    if let Some(route) = crate::slim::Route::parse(req.path()) {
        if route.is_management(req.method()) {
            authorize(&req, &local.shared)?;
        }
        let reply = Box::pin(crate::slim::handle(
            route,
            &req,
            payload,
            &local.queue,
            &local.shared,
            &local.pool,
            &local.client,
        ))
        .await;
        return Ok(reply.unwrap_or_else(|e| e.error_response()));
    }
    if let Some(route) = crate::functions::http::Route::parse(req.method().as_str(), req.path()) {
        return Ok(Box::pin(crate::functions::http::handle(route, &req, payload, &local)).await);
    }
    if req.path() == "/metrics" && req.method() == actix_web::http::Method::GET {
        return Box::pin(metrics_reply(&local)).await;
    }
    if crate::action::is_management(req.method(), req.path()) {
        authorize(&req, &local.shared)?;
    }
    // Only `/1/lb/nodes` reads a body; the hot path skips the extractor.
    let body = if req.path() == "/1/lb/nodes" && req.method() != actix_web::http::Method::GET {
        Box::pin(payload.to_bytes_limited(MAX_REQUEST_BODY))
            .await
            .map_err(|_| BalancerError::BadBody(format!("larger than {MAX_REQUEST_BODY} bytes")))?
            .map_err(|e| BalancerError::BadBody(e.to_string()))?
    } else {
        web::Bytes::new()
    };
    let action = Action::parse(req.method(), req.path(), req.query_string(), &body)?;
    let shared = &*local.shared;
    match action {
        Action::Execute {
            function,
            idempotent,
        } => {
            let (status, body) = execute_direct(
                shared,
                &local.queue,
                &local.pool,
                &function,
                idempotent,
                req.query_string(),
            )
            .await?;
            Ok(json_reply(status, body))
        }
        Action::Configure {
            algorithm,
            params,
            forward_query,
        } => {
            Box::pin(configure(
                &local,
                algorithm.as_deref(),
                &params,
                &forward_query,
            ))
            .await
        }
        Action::Clear => Box::pin(fan_out(&local, "clear")).await,
        Action::Prepare => Box::pin(fan_out(&local, "prepare")).await,
        Action::ListNodes => {
            let cluster = shared.cluster();
            let nodes: serde_json::Map<String, serde_json::Value> = cluster
                .nodes()
                .map(|n| (n.url.to_string(), n.status.as_str().into()))
                .collect();
            Ok(json_reply(
                StatusCode::OK,
                serde_json::json!({ "nodes": nodes }).to_string(),
            ))
        }
        Action::AddNode { url, resources } => {
            if shared.fake_reply.is_some() {
                return Err(BalancerError::FakeMode);
            }
            let resources = shared.config.node_resources(resources);
            let resolved = Box::pin(resolve_node(shared, &url)).await;
            check_node_allowed(shared, &url, &resolved)?;
            // A name that does not resolve (yet) is still added: it stays
            // offline until it answers, and two spellings of it cannot be
            // told apart.
            if let Err(reason) = &resolved {
                tracing::warn!(%url, %reason, "node added without a resolved address");
            }
            let addrs = resolved.as_deref().unwrap_or_default();
            let id = shared.cluster().add_node_at(&url, addrs, resources)?;
            tracing::info!(
                node = id,
                %url,
                capacity = resources.capacity,
                cores = resources.cores,
                memory_mb = resources.memory_mb,
                "node added (offline until its first passing health check)"
            );
            Ok(json_reply(StatusCode::OK, r#"{"msg":"node added"}"#))
        }
        Action::RemoveNode { url } => {
            if shared.fake_reply.is_some() {
                return Err(BalancerError::FakeMode);
            }
            let now = shared.clock.now();
            let id = shared.cluster().remove_node(&url, now)?;
            tracing::info!(node = id, %url, "node deleted");
            Ok(json_reply(StatusCode::OK, r#"{"msg":"node deleted"}"#))
        }
        Action::DescribeScheduler => Ok(json_reply(StatusCode::OK, scheduler_json(shared))),
        Action::Health => Ok(json_reply(StatusCode::OK, r#"{"status":"ok"}"#)),
        Action::Status => Ok(json_reply(StatusCode::OK, status_json(shared))),
    }
}

/// `GET /metrics` ([`crate::metrics`]; read-only, no token): 404 with
/// `--no-metrics`.
async fn metrics_reply(local: &Local) -> Result<HttpResponse, BalancerError> {
    let shared = &*local.shared;
    let Some(metrics) = &shared.metrics else {
        return Ok(json_reply(
            StatusCode::NOT_FOUND,
            r#"{"Error":true,"Message":"metrics are off (--no-metrics)"}"#,
        ));
    };
    let nodes: Vec<crate::metrics::NodeSnapshot> = shared
        .cluster()
        .nodes()
        .map(|n| crate::metrics::NodeSnapshot {
            id: n.id,
            url: n.url.clone(),
            online: n.status == NodeStatus::Online,
        })
        .collect();
    let instances = local
        .queue
        .instances
        .get(
            shared,
            &local.client,
            crate::slim::instances::METRICS_MAX_AGE,
        )
        .await;
    let user: Vec<String> = shared.functions.names();
    let queues = local
        .queue
        .metrics_snapshot(shared.clock.now(), &user, Some(&instances));
    Ok(HttpResponse::Ok()
        .insert_header((
            actix_web::http::header::CONTENT_TYPE,
            crate::metrics::CONTENT_TYPE,
        ))
        .body(metrics.render(&nodes, &queues)))
}

pub(crate) fn json_reply(
    status: StatusCode,
    body: impl actix_web::body::MessageBody + 'static,
) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((
            actix_web::http::header::CONTENT_TYPE,
            actix_web::http::header::HeaderValue::from_static("application/json"),
        ))
        .body(body)
}

/// `GET /1/lb/scheduler` (shape in the module doc).
fn scheduler_json(shared: &Shared) -> String {
    let cluster = shared.cluster();
    let config = cluster.scheduler_config();
    let parameters: serde_json::Map<String, serde_json::Value> = config
        .params()
        .map(|(param, value)| {
            (
                param.name().to_string(),
                serde_json::to_value(value).unwrap_or_default(),
            )
        })
        .collect();
    let nodes: Vec<serde_json::Value> = cluster
        .nodes()
        .map(|n| {
            serde_json::json!({
                "id": n.id,
                "url": (!n.url.is_empty()).then_some(&*n.url),
                "state": n.status.as_str(),
                "capacity": n.resources.capacity,
                "cores": n.resources.cores,
                "memory_mb": n.resources.memory_mb,
            })
        })
        .collect();
    serde_json::json!({
        "algorithm": config.name(),
        "parameters": parameters,
        "seed": config.seed(),
        "nodes": nodes,
        "version": env!("CARGO_PKG_VERSION"),
        // The sources the balancer was built from (null if unknown).
        "revision": source_revision::built_from!()
            .map(|r| serde_json::json!({"commit": r.commit, "dirty": r.dirty})),
    })
    .to_string()
}

fn status_json(shared: &Shared) -> String {
    let cluster = shared.cluster();
    let nodes: Vec<serde_json::Value> = cluster
        .nodes()
        .map(|n| {
            serde_json::json!({
                "id": n.id,
                "url": &*n.url,
                "status": n.status.as_str(),
                "load": cluster.load(n.id),
                "capacity": n.resources.capacity,
                "cores": n.resources.cores,
                "memory_mb": n.resources.memory_mb,
            })
        })
        .collect();
    let config = &shared.config;
    serde_json::json!({
        "algorithm": cluster.algorithm(),
        "seed": cluster.params().seed(),
        "params": cluster.params(),
        "scheduler": cluster.scheduler_config(),
        "node_capacity": config.node_capacity,
        "node_cores": config.node_cores,
        "node_memory_mb": config.node_memory_mb,
        "fake_nodes": config.fake_nodes,
        "fake_delay_ms": config.fake_delay_ms,
        "health": &config.health,
        "connect_timeout_ms": config.connect_timeout_ms,
        "fanout_timeout_ms": config.fanout_timeout_ms,
        "prepare_timeout_ms": config.prepare_timeout_ms,
        "threads": config.threads,
        "mgmt": &config.mgmt,
        "management_listener": shared.management_addr.map(|a| a.to_string()),
        "node_allow": &config.node_allow,
        "uptime_ms": shared.clock.now().as_millis(),
        "nodes": nodes,
    })
    .to_string()
}

/// Whether a call of `function` may be sent again after its node died
/// with it in flight: the caller's word (`idempotent=`) if given, else
/// the function's (the sample functions are safe to repeat: they compute
/// and sleep, and keep no state; any other function is not assumed so).
fn safe_to_repeat(function: &str, idempotent: Option<bool>) -> bool {
    idempotent.unwrap_or_else(|| sample_functions::catalog().get(function).is_some())
}

/// Whether a broken exchange means the worker died with the call in
/// flight (its connection closed or reset, before or inside the reply),
/// as opposed to a reply that is not valid HTTP or a time-out.
fn node_died(source: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        source.kind(),
        ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
    )
}

/// `GET /execute?name=F` through the scheduler and dispatch path (the
/// module doc), with `pool`'s connections (also the SlimFaas routes').
pub(crate) async fn execute_with(
    shared: &Shared,
    pool: &keepalive_http::Pool,
    function: &str,
    idempotent: Option<bool>,
    query: &str,
) -> Result<HttpResponse, BalancerError> {
    let (status, body) = execute_reply(shared, pool, function, idempotent, query).await?;
    Ok(json_reply(status, body))
}

/// One worker thread's express lane (`http_front::express`): a plain
/// `GET /execute` with a function's name, served as `dispatch` serves it
/// (the same [`Action::parse`], then [`execute_direct`]) without
/// actix-http's per-request machinery. Every other request, and a
/// `/execute` that `Action::parse` refuses (its error reply is actix's),
/// goes to `dispatch`.
fn execute_lane(shared: Arc<Shared>, queue: Arc<crate::slim::Queue>) -> http_front::express::Lane {
    struct Lane {
        shared: Arc<Shared>,
        queue: Arc<crate::slim::Queue>,
        /// This thread's keep-alive connections to the workers (the
        /// lane's own: `dispatch`'s are in its `Local`).
        pool: keepalive_http::Pool,
    }
    let lane = std::rc::Rc::new(Lane {
        pool: worker_pool(&shared.config),
        shared,
        queue,
    });
    std::rc::Rc::new(move |req: http_front::express::LaneRequest<'_>| {
        let (path, query) = req.target.split_once('?').unwrap_or((req.target, ""));
        if path != "/execute" {
            return None;
        }
        let Ok(Action::Execute {
            function,
            idempotent,
        }) = Action::parse(&actix_web::http::Method::GET, path, query, b"")
        else {
            return None;
        };
        let lane = lane.clone();
        let query = query.to_owned();
        Some(Box::pin(async move {
            let reply = execute_direct(
                &lane.shared,
                &lane.queue,
                &lane.pool,
                &function,
                idempotent,
                &query,
            )
            .await;
            let (status, body) = match reply {
                Ok(reply) => reply,
                Err(e) => (actix_web::ResponseError::status_code(&e), e.json().into()),
            };
            http_front::express::LaneReply {
                status: status.as_u16(),
                content_type: "application/json",
                body,
            }
        }))
    })
}

/// `GET /execute` as a client sends it, served by `dispatch` and by the
/// express lane alike: counted for the scale-to-zero rule while it runs
/// (`crate::slim::direct`), then [`execute_reply`].
async fn execute_direct(
    shared: &Shared,
    queue: &crate::slim::Queue,
    pool: &keepalive_http::Pool,
    function: &str,
    idempotent: Option<bool>,
    query: &str,
) -> Result<(StatusCode, web::Bytes), BalancerError> {
    let _counted = queue.direct_call(
        function,
        || shared.functions.get(function).is_ok(),
        shared.clock,
    );
    execute_reply(shared, pool, function, idempotent, query).await
}

/// [`execute_with`]'s reply as a status and a JSON body (the express
/// lane writes it without actix-http: [`execute_lane`]).
pub(crate) async fn execute_reply(
    shared: &Shared,
    pool: &keepalive_http::Pool,
    function: &str,
    idempotent: Option<bool>,
    query: &str,
) -> Result<(StatusCode, web::Bytes), BalancerError> {
    // The first attempt's node and why it failed, once the call is retried.
    let mut first_failure: Option<RetriedFrom> = None;
    loop {
        let (selection, latency_ms, selected) = match shared.select(function) {
            Ok(chosen) => chosen,
            Err(e) => {
                return Err(match first_failure {
                    Some(first) => BalancerError::WorkerUnreachable {
                        url: first.worker_node_url,
                        reason: first.reason,
                        retry: format!("no node left to retry on ({e})"),
                    },
                    None => e.into(),
                })
            }
        };
        let info = |selection: &Selection, retried_from: Option<RetriedFrom>| LoadBalancingInfo {
            worker_node_id: i64::from(selection.node),
            worker_node_url: selection.url.to_string(),
            algorithm: selection.algorithm.to_string(),
            algorithm_latency: latency_ms,
            retried_from,
        };
        let mut call = InFlight::new(shared, function, selection, selected);

        if let Some(reply) = &shared.fake_reply {
            Box::pin(tokio::time::sleep(Duration::from_millis(
                shared.config.fake_delay_ms,
            )))
            .await;
            call.finish(
                false,
                Some(200),
                Duration::from_millis(shared.config.fake_delay_ms),
            );
            let body = append_load_balancing_info(reply, &info(&call.selection, None))
                .ok_or_else(|| BalancerError::BadWorkerReply { url: String::new() })?;
            return Ok((StatusCode::OK, body.into()));
        }

        let mut path = String::with_capacity(16 + function.len() * 3);
        path.push_str("/execute?name=");
        percent_encode_into(function, &mut path);
        // A call's own shape (`duration_ms`, `memory_mb`, `cpu_share`) goes
        // to the worker as given; the worker checks it.
        protocol::query::forward_call_params(query, &mut path);
        let url = &call.selection.url;
        let authority = url.strip_prefix("http://").unwrap_or(url);
        // Boxed: with the exchange's future inline, the request's future
        // (allocated by actix per request) passed malloc's per-thread
        // cache; two smaller allocations cost less than that one.
        let (status, body) = match Box::pin(pool.get(authority, &path)).await {
            Ok(reply) => (reply.status, reply.body),
            Err(failure) => {
                match after_failure(
                    shared,
                    &mut call,
                    &failure,
                    safe_to_repeat(function, idempotent),
                    first_failure.as_ref(),
                    crate::metrics::RetryRoute::Execute,
                    "add idempotent=true",
                ) {
                    AfterFailure::Retry(from) => {
                        first_failure = Some(from);
                        continue;
                    }
                    AfterFailure::Fail(e) => return Err(e),
                }
            }
        };
        let cold = reported_cold(&body);
        let success = (200..300).contains(&status);
        let internal = reported_internal_ms(&body).map_or(Duration::ZERO, Duration::from_millis);
        call.finish(cold, Some(status), internal);
        if !success {
            // The worker's own failure reply, passed through unchanged.
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            return Ok((status, body));
        }
        let retried_from = first_failure.take();
        return match append_load_balancing_info(&body, &info(&call.selection, retried_from)) {
            Some(out) => Ok((StatusCode::OK, out.into())),
            None => Err(BalancerError::BadWorkerReply {
                url: call.selection.url.to_string(),
            }),
        };
    }
}

/// What follows a failed exchange with a worker ([`after_failure`]).
pub(crate) enum AfterFailure {
    /// Send the call to the scheduler's next choice; the first node and
    /// why it failed (`LoadBalancingInfo.RetriedFrom`).
    Retry(RetriedFrom),
    /// The call's failure reply.
    Fail(BalancerError),
}

/// The one rule for a call whose exchange with its worker failed, shared
/// by `/execute` and the user functions' `/invoke` (module doc): reports
/// `call` finished (failed); a worker that refused the connection or died
/// with the call in flight goes offline; the call goes once more to
/// another node when it never reached this one, or when it died there and
/// the call is `safe_to_repeat`; otherwise (or after the one retry) it
/// fails, with `not_safe_hint` (how to mark such calls safe) when only
/// safety held it back.
pub(crate) fn after_failure(
    shared: &Shared,
    call: &mut InFlight<'_>,
    failure: &CallError,
    safe_to_repeat: bool,
    first_failure: Option<&RetriedFrom>,
    route: crate::metrics::RetryRoute,
    not_safe_hint: &str,
) -> AfterFailure {
    call.finish(false, None, Duration::ZERO);
    let node_url = call.selection.url.to_string();
    // Connecting failed: the call never reached the node, so it may
    // always go elsewhere. The exchange broke: the node may have run it,
    // so only a call safe to repeat goes on.
    let (reason, retriable, died) = match failure {
        CallError::Connect { source, .. } => (source.to_string(), true, true),
        CallError::Exchange { source, .. } if node_died(source) => (
            format!("the worker closed the connection with the call in flight: {source}"),
            safe_to_repeat,
            true,
        ),
        CallError::Exchange { source, .. } => (source.to_string(), false, false),
    };
    if died {
        mark_unreachable(shared, call.selection.node, &node_url, &reason);
    }
    match (first_failure, retriable) {
        (None, true) => {
            if let Some(metrics) = &shared.metrics {
                metrics.retried(call.function, route);
            }
            AfterFailure::Retry(RetriedFrom {
                worker_node_id: i64::from(call.selection.node),
                worker_node_url: node_url,
                reason,
            })
        }
        (Some(first), _) => AfterFailure::Fail(BalancerError::WorkerUnreachable {
            url: node_url,
            reason,
            retry: format!("it was the retry after {} failed", first.worker_node_url),
        }),
        (None, false) => AfterFailure::Fail(BalancerError::WorkerFailed {
            url: node_url,
            reason: if died {
                format!("{reason} (not retried: the call is not marked safe to repeat; {not_safe_hint})")
            } else {
                reason
            },
        }),
    }
}

pub(crate) fn mark_unreachable(shared: &Shared, node: NodeId, url: &str, reason: &str) {
    let now = shared.clock.now();
    shared.cluster().unreachable(node, now);
    tracing::warn!(
        node,
        url,
        reason,
        "worker unreachable; node offline until a health check passes"
    );
}

/// An error and its sources, joined (reqwest's top-level message alone
/// rarely says what went wrong).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Largest worker reply a fan-out route reads.
const MAX_FANOUT_REPLY: usize = 1024 * 1024;

/// How one node took a fan-out call.
#[derive(Debug)]
pub(crate) enum NodeCall {
    /// Offline: not called.
    Skipped,
    /// The worker replied (any status) within its budget.
    Replied { status: u16, body: web::Bytes },
    /// No complete reply: refused, broken, too large or timed out.
    Failed(String),
}

impl NodeCall {
    /// The worker replied with a 2xx status.
    pub(crate) fn ok(&self) -> bool {
        matches!(self, Self::Replied { status, .. } if (200..300).contains(status))
    }

    /// Called, and did not succeed.
    pub(crate) fn failed(&self) -> bool {
        !self.ok() && !matches!(self, Self::Skipped)
    }

    /// Why the call failed (None if it succeeded or was skipped).
    pub(crate) fn error(&self) -> Option<String> {
        match self {
            Self::Failed(reason) => Some(reason.clone()),
            Self::Replied { status, .. } if !self.ok() => Some(format!("status {status}")),
            _ => None,
        }
    }
}

/// Calls `path_and_query` on every online node at once, each within
/// `timeout` (connecting, sending and reading the whole reply); offline
/// nodes are skipped. Results in node id order (none in fake mode).
pub(crate) async fn call_every_node(
    local: &Local,
    route: &str,
    method: reqwest::Method,
    path_and_query: &str,
    timeout: Duration,
) -> Vec<(Arc<str>, NodeCall)> {
    call_online_nodes(
        &local.shared,
        &local.client,
        route,
        method,
        path_and_query,
        timeout,
    )
    .await
}

/// [`call_every_node`] with `client` (also for tasks without a server
/// thread's [`Local`]).
pub(crate) async fn call_online_nodes(
    shared: &Shared,
    client: &reqwest::Client,
    route: &str,
    method: reqwest::Method,
    path_and_query: &str,
    timeout: Duration,
) -> Vec<(Arc<str>, NodeCall)> {
    let nodes: Vec<(Arc<str>, bool)> = if shared.fake_reply.is_some() {
        Vec::new()
    } else {
        shared
            .cluster()
            .nodes()
            .map(|n| (n.url.clone(), n.status == NodeStatus::Online))
            .collect()
    };
    let calls = nodes.iter().map(|(url, online)| {
        let method = method.clone();
        async move {
            if *online {
                call_node(shared, client, url, method, path_and_query, timeout).await
            } else {
                NodeCall::Skipped
            }
        }
    });
    let results = futures_util::future::join_all(calls).await;
    let results: Vec<_> = nodes.into_iter().map(|(url, _)| url).zip(results).collect();
    for (url, result) in &results {
        if let Some(reason) = result.error() {
            tracing::warn!(url = &**url, route, reason, "fan-out call failed");
        }
    }
    results
}

/// Calls `path_and_query` on the node at `url` within `timeout`, with the
/// management token when the balancer has one.
pub(crate) async fn call_node(
    shared: &Shared,
    client: &reqwest::Client,
    url: &str,
    method: reqwest::Method,
    path_and_query: &str,
    timeout: Duration,
) -> NodeCall {
    let request = client
        .request(method, format!("{url}{path_and_query}"))
        .timeout(timeout);
    let request = match shared.config.mgmt.bearer() {
        Some(bearer) => request.header(reqwest::header::AUTHORIZATION, bearer),
        None => request,
    };
    match read_reply(request, timeout).await {
        Ok((status, body)) => NodeCall::Replied { status, body },
        Err(reason) => NodeCall::Failed(reason),
    }
}

/// Sends `request` and reads its reply (at most [`MAX_FANOUT_REPLY`]
/// bytes).
async fn read_reply(
    request: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<(u16, web::Bytes), String> {
    let describe = |e: reqwest::Error| {
        if e.is_timeout() {
            format!("timed out after {} ms", timeout.as_millis())
        } else {
            error_chain(&e)
        }
    };
    let mut response = request.send().await.map_err(describe)?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(describe)? {
        if body.len() + chunk.len() > MAX_FANOUT_REPLY {
            return Err(format!("reply larger than {MAX_FANOUT_REPLY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body.into()))
}

/// A node's reply to a fan-out route, when it parses as a worker's reply:
/// a JSON object with a string `Message` (every reply of a worker's
/// `/configure`, `/clear`, `/prepare`, its failures included).
fn worker_reply(body: &[u8]) -> Option<serde_json::Value> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("Message")?.as_str()?;
    Some(value)
}

/// A node's reply as shown to the caller: the worker's reply, or else a
/// summary that repeats none of it (module doc: SSRF).
fn reply_value(status: u16, body: &[u8]) -> serde_json::Value {
    worker_reply(body).unwrap_or_else(|| {
        format!(
            "status {status}, {} bytes, not a worker's reply",
            body.len()
        )
        .into()
    })
}

/// The 502 of a fan-out route on which some node failed:
/// `{"Error": true, "Message": "...", <extra>, "nodes": [{"url", "ok",
/// "skipped", "status", "error", "reply"}]}` (`status` and `reply` null
/// when there was no reply, `error` null when the node succeeded or was
/// skipped).
fn fan_out_failure(
    route: &str,
    before: &str,
    results: &[(Arc<str>, NodeCall)],
    extra: serde_json::Map<String, serde_json::Value>,
) -> HttpResponse {
    let called = results
        .iter()
        .filter(|(_, r)| !matches!(r, NodeCall::Skipped))
        .count();
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(url, r)| r.error().map(|e| format!("{url} ({e})")))
        .collect();
    let message = format!(
        "{before}/{route} failed on {} of {called} nodes: {}",
        failures.len(),
        failures.join("; ")
    );
    let nodes: Vec<serde_json::Value> = results
        .iter()
        .map(|(url, r)| {
            let (status, reply) = match r {
                NodeCall::Replied { status, body } => {
                    (Some(*status), Some(reply_value(*status, body)))
                }
                _ => (None, None),
            };
            serde_json::json!({
                "url": &**url,
                "ok": r.ok(),
                "skipped": matches!(r, NodeCall::Skipped),
                "status": status,
                "error": r.error(),
                "reply": reply,
            })
        })
        .collect();
    let mut body = serde_json::Map::new();
    body.insert("Error".into(), true.into());
    body.insert("Message".into(), message.into());
    body.extend(extra);
    body.insert("nodes".into(), nodes.into());
    json_reply(
        StatusCode::BAD_GATEWAY,
        serde_json::Value::Object(body).to_string(),
    )
}

/// `GET /clear` and `GET /prepare`: the same call on every online worker
/// at once, each within its budget (`fanout_timeout_ms`,
/// `prepare_timeout_ms` for `/prepare`).
///
/// When every called worker answered 2xx, the original's reply: a line
/// `done at <url>` per worker (`skipped at <url> (offline)` for an
/// offline one, not called), then `done` (200, text). When any failed
/// (no reply in time, refused, or a non-2xx status), a 502 listing every
/// node's result ([`fan_out_failure`]).
async fn fan_out(local: &Local, route: &str) -> Result<HttpResponse, BalancerError> {
    let config = &local.shared.config;
    let timeout_ms = if route == "prepare" {
        config.prepare_timeout_ms
    } else {
        config.fanout_timeout_ms
    };
    let results = call_every_node(
        local,
        route,
        reqwest::Method::GET,
        &format!("/{route}"),
        Duration::from_millis(timeout_ms),
    )
    .await;
    if results.iter().any(|(_, r)| r.failed()) {
        return Ok(fan_out_failure(route, "", &results, Default::default()));
    }
    let mut text = String::new();
    for (url, result) in &results {
        match result {
            NodeCall::Skipped => text.push_str(&format!("skipped at {url} (offline)\n")),
            _ => text.push_str(&format!("done at {url}\n")),
        }
    }
    text.push_str("done\n");
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(text))
}

/// `GET /configure?lb=X&T=4&...`: `{"lb": "X", "<workerUrl>": <worker reply>, ...}`
/// (`"skipped (offline)"` for an offline worker, not called).
///
/// The algorithm and scheduler parameters are checked by the registry and
/// applied first (a fresh scheduler); if they are refused, the reply is a
/// 400 naming the culprit and nothing changes, workers included. The rest
/// of the query goes to every online worker, each within
/// `fanout_timeout_ms`; if any fails, a 502 ([`fan_out_failure`], with
/// `lb`) says so, and that the scheduler change was applied.
async fn configure(
    local: &Local,
    algorithm: Option<&str>,
    params: &[(String, String)],
    forward_query: &str,
) -> Result<HttpResponse, BalancerError> {
    let shared = &*local.shared;
    let lb = {
        let now = shared.clock.now();
        let mut cluster = shared.cluster();
        let lb = cluster.configure(algorithm, params, now)?;
        if algorithm.is_some() || !params.is_empty() {
            tracing::info!(
                algorithm = lb,
                scheduler = %serde_json::to_string(cluster.scheduler_config()).unwrap_or_default(),
                "scheduler reconfigured"
            );
        }
        lb
    };
    let results = call_every_node(
        local,
        "configure",
        reqwest::Method::GET,
        &format!("/configure?{forward_query}"),
        Duration::from_millis(shared.config.fanout_timeout_ms),
    )
    .await;
    if results.iter().any(|(_, r)| r.failed()) {
        let mut extra = serde_json::Map::new();
        extra.insert("lb".into(), lb.into());
        let before = format!("the balancer's scheduler is {lb} as asked; ");
        return Ok(fan_out_failure("configure", &before, &results, extra));
    }
    let mut out = String::from("{\"lb\":");
    out.push_str(&serde_json::Value::from(lb).to_string());
    for (url, result) in &results {
        out.push(',');
        out.push_str(&serde_json::Value::from(&**url).to_string());
        out.push(':');
        match result {
            NodeCall::Replied { status, body } => {
                out.push_str(&reply_value(*status, body).to_string());
            }
            NodeCall::Skipped | NodeCall::Failed(_) => out.push_str("\"skipped (offline)\""),
        }
    }
    out.push('}');
    Ok(json_reply(StatusCode::OK, out))
}
