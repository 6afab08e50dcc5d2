//! Reading replay logs (the original HotFunctions simulator's format, also
//! written by `simulator replay` and `simulator des`).
//!
//! One line per call: `YYYY/MM/DD HH:MM:SS <startMs> <endMs> <function>
//! <json>` ([`protocol::LogLine`]), where the JSON is the balancer's reply
//! ([`protocol::BalancerReply`]). As in the original `analyzer.py`:
//! - blank lines are ignored;
//! - lines whose JSON has an `"Error"` key (failed calls,
//!   `{"Error": true, "Message": ...}`) are skipped, and counted;
//! - the analysis window starts at the first successful call.
//!
//! Unlike the original, a line that cannot be read (not the log format, not
//! JSON, or JSON without the fields the analyzer needs) is not fatal: it is
//! counted in [`RunLog::unparseable`] with its line number and reason.
//!
//! Only the fields the analyzer needs are required, so logs of the original
//! (which may lack `Algorithm` or `AlgorithmLatency`) are read as well.

use std::path::{Path, PathBuf};

use protocol::log::LoggedReply;
use serde::{Deserialize, Serialize};

/// How many unreadable lines are kept as examples in [`RunLog::unparseable`].
pub const MAX_UNPARSEABLE_EXAMPLES: usize = 20;

/// One successful call, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Unix ms when the client sent the request.
    pub start_ms: i64,
    /// Unix ms when the client got the reply.
    pub end_ms: i64,
    pub function: String,
    /// `LoadBalancingInfo.WorkerNodeId`.
    pub node: usize,
    /// `InternalExecutionTime`: time inside the function, ms.
    pub internal_ms: i64,
    /// `Meta.ImageBuilt`.
    pub image_built: bool,
    /// `Meta.UsingPooledContainer`.
    pub pooled: bool,
    /// `Meta.UsingExistingRestContainer`.
    pub rest_reused: bool,
    /// `LoadBalancingInfo.Algorithm`, when logged.
    pub algorithm: Option<String>,
    /// `LoadBalancingInfo.AlgorithmLatency` in ms, when logged.
    pub algorithm_latency_ms: Option<f64>,
}

impl CallRecord {
    /// `end - start`: what the client saw, in ms (the original's "exec time").
    pub fn duration_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }

    /// `duration - InternalExecutionTime`: everything but the function's own
    /// work (network, scheduling, image build, container start), in ms.
    pub fn latency_ms(&self) -> i64 {
        self.duration_ms() - self.internal_ms
    }

    /// No warm instance (pooled or REST) served the call.
    pub fn is_cold(&self) -> bool {
        !self.pooled && !self.rest_reused
    }
}

/// A line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnparseableLine {
    /// 1-based line number.
    pub line: usize,
    pub reason: String,
}

/// The successful calls of one log, and what was skipped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunLog {
    /// Where the log came from (a path, or a name given by the caller).
    pub source: String,
    /// Successful calls, in file order.
    pub records: Vec<CallRecord>,
    /// Lines whose JSON is an error reply (skipped, as the original does).
    pub error_lines: usize,
    /// Number of lines that could not be read.
    pub unparseable_count: usize,
    /// The first [`MAX_UNPARSEABLE_EXAMPLES`] unreadable lines.
    pub unparseable: Vec<UnparseableLine>,
}

/// A log file that could not be opened or read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read log {path}: {source}")]
pub struct ReadLogError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl RunLog {
    /// Reads a log file, line by line (invalid UTF-8 is replaced, and the
    /// line then fails to parse or keeps a mangled function name).
    pub fn read(path: &Path) -> Result<Self, ReadLogError> {
        use std::io::BufRead as _;
        let err = |source| ReadLogError {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(err)?;
        let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
        let mut run = Self::empty(&path.display().to_string());
        let mut buf = Vec::new();
        let mut index = 0;
        loop {
            buf.clear();
            if reader.read_until(b'\n', &mut buf).map_err(err)? == 0 {
                return Ok(run);
            }
            run.push_line(index, &String::from_utf8_lossy(&buf));
            index += 1;
        }
    }

    /// Parses log text; `source` names it in reports.
    pub fn parse(text: &str, source: &str) -> Self {
        let mut run = Self::empty(source);
        for (index, raw) in text.lines().enumerate() {
            run.push_line(index, raw);
        }
        run
    }

    fn empty(source: &str) -> Self {
        RunLog {
            source: source.to_string(),
            records: Vec::new(),
            error_lines: 0,
            unparseable_count: 0,
            unparseable: Vec::new(),
        }
    }

    /// Adds the line at 0-based `index`.
    fn push_line(&mut self, index: usize, raw: &str) {
        if raw.trim().is_empty() {
            return;
        }
        match parse_line(raw) {
            Ok(Some(record)) => self.records.push(record),
            Ok(None) => self.error_lines += 1,
            Err(reason) => {
                self.unparseable_count += 1;
                if self.unparseable.len() < MAX_UNPARSEABLE_EXAMPLES {
                    self.unparseable.push(UnparseableLine {
                        line: index + 1,
                        reason,
                    });
                }
            }
        }
    }

    /// A short name for tables and legends: the algorithm when every call
    /// names the same one, else the file name without its extension.
    pub fn label(&self) -> String {
        let mut algorithms = self
            .records
            .iter()
            .filter_map(|r| r.algorithm.as_deref())
            .filter(|a| !a.is_empty());
        if let Some(first) = algorithms.next() {
            if algorithms.all(|a| a == first) {
                return first.to_string();
            }
        }
        self.file_stem()
    }

    /// The source's file name without directories and extension.
    pub fn file_stem(&self) -> String {
        Path::new(&self.source)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.source.clone())
    }
}

/// `Ok(None)` for an error reply, `Err(reason)` for an unreadable line.
fn parse_line(raw: &str) -> Result<Option<CallRecord>, String> {
    let line = protocol::LogLine::parse(raw).map_err(|e| e.to_string())?;
    let json: serde_json::Value =
        serde_json::from_str(&line.json).map_err(|e| format!("bad JSON: {e}"))?;
    if json.get("Error").is_some() {
        return Ok(None);
    }
    let reply: LoggedReply =
        serde_json::from_value(json).map_err(|e| format!("not a balancer reply: {e}"))?;
    Ok(Some(CallRecord {
        start_ms: line.start_ms,
        end_ms: line.end_ms,
        function: line.function,
        node: reply.load_balancing_info.worker_node_id,
        internal_ms: reply.internal_execution_time.round() as i64,
        image_built: reply.meta.image_built,
        pooled: reply.meta.using_pooled_container,
        rest_reused: reply.meta.using_existing_rest_container,
        algorithm: reply.load_balancing_info.algorithm,
        algorithm_latency_ms: reply.load_balancing_info.algorithm_latency,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"2020/05/17 14:03:21 1000 2500 W3 {"Result":{"statusCode":200,"body":""},"ExecutionTime":1300,"InternalExecutionTime":1001,"Meta":{"ImageBuilt":false,"UsingPooledContainer":false,"UsingExistingRestContainer":true,"ContainerName":"c","ImageName":"i"},"LoadBalancingInfo":{"WorkerNodeId":1,"WorkerNodeUrl":"http://n1:8222","Algorithm":"ours","AlgorithmLatency":0.004}}"#;

    #[test]
    fn reads_calls_and_counts_what_it_skips() {
        let text = format!(
            "{OK}\n\n2020/05/17 14:03:22 1 2 W1 {{\"Error\":true,\"Message\":\"x\"}}\ngarbage\n2020/05/17 14:03:22 1 2 W1 {{\"Result\":1}}\n2020/05/17 14:03:22 1 2 W1 {{nope\n"
        );
        let run = RunLog::parse(&text, "dir/run.log");
        assert_eq!(run.records.len(), 1);
        let r = &run.records[0];
        assert_eq!(
            (r.start_ms, r.end_ms, r.node, r.internal_ms),
            (1000, 2500, 1, 1001)
        );
        assert_eq!(r.latency_ms(), 499);
        assert!(r.rest_reused && !r.is_cold());
        assert_eq!(run.error_lines, 1);
        assert_eq!(run.unparseable_count, 3);
        let lines: Vec<usize> = run.unparseable.iter().map(|u| u.line).collect();
        assert_eq!(lines, vec![4, 5, 6]);
        assert_eq!(run.label(), "ours");
    }

    #[test]
    fn label_falls_back_to_the_file_name() {
        let old_format = OK.replace(r#","Algorithm":"ours","AlgorithmLatency":0.004"#, "");
        let run = RunLog::parse(&old_format, "logs/12:00:00.log");
        assert_eq!(run.records.len(), 1);
        assert_eq!(run.records[0].algorithm, None);
        assert_eq!(run.label(), "12:00:00");
    }
}
