//! Keep-alive policies of the Lambda instance model (one call per
//! instance): which idle instances stay, which go, which are pre-warmed.
//!
//! | name | rule | source |
//! |---|---|---|
//! | `fixed` | idle instances stay for the keep-alive period | AWS Lambda, SimFaaS ([`super::keep_alive`]) |
//! | `lru` | `fixed`, and under the node's memory limit a cold start evicts the least recently used idle instances | FaasCache's LRU baseline ([`super::lru`]) |
//! | `greedy-dual` | `fixed`, and under the memory limit evicts by lowest `clock + frequency × (cold − warm) / memory` | FaasCache, ASPLOS 2021 ([`super::greedy_dual`]) |
//! | `histogram` | per function, pre-warm after the idle times' 5th percentile, keep until the 99th; fixed when unrepresentative | Serverless in the Wild, ATC 2020 ([`super::histogram`]) |
//! | `ewma` | keep `max(1, ⌊EWMA of calls per 30 s / 5⌋)` (≤ 10) instances warm | our seed Glambdar ([`super::ewma_prewarm`]) |
//!
//! Only `lru` and `greedy-dual` enforce the node's memory limit (the
//! others ignore it, so `fixed` stays the SimFaaS model). When no idle
//! instance is left to evict, the cold start goes ahead anyway: the node
//! is over-committed (as a cache that cannot free space still serves the
//! miss) rather than making the call wait or fail; the memory in use then
//! exceeds the limit until instances go.
//!
//! The same names are the values of `--keep-alive-policy` in the worker
//! and in `simulator des`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use super::ewma_prewarm::EwmaParams;
use super::histogram::HistogramParams;

/// A keep-alive policy with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum KeepAlivePolicy {
    #[default]
    Fixed,
    Lru,
    GreedyDual,
    Histogram(HistogramParams),
    Ewma(EwmaParams),
}

/// Every policy's name, in the order of the table above.
pub const POLICY_NAMES: [&str; 5] = ["fixed", "lru", "greedy-dual", "histogram", "ewma"];

/// An unknown policy name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown keep-alive policy {0:?} (known: fixed, lru, greedy-dual, histogram, ewma)")]
pub struct UnknownPolicy(pub String);

/// A bad keep-alive period.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the keep-alive must be a number of seconds >= 0 (is {0})")]
pub struct BadKeepAlive(pub f64);

impl KeepAlivePolicy {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Fixed => "fixed",
            Self::Lru => "lru",
            Self::GreedyDual => "greedy-dual",
            Self::Histogram(_) => "histogram",
            Self::Ewma(_) => "ewma",
        }
    }

    /// Whether cold starts evict idle instances to stay under the node's
    /// memory.
    pub fn limits_memory(&self) -> bool {
        matches!(self, Self::Lru | Self::GreedyDual)
    }
}

impl FromStr for KeepAlivePolicy {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "fixed" => Self::Fixed,
            "lru" => Self::Lru,
            "greedy-dual" | "greedy_dual" | "gd" => Self::GreedyDual,
            "histogram" | "hybrid-histogram" => Self::Histogram(HistogramParams::default()),
            "ewma" => Self::Ewma(EwmaParams::default()),
            _ => return Err(UnknownPolicy(s.to_string())),
        })
    }
}

impl fmt::Display for KeepAlivePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A keep-alive period given in seconds (CLI value), checked.
pub fn keep_alive_secs(secs: f64) -> Result<Duration, BadKeepAlive> {
    if secs.is_finite() && secs >= 0.0 {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(BadKeepAlive(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_is_an_error() {
        for name in POLICY_NAMES {
            let p: KeepAlivePolicy = name.parse().unwrap();
            assert_eq!(p.name(), name);
            assert_eq!(p.to_string(), name);
        }
        let e = "lfu".parse::<KeepAlivePolicy>().unwrap_err();
        assert!(e.to_string().contains("greedy-dual"), "{e}");
        assert!(KeepAlivePolicy::Lru.limits_memory());
        assert!(!KeepAlivePolicy::Fixed.limits_memory());
    }

    #[test]
    fn serializes_with_its_parameters() {
        let v = serde_json::to_value(KeepAlivePolicy::Ewma(EwmaParams::default())).unwrap();
        assert_eq!(v["name"], "ewma");
        assert_eq!(v["interval_s"], 30.0);
        assert_eq!(v["max_instances"], 10);
        let v = serde_json::to_value(KeepAlivePolicy::GreedyDual).unwrap();
        assert_eq!(v["name"], "greedy-dual");
        let v = serde_json::to_value("histogram".parse::<KeepAlivePolicy>().unwrap()).unwrap();
        assert_eq!(v["bin_s"], 60.0);
        assert_eq!(v["tail_percentile"], 99.0);
    }

    #[test]
    fn keep_alive_seconds_are_checked() {
        assert_eq!(keep_alive_secs(1.5), Ok(Duration::from_millis(1500)));
        assert!(keep_alive_secs(-1.0).is_err());
        assert!(keep_alive_secs(f64::NAN).is_err());
        assert!(keep_alive_secs(f64::INFINITY).is_err());
    }
}
