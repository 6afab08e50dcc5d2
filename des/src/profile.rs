//! Cost profile: how long the worker's cold and warm paths take, per
//! runtime and machine, as measured by `simulator calibrate`.
//!
//! Every cost is worker overhead around the function itself, in
//! milliseconds: what the worker's `ExecutionTime` adds to the function's
//! `InternalExecutionTime` on that path. The function's own work comes from
//! its phases (the sample catalog), scaled by `cpu_scale`.
//!
//! | field | path | meaning |
//! |---|---|---|
//! | `image_build_base_ms`, `image_build_ms_per_mb` | first call of a function (`ImageBuilt`) | build cost `a + b · MB` (decimal MB of package) |
//! | `instance_create_ms` | per-call instance, no pool (HotFunctions default) | create + start + remove an instance |
//! | `pooled_ms` | per-call instance taken from the pre-warmed pool | run in a started instance |
//! | `rest_start_ms` | REST mode, no live instance | start a long-lived instance |
//! | `rest_warm_ms` | REST mode, live instance | one request to it |
//! | `instance_load_ms_per_mb` | every instance start (per-call, pooled, REST, Lambda cold) | extra start cost per MB of package: an instance loads its package (`hf-fn` reads its payload), so `instance_create_ms`, `rest_start_ms` and `lambda_cold_ms` (measured with `noop`, 0 B) grow by this much per MB |
//! | `lambda_cold_ms`, `lambda_warm_ms` | one-request-per-instance keep-alive | cold start / reuse of an idle instance |
//! | `network_ms` | every call | client ↔ worker transport (HTTP round trip of a direct call), outside `ExecutionTime` |
//! | `balancer_ms` | every call | the balancer hop: round trip of a warm call through a balancer minus that of the same call sent directly (0 when not measured) |
//! | `cpu_scale` | CPU phases | measured CPU time / catalog CPU time on this machine |
//!
//! A profile that `simulator calibrate` wrote also says where and when it
//! was measured ([`MeasuredOn`]: the CPU model, cores, memory, kernel, the
//! load average around the measurement, the time and the simulator that
//! measured): its costs, `cpu_scale` above all, describe that machine,
//! and the simulator's outputs say whether it is the kind of machine they
//! run on. Profiles written before calibrate recorded it have none.
//!
//! It also says how well each figure is determined ([`Spread`], in
//! `spread`): a fitted coefficient's standard error, or a median's lowest
//! and highest sample. Two calibrations of one machine differ by more than
//! a quiet reader would guess (on this project's machine, minutes apart:
//! 0.89 and 2.67 ms per MB of instance start under Docker), and the
//! spread says which figures to trust. One calibration's spread cannot
//! see that drift: `simulator calibrate --runs N` pools N calibrations
//! (each figure the median of theirs) and records their range
//! ([`Spread::pooled`], [`Spread::drifts`]).
//!
//! Loaded with `deny_unknown_fields`; missing fields take the defaults of
//! [`CostProfile::default`] (all zero costs, `cpu_scale` 1), which is the
//! profile of an ideal platform (used by the SimFaaS oracle test).
//! [`CostProfile::load`] notes the file it read in [`CostProfile::file`],
//! so a run's summary says which profile it used.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Worker path costs, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CostProfile {
    /// Free text: the runtime and machine the profile was measured on.
    pub description: String,
    /// `process` or `docker` (informational).
    pub runtime: String,
    /// Cores of the machine it was measured on (the default `--cores`).
    pub cores: u32,
    pub image_build_base_ms: f64,
    pub image_build_ms_per_mb: f64,
    pub instance_create_ms: f64,
    pub pooled_ms: f64,
    pub rest_start_ms: f64,
    pub rest_warm_ms: f64,
    /// Extra cost of any instance start per MB (decimal) of package.
    pub instance_load_ms_per_mb: f64,
    pub lambda_cold_ms: f64,
    pub lambda_warm_ms: f64,
    pub network_ms: f64,
    /// Extra round trip of a call through the load balancer.
    pub balancer_ms: f64,
    pub cpu_scale: f64,
    /// Raw measurements behind the fitted numbers (kept for the record).
    pub samples: serde_json::Value,
    /// The machine and time it was measured on (None: not recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_on: Option<MeasuredOn>,
    /// How well each figure is determined, by figure name (empty: not
    /// recorded).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub spread: BTreeMap<String, Spread>,
    /// The file it was read from ([`CostProfile::load`] sets it): recorded
    /// in run summaries and sidecars, never read from a profile file.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

impl Default for CostProfile {
    fn default() -> Self {
        Self {
            description: "ideal platform: no overheads".into(),
            runtime: "ideal".into(),
            cores: 2,
            image_build_base_ms: 0.0,
            image_build_ms_per_mb: 0.0,
            instance_create_ms: 0.0,
            pooled_ms: 0.0,
            rest_start_ms: 0.0,
            rest_warm_ms: 0.0,
            instance_load_ms_per_mb: 0.0,
            lambda_cold_ms: 0.0,
            lambda_warm_ms: 0.0,
            network_ms: 0.0,
            balancer_ms: 0.0,
            cpu_scale: 1.0,
            samples: serde_json::Value::Null,
            measured_on: None,
            spread: BTreeMap::new(),
            file: None,
        }
    }
}

/// How well one of a profile's figures is determined by the samples
/// behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spread {
    /// Samples behind the figure.
    pub n: usize,
    /// A fitted coefficient's standard error (least squares; needs three
    /// points at two sizes or more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standard_error: Option<f64>,
    /// A median's lowest and highest sample; for a figure pooled over
    /// several calibrations, the lowest and highest calibration's figure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<f64>,
    /// Several calibrations pooled (`simulator calibrate --runs N`): how
    /// many. The figure is the median of theirs, `n` counts the samples
    /// of all of them, and `low`/`high` are their figures' range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibrations: Option<usize>,
    /// For a pooled figure: the largest uncertainty one calibration gave
    /// it (its standard error or half its samples' range), what a single
    /// calibration would have claimed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_run: Option<f64>,
}

impl Spread {
    /// A fitted coefficient's spread.
    pub fn fitted(n: usize, standard_error: Option<f64>) -> Self {
        Self {
            n,
            standard_error,
            low: None,
            high: None,
            calibrations: None,
            within_run: None,
        }
    }

    /// A median's spread: its samples' range.
    pub fn of_samples(samples: &[f64]) -> Self {
        let low = samples.iter().copied().reduce(f64::min);
        let high = samples.iter().copied().reduce(f64::max);
        Self {
            n: samples.len(),
            standard_error: None,
            low,
            high,
            calibrations: None,
            within_run: None,
        }
    }

    /// The spread of a figure pooled over several calibrations: `runs`
    /// holds each calibration's figure and its spread there (None: it
    /// recorded none).
    pub fn pooled(runs: &[(f64, Option<&Spread>)]) -> Self {
        let figures: Vec<f64> = runs.iter().map(|r| r.0).collect();
        let range = Self::of_samples(&figures);
        Self {
            n: runs.iter().map(|r| r.1.map_or(1, |s| s.n)).sum(),
            standard_error: None,
            low: range.low,
            high: range.high,
            calibrations: Some(runs.len()),
            within_run: runs
                .iter()
                .filter_map(|r| r.1?.uncertainty())
                .reduce(f64::max),
        }
    }

    /// Half of `high - low` (the samples', or the calibrations'), if both
    /// are known.
    pub fn half_range(&self) -> Option<f64> {
        Some((self.high? - self.low?) / 2.0)
    }

    /// The figure's uncertainty: its standard error, else half its
    /// samples' range; for a pooled figure, the larger of half the
    /// calibrations' range and one calibration's uncertainty.
    pub fn uncertainty(&self) -> Option<f64> {
        let own = self.standard_error.or(self.half_range());
        match (own, self.within_run) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether a pooled figure moved between calibrations by more than
    /// one calibration's uncertainty says it could (half the range above
    /// `within_run`): a single calibration of it understates how little
    /// is known. False when not pooled or nothing to compare.
    pub fn drifts(&self) -> bool {
        match (self.calibrations, self.half_range(), self.within_run) {
            (Some(_), Some(half), Some(w)) => half > w,
            _ => false,
        }
    }

    /// `±0.52 (standard error, 14 points)`, `(samples 270-300, 7)`, or
    /// pooled `(3 calibrations 1.19-3.45; one calibration ±0.31; 42
    /// points)`.
    pub fn describe(&self) -> String {
        if let Some(runs) = self.calibrations {
            let range = match (self.low, self.high) {
                (Some(l), Some(h)) => format!(" {}-{}", sig(l), sig(h)),
                _ => String::new(),
            };
            let within = self
                .within_run
                .map(|w| format!("; one calibration ±{}", sig(w)))
                .unwrap_or_default();
            return format!("({runs} calibrations{range}{within}; {} points)", self.n);
        }
        match (self.standard_error, self.low, self.high) {
            (Some(se), _, _) => format!("±{} (standard error, {} points)", sig(se), self.n),
            (None, Some(l), Some(h)) => {
                format!("(samples {}-{}, {})", sig(l), sig(h), self.n)
            }
            _ => format!("(no spread: {} points)", self.n),
        }
    }
}

/// A figure for a message: no decimals from 100, one from 10, two from
/// 1, three below.
fn sig(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

/// Where and when a profile was measured (`simulator calibrate` records
/// it from `/proc`; absent figures were not readable there).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasuredOn {
    /// When the measurement ended (`YYYY-MM-DD HH:MM:SS UTC`).
    pub at: String,
    /// The CPU model (`/proc/cpuinfo`'s first `model name`).
    #[serde(default)]
    pub cpu_model: Option<String>,
    /// Cores the calibration could run on (available parallelism).
    pub cores: u32,
    /// Logical CPUs of the machine (`/proc/stat`; more than `cores` when
    /// the calibration was pinned to some of them).
    #[serde(default)]
    pub machine_cpus: Option<u32>,
    #[serde(default)]
    pub memory_mib: Option<u64>,
    #[serde(default)]
    pub kernel: Option<String>,
    /// The 1-minute load average before and after the measurement: a
    /// figure well above the cores means other work shared the machine,
    /// and the costs are higher than a quiet machine's.
    #[serde(default)]
    pub load_at_start: Option<f64>,
    #[serde(default)]
    pub load_at_end: Option<f64>,
    /// The simulator that measured it: version and source revision.
    pub simulator: String,
    /// The worker it measured, as its `/health` described its code:
    /// version and source revision (absent in older profiles, or if the
    /// worker did not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
}

impl MeasuredOn {
    /// The machine in a few words: `AMD EPYC, 2 cores, 23.5 GiB memory`.
    pub fn machine(&self) -> String {
        format!(
            "{}, {} cores{}",
            self.cpu_model.as_deref().unwrap_or("unknown CPU"),
            self.cores,
            self.memory_mib
                .map(|m| format!(", {:.1} GiB memory", m as f64 / 1024.0))
                .unwrap_or_default()
        )
    }

    /// Whether a machine of `cpu_model` and `cpus` logical CPUs is of
    /// this kind (the same CPU model and CPUs: what the costs depend on;
    /// the machine's CPUs where both are known, so that pinning a process
    /// to some of them does not make another machine of it). None when
    /// this record or the other machine has no CPU model.
    pub fn same_kind(&self, cpu_model: Option<&str>, cpus: u32) -> Option<bool> {
        let (ours, theirs) = (self.cpu_model.as_deref()?, cpu_model?);
        let our_cpus = self.machine_cpus.unwrap_or(self.cores);
        Some(ours.trim() == theirs.trim() && our_cpus == cpus)
    }
}

/// A profile file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read cost profile {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cost profile {path}: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("cost profile {path}: {field} must be a finite number >= 0 (is {value})")]
    Invalid {
        path: String,
        field: &'static str,
        value: f64,
    },
}

impl CostProfile {
    /// Reads and checks a profile file.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let name = path.display().to_string();
        let text = protocol::text::read_to_string(path).map_err(|source| ProfileError::Read {
            path: name.clone(),
            source,
        })?;
        let profile: Self =
            protocol::strict::from_json_str(&text).map_err(|source| ProfileError::Parse {
                path: name.clone(),
                source,
            })?;
        profile.check(&name)?;
        Ok(Self {
            file: Some(name),
            ..profile
        })
    }

    /// Every figure by its field name.
    pub fn figures(&self) -> [(&'static str, f64); 12] {
        [
            ("image_build_base_ms", self.image_build_base_ms),
            ("image_build_ms_per_mb", self.image_build_ms_per_mb),
            ("instance_create_ms", self.instance_create_ms),
            ("pooled_ms", self.pooled_ms),
            ("rest_start_ms", self.rest_start_ms),
            ("rest_warm_ms", self.rest_warm_ms),
            ("instance_load_ms_per_mb", self.instance_load_ms_per_mb),
            ("lambda_cold_ms", self.lambda_cold_ms),
            ("lambda_warm_ms", self.lambda_warm_ms),
            ("network_ms", self.network_ms),
            ("balancer_ms", self.balancer_ms),
            ("cpu_scale", self.cpu_scale),
        ]
    }

    /// Every figure by its field name, to set ([`CostProfile::figures`]'s
    /// order).
    pub fn figures_mut(&mut self) -> [(&'static str, &mut f64); 12] {
        [
            ("image_build_base_ms", &mut self.image_build_base_ms),
            ("image_build_ms_per_mb", &mut self.image_build_ms_per_mb),
            ("instance_create_ms", &mut self.instance_create_ms),
            ("pooled_ms", &mut self.pooled_ms),
            ("rest_start_ms", &mut self.rest_start_ms),
            ("rest_warm_ms", &mut self.rest_warm_ms),
            ("instance_load_ms_per_mb", &mut self.instance_load_ms_per_mb),
            ("lambda_cold_ms", &mut self.lambda_cold_ms),
            ("lambda_warm_ms", &mut self.lambda_warm_ms),
            ("network_ms", &mut self.network_ms),
            ("balancer_ms", &mut self.balancer_ms),
            ("cpu_scale", &mut self.cpu_scale),
        ]
    }

    /// The figures a [`CostProfile::variant`] moves: those with a recorded
    /// uncertainty above 0.
    pub fn varied_figures(&self) -> Vec<&'static str> {
        self.figures()
            .into_iter()
            .filter(|(name, _)| self.uncertainty_of(name) > 0.0)
            .map(|(name, _)| name)
            .collect()
    }

    fn uncertainty_of(&self, name: &str) -> f64 {
        self.spread
            .get(name)
            .and_then(Spread::uncertainty)
            .filter(|u| u.is_finite() && *u > 0.0)
            .unwrap_or(0.0)
    }

    /// Variant `k` (1, 2, ...) of this profile, for a sensitivity
    /// analysis: each figure with a recorded uncertainty `u`
    /// ([`Spread::uncertainty`]) moved within `value ± u` (not below 0;
    /// `cpu_scale` not below a tenth of its value), by a Weyl sequence of
    /// its own (`frac(k·√p + 1/2)`, `p` the figure's prime in
    /// [`CostProfile::figures`]' order: 2, 3, 5, ...), so the figures move
    /// independently and variant `k` is the same on every run; the other
    /// figures are kept. The variant keeps the spread and drops the
    /// samples; `description` names it.
    pub fn variant(&self, k: u32) -> CostProfile {
        const PRIMES: [f64; 12] = [
            2.0, 3.0, 5.0, 7.0, 11.0, 13.0, 17.0, 19.0, 23.0, 29.0, 31.0, 37.0,
        ];
        let mut v = self.clone();
        let uncertainties: Vec<f64> = self
            .figures()
            .iter()
            .map(|(name, _)| self.uncertainty_of(name))
            .collect();
        for (j, (name, value)) in v.figures_mut().into_iter().enumerate() {
            let x = (f64::from(k) * PRIMES[j].sqrt() + 0.5).fract();
            let floor = if name == "cpu_scale" {
                *value / 10.0
            } else {
                0.0
            };
            *value = (*value + (2.0 * x - 1.0) * uncertainties[j]).max(floor);
        }
        v.samples = serde_json::Value::Null;
        v.description = format!("variant {k} of {}", self.description);
        v
    }

    /// Every cost finite and non-negative, `cpu_scale` positive.
    pub fn check(&self, name: &str) -> Result<(), ProfileError> {
        for (field, value) in self.figures() {
            let bad = !value.is_finite() || value < 0.0 || (field == "cpu_scale" && value == 0.0);
            if bad {
                return Err(ProfileError::Invalid {
                    path: name.to_string(),
                    field,
                    value,
                });
            }
        }
        Ok(())
    }

    /// Extra start cost of an instance of a package of `bytes`, in ms.
    pub fn instance_load_ms(&self, bytes: u64) -> f64 {
        self.instance_load_ms_per_mb * bytes as f64 / 1e6
    }

    /// Image build cost of a package of `bytes`, in ms.
    pub fn image_build_ms(&self, bytes: u64) -> f64 {
        self.image_build_base_ms + self.image_build_ms_per_mb * bytes as f64 / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_profiles_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.json");
        std::fs::write(&p, r#"{"pooled_ms": -1}"#).unwrap();
        let e = CostProfile::load(&p).unwrap_err().to_string();
        assert!(e.contains("pooled_ms") && e.contains("p.json"), "{e}");
        std::fs::write(&p, r#"{"typo_ms": 1}"#).unwrap();
        let e = CostProfile::load(&p).unwrap_err().to_string();
        assert!(e.contains("typo_ms"), "{e}");
        // serde's derive would read an array by position: `[]` as the
        // default profile, `["x"]` as a description.
        for text in ["[]", "[\"x\"]"] {
            std::fs::write(&p, text).unwrap();
            let e = CostProfile::load(&p).unwrap_err().to_string();
            assert!(e.contains("invalid type: sequence"), "{text}: {e}");
        }
        std::fs::write(
            &p,
            r#"{"image_build_ms_per_mb": 2.5, "image_build_base_ms": 100}"#,
        )
        .unwrap();
        let ok = CostProfile::load(&p).unwrap();
        assert_eq!(ok.image_build_ms(10_000_000), 125.0);
        assert_eq!(ok.file.as_deref(), Some(p.display().to_string().as_str()));
        // Where a profile was read from is not part of it.
        std::fs::write(&p, r#"{"file": "elsewhere.json"}"#).unwrap();
        let e = CostProfile::load(&p).unwrap_err().to_string();
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn where_a_profile_was_measured_is_read_back_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.json");
        // Profiles from before it was recorded still load.
        std::fs::write(&p, r#"{"cpu_scale": 1.5}"#).unwrap();
        assert_eq!(CostProfile::load(&p).unwrap().measured_on, None);
        let measured = MeasuredOn {
            at: "2026-12-07 17:50:00 UTC".into(),
            cpu_model: Some("AMD EPYC".into()),
            cores: 2,
            machine_cpus: None,
            memory_mib: Some(24_064),
            kernel: Some("6.1.0".into()),
            load_at_start: Some(0.4),
            load_at_end: None,
            simulator: "0.1.0".into(),
            worker: Some("worker-front 0.1.0 (git 0123456789ab)".into()),
        };
        let profile = CostProfile {
            measured_on: Some(measured.clone()),
            ..CostProfile::default()
        };
        std::fs::write(&p, serde_json::to_string(&profile).unwrap()).unwrap();
        assert_eq!(
            CostProfile::load(&p).unwrap().measured_on,
            Some(measured.clone())
        );
        assert_eq!(measured.machine(), "AMD EPYC, 2 cores, 23.5 GiB memory");
        assert_eq!(measured.same_kind(Some(" AMD EPYC"), 2), Some(true));
        assert_eq!(measured.same_kind(Some("AMD EPYC"), 4), Some(false));
        assert_eq!(measured.same_kind(Some("Intel Xeon"), 2), Some(false));
        assert_eq!(measured.same_kind(None, 2), None);
        // A misspelt field inside the record is an error, not ignored.
        std::fs::write(
            &p,
            r#"{"measured_on": {"at": "x", "cores": 2, "simulator": "s", "cpu": "y"}}"#,
        )
        .unwrap();
        let e = CostProfile::load(&p).unwrap_err().to_string();
        assert!(e.contains("unknown field `cpu`"), "{e}");
    }

    #[test]
    fn a_figures_spread_is_read_back_and_described() {
        let fit = Spread::fitted(14, Some(0.5213));
        assert_eq!(fit.uncertainty(), Some(0.5213));
        assert_eq!(fit.describe(), "±0.521 (standard error, 14 points)");
        let median = Spread::of_samples(&[280.0, 301.0, 270.0]);
        assert_eq!(
            (median.low, median.high, median.n),
            (Some(270.0), Some(301.0), 3)
        );
        assert_eq!(median.uncertainty(), Some(15.5));
        assert_eq!(median.describe(), "(samples 270-301, 3)");
        assert_eq!(Spread::of_samples(&[]).uncertainty(), None);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.json");
        let mut profile = CostProfile::default();
        profile.spread.insert("instance_load_ms_per_mb".into(), fit);
        profile.spread.insert("instance_create_ms".into(), median);
        std::fs::write(&p, serde_json::to_string(&profile).unwrap()).unwrap();
        assert_eq!(CostProfile::load(&p).unwrap().spread, profile.spread);
        std::fs::write(&p, r#"{"spread": {"cpu_scale": {"n": 3, "sd": 1}}}"#).unwrap();
        let e = CostProfile::load(&p).unwrap_err().to_string();
        assert!(e.contains("unknown field `sd`"), "{e}");
    }

    #[test]
    fn variants_move_each_figure_within_its_uncertainty_and_no_further() {
        let mut p = CostProfile {
            instance_create_ms: 200.0,
            image_build_ms_per_mb: 1.0,
            cpu_scale: 0.9,
            network_ms: 0.3,
            ..CostProfile::default()
        };
        p.spread.insert(
            "instance_create_ms".into(),
            Spread::of_samples(&[180.0, 220.0]),
        );
        p.spread.insert(
            "image_build_ms_per_mb".into(),
            Spread::fitted(14, Some(2.0)),
        );
        p.spread
            .insert("cpu_scale".into(), Spread::of_samples(&[0.88, 0.92]));
        // No uncertainty: held.
        p.spread
            .insert("network_ms".into(), Spread::of_samples(&[0.3, 0.3]));
        assert_eq!(
            p.varied_figures(),
            vec!["image_build_ms_per_mb", "instance_create_ms", "cpu_scale"]
        );
        let variants: Vec<CostProfile> = (1..=16).map(|k| p.variant(k)).collect();
        for v in &variants {
            assert!((180.0..=220.0).contains(&v.instance_create_ms), "{v:?}");
            assert!((0.88..=0.92).contains(&v.cpu_scale), "{v:?}");
            // 1 ± 2, not below 0.
            assert!((0.0..=3.0).contains(&v.image_build_ms_per_mb), "{v:?}");
            assert_eq!((v.network_ms, v.pooled_ms), (0.3, 0.0));
            assert!(v.check("v").is_ok());
        }
        // They spread over the interval, each figure on its own sequence
        // (variant 1: the build's √3 + ½ has the fraction .232, below 0
        // at 1 - .536 · 2; creation's √5 + ½ the fraction .736).
        let creates: Vec<f64> = variants.iter().map(|v| v.instance_create_ms).collect();
        assert!(creates.iter().any(|&c| c < 190.0) && creates.iter().any(|&c| c > 210.0));
        let x1 = (5f64.sqrt() + 0.5).fract();
        assert!((variants[0].instance_create_ms - (200.0 + (2.0 * x1 - 1.0) * 20.0)).abs() < 1e-9);
        assert!(
            variants[0].image_build_ms_per_mb.abs() < 1e-12,
            "{:?}",
            variants[0]
        );
        // The same variant on every call.
        assert_eq!(p.variant(5), p.variant(5));
        assert_eq!(
            p.variant(5).description,
            "variant 5 of ideal platform: no overheads"
        );
    }

    #[test]
    fn a_figure_pooled_over_calibrations_says_how_far_they_drifted() {
        // Three calibrations of the per-MB build cost (figures seen on
        // one machine within an hour), each with a small standard error.
        let (a, b, c) = (
            Spread::fitted(14, Some(0.31)),
            Spread::fitted(14, Some(0.12)),
            Spread::fitted(14, Some(0.2)),
        );
        let pooled = Spread::pooled(&[(3.45, Some(&a)), (1.19, Some(&b)), (1.79, Some(&c))]);
        assert_eq!(
            (pooled.n, pooled.low, pooled.high, pooled.calibrations),
            (42, Some(1.19), Some(3.45), Some(3))
        );
        assert_eq!(pooled.within_run, Some(0.31));
        // Half the calibrations' range, not one calibration's ±0.31.
        assert!((pooled.uncertainty().unwrap() - 1.13).abs() < 1e-9);
        assert!(pooled.drifts());
        assert_eq!(
            pooled.describe(),
            "(3 calibrations 1.19-3.45; one calibration ±0.310; 42 points)"
        );
        // Calibrations that agree within their own uncertainty: that
        // uncertainty stands, and nothing drifted.
        let steady = Spread::pooled(&[(2.0, Some(&a)), (2.1, Some(&b))]);
        assert_eq!(steady.uncertainty(), Some(0.31));
        assert!(!steady.drifts());
        // A figure no calibration gave a spread (the balancer hop) gets
        // the calibrations' range, one point each.
        let hop = Spread::pooled(&[(0.4, None), (0.9, None)]);
        assert_eq!((hop.n, hop.within_run), (2, None));
        assert_eq!(hop.uncertainty(), Some(0.25));
        assert!(!hop.drifts());
        assert!(!Spread::fitted(3, Some(1.0)).drifts());
        // Read back as written.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.json");
        let mut profile = CostProfile::default();
        profile
            .spread
            .insert("instance_load_ms_per_mb".into(), pooled);
        *profile.figures_mut()[6].1 = 1.79;
        assert_eq!(profile.figures()[6], ("instance_load_ms_per_mb", 1.79));
        std::fs::write(&p, serde_json::to_string(&profile).unwrap()).unwrap();
        assert_eq!(
            CostProfile::load(&p).unwrap(),
            CostProfile {
                file: Some(p.display().to_string()),
                ..profile
            }
        );
    }
}
