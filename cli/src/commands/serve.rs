//! `weir serve`: the control plane API on SQLite (default, under `--data-dir`) or PostgreSQL.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use weir_control_plane::{SecretKeySource, ServeConfig};

/// Arguments of `weir serve`.
#[derive(clap::Args)]
pub struct Args {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:7070", env = "WEIR_ADDR")]
    pub addr: SocketAddr,
    /// Data directory (SQLite store, secret key).
    #[arg(long, default_value = ".weir", env = "WEIR_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Store URL: `sqlite://PATH` or `postgres://USER@HOST:PORT/DB`; default SQLite in the data dir.
    #[arg(long, env = "WEIR_DATABASE_URL")]
    pub database_url: Option<String>,
    /// File holding the base64 AES-256 key for secrets at rest (default: `<data dir>/secret.key`,
    /// created on first start).
    #[arg(long)]
    pub secret_key_file: Option<PathBuf>,
    /// Largest request body, bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub body_limit: usize,
    /// NATS server URL (deployments, pipeline status, DLQs and NATS views need it).
    #[arg(long = "nats", env = "WEIR_NATS_URL")]
    pub nats_url: Option<String>,
    /// Directory of the NATS operator's seeds (`operator.nk`, `system.nk`, `weir.nk`): NATS
    /// runs in operator mode and each tenant gets its own NATS account.
    #[arg(long, env = "WEIR_NATS_KEYS")]
    pub nats_keys: Option<std::path::PathBuf>,
    /// On a NATS without accounts, allow more than one tenant (they then share subjects and
    /// streams on NATS; only the API keeps them apart).
    #[arg(long)]
    pub allow_shared_nats: bool,
    /// In operator mode, how long a replaced deployment's NATS credentials keep working after
    /// a redeploy (time for workers to finish its batches and move to the new credentials).
    #[arg(long, default_value = "30s", value_parser = weir_pipelines::units::parse_duration)]
    pub nats_revoke_after: std::time::Duration,
}

/// Runs the command; returns the exit code.
pub fn run(args: Args) -> Result<u8> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    let secret_key = match (args.secret_key_file, std::env::var("WEIR_SECRET_KEY").ok()) {
        (Some(path), _) => SecretKeySource::File(path),
        (None, Some(key)) => SecretKeySource::Base64(key),
        (None, None) => SecretKeySource::DataDir,
    };
    let config = ServeConfig {
        addr: args.addr,
        data_dir: args.data_dir,
        database_url: args.database_url,
        secret_key,
        bootstrap_api_key: std::env::var("WEIR_BOOTSTRAP_API_KEY").ok(),
        body_limit: args.body_limit,
        nats_url: args.nats_url,
        nats_keys: args.nats_keys,
        allow_shared_nats: args.allow_shared_nats,
        nats_revoke_after: args.nats_revoke_after,
    };
    super::client::block_on(weir_control_plane::serve(config))??;
    Ok(0)
}
