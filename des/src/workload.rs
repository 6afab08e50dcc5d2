//! A scenario as the simulator runs it: function names interned to dense
//! ids once, at load, and arrivals as `(time, id)` pairs sorted by time
//! (stably, so equal times keep file order).
//!
//! Memory: a row costs its `(time, id)` pair (16 bytes) once loaded, and
//! one name per distinct function. [`Workload::load`] streams the file:
//! it parses [`LOAD_CHUNK_LINES`] lines at a time with the scenario
//! format's own parser (`protocol::scenario::parse`, so the format's rules
//! and errors stay in one place; line numbers are shifted to the file's),
//! so neither the file's text nor a `String` per row is ever held whole.
//!
//! Per-invocation columns (`DurationMs`, `MemoryMb`: a row's
//! `ScenarioEvent::shape`) are not simulated yet: a scenario that has them
//! is refused ([`WorkloadError::PerInvocationShape`] at load,
//! [`crate::DesError::PerInvocationShape`] from [`crate::check`]) rather
//! than run with the columns silently ignored.

use std::io::BufRead;
use std::path::Path;

use rustc_hash::FxHashMap;

use policy::Time;
use protocol::ScenarioEvent;

/// A scenario with function names interned to ids, arrivals sorted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Workload {
    pub names: Vec<String>,
    /// (arrival, function id), by time then file order.
    pub arrivals: Vec<(Time, u32)>,
    /// 1-based scenario row of each function's first call.
    first_row: Vec<usize>,
    /// 1-based row of the first call with per-invocation columns (0: none).
    first_shaped_row: usize,
}

/// Lines parsed at a time by [`Workload::load`].
pub const LOAD_CHUNK_LINES: usize = 1 << 16;

/// A scenario file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("cannot read scenario {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Parse(#[from] protocol::scenario::ScenarioError),
    #[error("{path}:{line}: the scenario has per-invocation columns (DurationMs, MemoryMb); per-invocation durations are not simulated yet: give a scenario of `FunctionName,StartTimeMs` rows and a function model (--default-function)")]
    PerInvocationShape { path: String, line: usize },
}

impl Workload {
    /// Reads a scenario CSV (`FunctionName,StartTimeMs`), streaming (see
    /// the module docs); errors name the file and line. A scenario with
    /// per-invocation columns is refused.
    pub fn load(path: &Path) -> Result<Self, WorkloadError> {
        let shown = path.display().to_string();
        let read_err = |source| WorkloadError::Read {
            path: shown.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
        let mut b = Builder::default();
        let mut chunk = String::new();
        // Lines of the file before the chunk being read.
        let mut before = 0usize;
        loop {
            chunk.clear();
            let mut lines = 0usize;
            while lines < LOAD_CHUNK_LINES {
                if reader.read_line(&mut chunk).map_err(read_err)? == 0 {
                    break;
                }
                lines += 1;
            }
            if lines == 0 {
                break;
            }
            let events = protocol::scenario::parse(&chunk, &shown).map_err(|mut e| {
                e.line += before;
                e
            })?;
            if let Some(i) = events.iter().position(|e| e.shape.is_some()) {
                // The parser skips blank lines: find the event's line.
                let line = before + nth_row_line(&chunk, i);
                return Err(WorkloadError::PerInvocationShape { path: shown, line });
            }
            for e in &events {
                b.push(&e.function, e.start_ms, false);
            }
            before += lines;
        }
        Ok(b.finish())
    }

    /// A workload from interned names and `(arrival, function id)` pairs
    /// (sorted here, stably, by time). Ids must index `names`.
    pub fn from_parts(names: Vec<String>, mut arrivals: Vec<(Time, u32)>) -> Self {
        arrivals.sort_by_key(|&(t, _)| t);
        let mut first_row = vec![0; names.len()];
        for (row, &(_, f)) in arrivals.iter().enumerate().rev() {
            if let Some(r) = first_row.get_mut(f as usize) {
                *r = row + 1;
            }
        }
        Self {
            names,
            arrivals,
            first_row,
            first_shaped_row: 0,
        }
    }

    /// A workload from parsed scenario events. Events with per-invocation
    /// columns are recorded ([`Workload::first_shaped_row`]) and refused
    /// by [`crate::check`].
    pub fn from_events(events: &[ScenarioEvent]) -> Self {
        let mut b = Builder::default();
        b.arrivals.reserve_exact(events.len());
        for e in events {
            b.push(&e.function, e.start_ms, e.shape.is_some());
        }
        b.finish()
    }

    /// The 1-based row of the first call with per-invocation columns, if
    /// any (they are not simulated yet).
    pub fn first_shaped_row(&self) -> Option<usize> {
        (self.first_shaped_row > 0).then_some(self.first_shaped_row)
    }

    /// Only the arrivals before `cap` (scenario time).
    pub fn truncated(mut self, cap: Time) -> Self {
        let keep = self.arrivals.partition_point(|&(t, _)| t < cap);
        self.arrivals.truncate(keep);
        self
    }

    /// The 1-based scenario row of function `f`'s first call (0 if none).
    pub fn first_row(&self, f: u32) -> usize {
        self.first_row.get(f as usize).copied().unwrap_or(0)
    }

    /// The scenario's span: the last arrival's time.
    pub fn span(&self) -> Time {
        self.arrivals.last().map_or(Time::ZERO, |&(t, _)| t)
    }
}

/// Interns names row by row (one hash lookup per row, one `String` per
/// distinct name).
#[derive(Default)]
struct Builder {
    ids: FxHashMap<Box<str>, u32>,
    names: Vec<String>,
    first_row: Vec<usize>,
    arrivals: Vec<(Time, u32)>,
    first_shaped_row: usize,
}

impl Builder {
    fn push(&mut self, function: &str, start_ms: u64, shaped: bool) {
        let row = self.arrivals.len() + 1;
        let id = match self.ids.get(function) {
            Some(&id) => id,
            None => {
                let id = self.names.len() as u32;
                self.ids.insert(function.into(), id);
                self.names.push(function.to_string());
                self.first_row.push(row);
                id
            }
        };
        if shaped && self.first_shaped_row == 0 {
            self.first_shaped_row = row;
        }
        self.arrivals.push((Time::from_millis(start_ms), id));
    }

    fn finish(mut self) -> Workload {
        self.arrivals.shrink_to_fit();
        // Stable: equal times keep file order.
        self.arrivals.sort_by_key(|&(t, _)| t);
        Workload {
            names: self.names,
            arrivals: self.arrivals,
            first_row: self.first_row,
            first_shaped_row: self.first_shaped_row,
        }
    }
}

/// The 1-based line, within `chunk`, of its `n`-th (0-based) non-blank
/// line: the parser's `n`-th event.
fn nth_row_line(chunk: &str, n: usize) -> usize {
    chunk
        .lines()
        .enumerate()
        .filter(|(i, l)| {
            let l = if *i == 0 {
                l.strip_prefix('\u{feff}').unwrap_or(l)
            } else {
                l
            };
            !l.trim().is_empty()
        })
        .nth(n)
        .map_or(1, |(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_interned_and_arrivals_sorted_stably() {
        let events = protocol::scenario::parse("B,20\nA,10\nB,10\nA,0\n", "t.csv").unwrap();
        let w = Workload::from_events(&events);
        assert_eq!(w.names, ["B", "A"]);
        let ms = |x| Time::from_millis(x);
        assert_eq!(
            w.arrivals,
            vec![(ms(0), 1), (ms(10), 1), (ms(10), 0), (ms(20), 0)]
        );
        assert_eq!((w.first_row(0), w.first_row(1), w.first_row(9)), (1, 2, 0));
        assert_eq!(w.span(), ms(20));
        assert_eq!(w.clone().truncated(ms(10)).arrivals.len(), 1);
    }

    #[test]
    fn files_are_read_with_errors_naming_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        std::fs::write(&p, "W1,0\nW2,x\n").unwrap();
        let e = Workload::load(&p).unwrap_err().to_string();
        assert!(e.contains("s.csv:2"), "{e}");
        assert!(Workload::load(&dir.path().join("none.csv")).is_err());
        std::fs::write(&p, "W1,0\nW2,5\n").unwrap();
        assert_eq!(Workload::load(&p).unwrap().arrivals.len(), 2);
    }

    #[test]
    fn loading_streams_in_chunks_and_errors_name_the_files_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("long.csv");
        // Rows past the first chunk, a blank line, then a bad row.
        let mut text = String::from("\u{feff}");
        for i in 0..LOAD_CHUNK_LINES + 10 {
            text.push_str(&format!("F{},{}\n", i % 3, LOAD_CHUNK_LINES + 10 - i));
        }
        std::fs::write(&p, &text).unwrap();
        let w = Workload::load(&p).unwrap();
        assert_eq!(w.arrivals.len(), LOAD_CHUNK_LINES + 10);
        assert_eq!(w.names, ["F0", "F1", "F2"]);
        assert_eq!(
            w.arrivals[0],
            (Time::from_millis(1), ((LOAD_CHUNK_LINES + 9) % 3) as u32)
        );
        assert_eq!(
            w,
            Workload::from_events(&protocol::scenario::parse(&text, "x").unwrap())
        );
        text.push_str("\nF1,x\n");
        std::fs::write(&p, &text).unwrap();
        let e = Workload::load(&p).unwrap_err().to_string();
        let line = LOAD_CHUNK_LINES + 12;
        assert!(e.contains(&format!("long.csv:{line}")), "{e}");
    }

    #[test]
    fn per_invocation_columns_are_refused_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("shaped.csv");
        std::fs::write(&p, "\nW1,0,12.5,128\nW2,5,1,64\n").unwrap();
        let e = Workload::load(&p).unwrap_err();
        assert!(
            matches!(e, WorkloadError::PerInvocationShape { line: 2, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("shaped.csv:2"), "{e}");
        assert!(e
            .to_string()
            .contains("per-invocation durations are not simulated yet"));
        let events = protocol::scenario::parse("W1,0,12.5\nW2,5,1\n", "t").unwrap();
        assert_eq!(Workload::from_events(&events).first_shaped_row(), Some(1));
        let plain = protocol::scenario::parse("W1,0\n", "t").unwrap();
        assert_eq!(Workload::from_events(&plain).first_shaped_row(), None);
    }
}
