//! The replay log line of the original simulator:
//!
//! `YYYY/MM/DD HH:MM:SS <startMs> <endMs> <function> <json>`
//!
//! The date and time are the wall clock when the line was written (Go's
//! `log.LstdFlags`); `startMs` and `endMs` are Unix milliseconds (virtual
//! ones in a discrete-event run) around the call; `<json>` is the balancer's
//! reply, or an [`crate::ErrorReply`] for a failed call, which analyzers skip.

use std::fmt;

use serde::Deserialize;

/// Largest magnitude of a start or end time, in ms: 2^53 (about 285,000
/// years), so that times, their differences and their `f64` values are
/// exact. A line beyond it is not a log line.
pub const MAX_ABS_MS: i64 = 1 << 53;

/// One parsed log line. The JSON is kept as text: analyzers decide what to
/// read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// `YYYY/MM/DD`.
    pub date: String,
    /// `HH:MM:SS`.
    pub time: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub function: String,
    pub json: String,
}

/// A line that is not in the log format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a log line: {0}")]
pub struct LogLineError(pub String);

impl LogLine {
    /// Parses one line (without its line end).
    pub fn parse(line: &str) -> Result<Self, LogLineError> {
        let line = line.trim_end_matches(['\r', '\n']);
        let mut rest = line;
        let mut next = |what: &str| -> Result<&str, LogLineError> {
            let t = rest.trim_start_matches(' ');
            let end = t
                .find(' ')
                .ok_or_else(|| LogLineError(format!("missing {what}")))?;
            let (field, tail) = t.split_at(end);
            rest = tail;
            Ok(field)
        };
        let date = next("date")?.to_string();
        let time = next("time")?.to_string();
        let start = next("start time")?;
        let end = next("end time")?;
        let function = next("function")?.to_string();
        let json = rest.trim().to_string();
        if json.is_empty() {
            return Err(LogLineError("missing JSON".into()));
        }
        let stamp = |text: &str, what: &str| {
            text.parse::<i64>()
                .ok()
                .filter(|t| (-MAX_ABS_MS..=MAX_ABS_MS).contains(t))
                .ok_or_else(|| {
                    LogLineError(format!(
                        "bad {what} {text:?} (whole ms within ±{MAX_ABS_MS})"
                    ))
                })
        };
        let start_ms = stamp(start, "start time")?;
        let end_ms = stamp(end, "end time")?;
        Ok(Self {
            date,
            time,
            start_ms,
            end_ms,
            function,
            json,
        })
    }

    /// Formats a Unix time in milliseconds as the UTC `YYYY/MM/DD` and
    /// `HH:MM:SS` of a log line.
    pub fn stamp(unix_ms: i64) -> (String, String) {
        let secs = unix_ms.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let of_day = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        (
            format!("{y:04}/{m:02}/{d:02}"),
            format!(
                "{:02}:{:02}:{:02}",
                of_day / 3600,
                (of_day % 3600) / 60,
                of_day % 60
            ),
        )
    }

    /// A line stamped with the given wall time (Unix ms, UTC).
    pub fn new(wall_ms: i64, start_ms: i64, end_ms: i64, function: &str, json: &str) -> Self {
        let (date, time) = Self::stamp(wall_ms);
        Self {
            date,
            time,
            start_ms,
            end_ms,
            function: function.to_string(),
            json: json.to_string(),
        }
    }

    /// True when the JSON is an error reply (`{"Error": true, ...}`), which
    /// analyzers skip as the original's analyzer does.
    pub fn is_error(&self) -> bool {
        serde_json::from_str::<serde_json::Value>(&self.json)
            .map(|v| v.get("Error").is_some())
            .unwrap_or(true)
    }
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {}",
            self.date, self.time, self.start_ms, self.end_ms, self.function, self.json
        )
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), after
/// Howard Hinnant's `civil_from_days` algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The part of a logged balancer reply that log analysis reads, leniently:
/// `InternalExecutionTime` may be a float (the original's logs), and
/// `Algorithm` and `AlgorithmLatency` may be missing.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LoggedReply {
    #[serde(rename = "InternalExecutionTime")]
    pub internal_execution_time: f64,
    #[serde(rename = "Meta")]
    pub meta: LoggedMeta,
    #[serde(rename = "LoadBalancingInfo")]
    pub load_balancing_info: LoggedBalancingInfo,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LoggedMeta {
    pub image_built: bool,
    pub using_pooled_container: bool,
    pub using_existing_rest_container: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LoggedBalancingInfo {
    pub worker_node_id: usize,
    #[serde(default)]
    pub algorithm: Option<String>,
    #[serde(default)]
    pub algorithm_latency: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"2020/05/17 14:03:21 1589724201123 1589724202456 W3 {"Result":{"statusCode":200,"body":""},"ExecutionTime":1300,"InternalExecutionTime":1001,"Meta":{"ImageBuilt":false,"UsingPooledContainer":false,"UsingExistingRestContainer":true,"ContainerName":"c","ImageName":"i"},"LoadBalancingInfo":{"WorkerNodeId":1,"WorkerNodeUrl":"http://n1:8222","Algorithm":"ours","AlgorithmLatency":0.004}}"#;

    #[test]
    fn round_trips_a_sample_line() {
        let l = LogLine::parse(SAMPLE).unwrap();
        assert_eq!(l.date, "2020/05/17");
        assert_eq!(l.time, "14:03:21");
        assert_eq!(l.start_ms, 1_589_724_201_123);
        assert_eq!(l.end_ms, 1_589_724_202_456);
        assert_eq!(l.function, "W3");
        assert!(!l.is_error());
        let reply: crate::BalancerReply = serde_json::from_str(&l.json).unwrap();
        assert_eq!(reply.load_balancing_info.worker_node_id, 1);
        assert_eq!(l.to_string(), SAMPLE);
    }

    #[test]
    fn error_lines_are_recognised() {
        let line = format!(
            "2020/05/17 14:03:21 1 2 W1 {}",
            crate::ErrorReply::new("boom").to_json()
        );
        assert!(LogLine::parse(&line).unwrap().is_error());
    }

    #[test]
    fn stamps_match_utc_calendar() {
        // 1589724201123 ms = 2020-05-17T14:03:21.123Z
        assert_eq!(
            LogLine::stamp(1_589_724_201_123),
            ("2020/05/17".to_string(), "14:03:21".to_string())
        );
        assert_eq!(
            LogLine::stamp(0),
            ("1970/01/01".to_string(), "00:00:00".to_string())
        );
        // 2000-02-29T23:59:59Z, a leap day
        assert_eq!(
            LogLine::stamp(951_868_799_000),
            ("2000/02/29".to_string(), "23:59:59".to_string())
        );
    }

    #[test]
    fn bad_lines_are_errors() {
        assert!(LogLine::parse("").is_err());
        assert!(LogLine::parse("2020/05/17 14:03:21 x 2 W1 {}").is_err());
        assert!(LogLine::parse("2020/05/17 14:03:21 1 2 W1").is_err());
    }

    #[test]
    fn times_beyond_two_to_the_53_are_not_log_lines() {
        let json = r#"{"Result":{}}"#;
        for (start, end) in [
            ("-9223372036854775808", "0"),
            ("0", "9223372036854775807"),
            ("9007199254740993", "9007199254740993"),
        ] {
            let line = format!("2020/05/17 14:03:21 {start} {end} W3 {json}");
            let e = LogLine::parse(&line).unwrap_err();
            assert!(e.0.contains("within"), "{e}");
        }
        let edge = format!("2020/05/17 14:03:21 -{MAX_ABS_MS} {MAX_ABS_MS} W3 {json}");
        let line = LogLine::parse(&edge).unwrap();
        assert_eq!(line.end_ms - line.start_ms, 2 * MAX_ABS_MS);
    }
}
