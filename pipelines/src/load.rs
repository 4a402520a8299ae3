//! Loading a pipeline file: text → documents with positions → structural check against the
//! JSON Schema → typed resources → semantic checks. Every problem becomes a [`Diagnostic`]
//! at the line and column of the offending value; nothing here panics on any input.

use std::path::Path;

use serde_json::Value;

use crate::check::{check_file, check_resource};
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::document::{self, Document};
use crate::problem::Problem;
use crate::schema::schema_ref;
use crate::spec::Resource;
use crate::structure;
use crate::suggest::nearest;

/// Parses and checks a pipeline file's text (YAML, several documents separated by `---`, or
/// JSON: one object or an array of resources). `file_name` only labels the diagnostics.
pub fn load_str(text: &str, file_name: &str) -> Result<Vec<Resource>, Diagnostics> {
    let diagnostic = |line: usize, column: usize, document: usize, problem: Problem| Diagnostic {
        file: file_name.to_string(),
        line,
        column,
        document,
        path: problem.path,
        code: problem.code.to_string(),
        message: problem.message,
    };
    let documents = match document::parse(text) {
        Ok(docs) => docs,
        Err(err) => {
            let problem = Problem::new("", "yaml-syntax", err.message);
            return Err(Diagnostics(vec![diagnostic(
                err.position.line,
                err.position.column,
                0,
                problem,
            )]));
        }
    };
    if documents.is_empty() {
        let problem = Problem::new(
            "",
            "no-resources",
            "the file holds no resources; a resource starts with `apiVersion: weir.dev/v1` and `kind: Pipeline` or `kind: Stream`".into(),
        );
        return Err(Diagnostics(vec![diagnostic(1, 1, 0, problem)]));
    }

    let mut diagnostics = Vec::new();
    let mut resources = Vec::new();
    let mut kept: Vec<(usize, Document)> = Vec::new();
    for (index, mut doc) in documents.into_iter().enumerate() {
        let mut problems = std::mem::take(&mut doc.problems);
        normalize(&mut doc.value);
        let ok = check_structure(&mut doc.value, &mut problems);
        if ok {
            match serde_json::from_value::<Resource>(doc.value.clone()) {
                Ok(resource) => {
                    problems.extend(check_resource(&resource));
                    if let (true, Resource::Pipeline(p)) = (problems.is_empty(), &resource) {
                        problems.extend(crate::context::compile_problems(p));
                    }
                    resources.push(resource);
                    kept.push((index, doc));
                    // `doc` moved into `kept`; report through it below.
                    let (_, doc) = kept.last().expect("just pushed");
                    report(&mut diagnostics, problems, doc, index, &diagnostic);
                    continue;
                }
                Err(err) => problems.push(Problem::new(
                    "",
                    "invalid-resource",
                    format!("invalid resource: {err}"),
                )),
            }
        }
        report(&mut diagnostics, problems, &doc, index, &diagnostic);
    }
    for (i, problem) in check_file(&resources) {
        if let Some((index, doc)) = kept.get(i) {
            report(&mut diagnostics, vec![problem], doc, *index, &diagnostic);
        }
    }
    if diagnostics.is_empty() {
        Ok(resources)
    } else {
        diagnostics.sort_by_key(|d: &Diagnostic| (d.document, d.line, d.column));
        Err(Diagnostics(diagnostics))
    }
}

/// The line and column (from 1) of the value at `pointer` in document `document` of `text`,
/// for problems found after loading (against the registry or the declared streams); a pointer
/// with no value of its own is placed at its nearest ancestor. `None` when the text does not
/// parse or has no such document.
pub fn locate(text: &str, document: usize, pointer: &str) -> Option<(usize, usize)> {
    let documents = document::parse(text).ok()?;
    let position = documents.get(document)?.position(pointer, true);
    Some((position.line, position.column))
}

/// Reads and checks a pipeline file; a file that cannot be read is a diagnostic too.
pub fn load_file(path: &Path) -> Result<Vec<Resource>, Diagnostics> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&text, &name),
        Err(err) => Err(Diagnostics(vec![Diagnostic {
            file: name,
            line: 0,
            column: 0,
            document: 0,
            path: String::new(),
            code: "unreadable-file".into(),
            message: format!("cannot read the file: {err}"),
        }])),
    }
}

fn report(
    out: &mut Vec<Diagnostic>,
    problems: Vec<Problem>,
    doc: &Document,
    index: usize,
    diagnostic: &impl Fn(usize, usize, usize, Problem) -> Diagnostic,
) {
    for problem in problems {
        let pos = doc.position(&problem.path, problem.at_key);
        out.push(diagnostic(pos.line, pos.column, index, problem));
    }
}

/// `drop:` with nothing after it reads as null in YAML; it means `drop: {}`.
fn normalize(value: &mut Value) {
    let nodes = value
        .get_mut("spec")
        .and_then(|s| s.get_mut("nodes"))
        .and_then(Value::as_array_mut);
    for node in nodes.into_iter().flatten() {
        if let Some(drop) = node.get_mut("drop")
            && drop.is_null()
        {
            *drop = Value::Object(Default::default());
        }
    }
}

/// Checks a resource against the schema branch of its `kind`; `true` when it can be
/// deserialized (unknown fields are reported and removed).
fn check_structure(value: &mut Value, problems: &mut Vec<Problem>) -> bool {
    let root = schema_ref();
    let branches: Vec<(&str, &Value)> = root
        .get("oneOf")
        .and_then(Value::as_array)
        .map(|bs| {
            bs.iter()
                .filter_map(|b| Some((b.pointer("/properties/kind/const")?.as_str()?, b)))
                .collect()
        })
        .unwrap_or_default();
    let kinds = branches
        .iter()
        .map(|(k, _)| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(" or ");
    let Some(obj) = value.as_object() else {
        problems.push(Problem::new(
            "",
            "invalid-resource",
            "a resource is a mapping with `apiVersion`, `kind`, `metadata` and `spec`".into(),
        ));
        return false;
    };
    let kind = match obj.get("kind") {
        None => {
            problems.push(Problem::new(
                "",
                "missing-field",
                format!("missing field `kind` ({kinds})"),
            ));
            return false;
        }
        Some(Value::String(k)) => k.clone(),
        Some(_) => {
            problems.push(Problem::new(
                "/kind",
                "unknown-kind",
                format!("`kind` must be {kinds}"),
            ));
            return false;
        }
    };
    match branches.iter().find(|(k, _)| *k == kind) {
        Some((_, branch)) => {
            let before = problems.len();
            let ok = structure::check(root, branch, value, "", problems);
            ok && problems[before..].iter().all(|p| p.code == "unknown-field")
        }
        None => {
            let hint = nearest(&kind, branches.iter().map(|(k, _)| *k))
                .map(|n| format!(", did you mean `{n}`?"))
                .unwrap_or_default();
            problems.push(Problem::new(
                "/kind",
                "unknown-kind",
                format!("unknown kind `{kind}`{hint} (expected {kinds})"),
            ));
            false
        }
    }
}
