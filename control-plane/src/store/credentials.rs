//! Bearer credentials as the gate reads them: an API key or a login session's access token,
//! found by the SHA-256 of its secret, with its user and tenant.

/// A credential with whom it acts as.
#[derive(sqlx::FromRow)]
pub struct CredentialRow {
    /// The key's or the session's id.
    pub credential_id: String,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// When a key was last used (always none for sessions).
    pub last_used_at: Option<i64>,
    pub user_id: String,
    pub email: String,
    pub role: String,
    pub tenant_id: String,
    pub tenant_name: String,
    /// 1 for the system tenant.
    pub tenant_is_system: i64,
}

/// Whether a credential still works, and its user's role now.
#[derive(sqlx::FromRow)]
pub struct StandingRow {
    pub revoked_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub role: String,
}

/// The API key whose secret hashes to `hash`.
pub async fn key_by_hash(
    pool: &sqlx::AnyPool,
    hash: &str,
) -> Result<Option<CredentialRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT k.id AS credential_id, k.expires_at AS expires_at, k.revoked_at AS revoked_at, \
         k.last_used_at AS last_used_at, u.id AS user_id, u.email AS email, u.role AS role, \
         t.id AS tenant_id, t.name AS tenant_name, t.is_system AS tenant_is_system \
         FROM api_keys k JOIN users u ON u.id = k.user_id JOIN tenants t ON t.id = k.tenant_id \
         WHERE k.key_hash = $1",
    )
    .bind(hash)
    .fetch_optional(pool)
    .await
}

/// The login session whose access token hashes to `hash`.
pub async fn session_by_access_hash(
    pool: &sqlx::AnyPool,
    hash: &str,
) -> Result<Option<CredentialRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.id AS credential_id, s.access_expires_at AS expires_at, \
         s.revoked_at AS revoked_at, CAST(NULL AS BIGINT) AS last_used_at, u.id AS user_id, \
         u.email AS email, u.role AS role, t.id AS tenant_id, t.name AS tenant_name, \
         t.is_system AS tenant_is_system \
         FROM sessions s JOIN users u ON u.id = s.user_id JOIN tenants t ON t.id = s.tenant_id \
         WHERE s.access_hash = $1",
    )
    .bind(hash)
    .fetch_optional(pool)
    .await
}

/// Records that key `key_id` was used at `now`.
pub async fn touch_key(
    conn: &mut sqlx::AnyConnection,
    key_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
        .bind(now)
        .bind(key_id)
        .execute(conn)
        .await
        .map(|_| ())
}

/// The standing of API key `key_id`.
pub async fn key_standing(
    pool: &sqlx::AnyPool,
    key_id: &str,
) -> Result<Option<StandingRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT k.revoked_at AS revoked_at, k.expires_at AS expires_at, u.role AS role \
         FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = $1",
    )
    .bind(key_id)
    .fetch_optional(pool)
    .await
}

/// The standing of login session `session_id`. An access token that merely expired keeps an
/// open stream: the session is what a logout or a password change revokes, so no expiry here.
pub async fn session_standing(
    pool: &sqlx::AnyPool,
    session_id: &str,
) -> Result<Option<StandingRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.revoked_at AS revoked_at, CAST(NULL AS BIGINT) AS expires_at, u.role AS role \
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1",
    )
    .bind(session_id)
    .fetch_optional(pool)
    .await
}
