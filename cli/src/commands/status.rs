//! `weir status NAME`: a pipeline's health across the fleet — deployment, live and dead
//! workers, counters, rates, lag and last error — as the control plane aggregates heartbeats.
//! `weir status` without a name: one line per pipeline, then the workers.

use anyhow::Result;
use reqwest::Method;
use serde_json::Value;

use super::client::{Client, block_on};

/// Arguments of `weir status`.
#[derive(clap::Args)]
pub struct Args {
    /// Pipeline name; without one, an overview of every pipeline and worker.
    pub name: Option<String>,
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
    let Some(name) = &args.name else {
        return block_on(overview(&client, args.json))?;
    };
    let s = block_on(client.send(
        Method::GET,
        &format!("/pipelines/{name}/status"),
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

/// Every pipeline's health in one line each, then the workers; 0 when all deployed pipelines
/// are healthy or paused.
async fn overview(client: &Client, json: bool) -> Result<u8> {
    let mut statuses = Vec::new();
    for name in client.pipeline_names().await? {
        statuses.push(
            client
                .get_json(&format!("/pipelines/{name}/status"))
                .await?,
        );
    }
    let workers = client.get_json("/workers").await?;
    if json {
        let all = serde_json::json!({ "pipelines": statuses, "workers": workers });
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        print!("{}", render_overview(&statuses, &workers));
    }
    let bad = statuses.iter().any(|s| {
        !matches!(
            s["health"].as_str(),
            Some("healthy" | "paused" | "not_deployed")
        )
    });
    Ok(u8::from(bad))
}

fn render_overview(statuses: &[Value], workers: &Value) -> String {
    let mut out = format!(
        "{:<28} {:<13} {:>8} {:>10} {:>10} {:>8} {:>8}\n",
        "PIPELINE", "HEALTH", "VERSION", "IN", "OUT", "DLQ", "LAG"
    );
    for s in statuses {
        let t = &s["totals"];
        out.push_str(&format!(
            "{:<28} {:<13} {:>8} {:>10} {:>10} {:>8} {:>8}\n",
            s["pipeline"].as_str().unwrap_or("?"),
            s["health"].as_str().unwrap_or("?"),
            num(&s["deployment"]["version"]),
            t["messages_in"],
            t["messages_out"],
            t["dead_lettered"],
            num(&s["lag"])
        ));
        if let Some(reason) = s["reasons"].as_array().and_then(|r| r.first()) {
            out.push_str(&format!("  - {}\n", reason.as_str().unwrap_or("")));
        }
    }
    let workers = workers.as_array().cloned().unwrap_or_default();
    let alive = workers.iter().filter(|w| w["alive"] == true).count();
    out.push_str(&format!(
        "\nworkers: {alive} alive, {} not sending heartbeats\n",
        workers.len() - alive
    ));
    for w in &workers {
        out.push_str(&format!(
            "  {} ({}) alive {} last seen {}: {} pipeline(s)\n",
            w["worker_id"].as_str().unwrap_or("?"),
            w["host"].as_str().unwrap_or("?"),
            w["alive"],
            w["last_seen"].as_str().unwrap_or("?"),
            w["pipelines"].as_array().map_or(0, Vec::len)
        ));
    }
    out
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
        "workers: {} running, {} dead\nin {} (deliveries {}) out {} filtered {} dlq {} retried {}\n",
        s["running_workers"],
        s["dead_workers"],
        t["messages_in"],
        t["deliveries"],
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
    if let Some(e) = s["last_dead_letter"].as_object() {
        out.push_str(&format!(
            "last dead letter ({} at {}): {}\n",
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
