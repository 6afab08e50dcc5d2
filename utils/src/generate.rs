//! Scenario generation (`utils generate`): the original HotFunctions
//! generator (Prev/HotFunctions, `utils/generate_events_stream.py`) and three
//! extensions.
//!
//! **Popularity** (which functions, at which rate):
//! - [`Popularity::Catalog`] (default): the 30 sample functions at the rates
//!   of the original's table (`sample_functions::catalog()`, W1 1.6355/s down
//!   to D8 0.0012/s, 7.39/s in all), optionally a subset.
//! - [`Popularity::Zipf`]: `functions` synthetic functions `F001`, `F002`, ...
//!   where the k-th has rate `total_rate_per_s * k^-exponent / H`, H = sum
//!   of `k^-exponent` (Zipf's law, as in Shahrad et al., "Serverless in the
//!   Wild", USENIX ATC 2020, where a few functions get most calls). These
//!   names are unknown to the worker (it only runs the catalog's functions):
//!   they are meant for the discrete-event simulator (`simulator des`).
//!
//! Every rate is multiplied by `rate_scale` (default 1).
//!
//! **Arrivals** (when each function is called, over `[0, duration)`):
//! - [`Arrivals::Uniform`] (default, the original): `round(rate * duration)`
//!   calls (Python's round: ties to even), each at a uniformly random
//!   millisecond.
//! - [`Arrivals::Poisson`]: exponential inter-arrival times at the rate.
//! - [`Arrivals::Bursty`]: an on/off modulated Poisson process. One cluster-
//!   wide schedule alternates ON and OFF periods with exponentially
//!   distributed lengths (means `on_s`, `off_s`; the scenario starts ON).
//!   During ON periods each function arrives as a Poisson process at
//!   `rate * (on_s + off_s) / on_s`, and not at all during OFF periods, so
//!   the long-run mean rate is the function's rate.
//!
//! Defaults: 300 s, seed 0, rate scale 1, uniform, catalog. Output is sorted
//! by start time (ties in function order), in the original's CSV format
//! (`FunctionName,StartTimeMs`, no header); the configuration, seed and
//! per-function counts go to a sidecar `<file>.meta.json`. The same
//! configuration and seed give the same bytes (ChaCha8 seeded with the seed).
//!
//! Limits, checked before anything is drawn (each an error naming the
//! parameter): a duration of at most 100 years (a scenario's latest start,
//! [`protocol::scenario::MAX_START_MS`]), at most [`MAX_FUNCTIONS`] Zipf
//! functions, at most [`MAX_CALLS`] calls in expectation, and, for bursty
//! arrivals, at most as many ON periods. The calls are kept as a time and
//! a function index each ([`GeneratedCalls`], 16 bytes) and the files are
//! written whole or not at all (through a `.partial` file renamed into
//! place).

use std::path::{Path, PathBuf};

use protocol::ScenarioEvent;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};
use serde::{Deserialize, Serialize};

/// Default scenario length, as in the original: 5 minutes.
pub const DEFAULT_DURATION_S: f64 = 300.0;

/// Longest scenario: a scenario's latest start
/// ([`protocol::scenario::MAX_START_MS`], 100 years), in seconds.
pub const MAX_DURATION_S: f64 = protocol::scenario::MAX_START_MS as f64 / 1000.0;

/// Most synthetic functions a Zipf scenario may have: their names and
/// rates are kept in memory (about 60 bytes each).
pub const MAX_FUNCTIONS: usize = 10_000_000;

/// Most calls a scenario may have, in expectation (the rates' sum times
/// the duration): the generator keeps each call's time and function (16
/// bytes) and sorts them, so this many take about 6 GB at the peak. The
/// bound is checked before anything is drawn: a configuration that asks
/// for more is an error, not a process the kernel kills later (or an
/// allocation that aborts it, as `--rate-scale 1e15` did).
pub const MAX_CALLS: f64 = 250_000_000.0;

/// How calls are spread in time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Arrivals {
    /// The original: `round(rate * duration)` calls at uniform random times.
    Uniform,
    /// Poisson process (exponential inter-arrival times).
    Poisson,
    /// On/off modulated Poisson process (see the module doc).
    Bursty {
        /// Mean length of an ON period, seconds.
        on_s: f64,
        /// Mean length of an OFF period, seconds.
        off_s: f64,
    },
}

/// Which functions are called, at which rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Popularity {
    /// The sample catalog's rate table; `functions`: a subset (by name, in
    /// catalog order), or `None` for all 30.
    Catalog { functions: Option<Vec<String>> },
    /// Synthetic functions `F001..` with Zipf-distributed rates.
    Zipf {
        functions: usize,
        exponent: f64,
        total_rate_per_s: f64,
    },
}

/// Everything that determines a generated scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    pub seed: u64,
    pub duration_s: f64,
    /// Multiplies every rate.
    pub rate_scale: f64,
    pub arrivals: Arrivals,
    pub popularity: Popularity,
}

impl Default for GeneratorConfig {
    /// The original generator: 300 s, all 30 catalog functions, uniform.
    fn default() -> Self {
        Self {
            seed: 0,
            duration_s: DEFAULT_DURATION_S,
            rate_scale: 1.0,
            arrivals: Arrivals::Uniform,
            popularity: Popularity::Catalog { functions: None },
        }
    }
}

/// A function's rate and how many calls it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCount {
    pub function: String,
    /// After `rate_scale`.
    pub rate_per_s: f64,
    pub count: usize,
}

/// The sidecar `<file>.meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioMeta {
    /// `"utils generate"`.
    pub generator: String,
    /// The `utils` crate version that generated it.
    pub version: String,
    pub config: GeneratorConfig,
    pub total_events: usize,
    /// In catalog (or Zipf rank) order.
    pub counts: Vec<FunctionCount>,
    /// The command line, when generated by the CLI.
    pub command: Option<String>,
}

/// A generated scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Sorted by start time.
    pub events: Vec<ScenarioEvent>,
    pub meta: ScenarioMeta,
}

/// A configuration that cannot generate a scenario.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GenerateError {
    #[error("unknown function {0:?} (not in the sample catalog's rate table)")]
    UnknownFunction(String),
    #[error("{name} must be {requirement}, got {value:?}")]
    BadParameter {
        name: &'static str,
        requirement: &'static str,
        value: f64,
    },
    #[error(
        "the scenario would have about {expected:.4e} calls (the rates' sum times the \
         duration), over the generator's limit of {limit:.0}: lower --duration, \
         --total-rate or --rate-scale, or generate it in parts"
    )]
    TooManyCalls { expected: f64, limit: f64 },
}

fn check(
    name: &'static str,
    value: f64,
    ok: bool,
    requirement: &'static str,
) -> Result<(), GenerateError> {
    if ok && value.is_finite() {
        Ok(())
    } else {
        Err(GenerateError::BadParameter {
            name,
            requirement,
            value,
        })
    }
}

/// `F001`-style name of the k-th (1-based) of `n` synthetic functions.
pub fn synthetic_name(k: usize, n: usize) -> String {
    let width = n.to_string().len().max(3);
    format!("F{k:0width$}")
}

/// The functions and their (scaled) rates per second, in order.
pub fn function_rates(config: &GeneratorConfig) -> Result<Vec<(String, f64)>, GenerateError> {
    check(
        "rate scale",
        config.rate_scale,
        config.rate_scale >= 0.0,
        "a non-negative number",
    )?;
    let catalog = sample_functions::catalog();
    let rates: Vec<(String, f64)> = match &config.popularity {
        Popularity::Catalog { functions: None } => catalog
            .with_rates()
            .map(|f| (f.name.clone(), f.rate_per_s))
            .collect(),
        Popularity::Catalog {
            functions: Some(names),
        } => {
            for name in names {
                if !catalog.with_rates().any(|f| &f.name == name) {
                    return Err(GenerateError::UnknownFunction(name.clone()));
                }
            }
            catalog
                .with_rates()
                .filter(|f| names.contains(&f.name))
                .map(|f| (f.name.clone(), f.rate_per_s))
                .collect()
        }
        Popularity::Zipf {
            functions,
            exponent,
            total_rate_per_s,
        } => {
            check(
                "Zipf function count",
                *functions as f64,
                (1..=MAX_FUNCTIONS).contains(functions),
                "at least 1 and at most 10000000",
            )?;
            check(
                "Zipf exponent",
                *exponent,
                *exponent >= 0.0,
                "a non-negative number",
            )?;
            check(
                "total rate",
                *total_rate_per_s,
                *total_rate_per_s >= 0.0,
                "a non-negative number",
            )?;
            let weights: Vec<f64> = (1..=*functions)
                .map(|k| (k as f64).powf(-exponent))
                .collect();
            let harmonic: f64 = weights.iter().sum();
            weights
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    (
                        synthetic_name(i + 1, *functions),
                        total_rate_per_s * w / harmonic,
                    )
                })
                .collect()
        }
    };
    Ok(rates
        .into_iter()
        .map(|(name, rate)| (name, rate * config.rate_scale))
        .collect())
}

/// Generates a scenario.
pub fn generate(config: &GeneratorConfig) -> Result<Scenario, GenerateError> {
    Ok(generate_calls(config)?.into_scenario())
}

/// A generated scenario as each call's start and function index (16
/// bytes a call, where [`Scenario`] holds a name per call): what
/// `utils generate` writes.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedCalls {
    /// The functions, in catalog (or Zipf rank) order.
    pub functions: Vec<String>,
    /// (start ms, index in `functions`), sorted by start time (ties in
    /// function order).
    pub calls: Vec<(u64, u32)>,
    pub meta: ScenarioMeta,
}

impl GeneratedCalls {
    pub fn into_scenario(self) -> Scenario {
        let events = self
            .calls
            .iter()
            .map(|&(t, i)| ScenarioEvent::new(self.functions[i as usize].clone(), t))
            .collect();
        Scenario {
            events,
            meta: self.meta,
        }
    }

    /// Writes the CSV (the bytes [`write_scenario`] writes for the same
    /// scenario) and its sidecar, each to a `.partial` file renamed over
    /// its path once complete, so a failed write leaves an earlier file
    /// whole; returns the sidecar's path.
    pub fn write(&self, csv_path: &Path) -> std::io::Result<PathBuf> {
        use std::io::Write as _;
        write_whole(csv_path, |file| {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
            for &(t, i) in &self.calls {
                writeln!(out, "{},{t}", self.functions[i as usize])?;
            }
            out.flush()
        })?;
        write_meta(&self.meta, csv_path)
    }
}

/// Writes `meta` as the sidecar of `csv_path` (pretty JSON, a final
/// newline), whole or not at all; returns the sidecar's path.
fn write_meta(meta: &ScenarioMeta, csv_path: &Path) -> std::io::Result<PathBuf> {
    use std::io::Write as _;
    let path = meta_path(csv_path);
    let mut json = serde_json::to_string_pretty(meta).map_err(std::io::Error::other)?;
    json.push('\n');
    write_whole(&path, |mut file| file.write_all(json.as_bytes()))?;
    Ok(path)
}

/// Writes `path` through `fill` into `<path>.partial` (creating the
/// directory), renamed to `path` once `fill` succeeded; on failure the
/// partial file is removed and `path` is as it was.
fn write_whole(
    path: &Path,
    fill: impl FnOnce(&std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let result = std::fs::File::create(&partial)
        .and_then(|file| fill(&file).and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::rename(&partial, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Generates a scenario's calls (see [`GeneratedCalls`]).
pub fn generate_calls(config: &GeneratorConfig) -> Result<GeneratedCalls, GenerateError> {
    check(
        "duration",
        config.duration_s,
        config.duration_s > 0.0 && config.duration_s <= MAX_DURATION_S,
        "a positive number of seconds up to 3155760000 (100 years)",
    )?;
    if let Arrivals::Bursty { on_s, off_s } = config.arrivals {
        check(
            "on period",
            on_s,
            on_s > 0.0,
            "a positive number of seconds",
        )?;
        check(
            "off period",
            off_s,
            off_s >= 0.0,
            "a non-negative number of seconds",
        )?;
        // Each ON period lasts at least 1 ms (the schedule's grain), so
        // there are at most this many, and they are kept in memory.
        let periods = config.duration_s / (on_s.max(0.001) + off_s);
        if periods > MAX_CALLS {
            return Err(GenerateError::BadParameter {
                name: "on period plus off period",
                requirement: "long enough for at most 250000000 ON periods in the duration",
                value: on_s + off_s,
            });
        }
    }
    let rates = function_rates(config)?;
    let expected = rates.iter().map(|(_, r)| r).sum::<f64>() * config.duration_s;
    // Also catches an infinite or NaN product.
    if expected.is_nan() || expected > MAX_CALLS {
        return Err(GenerateError::TooManyCalls {
            expected,
            limit: MAX_CALLS,
        });
    }
    let duration_ms = (config.duration_s * 1000.0).round() as u64;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);

    let on_periods = match config.arrivals {
        Arrivals::Bursty { on_s, off_s } => {
            OnPeriods::new(on_off_schedule(&mut rng, duration_ms, on_s, off_s))
        }
        _ => OnPeriods::new(Vec::new()),
    };

    // (time, function index), pushed function by function.
    let mut stamped: Vec<(u64, u32)> = Vec::new();
    let mut counts = Vec::with_capacity(rates.len());
    for (index, (name, rate)) in rates.iter().enumerate() {
        let times = match config.arrivals {
            Arrivals::Uniform => uniform_times(&mut rng, *rate, config.duration_s, duration_ms),
            Arrivals::Poisson => poisson_times(&mut rng, *rate, duration_ms as f64),
            Arrivals::Bursty { on_s, off_s } => {
                let boosted = rate * (on_s + off_s) / on_s;
                poisson_times(&mut rng, boosted, on_periods.total_ms as f64)
                    .into_iter()
                    .map(|t| on_periods.to_wall(t))
                    .collect()
            }
        };
        counts.push(FunctionCount {
            function: name.clone(),
            rate_per_s: *rate,
            count: times.len(),
        });
        // At most MAX_FUNCTIONS functions: the index fits.
        let index = index as u32;
        stamped.extend(times.into_iter().map(|t| (t, index)));
    }
    // Stable: equal times keep function order.
    stamped.sort_by_key(|&(t, _)| t);
    Ok(GeneratedCalls {
        meta: ScenarioMeta {
            generator: "utils generate".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            config: config.clone(),
            total_events: stamped.len(),
            counts,
            command: None,
        },
        functions: rates.into_iter().map(|(name, _)| name).collect(),
        calls: stamped,
    })
}

/// The original: `round(rate * duration)` uniform times in `[0, duration)`.
fn uniform_times(rng: &mut ChaCha8Rng, rate: f64, duration_s: f64, duration_ms: u64) -> Vec<u64> {
    let count = (rate * duration_s).round_ties_even() as usize;
    (0..count).map(|_| rng.gen_range(0..duration_ms)).collect()
}

/// Poisson arrivals at `rate` per second over `[0, span_ms)`, as whole ms.
fn poisson_times(rng: &mut ChaCha8Rng, rate: f64, span_ms: f64) -> Vec<u64> {
    let Ok(gap) = Exp::new(rate / 1000.0) else {
        return Vec::new();
    };
    if rate <= 0.0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut t = 0.0;
    loop {
        t += gap.sample(rng);
        if t >= span_ms {
            return out;
        }
        out.push(t.floor() as u64);
    }
}

/// ON periods `[start, end)` in ms: ON first, then alternating, with
/// exponential lengths.
fn on_off_schedule(
    rng: &mut ChaCha8Rng,
    duration_ms: u64,
    on_s: f64,
    off_s: f64,
) -> Vec<(u64, u64)> {
    let draw = |rng: &mut ChaCha8Rng, mean_s: f64| -> f64 {
        match Exp::new(1.0 / (mean_s * 1000.0)) {
            Ok(d) if mean_s > 0.0 => d.sample(rng),
            _ => 0.0,
        }
    };
    let mut periods = Vec::new();
    let mut t = 0.0f64;
    while (t as u64) < duration_ms {
        let on = draw(rng, on_s).max(1.0);
        let start = t as u64;
        let end = ((t + on) as u64).min(duration_ms);
        if end > start {
            periods.push((start, end));
        }
        t += on + draw(rng, off_s);
    }
    periods
}

/// The ON periods, with the ON time before each: maps a time on the
/// concatenated ON periods to wall time by a binary search (a scan of
/// every period per call made a long bursty scenario quadratic).
struct OnPeriods {
    /// `[start, end)` ms, in order.
    periods: Vec<(u64, u64)>,
    /// ON ms before each period.
    before: Vec<u64>,
    total_ms: u64,
}

impl OnPeriods {
    fn new(periods: Vec<(u64, u64)>) -> Self {
        let mut before = Vec::with_capacity(periods.len());
        let mut total_ms = 0;
        for &(a, b) in &periods {
            before.push(total_ms);
            total_ms += b - a;
        }
        Self {
            periods,
            before,
            total_ms,
        }
    }

    /// The wall time of ON time `t`; past the last period, the last ON
    /// millisecond.
    fn to_wall(&self, t: u64) -> u64 {
        if t >= self.total_ms {
            return self.periods.last().map_or(0, |&(_, b)| b.saturating_sub(1));
        }
        // The last period that starts at or before `t` in ON time.
        let k = self.before.partition_point(|&b| b <= t) - 1;
        self.periods[k].0 + (t - self.before[k])
    }
}

/// The sidecar's path: `<csv path>.meta.json`.
pub fn meta_path(csv_path: &Path) -> PathBuf {
    let mut name = csv_path.as_os_str().to_owned();
    name.push(".meta.json");
    PathBuf::from(name)
}

/// Writes the CSV and its sidecar (creating the directory), each whole
/// or not at all, as [`GeneratedCalls::write`]; returns the sidecar's path.
pub fn write_scenario(scenario: &Scenario, csv_path: &Path) -> std::io::Result<PathBuf> {
    use std::io::Write as _;
    let csv = protocol::scenario::to_csv(&scenario.events);
    write_whole(csv_path, |mut file| file.write_all(csv.as_bytes()))?;
    write_meta(&scenario.meta, csv_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_counts_are_rate_times_duration() {
        let s = generate(&GeneratorConfig::default()).unwrap();
        let w1 = &s.meta.counts[0];
        // round(1.6355 * 300) = round(490.65) = 491
        assert_eq!((w1.function.as_str(), w1.count), ("W1", 491));
        // D8: round(0.36) = 0; D5: round(0.72) = 1
        assert_eq!(s.meta.counts[29].count, 0);
        assert_eq!(s.meta.counts[26].count, 1);
        assert_eq!(
            s.events.len(),
            s.meta.counts.iter().map(|c| c.count).sum::<usize>()
        );
        assert!(s.events.windows(2).all(|w| w[0].start_ms <= w[1].start_ms));
        assert!(s.events.iter().all(|e| e.start_ms < 300_000));
    }

    #[test]
    fn python_rounding_is_ties_to_even() {
        // 0.0086 * 300 = 2.58 -> 3 ; 2.5 -> 2 (Python's round)
        assert_eq!(2.5f64.round_ties_even(), 2.0);
        let config = GeneratorConfig {
            duration_s: 250.0,
            popularity: Popularity::Catalog {
                functions: Some(vec!["T6".into()]),
            },
            ..GeneratorConfig::default()
        };
        // T6: 0.03 * 250 = 7.5 -> 8 (even)
        assert_eq!(generate(&config).unwrap().events.len(), 8);
    }

    #[test]
    fn poisson_and_bursty_keep_the_mean_rate() {
        for arrivals in [
            Arrivals::Poisson,
            Arrivals::Bursty {
                on_s: 5.0,
                off_s: 5.0,
            },
        ] {
            let config = GeneratorConfig {
                seed: 7,
                duration_s: 2000.0,
                arrivals: arrivals.clone(),
                popularity: Popularity::Catalog {
                    functions: Some(vec!["W1".into()]),
                },
                ..GeneratorConfig::default()
            };
            let n = generate(&config).unwrap().events.len() as f64;
            // Expected 3271; allow a generous band (on/off adds variance).
            assert!((2500.0..4000.0).contains(&n), "{arrivals:?}: {n}");
        }
    }

    #[test]
    fn bursty_arrivals_leave_quiet_gaps() {
        let config = GeneratorConfig {
            seed: 3,
            duration_s: 600.0,
            arrivals: Arrivals::Bursty {
                on_s: 5.0,
                off_s: 20.0,
            },
            ..GeneratorConfig::default()
        };
        let s = generate(&config).unwrap();
        let longest_gap = s
            .events
            .windows(2)
            .map(|w| w[1].start_ms - w[0].start_ms)
            .max()
            .unwrap();
        // At 7.4 calls/s a Poisson stream has no 10-s gap; OFF periods do.
        assert!(longest_gap > 10_000, "{longest_gap}");
    }

    #[test]
    fn zipf_names_and_rates() {
        let config = GeneratorConfig {
            popularity: Popularity::Zipf {
                functions: 1000,
                exponent: 1.0,
                total_rate_per_s: 10.0,
            },
            ..GeneratorConfig::default()
        };
        let rates = function_rates(&config).unwrap();
        assert_eq!(rates[0].0, "F0001");
        assert_eq!(rates[999].0, "F1000");
        assert!((rates.iter().map(|r| r.1).sum::<f64>() - 10.0).abs() < 1e-9);
        assert!((rates[0].1 / rates[1].1 - 2.0).abs() < 1e-9);
        assert_eq!(synthetic_name(7, 30), "F007");
    }

    #[test]
    fn bad_configurations_are_errors() {
        let unknown = GeneratorConfig {
            popularity: Popularity::Catalog {
                functions: Some(vec!["W99".into()]),
            },
            ..GeneratorConfig::default()
        };
        assert_eq!(
            generate(&unknown).unwrap_err(),
            GenerateError::UnknownFunction("W99".into())
        );
        let zero = GeneratorConfig {
            duration_s: 0.0,
            ..GeneratorConfig::default()
        };
        assert!(generate(&zero).is_err());
        let nan = GeneratorConfig {
            rate_scale: f64::NAN,
            ..GeneratorConfig::default()
        };
        assert!(generate(&nan).is_err());
    }

    /// Configurations that asked for more than memory holds are errors
    /// before anything is drawn: `--rate-scale 1e15` aborted on a
    /// 1.3-exabyte allocation, `--zipf 1000000000` filled the memory with
    /// weights, `--duration 1e300` drew calls until killed, and tiny
    /// bursts over a long run made a period list of billions.
    #[test]
    fn oversized_configurations_are_errors_before_any_draw() {
        let too_many = |config: GeneratorConfig| {
            matches!(
                generate_calls(&config).unwrap_err(),
                GenerateError::TooManyCalls { .. }
            )
        };
        assert!(too_many(GeneratorConfig {
            rate_scale: 1e15,
            duration_s: 100.0,
            ..GeneratorConfig::default()
        }));
        let zipf = |functions, total_rate_per_s| Popularity::Zipf {
            functions,
            exponent: 1.0,
            total_rate_per_s,
        };
        assert!(too_many(GeneratorConfig {
            popularity: zipf(10, 1e12),
            arrivals: Arrivals::Poisson,
            ..GeneratorConfig::default()
        }));
        // The limit itself, just over: 7.39 calls/s over the catalog.
        let total: f64 = function_rates(&GeneratorConfig::default())
            .unwrap()
            .iter()
            .map(|r| r.1)
            .sum();
        assert!(too_many(GeneratorConfig {
            duration_s: MAX_CALLS / total * 1.001,
            ..GeneratorConfig::default()
        }));
        let bad = |config: GeneratorConfig, name: &str| match generate_calls(&config) {
            Err(GenerateError::BadParameter { name: n, .. }) => assert_eq!(n, name),
            other => panic!("{name}: {other:?}"),
        };
        bad(
            GeneratorConfig {
                popularity: zipf(MAX_FUNCTIONS + 1, 1.0),
                ..GeneratorConfig::default()
            },
            "Zipf function count",
        );
        bad(
            GeneratorConfig {
                duration_s: 1e300,
                rate_scale: 0.0,
                ..GeneratorConfig::default()
            },
            "duration",
        );
        bad(
            GeneratorConfig {
                duration_s: MAX_DURATION_S,
                rate_scale: 0.0,
                arrivals: Arrivals::Bursty {
                    on_s: 1e-9,
                    off_s: 0.0,
                },
                ..GeneratorConfig::default()
            },
            "on period plus off period",
        );
        // A century of nothing is fine (and holds no call).
        let quiet = generate_calls(&GeneratorConfig {
            duration_s: MAX_DURATION_S,
            rate_scale: 0.0,
            ..GeneratorConfig::default()
        })
        .unwrap();
        assert!(quiet.calls.is_empty());
    }

    /// The ON periods' binary search maps every ON time where the scan
    /// it replaced did.
    #[test]
    fn on_times_map_to_wall_times_as_a_scan_of_the_periods() {
        fn scan(periods: &[(u64, u64)], mut t: u64) -> u64 {
            for &(a, b) in periods {
                if t < b - a {
                    return a + t;
                }
                t -= b - a;
            }
            periods.last().map_or(0, |&(_, b)| b.saturating_sub(1))
        }
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for (on_s, off_s) in [(0.01, 0.02), (1.0, 0.0), (5.0, 20.0)] {
            let periods = on_off_schedule(&mut rng, 60_000, on_s, off_s);
            let on = OnPeriods::new(periods.clone());
            for t in (0..on.total_ms + 3).chain([u64::MAX]) {
                assert_eq!(on.to_wall(t), scan(&periods, t), "{on_s}/{off_s} at {t}");
            }
        }
        assert_eq!(OnPeriods::new(Vec::new()).to_wall(5), 0);
    }

    /// What `utils generate` writes (the compact calls) is byte for byte
    /// what the scenario's writer writes, sidecar included; a failed write
    /// leaves the earlier file whole and no partial file.
    #[test]
    fn compact_calls_write_the_scenario_s_bytes() {
        let dir = tempfile::tempdir().unwrap();
        for arrivals in [
            Arrivals::Uniform,
            Arrivals::Poisson,
            Arrivals::Bursty {
                on_s: 2.0,
                off_s: 3.0,
            },
        ] {
            let config = GeneratorConfig {
                seed: 5,
                duration_s: 120.0,
                arrivals,
                ..GeneratorConfig::default()
            };
            let calls = generate_calls(&config).unwrap();
            let (a, b) = (dir.path().join("a/s.csv"), dir.path().join("b/s.csv"));
            calls.write(&a).unwrap();
            write_scenario(&calls.clone().into_scenario(), &b).unwrap();
            for (x, y) in [(a.clone(), b.clone()), (meta_path(&a), meta_path(&b))] {
                assert_eq!(std::fs::read(&x).unwrap(), std::fs::read(&y).unwrap());
            }
            assert_eq!(calls.into_scenario(), generate(&config).unwrap());
        }
        // The directory in the CSV's place: the write fails, nothing else.
        let blocked = dir.path().join("blocked.csv");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("keep"), "x").unwrap();
        let calls = generate_calls(&GeneratorConfig::default()).unwrap();
        assert!(calls.write(&blocked).is_err());
        assert_eq!(std::fs::read(blocked.join("keep")).unwrap(), b"x");
        assert!(!dir.path().join("blocked.csv.partial").exists());
    }

    #[test]
    fn meta_path_appends_a_suffix() {
        assert_eq!(
            meta_path(Path::new("scenarios/events.csv")),
            PathBuf::from("scenarios/events.csv.meta.json")
        );
    }
}
