//! `weir delete pipeline|stream NAME`.

use anyhow::Result;
use reqwest::Method;

use super::client::{Client, block_on, collection};

/// Arguments of `weir delete`.
#[derive(clap::Args)]
pub struct Args {
    /// `pipeline` or `stream`.
    pub kind: String,
    /// The resource's name.
    pub name: String,
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> Result<u8> {
    let client = Client::from_env()?;
    let coll = collection(&args.kind)?;
    block_on(client.send(
        Method::DELETE,
        &format!("/{coll}/{}", args.name),
        None,
        None,
    ))??;
    println!("{}/{} deleted", coll.trim_end_matches('s'), args.name);
    Ok(0)
}
