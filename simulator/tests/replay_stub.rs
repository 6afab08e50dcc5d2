//! A tiny real HTTP/1.1 balancer stand-in on a loopback socket, for the
//! replay tests and the dispatch-lag benchmark (included by `#[path]`).
//!
//! It answers `GET /clear` with `done`, and `GET /execute?name=F` according
//! to the function name:
//! - `FAIL...`: HTTP 500 with `{"Error":true,"Message":"boom"}`;
//! - `BAD...`: HTTP 200 with a body that is not JSON;
//! - `SLOW...`: a balancer reply after 60 s;
//! - anything else: a balancer reply at once, `WorkerNodeId` = the number of
//!   requests seen so far modulo 4.
//!
//! Connections are kept alive (several requests per connection), so a
//! high-rate replay does not exhaust ephemeral ports. Every request is
//! recorded with the instant it arrived.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request the stub received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    /// Path and query, e.g. `/execute?name=W1`.
    pub target: String,
}

/// A running stub; stops when dropped.
#[derive(Debug)]
pub struct StubBalancer {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StubBalancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StubBalancer {
    /// Binds 127.0.0.1:0 and serves on the current runtime.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind stub");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let rec = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                let _ = conn.set_nodelay(true);
                tokio::spawn(serve(conn, rec.clone()));
            }
        });
        Self {
            url,
            received,
            task,
        }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

pub const REPLY: &str = r#"{"Result":{"statusCode":200,"body":"ok"},"ExecutionTime":12,"InternalExecutionTime":10,"Meta":{"ImageBuilt":false,"UsingPooledContainer":false,"UsingExistingRestContainer":true,"ContainerName":"c","ImageName":"i"},"LoadBalancingInfo":{"WorkerNodeId":NODE,"WorkerNodeUrl":"http://127.0.0.1:1","Algorithm":"stub","AlgorithmLatency":0.001}}"#;

async fn serve(mut conn: TcpStream, received: Arc<Mutex<Vec<Received>>>) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        // Read one request head (GET requests have no body).
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let at = Instant::now();
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        buf.drain(..head_end);
        let target = head
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("")
            .to_string();
        let count = {
            let mut r = received.lock().unwrap();
            r.push(Received {
                at,
                target: target.clone(),
            });
            r.len()
        };
        let (status, body) = if target.starts_with("/clear") {
            (200, "done\n".to_string())
        } else if let Some(name) = target.strip_prefix("/execute?name=") {
            if name.starts_with("FAIL") {
                (500, r#"{"Error":true,"Message":"boom"}"#.to_string())
            } else if name.starts_with("BAD") {
                (200, "this is not json".to_string())
            } else {
                if name.starts_with("SLOW") {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                (200, REPLY.replace("NODE", &(count % 4).to_string()))
            }
        } else {
            (404, r#"{"Error":true,"Message":"404"}"#.to_string())
        };
        let reply = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if conn.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}
