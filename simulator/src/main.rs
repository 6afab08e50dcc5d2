//! `simulator`: replay scenarios live, simulate them, run experiments.

use clap::{Parser, Subcommand};
use simulator::{calibrate, des, experiment, load, replay, reproduce};

#[derive(Debug, Parser)]
#[command(
    name = "simulator",
    version,
    about = "Replay, simulate and compare FaaS load-balancing runs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replay a scenario in real time against a live balancer.
    Replay(replay::Args),
    /// Closed-loop load: N clients, each calling again when its last call returns.
    Load(load::Args),
    /// Discrete-event simulation over the same scheduler and worker-policy code.
    Des(des::Args),
    /// Measure a live worker's cost profile for `des`.
    Calibrate(calibrate::Args),
    /// Run a whole comparison: workers, balancer, every algorithm, report.
    Experiment(experiment::Args),
    /// Reproduce a published study: hotfunctions, chrlu, hiku, keepalive.
    Reproduce(reproduce::Args),
    /// Internal: stops an experiment's child when the experiment dies.
    #[command(hide = true)]
    Guard(experiment::children::GuardArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(a) => replay::run(a),
        Command::Load(a) => load::run(a),
        Command::Des(a) => des::run(a),
        Command::Calibrate(a) => calibrate::run(a),
        Command::Experiment(a) => experiment::run(a),
        Command::Reproduce(a) => reproduce::run(a),
        Command::Guard(a) => experiment::children::run_guard(a),
    };
    if let Err(e) = result {
        simulator::note!("simulator: error: {}", simulator::error_text(&e));
        std::process::exit(1);
    }
}
