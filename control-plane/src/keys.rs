//! API keys of a tenant: shown once at creation, stored as SHA-256 of a 256-bit secret, listed
//! by prefix, optionally expiring, revocable and rotatable (rotation revokes the old key).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::AuditNote;
use crate::auth::{Caller, random_token};
use crate::body::JsonBody;
use crate::db::{now_ms, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::rbac::{Action, ApiResource};
use crate::state::AppState;
use crate::store;
use crate::store::keys::{KeyRow, insert as insert_key};

/// An API key as listed (never the secret).
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ApiKeyInfo {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The first characters of the key, to recognize it.
    pub prefix: String,
    /// The user the key acts as.
    pub user_id: String,
    /// That user's email.
    pub user_email: String,
    /// When created.
    pub created_at: String,
    /// When it stops working.
    pub expires_at: Option<String>,
    /// When revoked.
    pub revoked_at: Option<String>,
    /// Last use (updated at most once a minute).
    pub last_used_at: Option<String>,
}

/// A new key; `key` is shown only here.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct NewApiKeyResult {
    /// The secret. Store it now: it cannot be shown again.
    pub key: String,
    /// The key's record.
    pub info: ApiKeyInfo,
}

/// Body of `POST /api-keys`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// Name, e.g. `ci-deploy` (1-128 characters, no control characters).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069\\ufeff]*$"
    )]
    pub name: String,
    /// Expiry time (RFC 3339); absent = never.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// The user the key acts as (default: the caller).
    pub user_id: Option<String>,
}

impl From<KeyRow> for ApiKeyInfo {
    fn from(r: KeyRow) -> Self {
        ApiKeyInfo {
            id: r.id,
            name: r.name,
            prefix: r.prefix,
            user_id: r.user_id,
            user_email: r.user_email,
            created_at: rfc3339(r.created_at),
            expires_at: r.expires_at.map(rfc3339),
            revoked_at: r.revoked_at.map(rfc3339),
            last_used_at: r.last_used_at.map(rfc3339),
        }
    }
}

/// The caller's tenant's key `id`, and its expiry (epoch ms).
async fn find(state: &AppState, caller: &Caller, id: &str) -> ApiResult<(ApiKeyInfo, Option<i64>)> {
    let row = store::keys::find(state.db().pool(), &caller.tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("API key `{id}`")))?;
    let expires_at = row.expires_at;
    Ok((row.into(), expires_at))
}

/// The role of a user of the caller's tenant.
async fn role_of(state: &AppState, caller: &Caller, user_id: &str) -> ApiResult<String> {
    store::users::role_of(state.db().pool(), &caller.tenant_id, user_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("user `{user_id}`")))
}

/// A key for another user hands its secret to the caller: only admins (a role that holds every
/// permission) may mint one, and never for a user with more rights than theirs.
async fn require_may_mint_for(
    state: &AppState,
    caller: &Caller,
    user_id: &str,
    what: &str,
) -> ApiResult<()> {
    let role = role_of(state, caller, user_id).await?;
    if user_id == caller.user_id {
        return Ok(());
    }
    if !caller.permissions.is_everything() {
        return Err(ApiError::Escalation(format!(
            "{what}: only admins may hold a key that acts as another user; your role `{}` \
             may create keys for yourself only (leave out user_id)",
            caller.role
        )));
    }
    crate::users::require_covers(state, caller, &role, what).await
}

const LAST_KEY: &str = "this is the last working API key of a platform admin: create another \
                        key for a platform admin first, then revoke this one";

/// List the tenant's API keys.
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "keys",
    responses((status = 200, body = Vec<ApiKeyInfo>), (status = 403, body = crate::error::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ApiKeyInfo>>> {
    caller.require(ApiResource::Keys, Action::Read)?;
    let rows = store::keys::list(state.db().pool(), &caller.tenant_id).await?;
    Ok(Json(rows.into_iter().map(ApiKeyInfo::from).collect()))
}

/// Create an API key; the response is the only time the key is shown.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "keys", request_body = NewApiKey,
    responses((status = 201, body = NewApiKeyResult), (status = 404, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<NewApiKey>,
) -> ApiResult<Response> {
    caller.require(ApiResource::Keys, Action::Create)?;
    if body.name.trim().is_empty() {
        return Err(ApiError::Unprocessable("an API key needs a name".into()));
    }
    crate::text::check_text("the API key name", &body.name, crate::text::MAX_NAME, false)?;
    let expires_at = match &body.expires_at {
        Some(t) => {
            let ms = chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| {
                    ApiError::Unprocessable(format!(
                        "expires_at `{t}` is not an RFC 3339 time (2026-12-31T00:00:00Z): {e}"
                    ))
                })?
                .timestamp_millis();
            if ms <= now_ms() {
                return Err(ApiError::Unprocessable(format!(
                    "expires_at `{t}` is in the past"
                )));
            }
            Some(ms)
        }
        None => None,
    };
    let user_id = body
        .user_id
        .clone()
        .unwrap_or_else(|| caller.user_id.clone());
    require_may_mint_for(
        &state,
        &caller,
        &user_id,
        "you cannot create an API key for this user",
    )
    .await?;
    let key = random_token("weir_");
    let id = insert_key(
        state.db().writer(),
        &caller.tenant_id,
        &user_id,
        &body.name,
        &key,
        expires_at,
    )
    .await?;
    let (info, _) = find(&state, &caller, &id).await?;
    Ok(AuditNote {
        resource: Some(format!("/api/v1/api-keys/{id}")),
        diff: Some(format!(
            "+ api key {} ({}) for {}",
            info.name, info.prefix, info.user_email
        )),
        ..Default::default()
    }
    .attach((StatusCode::CREATED, Json(NewApiKeyResult { key, info }))))
}

/// Revoke an API key: it stops working at once.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "Key id")),
    responses((status = 204), (status = 404, body = crate::error::Problem)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(ApiResource::Keys, Action::Delete)?;
    let (key, _) = find(&state, &caller, &id).await?;
    if key.user_id != caller.user_id {
        let role = role_of(&state, &caller, &key.user_id).await?;
        crate::users::require_covers(
            &state,
            &caller,
            &role,
            "you cannot revoke a key of a user with more rights than yours",
        )
        .await?;
    }
    let mut tx = state.db().begin().await?;
    state.db().lock_tenant(&mut tx, &caller.tenant_id).await?;
    store::keys::revoke(&mut tx, &id).await?;
    if caller.tenant_name == crate::tenants::SYSTEM_TENANT {
        crate::users::ensure_platform_admin_remains(&mut tx, "last_platform_key", LAST_KEY).await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace a key with a new secret (same name, user and expiry); the old key is revoked.
#[utoipa::path(post, path = "/api/v1/api-keys/{id}/rotate", tag = "keys",
    params(("id" = String, Path, description = "Key id")),
    responses((status = 201, body = NewApiKeyResult), (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem)))]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.require(ApiResource::Keys, Action::Update)?;
    let (old, expires_at) = find(&state, &caller, &id).await?;
    if old.revoked_at.is_some() {
        return Err(ApiError::Conflict(format!(
            "API key `{id}` is revoked; create a new key instead"
        )));
    }
    require_may_mint_for(
        &state,
        &caller,
        &old.user_id,
        "you cannot rotate a key of another user",
    )
    .await?;
    let key = random_token("weir_");
    let mut tx = state.db().begin().await?;
    state.db().lock_tenant(&mut tx, &caller.tenant_id).await?;
    // Only one rotation of a key wins: the others find it revoked and get 409.
    if !store::keys::revoke(&mut tx, &id).await? {
        return Err(ApiError::Conflict(format!(
            "API key `{id}` was rotated or revoked meanwhile; use its successor or create a new key"
        )));
    }
    let new_id = insert_key(
        &mut *tx,
        &caller.tenant_id,
        &old.user_id,
        &old.name,
        &key,
        expires_at,
    )
    .await?;
    tx.commit().await?;
    let (info, _) = find(&state, &caller, &new_id).await?;
    Ok(AuditNote::diff(format!(
        "- api key {}\n+ api key {}",
        old.prefix, info.prefix
    ))
    .attach((StatusCode::CREATED, Json(NewApiKeyResult { key, info }))))
}
