//! The `quotas` table (a tenant's limits, none = unlimited) and the usage counted against them.

use sqlx::{Any, Executor};

/// A tenant's stored limits.
#[derive(sqlx::FromRow, Default)]
pub struct QuotaRow {
    pub max_pipelines: Option<i64>,
    pub max_parallelism: Option<i64>,
    pub max_message_bytes: Option<i64>,
    pub max_ingest_rate: Option<i64>,
    pub max_streams: Option<i64>,
    pub max_storage_bytes: Option<i64>,
    pub max_connections: Option<i64>,
}

/// What a tenant uses of the limits the control plane counts.
#[derive(sqlx::FromRow)]
pub struct UsageRow {
    pub pipelines: i64,
    /// Sum of the pipelines' parallelism.
    pub parallelism: i64,
    pub streams: i64,
}

/// Stores (inserts or replaces) a tenant's limits.
pub async fn save<'e, E: Executor<'e, Database = Any>>(
    db: E,
    tenant_id: &str,
    q: &QuotaRow,
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

/// A tenant's stored limits, if any are stored.
pub async fn load<'e, E: Executor<'e, Database = Any>>(
    db: E,
    tenant_id: &str,
) -> Result<Option<QuotaRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT max_pipelines, max_parallelism, max_message_bytes, max_ingest_rate, max_streams, \
         max_storage_bytes, max_connections FROM quotas WHERE tenant_id = $1",
    )
    .bind(tenant_id)
    .fetch_optional(db)
    .await
}

/// A tenant's usage.
pub async fn usage(pool: &sqlx::AnyPool, tenant_id: &str) -> Result<UsageRow, sqlx::Error> {
    sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM pipelines WHERE tenant_id = $1) AS pipelines, \
         (SELECT CAST(COALESCE(SUM(parallelism), 0) AS BIGINT) FROM pipelines \
          WHERE tenant_id = $1) AS parallelism, \
         (SELECT COUNT(*) FROM streams WHERE tenant_id = $1) AS streams",
    )
    .bind(tenant_id)
    .fetch_one(pool)
    .await
}
