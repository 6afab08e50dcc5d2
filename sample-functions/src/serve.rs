//! A tiny HTTP/1.1 server for warm function instances (`hf-fn serve`),
//! written with the standard library only (one thread per connection), so
//! that `hf-fn` stays small and links statically for `FROM scratch` images.
//!
//! # Protocol (what runtimes rely on)
//! - `hf-fn serve --function <NAME> [--host 127.0.0.1] [--port 0]` binds
//!   `host:port` (port 0 = any free port), reads the function's payload
//!   (the instance's cold start), then prints exactly one line
//!   `{"port": N}` on stdout and flushes it: from then on it answers.
//! - `GET /invoke` runs one call and answers `200` with the
//!   `FunctionOutput` JSON `{"startTime", "endTime", "result"}`; a failing
//!   call answers `500` with `{"Error": true, "Message": ...}`.
//! - `GET /health` answers `200` `{"ok": true, "function": NAME,
//!   "invocations": n}`; anything else `404` JSON.
//! - Keep-alive is supported (HTTP/1.1 default; `Connection: close` honoured);
//!   calls on different connections run concurrently. The instance runs until
//!   it is killed, or, with `--exit-on-stdin-eof`, until its stdin closes
//!   (a local parent keeps a pipe open, so instances never outlive it).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

/// Largest request head accepted (bytes).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

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

/// Serves `listener` forever: `route(method, path)` answers each request.
pub fn serve<F>(listener: TcpListener, route: F) -> io::Result<()>
where
    F: Fn(&str, &str) -> Reply + Send + Sync + 'static,
{
    let route = Arc::new(route);
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            // Transient accept errors (e.g. too many open files): keep serving.
            Err(_) => continue,
        };
        let route = Arc::clone(&route);
        std::thread::spawn(move || {
            // A broken connection only ends that connection.
            let _ = handle_connection(stream, &*route);
        });
    }
    Ok(())
}

fn handle_connection<F>(stream: TcpStream, route: &F) -> io::Result<()>
where
    F: Fn(&str, &str) -> Reply,
{
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    // Reused by every request of the connection.
    let mut lines = HeadLines::default();
    let mut out = Vec::with_capacity(512);
    loop {
        let Some(head) = read_head(&mut reader, &mut lines)? else {
            return Ok(());
        };
        let (reply, keep_alive) = match head {
            Ok(req) => {
                if req.content_length > 0 {
                    io::copy(&mut (&mut reader).take(req.content_length), &mut io::sink())?;
                }
                (route(req.method, req.path), req.keep_alive)
            }
            Err(reply) => (reply, false),
        };
        out.clear();
        write!(
            out,
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            reply.status,
            reason(reply.status),
            reply.body.len()
        )?;
        if !keep_alive {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(reply.body.as_bytes());
        writer.write_all(&out)?;
        if !keep_alive {
            return Ok(());
        }
    }
}

/// The request line and the current header line, kept across requests.
#[derive(Default)]
struct HeadLines {
    request: String,
    header: String,
}

struct Request<'a> {
    method: &'a str,
    path: &'a str,
    keep_alive: bool,
    content_length: u64,
}

/// Reads one request head. `None` at a clean end of the connection;
/// `Some(Err(reply))` for a malformed request (answered, then closed).
fn read_head<'a>(
    reader: &mut impl BufRead,
    lines: &'a mut HeadLines,
) -> io::Result<Option<Result<Request<'a>, Reply>>> {
    let HeadLines {
        request: line,
        header,
    } = lines;
    let mut total = 0usize;
    // Skip empty lines between requests.
    loop {
        line.clear();
        let n = reader.read_line(line)?;
        if n == 0 {
            return Ok(None);
        }
        total += n;
        if !line.trim().is_empty() {
            break;
        }
        if total > MAX_HEAD_BYTES {
            return Ok(Some(Err(Reply::json(400, error_json("empty request")))));
        }
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Ok(Some(Err(Reply::json(400, error_json("bad request line")))));
    };
    let path = target.split('?').next().unwrap_or("");
    let mut keep_alive = version == "HTTP/1.1";
    let mut content_length = 0u64;
    loop {
        header.clear();
        let n = reader.read_line(header)?;
        total += n;
        if n == 0 {
            return Ok(None);
        }
        if total > MAX_HEAD_BYTES {
            return Ok(Some(Err(Reply::json(
                431,
                error_json("request head too large"),
            ))));
        }
        let h = header.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("connection") {
                if value.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if value.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            } else if name.eq_ignore_ascii_case("content-length") {
                match value.parse() {
                    Ok(n) => content_length = n,
                    Err(_) => {
                        return Ok(Some(Err(Reply::json(
                            400,
                            error_json("bad Content-Length"),
                        ))))
                    }
                }
            }
        }
    }
    Ok(Some(Ok(Request {
        method,
        path,
        keep_alive,
        content_length,
    })))
}

/// `{"Error": true, "Message": ...}` (the project's error shape).
pub fn error_json(message: &str) -> String {
    serde_json::json!({"Error": true, "Message": message}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            serve(l, |m, p| match (m, p) {
                ("GET", "/hello") => Reply::json(200, "{\"hi\":1}"),
                _ => Reply::json(404, error_json("no")),
            })
        });
        port
    }

    #[test]
    fn keep_alive_then_close() {
        let port = start();
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /nope?x=1 HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut all = String::new();
        s.read_to_string(&mut all).unwrap();
        assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
        assert!(all.contains("{\"hi\":1}HTTP/1.1 404 Not Found"), "{all}");
        assert!(all.ends_with("\"Message\":\"no\"}"), "{all}");
    }

    #[test]
    fn garbage_gets_400() {
        let port = start();
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"NONSENSE\r\n\r\n").unwrap();
        let mut all = String::new();
        s.read_to_string(&mut all).unwrap();
        assert!(all.starts_with("HTTP/1.1 400"), "{all}");
    }
}
