//! `weir validate`: checks pipeline files with the same checks the API runs and prints every
//! problem as `file:line:col: message`, or a JSON report with `--output json`.
//! Exit code 0 when every file is valid, 1 when any is not.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use weir_pipelines::{Diagnostics, Resource};

/// Arguments of `weir validate`.
#[derive(clap::Args)]
pub struct Args {
    /// Pipeline files (YAML or JSON), directories of them (`*.yaml`, `*.yml`, `*.json`), or
    /// `-` for standard input.
    #[arg(short = 'f', long = "file", value_name = "FILE", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Human)]
    pub output: Output,
}

/// How the result is printed.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// `file:line:col: message` per problem, then a summary.
    Human,
    /// One JSON document for machines.
    Json,
}

/// The JSON report.
#[derive(Serialize)]
struct Report {
    valid: bool,
    files: Vec<FileReport>,
}

#[derive(Serialize)]
struct FileReport {
    file: String,
    valid: bool,
    resources: Vec<ResourceRef>,
    diagnostics: Diagnostics,
}

#[derive(Serialize)]
struct ResourceRef {
    kind: &'static str,
    name: String,
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> anyhow::Result<u8> {
    let mut reports = Vec::new();
    for path in expand(&args.files)? {
        let result = if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading standard input")?;
            weir_pipelines::load_str(&text, "<stdin>")
        } else {
            weir_pipelines::load_file(&path)
        };
        let file = if path.as_os_str() == "-" {
            "<stdin>".to_string()
        } else {
            path.display().to_string()
        };
        reports.push(match result {
            Ok(resources) => FileReport {
                file,
                valid: true,
                resources: resources.iter().map(resource_ref).collect(),
                diagnostics: Diagnostics::default(),
            },
            Err(diagnostics) => FileReport {
                file,
                valid: false,
                resources: Vec::new(),
                diagnostics,
            },
        });
    }
    let valid = reports.iter().all(|r| r.valid);
    match args.output {
        Output::Json => {
            let report = Report {
                valid,
                files: reports,
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Output::Human => print_human(&reports),
    }
    Ok(if valid { 0 } else { 1 })
}

fn resource_ref(r: &Resource) -> ResourceRef {
    ResourceRef {
        kind: r.kind(),
        name: r.metadata().name.clone(),
    }
}

fn print_human(reports: &[FileReport]) {
    for r in reports {
        if !r.diagnostics.is_empty() {
            println!("{}", r.diagnostics);
        }
    }
    let files = reports.len();
    let bad: Vec<&FileReport> = reports.iter().filter(|r| !r.valid).collect();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    if bad.is_empty() {
        let resources: usize = reports.iter().map(|r| r.resources.len()).sum();
        println!(
            "{}, {} valid",
            plural(files, "file"),
            plural(resources, "resource")
        );
    } else {
        let problems: usize = bad.iter().map(|r| r.diagnostics.len()).sum();
        let good = files - bad.len();
        let mut line = format!(
            "{} in {}",
            plural(problems, "problem"),
            plural(bad.len(), "file")
        );
        if good > 0 {
            line.push_str(&format!(" ({} valid)", plural(good, "other file")));
        }
        println!("{line}");
    }
}

/// Files as given, directories replaced by their pipeline files in name order.
fn expand(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading directory {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_pipeline_file(p))
                .collect();
            if found.is_empty() {
                anyhow::bail!(
                    "no pipeline files (*.yaml, *.yml, *.json) in directory {}",
                    path.display()
                );
            }
            found.sort();
            out.extend(found);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

fn is_pipeline_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}
