//! `reproduce keepalive`: keep-alive policies in the discrete-event
//! simulator.
//!
//! 1. FaasCache (Fuerst & Sharma, "FaasCache: Keeping Serverless Computing
//!    Alive with Greedy-Dual Caching", ASPLOS 2021,
//!    doi:10.1145/3445814.3446757): Greedy-Dual keep-alive against a fixed
//!    keep-alive across node memory sizes; published: "more than 3x"
//!    lower cold-start overhead than current approaches.
//! 2. Shahrad et al., "Serverless in the Wild", USENIX ATC 2020: the hybrid
//!    histogram policy against fixed keep-alives (10 minutes, AWS Lambda's
//!    and OpenWhisk's): cold starts against wasted memory time; published:
//!    the hybrid policy has fewer cold starts at less wasted memory (a
//!    better Pareto frontier).
//!
//! Workload: the 30 sample functions at their catalog rates, Poisson, one
//! node (keep-alive is per node), the `docker` cost profile; cores enough
//! that CPU contention stays small (these studies are about memory).

use std::time::Duration;

use des::DesConfig;
use policy::node::{InstanceModel, KeepAlivePolicy};
use policy::scheduler::SchedulerConfig;
use serde_json::json;
use utils::plot::{self, MetricEstimates, SweepSeries};
use utils::stats::Estimate;

use super::sim;
use super::{Context, Report, Table};

/// Cores of the one simulated node.
pub const CORES: u32 = 64;

/// Memory of one instance: every sample function's (catalog default).
pub const INSTANCE_MB: f64 = 256.0;

#[derive(Debug, Clone, serde::Serialize)]
struct Point {
    policy: String,
    keep_alive_s: u64,
    node_memory_mb: u32,
    calls: u64,
    cold_starts: u64,
    cold_start_ratio: f64,
    /// Sum over successful calls of duration - function time, seconds: the
    /// time calls spent outside the function (cold starts, almost all).
    overhead_s: f64,
    mean_idle_instances: f64,
    /// Idle instances' memory over the run, GB x hours.
    wasted_gb_h: f64,
    memory_evictions: u64,
}

fn simulate(
    workload: &des::Workload,
    profile: &des::CostProfile,
    seed: u64,
    policy: KeepAlivePolicy,
    keep_alive: Duration,
    node_memory_mb: u32,
) -> anyhow::Result<(Point, DesConfig)> {
    let config = DesConfig {
        scheduler: SchedulerConfig::new("rr", [("seed", seed.to_string())])?,
        nodes: 1,
        cores: CORES,
        node_memory_mb,
        instances: InstanceModel::lambda(keep_alive, policy),
        profile: profile.clone(),
        ..DesConfig::default()
    };
    let summary = crate::des::simulate(workload, &config, None, true)?;
    let inst = summary.instances.clone().unwrap_or_default();
    let point = Point {
        policy: policy.to_string(),
        keep_alive_s: keep_alive.as_secs(),
        node_memory_mb,
        calls: summary.invocations,
        cold_starts: summary.cold_starts,
        cold_start_ratio: summary.cold_start_ratio,
        overhead_s: summary.latency_ms.mean * summary.completed as f64 / 1000.0,
        mean_idle_instances: inst.mean_idle,
        wasted_gb_h: inst.mean_idle * INSTANCE_MB / 1024.0 * summary.simulated_seconds / 3600.0,
        memory_evictions: inst.memory_evictions,
    };
    Ok((point, config))
}

fn estimate(v: f64) -> Estimate {
    Estimate::of(&[v]).unwrap_or(Estimate {
        n: 0,
        mean: 0.0,
        stddev: 0.0,
        ci95: None,
        min: 0.0,
        max: 0.0,
    })
}

/// Where the hybrid point lies against the line through the fixed
/// keep-alives (cold starts interpolated at the hybrid's wasted memory).
fn frontier_text(points: &[Point], hist: &Point) -> String {
    let mut fixed: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.policy == "fixed")
        .map(|p| (p.wasted_gb_h, p.cold_start_ratio))
        .collect();
    fixed.sort_by(|a, b| a.0.total_cmp(&b.0));
    let at = hist.wasted_gb_h;
    let line = fixed
        .windows(2)
        .find(|w| w[0].0 <= at && at <= w[1].0)
        .map(|w| {
            let t = if w[1].0 > w[0].0 {
                (at - w[0].0) / (w[1].0 - w[0].0)
            } else {
                0.0
            };
            w[0].1 + t * (w[1].1 - w[0].1)
        });
    match line {
        Some(c) if hist.cold_start_ratio > c => format!(
            "in the figure it lies above the line of fixed keep-alives (a fixed keep-alive wasting as \
             much memory would have {:.2} % cold starts, the hybrid has {:.2} %), the opposite of the \
             paper's frontier",
            c * 100.0,
            hist.cold_start_ratio * 100.0
        ),
        Some(c) => format!(
            "in the figure it lies below the line of fixed keep-alives (a fixed keep-alive wasting as \
             much memory would have {:.2} % cold starts, the hybrid has {:.2} %), as in the paper",
            c * 100.0,
            hist.cold_start_ratio * 100.0
        ),
        None => "its wasted memory lies outside the range of the fixed keep-alives".to_string(),
    }
}

/// LRU's cold-start overhead over Greedy-Dual's at `mb` of node memory
/// in the FaasCache part's `points` (NaN without both).
fn lru_over_gd(points: &[Point], mb: u32) -> f64 {
    let find = |p: &str| {
        points
            .iter()
            .find(|q| q.policy == p && q.node_memory_mb == mb)
    };
    match (find("lru"), find("greedy-dual")) {
        (Some(l), Some(g)) if g.overhead_s > 0.0 => l.overhead_s / g.overhead_s,
        _ => f64::NAN,
    }
}

/// The highest finite ratio and its memory (GB), NaN if none.
fn best_ratio(ratios: &[(u32, f64)]) -> (u32, f64) {
    ratios
        .iter()
        .filter(|(_, r)| r.is_finite())
        .fold((0, f64::NAN), |a, &(gb, r)| {
            if a.1.is_nan() || r > a.1 {
                (gb, r)
            } else {
                a
            }
        })
}

pub fn run(ctx: &Context) -> anyhow::Result<()> {
    let profile = sim::profile("docker")?;
    let origin = sim::profile_origin("keepalive", &profile);
    let (memories_gb, faascache_s, wild_s): (&[u32], f64, f64) = if ctx.short {
        (&[2, 4, 8, 16], 1800.0, 4.0 * 3600.0)
    } else {
        (&[1, 2, 3, 4, 6, 8, 12, 16], 4.0 * 3600.0, 24.0 * 3600.0)
    };
    let ten_min = Duration::from_secs(600);

    // Part 1: FaasCache.
    let (gen1, w1) = sim::catalog_workload(ctx.seed, faascache_s, 1.0)?;
    crate::note!(
        "keepalive: FaasCache part, {} calls over {faascache_s} s",
        w1.arrivals.len()
    );
    let policies1 = [
        KeepAlivePolicy::GreedyDual,
        KeepAlivePolicy::Lru,
        KeepAlivePolicy::Fixed,
    ];
    let mut part1: Vec<Point> = Vec::new();
    let mut config1 = None;
    for &gb in memories_gb {
        for p in policies1 {
            let (point, config) = simulate(&w1, &profile, ctx.seed, p, ten_min, gb * 1024)?;
            config1.get_or_insert(config);
            part1.push(point);
        }
    }
    // The FaasCache ratio on variants of the profile (none without a
    // spread): Greedy-Dual and LRU again on the same calls.
    let varied = profile.varied_figures();
    let variant_count = match (varied.is_empty(), ctx.short) {
        (true, _) => 0,
        (false, true) => 2,
        (false, false) => 8,
    };
    let mut variant_best: Vec<(u32, f64)> = Vec::new();
    for k in 1..=variant_count {
        let variant = profile.variant(k);
        let mut points = Vec::new();
        for &gb in memories_gb {
            for p in [KeepAlivePolicy::GreedyDual, KeepAlivePolicy::Lru] {
                points.push(simulate(&w1, &variant, ctx.seed, p, ten_min, gb * 1024)?.0);
            }
        }
        let ratios: Vec<(u32, f64)> = memories_gb
            .iter()
            .map(|&gb| (gb, lru_over_gd(&points, gb * 1024)))
            .collect();
        variant_best.push(best_ratio(&ratios));
    }
    if variant_count > 0 {
        crate::note!("keepalive: FaasCache part on {variant_count} variants of the profile done");
    }
    let label1 = |p: &str| match p {
        "greedy-dual" => "Greedy-Dual".to_string(),
        "lru" => "fixed 10 min, LRU when full".to_string(),
        _ => "fixed 10 min, over-commits".to_string(),
    };
    let series = |metric: &dyn Fn(&Point) -> f64| -> Vec<SweepSeries> {
        policies1
            .iter()
            .map(|p| SweepSeries {
                label: label1(&p.to_string()),
                points: part1
                    .iter()
                    .filter(|q| q.policy == p.to_string())
                    .map(|q| (f64::from(q.node_memory_mb) / 1024.0, estimate(metric(q))))
                    .collect(),
            })
            .collect()
    };
    plot::sweep_lines(
        "Cold-start overhead against node memory (FaasCache)",
        "node memory (GB)",
        "cold-start overhead (s)",
        &series(&|q| q.overhead_s),
        &ctx.out.join("faascache-overhead.png"),
    )?;
    plot::sweep_lines(
        "Cold starts against node memory (FaasCache)",
        "node memory (GB)",
        "cold starts (% of calls)",
        &series(&|q| q.cold_start_ratio * 100.0),
        &ctx.out.join("faascache-cold-starts.png"),
    )?;

    // Part 2: Serverless in the Wild.
    let (gen2, w2) = sim::catalog_workload(ctx.seed, wild_s, 1.0)?;
    crate::note!(
        "keepalive: Serverless-in-the-Wild part, {} calls over {wild_s} s",
        w2.arrivals.len()
    );
    let unlimited_mb = 1 << 20;
    let mut part2: Vec<Point> = Vec::new();
    let fixed_minutes: &[u64] = &[1, 5, 10, 20, 60];
    for &m in fixed_minutes {
        let (point, _) = simulate(
            &w2,
            &profile,
            ctx.seed,
            KeepAlivePolicy::Fixed,
            Duration::from_secs(m * 60),
            unlimited_mb,
        )?;
        part2.push(point);
    }
    let histogram: KeepAlivePolicy = "histogram".parse()?;
    let (hist, config2) = simulate(&w2, &profile, ctx.seed, histogram, ten_min, unlimited_mb)?;
    part2.push(hist.clone());
    let fixed10 = part2
        .iter()
        .find(|p| p.policy == "fixed" && p.keep_alive_s == 600)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no fixed 10-minute run"))?;
    let pareto = vec![
        SweepSeries {
            label: "fixed keep-alive (1, 5, 10, 20, 60 min)".into(),
            points: part2
                .iter()
                .filter(|p| p.policy == "fixed")
                .map(|p| (p.wasted_gb_h, estimate(p.cold_start_ratio * 100.0)))
                .collect(),
        },
        SweepSeries {
            label: "hybrid histogram".into(),
            points: vec![(hist.wasted_gb_h, estimate(hist.cold_start_ratio * 100.0))],
        },
    ];
    plot::sweep_lines(
        "Cold starts against wasted memory (Serverless in the Wild)",
        "idle instances' memory (GB x h)",
        "cold starts (% of calls)",
        &pareto,
        &ctx.out.join("wild-pareto.png"),
    )?;
    let bars: Vec<MetricEstimates> = [("fixed 10 min", &fixed10), ("hybrid histogram", &hist)]
        .iter()
        .map(|(l, p)| MetricEstimates {
            label: l.to_string(),
            metrics: vec![
                (
                    "cold starts (%)".into(),
                    estimate(p.cold_start_ratio * 100.0),
                ),
                ("wasted memory (GB x h)".into(), estimate(p.wasted_gb_h)),
            ],
        })
        .collect();
    plot::comparison_bars_ci(&bars, &ctx.out.join("wild-bars.png"))?;

    // The report.
    let find = |p: &str, mb: u32| {
        part1
            .iter()
            .find(|q| q.policy == p && q.node_memory_mb == mb)
    };
    let mut ratios: Vec<(u32, f64)> = Vec::new();
    let mut t1 = Table::new([
        "node memory",
        "Greedy-Dual: cold / overhead",
        "fixed 10 min, LRU when full: cold / overhead",
        "fixed 10 min, over-commits: cold / overhead",
        "LRU overhead / GD overhead",
    ]);
    for &gb in memories_gb {
        let cell = |p: &str| {
            find(p, gb * 1024).map_or("-".to_string(), |q| {
                format!(
                    "{:.1} % / {:.0} s",
                    q.cold_start_ratio * 100.0,
                    q.overhead_s
                )
            })
        };
        let ratio = lru_over_gd(&part1, gb * 1024);
        ratios.push((gb, ratio));
        t1.row([
            format!("{gb} GB"),
            cell("greedy-dual"),
            cell("lru"),
            cell("fixed"),
            format!("{ratio:.2}x"),
        ]);
    }
    let best = best_ratio(&ratios);
    let mut t2 = Table::new(["policy", "cold starts", "idle memory (GB x h)", "evictions"]);
    for p in &part2 {
        t2.row([
            if p.policy == "fixed" {
                format!("fixed {} min", p.keep_alive_s / 60)
            } else {
                "hybrid histogram (fallback 10 min)".to_string()
            },
            format!(
                "{:.2} % ({} of {})",
                p.cold_start_ratio * 100.0,
                p.cold_starts,
                p.calls
            ),
            format!("{:.1}", p.wasted_gb_h),
            p.memory_evictions.to_string(),
        ]);
    }
    let cold_change = super::relative_change(hist.cold_start_ratio, fixed10.cold_start_ratio);
    let waste_change = super::relative_change(hist.wasted_gb_h, fixed10.wasted_gb_h);
    let mut summary = Table::new(["figure", "published", "ours", "difference"]);
    summary.row([
        "FaasCache: cold-start overhead, fixed (TTL) / Greedy-Dual, same memory".to_string(),
        "more than 3x".to_string(),
        format!("{:.2}x at best ({} GB)", best.1, best.0),
        super::fmt_pct(super::relative_change(best.1, 3.0)),
    ]);
    summary.row([
        "Serverless in the Wild: hybrid vs fixed 10 min, cold starts".to_string(),
        "fewer".to_string(),
        super::fmt_pct(cold_change),
        if cold_change.is_some_and(|c| c < 0.0) {
            "agrees"
        } else {
            "differs"
        }
        .to_string(),
    ]);
    summary.row([
        "Serverless in the Wild: hybrid vs fixed 10 min, wasted memory".to_string(),
        "less".to_string(),
        super::fmt_pct(waste_change),
        if waste_change.is_some_and(|c| c < 0.0) {
            "agrees"
        } else {
            "differs"
        }
        .to_string(),
    ]);

    let mut r =
        Report::new("Keep-alive: FaasCache (ASPLOS 2021) and Serverless in the Wild (ATC 2020)");
    r.paragraph(&ctx.provenance_text());
    r.section("The studies");
    r.bullets([
        "Fuerst & Sharma, \"FaasCache: Keeping Serverless Computing Alive with Greedy-Dual Caching\", \
         ASPLOS 2021 (doi:10.1145/3445814.3446757): keep-alive is caching; a Greedy-Dual policy \
         (priority = clock + frequency x cold-start cost / size) \"can be effective in reducing the \
         cold-start overhead by more than 3x compared to current approaches\" (abstract), compared \
         at equal server memory.",
        "Shahrad et al., \"Serverless in the Wild: Characterizing and Optimizing the Serverless \
         Workload at a Large Cloud Provider\", USENIX ATC 2020: a per-function hybrid histogram of \
         idle times (pre-warm at its head, keep alive to its tail, fall back when it is not \
         representative) against the fixed keep-alive of AWS Lambda (10 minutes): fewer cold \
         starts with less memory kept idle (a better cold-start / wasted-memory frontier).",
        "Only the abstracts and public summaries were available to us, so the traces, memory sizes \
         and cost models of the papers are not reproduced: our choices follow.",
    ]);
    r.section("Our setup and what we changed");
    r.bullets([
        format!(
            "DES, one node of {CORES} cores (keep-alive is a per-node policy; enough cores that CPU \
             contention stays small), the `docker` cost profile (cold start {:.0} ms + {:.2} ms per \
             package MB). The profile: {}.",
            profile.lambda_cold_ms, profile.instance_load_ms_per_mb, origin.text
        ),
        format!(
            "Workload: the 30 sample functions at their catalog rates (7.5 calls/s in all, skewed \
             from 1.64 to 0.0012 calls/s), Poisson (`utils generate`, seed {}): {} s ({} calls) for \
             FaasCache, {} s ({} calls) for Serverless in the Wild, whose histogram needs hours of \
             idle times. Every function's instance is 256 MB, so Greedy-Dual's size term does not \
             act here; its cost term is the measured instance start of each function.",
            ctx.seed,
            faascache_s,
            w1.arrivals.len(),
            wild_s,
            w2.arrivals.len()
        ),
        "FaasCache's fixed (TTL) baseline runs as `lru`: a 10-minute keep-alive that, when a new \
         instance does not fit, evicts the least recently used idle instances (a TTL cache must free \
         memory somehow; this is our reading of the paper's baseline). `fixed` alone ignores the \
         memory size (over-commits) and is shown as the lower bound of cold starts."
            .to_string(),
        "Cold-start overhead: the time calls spent outside the function (duration minus \
         InternalExecutionTime), summed; warm calls add under a millisecond each, so this is the \
         cold starts' cost."
            .to_string(),
        "Wasted memory: the time-averaged number of idle instances x 256 MB x the simulated time \
         (the ATC paper's \"wasted memory time\"), with unlimited node memory."
            .to_string(),
    ]);
    r.section("Published vs ours");
    r.table(&summary);
    r.paragraph("FaasCache part, per node memory size (cold starts / cold-start overhead):");
    r.table(&t1);
    r.figure(
        "faascache-overhead.png",
        "Cold-start overhead against node memory, per policy (FaasCache's figures show Greedy-Dual below the TTL and LRU curves at every memory size)",
    );
    r.figure(
        "faascache-cold-starts.png",
        "Cold starts against node memory, per policy",
    );
    r.paragraph("Serverless in the Wild part:");
    r.table(&t2);
    r.figure(
        "wild-pareto.png",
        "Cold starts against wasted memory: fixed keep-alives from 1 to 60 minutes (a line) and the hybrid histogram (a point); the paper's hybrid lies below and left of the fixed frontier",
    );
    r.figure("wild-bars.png", "Hybrid histogram against fixed 10 minutes");
    r.section("Where ours differ, and why we think so");
    let gd_worse: Vec<String> = ratios
        .iter()
        .filter(|(_, r)| *r < 0.99)
        .map(|(gb, r)| format!("{gb} GB ({r:.2}x)"))
        .collect();
    r.paragraph(&format!(
        "FaasCache: our best ratio is {:.2}x ({} GB), against the paper's more than 3x.{}{} The gains \
         of Greedy-Dual come from functions that differ in memory size and cold-start cost; here \
         every instance is 256 MB and a cold start differs between functions only by the package \
         load ({}; the image build, {}, is paid once per function whatever the policy), so Greedy-Dual's priority reduces to frequency x a nearly constant cost, plus its \
         clock. Frequency here counts calls since the function last had no instance, and the long \
         functions of the catalog (I and D, 30-130 s, rarely called) keep instances busy for long, \
         so a frequency-first order can keep many idle instances of frequent functions while a \
         rarely called one is evicted and cold again, where recency alone does better. The paper's \
         workloads (FunctionBench functions, Azure-trace samples) vary size and cost by orders of \
         magnitude, which is what Greedy-Dual is built to exploit. We did not tune the workload \
         toward that result.",
        best.1,
        best.0,
        if variant_best.is_empty() {
            " The profile records no spread, so the part did not run on variants of it.".to_string()
        } else if let Some(e) =
            Estimate::of(&variant_best.iter().map(|b| b.1).collect::<Vec<_>>())
        {
            let (low, high) = (e.min, e.max);
            format!(
                " On {} variants of the profile, each calibrated figure moved within its recorded \
                 spread (moved: {}; the same calls, Greedy-Dual and LRU again), the best ratio \
                 ranged {low:.2}-{high:.2}x: {}.",
                variant_best.len(),
                varied.join(", "),
                if high < 3.0 {
                    "the gap to the paper's 3x is not the profile's uncertainty"
                } else {
                    "**within the profile's uncertainty the paper's 3x is reached**"
                }
            )
        } else {
            format!(
                " On {} variants of the profile, no memory size gave both policies a cold-start \
                 overhead, so the ratio is not defined there.",
                variant_best.len()
            )
        },
        if gd_worse.is_empty() {
            String::new()
        } else {
            format!(
                " Greedy-Dual even had more cold-start overhead than the LRU baseline at {} \
                 (LRU / GD overhead below 1).",
                gd_worse.join(", ")
            )
        },
        sim::cold_start_range(&profile),
        sim::image_build_range(&profile),
    ));
    r.paragraph(&format!(
        "Serverless in the Wild: the hybrid policy changed cold starts by {} and wasted memory by \
         {} against the fixed 10 minutes; {}. Our arrivals are Poisson, whose idle times are exponential: a frequent \
         function's idle-time tail is seconds, so the histogram keeps it far less than 10 minutes \
         (saving memory, paying a cold start whenever a gap exceeds its p99), and a rare \
         function's idle times spread beyond the 4-hour window or pass the histogram's \
         representativeness check only late. Azure's trace has many periodic (timer) functions, \
         whose sharp idle-time histograms are where pre-warming wins; our workload has none, so \
         the cold-start side of the paper's result is the part least expected to show here. A \
         trace import (`utils import azure2019`) of the real dataset would test it; the dataset \
         cannot be downloaded on this machine.",
        super::fmt_pct(cold_change),
        super::fmt_pct(waste_change),
        frontier_text(&part2, &hist)
    ));
    r.write(&ctx.out)?;
    ctx.write_run_json(
        json!({
            "cores": CORES,
            "instance_mb": INSTANCE_MB,
            "profile": profile,
            "profile_origin": origin,
            "faascache": {"generator": gen1, "duration_s": faascache_s, "memories_gb": memories_gb,
                          "keep_alive_s": 600, "policies": ["greedy-dual", "lru", "fixed"], "des_config": config1},
            "wild": {"generator": gen2, "duration_s": wild_s, "node_memory_mb": unlimited_mb,
                     "fixed_minutes": fixed_minutes, "histogram": format!("{:?}", histogram), "des_config": config2},
        }),
        json!({
            "faascache": part1,
            "faascache_ratio_lru_over_gd": ratios,
            "faascache_profile_variants": {
                "varied": varied,
                "best_ratio_lru_over_gd": variant_best,
            },
            "wild": part2,
        }),
    )?;
    Ok(())
}
