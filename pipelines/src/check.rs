//! Semantic checks of typed resources: names, the node graph (ids, targets, cycles,
//! reachability, sinks), subjects, templates, SQL expressions, durations and sizes. Every
//! problem is collected, each at the JSON pointer of the offending value.

pub(crate) use crate::value_check::{check_duration, check_expression};
use std::collections::{HashMap, HashSet};

use crate::expr;
use crate::problem::Problem;
use crate::spec::*;
use crate::subject::{check_filter, check_subject};
use crate::suggest::nearest;
use crate::template::{self, Part};
use crate::units::parse_size;

/// Checks the meaning of one resource; the result is empty when it is valid.
pub fn check_resource(resource: &Resource) -> Vec<Problem> {
    let mut out = Vec::new();
    match resource {
        Resource::Pipeline(p) => {
            check_api_version(&p.api_version, &mut out);
            check_dns_label(&p.metadata.name, "/metadata/name", &mut out);
            check_pipeline(&p.spec, &mut out);
        }
        Resource::Stream(s) => {
            check_api_version(&s.api_version, &mut out);
            check_stream_name(&s.metadata.name, "/metadata/name", &mut out);
            check_stream(&s.spec, &mut out);
        }
    }
    out
}

/// Checks what concerns several resources of one file: two resources of one kind may not
/// share a name; a pipeline's source must lie within a stream of the file that it reads, and
/// it must not publish into its own source. Returns (index of the resource, problem).
pub fn check_file(resources: &[Resource]) -> Vec<(usize, Problem)> {
    let mut seen: HashMap<(&str, &str), usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        let key = (r.kind(), r.metadata().name.as_str());
        if let Some(first) = seen.get(&key) {
            out.push((
                i,
                Problem::new(
                    "/metadata/name",
                    "duplicate-resource",
                    format!(
                        "a {} named `{}` is already defined in this file (resource #{}); names must be unique per kind",
                        key.0,
                        key.1,
                        first + 1
                    ),
                ),
            ));
        } else {
            seen.insert(key, i);
        }
    }
    let streams: Vec<crate::context::KnownStream> = resources
        .iter()
        .filter_map(|r| match r {
            Resource::Stream(s) => Some(crate::context::KnownStream {
                name: &s.metadata.name,
                subjects: &s.spec.subjects,
            }),
            Resource::Pipeline(_) => None,
        })
        .collect();
    for (i, r) in resources.iter().enumerate() {
        if let Resource::Pipeline(p) = r {
            out.extend(
                crate::context::check_against_streams(p, &streams)
                    .into_iter()
                    .map(|problem| (i, problem)),
            );
        }
    }
    out
}

fn check_api_version(v: &str, out: &mut Vec<Problem>) {
    if v != API_VERSION {
        out.push(Problem::new(
            "/apiVersion",
            "api-version",
            format!("unsupported apiVersion `{v}`; this version of Weir reads `{API_VERSION}`"),
        ));
    }
}

fn check_dns_label(name: &str, path: &str, out: &mut Vec<Problem>) {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !valid {
        out.push(Problem::new(
            path,
            "invalid-name",
            format!(
                "invalid pipeline name `{name}`: use 1 to 63 lowercase letters, digits and `-`, starting and ending with a letter or digit (e.g. `order-routing`)"
            ),
        ));
    }
}

fn check_stream_name(name: &str, path: &str, out: &mut Vec<Problem>) {
    let bad = name.is_empty()
        || name.len() > 255
        || name.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\')
        });
    if bad {
        out.push(Problem::new(
            path,
            "invalid-stream-name",
            format!(
                "invalid stream name `{name}`: a JetStream stream name is 1 to 255 characters without whitespace, `.`, `*`, `>`, `/` or `\\` (e.g. `ORDERS`)"
            ),
        ));
    }
}

fn check_size(value: &str, path: &str, out: &mut Vec<Problem>) {
    if let Err(e) = parse_size(value) {
        out.push(Problem::new(path, "invalid-size", e));
    }
}

/// Checks a template's braces and every embedded expression; returns its parts when the
/// braces are well formed.
fn check_template(text: &str, path: &str, out: &mut Vec<Problem>) -> Option<Vec<Part>> {
    match template::parse(text) {
        Ok(parts) => {
            for part in &parts {
                if let Part::Expr(e) = part
                    && let Err(err) = expr::parse_checked(e)
                {
                    out.push(Problem::new(
                        path,
                        err.code(),
                        format!("in template `{text}`: {err}"),
                    ));
                }
            }
            Some(parts)
        }
        Err(e) => {
            out.push(Problem::new(path, "invalid-template", e));
            None
        }
    }
}

fn check_subject_template(text: &str, path: &str, out: &mut Vec<Problem>) {
    let Some(parts) = check_template(text, path, out) else {
        return;
    };
    // The literal parts must form a valid subject with each expression standing for a token
    // (or part of one); the expression's value is checked when the message is published.
    let shape: String = parts
        .iter()
        .map(|p| match p {
            Part::Literal(l) => l.as_str(),
            Part::Expr(_) => "x",
        })
        .collect();
    if let Err(e) = check_subject(&shape) {
        let message = if parts.iter().any(|p| matches!(p, Part::Expr(_))) {
            format!("subject template `{text}` does not form a valid subject: {e}")
        } else {
            e
        };
        out.push(Problem::new(path, "invalid-subject", message));
    }
}

fn check_header_name(name: &str, path: &str, out: &mut Vec<Problem>) {
    let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    if !valid {
        out.push(
            Problem::new(
                path,
                "invalid-header",
                format!("invalid header name `{name}`: use printable ASCII without spaces or `:` (e.g. `X-Priority`)"),
            )
            .at_key(),
        );
    }
}

/// A field path of the payload: dot-separated names, each non-empty without spaces,
/// brackets or quotes (`customer.id`, `amount_cents`).
fn check_field_path(path_text: &str, path: &str, at_key: bool, out: &mut Vec<Problem>) {
    let valid = path_text.split('.').all(|seg| {
        !seg.is_empty()
            && seg.chars().all(|c| {
                !c.is_whitespace()
                    && !c.is_control()
                    && !matches!(c, '[' | ']' | '\'' | '"' | '{' | '}')
            })
    });
    if !valid {
        let p = Problem::new(
            path,
            "invalid-field-path",
            format!(
                "invalid field path `{path_text}`: use dot-separated field names without spaces, brackets or quotes (e.g. `customer.id`)"
            ),
        );
        out.push(if at_key { p.at_key() } else { p });
    }
}

fn check_pipeline(spec: &PipelineSpec, out: &mut Vec<Problem>) {
    check_source(&spec.source, out);
    check_nodes(&spec.nodes, out);
    check_errors(&spec.errors, out);
    check_execution(&spec.execution, out);
    check_stateful_execution(spec, out);
}

/// Largest number of keyed partitions.
pub const MAX_PARTITIONS: u32 = 256;

/// A pipeline with a `window` or `dedup` node keeps each partition's state in one place: a
/// partition runs on one batch loop of one worker at a time, so `parallelism` (the loops that
/// route messages to partitions) is at most `partitions`; partitioning needs a key that keeps
/// every group (or dedup key) in one partition.
fn check_stateful_execution(spec: &PipelineSpec, out: &mut Vec<Problem>) {
    let x = &spec.execution;
    let stateful = spec
        .nodes
        .iter()
        .find(|n| n.window.is_some() || n.dedup.is_some());
    for (i, e) in x.partition_by.iter().enumerate() {
        if let Err(err) = expr::parse_checked(e) {
            out.push(Problem::new(
                format!("/spec/execution/partition_by/{i}"),
                err.code(),
                format!("partition key `{e}`: {err}"),
            ));
        }
    }
    let partitions = x.partitions.unwrap_or(1);
    if x.partitions == Some(0) || partitions > MAX_PARTITIONS {
        out.push(Problem::new(
            "/spec/execution/partitions",
            "invalid-value",
            format!("partitions must be between 1 and {MAX_PARTITIONS}"),
        ));
        return;
    }
    let Some(node) = stateful else {
        if partitions > 1 {
            out.push(Problem::new(
                "/spec/execution/partitions",
                "partitions-without-state",
                "partitions split the state of `window` and `dedup` nodes, and this pipeline has none; use parallelism to run a stateless pipeline on more loops".into(),
            ));
        }
        return;
    };
    if x.parallelism > partitions.max(1) {
        out.push(Problem::new(
            "/spec/execution/parallelism",
            "stateful-parallelism",
            format!(
                "parallelism {} is more than the {partitions} partition(s) of the stateful node `{}`: each partition's state runs on one batch loop of one worker at a time; set `execution.partitions` to at least {} (messages are then split by key), or parallelism to {partitions}",
                x.parallelism, node.id, x.parallelism
            ),
        ));
    }
    if partitions > 1
        && let Err((path, code, message)) = partition_key(spec)
    {
        out.push(Problem::new(path, code, message));
    }
}

/// The partition key of a partitioned pipeline: `execution.partition_by`, else the key of its
/// one stateful node when the messages reach that node unchanged (no `map`, `split` or `wasm`
/// before it), so that the key means the same on the input message. Errors as (JSON pointer,
/// code, message).
pub(crate) fn partition_key(
    spec: &PipelineSpec,
) -> Result<Vec<String>, (String, &'static str, String)> {
    let stateful: Vec<(usize, &Node)> = spec
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.window.is_some() || n.dedup.is_some())
        .collect();
    for (i, n) in &stateful {
        if let Some(w) = &n.window
            && w.group_by.is_empty()
        {
            return Err((
                format!("/spec/nodes/{i}/window/group_by"),
                "unpartitionable-window",
                format!(
                    "window `{}` has no group_by, so all its events form one group that cannot be split into partitions; add group keys or remove `execution.partitions`",
                    n.id
                ),
            ));
        }
    }
    let explicit: Vec<String> = spec
        .execution
        .partition_by
        .iter()
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
        .collect();
    if !explicit.is_empty() {
        return Ok(explicit);
    }
    let needed = |why: String| {
        Err((
            "/spec/execution/partitions".to_string(),
            "partition-key-needed",
            format!(
                "{why}: name the partition key with `execution.partition_by` (SQL over the input message; messages with the same group key must get the same partition key)"
            ),
        ))
    };
    let [(i, node)] = stateful.as_slice() else {
        return needed(format!(
            "{} stateful nodes may have different keys",
            stateful.len()
        ));
    };
    if let Some(changer) = reshaping_ancestor(&spec.nodes, *i) {
        return needed(format!(
            "node `{changer}` changes messages before `{}`, so its key cannot be read from the input message",
            node.id
        ));
    }
    Ok(match (&node.window, &node.dedup) {
        (Some(w), _) => w.group_by.named().into_iter().map(|(_, e)| e).collect(),
        (None, Some(d)) => vec![d.key.clone()],
        (None, None) => Vec::new(),
    })
}

/// The id of a node upstream of node `target` that changes messages (`map`, `split`, `wasm`).
fn reshaping_ancestor(nodes: &[Node], target: usize) -> Option<String> {
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let mut parents: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        for t in n.targets() {
            if let Some(&j) = index.get(t) {
                parents[j].push(i);
            }
        }
    }
    let mut seen = vec![false; nodes.len()];
    let mut todo = parents[target].clone();
    while let Some(i) = todo.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        let n = &nodes[i];
        if n.map.is_some() || n.split.is_some() || n.wasm.is_some() {
            return Some(n.id.clone());
        }
        todo.extend(&parents[i]);
    }
    None
}

/// The source: stream, filters, start, format, fields and consumer settings.
fn check_source(src: &Source, out: &mut Vec<Problem>) {
    check_stream_name(&src.stream, "/spec/source/stream", out);
    for (i, s) in src.subjects.iter().enumerate() {
        if let Err(e) = check_filter(s) {
            out.push(Problem::new(
                format!("/spec/source/subjects/{i}"),
                "invalid-subject",
                e,
            ));
        }
    }
    if let DeliverPolicy::Time(t) = &src.deliver
        && time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).is_err()
    {
        out.push(Problem::new(
            "/spec/source/deliver/time",
            "invalid-time",
            format!("invalid time `{t}`: use RFC 3339, e.g. `2026-11-25T10:00:00Z`"),
        ));
    }
    if matches!(src.format, PayloadFormat::Avro | PayloadFormat::Protobuf) && src.schema.is_none() {
        out.push(Problem::new(
            "/spec/source/format",
            "schema-required",
            format!(
                "format `{}` needs `schema`: name the registry subject that describes the payload",
                if src.format == PayloadFormat::Avro {
                    "avro"
                } else {
                    "protobuf"
                }
            ),
        ));
    }
    for field in src.fields.keys() {
        check_field_path(
            field,
            &format!("/spec/source/fields/{}", crate::document::escape(field)),
            true,
            out,
        );
    }
    let c = &src.consumer;
    if let Some(durable) = &c.durable {
        let bad = durable.is_empty()
            || durable.chars().any(|ch| {
                ch.is_whitespace() || ch.is_control() || matches!(ch, '.' | '*' | '>' | '/' | '\\')
            });
        if bad {
            out.push(Problem::new(
                "/spec/source/consumer/durable",
                "invalid-durable",
                format!(
                    "invalid durable name `{durable}`: use characters other than whitespace, `.`, `*`, `>`, `/` and `\\` (e.g. `weir_payments_order-routing`)"
                ),
            ));
        }
    }
    if let Some(d) = &c.ack_wait
        && check_duration(d, "/spec/source/consumer/ack_wait", out).is_some_and(|d| d.is_zero())
    {
        out.push(Problem::new(
            "/spec/source/consumer/ack_wait",
            "invalid-duration",
            "ack_wait must be longer than zero".into(),
        ));
    }
    if let Some(d) = &c.max_wait {
        check_duration(d, "/spec/source/consumer/max_wait", out);
    }
    if c.batch_size == Some(0) {
        out.push(Problem::new(
            "/spec/source/consumer/batch_size",
            "invalid-value",
            "batch_size must be at least 1".into(),
        ));
    }
    if c.max_ack_pending.is_some_and(|n| n == 0 || n < -1) {
        out.push(Problem::new(
            "/spec/source/consumer/max_ack_pending",
            "invalid-value",
            "max_ack_pending must be at least 1 (or -1 for unlimited)".into(),
        ));
    }
}

/// Retries and the dead-letter target.
fn check_errors(errors: &ErrorPolicy, out: &mut Vec<Problem>) {
    let retry = &errors.retry;
    if retry.max_attempts == 0 {
        out.push(Problem::new(
            "/spec/errors/retry/max_attempts",
            "invalid-value",
            "max_attempts must be at least 1".into(),
        ));
    }
    let b = &retry.backoff;
    let initial = check_duration(&b.initial, "/spec/errors/retry/backoff/initial", out);
    let max = check_duration(&b.max, "/spec/errors/retry/backoff/max", out);
    if let (Some(i), Some(m)) = (initial, max)
        && i > m
    {
        out.push(Problem::new(
            "/spec/errors/retry/backoff/initial",
            "invalid-value",
            format!(
                "backoff.initial ({}) is longer than backoff.max ({})",
                b.initial, b.max
            ),
        ));
    }
    if !(b.factor.is_finite() && b.factor >= 1.0) {
        out.push(Problem::new(
            "/spec/errors/retry/backoff/factor",
            "invalid-value",
            format!(
                "backoff.factor must be a number of at least 1, found {}",
                b.factor
            ),
        ));
    }
    if let Some(dlq) = &errors.dlq {
        if let Err(e) = check_subject(&dlq.subject) {
            out.push(Problem::new(
                "/spec/errors/dlq/subject",
                "invalid-subject",
                e,
            ));
        }
        if let Some(s) = &dlq.stream {
            check_stream_name(s, "/spec/errors/dlq/stream", out);
        }
    }
}

/// Worker-side execution settings.
fn check_execution(x: &Execution, out: &mut Vec<Problem>) {
    if x.parallelism == 0 {
        out.push(Problem::new(
            "/spec/execution/parallelism",
            "invalid-value",
            "parallelism must be at least 1".into(),
        ));
    }
    if x.delivery == crate::spec::DeliveryMode::Exclusive && x.parallelism > 1 {
        out.push(Problem::new(
            "/spec/execution/parallelism",
            "exclusive-parallelism",
            format!(
                "parallelism {} with `delivery: exclusive`: an exclusive pipeline runs one loop on one worker at a time, so that one cumulative ack can settle each batch; remove parallelism, or use `delivery: shared` to run {} loops per worker",
                x.parallelism, x.parallelism
            ),
        ));
    }
    if x.max_in_flight == Some(0) {
        out.push(Problem::new(
            "/spec/execution/max_in_flight",
            "invalid-value",
            "max_in_flight must be at least 1".into(),
        ));
    }
    if let Some(s) = &x.max_message_size {
        check_size(s, "/spec/execution/max_message_size", out);
    }
    if let Some(c) = &x.checkpoint {
        if let Some(d) = c.interval.as_deref().and_then(|i| {
            crate::value_check::check_duration(i, "/spec/execution/checkpoint/interval", out)
        }) && d.is_zero()
        {
            out.push(Problem::new(
                "/spec/execution/checkpoint/interval",
                "invalid-duration",
                "the checkpoint interval must be longer than zero".into(),
            ));
        }
        if c.events == Some(0) {
            out.push(Problem::new(
                "/spec/execution/checkpoint/events",
                "invalid-value",
                "checkpoint events must be at least 1".into(),
            ));
        }
    }
}

/// One edge of the graph: the target id and the pointer of the value that names it.
struct Edge<'a> {
    target: &'a str,
    path: String,
}

fn next_edges<'a>(next: &'a Next, base: &str, out: &mut Vec<Edge<'a>>) {
    match next {
        Next::One(id) => out.push(Edge {
            target: id,
            path: base.to_string(),
        }),
        Next::Many(ids) => {
            for (i, id) in ids.iter().enumerate() {
                out.push(Edge {
                    target: id,
                    path: format!("{base}/{i}"),
                });
            }
        }
    }
}

fn check_nodes(nodes: &[Node], out: &mut Vec<Problem>) {
    if nodes.is_empty() {
        out.push(Problem::new(
            "/spec/nodes",
            "empty-pipeline",
            "a pipeline needs at least one node; the first node receives the source's messages"
                .into(),
        ));
        return;
    }
    let index = node_index(nodes, out);
    let mut edges: Vec<Vec<Edge>> = Vec::with_capacity(nodes.len());
    for (i, node) in nodes.iter().enumerate() {
        let base = format!("/spec/nodes/{i}");
        let kind = node_kind(node, &base, out);
        let node_edges = node_edges(node, &base, out);
        check_kind_rules(node, kind, &base, out);
        check_targets(node, &node_edges, &index, out);
        check_node_body(node, &base, out);
        edges.push(node_edges);
    }
    // Each node's resolved targets, with the pointer of the value that names them.
    let targets: Vec<Vec<(usize, &str)>> = edges
        .iter()
        .map(|es| {
            es.iter()
                .filter_map(|e| index.get(e.target).map(|&t| (t, e.path.as_str())))
                .collect()
        })
        .collect();
    check_cycles(nodes, &targets, out);
    check_reachable(nodes, &index, &targets, out);
}

/// Node ids to their index; empty and duplicate ids are problems (the first one wins).
fn node_index<'a>(nodes: &'a [Node], out: &mut Vec<Problem>) -> HashMap<&'a str, usize> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        let base = format!("/spec/nodes/{i}");
        if node.id.is_empty() {
            out.push(Problem::new(
                format!("{base}/id"),
                "invalid-id",
                "empty node id".into(),
            ));
        } else if let Some(first) = index.get(node.id.as_str()) {
            out.push(Problem::new(
                format!("{base}/id"),
                "duplicate-id",
                format!(
                    "duplicate node id `{}` (already used by node #{}); ids must be unique",
                    node.id,
                    first + 1
                ),
            ));
        } else {
            index.insert(&node.id, i);
        }
    }

    index
}

/// The node's one kind; none or several are problems.
fn node_kind(node: &Node, base: &str, out: &mut Vec<Problem>) -> Option<NodeKind> {
    let kinds = node.kinds();
    match kinds.as_slice() {
        [k] => Some(*k),
        [] => {
            out.push(Problem::new(
                base,
                "missing-kind",
                format!(
                    "node `{}` has no kind; give it exactly one of `filter`, `map`, `route`, `publish`, `split`, `drop`, `window`, `dedup`, `validate`, `wasm`, `quality`",
                    node.id
                ),
            ));
            None
        }
        [_, rest @ ..] => {
            let names: Vec<String> = kinds.iter().map(|k| format!("`{}`", k.as_str())).collect();
            out.push(
                Problem::new(
                    format!("{base}/{}", rest[0].as_str()),
                    "multiple-kinds",
                    format!("node `{}` has several kinds ({}); a node has exactly one: split it into several nodes", node.id, names.join(", ")),
                )
                .at_key(),
            );
            None
        }
    }
}

/// Every edge the node names (`next`, rule `next`s, `default`); empty lists are problems.
fn node_edges<'a>(node: &'a Node, base: &str, out: &mut Vec<Problem>) -> Vec<Edge<'a>> {
    let mut node_edges = Vec::new();
    if let Some(n) = &node.next {
        next_edges(n, &format!("{base}/next"), &mut node_edges);
    }
    if let Some(rules) = &node.route {
        for (r, rule) in rules.iter().enumerate() {
            next_edges(
                &rule.next,
                &format!("{base}/route/{r}/next"),
                &mut node_edges,
            );
        }
    }
    if let Some(d) = &node.default {
        next_edges(d, &format!("{base}/default"), &mut node_edges);
    }
    if let Some(w) = &node.window {
        next_edges(&w.late, &format!("{base}/window/late"), &mut node_edges);
    }
    for (n, path) in [(&node.next, "next"), (&node.default, "default")] {
        if matches!(n, Some(Next::Many(v)) if v.is_empty()) {
            out.push(Problem::new(
                format!("{base}/{path}"),
                "empty-next",
                format!("empty `{path}` list; name at least one node"),
            ));
        }
    }

    node_edges
}

/// What each kind requires of `next` and `default`.
// Each arm of the kind `match` reads as one rule; folding the rules into guards hides them.
#[allow(clippy::collapsible_match)]
fn check_kind_rules(node: &Node, kind: Option<NodeKind>, base: &str, out: &mut Vec<Problem>) {
    if node.default.is_some() && kind.is_some() && kind != Some(NodeKind::Route) {
        out.push(
            Problem::new(
                format!("{base}/default"),
                "default-without-route",
                format!(
                    "`default` is only for `route` nodes; node `{}` sends everything to `next`",
                    node.id
                ),
            )
            .at_key(),
        );
    }
    match kind {
        Some(k) if k.is_sink() => {
            if node.next.is_some() {
                out.push(
                    Problem::new(
                        format!("{base}/next"),
                        "sink-with-next",
                        format!(
                            "node `{}` is a `{}` sink and ends its path; remove `next`",
                            node.id,
                            k.as_str()
                        ),
                    )
                    .at_key(),
                );
            }
        }
        Some(NodeKind::Route) => {
            if node.next.is_some() {
                out.push(
                    Problem::new(
                        format!("{base}/next"),
                        "next-on-route",
                        format!(
                            "route node `{}` sends messages through its rules' `next` and its `default`; remove `next` (use `default` for messages no rule matches)",
                            node.id
                        ),
                    )
                    .at_key(),
                );
            }
            if node.default.is_none() {
                out.push(Problem::new(
                    format!("{base}/route"),
                    "missing-default",
                    format!(
                        "route node `{}` has no `default`: messages that match no rule would vanish; add `default: <node>` (a `drop` node discards them on purpose)",
                        node.id
                    ),
                ));
            }
            if node.route.as_ref().is_some_and(Vec::is_empty) {
                out.push(Problem::new(
                    format!("{base}/route"),
                    "empty-route",
                    format!("route node `{}` has no rules", node.id),
                ));
            }
        }
        Some(k) => {
            if node.next.is_none() {
                out.push(Problem::new(
                    base,
                    "missing-next",
                    format!(
                        "node `{}` ({}) has no `next`: every path must end in a `publish` or `drop` node; add `next: <node>`",
                        node.id,
                        k.as_str()
                    ),
                ));
            }
        }
        None => {}
    }
}

/// Every target names a node of the pipeline, and not the node itself.
fn check_targets(
    node: &Node,
    edges: &[Edge],
    index: &HashMap<&str, usize>,
    out: &mut Vec<Problem>,
) {
    for edge in edges {
        if !index.contains_key(edge.target) {
            let hint = nearest(edge.target, index.keys().copied())
                .map(|n| format!(", did you mean `{n}`?"))
                .unwrap_or_else(|| {
                    let mut ids: Vec<&str> = index.keys().copied().collect();
                    ids.sort_unstable();
                    format!(
                        "; nodes are: {}",
                        ids.iter()
                            .map(|i| format!("`{i}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                });
            out.push(Problem::new(
                &edge.path,
                "dangling-next",
                format!(
                    "node `{}` sends to `{}`, which is not a node of this pipeline{hint}",
                    node.id, edge.target
                ),
            ));
        } else if edge.target == node.id {
            out.push(Problem::new(
                &edge.path,
                "cycle",
                format!(
                    "node `{}` sends to itself; the graph must be acyclic",
                    node.id
                ),
            ));
        }
    }
}

/// Cycles: depth-first search with colours; reports the edge that closes each cycle.
// The match arms read as the three colours; folding the report into a guard hides that.
#[allow(clippy::collapsible_match)]
fn check_cycles(nodes: &[Node], targets: &[Vec<(usize, &str)>], out: &mut Vec<Problem>) {
    let mut state = vec![0u8; nodes.len()]; // 0 new, 1 on the stack, 2 done
    let mut reported: HashSet<String> = HashSet::new();
    for start in 0..nodes.len() {
        if state[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some(&mut (node, ref mut next_i)) = stack.last_mut() {
            let outs = &targets[node];
            if *next_i < outs.len() {
                let (t, path) = outs[*next_i];
                *next_i += 1;
                match state[t] {
                    0 => {
                        state[t] = 1;
                        stack.push((t, 0));
                    }
                    1 if t != node => {
                        if reported.insert(path.to_string()) {
                            let from = stack.iter().position(|(n, _)| *n == t).unwrap_or(0);
                            let mut cycle: Vec<&str> = stack[from..]
                                .iter()
                                .map(|(n, _)| nodes[*n].id.as_str())
                                .collect();
                            cycle.push(nodes[t].id.as_str());
                            out.push(Problem::new(
                                path,
                                "cycle",
                                format!(
                                    "cycle {}; the node graph must be acyclic",
                                    cycle.join(" → ")
                                ),
                            ));
                        }
                    }
                    _ => {}
                }
            } else {
                state[node] = 2;
                stack.pop();
            }
        }
    }
}

/// Every node is reachable from the entry node (the first one).
fn check_reachable(
    nodes: &[Node],
    index: &HashMap<&str, usize>,
    targets: &[Vec<(usize, &str)>],
    out: &mut Vec<Problem>,
) {
    let mut seen = vec![false; nodes.len()];
    let mut queue = vec![0usize];
    seen[0] = true;
    while let Some(n) = queue.pop() {
        for &(t, _) in &targets[n] {
            if !seen[t] {
                seen[t] = true;
                queue.push(t);
            }
        }
    }
    for (i, node) in nodes.iter().enumerate() {
        if !seen[i] && index.get(node.id.as_str()) == Some(&i) {
            out.push(Problem::new(
                format!("/spec/nodes/{i}/id"),
                "unreachable",
                format!(
                    "node `{}` is unreachable: no path leads to it from the entry node `{}` (the first node)",
                    node.id, nodes[0].id
                ),
            ));
        }
    }
}

fn check_node_body(node: &Node, base: &str, out: &mut Vec<Problem>) {
    if let Some(f) = &node.filter {
        check_expression(f, &format!("{base}/filter"), out);
    }
    if let Some(rules) = &node.route {
        for (r, rule) in rules.iter().enumerate() {
            check_expression(&rule.when, &format!("{base}/route/{r}/when"), out);
        }
    }
    if let Some(map) = &node.map {
        let esc = crate::document::escape;
        if map.set.is_empty()
            && map.rename.is_empty()
            && map.cast.is_empty()
            && map.remove.is_empty()
        {
            out.push(Problem::new(
                format!("{base}/map"),
                "empty-map",
                format!(
                    "map node `{}` changes nothing; give it `set`, `rename`, `cast` or `remove`",
                    node.id
                ),
            ));
        }
        for (field, e) in &map.set {
            let p = format!("{base}/map/set/{}", esc(field));
            check_field_path(field, &p, true, out);
            check_expression(e, &p, out);
        }
        for (from, to) in &map.rename {
            let p = format!("{base}/map/rename/{}", esc(from));
            check_field_path(from, &p, true, out);
            check_field_path(to, &p, false, out);
        }
        for field in map.cast.keys() {
            check_field_path(field, &format!("{base}/map/cast/{}", esc(field)), true, out);
        }
        for (i, field) in map.remove.iter().enumerate() {
            check_field_path(field, &format!("{base}/map/remove/{i}"), false, out);
        }
    }
    if let Some(split) = &node.split {
        check_field_path(&split.field, &format!("{base}/split/field"), false, out);
    }
    if let Some(w) = &node.window {
        crate::window_check::check_window(w, &format!("{base}/window"), out);
    }
    if let Some(d) = &node.dedup {
        crate::window_check::check_dedup(d, &format!("{base}/dedup"), out);
    }
    if let Some(wasm) = &node.wasm {
        check_wasm(wasm, &format!("{base}/wasm"), out);
    }
    if let Some(publish) = &node.publish {
        check_subject_template(&publish.subject, &format!("{base}/publish/subject"), out);
        for (name, value) in &publish.headers {
            let p = format!("{base}/publish/headers/{}", crate::document::escape(name));
            check_header_name(name, &p, out);
            check_template(value, &p, out);
        }
        check_publish_encoding(publish, &format!("{base}/publish"), out);
    }
}

/// A `publish` node's encoding: `avro` and `protobuf` need a registry `schema`; `message` is
/// Protobuf's, `wire` needs a schema.
fn check_publish_encoding(p: &crate::spec::PublishSpec, base: &str, out: &mut Vec<Problem>) {
    use crate::spec::OutputFormat;
    if p.format != OutputFormat::Json && p.schema.is_none() {
        out.push(Problem::new(
            format!("{base}/format"),
            "schema-required",
            format!(
                "format `{}` needs `schema: {{ subject, version }}`: name the registry subject the outputs are written with",
                p.format.as_str()
            ),
        ));
    }
    if p.wire.is_some() && p.schema.is_none() {
        out.push(Problem::new(
            format!("{base}/wire"),
            "schema-required",
            "`wire` needs `schema`: the Confluent header carries the registry schema's id".into(),
        ));
    }
    if let Some(s) = &p.schema
        && s.message.is_some()
        && p.format != OutputFormat::Protobuf
    {
        out.push(Problem::new(
            format!("{base}/schema/message"),
            "message-without-protobuf",
            "`message` picks the Protobuf message written; it needs `format: protobuf`".into(),
        ));
    }
}

/// A `wasm` node: a module name, an exported function name, and limits within bounds.
fn check_wasm(wasm: &crate::spec::WasmSpec, base: &str, out: &mut Vec<Problem>) {
    use crate::wasm_abi::{WASM_MAX_MEMORY, WASM_MAX_TIMEOUT};
    if !crate::spec::is_module_name(&wasm.module) {
        out.push(Problem::new(
            format!("{base}/module"),
            "invalid-module-name",
            format!(
                "invalid module name `{}`: use 1 to 63 lowercase letters, digits and `-` (e.g. `pii-redact`)",
                wasm.module
            ),
        ));
    }
    let f = &wasm.function;
    let ident = !f.is_empty()
        && f.len() <= 128
        && f.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !f.starts_with("weir_");
    if !ident {
        out.push(Problem::new(
            format!("{base}/function"),
            "invalid-function",
            format!(
                "invalid function `{f}`: an exported function name of letters, digits and `_`, not starting with `weir_` (reserved for the ABI)"
            ),
        ));
    }
    if let Some(t) = &wasm.timeout
        && let Some(d) = check_duration(t, &format!("{base}/timeout"), out)
        && (d.is_zero() || d > WASM_MAX_TIMEOUT)
    {
        out.push(Problem::new(
            format!("{base}/timeout"),
            "wasm-timeout",
            format!("`timeout` must be above 0 and at most {WASM_MAX_TIMEOUT:?}"),
        ));
    }
    if let Some(m) = &wasm.max_memory {
        match parse_size(m) {
            Ok(bytes) if (64 << 10..=WASM_MAX_MEMORY).contains(&bytes) => {}
            Ok(_) => out.push(Problem::new(
                format!("{base}/max_memory"),
                "wasm-memory",
                "`max_memory` must be between 64KiB and 256MiB".to_string(),
            )),
            Err(e) => out.push(Problem::new(
                format!("{base}/max_memory"),
                "invalid-size",
                e,
            )),
        }
    }
}

fn check_stream(spec: &StreamSpec, out: &mut Vec<Problem>) {
    if spec.subjects.is_empty() {
        out.push(Problem::new(
            "/spec/subjects",
            "missing-subjects",
            "a stream needs at least one subject (e.g. `orders.>`)".into(),
        ));
    }
    for (i, s) in spec.subjects.iter().enumerate() {
        if let Err(e) = check_filter(s) {
            out.push(Problem::new(
                format!("/spec/subjects/{i}"),
                "invalid-subject",
                e,
            ));
        }
    }
    if !(1..=5).contains(&spec.replicas) {
        out.push(Problem::new(
            "/spec/replicas",
            "invalid-value",
            format!("replicas must be 1 to 5, found {}", spec.replicas),
        ));
    }
    if spec.max_msgs.is_some_and(|n| n == 0 || n < -1) {
        out.push(Problem::new(
            "/spec/max_msgs",
            "invalid-value",
            "max_msgs must be at least 1, or -1 for unlimited".into(),
        ));
    }
    for (value, field) in [
        (&spec.max_bytes, "max_bytes"),
        (&spec.max_msg_size, "max_msg_size"),
    ] {
        if let Some(v) = value {
            check_size(v, &format!("/spec/{field}"), out);
        }
    }
    for (value, field) in [
        (&spec.max_age, "max_age"),
        (&spec.duplicate_window, "duplicate_window"),
    ] {
        if let Some(v) = value {
            check_duration(v, &format!("/spec/{field}"), out);
        }
    }
}
