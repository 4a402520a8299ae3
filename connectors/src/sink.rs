//! The JetStream sink: publishes a batch's outputs with a bounded window of unconfirmed
//! messages, each with a deterministic `Nats-Msg-Id` so that a redelivered input never
//! duplicates its outputs in the destination stream. The window is shared by every batch
//! published through the sink (and its clones), so batches in flight at once stay within it.
//! Outputs go in JetStream fast batches where their stream allows it (see `fast_batch`).

use std::str::FromStr;
use std::sync::Arc;

use async_nats::HeaderMap;
use async_nats::header::{HeaderName, HeaderValue};
use async_nats::jetstream::{self, message::PublishMessage};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::Semaphore;

use crate::PublishFailure;
use crate::fast_batch::{BatchMessage, BatchOutcome, Declined, FastBatches, MAX_BATCH};
use weir_pipelines::FailureKind;
use weir_pipelines::message::{InputMessage, OutputMessage};

/// The header that carries an output's deduplication id.
const NATS_MSG_ID: &str = "Nats-Msg-Id";

/// One message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Outbound {
    /// Destination subject.
    pub subject: String,
    /// Headers, without `Nats-Msg-Id` (the sink sets it from `msg_id`).
    pub headers: HeaderMap,
    /// Payload bytes.
    pub payload: Bytes,
    /// Deduplication id, sent as `Nats-Msg-Id`.
    pub msg_id: String,
}

/// How outputs get their `Nats-Msg-Id`: deterministic, so that a redelivered input never
/// duplicates its outputs in the destination stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MsgIdPolicy {
    /// `<pipeline>:<source stream>:<source seq>:<output index>`: one id per output of an input.
    PerInput {
        /// Pipeline name.
        pipeline: String,
    },
}

impl MsgIdPolicy {
    /// The id of output `k` of `input`.
    pub fn msg_id(&self, input: &InputMessage, k: usize) -> String {
        match self {
            MsgIdPolicy::PerInput { pipeline } => {
                // Not `format!`: one id per output, and the formatting machinery was a tenth
                // of the worker's cost per output in `perf`. `join` sizes the id exactly.
                let (mut seq, mut index) = (itoa::Buffer::new(), itoa::Buffer::new());
                [
                    pipeline.as_str(),
                    &input.stream,
                    seq.format(input.seq),
                    index.format(k),
                ]
                .join(":")
            }
        }
    }
}

impl Outbound {
    /// The wire message for output `k` of `input`: its headers as NATS headers (leaving out
    /// `Nats-*` ones) and its id from `ids`. A header NATS cannot carry is a `Template`
    /// failure of the output's node.
    pub fn from_output(
        ids: &MsgIdPolicy,
        input: &InputMessage,
        k: usize,
        output: OutputMessage,
    ) -> Result<Self, PublishFailure> {
        let headers =
            headers_from_pairs(output.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())))?;
        Ok(Outbound {
            subject: output.subject,
            headers,
            payload: output.payload,
            msg_id: ids.msg_id(input, k),
        })
    }

    /// The headers sent with the message: its own and its `Nats-Msg-Id`.
    pub fn wire_headers(&self) -> HeaderMap {
        let mut headers = self.headers.clone();
        headers.insert(NATS_MSG_ID, self.msg_id.as_str());
        headers
    }
}

/// Builds a header map from name/value pairs, leaving out `Nats-*` headers (they steer the
/// server: expected sequences, message ids, rollups, and must not leak from an input into an
/// output). A name or value NATS cannot carry is a data failure.
pub fn headers_from_pairs<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<HeaderMap, PublishFailure> {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if is_server_header(name) {
            continue;
        }
        let header_name = HeaderName::from_str(name).map_err(|_| PublishFailure {
            kind: FailureKind::Template,
            reason: format!("header name {name:?} cannot be sent over NATS"),
        })?;
        let header_value = HeaderValue::from_str(value).map_err(|_| PublishFailure {
            kind: FailureKind::Template,
            reason: format!("header {name:?} has a value with a line break: {value:?}"),
        })?;
        map.append(header_name, header_value);
    }
    Ok(map)
}

/// Whether a header name is one that the server interprets (`Nats-…`).
pub fn is_server_header(name: &str) -> bool {
    name.len() >= 5 && name[..5].eq_ignore_ascii_case("nats-")
}

/// Publishes to JetStream, at most `window` messages unconfirmed at a time over every batch
/// published through this sink and its clones. Messages whose stream takes fast batches
/// (`allow_batched`, nats-server 2.14+) go in fast batches with one PubAck per batch; the
/// others are published one by one, each with its own PubAck.
#[derive(Clone)]
pub struct JetStreamSink {
    js: jetstream::Context,
    window: Arc<Semaphore>,
    window_size: usize,
    batches: Arc<FastBatches>,
}

impl JetStreamSink {
    /// A sink on `js` with `window` unconfirmed messages at most, and fast batches of its own.
    pub fn new(js: jetstream::Context, window: usize) -> Self {
        let batches = Arc::new(FastBatches::new(js.clone()));
        Self::sharing(js, window, batches)
    }

    /// A sink on `js` with `window` unconfirmed messages at most, publishing its fast batches
    /// through `batches` (one inbox subscription and one list of streams for every sink of a
    /// worker).
    pub fn sharing(js: jetstream::Context, window: usize, batches: Arc<FastBatches>) -> Self {
        let window_size = window.clamp(1, Semaphore::MAX_PERMITS);
        JetStreamSink {
            batches,
            js,
            window: Arc::new(Semaphore::new(window_size)),
            window_size,
        }
    }

    /// Publishes every message and returns, for each, whether it is stored or why not.
    /// Results are in input order. A failure of one message does not stop the others.
    pub async fn publish_all(&self, messages: &[Outbound]) -> Vec<Result<(), PublishFailure>> {
        self.publish_each(messages.iter()).await
    }

    /// `publish_all` over borrowed messages (e.g. the ones of a batch still to retry).
    pub async fn publish_each<'a>(
        &self,
        messages: impl ExactSizeIterator<Item = &'a Outbound>,
    ) -> Vec<Result<(), PublishFailure>> {
        let messages: Vec<&Outbound> = messages.collect();
        let mut results: Vec<Option<Result<(), PublishFailure>>> = vec![None; messages.len()];
        // Group the messages by the stream that takes them in fast batches; the rest go one
        // by one. A pipeline writes to few streams, so a list beats a map here.
        let mut batched: Vec<(Arc<str>, Vec<usize>)> = Vec::new();
        let mut single: Vec<usize> = Vec::new();
        let routes = self
            .batches
            .routes(messages.iter().map(|m| m.subject.as_str()))
            .await;
        // A message over the server's max_payload fails on its own, as a data failure, on the
        // one-by-one path; in a batch it would fail the batch.
        let max_payload = self.js.client().server_info().max_payload;
        for (index, route) in routes.into_iter().enumerate() {
            let oversized = wire_size(messages[index]) > max_payload;
            match route.filter(|_| !oversized) {
                Some(stream) => match batched.iter_mut().find(|(s, _)| *s == stream) {
                    Some((_, indexes)) => indexes.push(index),
                    None => batched.push((stream, vec![index])),
                },
                None => single.push(index),
            }
        }
        let declined = self
            .publish_batched(&messages, &batched, &mut results)
            .await;
        single.extend(declined);
        self.publish_single(&messages, &single, &mut results).await;
        results
            .into_iter()
            .map(|r| r.expect("every publish has a result"))
            .collect()
    }

    /// Fast batches of at most [`MAX_BATCH`] messages (and at most the window), all in flight
    /// at once within the window. Returns the messages of the batches the server declined.
    async fn publish_batched(
        &self,
        messages: &[&Outbound],
        batched: &[(Arc<str>, Vec<usize>)],
        results: &mut [Option<Result<(), PublishFailure>>],
    ) -> Vec<usize> {
        let mut declined = Vec::new();
        let mut in_flight = FuturesUnordered::new();
        // A quarter of the window at most, so that one batch waiting for room does not hold
        // every other publisher back.
        let chunk = MAX_BATCH.min(self.window_size.div_ceil(4));
        for (stream, indexes) in batched {
            for part in indexes.chunks(chunk) {
                let slots = await_draining(
                    self.window.clone().acquire_many_owned(part.len() as u32),
                    &mut in_flight,
                    |done| settle_batch(done, results, &mut declined),
                )
                .await
                .expect("the sink's window is never closed");
                let batch: Vec<BatchMessage<'_>> = part
                    .iter()
                    .map(|&i| {
                        let message = messages[i];
                        BatchMessage {
                            subject: &message.subject,
                            headers: message.wire_headers(),
                            payload: message.payload.clone(),
                        }
                    })
                    .collect();
                let batches = &self.batches;
                in_flight.push(async move {
                    let outcome = batches.publish(stream, batch).await;
                    drop(slots);
                    (part, outcome)
                });
            }
        }
        while let Some(done) = in_flight.next().await {
            settle_batch(done, results, &mut declined);
        }
        declined
    }

    /// One publish and one PubAck per message.
    async fn publish_single(
        &self,
        messages: &[&Outbound],
        single: &[usize],
        results: &mut [Option<Result<(), PublishFailure>>],
    ) {
        let mut in_flight = FuturesUnordered::new();
        for &index in single {
            let message = messages[index];
            // A slot of the shared window; freed when this message's PubAck is in. Our own
            // PubAcks keep completing while we wait (they may hold the slots we wait for).
            let slot = await_draining(
                self.window.clone().acquire_owned(),
                &mut in_flight,
                |(i, result)| results[i] = Some(result),
            )
            .await
            .expect("the sink's window is never closed");
            let publish = PublishMessage::build()
                .headers(message.headers.clone())
                .message_id(&message.msg_id)
                .payload(message.payload.clone());
            let send = self.js.send_publish(message.subject.clone(), publish);
            let sent = await_draining(send, &mut in_flight, |(i, result)| {
                results[i] = Some(result);
            })
            .await;
            match sent {
                Ok(ack) => {
                    let subject = &message.subject;
                    in_flight.push(async move {
                        let result = ack
                            .await
                            .map(|_| ())
                            .map_err(|err| PublishFailure::from_publish_error(subject, &err));
                        drop(slot);
                        (index, result)
                    });
                }
                Err(err) => {
                    results[index] = Some(Err(PublishFailure::from_publish_error(
                        &message.subject,
                        &err,
                    )))
                }
            }
        }
        while let Some((i, result)) = in_flight.next().await {
            results[i] = Some(result);
        }
    }
}

/// Bytes of a message on the wire as NATS counts them against max_payload: payload and
/// header block, `Nats-Msg-Id` included.
fn wire_size(message: &Outbound) -> usize {
    let headers: usize = message
        .headers
        .iter()
        .map(|(name, values)| {
            let name: &str = name.as_ref();
            values
                .iter()
                .map(|v| name.len() + v.as_str().len() + 4)
                .sum::<usize>()
        })
        .sum();
    // "NATS/1.0\r\n" … "\r\n", and "Nats-Msg-Id: <id>\r\n".
    message.payload.len() + headers + 12 + NATS_MSG_ID.len() + message.msg_id.len() + 4
}

/// Records the results of a finished fast batch; the messages it did not judge, or all of
/// them when it was declined, go to `declined`.
fn settle_batch(
    (part, outcome): (&[usize], BatchOutcome),
    results: &mut [Option<Result<(), PublishFailure>>],
    declined: &mut Vec<usize>,
) {
    match outcome {
        Ok(outcome) => {
            for (&i, answer) in part.iter().zip(outcome) {
                match answer {
                    Some(result) => results[i] = Some(result),
                    // Dropped when its batch ended early: one by one, right away.
                    None => declined.push(i),
                }
            }
        }
        Err(Declined) => declined.extend_from_slice(part),
    }
}

/// Awaits `wait` (a JetStream publish, a window slot) while completing the PubAck futures
/// of `in_flight`, handing each finished one to `done`.
///
/// The JetStream context caps PubAcks in flight over all its users and makes a publish wait
/// for a free slot, and the sink's window works the same way; slots are freed only as PubAck
/// futures are polled. A publisher that stops polling its own while it waits can wait
/// forever on others sharing the context or the window (parallelism, batches in flight, the
/// other pipelines of a worker) that do the same.
pub async fn await_draining<T, F: std::future::Future>(
    wait: impl std::future::Future<Output = T>,
    in_flight: &mut FuturesUnordered<F>,
    mut done: impl FnMut(F::Output),
) -> T {
    tokio::pin!(wait);
    loop {
        tokio::select! {
            biased;
            waited = &mut wait => return waited,
            Some(finished) = in_flight.next(), if !in_flight.is_empty() => done(finished),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outputs_id_names_the_pipeline_the_source_message_and_the_output() {
        let ids = MsgIdPolicy::PerInput {
            pipeline: "orders-eu".into(),
        };
        let input = InputMessage {
            stream: "ORDERS".into(),
            seq: 18_446_744_073_709_551_615,
            ..InputMessage::default()
        };
        assert_eq!(
            ids.msg_id(&input, 0),
            "orders-eu:ORDERS:18446744073709551615:0"
        );
        let input = InputMessage { seq: 7, ..input };
        assert_eq!(ids.msg_id(&input, 12), "orders-eu:ORDERS:7:12");
    }
}
