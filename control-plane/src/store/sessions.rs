//! The `sessions` table (password logins: access and refresh tokens stored hashed, one family
//! per login that refreshes carry on), and the user lookups a login needs.

use crate::db::new_id;

/// A session to store.
pub struct NewSession<'a> {
    pub family_id: &'a str,
    pub tenant_id: &'a str,
    pub user_id: &'a str,
    pub access_hash: &'a str,
    pub refresh_hash: &'a str,
    pub access_expires_at: i64,
    pub refresh_expires_at: i64,
    pub created_at: i64,
}

/// A session as a refresh reads it.
#[derive(sqlx::FromRow)]
pub struct RefreshRow {
    pub id: String,
    pub family_id: String,
    pub tenant_id: String,
    pub user_id: String,
    pub refresh_expires_at: i64,
    /// Set once its refresh token was spent.
    pub rotated_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// An account a login may be for.
#[derive(sqlx::FromRow)]
pub struct LoginCandidate {
    pub user_id: String,
    pub tenant_id: String,
    pub tenant_name: String,
    pub password_hash: Option<String>,
}

/// Stores a session.
pub async fn insert(writer: &sqlx::AnyPool, s: NewSession<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sessions (id, family_id, tenant_id, user_id, access_hash, refresh_hash, \
         access_expires_at, refresh_expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(new_id())
    .bind(s.family_id)
    .bind(s.tenant_id)
    .bind(s.user_id)
    .bind(s.access_hash)
    .bind(s.refresh_hash)
    .bind(s.access_expires_at)
    .bind(s.refresh_expires_at)
    .bind(s.created_at)
    .execute(writer)
    .await
    .map(|_| ())
}

/// The session whose refresh token hashes to `hash`.
pub async fn by_refresh_hash(
    pool: &sqlx::AnyPool,
    hash: &str,
) -> Result<Option<RefreshRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, family_id, tenant_id, user_id, refresh_expires_at, rotated_at, revoked_at \
         FROM sessions WHERE refresh_hash = $1",
    )
    .bind(hash)
    .fetch_optional(pool)
    .await
}

/// Spends session `id`'s refresh token unless it was spent; whether this call spent it (the
/// conditional update makes concurrent refreshes race safely).
pub async fn spend(writer: &sqlx::AnyPool, id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE sessions SET rotated_at = $1, revoked_at = $2 WHERE id = $3 AND rotated_at IS NULL",
    )
    .bind(now)
    .bind(now)
    .bind(id)
    .execute(writer)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Revokes every session of family `family_id`.
pub async fn revoke_family(
    writer: &sqlx::AnyPool,
    family_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(family_id)
        .execute(writer)
        .await
        .map(|_| ())
}

/// Revokes every session of the family session `session_id` belongs to.
pub async fn revoke_family_of(
    writer: &sqlx::AnyPool,
    session_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sessions SET revoked_at = $1 \
         WHERE family_id = (SELECT family_id FROM sessions WHERE id = $2)",
    )
    .bind(now)
    .bind(session_id)
    .execute(writer)
    .await
    .map(|_| ())
}

/// The accounts with this (normalized) email, in the tenant named `tenant` when not empty,
/// oldest first, at most `limit`.
pub async fn login_candidates(
    pool: &sqlx::AnyPool,
    email: &str,
    tenant: &str,
    limit: i64,
) -> Result<Vec<LoginCandidate>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.id AS user_id, u.tenant_id AS tenant_id, t.name AS tenant_name, \
         u.password_hash AS password_hash FROM users u \
         JOIN tenants t ON t.id = u.tenant_id \
         WHERE lower(u.email) = $1 AND ($2 = '' OR t.name = $2) \
         ORDER BY u.created_at, u.id LIMIT $3",
    )
    .bind(email)
    .bind(tenant)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Records a successful login of `user_id`.
pub async fn record_login(
    writer: &sqlx::AnyPool,
    user_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2")
        .bind(now)
        .bind(user_id)
        .execute(writer)
        .await
        .map(|_| ())
}
