//! Reading resources from request bodies with the pipeline format's own checker
//! (`weir_pipelines::load_str`, the same one as `weir validate`), so the API reports the same
//! errors at the same line and column as the CLI.

use weir_pipelines::Resource;

use crate::error::{ApiError, ApiResult};

/// Every resource of a file's text, or the checker's diagnostics as a 422 problem.
pub fn parse_all(text: &str, file_name: &str) -> ApiResult<Vec<Resource>> {
    weir_pipelines::load_str(text, file_name).map_err(|diagnostics| {
        let diagnostics = serde_json::to_value(&diagnostics)
            .unwrap_or_else(|e| serde_json::Value::String(e.to_string()));
        let count = diagnostics.as_array().map(Vec::len).unwrap_or(1);
        ApiError::InvalidSpec {
            detail: format!(
                "{file_name} is not a valid resource file: {count} problem{} found (see `diagnostics`)",
                if count == 1 { "" } else { "s" }
            ),
            diagnostics,
        }
    })
}

/// The one resource of `kind` in a body.
pub fn parse_one(text: &str, file_name: &str, kind: &str) -> ApiResult<Resource> {
    let mut resources = parse_all(text, file_name)?;
    if resources.len() != 1 {
        return Err(ApiError::Unprocessable(format!(
            "send exactly one {kind} per request; {file_name} holds {} resources \
             (`weir apply -f` sends each document of a file separately)",
            resources.len()
        )));
    }
    let resource = resources.remove(0);
    if resource.kind() != kind {
        return Err(ApiError::Unprocessable(format!(
            "this endpoint takes a {kind}, but {file_name} holds a {} (`kind: {}`)",
            resource.kind(),
            resource.kind()
        )));
    }
    Ok(resource)
}

/// Sets `metadata.tenant` to the caller's tenant; refuses a file naming another tenant.
pub fn claim_tenant(resource: &mut Resource, tenant: &str) -> ApiResult<()> {
    let metadata = match resource {
        Resource::Pipeline(p) => &mut p.metadata,
        Resource::Stream(s) => &mut s.metadata,
    };
    match &metadata.tenant {
        Some(t) if t != tenant => Err(ApiError::Unprocessable(format!(
            "metadata.tenant is `{t}` but you belong to tenant `{tenant}`; \
             remove metadata.tenant or use credentials of that tenant"
        ))),
        _ => {
            metadata.tenant = Some(tenant.to_string());
            Ok(())
        }
    }
}

/// The canonical JSON and YAML texts of a resource (what versions store and compare).
pub fn canonical(resource: &Resource) -> ApiResult<(String, String)> {
    let json = serde_json::to_string(resource)
        .map_err(|e| ApiError::Internal(format!("serialize resource: {e}")))?;
    let yaml = serde_yaml::to_string(resource)
        .map_err(|e| ApiError::Internal(format!("serialize resource: {e}")))?;
    Ok((json, yaml))
}

/// Unified diff between two YAML texts.
pub fn unified_diff(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_name, new_name)
        .to_string()
}

/// `err` with a line and column (and the file and document) added to each of its diagnostics
/// that has only a JSON pointer: problems found after the file loaded (against the registry or
/// the declared streams) are located in the request's `text` like the loader's own.
/// `pipelines` names the pipeline of each document in order (`None` for other kinds); a
/// diagnostic names its pipeline.
pub fn located(err: ApiError, text: &str, file_name: &str, pipelines: &[Option<&str>]) -> ApiError {
    let ApiError::InvalidSpec {
        detail,
        mut diagnostics,
    } = err
    else {
        return err;
    };
    for d in diagnostics.as_array_mut().into_iter().flatten() {
        if d.get("line").is_some() {
            continue;
        }
        let named = d.get("pipeline").and_then(|p| p.as_str());
        let document = match named {
            Some(name) => pipelines.iter().position(|n| *n == Some(name)),
            None => (pipelines.len() == 1).then_some(0),
        };
        let pointer = d.get("path").and_then(|p| p.as_str()).unwrap_or("");
        if let Some((line, column)) =
            document.and_then(|i| weir_pipelines::locate(text, i, pointer))
        {
            d["file"] = file_name.into();
            d["document"] = document.into();
            d["line"] = line.into();
            d["column"] = column.into();
        }
    }
    ApiError::InvalidSpec {
        detail,
        diagnostics,
    }
}
