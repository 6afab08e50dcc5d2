//! The bounds of every count, size and duration the worker's flags,
//! environment and `/configure` set (issue 13: `container_pool_num=150`
//! started 150 processes in a second; 4294967295 would have tried four
//! billion). Beyond a bound, a start is an error naming the option and a
//! `/configure` is a 400 JSON error that changes nothing.
//!
//! The caching options' bounds are [`protocol::limits`]' (the balancer
//! checks the `/configure` query it forwards with the same function);
//! threads and node memory share the balancer's bounds; the keep-alive
//! (at most a year) and the scales are checked where they are parsed
//! (`policy::node::keep_alive_policy`, [`crate::run`]).
//!
//! | option | bound |
//! |---|---|
//! | `container_pool_num` / `CONTAINER_POOL_NUM` | 64 instances per function |
//! | `container_pool_limit` / `CONTAINER_POOL_LIMIT` | 1,000 functions (-1: off) |
//! | `user_code_size_limit` / `USER_CODE_SIZE_LIMIT` | 1 PiB (-1: off) |
//! | `rest_container_life_time` / `REST_CONTAINER_LIFE_TIME` | a year, in s |
//! | `--http-workers` | 1 to 1,024 |
//! | `--node-memory-mb` | 1 to 16,777,216 (16 TB) |
//! | `expiry_tick_ms` (config) | 1 ms to an hour |
//! | `--engine-timeout-s` / `engine_timeout_s` | 1 s to an hour |

use policy::node::options::CachingOptions;
use protocol::limits::{check_worker_option, OutOfBounds, MAX_NODE_MEMORY_MB, MAX_THREADS};

use crate::WorkerConfig;

/// Longest expiry tick, in ms (an hour).
pub const MAX_EXPIRY_TICK_MS: u64 = 3_600_000;

/// Longest engine time-out, in s (an hour: the old fixed bound).
pub const MAX_ENGINE_TIMEOUT_S: u64 = 3_600;

/// Checks caching options against their bounds.
pub fn check_caching(options: &CachingOptions) -> Result<(), OutOfBounds> {
    let values = [
        (
            "user_code_size_limit",
            options.user_code_size_limit.to_string(),
        ),
        (
            "container_pool_limit",
            options.container_pool_limit.to_string(),
        ),
        ("container_pool_num", options.container_pool_num.to_string()),
        (
            "rest_container_life_time",
            options.rest_container_life_time.to_string(),
        ),
    ];
    for (key, value) in &values {
        check_worker_option(key, value)?;
    }
    Ok(())
}

/// Checks `/configure` pairs against their bounds (before anything is
/// applied).
pub fn check_query<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), OutOfBounds> {
    for (key, value) in pairs {
        check_worker_option(key, value)?;
    }
    Ok(())
}

/// Checks a whole configuration (flags, environment, config file).
pub fn check_config(config: &WorkerConfig) -> Result<(), String> {
    check_caching(&config.caching).map_err(|e| e.to_string())?;
    let within = |what: &str, value: u64, min: u64, max: u64| {
        if (min..=max).contains(&value) {
            Ok(())
        } else {
            Err(format!(
                "{what} is {value}, outside its bounds {min}..={max}"
            ))
        }
    };
    within("http workers", config.http_workers as u64, 1, MAX_THREADS)?;
    within(
        "node memory (MB)",
        u64::from(config.node_memory_mb),
        1,
        MAX_NODE_MEMORY_MB,
    )?;
    within(
        "expiry tick (ms)",
        config.expiry_tick_ms,
        1,
        MAX_EXPIRY_TICK_MS,
    )?;
    within(
        "engine time-out (s)",
        config.engine_timeout_s,
        1,
        MAX_ENGINE_TIMEOUT_S,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_flags_beyond_their_bounds_are_refused() {
        assert!(check_config(&WorkerConfig::default()).is_ok());
        let mut c = WorkerConfig::default();
        c.caching.container_pool_num = u32::MAX;
        assert!(check_config(&c).unwrap_err().contains("container_pool_num"));
        let mut c = WorkerConfig::default();
        c.caching.rest_container_life_time = u64::MAX;
        assert!(check_config(&c)
            .unwrap_err()
            .contains("rest_container_life_time"));
        let c = WorkerConfig {
            http_workers: 1 << 20,
            ..WorkerConfig::default()
        };
        assert!(check_config(&c).unwrap_err().contains("http workers"));
        let c = WorkerConfig {
            node_memory_mb: u32::MAX,
            ..WorkerConfig::default()
        };
        assert!(check_config(&c).unwrap_err().contains("node memory"));
        for bad in [0, MAX_ENGINE_TIMEOUT_S + 1] {
            let c = WorkerConfig {
                engine_timeout_s: bad,
                ..WorkerConfig::default()
            };
            assert!(check_config(&c).unwrap_err().contains("engine time-out"));
        }
        assert!(
            check_query([("container_pool_limit", "1"), ("container_pool_num", "150")]).is_err()
        );
        assert!(check_query([("container_pool_num", "64")]).is_ok());
    }
}
