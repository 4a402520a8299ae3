//! `weir status NAME`: a pipeline's health across the fleet — deployment, live and dead
//! workers, counters, rates, lag and last error — as the control plane aggregates heartbeats.

use anyhow::Result;
use reqwest::Method;
use serde_json::Value;

use super::client::{Client, block_on};

/// Arguments of `weir status`.
#[derive(clap::Args)]
pub struct Args {
    /// Pipeline name.
    pub name: String,
    /// Print the API's JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
}

fn num(v: &Value) -> String {
    if v.is_null() {
        "-".into()
    } else {
        v.to_string()
    }
}

fn rate(v: &Value) -> String {
    v.as_f64()
        .map(|r| format!("{r:.1}/s"))
        .unwrap_or_else(|| "-".into())
}

/// Runs the command; returns 0 when healthy or paused, 1 otherwise.
pub fn run(args: Args) -> Result<u8> {
    let client = Client::from_env()?;
    let s = block_on(client.send(
        Method::GET,
        &format!("/pipelines/{}/status", args.name),
        None,
        None,
    ))??
    .json()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", render(&s));
    }
    Ok(match s["health"].as_str() {
        Some("healthy" | "paused") => 0,
        _ => 1,
    })
}

/// The status as lines for a terminal.
fn render(s: &Value) -> String {
    let mut out = format!(
        "pipeline/{}: {}\n",
        s["pipeline"].as_str().unwrap_or("?"),
        s["health"].as_str().unwrap_or("?")
    );
    for r in s["reasons"].as_array().into_iter().flatten() {
        out.push_str(&format!("  - {}\n", r.as_str().unwrap_or("")));
    }
    if let Some(d) = s["deployment"].as_object() {
        out.push_str(&format!(
            "deployment: version {} parallelism {} {} (by {} at {})\n",
            d["version"],
            d["parallelism"],
            d["state"].as_str().unwrap_or("?"),
            d["updated_by"].as_str().unwrap_or("?"),
            d["updated_at"].as_str().unwrap_or("?")
        ));
    }
    let t = &s["totals"];
    out.push_str(&format!(
        "workers: {} running, {} dead\nin {} out {} filtered {} dlq {} retried {}\n",
        s["running_workers"],
        s["dead_workers"],
        t["messages_in"],
        t["messages_out"],
        t["filtered"],
        t["dead_lettered"],
        t["retried"]
    ));
    out.push_str(&format!(
        "rate: in {} out {}   lag {}   ack pending {}\n",
        rate(&s["rates"]["messages_in"]),
        rate(&s["rates"]["messages_out"]),
        num(&s["lag"]),
        num(&s["ack_pending"])
    ));
    if let Some(e) = s["last_error"].as_object() {
        out.push_str(&format!(
            "last error ({} at {}): {}\n",
            e["worker_id"].as_str().unwrap_or("?"),
            e["at"].as_str().unwrap_or("?"),
            e["message"].as_str().unwrap_or("")
        ));
    }
    let workers = s["workers"].as_array().cloned().unwrap_or_default();
    if !workers.is_empty() {
        out.push_str(&format!(
            "\n{:<24} {:<6} {:<9} {:>7} {:>12} {:>10}  {}\n",
            "WORKER", "ALIVE", "STATE", "VERSION", "IN", "RATE IN", "LAST SEEN"
        ));
        for w in workers {
            out.push_str(&format!(
                "{:<24} {:<6} {:<9} {:>7} {:>12} {:>10}  {}\n",
                w["worker_id"].as_str().unwrap_or("?"),
                w["alive"].to_string(),
                w["state"].as_str().unwrap_or("?"),
                w["version"].to_string(),
                w["counters"]["messages_in"].to_string(),
                rate(&w["rates"]["messages_in"]),
                w["last_seen"].as_str().unwrap_or("?")
            ));
        }
    }
    out
}
