//! Test before deploy (`POST /api/v1/pipelines:test`): runs a pipeline file on sample messages
//! (given in the body, as JSON lines, or captured: the last messages of its source stream in the
//! caller's NATS account) through the sample runner the `weir` binary registers (the engine),
//! and answers per input the nodes it reached and its outputs, filtered, or error.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use weir_pipelines::context::SampleRun;
use weir_pipelines::message::{Fate, InputMessage};
use weir_pipelines::{PipelineResource, Resource};

use crate::body::JsonBody;
use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::nats::failed;
use crate::nats_views::{open, subject_matches};
use crate::rbac::{Action, ApiResource};
use crate::resource_file::parse_all;
use crate::state::AppState;

/// The most sample messages one test runs.
pub const MAX_SAMPLES: usize = 100;
/// How many stream sequences a capture looks back over, at most, for matching messages.
const CAPTURE_SCAN: u64 = 2_000;
/// The publish time of given (not captured) samples: 2026-01-01T00:00:00Z, as `weir test`.
const SAMPLE_TIME_MICROS: i64 = 1_767_225_600_000_000;

/// What to test and on which messages: give exactly one of `messages`, `jsonl`, `capture`.
#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// The pipeline file (YAML or JSON text) holding one `Pipeline` (other kinds are ignored).
    pub pipeline: String,
    /// Sample messages.
    #[serde(default)]
    pub messages: Option<Vec<SampleMessage>>,
    /// Sample messages as JSON lines (one `SampleMessage` a line; blank lines skipped), as
    /// `weir test --input` reads them.
    #[serde(default)]
    pub jsonl: Option<String>,
    /// Capture the last messages of the pipeline's source stream that match its source
    /// subjects (needs `messages:read`).
    #[serde(default)]
    pub capture: Option<CaptureRequest>,
}

/// A sample message: `data` (JSON payload) or `payload_b64` (raw bytes), or neither (empty).
#[derive(Deserialize, Serialize, ToSchema, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct SampleMessage {
    /// Subject (default `test`).
    #[serde(default)]
    pub subject: String,
    /// Headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
    /// Non-JSON payload, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_b64: Option<String>,
}

/// How many messages to capture.
#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    /// The last `count` matching messages (1 to 100).
    pub count: u32,
}

/// The result of a test: one entry per input, in input order (captures oldest first).
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct TestResult {
    /// The pipeline tested.
    pub pipeline: String,
    /// Per input.
    pub results: Vec<SampleResult>,
}

/// One input and what the pipeline did with it.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct SampleResult {
    /// The input.
    pub input: SampleInput,
    /// Ids of the nodes it reached, in topological order.
    pub path: Vec<String>,
    /// `outputs`, `filtered` or `error`.
    pub outcome: String,
    /// Its outputs (when `outputs`).
    pub outputs: Vec<SampleOutput>,
    /// Its error (when `error`).
    pub error: Option<SampleError>,
}

/// An input as the pipeline saw it.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct SampleInput {
    /// Subject.
    pub subject: String,
    /// Headers (a name may repeat).
    pub headers: BTreeMap<String, Vec<String>>,
    /// The payload when it is JSON.
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
    /// The payload in base64 when it is not JSON.
    pub payload_b64: Option<String>,
    /// Its stream sequence (captured) or its number among the given samples.
    pub seq: Option<u64>,
}

/// A message the pipeline would publish.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct SampleOutput {
    /// The sink node.
    pub node: String,
    /// Rendered subject.
    pub subject: String,
    /// Headers (a name may repeat).
    pub headers: BTreeMap<String, Vec<String>>,
    /// The payload when it is JSON.
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
    /// The payload in base64 when it is not JSON.
    pub payload_b64: Option<String>,
}

/// Why an input failed (it would go to the DLQ).
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct SampleError {
    /// Failure kind (the `Weir-Error-Kind` values).
    pub kind: String,
    /// The node that raised it (`source` for undecodable payloads).
    pub node: String,
    /// What was wrong.
    pub message: String,
}

/// Run a pipeline on sample messages without deploying it: per input, the nodes it reached and
/// its outputs (subject, headers, payload), filtered, or its error. Needs `pipelines:read`
/// (viewers may test: nothing is published or stored), and `messages:read` to capture.
#[utoipa::path(post, path = "/api/v1/pipelines:test", tag = "pipelines",
    request_body = TestRequest,
    responses((status = 200, body = TestResult), (status = 400, body = crate::error::Problem),
              (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem), (status = 503, body = crate::error::Problem)))]
pub async fn test(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<TestRequest>,
) -> ApiResult<Json<TestResult>> {
    caller.require(ApiResource::Pipelines, Action::Read)?;
    let pipeline = one_pipeline(&body.pipeline)?;
    let inputs = match (&body.messages, &body.jsonl, &body.capture) {
        (Some(m), None, None) => given(m, &pipeline.spec.source.stream)?,
        (None, Some(text), None) => given(&jsonl(text)?, &pipeline.spec.source.stream)?,
        (None, None, Some(c)) => {
            caller.require(ApiResource::Messages, Action::Read)?;
            capture(&state, &caller, &pipeline, c.count).await?
        }
        _ => {
            return Err(ApiError::Unprocessable(
                "give exactly one of `messages`, `jsonl` and `capture`".into(),
            ));
        }
    };
    let runner = weir_pipelines::context::sample_runner().ok_or_else(|| {
        ApiError::Internal(
            "this build has no sample runner (the `weir` binary registers it)".into(),
        )
    })?;
    let name = pipeline.metadata.name.clone();
    let (inputs, runs) = tokio::task::spawn_blocking(move || {
        let runs = runner(&pipeline, &inputs);
        (inputs, runs)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("sample run: {e}")))?;
    let runs = runs.map_err(ApiError::Unprocessable)?;
    Ok(Json(TestResult {
        pipeline: name,
        results: inputs.iter().zip(runs).map(result).collect(),
    }))
}

/// The one pipeline of the file (422 with diagnostics when it is invalid).
fn one_pipeline(text: &str) -> ApiResult<PipelineResource> {
    let file_name = if text.trim_start().starts_with('{') {
        "request.json"
    } else {
        "request.yaml"
    };
    let mut pipelines: Vec<PipelineResource> = parse_all(text, file_name)?
        .into_iter()
        .filter_map(|r| match r {
            Resource::Pipeline(p) => Some(p),
            _ => None,
        })
        .collect();
    match pipelines.len() {
        1 => Ok(pipelines.remove(0)),
        n => Err(ApiError::Unprocessable(format!(
            "`pipeline` must hold exactly one Pipeline; it holds {n}"
        ))),
    }
}

fn too_many(n: usize) -> ApiError {
    ApiError::Unprocessable(format!(
        "{n} sample messages; at most {MAX_SAMPLES} per test"
    ))
}

/// Sample messages from JSON lines (400 `malformed_jsonl` naming the line).
fn jsonl(text: &str) -> ApiResult<Vec<SampleMessage>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if out.len() == MAX_SAMPLES {
            return Err(too_many(
                text.lines().filter(|l| !l.trim().is_empty()).count(),
            ));
        }
        let m: SampleMessage = serde_json::from_str(line).map_err(|e| {
            ApiError::bad_request(
                "malformed_jsonl",
                format!(
                    "jsonl line {}: {e} (expected {{\"subject\": …, \"headers\": {{…}}, \"data\": …}} or \"payload_b64\")",
                    i + 1
                ),
            )
        })?;
        out.push(m);
    }
    Ok(out)
}

/// Given samples as inputs of `stream`, numbered from 1.
fn given(messages: &[SampleMessage], stream: &str) -> ApiResult<Vec<InputMessage>> {
    if messages.is_empty() {
        return Err(ApiError::Unprocessable("no sample messages given".into()));
    }
    if messages.len() > MAX_SAMPLES {
        return Err(too_many(messages.len()));
    }
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let payload = match (&m.data, &m.payload_b64) {
                (Some(_), Some(_)) => {
                    return Err(ApiError::Unprocessable(format!(
                        "sample {}: give `data` or `payload_b64`, not both",
                        i + 1
                    )));
                }
                (Some(d), None) => Bytes::from(serde_json::to_vec(d).unwrap_or_default()),
                (None, Some(b)) => Bytes::from(BASE64.decode(b.trim()).map_err(|e| {
                    ApiError::Unprocessable(format!(
                        "sample {}: payload_b64 is not base64: {e}",
                        i + 1
                    ))
                })?),
                (None, None) => Bytes::new(),
            };
            Ok(InputMessage {
                subject: if m.subject.is_empty() {
                    "test".into()
                } else {
                    m.subject.clone()
                },
                headers: m
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                payload,
                seq: i as u64 + 1,
                stream: stream.to_string(),
                timestamp_micros: SAMPLE_TIME_MICROS,
            })
        })
        .collect()
}

/// The last `count` messages of the pipeline's source stream (in the caller's account) on its
/// source subjects, oldest first; looks back over at most [`CAPTURE_SCAN`] sequences.
async fn capture(
    state: &AppState,
    caller: &Caller,
    pipeline: &PipelineResource,
    count: u32,
) -> ApiResult<Vec<InputMessage>> {
    if count == 0 || count as usize > MAX_SAMPLES {
        return Err(ApiError::Unprocessable(format!(
            "capture.count must be 1 to {MAX_SAMPLES}, not {count}"
        )));
    }
    let source = &pipeline.spec.source;
    let mut stream = open(state, caller, &source.stream).await?;
    let info = stream
        .info()
        .await
        .map_err(|e| failed(&format!("read stream `{}`", source.stream), e))?;
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    let mut found = Vec::new();
    let mut seq = last;
    while seq >= first.max(1) && seq + CAPTURE_SCAN > last && found.len() < count as usize {
        if let Ok(m) = stream.get_raw_message(seq).await
            && (source.subjects.is_empty()
                || source
                    .subjects
                    .iter()
                    .any(|f| subject_matches(f, m.subject.as_str())))
        {
            found.push(InputMessage {
                subject: m.subject.to_string(),
                headers: m
                    .headers
                    .iter()
                    .flat_map(|(n, vs)| vs.iter().map(move |v| (n.to_string(), v.to_string())))
                    .collect(),
                payload: m.payload.clone(),
                seq: m.sequence,
                stream: source.stream.clone(),
                timestamp_micros: (m.time.unix_timestamp_nanos() / 1_000) as i64,
            });
        }
        seq -= 1;
    }
    if found.is_empty() {
        return Err(ApiError::NotFound(format!(
            "a message on {} in stream `{}` to capture (publish some first)",
            if source.subjects.is_empty() {
                "any subject".to_string()
            } else {
                source.subjects.join(", ")
            },
            source.stream
        )));
    }
    found.reverse();
    Ok(found)
}

/// A payload as `(data, payload_b64)`: JSON when it parses, else base64.
fn payload(bytes: &[u8]) -> (Option<serde_json::Value>, Option<String>) {
    match serde_json::from_slice(bytes) {
        Ok(v) => (Some(v), None),
        Err(_) if bytes.is_empty() => (None, None),
        Err(_) => (None, Some(BASE64.encode(bytes))),
    }
}

fn headers(list: &[(String, String)]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in list {
        out.entry(k.clone()).or_default().push(v.clone());
    }
    out
}

fn result((input, run): (&InputMessage, SampleRun)) -> SampleResult {
    let (data, payload_b64) = payload(&input.payload);
    let mut out = SampleResult {
        input: SampleInput {
            subject: input.subject.clone(),
            headers: headers(&input.headers),
            data,
            payload_b64,
            seq: Some(input.seq),
        },
        path: run.path,
        outcome: String::new(),
        outputs: Vec::new(),
        error: None,
    };
    match run.fate {
        Fate::Outputs(outputs) => {
            out.outcome = "outputs".into();
            out.outputs = outputs
                .into_iter()
                .map(|o| {
                    let (data, payload_b64) = payload(&o.payload);
                    SampleOutput {
                        node: o.node.to_string(),
                        subject: o.subject,
                        headers: headers(&o.headers),
                        data,
                        payload_b64,
                    }
                })
                .collect();
        }
        Fate::Filtered => out.outcome = "filtered".into(),
        Fate::Error(e) => {
            out.outcome = "error".into();
            out.error = Some(SampleError {
                kind: e.kind.as_str().to_string(),
                node: e.node,
                message: e.message,
            });
        }
    }
    out
}
