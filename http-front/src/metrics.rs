//! What the balancer's and the worker's `GET /metrics` share (issue 15
//! §3): the label classes, the bound on function labels, the latency
//! buckets, and the interning of function names with their histograms.
//! Each server keeps its own registry and families
//! (`load_balancer::metrics`, `worker_front::metrics`).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Most distinct function names given labels of their own.
pub const MAX_FUNCTIONS: usize = 1024;
/// The function label of calls beyond [`MAX_FUNCTIONS`] names (and, on the
/// worker, of calls of functions it does not serve).
pub const OTHER_FUNCTION: &str = "_other";
/// The `Content-Type` of `GET /metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A reply's status class.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum StatusClass {
    Success,
    Redirect,
    ClientError,
    ServerError,
    /// No HTTP reply (unreachable, died mid-call, caller gone).
    NoReply,
}

impl StatusClass {
    pub fn of(status: Option<u16>) -> Self {
        match status {
            None => Self::NoReply,
            Some(200..=299) => Self::Success,
            Some(300..=399) => Self::Redirect,
            Some(400..=499) => Self::ClientError,
            Some(_) => Self::ServerError,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "2xx",
            Self::Redirect => "3xx",
            Self::ClientError => "4xx",
            Self::ServerError => "5xx",
            Self::NoReply => "none",
        }
    }
}

impl EncodeLabelValue for StatusClass {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

/// Cold or warm start, as the worker's reply (`Meta`) said.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Start {
    Cold,
    Warm,
    /// No reply, or an error reply without `Meta`.
    Unknown,
}

impl Start {
    /// From a reply's cold-start verdict, if it had one.
    pub fn of(cold: Option<bool>) -> Self {
        match cold {
            None => Self::Unknown,
            Some(true) => Self::Cold,
            Some(false) => Self::Warm,
        }
    }
}

impl EncodeLabelValue for Start {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let text = match self {
            Self::Cold => "cold",
            Self::Warm => "warm",
            Self::Unknown => "unknown",
        };
        std::fmt::Write::write_str(encoder, text)
    }
}

/// A `function` label alone.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FunctionLabel {
    pub function: Arc<str>,
}

/// Buckets from 0.5 ms to about 131 s (doubling).
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 19))
}

/// A function's interned name and its latency histogram.
#[derive(Debug, Clone)]
pub struct FunctionEntry {
    pub name: Arc<str>,
    pub latency: Histogram,
}

/// The latency family by function, with each name interned once: at most
/// [`MAX_FUNCTIONS`] names get labels of their own, later ones share
/// [`OTHER_FUNCTION`]'s entry. A call costs a read lock and a hash
/// look-up; a name allocates only the first time it is seen.
#[derive(Debug)]
pub struct Functions {
    latency: Family<FunctionLabel, Histogram, fn() -> Histogram>,
    names: RwLock<HashMap<Arc<str>, FunctionEntry>>,
    other: FunctionEntry,
}

impl Default for Functions {
    fn default() -> Self {
        Self::new()
    }
}

impl Functions {
    pub fn new() -> Self {
        let latency: Family<FunctionLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        let name: Arc<str> = Arc::from(OTHER_FUNCTION);
        let other = FunctionEntry {
            latency: latency
                .get_or_create(&FunctionLabel {
                    function: name.clone(),
                })
                .clone(),
            name,
        };
        Self {
            latency,
            names: RwLock::new(HashMap::new()),
            other,
        }
    }

    /// The latency family, to register (it shares its data with `self`).
    pub fn latency_family(&self) -> Family<FunctionLabel, Histogram, fn() -> Histogram> {
        self.latency.clone()
    }

    /// [`OTHER_FUNCTION`]'s entry.
    pub fn other(&self) -> FunctionEntry {
        self.other.clone()
    }

    /// `function`'s entry (see the type's docs).
    pub fn get(&self, function: &str) -> FunctionEntry {
        if let Some(entry) = self
            .names
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(function)
        {
            return entry.clone();
        }
        let mut names = self.names.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = names.get(function) {
            return entry.clone();
        }
        if names.len() >= MAX_FUNCTIONS {
            return self.other.clone();
        }
        let name: Arc<str> = Arc::from(function);
        let entry = FunctionEntry {
            latency: self
                .latency
                .get_or_create(&FunctionLabel {
                    function: name.clone(),
                })
                .clone(),
            name: name.clone(),
        };
        names.insert(name, entry.clone());
        entry
    }
}

/// The text of `GET /metrics`: `registry` in the OpenMetrics text format
/// (both servers' scrape ends with it).
pub fn encode(registry: &Registry) -> String {
    let mut text = String::with_capacity(16 * 1024);
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}

/// The value of the first sample line of `text` that starts with `prefix`
/// (a metric name with its labels), as the metrics tests read it.
pub fn line_value(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        assert_eq!(StatusClass::of(Some(204)).as_str(), "2xx");
        assert_eq!(StatusClass::of(Some(302)).as_str(), "3xx");
        assert_eq!(StatusClass::of(Some(404)).as_str(), "4xx");
        assert_eq!(StatusClass::of(Some(503)).as_str(), "5xx");
        assert_eq!(StatusClass::of(None).as_str(), "none");
    }

    #[test]
    fn function_names_beyond_the_bound_share_the_other_entry() {
        let f = Functions::new();
        for i in 0..MAX_FUNCTIONS {
            assert_eq!(&*f.get(&format!("f{i}")).name, format!("f{i}"));
        }
        assert_eq!(&*f.get("one-too-many").name, OTHER_FUNCTION);
        // Known names keep their own entry, and share its histogram.
        let a = f.get("f7");
        a.latency.observe(0.1);
        assert_eq!(&*f.get("f7").name, "f7");
        assert!(Arc::ptr_eq(&a.name, &f.get("f7").name));
    }
}
