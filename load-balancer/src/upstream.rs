//! The hot path's HTTP/1.1 client to the workers: one small keep-alive
//! connection pool per server thread.
//!
//! Why not reqwest here: with reqwest (hyper's pooled client) each call
//! parses a URL, builds a header map, and hands the request to a separate
//! connection task over a channel, which costs two extra task wake-ups per
//! call; profiling the balancer under wrk showed that overhead. A worker
//! call is always `GET <path>?<query>` with no body, answered by a small
//! JSON body, so this client writes the request line straight onto a
//! pooled `TcpStream` and reads the reply with `httparse`, in the handler's
//! own task (each actix worker thread runs handlers on its own
//! single-threaded runtime, so the pool needs no lock).
//!
//! Supports `Content-Length` and chunked bodies, `Connection: close`, and
//! replies that end at EOF. A reused connection that turns out to be closed
//! before any reply byte arrives is retried once on a fresh connection (the
//! worker closed it while idle). Reqwest still serves the cold paths
//! (health checks, `/configure`, `/clear`, `/prepare`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::time::Duration;

use actix_web::web::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest reply head (status line + headers) accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest reply body accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Idle connections kept per worker and thread.
const MAX_IDLE_PER_WORKER: usize = 256;

/// Why a call to a worker failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No connection could be opened: the request never reached the worker.
    #[error("cannot connect: {0}")]
    Connect(io::Error),
    /// The exchange broke or the reply was not valid HTTP/1.1.
    #[error("{0}")]
    Exchange(io::Error),
}

/// A worker's reply.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

/// Keep-alive connections of one server thread, by worker authority
/// (`host:port`).
#[derive(Debug)]
pub struct Pool {
    idle: RefCell<HashMap<Box<str>, Vec<TcpStream>>>,
    connect_timeout: Duration,
}

impl Pool {
    pub fn new(connect_timeout: Duration) -> Self {
        Self {
            idle: RefCell::new(HashMap::new()),
            connect_timeout,
        }
    }

    fn take_idle(&self, authority: &str) -> Option<TcpStream> {
        self.idle.borrow_mut().get_mut(authority)?.pop()
    }

    fn put_idle(&self, authority: &str, stream: TcpStream) {
        let mut idle = self.idle.borrow_mut();
        if let Some(list) = idle.get_mut(authority) {
            if list.len() < MAX_IDLE_PER_WORKER {
                list.push(stream);
            }
        } else {
            idle.insert(authority.into(), vec![stream]);
        }
    }

    async fn connect(&self, authority: &str) -> Result<TcpStream, CallError> {
        let connecting = TcpStream::connect(authority);
        let stream = tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| {
                CallError::Connect(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect timed out after {:?}", self.connect_timeout),
                ))
            })?
            .map_err(CallError::Connect)?;
        stream.set_nodelay(true).map_err(CallError::Connect)?;
        Ok(stream)
    }

    /// `GET <path_and_query>` on the worker at `base_url`
    /// (`http://host[:port]`).
    pub async fn get(&self, base_url: &str, path_and_query: &str) -> Result<Reply, CallError> {
        let authority = base_url.strip_prefix("http://").unwrap_or(base_url);
        let mut request = Vec::with_capacity(path_and_query.len() + authority.len() + 32);
        request.extend_from_slice(b"GET ");
        request.extend_from_slice(path_and_query.as_bytes());
        request.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        request.extend_from_slice(authority.as_bytes());
        request.extend_from_slice(b"\r\n\r\n");
        let has_port = match authority.rfind(']') {
            Some(bracket) => authority[bracket..].contains(':'),
            None => authority.contains(':'),
        };
        let target: std::borrow::Cow<'_, str> = if has_port {
            authority.into()
        } else {
            format!("{authority}:80").into()
        };

        if let Some(stream) = self.take_idle(authority) {
            match exchange(stream, &request).await {
                Ok((reply, reusable)) => {
                    if let Some(stream) = reusable {
                        self.put_idle(authority, stream);
                    }
                    return Ok(reply);
                }
                // Closed while idle: try a fresh connection.
                Err(Failure::Stale) => {}
                Err(Failure::Broken(e)) => return Err(CallError::Exchange(e)),
            }
        }
        let stream = self.connect(&target).await?;
        match exchange(stream, &request).await {
            Ok((reply, reusable)) => {
                if let Some(stream) = reusable {
                    self.put_idle(authority, stream);
                }
                Ok(reply)
            }
            Err(Failure::Stale) => Err(CallError::Exchange(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the reply",
            ))),
            Err(Failure::Broken(e)) => Err(CallError::Exchange(e)),
        }
    }
}

enum Failure {
    /// Closed (or reset) before any reply byte.
    Stale,
    Broken(io::Error),
}

fn invalid(message: &str) -> Failure {
    Failure::Broken(io::Error::new(
        io::ErrorKind::InvalidData,
        message.to_string(),
    ))
}

/// Writes the request, reads one reply; returns the stream when it may be
/// reused.
async fn exchange(
    mut stream: TcpStream,
    request: &[u8],
) -> Result<(Reply, Option<TcpStream>), Failure> {
    if let Err(e) = stream.write_all(request).await {
        return Err(if is_closed(&e) {
            Failure::Stale
        } else {
            Failure::Broken(e)
        });
    }
    // Worker replies are a few hundred bytes; a small first buffer stays in
    // malloc's per-thread cache.
    let mut buf = BytesMut::with_capacity(1024);
    // The head.
    let (status, head_len, framing, keep_alive) = loop {
        match stream.read_buf(&mut buf).await {
            Ok(0) if buf.is_empty() => return Err(Failure::Stale),
            Ok(0) => return Err(invalid("connection closed inside the reply head")),
            Ok(_) => {}
            Err(e) if buf.is_empty() && is_closed(&e) => return Err(Failure::Stale),
            Err(e) => return Err(Failure::Broken(e)),
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let status = response.code.unwrap_or(0);
                let mut framing = Framing::UntilEof;
                let mut keep_alive = response.version == Some(1);
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
                }
                if (100..200).contains(&status) {
                    // An interim reply (e.g. 100 Continue): skip it.
                    let _ = buf.split_to(head_len);
                    continue;
                }
                break (status, head_len, framing, keep_alive);
            }
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err(invalid("reply head too large"))
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(invalid(&format!("bad reply head: {e}"))),
        }
    };
    let _ = buf.split_to(head_len);
    let body = match framing {
        Framing::Length(length) => {
            if length > MAX_BODY {
                return Err(invalid("reply body too large"));
            }
            while buf.len() < length {
                buf.reserve(length - buf.len());
                read_more(&mut stream, &mut buf).await?;
            }
            let body = buf.split_to(length).freeze();
            // Extra bytes after the body: the connection is out of step.
            let reusable = keep_alive && buf.is_empty();
            return Ok((Reply { status, body }, reusable.then_some(stream)));
        }
        Framing::Chunked => {
            let mut body = BytesMut::new();
            loop {
                let line_end = loop {
                    if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    if buf.len() > MAX_HEAD {
                        return Err(invalid("bad chunk size line"));
                    }
                    read_more(&mut stream, &mut buf).await?;
                };
                let size_text = std::str::from_utf8(&buf[..line_end])
                    .ok()
                    .map(|l| l.split(';').next().unwrap_or("").trim().to_string())
                    .ok_or_else(|| invalid("bad chunk size"))?;
                let size =
                    usize::from_str_radix(&size_text, 16).map_err(|_| invalid("bad chunk size"))?;
                let _ = buf.split_to(line_end + 2);
                if size == 0 {
                    // Trailers (usually none) end with an empty line.
                    loop {
                        if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                            let _ = buf.split_to(i + 2);
                            if i == 0 {
                                break;
                            }
                            continue;
                        }
                        read_more(&mut stream, &mut buf).await?;
                    }
                    break;
                }
                if body.len() + size > MAX_BODY {
                    return Err(invalid("reply body too large"));
                }
                while buf.len() < size + 2 {
                    read_more(&mut stream, &mut buf).await?;
                }
                body.extend_from_slice(&buf[..size]);
                let _ = buf.split_to(size + 2);
            }
            let reusable = keep_alive && buf.is_empty();
            return Ok((
                Reply {
                    status,
                    body: body.freeze(),
                },
                reusable.then_some(stream),
            ));
        }
        Framing::UntilEof => loop {
            if buf.len() > MAX_BODY {
                return Err(invalid("reply body too large"));
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) => break buf.freeze(),
                Ok(_) => {}
                Err(e) => return Err(Failure::Broken(e)),
            }
        },
    };
    Ok((Reply { status, body }, None))
}

async fn read_more(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<usize, Failure> {
    match stream.read_buf(buf).await {
        Ok(0) => Err(invalid("connection closed inside the reply body")),
        Ok(n) => Ok(n),
        Err(e) => Err(Failure::Broken(e)),
    }
}

enum Framing {
    Length(usize),
    Chunked,
    UntilEof,
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

    /// A one-shot loopback server answering each request with `reply`.
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
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn reads_length_and_chunked_bodies_on_one_kept_alive_connection() {
        let url = serve(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n{\"a\":1}",
            b"HTTP/1.1 500 Oops\r\ntransfer-encoding: chunked\r\n\r\n3;x\r\n{\"b\r\n4\r\n\":2}\r\n0\r\n\r\n",
        ])
        .await;
        let pool = Pool::new(Duration::from_secs(1));
        let r = pool.get(&url, "/execute?name=W1").await.unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"{\"a\":1}"[..]));
        let r = pool.get(&url, "/execute?name=W2").await.unwrap();
        assert_eq!((r.status, &r.body[..]), (500, &b"{\"b\":2}"[..]));
    }

    #[tokio::test]
    async fn a_dead_worker_is_a_connect_error_and_a_bad_reply_an_exchange_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let pool = Pool::new(Duration::from_secs(1));
        assert!(matches!(
            pool.get(&dead, "/").await,
            Err(CallError::Connect(_))
        ));
        let url = serve(vec![b"garbage\r\n\r\n"]).await;
        assert!(matches!(
            pool.get(&url, "/").await,
            Err(CallError::Exchange(_))
        ));
    }

    #[tokio::test]
    async fn a_connection_closed_while_idle_is_replaced() {
        // The server answers once per connection, then closes it; the
        // second call finds its pooled connection dead and opens another.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            for _ in 0..2 {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let _ = socket.read(&mut buf).await.unwrap();
                socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                    .await
                    .unwrap();
                // Dropping the socket closes the kept-alive connection.
            }
        });
        let pool = Pool::new(Duration::from_secs(1));
        assert_eq!(pool.get(&url, "/").await.unwrap().status, 200);
        // The stale socket fails (EOF or reset) before any reply byte,
        // which triggers one retry on a fresh connection.
        assert_eq!(pool.get(&url, "/").await.unwrap().status, 200);
    }
}
