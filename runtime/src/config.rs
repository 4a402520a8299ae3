//! A pipeline's runtime settings, taken from its validated plan once: source, dead-letter
//! target, retry policy, parallelism, in-flight window and size limit.

use std::time::Duration;

use weir_connectors::{DlqTarget, SourceSettings};
use weir_pipelines::ValidatedPipeline;

/// Default largest payload a pipeline accepts (1 MiB, the nats-server default max payload).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 20;
/// Default in-flight PubAcks per batch loop.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

/// Retries of transient errors.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySettings {
    /// Deliveries before a message goes to the DLQ.
    pub max_attempts: u32,
    /// First backoff delay.
    pub initial: Duration,
    /// Largest backoff delay.
    pub max: Duration,
    /// Growth factor.
    pub factor: f64,
}

impl RetrySettings {
    /// The delay before attempt `attempt + 1` (`attempt` counts from 0).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = self.factor.max(1.0).powi(attempt.min(64) as i32);
        let secs = (self.initial.as_secs_f64() * factor).min(self.max.as_secs_f64());
        Duration::from_secs_f64(secs.max(0.0))
    }
}

/// Everything the worker needs to run one pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    /// Pipeline name (`metadata.name`).
    pub name: String,
    /// Source consumer and batching.
    pub source: SourceSettings,
    /// Where dead letters go.
    pub dlq: DlqTarget,
    /// Retries of transient errors.
    pub retry: RetrySettings,
    /// Concurrent batch loops in this worker.
    pub parallelism: usize,
    /// In-flight PubAcks per batch loop.
    pub max_in_flight: usize,
    /// Largest payload accepted; larger inputs are dead-lettered.
    pub max_message_size: usize,
    /// A tenant's data-plane limit on payload size (fleet deployments), checked before
    /// `max_message_size`; the dead letter names the tenant's quota.
    pub tenant_quota: Option<TenantSizeQuota>,
    /// Checkpointing of a pipeline with `window` or `dedup` nodes.
    pub state: StateSettings,
    /// `delivery: exclusive`: one owner at a time reads the consumer and settles each
    /// batch with one cumulative ack (see the `exclusive` module).
    pub exclusive: bool,
}

/// When a stateful pipeline checkpoints, and which state it can take over.
#[derive(Debug, Clone, PartialEq)]
pub struct StateSettings {
    /// Longest time between checkpoints.
    pub interval: Duration,
    /// Most inputs between checkpoints.
    pub events: u64,
    /// A digest of the stateful nodes' definitions (id and spec): a checkpoint taken under
    /// another digest belongs to an incompatible version and is not restored.
    pub fingerprint: String,
    /// Keyed partitions (1: the state is one, not partitioned).
    pub partitions: u32,
    /// The SQL expressions of the partition key.
    pub partition_key: Vec<String>,
}

impl StateSettings {
    /// The settings of `plan`.
    pub fn from_plan(plan: &ValidatedPipeline) -> Self {
        StateSettings {
            interval: plan.execution.checkpoint_interval,
            events: plan.execution.checkpoint_events.max(1),
            fingerprint: weir_pipelines::state::state_fingerprint(&plan.resource.spec),
            partitions: plan.execution.partitions.max(1),
            partition_key: plan.execution.partition_key.clone(),
        }
    }
}

/// A tenant's `max_message_bytes` quota as the runtime enforces it.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantSizeQuota {
    /// The tenant.
    pub tenant: String,
    /// Largest payload accepted, in bytes.
    pub max_message_bytes: usize,
}

impl PipelineConfig {
    /// The runtime settings of a validated pipeline.
    pub fn from_plan(plan: &ValidatedPipeline) -> Self {
        let retry = RetrySettings {
            max_attempts: plan.retry.max_attempts,
            initial: plan.retry.initial,
            max: plan.retry.max,
            factor: plan.retry.factor,
        };
        let max_message_size = plan
            .execution
            .max_message_size
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            .unwrap_or(DEFAULT_MAX_MESSAGE_SIZE);
        PipelineConfig {
            name: plan.name().to_string(),
            source: SourceSettings::from_plan(plan),
            dlq: DlqTarget::for_pipeline(&plan.resource),
            retry,
            parallelism: plan.execution.parallelism.max(1) as usize,
            max_in_flight: plan
                .execution
                .max_in_flight
                .unwrap_or(DEFAULT_MAX_IN_FLIGHT)
                .max(1),
            max_message_size,
            tenant_quota: None,
            state: StateSettings::from_plan(plan),
            exclusive: plan.execution.exclusive,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let retry = RetrySettings {
            max_attempts: 5,
            initial: Duration::from_millis(100),
            max: Duration::from_millis(350),
            factor: 2.0,
        };
        assert_eq!(retry.backoff(0), Duration::from_millis(100));
        assert_eq!(retry.backoff(1), Duration::from_millis(200));
        assert_eq!(retry.backoff(2), Duration::from_millis(350));
        assert_eq!(retry.backoff(60), Duration::from_millis(350));
    }

    #[test]
    fn the_state_fingerprint_follows_the_stateful_nodes_only() {
        let yaml = |window: &str, subject: &str| {
            format!(
                "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: {{ name: m }}\nspec:\n  source: {{ stream: ORDERS }}\n  execution: {{ checkpoint: {{ interval: 250ms, events: 500 }} }}\n  nodes:\n    - {{ id: w, window: {{ kind: tumbling, size: {window}, aggregates: {{ n: \"count(*)\" }}, late: out }}, next: out }}\n    - {{ id: out, publish: {{ subject: {subject} }} }}\n"
            )
        };
        let settings = |text: String| {
            let weir_pipelines::Resource::Pipeline(p) = weir_pipelines::load_str(&text, "m.yaml")
                .expect("valid")
                .remove(0)
            else {
                panic!("not a pipeline")
            };
            StateSettings::from_plan(&weir_pipelines::plan(&p).expect("plans"))
        };
        let v1 = settings(yaml("1m", "a"));
        assert_eq!(v1.interval, Duration::from_millis(250));
        assert_eq!(v1.events, 500);
        assert_eq!(v1.fingerprint, settings(yaml("1m", "b")).fingerprint);
        assert_ne!(v1.fingerprint, settings(yaml("5m", "a")).fingerprint);
    }
}
