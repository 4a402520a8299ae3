//! `weir delete pipeline|stream NAME`.

use anyhow::{Result, bail};
use reqwest::Method;

use super::client::{Client, block_on, collection};

/// Arguments of `weir delete`.
#[derive(clap::Args)]
pub struct Args {
    /// `pipeline` or `stream`.
    pub kind: String,
    /// The resource's name.
    pub name: String,
    /// A stream: also delete the NATS stream when it holds messages (they are lost).
    #[arg(long)]
    pub force: bool,
    /// A pipeline: keep its durable consumer, so that a pipeline re-created under this name
    /// resumes from the same position (by default it is removed).
    #[arg(long)]
    pub keep_position: bool,
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> Result<u8> {
    let client = Client::from_env()?;
    let coll = collection(&args.kind)?;
    let query = if coll == "streams" {
        if args.keep_position {
            bail!("--keep-position is for pipelines");
        }
        if args.force { "?force=true" } else { "" }
    } else {
        if args.force {
            bail!("--force is for streams");
        }
        if args.keep_position {
            "?keep_position=true"
        } else {
            ""
        }
    };
    block_on(client.send(
        Method::DELETE,
        &format!("/{coll}/{}{query}", args.name),
        None,
        None,
    ))??;
    let what = match coll {
        "pipelines" if args.keep_position => {
            " (its consumer kept; its dead letters stay reachable with `weir dlq ls`)"
        }
        "pipelines" => " (and its consumer; its dead letters stay reachable with `weir dlq ls`)",
        _ => " (and its NATS stream)",
    };
    println!("{}/{} deleted{what}", coll.trim_end_matches('s'), args.name);
    Ok(0)
}
