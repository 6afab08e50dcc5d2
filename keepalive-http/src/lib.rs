//! The hot path's HTTP/1.1 client over pooled keep-alive connections, for
//! the balancer's calls to workers and the worker's calls to warm
//! instances (`hf-fn serve`, and users' functions).
//!
//! Why not a general client (reqwest, hyper): a call on the hot path is
//! one small request answered by a small body. A general client parses a
//! URL, builds a header map and hands each request to a connection task
//! over a channel: two extra task wake-ups per call, which profiles of the
//! balancer and of the worker under `wrk` showed. Here the caller's own
//! future writes the request onto a pooled `TcpStream` and reads the reply
//! with `httparse`.
//!
//! # Two shapes of call
//! - [`Pool::get`]: `GET <path>?<query>`, no request headers but `Host`,
//!   the reply's status and body only (its headers are not collected): the
//!   balancer's `/execute` and the worker's sample-function calls.
//! - [`Pool::send`] of a [`Request`]: any method, request headers, a body
//!   (sent with `Content-Length`), and the reply's headers too (at most
//!   [`MAX_HEADERS`]), its body bounded by the request
//!   ([`Request::max_reply_body`], at most [`MAX_BODY_BYTES`]): the
//!   user functions' `/invoke`, relayed with their method, headers, query
//!   and body. A reply to `HEAD`, and a `204` or `304`, has no body.
//!   Header names and values are checked when added (no CR, LF or NUL; a
//!   name is an RFC 9110 token), so a relayed header can never split the
//!   request.
//!
//! # Connections and threads
//! Idle connections are kept per (thread, authority). A tokio socket stays
//! registered with the I/O driver of the runtime that opened it, and each
//! actix worker thread runs its own single-threaded runtime, so a
//! connection is only reused by the thread that opened it: reusing it from
//! another thread would route every readiness event through the first one
//! (a cross-thread wake-up per call). At most `max_idle_per_peer`
//! connections are kept per thread and authority.
//!
//! # Replies
//! `Content-Length` and chunked bodies, replies that end at EOF, interim
//! `1xx` replies (skipped) and `Connection: close` are supported; a reply
//! head may be at most [`MAX_HEAD_BYTES`], a body at most
//! [`MAX_BODY_BYTES`]. No timeout on the exchange: a call lasts as long as
//! the function (D1: minutes); connecting may have one.
//!
//! # Closed connections: idle or mid-call
//! A pooled connection is checked before it is reused: one non-blocking
//! read that finds the peer's close (or bytes nobody asked for, such as an
//! unsolicited `408`) drops it, and the next idle one or a fresh connection
//! is taken (the check sees only what the I/O driver has already
//! observed, so it can miss a close that just arrived). A reused
//! connection that closes before any reply byte is most often the peer's
//! idle close racing the reuse, so the request goes once more on a fresh
//! connection; when that connection cannot be opened, the peer is gone
//! and may have received the request and died running it (a worker
//! killed mid-call): that is a failed exchange ([`CallError::Exchange`],
//! kind `UnexpectedEof`), never a connect failure, so the caller, who
//! alone knows whether the call is safe to repeat, decides (the balancer
//! retries only such calls on another node). Before, it was reported as a
//! refused connection ("never reached the node"), which let a call that
//! was not safe to repeat run twice. On a fresh connection, a close before
//! the reply is a failed exchange at once.

use std::collections::HashMap;
use std::io;
use std::sync::{Mutex, PoisonError};
use std::thread::ThreadId;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest reply head (status line + headers) accepted.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest reply body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Most reply headers read (more is an invalid reply).
pub const MAX_HEADERS: usize = 64;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No connection could be opened: the request never reached the peer.
    #[error("connecting to {authority}: {source}")]
    Connect {
        authority: String,
        source: io::Error,
    },
    /// The exchange broke, or the reply was not valid HTTP/1.1
    /// (`ErrorKind::InvalidData`).
    #[error("{method} {authority}{path}: {source}")]
    Exchange {
        method: String,
        authority: String,
        path: String,
        source: io::Error,
    },
}

impl CallError {
    /// Whether the request went on a reused connection that closed before
    /// any reply byte and the peer then refused a new one: it may have died
    /// before the request or while running it (module doc).
    pub fn peer_gone_after_reuse(&self) -> bool {
        matches!(self, Self::Exchange { source, .. }
            if source.get_ref().is_some_and(|e| e.is::<PeerGone>()))
    }

    /// Whether the reply's body was larger than the request allowed
    /// ([`Request::max_reply_body`]).
    pub fn reply_too_large(&self) -> bool {
        matches!(self, Self::Exchange { source, .. }
            if source.get_ref().is_some_and(|e| e.is::<TooLarge>()))
    }
}

/// The error inside [`CallError::reply_too_large`]'s exchange error.
#[derive(Debug)]
struct TooLarge(usize);

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "reply body larger than {} bytes", self.0)
    }
}

impl std::error::Error for TooLarge {}

/// The error inside [`CallError::peer_gone_after_reuse`]'s exchange error.
#[derive(Debug)]
struct PeerGone(String);

impl std::fmt::Display for PeerGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PeerGone {}

/// A reply: status code, headers ([`Pool::send`] only: empty for
/// [`Pool::get`]) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// Names as sent, values as bytes, in order (repeats kept).
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Bytes,
}

impl Reply {
    /// The first value of header `name` (any case), if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// Why a [`Request`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequest {
    #[error("method {0:?} is not an HTTP token")]
    Method(String),
    #[error("request target {0:?} is not an origin form (`/path?query`, no spaces or controls)")]
    Target(String),
    #[error("header name {0:?} is not an HTTP token")]
    HeaderName(String),
    #[error("the value of header {0:?} holds CR, LF or NUL")]
    HeaderValue(String),
}

/// A request for [`Pool::send`]: method, target, headers, body, and how
/// large a reply body may be. `Host` is added when it is sent, and
/// `Content-Length` when it has a body or its method usually has one.
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    target: String,
    /// `name: value\r\n` lines.
    headers: Vec<u8>,
    body: Bytes,
    max_reply_body: usize,
}

/// RFC 9110 `token` characters.
fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl Request {
    /// `method target` (`target`: `/path` with an optional `?query`).
    pub fn new(method: &str, target: &str) -> Result<Self, InvalidRequest> {
        if !is_token(method.as_bytes()) {
            return Err(InvalidRequest::Method(clip(method)));
        }
        if !target.starts_with('/') || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(InvalidRequest::Target(clip(target)));
        }
        Ok(Self {
            method: method.to_string(),
            target: target.to_string(),
            headers: Vec::new(),
            body: Bytes::new(),
            max_reply_body: MAX_BODY_BYTES,
        })
    }

    /// Adds a header line (`Host`, `Content-Length`, `Transfer-Encoding`
    /// and `Connection` are the pool's: adding them is refused).
    pub fn header(&mut self, name: &str, value: &[u8]) -> Result<&mut Self, InvalidRequest> {
        if !is_token(name.as_bytes())
            || ["host", "content-length", "transfer-encoding", "connection"]
                .iter()
                .any(|own| name.eq_ignore_ascii_case(own))
        {
            return Err(InvalidRequest::HeaderName(clip(name)));
        }
        if value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(InvalidRequest::HeaderValue(clip(name)));
        }
        self.headers.extend_from_slice(name.as_bytes());
        self.headers.extend_from_slice(b": ");
        self.headers.extend_from_slice(value);
        self.headers.extend_from_slice(b"\r\n");
        Ok(self)
    }

    /// The body (sent with its `Content-Length`).
    pub fn body(&mut self, body: Bytes) -> &mut Self {
        self.body = body;
        self
    }

    /// The largest reply body accepted (at most [`MAX_BODY_BYTES`]); a
    /// larger one fails the call ([`CallError::reply_too_large`]).
    pub fn max_reply_body(&mut self, bytes: usize) -> &mut Self {
        self.max_reply_body = bytes.min(MAX_BODY_BYTES);
        self
    }

    /// The bytes on the wire for `authority`: the head, with the body
    /// when it is small (one write); true when the body is in.
    fn encode(&self, authority: &str) -> (Vec<u8>, bool) {
        let small_body = self.body.len() <= 16 * 1024;
        let mut out = Vec::with_capacity(
            self.method.len()
                + self.target.len()
                + authority.len()
                + self.headers.len()
                + 64
                + if small_body { self.body.len() } else { 0 },
        );
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        out.extend_from_slice(authority.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.headers);
        let bodyless = matches!(
            self.method.as_str(),
            "GET" | "HEAD" | "DELETE" | "OPTIONS" | "TRACE"
        );
        if !self.body.is_empty() || !bodyless {
            out.extend_from_slice(b"Content-Length: ");
            out.extend_from_slice(self.body.len().to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if small_body {
            out.extend_from_slice(&self.body);
        }
        (out, small_body)
    }
}

/// At most 80 characters of `s`, for error messages.
fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

/// How one exchange reads its reply.
#[derive(Debug, Clone, Copy)]
struct ReplyShape {
    /// Collect the headers (else only status and body).
    headers: bool,
    /// The request was `HEAD`: the reply has no body.
    head: bool,
    max_body: usize,
}

impl ReplyShape {
    const GET: Self = Self {
        headers: false,
        head: false,
        max_body: MAX_BODY_BYTES,
    };
}

/// What one call writes.
struct Wire<'a> {
    method: &'a str,
    path: &'a str,
    /// Head (and a small body).
    head: &'a [u8],
    /// A large body, written after the head.
    rest: &'a [u8],
    shape: ReplyShape,
}

type Idle = HashMap<ThreadId, HashMap<Box<str>, Vec<TcpStream>>>;

/// Keep-alive connections, by thread and authority (`host:port`).
#[derive(Debug)]
pub struct Pool {
    idle: Mutex<Idle>,
    max_idle_per_peer: usize,
    connect_timeout: Option<Duration>,
}

impl Pool {
    /// A pool keeping at most `max_idle_per_peer` idle connections per
    /// thread and authority; connecting gives up after `connect_timeout`
    /// (`None`: the system's).
    pub fn new(max_idle_per_peer: usize, connect_timeout: Option<Duration>) -> Self {
        Self {
            idle: Mutex::new(HashMap::new()),
            max_idle_per_peer,
            connect_timeout,
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Idle> {
        // The map stays consistent whatever a panicking holder did.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently kept idle connection to `authority` that is still
    /// open and quiet (module doc); closed ones are dropped on the way.
    fn take_idle(&self, authority: &str) -> Option<TcpStream> {
        let mut idle = self.idle();
        let list = idle
            .get_mut(&std::thread::current().id())?
            .get_mut(authority)?;
        while let Some(stream) = list.pop() {
            if still_open(&stream) {
                return Some(stream);
            }
        }
        None
    }

    fn put_idle(&self, authority: &str, stream: TcpStream) {
        let mut idle = self.idle();
        let by_peer = idle.entry(std::thread::current().id()).or_default();
        match by_peer.get_mut(authority) {
            Some(list) if list.len() < self.max_idle_per_peer => list.push(stream),
            Some(_) => {}
            None if self.max_idle_per_peer > 0 => {
                by_peer.insert(authority.into(), vec![stream]);
            }
            None => {}
        }
    }

    /// Idle connections to `authority` kept for the calling thread.
    pub fn idle_count(&self, authority: &str) -> usize {
        self.idle()
            .get(&std::thread::current().id())
            .and_then(|m| m.get(authority))
            .map_or(0, Vec::len)
    }

    /// Drops every idle connection to `authority` (the peer is gone).
    pub fn forget(&self, authority: &str) {
        for by_peer in self.idle().values_mut() {
            by_peer.remove(authority);
        }
    }

    async fn connect(&self, authority: &str) -> Result<TcpStream, CallError> {
        let error = |source| CallError::Connect {
            authority: authority.into(),
            source,
        };
        // `host` alone means port 80.
        let has_port = match authority.rfind(']') {
            Some(bracket) => authority[bracket..].contains(':'),
            None => authority.contains(':'),
        };
        let target: std::borrow::Cow<'_, str> = if has_port {
            authority.into()
        } else {
            format!("{authority}:80").into()
        };
        let connecting = TcpStream::connect(&*target);
        let stream = match self.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, connecting).await.map_err(|_| {
                error(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect timed out after {limit:?}"),
                ))
            })?,
            None => connecting.await,
        }
        .map_err(error)?;
        stream.set_nodelay(true).map_err(error)?;
        Ok(stream)
    }

    /// `GET <path_and_query>` on `authority` (`host[:port]`); the reply's
    /// headers are not collected.
    pub async fn get(&self, authority: &str, path_and_query: &str) -> Result<Reply, CallError> {
        let mut request = Vec::with_capacity(path_and_query.len() + authority.len() + 32);
        request.extend_from_slice(b"GET ");
        request.extend_from_slice(path_and_query.as_bytes());
        request.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        request.extend_from_slice(authority.as_bytes());
        request.extend_from_slice(b"\r\n\r\n");
        self.call(
            authority,
            Wire {
                method: "GET",
                path: path_and_query,
                head: &request,
                rest: &[],
                shape: ReplyShape::GET,
            },
        )
        .await
    }

    /// Sends `request` to `authority` (`host[:port]`); the reply comes
    /// with its headers.
    pub async fn send(&self, authority: &str, request: &Request) -> Result<Reply, CallError> {
        let (head, body_in) = request.encode(authority);
        let rest: &[u8] = if body_in { &[] } else { &request.body };
        self.call(
            authority,
            Wire {
                method: &request.method,
                path: &request.target,
                head: &head,
                rest,
                shape: ReplyShape {
                    headers: true,
                    head: request.method == "HEAD",
                    max_body: request.max_reply_body,
                },
            },
        )
        .await
    }

    async fn call(&self, authority: &str, wire: Wire<'_>) -> Result<Reply, CallError> {
        let failed = |source| CallError::Exchange {
            method: wire.method.into(),
            authority: authority.into(),
            path: wire.path.into(),
            source,
        };
        // Why a reused connection failed before any reply byte, when the
        // request may have reached the peer.
        let mut reached: Option<io::Error> = None;
        let mut idle = self.take_idle(authority);
        // One `exchange` awaited in one place (the future of a call, which
        // the balancer allocates per request, holds it once).
        loop {
            let reused = idle.is_some();
            let stream = match idle.take() {
                Some(stream) => stream,
                // Boxed: connecting (with its time-out) is the cold path.
                None => match Box::pin(self.connect(authority)).await {
                    Ok(stream) => stream,
                    Err(CallError::Connect { source, .. }) if reached.is_some() => {
                        let first = reached.take().map(|e| e.to_string()).unwrap_or_default();
                        return Err(failed(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            PeerGone(format!("{first}; reconnecting failed: {source}")),
                        )));
                    }
                    Err(e) => return Err(e),
                },
            };
            match exchange(stream, &wire).await {
                Ok(done) => return Ok(self.keep(authority, done)),
                // A reused connection: the request could not be written, so
                // it never left, and a fresh connection may carry it.
                Err(Failure::Unsent) if reused => {}
                // A reused connection closed before the reply: most often
                // the peer's idle close racing the reuse, so one fresh
                // connection is tried; if the peer is gone, the caller
                // learns that the request may have reached it (module doc).
                Err(Failure::ClosedBeforeReply(e)) if reused => reached = Some(e),
                Err(Failure::Unsent) => {
                    return Err(failed(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        "connection closed before the request was sent",
                    )))
                }
                Err(Failure::ClosedBeforeReply(e) | Failure::Broken(e)) => return Err(failed(e)),
            }
        }
    }

    fn keep(&self, authority: &str, (reply, reusable): (Reply, Option<TcpStream>)) -> Reply {
        if let Some(stream) = reusable {
            self.put_idle(authority, stream);
        }
        reply
    }
}

enum Failure {
    /// Closed (or reset) while the request was being written.
    Unsent,
    /// Closed (or reset) after the request was written, before any reply
    /// byte.
    ClosedBeforeReply(io::Error),
    Broken(io::Error),
}

/// Whether an idle pooled connection may carry a request: the peer has
/// neither closed it nor sent anything unasked (one non-blocking read).
fn still_open(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.try_read(&mut byte) {
        Err(e) => e.kind() == io::ErrorKind::WouldBlock,
        // 0: closed; a byte: a reply nobody asked for (e.g. a 408).
        Ok(_) => false,
    }
}

/// The error of a connection closed before any reply byte.
fn closed_before_reply(e: Option<io::Error>) -> Failure {
    Failure::ClosedBeforeReply(io::Error::new(
        e.as_ref()
            .map_or(io::ErrorKind::UnexpectedEof, io::Error::kind),
        match e {
            Some(e) => format!("connection closed before the reply: {e}"),
            None => "connection closed before the reply".to_string(),
        },
    ))
}

fn invalid(message: &str) -> Failure {
    Failure::Broken(io::Error::new(
        io::ErrorKind::InvalidData,
        message.to_string(),
    ))
}

/// The first read buffer of a reply (see `exchange`).
const FIRST_READ: usize = 1000;

enum Framing {
    Length(usize),
    Chunked,
    UntilEof,
}

/// Writes the request, reads one reply; returns the stream when it may be
/// reused.
async fn exchange(
    mut stream: TcpStream,
    wire: &Wire<'_>,
) -> Result<(Reply, Option<TcpStream>), Failure> {
    if let Err(e) = stream.write_all(wire.head).await {
        return Err(if is_closed(&e) {
            Failure::Unsent
        } else {
            Failure::Broken(e)
        });
    }
    if !wire.rest.is_empty() {
        // The head left: from here on the peer may have the request.
        if let Err(e) = stream.write_all(wire.rest).await {
            return Err(if is_closed(&e) {
                closed_before_reply(Some(e))
            } else {
                Failure::Broken(e)
            });
        }
    }
    let shape = wire.shape;
    // Replies are a few hundred bytes; a small first buffer stays in
    // malloc's per-thread cache, and reading into its spare capacity spares
    // zeroing and copying a chunk per read. Under 1,008 bytes: from 1,024
    // on, a request is a large-bin one for glibc's malloc, which first
    // consolidates its fast bins whenever the per-thread cache is empty
    // (0.8 % of the balancer's CPU time under `bench/balancer-vs-haproxy.sh`).
    let mut buf = BytesMut::with_capacity(FIRST_READ);
    let mut reply_headers = Vec::new();
    // Whether any byte came back (a close before it is reported as such),
    // and whether `buf` may already hold the next head (after an interim
    // reply).
    let (mut received, mut parse_first) = (false, false);
    let (status, head_len, framing, keep_alive) = loop {
        if !parse_first {
            match stream.read_buf(&mut buf).await {
                Ok(0) if !received => return Err(closed_before_reply(None)),
                Ok(0) => return Err(invalid("connection closed inside the reply head")),
                Ok(_) => received = true,
                Err(e) if !received && is_closed(&e) => return Err(closed_before_reply(Some(e))),
                Err(e) => return Err(Failure::Broken(e)),
            }
        }
        parse_first = false;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let status = response.code.unwrap_or(0);
                let mut framing = Framing::UntilEof;
                let mut keep_alive = response.version == Some(1);
                let interim = (100..200).contains(&status);
                for h in response.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        let length = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .ok_or_else(|| invalid("bad Content-Length"))?;
                        if !matches!(framing, Framing::Chunked) {
                            framing = Framing::Length(length);
                        }
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        if h.value.eq_ignore_ascii_case(b"chunked") {
                            framing = Framing::Chunked;
                        } else {
                            return Err(invalid("unsupported Transfer-Encoding"));
                        }
                    } else if h.name.eq_ignore_ascii_case("connection") {
                        if h.value.eq_ignore_ascii_case(b"close") {
                            keep_alive = false;
                        } else if h.value.eq_ignore_ascii_case(b"keep-alive") {
                            keep_alive = true;
                        }
                    }
                    if shape.headers && !interim {
                        reply_headers.push((h.name.to_string(), h.value.to_vec()));
                    }
                }
                if interim {
                    // An interim reply (e.g. 100 Continue): skip it.
                    let _ = buf.split_to(head_len);
                    parse_first = !buf.is_empty();
                    continue;
                }
                // RFC 9112 §6.3: no body after HEAD, 204 or 304.
                if shape.head || status == 204 || status == 304 {
                    framing = Framing::Length(0);
                }
                break (status, head_len, framing, keep_alive);
            }
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
                return Err(invalid("reply head too large"))
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(invalid(&format!("bad reply head: {e}"))),
        }
    };
    let _ = buf.split_to(head_len);
    let too_large = || {
        Failure::Broken(io::Error::new(
            io::ErrorKind::InvalidData,
            TooLarge(shape.max_body),
        ))
    };
    let reply = |body| Reply {
        status,
        headers: reply_headers,
        body,
    };
    match framing {
        Framing::Length(length) => {
            if length > shape.max_body {
                return Err(too_large());
            }
            while buf.len() < length {
                buf.reserve(length - buf.len());
                read_more(&mut stream, &mut buf).await?;
            }
            let body = buf.split_to(length).freeze();
            // Extra bytes after the body: the connection is out of step.
            let reusable = keep_alive && buf.is_empty();
            Ok((reply(body), reusable.then_some(stream)))
        }
        Framing::Chunked => {
            // Boxed: rare on the hot path, and it would make every call's
            // future larger.
            let body = Box::pin(read_chunked(&mut stream, &mut buf, shape.max_body))
                .await
                .map_err(|e| e.unwrap_or_else(too_large))?;
            let reusable = keep_alive && buf.is_empty();
            Ok((reply(body), reusable.then_some(stream)))
        }
        Framing::UntilEof => loop {
            if buf.len() > shape.max_body {
                return Err(too_large());
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) => {
                    let body = buf.freeze();
                    return Ok((reply(body), None));
                }
                Ok(_) => {}
                Err(e) => return Err(Failure::Broken(e)),
            }
        },
    }
}

/// A chunked body (`buf` holds what follows the head) of at most
/// `max_body` bytes; leaves in `buf` whatever follows the body.
/// Err(None): the body is larger.
async fn read_chunked(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    max_body: usize,
) -> Result<Bytes, Option<Failure>> {
    let mut body = BytesMut::new();
    loop {
        let line_end = loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            if buf.len() > MAX_HEAD_BYTES {
                return Err(Some(invalid("bad chunk size line")));
            }
            read_more(stream, buf).await?;
        };
        let size = std::str::from_utf8(&buf[..line_end])
            .ok()
            .map(|l| l.split(';').next().unwrap_or("").trim())
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .ok_or_else(|| Some(invalid("bad chunk size")))?;
        let _ = buf.split_to(line_end + 2);
        if size == 0 {
            // Trailers (usually none) end with an empty line.
            loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    let _ = buf.split_to(i + 2);
                    if i == 0 {
                        return Ok(body.freeze());
                    }
                    continue;
                }
                read_more(stream, buf).await?;
            }
        }
        if body.len().saturating_add(size) > max_body {
            return Err(None);
        }
        while buf.len() < size + 2 {
            read_more(stream, buf).await?;
        }
        body.extend_from_slice(&buf[..size]);
        let _ = buf.split_to(size + 2);
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<usize, Failure> {
    match stream.read_buf(buf).await {
        Ok(0) => Err(invalid("connection closed inside the reply body")),
        Ok(n) => Ok(n),
        Err(e) => Err(Failure::Broken(e)),
    }
}

fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::net::TcpListener;

    /// A loopback server: on its first connection, answers each request
    /// with the next of `replies` (raw bytes), then closes. Returns the
    /// authority.
    async fn serve(replies: Vec<&'static [u8]>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            for reply in replies {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = socket.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                socket.write_all(reply).await.unwrap();
            }
        });
        addr.to_string()
    }

    fn pool() -> Pool {
        Pool::new(8, Some(Duration::from_secs(1)))
    }

    #[tokio::test]
    async fn reads_length_and_chunked_bodies_on_one_kept_alive_connection() {
        let peer = serve(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n{\"a\":1}",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 500 Oops\r\ntransfer-encoding: chunked\r\n\r\n3;x\r\n{\"b\r\n4\r\n\":2}\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nlast",
        ])
        .await;
        let pool = pool();
        let r = pool.get(&peer, "/execute?name=W1").await.unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"{\"a\":1}"[..]));
        assert_eq!(pool.idle_count(&peer), 1);
        let r = pool.get(&peer, "/execute?name=W2").await.unwrap();
        assert_eq!((r.status, &r.body[..]), (500, &b"{\"b\":2}"[..]));
        assert_eq!(pool.idle_count(&peer), 1, "the same connection, reused");
        let r = pool.get(&peer, "/x").await.unwrap();
        assert_eq!(&r.body[..], b"last");
        assert_eq!(pool.idle_count(&peer), 0, "closed by the server");
    }

    #[tokio::test]
    async fn a_reply_without_length_ends_at_eof_and_is_not_reused() {
        let peer = serve(vec![b"HTTP/1.1 200 OK\r\n\r\nuntil the end"]).await;
        let pool = pool();
        let r = pool.get(&peer, "/").await.unwrap();
        assert_eq!(&r.body[..], b"until the end");
        assert_eq!(pool.idle_count(&peer), 0);
    }

    #[tokio::test]
    async fn a_dead_peer_is_a_connect_error_and_a_bad_reply_an_exchange_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = listener.local_addr().unwrap().to_string();
        drop(listener);
        let pool = pool();
        let e = pool.get(&dead, "/invoke").await.unwrap_err();
        assert!(matches!(e, CallError::Connect { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("connecting to {dead}: ")),
            "{e}"
        );
        let peer = serve(vec![b"garbage\r\n\r\n"]).await;
        let e = pool.get(&peer, "/invoke").await.unwrap_err();
        assert!(
            matches!(&e, CallError::Exchange { source, .. } if source.kind() == io::ErrorKind::InvalidData),
            "{e}"
        );
        assert!(
            e.to_string()
                .starts_with(&format!("GET {peer}/invoke: bad reply head")),
            "{e}"
        );
    }

    /// A loopback server: per connection, reads one request and sends
    /// `first` on the first connection (then does what `after_first` says)
    /// and an ordinary reply on every later one. Reports each request line
    /// it read, then each connection it finished with, on `events`.
    /// The server acts on the first connection (close it, speak on it)
    /// once `go` is notified.
    async fn serve_once_per_connection(
        after_first: AfterFirst,
    ) -> (
        String,
        tokio::sync::mpsc::UnboundedReceiver<String>,
        std::sync::Arc<tokio::sync::Notify>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = listener.local_addr().unwrap().to_string();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let go = std::sync::Arc::new(tokio::sync::Notify::new());
        let go_server = go.clone();
        tokio::spawn(async move {
            for n in 0.. {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut requests = 0;
                loop {
                    let mut buf = vec![0u8; 4096];
                    let got = socket.read(&mut buf).await.unwrap_or(0);
                    if got == 0 {
                        break;
                    }
                    let line = String::from_utf8_lossy(&buf[..got]);
                    let _ = tx.send(line.lines().next().unwrap_or("").to_string());
                    requests += 1;
                    if n == 0 && requests == 2 && after_first == AfterFirst::DieOnSecondRequest {
                        // A worker killed with the call in flight: it
                        // stops listening, then its connection closes.
                        drop(listener);
                        drop(socket);
                        let _ = tx.send("closed".into());
                        return;
                    }
                    socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                        .await
                        .unwrap();
                    if n == 0 && after_first == AfterFirst::CloseIdle {
                        go_server.notified().await;
                        break;
                    }
                    if n == 0 && after_first == AfterFirst::Unsolicited408 {
                        go_server.notified().await;
                        socket
                            .write_all(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n")
                            .await
                            .unwrap();
                        break;
                    }
                }
                drop(socket);
                let _ = tx.send("closed".into());
            }
        });
        (peer, rx, go)
    }

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum AfterFirst {
        CloseIdle,
        Unsolicited408,
        DieOnSecondRequest,
    }

    async fn next_event(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
        tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("the test server reports within 30 s")
            .expect("the test server is running")
    }

    #[tokio::test]
    async fn a_connection_closed_or_spoken_on_while_idle_is_replaced() {
        for case in [AfterFirst::CloseIdle, AfterFirst::Unsolicited408] {
            let (peer, mut events, go) = serve_once_per_connection(case).await;
            let pool = pool();
            assert_eq!(pool.get(&peer, "/a").await.unwrap().status, 200);
            assert_eq!(next_event(&mut events).await, "GET /a HTTP/1.1");
            assert_eq!(pool.idle_count(&peer), 1);
            go.notify_one();
            // The server has closed (or spoken on) the kept connection.
            assert_eq!(next_event(&mut events).await, "closed");
            let r = pool.get(&peer, "/b").await.unwrap();
            assert_eq!(r.status, 200, "a fresh connection, not the stale one");
            assert_eq!(next_event(&mut events).await, "GET /b HTTP/1.1");
            assert_eq!(pool.idle_count(&peer), 1);
        }
    }

    #[tokio::test]
    async fn a_peer_dying_mid_call_on_a_reused_connection_is_a_failed_exchange_not_a_connect_error()
    {
        let (peer, mut events, _) = serve_once_per_connection(AfterFirst::DieOnSecondRequest).await;
        let pool = pool();
        assert_eq!(
            pool.get(&peer, "/execute?name=W1").await.unwrap().status,
            200
        );
        assert_eq!(
            next_event(&mut events).await,
            "GET /execute?name=W1 HTTP/1.1"
        );
        let e = pool.get(&peer, "/execute?name=W2").await.unwrap_err();
        assert!(
            matches!(&e, CallError::Exchange { source, .. }
                if matches!(source.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset)),
            "the call reached the peer, so it is not a connect error: {e}"
        );
        assert!(e.to_string().contains("closed before the reply"), "{e}");
        assert_eq!(
            next_event(&mut events).await,
            "GET /execute?name=W2 HTTP/1.1"
        );
        assert_eq!(next_event(&mut events).await, "closed");
        assert!(e.to_string().contains("reconnecting failed"), "{e}");
        assert!(e.peer_gone_after_reuse(), "{e}");
    }

    #[tokio::test]
    async fn forget_drops_idle_connections_and_the_limit_holds() {
        let peer = serve(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]).await;
        let none_kept = Pool::new(0, None);
        none_kept.get(&peer, "/").await.unwrap();
        assert_eq!(none_kept.idle_count(&peer), 0, "no idle connection allowed");
        let peer = serve(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]).await;
        let pool = pool();
        pool.get(&peer, "/").await.unwrap();
        assert_eq!(pool.idle_count(&peer), 1);
        pool.forget(&peer);
        assert_eq!(pool.idle_count(&peer), 0);
    }

    /// A request as the test server read it.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        target: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        connection: usize,
    }

    /// A loopback server that reads whole requests (head and
    /// `Content-Length` body) on every connection, reports each on the
    /// channel, and answers it with `reply(&request)` (raw bytes).
    async fn serve_requests(
        reply: fn(&Seen) -> Vec<u8>,
    ) -> (String, tokio::sync::mpsc::UnboundedReceiver<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = listener.local_addr().unwrap().to_string();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            for connection in 0.. {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let (seen, used) = loop {
                            let mut headers = [httparse::EMPTY_HEADER; 64];
                            let mut req = httparse::Request::new(&mut headers);
                            if let Ok(httparse::Status::Complete(n)) = req.parse(&buf) {
                                let headers: Vec<(String, String)> = req
                                    .headers
                                    .iter()
                                    .map(|h| {
                                        (
                                            h.name.to_string(),
                                            String::from_utf8_lossy(h.value).into(),
                                        )
                                    })
                                    .collect();
                                let length: usize = headers
                                    .iter()
                                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                                    .map_or(0, |(_, v)| v.parse().unwrap());
                                if buf.len() >= n + length {
                                    break (
                                        Seen {
                                            method: req.method.unwrap().into(),
                                            target: req.path.unwrap().into(),
                                            headers,
                                            body: buf[n..n + length].to_vec(),
                                            connection,
                                        },
                                        n + length,
                                    );
                                }
                            }
                            let mut chunk = vec![0u8; 64 * 1024];
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(got) => buf.extend_from_slice(&chunk[..got]),
                            }
                        };
                        buf.drain(..used);
                        let out = reply(&seen);
                        let _ = tx.send(seen);
                        if socket.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (peer, rx)
    }

    async fn next_seen(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Seen>) -> Seen {
        tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("the test server reports within 30 s")
            .expect("the test server is running")
    }

    /// Answers with the request's method in a header and its body as
    /// the body, `?status=N` as the status, two `X-Twice` headers; a
    /// `HEAD` gets the `Content-Length` of a 5-byte body and a 204 the
    /// request body's, without the body (as RFC 9110 has it for `HEAD`).
    fn echo_reply(seen: &Seen) -> Vec<u8> {
        let status = seen
            .target
            .split_once("status=")
            .map_or("200", |(_, s)| &s[..3]);
        let mut out = format!(
            "HTTP/1.1 {status} Whatever\r\nX-Method: {}\r\nX-Twice: 1\r\nx-twice: 2\r\nContent-Length: {}\r\n\r\n",
            seen.method,
            if seen.method == "HEAD" { 5 } else { seen.body.len() }
        )
        .into_bytes();
        if seen.method != "HEAD" && status != "204" {
            out.extend_from_slice(&seen.body);
        }
        out
    }

    #[tokio::test]
    async fn send_carries_method_headers_and_body_and_returns_the_reply_headers() {
        let (peer, mut seen) = serve_requests(echo_reply).await;
        let pool = pool();
        let mut request = Request::new("POST", "/invoke/f/a?x=1&y=%20").unwrap();
        request
            .header("Content-Type", b"application/json")
            .unwrap()
            .header("X-Custom", b"v\xffbytes")
            .unwrap();
        request.body(Bytes::from_static(b"{\"n\":1}"));
        let r = pool.send(&peer, &request).await.unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"{\"n\":1}"[..]));
        assert_eq!(r.header("x-method"), Some("POST"));
        let twice: Vec<&[u8]> = r
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("x-twice"))
            .map(|(_, v)| &v[..])
            .collect();
        assert_eq!(twice, [&b"1"[..], &b"2"[..]], "repeats kept, in order");
        let s = next_seen(&mut seen).await;
        assert_eq!(
            (s.method.as_str(), s.target.as_str()),
            ("POST", "/invoke/f/a?x=1&y=%20")
        );
        let names: Vec<&str> = s.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            ["Host", "Content-Type", "X-Custom", "Content-Length"]
        );
        assert_eq!(s.headers[0].1, peer);
        assert_eq!(s.headers[3].1, "7");
        assert_eq!(s.body, b"{\"n\":1}");

        // The same connection carries the next calls: a PUT with a body
        // larger than one write, a HEAD and a 204 (no body read for
        // either, so the connection stays in step), a GET.
        let big = Bytes::from(vec![b'b'; 200 * 1024]);
        let mut put = Request::new("PUT", "/big").unwrap();
        put.body(big.clone());
        let r = pool.send(&peer, &put).await.unwrap();
        assert_eq!(r.body, big);
        let r = pool
            .send(&peer, &Request::new("HEAD", "/h").unwrap())
            .await
            .unwrap();
        assert_eq!(
            (r.status, r.body.len(), r.header("content-length")),
            (200, 0, Some("5"))
        );
        let mut no_content = Request::new("POST", "/n?status=204").unwrap();
        no_content.body(Bytes::from_static(b"ignored"));
        let r = pool.send(&peer, &no_content).await.unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));
        let r = pool.get(&peer, "/g").await.unwrap();
        assert_eq!(r.status, 200);
        assert!(r.headers.is_empty(), "get does not collect headers");
        for (method, target, body_len) in [
            ("PUT", "/big", 200 * 1024),
            ("HEAD", "/h", 0),
            ("POST", "/n?status=204", 7),
            ("GET", "/g", 0),
        ] {
            let s = next_seen(&mut seen).await;
            assert_eq!(
                (s.method.as_str(), s.target.as_str(), s.body.len()),
                (method, target, body_len)
            );
            assert_eq!(s.connection, 0, "{method} {target} on the first connection");
        }
        assert_eq!(pool.idle_count(&peer), 1);

        // A DELETE without a body has no Content-Length; a POST without
        // one says 0.
        pool.send(&peer, &Request::new("DELETE", "/d").unwrap())
            .await
            .unwrap();
        pool.send(&peer, &Request::new("POST", "/p").unwrap())
            .await
            .unwrap();
        let d = next_seen(&mut seen).await;
        assert!(
            d.headers.iter().all(|(k, _)| k != "Content-Length"),
            "{d:?}"
        );
        let p = next_seen(&mut seen).await;
        assert!(
            p.headers
                .iter()
                .any(|(k, v)| k == "Content-Length" && v == "0"),
            "{p:?}"
        );
    }

    #[tokio::test]
    async fn a_reply_body_over_the_request_bound_fails_the_call() {
        let (peer, _seen) = serve_requests(echo_reply).await;
        let pool = pool();
        let mut request = Request::new("POST", "/").unwrap();
        request
            .body(Bytes::from(vec![b'x'; 1000]))
            .max_reply_body(999);
        let e = pool.send(&peer, &request).await.unwrap_err();
        assert!(e.reply_too_large(), "{e}");
        assert!(e.to_string().contains("larger than 999 bytes"), "{e}");
        assert!(!e.peer_gone_after_reuse());
        assert_eq!(
            pool.idle_count(&peer),
            0,
            "not reused: its body was not read"
        );
        request.max_reply_body(1000);
        assert_eq!(pool.send(&peer, &request).await.unwrap().body.len(), 1000);

        // The same for a chunked body.
        let peer = serve(vec![
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\n",
        ])
        .await;
        let mut small = Request::new("GET", "/").unwrap();
        small.max_reply_body(6);
        let e = pool.send(&peer, &small).await.unwrap_err();
        assert!(e.reply_too_large(), "{e}");
    }

    #[test]
    fn requests_refuse_what_could_split_them() {
        assert!(matches!(
            Request::new("GE T", "/"),
            Err(InvalidRequest::Method(_))
        ));
        assert!(matches!(
            Request::new("", "/"),
            Err(InvalidRequest::Method(_))
        ));
        assert!(matches!(
            Request::new("GET", "x"),
            Err(InvalidRequest::Target(_))
        ));
        assert!(matches!(
            Request::new("GET", "/a b"),
            Err(InvalidRequest::Target(_))
        ));
        assert!(matches!(
            Request::new("GET", "/a\r\nX: y"),
            Err(InvalidRequest::Target(_))
        ));
        let mut r = Request::new("PATCH", "/").unwrap();
        assert!(matches!(
            r.header("X-A", b"1\r\nX-B: 2"),
            Err(InvalidRequest::HeaderValue(_))
        ));
        assert!(matches!(
            r.header("X-A", b"1\n"),
            Err(InvalidRequest::HeaderValue(_))
        ));
        assert!(matches!(
            r.header("X A", b"1"),
            Err(InvalidRequest::HeaderName(_))
        ));
        assert!(matches!(
            r.header("X:A", b"1"),
            Err(InvalidRequest::HeaderName(_))
        ));
        for own in ["host", "Content-Length", "transfer-encoding", "Connection"] {
            assert!(
                matches!(r.header(own, b"1"), Err(InvalidRequest::HeaderName(_))),
                "{own}"
            );
        }
        r.header("X-Fine", b"a:b, c").unwrap();
        let (wire, body_in) = r.encode("h:1");
        assert!(body_in);
        assert_eq!(
            wire,
            b"PATCH / HTTP/1.1\r\nHost: h:1\r\nX-Fine: a:b, c\r\nContent-Length: 0\r\n\r\n"
        );
    }
}
