//! The worker's request parser (`worker_front::action::Action::parse`)
//! and the `/configure` options it hands to the core: never a panic, and
//! an `/execute` it accepts names a function of a bounded, non-empty name.
//!
//! Input: the first byte picks the path (one of the routes, or the text
//! up to the first `?`), the rest is the query.
#![no_main]

use policy::node::options::CachingOptions;
use worker_front::action::{Action, MAX_NAME_BYTES};

const PATHS: [&str; 6] = [
    "/execute",
    "/configure",
    "/clear",
    "/prepare",
    "/health",
    "/",
];

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let rest = String::from_utf8_lossy(rest);
    let (path, query) = match PATHS.get(usize::from(pick) % (PATHS.len() + 1)) {
        Some(path) => (*path, rest.as_ref()),
        None => rest.split_once('?').unwrap_or((&rest, "")),
    };
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
