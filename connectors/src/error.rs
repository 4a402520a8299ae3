//! Connector errors, and the one decision the runtime needs from them: is a failure about
//! the data (`FailureKind::Publish`: dead-letter it now, a retry cannot help) or transient
//! (`FailureKind::Transient`: retry with backoff)?

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use weir_pipelines::FailureKind;

/// Why one publish did not get its PubAck.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishFailure {
    /// `Publish` (the message itself was refused; also `Template` for a header NATS cannot
    /// carry) or `Transient` (the destination is unavailable for now).
    pub kind: FailureKind,
    /// What went wrong, for logs and the `Weir-Error` header.
    pub reason: String,
}

/// JetStream API error code: "message size exceeds maximum allowed".
pub(crate) const JS_MESSAGE_EXCEEDS_MAXIMUM: u64 = 10054;

impl PublishFailure {
    /// Classifies an async-nats publish error for `subject`.
    pub fn from_publish_error(subject: &str, err: &PublishError) -> Self {
        let kind = match err.kind() {
            PublishErrorKind::MaxPayloadExceeded => FailureKind::Publish,
            PublishErrorKind::Other => match js_error_code(err) {
                Some(JS_MESSAGE_EXCEEDS_MAXIMUM) => FailureKind::Publish,
                _ => FailureKind::Transient,
            },
            _ => FailureKind::Transient,
        };
        let detail = match std::error::Error::source(err) {
            Some(source) => format!("{err}: {source}"),
            None => err.to_string(),
        };
        let hint = match err.kind() {
            PublishErrorKind::StreamNotFound => {
                " (no JetStream stream captures this subject; create one)"
            }
            _ => "",
        };
        PublishFailure {
            kind,
            reason: format!("publish to {subject:?} failed: {detail}{hint}"),
        }
    }
}

fn js_error_code(err: &PublishError) -> Option<u64> {
    let source = std::error::Error::source(err)?;
    source
        .downcast_ref::<async_nats::jetstream::Error>()
        .map(|e| e.error_code().0)
}

/// Errors of connector set-up and control operations.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The first connection to NATS failed.
    #[error(
        "cannot connect to NATS at {url}: {reason} (is nats-server running with JetStream, and is the URL right?)"
    )]
    Connect {
        /// Server URL.
        url: String,
        /// What the client said.
        reason: String,
    },
    /// A setting in the spec could not be used.
    #[error("invalid setting {field} = {value:?}: {reason}")]
    InvalidSetting {
        /// Field path in the spec.
        field: String,
        /// The value as written.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// Creating or updating a stream failed.
    #[error("cannot create or update stream {stream}: {reason}")]
    Stream {
        /// Stream name.
        stream: String,
        /// What the server said.
        reason: String,
    },
    /// Creating or looking up the pipeline's consumer failed.
    #[error("cannot open consumer {consumer} on stream {stream}: {reason}")]
    Consumer {
        /// Stream name.
        stream: String,
        /// Durable consumer name.
        consumer: String,
        /// What the server said.
        reason: String,
    },
    /// Fetching messages failed (the source retries; this is reported for logs).
    #[error("fetch from consumer {consumer} failed: {reason}")]
    Fetch {
        /// Durable consumer name.
        consumer: String,
        /// What went wrong.
        reason: String,
    },
}
