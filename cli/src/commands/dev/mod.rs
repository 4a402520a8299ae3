//! `weir dev`: the whole system on one machine. Starts a local nats-server child process
//! (JetStream store under `<data dir>/nats`) unless `--nats` is given, the control plane
//! in-process on SQLite under the data dir, one in-process fleet worker; applies the example
//! pipeline files through the API, deploys their pipelines, and runs a small generator of
//! sample orders. Prints where the API listens and a status line every few seconds; Ctrl-C
//! (or SIGTERM) stops everything cleanly.
//!
//! The nats-server it starts runs in operator mode (keys generated once under
//! `<data dir>/nats-keys`), so each tenant gets its own NATS account as in production;
//! `--plain-nats`, or `--nats` with a server without accounts, is the single-tenant mode.
//!
//! One file per job: [`nats`] starts the server, [`control_plane`] serves the API and applies
//! and deploys the examples, [`worker`] runs the in-process fleet worker, [`traffic`]
//! publishes the sample orders, [`screen`] prints what a user sees.

mod control_plane;
mod nats;
mod screen;
mod traffic;
mod worker;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio_util::sync::CancellationToken;
use weir_connectors::accounts::OperatorKeys;

use super::client::Client;
use super::run::wait_for_signal;

/// How often the status line is printed.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// Arguments of `weir dev`.
#[derive(clap::Args)]
pub struct Args {
    /// Use this NATS server instead of starting one.
    #[arg(long)]
    pub nats: Option<String>,
    /// Port of the nats-server that `weir dev` starts.
    #[arg(long, default_value_t = 4222)]
    pub nats_port: u16,
    /// Data directory: SQLite store, secret key, dev API key, NATS store and log.
    #[arg(long, default_value = ".weir", env = "WEIR_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Listen address of the control plane API.
    #[arg(long, default_value = "127.0.0.1:7070", env = "WEIR_ADDR")]
    pub addr: SocketAddr,
    /// Pipeline files to apply and deploy (every `*.yaml` / `*.yml` in this folder).
    #[arg(long, default_value = "pipelines/examples")]
    pub examples: PathBuf,
    /// Sample orders generated per second (0: none).
    #[arg(long, default_value_t = 20)]
    pub rate: u64,
    /// Start the embedded nats-server without accounts (one shared account: tenants are not
    /// isolated on NATS). By default it runs in operator mode, one account per tenant.
    #[arg(long)]
    pub plain_nats: bool,
}

/// The operator keys of the embedded nats-server: `<data dir>/nats-keys`.
fn keys_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("nats-keys")
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> Result<u8> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,weir_runtime::fleet=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    std::fs::create_dir_all(&args.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            args.data_dir.display()
        )
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let stop = CancellationToken::new();
        let signal = tokio::spawn(wait_for_signal());
        {
            let stop = stop.clone();
            tokio::spawn(async move {
                let _ = signal.await;
                println!("[weir dev] stopping…");
                stop.cancel();
            });
        }
        let (nats_url, nats_child, keys) = match &args.nats {
            Some(url) => (url.clone(), None, None),
            None => {
                let keys = if args.plain_nats {
                    None
                } else {
                    Some(
                        OperatorKeys::load_or_generate(&keys_dir(&args.data_dir))
                            .context("NATS operator keys")?,
                    )
                };
                let server = nats::start(&args.data_dir, args.nats_port, keys.as_ref())?;
                (server.url(), Some(server), keys)
            }
        };
        let result = run_dev(&args, &nats_url, keys, stop.clone()).await;
        stop.cancel();
        if let Some(mut server) = nats_child {
            server.stop(Duration::from_secs(10));
        }
        result.map(|()| 0)
    })
}

/// Runs the control plane, the examples, the worker and the sample traffic until `stop`.
async fn run_dev(
    args: &Args,
    nats_url: &str,
    keys: Option<OperatorKeys>,
    stop: CancellationToken,
) -> Result<()> {
    let api_key = control_plane::dev_api_key(&args.data_dir)?;
    let base = format!("http://{}", args.addr);
    let api = Client::new(&base, &api_key);
    let control_plane =
        control_plane::start(args, nats_url, keys.is_some(), &api_key, &api, stop.clone()).await?;
    control_plane::apply_examples(&api, &args.examples, nats_url, keys.is_none()).await?;

    let internal_creds = keys.as_ref().map(|k| k.internal_creds());
    let producer = traffic::Producer::connect(
        nats_url,
        internal_creds.as_deref(),
        &keys_dir(&args.data_dir),
    )
    .await?;
    let (worker, status) = worker::start(nats_url, internal_creds.as_deref(), stop.clone()).await?;

    let generated = Arc::new(AtomicU64::new(0));
    let generator = tokio::spawn(traffic::generate_orders(
        producer.js(),
        args.rate,
        generated.clone(),
        stop.clone(),
    ));
    screen::print_banner(
        &base,
        &api_key,
        nats_url,
        producer.creds_file.as_deref(),
        args.rate,
    );

    let mut ticker = tokio::time::interval(STATUS_EVERY);
    ticker.tick().await;
    let mut screen = screen::StatusScreen::default();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => print!("{}", screen.render(&status.reports(), generated.load(Ordering::Relaxed))),
        }
    }
    let _ = generator.await;
    match worker.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => eprintln!("[weir dev] worker: {err}"),
        Err(err) => eprintln!("[weir dev] worker task: {err}"),
    }
    match control_plane.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => eprintln!("[weir dev] control plane: {err}"),
        Err(err) => eprintln!("[weir dev] control plane task: {err}"),
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), producer.client.flush()).await;
    println!("[weir dev] stopped");
    Ok(())
}
