//! Tenant quotas: limits on pipelines, total parallelism, streams (enforced here, by the API),
//! on message size and ingest rate (stored here, enforced by workers), and on JetStream storage
//! and connections (set on the tenant's NATS account, enforced by nats-server).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use sqlx::{Any, Executor, Row};
use utoipa::ToSchema;

use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::rbac::{Action, ApiResource};
use crate::state::AppState;

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
    sqlx::query(
        "INSERT INTO quotas (tenant_id, max_pipelines, max_parallelism, max_message_bytes, \
         max_ingest_rate, max_streams, max_storage_bytes, max_connections) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (tenant_id) DO UPDATE SET max_pipelines = excluded.max_pipelines, \
         max_parallelism = excluded.max_parallelism, max_message_bytes = excluded.max_message_bytes, \
         max_ingest_rate = excluded.max_ingest_rate, max_streams = excluded.max_streams, \
         max_storage_bytes = excluded.max_storage_bytes, max_connections = excluded.max_connections",
    )
    .bind(tenant_id)
    .bind(q.max_pipelines)
    .bind(q.max_parallelism)
    .bind(q.max_message_bytes)
    .bind(q.max_ingest_rate)
    .bind(q.max_streams)
    .bind(q.max_storage_bytes)
    .bind(q.max_connections)
    .execute(db)
    .await
    .map(|_| ())
}

/// A tenant's quotas (unlimited when none are stored).
pub async fn load<'e, E: Executor<'e, Database = Any>>(
    db: E,
    tenant_id: &str,
) -> Result<Quotas, sqlx::Error> {
    let row = sqlx::query(
        "SELECT max_pipelines, max_parallelism, max_message_bytes, max_ingest_rate, max_streams, \
         max_storage_bytes, max_connections FROM quotas WHERE tenant_id = $1",
    )
    .bind(tenant_id)
    .fetch_optional(db)
    .await?;
    Ok(match row {
        None => Quotas::default(),
        Some(r) => Quotas {
            max_pipelines: r.try_get(0)?,
            max_parallelism: r.try_get(1)?,
            max_message_bytes: r.try_get(2)?,
            max_ingest_rate: r.try_get(3)?,
            max_streams: r.try_get(4)?,
            max_storage_bytes: r.try_get(5)?,
            max_connections: r.try_get(6)?,
        },
    })
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
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM pipelines WHERE tenant_id = $1), \
         (SELECT CAST(COALESCE(SUM(parallelism), 0) AS BIGINT) FROM pipelines WHERE tenant_id = $1), \
         (SELECT COUNT(*) FROM streams WHERE tenant_id = $1)",
    )
    .bind(tenant_id)
    .fetch_one(state.db().pool())
    .await?;
    Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
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
