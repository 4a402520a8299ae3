//! `weir diff -f FILE…`: what `weir apply` would change, as unified diffs of the stored YAML.
//! Exits 1 when something would change (like `diff`), 0 when nothing would.

use std::path::PathBuf;

use anyhow::Result;

use super::apply::{load, send_all};
use super::client::{Client, block_on};

/// Arguments of `weir diff`.
#[derive(clap::Args)]
pub struct Args {
    /// Resource files (YAML or JSON).
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> Result<u8> {
    let resources = load(&args.files)?;
    let client = Client::from_env()?;
    let outcomes = block_on(send_all(&client, &resources, true))??;
    let mut changed = false;
    for o in outcomes {
        if o.result == "unchanged" {
            continue;
        }
        changed = true;
        println!("# {}/{} would be {}", o.kind, o.name, o.result);
        print!("{}", o.diff);
    }
    Ok(u8::from(changed))
}
