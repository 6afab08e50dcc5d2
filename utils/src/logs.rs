//! Reading replay logs (the original HotFunctions simulator's format, also
//! written by `simulator replay` and `simulator des`).
//!
//! One line per call: `YYYY/MM/DD HH:MM:SS <startMs> <endMs> <function>
//! <json>` ([`protocol::LogLine`]), where the JSON is the balancer's reply
//! ([`protocol::BalancerReply`]). As in the original `analyzer.py`:
//! - blank lines are ignored;
//! - lines whose JSON has an `"Error"` key (failed calls,
//!   `{"Error": true, "Message": ...}`) are not calls to analyze, but they
//!   are counted, by cause ([`ErrorClass::of_message`]:
//!   `load bound`, `no online node`, `worker error`, `timeout`, `other`),
//!   so that every report can show how many calls failed;
//! - the analysis window starts at the first successful call.
//!
//! The run's sidecar (`<log>.meta.json`, [`protocol::sidecar`]) is read
//! with the log when it exists ([`RunLog::sidecar`]): it gives the cluster
//! size and the algorithm. A missing sidecar is fine (logs of the original
//! have none); a malformed one is an error naming the file.
//!
//! Unlike the original, a line that cannot be read (not the log format, not
//! JSON, or JSON without the fields the analyzer needs) is not fatal: it is
//! counted in [`RunLog::unparseable`] with its line number and reason.
//!
//! Only the fields the analyzer needs are required, so logs of the original
//! (which may lack `Algorithm` or `AlgorithmLatency`) are read as well.

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use protocol::log::LoggedReply;
use protocol::sidecar::RunSidecar;
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

/// The cause of a failed call, read from its error message.
///
/// The messages come from the balancer (`load-balancer/src/error.rs`: "every
/// node is at its load bound (...)", "no online node", "worker ...
/// unreachable", "error on the call to worker ...", "error on parsing json
/// from worker node ..."), from the scheduler as the DES logs it ("no node
/// for F: " + one of the two scheduler errors), from workers (function or image
/// build failures, forwarded by the balancer) and from the replay itself
/// ("request failed: ... timed out", "HTTP 503 from balancer: ...").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ErrorClass {
    /// Every node was at its load bound (bounded-load schedulers: HTTP 503).
    #[serde(rename = "load bound")]
    LoadBound,
    /// The balancer had no online node.
    #[serde(rename = "no online node")]
    NoOnlineNode,
    /// A worker could not be reached, broke the exchange, or reported a
    /// failure of the function, its image or its instance.
    #[serde(rename = "worker error")]
    WorkerError,
    /// The call (or the connection) timed out.
    #[serde(rename = "timeout")]
    Timeout,
    /// Anything else (connection refused by the balancer, cancelled, ...).
    #[serde(rename = "other")]
    Other,
}

impl ErrorClass {
    /// Every class, in report order.
    pub const ALL: [ErrorClass; 5] = [
        Self::LoadBound,
        Self::NoOnlineNode,
        Self::WorkerError,
        Self::Timeout,
        Self::Other,
    ];

    /// The class's name in reports and CSV: `load bound`, `no online node`,
    /// `worker error`, `timeout`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoadBound => "load bound",
            Self::NoOnlineNode => "no online node",
            Self::WorkerError => "worker error",
            Self::Timeout => "timeout",
            Self::Other => "other",
        }
    }

    /// Classifies an error reply's `Message` (case-insensitive; the first
    /// rule that matches wins: timeout, load bound, no online node, worker).
    pub fn of_message(message: &str) -> Self {
        let m = message.to_ascii_lowercase();
        let has = |s: &str| m.contains(s);
        if has("timed out") || has("timeout") || has("deadline") {
            Self::Timeout
        } else if has("load bound") {
            Self::LoadBound
        } else if has("no online node") {
            Self::NoOnlineNode
        } else if has("worker")
            || has("function ")
            || has("unknown function")
            || has("building the image")
            || has("instance ")
            || has("runtime engine")
        {
            Self::WorkerError
        } else {
            Self::Other
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed call's cause: its class and the first message seen of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorCount {
    pub count: usize,
    /// The first message of this class in the log (an example).
    pub example: String,
}

/// The successful calls of one log, and what was skipped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunLog {
    /// Where the log came from (a path, or a name given by the caller).
    pub source: String,
    /// Successful calls, in file order.
    pub records: Vec<CallRecord>,
    /// Lines whose JSON is an error reply: failed calls (not analyzed, as in
    /// the original, but counted).
    pub error_lines: usize,
    /// The failed calls by cause.
    pub errors_by_class: BTreeMap<ErrorClass, ErrorCount>,
    /// Earliest start and latest end of the failed calls (Unix ms).
    pub error_window: Option<(i64, i64)>,
    /// The run's sidecar (`<log>.meta.json`), when [`RunLog::read`] found
    /// one.
    pub sidecar: Option<RunSidecar>,
    /// Number of lines that could not be read.
    pub unparseable_count: usize,
    /// The first [`MAX_UNPARSEABLE_EXAMPLES`] unreadable lines.
    pub unparseable: Vec<UnparseableLine>,
}

/// A log file (or its sidecar) that could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum ReadLogError {
    #[error("cannot read log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}, the sidecar of log {log}: {message}")]
    Sidecar {
        path: PathBuf,
        log: PathBuf,
        message: String,
    },
}

/// Reads the sidecar of `log` (`<log>.meta.json`): `Ok(None)` if there is
/// none, an error naming the file if it cannot be read or parsed.
pub fn read_sidecar(log: &Path) -> Result<Option<RunSidecar>, ReadLogError> {
    let path = protocol::sidecar::sidecar_path(log);
    let err = |message: String| ReadLogError::Sidecar {
        path: path.clone(),
        log: log.to_path_buf(),
        message,
    };
    let text = match protocol::text::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e.to_string())),
    };
    RunSidecar::parse(&text)
        .map(Some)
        .map_err(|e| err(format!("not a run sidecar: {e}")))
}

impl RunLog {
    /// Reads a log file, line by line (invalid UTF-8 is replaced, and the
    /// line then fails to parse or keeps a mangled function name), and its
    /// sidecar `<log>.meta.json` if there is one.
    pub fn read(path: &Path) -> Result<Self, ReadLogError> {
        use std::io::BufRead as _;
        let err = |source| ReadLogError::Io {
            path: path.to_path_buf(),
            source,
        };
        let sidecar = read_sidecar(path)?;
        let file = std::fs::File::open(path).map_err(err)?;
        let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
        let mut run = Self::empty(&path.display().to_string());
        run.sidecar = sidecar;
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

    /// A run of these successful calls only (no failures, no sidecar).
    pub fn from_records(source: &str, records: Vec<CallRecord>) -> Self {
        Self {
            records,
            ..Self::empty(source)
        }
    }

    fn empty(source: &str) -> Self {
        RunLog {
            source: source.to_string(),
            records: Vec::new(),
            error_lines: 0,
            errors_by_class: BTreeMap::new(),
            error_window: None,
            sidecar: None,
            unparseable_count: 0,
            unparseable: Vec::new(),
        }
    }

    /// Counts a failed call with this error message.
    pub fn push_error(&mut self, message: &str) {
        self.error_lines += 1;
        self.errors_by_class
            .entry(ErrorClass::of_message(message))
            .or_insert_with(|| ErrorCount {
                count: 0,
                example: message.to_string(),
            })
            .count += 1;
    }

    /// All calls: successful ones and error lines (unreadable lines are not
    /// counted: they may not be calls).
    pub fn calls(&self) -> usize {
        self.records.len() + self.error_lines
    }

    /// Adds the line at 0-based `index`.
    fn push_line(&mut self, index: usize, raw: &str) {
        if raw.trim().is_empty() {
            return;
        }
        match parse_line(raw) {
            Ok(Parsed::Call(record)) => self.records.push(record),
            Ok(Parsed::Error {
                message,
                start,
                end,
            }) => {
                self.push_error(&message);
                let (lo, hi) = self.error_window.unwrap_or((start, end));
                self.error_window = Some((lo.min(start), hi.max(end)));
            }
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

    /// A short name for tables and legends: the sidecar's algorithm, else
    /// the algorithm when every call names the same one, else the file name
    /// without its extension.
    pub fn label(&self) -> String {
        if let Some(a) = self
            .sidecar
            .as_ref()
            .and_then(|s| s.algorithm.as_deref())
            .filter(|a| !a.is_empty())
        {
            return a.to_string();
        }
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

/// What one readable line holds.
enum Parsed {
    Call(CallRecord),
    /// An error reply, with its `Message` (empty if it has none) and times.
    Error {
        message: String,
        start: i64,
        end: i64,
    },
}

/// The message of an error reply (`{"Error": ..., "Message": ...}`), or
/// `None` if the JSON is not an error reply.
pub fn error_message(json: &serde_json::Value) -> Option<String> {
    json.get("Error")?;
    Some(match json.get("Message") {
        Some(serde_json::Value::String(m)) => m.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    })
}

/// `Err(reason)` for an unreadable line.
fn parse_line(raw: &str) -> Result<Parsed, String> {
    let line = protocol::LogLine::parse(raw).map_err(|e| e.to_string())?;
    let json: serde_json::Value =
        serde_json::from_str(&line.json).map_err(|e| format!("bad JSON: {e}"))?;
    if let Some(message) = error_message(&json) {
        return Ok(Parsed::Error {
            message,
            start: line.start_ms,
            end: line.end_ms,
        });
    }
    let reply: LoggedReply =
        protocol::strict::deserialize(json).map_err(|e| format!("not a balancer reply: {e}"))?;
    let internal = reply.internal_execution_time;
    if !(internal.is_finite() && internal.abs() <= protocol::log::MAX_ABS_MS as f64) {
        return Err(format!(
            "InternalExecutionTime {internal} is not a number of ms within ±2^53"
        ));
    }
    Ok(Parsed::Call(CallRecord {
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
            "{OK}\n\n2020/05/17 14:03:22 1 2 W1 {{\"Error\":true,\"Message\":\"x\"}}\ngarbage\n2020/05/17 14:03:22 1 2 W1 {{\"Result\":1}}\n2020/05/17 14:03:22 1 2 W1 {{nope\n2020/05/17 14:03:22 1 2 W1 [1001, [false, false, true], [1]]\n"
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
        // The last line is a reply read by position (serde's derive would
        // take it for a warm call of 1001 ms on node 1): not a reply.
        assert_eq!(run.unparseable_count, 4);
        let lines: Vec<usize> = run.unparseable.iter().map(|u| u.line).collect();
        assert_eq!(lines, vec![4, 5, 6, 7]);
        assert!(
            run.unparseable[3].reason.contains("invalid type: sequence"),
            "{:?}",
            run.unparseable[3]
        );
        assert_eq!(run.label(), "ours");
    }

    #[test]
    fn error_messages_are_classified() {
        use ErrorClass::*;
        for (message, class) in [
            (
                "HTTP 503 from balancer: every node is at its load bound (2 in-flight calls)",
                LoadBound,
            ),
            ("HTTP 503 from balancer: no online node", NoOnlineNode),
            ("no node for W1: every node is at its load bound (3 in-flight calls)", LoadBound),
            ("no node for W1: no online node", NoOnlineNode),
            (
                "HTTP 502 from balancer: worker http://n1:8222 unreachable (connection refused); not retried",
                WorkerError,
            ),
            ("HTTP 502 from balancer: function W3 failed", WorkerError),
            ("worker http://127.0.0.1:9001 unreachable", WorkerError),
            (
                "request failed: error sending request: operation timed out",
                Timeout,
            ),
            (
                "request failed: error sending request: tcp connect error: Connection refused",
                Other,
            ),
            ("cancelled: the replay was stopped", Other),
            ("", Other),
        ] {
            assert_eq!(ErrorClass::of_message(message), class, "{message}");
        }
        let text = format!(
            "{OK}\n2020/05/17 14:03:22 1 2 W1 {{\"Error\":true,\"Message\":\"every node is at its load bound (1 in-flight calls)\"}}\n2020/05/17 14:03:22 1 2 W1 {{\"Error\":true}}\n2020/05/17 14:03:22 1 2 W1 {{\"Error\":true,\"Message\":\"no online node\"}}\n2020/05/17 14:03:22 1 2 W1 {{\"Error\":true,\"Message\":\"no online node\"}}\n"
        );
        let run = RunLog::parse(&text, "r.log");
        assert_eq!((run.calls(), run.error_lines), (5, 4));
        let counts: Vec<(ErrorClass, usize)> = run
            .errors_by_class
            .iter()
            .map(|(c, e)| (*c, e.count))
            .collect();
        assert_eq!(counts, vec![(LoadBound, 1), (NoOnlineNode, 2), (Other, 1)]);
        assert_eq!(run.errors_by_class[&NoOnlineNode].example, "no online node");
    }

    #[test]
    fn the_sidecar_is_read_beside_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        std::fs::write(&log, format!("{OK}\n")).unwrap();
        // No sidecar: fine.
        let run = RunLog::read(&log).unwrap();
        assert!(run.sidecar.is_none());
        assert_eq!(run.label(), "ours");
        // A sidecar: kept, and its algorithm names the run.
        let mut sidecar = RunSidecar::new(
            "test",
            "0",
            "t".into(),
            protocol::sidecar::Cluster::of_size(1000),
        );
        sidecar.algorithm = Some("pasch".into());
        let side = protocol::sidecar::sidecar_path(&log);
        std::fs::write(&side, sidecar.to_json()).unwrap();
        let run = RunLog::read(&log).unwrap();
        assert_eq!(run.sidecar.as_ref().unwrap().cluster.size, 1000);
        assert_eq!(run.label(), "pasch");
        // A malformed one: an error naming the sidecar.
        std::fs::write(&side, "{not json").unwrap();
        let e = RunLog::read(&log).unwrap_err().to_string();
        assert!(e.contains("x.log.meta.json"), "{e}");
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
