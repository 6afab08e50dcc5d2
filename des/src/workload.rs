//! A scenario as the simulator runs it: function names interned to dense
//! ids once, at load, and arrivals as `(time, id)` pairs sorted by time
//! (stably, so equal times keep file order).

use std::collections::HashMap;
use std::path::Path;

use policy::Time;
use protocol::ScenarioEvent;

/// A scenario with function names interned to ids, arrivals sorted.
#[derive(Debug, Clone, Default)]
pub struct Workload {
    pub names: Vec<String>,
    /// (arrival, function id), by time then file order.
    pub arrivals: Vec<(Time, u32)>,
    /// 1-based scenario row of each function's first call.
    first_row: Vec<usize>,
}

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
}

impl Workload {
    /// Reads a scenario CSV (`FunctionName,StartTimeMs`); errors name the
    /// file and line.
    pub fn load(path: &Path) -> Result<Self, WorkloadError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| WorkloadError::Read {
            path: shown.clone(),
            source,
        })?;
        let events = protocol::scenario::parse(&text, &shown)?;
        Ok(Self::from_events(&events))
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
        }
    }

    pub fn from_events(events: &[ScenarioEvent]) -> Self {
        let mut ids: HashMap<&str, u32> = HashMap::new();
        let mut names = Vec::new();
        let mut first_row = Vec::new();
        let mut arrivals = Vec::with_capacity(events.len());
        for (row, e) in events.iter().enumerate() {
            let id = *ids.entry(e.function.as_str()).or_insert_with(|| {
                names.push(e.function.clone());
                first_row.push(row + 1);
                (names.len() - 1) as u32
            });
            arrivals.push((Time::from_millis(e.start_ms), id));
        }
        arrivals.sort_by_key(|&(t, _)| t);
        Self {
            names,
            arrivals,
            first_row,
        }
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
}
