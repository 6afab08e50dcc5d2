//! `GET /metrics`: the worker's metrics in the Prometheus/OpenMetrics text
//! format (issue 15, part 3), with the `prometheus-client` crate (the
//! Prometheus project's Rust client), as the balancer's
//! (`load_balancer::metrics`) with the `worker_` prefix.
//!
//! Families (counters end in `_total` as OpenMetrics asks):
//! - `worker_calls_total{function, status, start}`: `/execute` calls
//!   answered, by function, the reply's status class (`2xx`, `4xx`, `5xx`)
//!   and `start`: `cold` or `warm` as the reply's `Meta` says
//!   ([`protocol::ExecutionMeta::is_cold`]: no pooled or live REST
//!   instance served it), `unknown` for an error reply (no `Meta`).
//! - `worker_call_duration_seconds{function}`: a histogram of the same
//!   calls' duration, request parsed to reply ready, as the worker measured
//!   it.
//! - `worker_calls_in_flight`: calls received and not yet answered.
//! - `worker_instances{state}`: the node model's instances by state
//!   (`pooled`: ready pre-warmed pool members; `rest`: REST-mode instances
//!   up; `keep_alive_busy`, `keep_alive_idle`: the Lambda model's).
//! - `worker_function_instances{function, kind}`: the instances the worker
//!   holds in its runtime per function, `pooled` or `long_lived` (REST and
//!   keep-alive instances, which the runtime runs alike).
//! - `worker_images`, `worker_image_bytes` (the package bytes the image
//!   cache's limit counts), `worker_image_stored_bytes` (what the images
//!   take in the engine or on disk), `worker_image_builds_total`,
//!   `worker_image_evictions_total` (images the node model removed outside
//!   `/clear`: the cache's limit), `worker_memory_evictions_total` (idle
//!   keep-alive instances evicted for the node's memory).
//!
//! Everything but the calls is read at scrape time from what the worker
//! keeps anyway ([`crate::worker::Worker::metrics_snapshot`], one pass under
//! its state lock per scrape), so the hot path pays only for the calls:
//! one read lock and hash look-up to find the function's interned name and
//! histogram, one look-up in the counter family's map, atomic increments
//! and the histogram's own short mutex, two clock readings; no allocation
//! once a label set has been seen, and never the worker's state lock.
//! Label sets are bounded: functions by [`MAX_FUNCTIONS`] distinct names
//! (later ones, and names the worker does not serve, are counted under
//! [`OTHER_FUNCTION`]), status and start by their few classes. `--no-metrics`
//! turns all of it off (`/metrics` answers 404).

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use http_front::metrics::Functions;
pub use http_front::metrics::{Start, StatusClass, CONTENT_TYPE, MAX_FUNCTIONS, OTHER_FUNCTION};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    function: Arc<str>,
    status: StatusClass,
    start: Start,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionKindLabels {
    function: Arc<str>,
    kind: &'static str,
}

/// What a scrape reads from the worker (its counters and holdings now).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub calls_in_flight: u64,
    /// The model's instances by state: (state label, count).
    pub instances: Vec<(&'static str, u64)>,
    /// The runtime's instances: (function, kind label, count).
    pub function_instances: Vec<(String, &'static str, u64)>,
    pub images: u64,
    pub image_bytes: u64,
    pub image_stored_bytes: u64,
    pub image_builds: u64,
    pub image_evictions: u64,
    pub memory_evictions: u64,
}

/// The worker's metrics (module doc).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    functions: Functions,
    calls: Family<CallLabels, Counter>,
    in_flight: Gauge,
    instances: Family<StateLabel, Gauge>,
    function_instances: Family<FunctionKindLabels, Gauge>,
    images: Gauge,
    image_bytes: Gauge,
    image_stored_bytes: Gauge,
    image_builds: Counter,
    image_evictions: Counter,
    memory_evictions: Counter,
    /// One scrape at a time (a scrape refills what it reads; the hot path
    /// never takes it).
    scrape: std::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A counter fed from a monotonic count kept elsewhere: raised to it.
fn raise_to(counter: &Counter, value: u64) {
    let now = counter.get();
    if value > now {
        counter.inc_by(value - now);
    }
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("worker");
        let calls = Family::default();
        let functions = Functions::new();
        let in_flight = Gauge::default();
        let instances = Family::default();
        let function_instances = Family::default();
        let images = Gauge::default();
        let image_bytes = Gauge::default();
        let image_stored_bytes = Gauge::default();
        let image_builds = Counter::default();
        let image_evictions = Counter::default();
        let memory_evictions = Counter::default();
        registry.register(
            "calls",
            "/execute calls answered, by function, reply status class and cold/warm start",
            calls.clone(),
        );
        registry.register_with_unit(
            "call_duration",
            "Duration of /execute calls at the worker, request to reply",
            Unit::Seconds,
            functions.latency_family(),
        );
        registry.register(
            "calls_in_flight",
            "Calls received and not yet answered",
            in_flight.clone(),
        );
        registry.register(
            "instances",
            "The node model's instances by state (pooled, rest, keep_alive_busy, keep_alive_idle)",
            instances.clone(),
        );
        registry.register(
            "function_instances",
            "Instances held in the runtime per function and kind (pooled, long_lived)",
            function_instances.clone(),
        );
        registry.register("images", "Cached function images", images.clone());
        registry.register_with_unit(
            "image",
            "Package bytes of the cached images (what the image cache limit counts)",
            Unit::Bytes,
            image_bytes.clone(),
        );
        registry.register_with_unit(
            "image_stored",
            "What the cached images take in the engine or on disk",
            Unit::Bytes,
            image_stored_bytes.clone(),
        );
        registry.register(
            "image_builds",
            "Images built since start",
            image_builds.clone(),
        );
        registry.register(
            "image_evictions",
            "Images removed by the image cache (not by /clear)",
            image_evictions.clone(),
        );
        registry.register(
            "memory_evictions",
            "Idle keep-alive instances evicted for the node's memory",
            memory_evictions.clone(),
        );
        Self {
            registry,
            functions,
            calls,
            in_flight,
            instances,
            function_instances,
            images,
            image_bytes,
            image_stored_bytes,
            image_builds,
            image_evictions,
            memory_evictions,
            scrape: std::sync::Mutex::new(()),
        }
    }

    /// A call of `function` was answered with `status`; `cold` is its
    /// `Meta`'s verdict (None: an error reply). A function the worker does
    /// not serve is counted as [`OTHER_FUNCTION`] (its name is the
    /// caller's, not a label to keep).
    pub fn call_finished(
        &self,
        function: Option<&str>,
        status: u16,
        cold: Option<bool>,
        duration: Duration,
    ) {
        let entry = match function {
            Some(f) => self.functions.get(f),
            None => self.functions.other(),
        };
        let start = Start::of(cold);
        entry.latency.observe(duration.as_secs_f64());
        self.calls
            .get_or_create(&CallLabels {
                function: entry.name,
                status: StatusClass::of(Some(status)),
                start,
            })
            .inc();
    }

    /// The text of `GET /metrics`: the calls counted, and `now` as the
    /// worker gives it.
    pub fn render(&self, now: &Snapshot) -> String {
        let _scrape = self.scrape.lock().unwrap_or_else(PoisonError::into_inner);
        self.in_flight.set(as_i64(now.calls_in_flight));
        self.instances.clear();
        for (state, n) in &now.instances {
            self.instances
                .get_or_create(&StateLabel { state })
                .set(as_i64(*n));
        }
        // An instance gone leaves no stale series.
        self.function_instances.clear();
        for (function, kind, n) in &now.function_instances {
            let function = self.functions.get(function).name;
            self.function_instances
                .get_or_create(&FunctionKindLabels { function, kind })
                .inc_by(as_i64(*n));
        }
        self.images.set(as_i64(now.images));
        self.image_bytes.set(as_i64(now.image_bytes));
        self.image_stored_bytes.set(as_i64(now.image_stored_bytes));
        raise_to(&self.image_builds, now.image_builds);
        raise_to(&self.image_evictions, now.image_evictions);
        raise_to(&self.memory_evictions, now.memory_evictions);
        http_front::metrics::encode(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_front::metrics::line_value;

    #[test]
    fn text_output_counts_calls_and_reads_the_snapshot() {
        let m = Metrics::new();
        for _ in 0..3 {
            m.call_finished(Some("W1"), 200, Some(false), Duration::from_millis(3));
        }
        m.call_finished(Some("W1"), 200, Some(true), Duration::from_millis(900));
        m.call_finished(Some("W1"), 500, None, Duration::from_millis(1));
        m.call_finished(None, 404, None, Duration::from_millis(1));
        let snapshot = Snapshot {
            calls_in_flight: 2,
            instances: vec![("pooled", 6), ("rest", 1)],
            function_instances: vec![("W1".into(), "pooled", 6), ("W2".into(), "long_lived", 1)],
            images: 2,
            image_bytes: 1000,
            image_stored_bytes: 5000,
            image_builds: 3,
            image_evictions: 1,
            memory_evictions: 0,
        };
        let text = m.render(&snapshot);
        let v = |prefix: &str| line_value(&text, prefix);
        assert_eq!(
            v(r#"worker_calls_total{function="W1",status="2xx",start="warm"}"#),
            Some(3.0),
            "{text}"
        );
        assert_eq!(
            v(r#"worker_calls_total{function="W1",status="2xx",start="cold"}"#),
            Some(1.0)
        );
        assert_eq!(
            v(r#"worker_calls_total{function="W1",status="5xx",start="unknown"}"#),
            Some(1.0)
        );
        assert_eq!(
            v(r#"worker_calls_total{function="_other",status="4xx",start="unknown"}"#),
            Some(1.0)
        );
        assert_eq!(
            v(r#"worker_call_duration_seconds_count{function="W1"}"#),
            Some(5.0)
        );
        // 0.9 s is above the 0.512 s bucket.
        assert_eq!(
            v(r#"worker_call_duration_seconds_bucket{le="0.512",function="W1"}"#),
            Some(4.0),
            "{text}"
        );
        assert_eq!(v("worker_calls_in_flight "), Some(2.0));
        assert_eq!(v(r#"worker_instances{state="pooled"}"#), Some(6.0));
        assert_eq!(
            v(r#"worker_function_instances{function="W2",kind="long_lived"}"#),
            Some(1.0)
        );
        assert_eq!(v("worker_image_bytes "), Some(1000.0));
        assert_eq!(v("worker_image_stored_bytes "), Some(5000.0));
        assert_eq!(v("worker_image_builds_total "), Some(3.0));
        assert_eq!(v("worker_image_evictions_total "), Some(1.0));
        assert!(text.contains("# TYPE worker_calls counter"), "{text}");
        assert!(text.ends_with("# EOF\n"));
        // Counters fed from the worker's counts follow them; gone
        // instances leave no series.
        let later = Snapshot {
            image_builds: 5,
            image_evictions: 1,
            ..Snapshot::default()
        };
        let text = m.render(&later);
        assert_eq!(line_value(&text, "worker_image_builds_total "), Some(5.0));
        assert_eq!(
            line_value(&text, "worker_image_evictions_total "),
            Some(1.0)
        );
        assert!(!text.contains("worker_function_instances{"), "{text}");
    }

    #[test]
    fn function_labels_are_bounded() {
        let m = Metrics::new();
        for i in 0..MAX_FUNCTIONS + 10 {
            m.call_finished(Some(&format!("f{i}")), 200, Some(true), Duration::ZERO);
        }
        let text = m.render(&Snapshot::default());
        assert_eq!(
            line_value(
                &text,
                r#"worker_calls_total{function="_other",status="2xx",start="cold"}"#
            ),
            Some(10.0)
        );
        let series = text
            .lines()
            .filter(|l| l.starts_with("worker_calls_total{"))
            .count();
        assert_eq!(series, MAX_FUNCTIONS + 1);
    }
}
