//! Issue 13 §5 on the balancer binary: a 100 KB function name (a URI
//! longer than actix-http parses, which it would refuse with a bare 400)
//! gets a JSON error from the server's front (`http_front`), and the
//! balancer keeps serving. Sent over a plain socket: HTTP clients refuse
//! to build such a URI.

mod support;

use std::io::{Read, Write};

use support::{spawn_balancer, StubWorker};

/// `GET path` over a fresh connection: (status, body).
fn raw_get(base: &str, path: &str) -> (u16, String) {
    let authority = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(authority).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("read the reply");
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

#[test]
fn a_100_kb_name_gets_a_json_error_and_the_balancer_keeps_serving() {
    let worker = StubWorker::start("long-uri", &[]);
    let (child, url) = spawn_balancer(&["--nodes", &worker.url]);
    let _balancer = Stopped(child);
    // (Shorter names go to the worker, which judges them.)
    for len in [100_000, 200_000] {
        let (status, body) = raw_get(&url, &format!("/execute?name={}", "W".repeat(len)));
        assert_eq!(status, 414, "{len}: {body:.200}");
        let v: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{len}: not JSON ({e}): {body:.200}"));
        assert_eq!(v["Error"], true, "{len}: {v:.200}");
        assert!(body.len() < 1000, "{len}: the name is echoed: {body:.200}");
    }
    let (status, body) = raw_get(&url, "/execute?name=W1");
    assert_eq!(status, 200, "{body:.200}");
}

/// The balancer, stopped cleanly (SIGTERM) when the test ends, also when
/// it fails, so that it leaves nothing behind.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}
