//! `GET /pipelines/{name}/quality`: the data-quality rules of a pipeline's deployed version
//! (its current version when not deployed) with their pass and fail counts summed over the live
//! workers: since each worker started it, over the last minute and over the last hour (see
//! [`crate::quality_rates`]).

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use weir_pipelines::QualitySeverity;
use weir_pipelines::fleet::now_ms;

use crate::caller::Caller;
use crate::deployments;
use crate::error::ApiResult;
use crate::pipelines::{find, version_text};
use crate::quality_rates::{QualityHistory, RuleCounts};
use crate::rbac::{Action, ApiResource};
use crate::state::AppState;
use crate::status::heartbeats;

/// One rule of a `quality` node with its counts.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
pub struct QualityRuleStatus {
    /// The `quality` node's id.
    pub node: String,
    /// The rule's name.
    pub rule: String,
    /// `reject` or `warn`.
    pub severity: String,
    /// Messages that passed, since each live worker started the pipeline.
    pub passed: u64,
    /// Messages that failed, since each live worker started the pipeline.
    pub failed: u64,
    /// `passed / (passed + failed)`; absent when no message was checked.
    pub pass_rate: Option<f64>,
    /// Passed in the last minute.
    pub passed_1m: u64,
    /// Failed in the last minute.
    pub failed_1m: u64,
    /// The pass rate over the last minute; absent when no message was checked in it.
    pub pass_rate_1m: Option<f64>,
    /// Passed in the last hour.
    pub passed_1h: u64,
    /// Failed in the last hour.
    pub failed_1h: u64,
    /// The pass rate over the last hour; absent when no message was checked in it.
    pub pass_rate_1h: Option<f64>,
}

/// A pipeline's data-quality rules and how they fare.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
pub struct QualityStatus {
    /// The pipeline.
    pub pipeline: String,
    /// The version whose rules are listed (the deployed one, else the current one).
    pub version: i64,
    /// Live workers whose counts are summed.
    pub workers: usize,
    /// Every rule of every `quality` node, in the file's order.
    pub rules: Vec<QualityRuleStatus>,
}

fn rate(passed: u64, failed: u64) -> Option<f64> {
    let total = passed + failed;
    (total > 0).then(|| passed as f64 / total as f64)
}

/// (node, rule, severity) of each rule of each `quality` node of `spec_json`.
fn rules_of(spec_json: &str) -> Vec<(String, String, QualitySeverity)> {
    let Ok(weir_pipelines::Resource::Pipeline(p)) = serde_json::from_str(spec_json) else {
        return Vec::new();
    };
    p.spec
        .nodes
        .iter()
        .filter_map(|n| n.quality.as_ref().map(|q| (n, q)))
        .flat_map(|(n, q)| {
            q.rules
                .iter()
                .map(|r| (n.id.clone(), r.name.clone(), r.severity))
        })
        .collect()
}

/// Sums `add` into `total`.
fn add(total: &mut RuleCounts, add: RuleCounts) {
    for (k, (p, f)) in add {
        let e = total.entry(k).or_default();
        e.0 += p;
        e.1 += f;
    }
}

/// The quality rules of one pipeline of the caller's tenant with their pass rates.
#[utoipa::path(get, path = "/api/v1/pipelines/{name}/quality", tag = "deployments",
    params(("name" = String, Path, description = "Pipeline name")),
    responses((status = 200, body = QualityStatus), (status = 404, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub async fn pipeline_quality(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<QualityStatus>> {
    caller.require(ApiResource::Deployments, Action::Read)?;
    let nats = state.nats()?;
    let p = find(&state, &caller.tenant_id, &name).await?;
    let version = deployments::load(&state, &p.id)
        .await?
        .map_or(p.summary.version, |d| d.version);
    let (spec_json, _) = version_text(&state, &p.id, version, &name).await?;
    let hbs = heartbeats(nats).await?;
    let history: &QualityHistory = state.quality_history();
    let now = now_ms();
    let (mut total, mut minute, mut hour) = Default::default();
    let mut workers = 0;
    for hb in &hbs {
        history.record(hb);
        if now.saturating_sub(hb.sent_at_ms) > weir_pipelines::fleet::HEARTBEAT_TIMEOUT_MS {
            continue;
        }
        for r in hb
            .pipelines
            .iter()
            .filter(|r| r.tenant == caller.tenant_name && r.pipeline == name)
        {
            workers += 1;
            add(&mut total, crate::quality_rates::counts(r));
            add(&mut minute, history.windowed(hb, r, now, 60_000));
            add(
                &mut hour,
                history.windowed(hb, r, now, crate::quality_rates::LONGEST_WINDOW_MS),
            );
        }
    }
    let get = |c: &RuleCounts, node: &str, rule: &str| {
        c.get(&(node.to_string(), rule.to_string()))
            .copied()
            .unwrap_or_default()
    };
    let rules = rules_of(&spec_json)
        .into_iter()
        .map(|(node, rule, severity)| {
            let (passed, failed) = get(&total, &node, &rule);
            let (passed_1m, failed_1m) = get(&minute, &node, &rule);
            let (passed_1h, failed_1h) = get(&hour, &node, &rule);
            QualityRuleStatus {
                severity: match severity {
                    QualitySeverity::Reject => "reject",
                    QualitySeverity::Warn => "warn",
                }
                .into(),
                node,
                rule,
                passed,
                failed,
                pass_rate: rate(passed, failed),
                passed_1m,
                failed_1m,
                pass_rate_1m: rate(passed_1m, failed_1m),
                passed_1h,
                failed_1h,
                pass_rate_1h: rate(passed_1h, failed_1h),
            }
        })
        .collect();
    Ok(Json(QualityStatus {
        pipeline: name,
        version,
        workers,
        rules,
    }))
}

/// Samples every worker heartbeat into `state`'s quality history as it arrives, so that the
/// last hour's counts are known whether or not anyone asked in between. Runs for the life of
/// the server.
pub async fn follow_heartbeats(state: AppState) {
    use futures::StreamExt;
    let Ok(nats) = state.nats() else { return };
    let mut beats = match nats.workers().watch_all().await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch worker heartbeats for quality rates");
            return;
        }
    };
    while let Some(entry) = beats.next().await {
        let Ok(entry) = entry else { continue };
        if let Ok(hb) = serde_json::from_slice(&entry.value) {
            state.quality_history().record(&hb);
        }
    }
}
