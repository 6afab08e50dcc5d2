//! Scale benchmark of `simulator des` (not a criterion bench: one long run
//! per configuration, figures printed).
//!
//! For rr, ch and ours: 1,000,000 invocations of the 30 catalog functions
//! (Poisson arrivals, the original generator's popularity mix, total rate
//! set so the cluster's cores are about half busy) on 100 nodes, HotFunctions
//! REST mode, the checked-in process profile, no log. Then the "must run"
//! case: 10,000,000 invocations on 1,000 nodes (ch). Each run happens in a
//! child process of this binary, so its peak memory (VmHWM) is its own.
//!
//! `cargo bench -p des --bench des_scale` (optional: `DES_BENCH_ALGOS=rr,ch`,
//! `DES_BENCH_BIG=0` to skip the 10 M run).

use std::process::Command;
use std::time::Instant;

use des::{run_workload, CostProfile, DesConfig, InstanceModel, Workload};
use policy::node::options::CachingOptions;
use policy::scheduler::SchedulerConfig;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};

const CHILD_ENV: &str = "DES_BENCH_CHILD";

/// Peak resident memory of this process, in MiB (Linux `VmHWM`).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// CPU time this thread has run, in seconds (Linux `schedstat`), so that
/// the rate is not hidden by other load on a shared machine.
fn thread_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

fn workload(invocations: usize, nodes: u32, cores: u32, seed: u64) -> (Workload, f64) {
    let catalog = sample_functions::catalog();
    let funcs: Vec<_> = catalog.with_rates().collect();
    let total_rate: f64 = funcs.iter().map(|f| f.rate_per_s).sum();
    let mean_cpu_ms: f64 = funcs
        .iter()
        .map(|f| f.rate_per_s / total_rate * f.cpu_ms() as f64)
        .sum();
    // Half of all cores busy on average.
    let rate = 0.5 * f64::from(nodes * cores) / (mean_cpu_ms / 1000.0);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let gap = Exp::new(rate).expect("positive rate");
    let cumulative: Vec<f64> = funcs
        .iter()
        .scan(0.0, |acc, f| {
            *acc += f.rate_per_s / total_rate;
            Some(*acc)
        })
        .collect();
    let mut t = 0.0f64;
    let mut arrivals = Vec::with_capacity(invocations);
    for _ in 0..invocations {
        t += gap.sample(&mut rng);
        let u: f64 = rand::Rng::gen(&mut rng);
        let f = cumulative.partition_point(|&c| c < u).min(funcs.len() - 1);
        arrivals.push((policy::Time::from_secs_f64(t), f as u32));
    }
    let names = funcs.iter().map(|f| f.name.clone()).collect();
    (Workload::from_parts(names, arrivals), rate)
}

fn child(algorithm: &str, invocations: usize, nodes: u32, with_log: bool) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../simulator/profiles/process.json"
    );
    let profile = CostProfile::load(std::path::Path::new(path)).expect("the process profile");
    let cores = profile.cores.max(1);
    let (w, rate) = workload(invocations, nodes, cores, 42);
    let config = DesConfig {
        scheduler: match SchedulerConfig::new(algorithm, [("seed", "0")]) {
            Ok(s) => s,
            Err(e) => {
                println!("{algorithm}: {e}");
                return;
            }
        },
        nodes,
        cores,
        worker: CachingOptions {
            using_rest_mode: true,
            ..CachingOptions::default()
        },
        instances: InstanceModel::HotFunctions,
        profile,
        ..DesConfig::default()
    };
    #[allow(clippy::disallowed_methods)] // the bench measures wall time
    let start = Instant::now();
    let cpu_start = thread_cpu_seconds();
    let mut sink = std::io::BufWriter::with_capacity(1 << 20, std::io::sink());
    let log: Option<&mut dyn std::io::Write> = if with_log { Some(&mut sink) } else { None };
    let s = match run_workload(&w, &config, log, &mut |_| {}) {
        Ok(s) => s,
        Err(e) => {
            println!("{algorithm:>5} {invocations:>10} calls {nodes:>5} nodes: not run: {e}");
            return;
        }
    };
    let wall = start.elapsed().as_secs_f64();
    let cpu = match (cpu_start, thread_cpu_seconds()) {
        (Some(a), Some(b)) if b > a => b - a,
        _ => wall,
    };
    println!(
        "{algorithm:>5} {invocations:>10} calls {nodes:>5} nodes{}: {:>6.2} s wall, {:>6.2} s CPU, {:>10.0} invocations/s ({:>10.0} per CPU-s), {:>10.0} events per CPU-s, peak RSS {:>7.1} MiB | {:.0} calls/s simulated over {:.0} s, cold {:.4}, mean latency {:.0} ms",
        if with_log { " +log" } else { "" },
        wall,
        cpu,
        invocations as f64 / wall,
        invocations as f64 / cpu,
        s.events as f64 / cpu,
        peak_rss_mib().unwrap_or(f64::NAN),
        rate,
        s.simulated_seconds,
        s.cold_start_ratio,
        s.latency_ms.mean,
    );
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let mut parts = spec.split(':');
        let algorithm = parts.next().unwrap_or("rr");
        let invocations = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1_000_000);
        let nodes = parts.next().and_then(|s| s.parse().ok()).unwrap_or(100);
        let with_log = parts.next() == Some("log");
        child(algorithm, invocations, nodes, with_log);
        return;
    }
    // `cargo bench` passes `--bench`; anything else (e.g. a test filter) is
    // ignored: this binary always runs the whole benchmark.
    let algos = std::env::var("DES_BENCH_ALGOS").unwrap_or_else(|_| "rr,ch,ours".into());
    let mut runs: Vec<(String, usize, u32, &str)> = algos
        .split(',')
        .map(|a| (a.trim().to_string(), 1_000_000, 100, ""))
        .collect();
    // The cost of writing every log line (formatted, into a sink).
    runs.push(("ch".into(), 1_000_000, 100, "log"));
    if std::env::var("DES_BENCH_BIG").map_or(true, |v| v != "0") {
        runs.push(("ch".into(), 10_000_000, 1000, ""));
    }
    let exe = std::env::current_exe().expect("own path");
    println!("des_scale: REST mode, process profile, no log unless +log; each line is a separate process");
    for (algorithm, invocations, nodes, log) in runs {
        let status = Command::new(&exe)
            .env(
                CHILD_ENV,
                format!("{algorithm}:{invocations}:{nodes}:{log}"),
            )
            .status()
            .expect("run child");
        if !status.success() {
            println!("{algorithm}: child failed ({status})");
        }
    }
}
