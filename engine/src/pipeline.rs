//! A compiled pipeline: the operator DAG with its planned expressions, and the batch loop that
//! runs a batch of messages through it and says, per input, its outputs, filtered, or its error.

use crate::binary::{BinaryPayload, Transcoded};
use crate::columns::{Catalog, ColumnSource, split_path};
use crate::decode::PathTrie;
use crate::frame::{BatchContext, Frame, Row};
use crate::message::{BatchResult, Emitted, Fate, InputMessage, NodeCount, NodeStats};
use crate::operators::{self, Operator, Origin, PlanContext, SideOutput};
use datafusion::execution::SessionState;
use datafusion::execution::session_state::SessionStateBuilder;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use weir_pipelines::{NodeKind, PayloadFormat, PipelineResource, ValidatedPipeline};

/// Binary payloads are skimmed ([`CompiledPipeline::skim`]) while fewer than this share of the
/// last batch's inputs (in thousandths) reached a node that reads payloads: skimming and then
/// writing a text costs about half again as much as writing it at once.
const SKIM_BELOW: u32 = 500;

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
    /// The decoder of Avro and Protobuf payloads into JSON (`None` for JSON and raw).
    binary: Option<BinaryPayload>,
    /// Whether some node edits payloads (the decoder then records field spans).
    record_fields: bool,
    /// Whether binary payloads are decoded into their path values alone, their JSON texts
    /// written only for the messages that reach a node that reads payloads: when the entry
    /// node reads none (a filter or a route), no node records field spans and no expression
    /// reads `data` whole.
    skim: bool,
    /// Of the last batch decoded with `skim` possible: the share of its inputs that reached a
    /// node that reads payloads, in thousandths.
    text_share: AtomicU32,
    /// The plan it was compiled from, to compile another instance with its own state.
    plan: Arc<ValidatedPipeline>,
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

/// The JSON Schema a `format: json` source names, when the control plane embedded it at
/// deploy (the reader version among `writers`), with the documents its `$ref`s name; `None`
/// for a bare subject, which runs with its fields typed from their values.
fn json_source_schema(
    schema: &weir_pipelines::spec::SourceSchema,
) -> Option<(serde_json::Value, Vec<(&str, serde_json::Value)>)> {
    let reader = schema.writers.iter().find(|w| Some(w.id) == schema.id)?;
    // A reference that is not JSON names nothing: the properties that use it stay untyped.
    let references = reader
        .references
        .iter()
        .filter_map(|r| Some((r.name.as_str(), serde_json::from_str(&r.schema).ok()?)))
        .collect();
    Some((serde_json::from_str(&reader.schema).ok()?, references))
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
        Self::build(plan, false)
    }

    /// Compiles only to check the file: `wasm` modules this process does not hold are assumed
    /// to exist (see [`PlanContext::checking`]).
    pub(crate) fn compile_to_check(
        pipeline: &PipelineResource,
    ) -> Result<CompiledPipeline, CompileError> {
        Self::build(&plan(pipeline)?, true)
    }

    fn build(plan: &ValidatedPipeline, checking: bool) -> Result<CompiledPipeline, CompileError> {
        let name = plan.name().to_string();
        let state = session();
        let mut catalog = Catalog::default();
        let mut problems: Vec<CompileProblem> = Vec::new();

        let raw_format = plan.source.format == PayloadFormat::Raw;
        let mut binary =
            BinaryPayload::build(plan.source.format, plan.source.schema.as_ref(), checking)
                .unwrap_or_else(|message| {
                    problems.push(CompileProblem {
                        node: "source".into(),
                        path: "/spec/source/schema".into(),
                        message,
                    });
                    None
                });
        if plan.source.format == PayloadFormat::Json
            && let Some((reader, references)) =
                plan.source.schema.as_ref().and_then(json_source_schema)
        {
            catalog.type_by_schema(crate::json_types::field_types(&reader, &references));
        }
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
                tenant: plan.resource.metadata.tenant.as_deref().unwrap_or_default(),
                checking,
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
        // Top-level field spans serve `map` edits and `validate`'s fast path.
        let record_fields = plan.has(NodeKind::Map) || plan.has(NodeKind::Validate);
        let trie = PathTrie::build(catalog.paths().into_iter().map(|(_, p)| p));
        if let Some(binary) = &mut binary {
            let paths = catalog.paths();
            let typed = paths
                .iter()
                .all(|(idx, _)| catalog.declared(*idx).is_none());
            binary.bind(&trie, paths.len(), typed);
        }
        let skim = !record_fields
            && catalog.index_of(&ColumnSource::Payload).is_none()
            && nodes.first().is_some_and(|n| !n.op.reads_payload());
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
            binary,
            record_fields,
            skim,
            text_share: AtomicU32::new(0),
            plan: Arc::new(plan.clone()),
        })
    }

    /// Another instance of this pipeline with its own, empty state (a keyed partition of a
    /// stateful pipeline runs on its own instance).
    pub fn recompile(&self) -> Result<CompiledPipeline, CompileError> {
        Self::from_plan(&self.plan)
    }

    /// The pipeline resource it was compiled from.
    pub fn resource(&self) -> &PipelineResource {
        &self.plan.resource
    }

    /// The columns the pipeline reads.
    pub(crate) fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The named counters of the nodes that keep some (a `wasm` node's `weir.counter`), by
    /// node id.
    pub fn node_counters(&self) -> Vec<(String, std::collections::BTreeMap<String, i64>)> {
        self.nodes
            .iter()
            .map(|n| (n.id.to_string(), n.op.counters()))
            .filter(|(_, c)| !c.is_empty())
            .collect()
    }

    /// Runs one batch through the DAG. Synchronous and CPU-only; never fails as a whole: each
    /// input gets its fate (outputs in a deterministic order, filtered, or its error). Results
    /// of windows that the batch closed come in [`BatchResult::emitted`].
    pub fn process(&self, batch: &[InputMessage]) -> BatchResult {
        self.process_visiting(batch, |_, _| {})
    }

    /// Like [`CompiledPipeline::process`], and also says, per input, the ids of the nodes it
    /// reached, in topological order (for testing a pipeline on samples before deploying).
    pub fn process_traced(&self, batch: &[InputMessage]) -> (BatchResult, Vec<Vec<String>>) {
        let mut paths: Vec<Vec<String>> = vec![Vec::new(); batch.len()];
        let result = self.process_visiting(batch, |node, frame| {
            for row in &frame.rows {
                let path = &mut paths[row.input as usize];
                if path.last().map(String::as_str) != Some(&*self.nodes[node].id) {
                    path.push(self.nodes[node].id.to_string());
                }
            }
        });
        (result, paths)
    }

    /// One batch from the entry node, `visit(node, frame)` seeing each frame before its node
    /// runs; then the side outputs of stateful nodes.
    fn process_visiting(
        &self,
        batch: &[InputMessage],
        visit: impl FnMut(usize, &Frame),
    ) -> BatchResult {
        let (fates, nodes, side) = match &self.binary {
            None => self.run(batch, &[0], visit, None),
            Some(binary) => {
                let n_paths = self.catalog.paths().len();
                // Skimming pays when most messages never reach a node that reads payloads;
                // when most did in the last batch, writing every text at once costs less.
                let skim = self.skim && self.text_share.load(Ordering::Relaxed) < SKIM_BELOW;
                let json = skim
                    .then(|| Transcoded::typed(binary, batch, n_paths))
                    .flatten()
                    .unwrap_or_else(|| {
                        Transcoded::batch(binary, batch, n_paths, self.record_fields, skim)
                    });
                self.run(batch, &[0], visit, Some(json))
            }
        };
        let mut result = BatchResult {
            fates,
            nodes,
            emitted: Vec::new(),
        };
        self.settle_side(side, &mut result);
        result
    }

    /// Moves every stateful node's time on to `now_micros` (wall clock): windows whose
    /// source has been quiet for their idle timeout close. Returns what they emitted.
    pub fn advance(&self, now_micros: i64) -> Vec<Emitted> {
        self.close_windows(Some(now_micros))
    }

    /// Closes every open window (the end of the input, as in `weir test`). Returns what they
    /// emitted.
    pub fn flush(&self) -> Vec<Emitted> {
        self.close_windows(None)
    }

    fn close_windows(&self, now_micros: Option<i64>) -> Vec<Emitted> {
        let mut side = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            for s in node.op.on_time(now_micros) {
                side.push((i, s));
            }
        }
        let mut result = BatchResult::default();
        self.settle_side(side, &mut result);
        result.emitted
    }

    /// The state of every stateful node, as bytes for a checkpoint (see `snapshot.rs`: node
    /// id → the node's snapshot; a window's accumulator states inside are Arrow IPC).
    pub fn snapshot(&self) -> Result<Vec<u8>, String> {
        let mut nodes = std::collections::BTreeMap::new();
        for n in &self.nodes {
            if let Some(bytes) =
                n.op.snapshot()
                    .map_err(|e| format!("node `{}`: {e}", n.id))?
            {
                nodes.insert(n.id.to_string(), serde_bytes::ByteBuf::from(bytes));
            }
        }
        crate::snapshot::encode(&nodes)
    }

    /// Replaces the state of the stateful nodes with a [`CompiledPipeline::snapshot`]; a node
    /// the snapshot does not name starts empty.
    pub fn restore(&self, bytes: &[u8]) -> Result<(), String> {
        let mut nodes = crate::snapshot::decode_nodes(bytes)?;
        for n in &self.nodes {
            let Some(bytes) = nodes.remove(&*n.id) else {
                continue;
            };
            n.op.restore(&bytes, &self.state, &self.catalog)
                .map_err(|e| format!("node `{}`: {e}", n.id))?;
        }
        Ok(())
    }

    /// What each stateful node holds now, by node id.
    pub fn stats(&self) -> Vec<(String, NodeStats)> {
        self.nodes
            .iter()
            .filter_map(|n| n.op.stats().map(|s| (n.id.to_string(), s)))
            .collect()
    }

    /// Whether some node keeps state across batches (a window).
    pub fn is_stateful(&self) -> bool {
        self.nodes.iter().any(|n| n.op.is_stateful())
    }

    /// Runs the side outputs of stateful nodes through their ports' targets: a late event's
    /// outputs join its input's fate; a window result becomes an [`Emitted`]. Side outputs of
    /// those runs (windows after windows) are settled the same way.
    fn settle_side(&self, mut side: Vec<(usize, SideOutput)>, result: &mut BatchResult) {
        while !side.is_empty() {
            let mut next = Vec::new();
            // One run per (node, port), in the order the side outputs came.
            let mut groups: Vec<((usize, usize), Vec<SideOutput>)> = Vec::new();
            for (node, s) in side {
                match groups.iter_mut().find(|(k, _)| *k == (node, s.port)) {
                    Some((_, v)) => v.push(s),
                    None => groups.push(((node, s.port), vec![s])),
                }
            }
            for ((node, port), outs) in groups {
                let targets = &self.nodes[node].ports[port];
                let (origins, messages): (Vec<Origin>, Vec<InputMessage>) =
                    outs.into_iter().map(|s| (s.origin, s.message)).unzip();
                let (fates, more) = if targets.is_empty() {
                    (vec![Fate::Filtered; messages.len()], Vec::new())
                } else {
                    let (fates, _, more) = self.run(&messages, targets, |_, _| {}, None);
                    (fates, more)
                };
                next.extend(more);
                for (origin, fate) in origins.into_iter().zip(fates) {
                    match origin {
                        Origin::Input(i) => merge_fate(&mut result.fates[i as usize], fate),
                        Origin::Window(id) => result.emitted.push(Emitted {
                            node: self.nodes[node].id.to_string(),
                            id,
                            fate,
                        }),
                    }
                }
            }
            side = next;
        }
    }

    /// Runs `batch` through the DAG from the `entries` nodes (each receives every message);
    /// `visit(node, frame)` sees each non-empty frame before node `node` runs. Returns the
    /// fates, the per-node counts and the side outputs of stateful nodes. With `json`, the
    /// inputs' payloads are Avro or Protobuf and these are their JSON texts (the inputs it
    /// could not decode are settled as those errors).
    #[allow(clippy::type_complexity)]
    fn run(
        &self,
        batch: &[InputMessage],
        entries: &[usize],
        mut visit: impl FnMut(usize, &Frame),
        mut json: Option<Transcoded>,
    ) -> (Vec<Fate>, Vec<NodeCount>, Vec<(usize, SideOutput)>) {
        let mut ctx = BatchContext {
            inputs: batch,
            state: &self.state,
            catalog: &self.catalog,
            trie: &self.trie,
            raw: self.raw_format,
            want_fields: self.record_fields,
            spans: json
                .as_mut()
                .map(|j| std::mem::take(&mut j.spans))
                .unwrap_or_default(),
            errors: vec![None; batch.len()],
            failures: 0,
            emitted: 0,
            outputs: vec![Vec::new(); batch.len()],
            side: Vec::new(),
            counts: Vec::new(),
            tags: Vec::new(),
            lazy: None,
        };
        if let Some(json) = json.as_mut() {
            ctx.lazy = self.binary.as_ref().and_then(|b| json.lazy(b));
            ctx.failures = json.failed.len() as u64;
            for (i, e) in json.failed.drain(..) {
                ctx.errors[i] = Some(e);
            }
        }
        let mut counts = self.empty_counts(batch.len());
        let rows: Vec<Row> = (0..batch.len() as u32)
            .filter(|&i| ctx.errors[i as usize].is_none())
            .map(|input| Row {
                input,
                // Each text has one row: moved, not shared.
                base: json.as_mut().and_then(|j| j.take_text(input)),
                edits: Vec::new(),
                edited_by: None,
                is_object: false,
                fields: None,
                meta: None,
            })
            .collect();
        // Which inputs reached a node that reads payloads (for `text_share`).
        let mut reached = (self.skim && json.is_some()).then(|| vec![false; batch.len()]);
        let frames = ctx.decode_source(rows, json.as_ref());
        counts[0].errors = ctx.failures;
        counts[0].ports[0] = batch.len() as u64 - ctx.failures;
        let mut inbox: Vec<Vec<Frame>> = (0..self.nodes.len()).map(|_| Vec::new()).collect();
        if !self.nodes.is_empty() {
            let frames: Vec<Frame> = frames.into_iter().filter(|f| !f.rows.is_empty()).collect();
            for (k, &e) in entries.iter().enumerate() {
                if k + 1 == entries.len() {
                    inbox[e].extend(frames);
                    break;
                }
                inbox[e].extend(frames.iter().cloned());
            }
        }
        let mut side = Vec::new();
        for &i in &self.order {
            let frames = std::mem::take(&mut inbox[i]);
            let node = &self.nodes[i];
            for frame in frames {
                if frame.rows.is_empty() {
                    continue;
                }
                visit(i, &frame);
                let count = &mut counts[i + 1];
                count.rows_in += frame.rows.len() as u64;
                let (failures, emitted) = (ctx.failures, ctx.emitted);
                let frame = if node.op.reads_payload() {
                    if let Some(reached) = reached.as_mut() {
                        for r in &frame.rows {
                            reached[r.input as usize] = true;
                        }
                    }
                    ctx.with_texts(frame)
                } else {
                    frame
                };
                let outs = node.op.process_batch(frame, &mut ctx);
                count.errors += ctx.failures - failures;
                count.outputs += ctx.emitted - emitted;
                for (port, out) in outs {
                    if out.rows.is_empty() {
                        continue;
                    }
                    let targets = &node.ports[port];
                    if !targets.is_empty() {
                        count.ports[port] += out.rows.len() as u64;
                    }
                    for (k, &t) in targets.iter().enumerate() {
                        if k + 1 == targets.len() {
                            inbox[t].push(out);
                            break;
                        }
                        inbox[t].push(out.clone());
                    }
                }
                side.extend(ctx.side.drain(..).map(|s| (i, s)));
                for (name, n) in ctx.counts.drain(..) {
                    match count.counters.iter_mut().find(|(k, _)| *k == name) {
                        Some((_, total)) => *total += n,
                        None => count.counters.push((name, n)),
                    }
                }
            }
        }
        if let Some(reached) = reached
            && !batch.is_empty()
        {
            let n = reached.iter().filter(|r| **r).count();
            let share = (n * 1000 / batch.len()) as u32;
            self.text_share.store(share, Ordering::Relaxed);
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
        (fates, counts, side)
    }

    /// Zeroed per-node counts for one batch: `source` (its one port: rows decoded), then each
    /// node in spec order.
    fn empty_counts(&self, inputs: usize) -> Vec<NodeCount> {
        let source = NodeCount {
            node: Arc::from("source"),
            rows_in: inputs as u64,
            ports: vec![0],
            ..NodeCount::default()
        };
        std::iter::once(source)
            .chain(self.nodes.iter().map(|n| NodeCount {
                node: n.id.clone(),
                ports: vec![0; n.ports.len()],
                ..NodeCount::default()
            }))
            .collect()
    }
}

/// Joins a late event's fate downstream of the late port into its input's fate: an error
/// wins, outputs add up.
fn merge_fate(fate: &mut Fate, more: Fate) {
    match (std::mem::replace(fate, Fate::Filtered), more) {
        (Fate::Error(e), _) | (_, Fate::Error(e)) => *fate = Fate::Error(e),
        (Fate::Outputs(mut a), Fate::Outputs(b)) => {
            a.extend(b);
            *fate = Fate::Outputs(a);
        }
        (Fate::Outputs(a), Fate::Filtered) | (Fate::Filtered, Fate::Outputs(a)) => {
            *fate = Fate::Outputs(a)
        }
        (Fate::Filtered, Fate::Filtered) => {}
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
