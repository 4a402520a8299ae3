//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]` annotations and
//! served at `/api/v1/openapi.json`, and the health endpoint.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::state::AppState;
use crate::{
    audit, auth, deployments, dlq, keys, nats_views, pipelines, quotas, secrets, status, streams,
    tenants, users,
};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key (`weir_…`) or an access token (`wat_…`)"))
                    .build(),
            ),
        );
    }
}

/// Makes every `operationId` unique, as OpenAPI requires (utoipa takes the handler's function
/// name, and many modules have a `list` or a `get`): a name used once stays; a repeated one is
/// prefixed with the resource path (`/api/v1/audit` + `list` → `audit_list`).
struct UniqueOperationIds;

impl Modify for UniqueOperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use std::collections::HashMap;
        fn operations(
            item: &mut utoipa::openapi::PathItem,
        ) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
            [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .filter_map(Option::as_mut)
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        for item in openapi.paths.paths.values_mut() {
            for op in operations(item) {
                if let Some(id) = &op.operation_id {
                    *seen.entry(id.clone()).or_default() += 1;
                }
            }
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            let resource: String = path
                .trim_start_matches("/api/v1/")
                .split('/')
                .filter(|seg| !seg.starts_with('{'))
                .collect::<Vec<_>>()
                .join("_")
                .replace(['.', '-'], "_");
            for op in operations(item) {
                if let Some(id) = &op.operation_id
                    && seen.get(id).copied().unwrap_or(0) > 1
                {
                    op.operation_id = Some(format!("{resource}_{id}"));
                }
            }
        }
    }
}

/// The API document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Weir control plane", version = "1",
         description = "Pipelines, deployments, fleet status, DLQs, streams, tenants, users, API keys, quotas, secrets and audit log of Weir. \
                        Errors are application/problem+json with a stable `code`."),
    modifiers(&BearerAuth, &UniqueOperationIds),
    security(("bearer" = [])),
    paths(
        healthz, document, crate::metrics::handler,
        auth::login, auth::refresh, auth::logout, auth::me,
        tenants::list, tenants::create, tenants::get, tenants::delete, tenants::put_quotas,
        quotas::get_usage,
        users::list, users::create, users::get, users::update, users::delete,
        users::list_roles, users::create_role, users::delete_role,
        keys::list, keys::create, keys::revoke, keys::rotate,
        pipelines::list, pipelines::create, pipelines::validate, pipelines::get, pipelines::put,
        pipelines::delete, pipelines::versions, pipelines::version, pipelines::diff,
        deployments::deploy, deployments::pause, deployments::resume, deployments::rollback,
        deployments::get, deployments::undeploy,
        status::pipeline_status, status::workers, status::stream,
        dlq::list, dlq::show, dlq::redrive, dlq::purge,
        nats_views::list_streams, nats_views::get_stream, nats_views::consumers,
        nats_views::message, nats_views::last_message, nats_views::purge, nats_views::publish,
        nats_views::pause_consumer, nats_views::resume_consumer,
        nats_views::list_buckets, nats_views::create_bucket, nats_views::delete_bucket,
        nats_views::keys, nats_views::get_key, nats_views::put_key, nats_views::delete_key,
        nats_views::key_history,
        streams::list, streams::get, streams::put, streams::delete,
        secrets::list, secrets::get, secrets::put, secrets::delete,
        audit::list,
    ),
    components(schemas(crate::error::Problem))
)]
pub struct ApiDoc;

/// Health of the server and its store.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` or `degraded`.
    pub status: String,
    /// `sqlite` or `postgres`.
    pub store: String,
}

/// Liveness and store health (no credentials needed).
#[utoipa::path(get, path = "/healthz", tag = "meta", security(()),
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let store = match state.db().backend() {
        crate::db::Backend::Sqlite => "sqlite",
        crate::db::Backend::Postgres => "postgres",
    };
    let ok = sqlx::query("SELECT 1")
        .execute(state.db().pool())
        .await
        .is_ok();
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(Health {
            status: if ok { "ok" } else { "degraded" }.into(),
            store: store.into(),
        }),
    )
}

/// This document (no credentials needed).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "The OpenAPI 3 document", body = Object)))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
