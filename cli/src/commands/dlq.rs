//! `weir dlq ls|show|redrive|purge PIPELINE`: browse a pipeline's dead letters by error kind,
//! show one, send them back to the subject they came from (optionally with an edited
//! payload), or purge them.

use anyhow::{Context, Result, bail};
use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, block_on};

/// Arguments of `weir dlq`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: DlqCommand,
}

/// What to do with the DLQ.
#[derive(clap::Subcommand)]
pub enum DlqCommand {
    /// Count dead letters by error kind and list them.
    Ls {
        /// Pipeline name.
        pipeline: String,
        /// Only this error kind.
        #[arg(long)]
        kind: Option<String>,
        /// Entries to list.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// List the entries after this DLQ sequence (the `--cursor` printed after a full page).
        #[arg(long)]
        cursor: Option<u64>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one dead letter: payload and headers.
    Show {
        /// Pipeline name.
        pipeline: String,
        /// DLQ sequence (from `weir dlq ls`).
        seq: u64,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Publish dead letters again to their source subject and remove them from the DLQ.
    Redrive {
        /// Pipeline name.
        pipeline: String,
        /// DLQ sequences.
        seqs: Vec<u64>,
        /// Every dead letter of the pipeline.
        #[arg(long, conflicts_with = "seqs")]
        all: bool,
        /// Every dead letter of this error kind (`decode`, `expression`, …).
        #[arg(long, conflicts_with = "seqs")]
        kind: Option<String>,
        /// A file whose content replaces the payload (one sequence only).
        #[arg(long)]
        payload: Option<std::path::PathBuf>,
    },
    /// Remove every dead letter of the pipeline.
    Purge {
        /// Pipeline name.
        pipeline: String,
    },
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> Result<u8> {
    let client = Client::from_env()?;
    match args.command {
        DlqCommand::Ls {
            pipeline,
            kind,
            limit,
            cursor,
            json,
        } => {
            let mut path = format!("/pipelines/{pipeline}/dlq?limit={limit}");
            if let Some(k) = &kind {
                path.push_str(&format!("&kind={k}"));
            }
            if let Some(c) = cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let v = block_on(client.send(Method::GET, &path, None, None))??.json()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", render_list(&v));
                if let Some(next) = v["next_cursor"].as_u64() {
                    let kind = kind.map(|k| format!(" --kind {k}")).unwrap_or_default();
                    println!("more: weir dlq ls {pipeline}{kind} --limit {limit} --cursor {next}");
                }
            }
            Ok(0)
        }
        DlqCommand::Show {
            pipeline,
            seq,
            json,
        } => {
            let path = format!("/pipelines/{pipeline}/dlq/{seq}");
            let v = block_on(client.send(Method::GET, &path, None, None))??.json()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", render_one(&v));
            }
            Ok(0)
        }
        DlqCommand::Redrive {
            pipeline,
            seqs,
            all,
            kind,
            payload,
        } => {
            if !all && kind.is_none() && seqs.is_empty() {
                bail!("name the DLQ sequences to redrive, or give --all or --kind KIND");
            }
            let mut body = if let Some(kind) = kind {
                json!({"all": true, "kind": kind})
            } else if all {
                json!({"all": true})
            } else {
                json!({"seqs": seqs})
            };
            if let Some(file) = payload {
                let bytes =
                    std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
                body["payload_base64"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes));
            }
            let path = format!("/pipelines/{pipeline}/dlq/redrive");
            let v = block_on(client.send(
                Method::POST,
                &path,
                Some(("application/json", body.to_string())),
                None,
            ))??
            .json()?;
            for r in v["redriven"].as_array().into_iter().flatten() {
                println!(
                    "redriven {} -> {} ({} seq {})",
                    r["seq"],
                    r["subject"].as_str().unwrap_or("?"),
                    r["stream"].as_str().unwrap_or("?"),
                    r["stream_seq"]
                );
            }
            let failed = v["failed"].as_array().cloned().unwrap_or_default();
            for f in &failed {
                eprintln!(
                    "not redriven {}: {}",
                    f["seq"],
                    f["error"].as_str().unwrap_or("")
                );
            }
            Ok(if failed.is_empty() { 0 } else { 1 })
        }
        DlqCommand::Purge { pipeline } => {
            let path = format!("/pipelines/{pipeline}/dlq");
            let v = block_on(client.send(Method::DELETE, &path, None, None))??.json()?;
            println!(
                "purged {} dead letter(s) of pipeline/{pipeline}",
                v["purged"]
            );
            Ok(0)
        }
    }
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

fn render_list(v: &Value) -> String {
    let mut out = format!(
        "DLQ of stream {} subject {}: {} dead letter(s){}\n",
        text(&v["stream"]),
        text(&v["subject"]),
        v["total"],
        if v["truncated"] == true {
            " (more than scanned)"
        } else {
            ""
        }
    );
    for g in v["groups"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {:<12} {:>6}  last: {}\n",
            text(&g["kind"]),
            g["count"].to_string(),
            text(&g["last_error"])
        ));
    }
    let entries = v["entries"].as_array().cloned().unwrap_or_default();
    if !entries.is_empty() {
        out.push_str(&format!(
            "\n{:>8}  {:<24} {:<12} {:<12} {:<24} {}\n",
            "SEQ", "TIME", "KIND", "NODE", "SOURCE", "ERROR"
        ));
        for e in entries {
            out.push_str(&format!(
                "{:>8}  {:<24} {:<12} {:<12} {:<24} {}\n",
                e["seq"].to_string(),
                text(&e["time"]),
                text(&e["kind"]),
                text(&e["node"]),
                text(&e["source_subject"]),
                match e["redrive_of"].as_u64() {
                    Some(earlier) =>
                        format!("{} (again, redriven from {earlier})", text(&e["error"])),
                    None => text(&e["error"]).to_string(),
                }
            ));
        }
    }
    if let Some(c) = v["next_cursor"].as_u64() {
        out.push_str(&format!(
            "(more after seq {c}; use --json with the API's cursor)\n"
        ));
    }
    out
}

fn render_one(v: &Value) -> String {
    let mut out = format!(
        "seq {} on {} at {}\nkind: {}\nerror: {}\nnode: {}\nsource: {} seq {}\nattempts: {}\n",
        v["seq"],
        text(&v["subject"]),
        text(&v["time"]),
        text(&v["kind"]),
        text(&v["error"]),
        text(&v["node"]),
        text(&v["source_subject"]),
        v["source_seq"],
        v["attempts"]
    );
    out.push_str("headers:\n");
    for (k, vals) in v["headers"].as_object().into_iter().flatten() {
        for val in vals.as_array().into_iter().flatten() {
            out.push_str(&format!("  {k}: {}\n", text(val)));
        }
    }
    out.push_str("weir headers:\n");
    for (k, val) in v["weir_headers"].as_object().into_iter().flatten() {
        out.push_str(&format!("  {k}: {}\n", text(val)));
    }
    match v["payload_utf8"].as_str() {
        Some(p) => out.push_str(&format!("payload:\n{p}\n")),
        None => out.push_str(&format!(
            "payload (base64, not UTF-8):\n{}\n",
            text(&v["payload_base64"])
        )),
    }
    out
}
