//! Bounds of the worker's options, shared by every program that sets or
//! forwards them (issue 13: `container_pool_num=150` started 150 processes
//! in a second, and 4294967295 would have tried four billion): the worker
//! checks its `/configure` query, its flags and its environment with
//! [`check_worker_option`], and the balancer checks the `/configure` query
//! it forwards with the same function, so that a value every worker would
//! refuse is a 400 before anything changes. Thread counts and node memory
//! are bounded alike on both servers ([`MAX_THREADS`],
//! [`MAX_NODE_MEMORY_MB`]).
//!
//! Choices (the original has no bounds): a pool of 64 instances per
//! function is the balancer's default node capacity, i.e. more than one
//! node runs at once; 1,000 pooled functions is 30 times the sample set;
//! an image cache of 1 PiB and a REST idle lifetime of a year are beyond
//! any real machine and run, and keep every later sum or deadline far from
//! overflowing.

/// Pre-warmed instances per pooled function (`container_pool_num`).
pub const MAX_CONTAINER_POOL_NUM: u64 = 64;
/// Functions that keep a pool (`container_pool_limit`; negative = off).
pub const MAX_CONTAINER_POOL_LIMIT: i64 = 1_000;
/// Image cache size in bytes (`user_code_size_limit`; negative = off): 1 PiB.
pub const MAX_USER_CODE_SIZE_LIMIT: i64 = 1 << 50;
/// REST-mode idle lifetime in seconds (`rest_container_life_time`): a year.
pub const MAX_REST_CONTAINER_LIFE_TIME_S: u64 = 365 * 24 * 3600;
/// HTTP server threads of either server.
pub const MAX_THREADS: u64 = 1_024;
/// Memory of a node for function instances, MB (16 TB).
pub const MAX_NODE_MEMORY_MB: u64 = 1 << 24;

/// A worker option's value beyond its bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {value} is beyond its bound ({bound})")]
pub struct OutOfBounds {
    pub key: String,
    pub value: String,
    pub bound: String,
}

/// Checks one worker option against its bound: `key` is a `/configure`
/// key (`container_pool_num`, `image_limit`, ...) or its environment name
/// (`CONTAINER_POOL_NUM`, ...). A value that is not a number passes here
/// (the option parser refuses it with its own message); unknown keys pass.
pub fn check_worker_option(key: &str, value: &str) -> Result<(), OutOfBounds> {
    let v = value.trim();
    let out = |bound: String| OutOfBounds {
        key: key.to_string(),
        value: v.to_string(),
        bound,
    };
    // Numbers beyond i128 do not parse as any option's type either.
    let Ok(number) = v.parse::<i128>() else {
        return Ok(());
    };
    let (max, bound) = match key {
        "container_pool_num" | "CONTAINER_POOL_NUM" => (
            i128::from(MAX_CONTAINER_POOL_NUM),
            format!("at most {MAX_CONTAINER_POOL_NUM} instances per function"),
        ),
        "container_pool_limit" | "CONTAINER_POOL_LIMIT" => (
            i128::from(MAX_CONTAINER_POOL_LIMIT),
            format!("at most {MAX_CONTAINER_POOL_LIMIT} functions, or -1 for off"),
        ),
        "user_code_size_limit" | "image_limit" | "USER_CODE_SIZE_LIMIT" => (
            i128::from(MAX_USER_CODE_SIZE_LIMIT),
            format!("at most {MAX_USER_CODE_SIZE_LIMIT} bytes (1 PiB), or -1 for off"),
        ),
        "rest_container_life_time" | "REST_CONTAINER_LIFE_TIME" => (
            i128::from(MAX_REST_CONTAINER_LIFE_TIME_S),
            format!("at most {MAX_REST_CONTAINER_LIFE_TIME_S} s (a year)"),
        ),
        _ => return Ok(()),
    };
    if number > max {
        return Err(out(bound));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_beyond_their_bounds_are_refused() {
        for (key, ok, bad) in [
            ("container_pool_num", "64", "65"),
            ("CONTAINER_POOL_NUM", "6", "4294967295"),
            ("container_pool_limit", "-1", "1001"),
            ("image_limit", "1125899906842624", "1125899906842625"),
            ("rest_container_life_time", "31536000", "31536001"),
        ] {
            assert_eq!(check_worker_option(key, ok), Ok(()), "{key}={ok}");
            let e = check_worker_option(key, bad).unwrap_err();
            assert!(e.to_string().starts_with(key), "{e}");
        }
        // Not numbers, or not bounded here: the option parser's business.
        assert_eq!(check_worker_option("container_pool_num", "lots"), Ok(()));
        assert_eq!(check_worker_option("using_rest_mode", "99"), Ok(()));
    }
}
