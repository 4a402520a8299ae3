//! Dead letters: a message that cannot be processed is published to the pipeline's DLQ
//! subject with its original payload and headers, plus `Weir-*` headers that say what failed,
//! where, and after how many attempts.

use std::time::SystemTime;

use async_nats::jetstream;
use bytes::Bytes;
use weir_pipelines::PipelineResource;
use weir_pipelines::message::{InputMessage, MessageError};

use crate::sink::{Outbound, headers_from_pairs, is_server_header};
use crate::{JetStreamSink, PublishFailure};
use weir_pipelines::FailureKind;

/// Default DLQ stream name.
pub const DEFAULT_DLQ_STREAM: &str = "DLQ";
/// Subjects of the default DLQ stream when Weir creates it.
pub const DEFAULT_DLQ_SUBJECTS: &str = "dlq.>";

/// Header names a dead letter carries.
pub mod headers {
    /// Error kind: `decode`, `expression`, `template`, `shape`, `size`, `quota`, `publish`,
    /// `transient`, `internal` (the names of `weir_pipelines::FailureKind`).
    pub const ERROR_KIND: &str = "Weir-Error-Kind";
    /// Human message.
    pub const ERROR: &str = "Weir-Error";
    /// Pipeline name.
    pub const PIPELINE: &str = "Weir-Pipeline";
    /// Node id where it failed (`source` before any node ran).
    pub const NODE: &str = "Weir-Node";
    /// Stream the input came from.
    pub const SOURCE_STREAM: &str = "Weir-Source-Stream";
    /// Subject of the input.
    pub const SOURCE_SUBJECT: &str = "Weir-Source-Subject";
    /// Stream sequence of the input.
    pub const SOURCE_SEQ: &str = "Weir-Source-Seq";
    /// Deliveries of the input so far.
    pub const ATTEMPTS: &str = "Weir-Attempts";
    /// RFC 3339 time of the failure.
    pub const FAILED_AT: &str = "Weir-Failed-At";
    /// The input's own `Nats-Msg-Id`, when it had one.
    pub const ORIGINAL_MSG_ID: &str = "Weir-Original-Msg-Id";
    /// Owning tenant, for pipelines deployed through the control plane.
    pub const TENANT: &str = "Weir-Tenant";
    /// Set when the payload had to be cut to fit the server's max payload: the original size.
    pub const PAYLOAD_TRUNCATED: &str = "Weir-Payload-Truncated";
    /// On a redriven message: the DLQ sequence of the entry it was redriven from. The message
    /// keeps it, so when it fails again its new dead letter names the earlier one.
    pub const REDRIVE_OF: &str = "Weir-Redrive-Of";
}

/// Where a pipeline's dead letters go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqTarget {
    /// Stream that stores them.
    pub stream: String,
    /// Subject they are published to.
    pub subject: String,
    /// Whether the pipeline names the stream (`errors.dlq.stream`); otherwise whichever
    /// stream captures the subject stores them, `DLQ` when none does.
    pub named: bool,
    /// Owning tenant (fleet deployments); stamped on every dead letter as `Weir-Tenant` so the
    /// control plane never shows one tenant's dead letters to another.
    pub tenant: Option<String>,
}

impl DlqTarget {
    /// From `spec.errors.dlq`, defaulting to subject `dlq.<pipeline>` on stream `DLQ`.
    pub fn for_pipeline(pipeline: &PipelineResource) -> Self {
        match &pipeline.spec.errors.dlq {
            Some(dlq) => DlqTarget {
                stream: dlq
                    .stream
                    .clone()
                    .unwrap_or_else(|| DEFAULT_DLQ_STREAM.to_string()),
                subject: dlq.subject.clone(),
                named: dlq.stream.is_some(),
                tenant: pipeline.metadata.tenant.clone(),
            },
            None => DlqTarget {
                stream: DEFAULT_DLQ_STREAM.to_string(),
                subject: format!("dlq.{}", pipeline.metadata.name),
                named: false,
                tenant: pipeline.metadata.tenant.clone(),
            },
        }
    }
}

/// One failed input and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The input's subject.
    pub subject: String,
    /// The input's headers.
    pub headers: Vec<(String, String)>,
    /// The input's payload.
    pub payload: Bytes,
    /// Error kind (see [`headers::ERROR_KIND`]).
    pub kind: FailureKind,
    /// What went wrong.
    pub error: String,
    /// Pipeline name.
    pub pipeline: String,
    /// Node id where it failed.
    pub node: String,
    /// Source stream.
    pub source_stream: String,
    /// Source stream sequence.
    pub source_seq: u64,
    /// Deliveries so far.
    pub attempts: u64,
}

impl DeadLetter {
    /// The dead letter of `input` of `pipeline`, which failed with `error` after `attempts`
    /// deliveries.
    pub fn of(pipeline: &str, input: &InputMessage, error: &MessageError, attempts: u64) -> Self {
        DeadLetter {
            subject: input.subject.clone(),
            headers: input.headers.clone(),
            payload: input.payload.clone(),
            kind: error.kind,
            error: error.message.clone(),
            pipeline: pipeline.to_string(),
            node: error.node.clone(),
            source_stream: input.stream.clone(),
            source_seq: input.seq,
            attempts,
        }
    }

    /// The dead letter's deterministic id: one per input, so a redelivered input is never
    /// dead-lettered twice.
    pub fn msg_id(&self) -> String {
        format!(
            "{}:{}:{}:dlq",
            self.pipeline, self.source_stream, self.source_seq
        )
    }
}

/// One input that failed for good: the input, where and why, and its deliveries so far.
#[derive(Debug, Clone, Copy)]
pub struct Failed<'a> {
    /// The input as the source delivered it.
    pub input: &'a InputMessage,
    /// Where and why it failed.
    pub error: &'a MessageError,
    /// Deliveries so far.
    pub attempts: u64,
}

/// Publishes dead letters to one pipeline's DLQ subject.
#[derive(Clone)]
pub struct DeadLetterPublisher {
    pipeline: String,
    sink: JetStreamSink,
    target: DlqTarget,
    max_payload: usize,
}

impl DeadLetterPublisher {
    /// A publisher of `pipeline`'s dead letters to `target`; `max_payload` is the server's
    /// limit (payload plus headers).
    pub fn new(
        js: jetstream::Context,
        pipeline: &str,
        target: DlqTarget,
        max_payload: usize,
    ) -> Self {
        DeadLetterPublisher {
            pipeline: pipeline.to_string(),
            sink: JetStreamSink::new(js, 256),
            target,
            max_payload,
        }
    }

    /// Where dead letters go.
    pub fn target(&self) -> &DlqTarget {
        &self.target
    }

    /// The message that carries `letter` to the DLQ.
    pub fn outbound(&self, letter: &DeadLetter) -> Outbound {
        let mut pairs: Vec<(String, String)> = Vec::with_capacity(letter.headers.len() + 10);
        for (name, value) in &letter.headers {
            if name.eq_ignore_ascii_case("Nats-Msg-Id") {
                pairs.push((headers::ORIGINAL_MSG_ID.into(), value.clone()));
            } else if !is_server_header(name) {
                pairs.push((name.clone(), value.clone()));
            }
        }
        let failed_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        pairs.extend([
            (headers::ERROR_KIND.into(), letter.kind.as_str().into()),
            (headers::ERROR.into(), one_line(&letter.error)),
            (headers::PIPELINE.into(), letter.pipeline.clone()),
            (headers::NODE.into(), letter.node.clone()),
            (headers::SOURCE_STREAM.into(), letter.source_stream.clone()),
            (headers::SOURCE_SUBJECT.into(), letter.subject.clone()),
            (headers::SOURCE_SEQ.into(), letter.source_seq.to_string()),
            (headers::ATTEMPTS.into(), letter.attempts.to_string()),
            (headers::FAILED_AT.into(), failed_at),
        ]);
        if let Some(tenant) = &self.target.tenant {
            pairs.push((headers::TENANT.into(), tenant.clone()));
        }
        let header_bytes: usize = pairs.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
        // Leave room for the header preamble, Nats-Msg-Id and the truncation marker.
        let room = self.max_payload.saturating_sub(header_bytes + 512);
        let mut payload = letter.payload.clone();
        if payload.len() > room {
            pairs.push((
                headers::PAYLOAD_TRUNCATED.into(),
                letter.payload.len().to_string(),
            ));
            payload = payload.slice(..room);
        }
        let headers = headers_from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())))
            .unwrap_or_else(|_| {
                // An original header NATS cannot carry cannot exist (it came over NATS); a
                // broken pair is dropped rather than losing the dead letter.
                let mut map = async_nats::HeaderMap::new();
                for (n, v) in &pairs {
                    if let Ok(single) = headers_from_pairs([(n.as_str(), v.as_str())]) {
                        for (name, values) in single.iter() {
                            for value in values {
                                map.append(name.clone(), value.clone());
                            }
                        }
                    }
                }
                map
            });
        Outbound {
            subject: self.target.subject.clone(),
            headers,
            payload,
            msg_id: letter.msg_id(),
        }
    }

    /// Publishes the dead letters of `failed`; one result per input, in order.
    pub async fn publish(&self, failed: &[Failed<'_>]) -> Vec<Result<(), PublishFailure>> {
        if failed.is_empty() {
            return Vec::new();
        }
        let outbound: Vec<Outbound> = failed
            .iter()
            .map(|f| {
                self.outbound(&DeadLetter::of(
                    &self.pipeline,
                    f.input,
                    f.error,
                    f.attempts,
                ))
            })
            .collect();
        self.sink
            .publish_all(&outbound)
            .await
            .into_iter()
            .map(|r| {
                r.map(|_| ()).map_err(|f| PublishFailure {
                    // A DLQ that refuses a letter is never the letter's fault for retries.
                    kind: FailureKind::Transient,
                    reason: format!("dead letter not stored: {}", f.reason),
                })
            })
            .collect()
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}
