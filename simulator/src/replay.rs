//! `simulator replay` (being built).

/// Arguments of `simulator replay`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `simulator replay`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("simulator replay is not built yet")
}
