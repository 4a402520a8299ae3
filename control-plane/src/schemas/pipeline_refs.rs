//! Registry references of pipelines (`validate: {schema: {subject, version}}`, and the subject
//! of an Avro source): checked when a pipeline is validated, created or updated (an unknown
//! subject is a located problem), and resolved at deploy, where the registry's JSON Schema is
//! written into the deployed spec's `json_schema`, and an Avro source subject's versions into
//! `source.schemas`, so that workers never need the registry.

use serde_json::Value;
use weir_pipelines::PipelineResource;
use weir_pipelines::spec::{RegistrySchema, SchemaVersionSel};

use super::formats::SchemaType;
use super::store::{Registry, SchemaVersion, VersionRef};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A problem with a reference: (JSON pointer, code, message).
pub type RefProblem = (String, &'static str, String);

/// The registry version a reference names, or why there is none.
async fn lookup(
    reg: &Registry,
    tenant: &str,
    r: &RegistrySchema,
) -> Result<SchemaVersion, (&'static str, String)> {
    let which = match &r.version {
        None => VersionRef::Latest,
        Some(SchemaVersionSel::Number(n)) => VersionRef::Number(*n),
        Some(SchemaVersionSel::Name(n)) if n == "latest" => VersionRef::Latest,
        Some(SchemaVersionSel::Name(n)) => {
            return Err((
                "invalid_schema_version",
                format!("version `{n}`: give a version number or `latest`"),
            ));
        }
    };
    let v = reg
        .version(tenant, &r.subject, which, false)
        .await
        .map_err(|e| {
            (
                "unknown_schema",
                format!(
                    "schema subject `{}`: {e} (register it with `weir schema register {} FILE`)",
                    r.subject, r.subject
                ),
            )
        })?;
    if v.schema_type != SchemaType::Json {
        return Err((
            "not_json_schema",
            format!(
                "schema subject `{}` version {} is {}, but `validate` takes a JSON Schema",
                r.subject,
                v.version,
                v.schema_type.as_str()
            ),
        ));
    }
    Ok(v)
}

/// The versions of an Avro source subject (soft-deleted ones too: old payloads may name
/// them), or why there are none.
async fn avro_versions(
    reg: &Registry,
    tenant: &str,
    subject: &str,
) -> Result<Vec<SchemaVersion>, (&'static str, String)> {
    let versions = reg.versions(tenant, subject, true).await.map_err(|e| {
        (
            "unknown_schema",
            format!(
                "schema subject `{subject}`: {e} (register it with `weir schema register {subject} FILE --type AVRO`)"
            ),
        )
    })?;
    match versions.iter().rev().find(|v| !v.deleted) {
        Some(v) if v.schema_type == SchemaType::Avro => Ok(versions),
        Some(v) => Err((
            "not_avro_schema",
            format!(
                "schema subject `{subject}` version {} is {}, but `format: avro` needs an Avro schema",
                v.version,
                v.schema_type.as_str()
            ),
        )),
        None => Err((
            "unknown_schema",
            format!("schema subject `{subject}` has only deleted versions"),
        )),
    }
}

/// The subject of an Avro source, if the pipeline has one.
fn avro_subject(pipeline: &PipelineResource) -> Option<&str> {
    let source = &pipeline.spec.source;
    (source.format == weir_pipelines::PayloadFormat::Avro)
        .then_some(source.schema.as_deref())
        .flatten()
}

/// Every registry reference of `pipeline` that does not resolve in `tenant`.
pub async fn problems(
    state: &AppState,
    tenant: &str,
    pipeline: &PipelineResource,
) -> Vec<RefProblem> {
    let reg = Registry::new(state.db().clone());
    let mut out = Vec::new();
    if let Some(subject) = avro_subject(pipeline)
        && let Err((code, message)) = avro_versions(&reg, tenant, subject).await
    {
        out.push(("/spec/source/schema".into(), code, message));
    }
    for (i, node) in pipeline.spec.nodes.iter().enumerate() {
        let Some(r) = node.validate.as_ref().and_then(|v| v.schema.as_ref()) else {
            continue;
        };
        if let Err((code, message)) = lookup(&reg, tenant, r).await {
            out.push((format!("/spec/nodes/{i}/validate/schema"), code, message));
        }
    }
    out
}

/// Writes the versions of an Avro source's subject into `source.schemas` of the deployed spec.
async fn resolve_source(reg: &Registry, tenant: &str, spec: &mut Value) -> ApiResult<()> {
    let source = spec.pointer("/spec/source");
    let format = source.and_then(|s| s.get("format")).and_then(Value::as_str);
    let Some(subject) = source
        .and_then(|s| s.get("schema"))
        .and_then(Value::as_str)
        .filter(|_| format == Some("avro"))
        .map(str::to_string)
    else {
        return Ok(());
    };
    let subject = subject.as_str();
    let versions = avro_versions(reg, tenant, subject)
        .await
        .map_err(|(code, message)| ApiError::InvalidSpec {
            detail: "the Avro source names a schema the registry does not have (see `diagnostics`)"
                .into(),
            diagnostics: serde_json::json!([{
                "path": "/spec/source/schema", "code": code, "message": message,
            }]),
        })?;
    let schemas: Vec<Value> = versions
        .iter()
        .map(|v| serde_json::json!({ "id": v.id, "version": v.version, "schema": v.schema }))
        .collect();
    if let Some(source) = spec.pointer_mut("/spec/source") {
        source["schemas"] = Value::Array(schemas);
    }
    Ok(())
}

/// Writes the registry's schema into `json_schema` of each `validate` node of the deployed
/// `spec` (a `Pipeline` resource as JSON), and the concrete version and id into its `schema`.
pub async fn resolve(state: &AppState, tenant: &str, spec: &mut Value) -> ApiResult<()> {
    let reg = Registry::new(state.db().clone());
    resolve_source(&reg, tenant, spec).await?;
    let Some(nodes) = spec
        .pointer_mut("/spec/nodes")
        .and_then(Value::as_array_mut)
    else {
        return Ok(());
    };
    let mut diagnostics = Vec::new();
    for (i, node) in nodes.iter_mut().enumerate() {
        let Some(validate) = node.get_mut("validate") else {
            continue;
        };
        let Some(r) = validate
            .get("schema")
            .and_then(|s| serde_json::from_value::<RegistrySchema>(s.clone()).ok())
        else {
            continue;
        };
        match lookup(&reg, tenant, &r).await {
            Ok(v) => {
                let schema: Value = serde_json::from_str(&v.schema)
                    .map_err(|e| ApiError::Internal(format!("stored JSON Schema: {e}")))?;
                validate["json_schema"] = schema;
                validate["schema"]["version"] = v.version.into();
                validate["schema"]["id"] = v.id.into();
            }
            Err((code, message)) => diagnostics.push(serde_json::json!({
                "path": format!("/spec/nodes/{i}/validate/schema"),
                "code": code,
                "message": message,
            })),
        }
    }
    if diagnostics.is_empty() {
        return Ok(());
    }
    Err(ApiError::InvalidSpec {
        detail: "a `validate` node names a schema the registry does not have (see `diagnostics`)"
            .into(),
        diagnostics: Value::Array(diagnostics),
    })
}
