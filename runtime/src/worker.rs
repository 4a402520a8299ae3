//! The worker: runs any number of pipelines, each with `parallelism` batch loops on its
//! durable consumer, polls consumer info for lag, and stops gracefully — no new fetches,
//! batches in flight finished and acked — within a bounded time.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use weir_connectors::dead_letter::{DEFAULT_DLQ_STREAM, DEFAULT_DLQ_SUBJECTS};
use weir_connectors::{DeadLetterPublisher, JetStreamSink, PullSource, ensure_dlq_stream};

use crate::batch::{BatchContext, run_batch};
use crate::{BatchProcessor, Metrics, PipelineConfig, RuntimeError};

/// How long a fetch waits for a first message before the loop checks for shutdown.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// How often consumer info is polled for the lag gauges.
const LAG_POLL: Duration = Duration::from_secs(3);
/// Longest backoff between failed fetches.
const MAX_FETCH_BACKOFF: Duration = Duration::from_secs(5);

/// Runs pipelines on one NATS connection.
pub struct Worker {
    client: async_nats::Client,
    js: jetstream::Context,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
    pipelines: Vec<String>,
}

impl Worker {
    /// A worker on `client`, reporting into `metrics`.
    pub fn new(client: async_nats::Client, metrics: Arc<Metrics>) -> Self {
        let js = jetstream::new(client.clone());
        Worker {
            client,
            js,
            metrics,
            stop: CancellationToken::new(),
            tasks: JoinSet::new(),
            pipelines: Vec::new(),
        }
    }

    /// The JetStream context of the worker's connection.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// The worker's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// A token that stops the worker when cancelled.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Names of the pipelines started so far.
    pub fn pipelines(&self) -> &[String] {
        &self.pipelines
    }

    /// Starts `config.parallelism` batch loops of a pipeline. Creates the DLQ stream when
    /// absent and the durable consumer when absent; fails when the source stream is missing.
    pub async fn start_pipeline(
        &mut self,
        config: PipelineConfig,
        processor: Arc<dyn BatchProcessor>,
    ) -> Result<(), RuntimeError> {
        let name = config.name.clone();
        let connector = |source| RuntimeError::Connector {
            pipeline: name.clone(),
            source,
        };
        let default_subjects = if config.dlq.stream == DEFAULT_DLQ_STREAM {
            vec![DEFAULT_DLQ_SUBJECTS.to_string()]
        } else {
            Vec::new()
        };
        ensure_dlq_stream(
            &self.js,
            &config.dlq.stream,
            &config.dlq.subject,
            &default_subjects,
        )
        .await
        .map_err(connector)?;
        let mut sources = Vec::with_capacity(config.parallelism);
        for _ in 0..config.parallelism {
            sources.push(
                PullSource::open(&self.js, config.source.clone())
                    .await
                    .map_err(connector)?,
            );
        }
        let consumer = sources[0].consumer();
        let ctx = Arc::new(BatchContext {
            sink: JetStreamSink::new(self.js.clone(), config.max_in_flight),
            dlq: DeadLetterPublisher::new(
                self.js.clone(),
                config.dlq.clone(),
                self.client.server_info().max_payload,
            ),
            config: Arc::new(config),
            processor,
            metrics: self.metrics.clone(),
        });
        tracing::info!(
            pipeline = %name,
            stream = %ctx.config.source.stream,
            consumer = %ctx.config.source.durable,
            parallelism = ctx.config.parallelism,
            batch_size = ctx.config.source.batch_size,
            dlq = %ctx.config.dlq.subject,
            "pipeline started"
        );
        for (loop_id, source) in sources.into_iter().enumerate() {
            let ctx = ctx.clone();
            let js = self.js.clone();
            let stop = self.stop.clone();
            self.tasks.spawn(batch_loop(ctx, js, source, stop, loop_id));
        }
        self.tasks.spawn(lag_loop(
            name.clone(),
            consumer,
            self.metrics.clone(),
            self.stop.clone(),
        ));
        self.pipelines.push(name);
        Ok(())
    }

    /// Runs the resources of a pipeline file: `Stream`s are created or updated (idempotent),
    /// then every `Pipeline` is compiled and started. Returns the started pipeline names.
    pub async fn run_resources(
        &mut self,
        resources: &[weir_pipelines::Resource],
    ) -> Result<Vec<String>, RuntimeError> {
        for resource in resources {
            if let weir_pipelines::Resource::Stream(stream) = resource {
                weir_connectors::ensure_stream(&self.js, stream)
                    .await
                    .map_err(|source| RuntimeError::Connector {
                        pipeline: format!("(stream {})", stream.metadata.name),
                        source,
                    })?;
                tracing::info!(stream = %stream.metadata.name, "stream created or updated");
            }
        }
        let mut started = Vec::new();
        for resource in resources {
            if let weir_pipelines::Resource::Pipeline(pipeline) = resource {
                let config = PipelineConfig::from_spec(pipeline)?;
                let compiled = weir_engine::CompiledPipeline::compile(pipeline)?;
                self.start_pipeline(config, Arc::new(compiled)).await?;
                started.push(pipeline.metadata.name.clone());
            }
        }
        Ok(started)
    }

    /// Waits until the stop token is cancelled (or every loop ended), then stops: loops
    /// finish the batch in hand and exit; after `grace` the rest is aborted (their messages
    /// are redelivered by the server after `ack_wait`). Returns whether all loops ended on
    /// their own.
    pub async fn run_until_stopped(mut self, grace: Duration) -> bool {
        tokio::select! {
            _ = self.stop.cancelled() => {}
            _ = async { while self.tasks.join_next().await.is_some() {} } => {}
        }
        self.stop.cancel();
        let drained = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        if !drained {
            tracing::warn!(?grace, "batch loops did not finish in time; aborting them");
            self.tasks.shutdown().await;
        }
        if let Err(err) = self.client.flush().await {
            tracing::warn!(error = %err, "flushing acks at shutdown failed");
        }
        drained
    }
}

async fn batch_loop(
    ctx: Arc<BatchContext>,
    js: jetstream::Context,
    mut source: PullSource,
    stop: CancellationToken,
    loop_id: usize,
) {
    let pipeline = ctx.config.name.clone();
    let mut failures = 0u32;
    while !stop.is_cancelled() {
        match source.next_batch(IDLE_POLL).await {
            Ok(batch) if batch.is_empty() => {}
            Ok(batch) => {
                failures = 0;
                let outcome = run_batch(&ctx, batch).await;
                tracing::trace!(%pipeline, loop_id, ?outcome, "batch settled");
            }
            Err(err) => {
                failures += 1;
                let delay =
                    Duration::from_millis(100 * 2u64.pow(failures.min(6))).min(MAX_FETCH_BACKOFF);
                tracing::warn!(%pipeline, loop_id, error = %err, ?delay, "fetch failed; retrying");
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
                if failures >= 3
                    && let Err(err) = source.reopen(&js).await
                {
                    tracing::warn!(%pipeline, loop_id, error = %err, "re-opening the consumer failed");
                }
            }
        }
    }
    tracing::debug!(%pipeline, loop_id, "batch loop stopped");
}

async fn lag_loop(
    pipeline: String,
    consumer: jetstream::consumer::PullConsumer,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let labels = Metrics::pipeline(&pipeline);
    loop {
        match consumer.get_info().await {
            Ok(info) => {
                metrics
                    .consumer_pending
                    .get_or_create(&labels)
                    .set(info.num_pending as i64);
                metrics
                    .consumer_ack_pending
                    .get_or_create(&labels)
                    .set(info.num_ack_pending as i64);
            }
            Err(err) => tracing::debug!(%pipeline, error = %err, "consumer info failed"),
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(LAG_POLL) => {}
        }
    }
}
