//! What becomes of one input of a batch. Each stage of a batch gives its verdict on an input;
//! verdicts fold with [`Disposition::merge`], the gravest one winning, and the settle stage
//! acks or naks by the result.

use weir_engine::{FailureKind, MessageError};

/// The verdict on one input.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Disposition {
    /// A filter removed it (or it has not been processed yet): ack.
    Filtered,
    /// Publish these outputs (indexes into the batch's outbound messages), then ack.
    Publish(Vec<usize>),
    /// Failed for now (`Transient` or `Internal`): nak with a backoff delay.
    Retry(MessageError),
    /// Failed for good: store its dead letter, then ack.
    DeadLetter(MessageError),
}

impl Disposition {
    /// The verdict for a failure: retried when a later delivery can succeed.
    pub(crate) fn failure(error: MessageError) -> Self {
        if error.kind.is_retryable() {
            Disposition::Retry(error)
        } else {
            Disposition::DeadLetter(error)
        }
    }

    /// A failure of `kind` at `node`.
    pub(crate) fn failed(kind: FailureKind, node: &str, message: String) -> Self {
        Disposition::failure(MessageError {
            node: node.to_string(),
            kind,
            message,
        })
    }

    fn gravity(&self) -> u8 {
        match self {
            Disposition::Filtered => 0,
            Disposition::Publish(_) => 1,
            Disposition::Retry(_) => 2,
            Disposition::DeadLetter(_) => 3,
        }
    }

    /// Two verdicts on the same input combined: the graver one wins (dead letter over retry
    /// over publish over filtered); between equal ones the first stays, except that two
    /// publishes publish both sets of outputs.
    pub(crate) fn merge(self, other: Self) -> Self {
        match (self, other) {
            (Disposition::Publish(mut a), Disposition::Publish(b)) => {
                a.extend(b);
                Disposition::Publish(a)
            }
            (a, b) if b.gravity() > a.gravity() => b,
            (a, _) => a,
        }
    }

    /// A retry of an input delivered `attempts` times becomes a dead letter once
    /// `max_attempts` is reached.
    pub(crate) fn escalate(self, attempts: u64, max_attempts: u64) -> Self {
        match self {
            Disposition::Retry(mut error) if attempts >= max_attempts => {
                if error.kind == FailureKind::Transient {
                    error.message = format!(
                        "{}; gave up after {attempts} deliveries (errors.retry.max_attempts)",
                        error.message
                    );
                }
                Disposition::DeadLetter(error)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Disposition::{self, *};
    use weir_engine::FailureKind;

    fn failed(kind: FailureKind, node: &str) -> Disposition {
        Disposition::failed(kind, node, format!("{node} failed"))
    }

    #[test]
    fn the_gravest_verdict_wins_and_the_first_of_equals_stays() {
        let publish = Publish(vec![0, 1]);
        let retry = failed(FailureKind::Transient, "a");
        let letter = failed(FailureKind::Publish, "b");
        assert_eq!(publish.clone().merge(retry.clone()), retry);
        assert_eq!(retry.clone().merge(letter.clone()), letter);
        assert_eq!(letter.clone().merge(retry.clone()), letter);
        assert_eq!(Filtered.merge(publish.clone()), publish);
        let other = failed(FailureKind::Publish, "c");
        assert_eq!(letter.clone().merge(other), letter);
        assert_eq!(publish.merge(Publish(vec![2])), Publish(vec![0, 1, 2]));
    }

    #[test]
    fn retries_become_dead_letters_at_max_attempts() {
        let retry = failed(FailureKind::Transient, "out");
        assert_eq!(retry.clone().escalate(2, 3), retry);
        let DeadLetter(error) = retry.escalate(3, 3) else {
            panic!("not escalated")
        };
        assert_eq!(error.kind, FailureKind::Transient);
        assert!(
            error
                .message
                .ends_with("gave up after 3 deliveries (errors.retry.max_attempts)")
        );
        let internal = failed(FailureKind::Internal, "engine");
        let DeadLetter(error) = internal.escalate(5, 3) else {
            panic!("not escalated")
        };
        assert_eq!(
            (error.kind, error.message.as_str()),
            (FailureKind::Internal, "engine failed")
        );
        let letter = failed(FailureKind::Decode, "source");
        assert_eq!(letter.clone().escalate(1, 3), letter);
    }
}
