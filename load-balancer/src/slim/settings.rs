//! Per-function settings of the SlimFaas routes: from a JSON file
//! (`--function-settings PATH`) and `PUT /function-settings/<fn>`.
//!
//! ```json
//! {"defaults": {"max_parallel": 10},
//!  "functions": {"W1": {"max_parallel": 2, "retry_delays_s": [1, 2]}}}
//! ```
//!
//! Every field is optional (defaults below); unknown fields and values out
//! of range are errors that name the file, line and column.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Most retries a function may ask for.
pub const MAX_RETRIES: usize = 16;
/// Longest retry delay, request time-out or idle time (one day).
pub const MAX_SECONDS: f64 = 86_400.0;
/// Largest `max_parallel`.
pub const MAX_PARALLEL: u32 = 100_000;
/// Largest `max_queued`.
pub const MAX_QUEUED: u32 = 10_000_000;
/// Largest `min_instances` and `instances_at_start` (what a wake asks of
/// the workers, at most `/scale`'s own bound).
pub const MAX_INSTANCES: u32 = 1_000;

/// One function's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FunctionSettings {
    /// Parallel calls at most (SlimFaas's `NumberParallelRequest`, default
    /// 10); calls over it wait in arrival order.
    #[serde(deserialize_with = "max_parallel")]
    pub max_parallel: u32,
    /// Minimum instances (default 0): any > 0 keeps the function from
    /// being scaled to zero (`policy::scale_to_zero`), and a wake starts
    /// at least this many. At most [`MAX_INSTANCES`].
    #[serde(deserialize_with = "instances")]
    pub min_instances: u32,
    /// Instances a wake starts, at least (default 0; a wake starts
    /// max(`min_instances`, this, 1)). At most [`MAX_INSTANCES`].
    #[serde(deserialize_with = "instances")]
    pub instances_at_start: u32,
    /// Idle time before scaling to zero, in s (default 300): the
    /// function's instances are removed on every worker after its last
    /// call ended this long ago, with none in flight or queued.
    #[serde(deserialize_with = "positive_seconds")]
    pub idle_before_zero_s: f64,
    /// Time-out of one attempt, in s (default 120); a time-out is retried.
    #[serde(deserialize_with = "positive_seconds")]
    pub timeout_s: f64,
    /// Delays before each retry, in s (default 2, 4, 8).
    #[serde(deserialize_with = "retry_delays")]
    pub retry_delays_s: Vec<f64>,
    /// Whether a call may run twice (a synchronous call is retried, and an
    /// interrupted one is repeated, only then). Default: the 30 sample
    /// functions are (they keep no state), any other is not.
    pub safe_to_repeat: Option<bool>,
    /// How long a synchronous call waits for a slot, in s (default 120).
    #[serde(deserialize_with = "seconds_or_zero")]
    pub wait_s: f64,
    /// Most asynchronous calls of it queued or running (default: no
    /// bound but the balancer's `--queue-max`); over it a call is refused
    /// with a 429 and not stored. In 1..=[`MAX_QUEUED`].
    #[serde(deserialize_with = "max_queued")]
    pub max_queued: Option<u32>,
}

impl Default for FunctionSettings {
    fn default() -> Self {
        Self {
            max_parallel: policy::admission_queue::DEFAULT_MAX_PARALLEL,
            min_instances: 0,
            instances_at_start: 0,
            idle_before_zero_s: 300.0,
            timeout_s: 120.0,
            retry_delays_s: policy::admission_queue::DEFAULT_RETRY_DELAYS
                .iter()
                .map(std::time::Duration::as_secs_f64)
                .collect(),
            safe_to_repeat: None,
            wait_s: 120.0,
            max_queued: None,
        }
    }
}

// Each field is checked as it is read, so that an error points at its
// value's line.

fn seconds(name: &str, value: f64, zero_ok: bool) -> Result<f64, String> {
    let ok = value.is_finite() && value <= MAX_SECONDS && (value > 0.0 || zero_ok && value == 0.0);
    if ok {
        Ok(value)
    } else {
        Err(format!(
            "{name} must be a number of seconds in {}{MAX_SECONDS}], found {value}",
            if zero_ok { "[0, " } else { "(0, " }
        ))
    }
}

fn max_parallel<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = u32::deserialize(d)?;
    if n == 0 || n > MAX_PARALLEL {
        return Err(serde::de::Error::custom(format!(
            "max_parallel must be in 1..={MAX_PARALLEL}, found {n}"
        )));
    }
    Ok(n)
}

fn max_queued<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let n = u32::deserialize(d)?;
    if n == 0 || n > MAX_QUEUED {
        return Err(serde::de::Error::custom(format!(
            "max_queued must be in 1..={MAX_QUEUED}, found {n}"
        )));
    }
    Ok(Some(n))
}

fn instances<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = u32::deserialize(d)?;
    if n > MAX_INSTANCES {
        return Err(serde::de::Error::custom(format!(
            "instances must be at most {MAX_INSTANCES}, found {n}"
        )));
    }
    Ok(n)
}

fn positive_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    seconds("a time", f64::deserialize(d)?, false).map_err(serde::de::Error::custom)
}

fn seconds_or_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    seconds("a time", f64::deserialize(d)?, true).map_err(serde::de::Error::custom)
}

fn retry_delays<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    struct Delays;
    impl<'de> serde::de::Visitor<'de> for Delays {
        type Value = Vec<f64>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "an array of at most {MAX_RETRIES} delays in seconds")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<f64>, A::Error> {
            let mut out = Vec::new();
            while let Some(d) = seq.next_element::<f64>()? {
                if out.len() == MAX_RETRIES {
                    return Err(serde::de::Error::custom(format!(
                        "retry_delays_s has more than {MAX_RETRIES} delays"
                    )));
                }
                out.push(
                    seconds("each of retry_delays_s", d, true).map_err(serde::de::Error::custom)?,
                );
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Delays)
}

impl FunctionSettings {
    pub fn retry_delays(&self) -> Vec<std::time::Duration> {
        self.retry_delays_s
            .iter()
            .map(|s| std::time::Duration::from_secs_f64(*s))
            .collect()
    }

    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.timeout_s)
    }

    pub fn wait(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.wait_s)
    }

    /// The scale-to-zero rule of these settings.
    pub fn scale_rule(&self) -> policy::scale_to_zero::Rule {
        policy::scale_to_zero::Rule {
            idle_before_zero: std::time::Duration::from_secs_f64(self.idle_before_zero_s),
            min_instances: self.min_instances,
        }
    }

    /// Instances a wake asks for: max(`min_instances`,
    /// `instances_at_start`, 1).
    pub fn wake_instances(&self) -> u32 {
        self.min_instances.max(self.instances_at_start).max(1)
    }

    /// Whether a call of `function` may run twice (the field, or the
    /// default: the sample functions are).
    pub fn safe_to_repeat(&self, function: &str) -> bool {
        self.safe_to_repeat
            .unwrap_or_else(|| sample_functions::catalog().get(function).is_some())
    }
}

/// The settings file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SettingsFile {
    /// Settings of every function not listed in `functions`.
    pub defaults: FunctionSettings,
    /// Settings by function name (each a whole set: fields left out take
    /// the built-in defaults, not `defaults`').
    pub functions: BTreeMap<String, FunctionSettings>,
}

/// A settings file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} line {line} column {column}: {message}")]
    Parse {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
}

/// Largest settings file read.
pub const MAX_SETTINGS_FILE: u64 = 4 * 1024 * 1024;

impl SettingsFile {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, SettingsError> {
        use std::io::Read as _;
        let read_error = |source| SettingsError::Read {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let mut bytes = Vec::new();
        file.take(MAX_SETTINGS_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        if bytes.len() as u64 > MAX_SETTINGS_FILE {
            return Err(read_error(std::io::Error::other(format!(
                "larger than {MAX_SETTINGS_FILE} bytes"
            ))));
        }
        let text = protocol::text::from_utf8(bytes).map_err(|e| read_error(e.into()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks a settings file's text (`path` names it in
    /// errors).
    pub fn parse(text: &str, path: &str) -> Result<Self, SettingsError> {
        protocol::strict::from_json_str(text).map_err(|e| {
            // serde_json ends its message with " at line L column C".
            let message = e.to_string();
            let message = message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(m, _)| m)
                .to_string();
            SettingsError::Parse {
                path: path.to_string(),
                line: e.line(),
                column: e.column(),
                message,
            }
        })
    }

    /// The settings of `function`.
    pub fn get(&self, function: &str) -> &FunctionSettings {
        self.functions.get(function).unwrap_or(&self.defaults)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_slimfaas_s() {
        let s = SettingsFile::parse("{}", "s.json").unwrap();
        assert_eq!(s.get("W1").max_parallel, 10);
        assert_eq!(s.get("W1").retry_delays_s, vec![2.0, 4.0, 8.0]);
        assert_eq!(s.get("W1").idle_before_zero_s, 300.0);
        assert!(s.get("W1").safe_to_repeat("W1"));
        assert!(!s.get("mine").safe_to_repeat("mine"));
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let text = "{\"functions\": {\n  \"W1\": {\"max_parallel\": 2},\n  \"W2\": {\"max_paralel\": 2}\n}}";
        let e = SettingsFile::parse(text, "s.json").unwrap_err().to_string();
        assert!(e.starts_with("s.json line 3 column"), "{e}");
        assert!(e.contains("max_paralel"), "{e}");
        let text = "{\"functions\": {\n\n  \"W1\": {\"max_parallel\": 0}\n}}";
        let e = SettingsFile::parse(text, "s.json").unwrap_err().to_string();
        assert!(e.starts_with("s.json line 3 column"), "{e}");
        assert!(e.contains("max_parallel must be in 1..="), "{e}");
        let text = "{\"functions\": {\"W1\":\n {\"min_instances\": 1001}}}";
        let e = SettingsFile::parse(text, "s.json").unwrap_err().to_string();
        assert!(
            e.starts_with("s.json line 2") && e.contains("at most 1000"),
            "{e}"
        );
        let text = "{\"defaults\": {\"retry_delays_s\": [1, -2]}}";
        let e = SettingsFile::parse(text, "s.json").unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("retry_delays_s"), "{e}");
    }

    /// serde's derive reads a struct from an array too, by position: `[]`
    /// was read as the default settings and `[5]` as max_parallel 5.
    #[test]
    fn settings_are_objects_not_arrays() {
        for text in [
            "{\"functions\": {\n\"W1\": []}}",
            "{\"functions\": {\n\"W1\": [5]}}",
            "{\"defaults\":\n [5]}",
            "\n[{}, {}]",
        ] {
            let e = SettingsFile::parse(text, "s.json").unwrap_err().to_string();
            assert!(
                e.starts_with("s.json line 2") && e.contains("invalid type: sequence, expected"),
                "{text}: {e}"
            );
        }
        // An object is still checked field by field.
        let s = SettingsFile::parse("{\"functions\": {\"W1\": {\"max_parallel\": 3}}}", "s.json")
            .unwrap();
        assert_eq!(s.get("W1").max_parallel, 3);
        assert_eq!(s.get("W2").max_parallel, 10);
    }
}
