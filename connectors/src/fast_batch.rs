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
//! Only what the server confirms counts as stored. A batch ends at the first message the
//! server refuses: the PubAck then counts the messages stored before it, the refused one
//! fails with its own error, and the ones after it were never judged (the caller publishes
//! them again one by one). When the outcome is unknown (no answer in time, no stream, the
//! inbox closed) every message without an answer of its own fails as transient: it is
//! published again, and deduplication drops whatever had been stored. When the server does
//! not take batches at all, the caller publishes one by one ([`Declined`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::{HeaderMap, StatusCode};
use bytes::Bytes;
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::{OnceCell, mpsc};

use crate::PublishFailure;
use crate::error::JS_MESSAGE_EXCEEDS_MAXIMUM;
use crate::stream_routes::StreamRoutes;
use weir_pipelines::FailureKind;

/// Most messages in one fast batch (the server's limit for a batch).
pub const MAX_BATCH: usize = 1000;
/// How long a batch may wait for its commit PubAck.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// JetStream API error code: "fast batch publish not enabled on stream".
const JS_BATCH_NOT_ENABLED: u64 = 10205;
/// JetStream API error code: "fast batch publish invalid reply subject pattern".
const JS_BAD_BATCH_PATTERN: u64 = 10206;
/// JetStream API error code: "fast batch publish id is invalid".
const JS_BAD_BATCH_ID: u64 = 10207;
/// JetStream API error code: "fast batch publish id is unknown" (the batch is over).
const JS_UNKNOWN_BATCH: u64 = 10208;
/// JetStream API error code: "too many in-flight fast batches on the server".
const JS_TOO_MANY_BATCHES: u64 = 10211;
/// Batches in a row that got no reply at all before batches are paused.
const SILENT_TIMEOUTS_TO_PAUSE: u32 = 3;
/// How long batches stay paused (messages go one by one meanwhile).
const PAUSE: Duration = Duration::from_secs(60);

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
    silent_timeouts: AtomicU32,
    paused_until: Mutex<Option<Instant>>,
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
            silent_timeouts: AtomicU32::new(0),
            paused_until: Mutex::new(None),
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
                        kind: FailureKind::Transient,
                        reason: format!("cannot subscribe to the batch inbox: {err}"),
                    })?;
                let waiting: Waiting = Arc::default();
                let batches = waiting.clone();
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
                        let sender = batches.lock().expect("waiting lock").get(id).cloned();
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
    /// batch and returns one result per message, in order: `Some` with what the server said,
    /// or `None` for a message dropped because the batch ended before it (the server never
    /// judged it: publish it again one by one). [`Declined`] when the server did not take the
    /// batch (fast batches not enabled after all, too many batches in flight) or batches are
    /// paused: the caller then publishes the messages one by one.
    pub async fn publish(&self, stream: &str, messages: Vec<BatchMessage<'_>>) -> BatchOutcome {
        let count = messages.len();
        debug_assert!((1..=MAX_BATCH).contains(&count));
        if self.paused() {
            return Err(Declined);
        }
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
        let state = BatchState::new(stream, count);
        // Ask for flow acks only at the end: the batch is bounded by the sink's window. The
        // gap mode must stay "fail": only then does the server end the batch at the first
        // message it did not store, which is what makes its PubAck count exact.
        let reply_prefix = format!("{}.{id}.{count}.fail.", self.prefix);
        if let Err(reason) = self.send(&reply_prefix, messages).await {
            return Ok(state.failed(reason));
        }
        self.await_replies(stream, count, &mut replies, state).await
    }

    /// Sends the messages of a batch, each with its reply subject (`<prefix><seq>.<op>.$FI`).
    async fn send(
        &self,
        reply_prefix: &str,
        messages: Vec<BatchMessage<'_>>,
    ) -> Result<(), String> {
        let count = messages.len();
        let client = self.js.client();
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
                return Err(format!("publish to {:?} failed: {err}", message.subject));
            }
        }
        Ok(())
    }

    /// Waits for the server's answers to a batch of `count` messages to `stream`.
    async fn await_replies(
        &self,
        stream: &str,
        count: usize,
        replies: &mut mpsc::UnboundedReceiver<Reply>,
        mut state: BatchState<'_>,
    ) -> BatchOutcome {
        // A batch ends at its first refused message: the server then sends the PubAck at
        // once, on whichever message's subject, with the number of messages stored (duplicates
        // included), and drops the rest. So messages 1..=count are stored unless they have
        // an error of their own, and the others were never judged.
        let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
        let mut heard = false;
        loop {
            let reply = match tokio::time::timeout_at(deadline, replies.recv()).await {
                Ok(Some(reply)) => reply,
                Ok(None) => return Ok(state.failed("the batch inbox closed".into())),
                Err(_) => {
                    if !heard {
                        self.note_silence();
                    }
                    return Ok(state.failed(format!(
                        "no PubAck for a batch of {count} messages to stream {stream} within {REPLY_TIMEOUT:?}"
                    )));
                }
            };
            heard = true;
            self.silent_timeouts.store(0, Ordering::Relaxed);
            if reply.status == Some(StatusCode::NO_RESPONDERS) {
                self.routes.forget();
                return Ok(state.failed(format!(
                    "no JetStream stream captures the subject of message {} of a batch meant for stream {stream}",
                    reply.seq
                )));
            }
            match serde_json::from_slice::<ReplyBody>(&reply.payload) {
                // Without a count (not a batch's PubAck) nothing is known to be stored: every
                // message without an answer of its own goes again one by one.
                Ok(ReplyBody::PubAck { count, .. }) => {
                    return Ok(state.ended(count.unwrap_or(0) as usize));
                }
                Ok(ReplyBody::Flow {
                    kind,
                    seq,
                    error: Some(error),
                }) if kind == "err" => state.refused(seq, &error),
                // Flow acks, and gaps (the PubAck that follows counts what was stored).
                Ok(ReplyBody::Flow { .. }) => {}
                Ok(ReplyBody::Error { error }) => {
                    match self.batch_error(stream, count, reply.seq, &error, &mut state) {
                        None => {}
                        Some(Ok(())) => return Ok(state.ended(0)),
                        Some(Err(declined)) => return Err(declined),
                    }
                }
                Err(err) => {
                    return Ok(state.failed(format!(
                        "unreadable reply to a batch to stream {stream}: {err}"
                    )));
                }
            }
        }
    }

    /// What an error reply to message `seq` of a batch means: `None` when the batch goes on
    /// (the error is noted in `state`), `Some(Ok(()))` when it ended with nothing more
    /// stored, `Some(Err(Declined))` when the server did not take it.
    fn batch_error(
        &self,
        stream: &str,
        count: usize,
        seq: u64,
        error: &ApiError,
        state: &mut BatchState<'_>,
    ) -> Option<Result<(), Declined>> {
        match error.err_code {
            JS_BATCH_NOT_ENABLED | JS_TOO_MANY_BATCHES => {
                if error.err_code == JS_BATCH_NOT_ENABLED {
                    self.routes.disable(stream);
                }
                tracing::debug!(
                    stream,
                    code = error.err_code,
                    "fast batch declined: {}",
                    error.description
                );
                Some(Err(Declined))
            }
            JS_BAD_BATCH_PATTERN | JS_BAD_BATCH_ID => {
                // Our reply subjects or ids are wrong for this server: a bug here.
                tracing::error!(
                    stream,
                    code = error.err_code,
                    "fast batch refused: {}; publishing one by one",
                    error.description
                );
                self.pause();
                Some(Err(Declined))
            }
            // The batch is over on the server (it ended, or never started because
            // its first message was refused): later messages were never judged.
            JS_UNKNOWN_BATCH => Some(Ok(())),
            _ => {
                state.refused(seq, error);
                // A refused commit gets no PubAck: what came before it may or may not
                // be stored. Published again one by one, it is stored or found to be
                // a duplicate.
                (seq as usize >= count).then_some(Ok(()))
            }
        }
    }

    fn paused(&self) -> bool {
        self.paused_until
            .lock()
            .expect("pause lock")
            .is_some_and(|until| Instant::now() < until)
    }

    fn pause(&self) {
        *self.paused_until.lock().expect("pause lock") = Some(Instant::now() + PAUSE);
    }

    /// A batch got no reply at all. After a few in a row, the replies are not reaching us
    /// (most likely this connection may not subscribe to the reply subjects): pause batches.
    fn note_silence(&self) {
        if self.silent_timeouts.fetch_add(1, Ordering::Relaxed) + 1 >= SILENT_TIMEOUTS_TO_PAUSE {
            tracing::warn!(
                prefix = %self.prefix,
                "fast batches get no replies; publishing one by one for {PAUSE:?} (can this connection subscribe to {}.>?)",
                self.prefix
            );
            self.silent_timeouts.store(0, Ordering::Relaxed);
            self.pause();
        }
    }
}

/// The messages of a batch in flight that the server refused, with why.
struct BatchState<'a> {
    stream: &'a str,
    own: Vec<Option<PublishFailure>>,
}

impl<'a> BatchState<'a> {
    fn new(stream: &'a str, count: usize) -> Self {
        BatchState {
            stream,
            own: vec![None; count],
        }
    }

    /// The server refused message `seq` (1-based).
    fn refused(&mut self, seq: u64, error: &ApiError) {
        if let Some(slot) = self.own.get_mut((seq as usize).wrapping_sub(1)) {
            *slot = Some(failure(self.stream, error));
        }
    }

    /// The batch ended with the first `stored` messages stored: the others are refused (with
    /// their own error) or were never judged.
    fn ended(self, stored: usize) -> Vec<Option<Result<(), PublishFailure>>> {
        self.own
            .into_iter()
            .enumerate()
            .map(|(index, own)| match own {
                Some(failure) => Some(Err(failure)),
                None if index < stored => Some(Ok(())),
                None => None,
            })
            .collect()
    }

    /// The batch's outcome is unknown: every message without an answer of its own fails as
    /// transient, for `reason`.
    fn failed(self, reason: String) -> Vec<Option<Result<(), PublishFailure>>> {
        self.own
            .into_iter()
            .map(|own| {
                Some(Err(own.unwrap_or_else(|| PublishFailure {
                    kind: FailureKind::Transient,
                    reason: reason.clone(),
                })))
            })
            .collect()
    }
}

/// One answer per message of a batch (`None`: never judged, publish again), or [`Declined`].
pub type BatchOutcome = Result<Vec<Option<Result<(), PublishFailure>>>, Declined>;

/// The server did not take a batch; its messages are to be published one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declined;

/// Classifies the error the server gave one message of a batch.
fn failure(stream: &str, error: &ApiError) -> PublishFailure {
    PublishFailure {
        kind: if error.err_code == JS_MESSAGE_EXCEEDS_MAXIMUM {
            FailureKind::Publish
        } else {
            FailureKind::Transient
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
