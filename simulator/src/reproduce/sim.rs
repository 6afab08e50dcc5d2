//! The DES studies' shared parts: a workload from `utils generate`, a
//! named cost profile, and one simulated run whose log is read back by
//! `utils::logs` (kept in memory: the logs are reproducible from the
//! recorded parameters, and too large to check in).

use std::path::PathBuf;

use anyhow::Context as _;
use des::{CostProfile, DesConfig, Summary, Workload};
use utils::generate::{generate, Arrivals, GeneratorConfig, Popularity};
use utils::logs::RunLog;

/// A cost profile of `simulator/profiles/` (`process` or `docker`), found
/// beside the one `simulator des` reads by default.
pub fn profile(runtime: &str) -> anyhow::Result<CostProfile> {
    let (default_path, _) = crate::des::find_profile()?;
    let path: PathBuf = default_path
        .parent()
        .map(|d| d.join(format!("{runtime}.json")))
        .unwrap_or_else(|| PathBuf::from(format!("{runtime}.json")));
    let mut p =
        CostProfile::load(&path).with_context(|| format!("reading the {runtime} cost profile"))?;
    // Recorded relative to the workspace when it is inside it.
    if let Some(rel) = std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(|p| p.display().to_string()))
    {
        p.file = Some(rel);
    }
    Ok(p)
}

/// Whether `profile` was measured on this kind of machine, for a study's
/// report and run.json; a note on stderr when it was not (or is not
/// known to be).
pub fn profile_origin(study: &str, profile: &CostProfile) -> crate::profile_origin::ProfileOrigin {
    let origin = crate::profile_origin::ProfileOrigin::of(
        profile,
        &crate::experiment::host::HostInfo::read(),
    );
    if origin.worth_a_note() {
        crate::note!("{study}: cost profile: {}", origin.text);
    }
    origin
}

/// The smallest and largest package of the sample functions the studies
/// call (those with a catalog rate: not `noop`), in bytes.
pub fn catalog_package_bytes() -> (u64, u64) {
    let sizes = sample_functions::catalog()
        .functions
        .iter()
        .filter(|f| f.rate_per_s > 0.0)
        .map(|f| f.package_bytes);
    (sizes.clone().min().unwrap_or(0), sizes.max().unwrap_or(0))
}

/// A package size for a report (decimal units, as the profiles' per-MB
/// costs): `14 KB`, `131 MB`.
pub fn size_text(bytes: u64) -> String {
    let mb = bytes as f64 / 1e6;
    if mb < 1.0 {
        format!("{:.0} KB", mb * 1000.0)
    } else {
        format!("{mb:.0} MB")
    }
}

/// The cold start of a sample function on a node holding its image under
/// `profile` (Lambda model: cold start plus package load), smallest to
/// largest package: `160-233 ms`.
pub fn cold_start_range(profile: &CostProfile) -> String {
    let (lo, hi) = catalog_package_bytes();
    let at = |bytes| profile.lambda_cold_ms + profile.instance_load_ms(bytes);
    format!("{:.0}-{:.0} ms", at(lo), at(hi))
}

/// A sample function's image build under `profile`, smallest to largest
/// package: `5.7-6.8 s`.
pub fn image_build_range(profile: &CostProfile) -> String {
    let (lo, hi) = catalog_package_bytes();
    let at = |bytes| profile.image_build_ms(bytes) / 1000.0;
    format!("{:.1}-{:.1} s", at(lo), at(hi))
}

/// The sample functions' catalog rates (skewed: 1.64 calls/s for W1 down
/// to 0.0012 for D8) times `rate_scale`, Poisson arrivals, for
/// `duration_s`.
pub fn catalog_workload(
    seed: u64,
    duration_s: f64,
    rate_scale: f64,
) -> anyhow::Result<(GeneratorConfig, Workload)> {
    let config = GeneratorConfig {
        seed,
        duration_s,
        rate_scale,
        arrivals: Arrivals::Poisson,
        popularity: Popularity::Catalog { functions: None },
    };
    let scenario = generate(&config)?;
    Ok((config, Workload::from_events(&scenario.events)))
}

/// Single-core CPU milliseconds the catalog's functions ask for per second
/// at rate scale 1 (each function's rate times its CPU work).
pub fn catalog_cpu_ms_per_s() -> f64 {
    sample_functions::catalog()
        .functions
        .iter()
        .map(|f| f.rate_per_s * f.cpu_ms() as f64)
        .sum()
}

/// One simulated run: its summary and its log, read as `utils analyze`
/// reads it.
pub fn simulate(
    workload: &Workload,
    config: &DesConfig,
    label: &str,
) -> anyhow::Result<(Summary, RunLog)> {
    des::check(workload, config)?;
    let mut buf: Vec<u8> = Vec::new();
    let summary = crate::des::simulate(workload, config, Some(&mut buf), true)?;
    log_of(summary, buf, label)
}

/// One simulated closed loop ([`des::run_closed_loop`]): its summary and
/// its log, read as `utils analyze` reads it.
pub fn simulate_closed_loop(
    closed: &des::ClosedLoop,
    config: &DesConfig,
    label: &str,
) -> anyhow::Result<(Summary, RunLog)> {
    des::check_closed_loop(closed, config)?;
    let mut buf: Vec<u8> = Vec::new();
    let input = crate::des::Input::ClosedLoop(closed.clone());
    let summary = crate::des::simulate_input(&input, config, Some(&mut buf), true)?;
    log_of(summary, buf, label)
}

/// The summary with its log (the simulator's output), parsed.
fn log_of(summary: Summary, buf: Vec<u8>, label: &str) -> anyhow::Result<(Summary, RunLog)> {
    let text = String::from_utf8(buf).context("the simulator's log is not UTF-8")?;
    Ok((summary, RunLog::parse(&text, label)))
}
