//! A minimal HTTP/1.1 keep-alive client for warm `hf-fn serve` instances on
//! the host's loopback (`GET /invoke`, `GET /health`), shared by both
//! runtimes (a process instance and a Docker instance's published port
//! speak the same protocol).
//!
//! Why not a general client: a warm call is two loopback HTTP hops (caller →
//! worker → instance), and on a small machine the cost of the second hop is
//! mostly thread wake-ups. A general client (hyper, reqwest) drives each
//! connection from a task of its own, so every call crosses tasks twice;
//! here the caller's own future writes the request and reads the reply on a
//! pooled connection, which is all the instances' protocol needs
//! (`sample_functions::serve`: every reply carries `Content-Length`;
//! `Connection: close` ends a connection).
//!
//! Idle connections are kept per (thread, port): a tokio socket stays
//! registered with the I/O driver of the runtime that opened it, so a
//! connection opened on one actix worker thread (each runs its own
//! single-threaded runtime) is only reused by that thread; reusing it from
//! another thread would route every readiness event through the first
//! thread (a cross-thread wake-up per call).
//!
//! Parameters: at most [`MAX_IDLE_PER_PORT`] idle connections are kept per
//! instance port and thread; a request on a reused connection that gets no byte back
//! (the instance closed it while idle) is retried once on a new connection.
//! No timeout: a call lasts as long as the function (D1: minutes).

use std::collections::HashMap;
use std::sync::Mutex;
use std::thread::ThreadId;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Idle connections kept per instance port and thread.
pub const MAX_IDLE_PER_PORT: usize = 64;
/// Largest reply head accepted.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to 127.0.0.1:{port}: {source}")]
    Connect { port: u16, source: std::io::Error },
    #[error("GET 127.0.0.1:{port}{path}: {source}")]
    Io {
        port: u16,
        path: String,
        source: std::io::Error,
    },
    #[error("GET 127.0.0.1:{port}{path}: malformed reply ({detail})")]
    Malformed {
        port: u16,
        path: String,
        detail: String,
    },
}

/// The pool of connections to instances, by port.
#[derive(Debug, Default)]
pub struct InstanceClient {
    idle: Mutex<HashMap<(ThreadId, u16), Vec<TcpStream>>>,
}

/// A reply: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

enum Attempt {
    /// The reply, the connection, and whether it may be reused.
    Done(Reply, TcpStream, bool),
    /// The reused connection was closed before any reply byte.
    Stale,
}

impl InstanceClient {
    pub fn new() -> Self {
        Self::default()
    }

    fn take_idle(&self, port: u16) -> Option<TcpStream> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_mut(&(std::thread::current().id(), port))
            .and_then(Vec::pop)
    }

    fn put_idle(&self, port: u16, stream: TcpStream) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = idle.entry((std::thread::current().id(), port)).or_default();
        if list.len() < MAX_IDLE_PER_PORT {
            list.push(stream);
        }
    }

    /// Drops the idle connections to `port` (the instance is gone).
    pub fn forget(&self, port: u16) {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|&(_, p), _| p != port);
    }

    /// `GET path` on `127.0.0.1:port`.
    pub async fn get(&self, port: u16, path: &str) -> Result<Reply, ClientError> {
        if let Some(stream) = self.take_idle(port) {
            if let Attempt::Done(reply, stream, keep) =
                Self::exchange(stream, port, path, true).await?
            {
                return Ok(self.finish(port, reply, stream, keep));
            }
        }
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|source| ClientError::Connect { port, source })?;
        let _ = stream.set_nodelay(true);
        match Self::exchange(stream, port, path, false).await? {
            Attempt::Done(reply, stream, keep) => Ok(self.finish(port, reply, stream, keep)),
            Attempt::Stale => Err(ClientError::Io {
                port,
                path: path.into(),
                source: std::io::ErrorKind::UnexpectedEof.into(),
            }),
        }
    }

    fn finish(&self, port: u16, reply: Reply, stream: TcpStream, keep: bool) -> Reply {
        if keep {
            self.put_idle(port, stream);
        }
        reply
    }

    async fn exchange(
        mut stream: TcpStream,
        port: u16,
        path: &str,
        reused: bool,
    ) -> Result<Attempt, ClientError> {
        let io = |source| ClientError::Io {
            port,
            path: path.into(),
            source,
        };
        let malformed = |detail: String| ClientError::Malformed {
            port,
            path: path.into(),
            detail,
        };
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
        if let Err(e) = stream.write_all(request.as_bytes()).await {
            return if reused {
                Ok(Attempt::Stale)
            } else {
                Err(io(e))
            };
        }
        // Replies of instances are a few hundred bytes; a small buffer stays
        // in malloc's per-thread cache, and reading into its spare capacity
        // spares zeroing and copying a chunk per read.
        let mut buf = Vec::with_capacity(512);
        let (status, head_len, length, keep) = loop {
            match stream.read_buf(&mut buf).await {
                Ok(0) if reused && buf.is_empty() => return Ok(Attempt::Stale),
                Ok(0) => return Err(malformed("connection closed in the reply head".into())),
                Ok(_) => {}
                Err(_) if reused && buf.is_empty() => return Ok(Attempt::Stale),
                Err(e) => return Err(io(e)),
            }
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut head = httparse::Response::new(&mut headers);
            match head.parse(&buf) {
                Ok(httparse::Status::Complete(head_len)) => {
                    let status = head.code.unwrap_or_default();
                    let mut length = None;
                    let mut keep = head.version == Some(1);
                    for h in head.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            let value = std::str::from_utf8(h.value).unwrap_or_default().trim();
                            length = Some(
                                value
                                    .parse::<usize>()
                                    .map_err(|_| malformed(format!("Content-Length {value:?}")))?,
                            );
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            keep = !h.value.eq_ignore_ascii_case(b"close");
                        }
                    }
                    break (status, head_len, length, keep);
                }
                Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
                    return Err(malformed("reply head too large".into()))
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(malformed(format!("reply head: {e}"))),
            }
        };
        let length = length.ok_or_else(|| malformed("no Content-Length".into()))?;
        let end = head_len + length;
        if buf.len() > end {
            return Err(malformed("more bytes than Content-Length".into()));
        }
        buf.reserve_exact(end - buf.len());
        while buf.len() < end {
            match stream.read_buf(&mut buf).await {
                Ok(0) => return Err(io(std::io::ErrorKind::UnexpectedEof.into())),
                Ok(_) => {}
                Err(e) => return Err(io(e)),
            }
        }
        if buf.len() > end {
            return Err(malformed("more bytes than Content-Length".into()));
        }
        // The body to the front: the buffer becomes the reply's body.
        buf.drain(..head_len);
        Ok(Attempt::Done(Reply { status, body: buf }, stream, keep))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn find_head_end(buf: &[u8]) -> Option<usize> {
        buf.windows(4).position(|w| w == b"\r\n\r\n")
    }

    /// A loopback server answering each request on a connection with the
    /// next of `replies` (raw bytes), then closing.
    async fn server(replies: Vec<&'static [u8]>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            for r in replies {
                let mut buf = Vec::new();
                while find_head_end(&buf).is_none() {
                    let mut c = [0u8; 512];
                    let n = s.read(&mut c).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&c[..n]);
                }
                s.write_all(r).await.unwrap();
            }
        });
        port
    }

    #[tokio::test]
    async fn reads_replies_and_reuses_the_connection() {
        let port = server(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\nConnection: close\r\n\r\nfail",
        ])
        .await;
        let c = InstanceClient::new();
        let r = c.get(port, "/invoke").await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
        assert_eq!(
            c.idle.lock().unwrap()[&(std::thread::current().id(), port)].len(),
            1
        );
        let r = c.get(port, "/invoke").await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (500, &b"fail"[..]));
        assert!(
            c.idle.lock().unwrap()[&(std::thread::current().id(), port)].is_empty(),
            "closed by the server"
        );
    }

    #[tokio::test]
    async fn a_stale_idle_connection_is_replaced_once() {
        // First connection answers once then closes; the second answers.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for _ in 0..2 {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut c = [0u8; 512];
                let _ = s.read(&mut c).await.unwrap();
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")
                    .await
                    .unwrap();
                drop(s);
            }
        });
        let c = InstanceClient::new();
        assert_eq!(c.get(port, "/health").await.unwrap().body, b"x");
        assert_eq!(c.get(port, "/health").await.unwrap().body, b"x");
    }

    #[tokio::test]
    async fn errors_are_clear() {
        let c = InstanceClient::new();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = c.get(port, "/invoke").await.unwrap_err();
        assert!(matches!(e, ClientError::Connect { .. }), "{e}");
        let port = server(vec![b"HTTP/1.1 200 OK\r\n\r\nno length"]).await;
        let e = c.get(port, "/invoke").await.unwrap_err();
        assert!(e.to_string().contains("no Content-Length"), "{e}");
    }
}
