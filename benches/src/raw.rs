//! The raw baselines: async-nats stages with no engine and no DLQ, which read the source's
//! durable pull consumer and publish every message once to an output stream with a
//! `Nats-Msg-Id`.
//!
//! - [`run_raw_classic`]: per-message PubAcks in a bounded window, an explicit ack for each
//!   input once its PubAck is in — what most hand-written stages do.
//! - [`run_raw_best`]: the best technique available without Weir — each fetched batch is
//!   published as one JetStream fast batch (one PubAck per batch), batches are pipelined, and
//!   inputs are acked with `AckPolicy::All`: one ack per batch, sent in order, by the one owner
//!   of the consumer. This is the bar `weir bench` holds the pipeline to.

use std::collections::VecDeque;
use std::sync::Arc;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, Message, consumer, message::PublishMessage};
use futures::StreamExt;
use futures::stream::{FuturesOrdered, FuturesUnordered};

use weir_connectors::fast_batch::{BatchMessage, FastBatches, MAX_BATCH};
use weir_connectors::sink::await_draining;

use crate::knobs::{BenchError, Knobs, nats};

/// Messages per fast batch of the best raw stage (the measured optimum on 2 cores).
pub const BEST_BATCH: usize = 500;
/// Fast batches in flight in the best raw stage.
pub const BEST_BATCHES_IN_FLIGHT: usize = 16;

/// Runs `knobs.parallelism` classic raw loops until `stop` resolves.
pub async fn run_raw_classic(
    js: jetstream::Context,
    consumer: consumer::PullConsumer,
    out_subject: String,
    knobs: Knobs,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), BenchError> {
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..knobs.parallelism {
        let js = js.clone();
        let consumer = consumer.clone();
        let out_subject = out_subject.clone();
        let mut stop = stop.clone();
        loops.spawn(async move {
            let mut messages = consumer
                .stream()
                .max_messages_per_batch(knobs.batch_size * 2)
                .messages()
                .await
                .map_err(nats)?
                .ready_chunks(knobs.batch_size);
            // One continuous window of in-flight PubAcks: a new batch is published while the
            // acks of the last one are still coming in (no barrier between batches).
            let mut in_flight = FuturesUnordered::new();
            loop {
                let chunk = tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    Some(()) = in_flight.next(), if !in_flight.is_empty() => continue,
                    chunk = messages.next() => chunk,
                };
                let Some(chunk) = chunk else { break };
                for message in chunk {
                    let Ok(message) = message else { continue };
                    while in_flight.len() >= knobs.window {
                        in_flight.next().await;
                    }
                    let publish = PublishMessage::build()
                        .message_id(message_id(&message))
                        .payload(message.payload.clone());
                    // The loops share the context's PubAck cap: see `await_draining`.
                    let send = js.send_publish(out_subject.clone(), publish);
                    let ack = await_draining(send, &mut in_flight, |()| {})
                        .await
                        .map_err(nats)?;
                    in_flight.push(async move {
                        if ack.await.is_ok() {
                            let _ = message.ack().await;
                        }
                    });
                }
            }
            while in_flight.next().await.is_some() {}
            Ok::<(), BenchError>(())
        });
    }
    while let Some(result) = loops.join_next().await {
        result.map_err(nats)??;
    }
    Ok(())
}

/// Runs the best raw stage until `stop` resolves. `consumer` must have `AckPolicy::All`:
/// acking a batch's last message acks every message before it, so batches are acked strictly
/// in the order they were fetched, and only once every message of theirs and of the batches
/// before them is stored.
pub async fn run_raw_best(
    js: jetstream::Context,
    consumer: consumer::PullConsumer,
    out_subject: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), BenchError> {
    let batches = Arc::new(FastBatches::new(js.clone()));
    let stream: Arc<str> = batches
        .routes(std::iter::once(out_subject.as_str()))
        .await
        .into_iter()
        .next()
        .flatten()
        .ok_or_else(|| {
            BenchError::Nats(format!(
                "no stream taking fast batches captures {out_subject}"
            ))
        })?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(BEST_BATCH * 2)
        .messages()
        .await
        .map_err(nats)?
        .ready_chunks(BEST_BATCH.min(MAX_BATCH));
    // Completes in submission order, which is the order AckAll needs.
    let mut in_flight = FuturesOrdered::new();
    loop {
        let chunk = tokio::select! {
            biased;
            _ = stop.changed() => break,
            Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                ack_last(done?).await;
                continue;
            }
            chunk = messages.next(), if in_flight.len() < BEST_BATCHES_IN_FLIGHT => chunk,
        };
        let Some(chunk) = chunk else { break };
        let chunk: VecDeque<Message> = chunk.into_iter().filter_map(Result::ok).collect();
        if chunk.is_empty() {
            continue;
        }
        let (js, batches, stream, subject) = (
            js.clone(),
            batches.clone(),
            stream.clone(),
            out_subject.clone(),
        );
        in_flight.push_back(async move {
            publish_batch(&js, &batches, &stream, &subject, &chunk).await?;
            Ok::<_, BenchError>(chunk)
        });
    }
    while let Some(done) = in_flight.next().await {
        ack_last(done?).await;
    }
    Ok(())
}

/// Publishes one fetched batch as a fast batch; messages the batch did not store (never
/// judged, refused, unknown outcome) are published again one by one until stored.
async fn publish_batch(
    js: &jetstream::Context,
    batches: &FastBatches,
    stream: &str,
    subject: &str,
    chunk: &VecDeque<Message>,
) -> Result<(), BenchError> {
    let ids: Vec<String> = chunk.iter().map(message_id).collect();
    let batch = chunk
        .iter()
        .zip(&ids)
        .map(|(message, id)| {
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", id.as_str());
            BatchMessage {
                subject,
                headers,
                payload: message.payload.clone(),
            }
        })
        .collect();
    let outcome = batches.publish(stream, batch).await;
    let stored: Vec<bool> = match outcome {
        Ok(results) => results.iter().map(|r| matches!(r, Some(Ok(())))).collect(),
        Err(_declined) => vec![false; chunk.len()],
    };
    for ((message, id), stored) in chunk.iter().zip(&ids).zip(stored) {
        if stored {
            continue;
        }
        let publish = PublishMessage::build()
            .message_id(id.as_str())
            .payload(message.payload.clone());
        js.send_publish(subject.to_string(), publish)
            .await
            .map_err(nats)?
            .await
            .map_err(nats)?;
    }
    Ok(())
}

/// Acks a batch's last message (with `AckPolicy::All`, the whole batch and everything before).
async fn ack_last(chunk: VecDeque<Message>) {
    if let Some(last) = chunk.back() {
        let _ = last.ack().await;
    }
}

/// `raw:<stream sequence>`: what the latency run reads back to match outputs to inputs.
fn message_id(message: &Message) -> String {
    let seq = message.info().map(|i| i.stream_sequence).unwrap_or(0);
    format!("raw:{seq}")
}
