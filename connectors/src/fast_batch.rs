//! JetStream fast-ingest batches (ADR-50, nats-server 2.14+, streams with `allow_batched`).
//!
//! A fast batch is a run of ordinary publishes whose reply subjects say "batch B, message n";
//! the server stores each message as it arrives and answers the whole batch with one PubAck
//! on its last (commit) message, instead of one PubAck per message. `Nats-Msg-Id`
//! deduplication applies to every message as for a single publish, so a redelivered input
//! still cannot duplicate its outputs. Fewer replies cost both the server and the client less
//! per message, which is what the sink is bound by.
//!
//! Written by hand: async-nats has no fast-ingest publisher, and the one in jetstream-extra
//! opens a subscription per batch and publishes one batch at a time, where the sink needs many
//! short batches in flight over one subscription.
//!
//! Only what the server confirms counts as stored: the batch's commit PubAck confirms every
//! message that has no error of its own; a gap, an error reply to the batch, a missing stream
//! or no answer in time fails every message of the batch as transient (they are published
//! again, and deduplication drops whatever had been stored).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::{HeaderMap, StatusCode};
use bytes::Bytes;
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::{OnceCell, mpsc};

use crate::error::JS_MESSAGE_EXCEEDS_MAXIMUM;
use crate::stream_routes::StreamRoutes;
use crate::{FailureClass, PublishFailure};

/// Most messages in one fast batch (the server's limit for a batch).
pub const MAX_BATCH: usize = 1000;
/// How long a batch may wait for its commit PubAck.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// JetStream API error code: "fast batch publish not enabled on stream".
const JS_BATCH_NOT_ENABLED: u64 = 10205;
/// JetStream API error code: "too many in-flight fast batches on the server".
const JS_TOO_MANY_BATCHES: u64 = 10211;

/// Operation codes carried in the reply subject.
const OP_START: u8 = 0;
const OP_APPEND: u8 = 1;
const OP_COMMIT: u8 = 2;

/// One message of a batch, borrowed from the caller.
pub struct BatchMessage<'a> {
    /// Destination subject.
    pub subject: &'a str,
    /// Headers, `Nats-Msg-Id` included.
    pub headers: HeaderMap,
    /// Payload.
    pub payload: Bytes,
}

/// A reply the server sent to one message of a batch.
#[derive(Debug)]
struct Reply {
    seq: u64,
    status: Option<StatusCode>,
    payload: Bytes,
}

/// Replies by batch id, filled by the task that reads the publisher's inbox.
type Waiting = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Reply>>>>;

/// Publishes fast batches over one inbox subscription, and knows which subjects can take
/// them.
pub struct FastBatches {
    js: jetstream::Context,
    /// First token of every reply subject; unique to this publisher.
    prefix: String,
    /// Makes batch ids unique on the server (they are global to it, not per publisher).
    id_base: String,
    next_id: AtomicU64,
    inbox: OnceCell<Inbox>,
    routes: StreamRoutes,
}

struct Inbox {
    waiting: Waiting,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

#[derive(Deserialize, Clone)]
struct ApiError {
    #[serde(default)]
    err_code: u64,
    #[serde(default)]
    description: String,
}

/// The replies a batch can get, told apart by their fields.
#[derive(Deserialize)]
#[serde(untagged)]
enum ReplyBody {
    Flow {
        #[serde(rename = "type")]
        kind: String,
        #[serde(default)]
        seq: u64,
        #[serde(default)]
        error: Option<ApiError>,
    },
    Error {
        error: ApiError,
    },
    PubAck {
        /// Present in every PubAck: tells it apart from the flow messages.
        #[serde(rename = "stream")]
        _stream: String,
        #[serde(default)]
        count: Option<u64>,
    },
}

impl FastBatches {
    /// A publisher on `js`'s connection.
    pub fn new(js: jetstream::Context) -> Self {
        let inbox = js.client().new_inbox();
        let unique = inbox.rsplit('.').next().unwrap_or("weir").to_string();
        FastBatches {
            routes: StreamRoutes::new(js.clone()),
            js,
            prefix: format!("_WFI{unique}"),
            id_base: unique,
            next_id: AtomicU64::new(1),
            inbox: OnceCell::new(),
        }
    }

    /// For each subject, the stream that captures it when that stream takes fast batches
    /// (`None`: publish that message one by one).
    pub async fn routes<'a>(
        &self,
        subjects: impl Iterator<Item = &'a str>,
    ) -> Vec<Option<Arc<str>>> {
        self.routes.batched_streams(subjects).await
    }

    async fn inbox(&self) -> Result<&Inbox, PublishFailure> {
        self.inbox
            .get_or_try_init(|| async {
                let client = self.js.client();
                let mut subscription = client
                    .subscribe(format!("{}.>", self.prefix))
                    .await
                    .map_err(|err| PublishFailure {
                        class: FailureClass::Transient,
                        reason: format!("cannot subscribe to the batch inbox: {err}"),
                    })?;
                let waiting: Waiting = Arc::default();
                let routes = waiting.clone();
                let reader = tokio::spawn(async move {
                    while let Some(message) = subscription.next().await {
                        // <prefix>.<batch id>.<flow>.<gap mode>.<seq>.<op>.$FI
                        let mut tokens = message.reply_subject_tokens();
                        let (Some(id), Some(seq)) = (tokens.next(), tokens.nth(2)) else {
                            continue;
                        };
                        let Ok(seq) = seq.parse::<u64>() else {
                            continue;
                        };
                        let sender = routes.lock().expect("waiting lock").get(id).cloned();
                        if let Some(sender) = sender {
                            let _ = sender.send(Reply {
                                seq,
                                status: message.status,
                                payload: message.payload,
                            });
                        }
                    }
                });
                Ok(Inbox { waiting, reader })
            })
            .await
    }

    /// Publishes `messages` (all captured by `stream`, at most [`MAX_BATCH`]) as one fast
    /// batch and returns one result per message, in order; or [`Declined`] when the server
    /// did not take the batch (fast batches not enabled after all, too many batches in flight
    /// on the server): the caller then publishes the messages one by one.
    pub async fn publish(&self, stream: &str, messages: Vec<BatchMessage<'_>>) -> BatchOutcome {
        let count = messages.len();
        debug_assert!((1..=MAX_BATCH).contains(&count));
        let all_failed = |reason: String| {
            Ok((0..count)
                .map(|_| {
                    Err(PublishFailure {
                        class: FailureClass::Transient,
                        reason: reason.clone(),
                    })
                })
                .collect())
        };
        // No inbox, or its reader ended (the connection was closed for good): no batches.
        let inbox = match self.inbox().await {
            Ok(inbox) if !inbox.reader.is_finished() => inbox,
            _ => return Err(Declined),
        };
        let id = format!(
            "{}n{}",
            self.id_base,
            self.next_id.fetch_add(1, Ordering::Relaxed)
        );
        let (tx, mut replies) = mpsc::unbounded_channel();
        inbox
            .waiting
            .lock()
            .expect("waiting lock")
            .insert(id.clone(), tx);
        let _registration = Registration {
            waiting: &inbox.waiting,
            id: &id,
        };
        let client = self.js.client();
        // Ask for flow acks only at the end: the batch is bounded by the sink's window.
        let reply_prefix = format!("{}.{id}.{count}.fail.", self.prefix);
        for (index, message) in messages.into_iter().enumerate() {
            let seq = index + 1;
            let op = if seq == count {
                OP_COMMIT
            } else if seq == 1 {
                OP_START
            } else {
                OP_APPEND
            };
            let reply = format!("{reply_prefix}{seq}.{op}.$FI");
            let subject = message.subject.to_string();
            if let Err(err) = client
                .publish_with_reply_and_headers(subject, reply, message.headers, message.payload)
                .await
            {
                return all_failed(format!("publish to {:?} failed: {err}", message.subject));
            }
        }

        // A batch ends at its first refused message: the server then sends the PubAck at
        // once, on whichever message's subject, with the number of messages stored (duplicates
        // included), and drops the rest. So messages 1..=count are stored unless they have
        // an error of their own, and the others are not.
        let mut own: Vec<Option<PublishFailure>> = vec![None; count];
        let mut acked = vec![false; count];
        let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
        let stored: usize;
        loop {
            let reply = match tokio::time::timeout_at(deadline, replies.recv()).await {
                Ok(Some(reply)) => reply,
                Ok(None) => return all_failed("the batch inbox closed".into()),
                Err(_) => {
                    return all_failed(format!(
                        "no PubAck for a batch of {count} messages to stream {stream} within {REPLY_TIMEOUT:?}"
                    ));
                }
            };
            if reply.status == Some(StatusCode::NO_RESPONDERS) {
                self.routes.forget().await;
                return all_failed(format!(
                    "no JetStream stream captures the batch's subjects (stream {stream} is gone)"
                ));
            }
            match serde_json::from_slice::<ReplyBody>(&reply.payload) {
                Ok(ReplyBody::PubAck {
                    count: Some(stored_count),
                    ..
                }) => {
                    stored = (stored_count as usize).min(count);
                    break;
                }
                // A PubAck of one message (a server that took the messages one by one).
                Ok(ReplyBody::PubAck { count: None, .. }) => {
                    if let Some(slot) = acked.get_mut((reply.seq as usize).wrapping_sub(1)) {
                        *slot = true;
                    }
                    if acked.iter().zip(&own).all(|(a, o)| *a || o.is_some()) {
                        stored = 0;
                        break;
                    }
                }
                Ok(ReplyBody::Flow {
                    kind,
                    seq,
                    error: Some(error),
                }) if kind == "err" => {
                    if let Some(slot) = own.get_mut((seq as usize).wrapping_sub(1)) {
                        *slot = Some(failure(stream, &error));
                    }
                }
                // Flow acks, and gaps (the PubAck that follows counts what was stored).
                Ok(ReplyBody::Flow { .. }) => {}
                Ok(ReplyBody::Error { error }) if is_batch_error(error.err_code) => {
                    if error.err_code == JS_BATCH_NOT_ENABLED {
                        self.routes.forget().await;
                    }
                    if matches!(error.err_code, JS_BATCH_NOT_ENABLED | JS_TOO_MANY_BATCHES) {
                        tracing::debug!(
                            stream,
                            code = error.err_code,
                            "fast batch declined: {}",
                            error.description
                        );
                        return Err(Declined);
                    }
                    return all_failed(format!(
                        "batch to stream {stream} refused: {} (error {})",
                        error.description, error.err_code
                    ));
                }
                Ok(ReplyBody::Error { error }) => {
                    if let Some(slot) = own.get_mut((reply.seq as usize).wrapping_sub(1)) {
                        *slot = Some(failure(stream, &error));
                    }
                }
                Err(err) => {
                    return all_failed(format!(
                        "unreadable reply to a batch to stream {stream}: {err}"
                    ));
                }
            }
        }
        Ok(own
            .into_iter()
            .enumerate()
            .map(|(index, failed)| match failed {
                Some(failure) => Err(failure),
                None if index < stored || acked[index] => Ok(()),
                None => Err(PublishFailure {
                    class: FailureClass::Transient,
                    reason: format!(
                        "not stored: the batch to stream {stream} ended after {stored} of {count} messages"
                    ),
                }),
            })
            .collect())
    }
}

/// One result per message of a batch, or [`Declined`].
pub type BatchOutcome = Result<Vec<Result<(), PublishFailure>>, Declined>;

/// The server did not take a batch; its messages are to be published one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declined;

/// Whether an API error is about the batch as a whole (fast batches not enabled, a bad
/// reply pattern or batch id, a batch the server forgot, too many batches in flight) rather
/// than one message.
fn is_batch_error(err_code: u64) -> bool {
    (10205..=10211).contains(&err_code)
}

/// Classifies the error the server gave one message of a batch.
fn failure(stream: &str, error: &ApiError) -> PublishFailure {
    PublishFailure {
        class: if error.err_code == JS_MESSAGE_EXCEEDS_MAXIMUM {
            FailureClass::Data
        } else {
            FailureClass::Transient
        },
        reason: format!(
            "stream {stream} refused the message: {} (error {})",
            error.description, error.err_code
        ),
    }
}

/// Removes a batch's entry from the inbox's table when the batch is done, however it ends.
struct Registration<'a> {
    waiting: &'a Waiting,
    id: &'a str,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.waiting.lock().expect("waiting lock").remove(self.id);
    }
}

/// The tokens of a reply's subject after the publisher's prefix.
trait ReplyTokens {
    fn reply_subject_tokens(&self) -> std::str::Split<'_, char>;
}

impl ReplyTokens for async_nats::Message {
    fn reply_subject_tokens(&self) -> std::str::Split<'_, char> {
        let subject: &str = self.subject.as_ref();
        let mut tokens = subject.split('.');
        tokens.next();
        tokens
    }
}
