//! The one vocabulary of failure kinds shared by the engine, the connectors and the runtime.
//! Each kind's stable name is what the `Weir-Error-Kind` header of a dead letter carries and
//! what `weir test` prints; the names never change.

/// Why one message failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The payload is not valid in the declared format (not JSON, not UTF-8, too deep).
    Decode,
    /// An expression failed for this row (cast, type mismatch, missing field).
    Expression,
    /// A subject or header template failed or yielded an invalid subject or header.
    Template,
    /// A `split` field is not an array, or similar shape problems.
    Shape,
    /// The payload breaks the JSON Schema of a `validate` node.
    Validation,
    /// The payload exceeds the pipeline's `max_message_size`.
    Size,
    /// The payload exceeds the tenant's quota `max_message_bytes`.
    Quota,
    /// The destination refused the message itself (too large for the stream, invalid subject).
    Publish,
    /// The destination is unavailable for now: retried with backoff, dead-lettered after
    /// `errors.retry.max_attempts` deliveries.
    Transient,
    /// The engine failed as a whole (panic, malformed result): retried, then dead-lettered.
    Internal,
    /// A `wasm` node's function failed on this message: it trapped (`unreachable`,
    /// out-of-bounds access, stack overflow, memory past the cap), ran past the batch deadline
    /// or its fuel, returned a malformed result, or returned an error. The same message would
    /// fail again, so it is dead-lettered at once, with the trap text.
    Wasm,
}

impl FailureKind {
    /// Stable name, used in the `Weir-Error-Kind` header and in `weir test` output.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Decode => "decode",
            FailureKind::Expression => "expression",
            FailureKind::Template => "template",
            FailureKind::Shape => "shape",
            FailureKind::Validation => "validation",
            FailureKind::Size => "size",
            FailureKind::Quota => "quota",
            FailureKind::Publish => "publish",
            FailureKind::Transient => "transient",
            FailureKind::Internal => "internal",
            FailureKind::Wasm => "wasm",
        }
    }

    /// Whether a later delivery can succeed (retry with backoff); otherwise the message is
    /// dead-lettered at once.
    pub fn is_retryable(self) -> bool {
        matches!(self, FailureKind::Transient | FailureKind::Internal)
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::FailureKind::*;

    #[test]
    fn names_are_the_header_values() {
        let names: Vec<_> = [
            Decode, Expression, Template, Shape, Size, Quota, Publish, Transient, Internal, Wasm,
        ]
        .iter()
        .map(|k| k.as_str())
        .collect();
        assert_eq!(
            names,
            [
                "decode",
                "expression",
                "template",
                "shape",
                "size",
                "quota",
                "publish",
                "transient",
                "internal",
                "wasm"
            ]
        );
    }
}
