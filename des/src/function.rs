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
//! - `exp-cpu:MEAN_MS` — one CPU phase whose work is drawn from an
//!   exponential distribution with mean `MEAN_MS` ms of single-core work
//!   (the M/M/c-style service of CPU-bound simulators): unlike `exp:`, it
//!   shares the node's cores with the other calls.
//! - `pct:p0=MS,p50=MS,...,p100=MS` — a sleep drawn from the distribution
//!   given by its percentiles (e.g. the Azure 2019 trace's duration
//!   percentiles, `p0`, `p1`, `p25`, `p50`, `p75`, `p99`, `p100`): the
//!   inverse CDF is piecewise linear between the given points (a uniform
//!   draw `u` in [0, 1) falls between two given percentiles and is
//!   interpolated linearly), from the run's seeded RNG. `p0` and `p100`
//!   are required (the draw's bounds), percentiles strictly increase and
//!   values do not decrease. `pct-cpu:...` is the same as CPU work.
//!   Choice where the sources are silent: linear interpolation, as the
//!   Azure importer does (`utils import azure2019`), so a function's DES
//!   durations and its imported ones come from one distribution.
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
    /// One CPU phase with an exponentially distributed work.
    ExponentialCpu { mean_ms: f64 },
    /// A sleep (or with `cpu`, CPU work) drawn from a piecewise-linear
    /// inverse CDF through `(percentile, ms)` points, `p0` to `p100`.
    Percentiles { cpu: bool, points: Vec<(f64, f64)> },
}

impl FunctionModel {
    /// The share of a call's duration that is CPU work (the rest sleeps):
    /// how a scenario row's duration is split for a function with this
    /// model (0 when the model has no duration).
    pub fn cpu_share(&self) -> f64 {
        match self {
            Self::Phases(p) => {
                let (mut cpu, mut all) = (0u64, 0u64);
                for ph in p {
                    match *ph {
                        Phase::Cpu { ms } => {
                            cpu += u64::from(ms);
                            all += u64::from(ms);
                        }
                        Phase::Sleep { ms } => all += u64::from(ms),
                    }
                }
                if all == 0 {
                    0.0
                } else {
                    cpu as f64 / all as f64
                }
            }
            Self::Exponential { .. } => 0.0,
            Self::ExponentialCpu { .. } => 1.0,
            Self::Percentiles { cpu, .. } => f64::from(u8::from(*cpu)),
        }
    }
}

/// The value at quantile `u` (in [0, 1]) of the piecewise-linear inverse
/// CDF through `points` (`(percentile, value)`, percentiles from 0 to 100,
/// increasing).
pub fn percentile_draw(points: &[(f64, f64)], u: f64) -> f64 {
    let p = (u * 100.0).clamp(0.0, 100.0);
    let i = points.partition_point(|&(q, _)| q <= p);
    match (i.checked_sub(1).and_then(|j| points.get(j)), points.get(i)) {
        (Some(&(q0, v0)), Some(&(q1, v1))) => v0 + (v1 - v0) * (p - q0) / (q1 - q0),
        (Some(&(_, v)), None) | (None, Some(&(_, v))) => v,
        (None, None) => 0.0,
    }
}

/// Parses `p0=MS,p50=MS,...`.
fn parse_percentiles(spec: &str) -> Result<Vec<(f64, f64)>, String> {
    let mut points: Vec<(f64, f64)> = Vec::new();
    for part in spec.split(',') {
        let (p, ms) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not pN=MS"))?;
        let p: f64 = p
            .trim()
            .strip_prefix('p')
            .and_then(|p| p.parse().ok())
            .filter(|p: &f64| (0.0..=100.0).contains(p))
            .ok_or_else(|| format!("{p:?} is not a percentile p0..p100"))?;
        let ms: f64 = ms
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("{ms:?} is not a number of ms >= 0"))?;
        if let Some(&(q, v)) = points.last() {
            if p <= q {
                return Err(format!("p{p} after p{q}: percentiles must increase"));
            }
            if ms < v {
                return Err(format!(
                    "p{p}={ms} is below p{q}={v}: values must not decrease"
                ));
            }
        }
        points.push((p, ms));
    }
    if points.first().is_none_or(|&(p, _)| p != 0.0)
        || points.last().is_none_or(|&(p, _)| p != 100.0)
    {
        return Err("p0 and p100 are required".into());
    }
    Ok(points)
}

/// A `--default-function` spec that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad function model {spec:?}: {reason} (expected cpu:MS, sleep:MS, cpu:MS+sleep:MS, exp:WARM_MS[:COLD_MS], exp-cpu:MEAN_MS, or pct[-cpu]:p0=MS,...,p100=MS)")]
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
        if let Some(rest) = spec_t.strip_prefix("exp-cpu:") {
            return match rest.trim().parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => Ok(Self::ExponentialCpu { mean_ms: v }),
                _ => Err(err(format!("{rest:?} is not a positive number of ms"))),
            };
        }
        for (prefix, cpu) in [("pct:", false), ("pct-cpu:", true)] {
            if let Some(rest) = spec_t.strip_prefix(prefix) {
                let points = parse_percentiles(rest).map_err(err)?;
                return Ok(Self::Percentiles { cpu, points });
            }
        }
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
            Self::ExponentialCpu { mean_ms } => write!(f, "exp-cpu:{mean_ms}"),
            Self::Percentiles { cpu, points } => {
                f.write_str(if *cpu { "pct-cpu:" } else { "pct:" })?;
                for (i, (p, ms)) in points.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "p{p}={ms}")?;
                }
                Ok(())
            }
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
            "exp-cpu:250",
            "pct:p0=1,p50=10,p99=100,p100=200",
            "pct-cpu:p0=0,p100=5",
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
        for bad in [
            "",
            "cpu",
            "cpu:x",
            "gpu:5",
            "exp:",
            "exp:-1",
            "exp:1:2:3",
            "exp-cpu:0",
            "pct:p50=1",
            "pct:p0=1,p50=10",
            "pct:p0=5,p100=1",
            "pct:p0=1,p0=2,p100=3",
            "pct:p0=1,q=2,p100=3",
            "pct:p0=1,p101=2",
        ] {
            assert!(bad.parse::<FunctionModel>().is_err(), "{bad}");
        }
    }

    #[test]
    fn percentile_draws_interpolate_linearly_between_the_given_points() {
        let FunctionModel::Percentiles { points, .. } =
            "pct:p0=10,p50=20,p100=120".parse().unwrap()
        else {
            panic!()
        };
        // u = 0.25 is halfway from p0 to p50: 15; u = 0.75 halfway from
        // p50 to p100: 70; the bounds are the given extremes.
        for (u, v) in [
            (0.0, 10.0),
            (0.25, 15.0),
            (0.5, 20.0),
            (0.75, 70.0),
            (1.0, 120.0),
        ] {
            assert!((percentile_draw(&points, u) - v).abs() < 1e-9, "{u}");
        }
        let cpu_share = |s: &str| s.parse::<FunctionModel>().unwrap().cpu_share();
        assert_eq!(cpu_share("cpu:300+sleep:100"), 0.75);
        assert_eq!(cpu_share("exp:5"), 0.0);
        assert_eq!(cpu_share("exp-cpu:5"), 1.0);
        assert_eq!(cpu_share("pct-cpu:p0=1,p100=2"), 1.0);
    }
}
