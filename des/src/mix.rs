//! What each virtual client of a closed loop calls next, and how long it
//! thinks before: pure, seeded, no clocks. One code for both clocks: the
//! live clients of `simulator load` (which re-exports this module as
//! `simulator::load::mix`) and the simulated ones of `simulator des
//! --clients` ([`crate::source::ClosedLoopSource`]) draw from it, so the
//! same seed gives each client the same functions live and simulated.
//!
//! - [`FunctionMix`]: a weighted choice over function names, from one of
//!   [`MixSpec`]: `uniform`, `zipf:S` (the k-th name weighted `1/k^S`, the
//!   first the most popular; S in 0..=[`MAX_ZIPF_S`]; S = 0 is uniform),
//!   `catalog` (the embedded sample catalog's 30 functions weighted by
//!   their `rate_per_s`: the mix of HotFunctions' generator, without its
//!   timing), `catalog:FILE` (a catalog file in the format of
//!   `sample-functions/catalog.csv`, such as the one `utils import`
//!   writes beside an Azure-derived scenario: its functions weighted by
//!   `rate_per_s`), or `file:FILE` (rows `FunctionName,Weight`: a
//!   probability or any non-negative weight, normalised; an optional
//!   header row whose second cell is not a number; `#` comments and blank
//!   lines skipped). A bad file is an error naming the file and line.
//! - [`Think`]: none, constant, exponential with a mean (k6's
//!   `sleep(x)` and the exponential think times of closed-loop queueing
//!   models), or uniform between two bounds (k6's
//!   `sleep(randomIntBetween(a, b))`, `uniform:MIN:MAX`), each draw
//!   capped at [`MAX_THINK`].
//! - [`ClientRng`]: client `c`'s choices come from a ChaCha8 stream
//!   `(seed, 2c)`, its think times from `(seed, 2c + 1)`, so a client's
//!   function sequence depends on the seed and its index only: not on
//!   timing, other clients, or whether it thinks.
//!
//! A choice is inverse-CDF sampling on the cumulative weights (one uniform
//! `f64` and a binary search), so a weight of zero is never picked.
//! Bounds: at most [`MAX_FUNCTIONS`] names, each a valid function name
//! ([`sample_functions::catalog::check_name`]), checked before anything
//! larger is kept.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Most functions in a mix (a probability file's rows, `--names`).
pub const MAX_FUNCTIONS: usize = 1_000_000;
/// Largest Zipf exponent.
pub const MAX_ZIPF_S: f64 = 10.0;
/// Longest think time (a constant one, the mean of an exponential one, and
/// every draw).
pub const MAX_THINK: Duration = Duration::from_secs(3600);

/// A bad mix or think specification, or a bad probability file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MixError {
    #[error("bad --functions {0:?}: expected uniform, zipf:S, catalog, catalog:FILE or file:FILE")]
    BadSpec(String),
    #[error("bad Zipf exponent {0:?}: a number in 0..={MAX_ZIPF_S}")]
    BadZipf(String),
    #[error("--names: {0}")]
    BadNames(String),
    #[error("{path} line {line}: {message}")]
    File {
        path: String,
        line: usize,
        message: String,
    },
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("{0}")]
    Empty(String),
    #[error("bad think time {0:?}: expected none, MS, const:MS, exp:MS or uniform:MIN:MAX (milliseconds, at most 3,600,000, MIN <= MAX)")]
    BadThink(String),
}

/// Where a mix's names and weights come from (`--functions`).
#[derive(Debug, Clone, PartialEq)]
pub enum MixSpec {
    Uniform,
    Zipf(f64),
    /// The embedded catalog's rates (`None`) or a catalog file's.
    Catalog(Option<PathBuf>),
    /// A `FunctionName,Weight` file.
    File(PathBuf),
}

impl std::str::FromStr for MixSpec {
    type Err = MixError;

    fn from_str(s: &str) -> Result<Self, MixError> {
        let t = s.trim();
        let (kind, arg) = match t.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (t, None),
        };
        match (kind, arg) {
            ("uniform", None) => Ok(Self::Uniform),
            ("zipf", Some(a)) => {
                let exponent: f64 = a.trim().parse().map_err(|_| MixError::BadZipf(a.into()))?;
                if !(0.0..=MAX_ZIPF_S).contains(&exponent) {
                    return Err(MixError::BadZipf(a.into()));
                }
                Ok(Self::Zipf(exponent))
            }
            ("catalog", None) => Ok(Self::Catalog(None)),
            ("catalog", Some(p)) if !p.is_empty() => Ok(Self::Catalog(Some(p.into()))),
            ("file", Some(p)) if !p.is_empty() => Ok(Self::File(p.into())),
            _ => Err(MixError::BadSpec(s.into())),
        }
    }
}

impl std::fmt::Display for MixSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Uniform => write!(f, "uniform"),
            Self::Zipf(s) => write!(f, "zipf:{s}"),
            Self::Catalog(None) => write!(f, "catalog"),
            Self::Catalog(Some(p)) => write!(f, "catalog:{}", p.display()),
            Self::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

/// Names and their weights; picks one per draw.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionMix {
    names: Vec<String>,
    /// Running sums of the weights; the last is the total (> 0).
    cumulative: Vec<f64>,
}

impl FunctionMix {
    /// A mix of `names` with these weights (same length, finite, >= 0,
    /// positive total).
    pub fn new(names: Vec<String>, weights: &[f64]) -> Result<Self, MixError> {
        if names.is_empty() {
            return Err(MixError::Empty("no functions to call".into()));
        }
        if names.len() != weights.len() {
            return Err(MixError::Empty(format!(
                "{} names for {} weights",
                names.len(),
                weights.len()
            )));
        }
        let mut total = 0.0;
        let mut cumulative = Vec::with_capacity(weights.len());
        for (name, &w) in names.iter().zip(weights) {
            if !(w.is_finite() && w >= 0.0) {
                return Err(MixError::Empty(format!("bad weight {w} of {name}")));
            }
            total += w;
            cumulative.push(total);
        }
        if !(total > 0.0 && total.is_finite()) {
            return Err(MixError::Empty(
                "the weights sum to zero: no function could be called".into(),
            ));
        }
        Ok(Self { names, cumulative })
    }

    /// Equal weights.
    pub fn uniform(names: Vec<String>) -> Result<Self, MixError> {
        let weights = vec![1.0; names.len()];
        Self::new(names, &weights)
    }

    /// The k-th name (1-based) weighted `1/k^s`.
    pub fn zipf(names: Vec<String>, s: f64) -> Result<Self, MixError> {
        if !(0.0..=MAX_ZIPF_S).contains(&s) {
            return Err(MixError::BadZipf(s.to_string()));
        }
        let weights: Vec<f64> = (1..=names.len()).map(|k| (k as f64).powf(-s)).collect();
        Self::new(names, &weights)
    }

    /// The mix `spec` describes. `names` (from `--names`) apply to
    /// `uniform` and `zipf` (default: the 30 sample functions, in catalog
    /// order); giving them with a file or catalog is an error.
    pub fn from_spec(spec: &MixSpec, names: Option<&str>) -> Result<Self, MixError> {
        let names = match names {
            None => None,
            Some(_) if matches!(spec, MixSpec::Catalog(_) | MixSpec::File(_)) => {
                return Err(MixError::BadNames(format!(
                    "names come from the file with --functions {spec}; --names applies to uniform and zipf only"
                )))
            }
            Some(list) => Some(parse_names(list)?),
        };
        let sample_names = || -> Vec<String> {
            sample_functions::catalog()
                .with_rates()
                .map(|f| f.name.clone())
                .collect()
        };
        match spec {
            MixSpec::Uniform => Self::uniform(names.unwrap_or_else(sample_names)),
            MixSpec::Zipf(s) => Self::zipf(names.unwrap_or_else(sample_names), *s),
            MixSpec::Catalog(None) => {
                let (names, weights) = sample_functions::catalog()
                    .with_rates()
                    .map(|f| (f.name.clone(), f.rate_per_s))
                    .unzip::<_, _, Vec<_>, Vec<_>>();
                Self::new(names, &weights)
            }
            MixSpec::Catalog(Some(path)) => catalog_file(path),
            MixSpec::File(path) => {
                let text = protocol::text::read_to_string(path).map_err(|e| MixError::Read {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
                parse_weights(&text, &path.display().to_string())
            }
        }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The probability of the `i`-th name.
    pub fn probability(&self, i: usize) -> f64 {
        let below = if i == 0 { 0.0 } else { self.cumulative[i - 1] };
        (self.cumulative[i] - below) / self.total()
    }

    fn total(&self) -> f64 {
        self.cumulative[self.cumulative.len() - 1]
    }

    /// Index of the next name, from one uniform draw of `rng`.
    pub fn pick(&self, rng: &mut impl Rng) -> usize {
        let x = rng.gen::<f64>() * self.total();
        self.cumulative
            .partition_point(|&c| c <= x)
            .min(self.names.len() - 1)
    }
}

/// `W1,W2,...`: valid, distinct names, at most [`MAX_FUNCTIONS`].
fn parse_names(list: &str) -> Result<Vec<String>, MixError> {
    let mut names = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for name in list.split(',').map(str::trim) {
        if names.len() == MAX_FUNCTIONS {
            return Err(MixError::BadNames(format!(
                "more than {MAX_FUNCTIONS} names"
            )));
        }
        sample_functions::catalog::check_name(name).map_err(MixError::BadNames)?;
        if !seen.insert(name) {
            return Err(MixError::BadNames(format!("{name} is listed twice")));
        }
        names.push(name.to_string());
    }
    Ok(names)
}

/// A catalog file's own functions (not the embedded samples it is added
/// to), weighted by `rate_per_s`.
fn catalog_file(path: &Path) -> Result<FunctionMix, MixError> {
    use sample_functions::catalog::CatalogFileError;
    let catalog = sample_functions::Catalog::with_file(path).map_err(|e| match e {
        CatalogFileError::Io { path, source } => MixError::Read {
            path: path.display().to_string(),
            message: source.to_string(),
        },
        CatalogFileError::Row {
            path,
            line,
            message,
        } => MixError::File {
            path: path.display().to_string(),
            line,
            message,
        },
    })?;
    let embedded = sample_functions::catalog().functions.len();
    let own = &catalog.functions[embedded..];
    if own.len() > MAX_FUNCTIONS {
        return Err(MixError::Empty(format!(
            "{}: more than {MAX_FUNCTIONS} functions",
            path.display()
        )));
    }
    let (names, weights): (Vec<_>, Vec<_>) =
        own.iter().map(|f| (f.name.clone(), f.rate_per_s)).unzip();
    if names.is_empty() {
        return Err(MixError::Empty(format!(
            "{}: the catalog lists no function",
            path.display()
        )));
    }
    for (f, w) in own.iter().zip(&weights) {
        if !(w.is_finite() && *w >= 0.0) {
            return Err(MixError::Empty(format!(
                "{}: function {} has rate_per_s {w} (a weight must be >= 0)",
                path.display(),
                f.name
            )));
        }
    }
    FunctionMix::new(names, &weights).map_err(|e| match e {
        MixError::Empty(m) => MixError::Empty(format!("{}: {m}", path.display())),
        other => other,
    })
}

/// Parses a `FunctionName,Weight` file (see the module doc); `source`
/// names it in errors.
pub fn parse_weights(text: &str, source: &str) -> Result<FunctionMix, MixError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let err = |line: usize, message: String| MixError::File {
        path: source.to_string(),
        line,
        message,
    };
    let mut names = Vec::new();
    let mut weights = Vec::new();
    let mut seen = std::collections::HashMap::new();
    let mut first_row = true;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let row = raw.trim();
        if row.is_empty() || row.starts_with('#') {
            continue;
        }
        let cells: Vec<&str> = row.split(',').map(str::trim).collect();
        if cells.len() != 2 {
            return Err(err(
                line,
                format!(
                    "expected 2 fields (FunctionName,Weight), found {}",
                    cells.len()
                ),
            ));
        }
        let weight = cells[1].parse::<f64>();
        if first_row && weight.is_err() {
            first_row = false;
            continue; // a header
        }
        first_row = false;
        let weight = weight.map_err(|_| err(line, format!("bad weight {:?}", cells[1])))?;
        if !(weight.is_finite() && weight >= 0.0) {
            return Err(err(
                line,
                format!("bad weight {:?} (a finite number >= 0)", cells[1]),
            ));
        }
        sample_functions::catalog::check_name(cells[0]).map_err(|m| err(line, m))?;
        if let Some(before) = seen.insert(cells[0].to_string(), line) {
            return Err(err(
                line,
                format!("{} is listed twice (first on line {before})", cells[0]),
            ));
        }
        if names.len() == MAX_FUNCTIONS {
            return Err(err(line, format!("more than {MAX_FUNCTIONS} functions")));
        }
        names.push(cells[0].to_string());
        weights.push(weight);
    }
    if names.is_empty() {
        return Err(MixError::Empty(format!(
            "{source}: no FunctionName,Weight row"
        )));
    }
    FunctionMix::new(names, &weights).map_err(|e| match e {
        MixError::Empty(m) => MixError::Empty(format!("{source}: {m}")),
        other => other,
    })
}

/// A client's pause between a reply and its next call.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Think {
    /// The next call is sent as soon as the last one returns.
    #[default]
    None,
    Constant(Duration),
    /// Exponentially distributed with this mean.
    Exponential(Duration),
    /// Uniformly distributed between these bounds (inclusive).
    Uniform(Duration, Duration),
}

impl Think {
    /// A constant think time of `ms` milliseconds (`--think-ms`).
    pub fn constant_ms(ms: f64) -> Result<Self, MixError> {
        let d = think_duration(ms).ok_or_else(|| MixError::BadThink(ms.to_string()))?;
        Ok(if d.is_zero() {
            Self::None
        } else {
            Self::Constant(d)
        })
    }

    /// The next think time.
    pub fn draw(&self, rng: &mut impl Rng) -> Duration {
        match *self {
            Self::None => Duration::ZERO,
            Self::Constant(d) => d,
            Self::Exponential(mean) => {
                let u: f64 = rng.gen(); // [0, 1)
                let s = -mean.as_secs_f64() * (1.0 - u).ln();
                Duration::try_from_secs_f64(s).map_or(MAX_THINK, |d| d.min(MAX_THINK))
            }
            Self::Uniform(low, high) => {
                let u: f64 = rng.gen(); // [0, 1)
                let span = high.saturating_sub(low).as_secs_f64();
                low + Duration::try_from_secs_f64(u * span).unwrap_or(Duration::ZERO)
            }
        }
    }

    /// The mean think time.
    pub fn mean(&self) -> Duration {
        match *self {
            Self::None => Duration::ZERO,
            Self::Constant(d) | Self::Exponential(d) => d,
            Self::Uniform(low, high) => (low + high) / 2,
        }
    }
}

fn think_duration(ms: f64) -> Option<Duration> {
    if !(0.0..=MAX_THINK.as_millis() as f64).contains(&ms) {
        return None;
    }
    Duration::try_from_secs_f64(ms / 1000.0).ok()
}

impl std::str::FromStr for Think {
    type Err = MixError;

    /// `none`, `0`, `MS` or `const:MS` (constant), `exp:MS` (exponential
    /// with mean MS), `uniform:MIN:MAX` (uniform, MIN <= MAX), in
    /// milliseconds.
    fn from_str(s: &str) -> Result<Self, MixError> {
        let t = s.trim();
        let bad = || MixError::BadThink(s.into());
        if t == "none" {
            return Ok(Self::None);
        }
        if let Some(bounds) = t.strip_prefix("uniform:") {
            let (low, high) = bounds.split_once(':').ok_or_else(bad)?;
            let ms = |x: &str| {
                let ms: f64 = x.trim().parse().map_err(|_| bad())?;
                think_duration(ms).ok_or_else(bad)
            };
            let (low, high) = (ms(low)?, ms(high)?);
            return match (low, high) {
                _ if low > high => Err(bad()),
                _ if high.is_zero() => Ok(Self::None),
                (l, h) if l == h => Ok(Self::Constant(l)),
                (l, h) => Ok(Self::Uniform(l, h)),
            };
        }
        let (kind, ms) = t.split_once(':').unwrap_or(("const", t));
        let ms: f64 = ms.trim().parse().map_err(|_| bad())?;
        let d = think_duration(ms).ok_or_else(bad)?;
        match kind {
            "const" => Self::constant_ms(ms),
            "exp" if d.is_zero() => Ok(Self::None),
            "exp" => Ok(Self::Exponential(d)),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for Think {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => write!(f, "none"),
            Self::Constant(d) => write!(f, "const:{}", d.as_secs_f64() * 1000.0),
            Self::Exponential(d) => write!(f, "exp:{}", d.as_secs_f64() * 1000.0),
            Self::Uniform(low, high) => write!(
                f,
                "uniform:{}:{}",
                low.as_secs_f64() * 1000.0,
                high.as_secs_f64() * 1000.0
            ),
        }
    }
}

/// The random streams of one client (module doc).
#[derive(Debug, Clone)]
pub struct ClientRng {
    pub choices: ChaCha8Rng,
    pub think: ChaCha8Rng,
}

impl ClientRng {
    pub fn new(seed: u64, client: u32) -> Self {
        let stream = |k: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(2 * u64::from(client) + k);
            rng
        };
        Self {
            choices: stream(0),
            think: stream(1),
        }
    }
}

/// The first `n` functions client `client` calls under `seed` (what the
/// live clients do, without the calls: for tests and the DES).
pub fn client_sequence(mix: &FunctionMix, seed: u64, client: u32, n: usize) -> Vec<&str> {
    let mut rng = ClientRng::new(seed, client);
    (0..n)
        .map(|_| mix.names()[mix.pick(&mut rng.choices)].as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("F{i}")).collect()
    }

    #[test]
    fn a_clients_sequence_depends_on_the_seed_and_its_index_only() {
        let mix = FunctionMix::zipf(names(50), 1.0).unwrap();
        let a = client_sequence(&mix, 7, 0, 200);
        assert_eq!(a, client_sequence(&mix, 7, 0, 200));
        assert_ne!(a, client_sequence(&mix, 8, 0, 200));
        assert_ne!(a, client_sequence(&mix, 7, 1, 200));
        // Thinking draws from its own stream: the choices do not move.
        let mut rng = ClientRng::new(7, 0);
        let mut with_think = Vec::new();
        for _ in 0..200 {
            let _ = Think::Exponential(Duration::from_millis(5)).draw(&mut rng.think);
            with_think.push(mix.names()[mix.pick(&mut rng.choices)].as_str());
        }
        assert_eq!(a, with_think);
        // Golden: a change of stream layout or sampling shows here.
        assert_eq!(
            client_sequence(&mix, 42, 3, 8),
            ["F3", "F11", "F3", "F46", "F1", "F1", "F2", "F1"]
        );
    }

    #[test]
    fn zipf_and_weights_give_the_expected_frequencies() {
        let mix = FunctionMix::zipf(names(4), 1.0).unwrap();
        let h = 1.0 + 0.5 + 1.0 / 3.0 + 0.25;
        for k in 0..4 {
            assert!((mix.probability(k) - 1.0 / (k as f64 + 1.0) / h).abs() < 1e-12);
        }
        let mut rng = ClientRng::new(1, 0).choices;
        let mut counts = [0u32; 4];
        for _ in 0..100_000 {
            counts[mix.pick(&mut rng)] += 1;
        }
        for k in 0..4 {
            let freq = f64::from(counts[k]) / 100_000.0;
            assert!((freq - mix.probability(k)).abs() < 0.01, "{counts:?}");
        }
        // A zero weight is never picked.
        let mix = FunctionMix::new(names(3), &[1.0, 0.0, 1.0]).unwrap();
        for _ in 0..10_000 {
            assert_ne!(mix.pick(&mut rng), 1);
        }
        assert_eq!(
            FunctionMix::zipf(names(3), 0.0).unwrap(),
            FunctionMix::uniform(names(3)).unwrap()
        );
    }

    #[test]
    fn specs_parse_and_bad_ones_are_refused() {
        assert_eq!("uniform".parse(), Ok(MixSpec::Uniform));
        assert_eq!("zipf:1.1".parse(), Ok(MixSpec::Zipf(1.1)));
        assert_eq!("catalog".parse(), Ok(MixSpec::Catalog(None)));
        assert_eq!(
            "catalog:a.csv".parse(),
            Ok(MixSpec::Catalog(Some("a.csv".into())))
        );
        assert_eq!("file:p.csv".parse(), Ok(MixSpec::File("p.csv".into())));
        for bad in [
            "",
            "zipf",
            "zipf:-1",
            "zipf:11",
            "zipf:x",
            "file:",
            "poisson",
            "uniform:3",
        ] {
            assert!(bad.parse::<MixSpec>().is_err(), "{bad:?}");
        }
        let mix = FunctionMix::from_spec(&MixSpec::Uniform, None).unwrap();
        assert_eq!(mix.len(), 30);
        assert_eq!(mix.names()[0], "W1");
        let mix = FunctionMix::from_spec(&MixSpec::Catalog(None), None).unwrap();
        assert!((mix.probability(0) / mix.probability(29) - 1.6355 / 0.0012).abs() < 1e-6);
        let mix = FunctionMix::from_spec(&MixSpec::Zipf(1.0), Some("W3, W1")).unwrap();
        assert_eq!(mix.names(), ["W3", "W1"]);
        for bad in ["", "W1,W1", "W 1", "W1,,W2"] {
            assert!(
                FunctionMix::from_spec(&MixSpec::Uniform, Some(bad)).is_err(),
                "{bad:?}"
            );
        }
        assert!(FunctionMix::from_spec(&MixSpec::File("x".into()), Some("W1")).is_err());
    }

    #[test]
    fn weight_files_are_read_and_bad_rows_named() {
        let mix = parse_weights(
            "FunctionName,Probability\n# top\nW1,0.75\n\nW2, 0.25\n",
            "p.csv",
        )
        .unwrap();
        assert_eq!(mix.names(), ["W1", "W2"]);
        assert!((mix.probability(0) - 0.75).abs() < 1e-12);
        // Weights need not sum to 1, and there need be no header.
        let mix = parse_weights("A,3\nB,1\n", "p.csv").unwrap();
        assert!((mix.probability(0) - 0.75).abs() < 1e-12);
        for (text, line, what) in [
            ("F,P\nW1,x\n", 2, "bad weight"),
            ("W1,1\nW2\n", 2, "expected 2 fields"),
            ("W1,1\nW2,-1\n", 2, "bad weight"),
            ("W1,1\nW2,inf\n", 2, "bad weight"),
            ("W1,1\nW1,2\n", 2, "listed twice (first on line 1)"),
            ("W1,1\nW/2,2\n", 2, "only letters"),
            ("F,P\nF,P\n", 2, "bad weight"),
        ] {
            let e = parse_weights(text, "p.csv").unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("p.csv line {line}: ")) && e.contains(what),
                "{text:?}: {e}"
            );
        }
        for text in ["", "F,P\n", "W1,0\nW2,0\n"] {
            let e = parse_weights(text, "p.csv").unwrap_err().to_string();
            assert!(e.starts_with("p.csv: "), "{text:?}: {e}");
        }
    }

    #[test]
    fn a_catalog_file_weights_its_own_functions_by_rate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("az.catalog.csv");
        let header = sample_functions::catalog::CATALOG_CSV
            .lines()
            .next()
            .unwrap();
        std::fs::write(
            &path,
            format!(
                "{header}\nF001,azure,x,3.0,~1s,none,1000,1,10,0,0,128\n\
                 F002,azure,x,1.0,~1s,none,1000,1,10,0,0,128\n"
            ),
        )
        .unwrap();
        let mix = FunctionMix::from_spec(&MixSpec::Catalog(Some(path.clone())), None).unwrap();
        assert_eq!(mix.names(), ["F001", "F002"]);
        assert!((mix.probability(0) - 0.75).abs() < 1e-12);
        std::fs::write(
            &path,
            format!("{header}\nF001,azure,x,3.0,~1s,none,1000,1,10,0\n"),
        )
        .unwrap();
        let e = FunctionMix::from_spec(&MixSpec::Catalog(Some(path.clone())), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("az.catalog.csv line 2"), "{e}");
    }

    #[test]
    fn think_times_parse_within_bounds() {
        assert_eq!("none".parse(), Ok(Think::None));
        assert_eq!("0".parse(), Ok(Think::None));
        assert_eq!(
            "250".parse(),
            Ok(Think::Constant(Duration::from_millis(250)))
        );
        assert_eq!(
            "const:250".parse(),
            Ok(Think::Constant(Duration::from_millis(250)))
        );
        assert_eq!(
            "exp:100".parse(),
            Ok(Think::Exponential(Duration::from_millis(100)))
        );
        for bad in [
            "", "-1", "exp:", "exp:-5", "gauss:3", "3600001", "exp:NaN", "x",
        ] {
            assert!(bad.parse::<Think>().is_err(), "{bad:?}");
        }
        let think = Think::Exponential(Duration::from_millis(100));
        let mut rng = ClientRng::new(3, 0).think;
        let n = 20_000;
        let total: f64 = (0..n).map(|_| think.draw(&mut rng).as_secs_f64()).sum();
        let mean_ms = total / f64::from(n) * 1000.0;
        assert!((mean_ms - 100.0).abs() < 5.0, "{mean_ms}");
        assert_eq!(think.to_string().parse(), Ok(think));
    }

    #[test]
    fn uniform_think_times_stay_within_their_bounds() {
        let ms = Duration::from_millis;
        assert_eq!(
            "uniform:100:300".parse(),
            Ok(Think::Uniform(ms(100), ms(300)))
        );
        assert_eq!("uniform:50:50".parse(), Ok(Think::Constant(ms(50))));
        assert_eq!("uniform:0:0".parse(), Ok(Think::None));
        for bad in [
            "uniform:",
            "uniform:5",
            "uniform:300:100",
            "uniform:-1:5",
            "uniform:1:3600001",
            "uniform:a:b",
            "uniform:1:2:3",
        ] {
            assert!(bad.parse::<Think>().is_err(), "{bad:?}");
        }
        let think = Think::Uniform(ms(100), ms(300));
        assert_eq!(think.mean(), ms(200));
        assert_eq!(think.to_string(), "uniform:100:300");
        assert_eq!(think.to_string().parse(), Ok(think));
        let mut rng = ClientRng::new(3, 0).think;
        let n = 20_000;
        let draws: Vec<Duration> = (0..n).map(|_| think.draw(&mut rng)).collect();
        assert!(draws.iter().all(|d| (ms(100)..=ms(300)).contains(d)));
        let mean_ms = draws.iter().map(Duration::as_secs_f64).sum::<f64>() / f64::from(n) * 1000.0;
        assert!((mean_ms - 200.0).abs() < 3.0, "{mean_ms}");
        // Both halves are drawn about as often.
        let low = draws.iter().filter(|d| **d < ms(200)).count();
        assert!((9_500..10_500).contains(&low), "{low}");
    }
}
