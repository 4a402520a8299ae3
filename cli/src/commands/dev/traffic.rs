//! The sample traffic of `weir dev`: orders published at a steady rate into the dev tenant's
//! account (operator mode: with the control plane's credentials for it, from `weir_accounts`
//! in Weir's internal account, also saved for the user as `<keys dir>/dev.creds`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use tokio_util::sync::CancellationToken;
use weir_pipelines::fleet::now_ms;

/// The connection the sample orders are published on.
pub(super) struct Producer {
    /// The client (flushed at the end).
    pub(super) client: async_nats::Client,
    /// In operator mode: the dev tenant's credentials file.
    pub(super) creds_file: Option<PathBuf>,
}

impl Producer {
    /// Connects as the dev tenant (with `internal_creds`: operator mode; its credentials are
    /// saved under `keys_dir`), or without credentials.
    pub(super) async fn connect(
        nats_url: &str,
        internal_creds: Option<&str>,
        keys_dir: &Path,
    ) -> Result<Self> {
        let producer_creds = match internal_creds {
            Some(creds) => Some(tenant_credentials(nats_url, creds).await?),
            None => None,
        };
        let creds_file = keys_dir.join("dev.creds");
        if let Some(creds) = &producer_creds {
            std::fs::write(&creds_file, creds)
                .with_context(|| format!("saving {}", creds_file.display()))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                let _ =
                    std::fs::set_permissions(&creds_file, std::fs::Permissions::from_mode(0o600));
            }
        }
        let client = weir_connectors::connect_as(nats_url, "weir dev", producer_creds.as_deref())
            .await
            .with_context(|| format!("connecting to NATS at {nats_url}"))?;
        Ok(Self {
            client,
            creds_file: producer_creds.map(|_| creds_file),
        })
    }

    /// A JetStream context on the connection.
    pub(super) fn js(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.client.clone())
    }
}

/// Publishes sample orders (like the seed's: id, customer, region, amount, items).
pub(super) async fn generate_orders(
    js: async_nats::jetstream::Context,
    rate: u64,
    generated: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    if rate == 0 {
        return;
    }
    const REGIONS: [&str; 5] = ["us-east", "us-west", "eu-west", "ap-south", "sa-east"];
    const STATUSES: [&str; 4] = ["pending", "pending", "pending", "cancelled"];
    let started = Instant::now();
    let mut n: u64 = 0;
    let mut seed: u64 = now_ms() | 1;
    let mut next = || {
        // xorshift: good enough for sample data, no dependency.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    while !stop.is_cancelled() {
        let due = started + Duration::from_secs_f64(n as f64 / rate as f64);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(due.into()) => {}
        }
        let region = REGIONS[(next() % REGIONS.len() as u64) as usize];
        let amount = (next() % 200_000) as f64 / 100.0;
        let order = serde_json::json!({
            "order_id": format!("ord-{n:06}"),
            "customer_id": format!("cus-{}", next() % 500),
            "amount": amount,
            "currency": if next().is_multiple_of(2) { "USD" } else { "EUR" },
            "status": STATUSES[(next() % STATUSES.len() as u64) as usize],
            "region": region,
            "items": [{"sku": format!("A-{}", next() % 50), "qty": 1 + next() % 4}],
            "created_at": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        });
        let subject = format!("orders.created.{region}");
        match js.publish(subject, order.to_string().into()).await {
            Ok(ack) => {
                if let Err(err) = ack.await {
                    tracing::warn!(error = %err, "sample order not stored");
                } else {
                    generated.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(err) => tracing::warn!(error = %err, "sample order not published"),
        }
        n += 1;
    }
}

/// The credentials of the control plane's user in the system tenant's account (created by
/// the deploys), read from `weir_accounts` with Weir's internal credentials.
async fn tenant_credentials(nats_url: &str, internal_creds: &str) -> Result<String> {
    let client = weir_connectors::connect_as(nats_url, "weir dev", Some(internal_creds)).await?;
    let kv = async_nats::jetstream::new(client)
        .get_key_value(weir_control_plane::nats::ACCOUNTS_BUCKET)
        .await
        .context("opening the NATS accounts bucket")?;
    let value = kv
        .get(weir_control_plane::tenants::SYSTEM_TENANT)
        .await
        .context("reading the dev tenant's NATS account")?
        .context("the dev tenant has no NATS account yet")?;
    let record: serde_json::Value = serde_json::from_slice(&value)?;
    Ok(record["credentials"]
        .as_str()
        .context("the dev tenant's NATS account has no credentials")?
        .to_string())
}
