//! A pipeline's runtime settings, compiled from its spec once: source, dead-letter target,
//! retry policy, parallelism, in-flight window and size limit.

use std::time::Duration;

use weir_connectors::{DlqTarget, SourceSettings, units};
use weir_pipelines::PipelineResource;

use crate::RuntimeError;

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
    /// Compiles the runtime settings of `pipeline`.
    pub fn from_spec(pipeline: &PipelineResource) -> Result<Self, RuntimeError> {
        let name = pipeline.metadata.name.clone();
        let config_error = |err: weir_connectors::ConnectorError| RuntimeError::Config {
            pipeline: name.clone(),
            reason: err.to_string(),
        };
        let spec = &pipeline.spec;
        let backoff = &spec.errors.retry.backoff;
        let field = |f: &str| format!("Pipeline {name}: spec.{f}");
        let retry = RetrySettings {
            max_attempts: spec.errors.retry.max_attempts.max(1),
            initial: units::duration(&field("errors.retry.backoff.initial"), &backoff.initial)
                .map_err(config_error)?,
            max: units::duration(&field("errors.retry.backoff.max"), &backoff.max)
                .map_err(config_error)?,
            factor: backoff.factor,
        };
        let max_message_size = match &spec.execution.max_message_size {
            Some(text) => units::size(&field("execution.max_message_size"), text)
                .map_err(config_error)? as usize,
            None => DEFAULT_MAX_MESSAGE_SIZE,
        };
        Ok(PipelineConfig {
            source: SourceSettings::from_spec(pipeline).map_err(config_error)?,
            dlq: DlqTarget::for_pipeline(pipeline),
            retry,
            parallelism: spec.execution.parallelism.max(1) as usize,
            max_in_flight: spec
                .execution
                .max_in_flight
                .unwrap_or(DEFAULT_MAX_IN_FLIGHT)
                .max(1),
            max_message_size,
            tenant_quota: None,
            name,
        })
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
}
