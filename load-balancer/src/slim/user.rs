//! What a SlimFaas call sends: a sample function's `GET /execute?name=F`
//! (with the query's call shape), or a user function's request passed
//! through (`crate::functions`: a function the balancer's store knows).
//!
//! A user function called as `ANY /function/<fn>/<path...>?<query>` (or
//! `/async-function/...`) gets what `/invoke/<fn>/<path...>?<query>`
//! would give it: the method, the path under the function, the query,
//! the headers (less hop-by-hop ones and `X-Hf-*`) and the body, through
//! the same code (`crate::functions::http::invoke_with`: the version
//! and digest headers, the store's counters, the one retry on another
//! node); its rate limit is taken once per call, when it arrives (a 429
//! JSON error then, and an asynchronous call is not stored). Its reply's
//! status, headers and body come back (a synchronous call), or are
//! stored as the call's result (an asynchronous one: `status` and
//! `result` of `GET /async-calls/<id>`). An asynchronous call's row keeps
//! the method, the route's path, the query, the headers (at most
//! [`MAX_CALL_HEADERS`] bytes, `encode_headers`) and the body (at most
//! [`super::MAX_CALL_BODY`]), so that it can be sent again after a
//! restart. A name in the store is a user function even when a sample
//! function has it too. A user function is safe to repeat when its
//! settings say so, else when its manifest says `"idempotent": true`;
//! after a balancer restart, a call that was in flight is judged by the
//! settings alone (the store's manifest is not read then), so it is
//! failed, not repeated, unless the settings say `safe_to_repeat`.

use std::sync::Arc;

use actix_web::HttpRequest;
use bytes::Bytes;
use sample_functions::user::wire::hop_by_hop;

use super::SlimError;
use crate::error::BalancerError;
use crate::functions::http::{invoke_with, UserCall};
use crate::functions::Entry;
use crate::state::{RunClock, Shared};

/// Largest total of the headers an asynchronous call keeps.
pub const MAX_CALL_HEADERS: usize = 64 * 1024;

/// One call's request, as the attempts send it.
pub(crate) enum CallRequest<'a> {
    /// A sample function (or one only named in the settings file):
    /// `GET /execute?name=<fn>` with `query`'s call shape.
    Sample { query: &'a str },
    /// A user function: its request passed through.
    User {
        entry: Arc<Entry>,
        method: &'a str,
        tail: &'a str,
        query: &'a str,
        headers: Vec<(&'a str, &'a [u8])>,
        body: Bytes,
    },
}

impl CallRequest<'_> {
    /// Whether the call may run twice: the function's setting if given,
    /// else a sample function is and a user function is when its
    /// manifest says `"idempotent": true`.
    pub(crate) fn safe_to_repeat(
        &self,
        function: &str,
        settings: &super::FunctionSettings,
    ) -> bool {
        match self {
            Self::Sample { .. } => settings.safe_to_repeat(function),
            Self::User { entry, .. } => settings.safe_to_repeat.unwrap_or(entry.idempotent),
        }
    }

    /// Sends one attempt (no time-out here: the caller's).
    pub(crate) async fn send(
        &self,
        shared: &Shared,
        pool: &keepalive_http::Pool,
        function: &str,
        safe: bool,
    ) -> Result<actix_web::HttpResponse, BalancerError> {
        match self {
            Self::Sample { query } => {
                crate::server::execute_with(shared, pool, function, Some(safe), query).await
            }
            Self::User {
                entry,
                method,
                tail,
                query,
                headers,
                body,
            } => {
                let call = UserCall {
                    method,
                    tail,
                    query,
                    headers: headers.clone(),
                    body: body.clone(),
                    safe_to_repeat: safe,
                };
                invoke_with(shared, pool, entry, call, RunClock::instant()).await
            }
        }
    }
}

/// The user function `function` if the store has it, its rate limit
/// taken (a 429 when over it).
pub(crate) fn admitted_user(
    shared: &Shared,
    function: &str,
) -> Result<Option<Arc<Entry>>, SlimError> {
    let Ok(entry) = shared.functions.get(function) else {
        return Ok(None);
    };
    entry
        .admit(RunClock::instant())
        .map_err(|e| SlimError::RateLimited(e.to_string()))?;
    Ok(Some(entry))
}

/// The path under the function of a SlimFaas route's path:
/// `/function/<fn>/a/b` gives `/a/b`, `/function/<fn>` gives `""`.
pub(crate) fn tail_of(path: &str) -> &str {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let after_route = rest.find('/').map_or("", |i| &rest[i + 1..]);
    after_route.find('/').map_or("", |i| &after_route[i..])
}

/// The headers of `req` a user function is given, as stored with an
/// asynchronous call: `name: value` lines ended by CRLF (a header value
/// holds neither CR nor LF); Err when they total more than
/// [`MAX_CALL_HEADERS`] bytes.
pub(crate) fn encode_headers(req: &HttpRequest) -> Result<Vec<u8>, SlimError> {
    let mut out = Vec::new();
    for (k, v) in req.headers() {
        let name = k.as_str();
        if hop_by_hop(name) || name.starts_with("x-hf-") {
            continue;
        }
        if out.len() + name.len() + v.len() + 4 > MAX_CALL_HEADERS {
            return Err(SlimError::HeadersTooLarge);
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    Ok(out)
}

/// The headers [`encode_headers`] stored (a line that does not parse is
/// skipped).
pub(crate) fn decode_headers(stored: &[u8]) -> Vec<(&str, &[u8])> {
    stored
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r")?;
            let colon = line.iter().position(|b| *b == b':')?;
            let name = std::str::from_utf8(&line[..colon]).ok()?;
            let value = line[colon + 1..]
                .strip_prefix(b" ")
                .unwrap_or(&line[colon + 1..]);
            Some((name, value))
        })
        .collect()
}

/// The request headers of `req`, borrowed (for a synchronous call).
pub(crate) fn request_headers(req: &HttpRequest) -> Vec<(&str, &[u8])> {
    req.headers()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_bytes()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_and_headers() {
        assert_eq!(tail_of("/function/f/a/b"), "/a/b");
        assert_eq!(tail_of("/async-function/f/"), "/");
        assert_eq!(tail_of("/function/f"), "");
        let req = actix_web::test::TestRequest::default()
            .insert_header(("x-test", "a: b"))
            .insert_header(("connection", "close"))
            .insert_header(("x-hf-function-version", "9"))
            .to_http_request();
        let stored = encode_headers(&req).unwrap();
        assert_eq!(decode_headers(&stored), vec![("x-test", &b"a: b"[..])]);
    }
}
