//! `weir schema`: without a subcommand, prints the JSON Schema of the pipeline file format
//! (the same text as `pipelines/schema/weir.v1.schema.json`); with one, works the schema
//! registry of your tenant through the API (`register`, `get`, `ls`, `check`, `delete`).

use anyhow::{Context, Result};
use reqwest::Method;
use weir_control_plane::api::{
    CheckResult, Deleted, InferredSchema, SchemaReference, SchemaType, SchemaVersion, SchemaWrite,
    SubjectSummary,
};

use super::client::{Client, block_on};

/// Arguments of `weir schema`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Registry>,
}

/// The registry's subcommands.
#[derive(clap::Subcommand)]
enum Registry {
    /// Register a schema file under a subject (prints the version and id).
    Register {
        /// The subject.
        subject: String,
        /// The schema file (`.avsc`, `.json`, `.proto`; `-` for standard input).
        file: String,
        /// AVRO, JSON or PROTOBUF (by default from the file's extension).
        #[arg(long = "type")]
        schema_type: Option<String>,
        /// A version of another subject the schema uses, under the name it uses for it (an
        /// Avro full name, a `$ref`, an import path); repeatable.
        #[arg(long = "ref", value_name = "NAME=SUBJECT:VERSION")]
        refs: Vec<String>,
    },
    /// Print a version of a subject (the latest by default).
    Get {
        /// The subject.
        subject: String,
        /// A version number or `latest`.
        #[arg(default_value = "latest")]
        version: String,
        /// Print the whole record as JSON, not only the schema text.
        #[arg(long)]
        json: bool,
    },
    /// List the subjects, or the versions of one.
    Ls {
        /// A subject: list its versions.
        subject: Option<String>,
    },
    /// Check a schema file against a subject's compatibility level (exit 1 when incompatible).
    Check {
        /// The subject.
        subject: String,
        /// The schema file.
        file: String,
        /// AVRO, JSON or PROTOBUF (by default from the file's extension).
        #[arg(long = "type")]
        schema_type: Option<String>,
        /// A version of another subject the schema uses (`NAME=SUBJECT:VERSION`); repeatable.
        #[arg(long = "ref", value_name = "NAME=SUBJECT:VERSION")]
        refs: Vec<String>,
    },
    /// Propose a JSON Schema from the newest messages of a stream (ready to register).
    Infer {
        /// The stream.
        stream: String,
        /// How many of its newest messages to read (1–1000).
        #[arg(long, default_value_t = 100)]
        samples: u32,
    },
    /// Delete a subject or one version (soft; `--permanent` after a soft delete).
    Delete {
        /// The subject.
        subject: String,
        /// Only this version.
        #[arg(long)]
        version: Option<i64>,
        /// Remove for good.
        #[arg(long)]
        permanent: bool,
    },
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> Result<u8> {
    let Some(command) = args.command else {
        print!("{}", weir_pipelines::schema::json_schema_text());
        return Ok(0);
    };
    let client = Client::from_env()?;
    block_on(registry(&client, command))?
}

/// A `--ref NAME=SUBJECT:VERSION`.
fn reference(text: &str) -> Result<SchemaReference> {
    let parsed = text.split_once('=').and_then(|(name, rest)| {
        let (subject, version) = rest.rsplit_once(':')?;
        Some((name, subject, version.parse::<i64>().ok()?))
    });
    match parsed {
        Some((name, subject, version)) if !name.is_empty() && !subject.is_empty() => {
            Ok(SchemaReference {
                name: name.into(),
                subject: subject.into(),
                version,
            })
        }
        _ => anyhow::bail!(
            "--ref `{text}`: write NAME=SUBJECT:VERSION, e.g. acme.Customer=customer-value:1"
        ),
    }
}

fn read_schema(file: &str, schema_type: Option<String>, refs: &[String]) -> Result<SchemaWrite> {
    let text = if file == "-" {
        std::io::read_to_string(std::io::stdin()).context("read standard input")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("read {file}"))?
    };
    let kind = match schema_type {
        Some(t) => t.to_ascii_uppercase(),
        None if file.ends_with(".avsc") || file.ends_with(".avro") => "AVRO".into(),
        None if file.ends_with(".proto") => "PROTOBUF".into(),
        None if file.ends_with(".json") => "JSON".into(),
        None => anyhow::bail!(
            "cannot tell the schema's format from `{file}`: pass --type AVRO|JSON|PROTOBUF"
        ),
    };
    let schema_type: SchemaType = serde_json::from_value(serde_json::Value::String(kind.clone()))
        .map_err(|_| {
        anyhow::anyhow!("unknown schema type `{kind}`: use AVRO, JSON or PROTOBUF")
    })?;
    Ok(SchemaWrite {
        schema: text,
        schema_type,
        references: refs.iter().map(|r| reference(r)).collect::<Result<_>>()?,
    })
}

async fn registry(client: &Client, command: Registry) -> Result<u8> {
    match command {
        Registry::Register {
            subject,
            file,
            schema_type,
            refs,
        } => {
            let body = read_schema(&file, schema_type, &refs)?;
            let v: SchemaVersion = client
                .post(&format!("/schemas/{subject}/versions"), &body)
                .await?;
            println!("{subject} version {} (id {})", v.version, v.id);
        }
        Registry::Get {
            subject,
            version,
            json,
        } => {
            let v: SchemaVersion = client
                .get(&format!("/schemas/{subject}/versions/{version}"))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("{}", v.schema);
            }
        }
        Registry::Ls { subject } => list(client, subject).await?,
        Registry::Check {
            subject,
            file,
            schema_type,
            refs,
        } => return check(client, &subject, &file, schema_type, &refs).await,
        Registry::Infer { stream, samples } => {
            let path = format!("/streams/{stream}/infer-schema?samples={samples}");
            let r: InferredSchema = client
                .send(Method::POST, &path, None, None)
                .await?
                .parse()?;
            eprintln!(
                "inferred from {} messages ({} not JSON)",
                r.samples, r.skipped
            );
            println!("{}", serde_json::to_string_pretty(&r.schema)?);
        }
        Registry::Delete {
            subject,
            version,
            permanent,
        } => delete(client, &subject, version, permanent).await?,
    }
    Ok(0)
}

/// `weir schema ls [SUBJECT]`: the subjects with their latest version, or one subject's
/// versions.
async fn list(client: &Client, subject: Option<String>) -> Result<()> {
    let Some(subject) = subject else {
        let list: Vec<SubjectSummary> = client.get("/schemas").await?;
        println!(
            "{:<40} {:>7} {:>6} {:<9} COMPATIBILITY",
            "SUBJECT", "VERSION", "ID", "TYPE"
        );
        for s in &list {
            let l = &s.latest;
            println!(
                "{:<40} {:>7} {:>6} {:<9} {}",
                s.subject,
                l.version,
                l.id,
                l.schema_type.as_str(),
                s.compatibility.as_str()
            );
        }
        return Ok(());
    };
    let list: Vec<SchemaVersion> = client.get(&format!("/schemas/{subject}/versions")).await?;
    println!("{:>7} {:>6} TYPE", "VERSION", "ID");
    for v in &list {
        println!("{:>7} {:>6} {}", v.version, v.id, v.schema_type.as_str());
    }
    Ok(())
}

/// `weir schema check`: exit status 1 when the schema is incompatible, with the reasons.
async fn check(
    client: &Client,
    subject: &str,
    file: &str,
    schema_type: Option<String>,
    refs: &[String],
) -> Result<u8> {
    let body = read_schema(file, schema_type, refs)?;
    let r: CheckResult = client
        .post(&format!("/schemas/{subject}/check"), &body)
        .await?;
    let level = r.compatibility.as_str();
    if r.compatible {
        println!("compatible with {subject} ({level})");
        return Ok(0);
    }
    println!("incompatible with {subject} ({level}):");
    for m in &r.messages {
        println!("  - {m}");
    }
    Ok(1)
}

/// `weir schema delete`: one version or the whole subject, soft or permanently.
async fn delete(
    client: &Client,
    subject: &str,
    version: Option<i64>,
    permanent: bool,
) -> Result<()> {
    let mut query = vec![];
    if let Some(v) = version {
        query.push(format!("version={v}"));
    }
    if permanent {
        query.push("permanent=true".into());
    }
    let path = format!("/schemas/{subject}?{}", query.join("&"));
    let r: Deleted = client
        .send(Method::DELETE, &path, None, None)
        .await?
        .parse()?;
    let how = if permanent {
        "permanently deleted"
    } else {
        "deleted"
    };
    let versions = serde_json::to_string(&r.versions)?;
    println!("{subject}: versions {versions} {how}");
    Ok(())
}
