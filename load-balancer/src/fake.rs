//! Fake mode: a balancer without workers, for testing schedulers and
//! replayers end to end.
//!
//! As in HotFunctions (Prev/HotFunctions, `load_balancer/main.go` and
//! `request_handler.go`, started as `load_balancer <algo> <fake_nodes>`):
//! nodes 0..n-1 with an empty URL, every call sleeps (4 s in the original;
//! `fake_delay_ms` here, default 4000) and answers
//! `Result {statusCode: 0, body: ""}`, `ExecutionTime` 4000,
//! `InternalExecutionTime` 1000 and an all-false, empty `Meta`. With another
//! delay `ExecutionTime` is that delay and `InternalExecutionTime` is
//! 1000 ms capped at it.

use protocol::{ExecutionMeta, FunctionResult, WorkerReply};

/// The worker reply every fake call answers with, serialized once.
pub fn fake_worker_reply(delay_ms: u64) -> Vec<u8> {
    let execution_ms = i64::try_from(delay_ms).unwrap_or(i64::MAX);
    let reply = WorkerReply {
        result: FunctionResult {
            status_code: 0,
            body: String::new(),
        },
        execution_time: execution_ms,
        internal_execution_time: execution_ms.min(1000),
        meta: ExecutionMeta::default(),
    };
    serde_json::to_vec(&reply).unwrap_or_else(|_| b"{}".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_fake_reply_matches_the_original() {
        assert_eq!(
            String::from_utf8(fake_worker_reply(4000)).unwrap(),
            r#"{"Result":{"statusCode":0,"body":""},"ExecutionTime":4000,"InternalExecutionTime":1000,"Meta":{"ImageBuilt":false,"UsingPooledContainer":false,"UsingExistingRestContainer":false,"ContainerName":"","ImageName":""}}"#
        );
        let short: WorkerReply = serde_json::from_slice(&fake_worker_reply(50)).unwrap();
        assert_eq!(
            (short.execution_time, short.internal_execution_time),
            (50, 50)
        );
    }
}
