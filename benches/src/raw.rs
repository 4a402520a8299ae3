//! The raw baseline: a well-written async-nats stage that reads a durable pull consumer in
//! batches, publishes every message with a `Nats-Msg-Id` keeping a bounded window of
//! in-flight PubAcks, and acks each input once its PubAck is in. No engine, no DLQ.

use async_nats::jetstream::{self, consumer, message::PublishMessage};
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use weir_connectors::sink::await_draining;

use crate::harness::{BenchError, Knobs};

/// Runs `knobs.parallelism` raw loops until `stop` resolves.
pub async fn run_raw(
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
                .map_err(|e| BenchError::Nats(e.to_string()))?
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
                    let seq = message.info().map(|i| i.stream_sequence).unwrap_or(0);
                    let publish = PublishMessage::build()
                        .message_id(format!("raw:{seq}"))
                        .payload(message.payload.clone());
                    // The loops share the context's PubAck cap: see `await_draining`.
                    let send = js.send_publish(out_subject.clone(), publish);
                    let ack = await_draining(send, &mut in_flight, |()| {})
                        .await
                        .map_err(|e| BenchError::Nats(e.to_string()))?;
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
        result.map_err(|e| BenchError::Nats(e.to_string()))??;
    }
    Ok(())
}
