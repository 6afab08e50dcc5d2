//! Fault tests across hosts (issue 16, part 4) on the compose cluster
//! (`deploy/compose/docker-compose.yml`, images from
//! `deploy/build-images.sh`), each with a replay running through the
//! balancer's published port while the fault happens:
//!
//! - a worker container killed (`docker kill -s KILL`): no call lost at
//!   the client (the balancer retries a call whose worker died with it in
//!   flight on another node, since the sample functions are safe to
//!   repeat), the node offline, and online again once the container is
//!   started again;
//! - a worker cut off the network (`docker network disconnect`): offline,
//!   the calls go to the other worker, and it rejoins once reconnected;
//! - the balancer restarted: the workers register again by themselves,
//!   and the replayer's log keeps a line for every call, the failed ones
//!   counted by cause in its summary;
//! - the worker service scaled 2 -> 6 -> 2: no call lost;
//! - 10,000 cheap calls (`noop`) at a high rate: no error.
//!
//! The "within 2 s" are measured from observed state changes
//! (`GET /1/lb/nodes` polled every 50 ms, from the moment the `docker`
//! command that made the change returned), printed, and asserted with a
//! generous bound (10 s) that holds on a loaded shared machine; the
//! printed figures are the measurement. Run with `--nocapture` to see
//! them.
//!
//! Each test owns a compose project and images of its own (label
//! `hotfunctions.test=<project>`), removed when it ends, pass or fail
//! ([`support::compose::Cluster`]); the tests of this file run one at a
//! time (a lock), since each one is a cluster on a small machine.

// Tests read the clock for deadlines and measurements.
#![allow(clippy::disallowed_methods)]

mod support;

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::compose::{docker, online, write_scenario, Cluster, Replay};

/// One cluster at a time on the engine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The bound asserted on every "within 2 s" of the issue (the measured
/// figure is printed).
const GENEROUS: Duration = Duration::from_secs(10);

/// Sleep-only functions (T3, T5, T6: 2.3 s of sleep in 3 rounds, 0.5 MB
/// packages) at a time scale of 0.2 take about 0.5 s each without using
/// a core, so calls are in flight on every worker when a fault comes;
/// `noop` in between.
const IN_FLIGHT_MIX: [&str; 4] = ["T3", "noop", "T5", "T6"];

fn settings() -> [(&'static str, &'static str); 2] {
    [("HF_TIME_SCALE", "0.2"), ("HF_WORKER_CPUS", "0.5")]
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn a_killed_worker_loses_no_call_goes_offline_and_comes_back_when_restarted() {
    let _one = lock();
    let cluster = Cluster::build("kill", &settings());
    cluster.scale(2);
    cluster.wait_online(2);

    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("kill.csv");
    let events = 500;
    write_scenario(&scenario, &IN_FLIGHT_MIX, events, 40.0);
    let replay = Replay::start(&cluster.url(), &scenario, dir.path(), "kill");
    replay.wait_lines(60, Duration::from_secs(60));

    let victim = cluster.containers("worker")[0].clone();
    let victim_url = cluster.node_url(&victim);
    docker(&["kill", "--signal", "KILL", &victim]);
    let (_, offline_after) = cluster.wait_members("the killed worker offline", GENEROUS, |m| {
        m.get(&victim_url).is_some_and(|s| s == "offline")
    });

    docker(&["start", &victim]);
    let back_url = cluster.node_url(&victim);
    let (members, online_after) =
        cluster.wait_members("the restarted worker online", GENEROUS, |m| {
            m.get(&back_url).is_some_and(|s| s == "online") && online(m) == 2
        });
    println!(
        "kill: node offline {:.2} s after `docker kill`; online {:.2} s after `docker start` \
         (same URL: {}); members {members:?}",
        offline_after.as_secs_f64(),
        online_after.as_secs_f64(),
        back_url == victim_url
    );

    let done = replay.finish(Duration::from_secs(180));
    assert!(done.success, "{}", done.stderr);
    assert_eq!(done.calls.len(), events, "one log line per call");
    let retried = done
        .calls
        .iter()
        .filter(|c| c.3["LoadBalancingInfo"].get("RetriedFrom").is_some())
        .count();
    println!(
        "kill: {} calls, {} failed, {retried} retried on the other worker",
        done.calls.len(),
        done.failed()
    );
    assert_eq!(done.failed(), 0, "no call lost: {}", done.stderr);
    assert_eq!(done.summary["errors"], 0, "{}", done.summary);
    assert!(offline_after < GENEROUS && online_after < GENEROUS);
}

#[test]
fn a_worker_cut_off_the_network_goes_offline_its_calls_go_elsewhere_and_it_rejoins() {
    let _one = lock();
    let cluster = Cluster::build("cut", &settings());
    cluster.scale(2);
    cluster.wait_online(2);

    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("cut.csv");
    let events = 500;
    write_scenario(&scenario, &IN_FLIGHT_MIX, events, 40.0);
    let replay = Replay::start(&cluster.url(), &scenario, dir.path(), "cut");
    replay.wait_lines(60, Duration::from_secs(60));

    let victim = cluster.containers("worker")[0].clone();
    let victim_url = cluster.node_url(&victim);
    let network = cluster.network();
    docker(&["network", "disconnect", &network, &victim]);
    let (_, offline_after) = cluster.wait_members("the cut worker offline", GENEROUS, |m| {
        m.get(&victim_url).is_some_and(|s| s == "offline")
    });
    let offline_at_ms = unix_ms();
    // Calls keep coming while it is cut off: they must go elsewhere.
    let logged = replay.lines_so_far();
    replay.wait_lines(logged + 50, Duration::from_secs(60));
    let reconnect_at_ms = unix_ms();

    docker(&["network", "connect", &network, &victim]);
    let back_url = cluster.node_url(&victim);
    let (members, online_after) =
        cluster.wait_members("the reconnected worker online", GENEROUS, |m| {
            m.get(&back_url).is_some_and(|s| s == "online") && online(m) == 2
        });
    println!(
        "cut: node offline {:.2} s after `docker network disconnect`; online {:.2} s after \
         `docker network connect` (same URL: {}); members {members:?}",
        offline_after.as_secs_f64(),
        online_after.as_secs_f64(),
        back_url == victim_url
    );

    let done = replay.finish(Duration::from_secs(180));
    assert_eq!(done.calls.len(), events, "one log line per call");
    let while_cut: Vec<_> = done
        .calls
        .iter()
        .filter(|c| c.0 >= offline_at_ms && c.1 <= reconnect_at_ms)
        .collect();
    assert!(!while_cut.is_empty(), "calls while the worker was cut off");
    for c in &while_cut {
        let node = support::compose::Replayed::node_of(&c.3);
        assert!(
            node.is_some() && node != Some(victim_url.as_str()),
            "a call sent while {victim_url} was offline: {c:?}"
        );
    }
    let on_victim_after = done
        .calls
        .iter()
        .filter(|c| c.0 > reconnect_at_ms)
        .filter(|c| support::compose::Replayed::node_of(&c.3) == Some(back_url.as_str()))
        .count();
    println!(
        "cut: {} calls, {} failed (in flight on the cut worker), {} served elsewhere while it \
         was cut off, {on_victim_after} on it after it rejoined",
        done.calls.len(),
        done.failed(),
        while_cut.len()
    );
    assert!(offline_after < GENEROUS && online_after < GENEROUS);
}

#[test]
fn a_restarted_balancer_gets_its_workers_back_and_the_log_keeps_every_call() {
    let _one = lock();
    let cluster = Cluster::build("restart", &settings());
    cluster.scale(2);
    cluster.wait_online(2);

    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("restart.csv");
    let events = 400;
    write_scenario(&scenario, &IN_FLIGHT_MIX, events, 40.0);
    let replay = Replay::start(&cluster.url(), &scenario, dir.path(), "restart");
    replay.wait_lines(60, Duration::from_secs(60));

    let balancer = cluster.containers("balancer")[0].clone();
    let restart = Instant::now();
    docker(&["restart", "--time", "5", &balancer]);
    let restarted = restart.elapsed();
    let (members, rejoined_after) =
        cluster.wait_members("the workers registered again", GENEROUS, |m| {
            m.len() == 2 && online(m) == 2
        });
    let rejoined_at_ms = unix_ms();
    println!(
        "restart: `docker restart` took {:.2} s; both workers online again {:.2} s after it \
         returned; members {members:?}",
        restarted.as_secs_f64(),
        rejoined_after.as_secs_f64()
    );

    let done = replay.finish(Duration::from_secs(180));
    assert!(done.success, "--max-failures 100%: {}", done.stderr);
    assert_eq!(
        done.calls.len(),
        events,
        "one log line per call, failed or not"
    );
    let failed = done.failed() as u64;
    assert_eq!(
        done.summary["errors"].as_u64(),
        Some(failed),
        "the summary counts the failed calls the log has: {}",
        done.summary
    );
    let by_cause: u64 = done.summary["failures_by_cause"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(by_cause, failed, "{}", done.summary);
    let late_failures = done
        .calls
        .iter()
        .filter(|c| c.0 > rejoined_at_ms && c.3.get("LoadBalancingInfo").is_none())
        .count();
    println!(
        "restart: {} calls, {failed} failed by cause {}, {late_failures} failed after the \
         workers were back",
        done.calls.len(),
        done.summary["failures_by_cause"]
    );
    assert_eq!(
        late_failures, 0,
        "calls fail only while the balancer is down"
    );
    assert!(rejoined_after < GENEROUS);
}

#[test]
fn scaling_the_workers_2_6_2_mid_replay_loses_no_call() {
    let _one = lock();
    let cluster = Cluster::build("scale", &settings());
    cluster.scale(2);
    cluster.wait_online(2);

    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("scale.csv");
    let events = 1200;
    write_scenario(&scenario, &IN_FLIGHT_MIX, events, 40.0);
    let replay = Replay::start(&cluster.url(), &scenario, dir.path(), "scale");
    replay.wait_lines(60, Duration::from_secs(60));

    let up = Instant::now();
    cluster.scale(6);
    cluster.wait_online(6);
    let up_took = up.elapsed();
    let logged = replay.lines_so_far();
    replay.wait_lines(logged + 60, Duration::from_secs(60));
    let down = Instant::now();
    cluster.scale(2);
    cluster.wait_online(2);
    let down_took = down.elapsed();
    let scaled_at = replay.elapsed();

    let done = replay.finish(Duration::from_secs(240));
    let nodes: std::collections::BTreeSet<&str> = done
        .calls
        .iter()
        .filter_map(|c| support::compose::Replayed::node_of(&c.3))
        .collect();
    println!(
        "scale: 2 -> 6 online in {:.1} s, 6 -> 2 in {:.1} s (done {:.1} s into the replay); \
         {} calls, {} failed, served by {} nodes",
        up_took.as_secs_f64(),
        down_took.as_secs_f64(),
        scaled_at.as_secs_f64(),
        done.calls.len(),
        done.failed(),
        nodes.len()
    );
    assert!(done.success, "{}", done.stderr);
    assert_eq!(done.calls.len(), events);
    assert_eq!(done.failed(), 0, "no call lost: {}", done.stderr);
    assert!(nodes.len() >= 6, "the 4 added workers served calls too");
}

#[test]
fn ten_thousand_calls_through_the_cluster_without_an_error() {
    let _one = lock();
    let cluster = Cluster::build("10k", &[("HF_WORKER_CPUS", "1")]);
    cluster.scale(2);
    cluster.wait_online(2);

    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("10k.csv");
    let events = 10_000;
    // 400 calls/s of the function that does nothing: 25 s.
    write_scenario(&scenario, &["noop"], events, 2.5);
    let start = Instant::now();
    let replay = Replay::start(&cluster.url(), &scenario, dir.path(), "10k");
    let done = replay.finish(Duration::from_secs(300));
    println!(
        "10k: {} calls in {:.1} s, {} failed; response p50 {} ms, p99 {} ms; dispatch lag p99 \
         {} us",
        done.calls.len(),
        start.elapsed().as_secs_f64(),
        done.failed(),
        done.summary["response_p50_ms"],
        done.summary["response_p99_ms"],
        done.summary["dispatch_lag_p99_us"]
    );
    assert!(done.success, "{}", done.stderr);
    assert_eq!(done.calls.len(), events);
    assert_eq!(done.failed(), 0);
    assert_eq!(done.summary["errors"], 0, "{}", done.summary);
}
