//! The text report of `utils analyze`: the original analyzer's sections
//! (locality, imbalance, cache hits, exec time / latency, per function,
//! algorithm latency) followed by what this port adds (percentiles with
//! their 95 % intervals, cold starts, per node, skipped lines). The header says where the node count
//! came from (given, the run's sidecar, or inferred) and how many calls
//! failed; a "Failed calls" section counts them by cause, and every latency
//! line says it is over successful calls, beside the p99 over all calls
//! (failed = infinitely slow).

use std::fmt::Write as _;

use crate::analyze::{Analysis, HitStats, Interval};
use crate::logs::ErrorClass;

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.1}ms"))
}

/// A percentile's 95 % interval, `?` on a side the calls cannot bound.
fn interval_text(i: Interval) -> String {
    let side = |v: Option<u64>| v.map_or_else(|| "?".into(), |v| v.to_string());
    format!("{}-{}ms", side(i.low), side(i.high))
}

/// Renders one analysis as text.
pub fn analysis_text(a: &Analysis) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "==================== {} ({}) ====================",
        a.label, a.source
    );
    let rule = a.node_count_rule.describe();
    let _ = writeln!(
        o,
        "calls: {} ({} ok, {} failed = {:.1}%) | unreadable lines: {} | nodes: {} ({rule}) | window: {:.1}s in {} slots of 1s",
        a.calls,
        a.ok_calls,
        a.failed,
        a.error_rate * 100.0,
        a.unparseable_lines,
        a.nodes,
        (a.last_end_ms - a.first_start_ms) as f64 / 1000.0,
        a.slots
    );
    if !a.algorithms.is_empty() {
        let _ = writeln!(o, "algorithm: {}", a.algorithms.join(", "));
    }
    if let Some(s) = &a.sidecar {
        let mut run = format!("run (sidecar): {} {}", s.producer, s.version);
        if let Some(algorithm) = &s.algorithm {
            run.push_str(&format!(" | algorithm {algorithm}"));
        }
        if !s.parameters.is_empty() {
            let params: Vec<String> = s
                .parameters
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            run.push_str(&format!(" ({})", params.join(", ")));
        }
        if let Some(seed) = s.seed {
            run.push_str(&format!(" | seed {seed}"));
        }
        run.push_str(&format!(
            " | cluster {} nodes | started {}",
            s.cluster.size, s.started_utc
        ));
        if let Some(git) = &s.git {
            run.push_str(&format!(" | git {git}"));
        }
        let _ = writeln!(o, "{run}");
    }

    if a.failed > 0 {
        let _ = writeln!(
            o,
            "\n-------------------- Failed calls --------------------"
        );
        let _ = writeln!(
            o,
            "{} of {} calls failed ({:.1}%); the metrics below are over the {} successful calls",
            a.failed,
            a.calls,
            a.error_rate * 100.0,
            a.ok_calls
        );
        for class in ErrorClass::ALL {
            if let Some(e) = a.errors_by_class.get(&class) {
                let _ = writeln!(
                    o,
                    "{:<15} {:>7}  e.g. {}",
                    class.as_str(),
                    e.count,
                    e.example
                );
            }
        }
    }

    let _ = writeln!(o, "\n-------------------- Locality --------------------");
    let _ = writeln!(
        o,
        "# of distinct functions per node per slot: {:.2} (stddev across nodes: {:.2})",
        a.locality.mean_distinct_functions, a.locality.stddev
    );

    let _ = writeln!(o, "\n-------------------- Imbalance --------------------");
    let _ = writeln!(
        o,
        "CV: {:.3} (stddev: {:.3}, mean executions per node per slot: {:.3})",
        a.imbalance.cv, a.imbalance.stddev, a.imbalance.mean
    );

    let _ = writeln!(o, "\n-------------------- Cache hits --------------------");
    let _ = writeln!(
        o,
        "{:<27}| {:>6} | {:>6} | {:>6} | {:>12} | {:>12}",
        "", "Hit", "Miss", "%", "hit dur", "miss dur"
    );
    let row = |o: &mut String, name: &str, h: &HitStats| {
        let _ = writeln!(
            o,
            "{name:<27}| {:>6} | {:>6} | {:>5.1}% | {:>12} | {:>12}",
            h.hits,
            h.misses,
            h.hit_ratio * 100.0,
            ms(h.mean_duration_hit_ms),
            ms(h.mean_duration_miss_ms)
        );
    };
    row(&mut o, "ImageReuse", &a.cache.image_reuse);
    row(&mut o, "UsingPooledContainer", &a.cache.pooled_container);
    row(
        &mut o,
        "UsingExistingRestContainer",
        &a.cache.existing_rest_container,
    );
    let _ = writeln!(
        o,
        "cold starts (no pooled or REST instance): {} ({:.1}%)",
        a.cold_starts,
        a.cold_start_ratio * 100.0
    );

    let _ = writeln!(
        o,
        "\n-------------------- Exec time / latency --------------------"
    );
    if a.failed > 0 {
        let _ = writeln!(o, "(over the {} successful calls only)", a.ok_calls);
    }
    let _ = writeln!(o, "avg exec time: {:.1}ms", a.mean_duration_ms);
    let _ = writeln!(o, "avg latency: {:.1}ms", a.mean_latency_ms);
    for (name, p) in [("exec time", &a.duration_ms), ("latency", &a.latency_ms)] {
        let _ = writeln!(
            o,
            "{name:<10} p50 {}ms | p95 {}ms | p99 {}ms | p99.9 {}ms | max {}ms",
            p.p50, p.p95, p.p99, p.p99_9, p.max
        );
    }
    let _ = writeln!(
        o,
        "95% intervals of these percentiles over {} calls (any distribution; ? = too few calls to bound it):",
        a.ok_calls
    );
    for (name, p) in [("exec time", &a.duration_ms), ("latency", &a.latency_ms)] {
        let i = &p.ci95;
        let _ = writeln!(
            o,
            "{name:<10} p50 {} | p95 {} | p99 {} | p99.9 {}",
            interval_text(i.p50),
            interval_text(i.p95),
            interval_text(i.p99),
            interval_text(i.p99_9)
        );
    }
    let _ = writeln!(
        o,
        "p99 latency over all calls (a failed call = infinitely slow): {}",
        a.p99_latency_all_ms.map_or_else(
            || format!("failed ({:.1}% of the calls failed)", a.error_rate * 100.0),
            |v| format!("{v}ms")
        )
    );
    if a.negative_latencies > 0 {
        let _ = writeln!(
            o,
            "warning: {} calls had a negative latency (counted as 0 in percentiles)",
            a.negative_latencies
        );
    }
    match a.mean_algorithm_latency_us {
        Some(us) => {
            let _ = writeln!(o, "avg algorithm latency: {us:.1}µs");
        }
        None => {
            let _ = writeln!(o, "avg algorithm latency: - (not in the log)");
        }
    }

    let _ = writeln!(
        o,
        "\n-------------------- Per function --------------------"
    );
    let _ = writeln!(
        o,
        "{:<10} {:>6} {:>12} {:>12} {:>12} {:>6} {:>6}",
        "function", "n", "exec ms", "internal ms", "latency ms", "cold", "nodes"
    );
    for f in &a.per_function {
        let _ = writeln!(
            o,
            "{:<10} {:>6} {:>12.1} {:>12.1} {:>12.1} {:>6} {:>6}",
            f.function,
            f.calls,
            f.mean_duration_ms,
            f.mean_internal_ms,
            f.mean_latency_ms,
            f.cold_starts,
            f.nodes
        );
    }

    let _ = writeln!(o, "\n-------------------- Per node --------------------");
    let _ = writeln!(
        o,
        "{:<5} {:>6} {:>8} {:>9} {:>13} {:>13} {:>6} {:>10}",
        "node", "calls", "calls/s", "distinct", "distinct/slot", "execs/slot", "cold", "exec ms"
    );
    for n in &a.per_node {
        let _ = writeln!(
            o,
            "{:<5} {:>6} {:>8.2} {:>9} {:>13.2} {:>13.2} {:>6} {:>10}",
            n.node,
            n.calls,
            n.calls_per_s,
            n.distinct_functions,
            n.mean_distinct_functions_per_slot,
            n.mean_executions_per_slot,
            n.cold_starts,
            n.mean_duration_ms
                .map_or_else(|| "-".into(), |d| format!("{d:.1}"))
        );
    }

    if let Some(series) = &a.per_slot {
        let _ = writeln!(o, "\n-------------------- Per slot --------------------");
        let _ = writeln!(
            o,
            "{:>6} {:>14} {:>11} {:>8}",
            "slot", "distinct/node", "executions", "CV"
        );
        for s in series {
            let _ = writeln!(
                o,
                "{:>6} {:>14.2} {:>11} {:>8.2}",
                s.slot, s.mean_distinct_functions, s.executions, s.executions_cv
            );
        }
    }

    if !a.unparseable_examples.is_empty() {
        let _ = writeln!(
            o,
            "\n-------------------- Unreadable lines --------------------"
        );
        for u in &a.unparseable_examples {
            let _ = writeln!(o, "{}:{}: {}", a.source, u.line, u.reason);
        }
        if a.unparseable_lines > a.unparseable_examples.len() {
            let _ = writeln!(
                o,
                "... and {} more",
                a.unparseable_lines - a.unparseable_examples.len()
            );
        }
    }
    o
}
