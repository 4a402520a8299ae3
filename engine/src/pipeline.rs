//! A compiled pipeline: the operator DAG with its planned expressions, and the batch loop that
//! runs a batch of messages through it and says, per input, its outputs, filtered, or its error.

use crate::columns::{Catalog, ColumnSource, split_path};
use crate::decode::PathTrie;
use crate::frame::{BatchContext, Frame, Row};
use crate::message::{BatchResult, Fate, InputMessage};
use crate::operators::route::Rule;
use crate::operators::{DropSink, Filter, Map, Operator, Publish, Route, Split};
use crate::sql::SqlExpr;
use crate::template::Template;
use datafusion::execution::SessionState;
use datafusion::execution::session_state::SessionStateBuilder;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use weir_pipelines::{NodeKind, PayloadFormat, PipelineResource};

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

fn problem(problems: &mut Vec<CompileProblem>, node: &str, path: String, message: String) {
    problems.push(CompileProblem {
        node: node.to_string(),
        path,
        message,
    });
}

impl CompiledPipeline {
    /// Compiles a pipeline. Reports every problem at once, each with its node id.
    pub fn compile(pipeline: &PipelineResource) -> Result<CompiledPipeline, CompileError> {
        let name = pipeline.metadata.name.clone();
        let spec = &pipeline.spec;
        let state = session();
        let mut catalog = Catalog::default();
        let mut problems: Vec<CompileProblem> = Vec::new();

        let raw_format = match spec.source.format {
            PayloadFormat::Json => false,
            PayloadFormat::Raw => true,
            other => {
                problem(
                    &mut problems,
                    "source",
                    "/spec/source/format".into(),
                    format!(
                        "payload format `{}` is not supported by the engine yet; use `json` or `raw`",
                        serde_json::to_value(other)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default()
                    ),
                );
                false
            }
        };
        for (path, t) in &spec.source.fields {
            catalog.declare(split_path(path), *t);
        }

        if spec.nodes.is_empty() {
            problem(
                &mut problems,
                "",
                "/spec/nodes".into(),
                "the pipeline has no nodes".into(),
            );
        }
        let index: HashMap<&str, usize> = spec
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect();
        if index.len() != spec.nodes.len() {
            let mut seen = std::collections::HashSet::new();
            for (i, n) in spec.nodes.iter().enumerate() {
                if !seen.insert(n.id.as_str()) {
                    problem(
                        &mut problems,
                        &n.id,
                        format!("/spec/nodes/{i}/id"),
                        "duplicate node id".into(),
                    );
                }
            }
        }
        let resolve = |ids: Vec<&str>,
                       node: &str,
                       path: String,
                       problems: &mut Vec<CompileProblem>|
         -> Vec<usize> {
            ids.into_iter()
                .filter_map(|id| match index.get(id) {
                    Some(i) => Some(*i),
                    None => {
                        problems.push(CompileProblem {
                            node: node.to_string(),
                            path: path.clone(),
                            message: format!(
                                "`next` names `{id}`, which is not a node of this pipeline"
                            ),
                        });
                        None
                    }
                })
                .collect()
        };

        let mut nodes: Vec<CompiledNode> = Vec::with_capacity(spec.nodes.len());
        for (node_no, node) in spec.nodes.iter().enumerate() {
            let at = format!("/spec/nodes/{node_no}");
            let id: Arc<str> = Arc::from(node.id.as_str());
            let kind = match node.kind() {
                Some(k) => k,
                None => {
                    let kinds = node.kinds();
                    problem(
                        &mut problems,
                        &node.id,
                        at.clone(),
                        if kinds.is_empty() {
                            "a node needs exactly one kind (filter, map, route, publish, split, drop)".into()
                        } else {
                            format!(
                                "a node has exactly one kind, this one has {}",
                                kinds
                                    .iter()
                                    .map(|k| k.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        },
                    );
                    continue;
                }
            };
            let next = node.next.as_ref().map(|n| n.ids()).unwrap_or_default();
            // (pointer below the node, message)
            let mut node_problems: Vec<(String, String)> = Vec::new();
            let mut expr =
                |text: &str, catalog: &mut Catalog, what: &str, field: String| -> Option<SqlExpr> {
                    catalog.reading = format!("{at}{field}");
                    match SqlExpr::compile(text, &state, catalog)
                        .and_then(|e| check_plans(e, &state, catalog))
                    {
                        Ok(e) => Some(e),
                        Err(e) => {
                            node_problems.push((field, format!("{what}: {e}")));
                            None
                        }
                    }
                };
            let op: Option<Box<dyn Operator>> = match kind {
                NodeKind::Filter => expr(
                    node.filter.as_deref().unwrap_or_default(),
                    &mut catalog,
                    "filter",
                    "/filter".into(),
                )
                .map(|predicate| {
                    Box::new(Filter {
                        id: id.clone(),
                        predicate,
                    }) as Box<dyn Operator>
                }),
                NodeKind::Map => {
                    let spec = node.map.as_ref().expect("kind is map");
                    let mut set = Vec::new();
                    for (path, text) in &spec.set {
                        if let Some(e) = expr(
                            text,
                            &mut catalog,
                            &format!("set {path}"),
                            format!("/map/set/{}", escape_pointer(path)),
                        ) {
                            set.push((Arc::new(split_path(path)), e));
                        }
                    }
                    let rename = spec
                        .rename
                        .iter()
                        .map(|(a, b)| (Arc::new(split_path(a)), Arc::new(split_path(b))))
                        .collect();
                    let cast: Vec<_> = spec
                        .cast
                        .iter()
                        .map(|(p, t)| (Arc::new(split_path(p)), *t))
                        .collect();
                    catalog.reading = format!("{at}/map/cast");
                    for (p, _) in &cast {
                        catalog.add(ColumnSource::Path(p.to_vec()));
                    }
                    let remove = spec
                        .remove
                        .iter()
                        .map(|p| Arc::new(split_path(p)))
                        .collect();
                    Some(Box::new(Map {
                        id: id.clone(),
                        set,
                        rename,
                        cast,
                        remove,
                    }) as Box<dyn Operator>)
                }
                NodeKind::Route => {
                    let rules_spec = node.route.as_ref().expect("kind is route");
                    let mut rules = Vec::new();
                    for (i, r) in rules_spec.iter().enumerate() {
                        let what = match &r.name {
                            Some(n) => format!("rule `{n}`"),
                            None => format!("rule {}", i + 1),
                        };
                        if let Some(when) =
                            expr(&r.when, &mut catalog, &what, format!("/route/{i}/when"))
                        {
                            rules.push(Rule { when, stop: r.stop });
                        }
                    }
                    Some(Box::new(Route {
                        id: id.clone(),
                        rules,
                    }) as Box<dyn Operator>)
                }
                NodeKind::Publish => {
                    let p = node.publish.as_ref().expect("kind is publish");
                    catalog.reading = format!("{at}/publish/subject");
                    let subject =
                        Template::compile(&p.subject, &state, &mut catalog).map(Template::subject);
                    let mut headers = Vec::new();
                    let mut ok = true;
                    match &subject {
                        Err(es) => {
                            ok = false;
                            node_problems.extend(
                                es.iter()
                                    .map(|e| ("/publish/subject".into(), format!("subject: {e}"))),
                            );
                        }
                        Ok(t) => {
                            if let Some(c) = t.constant()
                                && let Err(e) = crate::template::check_subject(c)
                            {
                                ok = false;
                                node_problems.push(("/publish/subject".into(), e));
                            }
                        }
                    }
                    for (k, v) in &p.headers {
                        let field = format!("/publish/headers/{}", escape_pointer(k));
                        catalog.reading = format!("{at}{field}");
                        match Template::compile(v, &state, &mut catalog) {
                            Ok(t) => headers.push((k.clone(), t)),
                            Err(es) => {
                                ok = false;
                                node_problems.extend(
                                    es.iter()
                                        .map(|e| (field.clone(), format!("header {k}: {e}"))),
                                );
                            }
                        }
                    }
                    match subject {
                        Ok(subject) if ok => Some(Box::new(Publish {
                            id: id.clone(),
                            subject,
                            headers,
                        }) as Box<dyn Operator>),
                        _ => None,
                    }
                }
                NodeKind::Split => {
                    let s = node.split.as_ref().expect("kind is split");
                    Some(Box::new(Split {
                        id: id.clone(),
                        field: split_path(&s.field),
                    }) as Box<dyn Operator>)
                }
                NodeKind::Drop => Some(Box::new(DropSink) as Box<dyn Operator>),
            };
            for (field, m) in node_problems {
                problem(&mut problems, &node.id, format!("{at}{field}"), m);
            }
            if !kind.is_sink() && node.targets().is_empty() {
                problem(
                    &mut problems,
                    &node.id,
                    at.clone(),
                    format!(
                        "a `{}` node needs `next` (only publish and drop end a path)",
                        kind.as_str()
                    ),
                );
            }
            let ports = match kind {
                NodeKind::Route => {
                    let mut ports: Vec<Vec<usize>> = Vec::new();
                    for (i, r) in node.route.as_deref().unwrap_or_default().iter().enumerate() {
                        ports.push(resolve(
                            r.next.ids(),
                            &node.id,
                            format!("{at}/route/{i}/next"),
                            &mut problems,
                        ));
                    }
                    ports.push(resolve(
                        node.default.as_ref().map(|d| d.ids()).unwrap_or_default(),
                        &node.id,
                        format!("{at}/default"),
                        &mut problems,
                    ));
                    ports
                }
                _ => vec![resolve(next, &node.id, format!("{at}/next"), &mut problems)],
            };
            if let Some(op) = op {
                nodes.push(CompiledNode { id, op, ports });
            }
        }
        if raw_format && !catalog.paths().is_empty() {
            problems.push(CompileProblem {
                node: "source".into(),
                path: "/spec/source/format".into(),
                message: "`format: raw` payloads have no fields; expressions may read only subject, headers and metadata".into(),
            });
        }

        let order = if problems.is_empty() {
            match topological_order(&nodes) {
                Ok(o) => o,
                Err(cycle_at) => {
                    let path = spec
                        .nodes
                        .iter()
                        .position(|n| n.id == cycle_at)
                        .map(|i| format!("/spec/nodes/{i}/next"))
                        .unwrap_or_default();
                    problems.push(CompileProblem {
                        node: cycle_at,
                        path,
                        message: "the nodes form a cycle; a pipeline is a DAG".into(),
                    });
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        if !problems.is_empty() {
            return Err(CompileError {
                pipeline: name,
                problems,
            });
        }
        let edits_payload = spec.nodes.iter().any(|n| n.kind() == Some(NodeKind::Map));
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
            order,
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

/// A map key or header name as one JSON pointer segment.
fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Plans the expression against the compile-time schema so that unknown functions and
/// columns are reported now, not on the first batch.
fn check_plans(expr: SqlExpr, state: &SessionState, catalog: &Catalog) -> Result<SqlExpr, String> {
    let schema = catalog.schema(&catalog.compile_time_types());
    expr.physical(state, &schema)?;
    Ok(expr)
}

/// Kahn's algorithm from the entry node; Err(node id) on a cycle.
fn topological_order(nodes: &[CompiledNode]) -> Result<Vec<usize>, String> {
    let n = nodes.len();
    let mut indegree = vec![0usize; n];
    for node in nodes {
        for port in &node.ports {
            for &t in port {
                indegree[t] += 1;
            }
        }
    }
    let mut ready: std::collections::VecDeque<usize> =
        (0..n).filter(|i| indegree[*i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_front() {
        order.push(i);
        for port in &nodes[i].ports {
            for &t in port {
                indegree[t] -= 1;
                if indegree[t] == 0 {
                    ready.push_back(t);
                }
            }
        }
    }
    if order.len() == n {
        Ok(order)
    } else {
        let at = (0..n).find(|i| indegree[*i] > 0).unwrap_or(0);
        Err(nodes[at].id.to_string())
    }
}
