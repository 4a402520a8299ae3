//! Authentication: who is calling. Bearer credentials are either API keys (`weir_…`, stored as
//! SHA-256 of a 256-bit secret) or access tokens (`wat_…`) from a password login. Access tokens
//! are opaque random strings stored hashed with a 15-minute expiry — revocable at once, unlike a
//! signed token — paired with a single-use rotating refresh token (`wrt_…`); presenting a used
//! refresh token again revokes its whole session family. The login endpoints are in `login`.

use rand::RngCore;
use sqlx::Row;

pub use crate::caller::Caller;
use crate::db::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::rbac::{self, Action, ApiResource, PermissionSet};
use crate::state::AppState;

pub use crate::crypto::{hash_secret, random_token};

/// The argon2id hasher of new passwords: memory and passes from the settings (the argon2
/// crate's recommended defaults unless tuned).
pub(crate) fn hasher(settings: &crate::state::Settings) -> argon2::Argon2<'static> {
    let params = argon2::Params::new(
        settings.argon2_memory_kib,
        settings.argon2_iterations,
        argon2::Params::DEFAULT_P_COST,
        None,
    )
    .unwrap_or_default();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

pub(crate) fn hash_now(hasher: &argon2::Argon2<'_>, password: &[u8]) -> ApiResult<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt_bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| ApiError::Internal(format!("argon2 salt: {e}")))?;
    hasher
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::Internal(format!("argon2: {e}")))
}

/// Hashes a password with argon2id (on a blocking thread).
pub async fn hash_password(state: &AppState, password: String) -> ApiResult<String> {
    let hasher = hasher(state.settings());
    tokio::task::spawn_blocking(move || hash_now(&hasher, password.as_bytes()))
        .await
        .map_err(|e| ApiError::Internal(format!("argon2 task: {e}")))?
}

/// The grants of `role` in `tenant_id`: a built-in role or a custom one.
pub async fn role_permissions(
    state: &AppState,
    tenant_id: &str,
    role: &str,
) -> ApiResult<PermissionSet> {
    if let Some(list) = rbac::builtin(role) {
        return PermissionSet::parse(&list).map_err(ApiError::Internal);
    }
    let row = sqlx::query("SELECT permissions FROM roles WHERE tenant_id = $1 AND name = $2")
        .bind(tenant_id)
        .bind(role)
        .fetch_optional(state.db().pool())
        .await?;
    let Some(row) = row else {
        // A deleted custom role grants nothing.
        return Ok(PermissionSet::default());
    };
    let list: Vec<String> = serde_json::from_str(&row.try_get::<String, _>(0)?)
        .map_err(|e| ApiError::Internal(format!("role permissions: {e}")))?;
    PermissionSet::parse(&list).map_err(ApiError::Internal)
}

/// Resolves a bearer credential to a caller, or says why it is refused.
pub async fn authenticate(state: &AppState, token: &str) -> ApiResult<Caller> {
    let hash = hash_secret(token);
    let now = now_ms();
    let (row, session_id) = if token.starts_with("wat_") {
        let row = sqlx::query(
            "SELECT s.access_expires_at, s.revoked_at, s.rotated_at, u.id, u.email, u.role, \
             t.id, t.name, t.is_system, s.id \
             FROM sessions s JOIN users u ON u.id = s.user_id JOIN tenants t ON t.id = s.tenant_id \
             WHERE s.access_hash = $1",
        )
        .bind(&hash)
        .fetch_optional(state.db().pool())
        .await?
        .ok_or_else(|| ApiError::Unauthenticated("unknown access token; log in again".into()))?;
        let sid: String = row.try_get(9)?;
        (row, Some(sid))
    } else {
        let row = sqlx::query(
            "SELECT k.expires_at, k.revoked_at, k.last_used_at, u.id, u.email, u.role, \
             t.id, t.name, t.is_system, k.id \
             FROM api_keys k JOIN users u ON u.id = k.user_id JOIN tenants t ON t.id = k.tenant_id \
             WHERE k.key_hash = $1",
        )
        .bind(&hash)
        .fetch_optional(state.db().pool())
        .await?
        .ok_or_else(|| ApiError::Unauthenticated("unknown API key".into()))?;
        (row, None)
    };
    let expires_at: Option<i64> = row.try_get(0)?;
    let revoked_at: Option<i64> = row.try_get(1)?;
    if revoked_at.is_some() {
        return Err(ApiError::Unauthenticated(
            if session_id.is_some() {
                "this access token was revoked; log in again"
            } else {
                "this API key was revoked; create a new one"
            }
            .into(),
        ));
    }
    if expires_at.is_some_and(|t| t <= now) {
        return Err(ApiError::Unauthenticated(
            if session_id.is_some() {
                "access token expired; use your refresh token at /api/v1/auth/refresh"
            } else {
                "this API key has expired; create a new one"
            }
            .into(),
        ));
    }
    if session_id.is_none() {
        // Record use, at most once a minute per key, to keep reads cheap; only when the
        // writer is free at once, so that no request waits behind other writes for this.
        let last_used: Option<i64> = row.try_get(2)?;
        if last_used.is_none_or(|t| now - t > 60_000)
            && let Some(mut conn) = state.db().writer().try_acquire()
        {
            let key_id: String = row.try_get(9)?;
            sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(key_id)
                .execute(&mut *conn)
                .await?;
        }
    }
    let tenant_id: String = row.try_get(6)?;
    let role: String = row.try_get(5)?;
    let permissions = role_permissions(state, &tenant_id, &role).await?;
    let is_system: i64 = row.try_get(8)?;
    let key_id = match session_id {
        Some(_) => None,
        None => Some(row.try_get::<String, _>(9)?),
    };
    Ok(Caller {
        key_id,
        platform_admin: is_system != 0 && role == "admin",
        user_id: row.try_get(3)?,
        email: row.try_get(4)?,
        tenant_name: row.try_get(7)?,
        tenant_id,
        role,
        permissions,
        session_id,
    })
}

/// Whether the credential `caller` was resolved from still works and its user still holds
/// `resource:action`: long-lived responses (the status event stream) ask this periodically
/// and end once a key or session is revoked, expires, or its user loses the permission.
pub async fn still_allowed(
    state: &AppState,
    caller: &Caller,
    resource: ApiResource,
    action: Action,
) -> bool {
    let now = now_ms();
    let row = match (&caller.key_id, &caller.session_id) {
        (Some(key), _) => {
            sqlx::query(
                "SELECT k.revoked_at, k.expires_at, u.role FROM api_keys k \
                 JOIN users u ON u.id = k.user_id WHERE k.id = $1",
            )
            .bind(key)
            .fetch_optional(state.db().pool())
            .await
        }
        (None, Some(session)) => {
            // An access token that merely expired keeps an open stream: the session is
            // what a logout or a password change revokes.
            sqlx::query(
                "SELECT s.revoked_at, CAST(NULL AS BIGINT), u.role FROM sessions s \
                 JOIN users u ON u.id = s.user_id WHERE s.id = $1",
            )
            .bind(session)
            .fetch_optional(state.db().pool())
            .await
        }
        (None, None) => return false,
    };
    let Ok(Some(row)) = row else {
        return false;
    };
    let revoked: Option<i64> = row.try_get(0).unwrap_or(Some(0));
    let expires: Option<i64> = row.try_get(1).unwrap_or(None);
    let Ok(role) = row.try_get::<String, _>(2) else {
        return false;
    };
    if revoked.is_some() || expires.is_some_and(|t| t <= now) {
        return false;
    }
    role_permissions(state, &caller.tenant_id, &role)
        .await
        .is_ok_and(|set| set.allows(resource, action))
}
