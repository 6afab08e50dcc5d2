//! Scenario CSV: one invocation per row, `FunctionName,StartTimeMs`, no
//! header, as the original's `events.csv` (e.g. `W1,0` then `W1,1000`).
//!
//! Rows need not be sorted; readers keep file order and callers that replay
//! sort stably by start time. Blank lines are skipped, and so is a UTF-8
//! byte-order mark at the start. Any other malformed row is an error naming
//! the source, the 1-based line and, for a bad value, the column.
//!
//! **Per-invocation columns.** A scenario may carry, on *every* row, a third
//! column `DurationMs` (how long this call runs, in milliseconds, decimals
//! allowed) and optionally a fourth, `MemoryMb` (the memory it uses, whole
//! MB): `F1,0,12.5,256`. Imported traces (`utils import`) are written this
//! way. The first two columns stay the original's, so the original's tools,
//! which read only those, still read such a file. Every row of a file has
//! the same number of columns (2, 3 or 4): a row that differs from the
//! first is an error, never a silent default.

use std::fmt::Write as _;

/// Latest start a scenario may give: 100 years of 365.25 days, in ms.
/// The simulator keeps time in whole microseconds and shares a node's
/// cores in `f64` microseconds, exact to the microsecond below 2^53 µs
/// (285 years); a start past a century is a typo, not a workload (before
/// this bound, a start near `u64::MAX` ms overflowed the microsecond
/// clock and `simulator des` never ended).
pub const MAX_START_MS: u64 = 3_155_760_000_000;
/// Longest per-invocation duration a scenario may give: one day.
pub const MAX_DURATION_MS: f64 = 86_400_000.0;
/// Largest per-invocation memory a scenario may give: 1 TB.
pub const MAX_MEMORY_MB: u32 = 1 << 20;

/// One scheduled invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioEvent {
    pub function: String,
    /// Milliseconds after the scenario's start.
    pub start_ms: u64,
    /// What the file says about this call beyond the original's two
    /// columns (None: a two-column file).
    pub shape: Option<CallShape>,
}

impl ScenarioEvent {
    /// A call with the original's two columns only.
    pub fn new(function: impl Into<String>, start_ms: u64) -> Self {
        Self {
            function: function.into(),
            start_ms,
            shape: None,
        }
    }
}

/// The per-invocation columns of a scenario row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallShape {
    /// `DurationMs`, in microseconds (the column is in milliseconds with up
    /// to three decimals).
    pub duration_us: u64,
    /// `MemoryMb`, when the file has a fourth column.
    pub memory_mb: Option<u32>,
}

impl CallShape {
    pub fn duration_ms(&self) -> f64 {
        self.duration_us as f64 / 1000.0
    }
}

/// A malformed scenario row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}:{line}: {message}")]
pub struct ScenarioError {
    /// The file (or other source) the row came from.
    pub source_name: String,
    /// 1-based line number.
    pub line: usize,
    pub message: String,
}

const COLUMNS: [&str; 4] = ["FunctionName", "StartTimeMs", "DurationMs", "MemoryMb"];

/// [`parse`] of a file's bytes: text that is not UTF-8 is an error naming
/// the line of its first bad byte (not the whole file's "stream did not
/// contain valid UTF-8").
pub fn parse_bytes(bytes: Vec<u8>, source_name: &str) -> Result<Vec<ScenarioEvent>, ScenarioError> {
    let text = crate::text::from_utf8(bytes).map_err(|e| ScenarioError {
        source_name: source_name.to_string(),
        line: e.line,
        message: "not UTF-8 text".into(),
    })?;
    parse(&text, source_name)
}

/// Parses a whole scenario. `source_name` (usually the file path) is only
/// used in error messages.
pub fn parse(text: &str, source_name: &str) -> Result<Vec<ScenarioEvent>, ScenarioError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut events = Vec::new();
    // Column count of the first row: every other row must match it.
    let mut width: Option<usize> = None;
    for (index, raw) in text.lines().enumerate() {
        let row = raw.trim();
        if row.is_empty() {
            continue;
        }
        let err = |message: String| ScenarioError {
            source_name: source_name.to_string(),
            line: index + 1,
            message,
        };
        let fields: Vec<&str> = row.splitn(5, ',').map(str::trim).collect();
        if !(2..=4).contains(&fields.len()) {
            return Err(err(format!(
                "expected `FunctionName,StartTimeMs` (optionally `,DurationMs[,MemoryMb]`), found {row:?}"
            )));
        }
        match width {
            None => width = Some(fields.len()),
            Some(w) if w != fields.len() => {
                return Err(err(format!(
                    "{} columns where the first row has {w}: every row of a scenario has the same columns ({})",
                    fields.len(),
                    COLUMNS[..w].join(",")
                )))
            }
            Some(_) => {}
        }
        let function = fields[0];
        if function.is_empty() || function.chars().any(is_not_in_a_name) {
            return Err(err(format!(
                "column 1 (FunctionName): bad function name {function:?} (empty, or with white space, a control character or a byte-order mark)"
            )));
        }
        let start = fields[1];
        let start_ms = start_ms(start).ok_or_else(|| {
            err(format!(
                "column 2 (StartTimeMs): {start:?} is not a whole number of milliseconds in 0..={MAX_START_MS} (100 years)"
            ))
        })?;
        let shape = match fields.get(2) {
            None => None,
            Some(d) => {
                let duration_us = duration_us(d).ok_or_else(|| {
                    err(format!(
                        "column 3 (DurationMs): {d:?} is not a number of milliseconds in 0..={MAX_DURATION_MS}"
                    ))
                })?;
                let memory_mb = match fields.get(3) {
                    None => None,
                    Some(m) => Some(memory_mb(m).ok_or_else(|| {
                        err(format!(
                            "column 4 (MemoryMb): {m:?} is not a whole number of MB in 1..={MAX_MEMORY_MB}"
                        ))
                    })?),
                };
                Some(CallShape {
                    duration_us,
                    memory_mb,
                })
            }
        };
        events.push(ScenarioEvent {
            function: function.to_string(),
            start_ms,
            shape,
        });
    }
    Ok(events)
}

/// A `StartTimeMs` field's value: a whole number of milliseconds in
/// `0..=MAX_START_MS` (as Rust parses a `u64`); None for anything else.
pub fn start_ms(field: &str) -> Option<u64> {
    field.parse::<u64>().ok().filter(|&ms| ms <= MAX_START_MS)
}

/// A `DurationMs` field's value, in µs: a finite number of milliseconds
/// in `0..=MAX_DURATION_MS` (as Rust parses an `f64`), rounded to the
/// microsecond; None for anything else.
pub fn duration_us(field: &str) -> Option<u64> {
    field
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && (0.0..=MAX_DURATION_MS).contains(v))
        .map(|ms| (ms * 1000.0).round() as u64)
}

/// A `MemoryMb` field's value: a whole number of MB in
/// `1..=MAX_MEMORY_MB` (as Rust parses a `u32`); None for anything else.
pub fn memory_mb(field: &str) -> Option<u32> {
    field
        .parse::<u32>()
        .ok()
        .filter(|v| (1..=MAX_MEMORY_MB).contains(v))
}

/// Characters a function name may not hold: white space and control
/// characters (they end or break a row), and U+FEFF, a byte-order mark,
/// which a reader strips at the start of a file (a name starting with one
/// would not read back the same; found by the mutation test).
fn is_not_in_a_name(c: char) -> bool {
    c.is_whitespace() || c.is_control() || c == '\u{feff}'
}

/// Writes events in the original format (no header, `\n` line ends), with
/// the per-invocation columns of the events that have them.
pub fn to_csv(events: &[ScenarioEvent]) -> String {
    let mut out = String::with_capacity(events.len() * 12);
    for e in events {
        let _ = write!(out, "{},{}", e.function, e.start_ms);
        if let Some(shape) = e.shape {
            let _ = write!(out, ",{}", shape.duration_ms());
            if let Some(mb) = shape.memory_mb {
                let _ = write!(out, ",{mb}");
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL_SMALL: &str = "W1,0\nW1,1000\nW2,2000\nW1,3000\n";

    #[test]
    fn round_trips_the_original_small_scenario() {
        let events = parse(ORIGINAL_SMALL, "events_small.csv").unwrap();
        assert_eq!(events.len(), 4);
        assert_eq!(events[2], ScenarioEvent::new("W2", 2000));
        assert_eq!(to_csv(&events), ORIGINAL_SMALL);
    }

    #[test]
    fn tolerates_crlf_and_blank_lines() {
        let events = parse("W1,5\r\n\r\nD8, 7\n", "x").unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].start_ms, 7);
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = parse("W1,0\nW2,abc\n", "s.csv").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().starts_with("s.csv:2: "), "{e}");
        assert_eq!(parse("W1\n", "s.csv").unwrap_err().line, 1);
        let e = parse("W1,0\n\nW1,2,3\n", "s.csv").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("same columns"), "{e}");
        assert_eq!(parse(",0\n", "s.csv").unwrap_err().line, 1);
        assert_eq!(parse("W1,-5\n", "s.csv").unwrap_err().line, 1);
        let e = parse_bytes(b"W1,0\nW2,1\nW\xff3,2\n".to_vec(), "s.csv").unwrap_err();
        assert_eq!(e.to_string(), "s.csv:3: not UTF-8 text");
        assert_eq!(parse_bytes(b"W1,0\n".to_vec(), "s.csv").unwrap().len(), 1);
    }

    #[test]
    fn a_start_past_a_century_is_an_error() {
        let last = format!("W1,{MAX_START_MS}\n");
        assert_eq!(parse(&last, "s.csv").unwrap()[0].start_ms, MAX_START_MS);
        // Before the bound, these read; `simulator des` never ended on
        // the first (its microsecond clock saturated).
        for start in [MAX_START_MS + 1, u64::MAX / 1000, u64::MAX] {
            let e = parse(&format!("W1,0\nW1,{start}\n"), "s.csv").unwrap_err();
            assert_eq!(e.line, 2);
            assert!(e.message.contains("column 2 (StartTimeMs)"), "{e}");
            assert!(e.message.contains("100 years"), "{e}");
        }
    }

    #[test]
    fn reads_and_writes_per_invocation_columns() {
        let text = "\u{feff}F1,0,12.5,256\nF2,7,0.001,128\n";
        let events = parse(text, "t.csv").unwrap();
        assert_eq!(
            events[0].shape,
            Some(CallShape {
                duration_us: 12_500,
                memory_mb: Some(256)
            })
        );
        assert_eq!(events[1].shape.unwrap().duration_us, 1);
        assert_eq!(to_csv(&events), "F1,0,12.5,256\nF2,7,0.001,128\n");
        let three = parse("F1,0,3\n", "t.csv").unwrap();
        assert_eq!(three[0].shape.unwrap().memory_mb, None);
        assert_eq!(to_csv(&three), "F1,0,3\n");
    }

    #[test]
    fn a_second_byte_order_mark_or_a_control_character_is_not_a_name() {
        // One mark is the file's; a second would be kept in the first
        // function's name, which `to_csv` then writes at the start of a
        // file, where the reader strips it (fuzz/regressions/scenario/).
        for text in [
            "\u{feff}\u{feff}W1,0,3\n",
            "W1,0\nW\u{feff}2,1\n",
            "W\u{1}1,0\n",
        ] {
            let e = parse(text, "t.csv").unwrap_err();
            assert!(e.message.contains("column 1"), "{text:?}: {e}");
        }
        assert_eq!(parse("\u{feff}W1,0\n", "t.csv").unwrap()[0].function, "W1");
    }

    #[test]
    fn bad_per_invocation_values_name_the_column() {
        for (text, column) in [
            ("F1,0,x,1\n", "column 3"),
            ("F1,0,-1\n", "column 3"),
            ("F1,0,1e300\n", "column 3"),
            ("F1,0,NaN\n", "column 3"),
            ("F1,0,1,0\n", "column 4"),
            ("F1,0,1,4294967295\n", "column 4"),
            ("F1,x,1,1\n", "column 2"),
        ] {
            let e = parse(text, "t.csv").unwrap_err();
            assert!(e.to_string().starts_with("t.csv:1: "), "{e}");
            assert!(e.message.contains(column), "{text:?}: {e}");
        }
        assert_eq!(parse("F1,0,1,1,1\n", "t.csv").unwrap_err().line, 1);
        assert_eq!(parse("F1,0,1\nF1,1\n", "t.csv").unwrap_err().line, 2);
    }
}
