//! Tail latency of one scheduling decision: p50, p99 and p99.9 of
//! `select` + `finished`, per registered algorithm at 8, 64 and 1,000
//! nodes, each decision timed on its own (criterion's `schedulers` bench
//! gives means; issue #11's target is a tail: p99 <= 1 us per decision at
//! 1,000 nodes).
//!
//! Same steady state as `schedulers`: as many calls in flight as nodes,
//! completed first-in first-out, one call of one of the 30 catalog
//! functions started per decision. Completions report what the
//! literature's schedulers learn from: a duration of 800 ms of which 700 ms
//! in the function, and every tenth call cold (1,500 ms, 700 ms inside).
//! Virtual time advances 100 us per decision.
//!
//! Each case runs 20,000 warm-up decisions, then times 200,000 one by one
//! with `Instant` (whose own cost, measured in the same run, is printed
//! and not subtracted). The last column is the p99 relative to `rr`'s at
//! the same size, measured in the same run (noise on a shared machine
//! moves both). Exits 1 if an algorithm misses the 1 us p99 target at
//! 1,000 nodes (after one retry of that case, as a noisy neighbour can
//! spoil one run), so a script can gate on it.
//!
//! Run: `cargo bench -p policy --bench scheduler_tail` (about 30 s).

// A benchmark measures wall time; the policies it times never read a clock.
#![allow(clippy::disallowed_methods)]

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use policy::scheduler::{
    build, registry, Completion, Membership, NodeId, NodeInfo, ParamSet, Scheduler, Time,
};

const FUNCTIONS: [&str; 30] = [
    "W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W10", "W11", "T1", "T2", "T3", "T4",
    "T5", "T6", "I1", "I2", "I3", "I4", "I5", "D1", "D2", "D3", "D4", "D5", "D6", "D7", "D8",
];
const WARM_UP: usize = 20_000;
const SAMPLES: usize = 200_000;
const TARGET_P99_NS: f64 = 1_000.0;

struct Steady {
    scheduler: Box<dyn Scheduler>,
    in_flight: VecDeque<(NodeId, &'static str)>,
    x: u64,
    calls: u64,
}

impl Steady {
    fn new(alg: &str, nodes: u32) -> Self {
        let mut scheduler = build(alg, &ParamSet::default()).expect("registered algorithm");
        for id in 0..nodes {
            scheduler.membership(Membership::Insert(NodeInfo::new(id)), Time::ZERO);
        }
        let mut steady = Self {
            scheduler,
            in_flight: VecDeque::with_capacity(nodes as usize + 1),
            x: 0x9e37_79b9_7f4a_7c15,
            calls: 0,
        };
        for _ in 0..nodes {
            steady.start();
        }
        steady
    }

    fn now(&self) -> Time {
        Time::from_micros(self.calls * 100)
    }

    fn start(&mut self) {
        self.x ^= self.x << 13;
        self.x ^= self.x >> 7;
        self.x ^= self.x << 17;
        let function = FUNCTIONS[(self.x % FUNCTIONS.len() as u64) as usize];
        self.calls += 1;
        if let Ok(node) = self.scheduler.select(function, self.now()) {
            self.in_flight.push_back((node, function));
        }
    }

    fn step(&mut self) {
        self.start();
        if let Some((node, function)) = self.in_flight.pop_front() {
            let cold = self.calls.is_multiple_of(10);
            let done = Completion {
                node,
                function,
                duration: Duration::from_millis(if cold { 1500 } else { 800 }),
                cold,
                ok: true,
                internal: Duration::from_millis(700),
            };
            let now = self.now();
            self.scheduler.finished(black_box(&done), now);
        }
    }
}

/// Nanoseconds at quantiles `qs` of `samples` (sorted in place).
fn quantiles(samples: &mut [u32], qs: &[f64]) -> Vec<f64> {
    samples.sort_unstable();
    qs.iter()
        .map(|q| {
            let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
            f64::from(samples[i])
        })
        .collect()
}

/// p50, p99, p99.9 (ns) of one case.
fn measure(alg: &str, nodes: u32) -> [f64; 3] {
    let mut steady = Steady::new(alg, nodes);
    for _ in 0..WARM_UP {
        steady.step();
    }
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t = Instant::now();
        steady.step();
        samples.push(t.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32);
    }
    let q = quantiles(&mut samples, &[0.5, 0.99, 0.999]);
    [q[0], q[1], q[2]]
}

fn timer_cost_ns() -> f64 {
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t = Instant::now();
        samples.push(black_box(t).elapsed().as_nanos() as u32);
    }
    quantiles(&mut samples, &[0.5])[0]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is understood.
    println!(
        "timer cost (p50 of an empty timing): {:.0} ns",
        timer_cost_ns()
    );
    println!(
        "{:<10} {:>6} {:>9} {:>9} {:>10} {:>11}",
        "algorithm", "nodes", "p50 ns", "p99 ns", "p99.9 ns", "p99 / rr"
    );
    let mut missed = Vec::new();
    for nodes in [8u32, 64, 1000] {
        let rr = measure("rr", nodes)[1];
        for alg in registry::names() {
            let mut m = measure(alg, nodes);
            if nodes == 1000 && m[1] > TARGET_P99_NS {
                m = measure(alg, nodes);
            }
            println!(
                "{alg:<10} {nodes:>6} {:>9.0} {:>9.0} {:>10.0} {:>11.2}",
                m[0],
                m[1],
                m[2],
                m[1] / rr.max(1.0)
            );
            if nodes == 1000 && m[1] > TARGET_P99_NS {
                missed.push(format!("{alg} ({:.0} ns)", m[1]));
            }
        }
    }
    if missed.is_empty() {
        println!("every algorithm: p99 <= {TARGET_P99_NS:.0} ns at 1,000 nodes");
    } else {
        println!(
            "p99 above {TARGET_P99_NS:.0} ns at 1,000 nodes: {}",
            missed.join(", ")
        );
        std::process::exit(1);
    }
}
