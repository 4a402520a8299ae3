//! Tenant quotas: limits on pipelines, total parallelism, streams (enforced here, by the API),
//! on message size and ingest rate (stored here, enforced by workers), and on JetStream storage
//! and connections (set on the tenant's NATS account, enforced by nats-server).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use sqlx::{Any, Executor};
use utoipa::ToSchema;

use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::rbac::{Action, ApiResource};
use crate::state::AppState;
use crate::store;
use crate::store::quotas::QuotaRow;

/// A tenant's limits; absent = unlimited.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// Most pipelines.
    #[schema(minimum = 0)]
    pub max_pipelines: Option<i64>,
    /// Most total parallelism (sum of `spec.execution.parallelism` of every pipeline).
    #[schema(minimum = 0)]
    pub max_parallelism: Option<i64>,
    /// Largest message in bytes (enforced by workers: larger ones go to the DLQ).
    #[schema(minimum = 0)]
    pub max_message_bytes: Option<i64>,
    /// Most messages per second ingested (enforced by workers).
    #[schema(minimum = 0)]
    pub max_ingest_rate: Option<i64>,
    /// Most streams.
    #[schema(minimum = 0)]
    pub max_streams: Option<i64>,
    /// Most JetStream bytes the tenant's NATS account may store, in file and in memory each
    /// (enforced by nats-server in operator mode: publishing past it is refused, and a
    /// pipeline's outputs wait and retry until there is room).
    #[serde(default)]
    pub max_storage_bytes: Option<i64>,
    /// Most client connections to the tenant's NATS account at once (workers hold one per
    /// deployed pipeline; the control plane one; enforced by nats-server in operator mode).
    #[serde(default)]
    pub max_connections: Option<i64>,
}

impl Quotas {
    /// The limits a new tenant gets unless told otherwise.
    pub fn tenant_default() -> Self {
        Quotas {
            max_pipelines: Some(100),
            max_parallelism: Some(256),
            max_message_bytes: Some(1024 * 1024),
            max_ingest_rate: Some(10_000),
            max_streams: Some(50),
            max_storage_bytes: None,
            max_connections: None,
        }
    }

    /// Refuses negative limits.
    pub fn check(&self) -> ApiResult<()> {
        for (name, v) in [
            ("max_pipelines", self.max_pipelines),
            ("max_parallelism", self.max_parallelism),
            ("max_message_bytes", self.max_message_bytes),
            ("max_ingest_rate", self.max_ingest_rate),
            ("max_streams", self.max_streams),
            ("max_storage_bytes", self.max_storage_bytes),
            ("max_connections", self.max_connections),
        ] {
            if v.is_some_and(|v| v < 0) {
                return Err(ApiError::Unprocessable(format!(
                    "{name} must be 0 or more, or absent for no limit"
                )));
            }
        }
        Ok(())
    }
}

/// Stores a tenant's quotas.
pub async fn save<'e, E: Executor<'e, Database = Any>>(
    db: E,
    tenant_id: &str,
    q: &Quotas,
) -> Result<(), sqlx::Error> {
    store::quotas::save(db, tenant_id, &q.clone().into()).await
}

/// A tenant's quotas (unlimited when none are stored).
pub async fn load<'e, E: Executor<'e, Database = Any>>(
    db: E,
    tenant_id: &str,
) -> Result<Quotas, sqlx::Error> {
    Ok(store::quotas::load(db, tenant_id)
        .await?
        .map(Quotas::from)
        .unwrap_or_default())
}

impl From<QuotaRow> for Quotas {
    fn from(r: QuotaRow) -> Self {
        Quotas {
            max_pipelines: r.max_pipelines,
            max_parallelism: r.max_parallelism,
            max_message_bytes: r.max_message_bytes,
            max_ingest_rate: r.max_ingest_rate,
            max_streams: r.max_streams,
            max_storage_bytes: r.max_storage_bytes,
            max_connections: r.max_connections,
        }
    }
}

impl From<Quotas> for QuotaRow {
    fn from(q: Quotas) -> Self {
        QuotaRow {
            max_pipelines: q.max_pipelines,
            max_parallelism: q.max_parallelism,
            max_message_bytes: q.max_message_bytes,
            max_ingest_rate: q.max_ingest_rate,
            max_streams: q.max_streams,
            max_storage_bytes: q.max_storage_bytes,
            max_connections: q.max_connections,
        }
    }
}

/// Refuses when `requested` exceeds `limit`.
pub fn enforce(
    quota: &'static str,
    limit: Option<i64>,
    usage: i64,
    requested: i64,
) -> ApiResult<()> {
    match limit {
        Some(limit) if requested > limit => Err(ApiError::QuotaExceeded {
            quota,
            limit,
            usage,
            requested,
        }),
        _ => Ok(()),
    }
}

/// One quota with its usage.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct QuotaStatus {
    /// Quota name.
    pub name: String,
    /// The limit; absent = unlimited.
    pub limit: Option<i64>,
    /// Current usage; absent for quotas enforced by workers (message size, ingest rate) and,
    /// on a NATS without accounts, by nats-server (storage, connections).
    pub usage: Option<i64>,
}

/// Every quota of the caller's tenant with its usage.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct QuotaUsage {
    /// Tenant name.
    pub tenant: String,
    /// The quotas.
    pub quotas: Vec<QuotaStatus>,
}

/// Current usage of a tenant: (pipelines, total parallelism, streams).
pub async fn usage(state: &AppState, tenant_id: &str) -> Result<(i64, i64, i64), sqlx::Error> {
    let u = store::quotas::usage(state.db().pool(), tenant_id).await?;
    Ok((u.pipelines, u.parallelism, u.streams))
}

/// JetStream bytes (file and memory) stored by the caller's NATS account, in operator mode.
async fn account_storage(state: &AppState, caller: &Caller) -> Option<i64> {
    let nats = state.nats().ok()?;
    if !nats.isolated() {
        return None;
    }
    let conn = state.tenant_nats(caller).await.ok()?;
    let account = conn.js().query_account().await.ok()?;
    Some((account.storage + account.memory) as i64)
}

/// The caller's quotas and usage.
#[utoipa::path(get, path = "/api/v1/quotas/usage", tag = "quotas",
    responses((status = 200, body = QuotaUsage), (status = 403, body = crate::error::Problem)))]
pub async fn get_usage(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<QuotaUsage>> {
    caller.require(ApiResource::Quotas, Action::Read)?;
    let q = load(state.db().pool(), &caller.tenant_id).await?;
    let (pipelines, parallelism, streams) = usage(&state, &caller.tenant_id).await?;
    let storage = account_storage(&state, &caller).await;
    let item = |name: &str, limit, usage| QuotaStatus {
        name: name.into(),
        limit,
        usage,
    };
    Ok(Json(QuotaUsage {
        tenant: caller.tenant_name,
        quotas: vec![
            item("max_pipelines", q.max_pipelines, Some(pipelines)),
            item("max_parallelism", q.max_parallelism, Some(parallelism)),
            item("max_streams", q.max_streams, Some(streams)),
            item("max_message_bytes", q.max_message_bytes, None),
            item("max_ingest_rate", q.max_ingest_rate, None),
            item("max_storage_bytes", q.max_storage_bytes, storage),
            item("max_connections", q.max_connections, None),
        ],
    }))
}
