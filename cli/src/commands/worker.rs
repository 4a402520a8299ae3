//! `weir worker`: one worker of the fleet. It runs whatever the control plane deploys (the
//! `weir_deployments` KV bucket), reports heartbeats to `weir_workers`, and on SIGTERM /
//! SIGINT stops gracefully — batches in flight finish and are acked — and exits 0.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::commands::run::{init_tracing, wait_for_signal};

/// Arguments of `weir worker`.
#[derive(clap::Args)]
pub struct Args {
    /// NATS server URL.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats: String,
    /// Stable id of this worker in heartbeats (letters, digits, '-', '_'); `<host>-<pid>`
    /// by default.
    #[arg(long, env = "WEIR_WORKER_ID")]
    pub id: Option<String>,
    /// Serve Prometheus metrics on this address (e.g. `127.0.0.1:9464`) at `/metrics`.
    #[arg(long)]
    pub metrics_addr: Option<String>,
    /// Credentials file (`.creds`) of a user of Weir's internal NATS account, when NATS runs in
    /// operator mode (one account per tenant); pipelines then run with the credentials their
    /// deployment carries.
    #[arg(long, env = "WEIR_NATS_CREDS")]
    pub nats_creds: Option<std::path::PathBuf>,
    /// Longest wait, when stopping a pipeline, for its batches in flight to finish.
    #[arg(long, default_value = "10s", value_parser = weir_pipelines::units::parse_duration)]
    pub shutdown_timeout: Duration,
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> anyhow::Result<u8> {
    init_tracing();
    let id = args
        .id
        .clone()
        .unwrap_or_else(weir_runtime::fleet::default_worker_id);
    let mut config = weir_runtime::FleetConfig::new(id)?;
    config.grace = args.shutdown_timeout;
    config.nats_url = Some(args.nats.clone());
    let creds = match &args.nats_creds {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading NATS credentials {}", path.display()))?,
        ),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let signal = tokio::spawn(wait_for_signal());
        let stop = CancellationToken::new();
        let client = weir_connectors::connect_as(
            &args.nats,
            &format!("weir worker {}", config.worker_id),
            creds.as_deref(),
        )
        .await
        .with_context(|| {
            if creds.is_none() {
                format!(
                    "connecting to NATS at {} (a server in operator mode needs \
                     --nats-creds: the worker.creds that `weir nats-setup` writes)",
                    args.nats
                )
            } else {
                format!("connecting to NATS at {}", args.nats)
            }
        })?;
        let metrics = Arc::new(weir_runtime::Metrics::new());
        if let Some(addr) = &args.metrics_addr {
            let (bound, _task) =
                weir_runtime::metrics::serve(addr, metrics.clone(), stop.clone()).await?;
            tracing::info!(%bound, "serving metrics at /metrics");
        }
        tracing::info!(worker = %config.worker_id, nats = %args.nats, "worker running");
        let fleet = weir_runtime::FleetWorker::new(client.clone(), config, metrics);
        let stopper = stop.clone();
        tokio::spawn(async move {
            let _ = signal.await;
            stopper.cancel();
        });
        fleet.run(stop).await?;
        if tokio::time::timeout(Duration::from_secs(5), client.flush())
            .await
            .is_err()
        {
            tracing::warn!("flushing at exit timed out");
        }
        Ok(0)
    })
}
