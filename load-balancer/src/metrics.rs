//! `GET /metrics`: the balancer's metrics in the Prometheus/OpenMetrics
//! text format (issue 15, part 3), with the `prometheus-client` crate (the
//! Prometheus project's Rust client).
//!
//! Families (every name has the `balancer_` prefix; counters end in
//! `_total` as OpenMetrics asks):
//! - `balancer_calls_total{function, node, status, start}`: calls sent to
//!   a worker through the scheduler (`/execute` and the SlimFaas routes'
//!   attempts). `node` is the node id (`WorkerNodeId`), `status` the reply's
//!   class (`2xx`, `3xx`, `4xx`, `5xx`, or `none` when no HTTP reply came:
//!   the worker was unreachable or died, or the caller left), `start`
//!   `cold` or `warm` as the worker's `Meta.ColdStart` says (`unknown`
//!   without a reply).
//! - `balancer_call_duration_seconds{function}`: a histogram of the same
//!   calls' duration, selection to reply, as the balancer measured it.
//! - `balancer_in_flight{node}`: calls in flight per node.
//! - `balancer_retries_total{function, route}`: calls sent again: `execute`
//!   (`/execute`'s one retry on another node), `invoke` (a user
//!   function's), `sync` and `async` (the SlimFaas routes' retries).
//! - `balancer_node_up{node, url}`: 1 online, 0 offline, per registered
//!   node, read at scrape time.
//! - `balancer_queue_in_flight{function}`, `balancer_queue_waiting{function,
//!   kind}` (`sync`, `async`), `balancer_queue_oldest_wait_seconds{function}`
//!   and `balancer_queue_stored{function, state}` (the durable queue's rows
//!   by state): the SlimFaas queue, read at scrape time;
//!   `balancer_queue_max_queued{function}`: a function's cap on stored
//!   calls (only functions that have one).
//! - `balancer_instances{function, state}` (`ready`, `starting`): instances
//!   per function summed over the online workers, the data of
//!   `/status-functions`, read from a cache at most
//!   `slim::instances::METRICS_MAX_AGE` (2 s) old (a scrape asks the
//!   workers only when it is older).
//!
//! Cost on the hot path: a call resolves its function's and node's
//! metrics once ([`Metrics::call`]), and its start and end touch those
//! handles only: atomic increments (the latency histogram's in the
//! calling thread's shard: [`http_front::metrics::LatencyHistogram`]), no
//! lock, no label set hashed, no allocation once a (function, node) pair has
//! been seen. Each serving thread keeps the handles it resolved in a
//! cache of its own (a hash look-up of the function name and an index by
//! node id, no lock and no shared reference count: with two threads
//! calling the same function on the same node, every atomic operation on
//! a shared word moves its cache line between the cores, and those were
//! most of the metrics' cost once the express lane had made the rest of
//! a call cheaper); a pair not in it is resolved in the shared maps (a
//! read lock and hash look-up of the function name, then a read lock and
//! an index by node id). A thread's cache keeps what it resolved until
//! the thread ends (a server's threads end with it), and holds at most
//! as many names as the shared maps. (Before, each call hashed four label
//! sets in the families' maps: the profile of
//! `bench/balancer-vs-haproxy.sh` gave the metrics 1.7 % of the
//! balancer's CPU time, then about half.) Label sets
//! are bounded: nodes by the registry, functions by [`MAX_FUNCTIONS`]
//! distinct names (later ones are counted under [`OTHER_FUNCTION`]), status
//! and start by their few classes. `--no-metrics` turns all of it off
//! (the benchmark measures the difference).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use policy::scheduler::NodeId;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use http_front::metrics::{FunctionLabel, Functions};
pub use http_front::metrics::{Start, StatusClass, CONTENT_TYPE, MAX_FUNCTIONS, OTHER_FUNCTION};

/// Which path sent a call again.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum RetryRoute {
    /// `/execute`'s one retry on another node.
    Execute,
    /// A user function's `/invoke` retried on another node.
    Invoke,
    /// A synchronous SlimFaas call's retry.
    Sync,
    /// A queued asynchronous call's retry.
    Async,
}

impl EncodeLabelValue for RetryRoute {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let text = match self {
            Self::Execute => "execute",
            Self::Invoke => "invoke",
            Self::Sync => "sync",
            Self::Async => "async",
        };
        std::fmt::Write::write_str(encoder, text)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    function: Arc<str>,
    node: NodeId,
    status: StatusClass,
    start: Start,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RetryLabels {
    function: Arc<str>,
    route: RetryRoute,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabel {
    node: NodeId,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeUrlLabels {
    node: NodeId,
    url: Arc<str>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WaitingLabels {
    function: Arc<str>,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    function: Arc<str>,
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoredLabels {
    function: Arc<str>,
    state: String,
}

/// A node as a scrape sees it.
#[derive(Debug, Clone)]
pub struct NodeSnapshot {
    pub id: NodeId,
    pub url: Arc<str>,
    pub online: bool,
}

/// One function's SlimFaas queue as a scrape sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueSnapshot {
    pub function: String,
    pub in_flight: u32,
    pub sync_waiting: usize,
    pub async_waiting: usize,
    /// Age of the oldest waiting call.
    pub oldest_wait: Option<Duration>,
    /// The durable store's rows of this function by state.
    pub stored: Vec<(String, i64)>,
    /// Its instances on the workers, (ready, starting) (None: not read).
    pub instances: Option<(u64, u64)>,
    /// Its cap on calls queued or running, if any.
    pub max_queued: Option<u32>,
}

/// Node ids below this get their [`NodeCalls`] kept by index (ids grow by
/// one per node added; beyond it a call resolves its node's handles
/// through the families, as correct and a little slower).
const MAX_INDEXED_NODE: usize = 4096;

/// The classes of a call's outcome: [`StatusClass`] x [`Start`].
const OUTCOMES: usize = 15;

fn outcome_index(status: StatusClass, start: Start) -> usize {
    let status = match status {
        StatusClass::Success => 0,
        StatusClass::Redirect => 1,
        StatusClass::ClientError => 2,
        StatusClass::ServerError => 3,
        StatusClass::NoReply => 4,
    };
    let start = match start {
        Start::Cold => 0,
        Start::Warm => 1,
        Start::Unknown => 2,
    };
    status * 3 + start
}

/// One (function, node) pair's series: the node's in-flight gauge and the
/// pair's call counters by outcome, each created in its family at its
/// first use (a series appears in `/metrics` once counted, as before).
#[derive(Debug)]
struct NodeCalls {
    function: Arc<str>,
    node: NodeId,
    in_flight: Gauge,
    calls: Family<CallLabels, Counter>,
    by_outcome: [OnceLock<Counter>; OUTCOMES],
}

impl NodeCalls {
    fn counter(&self, status: StatusClass, start: Start) -> &Counter {
        self.by_outcome[outcome_index(status, start)].get_or_init(|| {
            self.calls
                .get_or_create(&CallLabels {
                    function: self.function.clone(),
                    node: self.node,
                    status,
                    start,
                })
                .clone()
        })
    }
}

/// A function's latency histogram and its [`NodeCalls`] by node id.
#[derive(Debug)]
struct FunctionCalls {
    name: Arc<str>,
    latency: http_front::metrics::LatencyHistogram,
    nodes: RwLock<Vec<Option<Arc<NodeCalls>>>>,
}

/// A call's metrics, resolved once by [`Metrics::call`]: its start and
/// end touch these handles only. Held by the thread that made it.
#[derive(Debug)]
pub struct CallMetrics(Rc<Handles>);

/// A (function, node) pair's handles, as a thread keeps them.
#[derive(Debug)]
struct Handles {
    function: Arc<FunctionCalls>,
    node: Arc<NodeCalls>,
}

/// Ids of [`Metrics`] values: the threads' caches ([`LOCAL`]) are keyed
/// by them.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A thread's handles by metrics id, function name and node id (module
/// doc: cost), bounded as [`Metrics`]'s own maps are.
type LocalHandles = HashMap<u64, HashMap<Arc<str>, Vec<Option<Rc<Handles>>>>>;

thread_local! {
    static LOCAL: RefCell<LocalHandles> = RefCell::new(HashMap::new());
}

impl CallMetrics {
    /// The call was sent to its node.
    pub fn started(&self) {
        self.0.node.in_flight.inc();
    }

    /// The call [`Self::started`] ended: `status` is the worker's reply
    /// status (None: no reply), `cold` its `Meta` flag.
    pub fn finished(&self, status: Option<u16>, cold: bool, duration: Duration) {
        let Handles { function, node } = &*self.0;
        node.in_flight.dec();
        let start = match (status, cold) {
            (None, _) => Start::Unknown,
            (Some(_), true) => Start::Cold,
            (Some(_), false) => Start::Warm,
        };
        function.latency.observe(duration.as_secs_f64());
        node.counter(StatusClass::of(status), start).inc();
    }
}

/// The balancer's metrics (module doc).
#[derive(Debug)]
pub struct Metrics {
    /// Its key in the threads' caches ([`LOCAL`]).
    id: u64,
    registry: Registry,
    functions: Functions,
    /// The hot path's handles by function name (at most
    /// [`MAX_FUNCTIONS`] names, and [`OTHER_FUNCTION`]).
    hot: RwLock<HashMap<Arc<str>, Arc<FunctionCalls>>>,
    calls: Family<CallLabels, Counter>,
    retries: Family<RetryLabels, Counter>,
    in_flight: Family<NodeLabel, Gauge>,
    node_up: Family<NodeUrlLabels, Gauge>,
    queue_in_flight: Family<FunctionLabel, Gauge>,
    queue_waiting: Family<WaitingLabels, Gauge>,
    queue_oldest: Family<FunctionLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    queue_stored: Family<StoredLabels, Gauge>,
    queue_max: Family<FunctionLabel, Gauge>,
    instances: Family<InstanceLabels, Gauge>,
    /// One scrape at a time (a scrape clears and refills the gauges read
    /// at scrape time; the hot path never takes it).
    scrape: std::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("balancer");
        let calls = Family::default();
        let functions = Functions::new();
        let retries = Family::default();
        let in_flight = Family::default();
        let node_up = Family::default();
        let queue_in_flight = Family::default();
        let queue_waiting = Family::default();
        let queue_oldest = Family::default();
        let queue_stored = Family::default();
        let queue_max = Family::default();
        let instances = Family::default();
        registry.register(
            "queue_max_queued",
            "A function's cap on asynchronous calls queued or running (only functions with one)",
            queue_max.clone(),
        );
        registry.register(
            "instances",
            "Instances per function on the online workers, by state (ready, starting)",
            instances.clone(),
        );
        registry.register(
            "calls",
            "Calls sent to a worker, by function, node id, reply status class and cold/warm start",
            calls.clone(),
        );
        registry.register_with_unit(
            "call_duration",
            "Duration of calls sent to a worker, selection to reply",
            prometheus_client::registry::Unit::Seconds,
            functions.latency_family(),
        );
        registry.register(
            "retries",
            "Calls sent again, by function and route (execute, invoke, sync, async)",
            retries.clone(),
        );
        registry.register("in_flight", "Calls in flight per node", in_flight.clone());
        registry.register(
            "node_up",
            "Whether a registered node is online (1) or offline (0)",
            node_up.clone(),
        );
        registry.register(
            "queue_in_flight",
            "SlimFaas calls running per function (under its parallel cap)",
            queue_in_flight.clone(),
        );
        registry.register(
            "queue_waiting",
            "SlimFaas calls waiting for a slot per function, by kind (sync, async)",
            queue_waiting.clone(),
        );
        registry.register_with_unit(
            "queue_oldest_wait",
            "Age of the oldest SlimFaas call waiting for a slot per function",
            prometheus_client::registry::Unit::Seconds,
            queue_oldest.clone(),
        );
        registry.register(
            "queue_stored",
            "Asynchronous calls in the durable queue per function and state",
            queue_stored.clone(),
        );
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            registry,
            functions,
            hot: RwLock::new(HashMap::new()),
            calls,
            retries,
            in_flight,
            node_up,
            queue_in_flight,
            queue_waiting,
            queue_oldest,
            queue_stored,
            queue_max,
            instances,
            scrape: std::sync::Mutex::new(()),
        }
    }

    /// The metrics of a call of `function` on `node` (module doc: cost).
    pub fn call(&self, function: &str, node: NodeId) -> CallMetrics {
        let index = node as usize;
        let cached = LOCAL.with(|local| {
            local
                .borrow()
                .get(&self.id)?
                .get(function)?
                .get(index)?
                .clone()
        });
        if let Some(handles) = cached {
            return CallMetrics(handles);
        }
        let calls = self.function_calls(function);
        let handles = Rc::new(Handles {
            node: self.node_calls(&calls, node),
            function: calls,
        });
        if index < MAX_INDEXED_NODE {
            LOCAL.with(|local| {
                let mut local = local.borrow_mut();
                let mine = local.entry(self.id).or_default();
                // At most the names the shared map keeps under their own
                // label, and `_other`.
                if mine.len() <= MAX_FUNCTIONS || mine.contains_key(function) {
                    let nodes = mine.entry(Arc::from(function)).or_default();
                    if nodes.len() <= index {
                        nodes.resize(index + 1, None);
                    }
                    nodes[index] = Some(handles.clone());
                }
            });
        }
        CallMetrics(handles)
    }

    fn function_calls(&self, function: &str) -> Arc<FunctionCalls> {
        if let Some(calls) = self
            .hot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(function)
        {
            return calls.clone();
        }
        // Interned (and bounded) by `Functions`: a name past the bound
        // shares `_other`'s handles and is not kept under its own name.
        let entry = self.functions.get(function);
        let mut hot = self.hot.write().unwrap_or_else(PoisonError::into_inner);
        hot.entry(entry.name.clone())
            .or_insert_with(|| {
                Arc::new(FunctionCalls {
                    name: entry.name,
                    latency: entry.latency,
                    nodes: RwLock::new(Vec::new()),
                })
            })
            .clone()
    }

    fn node_calls(&self, function: &FunctionCalls, node: NodeId) -> Arc<NodeCalls> {
        let index = node as usize;
        if let Some(Some(calls)) = function
            .nodes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(index)
        {
            return calls.clone();
        }
        let calls = Arc::new(NodeCalls {
            function: function.name.clone(),
            node,
            in_flight: self.in_flight.get_or_create(&NodeLabel { node }).clone(),
            calls: self.calls.clone(),
            by_outcome: Default::default(),
        });
        if index < MAX_INDEXED_NODE {
            let mut nodes = function
                .nodes
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if nodes.len() <= index {
                nodes.resize(index + 1, None);
            }
            return nodes[index].get_or_insert(calls).clone();
        }
        calls
    }

    /// A call of `function` is sent again.
    pub fn retried(&self, function: &str, route: RetryRoute) {
        let function = self.functions.get(function).name;
        self.retries
            .get_or_create(&RetryLabels { function, route })
            .inc();
    }

    /// The text of `GET /metrics`: the counters, and the nodes' health and
    /// the queue as given now.
    pub fn render(&self, nodes: &[NodeSnapshot], queues: &[QueueSnapshot]) -> String {
        let _scrape = self.scrape.lock().unwrap_or_else(PoisonError::into_inner);
        // A removed node or a drained queue leaves no stale series.
        self.node_up.clear();
        for node in nodes {
            self.node_up
                .get_or_create(&NodeUrlLabels {
                    node: node.id,
                    url: node.url.clone(),
                })
                .set(i64::from(node.online));
        }
        self.queue_in_flight.clear();
        self.queue_waiting.clear();
        self.queue_oldest.clear();
        self.queue_stored.clear();
        self.queue_max.clear();
        self.instances.clear();
        for queue in queues {
            let function = self.functions.get(&queue.function).name;
            let label = FunctionLabel {
                function: function.clone(),
            };
            self.queue_in_flight
                .get_or_create(&label)
                .set(i64::from(queue.in_flight));
            for (kind, n) in [("sync", queue.sync_waiting), ("async", queue.async_waiting)] {
                self.queue_waiting
                    .get_or_create(&WaitingLabels {
                        function: function.clone(),
                        kind,
                    })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            self.queue_oldest
                .get_or_create(&label)
                .set(queue.oldest_wait.map_or(0.0, |d| d.as_secs_f64()));
            if let Some(cap) = queue.max_queued {
                self.queue_max.get_or_create(&label).set(i64::from(cap));
            }
            if let Some((ready, starting)) = queue.instances {
                for (state, n) in [("ready", ready), ("starting", starting)] {
                    self.instances
                        .get_or_create(&InstanceLabels {
                            function: function.clone(),
                            state,
                        })
                        .set(i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
            for (state, n) in &queue.stored {
                self.queue_stored
                    .get_or_create(&StoredLabels {
                        function: function.clone(),
                        state: state.clone(),
                    })
                    .set(*n);
            }
        }
        http_front::metrics::encode(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_front::metrics::line_value;

    #[test]
    fn text_output_counts_calls_by_labels() {
        let m = Metrics::new();
        let call = |node, status, cold, ms| {
            let c = m.call("fib", node);
            c.started();
            c.finished(status, cold, Duration::from_millis(ms));
        };
        for _ in 0..3 {
            call(0, Some(200), false, 3);
        }
        call(1, Some(200), true, 900);
        call(1, None, false, 1);
        m.call("fib", 1).started(); // still in flight
        m.retried("fib", RetryRoute::Execute);
        let nodes = [
            NodeSnapshot {
                id: 0,
                url: "http://127.0.0.1:1".into(),
                online: true,
            },
            NodeSnapshot {
                id: 1,
                url: "http://127.0.0.1:2".into(),
                online: false,
            },
        ];
        let queues = [QueueSnapshot {
            function: "fib".into(),
            in_flight: 2,
            sync_waiting: 1,
            async_waiting: 4,
            oldest_wait: Some(Duration::from_millis(1500)),
            stored: vec![("queued".into(), 5)],
            instances: Some((2, 1)),
            max_queued: Some(100),
        }];
        let text = m.render(&nodes, &queues);
        let v = |prefix: &str| line_value(&text, prefix);
        assert_eq!(
            v(r#"balancer_calls_total{function="fib",node="0",status="2xx",start="warm"}"#),
            Some(3.0),
            "{text}"
        );
        assert_eq!(
            v(r#"balancer_calls_total{function="fib",node="1",status="2xx",start="cold"}"#),
            Some(1.0)
        );
        assert_eq!(
            v(r#"balancer_calls_total{function="fib",node="1",status="none",start="unknown"}"#),
            Some(1.0)
        );
        assert_eq!(
            v(r#"balancer_call_duration_seconds_count{function="fib"}"#),
            Some(5.0)
        );
        // 0.9 s is above the 0.512 s bucket and within the 1.024 s one.
        assert_eq!(
            v(r#"balancer_call_duration_seconds_bucket{le="0.512",function="fib"}"#),
            Some(4.0),
            "{text}"
        );
        assert_eq!(v(r#"balancer_in_flight{node="0"}"#), Some(0.0));
        assert_eq!(v(r#"balancer_in_flight{node="1"}"#), Some(1.0));
        assert_eq!(
            v(r#"balancer_retries_total{function="fib",route="execute"}"#),
            Some(1.0)
        );
        assert_eq!(
            v(r#"balancer_node_up{node="0",url="http://127.0.0.1:1"}"#),
            Some(1.0)
        );
        assert_eq!(
            v(r#"balancer_node_up{node="1",url="http://127.0.0.1:2"}"#),
            Some(0.0)
        );
        assert_eq!(
            v(r#"balancer_queue_waiting{function="fib",kind="async"}"#),
            Some(4.0)
        );
        assert_eq!(
            v(r#"balancer_queue_oldest_wait_seconds{function="fib"}"#),
            Some(1.5)
        );
        assert_eq!(
            v(r#"balancer_queue_stored{function="fib",state="queued"}"#),
            Some(5.0)
        );
        assert_eq!(
            v(r#"balancer_instances{function="fib",state="ready"}"#),
            Some(2.0)
        );
        assert_eq!(
            v(r#"balancer_instances{function="fib",state="starting"}"#),
            Some(1.0)
        );
        assert_eq!(
            v(r#"balancer_queue_max_queued{function="fib"}"#),
            Some(100.0)
        );
        assert!(text.contains("# TYPE balancer_calls counter"), "{text}");
        assert!(text.ends_with("# EOF\n"));
        // A node gone from the registry leaves no series behind.
        let text = m.render(&nodes[..1], &[]);
        assert!(!text.contains(r#"balancer_node_up{node="1""#), "{text}");
        assert!(!text.contains("balancer_queue_waiting{"), "{text}");
    }

    #[test]
    fn resolved_handles_share_the_series() {
        let m = Metrics::new();
        // Node ids past the index resolve through the families alone.
        for node in [3, 3, MAX_INDEXED_NODE as NodeId + 7] {
            for (status, cold) in [(Some(200), false), (Some(503), false), (Some(200), true)] {
                let c = m.call("fib", node);
                c.started();
                c.finished(status, cold, Duration::from_millis(2));
            }
        }
        let held = m.call("fib", 3);
        held.started();
        let text = m.render(&[], &[]);
        for (series, value) in [
            (
                r#"calls_total{function="fib",node="3",status="2xx",start="warm"}"#,
                2.0,
            ),
            (
                r#"calls_total{function="fib",node="3",status="5xx",start="warm"}"#,
                2.0,
            ),
            (
                r#"calls_total{function="fib",node="4103",status="2xx",start="cold"}"#,
                1.0,
            ),
            (r#"call_duration_seconds_count{function="fib"}"#, 9.0),
            (r#"in_flight{node="3"}"#, 1.0),
            (r#"in_flight{node="4103"}"#, 0.0),
        ] {
            let prefix = format!("balancer_{series}");
            assert_eq!(line_value(&text, &prefix), Some(value), "{prefix}\n{text}");
        }
        // Outcomes never counted have no series.
        assert!(!text.contains(r#"status="4xx""#), "{text}");
    }

    #[test]
    fn calls_on_several_threads_count_in_one_series() {
        let m = Arc::new(Metrics::new());
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..5 {
                        let call = m.call("fib", 2);
                        call.started();
                        call.finished(Some(200), false, Duration::from_millis(1));
                    }
                    // A thread's cache answers the second call of a pair.
                    let cached = LOCAL.with(|local| local.borrow()[&m.id]["fib"].len());
                    assert_eq!(cached, 3);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = m.render(&[], &[]);
        let series = r#"balancer_calls_total{function="fib",node="2",status="2xx",start="warm"}"#;
        assert_eq!(line_value(&text, series), Some(15.0), "{text}");
        assert_eq!(
            line_value(
                &text,
                r#"balancer_call_duration_seconds_count{function="fib"}"#
            ),
            Some(15.0)
        );
        assert_eq!(
            line_value(&text, r#"balancer_in_flight{node="2"}"#),
            Some(0.0)
        );
    }

    #[test]
    fn function_labels_are_bounded() {
        let m = Metrics::new();
        for i in 0..MAX_FUNCTIONS + 10 {
            m.retried(&format!("f{i}"), RetryRoute::Sync);
            m.call(&format!("f{i}"), 0);
        }
        // The hot path's handles are as bounded: the names past the bound
        // share `_other`'s.
        assert_eq!(m.hot.read().unwrap().len(), MAX_FUNCTIONS + 1);
        assert_eq!(&*m.call("one-too-many", 0).0.function.name, OTHER_FUNCTION);
        // And so is this thread's cache of them.
        let cached = LOCAL.with(|local| local.borrow()[&m.id].len());
        assert_eq!(cached, MAX_FUNCTIONS + 1);
        let text = m.render(&[], &[]);
        assert_eq!(
            line_value(
                &text,
                r#"balancer_retries_total{function="_other",route="sync"}"#
            ),
            Some(10.0)
        );
        let series = text
            .lines()
            .filter(|l| l.starts_with("balancer_retries_total{"))
            .count();
        assert_eq!(series, MAX_FUNCTIONS + 1);
    }
}
