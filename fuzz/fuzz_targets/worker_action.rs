//! The worker's request parsers: the Glambdar routes of users' functions
//! (`Route::parse`, shared with the balancer), which its dispatch asks
//! first, and `worker_front::action::Action::parse` with the
//! `/configure` options it hands to the core: never a panic; a Glambdar
//! route names a non-empty function without a `/`, and an `/invoke`'s
//! path after the name is empty or starts with `/`; an `/execute` it
//! accepts names a function of a bounded, non-empty name.
//!
//! Input: the first byte picks the path (one of the routes, one of the
//! Glambdar prefixes followed by the text up to the first `?`, or that
//! text alone) and the method; the rest is the query.
#![no_main]

use policy::node::options::CachingOptions;
use worker_front::action::{Action, MAX_NAME_BYTES};
use worker_front::functions::http::Route;

const PATHS: [&str; 6] = [
    "/execute",
    "/configure",
    "/clear",
    "/prepare",
    "/health",
    "/",
];

/// The Glambdar routes' prefixes: the text up to the first `?` follows.
const PREFIXES: [&str; 6] = [
    "/invoke/",
    "/info/",
    "/logs/",
    "/del/",
    "/config/",
    "/packages/",
];

const METHODS: [&str; 4] = ["GET", "POST", "DELETE", "PUT"];

/// A Glambdar route's function name: what the balancer and the worker
/// look up.
fn named(name: &str) {
    assert!(!name.is_empty() && !name.contains('/'), "{name:?}");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let rest = String::from_utf8_lossy(rest);
    let (text, query) = rest.split_once('?').unwrap_or((&rest, ""));
    let k = usize::from(pick) % (PATHS.len() + PREFIXES.len() + 1);
    let (path, query) = match (PATHS.get(k), PREFIXES.get(k.wrapping_sub(PATHS.len()))) {
        (Some(path), _) => (path.to_string(), rest.as_ref()),
        (None, Some(prefix)) => (format!("{prefix}{text}"), query),
        (None, None) => (text.to_string(), query),
    };
    let path = path.as_str();
    let method = METHODS[usize::from(pick >> 4) % METHODS.len()];
    match Route::parse(method, path) {
        Some(Route::Invoke { name, tail }) => {
            named(&name);
            assert!(tail.is_empty() || tail.starts_with('/'), "{tail:?}");
            assert_eq!(format!("/invoke/{name}{tail}"), path);
        }
        Some(Route::Info(name) | Route::Logs(name) | Route::Delete(name))
        | Some(Route::Config(name) | Route::Package(name)) => named(&name),
        Some(Route::Deploy | Route::InfoAll) | None => {}
    }
    match Action::parse(path, query) {
        Ok(Action::Execute { function, .. }) => {
            assert!(!function.is_empty() && function.len() <= MAX_NAME_BYTES);
        }
        Ok(Action::Configure { pairs }) => {
            for (k, v) in &pairs {
                let _ = protocol::limits::check_worker_option(k, v);
            }
            let _ = CachingOptions::default()
                .apply_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        Ok(_) | Err(_) => {}
    }
});
