//! The two KV buckets of the fleet contract (`weir_deployments`, `weir_workers`): opened when
//! they exist, created when absent (by whichever side comes first: control plane or worker).

use async_nats::jetstream::{self, kv};
use weir_pipelines::fleet::{DEPLOYMENTS_BUCKET, WORKERS_BUCKET};

use crate::RuntimeError;

/// Versions of a key kept by both buckets (the audit trail of a deployment's changes).
pub const BUCKET_HISTORY: i64 = 10;

/// Opens `bucket`, creating it (file storage, `BUCKET_HISTORY` versions) when absent.
pub async fn open_or_create(
    js: &jetstream::Context,
    bucket: &str,
    description: &str,
) -> Result<kv::Store, RuntimeError> {
    if let Ok(store) = js.get_key_value(bucket).await {
        return Ok(store);
    }
    let created = js
        .create_key_value(kv::Config {
            bucket: bucket.to_string(),
            description: description.to_string(),
            history: BUCKET_HISTORY,
            ..Default::default()
        })
        .await;
    match created {
        Ok(store) => Ok(store),
        // Another process may have created it between the two calls.
        Err(create_err) => js
            .get_key_value(bucket)
            .await
            .map_err(|_| RuntimeError::Fleet {
                reason: format!("cannot open or create the KV bucket {bucket}: {create_err}"),
            }),
    }
}

/// The deployments bucket (desired state) and the workers bucket (heartbeats).
pub async fn open_fleet_buckets(
    js: &jetstream::Context,
) -> Result<(kv::Store, kv::Store), RuntimeError> {
    let deployments = open_or_create(
        js,
        DEPLOYMENTS_BUCKET,
        "Weir deployments: what the fleet should run (written by the control plane)",
    )
    .await?;
    let workers = open_or_create(
        js,
        WORKERS_BUCKET,
        "Weir worker heartbeats with per-pipeline counters",
    )
    .await?;
    Ok((deployments, workers))
}
