//! `simulator des` (being built).

/// Arguments of `simulator des`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `simulator des`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("simulator des is not built yet")
}
