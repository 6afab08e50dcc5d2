//! `utils import azure2019`: one day of the Azure Functions Trace 2019 as a
//! scenario (the design choices are in the [parent module](super)).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::sample::{spread_minute, Picker, Quantiles, MINUTE_MS};
use super::table::Table;
use super::{
    check_defaults, check_functions, commit, duration_us, key, write_call, AzureIds,
    CatalogDefaults, CatalogRow, ImportError, ImportMeta, ImportNotes, ImportParameters,
    ImportedFunction, MinuteWindow, Outputs, PendingFile, Pick, SourceFile, Spread,
    MAX_CALLS_PER_MINUTE,
};

/// Minutes in the day a file covers.
pub const DAY_MINUTES: u32 = 1440;

/// Quantiles of the durations file's `percentile_Average_*` columns.
pub const DURATION_QUANTILES: [f64; 7] = [0.0, 0.01, 0.25, 0.50, 0.75, 0.99, 1.0];
/// Quantiles of the memory file's `AverageAllocatedMb_pct*` columns.
pub const MEMORY_QUANTILES: [f64; 8] = [0.01, 0.05, 0.25, 0.50, 0.75, 0.95, 0.99, 1.0];

/// The header of a durations file.
pub(crate) const DURATION_COLUMNS: [&str; 14] = [
    "HashOwner",
    "HashApp",
    "HashFunction",
    "Average",
    "Count",
    "Minimum",
    "Maximum",
    "percentile_Average_0",
    "percentile_Average_1",
    "percentile_Average_25",
    "percentile_Average_50",
    "percentile_Average_75",
    "percentile_Average_99",
    "percentile_Average_100",
];

/// The header of a memory file.
pub(crate) const MEMORY_COLUMNS: [&str; 12] = [
    "HashOwner",
    "HashApp",
    "SampleCount",
    "AverageAllocatedMb",
    "AverageAllocatedMb_pct1",
    "AverageAllocatedMb_pct5",
    "AverageAllocatedMb_pct25",
    "AverageAllocatedMb_pct50",
    "AverageAllocatedMb_pct75",
    "AverageAllocatedMb_pct95",
    "AverageAllocatedMb_pct99",
    "AverageAllocatedMb_pct100",
];

/// The header of an invocations file: the ids, the trigger, minutes 1..1440.
pub fn invocation_columns() -> Vec<String> {
    ["HashOwner", "HashApp", "HashFunction", "Trigger"]
        .iter()
        .map(|s| s.to_string())
        .chain((1..=DAY_MINUTES).map(|m| m.to_string()))
        .collect()
}

/// The three files of day `day` in `dir`: invocations, durations, memory.
pub fn day_files(dir: &Path, day: u8) -> [PathBuf; 3] {
    [
        dir.join(format!("invocations_per_function_md.anon.d{day:02}.csv")),
        dir.join(format!("function_durations_percentiles.anon.d{day:02}.csv")),
        dir.join(format!("app_memory_percentiles.anon.d{day:02}.csv")),
    ]
}

/// Everything that determines an Azure 2019 import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Azure2019Config {
    /// The directory holding the day's three files.
    pub dir: PathBuf,
    /// 1..=14.
    pub day: u8,
    /// Minutes of the day (0 = column `1`).
    pub window: MinuteWindow,
    /// How many functions to pick.
    pub functions: usize,
    pub pick: Pick,
    pub spread: Spread,
    pub seed: u64,
    /// Memory of a function whose app has no memory row, MB.
    pub default_memory_mb: u32,
    pub catalog: CatalogDefaults,
}

impl Azure2019Config {
    /// Day 1, the whole day, the 100 most called functions, uniform, seed 0.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            day: 1,
            window: MinuteWindow {
                start: 0,
                end: DAY_MINUTES,
            },
            functions: 100,
            pick: Pick::Top,
            spread: Spread::Uniform,
            seed: 0,
            default_memory_mb: sample_functions::catalog::DEFAULT_MEMORY_MB,
            catalog: CatalogDefaults::default(),
        }
    }
}

/// A function that may be picked.
#[derive(Debug)]
struct Candidate {
    owner: String,
    app: String,
    function: String,
    trigger: String,
    /// Calls in each minute of the window.
    counts: Box<[u32]>,
}

/// Imports one day into `outputs`; returns the sidecar written.
pub fn import(config: &Azure2019Config, outputs: &Outputs) -> Result<ImportMeta, ImportError> {
    if !(1..=14).contains(&config.day) {
        return Err(ImportError::Parameter(format!(
            "--day must be 1..=14 (the trace's days), got {}",
            config.day
        )));
    }
    if config.window.end > DAY_MINUTES || config.window.start >= config.window.end {
        return Err(ImportError::Parameter(format!(
            "--minutes must lie in 0..{DAY_MINUTES}, got {}..{}",
            config.window.start, config.window.end
        )));
    }
    if config.default_memory_mb == 0 || config.default_memory_mb > protocol::scenario::MAX_MEMORY_MB
    {
        return Err(ImportError::Parameter(format!(
            "--default-memory-mb must be in 1..={}",
            protocol::scenario::MAX_MEMORY_MB
        )));
    }
    check_functions(config.functions)?;
    check_defaults(&config.catalog)?;
    let [invocations_path, durations_path, memory_path] = day_files(&config.dir, config.day);
    let mut notes = ImportNotes::default();
    let mut sources = Vec::new();

    // Durations: one entry per function.
    let mut durations: HashMap<u64, [f64; 7]> = HashMap::new();
    let mut table = Table::open(&durations_path, columns(&DURATION_COLUMNS))?;
    while table.next_row()? {
        let k = key(&[table.raw(0), table.raw(1), table.raw(2)]);
        if durations.contains_key(&k) {
            notes.duplicate_rows += 1;
            continue;
        }
        let mut q = [0.0; 7];
        for (i, v) in q.iter_mut().enumerate() {
            *v = table.non_negative(7 + i)?;
        }
        durations.insert(k, q);
    }
    sources.push(source(table, &durations_path)?);

    // Memory: one entry per app; the file may be absent (days 13, 14).
    let mut memory: HashMap<u64, [f64; 8]> = HashMap::new();
    let memory_present = memory_path.exists();
    if memory_present {
        let mut table = Table::open(&memory_path, columns(&MEMORY_COLUMNS))?;
        while table.next_row()? {
            let k = key(&[table.raw(0), table.raw(1)]);
            if memory.contains_key(&k) {
                notes.duplicate_rows += 1;
                continue;
            }
            let mut q = [0.0; 8];
            for (i, v) in q.iter_mut().enumerate() {
                *v = table.non_negative(4 + i)?;
            }
            memory.insert(k, q);
        }
        sources.push(source(table, &memory_path)?);
    }

    // Invocations: one row at a time, picking as we go.
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut picker: Picker<Candidate> = Picker::new(config.pick, config.functions);
    let mut app_functions: HashMap<u64, u32> = HashMap::new();
    let mut seen: HashSet<u64> = HashSet::new();
    let (w0, w1) = (config.window.start as usize, config.window.end as usize);
    let mut table = Table::open(&invocations_path, invocation_columns())?;
    let mut window_counts = vec![0u32; w1 - w0];
    while table.next_row()? {
        let fkey = key(&[table.raw(0), table.raw(1), table.raw(2)]);
        if !seen.insert(fkey) {
            notes.duplicate_rows += 1;
            continue;
        }
        *app_functions
            .entry(key(&[table.raw(0), table.raw(1)]))
            .or_insert(0) += 1;
        let mut total: u64 = 0;
        for minute in 0..DAY_MINUTES as usize {
            let column = 4 + minute;
            let n = table.count(column)?;
            if n > MAX_CALLS_PER_MINUTE {
                return Err(table.cell_error(
                    column,
                    format!("{n} calls in one minute is above the importer's cap of {MAX_CALLS_PER_MINUTE}"),
                ));
            }
            if (w0..w1).contains(&minute) {
                window_counts[minute - w0] = n as u32;
                total += n;
            }
        }
        if total == 0 {
            continue;
        }
        if !durations.contains_key(&fkey) {
            notes.without_durations += 1;
            continue;
        }
        notes.candidates += 1;
        let candidate = Candidate {
            owner: table.text(0)?.to_string(),
            app: table.text(1)?.to_string(),
            function: table.text(2)?.to_string(),
            trigger: table.text(3)?.to_string(),
            counts: window_counts.clone().into_boxed_slice(),
        };
        picker.offer(&mut rng, total, table.rows, candidate);
    }
    sources.insert(0, source(table, &invocations_path)?);
    let picked = picker.finish(&mut rng);

    // Each picked function's distributions.
    struct Shape {
        name: String,
        duration: Quantiles,
        /// The app's memory and its function count.
        memory: Option<(Quantiles, u32)>,
    }
    let width = picked.len().to_string().len().max(3);
    let shapes: Vec<Shape> = picked
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let c = &p.item;
            let fkey = key(&[c.owner.as_bytes(), c.app.as_bytes(), c.function.as_bytes()]);
            let akey = key(&[c.owner.as_bytes(), c.app.as_bytes()]);
            let d = durations.get(&fkey).copied().unwrap_or_default();
            let knots: Vec<(f64, f64)> = DURATION_QUANTILES.iter().copied().zip(d).collect();
            let memory = memory.get(&akey).map(|m| {
                let knots: Vec<(f64, f64)> = MEMORY_QUANTILES.iter().copied().zip(*m).collect();
                (
                    Quantiles::new(&knots),
                    app_functions.get(&akey).copied().unwrap_or(1).max(1),
                )
            });
            Shape {
                name: format!("F{:0width$}", i + 1),
                duration: Quantiles::new(&knots),
                memory,
            }
        })
        .collect();
    drop(durations);
    drop(memory);

    // The calls, minute by minute, in time order.
    let mut scenario = PendingFile::create(&outputs.scenario)?;
    let mut written = vec![0u64; shapes.len()];
    let mut write_error = None;
    let mut clamped = 0u64;
    let mut minute_counts = vec![0u64; shapes.len()];
    for minute in 0..config.window.minutes() as usize {
        for (slot, p) in minute_counts.iter_mut().zip(&picked) {
            *slot = u64::from(p.item.counts[minute]);
        }
        let base = minute as u64 * MINUTE_MS;
        spread_minute(&minute_counts, config.spread, &mut rng, |offset, i, rng| {
            let shape = &shapes[i];
            let (us, cut) = duration_us(shape.duration.at(rng.gen()));
            clamped += u64::from(cut);
            let mb = match &shape.memory {
                Some((q, n)) => share_mb(q.at(rng.gen()), *n),
                None => config.default_memory_mb,
            };
            written[i] += 1;
            if write_error.is_none() {
                if let Err(e) = write_call(&mut scenario.out, &shape.name, base + offset, us, mb) {
                    write_error = Some(e);
                }
            }
        });
        if let Some(e) = write_error.take() {
            return Err(scenario.io()(e));
        }
    }
    notes.clamped_durations = clamped;

    let window_s = f64::from(config.window.minutes()) * 60.0;
    let mut functions = Vec::with_capacity(shapes.len());
    let mut catalog = Vec::with_capacity(shapes.len());
    for ((p, shape), count) in picked.iter().zip(&shapes).zip(&written) {
        let c = &p.item;
        notes.repaired_percentiles += u64::from(shape.duration.repaired);
        let (memory_mb, memory_source, app_functions) = match &shape.memory {
            Some((q, n)) => (share_mb(q.at(1.0), *n), "app_share", Some(*n)),
            None => {
                notes.without_memory += 1;
                (config.default_memory_mb, "default", None)
            }
        };
        let rate_per_s = *count as f64 / window_s;
        functions.push(ImportedFunction {
            function: shape.name.clone(),
            azure: AzureIds {
                owner: Some(c.owner.clone()),
                app: c.app.clone(),
                function: c.function.clone(),
                trigger: Some(c.trigger.clone()),
            },
            count: *count,
            rate_per_s,
            duration_ms: DURATION_QUANTILES
                .iter()
                .map(|&q| shape.duration.at(q))
                .collect(),
            memory_mb,
            memory_source: memory_source.into(),
            app_functions,
        });
        catalog.push(CatalogRow {
            name: shape.name.clone(),
            kind: format!("azure2019-{}", catalog_word(&c.trigger)),
            rate_per_s,
            median_ms: shape.duration.at(0.5),
            memory_mb,
        });
    }
    let meta = ImportMeta {
        generator: "utils import azure2019".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        git: crate::provenance::source_revision(),
        parameters: ImportParameters::Azure2019(config.clone()),
        seed: config.seed,
        sources,
        window: config.window,
        total_events: written.iter().sum(),
        functions,
        notes,
        catalog: outputs.catalog.display().to_string(),
        command: outputs.command.clone(),
    };
    commit(scenario, &catalog, &config.catalog, outputs, &meta)?;
    Ok(meta)
}

/// A function's share of its app's memory: `app_mb / functions`, rounded,
/// in `1..=MAX_MEMORY_MB`.
pub fn share_mb(app_mb: f64, functions: u32) -> u32 {
    let share = (app_mb / f64::from(functions.max(1))).round();
    share.clamp(1.0, f64::from(protocol::scenario::MAX_MEMORY_MB)) as u32
}

/// A trigger name safe in a catalog cell (letters, digits, `-`, `_`).
fn catalog_word(s: &str) -> String {
    let w: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    if w.is_empty() {
        "unknown".into()
    } else {
        w
    }
}

fn columns(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn source(table: Table, path: &Path) -> Result<SourceFile, ImportError> {
    let rows = table.rows;
    let (bytes, blake2b_256) = table.finish()?;
    Ok(SourceFile {
        path: path.display().to_string(),
        bytes,
        blake2b_256,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_shares_round_and_stay_positive() {
        assert_eq!(share_mb(300.0, 2), 150);
        assert_eq!(share_mb(301.0, 2), 151); // 150.5 rounds away from zero
        assert_eq!(share_mb(0.0, 1), 1);
        assert_eq!(share_mb(5.0, 100), 1);
        assert_eq!(share_mb(1e300, 1), protocol::scenario::MAX_MEMORY_MB);
    }

    #[test]
    fn the_header_has_1444_columns() {
        let c = invocation_columns();
        assert_eq!(c.len(), 1444);
        assert_eq!(
            (c[3].as_str(), c[4].as_str(), c[1443].as_str()),
            ("Trigger", "1", "1440")
        );
        assert_eq!(catalog_word("http"), "http");
        assert_eq!(catalog_word("a,b c"), "abc");
    }
}
