//! The cost of checking every request head ([`http_front::framing`])
//! against the parse actix-http does of the same head anyway (`httparse`
//! with 96 uninitialised header slots): the check parses each head a second time, so
//! its cost should be about one such parse.
//!
//! Heads: a replayer's `GET /execute?name=W1` and a user function's
//! `POST /invoke/...` with a small body.
//!
//! `cargo bench -p http-front --bench framing`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use http_front::framing::{Scanner, Step, MAX_HEADERS};

const GET: &[u8] = b"GET /execute?name=W1 HTTP/1.1\r\nhost: 127.0.0.1:8111\r\naccept: */*\r\n\r\n";

fn post() -> Vec<u8> {
    let body = br#"{"n": 42, "text": "hello"}"#;
    let mut bytes = format!(
        "POST /invoke/echo?x=1 HTTP/1.1\r\nhost: 127.0.0.1:8111\r\ncontent-type: application/json\r\nuser-agent: ab/2.3\r\naccept: */*\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Runs one request through a fresh scanner, as each connection's bytes
/// are.
fn scan(bytes: &[u8]) -> usize {
    let mut s = Scanner::default();
    let mut at = 0;
    while let Step::Pass(n) = s.step(&bytes[at..]) {
        at += n;
        if at == bytes.len() {
            break;
        }
    }
    at
}

fn actix_parse(bytes: &[u8]) -> usize {
    let mut fields =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(bytes, &mut fields) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => 0,
    }
}

fn bench(c: &mut Criterion) {
    let post = post();
    for (name, bytes) in [("get", GET), ("post", post.as_slice())] {
        assert_eq!(scan(bytes), bytes.len(), "{name} passes whole");
        let mut g = c.benchmark_group(format!("head/{name}"));
        g.throughput(Throughput::Elements(1));
        g.bench_function("framing check", |b| b.iter(|| scan(black_box(bytes))));
        g.bench_function("actix-http's parse (peer)", |b| {
            b.iter(|| actix_parse(black_box(bytes)))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
