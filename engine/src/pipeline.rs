//! A compiled pipeline: the operator DAG with its planned expressions, and the batch loop that
//! runs a batch of messages through it and says, per input, its outputs, filtered, or its error.

use crate::columns::{Catalog, split_path};
use crate::decode::PathTrie;
use crate::frame::{BatchContext, Frame, Row};
use crate::message::{BatchResult, Fate, InputMessage};
use crate::operators::{self, Operator, PlanContext};
use datafusion::execution::SessionState;
use datafusion::execution::session_state::SessionStateBuilder;
use std::fmt;
use std::sync::Arc;
use weir_pipelines::{NodeKind, PayloadFormat, PipelineResource, ValidatedPipeline};

/// One problem found while compiling, with the node it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileProblem {
    /// Node id (`source` for the source, empty for the pipeline as a whole).
    pub node: String,
    /// JSON pointer of the offending value in the pipeline resource (e.g.
    /// `/spec/nodes/2/filter`), so that a checker can give it a line and column.
    pub path: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for CompileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.node.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "node `{}`: {}", self.node, self.message)
        }
    }
}

/// Every problem that kept a pipeline from compiling. A spec that passed
/// `weir_pipelines` validation compiles; the engine still checks what it relies on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pipeline `{pipeline}` does not compile:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct CompileError {
    /// The pipeline's name.
    pub pipeline: String,
    /// Every problem, in node order.
    pub problems: Vec<CompileProblem>,
}

struct CompiledNode {
    id: Arc<str>,
    op: Box<dyn Operator>,
    /// Targets of each output port (node indices).
    ports: Vec<Vec<usize>>,
}

/// A pipeline compiled into an operator DAG: compile once, then [`CompiledPipeline::process`]
/// any number of batches, from any number of threads.
pub struct CompiledPipeline {
    name: String,
    state: SessionState,
    catalog: Catalog,
    trie: PathTrie,
    nodes: Vec<CompiledNode>,
    /// Node indices in topological order (the entry node first).
    order: Vec<usize>,
    raw_format: bool,
    /// Whether some node edits payloads (the decoder then records field spans).
    edits_payload: bool,
}

impl fmt::Debug for CompiledPipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledPipeline")
            .field("name", &self.name)
            .field(
                "nodes",
                &self.nodes.iter().map(|n| &*n.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The DataFusion session expressions are planned with: every built-in scalar function, plus
/// the JSON functions (`json_get_str(data, 'a')`, ...).
fn session() -> SessionState {
    let mut state = SessionStateBuilder::new().with_default_features().build();
    // Registration only fails on a name clash between built-ins, which is a build-time bug.
    datafusion_functions_json::register_all(&mut state)
        .expect("JSON functions register on a fresh session");
    state
}

/// Checks a pipeline resource into its plan ([`weir_pipelines::plan`]), with the problems as a
/// [`CompileError`] (each with its node id).
pub fn plan(pipeline: &PipelineResource) -> Result<ValidatedPipeline, CompileError> {
    weir_pipelines::plan(pipeline).map_err(|problems| CompileError {
        pipeline: pipeline.metadata.name.clone(),
        problems: problems
            .into_iter()
            .map(|p| CompileProblem {
                node: node_of(pipeline, &p.path),
                path: p.path,
                message: p.message,
            })
            .collect(),
    })
}

impl CompiledPipeline {
    /// Checks and compiles a pipeline resource: [`weir_pipelines::plan`], then
    /// [`CompiledPipeline::from_plan`]. Reports every problem at once, each with its node id.
    pub fn compile(pipeline: &PipelineResource) -> Result<CompiledPipeline, CompileError> {
        Self::from_plan(&plan(pipeline)?)
    }

    /// Compiles a validated pipeline: each node's operator builds itself (expressions planned
    /// against the columns the pipeline reads); the graph is the plan's. Reports every problem
    /// at once (unknown functions, expression types), each with its node id.
    pub fn from_plan(plan: &ValidatedPipeline) -> Result<CompiledPipeline, CompileError> {
        let name = plan.name().to_string();
        let state = session();
        let mut catalog = Catalog::default();
        let mut problems: Vec<CompileProblem> = Vec::new();

        let raw_format = match plan.source.format {
            PayloadFormat::Json => false,
            PayloadFormat::Raw => true,
            other => {
                problems.push(CompileProblem {
                    node: "source".into(),
                    path: "/spec/source/format".into(),
                    message: format!(
                        "payload format `{}` is not supported by the engine yet; use `json` or `raw`",
                        serde_json::to_value(other)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default()
                    ),
                });
                false
            }
        };
        for (path, t) in &plan.source.fields {
            catalog.declare(split_path(path), *t);
        }

        let mut nodes: Vec<CompiledNode> = Vec::with_capacity(plan.nodes.len());
        for node in &plan.nodes {
            let id: Arc<str> = Arc::from(node.id.as_str());
            let mut cx = PlanContext {
                state: &state,
                catalog: &mut catalog,
                id: id.clone(),
                at: &node.pointer,
                problems: Vec::new(),
            };
            let op = operators::build(&node.op, &mut cx);
            for (field, message) in cx.problems {
                problems.push(CompileProblem {
                    node: node.id.clone(),
                    path: format!("{}{field}", node.pointer),
                    message,
                });
            }
            if let Some(op) = op {
                nodes.push(CompiledNode {
                    id,
                    op,
                    ports: node.ports.clone(),
                });
            }
        }
        if raw_format && !catalog.paths().is_empty() {
            problems.push(CompileProblem {
                node: "source".into(),
                path: "/spec/source/format".into(),
                message: "`format: raw` payloads have no fields; expressions may read only subject, headers and metadata".into(),
            });
        }
        if !problems.is_empty() {
            return Err(CompileError {
                pipeline: name,
                problems,
            });
        }
        let edits_payload = plan.has(NodeKind::Map);
        let trie = PathTrie::build(catalog.paths().into_iter().map(|(_, p)| p));
        for n in &nodes {
            n.op.on_start();
        }
        Ok(CompiledPipeline {
            name,
            state,
            catalog,
            trie,
            nodes,
            order: plan.order.clone(),
            raw_format,
            edits_payload,
        })
    }

    /// The columns the pipeline reads.
    pub(crate) fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs one batch through the DAG. Synchronous and CPU-only; never fails as a whole: each
    /// input gets its fate (outputs in a deterministic order, filtered, or its error).
    pub fn process(&self, batch: &[InputMessage]) -> BatchResult {
        let mut ctx = BatchContext {
            inputs: batch,
            state: &self.state,
            catalog: &self.catalog,
            trie: &self.trie,
            raw: self.raw_format,
            want_fields: self.edits_payload,
            spans: Vec::new(),
            errors: vec![None; batch.len()],
            outputs: vec![Vec::new(); batch.len()],
            tags: Vec::new(),
        };
        let rows: Vec<Row> = (0..batch.len() as u32)
            .map(|input| Row {
                input,
                base: None,
                edits: Vec::new(),
                edited_by: None,
                is_object: false,
                fields: None,
            })
            .collect();
        let frames = ctx.decode(rows, "source");
        let mut inbox: Vec<Vec<Frame>> = (0..self.nodes.len()).map(|_| Vec::new()).collect();
        if !self.nodes.is_empty() {
            inbox[0].extend(frames.into_iter().filter(|f| !f.rows.is_empty()));
        }
        for &i in &self.order {
            let frames = std::mem::take(&mut inbox[i]);
            let node = &self.nodes[i];
            for frame in frames {
                if frame.rows.is_empty() {
                    continue;
                }
                for (port, out) in node.op.process_batch(frame, &mut ctx) {
                    if out.rows.is_empty() {
                        continue;
                    }
                    let targets = &node.ports[port];
                    for (k, &t) in targets.iter().enumerate() {
                        if k + 1 == targets.len() {
                            inbox[t].push(out);
                            break;
                        }
                        inbox[t].push(out.clone());
                    }
                }
            }
        }
        let fates = ctx
            .errors
            .into_iter()
            .zip(ctx.outputs)
            .map(|(error, outputs)| match (error, outputs.is_empty()) {
                (Some(e), _) => Fate::Error(e),
                (None, false) => Fate::Outputs(outputs),
                (None, true) => Fate::Filtered,
            })
            .collect();
        BatchResult { fates }
    }
}

impl Drop for CompiledPipeline {
    fn drop(&mut self) {
        for n in &self.nodes {
            n.op.on_close();
        }
    }
}

/// The id of the node a JSON pointer lies in (`source` for the source, empty for the pipeline).
fn node_of(pipeline: &PipelineResource, pointer: &str) -> String {
    if pointer.starts_with("/spec/source") {
        return "source".into();
    }
    pointer
        .strip_prefix("/spec/nodes/")
        .and_then(|rest| rest.split('/').next())
        .and_then(|i| i.parse::<usize>().ok())
        .and_then(|i| pipeline.spec.nodes.get(i))
        .map(|n| n.id.clone())
        .unwrap_or_default()
}
