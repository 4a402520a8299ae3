//! `weir status NAME`: a pipeline's health across the fleet — deployment, live and dead
//! workers, counters, rates, lag and last error — as the control plane aggregates heartbeats.
//! `weir status` without a name: one line per pipeline, then the workers. A pipeline with
//! `quality` nodes also gets its rules' pass rates (overall, last minute, last hour).

use anyhow::Result;
use weir_control_plane::api::{PipelineStatus, QualityStatus, WorkerInfo};

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

/// An optional figure, `-` when absent.
fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{r:.1}/s"))
}

/// Whether a pipeline of this health leaves `weir status` successful.
fn fine(health: &str, not_deployed_ok: bool) -> bool {
    matches!(health, "healthy" | "paused") || (not_deployed_ok && health == "not_deployed")
}

/// Runs the command; returns 0 when healthy or paused, 1 otherwise.
pub fn run(args: Args) -> Result<u8> {
    let client = Client::from_env()?;
    let Some(name) = &args.name else {
        return block_on(overview(&client, args.json))?;
    };
    let s: PipelineStatus = block_on(client.get(&format!("/pipelines/{name}/status")))??;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", render(&s));
        let has_quality = s
            .nodes
            .values()
            .any(|n| n.counters.keys().any(|k| k.ends_with(".pass")));
        if has_quality {
            let q: QualityStatus = block_on(client.get(&format!("/pipelines/{name}/quality")))??;
            print!("{}", render_quality(&q));
        }
    }
    Ok(u8::from(!fine(&s.health, false)))
}

/// Every pipeline's health in one line each, then the workers; 0 when all deployed pipelines
/// are healthy or paused.
async fn overview(client: &Client, json: bool) -> Result<u8> {
    let mut statuses: Vec<PipelineStatus> = Vec::new();
    for name in client.pipeline_names().await? {
        statuses.push(client.get(&format!("/pipelines/{name}/status")).await?);
    }
    let workers: Vec<WorkerInfo> = client.get("/workers").await?;
    if json {
        let all = serde_json::json!({ "pipelines": statuses, "workers": workers });
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        print!("{}", render_overview(&statuses, &workers));
    }
    Ok(u8::from(statuses.iter().any(|s| !fine(&s.health, true))))
}

fn render_overview(statuses: &[PipelineStatus], workers: &[WorkerInfo]) -> String {
    let mut out = format!(
        "{:<28} {:<13} {:>8} {:>10} {:>10} {:>8} {:>8}\n",
        "PIPELINE", "HEALTH", "VERSION", "IN", "OUT", "DLQ", "LAG"
    );
    for s in statuses {
        let t = &s.totals;
        out.push_str(&format!(
            "{:<28} {:<13} {:>8} {:>10} {:>10} {:>8} {:>8}\n",
            s.pipeline,
            s.health,
            opt(s.deployment.as_ref().map(|d| d.version)),
            t.messages_in,
            t.messages_out,
            t.dead_lettered,
            opt(s.lag)
        ));
        if let Some(reason) = s.reasons.first() {
            out.push_str(&format!("  - {reason}\n"));
        }
    }
    let alive = workers.iter().filter(|w| w.alive).count();
    out.push_str(&format!(
        "\nworkers: {alive} alive, {} not sending heartbeats\n",
        workers.len() - alive
    ));
    for w in workers {
        out.push_str(&format!(
            "  {} ({}) alive {} last seen {}: {} pipeline(s)\n",
            w.worker_id,
            w.host,
            w.alive,
            w.last_seen,
            w.pipelines.len()
        ));
    }
    out
}

/// The status as lines for a terminal.
/// A pass rate as a percentage, `-` when nothing was checked.
fn percent(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{:.1}%", r * 100.0))
}

/// The quality rules' table: counts since the workers started, and the pass rates.
fn render_quality(q: &QualityStatus) -> String {
    let mut out = format!(
        "\n{:<16} {:<20} {:<8} {:>10} {:>10} {:>8} {:>8} {:>8}\n",
        "NODE", "RULE", "SEVERITY", "PASSED", "FAILED", "PASS", "1M", "1H"
    );
    for r in &q.rules {
        out.push_str(&format!(
            "{:<16} {:<20} {:<8} {:>10} {:>10} {:>8} {:>8} {:>8}\n",
            r.node,
            r.rule,
            r.severity,
            r.passed,
            r.failed,
            percent(r.pass_rate),
            percent(r.pass_rate_1m),
            percent(r.pass_rate_1h)
        ));
    }
    out
}

fn render(s: &PipelineStatus) -> String {
    let mut out = format!("pipeline/{}: {}\n", s.pipeline, s.health);
    for r in &s.reasons {
        out.push_str(&format!("  - {r}\n"));
    }
    if let Some(d) = &s.deployment {
        out.push_str(&format!(
            "deployment: version {} parallelism {} {} (by {} at {})\n",
            d.version, d.parallelism, d.state, d.updated_by, d.updated_at
        ));
    }
    let t = &s.totals;
    out.push_str(&format!(
        "workers: {} running, {} dead\nin {} (deliveries {}) out {} filtered {} dlq {} retried {}\n",
        s.running_workers,
        s.dead_workers,
        t.messages_in,
        t.deliveries,
        t.messages_out,
        t.filtered,
        t.dead_lettered,
        t.retried
    ));
    out.push_str(&format!(
        "rate: in {} out {}   lag {}   ack pending {}\n",
        rate(s.rates.as_ref().map(|r| r.messages_in)),
        rate(s.rates.as_ref().map(|r| r.messages_out)),
        opt(s.lag),
        opt(s.ack_pending)
    ));
    if let Some(st) = &s.operator_state {
        out.push_str(&format!(
            "state: {} windows open (watermark {}), {} keys, {} late, {} duplicates dropped; last checkpoint {} ({} bytes, position {}, took {} ms); {}\n",
            st.open_windows,
            opt(st.watermark.as_deref()),
            st.keys_held,
            st.late_events,
            st.duplicates_dropped,
            opt(st.last_checkpoint.as_deref()),
            st.state_bytes,
            st.position,
            st.last_checkpoint_took_ms,
            st.started_from
        ));
        for p in &st.partitions {
            out.push_str(&format!(
                "  partition {}: {} on {}, {} windows, {} keys, {} late, watermark {}, checkpoint {} ({} bytes, position {})\n",
                p.partition,
                p.started_from,
                p.worker_id,
                p.open_windows,
                p.keys_held,
                p.late_events,
                opt(p.watermark.as_deref()),
                opt(p.last_checkpoint.as_deref()),
                p.state_bytes,
                p.position
            ));
        }
    }
    for (what, e) in [
        ("last error", &s.last_error),
        ("last dead letter", &s.last_dead_letter),
    ] {
        if let Some(e) = e {
            out.push_str(&format!(
                "{what} ({} at {}): {}\n",
                e.worker_id, e.at, e.message
            ));
        }
    }
    if !s.workers.is_empty() {
        out.push_str(&format!(
            "\n{:<24} {:<6} {:<9} {:>7} {:>12} {:>10}  {}\n",
            "WORKER", "ALIVE", "STATE", "VERSION", "IN", "RATE IN", "LAST SEEN"
        ));
        for w in &s.workers {
            out.push_str(&format!(
                "{:<24} {:<6} {:<9} {:>7} {:>12} {:>10}  {}\n",
                w.worker_id,
                w.alive.to_string(),
                w.state,
                w.version,
                w.counters.messages_in,
                rate(w.rates.as_ref().map(|r| r.messages_in)),
                w.last_seen
            ));
        }
    }
    out
}
