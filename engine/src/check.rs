//! The engine's check of a pipeline file, for `weir validate`, the API's validate, apply and
//! deploy: the pipeline must compile (known SQL functions, typed expressions), and with
//! declared `source.fields` every payload field it reads must be declared or written by a map.

use crate::columns::{ColumnSource, path_display, split_path};
use crate::pipeline::CompiledPipeline;
use weir_pipelines::{NodeKind, PipelineResource, Problem};

/// Every problem that keeps `pipeline` from running as written, each at a JSON pointer.
/// Register it with [`weir_pipelines::context::set_compile_check`].
pub fn check(pipeline: &PipelineResource) -> Vec<Problem> {
    match CompiledPipeline::compile_to_check(pipeline) {
        Err(e) => e
            .problems
            .into_iter()
            .map(|p| Problem::new(p.path.clone(), "does-not-compile", p.to_string()))
            .collect(),
        Ok(compiled) => undeclared_reads(pipeline, &compiled),
    }
}

/// Reads of payload fields that `source.fields` does not declare, when it declares some (a
/// misspelt field would be missing from every message, so every message would be filtered
/// or fail). After a `split`, paths read an element: not checked.
fn undeclared_reads(pipeline: &PipelineResource, compiled: &CompiledPipeline) -> Vec<Problem> {
    let spec = &pipeline.spec;
    // After a `split` paths read an element, after a `window` its results: not checked.
    if spec.source.fields.is_empty()
        || spec
            .nodes
            .iter()
            .any(|n| matches!(n.kind(), Some(NodeKind::Split | NodeKind::Window)))
    {
        return Vec::new();
    }
    let declared: Vec<Vec<String>> = spec.source.fields.keys().map(|k| split_path(k)).collect();
    let mut written: Vec<Vec<String>> = Vec::new();
    for node in &spec.nodes {
        if let Some(m) = &node.map {
            written.extend(m.set.keys().map(|k| split_path(k)));
            written.extend(m.rename.values().map(|k| split_path(k)));
        }
    }
    let related = |a: &[String], b: &[String]| {
        let k = a.len().min(b.len());
        a[..k] == b[..k]
    };
    let catalog = compiled.catalog();
    let mut out = Vec::new();
    for (idx, source) in catalog.columns() {
        let ColumnSource::Path(path) = source else {
            continue;
        };
        if declared.iter().chain(&written).any(|d| related(d, path)) {
            continue;
        }
        let shown = path_display(path);
        let names: Vec<String> = declared.iter().map(|d| path_display(d)).collect();
        let hint = names
            .iter()
            .filter(|n| edit_distance(n, &shown) <= 2.max(shown.len() / 4))
            .min_by_key(|n| edit_distance(n, &shown))
            .map(|n| format!("did you mean `{n}`? "))
            .unwrap_or_default();
        out.push(Problem::new(
            catalog.first_read(idx).to_string(),
            "undeclared-field",
            format!(
                "`{shown}` is not among the declared `source.fields` ({}): {hint}correct the name, or declare the field in `source.fields`",
                names.join(", ")
            ),
        ));
    }
    out
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
