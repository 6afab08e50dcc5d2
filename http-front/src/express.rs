//! The express lane: the hot route served without actix-http's
//! per-request machinery.
//!
//! # Why
//! Issue 15 §3 asks the balancer to match HAProxy's throughput with a p99
//! no worse. Measured side by side (`bench/balancer-vs-haproxy.sh`), the
//! balancer made the same system calls per request as HAProxy, yet spent
//! 10-18 % more CPU per request, all of it in user space: actix-http's
//! dispatcher, its request and response objects, the header map, the
//! response encoder, and [`crate::checked`]'s second parse and copy of
//! every head. On 2 cores shared with the load generator and the worker,
//! that CPU is queueing delay, and the p99 was 1.2-1.9x HAProxy's.
//!
//! # What
//! A server given an [`ExpressFactory`] starts each connection in the
//! lane: it reads the client's bytes itself and, for each whole request
//! head the lane's [`Lane`] takes (a plain `GET` the server's hot route
//! answers, such as the balancer's `/execute`), runs the route's future
//! and writes its reply: one read, one write, one parse per request. The
//! first request the lane does not take hands the connection, with every
//! byte not yet answered, to actix-http through [`crate::checked`], which
//! serves it and the rest of the connection exactly as before. Requests
//! are answered in order: the lane answers a request before it reads the
//! next, and once handed over a connection never comes back.
//!
//! The lane takes a request only when nothing about it needs actix-http:
//! HTTP/1.1, method `GET`, its head whole in what was read, at most
//! [`LANE_HEADERS`] header fields, a URI within [`crate::MAX_URI`], no
//! body (no `Content-Length` but `0`, no `Transfer-Encoding`), no
//! `Expect`, no `Upgrade`, and no `Connection` but `keep-alive`. Anything
//! else (a head split over reads, a malformed one, a body, a close
//! request, HTTP/1.0) goes to actix-http, with its refusals in JSON
//! ([`crate::framing`]) as for any connection.
//!
//! # Time-outs and closes
//! The lane waits [`crate::Settings::request_head`] for a connection's
//! first bytes and [`crate::Settings::keep_alive`] between requests, as
//! actix-http does; when either passes with nothing read, or the server
//! begins a graceful stop while it waits, it closes the connection without
//! a word (actix-http answers `408` when the first request never came: to
//! a client that opened a connection and sent nothing, a reply to nothing,
//! the harm `protocol::timeouts` describes).
//! A client's close, or a failed read or write, ends the connection. The
//! lane does not read while a request's reply is being made, so a client
//! that leaves mid-call is noticed when its reply is written: the call
//! itself runs to its end and is accounted as any (actix-http may drop
//! such a call's future earlier).
//!
//! # Replies
//! `HTTP/1.1 <status> <reason>`, then `content-length`, `content-type`
//! and `date` (as actix-http writes them, in lower case), then the body,
//! in one write.

use std::cell::RefCell;
use std::io::Write as _;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_server::GracefulShutdownSignal;
use bytes::{Buf, Bytes, BytesMut};
use futures_util::future::LocalBoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most header fields a request the lane takes may have (more: to
/// actix-http, which allows [`crate::MAX_HEADERS`]).
pub const LANE_HEADERS: usize = 32;

/// Room kept for each read.
const READ_CHUNK: usize = 4096;

/// A request the lane serves: its target (path and query) as sent.
#[derive(Debug, Clone, Copy)]
pub struct LaneRequest<'a> {
    pub target: &'a str,
}

/// The reply to a request served in the lane.
#[derive(Debug, Clone)]
pub struct LaneReply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Bytes,
}

/// One worker thread's hot route: for a `GET` request's target, the
/// future of its reply, or `None` to leave the request (and the rest of
/// its connection) to actix-http. Decides without waiting.
pub type Lane = Rc<dyn Fn(LaneRequest<'_>) -> Option<LocalBoxFuture<'static, LaneReply>>>;

/// Makes a worker thread's [`Lane`] (called once on each thread).
pub type ExpressFactory = std::sync::Arc<dyn Fn() -> Lane + Send + Sync>;

/// How a connection left the lane.
#[derive(Debug)]
pub(crate) enum Exit {
    /// Closed (by the client, a time-out or an error): nothing more.
    Closed,
    /// To actix-http, with the bytes read and not answered.
    Handover(TcpStream, BytesMut),
}

/// Serves `io` in the lane until a request it does not take (see the
/// module docs).
pub(crate) async fn serve(
    mut io: TcpStream,
    lane: &Lane,
    request_head: Duration,
    keep_alive: Duration,
    stopping: &GracefulShutdownSignal,
) -> Exit {
    let mut held = BytesMut::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::with_capacity(512);
    let mut first = true;
    // Made once per connection: it waits (registered once) across requests.
    let stopping = stopping.notified();
    tokio::pin!(stopping);
    loop {
        if held.is_empty() {
            let wait = if first { request_head } else { keep_alive };
            held.reserve(READ_CHUNK);
            tokio::select! {
                // A stopping server takes no new request on an idle
                // connection (module docs).
                biased;
                () = &mut stopping => return Exit::Closed,
                read = tokio::time::timeout(wait, io.read_buf(&mut held)) => match read {
                    Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Exit::Closed,
                    Ok(Ok(_)) => {}
                },
            }
        }
        let Some((len, reply)) = take(&held, lane) else {
            return Exit::Handover(io, held);
        };
        let reply = reply.await;
        held.advance(len);
        first = false;
        out.clear();
        write_reply(&mut out, &reply);
        if io.write_all(&out).await.is_err() {
            return Exit::Closed;
        }
    }
}

/// The request at the front of `held`, if the lane takes it: the length
/// of its head and its reply's future.
fn take(held: &[u8], lane: &Lane) -> Option<(usize, LocalBoxFuture<'static, LaneReply>)> {
    let mut headers = [httparse::EMPTY_HEADER; LANE_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(len) = req.parse(held).ok()? else {
        return None;
    };
    if req.method != Some("GET") || req.version != Some(1) {
        return None;
    }
    let target = req.path?;
    if target.len() > crate::MAX_URI {
        return None;
    }
    for h in req.headers.iter() {
        let name = h.name;
        let plain = if name.eq_ignore_ascii_case("content-length") {
            h.value == b"0"
        } else if name.eq_ignore_ascii_case("connection") {
            h.value.eq_ignore_ascii_case(b"keep-alive")
        } else {
            !(name.eq_ignore_ascii_case("transfer-encoding")
                || name.eq_ignore_ascii_case("expect")
                || name.eq_ignore_ascii_case("upgrade"))
        };
        if !plain {
            return None;
        }
    }
    let reply = lane(LaneRequest { target })?;
    Some((len, reply))
}

/// `reply` as HTTP/1.1 bytes, appended to `out`.
pub(crate) fn write_reply(out: &mut Vec<u8>, reply: &LaneReply) {
    let status = actix_web::http::StatusCode::from_u16(reply.status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\ncontent-length: ");
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{}", reply.body.len());
    out.extend_from_slice(b"\r\ncontent-type: ");
    out.extend_from_slice(reply.content_type.as_bytes());
    out.extend_from_slice(b"\r\ndate: ");
    DATE.with(|d| out.extend_from_slice(d.borrow_mut().now()));
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(&reply.body);
}

thread_local! {
    static DATE: RefCell<DateCache> = const { RefCell::new(DateCache { second: u64::MAX, text: Vec::new() }) };
}

/// The `date` header's value, formatted once a second.
struct DateCache {
    second: u64,
    text: Vec<u8>,
}

impl DateCache {
    fn now(&mut self) -> &[u8] {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second {
            self.second = second;
            self.text = httpdate::fmt_http_date(now).into_bytes();
        }
        &self.text
    }
}
