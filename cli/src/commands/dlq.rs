//! `weir dlq ls|show|redrive|purge PIPELINE`: browse a pipeline's dead letters by error kind,
//! show one, send them back to the subject they came from (optionally with an edited
//! payload), or purge them.

use anyhow::{Context, Result, bail};
use base64::Engine;
use reqwest::Method;
use weir_control_plane::api::{DlqList, DlqMessage, PurgeResult, RedriveRequest, RedriveResult};

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
            let v: DlqList = block_on(client.get(&path))??;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", render_list(&v));
                if let Some(next) = v.next_cursor {
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
            let v: DlqMessage = block_on(client.get(&path))??;
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
            let payload_base64 = match payload {
                Some(file) => {
                    let bytes =
                        std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
                    Some(base64::engine::general_purpose::STANDARD.encode(bytes))
                }
                None => None,
            };
            let body = RedriveRequest {
                all: all || kind.is_some(),
                seqs: if all || kind.is_some() {
                    Vec::new()
                } else {
                    seqs
                },
                kind,
                payload: None,
                payload_base64,
            };
            let path = format!("/pipelines/{pipeline}/dlq/redrive");
            let v: RedriveResult = block_on(client.post(&path, &body))??;
            for r in &v.redriven {
                println!(
                    "redriven {} -> {} ({} seq {})",
                    r.seq, r.subject, r.stream, r.stream_seq
                );
            }
            for f in &v.failed {
                eprintln!("not redriven {}: {}", f.seq, f.error);
            }
            Ok(if v.failed.is_empty() { 0 } else { 1 })
        }
        DlqCommand::Purge { pipeline } => {
            let path = format!("/pipelines/{pipeline}/dlq");
            let v: PurgeResult =
                block_on(client.send(Method::DELETE, &path, None, None))??.parse()?;
            println!("purged {} dead letter(s) of pipeline/{pipeline}", v.purged);
            Ok(0)
        }
    }
}

/// An optional field, `-` when absent.
fn text<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".into(), |v| v.to_string())
}

fn render_list(v: &DlqList) -> String {
    let mut out = format!(
        "DLQ of stream {} subject {}: {} dead letter(s){}\n",
        v.stream,
        v.subject,
        v.total,
        if v.truncated {
            " (more than scanned)"
        } else {
            ""
        }
    );
    for g in &v.groups {
        out.push_str(&format!(
            "  {:<12} {:>6}  last: {}\n",
            g.kind,
            g.count.to_string(),
            g.last_error
        ));
    }
    if !v.entries.is_empty() {
        out.push_str(&format!(
            "\n{:>8}  {:<24} {:<12} {:<12} {:<24} {}\n",
            "SEQ", "TIME", "KIND", "NODE", "SOURCE", "ERROR"
        ));
        for e in &v.entries {
            out.push_str(&format!(
                "{:>8}  {:<24} {:<12} {:<12} {:<24} {}\n",
                e.seq.to_string(),
                e.time,
                e.kind,
                text(&e.node),
                text(&e.source_subject),
                match e.redrive_of {
                    Some(earlier) => format!("{} (again, redriven from {earlier})", e.error),
                    None => e.error.clone(),
                }
            ));
        }
    }
    if let Some(c) = v.next_cursor {
        out.push_str(&format!(
            "(more after seq {c}; use --json with the API's cursor)\n"
        ));
    }
    out
}

fn render_one(v: &DlqMessage) -> String {
    let e = &v.entry;
    let mut out = format!(
        "seq {} on {} at {}\nkind: {}\nerror: {}\nnode: {}\nsource: {} seq {}\nattempts: {}\n",
        e.seq,
        v.subject,
        e.time,
        e.kind,
        e.error,
        text(&e.node),
        text(&e.source_subject),
        text(&e.source_seq),
        text(&e.attempts)
    );
    out.push_str("headers:\n");
    for (k, vals) in &v.headers {
        for val in vals {
            out.push_str(&format!("  {k}: {val}\n"));
        }
    }
    out.push_str("weir headers:\n");
    for (k, val) in &v.weir_headers {
        out.push_str(&format!("  {k}: {val}\n"));
    }
    match &v.payload_utf8 {
        Some(p) => out.push_str(&format!("payload:\n{p}\n")),
        None => out.push_str(&format!(
            "payload (base64, not UTF-8):\n{}\n",
            v.payload_base64
        )),
    }
    out
}
