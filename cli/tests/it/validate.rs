//! `weir validate` and `weir schema` as a user runs them: output and exit codes.

use std::path::PathBuf;
use std::process::{Command, Output};

fn weir(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("the weir binary runs")
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn valid_examples_exit_zero() {
    let out = weir(&[
        "validate",
        "-f",
        "pipelines/examples/order-processing.yaml",
        "pipelines/examples/order-routing.yaml",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(stdout(&out).trim(), "2 files, 11 resources valid");
    // An Avro source checks without the registry (the control plane resolves its subject).
    let out = weir(&["validate", "-f", "docs/examples/avro-orders.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // A directory means its pipeline files.
    let out = weir(&["validate", "-f", "pipelines/examples"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn problems_exit_one_with_positions() {
    let out = weir(&[
        "validate",
        "-f",
        "pipelines/tests/fixtures/three-problems.yaml",
        "pipelines/examples/order-routing.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with(
            "pipelines/tests/fixtures/three-problems.yaml:10:15: invalid SQL expression"
        ),
        "{text}"
    );
    assert_eq!(
        lines[1],
        "pipelines/tests/fixtures/three-problems.yaml:13:7: unknown field `nxt`, did you mean `next`?"
    );
    assert!(
        lines[2].starts_with("pipelines/tests/fixtures/three-problems.yaml:16:17: "),
        "{text}"
    );
    assert_eq!(lines[3], "3 problems in 1 file (1 other file valid)");
}

#[test]
fn json_output_for_machines() {
    let out = weir(&[
        "validate",
        "-o",
        "json",
        "-f",
        "pipelines/tests/fixtures/three-problems.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(report["valid"], false);
    let diags = report["files"][0]["diagnostics"].as_array().unwrap();
    let codes: Vec<&str> = diags.iter().map(|d| d["code"].as_str().unwrap()).collect();
    assert_eq!(
        codes,
        ["invalid-expression", "unknown-field", "dangling-next"]
    );
    assert_eq!(diags[1]["line"], 13);
    assert_eq!(diags[1]["column"], 7);
    assert_eq!(diags[1]["path"], "/spec/nodes/1/nxt");
}

#[test]
fn missing_files_are_reported() {
    let out = weir(&["validate", "-f", "no/such/file.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("no/such/file.yaml: cannot read the file"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn schema_prints_the_committed_schema() {
    let out = weir(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    let committed =
        std::fs::read_to_string(repo().join("pipelines/schema/weir.v1.schema.json")).unwrap();
    assert_eq!(stdout(&out), committed);
}

#[test]
fn examples_tests_blocks_pass_and_a_wrong_expectation_fails_with_a_diff() {
    let out = weir(&[
        "test",
        "-f",
        "pipelines/examples/order-processing.yaml",
        "pipelines/examples/order-routing.yaml",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("8 passed, 0 failed"),
        "{}",
        stdout(&out)
    );

    // The same file with one expectation changed fails, naming the case and showing a diff.
    let text = std::fs::read_to_string(repo().join("pipelines/examples/order-processing.yaml"))
        .expect("example readable");
    let wrong = text.replacen(
        "subject: orders.processed.eu-west",
        "subject: orders.processed.us",
        1,
    );
    assert_ne!(text, wrong);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("wrong.yaml");
    std::fs::write(&file, wrong).expect("write");
    let out = weir(&["test", "-f", file.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("FAIL order-processing / a standard order"),
        "{text}"
    );
    assert!(
        text.contains("-    \"subject\": \"orders.processed.us\""),
        "{text}"
    );
    assert!(
        text.contains("+    \"subject\": \"orders.processed.eu-west\""),
        "{text}"
    );
}

/// `weir validate -f -` with `text` on standard input.
fn validate_stdin(text: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["validate", "-f", "-"])
        .current_dir(repo())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the weir binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn pipelines_that_cannot_run_are_refused_with_their_position() {
    // An unknown SQL function: the engine's compile runs, and its error has a line.
    let text = "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: { name: iot }\nspec:\n  source: { stream: READINGS }\n  nodes:\n    - id: f\n      filter: \"no_such_fn(data.temp_c) > 1\"\n      next: out\n    - id: out\n      publish: { subject: clean }\n";
    let out = validate_stdin(text);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let shown = stdout(&out);
    assert!(shown.starts_with("<stdin>:8:15: "), "{shown}");
    assert!(shown.contains("no_such_fn"), "{shown}");

    // A misspelt field when `fields` are declared.
    let text = "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: { name: iot }\nspec:\n  source: { stream: READINGS, fields: { temp_c: float64 } }\n  nodes:\n    - id: f\n      filter: \"data.tmp_c > 40\"\n      next: out\n    - id: out\n      publish: { subject: clean }\n";
    let out = validate_stdin(text);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let shown = stdout(&out);
    assert!(shown.starts_with("<stdin>:8:15: "), "{shown}");
    assert!(shown.contains("did you mean `data.temp_c`"), "{shown}");

    // Declared, or written by a map: fine.
    let text = "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: { name: iot }\nspec:\n  source: { stream: READINGS, fields: { temp_c: float64 } }\n  nodes:\n    - id: m\n      map: { set: { temp_f: \"data.temp_c * 1.8 + 32\" } }\n      next: f\n    - id: f\n      filter: \"data.temp_f > 100\"\n      next: out\n    - id: out\n      publish: { subject: clean }\n";
    let out = validate_stdin(text);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn bad_quality_rules_are_refused_with_their_position() {
    let text = "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: { name: dq }\nspec:\n  source: { stream: ORDERS }\n  nodes:\n    - id: dq\n      quality:\n        rules:\n          - { name: amount, field: data.amount, range: { min: 10, max: 1 } }\n          - name: email\n            field: data.email\n            pattern: \"([a-z\"\n          - { name: both, field: data.id, required: true, max_length: 3 }\n      next: out\n    - id: out\n      publish: { subject: clean }\n";
    let out = validate_stdin(text);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let shown = stdout(&out);
    let lines: Vec<&str> = shown.lines().collect();
    assert!(lines[0].starts_with("<stdin>:10:56: "), "{shown}");
    assert!(
        lines[0].contains("`min` (10) is above `max` (1)"),
        "{shown}"
    );
    assert!(lines[1].starts_with("<stdin>:13:22: "), "{shown}");
    assert!(
        lines[1].ends_with("invalid regular expression: unclosed character class"),
        "{shown}"
    );
    assert!(lines[2].starts_with("<stdin>:14:13: "), "{shown}");
    assert!(lines[2].contains("exactly one of"), "{shown}");
}
