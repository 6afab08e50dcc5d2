//! The analyzer against `tests/data/sample.log`, every expected value worked
//! out by hand below.
//!
//! The sample (t = ms after T = 1600000000000; all calls by algorithm `ch`):
//!
//! | # | fn | node | start | end  | dur  | internal | lat  | built | pooled | rest | alg ms |
//! |---|----|------|-------|------|------|----------|------|-------|--------|------|--------|
//! | 1 | W1 | 0    | 0     | 1200 | 1200 | 1000     | 200  | yes   | no     | no   | 0.01   |
//! | 2 | W1 | 0    | 500   | 1500 | 1000 | 900      | 100  | no    | no     | yes  | 0.02   |
//! | 3 | W2 | 1    | 300   | 2300 | 2000 | 1000     | 1000 | yes   | yes    | no   | 0.03   |
//! | 4 | W2 | 0    | 2000  | 2900 | 900  | 800      | 100  | no    | no     | yes  | 0.01   |
//! | 5 | W1 | 1    | 2500  | 3000 | 500  | 450      | 50   | yes   | yes    | no   | 0.02   |
//! | 6 | W1 | 0    | 3100  | 3600 | 500  | 400      | 100  | no    | no     | yes  | 0.01   |
//! | 7 | T1 | 2    | 1000  | 4000 | 3000 | 2400     | 600  | no    | yes    | no   | 0.04   |
//! | 8 | T1 | 2    | 3500  | 6200 | 2700 | 2500     | 200  | no    | no     | yes  | 0.02   |
//!
//! plus one error reply (W3, start -500, end 9000, "worker ... unreachable":
//! a failed call, counted in `calls`, `failed` and the `worker error` class,
//! but in no other metric, so it moves neither t0 nor the last end), one
//! garbage line (line 4) and one blank line.

use utils::analyze::{analyze, AnalyzeOptions, NodeCountRule};
use utils::compare::Comparison;
use utils::logs::{ErrorClass, RunLog};

fn sample() -> RunLog {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sample.log");
    RunLog::read(path.as_ref()).expect("sample log")
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn counts_calls_error_lines_and_garbage() {
    let run = sample();
    assert_eq!(run.records.len(), 8);
    assert_eq!(run.error_lines, 1);
    assert_eq!(run.unparseable_count, 1);
    assert_eq!(run.unparseable[0].line, 4);
    assert_eq!(run.label(), "ch");
}

#[test]
fn matches_the_hand_computed_metrics() {
    let a = analyze(&sample(), &AnalyzeOptions::default()).unwrap();
    assert_eq!((a.calls, a.ok_calls, a.failed), (9, 8, 1));
    assert!(close(a.error_rate, 1.0 / 9.0));
    assert_eq!(a.errors_by_class.len(), 1);
    let worker = &a.errors_by_class[&ErrorClass::WorkerError];
    assert_eq!(worker.count, 1);
    assert!(worker.example.contains("unreachable"));
    // 1 of 9 failed (> 1 %): the p99 over all calls is a failed call.
    assert_eq!(a.p99_latency_all_ms, None);
    assert_eq!(a.label, "ch");
    // Node ids 0, 1, 2 -> max id + 1 = 3 nodes.
    assert_eq!(a.nodes, 3);
    assert_eq!(a.node_count_rule, NodeCountRule::MaxIdPlusOne);
    // t0 = 0 (call 1), last end = 6200 (call 8): trunc(6200 / 1000) + 1 = 7.
    assert_eq!(a.first_start_ms, 1_600_000_000_000);
    assert_eq!(a.last_end_ms, 1_600_000_006_200);
    assert_eq!(a.slots, 7);

    // Slots of each call: floor(start/1000) .. ceil(end/1000) exclusive.
    //   1: 0..2 -> {0,1}   2: 0..2 -> {0,1}   3: 0..3 -> {0,1,2}
    //   4: 2..3 -> {2}     5: 2..3 -> {2}     6: 3..4 -> {3}
    //   7: 1..4 -> {1,2,3} 8: 3..7 -> {3,4,5,6}
    // Node 0 (calls 1,2,4,6): s0 {W1:2} s1 {W1:2} s2 {W2:1} s3 {W1:1} s4-6 {}
    //   distinct 1,1,1,1,0,0,0 = 4/7; executions 2,2,1,1,0,0,0 = 6/7.
    // Node 1 (calls 3,5): s0 {W2} s1 {W2} s2 {W2,W1} s3-6 {}
    //   distinct 1,1,2,0,0,0,0 = 4/7; executions 1,1,2,0,0,0,0 = 4/7.
    // Node 2 (calls 7,8): s1 {T1} s2 {T1} s3 {T1:2} s4 {T1} s5 {T1} s6 {T1}
    //   distinct 0,1,1,1,1,1,1 = 6/7; executions 0,1,1,2,1,1,1 = 7/7.
    // Locality = mean(4/7, 4/7, 6/7) = 2/3; deviations -2/21, -2/21, 4/21,
    // variance = (4 + 4 + 16) / 441 / 3 = 8/441, stddev = 2*sqrt(2)/21.
    assert!(close(a.locality.mean_distinct_functions, 2.0 / 3.0));
    assert!(close(a.locality.stddev, 2.0 * 2f64.sqrt() / 21.0));
    // Executions: mean(6/7, 4/7, 1) = 17/21; deviations 1/21, -5/21, 4/21,
    // variance = (1 + 25 + 16) / 441 / 3 = 2/63; CV = sqrt(2/63) / (17/21).
    assert!(close(a.imbalance.mean, 17.0 / 21.0));
    assert!(close(a.imbalance.stddev, (2.0f64 / 63.0).sqrt()));
    assert!(close(a.imbalance.cv, (2.0f64 / 63.0).sqrt() * 21.0 / 17.0));
    assert!((a.imbalance.cv - 0.2201).abs() < 1e-4);

    // ImageReuse hits = not built: calls 2,4,6,7,8 (5); misses 1,3,5 (3).
    //   hit dur (1000+900+500+3000+2700)/5 = 1620; miss (1200+2000+500)/3.
    let image = &a.cache.image_reuse;
    assert_eq!((image.hits, image.misses), (5, 3));
    assert!(close(image.hit_ratio, 0.625));
    assert!(close(image.mean_duration_hit_ms.unwrap(), 1620.0));
    assert!(close(image.mean_duration_miss_ms.unwrap(), 3700.0 / 3.0));
    // Pooled: calls 3,5,7 (3): (2000+500+3000)/3; misses 1,2,4,6,8:
    //   (1200+1000+900+500+2700)/5 = 1260.
    let pooled = &a.cache.pooled_container;
    assert_eq!((pooled.hits, pooled.misses), (3, 5));
    assert!(close(pooled.mean_duration_hit_ms.unwrap(), 5500.0 / 3.0));
    assert!(close(pooled.mean_duration_miss_ms.unwrap(), 1260.0));
    // REST: calls 2,4,6,8 (4): (1000+900+500+2700)/4 = 1275; misses 1,3,5,7:
    //   (1200+2000+500+3000)/4 = 1675.
    let rest = &a.cache.existing_rest_container;
    assert_eq!((rest.hits, rest.misses), (4, 4));
    assert!(close(rest.hit_ratio, 0.5));
    assert!(close(rest.mean_duration_hit_ms.unwrap(), 1275.0));
    assert!(close(rest.mean_duration_miss_ms.unwrap(), 1675.0));
    // Cold (neither pooled nor REST): call 1 only.
    assert_eq!(a.cold_starts, 1);
    assert!(close(a.cold_start_ratio, 0.125));

    // Durations sum 11800 / 8 = 1475; latencies sum 2350 / 8 = 293.75.
    assert!(close(a.mean_duration_ms, 1475.0));
    assert!(close(a.mean_latency_ms, 293.75));
    // Nearest rank: sorted durations 500 500 900 1000 1200 2000 2700 3000:
    //   p50 = 4th = 1000; p95 = ceil(7.6) = 8th = 3000.
    assert_eq!(a.duration_ms.p50, 1000);
    assert_eq!(a.duration_ms.p95, 3000);
    assert_eq!(a.duration_ms.p99, 3000);
    assert_eq!(a.duration_ms.max, 3000);
    // Sorted latencies 50 100 100 100 200 200 600 1000: p50 = 100, p95 = 1000.
    assert_eq!(a.latency_ms.p50, 100);
    assert_eq!(a.latency_ms.p95, 1000);
    assert_eq!(a.latency_ms.p99_9, 1000);
    assert_eq!(a.negative_latencies, 0);
    // AlgorithmLatency: 0.16 ms / 8 = 0.02 ms = 20 µs.
    assert!((a.mean_algorithm_latency_us.unwrap() - 20.0).abs() < 1e-9);

    // Per function, by calls then name: W1 (4), T1 (2), W2 (2).
    let names: Vec<&str> = a.per_function.iter().map(|f| f.function.as_str()).collect();
    assert_eq!(names, vec!["W1", "T1", "W2"]);
    // W1: calls 1,2,5,6: dur 3200/4 = 800; lat 450/4 = 112.5; internal 687.5.
    let w1 = &a.per_function[0];
    assert_eq!((w1.calls, w1.cold_starts, w1.nodes), (4, 1, 2));
    assert!(close(w1.mean_duration_ms, 800.0));
    assert!(close(w1.mean_latency_ms, 112.5));
    assert!(close(w1.mean_internal_ms, 687.5));
    // T1: dur (3000+2700)/2 = 2850; lat (600+200)/2 = 400.
    let t1 = &a.per_function[1];
    assert!(close(t1.mean_duration_ms, 2850.0));
    assert!(close(t1.mean_latency_ms, 400.0));
    // W2: dur (2000+900)/2 = 1450; lat (1000+100)/2 = 550.
    assert!(close(a.per_function[2].mean_latency_ms, 550.0));

    // Per node: calls 4, 2, 2; node 0 ran W1 x3 and W2 x1.
    let n0 = &a.per_node[0];
    assert_eq!((n0.calls, n0.distinct_functions, n0.cold_starts), (4, 2, 1));
    assert_eq!(n0.functions["W1"], 3);
    assert!(close(n0.calls_per_s, 4.0 / 7.0));
    assert!(close(n0.mean_distinct_functions_per_slot, 4.0 / 7.0));
    assert!(close(n0.mean_executions_per_slot, 6.0 / 7.0));
    // Node 0 mean duration (1200+1000+900+500)/4 = 900.
    assert!(close(n0.mean_duration_ms.unwrap(), 900.0));
    assert!(close(a.per_node[2].mean_executions_per_slot, 1.0));
}

#[test]
fn an_idle_fourth_node_counts_when_the_cluster_size_is_given() {
    let options = AnalyzeOptions {
        nodes: Some(4),
        ..Default::default()
    };
    let a = analyze(&sample(), &options).unwrap();
    assert_eq!(a.nodes, 4);
    assert_eq!(a.node_count_rule, NodeCountRule::Given);
    // Locality = (4/7 + 4/7 + 6/7 + 0) / 4 = 14/28 = 0.5.
    assert!(close(a.locality.mean_distinct_functions, 0.5));
    // Executions 6/7, 4/7, 7/7, 0: mean 17/28; deviations (24-17)/28,
    // (16-17)/28, (28-17)/28, -17/28 -> squares 49, 1, 121, 289 = 460/784/4,
    // CV = sqrt(460/3136) / (17/28).
    let expected_cv = (460.0f64 / 3136.0).sqrt() / (17.0 / 28.0);
    assert!(close(a.imbalance.cv, expected_cv), "{}", a.imbalance.cv);
    assert_eq!(a.per_node[3].calls, 0);
    assert_eq!(a.per_node[3].mean_duration_ms, None);
}

#[test]
fn the_comparison_row_carries_the_same_numbers() {
    let a = analyze(&sample(), &AnalyzeOptions::default()).unwrap();
    let table = Comparison::new(&[a.clone(), a]);
    assert_eq!(table.rows.len(), 2);
    assert_eq!(table.rows[0].label, "ch (sample)");
    assert!(close(table.rows[0].locality.unwrap(), 2.0 / 3.0));
    assert_eq!(table.rows[0].p99_latency_ms, Some(1000));
    let csv = table.to_csv();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(
        csv.lines().nth(1).unwrap().starts_with("ch (sample),"),
        "{csv}"
    );
    let md = table.to_markdown();
    assert!(
        md.contains("| ch (sample) | 9 | 1 | 11.1% | 3 (inferred) | 0.67 | 0.22 | 62.5% |"),
        "{md}"
    );
}

#[test]
fn per_slot_series_matches_the_hand_computed_grid() {
    let options = AnalyzeOptions {
        per_slot: true,
        ..Default::default()
    };
    let a = analyze(&sample(), &options).unwrap();
    let series = a.per_slot.unwrap();
    assert_eq!(series.len(), 7);
    // Slot 0: node 0 {W1:2}, node 1 {W2:1}, node 2 {}: distinct (1+1+0)/3,
    // executions 2, 1, 0 (sum 3, mean 1, stddev sqrt(2/3)).
    assert!(close(series[0].mean_distinct_functions, 2.0 / 3.0));
    assert_eq!(series[0].executions, 3);
    assert!(close(series[0].executions_cv, (2.0f64 / 3.0).sqrt()));
    // Slot 2: node 0 {W2:1}, node 1 {W2:1, W1:1}, node 2 {T1:1}: distinct
    // (1+2+1)/3; executions 1, 2, 1: mean 4/3, deviations -1/3, 2/3, -1/3,
    // variance (1 + 4 + 1) / 9 / 3 = 2/9.
    assert!(close(series[2].mean_distinct_functions, 4.0 / 3.0));
    assert_eq!(series[2].executions, 4);
    assert!(close(
        series[2].executions_cv,
        (2.0f64 / 9.0).sqrt() / (4.0 / 3.0)
    ));
    // Slot 6: only call 8 (T1 on node 2): executions 0, 0, 1.
    assert_eq!(series[6].executions, 1);
    // Without the option there is no series.
    let plain = analyze(&sample(), &AnalyzeOptions::default()).unwrap();
    assert!(plain.per_slot.is_none());
}
