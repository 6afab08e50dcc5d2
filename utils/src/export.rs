//! `utils export`: replay logs as one CSV, one row per call (failed calls
//! included), for pandas, R or a spreadsheet.
//!
//! Columns, in this order:
//! - `date`, `time`, `start_ms`, `end_ms`, `function`: the log line's
//!   fields ([`protocol::LogLine`]);
//! - `ok` (`true` unless the JSON is an error reply) and `error_class`
//!   ([`ErrorClass`], empty for a successful call);
//! - every field of the logged JSON, nested objects flattened with dotted
//!   names: first the balancer reply's fields in the reply's order
//!   ([`REPLY_COLUMNS`]: `Result.statusCode`, ..., `Meta.ImageBuilt`, ...,
//!   `LoadBalancingInfo.WorkerNodeId`, ..., then `Error`, `Message`), always
//!   present; then any other field found in the logs, in order of first
//!   appearance. Strings are written as they are, numbers and booleans
//!   (`true`/`false`) as JSON writes them, `null` as an empty cell, arrays as
//!   JSON text;
//! - `run`: the run's label (as `utils compare` names it);
//! - `algorithm` and `seed`, from the runs' sidecars (`<log>.meta.json`),
//!   when at least one log has a sidecar (empty for a log without).
//!
//! Memory stays bounded for any log size: a first pass over the logs finds
//! the columns (and each run's label), a second writes the rows; no log is
//! held in memory. Lines that are not calls (not the log format, or JSON
//! that is not an object) are skipped and counted ([`ExportSummary`]).
//!
//! The output is never replaced unless asked ([`export_csv`]'s
//! `overwrite`). Parquet is not written: read the CSV with
//! `pandas.read_csv(...).to_parquet(...)` if you need it.

use std::collections::HashSet;
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};

use crate::logs::{error_message, read_sidecar, ErrorClass, ReadLogError};

/// The balancer reply's fields (and the error reply's), flattened, in the
/// reply's order: always columns of an export.
pub const REPLY_COLUMNS: [&str; 15] = [
    "Result.statusCode",
    "Result.body",
    "ExecutionTime",
    "InternalExecutionTime",
    "Meta.ImageBuilt",
    "Meta.UsingPooledContainer",
    "Meta.UsingExistingRestContainer",
    "Meta.ContainerName",
    "Meta.ImageName",
    "LoadBalancingInfo.WorkerNodeId",
    "LoadBalancingInfo.WorkerNodeUrl",
    "LoadBalancingInfo.Algorithm",
    "LoadBalancingInfo.AlgorithmLatency",
    "Error",
    "Message",
];

/// The columns before the JSON's fields.
pub const LINE_COLUMNS: [&str; 7] = [
    "date",
    "time",
    "start_ms",
    "end_ms",
    "function",
    "ok",
    "error_class",
];

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Read(#[from] ReadLogError),
    #[error("{0} exists; pass --overwrite to replace it")]
    Exists(PathBuf),
    #[error("{0} is one of the logs to export; choose another output")]
    OutputIsInput(PathBuf),
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// Rows written (calls, failed ones included).
    pub rows: usize,
    /// Of them, failed calls.
    pub failed: usize,
    /// Lines skipped as unreadable, per log (path, count), logs with none
    /// left out.
    pub skipped: Vec<(PathBuf, usize)>,
    pub columns: Vec<String>,
}

/// A JSON line's fields flattened: (dotted name, cell text).
fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&name, v, out);
            }
        }
        Value::Null => out.push((prefix.to_string(), String::new())),
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// A readable call line: its log fields and its JSON object.
fn read_call(raw: &str) -> Option<(protocol::LogLine, serde_json::Value)> {
    let line = protocol::LogLine::parse(raw).ok()?;
    let json: serde_json::Value = serde_json::from_str(&line.json).ok()?;
    json.is_object().then_some((line, json))
}

/// Calls `each` with every non-blank line of `path`; returns how many
/// lines were unreadable as calls.
fn for_each_call(
    path: &Path,
    mut each: impl FnMut(protocol::LogLine, serde_json::Value) -> Result<(), ExportError>,
) -> Result<usize, ExportError> {
    let io = |source| ReadLogError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let mut buf = Vec::new();
    let mut skipped = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).map_err(io)? == 0 {
            return Ok(skipped);
        }
        let raw = String::from_utf8_lossy(&buf);
        if raw.trim().is_empty() {
            continue;
        }
        match read_call(&raw) {
            Some((line, json)) => each(line, json)?,
            None => skipped += 1,
        }
    }
}

/// What the first pass learns about one log.
struct RunInfo {
    label: String,
    algorithm: Option<String>,
    seed: Option<u64>,
    has_sidecar: bool,
}

/// Writes `logs` as one CSV at `out` (see the module doc), refusing to
/// replace an existing `out` unless `overwrite`.
pub fn export_csv(
    logs: &[PathBuf],
    out: &Path,
    overwrite: bool,
) -> Result<ExportSummary, ExportError> {
    if out.exists() {
        if !overwrite {
            return Err(ExportError::Exists(out.to_path_buf()));
        }
        let target = out.canonicalize().ok();
        if logs.iter().any(|l| l.canonicalize().ok() == target) {
            return Err(ExportError::OutputIsInput(out.to_path_buf()));
        }
    }

    // Pass 1: the columns, and each run's label.
    let mut extra: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = REPLY_COLUMNS.iter().map(|c| c.to_string()).collect();
    let mut runs = Vec::with_capacity(logs.len());
    let mut skipped = Vec::new();
    for path in logs {
        let sidecar = read_sidecar(path)?;
        // The label as RunLog::label gives it: the sidecar's algorithm, the
        // one algorithm the calls name, or the file name.
        let mut named: Option<Option<String>> = None;
        let mut fields = Vec::new();
        let bad = for_each_call(path, |_, json| {
            if let Some(a) = json
                .pointer("/LoadBalancingInfo/Algorithm")
                .and_then(|a| a.as_str())
                .filter(|a| !a.is_empty())
            {
                named = match named.take() {
                    None => Some(Some(a.to_string())),
                    Some(Some(b)) if b == a => Some(Some(b)),
                    Some(_) => Some(None),
                };
            }
            fields.clear();
            flatten("", &json, &mut fields);
            for (name, _) in fields.drain(..) {
                if !seen.contains(&name) {
                    seen.insert(name.clone());
                    extra.push(name);
                }
            }
            Ok(())
        })?;
        if bad > 0 {
            skipped.push((path.clone(), bad));
        }
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let algorithm = sidecar
            .as_ref()
            .and_then(|s| s.algorithm.clone())
            .filter(|a| !a.is_empty());
        runs.push(RunInfo {
            label: algorithm.clone().or(named.flatten()).unwrap_or(stem),
            algorithm,
            seed: sidecar.as_ref().and_then(|s| s.seed),
            has_sidecar: sidecar.is_some(),
        });
    }
    let labels = crate::compare::unique_labels(
        &runs
            .iter()
            .zip(logs)
            .map(|(r, p)| (r.label.clone(), p.display().to_string()))
            .collect::<Vec<_>>(),
    );
    let with_sidecar_columns = runs.iter().any(|r| r.has_sidecar);

    let mut columns: Vec<String> = LINE_COLUMNS.iter().map(|c| c.to_string()).collect();
    let json_columns: Vec<String> = REPLY_COLUMNS
        .iter()
        .map(|c| c.to_string())
        .chain(extra)
        .collect();
    columns.extend(json_columns.iter().cloned());
    columns.push("run".into());
    if with_sidecar_columns {
        columns.push("algorithm".into());
        columns.push("seed".into());
    }
    let index: std::collections::HashMap<&str, usize> = json_columns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();

    // Pass 2: the rows.
    let write_err = |e: &dyn std::fmt::Display| ExportError::Write {
        path: out.to_path_buf(),
        message: e.to_string(),
    };
    let file = if overwrite {
        std::fs::File::create(out)
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(out)
    }
    .map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            ExportError::Exists(out.to_path_buf())
        } else {
            write_err(&e)
        }
    })?;
    let mut writer = csv::Writer::from_writer(std::io::BufWriter::with_capacity(1 << 16, file));
    writer.write_record(&columns).map_err(|e| write_err(&e))?;
    let (mut rows, mut failed) = (0, 0);
    let mut cells: Vec<String> = vec![String::new(); columns.len()];
    let mut fields = Vec::new();
    for ((path, run), label) in logs.iter().zip(&runs).zip(&labels) {
        for_each_call(path, |line, json| {
            for c in cells.iter_mut() {
                c.clear();
            }
            let error = error_message(&json);
            cells[0] = line.date;
            cells[1] = line.time;
            cells[2] = line.start_ms.to_string();
            cells[3] = line.end_ms.to_string();
            cells[4] = line.function;
            cells[5] = error.is_none().to_string();
            if let Some(message) = &error {
                cells[6] = ErrorClass::of_message(message).as_str().to_string();
                failed += 1;
            }
            fields.clear();
            flatten("", &json, &mut fields);
            for (name, value) in fields.drain(..) {
                if let Some(&i) = index.get(name.as_str()) {
                    cells[LINE_COLUMNS.len() + i] = value;
                }
            }
            let tail = LINE_COLUMNS.len() + json_columns.len();
            cells[tail] = label.clone();
            if with_sidecar_columns {
                cells[tail + 1] = run.algorithm.clone().unwrap_or_default();
                cells[tail + 2] = run.seed.map(|s| s.to_string()).unwrap_or_default();
            }
            rows += 1;
            writer.write_record(&cells).map_err(|e| write_err(&e))
        })?;
    }
    let mut inner = writer.into_inner().map_err(|e| write_err(&e.error()))?;
    inner.flush().map_err(|e| write_err(&e))?;
    Ok(ExportSummary {
        rows,
        failed,
        skipped,
        columns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_fields_get_dotted_names() {
        let json = serde_json::json!({
            "Result": {"statusCode": 200, "body": "a,b"},
            "Meta": {"ImageBuilt": true, "Deep": {"x": null}},
            "List": [1, 2]
        });
        let mut out = Vec::new();
        flatten("", &json, &mut out);
        let get = |k: &str| out.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("Result.statusCode"), Some("200"));
        assert_eq!(get("Result.body"), Some("a,b"));
        assert_eq!(get("Meta.ImageBuilt"), Some("true"));
        assert_eq!(get("Meta.Deep.x"), Some(""));
        assert_eq!(get("List"), Some("[1,2]"));
    }
}
