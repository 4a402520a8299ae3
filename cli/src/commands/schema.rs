//! `weir schema`.

/// Arguments of `weir schema`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs the command; returns the exit code.
pub fn run(_args: Args) -> anyhow::Result<u8> {
    anyhow::bail!("weir schema is being built")
}
