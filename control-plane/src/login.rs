//! Password login and sessions: `POST /auth/login` (email and password; emails may be users
//! of several tenants), `/auth/refresh` (single-use rotating refresh tokens), `/auth/logout`
//! and `/auth/me`. Unknown emails cost what a wrong password costs (a dummy hash).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::{AuditNote, SourceAddr};
use crate::auth::{hash_now, hash_secret, hasher, random_token};
use crate::body::JsonBody;
use crate::caller::Caller;
use crate::db::{new_id, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::sessions::{self, LoginCandidate, NewSession};

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
    sessions::insert(
        state.db().writer(),
        NewSession {
            family_id,
            tenant_id,
            user_id,
            access_hash: &hash_secret(&access),
            refresh_hash: &hash_secret(&refresh),
            access_expires_at: now + access_ttl,
            refresh_expires_at: now + refresh_ttl,
            created_at: now,
        },
    )
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
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", security(()),
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
        sessions::record_login(state.db().writer(), &user_id, now_ms()).await?;
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

/// The accounts with this (normalized) email, in `tenant` when given, oldest first.
async fn login_candidates(
    state: &AppState,
    email: &str,
    tenant: Option<&str>,
) -> ApiResult<Vec<LoginCandidate>> {
    if email.chars().count() > crate::users::MAX_EMAIL {
        return Ok(Vec::new());
    }
    let pool = state.db().pool();
    let tenant = tenant.unwrap_or("");
    Ok(sessions::login_candidates(pool, email, tenant, MAX_LOGIN_CANDIDATES).await?)
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
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", security(()),
    request_body = RefreshRequest,
    responses((status = 200, body = TokenPair), (status = 401, body = crate::error::Problem)))]
pub async fn refresh(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> ApiResult<Json<TokenPair>> {
    let now = now_ms();
    let writer = state.db().writer();
    let row = sessions::by_refresh_hash(state.db().pool(), &hash_secret(&body.refresh_token))
        .await?
        .ok_or_else(|| ApiError::Unauthenticated("unknown refresh token; log in again".into()))?;
    if row.rotated_at.is_some() {
        // Reuse of a spent refresh token: someone else may hold it. End the whole session.
        sessions::revoke_family(writer, &row.family_id, now).await?;
        return Err(ApiError::Unauthenticated(
            "this refresh token was already used; the session is revoked, log in again".into(),
        ));
    }
    if row.revoked_at.is_some() {
        return Err(ApiError::Unauthenticated(
            "this session was revoked; log in again".into(),
        ));
    }
    if row.refresh_expires_at <= now {
        return Err(ApiError::Unauthenticated(
            "refresh token expired; log in again".into(),
        ));
    }
    if !sessions::spend(writer, &row.id, now).await? {
        return Err(ApiError::Unauthenticated(
            "this refresh token was already used; log in again".into(),
        ));
    }
    Ok(Json(
        issue_session(&state, &row.family_id, &row.tenant_id, &row.user_id).await?,
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
    sessions::revoke_family_of(state.db().writer(), &session, now_ms()).await?;
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
