//! The in-process fleet worker of `weir dev`: in Weir's internal account in operator mode
//! (each pipeline then runs on its deployment's credentials); its metrics are served with the
//! control plane's, at `/metrics`.

use std::sync::Arc;

use anyhow::Result;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use weir_runtime::fleet::status::StatusTable;
use weir_runtime::{FleetWorker, RuntimeError};

/// Starts the worker until `stop`; returns its task and its status (for the screen).
pub(super) async fn start(
    nats_url: &str,
    internal_creds: Option<&str>,
    stop: CancellationToken,
) -> Result<(JoinHandle<Result<(), RuntimeError>>, StatusTable)> {
    let worker_client =
        weir_connectors::connect_as(nats_url, "weir dev worker", internal_creds).await?;
    let metrics = Arc::new(weir_runtime::Metrics::new());
    // The worker's metrics are served with the control plane's, at `/metrics`.
    let served = metrics.clone();
    weir_control_plane::metrics::add_source(move || served.encode());
    let mut fleet_config = weir_runtime::FleetConfig::new(format!("dev-{}", std::process::id()))?;
    fleet_config.nats_url = Some(nats_url.to_string());
    let fleet = FleetWorker::new(worker_client, fleet_config, metrics);
    let status = fleet.status();
    Ok((tokio::spawn(fleet.run(stop)), status))
}
