//! `weir deploy NAME [--version N] [--parallelism N] [--reset-state]`, `weir pause NAME`, `weir resume NAME`,
//! `weir rollback NAME --version N` and `weir undeploy NAME`: a pipeline's deployment through
//! the API, which writes the record that workers watch.

use anyhow::Result;
use reqwest::Method;
use weir_control_plane::api::{DeployRequest, DeploymentInfo, PipelineStatus, RollbackRequest};

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
    /// Deploy even when the version's `window`/`dedup` nodes or partitioning changed, so that
    /// it cannot take over the deployed version's state: its state starts empty.
    #[arg(long)]
    pub reset_state: bool,
    /// How long to wait for the workers to report the deployed version running (`0s`: do not
    /// wait; the answer is then `pending`).
    #[arg(long, default_value = "15s", value_parser = parse_wait)]
    pub wait: std::time::Duration,
}

fn parse_wait(text: &str) -> Result<std::time::Duration, String> {
    weir_pipelines::units::parse_duration(text)
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
    /// Roll back even when that version cannot take over the deployed version's
    /// `window`/`dedup` state: its state starts empty.
    #[arg(long)]
    pub reset_state: bool,
}

fn describe(d: &DeploymentInfo) -> String {
    format!(
        "pipeline/{} version {} parallelism {}: {}",
        d.pipeline, d.version, d.parallelism, d.state
    )
}

/// `POST /pipelines/{name}/{action}` with `body` (one of the API's request types; none for
/// pause and resume).
fn post(name: &str, action: &str, body: Option<&impl serde::Serialize>) -> Result<DeploymentInfo> {
    let client = Client::from_env()?;
    let path = format!("/pipelines/{name}/{action}");
    let body = body
        .map(serde_json::to_string)
        .transpose()?
        .map(|text| ("application/json", text));
    block_on(client.send(Method::POST, &path, body, None))??.parse()
}

/// `weir deploy`.
pub fn deploy(args: DeployArgs) -> Result<u8> {
    let request = DeployRequest {
        version: args.version,
        parallelism: args.parallelism,
        reset_state: args.reset_state,
    };
    let d = post(&args.name, "deploy", Some(&request))?;
    let target = format!(
        "pipeline/{} version {} parallelism {}",
        d.pipeline, d.version, d.parallelism
    );
    match wait_for_workers(&args.name, d.version, args.wait)? {
        Outcome::Running(n) => {
            println!(
                "deployed {target}: running on {n} worker{}",
                if n == 1 { "" } else { "s" }
            );
            Ok(0)
        }
        Outcome::Failed(why) => {
            println!("deployed {target}, but it failed to start: {why}");
            println!("see `weir status {}`", args.name);
            Ok(1)
        }
        Outcome::Pending(why) => {
            println!(
                "deployed {target}: pending ({why}); see `weir status {}`",
                args.name
            );
            Ok(0)
        }
    }
}

/// What the workers say of a deployed version.
enum Outcome {
    /// This many live workers run it.
    Running(usize),
    /// A worker could not start it: its error.
    Failed(String),
    /// Nothing decisive yet: why.
    Pending(String),
}

/// Polls the pipeline's status until a live worker runs `version` or fails it, or `wait` ends.
fn wait_for_workers(name: &str, version: i64, wait: std::time::Duration) -> Result<Outcome> {
    let client = Client::from_env()?;
    block_on(async move {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let status: PipelineStatus = client.get(&format!("/pipelines/{name}/status")).await?;
            let mine = || {
                status
                    .workers
                    .iter()
                    .filter(|w| w.alive && w.version == version)
            };
            let running = mine().filter(|w| w.state == "running").count();
            if running > 0 {
                return Ok(Outcome::Running(running));
            }
            if let Some(failed) = mine().find(|w| w.state == "failed") {
                let why = failed
                    .last_error
                    .as_ref()
                    .map_or("no error reported", |e| e.message.as_str());
                return Ok(Outcome::Failed(format!(
                    "worker {}: {why}",
                    failed.worker_id
                )));
            }
            if std::time::Instant::now() >= deadline {
                let why = if status.workers.iter().any(|w| w.alive) {
                    "the workers have not reported it running yet"
                } else {
                    "no live worker has picked it up yet; is a worker (`weir worker`) connected to the same NATS?"
                };
                return Ok(Outcome::Pending(why.into()));
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    })?
}

/// `weir pause`.
pub fn pause(args: NameArgs) -> Result<u8> {
    let d = post(&args.name, "pause", None::<&()>)?;
    println!("paused {}", describe(&d));
    Ok(0)
}

/// `weir resume`.
pub fn resume(args: NameArgs) -> Result<u8> {
    let d = post(&args.name, "resume", None::<&()>)?;
    println!("resumed {}", describe(&d));
    Ok(0)
}

/// `weir rollback`.
pub fn rollback(args: RollbackArgs) -> Result<u8> {
    let request = RollbackRequest {
        version: args.version,
        reset_state: args.reset_state,
    };
    let d = post(&args.name, "rollback", Some(&request))?;
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
