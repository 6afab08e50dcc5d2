//! `simulator experiment` (being built).

/// Arguments of `simulator experiment`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `simulator experiment`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("simulator experiment is not built yet")
}
