//! What the balancer's and the worker's `GET /metrics` share (issue 15
//! §3): the label classes, the bound on function labels, the latency
//! buckets, and the interning of function names with their histograms.
//! Each server keeps its own registry and families
//! (`load_balancer::metrics`, `worker_front::metrics`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::{MetricType, TypedMetric};
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

/// A latency histogram: buckets from 0.5 ms to about 131 s (doubling),
/// as `prometheus_client`'s `Histogram` with
/// `exponential_buckets(0.0005, 2.0, 19)` has them, written the same, but
/// kept in [`SHARDS`] shards, each on cache lines of its own, a thread
/// observing into one shard (threads take shards in turn): two threads
/// timing calls of one function do not move one line between their cores
/// at every call, as one shared histogram behind a mutex did (the
/// balancer's metrics cost, issue 15 §3). A scrape sums the shards; the
/// count is the buckets' total, so a scrape during an observation may see
/// its bucket and not yet its sum.
#[derive(Debug, Clone, Default)]
pub struct LatencyHistogram(Arc<[HistogramShard; SHARDS]>);

/// Shards of a [`LatencyHistogram`].
pub const SHARDS: usize = 4;

/// Finite upper bounds of a [`LatencyHistogram`]'s buckets.
const BOUNDS: usize = 19;

/// One shard: the sum's bits and each bucket's count (the last is `+Inf`).
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct HistogramShard {
    sum_bits: AtomicU64,
    buckets: [AtomicU64; BOUNDS + 1],
}

/// The finite upper bounds, as `exponential_buckets(0.0005, 2.0, 19)`.
fn bounds() -> impl Iterator<Item = f64> {
    std::iter::successors(Some(0.0005_f64), |b| Some(b * 2.0)).take(BOUNDS)
}

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's shard of every histogram.
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

impl LatencyHistogram {
    /// Counts `v` (seconds); NaN goes to `+Inf`, as `prometheus_client`
    /// counts it.
    pub fn observe(&self, v: f64) {
        let shard = &self.0[SHARD.with(|s| *s)];
        let bucket = if v.is_nan() {
            BOUNDS
        } else {
            bounds().position(|b| v <= b).unwrap_or(BOUNDS)
        };
        shard.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let mut current = shard.sum_bits.load(Ordering::Relaxed);
        loop {
            let sum = (f64::from_bits(current) + v).to_bits();
            match shard.sum_bits.compare_exchange_weak(
                current,
                sum,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
    }

    /// The sum, the count and each bucket's count (upper bound, count).
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut sum = 0.0;
        let mut counts = [0u64; BOUNDS + 1];
        for shard in self.0.iter() {
            sum += f64::from_bits(shard.sum_bits.load(Ordering::Relaxed));
            for (total, bucket) in counts.iter_mut().zip(&shard.buckets) {
                *total += bucket.load(Ordering::Relaxed);
            }
        }
        let buckets: Vec<(f64, u64)> = bounds()
            .chain(std::iter::once(f64::INFINITY))
            .zip(counts)
            .collect();
        (sum, counts.iter().sum(), buckets)
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.snapshot();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// A function's interned name and its latency histogram.
#[derive(Debug, Clone)]
pub struct FunctionEntry {
    pub name: Arc<str>,
    pub latency: LatencyHistogram,
}

/// The latency family by function, with each name interned once: at most
/// [`MAX_FUNCTIONS`] names get labels of their own, later ones share
/// [`OTHER_FUNCTION`]'s entry. A call costs a read lock and a hash
/// look-up; a name allocates only the first time it is seen.
#[derive(Debug)]
pub struct Functions {
    latency: Family<FunctionLabel, LatencyHistogram>,
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
        let latency: Family<FunctionLabel, LatencyHistogram> = Family::default();
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
    pub fn latency_family(&self) -> Family<FunctionLabel, LatencyHistogram> {
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
    fn the_sharded_histogram_reads_as_prometheus_client_s() {
        use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
        // Values on bounds, between them and past the last.
        let values: Vec<f64> = (0..600)
            .map(|i| f64::from(i * 37 % 4096) / 4096.0 * f64::from(1 << (i % 9)))
            .chain([0.0005, 0.001, 262.144, 1e6])
            .collect();
        let theirs = Histogram::new(exponential_buckets(0.0005, 2.0, 19));
        let ours = LatencyHistogram::default();
        for v in &values {
            theirs.observe(*v);
        }
        // From several threads: every shard gets some.
        std::thread::scope(|scope| {
            for part in values.chunks(100) {
                let ours = ours.clone();
                scope.spawn(move || part.iter().for_each(|v| ours.observe(*v)));
            }
        });
        let text = |h: Box<dyn FnOnce(&mut Registry)>| {
            let mut registry = Registry::default();
            h(&mut registry);
            encode(&registry)
        };
        let a = text(Box::new(move |r| r.register("latency", "h", theirs)));
        let b = text(Box::new(move |r| r.register("latency", "h", ours.clone())));
        // The same text but the sum, which the threads added up in
        // another order.
        let (sum_a, sum_b) = (line_value(&a, "latency_sum"), line_value(&b, "latency_sum"));
        let unsummed = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| !l.starts_with("latency_sum"))
                .map(String::from)
                .collect()
        };
        assert_eq!(unsummed(&a), unsummed(&b));
        let (sum_a, sum_b) = (sum_a.unwrap(), sum_b.unwrap());
        assert!((sum_a - sum_b).abs() <= 1e-9 * sum_a, "{sum_a} {sum_b}");
        assert!(a.contains(r#"latency_bucket{le="0.0005"} "#), "{a}");
        assert_eq!(line_value(&a, "latency_count"), Some(values.len() as f64));

        let nan = LatencyHistogram::default();
        nan.observe(f64::NAN);
        let (_, count, buckets) = nan.snapshot();
        assert_eq!(count, 1);
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, 1)));
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
