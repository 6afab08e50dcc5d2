//! The SlimFaas layer in the simulation (`des::slim`, issue 15): the cap
//! on parallel calls per function with its queue (the live balancer's
//! `policy::admission_queue`), the synchronous wait bound, and scale to
//! zero, on timelines worked out by hand.
//!
//! Common setup: ideal platform (no overheads), one node of 4 cores, every
//! function `sleep:1000` (1 s without CPU), so a call's service is exactly
//! 1000 ms and it starts when it is dispatched.

use std::time::Duration;

use des::{
    run_scenario, run_source, Arrival, ArrivalSource, CallKind, DesConfig, DesError, InstanceModel,
    KeepAlivePolicy, SlimFunction, SlimSettings, Summary,
};
use policy::scheduler::SchedulerConfig;
use policy::Time;
use protocol::{BalancerReply, LogLine, ScenarioEvent};

fn settings(max_parallel: u32) -> SlimSettings {
    SlimSettings {
        defaults: SlimFunction {
            max_parallel,
            ..SlimFunction::default()
        },
        ..SlimSettings::default()
    }
}

fn config(slim: Option<SlimSettings>) -> DesConfig {
    DesConfig {
        nodes: 1,
        cores: 4,
        default_function: Some("sleep:1000".parse().unwrap()),
        epoch_ms: 0,
        slim,
        ..DesConfig::default()
    }
}

/// One line of the log: a call (start, end, internal time, cold) or an
/// error (start, end, message).
#[derive(Debug, PartialEq)]
enum Line {
    Call {
        function: String,
        start: i64,
        end: i64,
        internal: i64,
    },
    Error {
        function: String,
        start: i64,
        end: i64,
    },
}

fn lines(log: &[u8]) -> Vec<Line> {
    String::from_utf8(log.to_vec())
        .unwrap()
        .lines()
        .map(|l| {
            let line = LogLine::parse(l).unwrap();
            match serde_json::from_str::<BalancerReply>(&line.json) {
                Ok(reply) => Line::Call {
                    function: line.function,
                    start: line.start_ms,
                    end: line.end_ms,
                    internal: reply.worker.internal_execution_time,
                },
                Err(_) => Line::Error {
                    function: line.function,
                    start: line.start_ms,
                    end: line.end_ms,
                },
            }
        })
        .collect()
}

/// The lines sorted by `key(start, end)`.
fn sorted(mut lines: Vec<Line>, key: impl Fn(i64, i64) -> i64) -> Vec<Line> {
    lines.sort_by_key(|l| match l {
        Line::Call { start, end, .. } | Line::Error { start, end, .. } => key(*start, *end),
    });
    lines
}

fn call(function: &str, start: i64, end: i64) -> Line {
    Line::Call {
        function: function.into(),
        start,
        end,
        internal: 1000,
    }
}

fn run(rows: &[(&str, u64)], config: &DesConfig) -> (Summary, Vec<u8>) {
    let events: Vec<ScenarioEvent> = rows
        .iter()
        .map(|&(f, t)| ScenarioEvent::new(f, t))
        .collect();
    let mut log = Vec::new();
    let summary = run_scenario(&events, config, Some(&mut log)).unwrap();
    (summary, log)
}

#[test]
fn cap_one_three_calls_wait_in_arrival_order() {
    // Cap 1; calls at 0, 100, 200 ms, 1 s each. The first runs 0-1000;
    // the second gets the slot freed at 1000 (runs 1000-2000, waited
    // 900 ms); the third at 2000 (runs 2000-3000, waited 1800 ms). The log
    // line starts at the arrival: the wait is part of the response time.
    let rows = [("F", 0), ("F", 100), ("F", 200)];
    let (s, log) = run(&rows, &config(Some(settings(1))));
    let got = sorted(lines(&log), |start, _| start);
    assert_eq!(
        got,
        vec![
            call("F", 0, 1000),
            call("F", 100, 2000),
            call("F", 200, 3000)
        ]
    );
    assert_eq!((s.completed, s.failed), (3, 0));
    // Latency (duration - internal time) is the wait here: 0, 900, 1800.
    assert_eq!(s.latency_ms.mean, 900.0);
    let q = s.queue.expect("the queue's figures");
    assert_eq!((q.overall.calls, q.overall.waited), (3, 2));
    assert_eq!(q.overall.timed_out, 0);
    assert_eq!(q.overall.max_queue_length, 2);
    assert_eq!(q.overall.wait_ms.mean, 900.0);
    assert_eq!(q.overall.wait_ms.p50, 900.0);
    assert_eq!(q.overall.wait_ms.p99, 1800.0);
    assert_eq!(q.overall.wait_ms.max, 1800.0);
    assert_eq!(q.functions["F"], q.overall);

    // Cap 2: the third waits for the first (800 ms), the others run at
    // once; cap 3: nobody waits.
    let (s, _) = run(&rows, &config(Some(settings(2))));
    let q = s.queue.unwrap();
    assert_eq!((q.overall.waited, q.overall.wait_ms.max), (1, 800.0));
    assert_eq!(q.overall.wait_ms.mean, 800.0 / 3.0);
    let (s, _) = run(&rows, &config(Some(settings(3))));
    let q = s.queue.unwrap();
    assert_eq!((q.overall.waited, q.overall.wait_ms.max), (0, 0.0));
    assert!(q.functions.is_empty());
}

#[test]
fn each_function_has_its_own_cap() {
    // F capped at 1, G at the default 10: G's calls never wait for F's.
    let mut slim = settings(10);
    slim.functions.insert(
        "F".into(),
        SlimFunction {
            max_parallel: 1,
            ..SlimFunction::default()
        },
    );
    let rows = [("F", 0), ("G", 0), ("F", 0), ("G", 0)];
    let (s, log) = run(&rows, &config(Some(slim)));
    let mut ends: Vec<(String, i64)> = lines(&log)
        .into_iter()
        .map(|l| match l {
            Line::Call { function, end, .. } => (function, end),
            Line::Error { .. } => panic!("no call fails"),
        })
        .collect();
    ends.sort();
    assert_eq!(
        ends,
        vec![
            ("F".into(), 1000),
            ("F".into(), 2000),
            ("G".into(), 1000),
            ("G".into(), 1000)
        ]
    );
    let q = s.queue.unwrap();
    assert_eq!(q.overall.waited, 1);
    assert_eq!(q.functions.keys().collect::<Vec<_>>(), vec!["F"]);
}

/// Calls given with their kinds (the scenario format has no column for
/// it; a source can say).
struct Kinds {
    calls: Vec<Arrival>,
    next: usize,
}

impl ArrivalSource for Kinds {
    fn peek(&self) -> Option<Time> {
        self.calls.get(self.next).map(|a| a.time)
    }
    fn next(&mut self) -> Option<Arrival> {
        let a = self.calls.get(self.next).copied()?;
        self.next += 1;
        Some(a)
    }
    fn completed(&mut self, _client: u32, _at: Time) {}
}

#[test]
fn a_synchronous_call_goes_before_waiting_asynchronous_ones() {
    // Cap 1. A (async) at 0 runs 0-1000; B (async) at 100 waits; C (sync)
    // at 200 waits and gets the slot at 1000 (1000-2000), ahead of B
    // (2000-3000).
    let arrival = |ms, kind| Arrival {
        time: Time::from_millis(ms),
        function: 0,
        shape: None,
        client: u32::MAX,
        kind,
    };
    let mut source = Kinds {
        calls: vec![
            arrival(0, CallKind::Async),
            arrival(100, CallKind::Async),
            arrival(200, CallKind::Sync),
        ],
        next: 0,
    };
    let names = vec!["F".to_string()];
    let config = config(Some(settings(1)));
    let mut log = Vec::new();
    let s = run_source(
        &names,
        &mut source,
        &config,
        None,
        Some(&mut log),
        &mut |_| {},
        |_| DesError::NoNodes,
    )
    .unwrap();
    let got = sorted(lines(&log), |_, end| end);
    assert_eq!(
        got,
        vec![
            call("F", 0, 1000),
            call("F", 200, 2000),
            call("F", 100, 3000)
        ]
    );
    let q = s.queue.unwrap();
    // Waits 0, 800 (C), 1900 (B).
    assert_eq!(q.overall.wait_ms.max, 1900.0);
    assert_eq!(q.overall.wait_ms.mean, 900.0);
}

#[test]
fn a_synchronous_call_gives_up_after_wait_s() {
    // Cap 1, wait_s 0.5. 0: runs 0-1000. 100 and 200: wait, give up at 600
    // and 700 (error lines from their arrival). 1500: runs at once.
    let mut slim = settings(1);
    slim.defaults.wait_s = 0.5;
    let rows = [("F", 0), ("F", 100), ("F", 200), ("F", 1500)];
    let (s, log) = run(&rows, &config(Some(slim)));
    let got = sorted(lines(&log), |start, _| start);
    let error = |start, end| Line::Error {
        function: "F".into(),
        start,
        end,
    };
    assert_eq!(
        got,
        vec![
            call("F", 0, 1000),
            error(100, 600),
            error(200, 700),
            call("F", 1500, 2500)
        ]
    );
    assert!(String::from_utf8(log)
        .unwrap()
        .contains("no slot for F within 0.5 s (max_parallel 1)"));
    assert_eq!((s.completed, s.failed), (2, 2));
    let q = s.queue.unwrap();
    assert_eq!((q.overall.waited, q.overall.timed_out), (2, 2));
    // The two dispatched calls waited nothing.
    assert_eq!(q.overall.wait_ms.max, 0.0);
}

#[test]
fn scale_to_zero_is_the_fixed_keep_alive_of_idle_before_zero_s() {
    // idle_before_zero_s 5: the Lambda model, fixed keep-alive 5 s. 0: cold
    // (runs to 1000, idle from then). 3000: warm (idle 2 s). 20000: cold
    // (idle since 4000, removed at 9000).
    let mut slim = settings(10);
    slim.defaults.idle_before_zero_s = 5.0;
    slim.scale_to_zero = true;
    let mut c = config(Some(slim.clone()));
    c.instances = slim.instance_model();
    assert_eq!(
        c.instances,
        InstanceModel::lambda(Duration::from_secs(5), KeepAlivePolicy::Fixed)
    );
    let (s, _) = run(&[("F", 0), ("F", 3000), ("F", 20000)], &c);
    assert_eq!((s.completed, s.cold_starts), (3, 2));
    // The instance model must be the one scale to zero sets.
    let wrong = config(Some(slim));
    let events = [ScenarioEvent::new("F", 0)];
    let e = run_scenario(&events, &wrong, None).unwrap_err();
    assert!(matches!(e, DesError::ScaleToZeroModel), "{e}");
}

/// A workload of `n` calls over a few functions, bursty enough to queue.
fn bursty(n: u64) -> Vec<ScenarioEvent> {
    (0..n)
        .map(|i| {
            let f = ["A", "B", "C"][(i * 7 % 3) as usize];
            ScenarioEvent::new(f, i * 37 % 5000)
        })
        .collect()
}

#[test]
fn the_cap_holds_and_runs_are_deterministic_per_seed() {
    // Exponential work (drawn from the run's seed), a randomized scheduler
    // on 3 nodes, cap 2: from the log, calls of one function in service
    // at once (service start = end - internal time, the platform being
    // ideal) never exceed 2; the same seed gives the same log.
    let events = bursty(300);
    let run_with = |seed: u64| {
        let c = DesConfig {
            scheduler: SchedulerConfig::new("p2c", [("seed", seed.to_string())]).unwrap(),
            nodes: 3,
            default_function: Some("exp:400".parse().unwrap()),
            ..config(Some(settings(2)))
        };
        let mut log = Vec::new();
        let s = run_scenario(&events, &c, Some(&mut log)).unwrap();
        (s, log)
    };
    let (s, log) = run_with(7);
    assert_eq!(s.completed, 300);
    let q = s.queue.clone().unwrap();
    assert!(q.overall.waited > 0, "the workload queues");
    for f in ["A", "B", "C"] {
        let mut edges: Vec<(i64, i32)> = Vec::new();
        for l in lines(&log) {
            if let Line::Call {
                function,
                end,
                internal,
                ..
            } = l
            {
                if function == f {
                    edges.push((end - internal, 1));
                    edges.push((end, -1));
                }
            }
        }
        // Ends before starts at the same ms (a freed slot is taken then).
        edges.sort();
        let (mut now, mut most) = (0, 0);
        for (_, d) in edges {
            now += d;
            most = most.max(now);
        }
        assert!(most <= 2, "{f}: {most} in service at once");
    }
    let (again, log_again) = run_with(7);
    assert_eq!(log, log_again);
    assert_eq!(again.queue, s.queue);
    let (other, _) = run_with(8);
    assert_eq!(other.completed, 300);
}

#[test]
fn a_cap_nobody_reaches_changes_nothing_but_the_report() {
    // With a cap above every burst, the log is byte-identical to a run
    // without the layer (same dispatch order, same scheduler calls).
    let events = bursty(200);
    let base = DesConfig {
        scheduler: SchedulerConfig::new("ch", [("seed", "3")]).unwrap(),
        nodes: 3,
        ..config(None)
    };
    let mut without = Vec::new();
    let s0 = run_scenario(&events, &base, Some(&mut without)).unwrap();
    assert!(s0.queue.is_none());
    let with_cap = DesConfig {
        slim: Some(settings(1000)),
        ..base.clone()
    };
    let mut with = Vec::new();
    let s1 = run_scenario(&events, &with_cap, Some(&mut with)).unwrap();
    assert_eq!(without, with);
    assert_eq!(s1.queue.unwrap().overall.waited, 0);
    assert_eq!(s0.latency_ms, s1.latency_ms);
}

/// Erlang C: the probability that a call waits in M/M/c with offered load
/// `a` (erlangs) on `c` servers.
fn erlang_c(a: f64, c: u32) -> f64 {
    let mut term = 1.0; // a^k / k!
    let mut below = 0.0;
    for k in 0..c {
        below += term;
        term *= a / f64::from(k + 1);
    }
    let top = term * f64::from(c) / (f64::from(c) - a);
    top / (below + top)
}

#[test]
fn waits_agree_with_queueing_theory() {
    // One function, Poisson arrivals of 12.5/s, service exactly 1 s, cap
    // 16: an M/D/16 queue at load 0.78. Its mean wait lies below M/M/16's
    // (Erlang C: P(wait) / (c - a) s = 75.5 ms) and near half of it (the
    // usual M/D/c approximation, 37.7 ms); the simulation gives 41.2 ms
    // (24.4 % of the 200,000 calls waited; Erlang C says 26.4 % for
    // M/M/16).
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut t = 0.0f64;
    let events: Vec<ScenarioEvent> = (0..200_000)
        .map(|_| {
            let u: f64 = rng.gen();
            t += -(1.0 - u).ln() / 12.5;
            ScenarioEvent::new("F", (t * 1000.0) as u64)
        })
        .collect();
    let mut c = config(Some(settings(16)));
    c.nodes = 4;
    let s = run_scenario(&events, &c, None).unwrap();
    let q = s.queue.unwrap().overall;
    let mm_c = erlang_c(12.5, 16) / (16.0 - 12.5) * 1000.0;
    assert!((mm_c - 75.5).abs() < 0.1, "{mm_c}");
    let wait = q.wait_ms.mean;
    assert!(wait < mm_c && wait > 0.4 * mm_c, "mean wait {wait} ms");
    assert_eq!(q.timed_out, 0);
}

/// Scale to zero with a cold start of 500 ms (the rest ideal).
fn scale_to_zero_config(slim: SlimSettings, nodes: u32) -> DesConfig {
    let mut c = config(Some(slim.clone()));
    c.nodes = nodes;
    c.instances = slim.instance_model();
    c.profile.lambda_cold_ms = 500.0;
    c
}

fn function(f: impl FnOnce(&mut SlimFunction)) -> SlimFunction {
    let mut s = SlimFunction::default();
    f(&mut s);
    s
}

fn call_at(function: &str, start: i64, end: i64) -> Line {
    call(function, start, end)
}

#[test]
fn each_function_scales_to_zero_after_its_own_idle_time() {
    // Defaults idle 5 s, G's own 20 s; a cold start costs 500 ms.
    // F and G at 0: cold, run 500-1500, idle from 1500 (F's instance goes
    // at 6500, G's at 21500). At 10 s: F cold (10500-11500), G warm
    // (10000-11000). At 30 s: F idle since 11.5 s, gone at 16.5 s: cold;
    // G idle since 11 s, goes at 31 s: warm (30000-31000).
    let mut slim = settings(10);
    slim.scale_to_zero = true;
    slim.defaults.idle_before_zero_s = 5.0;
    slim.functions
        .insert("G".into(), function(|f| f.idle_before_zero_s = 20.0));
    let rows = [
        ("F", 0),
        ("G", 0),
        ("F", 10_000),
        ("G", 10_000),
        ("F", 30_000),
        ("G", 30_000),
    ];
    let (s, log) = run(&rows, &scale_to_zero_config(slim.clone(), 1));
    let got = sorted(lines(&log), |start, end| start * 100_000 + end);
    assert_eq!(
        got,
        vec![
            call_at("F", 0, 1500),
            call_at("G", 0, 1500),
            call_at("G", 10_000, 11_000),
            call_at("F", 10_000, 11_500),
            call_at("G", 30_000, 31_000),
            call_at("F", 30_000, 31_500),
        ]
    );
    assert_eq!((s.completed, s.cold_starts), (6, 4));
    // G with the defaults' idle time: cold at 10 s and 30 s too.
    slim.functions
        .insert("G".into(), function(|f| f.idle_before_zero_s = 5.0));
    let (s, log_same) = run(&rows, &scale_to_zero_config(slim.clone(), 1));
    assert_eq!(s.cold_starts, 6);
    // An entry equal to the defaults changes nothing: the same log as
    // without it.
    slim.functions.clear();
    let (_, log_none) = run(&rows, &scale_to_zero_config(slim, 1));
    assert_eq!(log_same, log_none);
}

#[test]
fn min_instances_are_started_at_zero_and_again_after_they_expire() {
    // Two nodes, round robin (picks 0, 1, 0, 1, ...), F's minimum 2,
    // idle time 5 s, cold start 500 ms, looked at every second.
    // 0 s: no instance: the scheduler picks nodes 0 and 1, one starts on
    // each (up at 500 ms, idle). 1 s: the call runs warm on node 0 (the
    // third pick) 1000-2000; node 1's instance, idle since 500, goes at
    // 5500, node 0's at 7000. Tick 6 s: one left: one started on node 1
    // (the fourth pick; up at 6500). 7 s: node 0's goes (its timer before
    // the tick, both due at 7 s): one started on node 0 (up at 7500).
    // 8 s: the call runs warm on node 1 (8000-9000). 4 instances started
    // for the minimum, no call cold.
    let mut slim = settings(10);
    slim.scale_to_zero = true;
    slim.defaults.idle_before_zero_s = 5.0;
    slim.functions.insert(
        "F".into(),
        function(|f| {
            // (An entry is a whole set: its idle time is given too.)
            f.min_instances = 2;
            f.idle_before_zero_s = 5.0;
        }),
    );
    let rows = [("F", 1000), ("F", 8000)];
    let (s, log) = run(&rows, &scale_to_zero_config(slim.clone(), 2));
    let got = sorted(lines(&log), |start, _| start);
    assert_eq!(
        got,
        vec![call_at("F", 1000, 2000), call_at("F", 8000, 9000)]
    );
    assert_eq!((s.completed, s.cold_starts), (2, 0));
    let q = s.queue.unwrap();
    assert_eq!(q.min_instances_started, 4);
    let nodes: Vec<String> = String::from_utf8(log)
        .unwrap()
        .lines()
        .map(|l| {
            let reply: BalancerReply =
                serde_json::from_str(&LogLine::parse(l).unwrap().json).unwrap();
            reply.load_balancing_info.worker_node_url
        })
        .collect();
    assert_eq!(nodes, vec!["des://node-0", "des://node-1"]);
    // Without the minimum, both calls are cold.
    slim.functions.clear();
    let (s, _) = run(&rows, &scale_to_zero_config(slim, 2));
    assert_eq!(s.cold_starts, 2);
    assert_eq!(s.queue.unwrap().min_instances_started, 0);
}

#[test]
fn min_instances_need_a_model_that_starts_instances() {
    // HotFunctions' per-call instances: nothing to keep started.
    let mut slim = settings(10);
    slim.functions
        .insert("F".into(), function(|f| f.min_instances = 1));
    let events = [ScenarioEvent::new("F", 0)];
    let e = run_scenario(&events, &config(Some(slim)), None).unwrap_err();
    assert!(
        matches!(&e, DesError::MinInstancesModel(f) if f == "F"),
        "{e}"
    );
}

#[test]
fn a_call_a_full_node_refuses_is_retried_after_the_delays() {
    // One node running one call at a time (max_running 1, reject), a
    // Lambda keep-alive of 600 s. F (safe to repeat, delays 2, 4, 8 s),
    // G (safe, no delays), H (not safe to repeat: not a sample function).
    // 0: A runs 0-1000. 100: B refused, again at 2100: the node is free,
    // B runs warm 2100-3100. 200: C refused, again at 2200: busy (B),
    // refused, again at 2200 + 4000: runs 6200-7200. 300: G refused, no
    // retry left: fails. 400: H refused, not retried: fails.
    let mut slim = settings(10);
    slim.functions
        .insert("F".into(), function(|f| f.safe_to_repeat = Some(true)));
    slim.functions.insert(
        "G".into(),
        function(|f| {
            f.safe_to_repeat = Some(true);
            f.retry_delays_s = Vec::new();
        }),
    );
    let mut c = config(Some(slim));
    c.instances = InstanceModel::lambda(Duration::from_secs(600), KeepAlivePolicy::Fixed);
    c.admission = des::Admission {
        max_running: Some(1),
        overflow: des::Overflow::Reject,
    };
    let rows = [("F", 0), ("F", 100), ("F", 200), ("G", 300), ("H", 400)];
    let (s, log) = run(&rows, &c);
    let text = String::from_utf8(log.clone()).unwrap();
    let got = sorted(lines(&log), |start, _| start);
    let error = |function: &str, start, end| Line::Error {
        function: function.into(),
        start,
        end,
    };
    assert_eq!(
        got,
        vec![
            call_at("F", 0, 1000),
            call_at("F", 100, 3100),
            call_at("F", 200, 7200),
            error("G", 300, 300),
            error("H", 400, 400),
        ]
    );
    assert!(text.contains("node 0 rejected H: no room"), "{text}");
    assert_eq!((s.completed, s.failed, s.rejections), (3, 2, 5));
    let q = s.queue.unwrap();
    assert_eq!((q.overall.retries, q.overall.retries_spent), (3, 1));
    assert_eq!(q.functions["F"].retries, 3);
    assert_eq!(q.functions["G"].retries_spent, 1);
    assert!(!q.functions.contains_key("H"));
}

#[test]
fn a_call_whose_retries_are_spent_says_so() {
    // F safe, one retry after 1 s; A runs 0-5000 on the only slot of the
    // node. B at 100: refused, again at 1100: refused, spent: an error
    // line from 100 to 1100.
    let mut slim = settings(10);
    slim.defaults.safe_to_repeat = Some(true);
    slim.defaults.retry_delays_s = vec![1.0];
    let mut c = config(Some(slim));
    c.default_function = Some("sleep:5000".parse().unwrap());
    c.instances = InstanceModel::lambda(Duration::from_secs(600), KeepAlivePolicy::Fixed);
    c.admission = des::Admission {
        max_running: Some(1),
        overflow: des::Overflow::Reject,
    };
    let (s, log) = run(&[("F", 0), ("F", 100)], &c);
    let text = String::from_utf8(log.clone()).unwrap();
    assert!(
        text.contains("node 0 rejected F: no room; retries spent (2 attempts)"),
        "{text}"
    );
    let got = sorted(lines(&log), |start, _| start);
    assert_eq!(
        got[1],
        Line::Error {
            function: "F".into(),
            start: 100,
            end: 1100
        }
    );
    let q = s.queue.unwrap();
    assert_eq!((q.overall.retries, q.overall.retries_spent), (1, 1));
}

#[test]
fn settings_equal_to_the_defaults_change_nothing() {
    // A file that spells out the defaults (delays 2, 4, 8; idle 300 s;
    // min 0) gives the very log and summary of one without it, and the
    // summary has none of the new fields.
    let events = bursty(200);
    let base = DesConfig {
        scheduler: SchedulerConfig::new("ch", [("seed", "3")]).unwrap(),
        nodes: 3,
        ..config(Some(settings(2)))
    };
    let mut with_entry = base.clone();
    if let Some(slim) = with_entry.slim.as_mut() {
        slim.functions
            .insert("A".into(), function(|f| f.max_parallel = 2));
    }
    let json = |c: &DesConfig| {
        let mut log = Vec::new();
        let s = run_scenario(&events, c, Some(&mut log)).unwrap();
        let mut v = serde_json::to_value(&s).unwrap();
        // The settings differ by the entry itself.
        v["config"]["slim"]["functions"] = serde_json::Value::Null;
        (v, log)
    };
    let (a, log_a) = json(&base);
    let (b, log_b) = json(&with_entry);
    assert_eq!(log_a, log_b);
    assert_eq!(a, b);
    let text = a.to_string();
    for new in [
        "retries",
        "min_instances_started",
        "retry_delays_s",
        "safe_to_repeat",
    ] {
        assert!(!text.contains(new), "{new} in {text}");
    }
}
