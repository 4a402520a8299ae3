//! The `users` table: a tenant's users, unique by (tenant, lowercase email).

use crate::db::now_ms;

/// One stored user.
#[derive(sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub role: String,
    /// The argon2id hash, when a password is set.
    pub password_hash: Option<String>,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
}

/// A user to store.
pub struct NewUser<'a> {
    pub id: &'a str,
    pub tenant_id: &'a str,
    pub email: &'a str,
    pub password_hash: Option<String>,
    pub role: &'a str,
}

const SELECT: &str = "SELECT id, email, role, password_hash, created_at, last_login_at FROM users";

/// The tenant's user `id`.
pub async fn find(
    pool: &sqlx::AnyPool,
    tenant_id: &str,
    id: &str,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE tenant_id = $1 AND id = $2"))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// The tenant's users by email.
pub async fn list(pool: &sqlx::AnyPool, tenant_id: &str) -> Result<Vec<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE tenant_id = $1 ORDER BY email"))
        .bind(tenant_id)
        .fetch_all(pool)
        .await
}

/// The role of the tenant's user `id`.
pub async fn role_of(
    pool: &sqlx::AnyPool,
    tenant_id: &str,
    id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT role FROM users WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Whether a user of the tenant has this normalized email.
pub async fn email_taken(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &str,
    email: &str,
) -> Result<bool, sqlx::Error> {
    let found: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE tenant_id = $1 AND lower(email) = $2")
            .bind(tenant_id)
            .bind(email)
            .fetch_one(conn)
            .await?;
    Ok(found > 0)
}

/// How many of the tenant's users hold `role`.
pub async fn holders_of(
    pool: &sqlx::AnyPool,
    tenant_id: &str,
    role: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE tenant_id = $1 AND role = $2")
        .bind(tenant_id)
        .bind(role)
        .fetch_one(pool)
        .await
}

/// How many admins of the system tenant hold a working API key now.
pub async fn platform_admins_with_keys(conn: &mut sqlx::AnyConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM api_keys k JOIN users u ON u.id = k.user_id \
         JOIN tenants t ON t.id = u.tenant_id \
         WHERE t.is_system = 1 AND u.role = 'admin' AND k.revoked_at IS NULL \
         AND (k.expires_at IS NULL OR k.expires_at > $1)",
    )
    .bind(now_ms())
    .fetch_one(conn)
    .await
}

/// Stores a user.
pub async fn insert<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    db: E,
    u: NewUser<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (id, tenant_id, email, password_hash, role, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(u.id)
    .bind(u.tenant_id)
    .bind(u.email)
    .bind(u.password_hash)
    .bind(u.role)
    .bind(now_ms())
    .execute(db)
    .await
    .map(|_| ())
}

/// Gives user `id` the role `role`.
pub async fn set_role(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    role: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
        .bind(role)
        .bind(id)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Sets user `id`'s password hash and ends every login session of the user.
pub async fn set_password(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(hash)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
        .bind(now_ms())
        .bind(id)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Removes user `id` with their sessions and API keys.
pub async fn delete(conn: &mut sqlx::AnyConnection, id: &str) -> Result<(), sqlx::Error> {
    for sql in [
        "DELETE FROM sessions WHERE user_id = $1",
        "DELETE FROM api_keys WHERE user_id = $1",
        "DELETE FROM users WHERE id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *conn).await?;
    }
    Ok(())
}

/// The tenant's oldest admin, the one with email `preferred` first.
pub async fn oldest_admin(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &str,
    preferred: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM users WHERE tenant_id = $1 AND role = 'admin' \
         ORDER BY CASE WHEN email = $2 THEN 0 ELSE 1 END, created_at, id",
    )
    .bind(tenant_id)
    .bind(preferred)
    .fetch_optional(conn)
    .await
}
