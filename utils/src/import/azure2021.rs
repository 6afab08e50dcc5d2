//! `utils import azure2021`: the Azure Functions Invocation Trace 2021 (one
//! row per call) as a scenario (the design choices are in the
//! [parent module](super)).

use std::collections::HashMap;
use std::path::PathBuf;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::sample::{Picker, MINUTE_MS};
use super::table::Table;
use super::{
    check_defaults, check_functions, commit, duration_us, write_call, AzureIds, CatalogDefaults,
    CatalogRow, ImportError, ImportMeta, ImportNotes, ImportParameters, ImportedFunction,
    MinuteWindow, Outputs, PendingFile, Pick, SourceFile,
};

const COLUMNS: [&str; 4] = ["app", "func", "end_timestamp", "duration"];

/// Everything that determines an Azure 2021 import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Azure2021Config {
    /// The trace (`AzureFunctionsInvocationTraceForTwoWeeksJan2021.txt`).
    pub file: PathBuf,
    /// Minutes from timestamp 0; a call belongs to the window its start
    /// (end − duration) falls in. None: every call from timestamp 0 on.
    pub window: Option<MinuteWindow>,
    pub functions: usize,
    pub pick: Pick,
    /// Only `random` and `stratified` picks draw from it.
    pub seed: u64,
    /// Every call's memory, MB (the trace has none).
    pub memory_mb: u32,
    pub catalog: CatalogDefaults,
}

impl Azure2021Config {
    /// The whole trace, the 100 most called functions, 256 MB, seed 0.
    pub fn new(file: PathBuf) -> Self {
        Self {
            file,
            window: None,
            functions: 100,
            pick: Pick::Top,
            seed: 0,
            memory_mb: sample_functions::catalog::DEFAULT_MEMORY_MB,
            catalog: CatalogDefaults::default(),
        }
    }
}

/// One call of a picked function, compact: start in µs after the window's
/// start, the function's rank, the duration in µs.
#[derive(Debug, Clone, Copy)]
struct Call {
    start_us: u64,
    duration_us: u64,
    rank: u32,
}

/// A row's start (end − duration) and duration, in seconds.
fn read_row(table: &Table) -> Result<(f64, f64), ImportError> {
    let end = table.non_negative(2)?;
    let duration = table.non_negative(3)?;
    Ok((end - duration, duration))
}

/// `app` and `func` joined by a NUL: one map key without two strings.
fn join_key(buf: &mut String, table: &Table) -> Result<(), ImportError> {
    buf.clear();
    buf.push_str(table.text(0)?);
    buf.push('\0');
    buf.push_str(table.text(1)?);
    Ok(())
}

/// Imports the trace into `outputs`; returns the sidecar written.
pub fn import(config: &Azure2021Config, outputs: &Outputs) -> Result<ImportMeta, ImportError> {
    check_functions(config.functions)?;
    check_defaults(&config.catalog)?;
    if config.memory_mb == 0 || config.memory_mb > protocol::scenario::MAX_MEMORY_MB {
        return Err(ImportError::Parameter(format!(
            "--memory-mb must be in 1..={}",
            protocol::scenario::MAX_MEMORY_MB
        )));
    }
    let in_window = |start_s: f64| -> bool {
        start_s >= 0.0
            && match config.window {
                Some(w) => {
                    start_s >= f64::from(w.start) * 60.0 && start_s < f64::from(w.end) * 60.0
                }
                None => true,
            }
    };
    let mut notes = ImportNotes::default();

    // Pass 1: calls per function in the window, in first-seen order.
    let mut counts: HashMap<String, (u64, u64)> = HashMap::new();
    let mut last_start_s: f64 = 0.0;
    let mut buf = String::new();
    let mut table = Table::open(
        &config.file,
        COLUMNS.iter().map(|s| s.to_string()).collect(),
    )?;
    while table.next_row()? {
        let (start_s, _) = read_row(&table)?;
        if start_s < 0.0 {
            notes.started_before_origin += 1;
            continue;
        }
        if !in_window(start_s) {
            continue;
        }
        last_start_s = last_start_s.max(start_s);
        join_key(&mut buf, &table)?;
        let row = table.rows;
        match counts.get_mut(buf.as_str()) {
            Some(entry) => entry.1 += 1,
            None => {
                counts.insert(buf.clone(), (row, 1));
            }
        }
    }
    let rows = table.rows;
    let (bytes, blake2b_256) = table.finish()?;
    let sources = vec![SourceFile {
        path: config.file.display().to_string(),
        bytes,
        blake2b_256,
        rows,
    }];
    let window = config.window.unwrap_or(MinuteWindow {
        start: 0,
        end: ((last_start_s / 60.0).floor() as u32).saturating_add(1),
    });

    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut candidates: Vec<(String, (u64, u64))> = counts.into_iter().collect();
    candidates.sort_by_key(|(_, (first_row, _))| *first_row);
    notes.candidates = candidates.len() as u64;
    let mut picker: Picker<String> = Picker::new(config.pick, config.functions);
    for (key, (first_row, count)) in candidates {
        picker.offer(&mut rng, count, first_row, key);
    }
    let picked = picker.finish(&mut rng);
    let rank: HashMap<&str, u32> = picked
        .iter()
        .enumerate()
        .map(|(i, p)| (p.item.as_str(), i as u32))
        .collect();

    // Pass 2: the picked functions' calls, then sorted by start.
    let origin_us = u64::from(window.start) * MINUTE_MS * 1000;
    let mut calls: Vec<Call> = Vec::new();
    let mut table = Table::open(
        &config.file,
        COLUMNS.iter().map(|s| s.to_string()).collect(),
    )?;
    while table.next_row()? {
        let (start_s, duration_s) = read_row(&table)?;
        if !in_window(start_s) {
            continue;
        }
        join_key(&mut buf, &table)?;
        let Some(&r) = rank.get(buf.as_str()) else {
            continue;
        };
        let (us, cut) = duration_us(duration_s * 1000.0);
        notes.clamped_durations += u64::from(cut);
        calls.push(Call {
            start_us: ((start_s * 1e6).round() as u64).saturating_sub(origin_us),
            duration_us: us,
            rank: r,
        });
    }
    drop(table);
    // Stable: equal (ms, function) keep file order.
    calls.sort_by_key(|c| (c.start_us / 1000, c.rank));

    let width = picked.len().to_string().len().max(3);
    let names: Vec<String> = (1..=picked.len())
        .map(|k| format!("F{k:0width$}"))
        .collect();
    let mut scenario = PendingFile::create(&outputs.scenario)?;
    let mut written = vec![0u64; picked.len()];
    for c in &calls {
        written[c.rank as usize] += 1;
        write_call(
            &mut scenario.out,
            &names[c.rank as usize],
            c.start_us / 1000,
            c.duration_us,
            config.memory_mb,
        )
        .map_err(scenario.io())?;
    }
    // Medians per function: sort the same calls by (function, duration).
    calls.sort_unstable_by_key(|c| (c.rank, c.duration_us));
    let mut medians = vec![0.0f64; picked.len()];
    let mut start = 0;
    for (r, &n) in written.iter().enumerate() {
        let n = n as usize;
        if n > 0 {
            medians[r] = calls[start + (n - 1) / 2].duration_us as f64 / 1000.0;
        }
        start += n;
    }
    drop(calls);

    let window_s = f64::from(window.minutes()) * 60.0;
    let mut functions = Vec::with_capacity(picked.len());
    let mut catalog = Vec::with_capacity(picked.len());
    for (r, p) in picked.iter().enumerate() {
        let (app, func) = p.item.split_once('\0').unwrap_or((p.item.as_str(), ""));
        let rate_per_s = written[r] as f64 / window_s;
        functions.push(ImportedFunction {
            function: names[r].clone(),
            azure: AzureIds {
                owner: None,
                app: app.to_string(),
                function: func.to_string(),
                trigger: None,
            },
            count: written[r],
            rate_per_s,
            duration_ms: vec![medians[r]],
            memory_mb: config.memory_mb,
            memory_source: "parameter".into(),
            app_functions: None,
        });
        catalog.push(CatalogRow {
            name: names[r].clone(),
            kind: "azure2021".into(),
            rate_per_s,
            median_ms: medians[r],
            memory_mb: config.memory_mb,
        });
    }
    let meta = ImportMeta {
        generator: "utils import azure2021".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        git: crate::provenance::source_revision(),
        parameters: ImportParameters::Azure2021(config.clone()),
        seed: config.seed,
        sources,
        window,
        total_events: written.iter().sum(),
        functions,
        notes,
        catalog: outputs.catalog.display().to_string(),
        command: outputs.command.clone(),
    };
    commit(scenario, &catalog, &config.catalog, outputs, &meta)?;
    Ok(meta)
}
