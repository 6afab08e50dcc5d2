//! Scenario CSV: one invocation per row, `FunctionName,StartTimeMs`, no
//! header, as the original's `events.csv` (e.g. `W1,0` then `W1,1000`).
//!
//! Rows need not be sorted; readers keep file order and callers that replay
//! sort stably by start time. Blank lines are skipped. Any other malformed
//! row is an error naming the source and the 1-based line.

use std::fmt::Write as _;

/// One scheduled invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioEvent {
    pub function: String,
    /// Milliseconds after the scenario's start.
    pub start_ms: u64,
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

/// Parses a whole scenario. `source_name` (usually the file path) is only
/// used in error messages.
pub fn parse(text: &str, source_name: &str) -> Result<Vec<ScenarioEvent>, ScenarioError> {
    let mut events = Vec::new();
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
        let mut fields = row.split(',');
        let (Some(function), Some(start), None) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(err(format!(
                "expected `FunctionName,StartTimeMs`, found {row:?}"
            )));
        };
        let function = function.trim();
        if function.is_empty() || function.chars().any(char::is_whitespace) {
            return Err(err(format!("bad function name {function:?}")));
        }
        let start = start.trim();
        let start_ms = start.parse::<u64>().map_err(|_| {
            err(format!(
                "start time {start:?} is not a whole, non-negative number of milliseconds"
            ))
        })?;
        events.push(ScenarioEvent {
            function: function.to_string(),
            start_ms,
        });
    }
    Ok(events)
}

/// Writes events in the original format (no header, `\n` line ends).
pub fn to_csv(events: &[ScenarioEvent]) -> String {
    let mut out = String::with_capacity(events.len() * 12);
    for e in events {
        let _ = writeln!(out, "{},{}", e.function, e.start_ms);
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
        assert_eq!(
            events[2],
            ScenarioEvent {
                function: "W2".into(),
                start_ms: 2000
            }
        );
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
        assert_eq!(parse("W1,0\n\nW1,2,3\n", "s.csv").unwrap_err().line, 3);
        assert_eq!(parse(",0\n", "s.csv").unwrap_err().line, 1);
        assert_eq!(parse("W1,-5\n", "s.csv").unwrap_err().line, 1);
    }
}
