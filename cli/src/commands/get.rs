//! `weir get pipelines|streams [NAME] [-o yaml|json]`: list or show resources of your tenant;
//! `weir get workers|deployments`: the fleet's workers and the pipelines' deployments.

use anyhow::{Result, bail};
use reqwest::Method;

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
    let v = client.get_json("/workers").await?;
    if json {
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    let mut rows = vec![vec![
        "WORKER".to_string(),
        "HOST".into(),
        "ALIVE".into(),
        "LAST SEEN".into(),
        "PIPELINES".into(),
    ]];
    for w in v.as_array().into_iter().flatten() {
        let pipelines = w["pipelines"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                format!(
                    "{} v{} {}",
                    p["pipeline"].as_str().unwrap_or("?"),
                    p["version"],
                    p["state"].as_str().unwrap_or("?")
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        rows.push(vec![
            w["worker_id"].as_str().unwrap_or("?").into(),
            w["host"].as_str().unwrap_or("?").into(),
            w["alive"].to_string(),
            w["last_seen"].as_str().unwrap_or("?").into(),
            pipelines,
        ]);
    }
    Ok(render_rows(&rows))
}

/// `weir get deployments`: the deployment of every pipeline that has one.
async fn deployments(client: &Client, json: bool) -> Result<String> {
    let mut found = Vec::new();
    for name in client.pipeline_names().await? {
        // 404: not deployed.
        if let Ok(d) = client
            .get_json(&format!("/pipelines/{name}/deployment"))
            .await
        {
            found.push(d);
        }
    }
    if json {
        return Ok(serde_json::to_string_pretty(&found)? + "\n");
    }
    let mut rows = vec![vec![
        "PIPELINE".to_string(),
        "VERSION".into(),
        "PARALLELISM".into(),
        "STATE".into(),
        "UPDATED".into(),
        "BY".into(),
    ]];
    for d in &found {
        rows.push(vec![
            d["pipeline"].as_str().unwrap_or("?").into(),
            d["version"].to_string(),
            d["parallelism"].to_string(),
            d["state"].as_str().unwrap_or("?").into(),
            d["updated_at"].as_str().unwrap_or("?").into(),
            d["updated_by"].as_str().unwrap_or("?").into(),
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
        if format == Some("yaml") {
            let r = client
                .send(
                    Method::GET,
                    &format!("/{coll}/{name}?format=yaml"),
                    None,
                    None,
                )
                .await?;
            return Ok(r.text);
        }
        let v = client
            .send(Method::GET, &format!("/{coll}/{name}"), None, None)
            .await?
            .json()?;
        if format == Some("json") {
            return Ok(serde_json::to_string_pretty(&v["resource"])? + "\n");
        }
        return Ok(table(coll, &[v]));
    }
    // Lists: follow pages.
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/{coll}?limit=500");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        if let Some(l) = &args.label {
            path.push_str(&format!("&label={l}"));
        }
        let v = client.send(Method::GET, &path, None, None).await?.json()?;
        match v.get("items") {
            Some(list) => {
                items.extend(list.as_array().cloned().unwrap_or_default());
                cursor = v["next_cursor"].as_str().map(str::to_string);
            }
            None => {
                items.extend(v.as_array().cloned().unwrap_or_default());
                cursor = None;
            }
        }
        if cursor.is_none() {
            break;
        }
    }
    if coll == "pipelines" && format.is_none() {
        // The table shows which version runs, next to the latest one.
        for p in items.iter_mut() {
            let name = p["name"].as_str().unwrap_or_default().to_string();
            let deployed = client
                .send(
                    Method::GET,
                    &format!("/pipelines/{name}/deployment"),
                    None,
                    None,
                )
                .await
                .ok()
                .and_then(|r| r.json().ok());
            p["deployed"] = match deployed {
                Some(d) => serde_json::Value::String(format!(
                    "v{} {}",
                    d["version"],
                    d["state"].as_str().unwrap_or("?")
                )),
                None => serde_json::Value::String("-".into()),
            };
        }
    }
    Ok(match format {
        Some("json") => serde_json::to_string_pretty(&items)? + "\n",
        Some(_) => serde_yaml::to_string(&items)?,
        None => table(coll, &items),
    })
}

fn table(coll: &str, items: &[serde_json::Value]) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    if coll == "pipelines" {
        rows.push(vec![
            "NAME".into(),
            "VERSION".into(),
            "DEPLOYED".into(),
            "PARALLELISM".into(),
            "UPDATED".into(),
            "LABELS".into(),
        ]);
        for p in items {
            let labels = p["labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            rows.push(vec![
                p["name"].as_str().unwrap_or("").into(),
                p["version"].to_string(),
                p["deployed"].as_str().unwrap_or("-").into(),
                p["parallelism"].to_string(),
                p["updated_at"].as_str().unwrap_or("").into(),
                labels,
            ]);
        }
    } else {
        rows.push(vec!["NAME".into(), "SUBJECTS".into(), "UPDATED".into()]);
        for s in items {
            rows.push(vec![
                s["name"].as_str().unwrap_or("").into(),
                s["resource"]["spec"]["subjects"].to_string(),
                s["updated_at"].as_str().unwrap_or("").into(),
            ]);
        }
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
