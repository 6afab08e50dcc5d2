//! Calls to warm `hf-fn serve` instances on the host's loopback
//! (`GET /invoke`, `GET /health`), shared by both runtimes (a process
//! instance and a Docker instance in the host's network namespace speak
//! the same protocol, `sample_functions::serve`).
//!
//! A warm call is the second of two loopback HTTP hops (caller → worker →
//! instance), so it goes through the hot path's keep-alive client,
//! [`keepalive_http::Pool`] (the balancer's, too): the caller's own future
//! writes the request on a connection kept for its thread and reads the
//! reply. Here instances are named by their port.
//!
//! Parameters: at most [`MAX_IDLE_PER_PORT`] idle connections are kept per
//! instance port and thread; a request on a reused connection that gets no
//! byte back (the instance closed it while idle) is retried once on a new
//! connection. No timeout: a call lasts as long as the function (D1:
//! minutes).

pub use keepalive_http::{CallError as ClientError, Reply, Request};
use protocol::query::CallParams;
use std::borrow::Cow;
use std::net::SocketAddr;

/// The path of a warm call: `/invoke`, with the call's own shape as its
/// query when it has one (no allocation when it has none: the warm path).
pub fn invoke_path(call: &CallParams) -> Cow<'static, str> {
    if call.is_empty() {
        return Cow::Borrowed("/invoke");
    }
    let mut path = String::from("/invoke?");
    call.append_to(&mut path);
    // `append_to` writes `&key=value` pairs: drop the first `&`.
    path.remove("/invoke?".len());
    Cow::Owned(path)
}

/// The query of a one-shot call's `--call` (the pairs without `?`), or
/// None when the call has no shape of its own.
pub fn call_query(call: &CallParams) -> Option<String> {
    (!call.is_empty()).then(|| {
        let mut q = String::new();
        call.append_to(&mut q);
        q.split_off(1)
    })
}

/// Idle connections kept per instance port and thread.
pub const MAX_IDLE_PER_PORT: usize = 64;

/// The pool of connections to instances, by port.
#[derive(Debug)]
pub struct InstanceClient {
    pool: keepalive_http::Pool,
}

impl Default for InstanceClient {
    fn default() -> Self {
        Self::new()
    }
}

fn authority(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

impl InstanceClient {
    pub fn new() -> Self {
        Self {
            pool: keepalive_http::Pool::new(MAX_IDLE_PER_PORT, None),
        }
    }

    /// `GET path` on `127.0.0.1:port`.
    pub async fn get(&self, port: u16, path: &str) -> Result<Reply, ClientError> {
        self.pool.get(&authority(port), path).await
    }

    /// Sends `request` to the instance at `addr` (users' functions: any
    /// method, headers and body; the reply with its headers).
    pub async fn send_to(&self, addr: SocketAddr, request: &Request) -> Result<Reply, ClientError> {
        self.pool.send(&addr.to_string(), request).await
    }

    /// Drops the idle connections to `port` (the instance is gone).
    pub fn forget(&self, port: u16) {
        self.pool.forget(&authority(port));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_shape_is_the_query() {
        let none = CallParams::default();
        assert!(matches!(invoke_path(&none), Cow::Borrowed("/invoke")));
        assert_eq!(call_query(&none), None);
        let call = CallParams::parse("duration_ms=2.5&memory_mb=64").unwrap();
        assert_eq!(invoke_path(&call), "/invoke?duration_ms=2.500&memory_mb=64");
        assert_eq!(
            call_query(&call).as_deref(),
            Some("duration_ms=2.500&memory_mb=64")
        );
    }

    #[tokio::test]
    async fn calls_an_instance_by_port_and_forgets_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf).unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .unwrap();
            // Holds the connection open until the test ends.
            let _ = s.read(&mut buf);
        });
        let c = InstanceClient::new();
        let r = c.get(port, "/invoke").await.unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"ok"[..]));
        assert_eq!(c.pool.idle_count(&authority(port)), 1);
        c.forget(port);
        assert_eq!(c.pool.idle_count(&authority(port)), 0);
        let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = gone.local_addr().unwrap().port();
        drop(gone);
        let e = c.get(dead, "/invoke").await.unwrap_err();
        assert!(matches!(e, ClientError::Connect { .. }), "{e}");
        assert!(e.to_string().contains(&format!("127.0.0.1:{dead}")), "{e}");
    }
}
