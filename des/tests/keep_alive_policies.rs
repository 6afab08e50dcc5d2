//! The keep-alive policies of the Lambda model in the DES: every policy
//! runs a small scenario to the end, deterministically, and each shows its
//! effect in the summary (cold starts, memory evictions).

use std::time::Duration;

use des::{run_scenario, CostProfile, DesConfig, InstanceModel, KeepAlivePolicy, Summary};
use policy::node::keep_alive_policy::POLICY_NAMES;
use protocol::ScenarioEvent;

/// `scenarios/small.csv` (`FunctionName,StartTimeMs`).
fn small_scenario() -> Vec<ScenarioEvent> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/small.csv");
    let text = std::fs::read_to_string(path).unwrap();
    let events: Vec<ScenarioEvent> = text
        .lines()
        .filter_map(|l| {
            let (f, t) = l.split_once(',')?;
            Some(ScenarioEvent::new(f.trim(), t.trim().parse().ok()?))
        })
        .collect();
    assert!(events.len() > 100, "{} events", events.len());
    events
}

fn config(policy: &str, keep_alive_s: u64, nodes: u32, memory_mb: u32) -> DesConfig {
    let policy: KeepAlivePolicy = policy.parse().unwrap();
    DesConfig {
        nodes,
        node_memory_mb: memory_mb,
        instances: InstanceModel::lambda(Duration::from_secs(keep_alive_s), policy),
        profile: CostProfile::default(),
        ..DesConfig::default()
    }
}

fn run(events: &[ScenarioEvent], config: &DesConfig) -> (Summary, Vec<u8>) {
    let mut log = Vec::new();
    let s = run_scenario(events, config, Some(&mut log)).unwrap();
    assert_eq!(s.completed, events.len() as u64, "{config:?}");
    assert_eq!(s.failed, 0);
    (s, log)
}

#[test]
fn every_policy_runs_the_small_scenario_deterministically() {
    let events = small_scenario();
    for name in POLICY_NAMES {
        let c = config(name, 60, 2, 512);
        let (a, log_a) = run(&events, &c);
        let (b, log_b) = run(&events, &c);
        assert_eq!(log_a, log_b, "{name}: same inputs, same log");
        assert_eq!(a.cold_starts, b.cold_starts);
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(
            json["config"]["instances"]["policy"]["name"], name,
            "{json}"
        );
        assert!(a.instances.is_some(), "{name}");
    }
}

#[test]
fn memory_limited_policies_evict_and_pay_in_cold_starts() {
    let events = small_scenario();
    // One node with room for two 256 MB instances.
    let (fixed, _) = run(&events, &config("fixed", 600, 1, 512));
    let fixed_inst = fixed.instances.unwrap();
    assert_eq!(fixed_inst.memory_evictions, 0, "fixed ignores the limit");
    assert!(
        fixed_inst.mean_instances > 2.0,
        "{fixed_inst:?}: over 512 MB"
    );
    for name in ["lru", "greedy-dual"] {
        let (s, _) = run(&events, &config(name, 600, 1, 512));
        let inst = s.instances.clone().unwrap();
        assert!(inst.memory_evictions > 0, "{name}: {inst:?}");
        assert!(s.cold_starts > fixed.cold_starts, "{name}: {s:?}");
        assert!(inst.mean_instances < fixed_inst.mean_instances, "{name}");
    }
    // With memory for everything, they are the fixed keep-alive.
    let (roomy, _) = run(&events, &config("lru", 600, 1, 1 << 20));
    assert_eq!(roomy.cold_starts, fixed.cold_starts);
}

#[test]
fn pre_warming_policies_turn_cold_starts_warm() {
    // W4 every 2 s for 120 s (it runs ~0.7 s), with a keep-alive of 0:
    // the fixed policy starts every call cold.
    let events: Vec<ScenarioEvent> = (0..60)
        .map(|i| ScenarioEvent::new("W4", 2000 * i))
        .collect();
    let (fixed, _) = run(&events, &config("fixed", 0, 1, 2048));
    assert_eq!(fixed.cold_starts, 60);
    // Histogram: idle times ~1.3 s, all in the first bin: representative
    // at once, keep-alive 66 s, no pre-warm window: only the first two
    // calls are cold (the second's idle time is the first recorded).
    let (hist, _) = run(&events, &config("histogram", 0, 1, 2048));
    assert_eq!(hist.cold_starts, 2, "{hist:?}");
    // EWMA: 15 calls in the first 30 s → 3 warm instances from 30 s on;
    // the first 15 calls are cold, later ones warm.
    let (ewma, _) = run(&events, &config("ewma", 0, 1, 2048));
    assert_eq!(ewma.cold_starts, 15, "{ewma:?}");
}
