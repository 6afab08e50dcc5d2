//! Analyzer throughput on synthetic calls (no file I/O): 100,000 calls over
//! 16 nodes, 200 functions and one hour, as a large replay or a
//! discrete-event run would log them.
//!
//! `cargo bench -p utils --bench analyze`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use utils::analyze::{analyze, AnalyzeOptions};
use utils::logs::{CallRecord, RunLog};

fn synthetic_run(calls: usize) -> RunLog {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let records = (0..calls)
        .map(|_| {
            let start = rng.gen_range(0..3_600_000i64);
            let duration = rng.gen_range(50..5_000i64);
            CallRecord {
                start_ms: start,
                end_ms: start + duration,
                function: format!("F{:03}", rng.gen_range(1..=200)),
                node: rng.gen_range(0..16),
                internal_ms: duration - rng.gen_range(1..50),
                image_built: rng.gen_bool(0.05),
                pooled: rng.gen_bool(0.2),
                rest_reused: rng.gen_bool(0.6),
                algorithm: Some("ch".into()),
                algorithm_latency_ms: Some(0.01),
            }
        })
        .collect();
    RunLog::from_records("synthetic", records)
}

fn bench_analyze(c: &mut Criterion) {
    let run = synthetic_run(100_000);
    let mut group = c.benchmark_group("analyze");
    group.throughput(Throughput::Elements(100_000));
    group.sample_size(20);
    group.bench_function("100k calls", |b| {
        b.iter(|| analyze(&run, &AnalyzeOptions::default()).unwrap())
    });
    group.bench_function("100k calls, per slot", |b| {
        let options = AnalyzeOptions {
            per_slot: true,
            ..Default::default()
        };
        b.iter(|| analyze(&run, &options).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_analyze);
criterion_main!(benches);
