//! The balancer's request parser (`load_balancer::action::Action::parse`):
//! method, path, query and body (the node API's JSON). Never a panic; an
//! `/execute` it accepts names a function; a node it accepts has no zero
//! resource.
//!
//! Input: the first byte picks the method, the second the path (one of the
//! routes, or the text up to the first `?`); the rest is the query, then,
//! after the first NUL byte, the body.
#![no_main]

use actix_web::http::Method;
use load_balancer::action::Action;

const PATHS: [&str; 10] = [
    "/execute",
    "/configure",
    "/clear",
    "/prepare",
    "/health",
    "/status",
    "/1/lb/scheduler",
    "/1/lb/nodes",
    "/1/lb/nodes/",
    "/",
];

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let [m, p, rest @ ..] = data else {
        return;
    };
    let method = match m % 6 {
        0 => Method::GET,
        1 => Method::HEAD,
        2 => Method::PUT,
        3 => Method::DELETE,
        4 => Method::POST,
        _ => Method::PATCH,
    };
    let (head, body) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let (path, query) = match PATHS.get(usize::from(*p) % (PATHS.len() + 1)) {
        Some(path) => (*path, head.as_ref()),
        None => head.split_once('?').unwrap_or((&head, "")),
    };
    match Action::parse(&method, path, query, body) {
        Ok(Action::Execute { function, .. }) => assert!(!function.is_empty()),
        Ok(Action::AddNode { url, resources }) => {
            assert!(!url.is_empty());
            assert!(![resources.capacity, resources.cores, resources.memory_mb].contains(&Some(0)));
        }
        Ok(_) | Err(_) => {}
    }
});
