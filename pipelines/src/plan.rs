//! The validated, typed form of a pipeline (the plan): what the engine compiles and the runtime
//! runs. [`plan`] checks a pipeline resource once and returns its nodes as a kind enum with a
//! resolved graph (target indices per output port, topological order) and its durations, sizes
//! and start time parsed, so that no later stage re-checks or re-parses the file's strings.

use std::time::Duration;

use crate::check::check_resource;
use crate::problem::Problem;
use crate::spec::{
    DedupSpec, DeliverPolicy, DropSpec, FieldType, MapSpec, Next, Node, PayloadFormat,
    PipelineResource, PublishSpec, Resource, Source, SplitSpec, WasmSpec, WindowKind, WindowSpec,
};
use crate::units::{parse_duration, parse_size};
use indexmap::IndexMap;

/// A pipeline that passed every check of this crate, in typed form.
#[derive(Debug, Clone)]
pub struct ValidatedPipeline {
    /// The resource as written (kept for what is already typed there: metadata, source
    /// stream and subjects, DLQ target, tests).
    pub resource: PipelineResource,
    /// The source's typed settings.
    pub source: SourcePlan,
    /// The nodes, in file order; index 0 is the entry node.
    pub nodes: Vec<PlannedNode>,
    /// Node indices in topological order (the entry node first).
    pub order: Vec<usize>,
    /// Retries of transient errors.
    pub retry: RetryPlan,
    /// Worker-side execution settings.
    pub execution: ExecutionPlan,
}

impl ValidatedPipeline {
    /// The pipeline's name (`metadata.name`).
    pub fn name(&self) -> &str {
        &self.resource.metadata.name
    }

    /// Whether some node is of `kind`.
    pub fn has(&self, kind: crate::spec::NodeKind) -> bool {
        self.nodes.iter().any(|n| n.op.kind() == kind)
    }
}

/// The source's settings with units parsed; absent values stay `None` for the runtime's
/// defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SourcePlan {
    /// Payload encoding.
    pub format: PayloadFormat,
    /// Declared payload fields.
    pub fields: IndexMap<String, FieldType>,
    /// The payload's registry schema (`avro`, `protobuf`), as the control plane resolved it.
    pub schema: Option<crate::spec::SourceSchema>,
    /// Where a new consumer starts.
    pub deliver: Deliver,
    /// Durable name, when the file names one.
    pub durable: Option<String>,
    /// Ack wait.
    pub ack_wait: Option<Duration>,
    /// Max unacknowledged messages.
    pub max_ack_pending: Option<i64>,
    /// Messages per fetch.
    pub batch_size: Option<usize>,
    /// Longest wait for a fetch to fill.
    pub max_wait: Option<Duration>,
}

/// Where a new consumer starts, with the start time parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deliver {
    /// From the first message.
    All,
    /// Only new messages.
    New,
    /// The last message of each subject, then new ones.
    LastPerSubject,
    /// From a stream sequence.
    Sequence(u64),
    /// From a time.
    Time(time::OffsetDateTime),
}

/// Retries of transient errors, with durations parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPlan {
    /// Deliveries before a message goes to the DLQ (at least 1).
    pub max_attempts: u32,
    /// First backoff delay.
    pub initial: Duration,
    /// Largest backoff delay.
    pub max: Duration,
    /// Growth factor (at least 1).
    pub factor: f64,
}

/// Execution settings, with the size parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionPlan {
    /// Concurrent batches per worker (at least 1).
    pub parallelism: u32,
    /// Max in-flight PubAcks per batch sink.
    pub max_in_flight: Option<usize>,
    /// Largest payload accepted, in bytes.
    pub max_message_size: Option<u64>,
    /// Longest time between checkpoints of a stateful pipeline.
    pub checkpoint_interval: Duration,
    /// Most inputs between checkpoints of a stateful pipeline.
    pub checkpoint_events: u64,
    /// Keyed partitions of a stateful pipeline (1: not partitioned).
    pub partitions: u32,
    /// The SQL expressions of the partition key (empty when not partitioned).
    pub partition_key: Vec<String>,
    /// One owner at a time reads the consumer and acks cumulatively (`delivery: exclusive`).
    pub exclusive: bool,
}

/// Default longest time between checkpoints.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// Default most inputs between checkpoints.
pub const DEFAULT_CHECKPOINT_EVENTS: u64 = 10_000;

/// One node of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedNode {
    /// The node's id.
    pub id: String,
    /// JSON pointer of the node in the resource (`/spec/nodes/3`), for located errors.
    pub pointer: String,
    /// What the node does.
    pub op: NodeOp,
    /// Target node indices of each output port. Port 0 is `next`; a route's ports are its
    /// rules in order, then `default`. Sinks have one empty port.
    pub ports: Vec<Vec<usize>>,
}

/// A node's kind with its spec: one variant per kind.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeOp {
    /// Keep messages for which the SQL predicate is true.
    Filter {
        /// The predicate.
        predicate: String,
    },
    /// Change payload fields.
    Map(MapSpec),
    /// Rules evaluated in order (ports follow the rules, then `default`).
    Route {
        /// The rules.
        rules: Vec<RulePlan>,
    },
    /// Publish to a subject.
    Publish(PublishSpec),
    /// One message per array element.
    Split(SplitSpec),
    /// Drop on purpose.
    Drop(DropSpec),
    /// Aggregate over event-time windows (port 0 `next`, port 1 `late`).
    Window(WindowPlan),
    /// Drop repeated keys.
    Dedup {
        /// SQL expression of the key.
        key: String,
        /// How long a key is remembered.
        within: Duration,
    },
    /// Check payloads against a JSON Schema.
    Validate(crate::spec::ValidateSpec),
    /// A function of a WebAssembly module.
    Wasm(WasmPlan),
    /// Data-quality rules.
    Quality(crate::spec::QualitySpec),
}

/// A `wasm` node with its limits parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct WasmPlan {
    /// The node as written (module, version, function, config).
    pub spec: WasmSpec,
    /// Longest run of one batch.
    pub timeout: Duration,
    /// Largest linear memory of one instance, in bytes.
    pub max_memory: u64,
}

impl WasmPlan {
    /// Plans a checked `wasm` spec: its limits parsed, defaults filled in.
    fn from_spec(w: &WasmSpec) -> Result<WasmPlan, String> {
        Ok(WasmPlan {
            spec: w.clone(),
            timeout: w
                .timeout
                .as_deref()
                .map(parse_duration)
                .transpose()?
                .unwrap_or(WASM_DEFAULT_TIMEOUT),
            max_memory: w
                .max_memory
                .as_deref()
                .map(parse_size)
                .transpose()?
                .unwrap_or(WASM_DEFAULT_MEMORY),
        })
    }
}

/// A `window` node with its durations parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowPlan {
    /// The shape of the windows.
    pub shape: WindowShape,
    /// Event-time expression; `None` = the time the message was stored.
    pub time: Option<String>,
    /// Bounded out-of-orderness.
    pub allowed_lateness: Duration,
    /// Quiet time after which the watermark follows the clock.
    pub idle_timeout: Option<Duration>,
    /// (output name, SQL expression) of each group key.
    pub group_by: Vec<(String, String)>,
    /// (output name, SQL aggregate call) of each aggregate.
    pub aggregates: Vec<(String, String)>,
}

/// Window shapes with their lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowShape {
    /// Windows of `size`, one after the other.
    Tumbling {
        /// Window length.
        size: Duration,
    },
    /// Windows of `size` starting every `slide`.
    Hopping {
        /// Window length.
        size: Duration,
        /// Distance between starts.
        slide: Duration,
    },
    /// Per group, events within `gap` of each other.
    Session {
        /// Inactivity that ends a session.
        gap: Duration,
    },
}

impl WindowPlan {
    /// Plans a checked `window` spec.
    fn from_spec(w: &WindowSpec) -> Result<WindowPlan, String> {
        let d = |v: &Option<String>, what: &str| -> Result<Duration, String> {
            parse_duration(v.as_deref().ok_or(format!("window without `{what}`"))?)
        };
        let shape = match w.kind {
            WindowKind::Tumbling => WindowShape::Tumbling {
                size: d(&w.size, "size")?,
            },
            WindowKind::Hopping => WindowShape::Hopping {
                size: d(&w.size, "size")?,
                slide: d(&w.slide, "slide")?,
            },
            WindowKind::Session => WindowShape::Session {
                gap: d(&w.gap, "gap")?,
            },
        };
        let group_by = w
            .group_by
            .named()
            .into_iter()
            .map(|(name, e)| Ok((name.ok_or("unnamed group key")?, e)))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(WindowPlan {
            shape,
            time: w.time.clone(),
            allowed_lateness: w
                .allowed_lateness
                .as_deref()
                .map(parse_duration)
                .transpose()?
                .unwrap_or_default(),
            idle_timeout: w.idle_timeout.as_deref().map(parse_duration).transpose()?,
            group_by,
            aggregates: w
                .aggregates
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }
}

impl NodeOp {
    /// The kind, as named in files.
    pub fn kind(&self) -> crate::spec::NodeKind {
        use crate::spec::NodeKind;
        match self {
            NodeOp::Filter { .. } => NodeKind::Filter,
            NodeOp::Map(_) => NodeKind::Map,
            NodeOp::Route { .. } => NodeKind::Route,
            NodeOp::Publish(_) => NodeKind::Publish,
            NodeOp::Split(_) => NodeKind::Split,
            NodeOp::Drop(_) => NodeKind::Drop,
            NodeOp::Window(_) => NodeKind::Window,
            NodeOp::Dedup { .. } => NodeKind::Dedup,
            NodeOp::Validate(_) => NodeKind::Validate,
            NodeOp::Wasm(_) => NodeKind::Wasm,
            NodeOp::Quality(_) => NodeKind::Quality,
        }
    }
}

/// One rule of a route.
#[derive(Debug, Clone, PartialEq)]
pub struct RulePlan {
    /// Optional name, for errors.
    pub name: Option<String>,
    /// SQL predicate.
    pub when: String,
    /// Stop evaluating later rules when this one matches.
    pub stop: bool,
}

pub use crate::wasm_abi::{
    WASM_DEFAULT_MEMORY, WASM_DEFAULT_TIMEOUT, WASM_MAX_MEMORY, WASM_MAX_TIMEOUT,
};

/// Checks `pipeline` and returns its plan, or every problem found (each at a JSON pointer).
pub fn plan(pipeline: &PipelineResource) -> Result<ValidatedPipeline, Vec<Problem>> {
    let problems = check_resource(&Resource::Pipeline(pipeline.clone()));
    if !problems.is_empty() {
        return Err(problems);
    }
    build(pipeline).map_err(|message| {
        // The checks above guarantee what `build` relies on; this is a bug, reported as a
        // problem rather than a panic.
        vec![Problem::new("", "internal", message)]
    })
}

fn build(pipeline: &PipelineResource) -> Result<ValidatedPipeline, String> {
    let spec = &pipeline.spec;
    let nodes = plan_nodes(&spec.nodes)?;
    let order = topological_order(&nodes).ok_or("the node graph has a cycle")?;
    let r = &spec.errors.retry;
    let retry = RetryPlan {
        max_attempts: r.max_attempts.max(1),
        initial: parse_duration(&r.backoff.initial)?,
        max: parse_duration(&r.backoff.max)?,
        factor: r.backoff.factor.max(1.0),
    };
    let x = &spec.execution;
    let execution = ExecutionPlan {
        parallelism: x.parallelism.max(1),
        max_in_flight: x.max_in_flight,
        max_message_size: x.max_message_size.as_deref().map(parse_size).transpose()?,
        checkpoint_interval: match x.checkpoint.as_ref().and_then(|c| c.interval.as_deref()) {
            Some(i) => parse_duration(i)?,
            None => DEFAULT_CHECKPOINT_INTERVAL,
        },
        checkpoint_events: x
            .checkpoint
            .as_ref()
            .and_then(|c| c.events)
            .unwrap_or(DEFAULT_CHECKPOINT_EVENTS),
        partitions: x.partitions.unwrap_or(1).max(1),
        partition_key: match x.partitions {
            Some(n) if n > 1 => crate::check::partition_key(spec).unwrap_or_default(),
            _ => Vec::new(),
        },
        exclusive: x.delivery == crate::spec::DeliveryMode::Exclusive,
    };
    Ok(ValidatedPipeline {
        resource: pipeline.clone(),
        source: plan_source(&spec.source)?,
        nodes,
        order,
        retry,
        execution,
    })
}

/// Every node with its operation and its ports resolved to node indices.
fn plan_nodes(spec_nodes: &[Node]) -> Result<Vec<PlannedNode>, String> {
    let index: std::collections::HashMap<&str, usize> = spec_nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let resolve = |next: Option<&Next>| -> Result<Vec<usize>, String> {
        next.map(|n| n.ids())
            .unwrap_or_default()
            .into_iter()
            .map(|id| {
                index
                    .get(id)
                    .copied()
                    .ok_or_else(|| format!("unresolved node `{id}`"))
            })
            .collect()
    };
    let mut nodes = Vec::with_capacity(spec_nodes.len());
    for (i, node) in spec_nodes.iter().enumerate() {
        let (op, ports) = node_op(node, &resolve)?;
        nodes.push(PlannedNode {
            id: node.id.clone(),
            pointer: format!("/spec/nodes/{i}"),
            op,
            ports,
        });
    }
    Ok(nodes)
}

/// The indices of the nodes a `next` names.
type Resolve<'a> = dyn Fn(Option<&Next>) -> Result<Vec<usize>, String> + 'a;

/// A node's operation and its output ports (each the indices of the nodes it feeds).
fn node_op(node: &Node, resolve: &Resolve<'_>) -> Result<(NodeOp, Vec<Vec<usize>>), String> {
    let next = || resolve(node.next.as_ref());
    Ok(if let Some(predicate) = &node.filter {
        let op = NodeOp::Filter {
            predicate: predicate.clone(),
        };
        (op, vec![next()?])
    } else if let Some(map) = &node.map {
        (NodeOp::Map(map.clone()), vec![next()?])
    } else if let Some(rules) = &node.route {
        let mut ports = Vec::with_capacity(rules.len() + 1);
        for r in rules {
            ports.push(resolve(Some(&r.next))?);
        }
        ports.push(resolve(node.default.as_ref())?);
        let rules = rules
            .iter()
            .map(|r| RulePlan {
                name: r.name.clone(),
                when: r.when.clone(),
                stop: r.stop,
            })
            .collect();
        (NodeOp::Route { rules }, ports)
    } else if let Some(p) = &node.publish {
        (NodeOp::Publish(p.clone()), vec![Vec::new()])
    } else if let Some(s) = &node.split {
        (NodeOp::Split(s.clone()), vec![next()?])
    } else if let Some(d) = &node.drop {
        (NodeOp::Drop(d.clone()), vec![Vec::new()])
    } else if let Some(w) = &node.window {
        let ports = vec![next()?, resolve(Some(&w.late))?];
        (NodeOp::Window(WindowPlan::from_spec(w)?), ports)
    } else if let Some(DedupSpec { key, within }) = &node.dedup {
        let op = NodeOp::Dedup {
            key: key.clone(),
            within: parse_duration(within)?,
        };
        (op, vec![next()?])
    } else if let Some(v) = &node.validate {
        (NodeOp::Validate(v.clone()), vec![next()?])
    } else if let Some(w) = &node.wasm {
        (NodeOp::Wasm(WasmPlan::from_spec(w)?), vec![next()?])
    } else if let Some(q) = &node.quality {
        (NodeOp::Quality(q.clone()), vec![next()?])
    } else {
        return Err(format!("node `{}` has no kind", node.id));
    })
}

/// The source's settings, durations and start position parsed.
fn plan_source(src: &Source) -> Result<SourcePlan, String> {
    let c = &src.consumer;
    let duration = |v: &Option<String>| v.as_deref().map(parse_duration).transpose();
    let deliver = match &src.deliver {
        DeliverPolicy::All => Deliver::All,
        DeliverPolicy::New => Deliver::New,
        DeliverPolicy::LastPerSubject => Deliver::LastPerSubject,
        DeliverPolicy::Sequence(s) => Deliver::Sequence(*s),
        DeliverPolicy::Time(t) => Deliver::Time(
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|e| e.to_string())?,
        ),
    };
    Ok(SourcePlan {
        format: src.format,
        fields: src.fields.clone(),
        schema: src
            .schema
            .as_ref()
            .map(crate::spec::SourceSchemaRef::to_schema),
        deliver,
        durable: c.durable.clone(),
        ack_wait: duration(&c.ack_wait)?,
        max_ack_pending: c.max_ack_pending,
        batch_size: c.batch_size,
        max_wait: duration(&c.max_wait)?,
    })
}

/// Kahn's algorithm over every port, nodes taken in file order when several are ready; `None`
/// on a cycle (which [`check_resource`] already refuses).
fn topological_order(nodes: &[PlannedNode]) -> Option<Vec<usize>> {
    let mut indegree = vec![0usize; nodes.len()];
    for t in nodes.iter().flat_map(|n| n.ports.iter().flatten()) {
        indegree[*t] += 1;
    }
    let mut ready: std::collections::VecDeque<usize> =
        (0..nodes.len()).filter(|i| indegree[*i] == 0).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(i) = ready.pop_front() {
        order.push(i);
        for &t in nodes[i].ports.iter().flatten() {
            indegree[t] -= 1;
            if indegree[t] == 0 {
                ready.push_back(t);
            }
        }
    }
    (order.len() == nodes.len()).then_some(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load_str;

    fn pipeline(yaml: &str) -> PipelineResource {
        match load_str(yaml, "t.yaml").expect("valid").remove(0) {
            Resource::Pipeline(p) => p,
            Resource::Stream(_) => panic!("not a pipeline"),
        }
    }

    #[test]
    fn resolves_ports_order_and_units() {
        let p = pipeline(
            r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: p }
spec:
  source: { stream: ORDERS, consumer: { ack_wait: 45s, max_wait: 20ms } }
  errors: { retry: { backoff: { initial: 100ms, max: 2s } } }
  execution: { max_message_size: 64KiB }
  nodes:
    - id: r
      route:
        - { when: "data.a > 1", next: [big, all] }
      default: all
    - { id: big, publish: { subject: big } }
    - { id: all, publish: { subject: all } }
"#,
        );
        let plan = plan(&p).expect("plans");
        assert_eq!(plan.nodes[0].ports, vec![vec![1, 2], vec![2]]);
        assert_eq!(plan.nodes[1].ports, vec![Vec::<usize>::new()]);
        assert_eq!(plan.order, vec![0, 1, 2]);
        assert_eq!(plan.source.ack_wait, Some(Duration::from_secs(45)));
        assert_eq!(plan.source.max_wait, Some(Duration::from_millis(20)));
        assert_eq!(plan.retry.initial, Duration::from_millis(100));
        assert_eq!(plan.execution.max_message_size, Some(65_536));
        assert!(matches!(plan.nodes[0].op, NodeOp::Route { ref rules } if rules.len() == 1));
    }

    #[test]
    fn refuses_what_the_checks_refuse() {
        let mut p = pipeline(
            r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: p }
spec:
  source: { stream: ORDERS }
  nodes:
    - { id: a, filter: "true", next: b }
    - { id: b, publish: { subject: out } }
"#,
        );
        p.spec.nodes[0].next = Some(Next::One("nowhere".into()));
        let problems = plan(&p).unwrap_err();
        assert!(
            problems.iter().any(|p| p.code == "dangling-next"),
            "{problems:?}"
        );
    }
}
