//! `weir validate`.

/// Arguments of `weir validate`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs the command; returns the exit code.
pub fn run(_args: Args) -> anyhow::Result<u8> {
    anyhow::bail!("weir validate is being built")
}
