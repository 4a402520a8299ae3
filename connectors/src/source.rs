//! The JetStream source of a pipeline: one durable pull consumer per pipeline, shared by every
//! worker that runs it (competing consumers), read in batches of `batch_size` that wait at
//! most `max_wait` to fill, and only while batches keep filling up.

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use tokio::time::Instant;
use weir_pipelines::PipelineResource;
use weir_pipelines::plan::{Deliver, ValidatedPipeline};

use crate::ConnectorError;
use crate::continuity::DeliveryNumbers;
use crate::delivery::Delivery;

/// Default messages per batch.
pub const DEFAULT_BATCH_SIZE: usize = 256;
/// Default longest wait for a batch to fill.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(5);
/// Default ack wait: how long the server waits for an ack before redelivering.
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
/// Default max un-acked messages of the consumer, across every worker.
pub const DEFAULT_MAX_ACK_PENDING: i64 = 20_000;

/// Everything needed to open a pipeline's consumer and read batches from it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSettings {
    /// Stream to consume.
    pub stream: String,
    /// Durable consumer name.
    pub durable: String,
    /// Subject filters; empty = all subjects of the stream.
    pub filter_subjects: Vec<String>,
    /// Where a new consumer starts.
    pub deliver: consumer::DeliverPolicy,
    /// Ack wait of the consumer.
    pub ack_wait: Duration,
    /// Max un-acked messages of the consumer.
    pub max_ack_pending: i64,
    /// Messages per batch.
    pub batch_size: usize,
    /// Longest wait for a batch to fill once its first message arrived.
    pub max_wait: Duration,
    /// The stream holds partition copies (see [`crate::partitions`]): each delivery is
    /// turned back into its source message.
    pub partitioned: bool,
    /// The consumer acks cumulatively (`AckPolicy::All`): one ack settles a delivery and
    /// every one before it. Only for a consumer with one reader that finishes its deliveries
    /// in stream order and never naks (a stateful pipeline's owner); see
    /// [`crate::delivery::ack_through`].
    pub cumulative_acks: bool,
}

impl SourceSettings {
    /// The default durable name of a pipeline: `weir_<tenant>_<pipeline>` (tenant `default`
    /// when the file names none).
    pub fn default_durable(pipeline: &PipelineResource) -> String {
        let tenant = pipeline.metadata.tenant.as_deref().unwrap_or("default");
        format!("weir_{tenant}_{}", pipeline.metadata.name).replace(['.', '*', '>', ' '], "_")
    }

    /// Settings from the pipeline's planned source, with the defaults above for what it omits.
    pub fn from_plan(plan: &ValidatedPipeline) -> Self {
        let pipeline = &plan.resource;
        let source = &plan.source;
        let deliver = match source.deliver {
            Deliver::All => consumer::DeliverPolicy::All,
            Deliver::New => consumer::DeliverPolicy::New,
            Deliver::LastPerSubject => consumer::DeliverPolicy::LastPerSubject,
            Deliver::Sequence(start_sequence) => {
                consumer::DeliverPolicy::ByStartSequence { start_sequence }
            }
            Deliver::Time(start_time) => consumer::DeliverPolicy::ByStartTime { start_time },
        };
        SourceSettings {
            stream: pipeline.spec.source.stream.clone(),
            durable: source
                .durable
                .clone()
                .unwrap_or_else(|| Self::default_durable(pipeline)),
            filter_subjects: pipeline.spec.source.subjects.clone(),
            deliver,
            ack_wait: source.ack_wait.unwrap_or(DEFAULT_ACK_WAIT),
            max_ack_pending: source.max_ack_pending.unwrap_or(DEFAULT_MAX_ACK_PENDING),
            batch_size: source.batch_size.unwrap_or(DEFAULT_BATCH_SIZE).max(1),
            max_wait: source.max_wait.unwrap_or(DEFAULT_MAX_WAIT),
            partitioned: false,
            cumulative_acks: false,
        }
    }

    /// The settings of partition `p`'s owner (see [`crate::partitions`]): these batching and
    /// ack settings, on the partition stream, filtered to the partition's subject.
    pub fn partition(&self, layout: &crate::partitions::PartitionLayout, p: u32) -> Self {
        SourceSettings {
            stream: layout.stream(),
            durable: layout.key(p),
            filter_subjects: vec![layout.subject(p)],
            deliver: consumer::DeliverPolicy::All,
            partitioned: true,
            ..self.clone()
        }
    }

    fn consumer_config(&self) -> consumer::pull::Config {
        let (filter_subject, filter_subjects) = match self.filter_subjects.as_slice() {
            [] => (String::new(), Vec::new()),
            [one] => (one.clone(), Vec::new()),
            many => (String::new(), many.to_vec()),
        };
        consumer::pull::Config {
            durable_name: Some(self.durable.clone()),
            description: Some("Weir pipeline source".into()),
            deliver_policy: self.deliver,
            ack_policy: if self.cumulative_acks {
                consumer::AckPolicy::All
            } else {
                consumer::AckPolicy::Explicit
            },
            ack_wait: self.ack_wait,
            // Weir counts deliveries itself (errors.retry.max_attempts) and dead-letters, so
            // the server must never silently stop redelivering.
            max_deliver: -1,
            filter_subject,
            filter_subjects,
            max_ack_pending: self.max_ack_pending,
            ..Default::default()
        }
    }
}

/// A durable pull consumer read batch by batch. Each worker loop owns one; they all share the
/// same durable, so the server spreads messages across them.
pub struct PullSource {
    settings: SourceSettings,
    consumer: consumer::PullConsumer,
    messages: Option<consumer::pull::Stream>,
    /// Whether the last batch filled up: while batches do, the next one may wait up to
    /// `max_wait` to fill (the stage is busy, batching pays); once one did not, the next takes
    /// what has arrived without waiting (the stage keeps up, waiting only adds latency).
    last_full: bool,
    /// The delivery numbers seen so far, checked for gaps when acks are cumulative.
    numbers: DeliveryNumbers,
}

impl PullSource {
    /// Opens (creating when absent) the durable consumer of `settings`. A consumer that acks
    /// another way than `settings` asks (a pipeline that was exclusive or stateful before and is
    /// shared now, or the reverse) is re-created after its ack floor, as
    /// [`PullSource::open_from`] does: a cumulative ack must never settle what another reader
    /// of a shared consumer still holds, and the server does not change a consumer's ack
    /// policy in place.
    pub async fn open(
        js: &jetstream::Context,
        settings: SourceSettings,
    ) -> Result<Self, ConnectorError> {
        let source = Self::attach(js, settings).await?;
        let (has, wants) = (
            source.consumer.cached_info().config.ack_policy,
            source.settings.consumer_config().ack_policy,
        );
        if has == wants {
            return Ok(source);
        }
        tracing::info!(
            consumer = %source.settings.durable,
            ?has,
            ?wants,
            "the consumer acks another way than the pipeline runs: re-creating it after its ack floor"
        );
        Self::open_from(js, source.settings, None).await
    }

    /// Opens (creating when absent) the durable consumer of `settings` as it is.
    async fn attach(
        js: &jetstream::Context,
        settings: SourceSettings,
    ) -> Result<Self, ConnectorError> {
        let consumer = open_consumer(js, &settings).await?;
        Ok(PullSource {
            settings,
            consumer,
            messages: None,
            last_full: true,
            numbers: DeliveryNumbers::default(),
        })
    }

    /// Opens the durable consumer of `settings` afresh at a position the caller owns (a
    /// stateful pipeline's checkpoint): the consumer is deleted and created again, delivering
    /// from the stream sequence after `position`. With no position, it starts after the old
    /// consumer's ack floor (or by `settings.deliver` when there was none). Messages the old
    /// consumer had delivered but not acked therefore come again first, in stream order,
    /// instead of after `ack_wait` behind newer ones.
    pub async fn open_from(
        js: &jetstream::Context,
        mut settings: SourceSettings,
        position: Option<u64>,
    ) -> Result<Self, ConnectorError> {
        let fail = |reason: String| ConnectorError::Consumer {
            stream: settings.stream.clone(),
            consumer: settings.durable.clone(),
            reason,
        };
        let stream = js
            .get_stream(&settings.stream)
            .await
            .map_err(|err| fail(err.to_string()))?;
        // Only a consumer the server says is not there is absent: one that could not be read
        // for now (a timeout while the server restarts) would be attached to as it is, at its
        // own position instead of the caller's.
        let existing = match stream.consumer_info(&settings.durable).await {
            Ok(info) => Some(info),
            Err(err) if err.kind() == jetstream::context::ConsumerInfoErrorKind::NotFound => None,
            Err(err) => return Err(fail(format!("reading the consumer: {err}"))),
        };
        let floor = existing
            .as_ref()
            .map(|info| info.ack_floor.stream_sequence)
            .filter(|s| *s > 0);
        if let Some(after) = position.or(floor) {
            settings.deliver = consumer::DeliverPolicy::ByStartSequence {
                start_sequence: after + 1,
            };
        }
        if existing.is_some() {
            stream
                .delete_consumer(&settings.durable)
                .await
                .map_err(|err| fail(format!("re-creating the consumer: {err}")))?;
        }
        Self::attach(js, settings).await
    }

    /// The settings this source runs with.
    pub fn settings(&self) -> &SourceSettings {
        &self.settings
    }

    /// A handle on the consumer, e.g. to poll its info for lag.
    pub fn consumer(&self) -> consumer::PullConsumer {
        self.consumer.clone()
    }

    /// The next batch: waits up to `idle` for a first message (an empty batch when none came),
    /// takes what has already arrived, then, if the last batch was full, waits up to
    /// `max_wait` for the batch to fill to `batch_size`. Errors are transient: the
    /// pull subscription is dropped and re-opened on the next call. With cumulative acks, a
    /// batch after deliveries that never arrived is an error (see [`crate::continuity`]):
    /// the reader must start over after its last ack.
    pub async fn next_batch(&mut self, idle: Duration) -> Result<Vec<Delivery>, ConnectorError> {
        let batch_size = self.settings.batch_size;
        if self.messages.is_none() {
            let stream = self
                .consumer
                .stream()
                .max_messages_per_batch(batch_size.saturating_mul(2))
                .expires(Duration::from_secs(5))
                .heartbeat(Duration::from_secs(2))
                .messages()
                .await
                .map_err(|err| self.fetch_error(err.to_string()))?;
            self.messages = Some(stream);
        }
        let messages = self.messages.as_mut().expect("opened above");
        let mut batch = Vec::with_capacity(batch_size);
        let first = match tokio::time::timeout(idle, messages.next()).await {
            Err(_) => return Ok(batch),
            Ok(item) => item,
        };
        match first {
            Some(Ok(message)) => push(&self.settings, &mut batch, message),
            Some(Err(err)) => return Err(self.stream_failed(err)),
            None => {
                self.messages = None;
                return Err(self.fetch_error("pull subscription ended".into()));
            }
        }
        let fill = if self.last_full {
            self.settings.max_wait
        } else {
            Duration::ZERO
        };
        let deadline = Instant::now() + fill;
        while batch.len() < batch_size {
            // Take what is already buffered without waiting; wait only when nothing is.
            let item = match futures::FutureExt::now_or_never(messages.next()) {
                Some(item) => item,
                None => match tokio::time::timeout_at(deadline, messages.next()).await {
                    Err(_) => break,
                    Ok(item) => item,
                },
            };
            match item {
                Some(Ok(message)) => push(&self.settings, &mut batch, message),
                Some(Err(err)) => {
                    tracing::warn!(consumer = %self.settings.durable, error = %err, "pull error; keeping the partial batch");
                    self.drop_stream_if_fatal(&err);
                    break;
                }
                None => {
                    self.messages = None;
                    break;
                }
            }
        }
        self.last_full = batch.len() >= batch_size;
        if self.settings.cumulative_acks {
            // The one reader's next cumulative ack would settle deliveries that never came.
            self.numbers
                .take(batch.iter().map(|d| d.consumer_seq))
                .map_err(|gap| self.fetch_error(gap.to_string()))?;
        }
        Ok(batch)
    }

    fn fetch_error(&self, reason: String) -> ConnectorError {
        ConnectorError::Fetch {
            consumer: self.settings.durable.clone(),
            reason,
        }
    }

    fn drop_stream_if_fatal(&mut self, err: &consumer::pull::MessagesError) {
        use consumer::pull::MessagesErrorKind as K;
        if !matches!(err.kind(), K::MissingHeartbeat) {
            self.messages = None;
        }
    }

    fn stream_failed(&mut self, err: consumer::pull::MessagesError) -> ConnectorError {
        self.drop_stream_if_fatal(&err);
        self.fetch_error(err.to_string())
    }

    /// Hands back what the pull subscription buffered but `next_batch` did not return yet:
    /// each such message is naked without delay, so that another loop (or the next version
    /// of the pipeline) gets it at once instead of after `ack_wait`. Ends the subscription
    /// (the next `next_batch` opens a new one). Returns how many messages were handed back.
    pub async fn release_buffered(&mut self) -> usize {
        let Some(mut messages) = self.messages.take() else {
            return 0;
        };
        let mut released = 0;
        while let Some(Some(Ok(message))) = futures::FutureExt::now_or_never(messages.next()) {
            if message
                .ack_with(jetstream::AckKind::Nak(None))
                .await
                .is_ok()
            {
                released += 1;
            }
        }
        released
    }

    /// Re-creates the consumer when it was deleted under us (e.g. by an operator).
    pub async fn reopen(&mut self, js: &jetstream::Context) -> Result<(), ConnectorError> {
        self.messages = None;
        self.consumer = open_consumer(js, &self.settings).await?;
        Ok(())
    }
}

async fn open_consumer(
    js: &jetstream::Context,
    settings: &SourceSettings,
) -> Result<consumer::PullConsumer, ConnectorError> {
    let fail = |reason: String| ConnectorError::Consumer {
        stream: settings.stream.clone(),
        consumer: settings.durable.clone(),
        reason,
    };
    let stream = js.get_stream(&settings.stream).await.map_err(|err| {
        fail(format!(
            "{err} (declare the stream with a `kind: Stream` resource or create it first)"
        ))
    })?;
    stream
        .get_or_create_consumer(&settings.durable, settings.consumer_config())
        .await
        .map_err(|err| fail(err.to_string()))
}

/// Adds a fetched message to the batch as a delivery; one without JetStream metadata cannot
/// be acked and is skipped.
fn push(settings: &SourceSettings, batch: &mut Vec<Delivery>, message: jetstream::Message) {
    let subject = message.subject.clone();
    match Delivery::from_message(message) {
        Some(mut delivery) => {
            if settings.partitioned {
                crate::partitions::unwrap(&mut delivery.input);
            }
            batch.push(delivery)
        }
        None => {
            tracing::error!(consumer = %settings.durable, %subject, "message without JetStream metadata; cannot ack it, skipping")
        }
    }
}
