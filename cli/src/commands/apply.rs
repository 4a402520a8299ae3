//! `weir apply -f FILE…`: checks each file with the format's checker, then creates or updates
//! each resource through the API, printing `pipeline/NAME created|unchanged|configured`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use reqwest::Method;

use super::client::{Client, block_on, collection};

/// Arguments of `weir apply`.
#[derive(clap::Args)]
pub struct Args {
    /// Resource files (YAML or JSON); several documents per file allowed; `-` reads
    /// standard input.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Show what would happen, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// What the server said about one resource.
pub struct Outcome {
    pub kind: String,
    pub name: String,
    pub result: String,
    pub version: Option<i64>,
    pub diff: String,
}

/// Loads every file, failing with all their diagnostics.
pub fn load(files: &[PathBuf]) -> Result<Vec<weir_pipelines::Resource>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for path in files {
        // `-` is standard input, as with kubectl.
        let (text, name) = if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .context("cannot read standard input")?;
            (text, "<stdin>".to_string())
        } else {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            (text, path.display().to_string())
        };
        match weir_pipelines::load_str(&text, &name) {
            Ok(resources) => out.extend(resources),
            Err(d) => problems.push(d.to_string()),
        }
    }
    if !problems.is_empty() {
        anyhow::bail!("invalid resource files:\n{}", problems.join("\n"));
    }
    Ok(out)
}

/// Sends every resource with PUT (create or update).
pub async fn send_all(
    client: &Client,
    resources: &[weir_pipelines::Resource],
    dry_run: bool,
) -> Result<Vec<Outcome>> {
    let mut out = Vec::new();
    for r in resources {
        let name = &r.metadata().name;
        let path = format!(
            "/{}/{name}{}",
            collection(r.kind())?,
            if dry_run { "?dry_run=true" } else { "" }
        );
        let body = serde_json::to_string(r)?;
        let reply = client
            .send(Method::PUT, &path, Some(("application/json", body)), None)
            .await
            .with_context(|| format!("{}/{name}", r.kind().to_lowercase()))?;
        let v: weir_control_plane::api::ApplyResult = reply.parse()?;
        out.push(Outcome {
            kind: r.kind().to_lowercase(),
            name: name.clone(),
            result: v.result,
            version: v.version,
            diff: v.diff,
        });
    }
    Ok(out)
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> Result<u8> {
    let resources = load(&args.files)?;
    let client = Client::from_env()?;
    let outcomes = block_on(send_all(&client, &resources, args.dry_run))??;
    for o in outcomes {
        let detail = match (o.result.as_str(), o.version) {
            ("configured", Some(v)) => format!("configured (version {v})"),
            (r, _) => r.to_string(),
        };
        let dry = if args.dry_run { " (dry run)" } else { "" };
        println!("{}/{} {detail}{dry}", o.kind, o.name);
    }
    Ok(0)
}
