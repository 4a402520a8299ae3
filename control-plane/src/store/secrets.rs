//! The `secrets` table: a tenant's named secrets, their values sealed (`crypto`).

use crate::db::new_id;

/// One stored secret.
#[derive(sqlx::FromRow)]
pub struct SecretRow {
    pub name: String,
    pub kind: String,
    /// Non-secret settings, a JSON object.
    pub config: String,
    /// The names of the sealed fields, a JSON array.
    pub secret_fields: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// The sealed fields (base64 of nonce and ciphertext).
    pub ciphertext: String,
}

/// What a write stores.
pub struct SecretWrite<'a> {
    pub kind: &'a str,
    pub config: &'a str,
    pub secret_fields: &'a str,
    pub ciphertext: &'a str,
}

const COLUMNS: &str = "name, kind, config, secret_fields, created_at, updated_at, ciphertext";

/// The tenant's secret `name`.
pub async fn find(
    pool: &sqlx::AnyPool,
    tenant_id: &str,
    name: &str,
) -> Result<Option<SecretRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM secrets WHERE tenant_id = $1 AND name = $2"
    ))
    .bind(tenant_id)
    .bind(name)
    .fetch_optional(pool)
    .await
}

/// The tenant's secrets by name.
pub async fn list(pool: &sqlx::AnyPool, tenant_id: &str) -> Result<Vec<SecretRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM secrets WHERE tenant_id = $1 ORDER BY name"
    ))
    .bind(tenant_id)
    .fetch_all(pool)
    .await
}

/// Stores the tenant's secret `name`, replacing it when it exists (its id and creation time
/// stay).
pub async fn upsert(
    writer: &sqlx::AnyPool,
    tenant_id: &str,
    name: &str,
    w: SecretWrite<'_>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO secrets (id, tenant_id, name, kind, config, secret_fields, ciphertext, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (tenant_id, name) DO UPDATE SET kind = excluded.kind, \
         config = excluded.config, secret_fields = excluded.secret_fields, \
         ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
    )
    .bind(new_id())
    .bind(tenant_id)
    .bind(name)
    .bind(w.kind)
    .bind(w.config)
    .bind(w.secret_fields)
    .bind(w.ciphertext)
    .bind(now)
    .bind(now)
    .execute(writer)
    .await
    .map(|_| ())
}

/// Removes the tenant's secret `name`.
pub async fn delete(
    writer: &sqlx::AnyPool,
    tenant_id: &str,
    name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM secrets WHERE tenant_id = $1 AND name = $2")
        .bind(tenant_id)
        .bind(name)
        .execute(writer)
        .await
        .map(|_| ())
}
