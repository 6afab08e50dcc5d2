//! The metrics of the original HotFunctions `analyzer.py`
//! (Prev/HotFunctions, `utils/analyzer.py`), computed the same way, plus
//! percentiles, cold starts and a per-node table.
//!
//! Definitions (t0 = the earliest start of a successful call; error replies
//! are left out of every metric below but counted, see "Failed calls"):
//! - **Slots**: 1-second slots from t0; there are `trunc((last end - t0) /
//!   1000) + 1` of them. A call counts in every slot `i` with
//!   `floor((start - t0) / 1000) <= i < ceil((end - t0) / 1000)`.
//! - **Locality**: for each node, the number of distinct functions in a slot,
//!   averaged over all slots; then averaged over nodes (with the population
//!   standard deviation across nodes). Lower means each node runs fewer
//!   different functions at a time.
//! - **Imbalance**: for each node, the number of (call, slot) pairs per slot,
//!   averaged over all slots; the coefficient of variation (population
//!   standard deviation / mean) of these per-node averages.
//! - **Cache hits**: `ImageReuse` is a hit when `Meta.ImageBuilt` is false;
//!   `UsingPooledContainer` and `UsingExistingRestContainer` are hits when
//!   true. For each: hits, misses, hit ratio, mean duration of hits and of
//!   misses.
//! - **Duration** = `end - start` (the original's "exec time"); **latency** =
//!   duration - `InternalExecutionTime`; means overall and per function.
//! - **Algorithm latency**: mean `AlgorithmLatency` (ms in the log), shown in
//!   µs.
//!
//! The node count: the original fixes it (`NUM_NODES`) and indexes nodes by
//! `WorkerNodeId`, so idle nodes count (with zeros) in locality and CV. Here
//! it is, in order ([`Analysis::node_count_rule`] says which):
//! 1. the cluster size given in [`AnalyzeOptions::nodes`] (`--nodes`);
//! 2. else the `cluster.size` of the run's sidecar (`<log>.meta.json`,
//!    [`protocol::sidecar`]), which counts the idle nodes too;
//! 3. else `max WorkerNodeId + 1` (ids are dense, 0-based indexes in the
//!    balancer), which misses idle nodes at the end of the id range: two
//!    runs of one cluster can then disagree.
//!
//! A `WorkerNodeId` outside the given or recorded size is an error naming
//! the log.
//!
//! **Limits.** Memory follows the log's size, not the values in it: per-node
//! tables are sized by the node count, which is at most [`MAX_NODES`]
//! (a `WorkerNodeId` of 4294967295, or `--nodes 4294967295`, is an error,
//! not a 34 GB table); the per-slot detail holds a few numbers per 1-s
//! slot, whatever the node count, for at most [`MAX_SLOTS`] slots (a log
//! whose calls span more is an error with `--per-slot`, and is analyzed
//! without it). Times beyond ±2^53 ms are unreadable lines
//! ([`protocol::log::MAX_ABS_MS`]).
//!
//! A run whose every call failed is analyzed too (its window is the
//! failures'; every metric of successful calls is 0, the error rate 100 %);
//! only a log without any call is an error.
//!
//! Failed calls (error replies): [`Analysis::calls`] counts every call line
//! (successful and failed; unreadable lines are not calls),
//! [`Analysis::failed`] the error replies, [`Analysis::error_rate`] their
//! share, [`Analysis::errors_by_class`] their causes
//! ([`crate::logs::ErrorClass`]). Every latency and duration statistic is
//! over successful calls only, so an algorithm that rejects calls (a
//! bounded-load scheduler answering HTTP 503) can look faster; one figure
//! cannot be improved that way: [`Analysis::p99_latency_all_ms`], the p99
//! latency over all calls where a failed call counts as infinitely slow. It
//! is `None` ("failed") as soon as more than 1 % of the calls failed, since
//! the 99th percentile is then a failed call.
//!
//! Beyond the original: p50/p95/p99/p99.9 and max of duration and latency
//! from an HDR histogram (`hdrhistogram`, 4 significant digits: exact below
//! 32.768 s, within 0.01 % above), each with its 95 % interval whatever
//! the distribution ([`Percentiles::ci95`], from
//! [`crate::stats::quantile_ranks`]), the cold-start ratio (calls served by
//! neither a pooled nor a REST instance), and a per-node table. Negative
//! latencies (clock skew) are counted and clamped to 0 in the histogram only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::logs::{CallRecord, ErrorClass, ErrorCount, ReadLogError, RunLog, UnparseableLine};

/// Options of an analysis.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnalyzeOptions {
    /// The cluster size. `None`: the sidecar's `cluster.size`, else
    /// `max WorkerNodeId + 1` from the data.
    pub nodes: Option<usize>,
    /// The label to show; `None`: [`RunLog::label`].
    pub label: Option<String>,
    /// Also compute [`Analysis::per_slot`] (the original's detail mode);
    /// memory grows with nodes × slots.
    pub per_slot: bool,
}

/// Why a log could not be analyzed.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error(transparent)]
    Read(#[from] ReadLogError),
    #[error(
        "{source_name}: no call to analyze ({error_lines} error lines, {unparseable} unreadable lines)"
    )]
    NoCalls {
        source_name: String,
        error_lines: usize,
        unparseable: usize,
    },
    #[error("{source_name}: WorkerNodeId {id} is outside the {nodes} nodes {origin}")]
    NodeOutOfRange {
        source_name: String,
        id: usize,
        nodes: usize,
        /// `given` (`--nodes`) or `of the sidecar's cluster (<path>)`.
        origin: String,
    },
    #[error(
        "{source_name}: {nodes} nodes ({origin}) are more than the analyzer's limit of {MAX_NODES}"
    )]
    TooManyNodes {
        source_name: String,
        nodes: usize,
        /// How the count was found ([`NodeCountRule::describe`]).
        origin: &'static str,
    },
    #[error("{source_name}: the calls span {slots} one-second slots, more than the per-slot detail's limit of {MAX_SLOTS} (analyze without --per-slot)")]
    TooManySlots { source_name: String, slots: usize },
}

/// Most nodes a log is analyzed over (per-node tables: a few MB).
pub const MAX_NODES: usize = 100_000;
/// Most 1-s slots of the per-slot detail (`--per-slot`): 14 days, the
/// length of the Azure Functions 2019 trace. One row per slot is printed
/// and written to the JSON (about 100 bytes each), so a log whose two
/// calls are months apart would otherwise be gigabytes of report; the
/// summary without `--per-slot` has no such limit.
pub const MAX_SLOTS: usize = 14 * 24 * 3600;

/// Where the node count came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeCountRule {
    /// `max WorkerNodeId + 1` in the log.
    MaxIdPlusOne,
    /// Given by the caller (`--nodes`).
    Given,
    /// The `cluster.size` of the run's sidecar (`<log>.meta.json`).
    Sidecar,
}

impl NodeCountRule {
    /// How reports name the rule.
    pub fn describe(self) -> &'static str {
        match self {
            Self::MaxIdPlusOne => "inferred: max WorkerNodeId + 1",
            Self::Given => "given",
            Self::Sidecar => "from the run's sidecar",
        }
    }
}

/// Locality: distinct functions per node per slot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Locality {
    /// Mean over nodes of each node's mean distinct functions per slot.
    pub mean_distinct_functions: f64,
    /// Population standard deviation of the per-node means.
    pub stddev: f64,
}

/// Imbalance of the per-node mean executions per slot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Imbalance {
    /// Coefficient of variation: `stddev / mean` (0 when the mean is 0).
    pub cv: f64,
    pub stddev: f64,
    pub mean: f64,
}

/// One row of the cache-hit table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HitStats {
    pub hits: usize,
    pub misses: usize,
    /// `hits / (hits + misses)`.
    pub hit_ratio: f64,
    /// Mean duration of hits, ms (`None` without hits).
    pub mean_duration_hit_ms: Option<f64>,
    /// Mean duration of misses, ms (`None` without misses).
    pub mean_duration_miss_ms: Option<f64>,
}

/// The original's three cache-hit rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheHits {
    /// Hit: the image was not built for the call (`!ImageBuilt`).
    pub image_reuse: HitStats,
    /// Hit: `UsingPooledContainer`.
    pub pooled_container: HitStats,
    /// Hit: `UsingExistingRestContainer`.
    pub existing_rest_container: HitStats,
}

/// Percentiles of a distribution, in ms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
    pub p99_9: u64,
    pub max: u64,
    /// How far each percentile of the calls' distribution may lie from the
    /// one measured, with 95 % confidence.
    pub ci95: PercentileIntervals,
}

/// A 95 % interval of each percentile of [`Percentiles`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PercentileIntervals {
    pub p50: Interval,
    pub p95: Interval,
    pub p99: Interval,
    pub p99_9: Interval,
}

/// A 95 % interval of a percentile, ms, whatever the distribution: the
/// calls' values at the ranks [`crate::stats::quantile_ranks`] gives. A
/// side is `None` when the calls are too few to bound it (a p99 over
/// fewer than 368 calls has no upper bound, a p99.9 over fewer than 3,688
/// none: such a value is little more than the largest call's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Interval {
    pub low: Option<u64>,
    pub high: Option<u64>,
}

/// Per-function row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionStats {
    pub function: String,
    pub calls: usize,
    pub mean_duration_ms: f64,
    pub mean_internal_ms: f64,
    pub mean_latency_ms: f64,
    pub cold_starts: usize,
    /// Distinct nodes that ran the function.
    pub nodes: usize,
}

/// Per-node row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeStats {
    pub node: usize,
    pub calls: usize,
    /// `calls / slots` (the original's detail mode "avg /s").
    pub calls_per_s: f64,
    /// Distinct functions over the whole run.
    pub distinct_functions: usize,
    /// This node's locality: mean distinct functions per slot.
    pub mean_distinct_functions_per_slot: f64,
    /// Mean executions per slot (the quantity behind the CV).
    pub mean_executions_per_slot: f64,
    pub cold_starts: usize,
    /// `None` for an idle node.
    pub mean_duration_ms: Option<f64>,
    /// Calls per function on this node.
    pub functions: BTreeMap<String, usize>,
}

/// Everything `utils analyze` reports about one log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// Algorithm (from `LoadBalancingInfo.Algorithm`) or file name.
    pub label: String,
    pub source: String,
    /// Algorithms named in the log.
    pub algorithms: Vec<String>,
    /// Every call line: successful calls and error replies.
    pub calls: usize,
    /// Successful calls (the ones every other metric is computed over).
    pub ok_calls: usize,
    /// Failed calls (error replies).
    pub failed: usize,
    /// `failed / calls`.
    pub error_rate: f64,
    /// The failed calls by cause (with the first message of each).
    pub errors_by_class: BTreeMap<ErrorClass, ErrorCount>,
    /// Lines that could not be read.
    pub unparseable_lines: usize,
    /// The first unreadable lines (line number, reason).
    pub unparseable_examples: Vec<UnparseableLine>,
    pub nodes: usize,
    pub node_count_rule: NodeCountRule,
    /// The run's sidecar (`<log>.meta.json`), when the log had one: what
    /// the run was (algorithm, parameters, seed, scales, version, git).
    pub sidecar: Option<protocol::sidecar::RunSidecar>,
    /// Earliest start (t0), Unix ms.
    pub first_start_ms: i64,
    /// Latest end, Unix ms.
    pub last_end_ms: i64,
    /// Number of 1-s slots.
    pub slots: usize,
    pub locality: Locality,
    pub imbalance: Imbalance,
    pub cache: CacheHits,
    /// Calls served by neither a pooled nor a REST instance.
    pub cold_starts: usize,
    pub cold_start_ratio: f64,
    pub mean_duration_ms: f64,
    pub mean_latency_ms: f64,
    /// Over successful calls only.
    pub duration_ms: Percentiles,
    /// Over successful calls only.
    pub latency_ms: Percentiles,
    /// p99 latency over all calls, a failed call counting as infinitely
    /// slow; `None` when more than 1 % of the calls failed.
    pub p99_latency_all_ms: Option<u64>,
    /// Calls whose latency was negative (clamped to 0 in the percentiles).
    pub negative_latencies: usize,
    /// Mean `AlgorithmLatency` in µs (`None` if the log has none).
    pub mean_algorithm_latency_us: Option<f64>,
    /// Sorted by calls (descending), then name.
    pub per_function: Vec<FunctionStats>,
    pub per_node: Vec<NodeStats>,
    /// Per 1-s slot across nodes, when [`AnalyzeOptions::per_slot`] is set.
    pub per_slot: Option<Vec<SlotStats>>,
}

/// One 1-s slot across nodes (the original's detail mode).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotStats {
    /// Slot index (seconds since t0).
    pub slot: usize,
    /// Mean over nodes of the distinct functions in this slot.
    pub mean_distinct_functions: f64,
    /// (call, slot) pairs in this slot, all nodes.
    pub executions: usize,
    /// CV across nodes of the executions in this slot (0 if there are none).
    pub executions_cv: f64,
}

/// Reads and analyzes each log (one [`Analysis`] per path, in order).
pub fn analyze_logs(
    paths: &[impl AsRef<Path>],
    options: &AnalyzeOptions,
) -> Result<Vec<Analysis>, AnalyzeError> {
    paths
        .iter()
        .map(|p| {
            let run = RunLog::read(p.as_ref())?;
            analyze(&run, options)
        })
        .collect()
}

/// Analyzes one log already read.
pub fn analyze(run: &RunLog, options: &AnalyzeOptions) -> Result<Analysis, AnalyzeError> {
    let records = &run.records;
    // A run whose every call failed is still analyzed (every call-based
    // metric is then 0 and the error rate 100 %), over the failures' window.
    let window = records
        .iter()
        .map(|r| r.start_ms)
        .min()
        .map(|first| {
            let last = records.iter().map(|r| r.end_ms).max().unwrap_or(first);
            (first, last)
        })
        .or(run.error_window);
    let Some((first_start, last_end)) = window else {
        return Err(AnalyzeError::NoCalls {
            source_name: run.source.clone(),
            error_lines: run.error_lines,
            unparseable: run.unparseable_count,
        });
    };
    let max_id = records.iter().map(|r| r.node).max().unwrap_or(0);
    let sidecar_size = run.sidecar.as_ref().map(|s| s.cluster.size);
    let (nodes, node_count_rule) = match (options.nodes, sidecar_size) {
        (Some(n), _) => (n, NodeCountRule::Given),
        (None, Some(n)) => (n, NodeCountRule::Sidecar),
        (None, None) => (max_id.saturating_add(1), NodeCountRule::MaxIdPlusOne),
    };
    if nodes > MAX_NODES {
        return Err(AnalyzeError::TooManyNodes {
            source_name: run.source.clone(),
            nodes,
            origin: node_count_rule.describe(),
        });
    }
    if max_id >= nodes {
        let origin = match node_count_rule {
            NodeCountRule::Sidecar => format!(
                "of the cluster in its sidecar {}",
                protocol::sidecar::sidecar_path(Path::new(&run.source)).display()
            ),
            _ => "given".to_string(),
        };
        return Err(AnalyzeError::NodeOutOfRange {
            source_name: run.source.clone(),
            id: max_id,
            nodes,
            origin,
        });
    }

    // `int((last - t0) / 1000) + 1` in the original: truncation toward zero.
    let slots = ((last_end - first_start).max(0) / 1000) as usize + 1;
    if options.per_slot && slots > MAX_SLOTS {
        return Err(AnalyzeError::TooManySlots {
            source_name: run.source.clone(),
            slots,
        });
    }
    let (per_node_distinct, per_node_executions) =
        slot_occupancy(records, first_start, slots, nodes);
    let locality = Locality {
        mean_distinct_functions: mean(&per_node_distinct),
        stddev: population_stddev(&per_node_distinct),
    };
    let execution_mean = mean(&per_node_executions);
    let execution_stddev = population_stddev(&per_node_executions);
    let imbalance = Imbalance {
        cv: if execution_mean == 0.0 {
            0.0
        } else {
            execution_stddev / execution_mean
        },
        stddev: execution_stddev,
        mean: execution_mean,
    };

    let cache = CacheHits {
        image_reuse: hit_stats(records, |r| !r.image_built),
        pooled_container: hit_stats(records, |r| r.pooled),
        existing_rest_container: hit_stats(records, |r| r.rest_reused),
    };
    let cold_starts = records.iter().filter(|r| r.is_cold()).count();
    let ok_calls = records.len();
    let calls = run.calls();

    let durations: Vec<i64> = records.iter().map(CallRecord::duration_ms).collect();
    let latencies: Vec<i64> = records.iter().map(CallRecord::latency_ms).collect();
    let negative_latencies = latencies.iter().filter(|&&l| l < 0).count();
    let p99_latency_all_ms = p99_with_failures(&latencies, run.error_lines);
    let algorithm_latencies: Vec<f64> = records
        .iter()
        .filter_map(|r| r.algorithm_latency_ms)
        .collect();

    let algorithms: Vec<String> = records
        .iter()
        .filter_map(|r| r.algorithm.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();

    Ok(Analysis {
        label: options.label.clone().unwrap_or_else(|| run.label()),
        source: run.source.clone(),
        algorithms,
        calls,
        ok_calls,
        failed: run.error_lines,
        error_rate: run.error_lines as f64 / calls as f64,
        errors_by_class: run.errors_by_class.clone(),
        unparseable_lines: run.unparseable_count,
        unparseable_examples: run.unparseable.clone(),
        nodes,
        node_count_rule,
        sidecar: run.sidecar.clone(),
        first_start_ms: first_start,
        last_end_ms: last_end,
        slots,
        locality,
        imbalance,
        cache,
        cold_starts,
        cold_start_ratio: if ok_calls == 0 {
            0.0
        } else {
            cold_starts as f64 / ok_calls as f64
        },
        mean_duration_ms: mean_i64(&durations),
        mean_latency_ms: mean_i64(&latencies),
        duration_ms: percentiles(&durations),
        latency_ms: percentiles(&latencies),
        p99_latency_all_ms,
        negative_latencies,
        mean_algorithm_latency_us: (!algorithm_latencies.is_empty())
            .then(|| mean(&algorithm_latencies) * 1000.0),
        per_function: function_stats(records),
        per_node: node_stats(
            records,
            nodes,
            slots,
            &per_node_distinct,
            &per_node_executions,
        ),
        per_slot: options
            .per_slot
            .then(|| slot_series(records, first_start, slots, nodes)),
    })
}

/// Per node: the mean over slots of distinct functions, and of executions.
///
/// The same numbers as filling a node × slot grid of per-function counts (as
/// the original does), without the grid: a node's distinct (slot, function)
/// pairs are the union of its calls' slot ranges per function, and its
/// executions are the sum of the ranges' lengths. Memory grows with the
/// calls, not with nodes × slots.
fn slot_occupancy(
    records: &[CallRecord],
    first_start: i64,
    slots: usize,
    nodes: usize,
) -> (Vec<f64>, Vec<f64>) {
    let mut executions = vec![0i64; nodes];
    for r in records {
        let (from, to) = slot_range(r, first_start, slots);
        executions[r.node] += (to - from).max(0);
    }
    let mut distinct = vec![0i64; nodes];
    for ((node, _), spans) in merged_slot_ranges(records, first_start, slots) {
        distinct[node] += spans.iter().map(|(from, to)| to - from).sum::<i64>();
    }
    let per_slot = |v: Vec<i64>| v.into_iter().map(|c| c as f64 / slots as f64).collect();
    (per_slot(distinct), per_slot(executions))
}

/// The slots `[from, to)` a call occupies, clipped to `[0, slots)`.
fn slot_range(r: &CallRecord, first_start: i64, slots: usize) -> (i64, i64) {
    (
        (r.start_ms - first_start).div_euclid(1000).max(0),
        ceil_div_1000(r.end_ms - first_start).min(slots as i64),
    )
}

/// Per (node, function): the disjoint, sorted slot ranges its calls cover.
fn merged_slot_ranges(
    records: &[CallRecord],
    first_start: i64,
    slots: usize,
) -> HashMap<(usize, &str), Vec<(i64, i64)>> {
    let mut ranges: HashMap<(usize, &str), Vec<(i64, i64)>> = HashMap::new();
    for r in records {
        let (from, to) = slot_range(r, first_start, slots);
        if to > from {
            ranges
                .entry((r.node, r.function.as_str()))
                .or_default()
                .push((from, to));
        }
    }
    for spans in ranges.values_mut() {
        spans.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(spans.len());
        for &(from, to) in spans.iter() {
            match merged.last_mut() {
                Some(last) if from <= last.1 => last.1 = last.1.max(to),
                _ => merged.push((from, to)),
            }
        }
        *spans = merged;
    }
    ranges
}

/// The original's detail mode: per slot, the mean distinct functions over
/// nodes and the CV of executions across nodes.
fn slot_series(
    records: &[CallRecord],
    first_start: i64,
    slots: usize,
    nodes: usize,
) -> Vec<SlotStats> {
    // Sums over all nodes at once, so that memory follows the slots and the
    // calls, not nodes × slots. Difference arrays: +x where a level starts,
    // -x where it ends. Per slot: the distinct functions summed over nodes,
    // and the executions' sum and sum of squares over nodes (the CV needs
    // no more).
    let mut distinct = vec![0i64; slots + 1];
    for spans in merged_slot_ranges(records, first_start, slots).into_values() {
        for (from, to) in spans {
            distinct[from as usize] += 1;
            distinct[to as usize] -= 1;
        }
    }
    // A node's executions change only where its calls' slot ranges begin
    // and end.
    let mut changes: HashMap<usize, Vec<(i64, i64)>> = HashMap::new();
    for r in records {
        let (from, to) = slot_range(r, first_start, slots);
        if to > from {
            let node = changes.entry(r.node).or_default();
            node.push((from, 1));
            node.push((to, -1));
        }
    }
    let mut sum = vec![0i64; slots + 1];
    let mut squares = vec![0i64; slots + 1];
    for mut node in changes.into_values() {
        node.sort_unstable();
        let mut level = 0i64;
        for (i, &(slot, delta)) in node.iter().enumerate() {
            level += delta;
            // `level` holds from this change to the next one.
            let next = node.get(i + 1).map_or(slots as i64, |&(s, _)| s);
            if next > slot && level != 0 {
                sum[slot as usize] += level;
                sum[next as usize] -= level;
                squares[slot as usize] += level * level;
                squares[next as usize] -= level * level;
            }
        }
    }
    for row in [&mut distinct, &mut sum, &mut squares] {
        for i in 1..row.len() {
            row[i] += row[i - 1];
        }
    }
    (0..slots)
        .map(|slot| {
            let total = sum[slot];
            SlotStats {
                slot,
                mean_distinct_functions: distinct[slot] as f64 / nodes as f64,
                executions: total as usize,
                // Population CV over the nodes: sqrt(n·Σx² - (Σx)²) / Σx,
                // the numerator exact in integers.
                executions_cv: if total == 0 {
                    0.0
                } else {
                    let spread =
                        nodes as i128 * i128::from(squares[slot]) - i128::from(total).pow(2);
                    (spread.max(0) as f64).sqrt() / total as f64
                },
            }
        })
        .collect()
}

/// `ceil(ms / 1000)` for any sign.
fn ceil_div_1000(ms: i64) -> i64 {
    -((-ms).div_euclid(1000))
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

fn mean_i64(values: &[i64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64
    }
}

/// Standard deviation with divisor n (the original's `stdd`).
fn population_stddev(values: &[f64]) -> f64 {
    let m = mean(values);
    mean(&values.iter().map(|v| (v - m).powi(2)).collect::<Vec<_>>()).sqrt()
}

fn hit_stats(records: &[CallRecord], is_hit: impl Fn(&CallRecord) -> bool) -> HitStats {
    let (hit, miss): (Vec<&CallRecord>, Vec<&CallRecord>) = records.iter().partition(|r| is_hit(r));
    let mean_duration = |rs: &[&CallRecord]| {
        (!rs.is_empty())
            .then(|| rs.iter().map(|r| r.duration_ms() as f64).sum::<f64>() / rs.len() as f64)
    };
    HitStats {
        hits: hit.len(),
        misses: miss.len(),
        hit_ratio: if records.is_empty() {
            0.0
        } else {
            hit.len() as f64 / records.len() as f64
        },
        mean_duration_hit_ms: mean_duration(&hit),
        mean_duration_miss_ms: mean_duration(&miss),
    }
}

/// Percentiles from an HDR histogram with 4 significant digits (values
/// below 32,768 ms are exact), with their 95 % intervals. Negative values
/// count as 0.
fn percentiles(values: &[i64]) -> Percentiles {
    let hist = histogram(values);
    let at = |q: f64| hist.value_at_quantile(q);
    let interval = |q: f64| {
        let (low, high) = crate::stats::quantile_ranks(hist.len(), q);
        Interval {
            low: low.map(|r| value_at_rank(&hist, r)),
            high: high.map(|r| value_at_rank(&hist, r)),
        }
    };
    Percentiles {
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
        p99_9: at(0.999),
        max: hist.max(),
        ci95: PercentileIntervals {
            p50: interval(0.50),
            p95: interval(0.95),
            p99: interval(0.99),
            p99_9: interval(0.999),
        },
    }
}

/// The `rank`-th smallest value recorded (1-based; as the histogram
/// stores it), or the largest if `rank` is beyond the count.
fn value_at_rank(hist: &Histogram<u64>, rank: u64) -> u64 {
    let mut seen = 0;
    for v in hist.iter_recorded() {
        seen += v.count_since_last_iteration();
        if seen >= rank {
            return hist.highest_equivalent(v.value_iterated_to());
        }
    }
    hist.max()
}

/// The nearest-rank p99 of `ok` values and `failed` values of +∞ (negative
/// values count as 0): `None` when that rank falls on a failure, i.e. when
/// more than 1 % of the calls failed.
fn p99_with_failures(ok: &[i64], failed: usize) -> Option<u64> {
    let total = ok.len() + failed;
    // Nearest rank: the ceil(0.99 n)-th smallest (1-based), computed in
    // integers (99 n / 100 rounded up) so that 0.99 n is never off by one.
    let rank = (99 * total).div_ceil(100).max(1);
    if rank > ok.len() {
        return None;
    }
    let mut sorted: Vec<i64> = ok.iter().map(|&v| v.max(0)).collect();
    let (_, &mut v, _) = sorted.select_nth_unstable(rank - 1);
    Some(v as u64)
}

/// An auto-resizing histogram of the values in ms (negative clamped to 0).
pub(crate) fn histogram(values: &[i64]) -> Histogram<u64> {
    // 4 significant digits is a valid precision, so construction cannot fail.
    let mut hist = Histogram::<u64>::new(4).unwrap_or_else(|_| unreachable!());
    for &v in values {
        let v = v.max(0) as u64;
        // `record` grows the auto-resizing histogram (a 140 s D1 call is
        // beyond its initial range); saturate only if growing fails.
        if hist.record(v).is_err() {
            hist.saturating_record(v);
        }
    }
    hist
}

fn function_stats(records: &[CallRecord]) -> Vec<FunctionStats> {
    let mut by_function: BTreeMap<&str, Vec<&CallRecord>> = BTreeMap::new();
    for r in records {
        by_function.entry(r.function.as_str()).or_default().push(r);
    }
    let mut rows: Vec<FunctionStats> = by_function
        .into_iter()
        .map(|(name, rs)| {
            let n = rs.len() as f64;
            let duration = rs.iter().map(|r| r.duration_ms() as f64).sum::<f64>() / n;
            let latency = rs.iter().map(|r| r.latency_ms() as f64).sum::<f64>() / n;
            FunctionStats {
                function: name.to_string(),
                calls: rs.len(),
                mean_duration_ms: duration,
                mean_internal_ms: duration - latency,
                mean_latency_ms: latency,
                cold_starts: rs.iter().filter(|r| r.is_cold()).count(),
                nodes: rs.iter().map(|r| r.node).collect::<BTreeSet<_>>().len(),
            }
        })
        .collect();
    rows.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.function.cmp(&b.function)));
    rows
}

fn node_stats(
    records: &[CallRecord],
    nodes: usize,
    slots: usize,
    per_node_distinct: &[f64],
    per_node_executions: &[f64],
) -> Vec<NodeStats> {
    (0..nodes)
        .map(|node| {
            let rs: Vec<&CallRecord> = records.iter().filter(|r| r.node == node).collect();
            let mut functions = BTreeMap::new();
            for r in &rs {
                *functions.entry(r.function.clone()).or_insert(0) += 1;
            }
            NodeStats {
                node,
                calls: rs.len(),
                calls_per_s: rs.len() as f64 / slots as f64,
                distinct_functions: functions.len(),
                mean_distinct_functions_per_slot: per_node_distinct[node],
                mean_executions_per_slot: per_node_executions[node],
                cold_starts: rs.iter().filter(|r| r.is_cold()).count(),
                mean_duration_ms: (!rs.is_empty()).then(|| {
                    rs.iter().map(|r| r.duration_ms() as f64).sum::<f64>() / rs.len() as f64
                }),
                functions,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(node: usize, function: &str, start: i64, end: i64) -> CallRecord {
        CallRecord {
            start_ms: start,
            end_ms: end,
            function: function.into(),
            node,
            internal_ms: 0,
            image_built: false,
            pooled: false,
            rest_reused: false,
            algorithm: None,
            algorithm_latency_ms: None,
        }
    }

    fn run(records: Vec<CallRecord>) -> RunLog {
        RunLog::from_records("t.log", records)
    }

    #[test]
    fn ceil_and_floor_match_python_math() {
        assert_eq!(ceil_div_1000(0), 0);
        assert_eq!(ceil_div_1000(1), 1);
        assert_eq!(ceil_div_1000(1000), 1);
        assert_eq!(ceil_div_1000(1001), 2);
        assert_eq!(ceil_div_1000(-1), 0);
    }

    #[test]
    fn a_call_on_a_slot_boundary_occupies_no_extra_slot() {
        // 0..1000 occupies slot 0 only; 1000..2000 slot 1 only. Two slots
        // (trunc(2000/1000)+1 = 3 in fact: slot 2 is empty).
        let a = analyze(
            &run(vec![call(0, "A", 0, 1000), call(0, "B", 1000, 2000)]),
            &AnalyzeOptions::default(),
        )
        .unwrap();
        assert_eq!(a.slots, 3);
        // Distinct per slot: [1, 1, 0].
        assert!((a.locality.mean_distinct_functions - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(a.imbalance.cv, 0.0);
    }

    #[test]
    fn empty_logs_and_bad_node_counts_are_errors() {
        assert!(matches!(
            analyze(&run(vec![]), &AnalyzeOptions::default()),
            Err(AnalyzeError::NoCalls { .. })
        ));
        let opts = AnalyzeOptions {
            nodes: Some(2),
            ..Default::default()
        };
        let e = analyze(&run(vec![call(2, "A", 0, 10)]), &opts).unwrap_err();
        assert!(e.to_string().contains("WorkerNodeId 2"), "{e}");
    }

    type Grid<'a> = Vec<Vec<HashMap<&'a str, usize>>>;

    /// The grid the original fills, for comparison.
    fn grid_occupancy(
        records: &[CallRecord],
        t0: i64,
        slots: usize,
        nodes: usize,
    ) -> ((Vec<f64>, Vec<f64>), Grid<'_>) {
        let mut grid: Grid = vec![vec![HashMap::new(); slots]; nodes];
        for r in records {
            let from = (r.start_ms - t0).div_euclid(1000);
            let to = ceil_div_1000(r.end_ms - t0);
            for slot in from.max(0)..to.min(slots as i64) {
                *grid[r.node][slot as usize].entry(&r.function).or_insert(0) += 1;
            }
        }
        let distinct = grid
            .iter()
            .map(|n| n.iter().map(HashMap::len).sum::<usize>() as f64 / slots as f64)
            .collect();
        let executions = grid
            .iter()
            .map(|n| {
                n.iter().map(|s| s.values().sum::<usize>()).sum::<usize>() as f64 / slots as f64
            })
            .collect();
        ((distinct, executions), grid)
    }

    #[test]
    fn interval_union_equals_the_original_grid() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for _ in 0..50 {
            let records: Vec<CallRecord> = (0..200)
                .map(|_| {
                    let start = rng.gen_range(0..60_000);
                    let len = rng.gen_range(0..8_000);
                    let f = ["A", "B", "C", "D"][rng.gen_range(0..4)];
                    call(rng.gen_range(0..5), f, start, start + len)
                })
                .collect();
            let t0 = records.iter().map(|r| r.start_ms).min().unwrap();
            let last = records.iter().map(|r| r.end_ms).max().unwrap();
            let slots = ((last - t0) / 1000) as usize + 1;
            let fast = slot_occupancy(&records, t0, slots, 5);
            let (slow, grid) = grid_occupancy(&records, t0, slots, 5);
            let series = slot_series(&records, t0, slots, 5);
            for (slot, stats) in series.iter().enumerate() {
                let d: Vec<f64> = grid.iter().map(|n| n[slot].len() as f64).collect();
                let e: Vec<f64> = grid
                    .iter()
                    .map(|n| n[slot].values().sum::<usize>() as f64)
                    .collect();
                assert!((stats.mean_distinct_functions - mean(&d)).abs() < 1e-12);
                let cv = if mean(&e) == 0.0 {
                    0.0
                } else {
                    population_stddev(&e) / mean(&e)
                };
                assert!((stats.executions_cv - cv).abs() < 1e-12);
            }
            for (a, b) in fast.0.iter().zip(&slow.0).chain(fast.1.iter().zip(&slow.1)) {
                assert!((a - b).abs() < 1e-12, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let p = percentiles(&[5, 1, 4, 2, 3, -7]);
        // Sorted (negative clamped): 0 1 2 3 4 5; p50 = 3rd = 2.
        assert_eq!(p.p50, 2);
        assert_eq!(p.p99, 5);
        assert_eq!(p.max, 5);
    }

    /// The intervals are the values at the binomial ranks: for 1..=100 ms
    /// the median's is 40-61 ms (ranks 40 and 61), and the p99's has no
    /// upper side; six values bound their median by their extremes.
    #[test]
    fn percentiles_come_with_their_distribution_free_intervals() {
        let values: Vec<i64> = (1..=100).rev().collect();
        let p = percentiles(&values);
        let both = |low, high| Interval {
            low: Some(low),
            high: Some(high),
        };
        assert_eq!(p.ci95.p50, both(40, 61));
        let (low99, _) = crate::stats::quantile_ranks(100, 0.99);
        assert_eq!(
            p.ci95.p99,
            Interval {
                low: low99,
                high: None
            }
        );
        assert!(p.ci95.p95.low.unwrap() < p.p95 && p.p95 < p.ci95.p95.high.unwrap());
        let p = percentiles(&[5, 1, 4, 2, 3, -7]);
        assert_eq!(p.ci95.p50, both(0, 5));
        assert_eq!(
            percentiles(&[]).ci95.p50,
            Interval {
                low: None,
                high: None
            }
        );
    }

    #[test]
    fn failed_calls_count_as_infinitely_slow_in_the_p99_of_all_calls() {
        let ok: Vec<i64> = (1..=99).collect();
        // 99 ok + 1 failed: rank 99 is the largest ok value.
        assert_eq!(p99_with_failures(&ok, 1), Some(99));
        // 99 ok + 2 failed (1.98 %): rank ceil(99.99) = 100 is a failure.
        assert_eq!(p99_with_failures(&ok, 2), None);
        // 1000 calls, 10 failed (exactly 1 %): rank 990 is the last ok one.
        let ok: Vec<i64> = (1..=990).collect();
        assert_eq!(p99_with_failures(&ok, 10), Some(990));
        assert_eq!(p99_with_failures(&ok, 11), None);
        // No failure: the nearest-rank p99.
        assert_eq!(p99_with_failures(&[5, 1, 4, 2, 3], 0), Some(5));

        // In an analysis: 99 ok calls and 28 load-bound rejections.
        let mut r = run((0..99).map(|i| call(0, "A", i, i + 10)).collect());
        for _ in 0..28 {
            r.push_error("every node is at its load bound (2 in-flight calls)");
        }
        let a = analyze(&r, &AnalyzeOptions::default()).unwrap();
        assert_eq!((a.calls, a.ok_calls, a.failed), (127, 99, 28));
        assert!((a.error_rate - 28.0 / 127.0).abs() < 1e-12);
        assert_eq!(a.errors_by_class[&ErrorClass::LoadBound].count, 28);
        assert_eq!(a.latency_ms.p99, 10);
        assert_eq!(a.p99_latency_all_ms, None);
    }

    #[test]
    fn a_run_whose_every_call_failed_is_analyzed() {
        let mut r = run(vec![]);
        r.push_error("no online node");
        r.error_window = Some((1000, 1000));
        let a = analyze(&r, &AnalyzeOptions::default()).unwrap();
        assert_eq!((a.calls, a.ok_calls, a.failed), (1, 0, 1));
        assert_eq!(a.error_rate, 1.0);
        assert_eq!(a.p99_latency_all_ms, None);
        assert_eq!((a.cold_start_ratio, a.imbalance.cv), (0.0, 0.0));
        assert!(a.locality.mean_distinct_functions.is_finite());
    }

    #[test]
    fn long_calls_keep_their_true_maximum() {
        // A D1 call runs about 140 s, beyond the histogram's initial range.
        let hist = histogram(&[10, 140_000, 1_000_000]);
        assert!(hist.max() >= 999_000, "max {}", hist.max());
        assert!(hist.value_at_quantile(0.5) >= 139_000);
    }
}
