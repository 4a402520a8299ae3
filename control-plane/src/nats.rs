//! The control plane's NATS connection: the JetStream context and the fleet's two KV buckets
//! (`weir_deployments`, written here; `weir_workers`, written by workers), created when absent
//! with the configuration below so that either side may start first.
//!
//! With operator keys (NATS in operator mode) every tenant gets its own NATS account: the
//! account JWT is pushed to the server's resolver when the tenant is first used, its key and a
//! user's credentials are kept in `weir_accounts` (in Weir's internal account, which tenants
//! cannot reach), and [`Nats::tenant`] hands out a connection bound to that account.
//! Without keys (a plain server) every tenant shares the one connection.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use weir_connectors::accounts::{self, AccountLimits, OperatorKeys};

use async_nats::jetstream::{self, kv};
use weir_pipelines::fleet::{DEPLOYMENTS_BUCKET, WORKERS_BUCKET};

use crate::error::{ApiError, ApiResult};

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
    /// The operator keys cannot be read.
    #[error("{reason} (make the keys with `weir nats-setup --keys {dir}`)")]
    Keys {
        /// What is wrong.
        reason: String,
        /// The keys directory.
        dir: String,
    },
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

/// KV bucket (internal account) of tenant accounts: key, credentials, tenant id.
pub const ACCOUNTS_BUCKET: &str = "weir_accounts";

/// A connection inside one tenant's NATS account (or the shared one on a plain server).
#[derive(Clone)]
pub struct TenantNats {
    /// The core client.
    pub client: async_nats::Client,
    /// Its JetStream context.
    pub js: jetstream::Context,
    /// The `.creds` text of the account's user (`None` on a plain server).
    pub credentials: Option<String>,
}

impl TenantNats {
    /// The JetStream context.
    pub fn js(&self) -> &jetstream::Context {
        &self.js
    }
}

/// What `weir_accounts` keeps per tenant (keyed by tenant name).
#[derive(Serialize, Deserialize)]
struct AccountRecord {
    tenant_id: String,
    account_seed: String,
    /// The control plane's own user in the account.
    credentials: String,
    /// The account's limits as last pushed (absent: unlimited).
    #[serde(default)]
    limits: Option<AccountLimits>,
    /// Revoked users (public key → unix seconds): credentials of replaced deployments.
    #[serde(default)]
    revoked: BTreeMap<String, u64>,
    /// Users to revoke once their time (unix seconds) has come: replaced deployments' whose
    /// workers are still moving to the new credentials.
    #[serde(default)]
    pending: BTreeMap<String, u64>,
}

/// How long the credentials of a replaced deployment keep working by default: time for the
/// workers to finish the old version's batches and move to the new credentials.
pub const DEFAULT_REVOKE_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// Revocations kept per account; the oldest are dropped past it (a deployment's credentials
/// are revoked when it is replaced, so old entries name long-gone users).
pub const MAX_REVOCATIONS: usize = 10_000;

/// The tenant accounts of a server in operator mode.
struct TenantAccounts {
    url: String,
    keys: OperatorKeys,
    system: async_nats::Client,
    records: kv::Store,
    open: tokio::sync::Mutex<HashMap<String, (String, TenantNats)>>,
    /// Earliest time (unix seconds) a pending revocation known here falls due; 0: unknown.
    next_due: std::sync::atomic::AtomicU64,
    /// When every account was last scanned for due revocations (unix seconds).
    last_scan: std::sync::atomic::AtomicU64,
}

/// How often every account is scanned for due revocations even when none is known here
/// (another control-plane replica may have scheduled them).
const FULL_SCAN_EVERY_SECS: u64 = 60;

/// A connected NATS with the fleet's buckets open. Cheap to clone.
#[derive(Clone)]
pub struct Nats {
    client: async_nats::Client,
    js: jetstream::Context,
    deployments: kv::Store,
    workers: kv::Store,
    accounts: Option<Arc<TenantAccounts>>,
    revoke_after: std::time::Duration,
}

impl Nats {
    /// Connects to a plain server (no accounts) at `url` and opens (creating when absent) the
    /// fleet's buckets. Tenants are not isolated on NATS then.
    pub async fn connect(url: &str) -> Result<Nats, NatsError> {
        let client = weir_connectors::connect(url, "weir-control-plane").await?;
        Self::open(client).await
    }

    /// Connects to a server in operator mode trusting `keys`' operator: the fleet's buckets in
    /// Weir's internal account, and one account per tenant created on first use.
    pub async fn connect_operator(url: &str, keys: OperatorKeys) -> Result<Nats, NatsError> {
        let client =
            weir_connectors::connect_as(url, "weir-control-plane", Some(&keys.internal_creds()))
                .await?;
        let system = weir_connectors::connect_as(
            url,
            "weir-control-plane-system",
            Some(&keys.system_creds()),
        )
        .await?;
        // The internal account may be new on a server started without it preloaded.
        accounts::push_account(&system, &keys.internal_account_jwt())
            .await
            .map_err(weir_connectors::ConnectorError::from)?;
        let mut nats = Self::open(client).await?;
        let records = bucket(&nats.js, ACCOUNTS_BUCKET, 1).await?;
        nats.accounts = Some(Arc::new(TenantAccounts {
            url: url.to_string(),
            keys,
            system,
            records,
            open: tokio::sync::Mutex::new(HashMap::new()),
            next_due: std::sync::atomic::AtomicU64::new(0),
            last_scan: std::sync::atomic::AtomicU64::new(0),
        }));
        Ok(nats)
    }

    /// How long the credentials of a replaced deployment keep working (default
    /// [`DEFAULT_REVOKE_AFTER`]); [`revoke_due`](Self::revoke_due) ends them then.
    pub fn with_revoke_after(mut self, after: std::time::Duration) -> Self {
        self.revoke_after = after;
        self
    }

    /// Whether each tenant has its own NATS account (operator mode).
    pub fn isolated(&self) -> bool {
        self.accounts.is_some()
    }

    /// A connection inside the tenant's own account, creating the account (and pushing its
    /// JWT) on first use; on a plain server, the shared connection.
    pub async fn tenant(&self, tenant_id: &str, tenant_name: &str) -> ApiResult<TenantNats> {
        let Some(accounts) = &self.accounts else {
            return Ok(TenantNats {
                client: self.client.clone(),
                js: self.js.clone(),
                credentials: None,
            });
        };
        let mut open = accounts.open.lock().await;
        if let Some((id, conn)) = open.get(tenant_name)
            && id == tenant_id
        {
            return Ok(conn.clone());
        }
        let record = accounts.record(tenant_id, tenant_name).await?;
        let client = weir_connectors::connect_as(
            &accounts.url,
            &format!("weir-control-plane-{tenant_name}"),
            Some(&record.credentials),
        )
        .await
        .map_err(|e| {
            failed(
                &format!("connect to the NATS account of `{tenant_name}`"),
                e,
            )
        })?;
        let conn = TenantNats {
            js: jetstream::new(client.clone()),
            client,
            credentials: Some(record.credentials),
        };
        open.insert(
            tenant_name.to_string(),
            (tenant_id.to_string(), conn.clone()),
        );
        Ok(conn)
    }

    /// Sets the JetStream limits of the tenant's account (operator mode; no-op otherwise).
    pub async fn set_tenant_limits(
        &self,
        tenant_id: &str,
        tenant_name: &str,
        limits: AccountLimits,
    ) -> ApiResult<()> {
        let Some(accounts) = &self.accounts else {
            return Ok(());
        };
        accounts
            .update(tenant_id, tenant_name, |record| {
                record.limits = Some(limits);
            })
            .await
    }

    /// Fresh credentials of a new user of the tenant's account for one deployment of
    /// `pipeline` (operator mode; `None` on a plain server). Each deploy gets its own, and
    /// [`revoke_credentials`](Self::revoke_credentials) ends the previous ones.
    pub async fn deployment_credentials(
        &self,
        tenant_id: &str,
        tenant_name: &str,
        pipeline: &str,
    ) -> ApiResult<Option<String>> {
        let Some(accounts) = &self.accounts else {
            return Ok(None);
        };
        let record = accounts.record(tenant_id, tenant_name).await?;
        let key = accounts::account_key(&record.account_seed)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(Some(accounts::user_creds(
            &key,
            &format!("{tenant_name}.{pipeline}"),
        )))
    }

    /// Revokes the user of `creds` in the tenant's account once the revocation delay has
    /// passed (at once when it is zero): the server then refuses its credentials and closes
    /// its connections (operator mode; no-op otherwise). The delay lets workers finish the
    /// replaced version's batches before they move to the new credentials.
    pub async fn revoke_credentials(
        &self,
        tenant_id: &str,
        tenant_name: &str,
        creds: &str,
    ) -> ApiResult<()> {
        let Some(accounts) = &self.accounts else {
            return Ok(());
        };
        let Some(user) = accounts::creds_user(creds) else {
            return Err(ApiError::Internal(
                "unreadable deployment credentials".into(),
            ));
        };
        let due = accounts::now_secs() + self.revoke_after.as_secs();
        let now = self.revoke_after.is_zero();
        accounts
            .update(tenant_id, tenant_name, |record| {
                if now {
                    record.revoked.insert(user.clone(), due);
                } else {
                    record.pending.insert(user.clone(), due);
                }
                trim_revocations(record);
            })
            .await?;
        accounts
            .next_due
            .fetch_min(due, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Applies the revocations whose time has come, in every tenant account; returns how many
    /// accounts changed. `weir serve` calls it every second ([`sweep_revocations`]).
    pub async fn revoke_due(&self) -> ApiResult<usize> {
        let Some(accounts) = &self.accounts else {
            return Ok(0);
        };
        use std::sync::atomic::Ordering::SeqCst;
        let now = accounts::now_secs();
        let next_due = accounts.next_due.load(SeqCst);
        let last_scan = accounts.last_scan.load(SeqCst);
        if next_due != 0 && now < next_due && now < last_scan + FULL_SCAN_EVERY_SECS {
            return Ok(0);
        }
        accounts.last_scan.store(now, SeqCst);
        // Rescanned below: what stays pending lowers it again (as do new schedules meanwhile).
        accounts.next_due.store(u64::MAX, SeqCst);
        let scanned = self.apply_due(accounts, now).await;
        if scanned.is_err() {
            // Unknown again: the next tick scans.
            accounts.next_due.store(0, SeqCst);
        }
        scanned
    }

    async fn apply_due(&self, accounts: &TenantAccounts, now: u64) -> ApiResult<usize> {
        use std::sync::atomic::Ordering::SeqCst;
        let mut names = Vec::new();
        let mut keys = accounts
            .records
            .keys()
            .await
            .map_err(|e| failed("list the tenant accounts", e))?;
        while let Some(key) = futures::StreamExt::next(&mut keys).await {
            names.push(key.map_err(|e| failed("list the tenant accounts", e))?);
        }
        let mut changed = 0;
        for name in names {
            let Some(value) = accounts
                .records
                .get(&name)
                .await
                .map_err(|e| failed("read the tenant accounts", e))?
            else {
                continue;
            };
            let Ok(record) = serde_json::from_slice::<AccountRecord>(&value) else {
                continue;
            };
            if let Some(later) = record.pending.values().filter(|due| **due > now).min() {
                accounts.next_due.fetch_min(*later, SeqCst);
            }
            if !record.pending.values().any(|due| *due <= now) {
                continue;
            }
            accounts
                .update(&record.tenant_id, &name, |record| {
                    let due: Vec<String> = record
                        .pending
                        .iter()
                        .filter(|(_, t)| **t <= now)
                        .map(|(k, _)| k.clone())
                        .collect();
                    for user in due {
                        record.pending.remove(&user);
                        record.revoked.insert(user, now);
                    }
                    trim_revocations(record);
                })
                .await?;
            changed += 1;
        }
        Ok(changed)
    }

    /// Removes the tenant's NATS data and account: deletes every stream (and so every KV
    /// bucket) in the account, then the account itself. On a plain server nothing is removed
    /// (the streams are shared).
    pub async fn remove_tenant(&self, tenant_id: &str, tenant_name: &str) -> ApiResult<()> {
        let Some(accounts) = &self.accounts else {
            return Ok(());
        };
        let Some(entry) = accounts
            .records
            .get(tenant_name)
            .await
            .map_err(|e| failed("read the tenant accounts", e))?
        else {
            return Ok(());
        };
        let record: AccountRecord =
            serde_json::from_slice(&entry).map_err(|e| ApiError::Internal(e.to_string()))?;
        if record.tenant_id == tenant_id {
            let conn = self.tenant(tenant_id, tenant_name).await?;
            let mut names = conn.js.stream_names();
            let mut streams = Vec::new();
            while let Some(name) = futures::StreamExt::next(&mut names).await {
                streams.push(name.map_err(|e| failed("list the tenant's streams", e))?);
            }
            for name in streams {
                conn.js
                    .delete_stream(&name)
                    .await
                    .map_err(|e| failed(&format!("delete stream `{name}`"), e))?;
            }
            let key = accounts::account_key(&record.account_seed)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            accounts::delete_accounts(
                &accounts.system,
                &accounts.keys.delete_claims(&[key.public_key()]),
            )
            .await
            .map_err(|e| failed(&format!("delete the NATS account of `{tenant_name}`"), e))?;
        }
        accounts.open.lock().await.remove(tenant_name);
        accounts
            .records
            .purge(tenant_name)
            .await
            .map_err(|e| failed("forget the tenant account", e))?;
        Ok(())
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
            accounts: None,
            revoke_after: DEFAULT_REVOKE_AFTER,
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

impl TenantAccounts {
    /// The tenant's account record; a new account (pushed to the resolver) when there is
    /// none for this tenant id (a tenant re-created under an old name gets a new account).
    async fn record(&self, tenant_id: &str, tenant_name: &str) -> ApiResult<AccountRecord> {
        for _ in 0..3 {
            let current = self
                .records
                .entry(tenant_name)
                .await
                .map_err(|e| failed("read the tenant accounts", e))?;
            if let Some(entry) = &current
                && entry.operation == kv::Operation::Put
            {
                let record: AccountRecord = serde_json::from_slice(&entry.value)
                    .map_err(|e| ApiError::Internal(e.to_string()))?;
                if record.tenant_id == tenant_id {
                    return Ok(record);
                }
            }
            let key = accounts::new_account_key();
            accounts::push_account(
                &self.system,
                &self
                    .keys
                    .account_jwt(&key, tenant_name, AccountLimits::default()),
            )
            .await
            .map_err(|e| failed(&format!("create the NATS account of `{tenant_name}`"), e))?;
            let record = AccountRecord {
                tenant_id: tenant_id.to_string(),
                credentials: accounts::user_creds(&key, tenant_name),
                account_seed: accounts::account_seed(&key),
                limits: None,
                revoked: BTreeMap::new(),
                pending: BTreeMap::new(),
            };
            let value: bytes::Bytes = serde_json::to_vec(&record)
                .map_err(|e| ApiError::Internal(e.to_string()))?
                .into();
            let written = match &current {
                Some(entry) => self
                    .records
                    .update(tenant_name, value, entry.revision)
                    .await
                    .is_ok(),
                None => self.records.create(tenant_name, value).await.is_ok(),
            };
            if written {
                return Ok(record);
            }
            // Another request wrote it meanwhile: read again.
        }
        Err(ApiError::Nats(format!(
            "the NATS account of `{tenant_name}` keeps changing; try again"
        )))
    }
}

/// Drops the oldest revocations past [`MAX_REVOCATIONS`].
fn trim_revocations(record: &mut AccountRecord) {
    while record.revoked.len() > MAX_REVOCATIONS {
        let oldest = record
            .revoked
            .iter()
            .min_by_key(|(_, t)| **t)
            .map(|(k, _)| k.clone());
        match oldest {
            Some(k) => record.revoked.remove(&k),
            None => break,
        };
    }
}

/// Applies due revocations every second until the task is dropped (`weir serve` runs it in
/// operator mode; pending revocations are stored, so a restart loses none).
pub async fn sweep_revocations(nats: Nats) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(error) = nats.revoke_due().await {
            tracing::warn!(%error, "applying due NATS credential revocations failed; retrying");
        }
    }
}

impl TenantAccounts {
    /// Changes the tenant's account record with `change`, pushes the account JWT it now
    /// describes (limits, revocations), and stores it (retrying when another request wrote
    /// it meanwhile).
    async fn update(
        &self,
        tenant_id: &str,
        tenant_name: &str,
        mut change: impl FnMut(&mut AccountRecord),
    ) -> ApiResult<()> {
        for _ in 0..5 {
            self.record(tenant_id, tenant_name).await?;
            let Some(entry) = self
                .records
                .entry(tenant_name)
                .await
                .map_err(|e| failed("read the tenant accounts", e))?
            else {
                continue;
            };
            let mut record: AccountRecord = serde_json::from_slice(&entry.value)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            if record.tenant_id != tenant_id {
                continue;
            }
            change(&mut record);
            let key = accounts::account_key(&record.account_seed)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            let jwt = self.keys.account_jwt_revoking(
                &key,
                tenant_name,
                record.limits.unwrap_or_default(),
                &record.revoked,
            );
            let value: bytes::Bytes = serde_json::to_vec(&record)
                .map_err(|e| ApiError::Internal(e.to_string()))?
                .into();
            if self
                .records
                .update(tenant_name, value, entry.revision)
                .await
                .is_err()
            {
                continue;
            }
            return accounts::push_account(&self.system, &jwt)
                .await
                .map_err(|e| failed(&format!("update the NATS account of `{tenant_name}`"), e));
        }
        Err(ApiError::Nats(format!(
            "the NATS account of `{tenant_name}` keeps changing; try again"
        )))
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
