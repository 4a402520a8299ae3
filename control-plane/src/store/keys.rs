//! The `api_keys` table: a tenant's API keys, stored as the SHA-256 of their secret.

use crate::crypto::hash_secret;
use crate::db::{new_id, now_ms};

/// One stored key with its user's email.
#[derive(sqlx::FromRow)]
pub struct KeyRow {
    pub id: String,
    pub name: String,
    /// The first characters of the key, to recognize it.
    pub prefix: String,
    pub user_id: String,
    pub user_email: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

const SELECT: &str = "SELECT k.id AS id, k.name AS name, k.prefix AS prefix, \
                      k.user_id AS user_id, u.email AS user_email, k.created_at AS created_at, \
                      k.expires_at AS expires_at, k.revoked_at AS revoked_at, \
                      k.last_used_at AS last_used_at \
                      FROM api_keys k JOIN users u ON u.id = k.user_id";

/// The tenant's key `id`.
pub async fn find(
    pool: &sqlx::AnyPool,
    tenant_id: &str,
    id: &str,
) -> Result<Option<KeyRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE k.tenant_id = $1 AND k.id = $2"))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// The tenant's keys, oldest first.
pub async fn list(pool: &sqlx::AnyPool, tenant_id: &str) -> Result<Vec<KeyRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE k.tenant_id = $1 ORDER BY k.created_at, k.id"
    ))
    .bind(tenant_id)
    .fetch_all(pool)
    .await
}

/// Stores an API key (hashed) and returns its id.
pub async fn insert<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    db: E,
    tenant_id: &str,
    user_id: &str,
    name: &str,
    key: &str,
    expires_at: Option<i64>,
) -> Result<String, sqlx::Error> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, user_id, name, prefix, key_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(tenant_id)
    .bind(user_id)
    .bind(name)
    .bind(key.chars().take(12).collect::<String>())
    .bind(hash_secret(key))
    .bind(now_ms())
    .bind(expires_at)
    .execute(db)
    .await?;
    Ok(id)
}

/// Revokes key `id` unless it already is; whether this call revoked it.
pub async fn revoke(conn: &mut sqlx::AnyConnection, id: &str) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(id)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether a key with this secret is stored.
pub async fn known(conn: &mut sqlx::AnyConnection, key: &str) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE key_hash = $1")
        .bind(hash_secret(key))
        .fetch_one(conn)
        .await?;
    Ok(n > 0)
}
