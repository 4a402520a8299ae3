//! `window` nodes: what `weir validate` says about bad ones, each at its line and column, and
//! the plan of a good one.

use std::time::Duration;
use weir_pipelines::plan::{NodeOp, WindowShape};
use weir_pipelines::{Resource, load_str, plan};

/// (line, column, code) of every diagnostic.
fn problems(text: &str) -> Vec<(usize, usize, String)> {
    match load_str(text, "w.yaml") {
        Ok(_) => vec![],
        Err(diags) => diags
            .iter()
            .map(|d| (d.line, d.column, d.code.clone()))
            .collect(),
    }
}

fn pipeline(window: &str) -> String {
    format!(
        "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata:\n  name: w\nspec:\n  source:\n    stream: ORDERS\n  nodes:\n    - id: w\n      window:\n{window}\n        late: late\n      next: out\n    - id: out\n      publish: {{ subject: metrics }}\n    - id: late\n      drop: {{}}\n"
    )
}

/// Line 11 is the first line of the window body.
#[test]
fn bad_windows_are_reported_at_their_values() {
    let text = pipeline(
        "        kind: hopping\n        size: 1m\n        slide: 2m\n        gap: 5s\n        allowed_lateness: soon\n        group_by: [\"lower(data.region)\"]\n        aggregates:\n          window_end: count(*)\n          \"bad name\": sum(data.amount",
    );
    let got = problems(&text);
    assert_eq!(
        got,
        vec![
            (13, 16, "invalid-value".to_string()),
            (14, 9, "unexpected-field".to_string()),
            (15, 27, "invalid-duration".to_string()),
            (16, 20, "unnamed-group-key".to_string()),
            (18, 11, "reserved-name".to_string()),
            (19, 11, "invalid-name".to_string()),
            (19, 23, "invalid-expression".to_string()),
        ],
        "{text}"
    );
}

#[test]
fn a_window_needs_its_lengths_aggregates_and_late_port() {
    let text = "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata:\n  name: w\nspec:\n  source:\n    stream: ORDERS\n  nodes:\n    - id: w\n      window:\n        kind: session\n        aggregates: {}\n      next: out\n    - id: out\n      publish: { subject: metrics }\n";
    let got = problems(text);
    let codes: Vec<&str> = got.iter().map(|p| p.2.as_str()).collect();
    // `late` is required by the schema; the structural check reports it first and alone.
    assert_eq!(codes, vec!["missing-field"], "{got:?}");
    let with_late = text.replace("aggregates: {}\n", "aggregates: {}\n        late: out\n");
    let got = problems(&with_late);
    assert_eq!(
        got,
        vec![
            (11, 9, "missing-field".to_string()),
            (12, 21, "empty-aggregates".to_string()),
        ],
        "{with_late}"
    );
}

#[test]
fn a_good_window_plans_with_its_durations_and_ports() {
    let text = pipeline(
        "        kind: hopping\n        size: 1m\n        slide: 15s\n        time: data.ts\n        allowed_lateness: 5s\n        idle_timeout: 1m\n        group_by: [data.customer.region]\n        aggregates: { total: sum(data.amount) }",
    );
    let Resource::Pipeline(p) = load_str(&text, "w.yaml").expect("valid").remove(0) else {
        panic!("not a pipeline")
    };
    let plan = plan(&p).expect("plans");
    assert_eq!(plan.nodes[0].ports, vec![vec![1], vec![2]]);
    let NodeOp::Window(w) = &plan.nodes[0].op else {
        panic!("not a window")
    };
    assert_eq!(
        w.shape,
        WindowShape::Hopping {
            size: Duration::from_secs(60),
            slide: Duration::from_secs(15)
        }
    );
    assert_eq!(w.allowed_lateness, Duration::from_secs(5));
    assert_eq!(w.idle_timeout, Some(Duration::from_secs(60)));
    assert_eq!(
        w.group_by,
        vec![("region".to_string(), "data.customer.region".to_string())]
    );
}

#[test]
fn dedup_needs_a_key_and_a_positive_span() {
    let text = "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata:\n  name: d\nspec:\n  source:\n    stream: ORDERS\n  nodes:\n    - id: once\n      dedup: { key: \"data.id +\", within: 0s }\n      next: out\n    - id: out\n      publish: { subject: o }\n";
    let got = problems(text);
    assert_eq!(
        got,
        vec![
            (10, 21, "invalid-expression".to_string()),
            (10, 42, "invalid-duration".to_string()),
        ],
        "{text}"
    );
}

#[test]
fn a_hopping_window_may_not_put_an_event_in_too_many_windows() {
    let text = pipeline(
        "        kind: hopping\n        size: 1h\n        slide: 1s\n        aggregates: { n: count(*) }",
    );
    assert_eq!(problems(&text), vec![(13, 16, "invalid-value".to_string())]);
    let fine = text.replace("slide: 1s", "slide: 5s");
    assert_eq!(problems(&fine), vec![]);
}

#[test]
fn a_stateful_pipeline_runs_on_one_loop_and_checkpoints_sanely() {
    let text = "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata:\n  name: d\nspec:\n  source:\n    stream: ORDERS\n  nodes:\n    - id: once\n      dedup: { key: data.id, within: 1m }\n      next: out\n    - id: out\n      publish: { subject: o }\n  execution:\n    parallelism: 4\n    checkpoint: { interval: 0s, events: 0 }\n";
    let got = problems(text);
    assert_eq!(
        got,
        vec![
            (15, 18, "stateful-parallelism".to_string()),
            (16, 29, "invalid-duration".to_string()),
            (16, 41, "invalid-value".to_string()),
        ],
        "{text}"
    );
    let Err(diags) = load_str(text, "d.yaml") else {
        panic!("refused")
    };
    let parallelism = diags
        .iter()
        .find(|d| d.code == "stateful-parallelism")
        .expect("located");
    assert!(
        parallelism.message.contains("`once`")
            && parallelism.message.contains("execution.partitions"),
        "{}",
        parallelism.message
    );
}

/// A dedup pipeline with `execution` lines appended (line 15 is the first of them) and
/// optional nodes before the dedup.
fn partitioned(before: &str, execution: &str) -> String {
    format!(
        "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata:\n  name: p\nspec:\n  source:\n    stream: ORDERS\n  nodes:\n{before}    - id: once\n      dedup: {{ key: data.id, within: 1m }}\n      next: out\n    - id: out\n      publish: {{ subject: o }}\n  execution:\n{execution}\n"
    )
}

#[test]
fn keyed_partitions_take_the_stateful_key_or_partition_by() {
    let Ok(resources) = load_str(
        &partitioned("", "    partitions: 8\n    parallelism: 2"),
        "p.yaml",
    ) else {
        panic!("valid")
    };
    let Resource::Pipeline(p) = &resources[0] else {
        panic!("a pipeline")
    };
    let planned = plan(p).expect("plans");
    assert_eq!(planned.execution.partitions, 8);
    assert_eq!(planned.execution.partition_key, vec!["data.id".to_string()]);

    // A map before the stateful node: its key cannot be read from the input.
    let mapped = "    - id: shape\n      map: { set: { id: upper(data.id) } }\n      next: once\n";
    let text = partitioned(mapped, "    partitions: 8");
    assert_eq!(
        problems(&text),
        vec![(18, 17, "partition-key-needed".to_string())],
        "{text}"
    );
    let named = partitioned(
        mapped,
        "    partitions: 8\n    partition_by: [upper(data.id)]",
    );
    assert_eq!(problems(&named), vec![], "{named}");
    let Ok(resources) = load_str(&named, "p.yaml") else {
        panic!("valid")
    };
    let Resource::Pipeline(p) = &resources[0] else {
        panic!("a pipeline")
    };
    assert_eq!(
        plan(p).expect("plans").execution.partition_key,
        vec!["upper(data.id)".to_string()]
    );
}

#[test]
fn bad_partitioning_is_reported_where_it_is_set() {
    // Out of range; more loops than partitions; a bad key expression.
    assert_eq!(
        problems(&partitioned("", "    partitions: 0")),
        vec![(15, 17, "invalid-value".to_string())]
    );
    assert_eq!(
        problems(&partitioned(
            "",
            "    partitions: 2\n    parallelism: 4\n    partition_by: [\"data.id +\"]"
        )),
        vec![
            (16, 18, "stateful-parallelism".to_string()),
            (17, 20, "invalid-expression".to_string()),
        ]
    );
    // Nothing to partition.
    let stateless = "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata:\n  name: s\nspec:\n  source:\n    stream: ORDERS\n  nodes:\n    - id: out\n      publish: { subject: o }\n  execution:\n    partitions: 4\n";
    assert_eq!(
        problems(stateless),
        vec![(12, 17, "partitions-without-state".to_string())]
    );
    // A window without group keys is one group.
    let global =
        pipeline("        kind: tumbling\n        size: 1m\n        aggregates: { n: count(*) }")
            + "  execution:\n    partitions: 4\n";
    assert_eq!(
        problems(&global),
        vec![(11, 9, "unpartitionable-window".to_string())],
        "{global}"
    );
}
