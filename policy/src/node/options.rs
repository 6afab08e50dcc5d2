//! HotFunctions' caching options: one serde struct for the environment, the
//! CLI and the `/configure` API.
//!
//! Names and defaults are the original's (Prev/HotFunctions,
//! `worker_front/main.go` and `request_handler.go`):
//!
//! | field (JSON `State`)    | environment                | `/configure` query         | default |
//! |-------------------------|----------------------------|----------------------------|---------|
//! | `UserCodeSizeLimit`     | `USER_CODE_SIZE_LIMIT`     | `user_code_size_limit` (alias `image_limit`) | -1 (off), bytes |
//! | `ContainerPoolLimit`    | `CONTAINER_POOL_LIMIT`     | `container_pool_limit`     | -1 (off), functions |
//! | `ContainerPoolNum`      | `CONTAINER_POOL_NUM`       | `container_pool_num`       | 6 instances per function |
//! | `UsingRestMode`         | `USING_REST_MODE`          | `using_rest_mode`          | false |
//! | `RestContainerLifeTime` | `REST_CONTAINER_LIFE_TIME` | `rest_container_life_time` | 10 s |
//!
//! Differences from the original, on purpose: the original turns REST mode on
//! for *any* non-empty `USING_REST_MODE` (so `false` meant on); here `""`,
//! `0`, `false`, `no` and `off` mean off. Malformed numbers are errors naming
//! the variable or query parameter instead of silently becoming 0, and an
//! unknown `/configure` parameter is rejected.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The worker's caching options (the original's `CachingOptions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase", default)]
pub struct CachingOptions {
    /// Byte limit of the image cache, LRU eviction; -1 = unlimited.
    pub user_code_size_limit: i64,
    /// Keep pre-warmed pools for this many most recently used functions;
    /// -1 = no pools.
    pub container_pool_limit: i64,
    /// Pre-warmed instances per pooled function.
    pub container_pool_num: u32,
    /// One shared long-lived instance per function (the original's "REST
    /// mode", two-level isolation) instead of one instance per call.
    pub using_rest_mode: bool,
    /// Idle lifetime of a REST-mode instance, in seconds.
    pub rest_container_life_time: u64,
}

impl Default for CachingOptions {
    fn default() -> Self {
        Self {
            user_code_size_limit: -1,
            container_pool_limit: -1,
            container_pool_num: 6,
            using_rest_mode: false,
            rest_container_life_time: 10,
        }
    }
}

/// A bad option value (environment variable or query parameter).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    #[error("{name}: {value:?} is not {expected}")]
    BadValue {
        name: String,
        value: String,
        expected: &'static str,
    },
    #[error("unknown option {0:?} (known: user_code_size_limit, container_pool_limit, container_pool_num, using_rest_mode, rest_container_life_time)")]
    Unknown(String),
}

/// The environment variable names, in the order of the struct's fields.
pub const ENV_NAMES: [&str; 5] = [
    "USER_CODE_SIZE_LIMIT",
    "CONTAINER_POOL_LIMIT",
    "CONTAINER_POOL_NUM",
    "USING_REST_MODE",
    "REST_CONTAINER_LIFE_TIME",
];

impl CachingOptions {
    /// The image cache limit in bytes, `None` when off (any negative value).
    pub fn image_limit_bytes(&self) -> Option<u64> {
        u64::try_from(self.user_code_size_limit).ok()
    }

    /// The number of functions that keep a pool, `None` when off (negative).
    pub fn pool_function_limit(&self) -> Option<usize> {
        usize::try_from(self.container_pool_limit).ok()
    }

    /// The REST-mode idle lifetime.
    pub fn rest_lifetime(&self) -> Duration {
        Duration::from_secs(self.rest_container_life_time)
    }

    /// Reads the options from environment-like lookups (`lookup(name)` is
    /// `std::env::var(name).ok()` in the binary); absent variables keep
    /// their defaults.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, OptionsError> {
        let mut o = Self::default();
        for name in ENV_NAMES {
            if let Some(v) = lookup(name) {
                o.set(name, &v)?;
            }
        }
        Ok(o)
    }

    /// Applies `/configure` query pairs (the original's snake_case names);
    /// returns whether anything changed. On error nothing is changed.
    pub fn apply_query<'a>(
        &mut self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<bool, OptionsError> {
        let mut next = *self;
        for (k, v) in pairs {
            let name = match k {
                "user_code_size_limit" | "image_limit" => "USER_CODE_SIZE_LIMIT",
                "container_pool_limit" => "CONTAINER_POOL_LIMIT",
                "container_pool_num" => "CONTAINER_POOL_NUM",
                "using_rest_mode" => "USING_REST_MODE",
                "rest_container_life_time" => "REST_CONTAINER_LIFE_TIME",
                other => return Err(OptionsError::Unknown(other.to_string())),
            };
            next.set(name, v).map_err(|e| match e {
                OptionsError::BadValue {
                    value, expected, ..
                } => OptionsError::BadValue {
                    name: k.to_string(),
                    value,
                    expected,
                },
                other => other,
            })?;
        }
        let changed = next != *self;
        *self = next;
        Ok(changed)
    }

    /// Sets one option by its environment name.
    pub fn set(&mut self, env_name: &str, value: &str) -> Result<(), OptionsError> {
        let v = value.trim();
        let bad = |expected| OptionsError::BadValue {
            name: env_name.to_string(),
            value: value.to_string(),
            expected,
        };
        match env_name {
            "USER_CODE_SIZE_LIMIT" => {
                self.user_code_size_limit =
                    v.parse().map_err(|_| bad("an integer (bytes, -1 = off)"))?
            }
            "CONTAINER_POOL_LIMIT" => {
                self.container_pool_limit = v
                    .parse()
                    .map_err(|_| bad("an integer (functions, -1 = off)"))?
            }
            "CONTAINER_POOL_NUM" => {
                self.container_pool_num = v.parse().map_err(|_| bad("a non-negative integer"))?
            }
            "USING_REST_MODE" => {
                self.using_rest_mode = match v.to_ascii_lowercase().as_str() {
                    "" | "0" | "false" | "no" | "off" => false,
                    "1" | "true" | "yes" | "on" => true,
                    _ => return Err(bad("a boolean (true/false)")),
                }
            }
            "REST_CONTAINER_LIFE_TIME" => {
                self.rest_container_life_time = v
                    .parse()
                    .map_err(|_| bad("a non-negative integer (seconds)"))?
            }
            other => return Err(OptionsError::Unknown(other.to_string())),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_originals() {
        let o = CachingOptions::default();
        assert_eq!(o.image_limit_bytes(), None);
        assert_eq!(o.pool_function_limit(), None);
        assert_eq!(o.container_pool_num, 6);
        assert!(!o.using_rest_mode);
        assert_eq!(o.rest_lifetime(), Duration::from_secs(10));
    }

    #[test]
    fn env_lookup_and_errors() {
        let o = CachingOptions::from_lookup(|n| match n {
            "USER_CODE_SIZE_LIMIT" => Some("100000000".into()),
            "USING_REST_MODE" => Some("true".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(o.image_limit_bytes(), Some(100_000_000));
        assert!(o.using_rest_mode);
        let e = CachingOptions::from_lookup(|n| (n == "CONTAINER_POOL_NUM").then(|| "six".into()))
            .unwrap_err();
        assert!(e.to_string().contains("CONTAINER_POOL_NUM"), "{e}");
    }

    #[test]
    fn query_names_are_the_originals_and_unknown_is_rejected() {
        let mut o = CachingOptions::default();
        let changed = o
            .apply_query([
                ("using_rest_mode", "true"),
                ("rest_container_life_time", "20"),
            ])
            .unwrap();
        assert!(changed);
        assert!(o.using_rest_mode);
        assert_eq!(o.rest_container_life_time, 20);
        assert!(!o.apply_query([("using_rest_mode", "true")]).unwrap());
        let before = o;
        let e = o
            .apply_query([("container_pool_num", "3"), ("cache_num", "1")])
            .unwrap_err();
        assert!(matches!(e, OptionsError::Unknown(_)));
        assert_eq!(o, before, "a rejected query changes nothing");
        let e = o.apply_query([("container_pool_limit", "x")]).unwrap_err();
        assert!(e.to_string().contains("container_pool_limit"), "{e}");
        o.apply_query([("image_limit", "5")]).unwrap();
        assert_eq!(o.image_limit_bytes(), Some(5));
    }

    #[test]
    fn state_json_uses_the_original_field_names() {
        let json = serde_json::to_value(CachingOptions::default()).unwrap();
        assert_eq!(json["UserCodeSizeLimit"], -1);
        assert_eq!(json["RestContainerLifeTime"], 10);
        assert!(serde_json::from_str::<CachingOptions>(r#"{"Bogus": 1}"#).is_err());
        let partial: CachingOptions = serde_json::from_str(r#"{"ContainerPoolNum": 2}"#).unwrap();
        assert_eq!(partial.container_pool_num, 2);
    }
}
