//! A delivery: one message the source fetched, as the engine's input plus the handle that
//! settles it (ack, or nak with a delay). The JetStream wire format stays in the connector:
//! the runtime sees engine inputs and settles deliveries, never raw messages.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use weir_pipelines::message::InputMessage;

/// One fetched message: the engine's input and the handle that settles it.
pub struct Delivery {
    /// The message as the engine takes it.
    pub input: InputMessage,
    /// Its sequence in the stream it was read from (the input's own `seq` differs for a
    /// partition copy, which names its source message).
    pub position: u64,
    /// Its number among the consumer's deliveries, redeliveries included (see
    /// [`crate::continuity`]).
    pub consumer_seq: u64,
    /// Settles the message with the server.
    pub ack: AckHandle,
}

/// Settles one fetched message; knows how often it was delivered.
pub struct AckHandle {
    attempts: u64,
    /// Its sequence in the stream it was read from.
    sequence: u64,
    message: jetstream::Message,
}

/// How a delivery is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Done: its outputs or its dead letter are stored, or it was filtered.
    Ack,
    /// Deliver it again after this delay.
    Retry(Duration),
}

impl Delivery {
    /// Converts a JetStream message; `None` when it has no JetStream metadata (it cannot be
    /// acked then). Headers are sorted by name (the server does not keep their order), so
    /// that outputs are the same on every redelivery.
    pub fn from_message(message: jetstream::Message) -> Option<Self> {
        let info = message.info().ok()?;
        let mut headers: Vec<(String, String)> = Vec::new();
        if let Some(map) = &message.headers {
            let mut names: Vec<_> = map.iter().collect();
            names.sort_by(|a, b| AsRef::<str>::as_ref(a.0).cmp(AsRef::<str>::as_ref(b.0)));
            for (name, values) in names {
                for value in values {
                    headers.push((name.to_string(), value.as_str().to_string()));
                }
            }
        }
        let input = InputMessage {
            subject: message.subject.as_str().to_owned(),
            headers,
            payload: message.payload.clone(),
            seq: info.stream_sequence,
            stream: info.stream.to_string(),
            timestamp_micros: (info.published.unix_timestamp_nanos() / 1_000) as i64,
        };
        let attempts = info.delivered.max(1) as u64;
        Some(Delivery {
            position: input.seq,
            consumer_seq: info.consumer_sequence,
            input,
            ack: AckHandle {
                attempts,
                sequence: info.stream_sequence,
                message,
            },
        })
    }
}

impl AckHandle {
    /// Deliveries of this message so far, this one included (at least 1).
    pub fn attempts(&self) -> u64 {
        self.attempts
    }

    /// Whether this is the message's first delivery (redeliveries are not new messages).
    pub fn is_first(&self) -> bool {
        self.attempts <= 1
    }

    /// Acks, or naks with a delay. On failure the server redelivers after `ack_wait`.
    pub async fn settle(&self, settle: Settle) -> Result<(), String> {
        let kind = match settle {
            Settle::Ack => AckKind::Ack,
            Settle::Retry(delay) => AckKind::Nak(Some(delay)),
        };
        self.message.ack_with(kind).await.map_err(|e| e.to_string())
    }
}

/// Settles every delivery in `acks` with one ack, for a consumer with `AckPolicy::All`: the
/// ack of the highest stream sequence among them, which the server applies to every delivery
/// of the consumer up to that sequence. So the caller must be the consumer's only reader and
/// be done with every delivery up to it (as a stateful pipeline's owner is once a checkpoint
/// covers them). Nothing is sent for no deliveries.
pub async fn ack_through(acks: &[AckHandle]) -> Result<(), String> {
    match acks.iter().max_by_key(|a| a.sequence) {
        Some(last) => last.settle(Settle::Ack).await,
        None => Ok(()),
    }
}
