//! The functions' work: rounds of a CPU phase, then a sleep.
//!
//! As in the original sample functions (Prev/HotFunctions,
//! `sample_functions/*`), a CPU phase sums pseudo-random numbers in a loop.
//! Here the loop runs a *fixed number of iterations* (never a wall-clock
//! spin), so CPU contention lengthens it as it would a real function. The
//! iteration count of a phase is `cpu_ms × ITERATIONS_PER_MS × time scale`.
//!
//! # Calibration
//! [`ITERATIONS_PER_MS`] = 515_000 was measured on the project's reference
//! machine (2-core "Intel(R) Xeon(R) Processor" VM, x86_64, shared with
//! other builds) on 2026-11-23 with
//! `cargo run --release -p sample-functions --bin hf-fn -- calibrate`,
//! which times [`cpu_loop`] over 20 batches of about 100 ms and prints the
//! median rate by this thread's CPU time (`/proc/thread-self/schedstat`, so
//! other load on the machine does not bias it) and by wall clock. Three runs
//! printed 515_441, 515_626 and 517_783 iterations per CPU-ms (wall-clock
//! medians 433k-492k under a load average of 5-7). The rate
//! holds for the *release* build only: a debug build is many times slower,
//! so experiments must run `--release` binaries (tests only use time-scaled
//! runs, where this does not matter). On another machine, run `calibrate`
//! and set `HF_ITERATIONS_PER_MS` (read by `hf-fn`) to its answer.
//!
//! `HF_TIME_SCALE` (default 1.0) multiplies both the iterations and the
//! sleeps, so tests and quick experiments finish fast with the same shape.

use crate::FunctionSpec;
use std::hint::black_box;
use std::time::Duration;

/// Iterations of [`cpu_loop`] per ms on one idle core of the reference
/// machine, release build (see the module docs for how it was measured).
pub const ITERATIONS_PER_MS: u64 = 515_000;

/// Environment variable: time scale (default 1.0).
pub const TIME_SCALE_ENV: &str = "HF_TIME_SCALE";
/// Environment variable: override of [`ITERATIONS_PER_MS`].
pub const ITERATIONS_ENV: &str = "HF_ITERATIONS_PER_MS";

/// How much work a phase is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkloadSettings {
    /// Multiplies iterations and sleeps (1.0 = the catalog's durations).
    pub time_scale: f64,
    pub iterations_per_ms: u64,
}

impl Default for WorkloadSettings {
    fn default() -> Self {
        Self {
            time_scale: 1.0,
            iterations_per_ms: ITERATIONS_PER_MS,
        }
    }
}

impl WorkloadSettings {
    /// From the values of `HF_TIME_SCALE` and `HF_ITERATIONS_PER_MS`.
    pub fn from_env_values(scale: Option<&str>, ipm: Option<&str>) -> Result<Self, String> {
        let mut s = Self::default();
        if let Some(v) = scale.filter(|v| !v.trim().is_empty()) {
            s.time_scale = v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| format!("{TIME_SCALE_ENV}={v:?} is not a non-negative number"))?;
        }
        if let Some(v) = ipm.filter(|v| !v.trim().is_empty()) {
            s.iterations_per_ms = v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|x| *x > 0)
                .ok_or_else(|| format!("{ITERATIONS_ENV}={v:?} is not a positive integer"))?;
        }
        Ok(s)
    }

    /// Iterations of a CPU phase of `ms` reference milliseconds.
    pub fn iterations(&self, ms: u32) -> u64 {
        (f64::from(ms) * self.iterations_per_ms as f64 * self.time_scale).round() as u64
    }

    /// A sleep phase of `ms` milliseconds, scaled.
    pub fn sleep(&self, ms: u32) -> Duration {
        Duration::from_secs_f64(f64::from(ms) * self.time_scale / 1000.0)
    }
}

/// The CPU loop: sums `iterations` pseudo-random numbers in [0, 1)
/// (xorshift64 seeded by `seed`). Returns the sum.
pub fn cpu_loop(iterations: u64, seed: u64) -> f64 {
    let mut x = seed | 1;
    let mut sum = 0.0f64;
    for _ in 0..iterations {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        sum += (x >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    }
    black_box(sum)
}

/// Whether a call of `spec` does no work at these settings: no CPU
/// iteration and no sleep (`noop`, or any function at time scale 0). Warm
/// instances answer such calls on their I/O thread ([`crate::serve`]).
pub fn is_instant(spec: &FunctionSpec, settings: &WorkloadSettings) -> bool {
    (0..spec.rounds as usize).all(|r| {
        (spec.cpu_ms_per_round == 0 || settings.iterations(spec.cpu_ms_per_round) == 0)
            && settings
                .sleep(spec.sleep_ms.get(r).copied().unwrap_or(0))
                .is_zero()
    })
}

/// Runs one invocation of `spec`: every round's CPU phase then its sleep.
/// Returns the body the function answers with: `{"ret": <sum>}` (the
/// original functions' shape).
pub fn run(spec: &FunctionSpec, settings: &WorkloadSettings, seed: u64) -> String {
    let mut ret = 0.0;
    for r in 0..spec.rounds as usize {
        if spec.cpu_ms_per_round > 0 {
            ret += cpu_loop(
                settings.iterations(spec.cpu_ms_per_round),
                seed.wrapping_add(r as u64),
            );
        }
        let s = spec.sleep_ms.get(r).copied().unwrap_or(0);
        if s > 0 {
            std::thread::sleep(settings.sleep(s));
        }
    }
    format!("{{\"ret\": {ret}}}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;

    #[test]
    fn only_calls_without_work_are_instant() {
        let c = catalog();
        let full = WorkloadSettings::default();
        let zero = WorkloadSettings::from_env_values(Some("0"), None).unwrap();
        let tiny = WorkloadSettings::from_env_values(Some("0.001"), None).unwrap();
        assert!(is_instant(c.get("noop").unwrap(), &full));
        for f in ["W1", "T1", "I1", "D1"] {
            let spec = c.get(f).unwrap();
            assert!(!is_instant(spec, &full), "{f}");
            assert!(!is_instant(spec, &tiny), "{f} still works at 0.001");
            assert!(is_instant(spec, &zero), "{f} does nothing at scale 0");
        }
    }

    #[test]
    fn settings_parse_and_scale() {
        let s = WorkloadSettings::from_env_values(Some("0.01"), None).unwrap();
        assert_eq!(s.iterations(1000), 5_150_000);
        assert_eq!(s.sleep(3000), Duration::from_millis(30));
        assert!(WorkloadSettings::from_env_values(Some("-1"), None).is_err());
        assert!(WorkloadSettings::from_env_values(None, Some("0")).is_err());
        assert_eq!(
            WorkloadSettings::from_env_values(None, Some("5"))
                .unwrap()
                .iterations_per_ms,
            5
        );
    }

    #[test]
    fn cpu_loop_is_deterministic_and_averages_a_half() {
        let a = cpu_loop(100_000, 7);
        assert_eq!(a, cpu_loop(100_000, 7));
        assert!((a / 100_000.0 - 0.5).abs() < 0.01, "{a}");
    }

    #[test]
    fn noop_body_is_json() {
        let noop = catalog().get("noop").unwrap();
        let body = run(noop, &WorkloadSettings::default(), 1);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["ret"], 0.0);
    }
}
