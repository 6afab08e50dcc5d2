//! The HTTP front of the balancer and the worker: an actix-web `App`
//! served with the testbed's settings, behind a check of every request
//! head on a connection.
//!
//! # Why not actix-web's `HttpServer`
//! Some requests are answered by actix-http itself, before any handler
//! runs, with a bare status and no body: a URI longer than the `http`
//! crate accepts ([`MAX_URI`], 65,534 bytes) gets `400`, a head over 128
//! KiB or 96 fields `431`, a malformed head `400`. A client sending a 100
//! KB function name learnt nothing about why (issue 13 §5: "a 100 KB
//! `name` gets a JSON error body"), and actix-http offers no hook for
//! those answers. So [`serve`] builds the server from actix's parts
//! (`actix-server` and `actix-http`, as `HttpServer` does) and hands
//! actix-http each connection through [`checked::Checked`], which follows
//! the requests on it ([`framing`]: each head, then its body by its
//! `Content-Length` or chunks) and answers a head actix-http would refuse
//! with the same status and the testbed's JSON error
//! ([`protocol::ErrorReply`]), `414` for the long URI, then closes the
//! connection. Every request is checked, the first on a connection and
//! the later ones on a kept-alive one alike. The cost: each head is parsed
//! twice (once here, once by actix-http, with the same `httparse`), and
//! the bytes are copied once more.

//! # The express lane
//! A server may also name a hot route ([`Settings::express`]): each
//! connection then starts in [`express`], which answers that route's plain
//! `GET` requests itself (one parse, one write, no actix-http objects) and
//! hands the connection, with the bytes it read and did not answer, to
//! actix-http through [`checked::Checked`] at the first request it does
//! not take. The balancer's `/execute` goes this way: actix-http's
//! per-request machinery was the CPU, and so the p99, it had over HAProxy
//! (issue 15 §3; figures in `bench/README.md`).

//! # Stopping
//! A graceful stop (`ServerHandle::stop(true)`) lets the requests in flight
//! finish, for up to [`Settings::shutdown_timeout`], and closes every
//! kept-alive connection as soon as it is idle: in the express lane when it
//! waits for a request, in actix-http when its reply is written. Without
//! that, actix-server waits for *every* connection to close, so one idle
//! kept-alive client (a replayer's pool, a health checker) held each stop
//! for the whole time-out, and a caller that gave the process less time
//! than that (`simulator experiment` gave 5 s, the time-out) killed it
//! before it removed its temporary files.

//! # Listener addresses
//! With its own server, actix-web's `AppConfig` no longer carries the
//! listener's address; [`local_addr`] reads it from the connection instead
//! (a server with a separate management listener tells its routes apart by
//! it).

pub mod checked;
pub mod express;
pub mod framing;
pub mod metrics;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix_http::{HttpService, Protocol, Request};
use actix_server::Server;
use actix_service::{
    fn_service, map_config, IntoServiceFactory, ServiceFactory, ServiceFactoryExt,
};
use actix_web::body::MessageBody;
use actix_web::dev::{AppConfig, Response};
use actix_web::HttpRequest;
use checked::Checked;
use tokio::net::TcpStream;

pub use framing::{MAX_HEAD, MAX_HEADERS, MAX_URI};

/// How the front serves.
#[derive(Clone)]
pub struct Settings {
    /// Threads serving requests (each with its own `App`).
    pub workers: usize,
    /// Time allowed for a request's head to arrive.
    pub request_head: Duration,
    /// Time a kept-alive connection may stay idle.
    pub keep_alive: Duration,
    /// Seconds given to requests in flight when the server stops.
    pub shutdown_timeout: u64,
    /// The hot route served in the express lane ([`express`]), if any.
    pub express: Option<express::ExpressFactory>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("workers", &self.workers)
            .field("request_head", &self.request_head)
            .field("keep_alive", &self.keep_alive)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("express", &self.express.is_some())
            .finish()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            workers: 1,
            request_head: protocol::timeouts::REQUEST_HEAD,
            keep_alive: protocol::timeouts::SERVER_KEEP_ALIVE,
            shutdown_timeout: 5,
            express: None,
        }
    }
}

/// The address of the listener a request came in on (see the module
/// docs), if the request came through [`serve`].
pub fn local_addr(req: &HttpRequest) -> Option<SocketAddr> {
    req.conn_data::<ListenerAddr>().map(|a| a.0)
}

/// The listener's address, stored with each connection.
#[derive(Debug, Clone, Copy)]
struct ListenerAddr(SocketAddr);

/// Serves `factory`'s app on every listener in `listeners`, with
/// `settings`. Signals are not handled (the caller stops the server with
/// its handle). Like `HttpServer::new(factory)...run()`.
pub fn serve<F, I, S, B>(
    factory: F,
    listeners: Vec<TcpListener>,
    settings: &Settings,
) -> io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: std::fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let mut builder = Server::build()
        .workers(settings.workers.max(1))
        .disable_signals()
        .shutdown_timeout(settings.shutdown_timeout);
    let stopping = builder.graceful_shutdown_signal();
    for (i, listener) in listeners.into_iter().enumerate() {
        let addr = listener.local_addr()?;
        let factory = factory.clone();
        let settings = settings.clone();
        let stopping = stopping.clone();
        builder = builder.listen(format!("http-{i}"), listener, move || {
            let app = factory()
                .into_factory()
                .map_err(|e| e.into().error_response());
            let drain = stopping.clone();
            let http = HttpService::build()
                // Idle kept-alive connections close at a graceful stop
                // (module docs, "Stopping").
                .graceful_shutdown_signal(move || {
                    let drain = drain.clone();
                    async move { drain.notified().await }
                })
                .keep_alive(settings.keep_alive)
                .client_request_timeout(settings.request_head)
                .local_addr(addr)
                .on_connect_ext(move |_io: &Checked, ext| {
                    ext.insert(ListenerAddr(addr));
                })
                .finish(map_config(app, |_| AppConfig::default()));
            let lane = settings.express.as_ref().map(|make| make());
            let (head, idle) = (settings.request_head, settings.keep_alive);
            let stopping = stopping.clone();
            fn_service(move |io: TcpStream| {
                let lane = lane.clone();
                let stopping = stopping.clone();
                async move {
                    let peer = io.peer_addr().ok();
                    let checked = match &lane {
                        None => Checked::new(io),
                        Some(lane) => match express::serve(io, lane, head, idle, &stopping).await {
                            express::Exit::Handover(io, held) => Checked::with_held(io, held),
                            // actix-server drops the error: the connection
                            // is over.
                            express::Exit::Closed => {
                                return Err(actix_http::error::DispatchError::Io(
                                    io::ErrorKind::ConnectionAborted.into(),
                                ))
                            }
                        },
                    };
                    Ok((checked, Protocol::Http1, peer))
                }
            })
            .and_then(http)
        })?;
    }
    Ok(builder.run())
}

/// The testbed's JSON error reply (`protocol::ErrorReply`) with `status`
/// (a status out of range is a `400`).
pub fn error_reply(status: u16, message: impl Into<String>) -> actix_web::HttpResponse {
    actix_web::HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .content_type("application/json")
    .body(protocol::ErrorReply::new(message).to_json())
}

/// Reads a request's body, refusing it with a JSON `413` past `max`
/// bytes: early when its `Content-Length` says so, else when the bytes
/// read pass it (a JSON `400` when reading fails).
pub async fn read_body(
    req: &HttpRequest,
    mut payload: actix_web::web::Payload,
    max: u64,
) -> Result<bytes::Bytes, actix_web::HttpResponse> {
    use futures_util::StreamExt as _;
    let too_large = || {
        error_reply(
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
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| error_reply(400, format!("reading the request body: {e}")))?;
        if (body.len() + chunk.len()) as u64 > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Reads a request's body of at most `max` bytes (as [`read_body`]: a
/// JSON `413` past it) and hands it, with the request's `Content-Type`
/// (`""` without one), to `parse`; an error of `parse` is a JSON `400`
/// with its message. The Glambdar routes' bodies (`POST /deploy`'s form,
/// `POST /config/:name`'s JSON) on the worker and the balancer alike.
pub async fn read_form<T>(
    req: &HttpRequest,
    payload: actix_web::web::Payload,
    max: u64,
    parse: impl FnOnce(&str, &bytes::Bytes) -> Result<T, String>,
) -> Result<T, actix_web::HttpResponse> {
    let body = read_body(req, payload, max).await?;
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    parse(content_type, &body).map_err(|message| error_reply(400, message))
}
