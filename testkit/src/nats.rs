//! A real `nats-server` with JetStream for tests: ephemeral port, temporary store directory,
//! readiness wait, stop on drop, and restart on the same port and store (crash tests need it).
//! In operator mode (`NatsConfig::operator_mode`) the server trusts a fresh operator with a full
//! account resolver, so that tests can give each tenant its own NATS account.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use tempfile::TempDir;
use weir_connectors::accounts::OperatorKeys;
use weir_connectors::nats_server::{self, LaunchSpec, OperatorMode, RunningServer};

/// Finds the `nats-server` binary: `$WEIR_NATS_SERVER`, then the repository's `.tools/bin/`,
/// then `PATH`. The error says how to install it.
pub fn nats_server_binary() -> Result<PathBuf> {
    let repo_tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/nats-server");
    Ok(nats_server::find_binary(&[repo_tools])?)
}

/// Settings of a test server.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// Largest message the server accepts (`max_payload`), bytes. Default 1 MiB (the server's).
    pub max_payload: u32,
    /// Extra lines appended to the generated configuration file.
    pub extra_config: String,
    /// Decentralised auth: a fresh operator, system and internal account, a full resolver.
    pub operator_mode: bool,
}

/// The JetStream file storage a test's server may reserve: 64 GiB, whatever the free disk.
pub const TEST_FILE_STORE: u64 = 64 << 30;

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            max_payload: 1024 * 1024,
            extra_config: String::new(),
            operator_mode: false,
        }
    }
}

/// A running `nats-server` with JetStream, owned by a test. Stops (SIGKILL) on drop.
pub struct NatsServer {
    binary: PathBuf,
    dir: TempDir,
    config: NatsConfig,
    port: u16,
    server: Option<RunningServer>,
    keys: Option<OperatorKeys>,
}

impl NatsServer {
    /// Starts a server with default settings and waits until it accepts clients.
    pub fn start() -> Result<Self> {
        Self::start_with(NatsConfig::default())
    }

    /// Starts a server in operator mode (one NATS account per tenant).
    pub fn start_operator() -> Result<Self> {
        Self::start_with(NatsConfig {
            operator_mode: true,
            ..NatsConfig::default()
        })
    }

    /// Starts a server with `config` and waits until it accepts clients.
    pub fn start_with(config: NatsConfig) -> Result<Self> {
        let binary = nats_server_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("weir-nats-")
            .tempdir()
            .context("creating the nats-server temp dir")?;
        let keys = if config.operator_mode {
            let keys = OperatorKeys::generate();
            keys.save(&dir.path().join("keys"))?;
            Some(keys)
        } else {
            None
        };
        let mut server = Self {
            binary,
            dir,
            config,
            port: 0,
            server: None,
            keys,
        };
        server.spawn()?;
        Ok(server)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory (kept across restarts).
    pub fn store_dir(&self) -> PathBuf {
        self.spec().store_dir
    }

    /// The server's log file.
    pub fn log_file(&self) -> PathBuf {
        self.spec().log_file()
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        self.server.as_mut().is_some_and(RunningServer::is_running)
    }

    /// Stops gracefully (SIGTERM, then SIGKILL after 10 s).
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut server) = self.server.take() {
            server.stop(Duration::from_secs(10));
        }
        Ok(())
    }

    /// Kills the process at once (SIGKILL), like a crash.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut server) = self.server.take() {
            server.kill();
        }
        Ok(())
    }

    /// Starts the server again on the same port and store (after [`stop`](Self::stop) or
    /// [`kill`](Self::kill); a running server is stopped first).
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.spawn()
    }

    /// Kills the server (SIGKILL) and starts it again on the same port and store.
    pub fn crash_restart(&mut self) -> Result<()> {
        self.kill()?;
        self.spawn()
    }

    /// The operator's keys, in operator mode.
    pub fn operator_keys(&self) -> Option<&OperatorKeys> {
        self.keys.as_ref()
    }

    /// The directory holding the operator's seeds (`operator.nk`, `system.nk`, `weir.nk`), in
    /// operator mode.
    pub fn keys_dir(&self) -> Option<PathBuf> {
        self.keys.as_ref().map(|_| self.dir.path().join("keys"))
    }

    /// Connects a client (in operator mode: a user of Weir's internal account).
    pub async fn client(&self) -> Result<async_nats::Client> {
        let creds = self.keys.as_ref().map(|k| k.internal_creds());
        self.client_with(creds.as_deref()).await
    }

    /// Connects a client with `.creds` text, or none.
    pub async fn client_with(&self, creds: Option<&str>) -> Result<async_nats::Client> {
        let options = match creds {
            Some(creds) => async_nats::ConnectOptions::with_credentials(creds)?,
            None => async_nats::ConnectOptions::new(),
        };
        options
            .connect(self.url())
            .await
            .with_context(|| format!("connecting to {}", self.url()))
    }

    /// The launch spec: first start on a free port, restarts on the same one.
    fn spec(&self) -> LaunchSpec<'_> {
        let dir = self.dir.path();
        LaunchSpec {
            port: (self.port != 0).then_some(self.port),
            max_payload: Some(self.config.max_payload),
            // Streams reserve their `max_bytes` out of this when created; the default (75% of
            // the free disk) would make tests fail on a nearly full disk although they write
            // a few megabytes.
            max_file_store: Some(TEST_FILE_STORE),
            operator: self.keys.as_ref().map(|keys| OperatorMode {
                keys,
                jwt_file: dir.join("operator.jwt"),
                resolver_dir: dir.join("resolver"),
            }),
            extra_config: self.config.extra_config.clone(),
            ..LaunchSpec::new(self.binary.clone(), dir)
        }
    }

    fn spawn(&mut self) -> Result<()> {
        let server = self.spec().launch()?;
        self.port = server.port();
        self.server = Some(server);
        Ok(())
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    /// Two accounts pushed at run time each hold a stream `ORDERS`; neither sees the other's.
    #[tokio::test]
    async fn accounts_pushed_at_run_time_are_isolated() -> Result<()> {
        use weir_connectors::accounts::{self, AccountLimits};
        let server = NatsServer::start_operator()?;
        let keys = server.operator_keys().expect("operator mode");
        let system = server.client_with(Some(&keys.system_creds())).await?;
        let mut tenants = Vec::new();
        for name in ["alpha", "beta"] {
            let account = accounts::new_account_key();
            accounts::push_account(
                &system,
                &keys.account_jwt(&account, name, AccountLimits::default()),
            )
            .await?;
            let client = server
                .client_with(Some(&accounts::user_creds(&account, name)))
                .await?;
            let js = async_nats::jetstream::new(client);
            js.create_stream(async_nats::jetstream::stream::Config {
                name: "ORDERS".into(),
                subjects: vec!["orders.>".into()],
                ..Default::default()
            })
            .await?;
            js.publish("orders.a", name.as_bytes().to_vec().into())
                .await?
                .await?;
            tenants.push((account, js));
        }
        for (i, name) in ["alpha", "beta"].iter().enumerate() {
            let mut stream = tenants[i].1.get_stream("ORDERS").await?;
            assert_eq!(stream.info().await?.state.messages, 1, "{name}");
            let msg = stream.get_raw_message(1).await?;
            assert_eq!(&msg.payload[..], name.as_bytes());
        }
        // Weir's internal account sees neither.
        let internal = async_nats::jetstream::new(server.client().await?);
        assert!(internal.get_stream("ORDERS").await.is_err());
        // Deleting an account ends its users' access.
        accounts::delete_accounts(&system, &keys.delete_claims(&[tenants[0].0.public_key()]))
            .await?;
        Ok(())
    }

    /// The server reserves streams' `max_bytes` out of [`TEST_FILE_STORE`], not out of the
    /// host's free disk: a stream reserving just under it is created, one just over refused.
    #[tokio::test]
    async fn streams_reserve_out_of_the_test_file_store() -> Result<()> {
        let server = NatsServer::start()?;
        let js = async_nats::jetstream::new(server.client().await?);
        let stream = |name: &str, max_bytes: u64| async_nats::jetstream::stream::Config {
            name: name.into(),
            subjects: vec![format!("{name}.>")],
            max_bytes: max_bytes as i64,
            ..Default::default()
        };
        js.create_stream(stream("UNDER", TEST_FILE_STORE - (1 << 20)))
            .await?;
        js.delete_stream("UNDER").await?;
        let over = js
            .create_stream(stream("OVER", TEST_FILE_STORE + (1 << 20)))
            .await;
        assert!(over.is_err(), "a stream over the store was created");
        Ok(())
    }

    /// Creates a stream, publishes, restarts the server on the same store and reads it back.
    #[tokio::test]
    async fn message_survives_a_restart() -> Result<()> {
        let mut server = NatsServer::start()?;
        let js = async_nats::jetstream::new(server.client().await?);
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "T".into(),
            subjects: vec!["t.>".into()],
            ..Default::default()
        })
        .await?;
        js.publish("t.a", "hello".into()).await?.await?;
        let port = server.port();

        server.restart()?;
        assert_eq!(server.port(), port, "a restart keeps the port");

        let js = async_nats::jetstream::new(server.client().await?);
        let mut stream = js.get_stream("T").await?;
        assert_eq!(stream.info().await?.state.messages, 1);
        let msg = stream.get_raw_message(1).await?;
        assert_eq!(msg.subject.as_str(), "t.a");
        assert_eq!(&msg.payload[..], b"hello");

        server.crash_restart()?;
        let js = async_nats::jetstream::new(server.client().await?);
        let consumer = js
            .get_stream("T")
            .await?
            .create_consumer(async_nats::jetstream::consumer::pull::Config::default())
            .await?;
        let mut batch = consumer.fetch().max_messages(1).messages().await?;
        let msg = batch
            .next()
            .await
            .expect("one message")
            .map_err(|e| anyhow::anyhow!(e))?;
        assert_eq!(&msg.payload[..], b"hello");
        Ok(())
    }
}
