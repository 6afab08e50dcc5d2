//! The express lane over real sockets: a plain `GET` of the lane's route
//! is answered by the lane; the first request it does not take hands the
//! connection to actix-http, which answers it and every later request,
//! in order, pipelined or not; what needs actix-http (a body, a close,
//! HTTP/1.0, a head in pieces, too many fields, a long URI) gets it; an
//! idle connection is closed without a word, and at a graceful stop at
//! once.
//!
//! Which server answered is in the body: the lane writes `lane <query>`,
//! the app `actix <method> <path> <body length>`.

use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse};
use bytes::Bytes;
use http_front::express::{Lane, LaneReply, LaneRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn app_reply(req: HttpRequest, body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body(format!(
        "actix {} {} {}",
        req.method(),
        req.path(),
        body.len()
    ))
}

/// `GET /fast?<q>`: `lane <q>` (200); `GET /fast-fail`: a 503 with a JSON
/// body; anything else: not taken.
fn lane() -> Lane {
    Rc::new(|req: LaneRequest<'_>| {
        let (path, query) = req.target.split_once('?').unwrap_or((req.target, ""));
        let reply = match path {
            "/fast" => LaneReply {
                status: 200,
                content_type: "text/plain",
                body: Bytes::from(format!("lane {query}")),
            },
            "/fast-fail" => LaneReply {
                status: 503,
                content_type: "application/json",
                body: Bytes::from_static(b"{\"Error\":true}"),
            },
            _ => return None,
        };
        Some(Box::pin(async move {
            // A reply that is not ready at once, as a proxied call's.
            tokio::task::yield_now().await;
            reply
        }) as _)
    })
}

fn start(idle: Duration) -> (actix_server::ServerHandle, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    let settings = http_front::Settings {
        workers: 1,
        request_head: idle,
        keep_alive: idle,
        express: Some(Arc::new(lane)),
        ..Default::default()
    };
    let server = http_front::serve(
        || App::new().default_service(web::to(app_reply)),
        vec![listener],
        &settings,
    )
    .expect("serve");
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (handle, addr)
}

/// Reads one reply (a head with `content-length`, then that many bytes)
/// from `s`, keeping what follows in `rest`.
async fn read_reply(s: &mut TcpStream, rest: &mut Vec<u8>) -> (String, String) {
    loop {
        if let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&rest[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().unwrap())
                })
                .expect("a content-length");
            if rest.len() >= end + 4 + len {
                let body = String::from_utf8_lossy(&rest[end + 4..end + 4 + len]).into_owned();
                rest.drain(..end + 4 + len);
                return (head, body);
            }
        }
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
            .await
            .expect("a reply within 30 s")
            .expect("read");
        assert!(
            n > 0,
            "closed before a whole reply: {:?}",
            String::from_utf8_lossy(rest)
        );
        rest.extend_from_slice(&buf[..n]);
    }
}

fn get(target: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n")
}

#[actix_web::test]
async fn the_lane_answers_its_route_until_a_request_it_does_not_take() {
    let (handle, addr) = start(Duration::from_secs(60));
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut rest = Vec::new();

    s.write_all(get("/fast?a=1").as_bytes()).await.unwrap();
    let (head, body) = read_reply(&mut s, &mut rest).await;
    assert_eq!(body, "lane a=1");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("\r\ncontent-type: text/plain"), "{head}");
    assert!(head.contains("\r\ndate: "), "{head}");

    s.write_all(get("/fast-fail").as_bytes()).await.unwrap();
    let (head, body) = read_reply(&mut s, &mut rest).await;
    assert!(
        head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{head}"
    );
    assert!(
        head.contains("\r\ncontent-type: application/json"),
        "{head}"
    );
    assert_eq!(body, "{\"Error\":true}");

    // Not the lane's: actix-http answers it, and the connection stays
    // with actix-http.
    s.write_all(get("/other").as_bytes()).await.unwrap();
    let (_, body) = read_reply(&mut s, &mut rest).await;
    assert_eq!(body, "actix GET /other 0");
    s.write_all(get("/fast?a=2").as_bytes()).await.unwrap();
    let (_, body) = read_reply(&mut s, &mut rest).await;
    assert_eq!(body, "actix GET /fast 0");
    assert!(rest.is_empty());
    handle.stop(false).await;
}

#[actix_web::test]
async fn pipelined_requests_are_answered_in_order() {
    let (handle, addr) = start(Duration::from_secs(60));
    let mut s = TcpStream::connect(addr).await.unwrap();
    let requests = [
        get("/fast?n=1"),
        get("/fast?n=2"),
        "POST /fast?n=3 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nxy".to_owned(),
        get("/fast?n=4"),
    ]
    .concat();
    s.write_all(requests.as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    let mut bodies = Vec::new();
    for _ in 0..4 {
        bodies.push(read_reply(&mut s, &mut rest).await.1);
    }
    assert_eq!(
        bodies,
        [
            "lane n=1",
            "lane n=2",
            "actix POST /fast 2",
            "actix GET /fast 0"
        ]
    );
    handle.stop(false).await;
}

#[actix_web::test]
async fn requests_that_need_actix_get_it() {
    let (handle, addr) = start(Duration::from_secs(60));
    let many_fields: String = (0..40).map(|i| format!("X-F{i}: v\r\n")).collect();
    let cases = [
        ("HTTP/1.0", "GET /fast?q HTTP/1.0\r\nHost: x\r\n\r\n".to_owned(), "actix GET /fast 0"),
        (
            "a close",
            "GET /fast?q HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_owned(),
            "actix GET /fast 0",
        ),
        (
            "a body",
            "GET /fast?q HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc".to_owned(),
            "actix GET /fast 3",
        ),
        (
            "a chunked body",
            "GET /fast?q HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                .to_owned(),
            "actix GET /fast 3",
        ),
        (
            "another method",
            "DELETE /fast?q HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
            "actix DELETE /fast 0",
        ),
        (
            "many fields",
            format!("GET /fast?q HTTP/1.1\r\nHost: x\r\n{many_fields}\r\n"),
            "actix GET /fast 0",
        ),
    ];
    for (what, request, expected) in cases {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let (head, body) = read_reply(&mut s, &mut Vec::new()).await;
        assert!(head.starts_with("HTTP/1."), "{what}: {head}");
        assert_eq!(body, expected, "{what}");
    }
    handle.stop(false).await;
}

#[actix_web::test]
async fn a_head_in_pieces_and_a_long_uri_are_served_as_before() {
    let (handle, addr) = start(Duration::from_secs(60));
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /fast?split HT").await.unwrap();
    s.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.write_all(b"TP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut rest = Vec::new();
    let (head, body) = read_reply(&mut s, &mut rest).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // In pieces it went to actix-http; had both arrived together, the
    // lane would have taken it.
    assert!(
        body == "actix GET /fast 0" || body == "lane split",
        "{body}"
    );

    let uri = format!("/fast?{}", "W".repeat(100_000));
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(get(&uri).as_bytes()).await.unwrap();
    let (head, body) = read_reply(&mut s, &mut Vec::new()).await;
    assert!(head.starts_with("HTTP/1.1 414 "), "{head}");
    assert!(body.contains("65534 bytes"), "{body}");
    handle.stop(false).await;
}

#[actix_web::test]
async fn an_idle_connection_is_closed_without_a_reply() {
    let (handle, addr) = start(Duration::from_secs(1));
    // Nothing sent, then idle after a request: both closed, no bytes.
    for ask_first in [false, true] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut rest = Vec::new();
        if ask_first {
            s.write_all(get("/fast?x").as_bytes()).await.unwrap();
            assert_eq!(read_reply(&mut s, &mut rest).await.1, "lane x");
        }
        let mut after = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut after))
            .await
            .expect("closed within 30 s")
            .expect("read");
        assert!(after.is_empty(), "{:?}", String::from_utf8_lossy(&after));
    }
    handle.stop(false).await;
}

/// Set by `/slow` when it starts; it replies once `RELEASE` is set.
static ENTERED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static RELEASE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

async fn slow_reply() -> HttpResponse {
    use std::sync::atomic::Ordering::SeqCst;
    ENTERED.store(true, SeqCst);
    while !RELEASE.load(SeqCst) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    HttpResponse::Ok().body("slow done")
}

/// A graceful stop does not wait on idle kept-alive connections: one idle
/// in the lane, one handed over to actix-http and idle there, one that
/// never sent a byte; all three are closed without a reply, while a
/// request in flight on a fourth still gets its reply, and the server
/// ends long before its (here ten-minute) shutdown time-out and its
/// connections' ten-minute keep-alive.
#[actix_web::test]
async fn a_graceful_stop_closes_idle_connections_and_finishes_calls_in_flight() {
    use std::sync::atomic::Ordering::SeqCst;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    let long = Duration::from_secs(600);
    let settings = http_front::Settings {
        workers: 1,
        request_head: long,
        keep_alive: long,
        shutdown_timeout: long.as_secs(),
        express: Some(Arc::new(lane)),
    };
    let server = http_front::serve(
        || {
            App::new()
                .route("/slow", web::get().to(slow_reply))
                .default_service(web::to(app_reply))
        },
        vec![listener],
        &settings,
    )
    .expect("serve");
    let handle = server.handle();
    let server = actix_web::rt::spawn(server);

    let mut in_lane = TcpStream::connect(addr).await.unwrap();
    in_lane.write_all(get("/fast?a").as_bytes()).await.unwrap();
    assert_eq!(read_reply(&mut in_lane, &mut Vec::new()).await.1, "lane a");
    let mut in_actix = TcpStream::connect(addr).await.unwrap();
    in_actix.write_all(get("/other").as_bytes()).await.unwrap();
    assert_eq!(
        read_reply(&mut in_actix, &mut Vec::new()).await.1,
        "actix GET /other 0"
    );
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut busy = TcpStream::connect(addr).await.unwrap();
    busy.write_all(get("/slow").as_bytes()).await.unwrap();
    let entered = tokio::time::timeout(Duration::from_secs(30), async {
        while !ENTERED.load(SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    entered.await.expect("/slow started within 30 s");

    let stop = actix_web::rt::spawn(async move { handle.stop(true).await });
    for (name, s) in [
        ("lane", &mut in_lane),
        ("actix", &mut in_actix),
        ("silent", &mut silent),
    ] {
        let mut after = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut after))
            .await
            .unwrap_or_else(|_| panic!("the idle {name} connection still open after 30 s"))
            .expect("read");
        assert!(
            after.is_empty(),
            "{name}: {:?}",
            String::from_utf8_lossy(&after)
        );
    }
    // The call in flight was let finish.
    RELEASE.store(true, SeqCst);
    let (head, body) = read_reply(&mut busy, &mut Vec::new()).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "slow done");
    tokio::time::timeout(Duration::from_secs(30), stop)
        .await
        .expect("the graceful stop ended within 30 s")
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the server ended within 30 s")
        .unwrap()
        .unwrap();
}
