//! Password login and sessions: `POST /auth/login` (email and password; emails may be users
//! of several tenants), `/auth/refresh` (single-use rotating refresh tokens), `/auth/logout`
//! and `/auth/me`. Unknown emails cost what a wrong password costs (a dummy hash).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use crate::audit::{AuditNote, SourceAddr};
use crate::auth::{hash_now, hash_secret, hasher, random_token};
use crate::body::JsonBody;
use crate::caller::Caller;
use crate::db::{new_id, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A hash of a random password with the parameters of new passwords: logins of unknown
/// emails (or of users without a password) verify against it, so that they take as long as
/// a wrong password and timing does not tell which emails exist.
fn dummy_hash(state: &AppState) -> String {
    state
        .dummy_password_hash()
        .get_or_init(|| {
            let mut bytes = [0u8; 16];
            rand::rng().fill_bytes(&mut bytes);
            hash_now(&hasher(state.settings()), &bytes).unwrap_or_default()
        })
        .clone()
}

/// Computes the dummy hash ahead of the first login (startup), off the async threads.
pub async fn warm_up(state: &AppState) {
    let state = state.clone();
    let _ = tokio::task::spawn_blocking(move || dummy_hash(&state)).await;
}

/// Verifies `password` against `hash`, or against the dummy hash (always false) without one.
async fn verify_password(state: &AppState, password: String, hash: Option<String>) -> bool {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        let real = hash.is_some();
        let hash = hash.unwrap_or_else(|| dummy_hash(&state));
        // Overlong input is refused at the same cost as a wrong password.
        let password = if password.len() > crate::users::MAX_PASSWORD {
            ""
        } else {
            password.as_str()
        };
        let ok = PasswordHash::new(&hash)
            .map(|parsed| {
                argon2::Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        ok && real && !password.is_empty()
    })
    .await
    .unwrap_or(false)
}

/// Body of `POST /auth/login`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The user's email (any case; compared lowercase, Unicode NFKC).
    #[schema(max_length = 254)]
    pub email: String,
    /// The user's password.
    #[schema(max_length = 1024)]
    pub password: String,
    /// The tenant to log in to (its name). Needed only when the same email and password are
    /// a user of several tenants (the login then answers 409 `tenant_required`).
    #[serde(default)]
    #[schema(max_length = 63)]
    pub tenant: Option<String>,
}

/// Body of `POST /auth/refresh`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token of the last login or refresh.
    pub refresh_token: String,
}

/// A token pair.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TokenPair {
    /// Bearer token for API calls.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Single-use token for `POST /auth/refresh`.
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: i64,
}

/// The caller as the API shows it.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Me {
    /// User id.
    pub user_id: String,
    /// Email.
    pub email: String,
    /// Tenant name.
    pub tenant: String,
    /// Role name.
    pub role: String,
    /// The role's grants.
    pub permissions: Vec<String>,
    /// May manage tenants.
    pub platform_admin: bool,
}

async fn issue_session(
    state: &AppState,
    family_id: &str,
    tenant_id: &str,
    user_id: &str,
) -> ApiResult<TokenPair> {
    let access = random_token("wat_");
    let refresh = random_token("wrt_");
    let now = now_ms();
    let access_ttl = state.settings().access_ttl.as_millis() as i64;
    let refresh_ttl = state.settings().refresh_ttl.as_millis() as i64;
    sqlx::query(
        "INSERT INTO sessions (id, family_id, tenant_id, user_id, access_hash, refresh_hash, \
         access_expires_at, refresh_expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(new_id())
    .bind(family_id)
    .bind(tenant_id)
    .bind(user_id)
    .bind(hash_secret(&access))
    .bind(hash_secret(&refresh))
    .bind(now + access_ttl)
    .bind(now + refresh_ttl)
    .bind(now)
    .execute(state.db().writer())
    .await?;
    Ok(TokenPair {
        access_token: access,
        token_type: "Bearer".into(),
        expires_in: access_ttl / 1000,
        refresh_token: refresh,
        refresh_expires_in: refresh_ttl / 1000,
    })
}

/// Log in with email and password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses((status = 200, body = TokenPair), (status = 401, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem),
              (status = 429, body = crate::error::Problem)))]
pub async fn login(
    State(state): State<AppState>,
    source: SourceAddr,
    JsonBody(body): JsonBody<LoginRequest>,
) -> Response {
    let email = crate::users::normalize_email(&body.email);
    let mut note = AuditNote {
        actor: Some(crate::text::bounded(&email, crate::users::MAX_EMAIL + 1)),
        ..AuditNote::default()
    };
    let result: ApiResult<TokenPair> = async {
        state.login_limiter().check(&email, &source.0)?;
        let candidates = login_candidates(&state, &email, body.tenant.as_deref()).await?;
        // A failed login shows up in the audit log of the tenant whose user was tried.
        if let [only] = candidates.as_slice() {
            note.tenant_id = Some(only.tenant_id.clone());
        }
        let matched = verify_candidates(&state, &body.password, candidates).await;
        let (user_id, tenant_id) = match matched.as_slice() {
            [one] => (one.user_id.clone(), one.tenant_id.clone()),
            [] => {
                state.login_limiter().record_failure(&email, &source.0);
                return Err(ApiError::Unauthenticated("wrong email or password".into()));
            }
            several => {
                let names: Vec<&str> = several.iter().map(|c| c.tenant_name.as_str()).collect();
                return Err(ApiError::Guarded {
                    code: "tenant_required",
                    detail: format!(
                        "this email and password are a user of several tenants ({}); \
                         log in again with `tenant` set to one of them",
                        names.join(", ")
                    ),
                });
            }
        };
        state.login_limiter().clear(&email, &source.0);
        sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(&user_id)
            .execute(state.db().writer())
            .await?;
        issue_session(&state, &new_id(), &tenant_id, &user_id).await
    }
    .await;
    let mut response = match result {
        Ok(pair) => Json(pair).into_response(),
        Err(err) => err.into_response(),
    };
    response.extensions_mut().insert(note);
    response
}

/// Most accounts one login tries (one email in this many tenants); each costs a password
/// verification, so the bound keeps a login's work bounded whatever other tenants do.
const MAX_LOGIN_CANDIDATES: i64 = 16;

/// An account a login may be for.
struct LoginCandidate {
    user_id: String,
    tenant_id: String,
    tenant_name: String,
    password_hash: Option<String>,
}

/// The accounts with this (normalized) email, in `tenant` when given, oldest first.
async fn login_candidates(
    state: &AppState,
    email: &str,
    tenant: Option<&str>,
) -> ApiResult<Vec<LoginCandidate>> {
    if email.chars().count() > crate::users::MAX_EMAIL {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT u.id, u.tenant_id, t.name, u.password_hash FROM users u \
         JOIN tenants t ON t.id = u.tenant_id \
         WHERE lower(u.email) = $1 AND ($2 = '' OR t.name = $2) \
         ORDER BY u.created_at, u.id LIMIT $3",
    )
    .bind(email)
    .bind(tenant.unwrap_or(""))
    .bind(MAX_LOGIN_CANDIDATES)
    .fetch_all(state.db().pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(LoginCandidate {
                user_id: row.try_get(0)?,
                tenant_id: row.try_get(1)?,
                tenant_name: row.try_get(2)?,
                password_hash: row.try_get(3)?,
            })
        })
        .collect()
}

/// The candidates whose password is `password`. Without candidates the dummy hash is verified
/// once, so that an unknown email costs what a wrong password costs.
async fn verify_candidates(
    state: &AppState,
    password: &str,
    candidates: Vec<LoginCandidate>,
) -> Vec<LoginCandidate> {
    if candidates.is_empty() {
        verify_password(state, password.to_string(), None).await;
        return Vec::new();
    }
    let mut matched = Vec::new();
    for candidate in candidates {
        let hash = candidate.password_hash.clone();
        if verify_password(state, password.to_string(), hash).await {
            matched.push(candidate);
        }
    }
    matched
}

/// Exchange a refresh token for a new token pair. The old refresh token stops working; using it
/// again revokes every token of the session.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses((status = 200, body = TokenPair), (status = 401, body = crate::error::Problem)))]
pub async fn refresh(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> ApiResult<Json<TokenPair>> {
    let now = now_ms();
    let row = sqlx::query(
        "SELECT id, family_id, tenant_id, user_id, refresh_expires_at, rotated_at, revoked_at \
         FROM sessions WHERE refresh_hash = $1",
    )
    .bind(hash_secret(&body.refresh_token))
    .fetch_optional(state.db().pool())
    .await?
    .ok_or_else(|| ApiError::Unauthenticated("unknown refresh token; log in again".into()))?;
    let id: String = row.try_get(0)?;
    let family: String = row.try_get(1)?;
    let rotated_at: Option<i64> = row.try_get(5)?;
    let revoked_at: Option<i64> = row.try_get(6)?;
    if rotated_at.is_some() {
        // Reuse of a spent refresh token: someone else may hold it. End the whole session.
        sqlx::query(
            "UPDATE sessions SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(&family)
        .execute(state.db().writer())
        .await?;
        return Err(ApiError::Unauthenticated(
            "this refresh token was already used; the session is revoked, log in again".into(),
        ));
    }
    if revoked_at.is_some() {
        return Err(ApiError::Unauthenticated(
            "this session was revoked; log in again".into(),
        ));
    }
    if row.try_get::<i64, _>(4)? <= now {
        return Err(ApiError::Unauthenticated(
            "refresh token expired; log in again".into(),
        ));
    }
    // Spend the token; the conditional update makes concurrent refreshes race safely.
    let spent = sqlx::query(
        "UPDATE sessions SET rotated_at = $1, revoked_at = $2 WHERE id = $3 AND rotated_at IS NULL",
    )
    .bind(now)
    .bind(now)
    .bind(&id)
    .execute(state.db().writer())
    .await?;
    if spent.rows_affected() != 1 {
        return Err(ApiError::Unauthenticated(
            "this refresh token was already used; log in again".into(),
        ));
    }
    let tenant_id: String = row.try_get(2)?;
    let user_id: String = row.try_get(3)?;
    Ok(Json(
        issue_session(&state, &family, &tenant_id, &user_id).await?,
    ))
}

/// End the caller's login session (its access and refresh tokens).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204), (status = 401, body = crate::error::Problem)))]
pub async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    let Some(session) = caller.session_id else {
        return Err(ApiError::bad_request(
            "not_a_session",
            "you are authenticated by API key; revoke it with DELETE /api/v1/api-keys/{id}",
        ));
    };
    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE family_id = (SELECT family_id FROM sessions WHERE id = $2)")
        .bind(now_ms())
        .bind(session)
        .execute(state.db().writer())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who am I.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses((status = 200, body = Me), (status = 401, body = crate::error::Problem)))]
pub async fn me(caller: Caller) -> Json<Me> {
    Json(Me {
        user_id: caller.user_id,
        email: caller.email,
        tenant: caller.tenant_name,
        role: caller.role,
        permissions: caller.permissions.to_strings(),
        platform_admin: caller.platform_admin,
    })
}
