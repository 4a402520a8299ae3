//! `weir run`: runs the pipelines of one file as one worker. `Stream` resources are created
//! or updated first; several processes on the same file share the work through the
//! pipelines' durable consumers. SIGTERM / SIGINT stop it gracefully.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

/// Arguments of `weir run`.
#[derive(clap::Args)]
pub struct Args {
    /// Pipeline file (YAML or JSON, several documents allowed).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// NATS server URL.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats: String,
    /// Serve Prometheus metrics on this address (e.g. `127.0.0.1:9464`) at `/metrics`.
    #[arg(long)]
    pub metrics_addr: Option<String>,
    /// Longest wait, after SIGTERM/SIGINT, for batches in flight to finish and be acked.
    #[arg(long, default_value = "10s", value_parser = weir_pipelines::units::parse_duration)]
    pub shutdown_timeout: Duration,
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> anyhow::Result<u8> {
    init_tracing();
    let resources = weir_pipelines::load_file(&args.file)
        .map_err(|diagnostics| anyhow::anyhow!("{diagnostics}"))
        .with_context(|| format!("{} is not a valid pipeline file", args.file.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        // Listen for signals before anything else, so that a SIGTERM during start-up is a
        // graceful stop too.
        let signal = tokio::spawn(wait_for_signal());
        let client = weir_connectors::connect(&args.nats, "weir run").await?;
        let metrics = Arc::new(weir_runtime::Metrics::new());
        let mut worker = weir_runtime::Worker::new(client, metrics.clone());
        let stop = worker.stop_token();
        if let Some(addr) = &args.metrics_addr {
            let (bound, _task) =
                weir_runtime::metrics::serve(addr, metrics.clone(), stop.clone()).await?;
            tracing::info!(%bound, "serving metrics at /metrics");
        }
        let started = worker.run_resources(&resources).await?;
        if started.is_empty() {
            anyhow::bail!("{} declares no Pipeline to run", args.file.display());
        }
        tracing::info!(pipelines = ?started, nats = %args.nats, "worker running");
        tokio::spawn(async move {
            let _ = signal.await;
            tracing::info!("stopping: no new fetches, finishing batches in flight");
            stop.cancel();
        });
        let clean = worker.run_until_stopped(args.shutdown_timeout).await;
        tracing::info!(clean, "worker stopped");
        Ok(0)
    })
}

/// Waits for SIGTERM or SIGINT.
pub async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the worker");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
