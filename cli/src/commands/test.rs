//! `weir test`: runs pipelines on sample messages. With `--input`, prints each input's outputs
//! or fate as a JSON line; without, runs the `tests:` cases of the pipelines in the files and
//! reports pass/fail per case with a diff (exit 1 when any case fails).

use anyhow::{Context, bail};
use std::path::PathBuf;
use weir_engine::CompiledPipeline;
use weir_engine::testing::{run_cases, run_jsonl};
use weir_pipelines::{PipelineResource, Resource};

/// Arguments of `weir test`.
#[derive(clap::Args)]
pub struct Args {
    /// Pipeline files (YAML or JSON; several resources per file allowed).
    #[arg(short = 'f', long = "file", required = true, num_args = 1..)]
    files: Vec<PathBuf>,
    /// JSON lines of input messages (`{"subject", "headers", "data"}` or `"payload_b64"`);
    /// prints one JSON line per input instead of running the files' `tests:` cases.
    #[arg(long)]
    input: Option<PathBuf>,
    /// With `--input`, the pipeline to run when the files hold several.
    #[arg(long)]
    pipeline: Option<String>,
}

fn load(files: &[PathBuf]) -> anyhow::Result<Vec<(PathBuf, PipelineResource)>> {
    let mut out = Vec::new();
    let mut invalid = false;
    for file in files {
        match weir_pipelines::load_file(file) {
            Ok(resources) => out.extend(resources.into_iter().filter_map(|r| match r {
                Resource::Pipeline(p) => Some((file.clone(), p)),
                _ => None,
            })),
            Err(diagnostics) => {
                eprintln!("{diagnostics}");
                invalid = true;
            }
        }
    }
    if invalid {
        bail!("the pipeline files are not valid (see above); `weir validate` shows the same");
    }
    Ok(out)
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> anyhow::Result<u8> {
    let pipelines = load(&args.files)?;
    if pipelines.is_empty() {
        bail!(
            "no Pipeline resource in {}",
            args.files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(input) = &args.input {
        let chosen: Vec<&(PathBuf, PipelineResource)> = match &args.pipeline {
            Some(name) => pipelines
                .iter()
                .filter(|(_, p)| &p.metadata.name == name)
                .collect(),
            None => pipelines.iter().collect(),
        };
        let (_, resource) = match chosen.as_slice() {
            [one] => *one,
            [] => bail!(
                "no pipeline named `{}` in the files",
                args.pipeline.unwrap_or_default()
            ),
            _ => bail!(
                "the files hold several pipelines ({}); choose one with --pipeline",
                chosen
                    .iter()
                    .map(|(_, p)| p.metadata.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let compiled = CompiledPipeline::compile(resource)?;
        let text = std::fs::read_to_string(input)
            .with_context(|| format!("cannot read {}", input.display()))?;
        for fate in run_jsonl(&compiled, &resource.spec.source.stream, &text)
            .with_context(|| format!("in {}", input.display()))?
        {
            println!("{fate}");
        }
        return Ok(0);
    }

    let (mut passed, mut failed, mut without) = (0usize, 0usize, 0usize);
    for (file, resource) in &pipelines {
        let name = &resource.metadata.name;
        if resource.tests.is_empty() {
            without += 1;
            println!("{} {name}: no tests", file.display());
            continue;
        }
        let compiled = match CompiledPipeline::compile(resource) {
            Ok(c) => c,
            Err(e) => {
                failed += resource.tests.len();
                println!("{} {e}", file.display());
                continue;
            }
        };
        for outcome in run_cases(resource, &compiled) {
            match &outcome.failure {
                None => {
                    passed += 1;
                    println!("PASS {name} / {}", outcome.name);
                }
                Some(diff) => {
                    failed += 1;
                    println!("FAIL {name} / {} ({})", outcome.name, file.display());
                    for line in diff.lines() {
                        println!("    {line}");
                    }
                }
            }
        }
    }
    println!(
        "\n{passed} passed, {failed} failed{}",
        if without > 0 {
            format!(", {without} pipeline(s) without tests")
        } else {
            String::new()
        }
    );
    Ok(if failed > 0 { 1 } else { 0 })
}
