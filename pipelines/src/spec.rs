//! The typed spec of the pipeline file format `weir.dev/v1`.
//!
//! These types are the one definition of the format: the parser deserializes into them, the
//! JSON Schema (`weir schema`) is generated from them, and the engine compiles them. Every
//! struct denies unknown fields; values that need parsing (durations, sizes, subjects, SQL
//! expressions) stay strings here and are checked by the validator, so that every problem in a
//! file can be reported at once with its position.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The only API version this crate reads.
pub const API_VERSION: &str = "weir.dev/v1";

/// One resource of a pipeline file (one YAML document).
// A pipeline is much larger than a stream; resources are few, so boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Resource {
    /// A pipeline: a source, a DAG of nodes, and an error policy.
    Pipeline(PipelineResource),
    /// A JetStream stream declaration.
    Stream(StreamResource),
}

impl Resource {
    /// The resource's metadata.
    pub fn metadata(&self) -> &Metadata {
        match self {
            Resource::Pipeline(p) => &p.metadata,
            Resource::Stream(s) => &s.metadata,
        }
    }

    /// The resource's kind as written in the file.
    pub fn kind(&self) -> &'static str {
        match self {
            Resource::Pipeline(_) => "Pipeline",
            Resource::Stream(_) => "Stream",
        }
    }
}

/// `kind: Pipeline`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineResource {
    /// Always `weir.dev/v1`.
    pub api_version: String,
    /// Name, tenant and labels.
    pub metadata: Metadata,
    /// What the pipeline does.
    pub spec: PipelineSpec,
    /// Sample inputs with their expected outputs, run by `weir test`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<TestCase>,
}

/// `kind: Stream` — declares a JetStream stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StreamResource {
    /// Always `weir.dev/v1`.
    pub api_version: String,
    /// `metadata.name` is the stream name (e.g. `ORDERS`).
    pub metadata: Metadata,
    /// The stream's configuration.
    pub spec: StreamSpec,
}

/// Name, tenant and labels of a resource.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Pipelines: DNS-label style (`order-routing`), unique per tenant. Streams: the stream name.
    pub name: String,
    /// The owning tenant; the API fills it from the caller when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub labels: IndexMap<String, String>,
    /// A human description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The body of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// Where messages come from.
    pub source: Source,
    /// The operator DAG; the first node is the entry point.
    pub nodes: Vec<Node>,
    /// Retry and dead-letter policy.
    #[serde(default)]
    pub errors: ErrorPolicy,
    /// Worker-side execution settings.
    #[serde(default)]
    pub execution: Execution,
}

/// The pipeline's source: a durable pull consumer on a JetStream stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The stream to consume.
    pub stream: String,
    /// Subject filters (NATS wildcards allowed); empty = every subject of the stream.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// Where a new consumer starts.
    #[serde(default)]
    pub deliver: DeliverPolicy,
    /// Payload encoding.
    #[serde(default)]
    pub format: PayloadFormat,
    /// The registry schema of the payload: a subject (`orders-value`, its latest version) or
    /// `{subject, version}`. Required by `avro` and `protobuf`; the control plane embeds the
    /// subject's schemas into the deployed spec (see [`SourceSchema`]). For `json`, a JSON
    /// Schema subject: the payload paths the pipeline reads take their types from it (as if
    /// declared in `fields`; plain `string`, `integer`, `number`, `boolean` and `date-time`
    /// properties), and a value of another type fails its message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<SourceSchemaRef>,
    /// Declared payload fields (`amount: float64`): gives expressions typed columns without
    /// re-parsing JSON. Paths use dots for nesting (`customer.id`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub fields: IndexMap<String, FieldType>,
    /// Consumer tuning.
    #[serde(default)]
    pub consumer: ConsumerSettings,
}

/// Where a new consumer starts reading.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliverPolicy {
    /// From the first message in the stream.
    #[default]
    All,
    /// Only messages published after the consumer is created.
    New,
    /// The last message of each subject, then new ones.
    LastPerSubject,
    /// From a stream sequence.
    Sequence(u64),
    /// From a time (RFC 3339).
    Time(String),
}

/// Payload encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PayloadFormat {
    /// JSON (the default).
    #[default]
    Json,
    /// Avro (needs `schema`).
    Avro,
    /// Protobuf (needs `schema`).
    Protobuf,
    /// Opaque bytes: only metadata is usable in expressions.
    Raw,
}

/// Types of declared payload fields and of `map.cast`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// UTF-8 text.
    String,
    /// 64-bit signed integer.
    Int64,
    /// 64-bit float.
    Float64,
    /// true / false.
    Boolean,
    /// RFC 3339 timestamp, microsecond precision.
    Timestamp,
    /// Any JSON value kept as JSON text.
    Json,
}

/// Consumer settings; absent values take the runtime's defaults.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSettings {
    /// Durable name; default `weir_<tenant>_<pipeline>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durable: Option<String>,
    /// Ack wait, e.g. `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_wait: Option<String>,
    /// Max unacknowledged messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ack_pending: Option<i64>,
    /// Messages per fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Longest wait for a fetch to fill, e.g. `50ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait: Option<String>,
}

/// One node of the DAG. Exactly one of the kind fields (`filter`, `map`, `route`, `publish`,
/// `split`, `drop`, `window`, `dedup`, `validate`, `wasm`) is set.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Unique id within the pipeline.
    pub id: String,
    /// Keep messages for which the SQL predicate is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Change the payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<MapSpec>,
    /// Rules evaluated in order; every matching rule fires (fan-out) unless one says `stop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Vec<RouteRule>>,
    /// Where a message that matched no rule of `route` goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Next>,
    /// Sink: publish to a subject (templates allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<PublishSpec>,
    /// One message per element of an array field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<SplitSpec>,
    /// Sink: drop the message on purpose (counted as filtered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<DropSpec>,
    /// Aggregate messages over event-time windows; emits one message per window and group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowSpec>,
    /// Drop messages whose key was already seen within a duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup: Option<DedupSpec>,
    /// Check the payload against a JSON Schema (inline or from the schema registry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate: Option<ValidateSpec>,
    /// Run a function of an uploaded WebAssembly module on each batch (`docs/wasm-abi.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm: Option<WasmSpec>,
    /// Data-quality rules: a failing `reject` rule dead-letters the message, a failing `warn`
    /// rule adds a `Weir-Quality-Warn` header; per-rule pass and fail counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<QualitySpec>,
    /// The nodes that receive this node's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<Next>,
}

/// Node kinds, as named in files and error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// `filter`
    Filter,
    /// `map`
    Map,
    /// `route`
    Route,
    /// `publish`
    Publish,
    /// `split`
    Split,
    /// `drop`
    Drop,
    /// `window`
    Window,
    /// `dedup`
    Dedup,
    /// `validate`
    Validate,
    /// `wasm`
    Wasm,
    /// `quality`
    Quality,
}

impl NodeKind {
    /// The field name of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Filter => "filter",
            NodeKind::Map => "map",
            NodeKind::Route => "route",
            NodeKind::Publish => "publish",
            NodeKind::Split => "split",
            NodeKind::Drop => "drop",
            NodeKind::Window => "window",
            NodeKind::Dedup => "dedup",
            NodeKind::Validate => "validate",
            NodeKind::Wasm => "wasm",
            NodeKind::Quality => "quality",
        }
    }

    /// Sinks end a path.
    pub fn is_sink(self) -> bool {
        matches!(self, NodeKind::Publish | NodeKind::Drop)
    }
}

impl Node {
    /// The kinds set on this node (a valid node has exactly one).
    pub fn kinds(&self) -> Vec<NodeKind> {
        let mut kinds = Vec::new();
        if self.filter.is_some() {
            kinds.push(NodeKind::Filter);
        }
        if self.map.is_some() {
            kinds.push(NodeKind::Map);
        }
        if self.route.is_some() {
            kinds.push(NodeKind::Route);
        }
        if self.publish.is_some() {
            kinds.push(NodeKind::Publish);
        }
        if self.split.is_some() {
            kinds.push(NodeKind::Split);
        }
        if self.drop.is_some() {
            kinds.push(NodeKind::Drop);
        }
        if self.window.is_some() {
            kinds.push(NodeKind::Window);
        }
        if self.dedup.is_some() {
            kinds.push(NodeKind::Dedup);
        }
        if self.validate.is_some() {
            kinds.push(NodeKind::Validate);
        }
        if self.wasm.is_some() {
            kinds.push(NodeKind::Wasm);
        }
        if self.quality.is_some() {
            kinds.push(NodeKind::Quality);
        }
        kinds
    }

    /// The node's kind, when exactly one is set.
    pub fn kind(&self) -> Option<NodeKind> {
        match self.kinds().as_slice() {
            [k] => Some(*k),
            _ => None,
        }
    }

    /// Every node id this node can send to (`next`, route rules, `default`).
    pub fn targets(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        if let Some(n) = &self.next {
            out.extend(n.ids());
        }
        if let Some(rules) = &self.route {
            for r in rules {
                out.extend(r.next.ids());
            }
        }
        if let Some(d) = &self.default {
            out.extend(d.ids());
        }
        if let Some(w) = &self.window {
            out.extend(w.late.ids());
        }
        out
    }
}

/// One node id or several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Next {
    /// A single target.
    One(String),
    /// Several targets (fan-out).
    Many(Vec<String>),
}

impl Next {
    /// The target ids.
    pub fn ids(&self) -> Vec<&str> {
        match self {
            Next::One(s) => vec![s.as_str()],
            Next::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// `map`: change payload fields. Applied in the order set → rename → cast → remove.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MapSpec {
    /// Field path → SQL expression.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub set: IndexMap<String, String>,
    /// Old field path → new field path.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub rename: IndexMap<String, String>,
    /// Field path → type.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub cast: IndexMap<String, FieldType>,
    /// Field paths to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// One rule of a `route` node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// Optional rule name, for metrics and errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// SQL predicate.
    pub when: String,
    /// Where matching messages go.
    pub next: Next,
    /// Stop evaluating later rules when this one matches.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stop: bool,
}

/// `publish`: the sink to JetStream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishSpec {
    /// Subject template, e.g. `orders.vip.{data.region}`.
    pub subject: String,
    /// Header name → value template.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, String>,
    /// How the output payload is encoded: `json` (the default), `avro` or `protobuf` (both
    /// need `schema`).
    #[serde(default, skip_serializing_if = "OutputFormat::is_json")]
    pub format: OutputFormat,
    /// The registry schema outputs are written with (for `json`: validated against, and named
    /// in the `Weir-Schema-Id` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<OutputSchema>,
    /// `confluent` (byte 0, the 4-byte schema id, Protobuf's message indexes, then the
    /// message; the default for `avro` and `protobuf`) or `bare` (the message alone; the
    /// default for `json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire: Option<WireFormat>,
}

/// How a `publish` node encodes its outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// JSON (the default).
    #[default]
    Json,
    /// Avro binary (needs `schema`).
    Avro,
    /// Protobuf (needs `schema`).
    Protobuf,
}

impl OutputFormat {
    /// Whether this is the default, `json`.
    pub fn is_json(&self) -> bool {
        *self == OutputFormat::Json
    }

    /// The name in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Json => "json",
            OutputFormat::Avro => "avro",
            OutputFormat::Protobuf => "protobuf",
        }
    }
}

/// Whether an encoded output carries the Confluent wire-format header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WireFormat {
    /// Byte 0, the schema id (4 bytes, big-endian), Protobuf's message indexes, the message.
    Confluent,
    /// The encoded message alone.
    Bare,
}

/// The registry schema a `publish` node writes with. The file names `subject` (and `version`,
/// and for Protobuf the `message`); at deploy the control plane fills in `writer` (the
/// resolved version's id and text), so that workers never call the registry.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputSchema {
    /// The subject.
    pub subject: String,
    /// A version number, or `latest` (the default: the newest version at deploy time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<SchemaVersionSel>,
    /// Protobuf: the full name of the message written (`acme.Order`); default the file's
    /// first message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The resolved schema (filled in at deploy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<EmbeddedSchema>,
}

/// `split`: one message per element of an array field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitSpec {
    /// Path of the array field, e.g. `items`.
    pub field: String,
}

/// `wasm`: a function of a tenant's uploaded WebAssembly module, called once per batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WasmSpec {
    /// The module's name (uploaded to the tenant with `POST /api/v1/modules/{name}`).
    pub module: String,
    /// A version number, or `latest` (the default).
    #[serde(default, skip_serializing_if = "WasmVersion::is_latest")]
    pub version: WasmVersion,
    /// The exported function to call (the batch ABI, `docs/wasm-abi.md`).
    pub function: String,
    /// Handed to the module once per instance as JSON (`weir_init`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    /// Longest run of one batch, e.g. `100ms` (default `100ms`, at most `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Largest linear memory of one instance, e.g. `16MiB` (default `16MiB`, at most `256MiB`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory: Option<String>,
    /// Optional fuel (WebAssembly instructions, roughly) per batch; unset = no fuel metering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
}

/// Whether `name` is a valid module name: 1 to 63 lowercase letters, digits and `-`, not
/// starting or ending with `-`.
pub fn is_module_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// `version: N` or `version: latest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum WasmVersion {
    /// A fixed version (from 1).
    Number(u32),
    /// The newest version when the pipeline is deployed.
    Latest(Latest),
}

/// The word `latest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Latest {
    /// `latest`
    #[default]
    Latest,
}

impl Default for WasmVersion {
    fn default() -> Self {
        WasmVersion::Latest(Latest::Latest)
    }
}

impl WasmVersion {
    /// Whether this is `latest`.
    pub fn is_latest(&self) -> bool {
        matches!(self, WasmVersion::Latest(_))
    }
}

/// `drop: {}` or `drop: { reason: ... }`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DropSpec {
    /// Why, for humans and metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `window`: aggregates messages over windows of event time, per group, with DataFusion's
/// aggregate functions; when the watermark passes a window's end it emits one JSON message per
/// group: `{window_start, window_end, <group keys>, <aggregates>}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// `tumbling` (needs `size`), `hopping` (`size` and `slide`) or `session` (`gap`).
    pub kind: WindowKind,
    /// Length of a tumbling or hopping window, e.g. `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// How far apart hopping windows start, e.g. `10s` (at most `size`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slide: Option<String>,
    /// Inactivity that ends a session, e.g. `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<String>,
    /// SQL expression giving the event time: a timestamp, an RFC 3339 string or epoch
    /// milliseconds (e.g. `data.ts`). Absent: the time the message was stored in the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// How far behind the latest event time an event may be and still count, e.g. `5s`
    /// (default `0s`). The watermark is the latest event time seen minus this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_lateness: Option<String>,
    /// When no message arrives for this long, the watermark moves on with the clock, so that
    /// a quiet source does not hold windows open forever, e.g. `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
    /// Group keys: output field name → SQL expression (`region: data.region`), or a list of
    /// payload paths (`[data.region]`, named by their last segment).
    #[serde(default, skip_serializing_if = "GroupBy::is_empty")]
    pub group_by: GroupBy,
    /// Output field name → SQL aggregate call, e.g. `total: sum(data.amount)`,
    /// `p95: approx_percentile_cont(data.amount, 0.95)`, `orders: count(*)`.
    pub aggregates: IndexMap<String, String>,
    /// Where events later than the watermark allows go, with headers naming the window they
    /// missed (`Weir-Window-Start`, `Weir-Window-End`): a `publish` to a stream, or a `drop`
    /// node to discard them on purpose. Late data is never silently lost.
    pub late: Next,
}

/// `dedup`: drops a message whose key was already seen, on another message, within `within`
/// of stream time (the time messages were stored). State holds the keys of that span only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DedupSpec {
    /// SQL expression of the key, e.g. `data.order_id`; a message without a key passes.
    pub key: String,
    /// How long a key is remembered, e.g. `10m`.
    pub within: String,
}

/// Window kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// Fixed-size windows that do not overlap.
    Tumbling,
    /// Fixed-size windows starting every `slide`; an event falls in `size / slide` of them.
    Hopping,
    /// Per group, events closer than `gap` to each other.
    Session,
}

/// Group keys of a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum GroupBy {
    /// Output field name → SQL expression.
    Named(IndexMap<String, String>),
    /// Payload paths (`data.region`), each named by its last segment.
    Paths(Vec<String>),
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy::Named(IndexMap::new())
    }
}

impl GroupBy {
    /// Whether there are no group keys.
    pub fn is_empty(&self) -> bool {
        match self {
            GroupBy::Named(m) => m.is_empty(),
            GroupBy::Paths(v) => v.is_empty(),
        }
    }

    /// (output name, expression) pairs; a path's name is its last segment (`data.a.region` →
    /// `region`), `None` when an entry of the list is not a plain path.
    pub fn named(&self) -> Vec<(Option<String>, String)> {
        match self {
            GroupBy::Named(m) => m
                .iter()
                .map(|(k, v)| (Some(k.clone()), v.clone()))
                .collect(),
            GroupBy::Paths(v) => v
                .iter()
                .map(|e| {
                    let t = e.trim();
                    let plain = t.starts_with("data.")
                        && t.split('.').all(|s| {
                            !s.is_empty()
                                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        });
                    (
                        plain.then(|| t.rsplit('.').next().unwrap_or(t).to_string()),
                        e.clone(),
                    )
                })
                .collect(),
        }
    }
}

/// `validate`: checks each payload against a JSON Schema, given inline (`json_schema`) or as a
/// subject of the tenant's schema registry (`schema`). The control plane resolves `schema` at
/// validate and deploy time and writes the registry's text into `json_schema` of the deployed
/// spec, so that workers never call the registry.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateSpec {
    /// A JSON Schema subject of the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<RegistrySchema>,
    /// The JSON Schema document itself (draft 2020-12 or 7, by its `$schema`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub json_schema: Option<serde_json::Value>,
    /// The schemas `json_schema` refers to by `$ref`, by the name it uses (filled in from the
    /// registry's references at deploy, like `json_schema`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<NamedSchema>,
    /// What happens to an invalid message: `dlq` (default; the failing JSON pointers and
    /// rules in the dead letter's reason), `drop`, or `tag` (a `Weir-Invalid` header, and on).
    #[serde(default)]
    pub on_invalid: OnInvalid,
}

/// A schema of the registry, by subject and version.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrySchema {
    /// The subject.
    pub subject: String,
    /// A version number, or `latest` (the default: the newest version at deploy time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<SchemaVersionSel>,
    /// The schema's global id (filled in by the control plane when it resolves the subject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
}

/// The source's registry schema: a bare subject name or a [`SourceSchema`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SourceSchemaRef {
    /// A subject name; its latest version at deploy time.
    Subject(String),
    /// A subject and version, with what the control plane embeds at deploy.
    Registry(SourceSchema),
}

impl SourceSchemaRef {
    /// The subject named.
    pub fn subject(&self) -> &str {
        match self {
            SourceSchemaRef::Subject(s) => s,
            SourceSchemaRef::Registry(r) => &r.subject,
        }
    }

    /// As a [`SourceSchema`] (a bare subject: latest version, nothing embedded).
    pub fn to_schema(&self) -> SourceSchema {
        match self {
            SourceSchemaRef::Subject(s) => SourceSchema {
                subject: s.clone(),
                ..SourceSchema::default()
            },
            SourceSchemaRef::Registry(r) => r.clone(),
        }
    }
}

/// A source's registry schema. The file names `subject` (and `version`); at deploy the control
/// plane fills in `id` (the reader schema's global id) and `writers` (every version of the
/// subject with its id and text), so that a worker decodes Confluent wire-format messages
/// written with any version of the subject without reaching the registry.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceSchema {
    /// The subject.
    pub subject: String,
    /// A version number, or `latest` (the default: the newest version at deploy time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<SchemaVersionSel>,
    /// The reader schema's global id (filled in at deploy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// The subject's versions, by global id (filled in at deploy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writers: Vec<EmbeddedSchema>,
}

/// One registry schema embedded in a deployed spec.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedSchema {
    /// The global id.
    pub id: i64,
    /// The schema text (Avro JSON, a JSON Schema, or Protobuf: `.proto` source or a base64
    /// `FileDescriptorProto`).
    pub schema: String,
    /// The schemas it refers to (Protobuf imports, Avro named types, JSON Schema `$ref`s), by
    /// the name it uses: `{name, schema}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<NamedSchema>,
}

/// A referenced schema's text under the name the referring schema uses for it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamedSchema {
    /// The name the referring schema uses (`common.proto`, `acme.Customer`, `customer.json`).
    pub name: String,
    /// Its text.
    pub schema: String,
}

impl NamedSchema {
    /// `(name, text)`, as the schema compilers take references.
    pub fn pair(&self) -> (&str, &str) {
        (&self.name, &self.schema)
    }
}

/// `latest` or a version number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SchemaVersionSel {
    /// A version number.
    Number(i64),
    /// `latest`.
    Name(String),
}

/// `quality`: named data-quality rules, each checked on every message.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QualitySpec {
    /// The rules, each with exactly one check.
    pub rules: Vec<QualityRule>,
}

/// One data-quality rule: a name, the value it checks (`field`, a SQL expression such as
/// `data.amount`), exactly one check, and what a failure does. A null `field` passes every
/// check but `required`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QualityRule {
    /// The rule's name, unique in the node (in DLQ reasons, headers and counts).
    pub name: String,
    /// The value checked (every check but `sql`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// `true`: the value must not be null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// The value must lie within `min` and `max` (inclusive; either may be left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<QualityRange>,
    /// The value must match this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// The value must be one of these (strings or numbers).
    #[serde(default, rename = "enum", skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<serde_json::Value>>,
    /// The value's text must have at most this many characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    /// A SQL predicate that must be true (null fails).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// `reject` (default: the message goes to the DLQ naming the rule) or `warn` (a
    /// `Weir-Quality-Warn` header, and on).
    #[serde(default)]
    pub severity: QualitySeverity,
}

/// Bounds of a `range` rule.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QualityRange {
    /// Smallest allowed value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest allowed value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// What a failing quality rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum QualitySeverity {
    /// Dead-letter the message (`Weir-Error-Kind: validation`), naming the rule.
    #[default]
    Reject,
    /// Add the rule to the `Weir-Quality-Warn` header and pass the message on.
    Warn,
}

/// What a `validate` node does with an invalid message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnInvalid {
    /// Dead-letter it, with every failing JSON pointer and rule in the reason.
    #[default]
    Dlq,
    /// Drop it (counted as filtered).
    Drop,
    /// Add a `Weir-Invalid` header with the failures and pass it on.
    Tag,
}

/// Retry and dead-letter policy.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorPolicy {
    /// Retries of transient errors.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Where dead letters go; default subject `dlq.<pipeline>` on stream `DLQ`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dlq: Option<DlqSpec>,
}

/// Retries of transient errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Deliveries before a message goes to the DLQ.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Backoff between attempts.
    #[serde(default)]
    pub backoff: Backoff,
}

fn default_max_attempts() -> u32 {
    5
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: default_max_attempts(),
            backoff: Backoff::default(),
        }
    }
}

/// Exponential backoff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// First delay, e.g. `500ms`.
    #[serde(default = "default_initial")]
    pub initial: String,
    /// Largest delay, e.g. `30s`.
    #[serde(default = "default_max")]
    pub max: String,
    /// Growth factor.
    #[serde(default = "default_factor")]
    pub factor: f64,
}

fn default_initial() -> String {
    "500ms".into()
}
fn default_max() -> String {
    "30s".into()
}
fn default_factor() -> f64 {
    2.0
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: default_initial(),
            max: default_max(),
            factor: default_factor(),
        }
    }
}

/// Dead-letter destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DlqSpec {
    /// Subject dead letters are published to.
    pub subject: String,
    /// Stream that stores them (created when absent); default `DLQ`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
}

/// Worker-side execution settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Execution {
    /// Concurrent batches per worker.
    #[serde(default = "default_parallelism")]
    pub parallelism: u32,
    /// Max in-flight PubAcks per batch sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<usize>,
    /// Largest payload accepted (`1MB`); larger messages go to the DLQ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_size: Option<String>,
    /// How often the state of `window` and `dedup` nodes is checkpointed (their inputs are
    /// acked only once a checkpoint covers them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointSpec>,
    /// Keyed partitions of a pipeline with a `window` or `dedup` node (default 1): messages
    /// are routed by their partition key to this many partitions, each with its own state,
    /// checkpoints and one owner at a time, spread over the workers that run the pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
    /// SQL expressions over the input message whose values pick its partition. Default: the
    /// window's `group_by`, or the dedup `key`. Messages with the same group (or dedup) key
    /// must get the same partition key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_by: Vec<String>,
    /// How the workers that run a stateless pipeline share its consumer: `shared` (the
    /// default: every worker runs `parallelism` loops, each input is acked on its own) or
    /// `exclusive` (one worker at a time reads the consumer, as for a stateful pipeline; its
    /// one loop finishes batches in stream order and acks each with one cumulative ack).
    #[serde(default, skip_serializing_if = "DeliveryMode::is_shared")]
    pub delivery: DeliveryMode,
}

/// How the workers that run a stateless pipeline share its consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryMode {
    /// Competing loops on every worker, an ack per input.
    #[default]
    Shared,
    /// One reader at a time (a lease, taken over when its worker dies), one loop, batches
    /// finished in stream order, one cumulative ack per batch.
    Exclusive,
}

impl DeliveryMode {
    /// Whether this is the default, `shared`.
    pub fn is_shared(&self) -> bool {
        *self == DeliveryMode::Shared
    }
}

/// When a stateful pipeline checkpoints: after `interval` or after `events` inputs, whichever
/// comes first (defaults: `1s`, 10000).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSpec {
    /// Longest time between checkpoints (`1s`, `500ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Most inputs between checkpoints (keep it below the consumer's `max_ack_pending`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
}

fn default_parallelism() -> u32 {
    1
}

impl Default for Execution {
    fn default() -> Self {
        Self {
            parallelism: default_parallelism(),
            max_in_flight: None,
            max_message_size: None,
            checkpoint: None,
            partitions: None,
            partition_by: Vec::new(),
            delivery: DeliveryMode::Shared,
        }
    }
}

/// A JetStream stream's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamSpec {
    /// Subjects the stream captures (wildcards allowed).
    pub subjects: Vec<String>,
    /// Retention policy.
    #[serde(default)]
    pub retention: Retention,
    /// Storage type.
    #[serde(default)]
    pub storage: Storage,
    /// Max messages (-1 or absent = unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_msgs: Option<i64>,
    /// Max total size, e.g. `1GiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<String>,
    /// Max message age, e.g. `7d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    /// Max size of one message, e.g. `1MB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_msg_size: Option<String>,
    /// What happens when the stream is full.
    #[serde(default)]
    pub discard: Discard,
    /// Replicas (1–5).
    #[serde(default = "default_replicas")]
    pub replicas: u8,
    /// Window in which `Nats-Msg-Id` duplicates are dropped, e.g. `2m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_window: Option<String>,
}

fn default_replicas() -> u8 {
    1
}

/// Stream retention policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Retention {
    /// Keep until limits are hit.
    #[default]
    Limits,
    /// Keep while consumers are interested.
    Interest,
    /// Remove once acknowledged.
    Workqueue,
}

/// Stream storage type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Storage {
    /// On disk.
    #[default]
    File,
    /// In memory.
    Memory,
}

/// Discard policy of a full stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Discard {
    /// Drop the oldest messages.
    #[default]
    Old,
    /// Refuse new messages.
    New,
}

/// A `tests:` case: one input and what should come out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// Case name.
    pub name: String,
    /// The input message.
    pub input: TestMessage,
    /// Expected outputs, in order; empty with `expect_filtered` or `expect_error`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect: Vec<TestMessage>,
    /// The message is filtered or dropped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expect_filtered: bool,
    /// The message errors at this node (goes to the DLQ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_error: Option<ExpectedError>,
    /// More inputs after `input`, in order: a stream of events for a pipeline with a `window`
    /// or `dedup` node. Such a case runs on fresh state; the end of its input closes every
    /// window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_inputs: Vec<TestMessage>,
    /// Window results expected when the case's input ends, in order (by window end, start and
    /// group key). Set on a case of a pipeline with a `window`, it makes the case a stream case
    /// (with `expect_late`): `expect` then lists the outputs of the inputs themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_windows: Option<Vec<TestMessage>>,
}

/// A message in a test case or a `weir test` input line.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestMessage {
    /// Subject.
    #[serde(default)]
    pub subject: String,
    /// Headers (expected outputs: only the listed ones are compared).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, String>,
    /// JSON payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// Non-JSON payload, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_b64: Option<String>,
}

/// An expected per-message error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectedError {
    /// Node id where it happens.
    pub node: String,
    /// Error kind (e.g. `decode`, `expression`, `template`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}
