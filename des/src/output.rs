//! Log lines and the run summary of a discrete-event run.
//!
//! Lines have the replay's format (`protocol::LogLine`):
//! `YYYY/MM/DD HH:MM:SS <startMs> <endMs> <function> <json>`, the JSON being
//! a `protocol::BalancerReply` with `LoadBalancingInfo` filled. All times
//! are virtual: Unix milliseconds of a fixed virtual epoch plus simulated
//! time, and the date/time prefix is the line's end time (the moment a live
//! replayer would have written it). Nothing reads the real clock, so equal
//! inputs give byte-identical logs.
//!
//! The JSON is written without serde (it is the hot path of runs that keep
//! the log) by `protocol::reply::BalancerReplyView`, which owns the field
//! names; a unit test checks it is exactly what serde writes for the same
//! `BalancerReply`.
//!
//! Fields: `Result` is `{"statusCode":200,"body":""}`; `ExecutionTime` is
//! the simulated worker time (start-up costs + phases) and
//! `InternalExecutionTime` the phases alone, both in whole ms of the
//! stamps (so internal <= execution <= end - start); `Meta` comes from the
//! worker policies (in the Lambda model, a reused idle instance sets
//! `UsingExistingRestContainer`); `ContainerName` is
//! `des-<node>-<function>-<instance>`, `ImageName` `hf-<function>`;
//! `WorkerNodeUrl` is `des://node-<id>`; `AlgorithmLatency` is always 0.0
//! (the wall time of `select` would make the log differ between runs;
//! `cargo bench -p load-balancer` measures it).

use std::io::{self, Write};

use protocol::reply::{json_escaped, BalancerReplyView};

pub use policy::node::CallMeta;

/// Writes log lines, reusing one line buffer.
#[derive(Debug)]
pub struct LogWriter<W: Write> {
    out: W,
    line: Vec<u8>,
    epoch_ms: i64,
    stamp_second: i64,
    stamp: String,
    /// Per function id: the name as it appears inside a JSON string.
    json_names: Vec<String>,
    algorithm: String,
}

/// The `WorkerNodeUrl` of simulated node `id`.
pub fn node_url(id: u32) -> String {
    format!("des://node-{id}")
}

impl<W: Write> LogWriter<W> {
    pub fn new(out: W, epoch_ms: i64, names: &[String], algorithm: &str) -> Self {
        Self {
            out,
            line: Vec::with_capacity(512),
            epoch_ms,
            stamp_second: i64::MIN,
            stamp: String::new(),
            json_names: names.iter().map(|n| json_escaped(n)).collect(),
            algorithm: json_escaped(algorithm),
        }
    }

    fn prefix(&mut self, start_ms: i64, end_ms: i64, name: &str) -> io::Result<()> {
        let wall = self.epoch_ms + end_ms;
        let second = wall.div_euclid(1000);
        if second != self.stamp_second {
            let (d, t) = protocol::LogLine::stamp(wall);
            self.stamp = format!("{d} {t}");
            self.stamp_second = second;
        }
        self.line.clear();
        write!(
            self.line,
            "{} {} {} {} ",
            self.stamp,
            self.epoch_ms + start_ms,
            self.epoch_ms + end_ms,
            name
        )
    }

    /// One successful call. Times are virtual ms since the epoch.
    #[allow(clippy::too_many_arguments)]
    pub fn call(
        &mut self,
        start_ms: i64,
        end_ms: i64,
        name: &str,
        function: u32,
        execution_ms: i64,
        internal_ms: i64,
        meta: CallMeta,
        node: u32,
        instance: u64,
    ) -> io::Result<()> {
        self.prefix(start_ms, end_ms, name)?;
        let f = &self.json_names[function as usize];
        BalancerReplyView {
            execution_time: execution_ms,
            internal_execution_time: internal_ms,
            image_built: meta.image_built,
            using_pooled_container: meta.pooled,
            using_existing_rest_container: meta.existing_instance,
            container_name: format_args!("des-{node}-{f}-{instance}"),
            image_name: format_args!("hf-{f}"),
            worker_node_id: i64::from(node),
            worker_node_url: format_args!("des://node-{node}"),
            algorithm: &self.algorithm,
            algorithm_latency: 0.0,
        }
        .write_json(&mut self.line)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)
    }

    /// A call the balancer could not place (the balancer's error reply).
    pub fn error(&mut self, at_ms: i64, name: &str, message: &str) -> io::Result<()> {
        self.error_between(at_ms, at_ms, name, message)
    }

    /// A call that failed between `start_ms` and `end_ms` (an error reply).
    pub fn error_between(
        &mut self,
        start_ms: i64,
        end_ms: i64,
        name: &str,
        message: &str,
    ) -> io::Result<()> {
        self.prefix(start_ms, end_ms, name)?;
        self.line
            .extend_from_slice(protocol::ErrorReply::new(message).to_json().as_bytes());
        self.line.push(b'\n');
        self.out.write_all(&self.line)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{BalancerReply, LogLine};

    #[test]
    fn lines_are_exactly_what_serde_writes() {
        let names = vec!["W1".to_string(), "we\"ird".to_string()];
        let mut buf = Vec::new();
        let mut w = LogWriter::new(&mut buf, 1_577_836_800_000, &names, "ours");
        let meta = CallMeta {
            image_built: true,
            pooled: false,
            existing_instance: true,
        };
        w.call(1500, 2750, "W1", 0, 1249, 1000, meta, 3, 7).unwrap();
        w.call(0, 1, "we\"ird", 1, 1, 0, CallMeta::default(), 0, 0)
            .unwrap();
        w.error(5000, "W1", "every node is at its load bound")
            .unwrap();
        w.flush().unwrap();
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let l = LogLine::parse(lines[0]).unwrap();
        assert_eq!(l.date, "2020/01/01");
        assert_eq!(l.time, "00:00:02");
        assert_eq!(l.start_ms, 1_577_836_801_500);
        assert_eq!(l.end_ms, 1_577_836_802_750);
        let reply: BalancerReply = serde_json::from_str(&l.json).unwrap();
        assert_eq!(serde_json::to_string(&reply).unwrap(), l.json);
        assert_eq!(reply.worker.execution_time, 1249);
        assert!(reply.worker.meta.image_built && reply.worker.meta.using_existing_rest_container);
        assert_eq!(reply.load_balancing_info.worker_node_id, 3);
        assert_eq!(reply.load_balancing_info.algorithm, "ours");
        assert_eq!(reply.load_balancing_info.worker_node_url, node_url(3));
        let l2 = LogLine::parse(lines[1]).unwrap();
        let reply2: BalancerReply = serde_json::from_str(&l2.json).unwrap();
        assert_eq!(serde_json::to_string(&reply2).unwrap(), l2.json);
        assert_eq!(reply2.worker.meta.image_name, "hf-we\"ird");
        assert!(LogLine::parse(lines[2]).unwrap().is_error());
    }
}
