//! Benchmark (not a test): the replay dispatcher's lag (actual send time -
//! scheduled time) at a high open-loop rate against a fast loopback stub.
//!
//! Target: p99 <= 1 ms at 2,000 events/s. Run with
//! `cargo bench -p simulator --bench dispatch_lag` (release profile);
//! `DISPATCH_RATE` (events/s, default 2000) and `DISPATCH_SECONDS` (default
//! 10) change the load. Prints the replay's summary and the lag seen by the
//! stub (arrival time - scheduled time, which adds the HTTP client's cost).

#[path = "../tests/replay_stub.rs"]
mod replay_stub;

use protocol::ScenarioEvent;
use simulator::replay::{self, ProgressMode, ReplayOptions, StopHandle};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // special: run a short smoke version then.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let rate = env_or("DISPATCH_RATE", 2000).max(1);
    let seconds = if smoke {
        1
    } else {
        env_or("DISPATCH_SECONDS", 10)
    };
    let count = rate * seconds;
    // Evenly spaced events (the start times are whole ms in the CSV format,
    // so 2,000/s means two events per ms).
    let events: Vec<ScenarioEvent> = (0..count)
        .map(|i| ScenarioEvent::new(format!("F{}", i % 30), i * 1000 / rate))
        .collect();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // The stub runs on its own runtime thread, as a balancer would run in
    // its own process, so it does not compete with the replayer's workers.
    let stub_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("stub runtime");
    let stub = stub_runtime.block_on(replay_stub::StubBalancer::start());
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("bench.log");
        let mut options = ReplayOptions::new(&stub.url);
        options.progress = ProgressMode::Off;
        let summary = replay::replay(&events, &options, &log, &StopHandle::new())
            .await
            .expect("replay");
        println!(
            "dispatch lag at {rate} events/s for {seconds} s ({count} events{}):",
            if smoke { ", smoke run" } else { "" }
        );
        println!("{summary}");
        println!(
            "RESULT dispatch_lag_p50_us={} dispatch_lag_p99_us={} dispatch_lag_max_us={} target_p99_us=1000 {} (load average {})",
            summary.dispatch_lag_p50_us,
            summary.dispatch_lag_p99_us,
            summary.dispatch_lag_max_us,
            if summary.dispatch_lag_p99_us <= 1000 { "MET" } else { "MISSED" },
            std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
        );
        assert_eq!(summary.ok, count, "every call must succeed against the stub");
    });
}
