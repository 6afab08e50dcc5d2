//! Criterion benchmark: one `select` plus one `finished` per iteration, for
//! each registered scheduler (`rr`, `ll`, `ch`, `pasch`, `ours`,
//! `tradeoff`, ...; default parameters, seed 0) at 8, 64 and 1,000 nodes.
//!
//! Steady state: as many calls in flight as there are nodes (mean load 1,
//! below every default bound), completed first-in first-out, so each
//! iteration starts one call of one of the 30 catalog functions (a fixed
//! pseudo-random sequence) and finishes the oldest one. This is the
//! per-call scheduling cost the discrete-event simulator pays.
//!
//! Run: `cargo bench -p policy --bench schedulers` (about a minute:
//! 1 s warm-up and 2 s measurement per case).

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use policy::scheduler::{
    build, registry, Completion, Membership, NodeId, NodeInfo, ParamSet, Scheduler, Time,
};

/// The 30 sample functions of HotFunctions.
const FUNCTIONS: [&str; 30] = [
    "W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W10", "W11", "T1", "T2", "T3", "T4",
    "T5", "T6", "I1", "I2", "I3", "I4", "I5", "D1", "D2", "D3", "D4", "D5", "D6", "D7", "D8",
];

const SEQUENCE_LEN: usize = 4096;

fn function_sequence() -> Vec<&'static str> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..SEQUENCE_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            FUNCTIONS[(x % FUNCTIONS.len() as u64) as usize]
        })
        .collect()
}

struct Steady {
    scheduler: Box<dyn Scheduler>,
    in_flight: VecDeque<(NodeId, &'static str)>,
    sequence: Vec<&'static str>,
    next: usize,
    clock_us: u64,
}

impl Steady {
    fn new(alg: &str, nodes: u32) -> Self {
        let mut scheduler = build(alg, &ParamSet::default()).expect("known algorithm");
        for id in 0..nodes {
            scheduler.membership(Membership::Insert(NodeInfo::new(id)), Time::ZERO);
        }
        let mut steady = Self {
            scheduler,
            in_flight: VecDeque::with_capacity(nodes as usize + 1),
            sequence: function_sequence(),
            next: 0,
            clock_us: 0,
        };
        for _ in 0..nodes {
            steady.start();
        }
        steady
    }

    fn start(&mut self) {
        let function = self.sequence[self.next % SEQUENCE_LEN];
        self.next += 1;
        self.clock_us += 100;
        if let Ok(node) = self
            .scheduler
            .select(function, Time::from_micros(self.clock_us))
        {
            self.in_flight.push_back((node, function));
        }
    }

    fn step(&mut self) {
        self.start();
        if let Some((node, function)) = self.in_flight.pop_front() {
            let done = Completion {
                node,
                function,
                duration: Duration::from_millis(800),
                cold: false,
                ok: true,
                internal: std::time::Duration::ZERO,
            };
            self.scheduler
                .finished(black_box(&done), Time::from_micros(self.clock_us));
        }
    }
}

fn select_and_finish(c: &mut Criterion) {
    let mut group = c.benchmark_group("select+finished");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(2));
    for alg in registry::names() {
        for nodes in [8u32, 64, 1000] {
            group.bench_with_input(BenchmarkId::new(alg, nodes), &nodes, |b, &nodes| {
                let mut steady = Steady::new(alg, nodes);
                b.iter(|| steady.step());
            });
        }
    }
    group.finish();
}

criterion_group!(benches, select_and_finish);
criterion_main!(benches);
