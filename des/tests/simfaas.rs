//! Validation of `simulator des` against a published oracle: SimFaaS
//! (Mahmoudi & Khazaei, "Performance Modeling of Serverless Computing
//! Platforms", IEEE TCC 2020; "SimFaaS: A Performance Simulator for
//! Serverless Computing Platforms", CLOSER 2021).
//!
//! Their example: one function, Poisson arrivals at 0.9/s, exponential
//! service with mean 1.991 s warm and 2.244 s cold, keep-alive 600 s,
//! unlimited capacity, one request per instance, the most recently created
//! idle instance reused, 1,000,000 simulated seconds. Reported (SimFaaS
//! README, the output of exactly this run): "Cold Starts / total requests:
//! 1213 / 898469, Cold Start Probability: 0.0014" (1213 / 898469 = 0.001350,
//! printed with 4 decimals), "Average Server Count: 7.6612, Average Running
//! Count: 1.7879, Average Idle Count: 5.8733". We must match within 5 %,
//! over the full 10^6 s horizon (about 900,000 calls), driving the real
//! `policy::node::keep_alive` pool through the DES with no overhead
//! costs (the ideal profile) and no log.
//!
//! The cold-start probability is compared with the unrounded 0.001350: the
//! rounded 0.0014 is 3.7 % above it, so a 5 % band around 0.0014 would
//! reject SimFaaS's own run half of the time. (Over 12 seeds our runs gave
//! 0.00130 to 0.00138, mean 0.00133; instances 7.67 to 7.72.)

use std::time::Duration;

use des::{run_scenario, CostProfile, DesConfig, FunctionModel, InstanceModel, KeepAlivePolicy};
use protocol::ScenarioEvent;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};

const HORIZON_S: f64 = 1_000_000.0;
const RATE_PER_S: f64 = 0.9;
/// SimFaaS's reported run: 1213 cold starts in 898,469 requests.
const SIMFAAS_P_COLD: f64 = 1213.0 / 898_469.0;

fn poisson_scenario(seed: u64) -> Vec<ScenarioEvent> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let gap = Exp::new(RATE_PER_S).unwrap();
    let mut t = 0.0f64;
    let mut events = Vec::with_capacity((HORIZON_S * RATE_PER_S * 1.01) as usize);
    loop {
        t += gap.sample(&mut rng);
        if t >= HORIZON_S {
            break;
        }
        events.push(ScenarioEvent::new("simfaas", (t * 1000.0).round() as u64));
    }
    events
}

fn within(measured: f64, expected: f64, tolerance: f64) -> bool {
    ((measured - expected) / expected).abs() <= tolerance
}

#[test]
fn matches_simfaas_cold_start_probability_and_instance_counts() {
    let events = poisson_scenario(2021);
    assert!(events.len() > 890_000, "{} arrivals", events.len());
    let config = DesConfig {
        nodes: 1,
        node_capacity: des::limits::MAX_NODE_CAPACITY,
        instances: InstanceModel::lambda(Duration::from_secs(600), KeepAlivePolicy::Fixed),
        profile: CostProfile::default(),
        default_function: Some(FunctionModel::Exponential {
            warm_mean_ms: 1991.0,
            cold_mean_ms: 2244.0,
        }),
        ..DesConfig::default()
    };
    let s = run_scenario(&events, &config, None).unwrap();
    assert_eq!(s.completed, events.len() as u64);
    assert_eq!(s.failed, 0);
    assert!(s.simulated_seconds > HORIZON_S * 0.999);
    let inst = s
        .instances
        .clone()
        .expect("the Lambda model reports instances");
    let report = format!(
        "cold-start probability {:.6} (SimFaaS 1213/898469 = {SIMFAAS_P_COLD:.6}), instances {:.3} (7.6612), running {:.3} (1.7879), idle {:.3} (5.8733)",
        s.cold_start_ratio, inst.mean_instances, inst.mean_busy, inst.mean_idle
    );
    eprintln!("{report}");
    assert!(within(s.cold_start_ratio, SIMFAAS_P_COLD, 0.05), "{report}");
    assert!(within(inst.mean_instances, 7.6612, 0.05), "{report}");
    assert!(within(inst.mean_busy, 1.7879, 0.05), "{report}");
    assert!(within(inst.mean_idle, 5.8733, 0.05), "{report}");
    assert!(
        (inst.mean_instances - inst.mean_busy - inst.mean_idle).abs() < 1e-9,
        "{report}"
    );
}

#[test]
fn same_seed_same_result_other_seed_other_draws() {
    // Determinism of the exponential draws, on a short horizon.
    let events: Vec<ScenarioEvent> = poisson_scenario(7).into_iter().take(5_000).collect();
    let config = DesConfig {
        nodes: 1,
        instances: InstanceModel::lambda(Duration::from_secs(600), KeepAlivePolicy::Fixed),
        default_function: Some(FunctionModel::Exponential {
            warm_mean_ms: 1991.0,
            cold_mean_ms: 2244.0,
        }),
        ..DesConfig::default()
    };
    let mut a = Vec::new();
    let mut b = Vec::new();
    run_scenario(&events, &config, Some(&mut a)).unwrap();
    run_scenario(&events, &config, Some(&mut b)).unwrap();
    assert_eq!(a, b);
    let mut other = config.clone();
    other.scheduler = policy::scheduler::SchedulerConfig::new("rr", [("seed", "1")]).unwrap();
    let mut c = Vec::new();
    run_scenario(&events, &other, Some(&mut c)).unwrap();
    assert_ne!(a, c, "the seed drives the service draws");
}
