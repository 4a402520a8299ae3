//! The control plane's NATS connection: the JetStream context and the fleet's two KV buckets
//! (`weir_deployments`, written here; `weir_workers`, written by workers), created when absent
//! with the configuration below so that either side may start first.

use async_nats::jetstream::{self, kv};
use weir_connectors::fleet::{DEPLOYMENTS_BUCKET, WORKERS_BUCKET};

use crate::error::ApiError;

/// Revisions kept per deployment key (the last changes of a deployment stay readable).
pub const DEPLOYMENTS_HISTORY: i64 = 5;
/// Revisions kept per worker key (only the newest heartbeat matters).
pub const WORKERS_HISTORY: i64 = 1;

/// Why NATS could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The server cannot be reached.
    #[error(transparent)]
    Connect(#[from] weir_connectors::ConnectorError),
    /// A bucket can neither be opened nor created.
    #[error(
        "cannot open or create the KV bucket `{bucket}` on NATS (is JetStream enabled?): {reason}"
    )]
    Bucket {
        /// The bucket.
        bucket: String,
        /// The server's answer.
        reason: String,
    },
}

/// A connected NATS with the fleet's buckets open. Cheap to clone.
#[derive(Clone)]
pub struct Nats {
    client: async_nats::Client,
    js: jetstream::Context,
    deployments: kv::Store,
    workers: kv::Store,
}

impl Nats {
    /// Connects to `url` and opens (creating when absent) the fleet's buckets.
    pub async fn connect(url: &str) -> Result<Nats, NatsError> {
        let client = weir_connectors::connect(url, "weir-control-plane").await?;
        Self::open(client).await
    }

    /// Opens the fleet's buckets over an existing connection.
    pub async fn open(client: async_nats::Client) -> Result<Nats, NatsError> {
        let js = jetstream::new(client.clone());
        let deployments = bucket(&js, DEPLOYMENTS_BUCKET, DEPLOYMENTS_HISTORY).await?;
        let workers = bucket(&js, WORKERS_BUCKET, WORKERS_HISTORY).await?;
        Ok(Nats {
            client,
            js,
            deployments,
            workers,
        })
    }

    /// The core client.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The JetStream context.
    pub fn js(&self) -> &jetstream::Context {
        &self.js
    }

    /// The deployments bucket.
    pub fn deployments(&self) -> &kv::Store {
        &self.deployments
    }

    /// The worker heartbeats bucket.
    pub fn workers(&self) -> &kv::Store {
        &self.workers
    }
}

async fn bucket(js: &jetstream::Context, name: &str, history: i64) -> Result<kv::Store, NatsError> {
    if let Ok(store) = js.get_key_value(name).await {
        return Ok(store);
    }
    let created = js
        .create_key_value(kv::Config {
            bucket: name.to_string(),
            description: format!("Weir fleet: {name}"),
            history,
            ..Default::default()
        })
        .await;
    match created {
        Ok(store) => Ok(store),
        // Another process may have created it meanwhile, with another configuration.
        Err(err) => js.get_key_value(name).await.map_err(|_| NatsError::Bucket {
            bucket: name.to_string(),
            reason: err.to_string(),
        }),
    }
}

/// A NATS failure as a 502 `nats_error` problem naming what was being done:
/// `result.map_err(|e| failed("read the DLQ", e))`.
pub fn failed(what: &str, err: impl std::fmt::Display) -> ApiError {
    ApiError::Nats(format!("{what}: {err}"))
}
