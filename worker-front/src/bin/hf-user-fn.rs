//! `hf-user-fn`: a small native user function, for tests and examples of
//! the Glambdar API (`worker_front::functions`). Standard library only.
//!
//! ```text
//! hf-user-fn [LABEL]            serve HTTP/1.1 on 127.0.0.1:$PORT (manifest runtime "http")
//! hf-user-fn --oneshot [LABEL]  one CGI/1.1 call (manifest runtime "oneshot")
//! ```
//! Every call is echoed as JSON: `{"label", "method", "path", "query",
//! "headers", "body", "version", "pid"}` (`version` is
//! `HF_FUNCTION_VERSION`), with status `?status=N` (default 200) and a
//! header `X-Echo`. Paths that misbehave on purpose: `/crash` (writes to
//! stderr, exits 3), `/hang` (never answers), `/flood` (8 MiB on stderr
//! and an 8 MiB reply), `/noisy` (2 MiB on stderr, a short reply). A path
//! for tests of calls in flight: `/wait?dir=D` writes the file
//! `D/arrived-<HF_WORKER_ID>`, then waits until a file `D/go` exists (at
//! most 120 s) and echoes. The server exits when its stdin closes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

struct Request {
    method: String,
    path: String,
    query: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    /// Close the connection after the reply (HTTP/1.0, or `Connection:
    /// close`), as ab's clients expect.
    close: bool,
}

fn misbehave(r: &Request) -> Option<(u16, Vec<u8>)> {
    match r.path.as_str() {
        "/crash" => {
            eprintln!("hf-user-fn: crashing on purpose");
            std::process::exit(3);
        }
        "/hang" => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        "/flood" => {
            let chunk = vec![b'e'; 1024 * 1024];
            for _ in 0..8 {
                let _ = std::io::stderr().write_all(&chunk);
            }
            Some((200, vec![b'x'; 8 * 1024 * 1024]))
        }
        "/noisy" => {
            let chunk = vec![b'n'; 1024 * 1024];
            for _ in 0..2 {
                let _ = std::io::stderr().write_all(&chunk);
            }
            eprintln!("hf-user-fn: noisy call done");
            Some((200, b"ok".to_vec()))
        }
        "/wait" => {
            let dir = r.query.split('&').find_map(|p| p.strip_prefix("dir="))?;
            let dir = std::path::Path::new(dir);
            let worker = std::env::var("HF_WORKER_ID").unwrap_or_default();
            let _ = std::fs::write(dir.join(format!("arrived-{worker}")), b"");
            for _ in 0..12_000 {
                if dir.join("go").exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            None
        }
        _ => None,
    }
}

fn echo(label: &str, r: &Request) -> (u16, Vec<u8>) {
    if let Some(out) = misbehave(r) {
        return out;
    }
    let status = r
        .query
        .split('&')
        .find_map(|p| p.strip_prefix("status="))
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let body = serde_json::json!({
        "label": label,
        "method": r.method,
        "path": r.path,
        "query": r.query,
        "headers": r.headers,
        "body": String::from_utf8_lossy(&r.body),
        "version": std::env::var("HF_FUNCTION_VERSION").unwrap_or_default(),
        "pid": std::process::id(),
    });
    (status, body.to_string().into_bytes())
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut it = line.split_whitespace();
    let method = it.next()?.to_string();
    let target = it.next()?.to_string();
    let http10 = it.next() == Some("HTTP/1.0");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        if headers.len() > 100 {
            return None;
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
        .min(16 * 1024 * 1024);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).ok()?;
    let close = match headers.get("connection").map(|c| c.to_ascii_lowercase()) {
        Some(c) if c == "close" => true,
        _ => http10,
    };
    Some(Request {
        method,
        path,
        query,
        headers,
        body,
        close,
    })
}

fn serve_connection(stream: TcpStream, label: String) {
    // One write per reply, sent at once (no Nagle delay behind the
    // client's delayed ACK).
    let _ = stream.set_nodelay(true);
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some(req) = read_request(&mut reader) {
        let (status, body) = echo(&label, &req);
        let mut reply = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nX-Echo: {label}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        reply.extend_from_slice(&body);
        if out.write_all(&reply).is_err() || req.close {
            return;
        }
    }
}

fn oneshot(label: &str) {
    let mut body = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut body);
    let mut headers = BTreeMap::new();
    for (k, v) in std::env::vars() {
        if let Some(h) = k.strip_prefix("HTTP_") {
            headers.insert(h.to_ascii_lowercase().replace('_', "-"), v);
        }
    }
    let req = Request {
        method: std::env::var("REQUEST_METHOD").unwrap_or_default(),
        path: std::env::var("PATH_INFO").unwrap_or_default(),
        query: std::env::var("QUERY_STRING").unwrap_or_default(),
        headers,
        body,
        close: true,
    };
    eprintln!("hf-user-fn: one-shot call {} {}", req.method, req.path);
    let (status, body) = echo(label, &req);
    let mut stdout = std::io::stdout().lock();
    let _ = write!(
        stdout,
        "Status: {status}\r\nContent-Type: application/json\r\nX-Echo: {label}\r\n\r\n"
    );
    let _ = stdout.write_all(&body);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--oneshot") {
        oneshot(args.get(1).map(String::as_str).unwrap_or("oneshot"));
        return;
    }
    let label = args.first().cloned().unwrap_or_else(|| "native".into());
    let port: u16 = match std::env::var("PORT").ok().and_then(|p| p.parse().ok()) {
        Some(p) => p,
        None => {
            eprintln!("hf-user-fn: PORT is not set");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hf-user-fn: binding 127.0.0.1:{port}: {e}");
            std::process::exit(2);
        }
    };
    // Ends with the worker: when stdin closes.
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });
    for stream in listener.incoming().flatten() {
        let label = label.clone();
        std::thread::spawn(move || serve_connection(stream, label));
    }
}
