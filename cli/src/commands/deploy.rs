//! `weir deploy NAME [--version N] [--parallelism N]`, `weir pause NAME`, `weir resume NAME`,
//! `weir rollback NAME --version N` and `weir undeploy NAME`: a pipeline's deployment through
//! the API, which writes the record that workers watch.

use anyhow::Result;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, block_on};

/// Arguments of `weir deploy`.
#[derive(clap::Args)]
pub struct DeployArgs {
    /// Pipeline name.
    pub name: String,
    /// Version to deploy (default: the current one).
    #[arg(long)]
    pub version: Option<i64>,
    /// Batch loops per worker (default: the version's `spec.execution.parallelism`).
    #[arg(long)]
    pub parallelism: Option<i64>,
}

/// Arguments of `weir pause`, `weir resume` and `weir undeploy`.
#[derive(clap::Args)]
pub struct NameArgs {
    /// Pipeline name.
    pub name: String,
}

/// Arguments of `weir rollback`.
#[derive(clap::Args)]
pub struct RollbackArgs {
    /// Pipeline name.
    pub name: String,
    /// The version to run instead.
    #[arg(long)]
    pub version: i64,
}

fn describe(d: &Value) -> String {
    format!(
        "pipeline/{} version {} parallelism {}: {}",
        d["pipeline"].as_str().unwrap_or("?"),
        d["version"],
        d["parallelism"],
        d["state"].as_str().unwrap_or("?")
    )
}

fn post(name: &str, action: &str, body: Option<Value>) -> Result<Value> {
    let client = Client::from_env()?;
    let body = body.map(|b| ("application/json", b.to_string()));
    let reply = block_on(client.send(
        Method::POST,
        &format!("/pipelines/{name}/{action}"),
        body,
        None,
    ))??;
    reply.json()
}

/// `weir deploy`.
pub fn deploy(args: DeployArgs) -> Result<u8> {
    let mut body = serde_json::Map::new();
    if let Some(v) = args.version {
        body.insert("version".into(), json!(v));
    }
    if let Some(p) = args.parallelism {
        body.insert("parallelism".into(), json!(p));
    }
    let d = post(&args.name, "deploy", Some(Value::Object(body)))?;
    println!("deployed {}", describe(&d));
    Ok(0)
}

/// `weir pause`.
pub fn pause(args: NameArgs) -> Result<u8> {
    let d = post(&args.name, "pause", None)?;
    println!("paused {}", describe(&d));
    Ok(0)
}

/// `weir resume`.
pub fn resume(args: NameArgs) -> Result<u8> {
    let d = post(&args.name, "resume", None)?;
    println!("resumed {}", describe(&d));
    Ok(0)
}

/// `weir rollback`.
pub fn rollback(args: RollbackArgs) -> Result<u8> {
    let d = post(
        &args.name,
        "rollback",
        Some(json!({"version": args.version})),
    )?;
    println!("rolled back {}", describe(&d));
    Ok(0)
}

/// `weir undeploy`.
pub fn undeploy(args: NameArgs) -> Result<u8> {
    let client = Client::from_env()?;
    block_on(client.send(
        Method::DELETE,
        &format!("/pipelines/{}/deployment", args.name),
        None,
        None,
    ))??;
    println!("pipeline/{} undeployed", args.name);
    Ok(0)
}
