//! A tiny HTTP/1.1 server for warm function instances (`hf-fn serve`): one
//! event-loop thread (epoll through `mio`) does all socket I/O; a call that
//! takes time runs on a thread of its own. `hf-fn` stays small and links
//! statically for `FROM scratch` images.
//!
//! # Protocol (what runtimes rely on)
//! - `hf-fn serve --function <NAME> [--host 127.0.0.1] [--port 0]` binds
//!   `host:port` (port 0 = any free port), reads the function's payload
//!   (the instance's cold start), then prints exactly one line
//!   `{"port": N}` on stdout and flushes it: from then on it answers.
//! - `GET /invoke[?duration_ms=&memory_mb=&cpu_share=]` runs one call
//!   (with its own shape, `crate::workload::CallWork`; a bad or refused
//!   shape is `400`) and answers `200` with the
//!   `FunctionOutput` JSON `{"startTime", "endTime", "result"}`; a failing
//!   call answers `500` with `{"Error": true, "Message": ...}`.
//! - `GET /health` answers `200` `{"ok": true, "function": NAME,
//!   "invocations": n}`; anything else `404` JSON.
//! - Keep-alive is supported (HTTP/1.1 default; `Connection: close` honoured;
//!   pipelined requests are answered in order); calls on different
//!   connections run concurrently. The instance runs until it is killed, or,
//!   with `--exit-on-stdin-eof`, until its stdin closes (a local parent keeps
//!   a pipe open, so instances never outlive it).
//!
//! # Why an event loop
//! A warm call is two loopback HTTP hops (caller → worker → instance). With
//! one blocking thread per connection, every call wakes a sleeping thread
//! and costs two context switches in the instance; in a container (its own
//! cgroup) that wake-up is dearer still. The event loop answers whatever is
//! ready in one pass, and under load it rarely sleeps at all. The router
//! says how each request is answered ([`Handling`]): at once on the loop
//! (`/health`, a call that does no work such as `noop`), or on a new thread
//! (every function with CPU or sleep phases: they last milliseconds to
//! minutes, so a thread's start, some 20 µs, is noise, and a long call never
//! holds up the others). While a connection's call runs, that connection
//! reads nothing more; the others go on.
//!
//! Limits: a request head may be at most [`MAX_HEAD_BYTES`] (else `431`,
//! then the connection closes) with at most [`MAX_HEADERS`] headers (else
//! `400`); a body (runtimes send none) is read and ignored.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

/// Largest request head accepted (bytes).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most request headers accepted.
pub const MAX_HEADERS: usize = 64;
/// Most bytes read and discarded after a connection's last reply.
const MAX_LINGER_BYTES: usize = 1 << 20;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
/// Connection `i` is registered as `Token(FIRST_CONNECTION + i)`.
const FIRST_CONNECTION: usize = 2;

/// One HTTP answer: status and JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            body: body.into(),
        }
    }
}

/// A long-running answer: run on a thread of its own.
pub type Job = Box<dyn FnOnce() -> Reply + Send + 'static>;

/// How the router answers one request.
pub enum Handling {
    /// Answered on the event loop: only for answers that take no time.
    Now(Reply),
    /// Run on a new thread; the connection waits for it, the others do not.
    OnThread(Job),
}

impl std::fmt::Debug for Handling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Now(r) => f.debug_tuple("Now").field(r).finish(),
            Self::OnThread(_) => f.write_str("OnThread(..)"),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        _ => "Unknown",
    }
}

/// Serves `listener` until an I/O error of the event loop itself:
/// `route(method, path, query)` says how each request is answered (the
/// query raw, without `?`; empty when there is none).
pub fn serve<F>(listener: std::net::TcpListener, route: F) -> io::Result<()>
where
    F: Fn(&str, &str, &str) -> Handling,
{
    listener.set_nonblocking(true)?;
    let mut listener = TcpListener::from_std(listener);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let (done_tx, done_rx) = mpsc::channel::<(usize, Reply)>();
    let mut events = Events::with_capacity(256);
    let mut conns = Slots::default();
    let mut scratch = vec![0u8; 8 * 1024];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            match event.token() {
                LISTENER => accept_all(&listener, &poll, &mut conns),
                WAKER => {
                    while let Ok((slot, reply)) = done_rx.try_recv() {
                        if let Some(conn) = conns.get(slot) {
                            conn.finish_call(&reply);
                        }
                        let spawner = Spawner {
                            slot,
                            done: &done_tx,
                            waker: &waker,
                        };
                        conns.drive(slot, &route, &spawner, &mut scratch);
                    }
                }
                Token(t) => {
                    let slot = t - FIRST_CONNECTION;
                    let spawner = Spawner {
                        slot,
                        done: &done_tx,
                        waker: &waker,
                    };
                    conns.drive(slot, &route, &spawner, &mut scratch);
                }
            }
        }
    }
}

/// Accepts every pending connection (edge-triggered: until `WouldBlock`).
fn accept_all(listener: &TcpListener, poll: &Poll, conns: &mut Slots) {
    loop {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.set_nodelay(true);
                let slot = conns.free_slot();
                let token = Token(FIRST_CONNECTION + slot);
                if poll
                    .registry()
                    .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                    .is_ok()
                {
                    conns.put(slot, Conn::new(stream));
                } else {
                    conns.release(slot);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // `WouldBlock`: all accepted. Anything else (e.g. too many open
            // files) is transient: the next connection brings a new event.
            Err(_) => return,
        }
    }
}

/// Hands a job to a new thread; its reply comes back through the channel.
struct Spawner<'a> {
    slot: usize,
    done: &'a mpsc::Sender<(usize, Reply)>,
    waker: &'a Arc<Waker>,
}

impl Spawner<'_> {
    /// `false` if no thread could be started.
    fn spawn(&self, job: Job) -> bool {
        let (slot, done, waker) = (self.slot, self.done.clone(), Arc::clone(self.waker));
        std::thread::Builder::new()
            .name("hf-call".into())
            .spawn(move || {
                let reply = catch_unwind(AssertUnwindSafe(job))
                    .unwrap_or_else(|_| Reply::json(500, error_json("the call panicked")));
                // The loop is gone only if the server stopped: nothing to do.
                if done.send((slot, reply)).is_ok() {
                    let _ = waker.wake();
                }
            })
            .is_ok()
    }
}

/// The connections, by slot (slots are reused once a connection closes).
#[derive(Default)]
struct Slots {
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
}

impl Slots {
    fn free_slot(&mut self) -> usize {
        self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        })
    }

    fn put(&mut self, slot: usize, conn: Conn) {
        self.conns[slot] = Some(conn);
    }

    fn release(&mut self, slot: usize) {
        self.conns[slot] = None;
        self.free.push(slot);
    }

    fn get(&mut self, slot: usize) -> Option<&mut Conn> {
        self.conns.get_mut(slot).and_then(Option::as_mut)
    }

    /// Advances a connection; closes it (dropping the socket deregisters
    /// it) when it is done.
    fn drive<F>(&mut self, slot: usize, route: &F, spawner: &Spawner<'_>, scratch: &mut [u8])
    where
        F: Fn(&str, &str, &str) -> Handling,
    {
        let Some(conn) = self.get(slot) else {
            return;
        };
        if conn.drive(route, spawner, scratch) == Next::Close {
            self.release(slot);
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Next {
    Wait,
    Close,
}

/// One connection's state.
struct Conn {
    stream: TcpStream,
    /// Received bytes not yet consumed.
    input: Vec<u8>,
    /// Bytes of a request body still to be discarded.
    skip_body: u64,
    /// The encoded replies not yet written, from `written` on.
    output: Vec<u8>,
    written: usize,
    /// A call runs on a thread; its reply keeps the connection iff `Some(true)`.
    call: Option<bool>,
    close_after_write: bool,
    peer_closed: bool,
    /// Our side is shut down (after the last reply).
    shut_down: bool,
    /// Bytes discarded after the last reply.
    lingered: usize,
}

/// One parsed request head.
enum Head {
    /// Not all of it has arrived.
    Partial,
    /// Answer this and close.
    Bad(Reply),
    Complete {
        len: usize,
        keep_alive: bool,
        content_length: u64,
        handling: Handling,
    },
}

impl Conn {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            input: Vec::new(),
            skip_body: 0,
            output: Vec::with_capacity(512),
            written: 0,
            call: None,
            close_after_write: false,
            peer_closed: false,
            shut_down: false,
            lingered: 0,
        }
    }

    /// The reply of the call that ran on a thread.
    fn finish_call(&mut self, reply: &Reply) {
        if let Some(keep_alive) = self.call.take() {
            self.queue(reply, keep_alive);
        }
    }

    fn queue(&mut self, reply: &Reply, keep_alive: bool) {
        encode(&mut self.output, reply, keep_alive);
        if !keep_alive {
            self.close_after_write = true;
        }
    }

    /// The last reply is written: ends our side, then reads and discards
    /// until the peer closes, so that closing never resets a connection
    /// with unread input (a reset can discard the reply before the peer
    /// reads it). At most [`MAX_LINGER_BYTES`] are discarded.
    fn linger(&mut self, scratch: &mut [u8]) -> Next {
        if self.peer_closed {
            return Next::Close;
        }
        if !self.shut_down {
            let _ = self.stream.shutdown(Shutdown::Write);
            self.shut_down = true;
        }
        loop {
            match self.stream.read(scratch) {
                Ok(0) => return Next::Close,
                Ok(n) => {
                    self.lingered += n;
                    if self.lingered > MAX_LINGER_BYTES {
                        return Next::Close;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Next::Close,
            }
        }
    }

    /// Writes what is queued, answers every complete request, reads what
    /// has arrived, until it must wait (for the socket or a call) or close.
    /// Edge-triggered readiness: reads and writes go on until `WouldBlock`,
    /// or the connection is left in a state that re-drives it (a call's end).
    fn drive<F>(&mut self, route: &F, spawner: &Spawner<'_>, scratch: &mut [u8]) -> Next
    where
        F: Fn(&str, &str, &str) -> Handling,
    {
        loop {
            while self.written < self.output.len() {
                match self.stream.write(&self.output[self.written..]) {
                    Ok(0) => return Next::Close,
                    Ok(n) => self.written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Wait,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Next::Close,
                }
            }
            self.output.clear();
            self.written = 0;
            if self.close_after_write {
                return self.linger(scratch);
            }
            if self.call.is_some() {
                return Next::Wait;
            }
            if self.skip_body > 0 && !self.input.is_empty() {
                let n = self.input.len().min(self.skip_body as usize);
                self.input.drain(..n);
                self.skip_body -= n as u64;
            }
            if self.skip_body == 0 && !self.input.is_empty() {
                match parse_head(&self.input, route) {
                    Head::Complete {
                        len,
                        keep_alive,
                        content_length,
                        handling,
                    } => {
                        self.input.drain(..len);
                        self.skip_body = content_length;
                        match handling {
                            Handling::Now(reply) => self.queue(&reply, keep_alive),
                            Handling::OnThread(job) => {
                                if spawner.spawn(job) {
                                    self.call = Some(keep_alive);
                                } else {
                                    let msg = "the instance could not start a thread for the call";
                                    self.queue(&Reply::json(500, error_json(msg)), keep_alive);
                                }
                            }
                        }
                        continue;
                    }
                    Head::Bad(reply) => {
                        self.queue(&reply, false);
                        continue;
                    }
                    Head::Partial if self.input.len() > MAX_HEAD_BYTES => {
                        self.queue(
                            &Reply::json(431, error_json("request head too large")),
                            false,
                        );
                        continue;
                    }
                    Head::Partial => {}
                }
            }
            if self.peer_closed {
                return Next::Close;
            }
            match self.stream.read(scratch) {
                Ok(0) => self.peer_closed = true,
                Ok(n) => self.input.extend_from_slice(&scratch[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Next::Close,
            }
        }
    }
}

/// Parses one request head from the start of `input` and asks the router
/// how to answer it.
fn parse_head<F>(input: &[u8], route: &F) -> Head
where
    F: Fn(&str, &str, &str) -> Handling,
{
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(input) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            return Head::Bad(Reply::json(400, error_json("too many headers")))
        }
        Err(_) => return Head::Bad(Reply::json(400, error_json("bad request"))),
    };
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Head::Bad(Reply::json(400, error_json("bad request line")));
    };
    let mut keep_alive = req.version == Some(1);
    let mut content_length = 0u64;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            if h.value.eq_ignore_ascii_case(b"close") {
                keep_alive = false;
            } else if h.value.eq_ignore_ascii_case(b"keep-alive") {
                keep_alive = true;
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
            {
                Some(n) => content_length = n,
                None => return Head::Bad(Reply::json(400, error_json("bad Content-Length"))),
            }
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let handling = catch_unwind(AssertUnwindSafe(|| route(method, path, query)))
        .unwrap_or_else(|_| Handling::Now(Reply::json(500, error_json("the router panicked"))));
    Head::Complete {
        len,
        keep_alive,
        content_length,
        handling,
    }
}

fn encode(out: &mut Vec<u8>, reply: &Reply, keep_alive: bool) {
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        reply.status,
        reason(reply.status),
        reply.body.len()
    );
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(reply.body.as_bytes());
}

/// `{"Error": true, "Message": ...}` (the project's error shape).
pub fn error_json(message: &str) -> String {
    serde_json::json!({"Error": true, "Message": message}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;
    use std::sync::{Barrier, Mutex};
    use std::time::Duration;

    /// A server on a free port; `/slow` waits for `release` (on a thread),
    /// `/barrier` for all of `parties` calls to run at once.
    fn start(release: mpsc::Receiver<()>, parties: usize) -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let release = Arc::new(Mutex::new(release));
        let barrier = Arc::new(Barrier::new(parties));
        std::thread::spawn(move || {
            serve(l, move |m, p, q| match (m, p) {
                ("GET", "/hello") => Handling::Now(Reply::json(200, "{\"hi\":1}")),
                ("GET", "/echo") => Handling::Now(Reply::json(200, format!("{{\"q\":\"{q}\"}}"))),
                ("GET", "/slow") => {
                    let release = Arc::clone(&release);
                    Handling::OnThread(Box::new(move || {
                        release.lock().unwrap().recv().unwrap();
                        Reply::json(200, "{\"slow\":1}")
                    }))
                }
                ("GET", "/barrier") => {
                    let barrier = Arc::clone(&barrier);
                    Handling::OnThread(Box::new(move || {
                        barrier.wait();
                        Reply::json(200, "{\"together\":1}")
                    }))
                }
                ("GET", "/panic") => panic!("router bug"),
                _ => Handling::Now(Reply::json(404, error_json("no"))),
            })
        });
        port
    }

    fn connect(port: u16) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        // A broken server fails the test instead of hanging it.
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    }

    /// Sends `request` on a new connection; everything answered until the
    /// server closes it.
    fn until_closed(port: u16, request: &[u8]) -> String {
        let mut s = connect(port);
        s.write_all(request).unwrap();
        let mut all = String::new();
        s.read_to_string(&mut all).unwrap();
        all
    }

    /// Reads one reply (head + Content-Length body).
    fn read_reply(s: &mut TcpStream) -> String {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            assert_eq!(s.read(&mut byte).unwrap(), 1, "connection ended: {buf:?}");
            buf.push(byte[0]);
        }
        let head = String::from_utf8(buf).unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).unwrap();
        head + std::str::from_utf8(&body).unwrap()
    }

    #[test]
    fn keep_alive_then_close() {
        let port = start(mpsc::channel().1, 1);
        let all = until_closed(
            port,
            b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /nope?x=1 HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
        assert!(all.contains("{\"hi\":1}HTTP/1.1 404 Not Found"), "{all}");
        assert!(all.ends_with("\"Message\":\"no\"}"), "{all}");
    }

    #[test]
    fn the_router_sees_the_query() {
        let port = start(mpsc::channel().1, 1);
        let all = until_closed(
            port,
            b"GET /echo?a=1&b=2 HTTP/1.1\r\n\r\nGET /echo HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        assert!(all.contains("{\"q\":\"a=1&b=2\"}"), "{all}");
        assert!(all.ends_with("{\"q\":\"\"}"), "{all}");
    }

    #[test]
    fn garbage_gets_400_and_too_large_431() {
        let port = start(mpsc::channel().1, 1);
        let all = until_closed(port, b"NONSENSE\r\n\r\n");
        assert!(all.starts_with("HTTP/1.1 400"), "{all}");

        let mut head = b"GET /hello HTTP/1.1\r\n".to_vec();
        head.extend_from_slice(b"X-Filler: ");
        head.resize(head.len() + MAX_HEAD_BYTES, b'a');
        let all = until_closed(port, &head);
        assert!(all.starts_with("HTTP/1.1 431"), "{all}");

        let mut head = b"GET /hello HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            head.extend_from_slice(format!("X-{i}: a\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        let all = until_closed(port, &head);
        assert!(all.starts_with("HTTP/1.1 400"), "{all}");
        assert!(all.contains("too many headers"), "{all}");
    }

    #[test]
    fn a_head_in_pieces_and_a_body_are_handled() {
        let port = start(mpsc::channel().1, 1);
        let mut s = connect(port);
        s.set_nodelay(true).unwrap();
        for b in b"GET /hello HTTP/1.1\r\nContent-Length: 5\r\n\r\n" {
            s.write_all(&[*b]).unwrap();
        }
        s.write_all(b"he").unwrap();
        s.write_all(b"lloGET /hello HTTP/1.1\r\n\r\n").unwrap();
        let first = read_reply(&mut s);
        assert!(first.ends_with("{\"hi\":1}"), "{first}");
        // The body was skipped: the next request is the GET.
        let second = read_reply(&mut s);
        assert!(second.starts_with("HTTP/1.1 200 OK\r\n"), "{second}");
    }

    #[test]
    fn a_running_call_does_not_hold_up_other_connections() {
        let (release, rx) = mpsc::channel();
        let port = start(rx, 1);
        let mut slow = connect(port);
        slow.write_all(b"GET /slow HTTP/1.1\r\n\r\n").unwrap();
        // Served while /slow is still running (it waits for `release`).
        for _ in 0..3 {
            let mut other = connect(port);
            other.write_all(b"GET /hello HTTP/1.1\r\n\r\n").unwrap();
            assert!(read_reply(&mut other).ends_with("{\"hi\":1}"));
        }
        release.send(()).unwrap();
        assert!(read_reply(&mut slow).ends_with("{\"slow\":1}"));
        // The connection is kept alive after a call on a thread.
        slow.write_all(b"GET /hello HTTP/1.1\r\n\r\n").unwrap();
        assert!(read_reply(&mut slow).ends_with("{\"hi\":1}"));
    }

    #[test]
    fn calls_on_threads_run_concurrently() {
        const N: usize = 8;
        let port = start(mpsc::channel().1, N);
        let mut conns: Vec<TcpStream> = (0..N).map(|_| connect(port)).collect();
        for s in &mut conns {
            s.write_all(b"GET /barrier HTTP/1.1\r\n\r\n").unwrap();
        }
        // Every call passes the barrier only if all N run at the same time.
        for s in &mut conns {
            assert!(read_reply(s).ends_with("{\"together\":1}"));
        }
    }

    #[test]
    fn a_panicking_router_answers_500_and_the_server_goes_on() {
        let port = start(mpsc::channel().1, 1);
        let mut s = connect(port);
        s.write_all(b"GET /panic HTTP/1.1\r\n\r\n").unwrap();
        assert!(read_reply(&mut s).starts_with("HTTP/1.1 500"));
        s.write_all(b"GET /hello HTTP/1.1\r\n\r\n").unwrap();
        assert!(read_reply(&mut s).ends_with("{\"hi\":1}"));
    }
}
