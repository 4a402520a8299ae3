//! `weir serve`: open the store (SQLite under the data directory unless a URL is given), load or
//! create the secret key, bootstrap the first admin, connect to NATS when a URL is given, and
//! serve the API until shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::db::{Db, StoreError};
use crate::secrets::{SecretKeyError, key_from_base64, key_from_file};
use crate::state::{AppState, Settings};
use crate::tenants;

/// Where the secret key comes from.
#[derive(Clone, Debug)]
pub enum SecretKeySource {
    /// A file holding the base64 key.
    File(PathBuf),
    /// The base64 key itself (`WEIR_SECRET_KEY`).
    Base64(String),
    /// `<data dir>/secret.key`, created on first start.
    DataDir,
}

/// Settings of `weir serve`.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Listen address.
    pub addr: SocketAddr,
    /// Data directory (default `.weir/`).
    pub data_dir: PathBuf,
    /// Store URL; default `sqlite://<data dir>/weir.db`.
    pub database_url: Option<String>,
    /// The secret key for secrets at rest.
    pub secret_key: SecretKeySource,
    /// The bootstrap admin's API key (`WEIR_BOOTSTRAP_API_KEY`); generated when absent.
    pub bootstrap_api_key: Option<String>,
    /// Largest request body.
    pub body_limit: usize,
    /// NATS URL (`--nats`, `WEIR_NATS_URL`); without it the fleet, DLQ and NATS endpoints
    /// answer 503 `nats_unavailable`.
    pub nats_url: Option<String>,
    /// Directory of the NATS operator's seeds (`operator.nk`, `system.nk`, `weir.nk`;
    /// `--nats-keys`): NATS runs in operator mode and every tenant gets its own account.
    pub nats_keys: Option<PathBuf>,
    /// Allow more than one tenant on a NATS without accounts (`--allow-shared-nats`).
    pub allow_shared_nats: bool,
    /// How long a replaced deployment's NATS credentials keep working (operator mode;
    /// `--nats-revoke-after`).
    pub nats_revoke_after: std::time::Duration,
}

impl ServeConfig {
    /// Defaults: `127.0.0.1:7070`, `.weir/`, SQLite, key in the data dir, 1 MiB bodies.
    pub fn new() -> Self {
        ServeConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 7070)),
            data_dir: PathBuf::from(".weir"),
            database_url: None,
            secret_key: SecretKeySource::DataDir,
            bootstrap_api_key: None,
            body_limit: 1024 * 1024,
            nats_url: None,
            nats_keys: None,
            allow_shared_nats: false,
            nats_revoke_after: crate::nats::DEFAULT_REVOKE_AFTER,
        }
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The data directory cannot be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The store cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The secret key is missing or malformed.
    #[error(transparent)]
    SecretKey(#[from] SecretKeyError),
    /// NATS cannot be reached or its buckets cannot be opened.
    #[error(transparent)]
    Nats(#[from] crate::nats::NatsError),
    /// `WEIR_BOOTSTRAP_API_KEY` is weaker than a generated key.
    #[error("WEIR_BOOTSTRAP_API_KEY refused: {0}")]
    WeakBootstrapKey(String),
    /// The address cannot be bound or serving failed.
    #[error("cannot serve on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// A NATS URL (or comma-separated list) for logs: the credentials before `@` — `user:pass`
/// or a token — are replaced by `***`.
pub fn redact_nats_url(url: &str) -> String {
    url.split(',')
        .map(|one| {
            let start = one.find("://").map_or(0, |i| i + 3);
            match one[start..].find('@') {
                Some(at) => {
                    let creds = &one[start..start + at];
                    let shown = match creds.split_once(':') {
                        Some((user, _)) => format!("{user}:***"),
                        None => "***".to_string(),
                    };
                    format!("{}{shown}{}", &one[..start], &one[start + at..])
                }
                None => one.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Opens everything `serve` needs. Returns the state and, on a fresh store without
/// `bootstrap_api_key`, the generated admin key (to print once).
pub async fn prepare(config: &ServeConfig) -> Result<(AppState, Option<String>), ServeError> {
    if let Some(key) = &config.bootstrap_api_key {
        tenants::check_bootstrap_key(key).map_err(ServeError::WeakBootstrapKey)?;
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let url = config
        .database_url
        .clone()
        .unwrap_or_else(|| Db::sqlite_url(&config.data_dir.join("weir.db")));
    let db = Db::connect(&url).await?;
    let key = match &config.secret_key {
        SecretKeySource::File(path) => key_from_file(path, false)?,
        SecretKeySource::Base64(text) => key_from_base64(text)?,
        SecretKeySource::DataDir => key_from_file(&config.data_dir.join("secret.key"), true)?,
    };
    let generated = tenants::bootstrap(&db, config.bootstrap_api_key.as_deref()).await?;
    let mut settings = Settings::new(key);
    settings.body_limit = config.body_limit;
    settings.allow_shared_nats = config.allow_shared_nats;
    let nats = match &config.nats_url {
        Some(url) => {
            let nats = match &config.nats_keys {
                Some(dir) => {
                    let keys = weir_connectors::accounts::OperatorKeys::load(dir).map_err(|e| {
                        crate::nats::NatsError::Keys {
                            reason: e.to_string(),
                            dir: dir.display().to_string(),
                        }
                    })?;
                    let nats = crate::nats::Nats::connect_operator(url, keys)
                        .await?
                        .with_revoke_after(config.nats_revoke_after);
                    tracing::info!(url = %redact_nats_url(url), "connected to NATS in operator mode: one NATS account per tenant");
                    nats
                }
                None => {
                    let nats = crate::nats::Nats::connect(url).await?;
                    tracing::warn!(
                        url = %redact_nats_url(url),
                        "NATS runs without accounts (no --nats-keys): tenants are NOT isolated on NATS; \
                         a second tenant is refused unless --allow-shared-nats"
                    );
                    nats
                }
            };
            Some(nats)
        }
        None => {
            tracing::warn!(
                "no NATS URL (--nats / WEIR_NATS_URL): deployments, status, DLQ and NATS views are unavailable"
            );
            None
        }
    };
    let state = AppState::with_nats(db, settings, nats);
    crate::login::warm_up(&state).await;
    Ok((state, generated))
}

/// Serves the API until `shutdown` completes.
pub async fn serve_until(
    config: ServeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (state, generated) = prepare(&config).await?;
    if let Some(key) = generated {
        println!(
            "\nA new Weir store was bootstrapped with an admin ({}).\n\
             Its API key is shown only this once; keep it:\n\n    {key}\n\n\
             Use it with: export WEIR_API_KEY={key}\n",
            tenants::BOOTSTRAP_ADMIN
        );
    }
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.addr,
            source,
        })?;
    let local = listener.local_addr().unwrap_or(config.addr);
    // Replaced deployments' credentials are revoked when their time comes (operator mode).
    let sweeper = state
        .nats()
        .ok()
        .filter(|nats| nats.isolated())
        .cloned()
        .map(|nats| tokio::spawn(crate::nats::sweep_revocations(nats)));
    // Quality pass rates over the last hour need every heartbeat sampled, asked for or not.
    let quality = state
        .nats()
        .is_ok()
        .then(|| tokio::spawn(crate::quality::follow_heartbeats(state.clone())));
    tracing::info!(addr = %local, "weir control plane listening");
    println!("weir control plane listening on http://{local}/api/v1");
    let served = axum::serve(
        listener,
        crate::app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(|source| ServeError::Listen {
        addr: config.addr,
        source,
    });
    if let Some(sweeper) = sweeper {
        sweeper.abort();
    }
    if let Some(quality) = quality {
        quality.abort();
    }
    served
}

/// Serves the API until Ctrl-C or SIGTERM.
pub async fn serve(config: ServeConfig) -> Result<(), ServeError> {
    serve_until(config, async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let term = async {
                match term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn nats_credentials_are_redacted() {
        use super::redact_nats_url as r;
        assert_eq!(r("nats://u:pw@h:4222"), "nats://u:***@h:4222");
        assert_eq!(r("nats://s3cr3t-token@h:4222"), "nats://***@h:4222");
        assert_eq!(r("nats://h:4222"), "nats://h:4222");
        assert_eq!(
            r("nats://a:b@h1:4222,nats://c:d@h2:4222"),
            "nats://a:***@h1:4222,nats://c:***@h2:4222"
        );
        assert_eq!(r("u:pw@h:4222"), "u:***@h:4222");
    }
}
