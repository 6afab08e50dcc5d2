//! `simulator reproduce <study>`: one command per published study.
//!
//! Each study runs the testbed's existing parts as library calls (the
//! experiment for `hotfunctions`, the discrete-event simulator for `chrlu`
//! and `keepalive`, closed-loop load against live process workers and in
//! the discrete-event simulator for `hiku`), then writes `<out>/report.md` (default `results/<study>/`): the
//! study's setup as published, what we changed to fit this 2-core machine,
//! a "published vs ours" table, the figures (PNG, drawn by `utils::plot`)
//! beside the paper's description, and where ours differs, by how much and
//! why we think so. `run.json` records the seed, the version and git
//! revision, the command and every parameter and result.
//!
//! - [`hotfunctions`]: the original's `events.csv`, 8 workers, its six
//!   algorithms, live (HotFunctions, github.com/Prev/HotFunctions).
//! - [`chrlu`]: CH-RLU against CH-BL, least-loaded and OpenWhisk's balancer
//!   on a skewed workload, in the DES (Fuerst & Sharma, HPDC 2022).
//! - [`hiku`]: pull-based scheduling against CH-BL, least connections and
//!   random under closed-loop load, live and in the DES at the live run's
//!   and at the paper's scale (Akbari & Hauswirth, CCGrid 2025).
//! - [`keepalive`]: Greedy-Dual against a fixed keep-alive across node
//!   memory sizes (FaasCache, ASPLOS 2021) and the hybrid histogram against
//!   a fixed 10-minute keep-alive (Shahrad et al., USENIX ATC 2020), in the
//!   DES.
//!
//! `--short` runs each in one to two minutes (CI runs them all); the full
//! version is the command without options. Numbers are never tuned to
//! match a paper: every setting is written down with its reason, and the
//! report says where ours differ.
//!
//! An existing `report.md` in the output folder is never replaced without
//! `--overwrite`, and a study holds its folder's lock
//! (`crate::claim_output_dir`) until it ends: a second one into the same
//! folder is refused.

pub mod chrlu;
pub mod hiku;
pub mod hotfunctions;
pub mod keepalive;
mod report;
mod sim;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;

use crate::command_line;
use crate::replay::StopHandle;
pub use report::{fmt_pct, relative_change, Report, Table};

/// The studies `simulator reproduce` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Study {
    /// HotFunctions' six algorithms on its events.csv, 8 live workers.
    Hotfunctions,
    /// CH-RLU vs CH-BL, least-loaded, OpenWhisk (Fuerst & Sharma, HPDC 2022), DES.
    Chrlu,
    /// Hiku pull-based vs CH-BL, least connections, random (CCGrid 2025), closed loop, live and DES.
    Hiku,
    /// Greedy-Dual vs fixed keep-alive (FaasCache) and histogram vs fixed 10 min (ATC 2020), DES.
    Keepalive,
}

impl Study {
    pub fn name(self) -> &'static str {
        match self {
            Self::Hotfunctions => "hotfunctions",
            Self::Chrlu => "chrlu",
            Self::Hiku => "hiku",
            Self::Keepalive => "keepalive",
        }
    }
}

/// Arguments of `simulator reproduce`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The study to reproduce.
    #[arg(value_enum)]
    pub study: Study,
    /// The short version (one to two minutes; what CI runs).
    #[arg(long)]
    pub short: bool,
    /// Output folder (default: `results/<study>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seed of every random choice (workloads, schedulers, clients).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Replace an earlier report in the output folder.
    #[arg(long)]
    pub overwrite: bool,
    /// Where the testbed's binaries are (live studies) [default: this
    /// executable's folder].
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
}

/// What every study gets to run.
#[derive(Debug, Clone)]
pub struct Context {
    pub study: Study,
    pub short: bool,
    pub seed: u64,
    pub out: PathBuf,
    pub overwrite: bool,
    pub bin_dir: Option<PathBuf>,
    /// The command line, as recorded.
    pub command: String,
    pub started_utc: String,
    pub git: Option<protocol::sidecar::GitRevision>,
    /// The machine (CPU model, cores, memory), as the experiment records it.
    pub machine: String,
    /// The 1-minute load average when the study started.
    pub load_at_start: Option<f64>,
}

impl Context {
    /// `short` or `full`, as the reports say it.
    pub fn size(&self) -> &'static str {
        if self.short {
            "short"
        } else {
            "full"
        }
    }

    /// The provenance block of `run.json`.
    pub fn provenance(&self) -> serde_json::Value {
        serde_json::json!({
            "study": self.study,
            "size": self.size(),
            "seed": self.seed,
            "command": self.command,
            "started_utc": self.started_utc,
            "simulator_version": env!("CARGO_PKG_VERSION"),
            "git": self.git,
            "out": self.out,
            "machine": self.machine,
            "load_average_at_start": self.load_at_start,
            "load_average_at_end": crate::experiment::host::load_average(),
        })
    }

    /// The provenance paragraph of every report.
    pub fn provenance_text(&self) -> String {
        format!(
            "Command: `{}` ({} version, seed {}), simulator {}, git {}, started {}. \
             Every parameter and result is in `run.json`. Machine: {}; 1-minute load \
             average {} at the start, {} at the end (at the start, a load above the \
             cores means other work competed for them; the end's figure also counts \
             the study's own live clients, balancer and workers of its last minute).",
            self.command,
            self.size(),
            self.seed,
            env!("CARGO_PKG_VERSION"),
            match &self.git {
                Some(g) => format!(
                    "{}{}",
                    &g.commit[..g.commit.len().min(12)],
                    if g.dirty { " (dirty)" } else { "" }
                ),
                None => "unknown".into(),
            },
            self.started_utc,
            self.machine,
            fmt_load(self.load_at_start),
            fmt_load(crate::experiment::host::load_average()),
        )
    }

    /// Writes `run.json`: the provenance, `parameters` and `results`.
    pub fn write_run_json(
        &self,
        parameters: serde_json::Value,
        results: serde_json::Value,
    ) -> anyhow::Result<()> {
        let record = serde_json::json!({
            "provenance": self.provenance(),
            "parameters": parameters,
            "results": results,
        });
        let path = self.out.join("run.json");
        std::fs::write(&path, serde_json::to_string_pretty(&record)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

fn fmt_load(load: Option<f64>) -> String {
    load.map_or_else(|| "unknown".into(), |l| format!("{l:.2}"))
}

/// Creates the output folder and claims it (refused while another run
/// writes into it, see [`crate::claim_output_dir`]); refuses it if it
/// holds an earlier report, unless `overwrite`. The returned lock is to
/// be held until the study ends.
fn prepare_out(out: &Path, overwrite: bool) -> anyhow::Result<std::fs::File> {
    let lock = crate::claim_output_dir(out)
        .with_context(|| format!("cannot create {}", out.display()))?
        .with_context(|| {
            format!(
                "{} is being written by another run (it holds the folder's lock); wait for it to end, or --out another folder",
                out.display()
            )
        })?;
    let report = out.join("report.md");
    if report.exists() && !overwrite {
        anyhow::bail!(
            "{} exists: pass --overwrite to replace it, or --out another folder",
            report.display()
        );
    }
    Ok(lock)
}

/// Runs `simulator reproduce`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let git = crate::source_revision();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("results").join(args.study.name()));
    // Held until the study ends.
    let _out_lock = prepare_out(&out, args.overwrite)?;
    let ctx = Context {
        study: args.study,
        short: args.short,
        seed: args.seed,
        out,
        overwrite: args.overwrite,
        bin_dir: args.bin_dir.clone(),
        command: command_line(),
        started_utc: crate::des::utc_now(),
        git,
        machine: crate::experiment::host::HostInfo::read().describe(),
        load_at_start: crate::experiment::host::load_average(),
    };
    crate::note!(
        "reproduce {} ({}), seed {}, into {}",
        ctx.study.name(),
        ctx.size(),
        ctx.seed,
        ctx.out.display()
    );
    #[allow(clippy::disallowed_methods)] // the wall time of the study
    let started = std::time::Instant::now();
    match ctx.study {
        Study::Chrlu => chrlu::run(&ctx)?,
        Study::Keepalive => keepalive::run(&ctx)?,
        Study::Hotfunctions | Study::Hiku => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(async {
                let stop = StopHandle::new();
                stop.stop_on_signals()
                    .context("cannot install the signal handlers")?;
                match ctx.study {
                    Study::Hotfunctions => hotfunctions::run(&ctx, &stop).await,
                    _ => hiku::run(&ctx, &stop).await,
                }
            })?;
        }
    }
    crate::say!(
        "reproduce {}: report {} ({:.0} s)",
        ctx.study.name(),
        ctx.out.join("report.md").display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
