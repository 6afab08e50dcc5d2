//! Cross-check against the original HotFunctions `analyzer.py`.
//!
//! `tests/data/rr-small.log` is a synthetic replay log in the original
//! format: `scenarios/small.csv` (131 calls) placed round-robin on 4 nodes
//! by a throwaway model with made-up durations and cache flags (it is not a
//! measurement). The expected values below are what the original analyzer's
//! formulas (Prev/HotFunctions `utils/analyzer.py`, run with Python 3 and
//! `NUM_NODES` = 4, then 6) printed for this file, to 10 decimals.

use utils::analyze::{analyze, AnalyzeOptions};
use utils::logs::RunLog;

fn run() -> RunLog {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rr-small.log");
    RunLog::read(path.as_ref()).unwrap()
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-9, "{a} vs {b}");
}

#[test]
fn same_numbers_as_the_original_with_4_nodes() {
    let a = analyze(&run(), &AnalyzeOptions::default()).unwrap();
    assert_eq!(a.nodes, 4);
    assert_eq!(a.calls, 131);
    close(a.locality.mean_distinct_functions, 2.3560606061);
    close(a.locality.stddev, 0.2747191570);
    close(a.imbalance.cv, 0.0863982550);
    close(a.imbalance.stddev, 0.2277772179);
    close(a.imbalance.mean, 2.6363636364);
    let c = &a.cache;
    assert_eq!((c.image_reuse.hits, c.image_reuse.misses), (117, 14));
    close(c.image_reuse.mean_duration_hit_ms.unwrap(), 1579.1623931624);
    close(
        c.image_reuse.mean_duration_miss_ms.unwrap(),
        2907.7857142857,
    );
    assert_eq!(
        (c.pooled_container.hits, c.pooled_container.misses),
        (23, 108)
    );
    close(
        c.pooled_container.mean_duration_hit_ms.unwrap(),
        2674.0869565217,
    );
    close(
        c.pooled_container.mean_duration_miss_ms.unwrap(),
        1518.2129629630,
    );
    assert_eq!(
        (
            c.existing_rest_container.hits,
            c.existing_rest_container.misses
        ),
        (82, 49)
    );
    close(
        c.existing_rest_container.mean_duration_hit_ms.unwrap(),
        1013.0,
    );
    close(
        c.existing_rest_container.mean_duration_miss_ms.unwrap(),
        2906.2244897959,
    );
    close(a.mean_duration_ms, 1721.1526717557);
    close(a.mean_latency_ms, 649.5648854962);
    close(a.mean_algorithm_latency_us.unwrap(), 10.5415803896);
}

#[test]
fn same_numbers_as_the_original_with_6_nodes_two_idle() {
    let options = AnalyzeOptions {
        nodes: Some(6),
        ..Default::default()
    };
    let a = analyze(&run(), &options).unwrap();
    close(a.locality.mean_distinct_functions, 1.5707070707);
    close(a.locality.stddev, 1.1330816804);
    close(a.imbalance.cv, 0.7149804107);
    close(a.imbalance.stddev, 1.2566322370);
    close(a.imbalance.mean, 1.7575757576);
}
