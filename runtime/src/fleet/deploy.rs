//! From a `Deployment` record to what the worker starts: the spec is loaded and validated
//! like a pipeline file, bound to the deployment's tenant, compiled, and given the fleet's
//! settings — the shared durable `weir_<tenant>_<pipeline>`, the deployment's parallelism,
//! and the tenant's data-plane quotas.

use std::sync::Arc;

use weir_connectors::SourceSettings;
use weir_engine::CompiledPipeline;
use weir_pipelines::Resource;
use weir_pipelines::fleet::{Deployment, deployment_key};

use crate::{PipelineConfig, TenantSizeQuota};

/// A deployment ready to start.
pub struct Prepared {
    /// Runtime settings, with the fleet's overrides applied.
    pub config: PipelineConfig,
    /// The compiled pipeline.
    pub compiled: Arc<CompiledPipeline>,
}

/// Parses a deployment record (the JSON value of a `weir_deployments` key) and checks that
/// it belongs to `key`.
pub fn parse_record(key: &str, value: &[u8]) -> Result<Deployment, String> {
    let deployment: Deployment = serde_json::from_slice(value)
        .map_err(|err| format!("deployment record {key} is not a valid Deployment: {err}"))?;
    let expected = deployment_key(&deployment.tenant, &deployment.pipeline);
    if expected != key {
        return Err(format!(
            "deployment record under {key} is for tenant {:?} pipeline {:?} (its key would be {expected})",
            deployment.tenant, deployment.pipeline
        ));
    }
    Ok(deployment)
}

/// Loads, validates, binds and compiles the spec of `deployment`. Errors are the user's to
/// fix (they name the deployment and every problem of the spec); retrying cannot help.
pub fn prepare(deployment: &Deployment) -> Result<Prepared, String> {
    let key = deployment_key(&deployment.tenant, &deployment.pipeline);
    let origin = format!("deployment {key} v{}", deployment.version);
    let text = serde_json::to_string(&deployment.spec)
        .map_err(|err| format!("{origin}: spec cannot be serialised: {err}"))?;
    let resources = weir_pipelines::load_str(&text, &origin)
        .map_err(|diagnostics| format!("{origin}: invalid spec:\n{diagnostics}"))?;
    let mut pipelines = resources.into_iter().filter_map(|r| match r {
        Resource::Pipeline(p) => Some(p),
        Resource::Stream(_) => None,
    });
    let (Some(mut pipeline), None) = (pipelines.next(), pipelines.next()) else {
        return Err(format!(
            "{origin}: spec must be exactly one `kind: Pipeline` document"
        ));
    };
    if pipeline.metadata.name != deployment.pipeline {
        return Err(format!(
            "{origin}: spec is named {:?} but the deployment is for pipeline {:?}",
            pipeline.metadata.name, deployment.pipeline
        ));
    }
    if let Some(tenant) = &pipeline.metadata.tenant
        && tenant != &deployment.tenant
    {
        return Err(format!(
            "{origin}: spec belongs to tenant {tenant:?} but the deployment is tenant {:?}'s",
            deployment.tenant
        ));
    }
    pipeline.metadata.tenant = Some(deployment.tenant.clone());
    let plan = weir_engine::plan(&pipeline).map_err(|err| format!("{origin}: {err}"))?;
    let mut config = PipelineConfig::from_plan(&plan);
    // Every worker running the deployment competes on the one durable of DESIGN §3.1,
    // whatever the spec asks for.
    config.source.durable = SourceSettings::default_durable(&pipeline);
    config.parallelism = deployment.parallelism.max(1) as usize;
    if let Some(max) = deployment.quota.max_message_bytes {
        config.tenant_quota = Some(TenantSizeQuota {
            tenant: deployment.tenant.clone(),
            max_message_bytes: usize::try_from(max).unwrap_or(usize::MAX),
        });
    }
    if let Some(rate) = deployment.quota.max_ingest_rate {
        // Small batches under a rate limit: a fetched batch waits for its tokens while its
        // ack_wait runs, so keep a batch to about 50 ms of the allowed rate.
        let cap = (rate / 20).max(1) as usize;
        config.source.batch_size = config.source.batch_size.min(cap);
    }
    let compiled = CompiledPipeline::from_plan(&plan).map_err(|err| format!("{origin}: {err}"))?;
    Ok(Prepared {
        config,
        compiled: Arc::new(compiled),
    })
}

#[cfg(test)]
mod tests {
    use weir_pipelines::fleet::{DataPlaneQuota, DesiredState};

    use super::*;

    fn deployment(spec: serde_json::Value) -> Deployment {
        Deployment {
            tenant: "acme".into(),
            pipeline: "copy".into(),
            version: 3,
            parallelism: 2,
            state: DesiredState::Running,
            spec,
            quota: DataPlaneQuota {
                max_message_bytes: Some(100),
                max_ingest_rate: Some(200),
            },
            updated_at_ms: 0,
            updated_by: String::new(),
            credentials: None,
        }
    }

    fn spec(name: &str) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "weir.dev/v1",
            "kind": "Pipeline",
            "metadata": {"name": name},
            "spec": {
                "source": {"stream": "IN", "subjects": ["in.>"], "consumer": {"durable": "mine"}},
                "nodes": [{"id": "out", "publish": {"subject": "out.x"}}]
            }
        })
    }

    #[test]
    fn fleet_settings_override_the_spec() {
        let prepared = prepare(&deployment(spec("copy"))).unwrap();
        assert_eq!(prepared.config.source.durable, "weir_acme_copy");
        assert_eq!(prepared.config.parallelism, 2);
        assert_eq!(prepared.config.source.batch_size, 10);
        assert_eq!(
            prepared.config.tenant_quota,
            Some(TenantSizeQuota {
                tenant: "acme".into(),
                max_message_bytes: 100
            })
        );
    }

    #[test]
    fn a_bad_spec_is_an_error_naming_the_deployment() {
        let err = prepare(&deployment(spec("other"))).err().unwrap();
        assert!(
            err.contains("acme.copy v3") && err.contains("\"other\""),
            "{err}"
        );
        let err = prepare(&deployment(serde_json::json!({"kind": "Pipeline"})))
            .err()
            .unwrap();
        assert!(err.contains("invalid spec"), "{err}");
    }

    #[test]
    fn a_record_under_the_wrong_key_is_refused() {
        let record = serde_json::to_vec(&deployment(spec("copy"))).unwrap();
        assert!(parse_record("acme.copy", &record).is_ok());
        let err = parse_record("acme.other", &record).err().unwrap();
        assert!(err.contains("acme.copy"), "{err}");
        assert!(parse_record("acme.copy", b"{").is_err());
    }
}
