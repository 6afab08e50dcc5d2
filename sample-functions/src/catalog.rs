//! The sample-function catalog (`sample-functions/catalog.csv`, embedded).
//!
//! Columns: `name, type, original_language, rate_per_s, duration_class,
//! library, package_bytes, rounds, cpu_ms_per_round, sleep_ms_per_round,
//! original_iterations_per_round, memory_mb`.
//!
//! `rate_per_s` is the request rate of the original generator (W1 1.6355/s
//! down to D8 0.0012/s). `package_bytes` is the original package size (14 KB
//! up to 131 MB, decimal units). The workload is `rounds` of a CPU phase then
//! a sleep. The original tuned iteration counts per language (Python 3.7,
//! Node.js 12, Java 8); `cpu_ms_per_round` restates them as the intended CPU
//! time per round, assuming 8 M iterations/s for Python and Java and 13 M/s
//! for Node.js, so that each function keeps its duration class (W about 1 s,
//! T about 2-3 s, I about 30 s, D a minute or more). `sleep_ms_per_round` is
//! one value, or `a;b;c` for a sleep per round (T3, T5, T6 sleep 1000, 800
//! and 500 ms). `noop` (rate 0) is for benchmarks only. `memory_mb` is the
//! function's memory size, which the original does not give: 256 MB for
//! every function (AWS Lambda's and OpenWhisk's default action memory);
//! the column may be left out (11 fields), meaning 256. Memory-aware
//! schedulers (`openwhisk`) and node memory limits read it.
//!
//! On this project's machines a CPU phase of `cpu_ms_per_round` runs
//! `cpu_ms_per_round × 515_000` iterations of the PRNG-add loop
//! ([`crate::workload::ITERATIONS_PER_MS`], measured by CPU time with
//! `hf-fn calibrate` on the 2-core reference VM, release build; see
//! [`crate::workload`] for the measurement), so that the durations above hold
//! on an idle core; contention lengthens them as it would a real function.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The embedded catalog file.
pub const CATALOG_CSV: &str = include_str!("../catalog.csv");

/// One phase of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A fixed amount of CPU work, sized to take this many ms on an idle
    /// core of the reference machine.
    Cpu { ms: u32 },
    /// Sleep (no CPU) for this many ms.
    Sleep { ms: u32 },
}

/// One sample function.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    pub name: String,
    /// `WebServer`, `ThirdPartyIntegration`, `InternalTooling`,
    /// `DataProcessing`, or `Benchmark` (noop).
    pub kind: String,
    pub original_language: String,
    /// Requests per second in the original generator.
    pub rate_per_s: f64,
    /// The original table's class: `~1s`, `~3s`, `3s~`, `20s~`.
    pub duration_class: String,
    pub library: String,
    /// Size of the function's package (its image payload), in bytes.
    pub package_bytes: u64,
    pub rounds: u32,
    pub cpu_ms_per_round: u32,
    /// Sleep after each round's CPU phase (one entry per round).
    pub sleep_ms: Vec<u32>,
    pub original_iterations_per_round: u64,
    /// Memory size of one instance, in MB ([`DEFAULT_MEMORY_MB`] when the
    /// catalog gives none).
    pub memory_mb: u32,
}

/// A function's memory when its catalog row gives none (AWS Lambda's and
/// OpenWhisk's default).
pub const DEFAULT_MEMORY_MB: u32 = 256;

impl FunctionSpec {
    /// The workload as phases, in order (zero-length phases left out).
    pub fn phases(&self) -> Vec<Phase> {
        let mut out = Vec::with_capacity(self.rounds as usize * 2);
        for r in 0..self.rounds as usize {
            if self.cpu_ms_per_round > 0 {
                out.push(Phase::Cpu {
                    ms: self.cpu_ms_per_round,
                });
            }
            let s = self.sleep_ms[r];
            if s > 0 {
                out.push(Phase::Sleep { ms: s });
            }
        }
        out
    }

    /// Total CPU time of one call on an idle reference core, in ms.
    pub fn cpu_ms(&self) -> u64 {
        u64::from(self.rounds) * u64::from(self.cpu_ms_per_round)
    }

    /// Total sleep of one call, in ms.
    pub fn sleep_ms_total(&self) -> u64 {
        self.sleep_ms.iter().map(|&s| u64::from(s)).sum()
    }

    /// Expected duration of one call without contention or start-up, in ms.
    pub fn expected_ms(&self) -> u64 {
        self.cpu_ms() + self.sleep_ms_total()
    }

    /// The share of a call spent on CPU work: `cpu_ms / (cpu_ms + sleep)`,
    /// 0 for a function that does nothing.
    pub fn cpu_share(&self) -> f64 {
        match self.expected_ms() {
            0 => 0.0,
            total => self.cpu_ms() as f64 / total as f64,
        }
    }

    /// Whether this is one of the embedded catalog's functions (the 30
    /// samples and `noop`), whose work is fixed; any other function comes
    /// from a user's catalog file (e.g. a synthetic function of
    /// `utils import`) and may be given a shape per call
    /// (`crate::workload::CallWork`).
    pub fn is_sample(&self) -> bool {
        catalog().get(&self.name).is_some()
    }

    /// This function as one row of a catalog file (the format of
    /// `catalog.csv`, 12 fields): [`Catalog::parse`] reads it back equal.
    pub fn catalog_row(&self) -> String {
        let sleeps = if self.sleep_ms.windows(2).all(|w| w[0] == w[1]) {
            self.sleep_ms.first().copied().unwrap_or(0).to_string()
        } else {
            let s: Vec<String> = self.sleep_ms.iter().map(u32::to_string).collect();
            s.join(";")
        };
        format!(
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            self.name,
            self.kind,
            self.original_language,
            self.rate_per_s,
            self.duration_class,
            self.library,
            self.package_bytes,
            self.rounds,
            self.cpu_ms_per_round,
            sleeps,
            self.original_iterations_per_round,
            self.memory_mb
        )
    }
}

/// The header line of a catalog file (`catalog.csv`'s, 12 columns).
pub fn catalog_header() -> &'static str {
    CATALOG_CSV.lines().next().unwrap_or_default()
}

/// Environment variable of `hf-fn`: a catalog file (the format of
/// `catalog.csv`) whose functions it serves beside the samples
/// ([`Catalog::with_file`]). The runtimes stage a synthetic function's row
/// as [`FUNCTION_FILE_NAME`] in its image and point this at it.
pub const CATALOG_ENV: &str = "HF_CATALOG";

/// File name of a staged function's catalog (header + its one row) beside
/// `hf-fn` in an image ([`FunctionSpec::catalog_row`]).
pub const FUNCTION_FILE_NAME: &str = "function.csv";

/// A catalog's functions, in file order, with an index by name.
///
/// The embedded catalog ([`catalog`]) holds the 30 sample functions and
/// `noop`; [`Catalog::with_file`] adds a user's functions (e.g. the
/// synthetic functions `utils import` writes) to them.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub functions: Vec<FunctionSpec>,
    index: HashMap<String, usize>,
}

/// At most this many rounds per function: a row's `rounds` sizes the
/// function's phase list, so it is bounded before anything is allocated.
pub const MAX_ROUNDS: u32 = 10_000;

/// Longest accepted function name in a user's catalog file.
pub const MAX_NAME_BYTES: usize = 64;

/// A catalog file that could not be read or holds a bad row.
#[derive(Debug, thiserror::Error)]
pub enum CatalogFileError {
    #[error("catalog {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("catalog {} line {line}: {message}", path.display())]
    Row {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// A malformed catalog row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("catalog line {line}: {message}")]
pub struct CatalogError {
    pub line: usize,
    pub message: String,
}

impl Catalog {
    /// Parses a catalog in the format of `catalog.csv` (with its header).
    pub fn parse(text: &str) -> Result<Self, CatalogError> {
        let mut catalog = Self {
            functions: Vec::new(),
            index: HashMap::new(),
        };
        for (i, raw) in text.lines().enumerate().skip(1) {
            let line = i + 1;
            let row = raw.trim();
            if row.is_empty() {
                continue;
            }
            let err = |message: String| CatalogError { line, message };
            let f: Vec<&str> = row.split(',').map(str::trim).collect();
            if f.len() != 11 && f.len() != 12 {
                return Err(err(format!("expected 11 or 12 fields, found {}", f.len())));
            }
            let num = |idx: usize, what: &str| -> Result<u64, CatalogError> {
                f[idx]
                    .parse::<u64>()
                    .map_err(|_| err(format!("bad {what} {:?}", f[idx])))
            };
            let rounds = num(7, "rounds")?;
            if rounds > u64::from(MAX_ROUNDS) {
                return Err(err(format!("{rounds} rounds (at most {MAX_ROUNDS})")));
            }
            let rounds = rounds as u32;
            let sleeps = f[9]
                .split(';')
                .map(|s| {
                    s.parse::<u32>()
                        .map_err(|_| err(format!("bad sleep {s:?}")))
                })
                .collect::<Result<Vec<u32>, _>>()?;
            let sleep_ms = match sleeps.len() {
                1 => vec![sleeps[0]; rounds as usize],
                n if n == rounds as usize => sleeps,
                n => return Err(err(format!("{n} sleeps for {rounds} rounds"))),
            };
            if catalog.get(f[0]).is_some() {
                return Err(err(format!("{} is listed twice", f[0])));
            }
            catalog.push(FunctionSpec {
                name: f[0].to_string(),
                kind: f[1].to_string(),
                original_language: f[2].to_string(),
                rate_per_s: f[3]
                    .parse()
                    .map_err(|_| err(format!("bad rate {:?}", f[3])))?,
                duration_class: f[4].to_string(),
                library: f[5].to_string(),
                package_bytes: num(6, "package size")?,
                rounds,
                cpu_ms_per_round: u32::try_from(num(8, "cpu ms")?)
                    .map_err(|_| err(format!("cpu ms {:?} is too large", f[8])))?,
                sleep_ms,
                original_iterations_per_round: num(10, "iterations")?,
                memory_mb: match f.get(11) {
                    None => DEFAULT_MEMORY_MB,
                    Some(m) => match m.parse::<u32>() {
                        Ok(mb) if mb > 0 => mb,
                        _ => return Err(err(format!("bad memory_mb {m:?} (MB, at least 1)"))),
                    },
                },
            });
        }
        Ok(catalog)
    }

    fn push(&mut self, f: FunctionSpec) {
        self.index.insert(f.name.clone(), self.functions.len());
        self.functions.push(f);
    }

    /// The embedded catalog (the samples and `noop`) plus the functions of
    /// the catalog file at `path` (same format, header included). The
    /// file's names must be new (no sample's name) and made of
    /// `[A-Za-z0-9_-]`, 1 to [`MAX_NAME_BYTES`] bytes, so that they are
    /// safe as a query value, a file name and an image tag.
    pub fn with_file(path: &Path) -> Result<Self, CatalogFileError> {
        let text = protocol::text::read_to_string(path).map_err(|source| CatalogFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let row_error = |line: usize, message: String| CatalogFileError::Row {
            path: path.to_path_buf(),
            line,
            message,
        };
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let header = CATALOG_CSV.lines().next().unwrap_or_default();
        let first = text.lines().next().unwrap_or_default().trim();
        let eleven = header.rsplit_once(',').map_or(header, |(h, _)| h);
        if first != header && first != eleven {
            return Err(row_error(
                1,
                format!("expected the header {header:?}, found {first:?}"),
            ));
        }
        let extra = Self::parse(text).map_err(|e| row_error(e.line, e.message))?;
        let mut out = catalog().clone();
        // Line numbers of the file's rows, in order (blank lines skipped
        // by `parse` too).
        let lines = text
            .lines()
            .enumerate()
            .skip(1)
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, _)| i + 1);
        for (f, line) in extra.functions.into_iter().zip(lines) {
            if let Err(message) = check_name(&f.name) {
                return Err(row_error(line, message));
            }
            if out.get(&f.name).is_some() {
                return Err(row_error(
                    line,
                    format!("{} is a sample function's name", f.name),
                ));
            }
            out.push(f);
        }
        Ok(out)
    }

    pub fn get(&self, name: &str) -> Option<&FunctionSpec> {
        self.index.get(name).map(|&i| &self.functions[i])
    }

    /// The 30 functions of the original's rate table (rate > 0).
    pub fn with_rates(&self) -> impl Iterator<Item = &FunctionSpec> {
        self.functions.iter().filter(|f| f.rate_per_s > 0.0)
    }
}

/// Whether `name` is a valid name for a user's function: `[A-Za-z0-9_-]`,
/// 1 to [`MAX_NAME_BYTES`] bytes.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "function name {name:?} must be 1 to {MAX_NAME_BYTES} bytes"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(format!(
            "function name {name:?} has {c:?} (only letters, digits, '_' and '-')"
        ));
    }
    Ok(())
}

/// The embedded catalog, parsed once.
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| match Catalog::parse(CATALOG_CSV) {
        Ok(c) => c,
        // The file is embedded and checked by the tests below.
        Err(e) => panic!("embedded catalog.csv is malformed: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_the_thirty_functions_and_noop() {
        let c = catalog();
        assert_eq!(c.with_rates().count(), 30);
        assert!(c.get("noop").is_some());
        let names: Vec<&str> = c.with_rates().map(|f| f.name.as_str()).collect();
        assert_eq!(&names[..3], &["W1", "W2", "W3"]);
        assert_eq!(names[29], "D8");
    }

    #[test]
    fn facts_match_the_original_table() {
        let c = catalog();
        let w1 = c.get("W1").unwrap();
        assert_eq!(w1.rate_per_s, 1.6355);
        assert_eq!(w1.package_bytes, 9_700_000);
        assert_eq!(c.get("D8").unwrap().rate_per_s, 0.0012);
        assert_eq!(c.get("D1").unwrap().package_bytes, 131_000_000);
        assert_eq!(c.get("I3").unwrap().package_bytes, 14_000);
        let t3 = c.get("T3").unwrap();
        assert_eq!(t3.sleep_ms, vec![1000, 800, 500]);
        assert_eq!(t3.expected_ms(), 2300);
        let i1 = c.get("I1").unwrap();
        assert_eq!(i1.phases().len(), 20);
        assert_eq!(i1.sleep_ms_total(), 30_000);
    }

    #[test]
    fn memory_column_is_optional_and_checked() {
        assert!(catalog().with_rates().all(|f| f.memory_mb == 256));
        let header = CATALOG_CSV.lines().next().unwrap();
        let eleven = format!("{header}\nX,Benchmark,Rust,0,~1s,none,1,1,1,0,1\n");
        assert_eq!(Catalog::parse(&eleven).unwrap().functions[0].memory_mb, 256);
        let twelve = format!("{header}\nX,Benchmark,Rust,0,~1s,none,1,1,1,0,1,1024\n");
        assert_eq!(
            Catalog::parse(&twelve).unwrap().functions[0].memory_mb,
            1024
        );
        let zero = format!("{header}\nX,Benchmark,Rust,0,~1s,none,1,1,1,0,1,0\n");
        let e = Catalog::parse(&zero).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("memory_mb"), "{e}");
    }

    #[test]
    fn duration_classes_hold() {
        for f in catalog().with_rates() {
            let ms = f.expected_ms();
            let ok = match f.kind.as_str() {
                "WebServer" => (300..=1500).contains(&ms),
                "ThirdPartyIntegration" => (1500..=3500).contains(&ms),
                "InternalTooling" => ms > 3000,
                "DataProcessing" => ms > 20_000,
                _ => false,
            };
            assert!(ok, "{} takes {ms} ms", f.name);
        }
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn a_file_adds_its_functions_to_the_samples() {
        let header = CATALOG_CSV.lines().next().unwrap();
        let f = write(&format!(
            "\u{feff}{header}\nF0001,azure2019-http,unknown,0.5,~1s,unknown,1000,1,40,60,0,512\n\nF0002,azure2021,unknown,0.1,~1s,unknown,1000,1,0,5,0\n"
        ));
        let c = Catalog::with_file(f.path()).unwrap();
        assert_eq!(c.functions.len(), catalog().functions.len() + 2);
        assert_eq!(c.get("F0001").unwrap().memory_mb, 512);
        assert_eq!(c.get("F0001").unwrap().expected_ms(), 100);
        assert_eq!(c.get("F0002").unwrap().memory_mb, DEFAULT_MEMORY_MB);
        assert_eq!(c.get("W1"), catalog().get("W1"));
    }

    #[test]
    fn a_bad_file_names_its_path_and_line() {
        let header = CATALOG_CSV.lines().next().unwrap();
        let row = |name: &str| format!("{name},x,unknown,0,~1s,unknown,1,1,1,0,0,256\n");
        let cases = [
            (format!("{header}\n{}", row("W1")), 2, "sample"),
            (format!("{header}\n{}{}", row("A"), row("A")), 3, "twice"),
            (format!("{header}\n\n{}", row("a.b")), 3, "'.'"),
            (format!("{header}\n{}", row(&"x".repeat(65))), 2, "64 bytes"),
            ("name,type\n".to_string(), 1, "header"),
            (
                format!("{header}\nA,x,u,0,~1s,u,1,4000000000,1,0,0\n"),
                2,
                "rounds",
            ),
        ];
        for (text, line, word) in cases {
            let f = write(&text);
            let e = Catalog::with_file(f.path()).unwrap_err();
            let shown = e.to_string();
            assert!(
                matches!(e, CatalogFileError::Row { line: l, .. } if l == line),
                "{shown}"
            );
            assert!(shown.contains(word), "{shown}");
            assert!(shown.contains(&f.path().display().to_string()), "{shown}");
        }
        let e = Catalog::with_file(Path::new("/nonexistent/catalog.csv")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/catalog.csv"), "{e}");
    }

    #[test]
    fn a_row_round_trips_and_samples_are_known() {
        for f in &catalog().functions {
            let text = format!("{}\n{}\n", catalog_header(), f.catalog_row());
            assert_eq!(&Catalog::parse(&text).unwrap().functions[0], f);
            assert!(f.is_sample());
        }
        let text = format!(
            "{}\nF1,x,unknown,0.5,~1s,none,1000,1,30,70,0,512\n",
            catalog_header()
        );
        let f = &Catalog::parse(&text).unwrap().functions[0];
        assert!(!f.is_sample());
        assert_eq!(f.cpu_share(), 0.3);
        assert_eq!(catalog().get("noop").unwrap().cpu_share(), 0.0);
    }

    #[test]
    fn bad_rows_name_their_line() {
        let text = "header\nW1,WebServer,Java8,1,~1s,x,10,1,5,0,0\nW2,WebServer\n";
        assert_eq!(Catalog::parse(text).unwrap_err().line, 3);
        let text = "header\nT9,T,N,1,~3s,x,10,3,0,1;2,0\n";
        assert!(Catalog::parse(text)
            .unwrap_err()
            .message
            .contains("2 sleeps"));
    }
}
