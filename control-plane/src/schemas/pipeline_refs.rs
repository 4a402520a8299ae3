//! Registry references of pipelines (`validate: {schema: {subject, version}}`, the
//! `source.schema` of every format, and the output schema of `publish: {format,
//! schema}`): checked when a pipeline is validated, created or updated (an unknown subject, a
//! format mismatch, or a pinned output version that the subject's latest version cannot read
//! is a located problem), and resolved at deploy, where the registry's JSON Schema is written
//! into the deployed spec's `json_schema`, a source's subject versions (id and text each) into
//! `source.schema.writers`, and a publish node's version into `publish.schema.writer`, so that
//! workers never need the registry.

use serde_json::Value;
use weir_pipelines::PayloadFormat;
use weir_pipelines::PipelineResource;
use weir_pipelines::spec::{
    EmbeddedSchema, NamedSchema, OutputFormat, OutputSchema, PublishSpec, RegistrySchema,
    SchemaVersionSel, SourceSchema, SourceSchemaRef,
};

use super::compat::{self, Level};
use super::formats::{Parsed, SchemaType};
use super::store::{Registry, SchemaInput, SchemaVersion, VersionRef};
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
    let v = lookup_any(reg, tenant, r).await?;
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

/// The registry version a reference names, of any format.
async fn lookup_any(
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
    Ok(v)
}

/// The source's registry subject resolved for the worker: the named version's id, and every
/// version of the subject (so that wire-format messages written with an older or newer
/// version decode), each with its text and its references' texts. Soft-deleted versions are
/// among them: as in Confluent's registry, their ids still resolve, and messages written with
/// them before the delete are still in the streams.
async fn source_schema(
    reg: &Registry,
    tenant: &str,
    format: PayloadFormat,
    r: &SourceSchema,
) -> Result<SourceSchema, (&'static str, String)> {
    let named = RegistrySchema {
        subject: r.subject.clone(),
        version: r.version.clone(),
        id: None,
    };
    let v = lookup_any(reg, tenant, &named).await?;
    let want = match format {
        PayloadFormat::Protobuf => SchemaType::Protobuf,
        // A JSON source's schema gives the fields its pipeline reads their types.
        PayloadFormat::Json | PayloadFormat::Raw => SchemaType::Json,
        PayloadFormat::Avro => SchemaType::Avro,
    };
    if v.schema_type != want {
        return Err((
            "schema_format_mismatch",
            format!(
                "schema subject `{}` version {} is {}, but the source's format is {}",
                r.subject,
                v.version,
                v.schema_type.as_str(),
                want.as_str()
            ),
        ));
    }
    let mut writers = Vec::new();
    for w in reg
        .versions(tenant, &r.subject, true)
        .await
        .map_err(internal)?
    {
        if w.schema_type != want || writers.iter().any(|e: &EmbeddedSchema| e.id == w.id) {
            continue;
        }
        writers.push(embedded(reg, tenant, w).await?);
    }
    Ok(SourceSchema {
        subject: r.subject.clone(),
        version: Some(SchemaVersionSel::Number(v.version)),
        id: Some(v.id),
        writers,
    })
}

fn internal(e: super::error::RegistryError) -> (&'static str, String) {
    ("unknown_schema", e.to_string())
}

/// A registry version as embedded in a deployed spec: its id, text and references' texts.
async fn embedded(
    reg: &Registry,
    tenant: &str,
    v: SchemaVersion,
) -> Result<EmbeddedSchema, (&'static str, String)> {
    let mut references = Vec::new();
    for rf in &v.references {
        let t = reg
            .version(tenant, &rf.subject, VersionRef::Number(rf.version), true)
            .await
            .map_err(internal)?;
        references.push(NamedSchema {
            name: rf.name.clone(),
            schema: t.schema,
        });
    }
    Ok(EmbeddedSchema {
        id: v.id,
        schema: v.schema,
        references,
    })
}

/// A `publish` node's output schema resolved: the named version (its format must be the
/// node's; a Protobuf `message` must be in it), embedded as `writer`. A version other than
/// the subject's latest must write data its latest version can read, unless the subject's
/// level is `NONE` (consumers read with the latest schema).
async fn output_schema(
    reg: &Registry,
    tenant: &str,
    format: OutputFormat,
    r: &OutputSchema,
) -> Result<OutputSchema, (&'static str, String)> {
    let named = RegistrySchema {
        subject: r.subject.clone(),
        version: r.version.clone(),
        id: None,
    };
    let v = lookup_any(reg, tenant, &named).await?;
    let want = match format {
        OutputFormat::Json => SchemaType::Json,
        OutputFormat::Avro => SchemaType::Avro,
        OutputFormat::Protobuf => SchemaType::Protobuf,
    };
    if v.schema_type != want {
        return Err((
            "schema_format_mismatch",
            format!(
                "schema subject `{}` version {} is {}, but the node publishes {}",
                r.subject,
                v.version,
                v.schema_type.as_str(),
                format.as_str()
            ),
        ));
    }
    let parsed = parse(reg, tenant, &v).await?;
    if let (Some(m), Parsed::Protobuf { pool, .. }) = (&r.message, &parsed)
        && pool
            .get_message_by_name(m.trim_start_matches('.'))
            .is_none()
    {
        return Err((
            "unknown_message",
            format!(
                "schema subject `{}` version {} has no message `{m}`",
                r.subject, v.version
            ),
        ));
    }
    pinned_version_readable(reg, tenant, &v, &parsed).await?;
    Ok(OutputSchema {
        subject: r.subject.clone(),
        version: Some(SchemaVersionSel::Number(v.version)),
        message: r.message.clone(),
        writer: Some(embedded(reg, tenant, v).await?),
    })
}

async fn parse(
    reg: &Registry,
    tenant: &str,
    v: &SchemaVersion,
) -> Result<Parsed, (&'static str, String)> {
    let input = SchemaInput {
        kind: v.schema_type,
        text: v.schema.clone(),
        references: v.references.clone(),
    };
    reg.parse(tenant, &input).await.map_err(internal)
}

/// Whether readers on the subject's latest version can read what version `v` writes, when `v`
/// is not the latest and the subject's level is not `NONE`.
async fn pinned_version_readable(
    reg: &Registry,
    tenant: &str,
    v: &SchemaVersion,
    parsed: &Parsed,
) -> Result<(), (&'static str, String)> {
    let latest = reg
        .version(tenant, &v.subject, VersionRef::Latest, false)
        .await
        .map_err(internal)?;
    if latest.version == v.version {
        return Ok(());
    }
    let level = reg
        .level(tenant, Some(&v.subject), true)
        .await
        .map_err(internal)?
        .unwrap_or_default();
    if level == Level::None {
        return Ok(());
    }
    let problems = compat::can_read(&parse(reg, tenant, &latest).await?, parsed);
    if problems.is_empty() {
        return Ok(());
    }
    Err((
        "incompatible_output_schema",
        format!(
            "schema subject `{}` is {}: readers on its latest version {} cannot read what version {} writes: {}",
            v.subject,
            level.as_str(),
            latest.version,
            v.version,
            problems.join("; ")
        ),
    ))
}

/// The `publish` nodes with a registry schema: (index, spec).
fn publish_refs(pipeline: &PipelineResource) -> impl Iterator<Item = (usize, &PublishSpec)> {
    pipeline.spec.nodes.iter().enumerate().filter_map(|(i, n)| {
        n.publish
            .as_ref()
            .filter(|p| p.schema.is_some())
            .map(|p| (i, p))
    })
}

/// The source's registry schema, when its format takes one.
fn source_ref(pipeline: &PipelineResource) -> Option<(PayloadFormat, SourceSchema)> {
    let src = &pipeline.spec.source;
    match (src.format, &src.schema) {
        (PayloadFormat::Avro | PayloadFormat::Protobuf | PayloadFormat::Json, Some(r)) => {
            Some((src.format, r.to_schema()))
        }
        _ => None,
    }
}

/// Every registry reference of `pipeline` that does not resolve in `tenant`.
pub async fn problems(
    state: &AppState,
    tenant: &str,
    pipeline: &PipelineResource,
) -> Vec<RefProblem> {
    let reg = Registry::new(state.db().clone());
    let mut out = Vec::new();
    if let Some((format, r)) = source_ref(pipeline)
        && let Err((code, message)) = source_schema(&reg, tenant, format, &r).await
    {
        out.push(("/spec/source/schema".to_string(), code, message));
    }
    for (i, node) in pipeline.spec.nodes.iter().enumerate() {
        let Some(r) = node.validate.as_ref().and_then(|v| v.schema.as_ref()) else {
            continue;
        };
        if let Err((code, message)) = lookup(&reg, tenant, r).await {
            out.push((format!("/spec/nodes/{i}/validate/schema"), code, message));
        }
    }
    for (i, p) in publish_refs(pipeline) {
        let Some(r) = &p.schema else { continue };
        if let Err((code, message)) = output_schema(&reg, tenant, p.format, r).await {
            out.push((format!("/spec/nodes/{i}/publish/schema"), code, message));
        }
    }
    out
}

/// Writes the registry's schema into `json_schema` of each `validate` node of the deployed
/// `spec` (a `Pipeline` resource as JSON), the schemas it refers to into its `references`,
/// and the concrete version and id into its `schema`.
pub async fn resolve(state: &AppState, tenant: &str, spec: &mut Value) -> ApiResult<()> {
    let reg = Registry::new(state.db().clone());
    let mut diagnostics = Vec::new();
    let resource = serde_json::from_value::<weir_pipelines::Resource>(spec.clone()).ok();
    if let Some(weir_pipelines::Resource::Pipeline(p)) = &resource
        && let Some((format, r)) = source_ref(p)
    {
        match source_schema(&reg, tenant, format, &r).await {
            Ok(resolved) => {
                spec["spec"]["source"]["schema"] =
                    serde_json::to_value(SourceSchemaRef::Registry(resolved))
                        .map_err(|e| ApiError::Internal(e.to_string()))?;
            }
            Err((code, message)) => diagnostics.push(serde_json::json!({
                "path": "/spec/source/schema",
                "code": code,
                "message": message,
            })),
        }
    }
    if let Some(weir_pipelines::Resource::Pipeline(p)) = &resource {
        for (i, publish) in publish_refs(p) {
            let Some(r) = &publish.schema else { continue };
            match output_schema(&reg, tenant, publish.format, r).await {
                Ok(resolved) => {
                    spec["spec"]["nodes"][i]["publish"]["schema"] = serde_json::to_value(resolved)
                        .map_err(|e| ApiError::Internal(e.to_string()))?;
                }
                Err((code, message)) => diagnostics.push(serde_json::json!({
                    "path": format!("/spec/nodes/{i}/publish/schema"),
                    "code": code,
                    "message": message,
                })),
            }
        }
    }
    let mut none = Vec::new();
    let nodes = spec
        .pointer_mut("/spec/nodes")
        .and_then(Value::as_array_mut)
        .unwrap_or(&mut none);
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
        let found = match lookup(&reg, tenant, &r).await {
            Ok(v) => {
                let version = v.version;
                embedded(&reg, tenant, v).await.map(|e| (version, e))
            }
            Err(e) => Err(e),
        };
        match found {
            Ok((version, embedded)) => {
                let schema: Value = serde_json::from_str(&embedded.schema)
                    .map_err(|e| ApiError::Internal(format!("stored JSON Schema: {e}")))?;
                validate["json_schema"] = schema;
                if !embedded.references.is_empty() {
                    validate["references"] = serde_json::to_value(embedded.references)
                        .map_err(|e| ApiError::Internal(e.to_string()))?;
                }
                validate["schema"]["version"] = version.into();
                validate["schema"]["id"] = embedded.id.into();
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
        detail: "the pipeline names a schema the registry does not have (see `diagnostics`)".into(),
        diagnostics: Value::Array(diagnostics),
    })
}
