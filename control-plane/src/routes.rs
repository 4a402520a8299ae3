//! The route table: every route is declared once, here, from its handler's `#[utoipa::path]`
//! annotation (`utoipa-axum`'s `routes!`), which gives both the axum route and its entry in the
//! OpenAPI document; the two cannot drift apart.

use std::sync::LazyLock;

use axum::http::Method;
use axum::{Json, Router};
use utoipa::OpenApi as _;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;
use crate::{
    audit, deployments, dlq, keys, login, modules, nats_views, openapi, pipelines, quotas, schemas,
    secrets, status, streams, tenants, users,
};

/// A set of routes with the part of the OpenAPI document that describes them.
pub struct ApiRoutes {
    router: Router<AppState>,
    doc: OpenApi,
}

impl ApiRoutes {
    fn of(router: OpenApiRouter<AppState>) -> Self {
        let (router, doc) = router.split_for_parts();
        Self { router, doc }
    }

    /// The (method, path) pairs served, as the document states them.
    pub fn routes(&self) -> Vec<(Method, String)> {
        let mut out = Vec::new();
        for (path, item) in &self.doc.paths.paths {
            for (method, op) in [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::PATCH, &item.patch),
                (Method::DELETE, &item.delete),
            ] {
                if op.is_some() {
                    out.push((method, path.clone()));
                }
            }
        }
        out
    }

    /// The axum router.
    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}

/// Every route of `/api/v1` (they all pass the audit gate).
pub fn api_routes() -> ApiRoutes {
    ApiRoutes::of(
        OpenApiRouter::default()
            .routes(routes!(login::login))
            .routes(routes!(login::refresh))
            .routes(routes!(login::logout))
            .routes(routes!(login::me))
            .routes(routes!(tenants::list, tenants::create))
            .routes(routes!(tenants::get, tenants::delete))
            .routes(routes!(tenants::put_quotas))
            .routes(routes!(quotas::get_usage))
            .routes(routes!(users::list, users::create))
            .routes(routes!(users::get, users::update, users::delete))
            .routes(routes!(users::list_roles, users::create_role))
            .routes(routes!(users::delete_role))
            .routes(routes!(keys::list, keys::create))
            .routes(routes!(keys::revoke))
            .routes(routes!(keys::rotate))
            .routes(routes!(pipelines::list, pipelines::create))
            .routes(routes!(pipelines::validate))
            .routes(routes!(crate::sample_test::test))
            .routes(routes!(pipelines::get, pipelines::put, pipelines::delete))
            .routes(routes!(pipelines::versions))
            .routes(routes!(pipelines::version))
            .routes(routes!(pipelines::diff))
            .routes(routes!(deployments::deploy))
            .routes(routes!(deployments::pause))
            .routes(routes!(deployments::resume))
            .routes(routes!(deployments::rollback))
            .routes(routes!(deployments::get, deployments::undeploy))
            .routes(routes!(status::pipeline_status))
            .routes(routes!(crate::quality::pipeline_quality))
            .routes(routes!(status::workers))
            .routes(routes!(status::stream))
            .routes(routes!(dlq::list, dlq::purge))
            .routes(routes!(dlq::show))
            .routes(routes!(dlq::redrive))
            .routes(routes!(nats_views::streams::list_streams))
            .routes(routes!(nats_views::streams::get_stream))
            .routes(routes!(nats_views::consumers::consumers))
            .routes(routes!(nats_views::messages::last_message))
            .routes(routes!(nats_views::messages::message))
            .routes(routes!(nats_views::streams::purge))
            .routes(routes!(nats_views::messages::publish))
            .routes(routes!(nats_views::consumers::pause_consumer))
            .routes(routes!(nats_views::consumers::resume_consumer))
            .routes(routes!(
                nats_views::kv::list_buckets,
                nats_views::kv::create_bucket
            ))
            .routes(routes!(nats_views::kv::delete_bucket))
            .routes(routes!(nats_views::kv::keys))
            .routes(routes!(
                nats_views::kv::get_key,
                nats_views::kv::put_key,
                nats_views::kv::delete_key
            ))
            .routes(routes!(nats_views::kv::key_history))
            .routes(routes!(streams::list))
            .routes(routes!(streams::get, streams::put, streams::delete))
            .routes(routes!(secrets::list))
            .routes(routes!(secrets::get, secrets::put, secrets::delete))
            .routes(routes!(modules::list))
            .routes(routes!(modules::get, modules::upload, modules::delete))
            .routes(routes!(audit::list))
            .routes(routes!(schemas::infer::infer_schema))
            .routes(routes!(schemas::api::list))
            .routes(routes!(schemas::api::delete))
            .routes(routes!(schemas::api::versions, schemas::api::register))
            .routes(routes!(schemas::api::version))
            .routes(routes!(schemas::api::check)),
    )
}

/// Routes outside the gate: health, metrics and the API document.
pub fn public_routes() -> ApiRoutes {
    ApiRoutes::of(
        OpenApiRouter::default()
            .routes(routes!(openapi::healthz))
            .routes(routes!(crate::metrics::handler))
            .routes(routes!(document)),
    )
}

/// The whole API document: the routes' operations under [`openapi::ApiDoc`]'s header, with its
/// finishing touches (security scheme, unique operation ids, problem responses).
pub fn api_document() -> &'static OpenApi {
    static DOCUMENT: LazyLock<OpenApi> = LazyLock::new(|| {
        let mut doc = openapi::ApiDoc::openapi();
        doc.merge(api_routes().doc);
        doc.merge(public_routes().doc);
        openapi::finish(&mut doc);
        doc
    });
    &DOCUMENT
}

/// This document (no credentials needed).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "The OpenAPI 3 document", body = Object)))]
pub async fn document() -> Json<&'static OpenApi> {
    Json(api_document())
}
