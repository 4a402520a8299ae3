//! The Confluent Schema Registry REST API under `/schema-registry`, so that Kafka clients and
//! tools (their `SchemaRegistryClient`s, serializers, CLIs) work unchanged: the same paths,
//! bodies, media type (`application/vnd.schemaregistry.v1+json`) and `{"error_code", "message"}`
//! errors. Credentials: HTTP Basic with a Weir API key as the password (the user name is free,
//! as clients send `basic.auth.user.info=<anything>:<key>`), or `Authorization: Bearer`.

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::compat::Level;
use super::error::RegistryError;
use super::formats::SchemaType;
use super::store::{Registry, SchemaInput, SchemaReference, SchemaVersion, VersionRef};
use crate::caller::Caller;
use crate::rbac::{Action, ApiResource};
use crate::state::AppState;

/// Where the API is mounted.
pub const BASE_PATH: &str = "/schema-registry";

/// The media type of every response.
pub const MEDIA_TYPE: &str = "application/vnd.schemaregistry.v1+json";

type Result<T> = std::result::Result<T, RegistryError>;

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let (status, code) = self.codes();
        let message = match &self {
            RegistryError::Internal(detail) => {
                tracing::error!(%detail, "schema registry: internal error");
                "internal server error".to_string()
            }
            other => other.to_string(),
        };
        body(status, &json!({"error_code": code, "message": message}))
    }
}

fn body(status: StatusCode, value: &impl Serialize) -> Response {
    let mut r = (status, serde_json::to_string(value).unwrap_or_default()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    r
}

fn ok(value: impl Serialize) -> Response {
    body(StatusCode::OK, &value)
}

/// The API's router (state applied by the caller): every route under [`BASE_PATH`] (full
/// paths, so that the audit log records them as called), behind the API's gate.
pub fn router(state: AppState) -> Router<AppState> {
    let p = |path: &str| format!("{BASE_PATH}{path}");
    let not_found = || async {
        body(
            StatusCode::NOT_FOUND,
            &json!({"error_code": 404, "message": "HTTP 404 Not Found"}),
        )
    };
    let routes = Router::new()
        .route(BASE_PATH, get(|| async { ok(json!({})) }))
        .route(
            &p("/schemas/types"),
            get(|| async { ok(["JSON", "PROTOBUF", "AVRO"]) }),
        )
        .route(&p("/subjects"), get(subjects))
        .route(
            &p("/subjects/{subject}"),
            post(lookup).delete(delete_subject),
        )
        .route(
            &p("/subjects/{subject}/versions"),
            get(versions).post(register),
        )
        .route(
            &p("/subjects/{subject}/versions/{version}"),
            get(version).delete(delete_version),
        )
        .route(
            &p("/subjects/{subject}/versions/{version}/schema"),
            get(version_schema),
        )
        .route(&p("/schemas/ids/{id}"), get(by_id))
        .route(&p("/schemas/ids/{id}/schema"), get(by_id_schema))
        .route(&p("/schemas/ids/{id}/subjects"), get(id_subjects))
        .route(&p("/schemas/ids/{id}/versions"), get(id_versions))
        .route(
            &p("/compatibility/subjects/{subject}/versions/{version}"),
            post(compatibility),
        )
        .route(
            &p("/compatibility/subjects/{subject}/versions"),
            post(compatibility_all),
        )
        .route(&p("/config"), get(get_default).put(put_default))
        .route(
            &p("/config/{subject}"),
            get(get_config).put(put_config).delete(delete_config),
        )
        .route_layer(middleware::from_fn_with_state(state, crate::audit::gate))
        .route_layer(middleware::from_fn(as_bearer));
    routes.route(&p("/{*rest}"), axum::routing::any(not_found))
}

/// The API key or token of a request: Basic (the password half, or the user half when the
/// password is empty) or Bearer.
fn credential(req: &Request) -> Result<Option<String>> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default();
    if let Some(token) = text.strip_prefix("Bearer ") {
        return Ok(Some(token.trim().to_string()));
    }
    let bad = || {
        RegistryError::Unauthenticated(
            "malformed Authorization header: expected `Basic base64(<user>:<Weir API key>)` or \
             `Bearer <Weir API key>`"
                .into(),
        )
    };
    let encoded = text.strip_prefix("Basic ").ok_or_else(bad)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (user, password) = decoded.split_once(':').ok_or_else(bad)?;
    let key = if password.is_empty() { user } else { password };
    Ok(Some(key.to_string()))
}

/// Turns the request's credential into the `Bearer` form that the API's gate
/// ([`crate::audit::gate`]: authentication and audit log) reads, and the gate's problem+json
/// refusals into Confluent's error shape.
async fn as_bearer(mut req: Request, next: Next) -> Response {
    let key = match credential(&req) {
        Ok(Some(key)) => key,
        Ok(None) => {
            return RegistryError::Unauthenticated(
                "missing credentials: send HTTP Basic auth with a Weir API key as the password \
                 (basic.auth.user.info=<user>:<key>) or `Authorization: Bearer <key>`"
                    .into(),
            )
            .into_response();
        }
        Err(e) => return e.into_response(),
    };
    match HeaderValue::from_str(&format!("Bearer {key}")) {
        Ok(v) => req.headers_mut().insert(header::AUTHORIZATION, v),
        Err(_) => {
            return RegistryError::Unauthenticated("the API key holds invalid characters".into())
                .into_response();
        }
    };
    let response = next.run(req).await;
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes()
                .starts_with(crate::error::PROBLEM_JSON.as_bytes())
        });
    if !is_problem {
        return response;
    }
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let detail = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|p| p["detail"].as_str().map(String::from))
        .unwrap_or_default();
    let code = if status.is_server_error() {
        50001
    } else {
        u32::from(status.as_u16()) * 100 + 1
    };
    body(status, &json!({"error_code": code, "message": detail}))
}

fn require(caller: &Caller, action: Action) -> Result<()> {
    caller
        .require(ApiResource::Schemas, action)
        .map_err(RegistryError::from)
}

fn registry(state: &AppState) -> Registry {
    Registry::new(state.db().clone())
}

/// Query flags; clients send booleans as `true`, `True` or `1`, so they are read leniently.
#[derive(Deserialize, Default)]
struct RawFlags {
    deleted: Option<String>,
    permanent: Option<String>,
    verbose: Option<String>,
    #[serde(rename = "defaultToGlobal")]
    default_to_global: Option<String>,
    format: Option<String>,
}

#[derive(Default)]
struct Flags {
    deleted: bool,
    permanent: bool,
    verbose: bool,
    default_to_global: bool,
    /// `format=serialized`: Protobuf schemas as a base64 `FileDescriptorProto` (what
    /// Confluent's Protobuf deserializers ask for), whatever form they were registered in.
    serialized: bool,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Flags {
    type Rejection = RegistryError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> std::result::Result<Self, Self::Rejection> {
        let Query(raw) = Query::<RawFlags>::from_request_parts(parts, state)
            .await
            .map_err(|e| RegistryError::BadRequest(e.body_text()))?;
        let on = |v: &Option<String>| {
            v.as_deref()
                .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
        };
        Ok(Flags {
            deleted: on(&raw.deleted),
            permanent: on(&raw.permanent),
            verbose: on(&raw.verbose),
            default_to_global: on(&raw.default_to_global),
            serialized: raw.format.as_deref() == Some("serialized"),
        })
    }
}

/// A schema in a request body (register, lookup, compatibility).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaBody {
    schema: String,
    #[serde(default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<SchemaReference>>,
}

fn read_schema(bytes: &Bytes) -> Result<SchemaInput> {
    let b: SchemaBody = serde_json::from_slice(bytes)
        .map_err(|e| RegistryError::BadRequest(format!("invalid request body: {e}")))?;
    let kind = match b.schema_type.as_deref() {
        None | Some("") => SchemaType::Avro,
        Some(t) => SchemaType::parse(t).map_err(RegistryError::InvalidSchema)?,
    };
    Ok(SchemaInput {
        kind,
        text: b.schema,
        references: b.references.unwrap_or_default(),
    })
}

/// A version as Confluent sends it (`schemaType` left out for Avro, `references` when empty).
fn version_json(v: &SchemaVersion) -> Value {
    let mut out = json!({
        "subject": v.subject,
        "version": v.version,
        "id": v.id,
        "schema": v.schema,
    });
    decorate(&mut out, v.schema_type, &v.references);
    out
}

fn decorate(out: &mut Value, kind: SchemaType, refs: &[SchemaReference]) {
    if kind != SchemaType::Avro {
        out["schemaType"] = json!(kind.as_str());
    }
    if !refs.is_empty() {
        out["references"] = json!(refs);
    }
}

async fn subjects(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    f: Flags,
) -> Result<Response> {
    require(&caller, Action::Read)?;
    Ok(ok(registry(&state)
        .subjects(&caller.tenant_id, f.deleted)
        .await?))
}

async fn versions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(subject): Path<String>,
    f: Flags,
) -> Result<Response> {
    require(&caller, Action::Read)?;
    let all = registry(&state)
        .versions(&caller.tenant_id, &subject, f.deleted)
        .await?;
    Ok(ok(all.iter().map(|v| v.version).collect::<Vec<_>>()))
}

async fn register(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(subject): Path<String>,
    bytes: Bytes,
) -> Result<Response> {
    require(&caller, Action::Create)?;
    let input = read_schema(&bytes)?;
    let v = registry(&state)
        .register(&caller.tenant_id, &subject, &input, &caller.email)
        .await?;
    Ok(ok(version_json(&v)))
}

async fn lookup(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(subject): Path<String>,
    bytes: Bytes,
) -> Result<Response> {
    require(&caller, Action::Read)?;
    let input = read_schema(&bytes)?;
    let v = registry(&state)
        .lookup(&caller.tenant_id, &subject, &input)
        .await?;
    Ok(ok(version_json(&v)))
}

async fn version(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((subject, version)): Path<(String, String)>,
    f: Flags,
) -> Result<Response> {
    require(&caller, Action::Read)?;
    let which = VersionRef::parse(&version)?;
    let reg = registry(&state);
    let mut v = reg
        .version(&caller.tenant_id, &subject, which, f.deleted)
        .await?;
    if f.serialized && v.schema_type == SchemaType::Protobuf {
        let input = SchemaInput {
            kind: v.schema_type,
            text: v.schema.clone(),
            references: v.references.clone(),
        };
        v.schema = serialized(&reg, &caller.tenant_id, &input).await?;
    }
    Ok(ok(version_json(&v)))
}

/// A Protobuf schema's compiled file as a base64 `FileDescriptorProto` (`format=serialized`;
/// the files it imports stay references).
async fn serialized(reg: &Registry, tenant: &str, s: &SchemaInput) -> Result<String> {
    let super::formats::Parsed::Protobuf { pool, file } = reg.parse(tenant, s).await? else {
        return Err(RegistryError::Internal("not a Protobuf schema".into()));
    };
    let file = pool
        .get_file_by_name(&file)
        .ok_or_else(|| RegistryError::Internal("the compiled file is missing".into()))?;
    let bytes = prost_reflect::prost::Message::encode_to_vec(file.file_descriptor_proto());
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

async fn version_schema(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Response> {
    require(&caller, Action::Read)?;
    let which = VersionRef::parse(&version)?;
    let v = registry(&state)
        .version(&caller.tenant_id, &subject, which, false)
        .await?;
    Ok(raw(v.schema))
}

fn raw(schema: String) -> Response {
    let mut r = schema.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    r
}

async fn by_id(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
    f: Flags,
) -> Result<Response> {
    require(&caller, Action::Read)?;
    let reg = registry(&state);
    let mut s = reg.by_id(&caller.tenant_id, id).await?;
    if f.serialized && s.kind == SchemaType::Protobuf {
        s.text = serialized(&reg, &caller.tenant_id, &s).await?;
    }
    let mut out = json!({"schema": s.text});
    decorate(&mut out, s.kind, &s.references);
    Ok(ok(out))
}

async fn by_id_schema(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
) -> Result<Response> {
    require(&caller, Action::Read)?;
    Ok(raw(registry(&state)
        .by_id(&caller.tenant_id, id)
        .await?
        .text))
}

async fn id_versions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
) -> Result<Response> {
    require(&caller, Action::Read)?;
    let uses = registry(&state).usages(&caller.tenant_id, id).await?;
    Ok(ok(uses
        .into_iter()
        .map(|(subject, version)| json!({"subject": subject, "version": version}))
        .collect::<Vec<_>>()))
}

async fn id_subjects(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
) -> Result<Response> {
    require(&caller, Action::Read)?;
    let mut subjects: Vec<String> = registry(&state)
        .usages(&caller.tenant_id, id)
        .await?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    subjects.dedup();
    Ok(ok(subjects))
}

async fn delete_subject(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(subject): Path<String>,
    f: Flags,
) -> Result<Response> {
    require(&caller, Action::Delete)?;
    Ok(ok(registry(&state)
        .delete_subject(&caller.tenant_id, &subject, f.permanent)
        .await?))
}

async fn delete_version(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((subject, version)): Path<(String, String)>,
    f: Flags,
) -> Result<Response> {
    require(&caller, Action::Delete)?;
    let which = VersionRef::parse(&version)?;
    Ok(ok(registry(&state)
        .delete_version(&caller.tenant_id, &subject, which, f.permanent)
        .await?))
}

fn verdict(problems: Vec<String>, verbose: bool) -> Response {
    let mut out = json!({"is_compatible": problems.is_empty()});
    if verbose || !problems.is_empty() {
        out["messages"] = json!(problems);
    }
    ok(out)
}

async fn compatibility(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((subject, version)): Path<(String, String)>,
    f: Flags,
    bytes: Bytes,
) -> Result<Response> {
    require(&caller, Action::Read)?;
    let which = VersionRef::parse(&version)?;
    let input = read_schema(&bytes)?;
    let reg = registry(&state);
    // `latest` checks what the subject's level checks (all versions when transitive).
    let which = match which {
        VersionRef::Latest => {
            reg.versions(&caller.tenant_id, &subject, false).await?;
            None
        }
        n => Some(n),
    };
    let problems = reg
        .incompatibilities(&caller.tenant_id, &subject, &input, which)
        .await?;
    Ok(verdict(problems, f.verbose))
}

async fn compatibility_all(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(subject): Path<String>,
    f: Flags,
    bytes: Bytes,
) -> Result<Response> {
    require(&caller, Action::Read)?;
    let input = read_schema(&bytes)?;
    let problems = registry(&state)
        .incompatibilities(&caller.tenant_id, &subject, &input, None)
        .await?;
    Ok(verdict(problems, f.verbose))
}

#[derive(Deserialize)]
struct ConfigBody {
    compatibility: String,
}

fn read_level(bytes: &Bytes) -> Result<Level> {
    let b: ConfigBody = serde_json::from_slice(bytes)
        .map_err(|e| RegistryError::BadRequest(format!("invalid request body: {e}")))?;
    Level::parse(&b.compatibility).map_err(RegistryError::InvalidLevel)
}

async fn get_default(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response> {
    require(&caller, Action::Read)?;
    let level = registry(&state)
        .level(&caller.tenant_id, None, true)
        .await?;
    Ok(ok(json!({"compatibilityLevel": level.unwrap_or_default()})))
}

async fn put_default(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Result<Response> {
    set_level(&state, &caller, None, &bytes).await
}

/// Sets the compatibility level of `subject`, or the tenant's default without one.
async fn set_level(
    state: &AppState,
    caller: &Caller,
    subject: Option<&str>,
    bytes: &Bytes,
) -> Result<Response> {
    require(caller, Action::Update)?;
    let level = read_level(bytes)?;
    registry(state)
        .set_level(&caller.tenant_id, subject, level)
        .await?;
    Ok(ok(json!({"compatibility": level})))
}

async fn get_config(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(subject): Path<String>,
    f: Flags,
) -> Result<Response> {
    require(&caller, Action::Read)?;
    let level = registry(&state)
        .level(&caller.tenant_id, Some(&subject), f.default_to_global)
        .await?
        .ok_or(RegistryError::SubjectLevelNotFound(subject))?;
    Ok(ok(json!({"compatibilityLevel": level})))
}

async fn put_config(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(subject): Path<String>,
    bytes: Bytes,
) -> Result<Response> {
    set_level(&state, &caller, Some(&subject), &bytes).await
}

async fn delete_config(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(subject): Path<String>,
) -> Result<Response> {
    require(&caller, Action::Update)?;
    let old = registry(&state)
        .clear_level(&caller.tenant_id, &subject)
        .await?;
    Ok(ok(json!({"compatibilityLevel": old})))
}
