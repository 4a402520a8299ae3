//! Secrets at rest: connection credentials and tokens (a NATS cluster's credentials, a webhook
//! token) are encrypted with AES-256-GCM under the server's secret key, bound to their tenant
//! and name, and never returned by the API: it shows only which secret fields are set.

use std::collections::BTreeMap;
use std::path::Path as FsPath;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::AuditNote;
use crate::body::JsonBody;
use crate::caller::Caller;
pub use crate::crypto::SecretCipher;
use crate::db::{now_ms, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::rbac::{Action, ApiResource};
use crate::state::AppState;
use crate::store;
use crate::store::secrets::SecretRow;

/// Errors of loading the secret key.
#[derive(Debug, thiserror::Error)]
pub enum SecretKeyError {
    /// Not base64 of 32 bytes.
    #[error(
        "the secret key must be 32 bytes, base64-encoded (make one with `head -c 32 /dev/urandom | base64`): {0}"
    )]
    Malformed(String),
    /// The key file cannot be read or written.
    #[error("secret key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Parses a base64 32-byte key.
pub fn key_from_base64(text: &str) -> Result<[u8; 32], SecretKeyError> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|e| SecretKeyError::Malformed(e.to_string()))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| SecretKeyError::Malformed(format!("decoded to {} bytes", b.len())))
}

/// Reads a key file (base64 text); with `create`, writes a new random key (mode 0600) when the
/// file does not exist.
pub fn key_from_file(path: &FsPath, create: bool) -> Result<[u8; 32], SecretKeyError> {
    let io = |source| SecretKeyError::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => key_from_base64(&text),
        Err(e) if create && e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            // Created 0600 from the start (never briefly readable by others), and only if
            // absent, so that two starting servers cannot overwrite each other's key.
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            use std::io::Write as _;
            options
                .open(path)
                .and_then(|mut f| f.write_all(STANDARD.encode(key).as_bytes()))
                .map_err(io)?;
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

/// A secret as the API shows it: never the secret values.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct SecretInfo {
    /// Name, unique in the tenant.
    pub name: String,
    /// What it is for: `nats-credentials`, `webhook-token`, ...
    pub kind: String,
    /// Non-secret settings (server URL, user name).
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// Names of the secret fields that are set.
    pub secret_fields: Vec<String>,
    /// When created.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// Body of `PUT /secrets/{name}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretWrite {
    /// What it is for (1-128 characters, no control characters).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069\\ufeff]*$"
    )]
    pub kind: String,
    /// Non-secret settings, returned as is.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: serde_json::Map<String, serde_json::Value>,
    /// Secret fields: write-only, stored encrypted.
    pub secret: BTreeMap<String, String>,
}

fn aad(tenant_id: &str, name: &str) -> String {
    format!("weir-secret/{tenant_id}/{name}")
}

fn info_of(r: SecretRow) -> ApiResult<SecretInfo> {
    Ok(SecretInfo {
        name: r.name,
        kind: r.kind,
        config: serde_json::from_str(&r.config).map_err(|e| ApiError::Internal(e.to_string()))?,
        secret_fields: serde_json::from_str(&r.secret_fields)
            .map_err(|e| ApiError::Internal(e.to_string()))?,
        created_at: rfc3339(r.created_at),
        updated_at: rfc3339(r.updated_at),
    })
}

async fn find(state: &AppState, tenant_id: &str, name: &str) -> ApiResult<SecretRow> {
    store::secrets::find(state.db().pool(), tenant_id, name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("secret `{name}`")))
}

/// The decrypted secret fields of a tenant's secret, for server-side use (never sent by the API).
pub async fn reveal(
    state: &AppState,
    tenant_id: &str,
    name: &str,
) -> ApiResult<BTreeMap<String, String>> {
    let row = find(state, tenant_id, name).await?;
    let plain = state
        .cipher()
        .open(&row.ciphertext, &aad(tenant_id, name))?;
    serde_json::from_slice(&plain).map_err(|e| ApiError::Internal(e.to_string()))
}

/// List the tenant's secrets (without their values).
#[utoipa::path(get, path = "/api/v1/secrets", tag = "secrets",
    responses((status = 200, body = Vec<SecretInfo>), (status = 403, body = crate::error::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<SecretInfo>>> {
    caller.require(ApiResource::Secrets, Action::Read)?;
    let rows = store::secrets::list(state.db().pool(), &caller.tenant_id).await?;
    Ok(Json(
        rows.into_iter().map(info_of).collect::<ApiResult<_>>()?,
    ))
}

/// Get a secret's kind, settings and which fields are set (never the values).
#[utoipa::path(get, path = "/api/v1/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "Secret name")),
    responses((status = 200, body = SecretInfo), (status = 404, body = crate::error::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<SecretInfo>> {
    caller.require(ApiResource::Secrets, Action::Read)?;
    Ok(Json(info_of(
        find(&state, &caller.tenant_id, &name).await?,
    )?))
}

/// Create or replace a secret; `secret` fields are encrypted and write-only.
#[utoipa::path(put, path = "/api/v1/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "Secret name")), request_body = SecretWrite,
    responses((status = 200, body = SecretInfo), (status = 201, body = SecretInfo),
              (status = 422, body = crate::error::Problem)))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<SecretWrite>,
) -> ApiResult<Response> {
    crate::tenants::check_name("secret name", &name)?;
    if body.kind.trim().is_empty() {
        return Err(ApiError::Unprocessable(
            "a secret needs a `kind` saying what it is for".into(),
        ));
    }
    crate::text::check_text("the secret kind", &body.kind, crate::text::MAX_NAME, false)?;
    let existing = find(&state, &caller.tenant_id, &name).await.ok();
    caller.require(
        ApiResource::Secrets,
        if existing.is_some() {
            Action::Update
        } else {
            Action::Create
        },
    )?;
    let plain = serde_json::to_vec(&body.secret).map_err(|e| ApiError::Internal(e.to_string()))?;
    let sealed = state
        .cipher()
        .seal(&plain, &aad(&caller.tenant_id, &name))?;
    let fields: Vec<&String> = body.secret.keys().collect();
    let fields = serde_json::to_string(&fields).unwrap_or_default();
    let config = serde_json::to_string(&body.config).unwrap_or_default();
    let write = store::secrets::SecretWrite {
        kind: &body.kind,
        config: &config,
        secret_fields: &fields,
        ciphertext: &sealed,
    };
    store::secrets::upsert(
        state.db().writer(),
        &caller.tenant_id,
        &name,
        write,
        now_ms(),
    )
    .await?;
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let info = info_of(find(&state, &caller.tenant_id, &name).await?)?;
    Ok(AuditNote::diff(format!(
        "~ secret {name} kind {} fields {:?} (values not logged)",
        info.kind, info.secret_fields
    ))
    .attach((status, Json(info))))
}

/// Delete a secret.
#[utoipa::path(delete, path = "/api/v1/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "Secret name")),
    responses((status = 204), (status = 404, body = crate::error::Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(ApiResource::Secrets, Action::Delete)?;
    find(&state, &caller.tenant_id, &name).await?;
    store::secrets::delete(state.db().writer(), &caller.tenant_id, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_only_for_the_same_record_and_key() {
        let c = SecretCipher::new(&[7u8; 32]);
        let sealed = c.seal(b"token", "weir-secret/t1/a").unwrap();
        assert!(!sealed.contains("token"));
        assert_eq!(c.open(&sealed, "weir-secret/t1/a").unwrap(), b"token");
        assert!(c.open(&sealed, "weir-secret/t2/a").is_err());
        assert!(
            SecretCipher::new(&[8u8; 32])
                .open(&sealed, "weir-secret/t1/a")
                .is_err()
        );
    }

    #[test]
    fn keys_must_be_32_bytes() {
        assert!(key_from_base64(&STANDARD.encode([1u8; 32])).is_ok());
        assert!(key_from_base64(&STANDARD.encode([1u8; 16])).is_err());
        assert!(key_from_base64("not base64!").is_err());
    }
}
