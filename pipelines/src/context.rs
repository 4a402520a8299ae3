//! Checks of a pipeline against what surrounds it: its source filter must lie inside its
//! stream's subjects, it must not publish into its own source (every output would come back
//! as an input), and a DLQ stream it names must be the one that captures its DLQ subject. The streams are those of the same file (`weir validate`) or those that exist
//! (the API). The engine's compile check is registered here by the binary that links it, so
//! that every loader (CLI and API) runs it without this crate depending on the engine.

use std::sync::OnceLock;

use crate::problem::Problem;
use crate::spec::{NodeKind, PipelineResource};
use crate::subject::{filter_covers, filters_overlap};
use crate::template::{self, Part};

/// A check that needs more than this crate: the engine's compile (unknown SQL functions,
/// expression types, undeclared fields). Problems carry JSON pointers like every other.
pub type CompileCheck = fn(&PipelineResource) -> Vec<Problem>;

static COMPILE_CHECK: OnceLock<CompileCheck> = OnceLock::new();

/// Registers the compile check run by [`crate::load_str`] on every pipeline that passes this
/// crate's own checks. The `weir` binary registers the engine's; the first registration wins.
pub fn set_compile_check(check: CompileCheck) {
    let _ = COMPILE_CHECK.set(check);
}

/// The registered compile check's problems (none when no check is registered).
pub fn compile_problems(pipeline: &PipelineResource) -> Vec<Problem> {
    COMPILE_CHECK.get().map(|c| c(pipeline)).unwrap_or_default()
}

/// One sample input's trip through a pipeline: the ids of the nodes it reached (in
/// topological order) and its fate.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRun {
    /// Node ids the input (or a row derived from it) reached.
    pub path: Vec<String>,
    /// Its outputs, filtered, or its error.
    pub fate: crate::message::Fate,
}

/// Runs a pipeline on sample inputs, one [`SampleRun`] per input in input order; `Err` says
/// why the pipeline could not run (it did not compile).
pub type SampleRunner =
    fn(&PipelineResource, &[crate::message::InputMessage]) -> Result<Vec<SampleRun>, String>;

static SAMPLE_RUNNER: OnceLock<SampleRunner> = OnceLock::new();

/// Registers the sample runner behind "test before deploy" (`POST /pipelines:test`). The `weir`
/// binary registers the engine's, so that the control plane never depends on the engine.
pub fn set_sample_runner(runner: SampleRunner) {
    let _ = SAMPLE_RUNNER.set(runner);
}

/// The registered sample runner, if any.
pub fn sample_runner() -> Option<SampleRunner> {
    SAMPLE_RUNNER.get().copied()
}

/// A stream a pipeline may read from: its name and subjects.
#[derive(Debug, Clone, Copy)]
pub struct KnownStream<'a> {
    /// Stream name.
    pub name: &'a str,
    /// Subjects it captures.
    pub subjects: &'a [String],
}

/// Checks a pipeline against the streams known around it (empty when none are known).
pub fn check_against_streams(pipeline: &PipelineResource, streams: &[KnownStream]) -> Vec<Problem> {
    let spec = &pipeline.spec;
    let src = &spec.source;
    let mut out = Vec::new();
    let stream = streams.iter().find(|s| s.name == src.stream);
    if let Some(stream) = stream {
        for (i, filter) in src.subjects.iter().enumerate() {
            if !stream.subjects.iter().any(|s| filter_covers(s, filter)) {
                out.push(Problem::new(
                    format!("/spec/source/subjects/{i}"),
                    "subject-outside-stream",
                    format!(
                        "source subject `{filter}` lies outside the subjects of stream `{}` ({}): the pipeline would never receive a message; use a filter within them",
                        stream.name,
                        list(stream.subjects)
                    ),
                ));
            }
        }
    }
    if let Some(dlq) = &spec.errors.dlq
        && let Some(named) = &dlq.stream
        && let Some(capturing) = streams
            .iter()
            .find(|s| s.subjects.iter().any(|f| filter_covers(f, &dlq.subject)))
        && capturing.name != named
    {
        out.push(Problem::new(
            "/spec/errors/dlq/stream",
            "dlq-stream-conflict",
            format!(
                "the dead-letter subject `{}` is captured by stream `{}`, not by the named stream `{named}`; remove `stream:` to store dead letters in `{}`, or pick a subject it does not capture",
                dlq.subject, capturing.name, capturing.name
            ),
        ));
    }
    // What the source reads: its own filters, or its whole stream.
    let reads: &[String] = match (src.subjects.is_empty(), stream) {
        (false, _) => &src.subjects,
        (true, Some(s)) => s.subjects,
        (true, None) => &[],
    };
    for (i, node) in spec.nodes.iter().enumerate() {
        let (Some(NodeKind::Publish), Some(p)) = (node.kind(), &node.publish) else {
            continue;
        };
        let Some(pattern) = template_pattern(&p.subject) else {
            continue;
        };
        if let Some(read) = reads.iter().find(|r| filters_overlap(r, &pattern)) {
            out.push(Problem::new(
                format!("/spec/nodes/{i}/publish/subject"),
                "publish-loop",
                format!(
                    "node `{}` publishes to `{}`, which this pipeline's own source reads (`{read}`): every output would come back as an input, again and again; publish outside the source's subjects or narrow `source.subjects`",
                    node.id, p.subject
                ),
            ));
        }
    }
    out
}

/// The subjects a template can produce, as a filter: each token holding a placeholder is `*`.
fn template_pattern(subject: &str) -> Option<String> {
    let parts = template::parse(subject).ok()?;
    let mut text = String::new();
    for part in parts {
        match part {
            Part::Literal(l) => text.push_str(&l),
            Part::Expr(_) => text.push('\u{0}'),
        }
    }
    let tokens: Vec<&str> = text
        .split('.')
        .map(|t| if t.contains('\u{0}') { "*" } else { t })
        .collect();
    Some(tokens.join("."))
}

fn list(subjects: &[String]) -> String {
    subjects
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert_eq!(
            template_pattern("alerts.{data.site}").as_deref(),
            Some("alerts.*")
        );
        assert_eq!(template_pattern("a.x-{data.b}.c").as_deref(), Some("a.*.c"));
    }
}
