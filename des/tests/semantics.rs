//! The semantics researchers compare against (issue 18 part 2), each a
//! `DesConfig` option with its default unchanged, on small scenarios whose
//! timelines and cold starts are worked out by hand below.
//!
//! Common setup: Lambda model (fixed keep-alive), ideal platform except a
//! cold start of 500 ms (`lambda_cold_ms`), every function `sleep:1000`
//! unless a row gives its duration; so a cold call takes 1500 ms and a warm
//! one 1000 ms.

use std::time::Duration;

use des::{
    run_scenario, Admission, CostProfile, DesConfig, FunctionModel, InstanceModel, KeepAlivePolicy,
    Overflow, ReuseOrder, ReuseRules, Summary,
};
use policy::scheduler::SchedulerConfig;
use protocol::{BalancerReply, LogLine, ScenarioEvent};

fn config(keep_alive_s: u64, nodes: u32) -> DesConfig {
    DesConfig {
        nodes,
        cores: 4,
        instances: InstanceModel::lambda(Duration::from_secs(keep_alive_s), KeepAlivePolicy::Fixed),
        profile: CostProfile {
            lambda_cold_ms: 500.0,
            ..CostProfile::default()
        },
        default_function: Some("sleep:1000".parse().unwrap()),
        epoch_ms: 0,
        ..DesConfig::default()
    }
}

/// One call as the log shows it.
#[derive(Debug, PartialEq)]
struct Call {
    start: i64,
    end: i64,
    cold: bool,
    /// `des-<node>-<function>-<instance>`.
    instance: String,
}

/// Runs `rows` (`F,ms`) and returns the summary and the calls by start
/// then instance (error lines left out).
fn run(rows: &[(&str, u64)], config: &DesConfig) -> (Summary, Vec<Call>) {
    let events: Vec<ScenarioEvent> = rows
        .iter()
        .map(|&(f, t)| ScenarioEvent::new(f, t))
        .collect();
    run_events(&events, config)
}

fn run_events(events: &[ScenarioEvent], config: &DesConfig) -> (Summary, Vec<Call>) {
    let mut log = Vec::new();
    let summary = run_scenario(events, config, Some(&mut log)).unwrap();
    let mut calls: Vec<Call> = String::from_utf8(log)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let line = LogLine::parse(l).unwrap();
            let reply: BalancerReply = serde_json::from_str(&line.json).ok()?;
            Some(Call {
                start: line.start_ms,
                end: line.end_ms,
                cold: reply.worker.meta.is_cold(),
                instance: reply.worker.meta.container_name,
            })
        })
        .collect();
    calls.sort_by(|a, b| (a.start, &a.instance).cmp(&(b.start, &b.instance)));
    (summary, calls)
}

fn call(start: i64, end: i64, cold: bool, instance: &str) -> Call {
    Call {
        start,
        end,
        cold,
        instance: instance.to_string(),
    }
}

#[test]
fn reuse_order_newest_or_first_free() {
    // Keep-alive 3 s. 0 ms: F cold on instance 1 (ends 1500, idle, due
    // 4500). 1000: F cold on 2 (ends 2500, due 5500). 3000: one idle
    // instance is reused, ends 4000 (idle, due 7000).
    // - newest (default): 3000 takes 2; 1 expires at 4500; at 5000 two
    //   calls: one takes 2 (warm, ends 6000), one cold-starts 3 (ends
    //   6500). Cold starts: 3.
    // - oldest: 3000 takes 1; 2 stays idle until 5500; at 5000 the two
    //   calls take 1 and 2, both warm. Cold starts: 2.
    let rows = [("F", 0), ("F", 1000), ("F", 3000), ("F", 5000), ("F", 5000)];
    let (s, calls) = run(&rows, &config(3, 1));
    assert_eq!(s.cold_starts, 3);
    assert_eq!(
        calls,
        vec![
            call(0, 1500, true, "des-0-F-1"),
            call(1000, 2500, true, "des-0-F-2"),
            call(3000, 4000, false, "des-0-F-2"),
            call(5000, 6000, false, "des-0-F-2"),
            call(5000, 6500, true, "des-0-F-3"),
        ]
    );
    let oldest = DesConfig {
        reuse: ReuseRules {
            order: ReuseOrder::Oldest,
            extend_on_reuse: true,
        },
        ..config(3, 1)
    };
    let (s, calls) = run(&rows, &oldest);
    assert_eq!(s.cold_starts, 2);
    assert_eq!(
        calls,
        vec![
            call(0, 1500, true, "des-0-F-1"),
            call(1000, 2500, true, "des-0-F-2"),
            call(3000, 4000, false, "des-0-F-1"),
            call(5000, 6000, false, "des-0-F-1"),
            call(5000, 6000, false, "des-0-F-2"),
        ]
    );
}

#[test]
fn reuse_extends_the_keep_alive_or_not() {
    // Keep-alive 3 s. 0: cold on 1 (ends 1500; first idle 1500). 2000:
    // warm (ends 3000). 4000: warm either way (extending: due 6000;
    // not: due 4500), ends 5000. 5500:
    // - extending (default): idle since 5000, due 8000: warm. 1 cold.
    // - not: its deadline 4500 passed while the 4000 call held it, so it
    //   expired when that call ended (5000): cold on 2. 2 cold.
    let rows = [("F", 0), ("F", 2000), ("F", 4000), ("F", 5500)];
    let (s, calls) = run(&rows, &config(3, 1));
    assert_eq!(s.cold_starts, 1);
    assert_eq!(calls[3], call(5500, 6500, false, "des-0-F-1"));
    let fixed = DesConfig {
        reuse: ReuseRules {
            order: ReuseOrder::Newest,
            extend_on_reuse: false,
        },
        ..config(3, 1)
    };
    let (s, calls) = run(&rows, &fixed);
    assert_eq!(s.cold_starts, 2);
    assert_eq!(
        calls,
        vec![
            call(0, 1500, true, "des-0-F-1"),
            call(2000, 3000, false, "des-0-F-1"),
            call(4000, 5000, false, "des-0-F-1"),
            call(5500, 7000, true, "des-0-F-2"),
        ]
    );
}

#[test]
fn a_running_limit_rejects_or_queues() {
    // At most one running instance per node. 0: F cold (ends 1500). 100:
    // F needs a second instance.
    // - over-commit (SimFaaS's rule at its maximum concurrency): rejected,
    //   an error line, 1 failed.
    // - queue: waits at the node until 1500, then takes the idle instance
    //   (warm): 100 -> 2500.
    // - default (no limit): cold on a second instance, 100 -> 1600.
    let rows = [("F", 0), ("F", 100)];
    let limit = |overflow| DesConfig {
        admission: Admission {
            max_running: Some(1),
            overflow,
        },
        ..config(60, 1)
    };
    let (s, calls) = run(&rows, &limit(Overflow::OverCommit));
    assert_eq!((s.completed, s.failed, s.rejections), (1, 1, 1));
    assert_eq!(calls, vec![call(0, 1500, true, "des-0-F-1")]);
    let (s, calls) = run(&rows, &limit(Overflow::Queue));
    assert_eq!((s.completed, s.failed, s.cold_starts), (2, 0, 1));
    assert_eq!(calls[1], call(100, 2500, false, "des-0-F-1"));
    let (s, calls) = run(&rows, &config(60, 1));
    assert_eq!((s.completed, s.cold_starts), (2, 2));
    assert_eq!(calls[1], call(100, 1600, true, "des-0-F-2"));
}

#[test]
fn a_full_node_sends_the_call_elsewhere_or_rejects_it() {
    // Two nodes, round robin, at most one running instance each; row
    // durations (DurationMs). 0: F (5000 ms) on node 0, cold, ends 5500.
    // 0: F (100 ms) on node 1, cold, ends 600. 1000: F (1000 ms), round
    // robin's node 0 is full:
    // - reject: it fails;
    // - elsewhere: node 1 takes it on its idle instance, warm, 1000 ->
    //   2000; the scheduler saw it end on node 0 at once.
    let shaped = |f: &str, t, ms: f64| {
        let mut e = ScenarioEvent::new(f, t);
        e.shape = Some(protocol::scenario::CallShape {
            duration_us: (ms * 1000.0) as u64,
            memory_mb: None,
        });
        e
    };
    let events = [
        shaped("F", 0, 5000.0),
        shaped("F", 0, 100.0),
        shaped("F", 1000, 1000.0),
    ];
    let rule = |overflow, reroute| DesConfig {
        admission: Admission {
            max_running: Some(1),
            overflow,
        },
        reroute,
        ..config(60, 2)
    };
    let (s, calls) = run_events(&events, &rule(Overflow::Reject, false));
    assert_eq!((s.completed, s.failed, s.rerouted), (2, 1, 0));
    assert_eq!(calls.len(), 2);
    let (s, calls) = run_events(&events, &rule(Overflow::Reject, true));
    assert_eq!(
        (s.completed, s.failed, s.rerouted, s.rejections),
        (3, 0, 1, 1)
    );
    assert_eq!(
        calls,
        vec![
            call(0, 5500, true, "des-0-F-1"),
            call(0, 600, true, "des-1-F-1"),
            call(1000, 2000, false, "des-1-F-1"),
        ]
    );
}

#[test]
fn node_memory_queues_or_rejects_calls_by_their_rows_memory() {
    // 300 MB per node. Rows ask 200 MB each. 0: F cold (ends 1500). 100:
    // F does not fit beside it (400 MB):
    // - over-commit (default): cold on a second instance, 100 -> 1600;
    // - queue: at 1500 it takes the idle instance, warm: 100 -> 2500;
    // - reject: it fails.
    let row = |t| {
        let mut e = ScenarioEvent::new("F", t);
        e.shape = Some(protocol::scenario::CallShape {
            duration_us: 1_000_000,
            memory_mb: Some(200),
        });
        e
    };
    let events = [row(0), row(100)];
    let with = |overflow| DesConfig {
        node_memory_mb: 300,
        admission: Admission {
            max_running: None,
            overflow,
        },
        ..config(60, 1)
    };
    let (s, calls) = run_events(&events, &with(Overflow::OverCommit));
    assert_eq!((s.completed, s.cold_starts), (2, 2));
    assert_eq!(calls[1], call(100, 1600, true, "des-0-F-2"));
    let (s, calls) = run_events(&events, &with(Overflow::Queue));
    assert_eq!((s.completed, s.cold_starts), (2, 1));
    assert_eq!(calls[1], call(100, 2500, false, "des-0-F-1"));
    let (s, _) = run_events(&events, &with(Overflow::Reject));
    assert_eq!((s.completed, s.failed), (1, 1));
    // 100 MB rows fit (200 MB): no one waits.
    let small: Vec<ScenarioEvent> = events
        .iter()
        .cloned()
        .map(|mut e| {
            e.shape.as_mut().unwrap().memory_mb = Some(100);
            e
        })
        .collect();
    let (s, _) = run_events(&small, &with(Overflow::Reject));
    assert_eq!((s.completed, s.cold_starts), (2, 2));
}

#[test]
fn cpu_work_distributions_share_the_cores() {
    // pct-cpu with p0 = p100 = 1000: 1000 ms of CPU work every call. Two
    // calls at once on one core share it: both end at 500 + 2000 = 2500
    // (cold starts in parallel, then half a core each). As a sleep (pct:)
    // they do not share: 1500.
    let one_core = |model: &str| DesConfig {
        cores: 1,
        default_function: Some(model.parse().unwrap()),
        ..config(60, 1)
    };
    let rows = [("F", 0), ("F", 0)];
    let (_, calls) = run(&rows, &one_core("pct-cpu:p0=1000,p100=1000"));
    assert!(calls.iter().all(|c| c.end == 2500), "{calls:?}");
    let (_, calls) = run(&rows, &one_core("pct:p0=1000,p100=1000"));
    assert!(calls.iter().all(|c| c.end == 1500), "{calls:?}");
}

#[test]
fn drawn_work_has_the_distributions_mean() {
    // 4000 calls 10 s apart on an idle node, warm after the first:
    // duration = the draw. exp-cpu:200 has mean 200 ms; pct:p0=0,p50=100,
    // p100=1000 has mean 0.5 * 50 + 0.5 * 550 = 300 ms (piecewise-linear
    // inverse CDF: uniform on each half). Within 5 %.
    let rows: Vec<(&str, u64)> = (0..4000).map(|i| ("F", i * 10_000)).collect();
    for (model, mean) in [
        ("exp-cpu:200", 200.0),
        ("pct:p0=0,p50=100,p100=1000", 300.0),
    ] {
        let c = DesConfig {
            profile: CostProfile::default(),
            default_function: Some(model.parse::<FunctionModel>().unwrap()),
            scheduler: SchedulerConfig::new("rr", [("seed", "7")]).unwrap(),
            ..config(60, 1)
        };
        let (s, calls) = run(&rows, &c);
        assert_eq!(s.completed, 4000);
        let got = calls.iter().map(|c| (c.end - c.start) as f64).sum::<f64>() / 4000.0;
        assert!((got / mean - 1.0).abs() < 0.05, "{model}: mean {got}");
        // Seeded: the same run again gives the same calls.
        assert_eq!(run(&rows, &c).1, calls);
    }
}

#[test]
fn queued_calls_leave_the_node_queue_first_in_first_out() {
    // At most one running instance per node, overflow queue; three
    // functions, so every call needs its own instance. 0: F cold on F-1
    // (ends 1500). 100: G would be a second running instance: queued.
    // 200: H likewise, behind G. 1500: F-1 goes idle (1 running -> 0);
    // the head, G, cold-starts G-1: its work runs 1500 + 500 .. 3000; H
    // still waits (1 running). 3000: G-1 idle; H cold-starts H-1, ends
    // 4500. Cold starts: 3 (a LIFO queue would have run H before G).
    let rows = [("F", 0), ("G", 100), ("H", 200)];
    let queue = DesConfig {
        admission: Admission {
            max_running: Some(1),
            overflow: Overflow::Queue,
        },
        ..config(60, 1)
    };
    let (s, calls) = run(&rows, &queue);
    assert_eq!((s.completed, s.cold_starts, s.failed), (3, 3, 0));
    assert_eq!(
        calls,
        vec![
            call(0, 1500, true, "des-0-F-1"),
            call(100, 3000, true, "des-0-G-2"),
            call(200, 4500, true, "des-0-H-3"),
        ]
    );
}

#[test]
fn simfaas_maximum_concurrency_is_1000_running_instances() {
    // SimFaaS's default (Admission::SIMFAAS_MAX_RUNNING): 1001 calls of F
    // (256 MB each) at 0 on one node with room for all (300,000 MB: under
    // a rule other than over-commit the default 2,048 MB would hold only
    // 8 instances and bind first). The first 1000 cold-start instances 1..1000 (all
    // end at 1500); the 1001st would be a 1001st running instance:
    // - over-commit (SimFaaS's rule): rejected, 1000 completed, 1 failed;
    // - queue: it waits until 1500, when the 1000 calls end in the order
    //   they started; the queue is tried after each end, so it takes the
    //   first instance to go idle (1), warm: 0 -> 2500. Cold starts 1000
    //   either way.
    // One more at 3000 reuses instance 1000 (all idle: the newest), warm,
    // ends 4000, under both rules.
    assert_eq!(Admission::SIMFAAS_MAX_RUNNING, 1000);
    let mut rows: Vec<(&str, u64)> = vec![("F", 0); 1001];
    rows.push(("F", 3000));
    let limit = |overflow| DesConfig {
        admission: Admission {
            max_running: Some(Admission::SIMFAAS_MAX_RUNNING),
            overflow,
        },
        node_memory_mb: 300_000,
        ..config(60, 1)
    };
    let (s, calls) = run(&rows, &limit(Overflow::OverCommit));
    assert_eq!(
        (s.completed, s.failed, s.rejections, s.cold_starts),
        (1001, 1, 1, 1000)
    );
    assert!(calls[..1000].iter().all(|c| c.cold && c.end == 1500));
    assert_eq!(calls[1000], call(3000, 4000, false, "des-0-F-1000"));
    let (s, calls) = run(&rows, &limit(Overflow::Queue));
    assert_eq!((s.completed, s.failed, s.cold_starts), (1002, 0, 1000));
    assert_eq!(
        calls.iter().filter(|c| c.end == 2500).collect::<Vec<_>>(),
        vec![&call(0, 2500, false, "des-0-F-1")]
    );
    assert_eq!(calls[1001], call(3000, 4000, false, "des-0-F-1000"));
    // Without the limit the 1001st cold-starts a 1001st instance.
    let (s, _) = run(&rows, &config(60, 1));
    assert_eq!((s.completed, s.cold_starts), (1002, 1001));
}

#[test]
fn elsewhere_fails_a_call_no_node_admits() {
    // Two nodes, round robin, at most one running instance each, overflow
    // elsewhere (reject + reroute). 0: F (5000 ms) on node 0, cold, ends
    // 5500; 0: F (5000 ms) on node 1 likewise. 1000: F (1000 ms): node 0
    // (round robin) is full, rejects (1); sent on to node 1, full too,
    // rejects (2); no node left: it fails (an error line). rejections 2,
    // rerouted 1 (sent on once), failed 1. 6000: F (1000 ms), rr's node 1
    // (rr counts selections: 0, 1, 0, 1), warm on des-1-F-1, ends 7000.
    let shaped = |t, ms: u64| {
        let mut e = ScenarioEvent::new("F", t);
        e.shape = Some(protocol::scenario::CallShape {
            duration_us: ms * 1000,
            memory_mb: None,
        });
        e
    };
    let events = [
        shaped(0, 5000),
        shaped(0, 5000),
        shaped(1000, 1000),
        shaped(6000, 1000),
    ];
    let elsewhere = DesConfig {
        admission: Admission {
            max_running: Some(1),
            overflow: Overflow::Reject,
        },
        reroute: true,
        ..config(60, 2)
    };
    let (s, calls) = run_events(&events, &elsewhere);
    assert_eq!(
        (
            s.completed,
            s.failed,
            s.rejections,
            s.rerouted,
            s.cold_starts
        ),
        (3, 1, 2, 1, 2)
    );
    assert_eq!(
        calls,
        vec![
            call(0, 5500, true, "des-0-F-1"),
            call(0, 5500, true, "des-1-F-1"),
            call(6000, 7000, false, "des-1-F-1"),
        ]
    );
}

#[test]
fn exponential_cpu_work_shares_a_core_and_exponential_sleep_does_not() {
    // Two calls of F at 0, cold (500 ms each, in parallel), then work
    // drawn from the run's seeded RNG in arrival order: w1, w2. The draws
    // do not depend on the cores, so two cores (no sharing) show them:
    // call i ends at 500 + wi. On one core, processor sharing: both run at
    // half speed until the smaller work, a, is done at 500 + 2a; the other
    // then runs alone and ends at 500 + a + b (b the larger). A sleep
    // (exp:) does not share: 500 + wi on one core too.
    let with = |model: &str, cores| DesConfig {
        cores,
        default_function: Some(model.parse().unwrap()),
        scheduler: SchedulerConfig::new("rr", [("seed", "11")]).unwrap(),
        ..config(60, 1)
    };
    let rows = [("F", 0), ("F", 0)];
    let ends = |model: &str, cores| -> Vec<i64> {
        let (s, calls) = run(&rows, &with(model, cores));
        assert_eq!((s.completed, s.cold_starts), (2, 2));
        let mut ends: Vec<i64> = calls.iter().map(|c| c.end).collect();
        ends.sort();
        ends
    };
    let alone = ends("exp-cpu:400", 2);
    let (a, b) = (alone[0] - 500, alone[1] - 500);
    assert!(a > 0 && b > a, "two distinct draws: {alone:?}");
    let shared = ends("exp-cpu:400", 1);
    // Whole-ms log stamps: within 2 ms.
    let near = |got: i64, want: i64| (got - want).abs() <= 2;
    assert!(near(shared[0], 500 + 2 * a), "{shared:?} vs a {a}, b {b}");
    assert!(near(shared[1], 500 + a + b), "{shared:?} vs a {a}, b {b}");
    // The same draws as a sleep (warm and cold mean 400): no sharing.
    assert_eq!(ends("exp:400", 1), ends("exp:400", 2));
}
