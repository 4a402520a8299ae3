//! Registry references of pipelines (`validate: {schema: {subject, version}}`): checked when a
//! pipeline is validated, created or updated (an unknown subject is a located problem), and
//! resolved at deploy, where the registry's JSON Schema is written into the deployed spec's
//! `json_schema` so that workers never need the registry.

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

/// Every registry reference of `pipeline` that does not resolve in `tenant`.
pub async fn problems(
    state: &AppState,
    tenant: &str,
    pipeline: &PipelineResource,
) -> Vec<RefProblem> {
    let reg = Registry::new(state.db().clone());
    let mut out = Vec::new();
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

/// Writes the registry's schema into `json_schema` of each `validate` node of the deployed
/// `spec` (a `Pipeline` resource as JSON), and the concrete version and id into its `schema`.
pub async fn resolve(state: &AppState, tenant: &str, spec: &mut Value) -> ApiResult<()> {
    let reg = Registry::new(state.db().clone());
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
