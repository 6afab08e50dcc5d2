//! What one call of a function does, in the simulator: its phases.
//!
//! Functions of the sample catalog (`sample_functions::catalog()`) run their
//! catalog phases ([`sample_functions::catalog::FunctionSpec::phases`]): CPU
//! phases under processor sharing, sleeps without CPU. Names not in the
//! catalog (synthetic or imported traces) take the configurable default
//! model, given on the command line as `--default-function SPEC`:
//!
//! - `cpu:MS` — one CPU phase of `MS` ms of single-core work;
//! - `sleep:MS` — one sleep of `MS` ms (no CPU);
//! - `cpu:MS+sleep:MS+...` — phases in order;
//! - `exp:WARM_MS[:COLD_MS]` — a sleep drawn from an exponential
//!   distribution with mean `WARM_MS` (or `COLD_MS` on a cold start), from
//!   the run's seeded RNG. This is the service model of SimFaaS (Mahmoudi &
//!   Khazaei), where a cold call's whole service time is its own draw.
//!
//! Package size of names not in the catalog: `--default-package-bytes`.

use std::fmt;
use std::str::FromStr;

use sample_functions::catalog::Phase;

/// The work of one call.
#[derive(Debug, Clone, PartialEq)]
pub enum FunctionModel {
    /// Fixed phases, in order.
    Phases(Vec<Phase>),
    /// One sleep phase with an exponentially distributed length.
    Exponential {
        warm_mean_ms: f64,
        cold_mean_ms: f64,
    },
}

/// A `--default-function` spec that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad function model {spec:?}: {reason} (expected cpu:MS, sleep:MS, cpu:MS+sleep:MS, or exp:WARM_MS[:COLD_MS])")]
pub struct FunctionModelError {
    pub spec: String,
    pub reason: String,
}

impl FromStr for FunctionModel {
    type Err = FunctionModelError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| FunctionModelError {
            spec: spec.to_string(),
            reason,
        };
        let spec_t = spec.trim();
        if let Some(rest) = spec_t.strip_prefix("exp:") {
            let mut parts = rest.split(':');
            let num = |s: Option<&str>| -> Result<Option<f64>, FunctionModelError> {
                match s {
                    None => Ok(None),
                    Some(s) => match s.trim().parse::<f64>() {
                        Ok(v) if v.is_finite() && v > 0.0 => Ok(Some(v)),
                        _ => Err(err(format!("{s:?} is not a positive number of ms"))),
                    },
                }
            };
            let warm = num(parts.next())?.ok_or_else(|| err("missing mean".into()))?;
            let cold = num(parts.next())?.unwrap_or(warm);
            if parts.next().is_some() {
                return Err(err("too many fields".into()));
            }
            return Ok(Self::Exponential {
                warm_mean_ms: warm,
                cold_mean_ms: cold,
            });
        }
        let mut phases = Vec::new();
        for part in spec_t.split('+') {
            let (kind, ms) = part
                .trim()
                .split_once(':')
                .ok_or_else(|| err(format!("phase {part:?} has no `:`")))?;
            let ms: u32 = ms
                .trim()
                .parse()
                .map_err(|_| err(format!("{ms:?} is not a whole number of ms")))?;
            match kind.trim() {
                "cpu" => phases.push(Phase::Cpu { ms }),
                "sleep" => phases.push(Phase::Sleep { ms }),
                other => return Err(err(format!("unknown phase kind {other:?}"))),
            }
        }
        Ok(Self::Phases(phases))
    }
}

impl fmt::Display for FunctionModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exponential {
                warm_mean_ms,
                cold_mean_ms,
            } => write!(f, "exp:{warm_mean_ms}:{cold_mean_ms}"),
            Self::Phases(p) => {
                for (i, ph) in p.iter().enumerate() {
                    if i > 0 {
                        f.write_str("+")?;
                    }
                    match ph {
                        Phase::Cpu { ms } => write!(f, "cpu:{ms}")?,
                        Phase::Sleep { ms } => write!(f, "sleep:{ms}")?,
                    }
                }
                Ok(())
            }
        }
    }
}

impl serde::Serialize for FunctionModel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        for spec in [
            "cpu:750",
            "sleep:1000",
            "cpu:100+sleep:3000+cpu:5",
            "exp:1991:2244",
        ] {
            let m: FunctionModel = spec.parse().unwrap();
            assert_eq!(m.to_string(), spec);
        }
        assert_eq!(
            "exp:5".parse::<FunctionModel>().unwrap(),
            FunctionModel::Exponential {
                warm_mean_ms: 5.0,
                cold_mean_ms: 5.0
            }
        );
        for bad in ["", "cpu", "cpu:x", "gpu:5", "exp:", "exp:-1", "exp:1:2:3"] {
            assert!(bad.parse::<FunctionModel>().is_err(), "{bad}");
        }
    }
}
