//! `simulator calibrate` (being built).

/// Arguments of `simulator calibrate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `simulator calibrate`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("simulator calibrate is not built yet")
}
