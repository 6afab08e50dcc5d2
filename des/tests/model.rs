//! The DES worker model, through the library entry point
//! (`des::run_scenario`): processor sharing, sleeping phases,
//! and the live worker's policies (REST lifetime, pre-warmed pool, image
//! LRU by bytes) as seen in the log lines' `Meta` flags and times.

use des::{run_scenario, CostProfile, DesConfig, DesError, FunctionModel};
use policy::node::options::CachingOptions;
use policy::scheduler::SchedulerConfig;
use protocol::{BalancerReply, LogLine, ScenarioEvent};

const NO_SETTINGS: [(&str, &str); 0] = [];

fn events(rows: &[(&str, u64)]) -> Vec<ScenarioEvent> {
    rows.iter()
        .map(|&(f, t)| ScenarioEvent::new(f, t))
        .collect()
}

/// Runs and returns (line, reply) per call, in log order.
fn run(ev: &[ScenarioEvent], config: &DesConfig) -> Vec<(LogLine, BalancerReply)> {
    let mut out = Vec::new();
    let s = run_scenario(ev, config, Some(&mut out)).unwrap();
    assert_eq!(s.completed + s.failed, ev.len() as u64);
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| {
            let line = LogLine::parse(l).unwrap();
            let reply: BalancerReply = serde_json::from_str(&line.json).unwrap();
            (line, reply)
        })
        .collect()
}

fn one_node(cores: u32) -> DesConfig {
    DesConfig {
        nodes: 1,
        cores,
        ..DesConfig::default()
    }
}

#[test]
fn cpu_phases_share_the_cores() {
    // W1: one 750 ms CPU phase. Four at once on two cores: each gets half a
    // core, all finish at 1500 ms.
    let lines = run(
        &events(&[("W1", 0), ("W1", 0), ("W1", 0), ("W1", 0)]),
        &one_node(2),
    );
    assert_eq!(lines.len(), 4);
    for (line, reply) in &lines {
        assert_eq!(line.end_ms - line.start_ms, 1500, "{line:?}");
        assert_eq!(reply.worker.internal_execution_time, 1500);
    }
    // Two at once on two cores: full speed.
    for (line, _) in run(&events(&[("W1", 0), ("W1", 0)]), &one_node(2)) {
        assert_eq!(line.end_ms - line.start_ms, 750);
    }
}

#[test]
fn nodes_of_one_machine_share_its_cores() {
    // rr puts the two calls on nodes 0 and 1; with one core per node they
    // run side by side, on a one-core machine they share it.
    let two = events(&[("W1", 0), ("W1", 0)]);
    let separate = DesConfig {
        nodes: 2,
        cores: 1,
        ..DesConfig::default()
    };
    for (line, _) in run(&two, &separate) {
        assert_eq!(line.end_ms - line.start_ms, 750);
    }
    let shared = DesConfig {
        machine_cores: Some(1),
        ..separate
    };
    let lines = run(&two, &shared);
    let nodes: Vec<i64> = lines
        .iter()
        .map(|(_, r)| r.load_balancing_info.worker_node_id)
        .collect();
    assert!(nodes.contains(&0) && nodes.contains(&1), "{nodes:?}");
    for (line, _) in lines {
        assert_eq!(line.end_ms - line.start_ms, 1500);
    }
}

#[test]
fn sleeping_phases_use_no_cpu() {
    // T3 sleeps 1000 + 800 + 500 ms: four at once on one core still take
    // 2300 ms, and do not slow a W1 running beside them.
    let lines = run(
        &events(&[("T3", 0), ("T3", 0), ("T3", 0), ("T3", 0), ("W1", 0)]),
        &one_node(1),
    );
    for (line, _) in &lines {
        let expected = if line.function == "W1" { 750 } else { 2300 };
        assert_eq!(line.end_ms - line.start_ms, expected, "{line:?}");
    }
}

#[test]
fn rest_mode_shares_one_instance_until_its_lifetime_ends() {
    let config = DesConfig {
        worker: CachingOptions {
            using_rest_mode: true,
            rest_container_life_time: 10,
            ..CachingOptions::default()
        },
        profile: CostProfile {
            image_build_base_ms: 40.0,
            rest_start_ms: 100.0,
            rest_warm_ms: 5.0,
            ..CostProfile::default()
        },
        ..one_node(2)
    };
    // W1 #1 at 0: build 40 + start 100 + 750 = 890, ends at 890.
    // W1 #2 at 2000: existing, 5 + 750.
    // W1 #3 at 13000: #2 ended at 2755, idle 10 s until 12755: expired.
    let lines = run(&events(&[("W1", 0), ("W1", 2000), ("W1", 13_000)]), &config);
    let flags: Vec<(bool, bool)> = lines
        .iter()
        .map(|(_, r)| {
            (
                r.worker.meta.image_built,
                r.worker.meta.using_existing_rest_container,
            )
        })
        .collect();
    assert_eq!(flags, vec![(true, false), (false, true), (false, false)]);
    assert_eq!(lines[0].1.worker.execution_time, 890);
    assert_eq!(lines[0].1.worker.internal_execution_time, 750);
    assert_eq!(lines[1].1.worker.execution_time, 755);
    assert_eq!(lines[2].1.worker.execution_time, 850);
}

#[test]
fn concurrent_first_calls_wait_for_one_build_and_one_start() {
    let config = DesConfig {
        worker: CachingOptions {
            using_rest_mode: true,
            ..CachingOptions::default()
        },
        profile: CostProfile {
            image_build_base_ms: 300.0,
            rest_start_ms: 100.0,
            ..CostProfile::default()
        },
        ..one_node(4)
    };
    let ev = events(&[("W1", 0), ("W1", 50)]);
    let summary = run_scenario(&ev, &config, None).unwrap();
    assert_eq!(summary.image_builds, 1, "one build");
    let lines = run(&ev, &config);
    // As on the live worker, a caller that waited for the build reports
    // ImageBuilt too.
    assert!(lines.iter().all(|(_, r)| r.worker.meta.image_built));
    for (line, _) in &lines {
        // Both start their function when the instance is up at 400 ms.
        assert_eq!(line.end_ms - 1_577_836_800_000, 1150, "{line:?}");
    }
}

#[test]
fn image_builds_are_cpu_work_shared_with_calls_and_other_builds() {
    // W1 and W2 (9.7 MB each) build for 300 ms of CPU each; one core.
    let config = DesConfig {
        profile: CostProfile {
            image_build_base_ms: 300.0,
            ..CostProfile::default()
        },
        ..one_node(1)
    };
    // Alone: the build takes its 300 ms, then W1's 750 ms of CPU.
    let alone = run(&events(&[("W1", 0)]), &config);
    assert_eq!(alone[0].0.end_ms - alone[0].0.start_ms, 1050);
    // Two builds at once share the core: both images are ready at 600 ms;
    // then W1 (750 ms) and W2 (625 ms) share it: W2 ends at 600 + 1250,
    // W1 at 1850 + 125.
    let both = run(&events(&[("W1", 0), ("W2", 0)]), &config);
    let end = |f: &str| {
        both.iter()
            .find(|(l, _)| l.function == f)
            .map(|(l, _)| l.end_ms - l.start_ms)
            .unwrap()
    };
    assert_eq!(end("W2"), 1850);
    assert_eq!(end("W1"), 1975);
    // A build while a call runs its CPU phase: W2's build starts at 0 with
    // W1 (image present from an earlier call) running; both progress at
    // half speed.
    let busy = run(&events(&[("W1", 0), ("W1", 2000), ("W2", 2000)]), &config);
    let w2 = busy.iter().find(|(l, _)| l.function == "W2").unwrap();
    // Build: 600 ms at half speed (W1 runs beside it for all of it), then
    // W2 shares with W1's remaining 450 ms: 900 ms, then alone 175 ms.
    assert_eq!(w2.0.end_ms - w2.0.start_ms, 600 + 900 + 175);
    assert!(w2.1.worker.meta.image_built);
}

#[test]
fn pre_warmed_pool_serves_later_calls() {
    let config = DesConfig {
        worker: CachingOptions {
            container_pool_limit: 1,
            container_pool_num: 2,
            ..CachingOptions::default()
        },
        profile: CostProfile {
            instance_create_ms: 200.0,
            pooled_ms: 10.0,
            ..CostProfile::default()
        },
        // Enough cores that the calls do not slow each other down.
        ..one_node(8)
    };
    // #1 cold (200 + 750, ends at 950; the pool of 2 is created then and
    // ready at 1150); #2 at 1100 comes too early; #3 and #4 take the two
    // pooled instances; #3 ends at 1960, the refill is ready at 2160, so #5
    // at 2200 is pooled again.
    let lines = run(
        &events(&[
            ("W1", 0),
            ("W1", 1100),
            ("W1", 1200),
            ("W1", 1210),
            ("W1", 2200),
        ]),
        &config,
    );
    let mut by_start: Vec<(i64, bool)> = lines
        .iter()
        .map(|(l, r)| (l.start_ms, r.worker.meta.using_pooled_container))
        .collect();
    by_start.sort();
    let pooled: Vec<bool> = by_start.iter().map(|p| p.1).collect();
    assert_eq!(pooled, vec![false, false, true, true, true]);
    assert_eq!(lines[0].1.worker.execution_time, 950);
    assert_eq!(lines[1].1.worker.execution_time, 760);
    // Without the pool, every call is a fresh instance.
    let off = DesConfig {
        worker: CachingOptions::default(),
        ..config
    };
    assert!(run(&events(&[("W1", 0), ("W1", 5000)]), &off)
        .iter()
        .all(|(_, r)| !r.worker.meta.using_pooled_container));
}

#[test]
fn image_cache_evicts_least_recently_used_by_bytes() {
    // W3 is 54 MB, W5 26 MB: with a 60 MB limit both cannot stay; W3 (least
    // recently used) goes when W5's image arrives, so W3's next call builds.
    let config = DesConfig {
        worker: CachingOptions {
            user_code_size_limit: 60_000_000,
            ..CachingOptions::default()
        },
        ..one_node(2)
    };
    let lines = run(&events(&[("W3", 0), ("W5", 2000), ("W3", 4000)]), &config);
    let built: Vec<(String, bool)> = lines
        .iter()
        .map(|(l, r)| (l.function.clone(), r.worker.meta.image_built))
        .collect();
    assert_eq!(
        built,
        vec![
            ("W3".to_string(), true),
            ("W5".to_string(), true),
            ("W3".to_string(), true)
        ]
    );
    let unlimited = DesConfig {
        worker: CachingOptions::default(),
        ..config
    };
    let again = run(
        &events(&[("W3", 0), ("W5", 2000), ("W3", 4000)]),
        &unlimited,
    );
    assert!(!again[2].1.worker.meta.image_built);
}

#[test]
fn a_package_scale_shrinks_packages_for_the_cache_builds_and_loads() {
    // At scale 0.5, W3 (54 MB) and W5 (26 MB) are 27 and 13 MB: both fit
    // the 60 MB limit that holds only one of them at full size, so W3's
    // second call finds its image.
    let full = DesConfig {
        worker: CachingOptions {
            user_code_size_limit: 60_000_000,
            ..CachingOptions::default()
        },
        profile: CostProfile {
            image_build_ms_per_mb: 2.0,
            instance_load_ms_per_mb: 1.0,
            ..CostProfile::default()
        },
        ..one_node(2)
    };
    let ev = events(&[("W3", 0), ("W5", 2000), ("W3", 4000)]);
    assert!(run(&ev, &full)[2].1.worker.meta.image_built);
    let half = DesConfig {
        package_scale: 0.5,
        ..full.clone()
    };
    let lines = run(&ev, &half);
    assert!(!lines[2].1.worker.meta.image_built);
    // The first W3 call builds 27 MB (54 ms) and loads 27 MB (27 ms).
    let overhead = |r: &BalancerReply| r.worker.execution_time - r.worker.internal_execution_time;
    assert_eq!(overhead(&lines[0].1), 81, "{:?}", lines[0]);
    assert_eq!(overhead(&run(&ev, &full)[0].1), 162);
    let bad = DesConfig {
        package_scale: -1.0,
        ..full
    };
    assert!(matches!(
        run_scenario(&ev, &bad, None),
        Err(DesError::BadPackageScale(..))
    ));
}

#[test]
fn unknown_functions_need_a_model() {
    let ev = events(&[("W1", 0), ("mystery", 10)]);
    let err = run_scenario(&ev, &DesConfig::default(), None).unwrap_err();
    assert!(matches!(err, DesError::UnknownFunction { ref name, row: 2 } if name == "mystery"));
    assert!(err.to_string().contains("--default-function"), "{err}");
    let config = DesConfig {
        default_function: Some("sleep:250".parse::<FunctionModel>().unwrap()),
        ..DesConfig::default()
    };
    let lines = run(&ev, &config);
    let mystery = lines.iter().find(|(l, _)| l.function == "mystery").unwrap();
    assert_eq!(mystery.0.end_ms - mystery.0.start_ms, 250);
}

#[test]
fn every_algorithm_logs_every_call_once_on_a_member_node() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scenarios/small.csv"
    ))
    .unwrap();
    let ev = protocol::scenario::parse(&text, "small.csv").unwrap();
    for algorithm in policy::scheduler::registry::names() {
        let config = DesConfig {
            scheduler: SchedulerConfig::new(algorithm, NO_SETTINGS).unwrap(),
            nodes: 4,
            ..DesConfig::default()
        };
        let lines = run(&ev, &config);
        assert_eq!(lines.len(), ev.len(), "{algorithm}");
        for (line, reply) in &lines {
            assert_eq!(reply.load_balancing_info.algorithm, algorithm);
            assert!((0..4).contains(&reply.load_balancing_info.worker_node_id));
            assert!(line.end_ms >= line.start_ms);
            assert!(reply.worker.internal_execution_time <= reply.worker.execution_time);
        }
        let mut per_function: std::collections::BTreeMap<&str, usize> = Default::default();
        for (l, _) in &lines {
            *per_function.entry(l.function.as_str()).or_default() += 1;
        }
        let mut expected: std::collections::BTreeMap<&str, usize> = Default::default();
        for e in &ev {
            *expected.entry(e.function.as_str()).or_default() += 1;
        }
        assert_eq!(per_function, expected, "{algorithm}");
    }
}

#[test]
fn bad_configurations_are_errors_not_panics() {
    let ev = events(&[("W1", 0)]);
    let no_nodes = DesConfig {
        nodes: 0,
        ..DesConfig::default()
    };
    assert!(matches!(
        run_scenario(&ev, &no_nodes, None),
        Err(DesError::NoNodes)
    ));
    // An unknown algorithm cannot make a configuration.
    assert!(SchedulerConfig::new("fastest", NO_SETTINGS)
        .unwrap_err()
        .to_string()
        .contains("unknown algorithm"));
    let bad_scale = DesConfig {
        time_scale: 0.0,
        ..DesConfig::default()
    };
    assert!(matches!(
        run_scenario(&ev, &bad_scale, None),
        Err(DesError::BadTimeScale(..))
    ));
    // Issue 13: sizes and scales beyond their bounds are errors before
    // anything is allocated (these ran out of memory or never ended).
    for bad in [
        DesConfig {
            nodes: u32::MAX,
            ..DesConfig::default()
        },
        DesConfig {
            machine_cores: Some(0),
            ..DesConfig::default()
        },
        DesConfig {
            node_memory_mb: u32::MAX,
            ..DesConfig::default()
        },
    ] {
        let e = run_scenario(&ev, &bad, None).unwrap_err();
        assert!(matches!(e, DesError::OutOfRange { .. }), "{e}");
        assert!(e.to_string().contains("outside its bounds"), "{e}");
    }
    for (time_scale, fn_time_scale) in [(1e-300, 1.0), (2e6, 1.0), (1.0, 1e-300), (1.0, 1e300)] {
        let bad = DesConfig {
            time_scale,
            fn_time_scale,
            ..DesConfig::default()
        };
        assert!(matches!(
            run_scenario(&ev, &bad, None),
            Err(DesError::BadTimeScale(..))
        ));
    }
    let at_the_bounds = DesConfig {
        nodes: des::limits::MAX_NODES,
        time_scale: 1e6,
        ..DesConfig::default()
    };
    assert!(run_scenario(&ev, &at_the_bounds, None).is_ok());
}

#[test]
fn time_scales_compress_arrivals_and_work() {
    // Replayed 4x faster with functions at 1/4 of their work: W1 at 4000 ms
    // arrives at 1000 and runs 187.5 ms.
    let config = DesConfig {
        time_scale: 4.0,
        fn_time_scale: 0.25,
        ..one_node(2)
    };
    let lines = run(&events(&[("W1", 4000)]), &config);
    let base = 1_577_836_800_000;
    assert_eq!(lines[0].0.start_ms - base, 1000);
    assert_eq!(lines[0].0.end_ms - base, 1187);
}

#[test]
fn summary_latency_is_duration_minus_internal_time_of_the_log() {
    // Image builds, REST starts and the network make latency; the
    // functions' own work does not. The summary's figures are the log's.
    let config = DesConfig {
        nodes: 2,
        worker: CachingOptions {
            using_rest_mode: true,
            ..CachingOptions::default()
        },
        profile: CostProfile {
            image_build_base_ms: 40.3,
            rest_start_ms: 100.6,
            rest_warm_ms: 2.2,
            network_ms: 0.7,
            ..CostProfile::default()
        },
        ..DesConfig::default()
    };
    let ev = events(&[
        ("W1", 0),
        ("W2", 10),
        ("W1", 2000),
        ("W3", 2100),
        ("W1", 2101),
    ]);
    let mut out = Vec::new();
    let s = run_scenario(&ev, &config, Some(&mut out)).unwrap();
    let (mut latency, mut duration) = (Vec::new(), Vec::new());
    for l in String::from_utf8(out).unwrap().lines() {
        let line = LogLine::parse(l).unwrap();
        let reply: BalancerReply = serde_json::from_str(&line.json).unwrap();
        let d = line.end_ms - line.start_ms;
        duration.push(d);
        latency.push(d - reply.worker.internal_execution_time);
    }
    let mean = |v: &[i64]| v.iter().sum::<i64>() as f64 / v.len() as f64;
    assert_eq!(s.completed, 5);
    assert_eq!(s.latency_ms.mean, mean(&latency));
    assert_eq!(s.duration_ms.mean, mean(&duration));
    assert_eq!(s.latency_ms.max, *latency.iter().max().unwrap() as f64);
    assert!(s.latency_ms.mean > 50.0 && s.latency_ms.mean < s.duration_ms.mean);
}
