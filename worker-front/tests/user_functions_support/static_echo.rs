//! A native user function for the Docker tests, standard library only, so
//! that `rustc -C target-feature=+crt-static` builds it alone into a
//! statically linked executable for a `FROM scratch` image
//! (`user_functions_docker.rs` compiles it; it is not a crate target).
//!
//! Serves HTTP/1.1 on 127.0.0.1:$PORT, one request per connection: replies
//! `{"label": ARG1, "method", "path", "query", "test": <x-test header>,
//! "body", "pid"}` with status `?status=N` (default 200). Ends when its
//! stdin closes.

use std::io::{BufRead, BufReader, Read, Write};

fn escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn serve(stream: std::net::TcpStream, label: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let (mut length, mut test) = (0usize, String::new());
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                length = v.parse().unwrap_or(0).min(1 << 20);
            } else if k == "x-test" {
                test = v.to_string();
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    let status: u16 = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("status="))
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let reply = format!(
        "{{\"label\":\"{}\",\"method\":\"{}\",\"path\":\"{}\",\"query\":\"{}\",\"test\":\"{}\",\"body\":\"{}\",\"pid\":{}}}",
        escape(label),
        escape(&method),
        escape(path),
        escape(query),
        escape(&test),
        escape(&String::from_utf8_lossy(&body)),
        std::process::id()
    );
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    )?;
    stream.flush()
}

fn main() {
    let label = std::env::args().nth(1).unwrap_or_default();
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .expect("PORT");
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind $PORT");
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });
    for stream in listener.incoming().flatten() {
        let label = label.clone();
        std::thread::spawn(move || {
            let _ = serve(stream, &label);
        });
    }
}
