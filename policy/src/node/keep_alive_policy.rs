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
use super::model::InstanceModel;

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

/// Longest keep-alive period: one year, in seconds.
pub const MAX_KEEP_ALIVE_S: f64 = 365.0 * 86_400.0;

/// A bad keep-alive period.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the keep-alive must be a number of seconds in 0..={MAX_KEEP_ALIVE_S} (a year; is {0:?})")]
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

/// Contradictory or bad instance-model options.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelChoiceError {
    #[error("--keep-alive-policy {0} needs the Lambda model (--instance-model lambda)")]
    PolicyNeedsLambda(KeepAlivePolicy),
    #[error("--keep-alive-s {0} needs the Lambda model (--instance-model lambda): HotFunctions' model keeps no idle instance alive")]
    KeepAliveNeedsLambda(f64),
    #[error("unknown instance model {0:?} (known: hotfunctions, lambda)")]
    UnknownModel(String),
    #[error("--keep-alive-s: {0}")]
    KeepAlive(#[from] BadKeepAlive),
    #[error("--keep-alive-policy: {0}")]
    Policy(#[from] UnknownPolicy),
}

/// Parses an instance model's name: `hotfunctions` (false) or `lambda`
/// (true).
pub fn parse_lambda(name: &str) -> Result<bool, ModelChoiceError> {
    match name.trim().to_ascii_lowercase().as_str() {
        "hotfunctions" => Ok(false),
        "lambda" => Ok(true),
        _ => Err(ModelChoiceError::UnknownModel(name.to_string())),
    }
}

/// The instance model of the options shared by the worker, `simulator
/// des` and `simulator experiment`: `--instance-model` (`lambda`:
/// Some(true)), `--keep-alive-policy` and `--keep-alive-s` (None: not
/// given; the keep-alive is then [`KeepAlivePool::DEFAULT_KEEP_ALIVE`]).
/// A policy or a keep-alive selects the Lambda model when
/// `--instance-model` is not given (HotFunctions' model keeps no idle
/// instance alive, so either would be ignored there); with
/// `--instance-model hotfunctions` either is an error.
///
/// [`KeepAlivePool::DEFAULT_KEEP_ALIVE`]: super::keep_alive::KeepAlivePool::DEFAULT_KEEP_ALIVE
pub fn choose_instance_model(
    lambda: Option<bool>,
    policy: Option<KeepAlivePolicy>,
    keep_alive_s: Option<f64>,
) -> Result<InstanceModel, ModelChoiceError> {
    let keep_alive = match keep_alive_s {
        Some(s) => keep_alive_secs(s)?,
        None => super::keep_alive::KeepAlivePool::DEFAULT_KEEP_ALIVE,
    };
    match (lambda, policy, keep_alive_s) {
        (Some(false), Some(p), _) => Err(ModelChoiceError::PolicyNeedsLambda(p)),
        (Some(false), None, Some(s)) => Err(ModelChoiceError::KeepAliveNeedsLambda(s)),
        (Some(false), None, None) | (None, None, None) => Ok(InstanceModel::HotFunctions),
        (_, p, _) => Ok(InstanceModel::lambda(keep_alive, p.unwrap_or_default())),
    }
}

/// A keep-alive period given in seconds (CLI value), checked: at most
/// [`MAX_KEEP_ALIVE_S`], so that deadlines never overflow.
pub fn keep_alive_secs(secs: f64) -> Result<Duration, BadKeepAlive> {
    if (0.0..=MAX_KEEP_ALIVE_S).contains(&secs) {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(BadKeepAlive(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_is_bounded_to_a_year() {
        for bad in [
            -1.0,
            f64::NAN,
            f64::INFINITY,
            1e300,
            MAX_KEEP_ALIVE_S * 1.001,
        ] {
            assert!(keep_alive_secs(bad).is_err(), "{bad}");
        }
        assert_eq!(
            keep_alive_secs(MAX_KEEP_ALIVE_S).unwrap(),
            Duration::from_secs(365 * 86_400)
        );
        let e = choose_instance_model(Some(true), None, Some(1e300)).unwrap_err();
        assert!(e.to_string().contains("a year"), "{e}");
    }

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
    fn the_policy_selects_the_lambda_model_and_contradictions_are_errors() {
        let lru = Some(KeepAlivePolicy::Lru);
        assert_eq!(
            choose_instance_model(None, None, None),
            Ok(InstanceModel::HotFunctions)
        );
        assert_eq!(
            choose_instance_model(Some(false), None, None),
            Ok(InstanceModel::HotFunctions)
        );
        let lambda = InstanceModel::lambda(Duration::from_secs(30), KeepAlivePolicy::Lru);
        assert_eq!(choose_instance_model(None, lru, Some(30.0)), Ok(lambda));
        assert_eq!(
            choose_instance_model(Some(true), lru, Some(30.0)),
            Ok(lambda)
        );
        let fixed = |s: u64| InstanceModel::lambda(Duration::from_secs(s), KeepAlivePolicy::Fixed);
        assert_eq!(
            choose_instance_model(Some(true), None, Some(30.0)),
            Ok(fixed(30))
        );
        // A keep-alive alone selects the Lambda model, as a policy does
        // (HotFunctions' model would ignore it).
        assert_eq!(choose_instance_model(None, None, Some(30.0)), Ok(fixed(30)));
        assert_eq!(
            choose_instance_model(Some(true), None, None),
            Ok(fixed(600))
        );
        let e = choose_instance_model(Some(false), lru, Some(30.0)).unwrap_err();
        assert!(e.to_string().contains("needs the Lambda model"), "{e}");
        let e = choose_instance_model(Some(false), None, Some(30.0)).unwrap_err();
        assert!(
            e.to_string()
                .contains("--keep-alive-s 30 needs the Lambda model"),
            "{e}"
        );
        let e = choose_instance_model(None, None, Some(-2.0)).unwrap_err();
        assert!(e.to_string().contains("--keep-alive-s"), "{e}");
        assert_eq!(parse_lambda("Lambda"), Ok(true));
        assert_eq!(parse_lambda("hotfunctions"), Ok(false));
        assert!(parse_lambda("openwhisk").is_err());
    }

    #[test]
    fn keep_alive_seconds_are_checked() {
        assert_eq!(keep_alive_secs(1.5), Ok(Duration::from_millis(1500)));
        assert!(keep_alive_secs(-1.0).is_err());
        assert!(keep_alive_secs(f64::NAN).is_err());
        assert!(keep_alive_secs(f64::INFINITY).is_err());
    }
}
