//! The worker: runs any number of pipelines, each with `parallelism` batch loops on its
//! durable consumer, polls consumer info for lag, and stops gracefully — no new fetches,
//! batches in flight finished and acked — within a bounded time. Every started pipeline has
//! its own cancellation token (a child of the worker's) and its own task set, so one
//! pipeline can be stopped (`stop_pipeline`) while the others keep running.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use weir_connectors::dead_letter::{DEFAULT_DLQ_STREAM, DEFAULT_DLQ_SUBJECTS};
use weir_connectors::fast_batch::FastBatches;
use weir_connectors::{
    DeadLetterPublisher, JetStreamSink, MsgIdPolicy, PullSource, ensure_dlq_stream,
};

use crate::batch::{BatchReport, PipelineRun, run_batch};
use crate::counters::PipelineTotals;
use crate::exclusive::exclusive_loop;
use crate::ratelimit::IngestLimiter;
use crate::stateful::partitioned::partitioned_loop;
use crate::stateful::router::Router;
use crate::stateful::{StateStore, stateful_loop};
use crate::telemetry::{Telemetry, poll_lag};
use crate::{BatchProcessor, Metrics, PipelineConfig, RuntimeError};
use weir_connectors::partitions::PartitionLayout;

/// How long a fetch waits for a first message before the loop checks for shutdown.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// Longest backoff between failed fetches.
const MAX_FETCH_BACKOFF: Duration = Duration::from_secs(5);

/// Optional settings of `Worker::start_pipeline_with`.
#[derive(Default, Clone)]
pub struct StartOptions {
    /// The name the worker knows the pipeline by (for `stop_pipeline`); the pipeline's name
    /// when `None`. A fleet worker uses `<tenant>.<pipeline>`.
    pub key: Option<String>,
    /// Paces fetching (a tenant's ingest quota); shared between pipelines when cloned.
    pub ingest_limiter: Option<Arc<IngestLimiter>>,
    /// Totals to count into (e.g. those of the previous version, so counters carry over an
    /// upgrade); fresh ones when `None`.
    pub totals: Option<Arc<PipelineTotals>>,
}

/// One started pipeline: its token and its tasks.
struct RunningPipeline {
    stop: CancellationToken,
    tasks: JoinSet<()>,
    totals: Arc<PipelineTotals>,
}

/// Runs pipelines on one NATS connection.
pub struct Worker {
    client: async_nats::Client,
    js: jetstream::Context,
    /// The fast-batch publisher every pipeline's sink shares.
    batches: Arc<FastBatches>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    running: BTreeMap<String, RunningPipeline>,
    /// This worker's name on the leases of its stateful and exclusive pipelines.
    owner: String,
}

impl Worker {
    /// A worker on `client`, reporting into `metrics`.
    pub fn new(client: async_nats::Client, metrics: Arc<Metrics>) -> Self {
        let js = jetstream::new(client.clone());
        Worker {
            batches: Arc::new(FastBatches::new(js.clone())),
            client,
            js,
            metrics,
            stop: CancellationToken::new(),
            running: BTreeMap::new(),
            owner: crate::stateful::owner_id(),
        }
    }

    /// The JetStream context of the worker's connection.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// The worker's NATS connection.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The worker's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// A token that stops the worker when cancelled.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Keys of the pipelines running now.
    pub fn pipelines(&self) -> Vec<String> {
        self.running.keys().cloned().collect()
    }

    /// Whether a pipeline runs under `key`.
    pub fn is_running(&self, key: &str) -> bool {
        self.running.contains_key(key)
    }

    /// The totals of the pipeline running under `key`.
    pub fn totals(&self, key: &str) -> Option<Arc<PipelineTotals>> {
        self.running.get(key).map(|p| p.totals.clone())
    }

    /// Starts `config.parallelism` batch loops of a pipeline. Creates the DLQ stream when
    /// absent and the durable consumer when absent; fails when the source stream is missing.
    pub async fn start_pipeline(
        &mut self,
        config: PipelineConfig,
        processor: Arc<dyn BatchProcessor>,
    ) -> Result<(), RuntimeError> {
        self.start_pipeline_with(config, processor, StartOptions::default())
            .await
    }

    /// `start_pipeline` with a key, an ingest limiter and totals to count into. Fails when a
    /// pipeline already runs under the same key.
    pub async fn start_pipeline_with(
        &mut self,
        config: PipelineConfig,
        processor: Arc<dyn BatchProcessor>,
        options: StartOptions,
    ) -> Result<(), RuntimeError> {
        let name = config.name.clone();
        let key = options.key.clone().unwrap_or_else(|| name.clone());
        if self.running.contains_key(&key) {
            return Err(RuntimeError::Config {
                pipeline: name,
                reason: format!("a pipeline already runs under {key:?} in this worker"),
            });
        }
        let connector = |error| RuntimeError::Connector {
            pipeline: name.clone(),
            error,
        };
        let default_subjects = if config.dlq.stream == DEFAULT_DLQ_STREAM {
            vec![DEFAULT_DLQ_SUBJECTS.to_string()]
        } else {
            Vec::new()
        };
        let mut config = config;
        config.dlq.stream = ensure_dlq_stream(
            &self.js,
            &config.dlq.stream,
            &config.dlq.subject,
            &default_subjects,
            config.dlq.named,
        )
        .await
        .map_err(connector)?;
        let totals = options.totals.clone().unwrap_or_default();
        if processor.is_stateful() || config.exclusive {
            return self
                .start_owned(key, config, processor, options, totals)
                .await;
        }
        let sources = self.open_sources(&config).await.map_err(connector)?;
        let consumer = sources[0].consumer();
        let ctx = self.pipeline_run(config, processor, totals.clone());
        tracing::info!(
            pipeline = %name,
            key = %key,
            stream = %ctx.config.source.stream,
            consumer = %ctx.config.source.durable,
            parallelism = ctx.config.parallelism,
            batch_size = ctx.config.source.batch_size,
            dlq = %ctx.config.dlq.subject,
            "pipeline started"
        );
        let stop = self.stop.child_token();
        let mut tasks = JoinSet::new();
        self.spawn_batch_loops(&mut tasks, &ctx, sources, &stop, &options);
        tasks.spawn(poll_lag(consumer, ctx.telemetry.clone(), stop.clone()));
        self.running.insert(
            key,
            RunningPipeline {
                stop,
                tasks,
                totals,
            },
        );
        Ok(())
    }

    /// `config.parallelism` sources on the pipeline's durable consumer.
    async fn open_sources(
        &self,
        config: &PipelineConfig,
    ) -> Result<Vec<PullSource>, weir_connectors::ConnectorError> {
        let mut sources = Vec::with_capacity(config.parallelism);
        for _ in 0..config.parallelism {
            sources.push(PullSource::open(&self.js, config.source.clone()).await?);
        }
        Ok(sources)
    }

    /// One stateless batch loop of `run` per source.
    fn spawn_batch_loops(
        &self,
        tasks: &mut JoinSet<()>,
        run: &Arc<PipelineRun>,
        sources: Vec<PullSource>,
        stop: &CancellationToken,
        options: &StartOptions,
    ) {
        for (loop_id, source) in sources.into_iter().enumerate() {
            tasks.spawn(batch_loop(
                run.clone(),
                self.js.clone(),
                source,
                stop.clone(),
                options.ingest_limiter.clone(),
                loop_id,
            ));
        }
    }

    /// What the loops of one pipeline share: its sink, ids, DLQ publisher and telemetry.
    fn pipeline_run(
        &self,
        config: PipelineConfig,
        processor: Arc<dyn BatchProcessor>,
        totals: Arc<PipelineTotals>,
    ) -> Arc<PipelineRun> {
        Arc::new(PipelineRun {
            // One window for the pipeline: `max_in_flight` PubAcks per batch loop.
            sink: JetStreamSink::sharing(
                self.js.clone(),
                config.max_in_flight.saturating_mul(config.parallelism),
                self.batches.clone(),
            ),
            ids: MsgIdPolicy::PerInput {
                pipeline: config.name.clone(),
            },
            dlq: DeadLetterPublisher::new(
                self.js.clone(),
                &config.name,
                config.dlq.clone(),
                self.client.server_info().max_payload,
            ),
            telemetry: Telemetry::new(&config.name, self.metrics.clone(), totals),
            config: Arc::new(config),
            processor,
        })
    }

    /// The lease and checkpoint buckets for a pipeline with one owner at a time (stateful or
    /// exclusive), once its source stream is known to exist.
    async fn owner_store(&self, config: &PipelineConfig) -> Result<StateStore, RuntimeError> {
        if let Err(err) = self.js.get_stream(&config.source.stream).await {
            return Err(RuntimeError::Connector {
                pipeline: config.name.clone(),
                error: weir_connectors::ConnectorError::Consumer {
                    stream: config.source.stream.clone(),
                    consumer: config.source.durable.clone(),
                    reason: format!(
                        "{err} (declare the stream with a `kind: Stream` resource or create it first)"
                    ),
                },
            });
        }
        StateStore::open(&self.js, &self.owner)
            .await
            .map_err(|reason| RuntimeError::Config {
                pipeline: config.name.clone(),
                reason: format!("cannot open the state buckets: {reason}"),
            })
    }

    /// Starts a pipeline with one owner at a time: one loop that runs while this worker holds
    /// the pipeline's lease — with checkpointed state for a stateful pipeline (`window`,
    /// `dedup`, see [`crate::stateful`]), without for an exclusive one (`delivery: exclusive`,
    /// see [`crate::exclusive`]).
    async fn start_owned(
        &mut self,
        key: String,
        mut config: PipelineConfig,
        processor: Arc<dyn BatchProcessor>,
        options: StartOptions,
        totals: Arc<PipelineTotals>,
    ) -> Result<(), RuntimeError> {
        let store = self.owner_store(&config).await?;
        let stateful = processor.is_stateful();
        if stateful && config.state.partitions > 1 {
            return self
                .start_partitioned(key, config, processor, options, totals, store)
                .await;
        }
        // One owner, one loop: the state (or the cumulative acks) in one place.
        config.parallelism = 1;
        let ctx = self.pipeline_run(config, processor, totals.clone());
        tracing::info!(
            pipeline = %ctx.config.name,
            key = %key,
            stream = %ctx.config.source.stream,
            consumer = %ctx.config.source.durable,
            stateful,
            "pipeline with one owner at a time started (waiting for its lease)"
        );
        let stop = self.stop.child_token();
        let mut tasks = JoinSet::new();
        let (js, limiter) = (self.js.clone(), options.ingest_limiter.clone());
        if stateful {
            tasks.spawn(stateful_loop(ctx, js, store, stop.clone(), limiter));
        } else {
            tasks.spawn(exclusive_loop(ctx, js, store, stop.clone(), limiter));
        }
        self.running.insert(
            key,
            RunningPipeline {
                stop,
                tasks,
                totals,
            },
        );
        Ok(())
    }

    /// Starts a partitioned stateful pipeline: `parallelism` loops of its routing stage on the
    /// pipeline's consumer, which copy each input to its partition, and the partitions this
    /// worker owns (see [`crate::stateful::partitioned`]).
    async fn start_partitioned(
        &mut self,
        key: String,
        config: PipelineConfig,
        processor: Arc<dyn BatchProcessor>,
        options: StartOptions,
        totals: Arc<PipelineTotals>,
        store: StateStore,
    ) -> Result<(), RuntimeError> {
        let name = config.name.clone();
        let refused = |reason: String| RuntimeError::Config {
            pipeline: name.clone(),
            reason,
        };
        let layout = PartitionLayout {
            durable: config.source.durable.clone(),
            partitions: config.state.partitions,
        };
        let keys = processor
            .key_extractor(&config.state.partition_key)
            .map_err(|e| refused(format!("the partition key does not compile: {e}")))?;
        layout
            .ensure_stream(&self.js)
            .await
            .map_err(|e| refused(format!("cannot create the partition stream: {e}")))?;
        let sources =
            self.open_sources(&config)
                .await
                .map_err(|error| RuntimeError::Connector {
                    pipeline: name.clone(),
                    error,
                })?;
        let consumer = sources[0].consumer();
        let base = self.pipeline_run(config.clone(), processor, totals.clone());
        // The routing stage counts apart (its own metrics label, totals outside the
        // heartbeat): the pipeline's counters are its partitions'.
        let router = Router {
            keys,
            layout: layout.clone(),
        };
        let mut routing = self.pipeline_run(config, Arc::new(router), Arc::default());
        Arc::get_mut(&mut routing)
            .expect("not shared yet")
            .telemetry = Telemetry::new(
            &format!("{name}.partitioner"),
            self.metrics.clone(),
            Arc::default(),
        );
        tracing::info!(
            pipeline = %name,
            key = %key,
            partitions = layout.partitions,
            partition_stream = %layout.stream(),
            routing_loops = sources.len(),
            "partitioned stateful pipeline started"
        );
        let stop = self.stop.child_token();
        let mut tasks = JoinSet::new();
        self.spawn_batch_loops(&mut tasks, &routing, sources, &stop, &options);
        tasks.spawn(poll_lag(consumer, base.telemetry.clone(), stop.clone()));
        tasks.spawn(partitioned_loop(
            base,
            layout,
            self.js.clone(),
            store,
            stop.clone(),
        ));
        self.running.insert(
            key,
            RunningPipeline {
                stop,
                tasks,
                totals,
            },
        );
        Ok(())
    }

    /// Stops the pipeline running under `key` gracefully: its loops stop fetching, finish
    /// the batch in hand (outputs stored, inputs acked), hand back what they had buffered,
    /// and return; after `grace` whatever is left is aborted (the server redelivers its
    /// messages after `ack_wait`). Other pipelines keep running. Returns whether it ended on
    /// its own in time (`false` also when nothing ran under `key`).
    pub async fn stop_pipeline(&mut self, key: &str, grace: Duration) -> bool {
        let Some(pipeline) = self.running.remove(key) else {
            return false;
        };
        let drained = stop_running(key.to_string(), pipeline, grace).await;
        flush(&self.client).await;
        tracing::info!(pipeline = key, drained, "pipeline stopped");
        drained
    }

    /// Stops every pipeline gracefully (see `stop_pipeline`), all at once, within `grace`.
    /// Returns whether all ended on their own.
    pub async fn stop_all(&mut self, grace: Duration) -> bool {
        self.stop.cancel();
        let running = std::mem::take(&mut self.running);
        let results = futures::future::join_all(
            running
                .into_iter()
                .map(|(key, pipeline)| stop_running(key, pipeline, grace)),
        )
        .await;
        flush(&self.client).await;
        results.into_iter().all(|drained| drained)
    }

    /// Runs the resources of a pipeline file: `Stream`s are created or updated (idempotent),
    /// then every `Pipeline` is compiled and started. Returns the started pipeline names; a
    /// pipeline that cannot start is logged and skipped (an error only when none started).
    pub async fn run_resources(
        &mut self,
        resources: &[weir_pipelines::Resource],
    ) -> Result<Vec<String>, RuntimeError> {
        for resource in resources {
            if let weir_pipelines::Resource::Stream(stream) = resource {
                weir_connectors::ensure_stream(&self.js, stream)
                    .await
                    .map_err(|error| RuntimeError::Connector {
                        pipeline: format!("(stream {})", stream.metadata.name),
                        error,
                    })?;
                tracing::info!(stream = %stream.metadata.name, "stream created or updated");
            }
        }
        let mut started = Vec::new();
        let mut first_failure = None;
        for resource in resources {
            if let weir_pipelines::Resource::Pipeline(pipeline) = resource {
                // One pipeline that cannot start (its DLQ, its source) never keeps the
                // others from running: it is reported, and the rest start.
                let result = async {
                    let plan = weir_engine::plan(pipeline)?;
                    let config = PipelineConfig::from_plan(&plan);
                    let compiled = weir_engine::CompiledPipeline::from_plan(&plan)?;
                    self.start_pipeline(config, Arc::new(compiled)).await
                }
                .await;
                match result {
                    Ok(()) => started.push(pipeline.metadata.name.clone()),
                    Err(err) => {
                        tracing::error!(pipeline = %pipeline.metadata.name, "not started: {err}");
                        first_failure.get_or_insert(err);
                    }
                }
            }
        }
        match first_failure {
            Some(err) if started.is_empty() => Err(err),
            _ => Ok(started),
        }
    }

    /// Waits until the stop token is cancelled (or every loop ended), then stops: loops
    /// finish the batch in hand and exit; after `grace` the rest is aborted (their messages
    /// are redelivered by the server after `ack_wait`). Returns whether all loops ended on
    /// their own.
    pub async fn run_until_stopped(mut self, grace: Duration) -> bool {
        let all_ended = futures::future::join_all(
            self.running
                .values_mut()
                .map(|p| async move { while p.tasks.join_next().await.is_some() {} }),
        );
        tokio::select! {
            _ = self.stop.cancelled() => {}
            _ = all_ended => {}
        }
        self.stop_all(grace).await
    }
}

/// Longest wait for the acks of a stopped pipeline to be flushed (the server may be away).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Flushes the acks sent so far; gives up after `FLUSH_TIMEOUT` (unflushed acks are
/// redelivered by the server after `ack_wait`, and outputs are deduplicated by id).
async fn flush(client: &async_nats::Client) {
    match tokio::time::timeout(FLUSH_TIMEOUT, client.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::warn!(error = %err, "flushing acks failed"),
        Err(_) => tracing::warn!("flushing acks timed out: is the NATS server away?"),
    }
}

/// Cancels one pipeline and waits up to `grace` for its tasks; aborts the rest.
async fn stop_running(key: String, mut pipeline: RunningPipeline, grace: Duration) -> bool {
    pipeline.stop.cancel();
    let drained = tokio::time::timeout(grace, async {
        while pipeline.tasks.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !drained {
        tracing::warn!(
            pipeline = key,
            ?grace,
            "batch loops did not finish in time; aborting them"
        );
        pipeline.tasks.shutdown().await;
    }
    drained
}

/// Batches one loop has fetched but not settled yet, at most. The loop fetches and processes
/// the next batch while the outputs of the last ones are still being stored (their PubAcks
/// bound by the sink's window), so neither the server nor the engine waits on the other.
const BATCHES_IN_FLIGHT: usize = 4;

async fn batch_loop(
    ctx: Arc<PipelineRun>,
    js: jetstream::Context,
    mut source: PullSource,
    stop: CancellationToken,
    limiter: Option<Arc<IngestLimiter>>,
    loop_id: usize,
) {
    let pipeline = ctx.config.name.clone();
    let mut failures = 0u32;
    let mut settling = FuturesUnordered::new();
    let settled = |outcome: BatchReport| {
        tracing::trace!(%pipeline, loop_id, ?outcome, "batch settled");
    };
    while !stop.is_cancelled() {
        if settling.len() >= BATCHES_IN_FLIGHT {
            if let Some(outcome) = settling.next().await {
                settled(outcome);
            }
            continue;
        }
        if let Some(limiter) = &limiter {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = limiter.ready() => {}
                Some(outcome) = settling.next(), if !settling.is_empty() => {
                    settled(outcome);
                    continue;
                }
            }
        }
        // Settle finished batches while the fetch runs. The fetch itself is never dropped: a
        // batch half-read when dropped would only come back after `ack_wait`.
        let fetched = {
            let mut fetch = std::pin::pin!(source.next_batch(IDLE_POLL));
            loop {
                tokio::select! {
                    fetched = &mut fetch => break fetched,
                    Some(outcome) = settling.next(), if !settling.is_empty() => settled(outcome),
                }
            }
        };
        match fetched {
            Ok(batch) if batch.is_empty() => {}
            Ok(batch) => {
                failures = 0;
                if let Some(limiter) = &limiter {
                    limiter.take(batch.len());
                }
                let ctx = ctx.clone();
                settling.push(async move { run_batch(&ctx, batch).await });
            }
            Err(err) => {
                failures += 1;
                let delay =
                    Duration::from_millis(100 * 2u64.pow(failures.min(6))).min(MAX_FETCH_BACKOFF);
                ctx.telemetry.fetch_failed(loop_id, &err, delay);
                let sleep = tokio::time::sleep(delay);
                tokio::pin!(sleep);
                let stopped = loop {
                    tokio::select! {
                        _ = stop.cancelled() => break true,
                        _ = &mut sleep => break false,
                        Some(outcome) = settling.next(), if !settling.is_empty() => settled(outcome),
                    }
                };
                if !stopped
                    && failures >= 3
                    && let Err(err) = source.reopen(&js).await
                {
                    tracing::warn!(%pipeline, loop_id, error = %err, "re-opening the consumer failed");
                }
            }
        }
    }
    // Stopped: no new fetch; finish (store and ack) the batches in hand.
    while let Some(outcome) = settling.next().await {
        settled(outcome);
    }
    let released = source.release_buffered().await;
    tracing::debug!(%pipeline, loop_id, released, "batch loop stopped");
}
