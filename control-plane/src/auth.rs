//! Authentication: who is calling. Bearer credentials are either API keys (`weir_…`, stored as
//! SHA-256 of a 256-bit secret) or access tokens (`wat_…`) from a password login. Access tokens
//! are opaque random strings stored hashed with a 15-minute expiry — revocable at once, unlike a
//! signed token — paired with a single-use rotating refresh token (`wrt_…`); presenting a used
//! refresh token again revokes its whole session family. The login endpoints are in `login`.

use rand::RngCore;

pub use crate::caller::Caller;
use crate::db::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::rbac::{self, Action, ApiResource, PermissionSet};
use crate::state::AppState;
use crate::store::credentials;

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
    let grants = crate::store::roles::grants(state.db().pool(), tenant_id, role).await?;
    let Some(grants) = grants else {
        // A deleted custom role grants nothing.
        return Ok(PermissionSet::default());
    };
    let list: Vec<String> = serde_json::from_str(&grants)
        .map_err(|e| ApiError::Internal(format!("role permissions: {e}")))?;
    PermissionSet::parse(&list).map_err(ApiError::Internal)
}

/// Resolves a bearer credential to a caller, or says why it is refused.
pub async fn authenticate(state: &AppState, token: &str) -> ApiResult<Caller> {
    let hash = hash_secret(token);
    let now = now_ms();
    let pool = state.db().pool();
    let session = token.starts_with("wat_");
    let row = if session {
        credentials::session_by_access_hash(pool, &hash)
            .await?
            .ok_or_else(|| ApiError::Unauthenticated("unknown access token; log in again".into()))?
    } else {
        credentials::key_by_hash(pool, &hash)
            .await?
            .ok_or_else(|| ApiError::Unauthenticated("unknown API key".into()))?
    };
    if row.revoked_at.is_some() {
        return Err(ApiError::Unauthenticated(
            if session {
                "this access token was revoked; log in again"
            } else {
                "this API key was revoked; create a new one"
            }
            .into(),
        ));
    }
    if row.expires_at.is_some_and(|t| t <= now) {
        return Err(ApiError::Unauthenticated(
            if session {
                "access token expired; use your refresh token at /api/v1/auth/refresh"
            } else {
                "this API key has expired; create a new one"
            }
            .into(),
        ));
    }
    // Record a key's use, at most once a minute per key, to keep reads cheap; only when the
    // writer is free at once, so that no request waits behind other writes for this.
    if !session
        && row.last_used_at.is_none_or(|t| now - t > 60_000)
        && let Some(mut conn) = state.db().writer().try_acquire()
    {
        credentials::touch_key(&mut conn, &row.credential_id, now).await?;
    }
    let permissions = role_permissions(state, &row.tenant_id, &row.role).await?;
    let (key_id, session_id) = if session {
        (None, Some(row.credential_id))
    } else {
        (Some(row.credential_id), None)
    };
    Ok(Caller {
        key_id,
        platform_admin: row.tenant_is_system != 0 && row.role == "admin",
        user_id: row.user_id,
        email: row.email,
        tenant_name: row.tenant_name,
        tenant_id: row.tenant_id,
        role: row.role,
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
    let pool = state.db().pool();
    let standing = match (&caller.key_id, &caller.session_id) {
        (Some(key), _) => credentials::key_standing(pool, key).await,
        (None, Some(session)) => credentials::session_standing(pool, session).await,
        (None, None) => return false,
    };
    let Ok(Some(standing)) = standing else {
        return false;
    };
    if standing.revoked_at.is_some() || standing.expires_at.is_some_and(|t| t <= now) {
        return false;
    }
    let role = standing.role;
    role_permissions(state, &caller.tenant_id, &role)
        .await
        .is_ok_and(|set| set.allows(resource, action))
}
