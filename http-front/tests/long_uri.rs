//! The front over real sockets: a request line too long for actix-http
//! gets a JSON `414` (first on a connection or later on a kept-alive
//! one), an oversized head a JSON `431` and a malformed one a JSON `400`;
//! ordinary requests (also ones arriving in pieces, with bodies that look
//! like requests) reach the app, and the app sees its listener's address.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn echo_listener(req: HttpRequest, _body: web::Bytes) -> HttpResponse {
    let addr = http_front::local_addr(&req).map(|a| a.to_string());
    HttpResponse::Ok().body(format!("listener={}", addr.unwrap_or_default()))
}

/// Starts the front on two loopback listeners; returns their addresses.
fn start() -> (actix_server::ServerHandle, Vec<std::net::SocketAddr>) {
    let listeners: Vec<TcpListener> = (0..2)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let addrs = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    let server = http_front::serve(
        || App::new().default_service(web::to(echo_listener)),
        listeners,
        &http_front::Settings::default(),
    )
    .expect("serve");
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (handle, addrs)
}

/// Sends `parts` (pausing between them) and reads the whole reply (the
/// requests ask the server to close).
async fn exchange(addr: std::net::SocketAddr, parts: &[&[u8]]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        s.write_all(p).await.expect("write");
    }
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut reply))
        .await
        .expect("reply within 30 s")
        .expect("read");
    String::from_utf8_lossy(&reply).into_owned()
}

fn request(uri: &str) -> Vec<u8> {
    format!("GET {uri} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes()
}

#[actix_web::test]
async fn a_100_kb_name_gets_a_json_414() {
    let (handle, addrs) = start();
    let uri = format!("/execute?name={}", "W".repeat(100_000));
    let reply = exchange(addrs[0], &[&request(&uri)]).await;
    let (head, body) = reply.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 414 "), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let v: serde_json::Value = serde_json::from_str(body).expect("JSON body");
    assert_eq!(v["Error"], true);
    assert!(
        v["Message"].as_str().unwrap().contains("65534 bytes"),
        "{body}"
    );

    // The same, arriving in pieces: judged once it is known too long.
    let bytes = request(&uri);
    let reply = exchange(
        addrs[1],
        &[&bytes[..1000], &bytes[1000..70_000], &bytes[70_000..]],
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 414 "), "{}", &reply[..40]);
    handle.stop(false).await;
}

#[actix_web::test]
async fn ordinary_requests_reach_the_app_with_their_listener() {
    let (handle, addrs) = start();
    for addr in &addrs {
        let reply = exchange(*addr, &[&request("/execute?name=W1")]).await;
        assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
        assert!(reply.ends_with(&format!("listener={addr}")), "{reply}");
    }
    // A line in pieces, and a URI just at the limit, pass.
    let reply = exchange(
        addrs[0],
        &[
            b"GET /exe",
            b"cute?name=W1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ],
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    let at_limit = format!("/{}", "a".repeat(http_front::MAX_URI - 1));
    let reply = exchange(addrs[0], &[&request(&at_limit)]).await;
    assert!(
        reply.starts_with("HTTP/1.1 200 "),
        "{}",
        &reply[..40.min(reply.len())]
    );
    handle.stop(false).await;
}

/// The status and JSON body of one answer at the front of `reply`, and
/// what follows it.
fn answer(reply: &str) -> (u16, String, &str) {
    let (head, rest) = reply.split_once("\r\n\r\n").expect("a head");
    let status = head[9..12].parse().expect("a status");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .expect("a content-length")
        .parse()
        .unwrap();
    (status, rest[..length].to_string(), &rest[length..])
}

fn json_error(body: &str, needle: &str) {
    let v: serde_json::Value = serde_json::from_str(body).expect("JSON body");
    assert_eq!(v["Error"], true, "{body}");
    let message = v["Message"].as_str().expect("a message");
    assert!(message.contains(needle), "{message}");
}

fn keep_alive(uri: &str) -> Vec<u8> {
    format!("GET {uri} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
}

#[actix_web::test]
async fn later_requests_on_a_kept_alive_connection_are_checked_too() {
    let (handle, addrs) = start();
    let long = keep_alive(&format!("/execute?name={}", "W".repeat(100_000)));
    // One ordinary request, then a 100 KB name, on one connection, sent
    // as the client would (the second after the first's answer) and
    // pipelined (both at once).
    let mut s = TcpStream::connect(addrs[0]).await.expect("connect");
    s.write_all(&keep_alive("/execute?name=W1")).await.unwrap();
    let mut first = vec![0u8; 4096];
    let n = s.read(&mut first).await.unwrap();
    let first = String::from_utf8_lossy(&first[..n]).into_owned();
    assert!(first.starts_with("HTTP/1.1 200 "), "{first}");
    s.write_all(&long).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut reply))
        .await
        .expect("reply within 30 s")
        .expect("read");
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let (status, body, rest) = answer(&reply);
    assert_eq!(status, 414, "{}", &reply[..60.min(reply.len())]);
    json_error(&body, "65534 bytes");
    assert_eq!(rest, "", "the connection ends after the refusal");

    let reply = exchange(addrs[1], &[&[keep_alive("/a"), long.clone()].concat()]).await;
    let (status, body, rest) = answer(&reply);
    assert_eq!(
        (status, body.as_str()),
        (200, format!("listener={}", addrs[1]).as_str())
    );
    let (status, body, _) = answer(rest);
    assert_eq!(status, 414);
    json_error(&body, "65534 bytes");
    handle.stop(false).await;
}

#[actix_web::test]
async fn oversized_and_malformed_heads_get_json_errors() {
    let (handle, addrs) = start();
    // Over 128 KiB of header fields; then 97 fields.
    let mut big = b"GET /x HTTP/1.1\r\nHost: x\r\n".to_vec();
    while big.len() <= http_front::MAX_HEAD {
        big.extend(format!("X-Filler: {}\r\n", "f".repeat(10_000)).as_bytes());
    }
    big.extend(b"\r\n");
    let reply = exchange(addrs[0], &[&big]).await;
    let (status, body, _) = answer(&reply);
    assert_eq!(status, 431);
    json_error(&body, "131072 bytes");

    let mut many = b"GET /x HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..http_front::MAX_HEADERS {
        many.extend(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend(b"\r\n");
    let reply = exchange(addrs[0], &[&keep_alive("/ok"), &many]).await;
    let (status, _, rest) = answer(&reply);
    assert_eq!(status, 200);
    let (status, body, _) = answer(rest);
    assert_eq!(status, 431);
    json_error(&body, "96 header fields");

    let reply = exchange(addrs[0], &[b"GET /x HTTP/1.1\r\nNo colon here\r\n\r\n"]).await;
    let (status, body, _) = answer(&reply);
    assert_eq!(status, 400);
    json_error(&body, "malformed request head");
    handle.stop(false).await;
}

#[actix_web::test]
async fn bodies_are_not_mistaken_for_requests() {
    let (handle, addrs) = start();
    // Bodies holding what looks like a request with a too-long URI, sized
    // by Content-Length and chunked, each followed by an ordinary request
    // on the same connection: three answers of 200.
    let inner = keep_alive(&format!("/{}", "a".repeat(100_000)));
    let mut bytes = format!(
        "POST /sized HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        inner.len()
    )
    .into_bytes();
    bytes.extend(&inner);
    bytes.extend(b"POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    bytes.extend(format!("{:x}\r\n", inner.len()).as_bytes());
    bytes.extend(&inner);
    bytes.extend(b"\r\n0\r\n\r\n");
    bytes.extend(request("/last"));
    // In pieces that cut heads, chunk lines and bodies anywhere.
    let pieces: Vec<&[u8]> = bytes.chunks(7_919).collect();
    let reply = exchange(addrs[0], &pieces).await;
    let mut rest = reply.as_str();
    for _ in 0..3 {
        let (status, body, after) = answer(rest);
        assert_eq!(status, 200, "{body}");
        rest = after;
    }
    assert_eq!(rest, "");
    handle.stop(false).await;
}
