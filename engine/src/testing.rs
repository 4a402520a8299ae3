//! Running a pipeline on sample messages, as `weir test` and the console's "test with a sample
//! message" do: turn [`TestMessage`]s into inputs, show fates as JSON, and check a pipeline's
//! `tests:` cases against their expectations with a readable diff.

use crate::message::{Fate, InputMessage, OutputMessage};
use crate::pipeline::CompiledPipeline;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::{Map, Value, json};
use weir_pipelines::context::SampleRun;
use weir_pipelines::{PipelineResource, TestCase, TestMessage};

/// Publish time given to test inputs: 2026-01-01T00:00:00Z, so that results are reproducible.
pub const TEST_TIMESTAMP_MICROS: i64 = 1_767_225_600_000_000;

/// Subject given to a test input that names none.
pub const TEST_SUBJECT: &str = "test";

/// A test input that cannot be turned into a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TestInputError {
    /// `payload_b64` is not base64.
    #[error("payload_b64 is not valid base64: {0}")]
    Base64(String),
    /// Both `data` and `payload_b64` are set.
    #[error("give either `data` (JSON) or `payload_b64` (raw bytes), not both")]
    BothPayloads,
    /// A `weir test --input` line is not a test message.
    #[error(
        "line {line}: {message} (expected {{\"subject\": …, \"headers\": {{…}}, \"data\": …}} or \"payload_b64\")"
    )]
    Line {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        message: String,
    },
}

/// Turns a test message into an input: `data` is encoded as compact JSON, `payload_b64`
/// decoded, neither gives an empty payload. `seq` is the stream sequence to give it.
pub fn input_message(
    m: &TestMessage,
    stream: &str,
    seq: u64,
) -> Result<InputMessage, TestInputError> {
    let payload = match (&m.data, &m.payload_b64) {
        (Some(_), Some(_)) => return Err(TestInputError::BothPayloads),
        (Some(data), None) => Bytes::from(serde_json::to_vec(data).unwrap_or_default()),
        (None, Some(b64)) => Bytes::from(
            BASE64
                .decode(b64.trim())
                .map_err(|e| TestInputError::Base64(e.to_string()))?,
        ),
        (None, None) => Bytes::new(),
    };
    Ok(InputMessage {
        subject: if m.subject.is_empty() {
            TEST_SUBJECT.to_string()
        } else {
            m.subject.clone()
        },
        headers: m
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        payload,
        seq,
        stream: stream.to_string(),
        timestamp_micros: TEST_TIMESTAMP_MICROS,
    })
}

/// A payload as JSON for display: `{"data": …}` when it is JSON, else `{"payload_b64": …}`.
fn payload_fields(payload: &[u8], into: &mut Map<String, Value>) {
    match serde_json::from_slice::<Value>(payload) {
        Ok(v) => {
            into.insert("data".into(), v);
        }
        Err(_) => {
            into.insert("payload_b64".into(), Value::String(BASE64.encode(payload)));
        }
    }
}

/// A fate as one JSON value: `{"outputs": [{"node", "subject", "headers", "data"}…]}`,
/// `{"filtered": true}` or `{"error": {"node", "kind", "message"}}`.
pub fn fate_json(fate: &Fate) -> Value {
    match fate {
        Fate::Outputs(outputs) => {
            let outputs: Vec<Value> = outputs
                .iter()
                .map(|o| {
                    let mut m = Map::new();
                    m.insert("node".into(), Value::String(o.node.to_string()));
                    m.insert("subject".into(), Value::String(o.subject.clone()));
                    let headers: Map<String, Value> = o
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect();
                    m.insert("headers".into(), Value::Object(headers));
                    payload_fields(&o.payload, &mut m);
                    Value::Object(m)
                })
                .collect();
            json!({ "outputs": outputs })
        }
        Fate::Filtered => json!({ "filtered": true }),
        Fate::Error(e) => json!({
            "error": { "node": e.node, "kind": e.kind.as_str(), "message": e.message }
        }),
    }
}

/// Runs `weir test --input` lines (JSON lines of [`TestMessage`]; blank lines skipped) as one
/// batch and returns one fate per input line, as [`fate_json`] values, then one line per
/// window result (the end of input closes every window), marked `"window": {node, id}`.
pub fn run_jsonl(
    pipeline: &CompiledPipeline,
    stream: &str,
    text: &str,
) -> Result<Vec<Value>, TestInputError> {
    let mut inputs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |message: String| TestInputError::Line {
            line: i + 1,
            message,
        };
        let m: TestMessage = serde_json::from_str(line).map_err(|e| err(e.to_string()))?;
        inputs.push(
            input_message(&m, stream, inputs.len() as u64 + 1).map_err(|e| err(e.to_string()))?,
        );
    }
    let result = pipeline.process(&inputs);
    let mut lines: Vec<Value> = result.fates.iter().map(fate_json).collect();
    // Then the window results, the end of input closing every window: one line each, marked
    // with the window node and the result's id.
    let mut emitted = result.emitted;
    emitted.extend(pipeline.flush());
    for e in emitted {
        let mut line = fate_json(&e.fate);
        if let Value::Object(m) = &mut line {
            m.insert("window".into(), json!({ "node": e.node, "id": e.id }));
        }
        lines.push(line);
    }
    Ok(lines)
}

/// The engine's [`weir_pipelines::context::SampleRunner`]: compiles `resource` and runs
/// `inputs` as one batch, saying per input the nodes it reached and its fate.
pub fn run_samples(
    resource: &PipelineResource,
    inputs: &[InputMessage],
) -> Result<Vec<SampleRun>, String> {
    let pipeline = CompiledPipeline::compile(resource).map_err(|e| e.to_string())?;
    let (result, paths) = pipeline.process_traced(inputs);
    Ok(result
        .fates
        .into_iter()
        .zip(paths)
        .map(|(fate, path)| SampleRun { path, fate })
        .collect())
}

/// The outcome of one `tests:` case.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseOutcome {
    /// The case's name.
    pub name: String,
    /// `None` when it passed; else why it failed: a unified diff of expected vs actual.
    pub failure: Option<String>,
}

impl CaseOutcome {
    /// Whether the case passed.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// Runs every `tests:` case of `resource` (compiled as `pipeline`), all in one batch.
pub fn run_cases(resource: &PipelineResource, pipeline: &CompiledPipeline) -> Vec<CaseOutcome> {
    let stream = &resource.spec.source.stream;
    let mut outcomes: Vec<Option<CaseOutcome>> = vec![None; resource.tests.len()];
    let mut inputs = Vec::new();
    let mut positions = Vec::new();
    let stateful = pipeline.is_stateful();
    for (i, case) in resource.tests.iter().enumerate() {
        if stateful || !case.more_inputs.is_empty() || case.expect_windows.is_some() {
            outcomes[i] = Some(run_stream_case(resource, case));
            continue;
        }
        match input_message(&case.input, stream, i as u64 + 1) {
            Ok(m) => {
                inputs.push(m);
                positions.push(i);
            }
            Err(e) => {
                outcomes[i] = Some(CaseOutcome {
                    name: case.name.clone(),
                    failure: Some(format!("the case's input is invalid: {e}")),
                })
            }
        }
    }
    let result = pipeline.process(&inputs);
    for (fate, i) in result.fates.iter().zip(positions) {
        outcomes[i] = Some(check_case(&resource.tests[i], fate));
    }
    outcomes.into_iter().flatten().collect()
}

/// Compares one case's expectation with a fate.
pub fn check_case(case: &TestCase, fate: &Fate) -> CaseOutcome {
    let expected = expected_view(case);
    let actual = actual_view(case, fate);
    let error = match fate {
        Fate::Error(e) => Some(e),
        _ => None,
    };
    CaseOutcome {
        name: case.name.clone(),
        failure: diff(&expected, &actual, error),
    }
}

/// A unified diff of expected vs actual when they differ, with the error that explains it.
fn diff(
    expected: &Value,
    actual: &Value,
    error: Option<&crate::message::MessageError>,
) -> Option<String> {
    (expected != actual).then(|| {
        let exp = serde_json::to_string_pretty(&expected).unwrap_or_default() + "\n";
        let act = serde_json::to_string_pretty(&actual).unwrap_or_default() + "\n";
        let mut text = similar::TextDiff::from_lines(&exp, &act)
            .unified_diff()
            .context_radius(3)
            .header("expected", "actual")
            .to_string();
        if let Some(e) = error {
            text.push_str(&format!(
                "the message failed at node `{}` ({}): {}\n",
                e.node,
                e.kind.as_str(),
                e.message
            ));
        }
        text
    })
}

/// Runs a stream case (a pipeline with a `window` or `dedup` node, or a case with
/// `more_inputs` or `expect_windows`) on fresh state: every input in one batch, then the end
/// of input closes every window. Compares the inputs' own outputs (late events included) with
/// `expect`, and the window results with `expect_windows`.
pub fn run_stream_case(resource: &PipelineResource, case: &TestCase) -> CaseOutcome {
    let fail = |failure: String| CaseOutcome {
        name: case.name.clone(),
        failure: Some(failure),
    };
    let pipeline = match CompiledPipeline::compile(resource) {
        Ok(p) => p,
        Err(e) => return fail(e.to_string()),
    };
    let stream = &resource.spec.source.stream;
    let mut inputs = Vec::with_capacity(1 + case.more_inputs.len());
    for (j, m) in std::iter::once(&case.input)
        .chain(&case.more_inputs)
        .enumerate()
    {
        match input_message(m, stream, j as u64 + 1) {
            Ok(x) => inputs.push(x),
            Err(e) => return fail(format!("input #{}: {e}", j + 1)),
        }
    }
    let result = pipeline.process(&inputs);
    let mut emitted = result.emitted;
    emitted.extend(pipeline.flush());
    let mut first_error = None;
    let mut view = |fates: &mut dyn Iterator<Item = &Fate>, want: &[TestMessage]| -> Value {
        let mut out = Vec::new();
        for fate in fates {
            match fate {
                Fate::Filtered => {}
                Fate::Outputs(os) => {
                    for o in os {
                        out.push(output_view(o, want.get(out.len())));
                    }
                }
                Fate::Error(e) => {
                    first_error.get_or_insert_with(|| e.clone());
                    out.push(json!({ "error": { "node": e.node, "kind": e.kind.as_str() } }));
                }
            }
        }
        Value::Array(out)
    };
    let windows_want = case.expect_windows.clone().unwrap_or_default();
    let actual = json!({
        "outputs": view(&mut result.fates.iter(), &case.expect),
        "windows": view(&mut emitted.iter().map(|e| &e.fate), &windows_want),
    });
    let expected = json!({
        "outputs": case.expect.iter().map(expected_message).collect::<Vec<_>>(),
        "windows": windows_want.iter().map(expected_message).collect::<Vec<_>>(),
    });
    CaseOutcome {
        name: case.name.clone(),
        failure: diff(&expected, &actual, first_error.as_ref()),
    }
}

fn expected_view(case: &TestCase) -> Value {
    if let Some(e) = &case.expect_error {
        let mut m = Map::new();
        m.insert("node".into(), Value::String(e.node.clone()));
        if let Some(k) = &e.kind {
            m.insert("kind".into(), Value::String(k.clone()));
        }
        return json!({ "error": m });
    }
    if case.expect_filtered || case.expect.is_empty() {
        return json!("filtered");
    }
    Value::Array(case.expect.iter().map(expected_message).collect())
}

fn expected_message(m: &TestMessage) -> Value {
    let mut out = Map::new();
    if !m.subject.is_empty() {
        out.insert("subject".into(), Value::String(m.subject.clone()));
    }
    if !m.headers.is_empty() {
        let h: Map<String, Value> = m
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        out.insert("headers".into(), Value::Object(h));
    }
    if let Some(d) = &m.data {
        out.insert("data".into(), d.clone());
    }
    if let Some(b) = &m.payload_b64 {
        out.insert("payload_b64".into(), Value::String(b.clone()));
    }
    Value::Object(out)
}

/// The actual fate, showing only what the case's expectation looks at (listed headers, the
/// error's node and kind), so that the comparison and the diff are about those.
fn actual_view(case: &TestCase, fate: &Fate) -> Value {
    match fate {
        Fate::Filtered => json!("filtered"),
        Fate::Error(e) => {
            let mut m = Map::new();
            m.insert("node".into(), Value::String(e.node.clone()));
            if case.expect_error.as_ref().is_none_or(|x| x.kind.is_some()) {
                m.insert("kind".into(), Value::String(e.kind.as_str().into()));
            }
            json!({ "error": m })
        }
        Fate::Outputs(outputs) => Value::Array(
            outputs
                .iter()
                .enumerate()
                .map(|(j, o)| output_view(o, case.expect.get(j)))
                .collect(),
        ),
    }
}

/// One output as a case looks at it: the subject and payload unless the expected message
/// leaves them out, and only the headers it lists.
fn output_view(o: &OutputMessage, want: Option<&TestMessage>) -> Value {
    let mut out = Map::new();
    if want.is_none_or(|w| !w.subject.is_empty()) {
        out.insert("subject".into(), Value::String(o.subject.clone()));
    }
    if let Some(w) = want
        && !w.headers.is_empty()
    {
        let h: Map<String, Value> = w
            .headers
            .keys()
            .map(|k| {
                let v = o
                    .headers
                    .iter()
                    .rev()
                    .find(|(n, _)| n.eq_ignore_ascii_case(k))
                    .map_or(Value::Null, |(_, v)| Value::String(v.clone()));
                (k.clone(), v)
            })
            .collect();
        out.insert("headers".into(), Value::Object(h));
    }
    let mut payload = Map::new();
    payload_fields(&o.payload, &mut payload);
    let wants_payload = want.is_none_or(|w| w.data.is_some() || w.payload_b64.is_some());
    if wants_payload {
        if want.is_some_and(|w| w.payload_b64.is_some()) {
            out.insert(
                "payload_b64".into(),
                Value::String(BASE64.encode(&o.payload)),
            );
        } else {
            out.extend(payload);
        }
    }
    Value::Object(out)
}
