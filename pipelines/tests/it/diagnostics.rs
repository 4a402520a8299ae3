//! Every kind of mistake is reported, all at once, at the line and column of the offending
//! value (or key).

use weir_pipelines::{Diagnostics, load_file, load_str};

use crate::crate_path;

/// (line, column, code) of every diagnostic, in order.
fn problems(text: &str) -> Vec<(usize, usize, String)> {
    match load_str(text, "test.yaml") {
        Ok(_) => vec![],
        Err(diags) => diags
            .iter()
            .map(|d| (d.line, d.column, d.code.clone()))
            .collect(),
    }
}

fn diagnostics(text: &str) -> Diagnostics {
    load_str(text, "test.yaml").expect_err("the text has problems")
}

/// The 1-based line and column of the first `needle` in `text`, moved `skip` characters right.
fn at(text: &str, needle: &str, skip: usize) -> (usize, usize) {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in the text"));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, text[line_start..offset].chars().count() + 1 + skip)
}

fn expect(text: &str, needle: &str, skip: usize, code: &str) -> (usize, usize, String) {
    let (l, c) = at(text, needle, skip);
    (l, c, code.to_string())
}

/// A pipeline with the given nodes (indented as list items under `nodes:`).
fn pipeline(nodes: &str) -> String {
    format!(
        "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata:\n  name: test\nspec:\n  source:\n    stream: ORDERS\n  nodes:\n{nodes}"
    )
}

const SINK: &str = "    - id: out\n      publish: { subject: orders.out }\n";

#[test]
fn unknown_field_dangling_next_and_bad_sql_are_reported_together() {
    let path = crate_path("tests/fixtures/three-problems.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let diags = load_file(&path).expect_err("three problems");
    let got: Vec<_> = diags
        .iter()
        .map(|d| (d.line, d.column, d.code.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            expect(&text, "\"data.amount >\"", 0, "invalid-expression"),
            expect(&text, "nxt", 0, "unknown-field"),
            expect(&text, "next: eu", 6, "dangling-next"),
        ],
        "{diags}"
    );
    assert_eq!(got[0].0, 10);
    assert_eq!((got[1].0, got[1].1), (13, 7));
    assert_eq!((got[2].0, got[2].1), (16, 17));
    let lines: Vec<String> = diags.to_string().lines().map(String::from).collect();
    let file = path.display().to_string();
    assert_eq!(
        lines[1],
        format!("{file}:13:7: unknown field `nxt`, did you mean `next`?")
    );
    assert!(
        lines[2].starts_with(&format!("{file}:16:17: node `route` sends to `eu`")),
        "{}",
        lines[2]
    );
    assert_eq!(diags.0[1].path, "/spec/nodes/1/nxt");
    assert_eq!(diags.0[2].path, "/spec/nodes/1/route/0/next");
}

#[test]
fn yaml_syntax_errors_have_a_position() {
    let got = problems("apiVersion: weir.dev/v1\nkind: Pipeline\n  metadata: x\n");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].2, "yaml-syntax");
    assert_eq!(got[0].0, 3);
    let diags = load_file(&crate_path("tests/fixtures/syntax-error.yaml")).unwrap_err();
    assert_eq!(diags.len(), 1);
    assert_eq!(diags.0[0].code, "yaml-syntax");
    assert!(diags.0[0].line >= 6, "{diags}");
    let got = problems("{\"apiVersion\": \"weir.dev/v1\",\n \"kind\": \"Stream\",, }");
    assert_eq!((got[0].0, got[0].2.as_str()), (2, "yaml-syntax"), "{got:?}");
}

#[test]
fn graph_errors_are_located() {
    let path = crate_path("tests/fixtures/graph-errors.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let diags = load_file(&path).unwrap_err();
    let got: Vec<_> = diags
        .iter()
        .map(|d| (d.line, d.column, d.code.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            expect(&text, "next: a", 6, "cycle"),
            expect(&text, "id: lonely", 0, "missing-next"),
            expect(&text, "id: lonely", 4, "unreachable"),
            expect(&text, "id: a\n      drop", 4, "duplicate-id"),
        ],
        "{diags}"
    );
    assert!(
        diags.0[0].message.contains("a → b → a"),
        "{}",
        diags.0[0].message
    );
}

#[test]
fn bad_subjects_durations_sizes_templates_and_names_in_json() {
    let path = crate_path("tests/fixtures/bad-values.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let diags = load_file(&path).unwrap_err();
    let got: Vec<_> = diags
        .iter()
        .map(|d| (d.document, d.line, d.column, d.code.clone()))
        .collect();
    let e = |doc: usize, needle: &str, code: &str| {
        let (l, c) = at(&text, needle, 0);
        (doc, l, c, code.to_string())
    };
    assert_eq!(
        got,
        vec![
            e(0, "\"orders..x\"", "invalid-subject"),
            e(0, "\"orders.>.x\"", "invalid-subject"),
            e(0, "\"7 fortnights\"", "invalid-duration"),
            e(0, "\"1XB\"", "invalid-size"),
            e(1, "\"Bad_Name\"", "invalid-name"),
            e(1, "\"orders created\"", "invalid-subject"),
            e(1, "\"orders.{data.region\"", "invalid-template"),
            e(1, "\"{foo.bar}\"", "unknown-reference"),
        ],
        "{diags}"
    );
}

#[test]
fn unknown_reference_in_an_expression() {
    let text = pipeline(&format!(
        "    - id: f\n      filter: \"foo.bar > 1\"\n      next: out\n{SINK}"
    ));
    let diags = diagnostics(&text);
    assert_eq!(
        problems(&text),
        vec![expect(&text, "\"foo.bar", 0, "unknown-reference")]
    );
    assert!(diags.0[0].message.contains("unknown name `foo`"), "{diags}");
    assert!(diags.0[0].message.contains("data.foo"), "{diags}");
}

#[test]
fn unparsable_expressions_everywhere() {
    let text = pipeline(&format!(
        "    - id: r\n      route:\n        - when: \"data.a ==\"\n          next: m\n      default: m\n    - id: m\n      map:\n        set: {{ x: \"1 +\" }}\n      next: out\n{SINK}"
    ));
    assert_eq!(
        problems(&text),
        vec![
            expect(&text, "\"data.a ==\"", 0, "invalid-expression"),
            expect(&text, "\"1 +\"", 0, "invalid-expression"),
        ]
    );
}

#[test]
fn publish_subjects_and_templates() {
    let text = pipeline(
        "    - id: a\n      publish: { subject: \"orders.*\" }\n    - id: b\n      publish: { subject: \"orders..{data.x}\" }\n    - id: c\n      publish: { subject: \"orders.{data.x\" }\n    - id: d\n      publish: { subject: \"orders.{nope}\", headers: { \"X Bad\": v, X-Ok: \"{data.a +}\" } }\n",
    );
    let got = problems(&text);
    assert_eq!(
        got,
        vec![
            expect(&text, "\"orders.*\"", 0, "invalid-subject"),
            expect(&text, "id: b", 4, "unreachable"),
            expect(&text, "\"orders..{", 0, "invalid-subject"),
            expect(&text, "id: c", 4, "unreachable"),
            expect(&text, "\"orders.{data.x\"", 0, "invalid-template"),
            expect(&text, "id: d", 4, "unreachable"),
            expect(&text, "\"orders.{nope}\"", 0, "unknown-reference"),
            expect(&text, "\"X Bad\"", 0, "invalid-header"),
            expect(&text, "\"{data.a +}\"", 0, "invalid-expression"),
        ]
    );
}

#[test]
fn durations_and_sizes() {
    let text = "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: { name: t }\nspec:\n  source: { stream: S, consumer: { ack_wait: 30, durable: a.b } }\n  nodes:\n    - id: out\n      drop: {}\n  errors:\n    retry: { backoff: { initial: 1m, max: 30s } }\n  execution: { max_message_size: 8 MB, parallelism: 0 }\n";
    let got = problems(text);
    assert_eq!(
        got,
        vec![
            expect(text, "30,", 0, "invalid-duration"),
            expect(text, "a.b }", 0, "invalid-durable"),
            expect(text, "1m", 0, "invalid-value"),
            expect(text, "parallelism: 0", 13, "invalid-value"),
        ],
        "{:?}",
        diagnostics(text).to_string()
    );
    let d = diagnostics(text);
    assert!(d.0[0].message.contains("no unit"), "{d}");
    let text = "apiVersion: weir.dev/v1\nkind: Stream\nmetadata: { name: S }\nspec:\n  subjects: [a.b]\n  max_bytes: lots\n  duplicate_window: 2 minutes\n  max_age: soon\n";
    assert_eq!(
        problems(text),
        vec![
            expect(text, "lots", 0, "invalid-size"),
            expect(text, "soon", 0, "invalid-duration")
        ]
    );
}

#[test]
fn node_shape_errors() {
    let text = pipeline(
        "    - id: a\n      filter: \"true\"\n      map: { set: { x: \"1\" } }\n      next: b\n    - id: b\n      next: c\n    - id: c\n      filter: \"true\"\n      default: out\n      next: out\n    - id: out\n      publish: { subject: o.x }\n      next: a\n",
    );
    assert_eq!(
        problems(&text),
        vec![
            expect(&text, "map:", 0, "multiple-kinds"),
            expect(&text, "id: b", 0, "missing-kind"),
            expect(&text, "default: out", 0, "default-without-route"),
            expect(&text, "next: a", 0, "sink-with-next"),
            expect(&text, "next: a", 6, "cycle"),
        ]
    );
}

#[test]
fn paths_must_end_in_a_sink() {
    let text = pipeline(
        "    - id: a\n      filter: \"true\"\n      next: r\n    - id: r\n      route:\n        - when: \"true\"\n          next: m\n    - id: m\n      map: { remove: [x] }\n",
    );
    assert_eq!(
        problems(&text),
        vec![
            expect(&text, "- when", 0, "missing-default"),
            expect(&text, "id: m", 0, "missing-next")
        ]
    );
    // An explicit `drop` ends a path.
    let ok = pipeline(
        "    - id: a\n      filter: \"true\"\n      next: gone\n    - id: gone\n      drop:\n",
    );
    assert_eq!(problems(&ok), vec![]);
}

#[test]
fn dangling_next_suggests_the_nearest_id() {
    let text = pipeline(&format!(
        "    - id: a\n      filter: \"true\"\n      next: [ot, elsewhere]\n{SINK}"
    ));
    let d = diagnostics(&text);
    assert_eq!(
        problems(&text),
        vec![
            expect(&text, "ot,", 0, "dangling-next"),
            expect(&text, "elsewhere", 0, "dangling-next"),
            expect(&text, "id: out", 4, "unreachable"),
        ]
    );
    assert!(d.0[0].message.contains("did you mean `out`?"), "{d}");
    assert_eq!(d.0[1].path, "/spec/nodes/0/next/1");
}

#[test]
fn structural_errors_suggest_and_locate() {
    let text = "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata:\n  name: t\n  lables: {}\nspec:\n  source:\n    stream: S\n    format: jsno\n    deliver: { sequence: -1 }\n  nodes:\n    - id: out\n      map: { sett: { a: \"1\" } }\n      next: 5\n    - id: x\n      publish: { headers: {} }\n";
    let d = diagnostics(text);
    let got: Vec<_> = d
        .iter()
        .map(|d| (d.line, d.column, d.code.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            expect(text, "lables", 0, "unknown-field"),
            expect(text, "jsno", 0, "invalid-value"),
            expect(text, "-1", 0, "invalid-value"),
            expect(text, "sett", 0, "unknown-field"),
            expect(text, "{ headers", 0, "missing-field"),
        ],
        "{d}"
    );
    assert!(d.0[0].message.contains("did you mean `labels`?"), "{d}");
    assert!(d.0[1].message.contains("did you mean `json`?"), "{d}");
    assert!(d.0[3].message.contains("did you mean `set`?"), "{d}");
    assert!(d.0[4].message.contains("missing field `subject`"), "{d}");
}

#[test]
fn kinds_and_api_versions() {
    let text = "apiVersion: weir.dev/v1\nkind: Pipline\nmetadata: { name: t }\nspec: {}\n---\napiVersion: weir.dev/v2\nkind: Stream\nmetadata: { name: S }\nspec: { subjects: [a] }\n---\n- 1\n---\nfoo\n";
    let d = diagnostics(text);
    let got: Vec<_> = d
        .iter()
        .map(|d| (d.document, d.line, d.column, d.code.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, 2, 7, "unknown-kind".to_string()),
            (1, 6, 13, "api-version".to_string()),
            (2, 11, 3, "invalid-resource".to_string()),
            (3, 13, 1, "invalid-resource".to_string()),
        ],
        "{d}"
    );
    assert!(d.0[0].message.contains("did you mean `Pipeline`?"), "{d}");
}

#[test]
fn duplicate_keys_resources_and_empty_files() {
    let text = "apiVersion: weir.dev/v1\nkind: Stream\nmetadata: { name: S }\nspec: { subjects: [a] }\nkind: Stream\n---\napiVersion: weir.dev/v1\nkind: Stream\nmetadata: { name: S }\nspec: { subjects: [b] }\n";
    assert_eq!(
        problems(text),
        vec![
            (5, 1, "duplicate-key".to_string()),
            (9, 19, "duplicate-resource".to_string())
        ]
    );
    assert_eq!(problems(""), vec![(1, 1, "no-resources".to_string())]);
    assert_eq!(
        problems("# nothing here\n"),
        vec![(1, 1, "no-resources".to_string())]
    );
}

#[test]
fn unreadable_files_are_diagnostics() {
    let d = load_file(std::path::Path::new("/nonexistent/pipeline.yaml")).unwrap_err();
    assert_eq!(d.0[0].code, "unreadable-file");
    assert_eq!(d.to_string().lines().count(), 1);
    assert!(
        d.to_string()
            .starts_with("/nonexistent/pipeline.yaml: cannot read the file"),
        "{d}"
    );
}

#[test]
fn diagnostics_serialize_for_machines() {
    let text = pipeline("    - id: a\n      filter: \"true\"\n      next: nowhere\n");
    let d = diagnostics(&text);
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json[0]["file"], "test.yaml");
    assert_eq!(json[0]["line"], 11);
    assert_eq!(json[0]["column"], 13);
    assert_eq!(json[0]["path"], "/spec/nodes/0/next");
    assert_eq!(json[0]["code"], "dangling-next");
    assert!(json[0]["message"].as_str().unwrap().contains("nowhere"));
    let back: Diagnostics = serde_json::from_value(json).unwrap();
    assert_eq!(back, d);
}

#[test]
fn yaml_conveniences() {
    // Anchors and aliases, plain numbers where text is expected, `drop:` with no body.
    let text = "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata:\n  name: t\n  labels: { version: 2 }\nspec:\n  source: { stream: S }\n  nodes:\n    - id: a\n      map: { set: &s { tier: \"'x'\" } }\n      next: b\n    - id: b\n      map: { set: *s }\n      next: c\n    - id: c\n      drop:\n";
    let resources = load_str(text, "t.yaml").unwrap_or_else(|d| panic!("{d}"));
    let weir_pipelines::Resource::Pipeline(p) = &resources[0] else {
        panic!()
    };
    assert_eq!(p.metadata.labels["version"], "2");
    assert_eq!(p.spec.nodes[1].map.as_ref().unwrap().set["tier"], "'x'");
    assert!(p.spec.nodes[2].drop.is_some());
}

#[test]
fn wasm_node_mistakes_are_reported_at_their_values() {
    let text = pipeline(&format!(
        "    - id: udf\n      wasm: {{ module: Bad_Name, function: weir_alloc, timeout: 1h, max_memory: 1GiB }}\n      next: out\n{SINK}"
    ));
    assert_eq!(
        problems(&text),
        vec![
            expect(&text, "Bad_Name", 0, "invalid-module-name"),
            expect(&text, "weir_alloc", 0, "invalid-function"),
            expect(&text, "1h", 0, "wasm-timeout"),
            expect(&text, "1GiB", 0, "wasm-memory"),
        ]
    );
    let ok = pipeline(&format!(
        "    - id: udf\n      wasm: {{ module: pii-redact, version: 2, function: redact, config: {{ a: 1 }} }}\n      next: out\n{SINK}"
    ));
    assert_eq!(problems(&ok), vec![]);
    let latest = pipeline(&format!(
        "    - id: udf\n      wasm: {{ module: pii-redact, version: latest, function: redact }}\n      next: out\n{SINK}"
    ));
    assert_eq!(problems(&latest), vec![]);
    let bad_version = pipeline(&format!(
        "    - id: udf\n      wasm: {{ module: pii-redact, version: newest, function: redact }}\n      next: out\n{SINK}"
    ));
    assert_eq!(
        problems(&bad_version).len(),
        1,
        "{:?}",
        problems(&bad_version)
    );
}

#[test]
fn an_exclusive_pipeline_runs_one_loop_and_a_wrong_mode_is_named() {
    let exclusive = format!("{}  execution:\n    delivery: exclusive\n", pipeline(SINK));
    assert_eq!(problems(&exclusive), vec![]);
    let resources = load_str(&exclusive, "test.yaml").expect("valid");
    let weir_pipelines::Resource::Pipeline(resource) = &resources[0] else {
        panic!("not a pipeline")
    };
    let plan = weir_pipelines::plan::plan(resource).expect("planned");
    assert!(plan.execution.exclusive);

    let parallel = format!(
        "{}  execution:\n    delivery: exclusive\n    parallelism: 3\n",
        pipeline(SINK)
    );
    assert_eq!(
        problems(&parallel),
        vec![expect(&parallel, "3", 0, "exclusive-parallelism")]
    );
    let message = &diagnostics(&parallel).0[0].message;
    assert!(message.contains("delivery: shared"), "{message}");

    let unknown = format!("{}  execution:\n    delivery: sorted\n", pipeline(SINK));
    let got = problems(&unknown);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].0, got[0].1), at(&unknown, "sorted", 0), "{got:?}");
}
