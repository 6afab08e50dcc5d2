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
//!
//! # Synthetic functions and per-call shapes ([`CallWork`])
//! A function from a user's catalog file (not one of the embedded samples,
//! [`FunctionSpec::is_sample`]) is *synthetic*: each call first allocates
//! and touches its memory (one write per 4 KiB page, so the pages are
//! really resident; the memory is held until the call ends and its
//! resident size is reported), then works. Without a shape it runs its
//! catalog row (the rounds, as a sample does) with the row's `memory_mb`;
//! a call may instead carry its own shape ([`protocol::query::CallParams`]:
//! `duration_ms`, `memory_mb`, `cpu_share`), as a scenario row's
//! per-invocation columns say: it then runs `duration × cpu_share` of CPU
//! work (iterations, as above) followed by a sleep of the rest, where the
//! CPU share is the parameter's or else the row's
//! `cpu_ms / (cpu_ms + sleep_ms)`. The time scale applies to both parts,
//! as to the samples'; memory is not scaled. Touching takes time (page
//! faults: tens of ms per 100 MB, several times more on a VM whose first
//! touch is slow); with a shape, that time counts as part of the duration
//! and comes off the sleep (a trace's duration includes the function's use
//! of its memory), so a call lasts about `max(duration, touch + CPU
//! part)`; a call without a shape touches, then runs its row. Memory is
//! bounded by [`MAX_CALL_MEMORY_MB`] (and by
//! the worker's node memory); an allocation that fails is a failed call,
//! never an abort.
//!
//! The samples stay exactly as they are: a sample's call given any shape
//! parameter is refused (a 400 at the worker), since its work is the
//! original's and must not silently change; its reply body is unchanged.

use crate::FunctionSpec;
use protocol::query::CallParams;
use std::hint::black_box;
use std::time::Duration;

/// Largest memory one call may allocate and touch, in MB (16 GiB); a
/// worker bounds it further by its node memory (`--node-memory-mb`).
pub const MAX_CALL_MEMORY_MB: u32 = 16 * 1024;

/// Bytes between two touched bytes of a call's memory: one per page.
const PAGE_BYTES: usize = 4096;

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

    /// Iterations of a CPU phase of `us` reference microseconds.
    pub fn iterations_us(&self, us: u64) -> u64 {
        (us as f64 * self.iterations_per_ms as f64 / 1000.0 * self.time_scale).round() as u64
    }

    /// A sleep of `us` microseconds, scaled.
    pub fn sleep_us(&self, us: u64) -> Duration {
        Duration::try_from_secs_f64(us as f64 * self.time_scale / 1e6).unwrap_or(Duration::MAX)
    }
}

/// What one call of a function does (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallWork {
    /// MB allocated and touched before the work (0: none, the samples).
    pub memory_mb: u32,
    /// `(cpu_us, sleep_us)` of a call with its own duration; None: the
    /// function's catalog rounds.
    pub shape: Option<(u64, u64)>,
}

impl CallWork {
    /// The work of a call of `spec` given `params`, with at most
    /// `max_memory_mb` of memory (the caller's bound; never above
    /// [`MAX_CALL_MEMORY_MB`]). Errors (a sample given a shape, memory
    /// beyond the bound) are the caller's 400.
    pub fn resolve(
        spec: &FunctionSpec,
        params: &CallParams,
        max_memory_mb: u32,
    ) -> Result<Self, String> {
        if spec.is_sample() {
            if !params.is_empty() {
                return Err(format!(
                    "{} is a sample function: its work is fixed, so duration_ms, memory_mb and cpu_share apply only to functions of a catalog file",
                    spec.name
                ));
            }
            return Ok(Self {
                memory_mb: 0,
                shape: None,
            });
        }
        let memory_mb = params.memory_mb.unwrap_or(spec.memory_mb);
        let max = max_memory_mb.min(MAX_CALL_MEMORY_MB);
        if memory_mb > max {
            return Err(format!(
                "memory_mb={memory_mb} is above this worker's limit of {max} MB per call"
            ));
        }
        let share = params
            .cpu_share
            .map_or_else(|| spec.cpu_share(), |s| s.get());
        let shape = params.duration_us.map(|us| {
            let cpu = ((us as f64) * share).round() as u64;
            let cpu = cpu.min(us);
            (cpu, us - cpu)
        });
        Ok(Self { memory_mb, shape })
    }

    /// Whether the call does nothing at these settings (answered at once
    /// by a warm instance, [`crate::serve`]).
    pub fn is_instant(&self, spec: &FunctionSpec, settings: &WorkloadSettings) -> bool {
        self.memory_mb == 0
            && match self.shape {
                None => is_instant(spec, settings),
                Some((cpu, sleep)) => {
                    settings.iterations_us(cpu) == 0 && settings.sleep_us(sleep).is_zero()
                }
            }
    }
}

/// Allocates `mb` MB and writes one byte per page; returns the memory
/// (held by the caller until the call ends) and a checksum of it.
fn touch_memory(mb: u32) -> Result<(Vec<u8>, u64), String> {
    let bytes = usize::try_from(u64::from(mb) << 20)
        .map_err(|_| format!("{mb} MB do not fit in this machine's address space"))?;
    let mut buf: Vec<u8> = Vec::new();
    buf.try_reserve_exact(bytes)
        .map_err(|e| format!("allocating {mb} MB failed: {e}"))?;
    buf.resize(bytes, 0);
    let mut sum = 0u64;
    for (i, page) in buf.chunks_mut(PAGE_BYTES).enumerate() {
        page[0] = (i as u8) | 1;
        sum = sum.wrapping_add(u64::from(black_box(page[0])));
    }
    Ok((buf, sum))
}

/// This process's resident set size in KiB (Linux `/proc/self/statm`),
/// if readable.
pub fn resident_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * (PAGE_BYTES as u64 / 1024))
}

/// Runs one call of `spec` doing `work`. A sample's body is [`run`]'s;
/// a synthetic function's is `{"ret": <sum>, "memoryMb": <touched>,
/// "residentKib": <this process's resident size while holding it>}`.
pub fn run_call(
    spec: &FunctionSpec,
    work: &CallWork,
    settings: &WorkloadSettings,
    seed: u64,
) -> Result<String, String> {
    if spec.is_sample() {
        return Ok(run(spec, settings, seed));
    }
    let touch_started = std::time::Instant::now();
    let (memory, checksum) = if work.memory_mb > 0 {
        touch_memory(work.memory_mb)?
    } else {
        (Vec::new(), 0)
    };
    let touching = touch_started.elapsed();
    let resident = resident_kib().unwrap_or(0);
    let ret = match work.shape {
        None => {
            let body = run(spec, settings, seed);
            serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["ret"].as_f64())
                .unwrap_or(0.0)
        }
        Some((cpu_us, sleep_us)) => {
            let mut ret = 0.0;
            if cpu_us > 0 {
                ret = cpu_loop(settings.iterations_us(cpu_us), seed);
            }
            // The time touching took is part of the call's duration: it
            // comes off the sleep (a real function's use of its memory
            // is inside its measured duration).
            let sleep = settings.sleep_us(sleep_us).saturating_sub(touching);
            if !sleep.is_zero() {
                std::thread::sleep(sleep);
            }
            ret
        }
    };
    black_box(checksum);
    drop(memory);
    Ok(format!(
        "{{\"ret\": {ret}, \"memoryMb\": {}, \"residentKib\": {resident}}}",
        work.memory_mb
    ))
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

    fn synthetic(memory_mb: u32) -> FunctionSpec {
        let text = format!(
            "{}\nF1,x,unknown,0.5,~1s,none,1000,1,30,70,0,{memory_mb}\n",
            crate::catalog::catalog_header()
        );
        crate::Catalog::parse(&text).unwrap().functions.remove(0)
    }

    #[test]
    fn call_work_follows_the_params_or_the_row() {
        let f = synthetic(128);
        let none = CallParams::default();
        assert_eq!(
            CallWork::resolve(&f, &none, 4096).unwrap(),
            CallWork {
                memory_mb: 128,
                shape: None
            }
        );
        let p = CallParams::parse("duration_ms=10&memory_mb=64").unwrap();
        assert_eq!(
            CallWork::resolve(&f, &p, 4096).unwrap(),
            CallWork {
                memory_mb: 64,
                shape: Some((3_000, 7_000))
            }
        );
        let p = CallParams::parse("duration_ms=10&cpu_share=1").unwrap();
        assert_eq!(
            CallWork::resolve(&f, &p, 4096).unwrap().shape,
            Some((10_000, 0))
        );
        let big = CallParams::parse("memory_mb=5000").unwrap();
        let e = CallWork::resolve(&f, &big, 4096).unwrap_err();
        assert!(e.contains("4096"), "{e}");
        let huge = CallParams::parse("memory_mb=20000").unwrap();
        let e = CallWork::resolve(&f, &huge, u32::MAX).unwrap_err();
        assert!(e.contains(&MAX_CALL_MEMORY_MB.to_string()), "{e}");
        let w1 = catalog().get("W1").unwrap();
        assert!(CallWork::resolve(w1, &p, 4096)
            .unwrap_err()
            .contains("sample"));
        let sample = CallWork::resolve(w1, &none, 4096).unwrap();
        assert_eq!(sample.memory_mb, 0);
        let zero = WorkloadSettings::from_env_values(Some("0"), None).unwrap();
        assert!(sample.is_instant(w1, &zero));
        assert!(!CallWork::resolve(&f, &none, 4096)
            .unwrap()
            .is_instant(&f, &zero));
    }

    #[test]
    fn a_synthetic_call_touches_its_memory() {
        let f = synthetic(1);
        let settings = WorkloadSettings::default();
        let before = resident_kib().unwrap();
        let work = CallWork {
            memory_mb: 48,
            shape: Some((1_000, 1_000)),
        };
        let body = run_call(&f, &work, &settings, 1).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["memoryMb"], 48);
        let resident = v["residentKib"].as_u64().unwrap();
        assert!(resident >= before + 40 * 1024, "{before} -> {resident}");
        // A sample's body is unchanged.
        let noop = catalog().get("noop").unwrap();
        let none = CallWork::resolve(noop, &CallParams::default(), 0).unwrap();
        assert_eq!(
            run_call(noop, &none, &settings, 1).unwrap(),
            run(noop, &settings, 1)
        );
    }

    #[test]
    fn noop_body_is_json() {
        let noop = catalog().get("noop").unwrap();
        let body = run(noop, &WorkloadSettings::default(), 1);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["ret"], 0.0);
    }
}
