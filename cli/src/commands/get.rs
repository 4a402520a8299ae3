//! `weir get pipelines|streams [NAME] [-o yaml|json]`: list or show resources of your tenant;
//! `weir get workers|deployments`: the fleet's workers and the pipelines' deployments.

use anyhow::{Result, bail};
use reqwest::Method;

use weir_control_plane::api::{
    DeploymentInfo, PipelineDetail, PipelinePage, PipelineSummary, StreamInfo, WorkerInfo,
};

use super::client::{Client, block_on, collection};

/// Arguments of `weir get`.
#[derive(clap::Args)]
pub struct Args {
    /// `pipelines`, `streams`, `workers` or `deployments`.
    pub kind: String,
    /// One resource by name.
    pub name: Option<String>,
    /// Output: a table (default), `yaml` or `json`.
    #[arg(short = 'o', long = "output")]
    pub output: Option<String>,
    /// Only pipelines with this label, `key=value`.
    #[arg(short = 'l', long = "selector")]
    pub label: Option<String>,
}

/// `weir get workers`: every worker with the pipelines it runs.
async fn workers(client: &Client, json: bool) -> Result<String> {
    let workers: Vec<WorkerInfo> = client.get("/workers").await?;
    if json {
        return Ok(serde_json::to_string_pretty(&workers)? + "\n");
    }
    let mut rows = vec![header(&[
        "WORKER",
        "HOST",
        "ALIVE",
        "LAST SEEN",
        "PIPELINES",
    ])];
    for w in &workers {
        let pipelines = w
            .pipelines
            .iter()
            .map(|p| format!("{} v{} {}", p.pipeline, p.version, p.state))
            .collect::<Vec<_>>()
            .join(", ");
        rows.push(vec![
            w.worker_id.clone(),
            w.host.clone(),
            w.alive.to_string(),
            w.last_seen.clone(),
            pipelines,
        ]);
    }
    Ok(render_rows(&rows))
}

/// The deployment of pipeline `name`, `None` when it has none (404).
async fn deployment(client: &Client, name: &str) -> Option<DeploymentInfo> {
    client
        .get(&format!("/pipelines/{name}/deployment"))
        .await
        .ok()
}

/// `weir get deployments`: the deployment of every pipeline that has one.
async fn deployments(client: &Client, json: bool) -> Result<String> {
    let mut found = Vec::new();
    for name in client.pipeline_names().await? {
        found.extend(deployment(client, &name).await);
    }
    if json {
        return Ok(serde_json::to_string_pretty(&found)? + "\n");
    }
    let mut rows = vec![header(&[
        "PIPELINE",
        "VERSION",
        "PARALLELISM",
        "STATE",
        "UPDATED",
        "BY",
    ])];
    for d in &found {
        rows.push(vec![
            d.pipeline.clone(),
            d.version.to_string(),
            d.parallelism.to_string(),
            d.state.clone(),
            d.updated_at.clone(),
            d.updated_by.clone(),
        ]);
    }
    Ok(render_rows(&rows))
}

async fn fetch(client: &Client, args: &Args) -> Result<String> {
    let json = args.output.as_deref() == Some("json");
    match args.kind.trim_end_matches('s') {
        "worker" => return workers(client, json).await,
        "deployment" => return deployments(client, json).await,
        _ => {}
    }
    let coll = collection(&args.kind)?;
    let format = args.output.as_deref();
    if !matches!(format, None | Some("yaml") | Some("json")) {
        bail!(
            "unknown output `{}`: use yaml or json",
            format.unwrap_or_default()
        );
    }
    if let Some(name) = &args.name {
        return one(client, coll, name, format).await;
    }
    if coll == "pipelines" {
        let items = pipelines(client, args.label.as_deref()).await?;
        return Ok(match format {
            Some("json") => serde_json::to_string_pretty(&items)? + "\n",
            Some(_) => serde_yaml::to_string(&items)?,
            None => {
                // The table shows which version runs, next to the latest one.
                let mut rows = Vec::new();
                for p in &items {
                    rows.push((p, deployment(client, &p.name).await));
                }
                pipeline_table(&rows)
            }
        });
    }
    let items: Vec<StreamInfo> = client.get("/streams").await?;
    Ok(match format {
        Some("json") => serde_json::to_string_pretty(&items)? + "\n",
        Some(_) => serde_yaml::to_string(&items)?,
        None => stream_table(&items),
    })
}

/// One pipeline or stream: its stored YAML, its resource as JSON, or a table row.
async fn one(client: &Client, coll: &str, name: &str, format: Option<&str>) -> Result<String> {
    if format == Some("yaml") {
        let path = format!("/{coll}/{name}?format=yaml");
        return Ok(client.send(Method::GET, &path, None, None).await?.text);
    }
    let path = format!("/{coll}/{name}");
    if coll == "pipelines" {
        let p: PipelineDetail = client.get(&path).await?;
        if format == Some("json") {
            return Ok(serde_json::to_string_pretty(&p.resource)? + "\n");
        }
        let deployed = deployment(client, name).await;
        return Ok(pipeline_table(&[(&p.summary, deployed)]));
    }
    let s: StreamInfo = client.get(&path).await?;
    if format == Some("json") {
        return Ok(serde_json::to_string_pretty(&s.resource)? + "\n");
    }
    Ok(stream_table(std::slice::from_ref(&s)))
}

/// Every pipeline of the tenant (with `label`, only those carrying it), following the pages.
async fn pipelines(client: &Client, label: Option<&str>) -> Result<Vec<PipelineSummary>> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/pipelines?limit=500".to_string();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        if let Some(l) = label {
            path.push_str(&format!("&label={l}"));
        }
        let page: PipelinePage = client.get(&path).await?;
        items.extend(page.items);
        cursor = page.next_cursor;
        if cursor.is_none() {
            return Ok(items);
        }
    }
}

fn header(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn pipeline_table(items: &[(&PipelineSummary, Option<DeploymentInfo>)]) -> String {
    let mut rows = vec![header(&[
        "NAME",
        "VERSION",
        "DEPLOYED",
        "PARALLELISM",
        "UPDATED",
        "LABELS",
    ])];
    for (p, deployed) in items {
        let labels = p
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        rows.push(vec![
            p.name.clone(),
            p.version.to_string(),
            deployed
                .as_ref()
                .map_or_else(|| "-".into(), |d| format!("v{} {}", d.version, d.state)),
            p.parallelism.to_string(),
            p.updated_at.clone(),
            labels,
        ]);
    }
    render_rows(&rows)
}

fn stream_table(items: &[StreamInfo]) -> String {
    let mut rows = vec![header(&["NAME", "SUBJECTS", "UPDATED"])];
    for s in items {
        rows.push(vec![
            s.name.clone(),
            s.resource["spec"]["subjects"].to_string(),
            s.updated_at.clone(),
        ]);
    }
    render_rows(&rows)
}

/// Rows as aligned columns, the first row being the header.
fn render_rows(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            r.iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
                + "\n"
        })
        .collect()
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> Result<u8> {
    let client = Client::from_env()?;
    let text = block_on(fetch(&client, &args))??;
    print!("{text}");
    Ok(0)
}
