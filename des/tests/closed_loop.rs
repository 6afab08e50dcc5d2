//! The closed loop (`des::run_closed_loop`) against examples worked out by
//! hand, on the ideal profile (no overheads) and a function of fixed CPU
//! work, so every figure follows from the service time, the cores, the
//! clients and the think time:
//!
//! - 1 client, 100 ms calls, no think time, 10 s: calls every 100 ms, so
//!   10 s / 100 ms = 100 calls, a throughput of 10 calls/s.
//! - 8 clients on 1 node of 2 cores (processor sharing), 100 ms of CPU
//!   work, no think: the 8 calls of a round share 2 cores, each ends after
//!   8 x 100 ms / 2 = 400 ms, and all 8 send again: 60 s / 400 ms = 150
//!   rounds, 1,200 calls, throughput X = 20 calls/s = cores / service
//!   time, response R = 400 ms, and Little's law N = X R = 20 x 0.4 = 8.
//! - The same with 100 ms of think time: rounds of 500 ms, 120 rounds, 960
//!   calls, X = 16/s, and N = X (R + Z) = 16 x 0.5 = 8.
//! - With exponential think times (clients drift apart), Little's law
//!   still holds over a long run, and X stays under its bounds
//!   min(N / (S + Z), c / S).
//! - Stages (`--clients 1,3`, 1 s each) on 4 cores (no sharing), 100 ms
//!   calls, 100 ms of think: rounds of 200 ms; client 0 sends at 0, 200,
//!   ..., 1,800 ms (5 calls per stage), clients 1 and 2 join at 1,000 ms
//!   and send 5 each: 5 calls in stage 1, 15 in stage 2.
//! - Stages `2,1` with 300 ms calls, no think: both clients send at 0,
//!   300, 600, 900 ms (8 calls in stage 1; the 900-ms calls end at 1,200
//!   ms, in stage 2, and count in stage 1, where they started); client 1
//!   then stops, client 0 sends at 1,200, 1,500, 1,800 ms (3 in stage 2).
//! - Stages of equal counts are one stage: `5,5` of 10 s writes the log
//!   of 5 clients for 20 s, byte for byte.

use std::sync::Arc;
use std::time::Duration;

use des::{run_closed_loop, ClosedLoop, DesConfig, DesError, FunctionMix, Stages, Summary, Think};
use protocol::{BalancerReply, LogLine};

fn config(cores: u32, model: &str) -> DesConfig {
    DesConfig {
        nodes: 1,
        cores,
        default_function: Some(model.parse().unwrap()),
        ..DesConfig::default()
    }
}

fn closed(clients: u32, seconds: u64, think: Think) -> ClosedLoop {
    ClosedLoop {
        clients: Stages::one(clients),
        duration: Duration::from_secs(seconds),
        think,
        mix: Arc::new(FunctionMix::uniform(vec!["X".into()]).unwrap()),
        functions: "uniform".into(),
        seed: 1,
        grace: Duration::from_secs(30),
    }
}

/// Runs and returns the summary and the log's (start, end) ms per call.
fn run(closed: &ClosedLoop, config: &DesConfig) -> (Summary, Vec<(i64, i64)>) {
    let mut out = Vec::new();
    let s = run_closed_loop(closed, config, Some(&mut out), &mut |_| {}).unwrap();
    let calls = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| {
            let line = LogLine::parse(l).unwrap();
            let _: BalancerReply = serde_json::from_str(&line.json).unwrap();
            (line.start_ms, line.end_ms)
        })
        .collect();
    (s, calls)
}

/// The most calls in flight at once in a log (an end at t frees its
/// client before a start at t).
fn most_in_flight(calls: &[(i64, i64)]) -> usize {
    let mut edges: Vec<(i64, i32)> = calls.iter().flat_map(|&(s, e)| [(s, 1), (e, -1)]).collect();
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    most as usize
}

#[test]
fn one_client_makes_duration_over_service_time_calls() {
    let (s, calls) = run(&closed(1, 10, Think::None), &config(2, "cpu:100"));
    assert_eq!(s.invocations, 100);
    assert_eq!(s.completed, 100);
    assert_eq!(calls.len(), 100);
    for (i, &(start, end)) in calls.iter().enumerate() {
        assert_eq!(end - start, 100, "call {i}");
    }
    assert_eq!(calls[99].0 - calls[0].0, 9_900);
    let c = s.closed_loop.unwrap();
    assert_eq!(c.calls_per_client, [100]);
    assert_eq!(c.last_reply_s, 10.0);
    assert_eq!(c.throughput_per_s, 10.0);
    assert_eq!(c.parameters["clients"], 1);
}

#[test]
fn saturated_node_gives_cores_over_service_time_and_littles_law() {
    // No think time.
    let (s, calls) = run(&closed(8, 60, Think::None), &config(2, "cpu:100"));
    assert_eq!(s.completed, 1_200);
    assert!(calls.iter().all(|&(a, b)| b - a == 400));
    assert_eq!(most_in_flight(&calls), 8);
    let c = s.closed_loop.as_ref().unwrap();
    assert_eq!(c.calls_per_client, [150; 8]);
    assert_eq!(c.throughput_per_s, 20.0);
    let r = s.duration_ms.mean / 1000.0;
    assert_eq!(c.throughput_per_s * r, 8.0);

    // 100 ms of think time.
    let z = 0.1;
    let think = Think::Constant(Duration::from_millis(100));
    let (s, calls) = run(&closed(8, 60, think), &config(2, "cpu:100"));
    assert_eq!(s.completed, 960);
    assert_eq!(most_in_flight(&calls), 8);
    let c = s.closed_loop.as_ref().unwrap();
    // The last reply is at 59.5 + 0.4 s.
    assert_eq!(c.last_reply_s, 59.9);
    let x = 960.0 / 60.0;
    let r = s.duration_ms.mean / 1000.0;
    assert_eq!(r, 0.4);
    assert!((x * (r + z) - 8.0).abs() < 1e-9);
}

#[test]
fn littles_law_holds_with_random_think_times() {
    let (n, cores, service, z) = (8u32, 2u32, 0.1, 0.2);
    let think = Think::Exponential(Duration::from_millis(200));
    let (s, calls) = run(&closed(n, 600, think), &config(cores, "cpu:100"));
    assert!(most_in_flight(&calls) <= n as usize);
    let c = s.closed_loop.as_ref().unwrap();
    let x = c.throughput_per_s;
    let r = s.duration_ms.mean / 1000.0;
    let little = x * (r + z) / f64::from(n);
    assert!((little - 1.0).abs() < 0.03, "X (R + Z) / N = {little}");
    let bound = (f64::from(n) / (service + z)).min(f64::from(cores) / service);
    assert!(
        x <= bound * 1.001 && x > 0.8 * bound,
        "X = {x}, bound {bound}"
    );
    assert_eq!(c.calls_per_client.iter().sum::<u64>(), s.invocations);
}

#[test]
fn same_seed_same_log_and_bad_input_is_refused() {
    let think = Think::Exponential(Duration::from_millis(50));
    let mut spec = closed(5, 20, think);
    spec.mix = Arc::new(FunctionMix::zipf(vec!["A".into(), "B".into(), "C".into()], 1.0).unwrap());
    let cfg = config(2, "cpu:20");
    let log = |spec: &ClosedLoop| {
        let mut out = Vec::new();
        run_closed_loop(spec, &cfg, Some(&mut out), &mut |_| {}).unwrap();
        out
    };
    let a = log(&spec);
    assert_eq!(a, log(&spec));
    spec.seed = 2;
    assert_ne!(a, log(&spec));

    // A function with no model, clients out of bounds.
    let no_model = DesConfig {
        nodes: 1,
        ..DesConfig::default()
    };
    let e = run_closed_loop(&spec, &no_model, None, &mut |_| {}).unwrap_err();
    assert!(
        matches!(e, DesError::UnknownMixFunction { ref name } if name == "A"),
        "{e}"
    );
    spec.clients = Stages::one(0);
    let e = run_closed_loop(&spec, &cfg, None, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("--clients must be 1..=10000"), "{e}");
}

/// Calls in flight at the end of the grace period are cancelled, as live:
/// 3 clients on 1 core, 5 s of CPU work each, so the three first calls
/// share the core and would all end at 15 s; the clients stop sending at
/// 10 s. With 2 s of grace, the three are cancelled at 12 s (error lines
/// from 0 to 12,000 ms, no completed call, no cold start counted); with 6
/// s, all three complete at 15 s.
#[test]
fn calls_in_flight_after_the_grace_are_cancelled_as_live() {
    let config = config(1, "cpu:5000");
    let mut spec = closed(3, 10, Think::None);
    spec.grace = Duration::from_secs(2);
    let mut out = Vec::new();
    let s = run_closed_loop(&spec, &config, Some(&mut out), &mut |_| {}).unwrap();
    assert_eq!(
        (s.invocations, s.completed, s.cancelled, s.failed),
        (3, 0, 3, 0)
    );
    assert_eq!(s.cold_starts, 0);
    let c = s.closed_loop.as_ref().unwrap();
    assert_eq!(c.cancelled, 3);
    assert_eq!(c.last_reply_s, 12.0);
    assert_eq!(c.throughput_per_s, 0.0);
    let log = String::from_utf8(out).unwrap();
    assert_eq!(log.lines().count(), 3);
    for l in log.lines() {
        let line = LogLine::parse(l).unwrap();
        assert_eq!(
            (
                line.start_ms - s.config.epoch_ms,
                line.end_ms - s.config.epoch_ms
            ),
            (0, 12_000)
        );
        let reply: protocol::ErrorReply = serde_json::from_str(&line.json).unwrap();
        assert_eq!(reply.message, des::source::CANCELLED);
    }
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["cancelled"], 3);

    spec.grace = Duration::from_secs(6);
    let (s, calls) = run(&spec, &config);
    assert_eq!((s.completed, s.cancelled), (3, 0));
    assert_eq!(s.cold_starts, 3);
    assert_eq!(calls.len(), 3);
    // (Processor sharing ends them a microsecond late.)
    let last = s.closed_loop.as_ref().unwrap().last_reply_s;
    assert!((last - 15.0).abs() < 1e-3, "{last}");
    // No cancellation: the summary has no such key.
    assert!(serde_json::to_value(&s).unwrap().get("cancelled").is_none());
}

#[test]
fn uniform_think_times_pause_between_their_bounds() {
    // 1 client, 100 ms calls, think uniform over [100, 300] ms for 60 s:
    // every gap between a reply and the next call is within the bounds
    // (whole ms of the log: 100..=300), so rounds last 200 to 400 ms and
    // the client makes between 60 s / 400 ms = 150 and 60 s / 200 ms =
    // 300 calls; their mean round is near 100 + 200 = 300 ms (200 calls).
    let think: Think = "uniform:100:300".parse().unwrap();
    let (s, calls) = run(&closed(1, 60, think), &config(2, "cpu:100"));
    let n = calls.len();
    assert!((150..=300).contains(&n), "{n} calls");
    assert_eq!(s.completed as usize, n);
    let gaps: Vec<i64> = calls.windows(2).map(|w| w[1].0 - w[0].1).collect();
    assert!(gaps.iter().all(|g| (100..=300).contains(g)), "{gaps:?}");
    let mean = gaps.iter().sum::<i64>() as f64 / gaps.len() as f64;
    assert!((mean - 200.0).abs() < 15.0, "mean think {mean} ms");
    assert!((185..=215).contains(&n), "{n} calls");
    assert_eq!(
        s.closed_loop.unwrap().parameters["think"],
        "uniform:100:300"
    );
}

/// `(calls, ok)` of each stage of a run's summary.
fn per_stage(s: &Summary) -> Vec<(u64, u64)> {
    let c = s.closed_loop.as_ref().unwrap();
    c.stages.iter().map(|st| (st.calls, st.ok)).collect()
}

#[test]
fn a_rising_stage_adds_clients_at_its_start() {
    let mut spec = closed(1, 1, Think::Constant(Duration::from_millis(100)));
    spec.clients = Stages::parse("1,3").unwrap();
    let (s, calls) = run(&spec, &config(4, "cpu:100"));
    assert_eq!(per_stage(&s), [(5, 5), (15, 15)]);
    assert_eq!(calls.len(), 20);
    let c = s.closed_loop.as_ref().unwrap();
    assert_eq!(c.calls_per_client, [10, 5, 5]);
    let epoch = s.config.epoch_ms;
    let mut starts: Vec<i64> = calls.iter().map(|&(a, _)| a - epoch).collect();
    starts.sort();
    let expected: Vec<i64> = [0, 200, 400, 600, 800]
        .into_iter()
        .chain(
            [1000, 1200, 1400, 1600, 1800]
                .into_iter()
                .flat_map(|t| [t; 3]),
        )
        .collect();
    assert_eq!(starts, expected);
    let stage2 = &c.stages[1];
    assert_eq!((stage2.stage, stage2.clients, stage2.start_s), (2, 3, 1.0));
    assert_eq!((stage2.response_p50_ms, stage2.response_p99_ms), (100, 100));
    assert_eq!(stage2.response_mean_ms, 100.0);
    assert_eq!(stage2.throughput_per_s, 15.0);
    // The records: the stages, and their total length.
    assert_eq!(c.parameters["clients"], serde_json::json!([1, 3]));
    assert_eq!(c.parameters["total_duration_s"], 2.0);
    let cold: u64 = c.stages.iter().map(|st| st.cold_starts).sum();
    assert_eq!(cold, s.cold_starts);
}

#[test]
fn a_falling_stage_stops_the_surplus_clients_after_their_call() {
    let mut spec = closed(2, 1, Think::None);
    spec.clients = Stages::parse("2,1").unwrap();
    let (s, calls) = run(&spec, &config(4, "cpu:300"));
    assert_eq!(per_stage(&s), [(8, 8), (3, 3)]);
    assert_eq!(calls.len(), 11);
    let c = s.closed_loop.as_ref().unwrap();
    assert_eq!(c.calls_per_client, [7, 4]);
    // The calls started at 900 ms end in stage 2, counted in stage 1.
    let epoch = s.config.epoch_ms;
    let crossing = calls
        .iter()
        .filter(|&&(a, b)| (a - epoch, b - epoch) == (900, 1200))
        .count();
    assert_eq!(crossing, 2);
    assert_eq!(c.last_reply_s, 2.1);
}

#[test]
fn one_stage_and_equal_stages_are_the_closed_loop_without_stages() {
    let think = Think::Exponential(Duration::from_millis(30));
    let cfg = config(2, "cpu:20");
    let log = |spec: &ClosedLoop| {
        let mut out = Vec::new();
        let s = run_closed_loop(spec, &cfg, Some(&mut out), &mut |_| {}).unwrap();
        (out, s)
    };
    let (whole, s) = log(&closed(5, 20, think));
    let mut staged = closed(5, 10, think);
    staged.clients = Stages::parse("5,5").unwrap();
    let (halves, t) = log(&staged);
    assert_eq!(whole, halves);
    assert_eq!(s.completed, t.completed);
    // One stage: no per-stage figures, `clients` a number (as before).
    let json = serde_json::to_value(&s).unwrap();
    assert!(json["closed_loop"].get("stages").is_none());
    assert_eq!(json["closed_loop"]["parameters"]["clients"], 5);
    assert!(json["closed_loop"]["parameters"].get("stages").is_none());
    let json = serde_json::to_value(&t).unwrap();
    let stages = json["closed_loop"]["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2);
    let sum: u64 = stages.iter().map(|st| st["calls"].as_u64().unwrap()).sum();
    assert_eq!(sum, t.invocations);
}
