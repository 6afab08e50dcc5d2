//! Trace import (`utils import`): the Azure Functions traces as scenarios
//! the testbed replays, a catalog of their synthetic functions, and a
//! sidecar that says how they were made.
//!
//! # Sources
//! - [`azure2019`]: the Azure Functions Trace 2019 (Shahrad et al.,
//!   "Serverless in the Wild", USENIX ATC 2020; schema in the dataset's
//!   `AzureFunctionsDataset2019.md`, revision 2): per day `dNN` (01..14),
//!   `invocations_per_function_md.anon.dNN.csv` (`HashOwner, HashApp,
//!   HashFunction, Trigger, 1 .. 1440`: calls per minute, counted after the
//!   calls ran), `function_durations_percentiles.anon.dNN.csv` (`HashOwner,
//!   HashApp, HashFunction, Average, Count, Minimum, Maximum,
//!   percentile_Average_{0,1,25,50,75,99,100}`, milliseconds, cold start
//!   excluded) and `app_memory_percentiles.anon.dNN.csv` (`HashOwner,
//!   HashApp, SampleCount, AverageAllocatedMb,
//!   AverageAllocatedMb_pct{1,5,25,50,75,95,99,100}`, per *application*,
//!   days 01..12 only).
//! - [`azure2021`]: the Azure Functions Invocation Trace 2021 (Zhang et al.,
//!   SOSP 2021; `AzureFunctionsInvocationTrace2021.md`): one row per call,
//!   `app, func, end_timestamp, duration`, both in seconds; rows are not in
//!   time order.
//!
//! # Output
//! - The scenario: `FunctionName,StartTimeMs,DurationMs,MemoryMb` on every
//!   row ([`protocol::scenario`]), sorted by start time (equal times:
//!   function rank order), starting at the window's start. The first two
//!   columns are the original's, so its tools still read it.
//! - The catalog (`--catalog`, default `<out>.catalog.csv`): one row per
//!   picked function in the columns of `sample-functions/catalog.csv`
//!   ([`write_catalog`], [`CatalogDefaults`]).
//! - The sidecar `<out>.meta.json` ([`ImportMeta`]): source files (path,
//!   size, BLAKE2b-256 computed while reading), every parameter, the seed,
//!   the tool's version and revision, and per function its Azure ids,
//!   calls, rate, duration percentiles and memory.
//!
//! Functions are named `F001`, `F002`, ... (as `utils generate --zipf`) in
//! the order of their calls in the window, most first; the sidecar maps
//! each name to its Azure ids.
//!
//! # Design choices
//! - **Which functions** ([`sample::Pick`], `--pick`, `--functions N`):
//!   candidates are the functions with at least one call in the window
//!   (2019: and a row in the durations file, as the InVitro sampler keeps
//!   only functions present in every file: Ustiugov et al., "Enabling
//!   In-Vitro Serverless Systems Research", WORDS 2023). `top`: the N with
//!   the most calls in the window (equal counts: earlier row). `random`: a
//!   uniform sample of N (reservoir sampling, seeded). `stratified`: strata
//!   are the decades of the window's call count (1-9, 10-99, ...); each
//!   gets `N × size / candidates` places by largest remainder (ties: lower
//!   decade), filled uniformly at random, so the sample keeps the trace's
//!   mix of rare and popular functions.
//! - **Arrivals within a minute** (2019 only; [`sample::Spread`],
//!   `--spread`): the trace gives calls per minute. `uniform` (default):
//!   each call at an independent uniform random millisecond of its minute,
//!   which is a Poisson process conditioned on the minute's count (the
//!   InVitro loader's default `exponential` inter-arrival times, rescaled
//!   into the minute, are this distribution); `even`: evenly spaced
//!   (InVitro's `equidistant`), the k-th of n at `floor(k × 60000 / n)`.
//!   Each minute's count is kept exactly. Calls are drawn in time order
//!   (ascending uniform order statistics, one at a time, merged across
//!   functions by a heap), so memory is one entry per picked function,
//!   whatever the counts.
//! - **Durations** (2019): each call's duration is drawn by inverse-CDF
//!   piecewise-linear interpolation between the function's percentiles at
//!   q = 0, .01, .25, .50, .75, .99, 1 ([`sample::Quantiles`]). The
//!   dataset's percentiles are of 30-s *averages* weighted by calls, not of
//!   single calls: they approach the true distribution when a function has
//!   few calls per 30 s and understate the tails of busy functions.
//!   Percentiles that decrease are replaced by the running maximum (counted
//!   in the sidecar). 2021: the trace's own duration; start = end −
//!   duration.
//! - **Memory** (2019): memory is measured per application, so an app's
//!   memory is shared equally among its functions (all of its rows in the
//!   day's invocations file, picked or not), as the InVitro sampler does.
//!   Each call draws the app's allocated memory from its percentiles
//!   (q = .01, .05, .25, .50, .75, .95, .99, 1; below .01 the 1st
//!   percentile, since the dataset omits the 0th) and divides it by the
//!   app's function count, rounded, at least 1 MB. An app without a memory
//!   row (or a day without a memory file, d13 and d14) gives its functions
//!   `--default-memory-mb` (256, the catalog's default), counted in the
//!   sidecar. 2021: the trace has no memory; every call gets
//!   `--memory-mb` (256).
//! - **Seeds**: one ChaCha8 RNG seeded with `--seed` (default 0) draws, in
//!   order, the pick, then the calls minute by minute; the same files and
//!   parameters give the same bytes.
//! - **Bounds**: a 2019 minute cell above [`MAX_CALLS_PER_MINUTE`] is an
//!   error (no allocation follows a value read from a file anyway); a
//!   duration above a day ([`protocol::scenario::MAX_DURATION_MS`]) is cut
//!   to a day (counted). Memory: the invocations file is read one row at a
//!   time; the durations and memory files keep one small entry per
//!   function or app (a 64-bit FNV-1a hash of the ids and the
//!   percentiles); the pick keeps `N` rows' window counts (`stratified`:
//!   up to `N` per decade). The 2021 trace is read twice (count, then
//!   collect) and keeps the window's picked calls (24 bytes each; the
//!   whole trace is 1.98 M calls) to sort them, since its rows are not in
//!   time order.
//!
//! Errors (a missing file or column, a wrong header, an unparsable or
//! out-of-range number) name the file, the line and the column (1-based
//! number and header name): [`ImportError`].

pub mod azure2019;
pub mod azure2021;
pub mod sample;
pub mod synthetic;
mod table;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use sample::{Pick, Spread};

/// The largest count a 2019 minute cell may hold (about 16,700 calls per
/// second of one function; a larger value is an error, not an allocation).
pub const MAX_CALLS_PER_MINUTE: u64 = 1_000_000;

/// A trace that cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A malformed file: names the file, line and (when one is at fault)
    /// the column.
    #[error("{file}:{line}: {}{message}", column_label(.column))]
    Format {
        file: String,
        /// 1-based.
        line: u64,
        /// 1-based number and header name.
        column: Option<(usize, String)>,
        message: String,
    },
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// A bad parameter.
    #[error("{0}")]
    Parameter(String),
}

fn column_label(column: &Option<(usize, String)>) -> String {
    match column {
        Some((n, name)) => format!("column {n} ({name}): "),
        None => String::new(),
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ImportError + '_ {
    move |source| ImportError::Io {
        file: path.display().to_string(),
        source,
    }
}

/// A half-open range of minutes, `start..end`, counted from the trace's
/// origin (2019: the day's first minute is 0, column `1`; 2021: timestamp
/// 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinuteWindow {
    pub start: u32,
    pub end: u32,
}

impl MinuteWindow {
    pub fn minutes(&self) -> u32 {
        self.end - self.start
    }
}

impl std::str::FromStr for MinuteWindow {
    type Err = String;

    /// `a..b` (b excluded).
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .split_once("..")
            .ok_or_else(|| format!("{s:?}: expected START..END in minutes, e.g. 0..60"))?;
        let parse = |v: &str| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| format!("{v:?} is not a whole number of minutes"))
        };
        let (start, end) = (parse(a)?, parse(b)?);
        if end <= start {
            return Err(format!("{s:?}: the window's end must be after its start"));
        }
        Ok(Self { start, end })
    }
}

/// Values for the catalog columns the traces do not give.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CatalogDefaults {
    /// Share of a call's duration spent on CPU (the rest sleeps). The
    /// traces say nothing about it; default 0.5.
    pub cpu_share: f64,
    /// Package (image payload) size: default the median of the 30 sample
    /// functions' packages (9.7 MB).
    pub package_bytes: u64,
}

impl Default for CatalogDefaults {
    fn default() -> Self {
        Self {
            cpu_share: 0.5,
            package_bytes: median_sample_package_bytes(),
        }
    }
}

/// The median package size of the 30 sample functions (the lower middle
/// value).
pub fn median_sample_package_bytes() -> u64 {
    let mut sizes: Vec<u64> = sample_functions::catalog()
        .with_rates()
        .map(|f| f.package_bytes)
        .collect();
    sizes.sort_unstable();
    sizes
        .get(sizes.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0)
}

/// The Azure ids of an imported function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzureIds {
    /// 2019 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub app: String,
    pub function: String,
    /// 2019 only: http, timer, event, queue, storage, orchestration, others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
}

/// One imported function, as the sidecar lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportedFunction {
    /// `F001`, ...
    pub function: String,
    pub azure: AzureIds,
    /// Calls in the scenario.
    pub count: u64,
    /// `count` over the window's length.
    pub rate_per_s: f64,
    /// 2019: the percentiles the durations were drawn from (q 0, 1, 25,
    /// 50, 75, 99, 100); 2021: the median of the window's calls.
    pub duration_ms: Vec<f64>,
    /// The catalog's memory size of the function, MB.
    pub memory_mb: u32,
    /// Where its memory came from: `app_share` (2019, the app's memory over
    /// its `app_functions`), `default` (no memory row), `parameter` (2021).
    pub memory_source: String,
    /// 2019: how many functions the app has in the day's file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_functions: Option<u32>,
}

/// A file the import read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    pub path: String,
    pub bytes: u64,
    pub blake2b_256: String,
    /// Data rows (header excluded).
    pub rows: u64,
}

/// What the import met on the way, beyond the picked functions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportNotes {
    /// Functions with a call in the window (and, 2019, a durations row).
    pub candidates: u64,
    /// 2019: functions with calls in the window but no durations row (not
    /// candidates).
    pub without_durations: u64,
    /// Picked functions whose app has no memory row.
    pub without_memory: u64,
    /// Picked functions whose percentiles decreased somewhere (running
    /// maximum used).
    pub repaired_percentiles: u64,
    /// Calls whose duration was cut to one day.
    pub clamped_durations: u64,
    /// 2021: calls that started before timestamp 0 (in no window).
    pub started_before_origin: u64,
    /// 2019: rows repeating a function already seen in the same file
    /// (the first one's values are used).
    pub duplicate_rows: u64,
}

/// The sidecar `<scenario>.meta.json` of an import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportMeta {
    /// `utils import azure2019` or `utils import azure2021`.
    pub generator: String,
    /// The `utils` crate version.
    pub version: String,
    /// The revision of the sources `utils` was built from (absent if
    /// built outside a git checkout).
    #[serde(default)]
    pub git: Option<crate::provenance::GitRevision>,
    pub parameters: ImportParameters,
    pub seed: u64,
    pub sources: Vec<SourceFile>,
    /// The scenario's window, resolved (2021 without `--minutes`: from 0
    /// to the minute after the last call's start).
    pub window: MinuteWindow,
    pub total_events: u64,
    /// Most calls first (the names' order).
    pub functions: Vec<ImportedFunction>,
    pub notes: ImportNotes,
    /// The catalog written beside the scenario.
    pub catalog: String,
    /// The command line, when run by the CLI.
    #[serde(default)]
    pub command: Option<String>,
}

/// Every parameter of an import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum ImportParameters {
    Azure2019(azure2019::Azure2019Config),
    Azure2021(azure2021::Azure2021Config),
}

/// One row of the synthetic catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogRow {
    pub name: String,
    /// `type` column: `azure2019-<trigger>` or `azure2021`.
    pub kind: String,
    pub rate_per_s: f64,
    /// The typical (median) duration of a call, ms.
    pub median_ms: f64,
    pub memory_mb: u32,
}

/// The duration class of the sample catalog (`~1s`, `~3s`, `3s~`, `20s~`)
/// that a median duration falls in: below 1.5 s, 3 s, 20 s, or above.
pub fn duration_class(median_ms: f64) -> &'static str {
    if median_ms < 1500.0 {
        "~1s"
    } else if median_ms < 3000.0 {
        "~3s"
    } else if median_ms < 20_000.0 {
        "3s~"
    } else {
        "20s~"
    }
}

/// Writes the catalog in the format of `sample-functions/catalog.csv` (its
/// header, 12 columns): `original_language` and `library` are `unknown`
/// and `none`, `rounds` 1, the median duration rounded to whole ms split
/// into `cpu_ms_per_round` (`cpu_share` of it) and `sleep_ms_per_round`
/// (the rest), `original_iterations_per_round` 0, `package_bytes` from
/// `defaults`.
pub fn write_catalog(
    rows: &[CatalogRow],
    defaults: &CatalogDefaults,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let header = sample_functions::catalog::CATALOG_CSV
        .lines()
        .next()
        .unwrap_or_default();
    writeln!(out, "{header}")?;
    for r in rows {
        let total = r.median_ms.round().max(0.0) as u64;
        let cpu = ((total as f64) * defaults.cpu_share.clamp(0.0, 1.0)).round() as u64;
        writeln!(
            out,
            "{},{},unknown,{},{},none,{},1,{},{},0,{}",
            r.name,
            r.kind,
            r.rate_per_s,
            duration_class(r.median_ms),
            defaults.package_bytes,
            cpu,
            total - cpu.min(total),
            r.memory_mb
        )?;
    }
    Ok(())
}

/// The default catalog path: `<scenario>.catalog.csv`.
pub fn default_catalog_path(scenario: &Path) -> PathBuf {
    let mut name = scenario.as_os_str().to_owned();
    name.push(".catalog.csv");
    PathBuf::from(name)
}

/// One scenario row, written as [`protocol::scenario::to_csv`] writes it.
pub(crate) fn write_call(
    out: &mut impl Write,
    name: &str,
    start_ms: u64,
    duration_us: u64,
    memory_mb: u32,
) -> std::io::Result<()> {
    let shape = protocol::scenario::CallShape {
        duration_us,
        memory_mb: Some(memory_mb),
    };
    writeln!(out, "{name},{start_ms},{},{memory_mb}", shape.duration_ms())
}

/// A duration in ms as whole µs, cut to one day; the bool says it was cut.
pub(crate) fn duration_us(ms: f64) -> (u64, bool) {
    let max = protocol::scenario::MAX_DURATION_MS;
    let clamped = ms > max;
    ((ms.clamp(0.0, max) * 1000.0).round() as u64, clamped)
}

/// Where an import writes: the scenario, its catalog and its sidecar, each
/// written to `<path>.tmp` and renamed into place at the end, so a failed
/// import leaves no half-written file.
#[derive(Debug, Clone)]
pub struct Outputs {
    pub scenario: PathBuf,
    pub catalog: PathBuf,
    /// The command line to record in the sidecar.
    pub command: Option<String>,
}

impl Outputs {
    /// `catalog`: `None` for [`default_catalog_path`].
    pub fn new(scenario: PathBuf, catalog: Option<PathBuf>) -> Self {
        let catalog = catalog.unwrap_or_else(|| default_catalog_path(&scenario));
        Self {
            scenario,
            catalog,
            command: None,
        }
    }

    /// The sidecar's path.
    pub fn meta(&self) -> PathBuf {
        crate::generate::meta_path(&self.scenario)
    }

    /// Every path written.
    pub fn all(&self) -> [PathBuf; 3] {
        [self.scenario.clone(), self.catalog.clone(), self.meta()]
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// A buffered file written under a temporary name.
pub(crate) struct PendingFile {
    path: PathBuf,
    tmp: RemoveOnDrop,
    pub out: std::io::BufWriter<std::fs::File>,
}

/// Deletes the temporary file unless the import got as far as renaming it.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl PendingFile {
    pub(crate) fn create(path: &Path) -> Result<Self, ImportError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        }
        let tmp = tmp_path(path);
        let file = std::fs::File::create(&tmp).map_err(io_error(&tmp))?;
        Ok(Self {
            path: path.to_path_buf(),
            tmp: RemoveOnDrop(tmp),
            out: std::io::BufWriter::with_capacity(1 << 20, file),
        })
    }

    pub(crate) fn io(&self) -> impl FnOnce(std::io::Error) -> ImportError + '_ {
        io_error(&self.tmp.0)
    }

    /// Flushes; the rename happens in [`commit`] (until then, dropping the
    /// returned guard deletes the temporary file).
    fn close(self) -> Result<(RemoveOnDrop, PathBuf), ImportError> {
        let PendingFile { path, tmp, out } = self;
        out.into_inner()
            .map_err(|e| io_error(&tmp.0)(e.into_error()))?
            .sync_all()
            .map_err(io_error(&tmp.0))?;
        Ok((tmp, path))
    }
}

/// Writes the catalog and the sidecar, then renames all three files into
/// place.
pub(crate) fn commit(
    scenario: PendingFile,
    catalog_rows: &[CatalogRow],
    defaults: &CatalogDefaults,
    outputs: &Outputs,
    meta: &ImportMeta,
) -> Result<(), ImportError> {
    let mut catalog = PendingFile::create(&outputs.catalog)?;
    write_catalog(catalog_rows, defaults, &mut catalog.out).map_err(catalog.io())?;
    let mut sidecar = PendingFile::create(&outputs.meta())?;
    let mut json = serde_json::to_string_pretty(meta)
        .map_err(|e| ImportError::Parameter(format!("cannot write the sidecar: {e}")))?;
    json.push('\n');
    sidecar
        .out
        .write_all(json.as_bytes())
        .map_err(sidecar.io())?;
    let closed = [scenario.close()?, catalog.close()?, sidecar.close()?];
    for (tmp, path) in &closed {
        std::fs::rename(&tmp.0, path).map_err(io_error(path))?;
    }
    // Renamed: the guards' removals now find nothing.
    Ok(())
}

fn check_functions(n: usize) -> Result<(), ImportError> {
    if n == 0 {
        return Err(ImportError::Parameter(
            "--functions must be at least 1".into(),
        ));
    }
    Ok(())
}

fn check_defaults(d: &CatalogDefaults) -> Result<(), ImportError> {
    if !(0.0..=1.0).contains(&d.cpu_share) {
        return Err(ImportError::Parameter(format!(
            "--cpu-share must be in 0..=1, got {}",
            d.cpu_share
        )));
    }
    Ok(())
}

/// FNV-1a over the parts, each followed by a 0 byte: the key of a function
/// or app in the lookup tables.
pub(crate) fn key(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.iter().chain(std::iter::once(&0u8)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_reject_nonsense() {
        let w: MinuteWindow = "0..60".parse().unwrap();
        assert_eq!((w.start, w.end, w.minutes()), (0, 60, 60));
        assert!("5..5".parse::<MinuteWindow>().is_err());
        assert!("60".parse::<MinuteWindow>().is_err());
        assert!("a..3".parse::<MinuteWindow>().is_err());
    }

    #[test]
    fn catalog_rows_split_the_median_and_parse_back() {
        let rows = [CatalogRow {
            name: "F001".into(),
            kind: "azure2019-http".into(),
            rate_per_s: 0.5,
            median_ms: 2499.6,
            memory_mb: 128,
        }];
        let defaults = CatalogDefaults {
            cpu_share: 0.25,
            package_bytes: 1000,
        };
        let mut out = Vec::new();
        write_catalog(&rows, &defaults, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let catalog = sample_functions::catalog::Catalog::parse(&text).unwrap();
        let f = catalog.get("F001").unwrap();
        assert_eq!((f.cpu_ms_per_round, f.sleep_ms_total()), (625, 1875));
        assert_eq!((f.memory_mb, f.package_bytes), (128, 1000));
        assert_eq!(f.duration_class, "~3s");
        assert_eq!(f.rate_per_s, 0.5);
        assert_eq!(median_sample_package_bytes(), 9_700_000);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = ImportError::Format {
            file: "a.csv".into(),
            line: 3,
            column: Some((5, "1".into())),
            message: "bad".into(),
        };
        assert_eq!(e.to_string(), "a.csv:3: column 5 (1): bad");
    }

    #[test]
    fn an_unfinished_output_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.csv");
        let mut f = PendingFile::create(&path).unwrap();
        f.out.write_all(b"F001,0,1,1\n").unwrap();
        assert!(tmp_path(&path).exists());
        drop(f);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn durations_are_cut_to_a_day() {
        assert_eq!(duration_us(12.3456), (12_346, false));
        assert_eq!(duration_us(1e12), (86_400_000_000, true));
    }
}
