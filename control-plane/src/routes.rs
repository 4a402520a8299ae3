//! The route table: every API route is registered here through [`ApiRoutes`], which records
//! (method, path) pairs so that a test can check each against the OpenAPI document.

use axum::Router;
use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, patch, post, put};

use crate::state::AppState;
use crate::{
    audit, deployments, dlq, keys, login, modules, nats_views, openapi, pipelines, quotas, schemas,
    secrets, status, streams, tenants, users,
};

/// A router that remembers what it registered.
pub struct ApiRoutes {
    router: Router<AppState>,
    routes: Vec<(Method, String)>,
}

impl ApiRoutes {
    fn new() -> Self {
        Self {
            router: Router::new(),
            routes: Vec::new(),
        }
    }

    fn add(mut self, method: Method, path: &str, handler: MethodRouter<AppState>) -> Self {
        self.routes.push((method, path.to_string()));
        self.router = self.router.route(path, handler);
        self
    }

    /// The registered (method, path) pairs.
    pub fn routes(&self) -> &[(Method, String)] {
        &self.routes
    }

    /// The axum router.
    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}

/// Every route of `/api/v1` (they all pass the audit gate).
pub fn api_routes() -> ApiRoutes {
    let v = "/api/v1";
    let p = |s: &str| format!("{v}{s}");
    ApiRoutes::new()
        .add(Method::POST, &p("/auth/login"), post(login::login))
        .add(Method::POST, &p("/auth/refresh"), post(login::refresh))
        .add(Method::POST, &p("/auth/logout"), post(login::logout))
        .add(Method::GET, &p("/auth/me"), get(login::me))
        .add(Method::GET, &p("/tenants"), get(tenants::list))
        .add(Method::POST, &p("/tenants"), post(tenants::create))
        .add(Method::GET, &p("/tenants/{id}"), get(tenants::get))
        .add(Method::DELETE, &p("/tenants/{id}"), delete(tenants::delete))
        .add(
            Method::PUT,
            &p("/tenants/{id}/quotas"),
            put(tenants::put_quotas),
        )
        .add(Method::GET, &p("/quotas/usage"), get(quotas::get_usage))
        .add(Method::GET, &p("/users"), get(users::list))
        .add(Method::POST, &p("/users"), post(users::create))
        .add(Method::GET, &p("/users/{id}"), get(users::get))
        .add(Method::PATCH, &p("/users/{id}"), patch(users::update))
        .add(Method::DELETE, &p("/users/{id}"), delete(users::delete))
        .add(Method::GET, &p("/roles"), get(users::list_roles))
        .add(Method::POST, &p("/roles"), post(users::create_role))
        .add(
            Method::DELETE,
            &p("/roles/{name}"),
            delete(users::delete_role),
        )
        .add(Method::GET, &p("/api-keys"), get(keys::list))
        .add(Method::POST, &p("/api-keys"), post(keys::create))
        .add(Method::DELETE, &p("/api-keys/{id}"), delete(keys::revoke))
        .add(
            Method::POST,
            &p("/api-keys/{id}/rotate"),
            post(keys::rotate),
        )
        .add(Method::GET, &p("/pipelines"), get(pipelines::list))
        .add(Method::POST, &p("/pipelines"), post(pipelines::create))
        .add(
            Method::POST,
            &p("/pipelines:validate"),
            post(pipelines::validate),
        )
        .add(
            Method::POST,
            &p("/pipelines:test"),
            post(crate::sample_test::test),
        )
        .add(Method::GET, &p("/pipelines/{name}"), get(pipelines::get))
        .add(Method::PUT, &p("/pipelines/{name}"), put(pipelines::put))
        .add(
            Method::DELETE,
            &p("/pipelines/{name}"),
            delete(pipelines::delete),
        )
        .add(
            Method::GET,
            &p("/pipelines/{name}/versions"),
            get(pipelines::versions),
        )
        .add(
            Method::GET,
            &p("/pipelines/{name}/versions/{version}"),
            get(pipelines::version),
        )
        .add(
            Method::GET,
            &p("/pipelines/{name}/diff"),
            get(pipelines::diff),
        )
        .add(
            Method::POST,
            &p("/pipelines/{name}/deploy"),
            post(deployments::deploy),
        )
        .add(
            Method::POST,
            &p("/pipelines/{name}/pause"),
            post(deployments::pause),
        )
        .add(
            Method::POST,
            &p("/pipelines/{name}/resume"),
            post(deployments::resume),
        )
        .add(
            Method::POST,
            &p("/pipelines/{name}/rollback"),
            post(deployments::rollback),
        )
        .add(
            Method::GET,
            &p("/pipelines/{name}/deployment"),
            get(deployments::get),
        )
        .add(
            Method::DELETE,
            &p("/pipelines/{name}/deployment"),
            delete(deployments::undeploy),
        )
        .add(
            Method::GET,
            &p("/pipelines/{name}/status"),
            get(status::pipeline_status),
        )
        .add(Method::GET, &p("/workers"), get(status::workers))
        .add(Method::GET, &p("/status/stream"), get(status::stream))
        .add(Method::GET, &p("/pipelines/{name}/dlq"), get(dlq::list))
        .add(
            Method::DELETE,
            &p("/pipelines/{name}/dlq"),
            delete(dlq::purge),
        )
        .add(
            Method::GET,
            &p("/pipelines/{name}/dlq/{seq}"),
            get(dlq::show),
        )
        .add(
            Method::POST,
            &p("/pipelines/{name}/dlq/redrive"),
            post(dlq::redrive),
        )
        .add(
            Method::GET,
            &p("/nats/streams"),
            get(nats_views::list_streams),
        )
        .add(
            Method::GET,
            &p("/nats/streams/{name}"),
            get(nats_views::get_stream),
        )
        .add(
            Method::GET,
            &p("/nats/streams/{name}/consumers"),
            get(nats_views::consumers),
        )
        .add(
            Method::GET,
            &p("/nats/streams/{name}/messages"),
            get(nats_views::last_message),
        )
        .add(
            Method::GET,
            &p("/nats/streams/{name}/messages/{seq}"),
            get(nats_views::message),
        )
        .add(
            Method::POST,
            &p("/nats/streams/{name}/purge"),
            post(nats_views::purge),
        )
        .add(Method::POST, &p("/nats/publish"), post(nats_views::publish))
        .add(
            Method::POST,
            &p("/nats/streams/{name}/consumers/{consumer}/pause"),
            post(nats_views::pause_consumer),
        )
        .add(
            Method::POST,
            &p("/nats/streams/{name}/consumers/{consumer}/resume"),
            post(nats_views::resume_consumer),
        )
        .add(Method::GET, &p("/nats/kv"), get(nats_views::list_buckets))
        .add(
            Method::POST,
            &p("/nats/kv"),
            post(nats_views::create_bucket),
        )
        .add(
            Method::DELETE,
            &p("/nats/kv/{bucket}"),
            delete(nats_views::delete_bucket),
        )
        .add(
            Method::GET,
            &p("/nats/kv/{bucket}/keys"),
            get(nats_views::keys),
        )
        .add(
            Method::GET,
            &p("/nats/kv/{bucket}/keys/{key}"),
            get(nats_views::get_key),
        )
        .add(
            Method::PUT,
            &p("/nats/kv/{bucket}/keys/{key}"),
            put(nats_views::put_key),
        )
        .add(
            Method::DELETE,
            &p("/nats/kv/{bucket}/keys/{key}"),
            delete(nats_views::delete_key),
        )
        .add(
            Method::GET,
            &p("/nats/kv/{bucket}/keys/{key}/history"),
            get(nats_views::key_history),
        )
        .add(Method::GET, &p("/streams"), get(streams::list))
        .add(Method::GET, &p("/streams/{name}"), get(streams::get))
        .add(Method::PUT, &p("/streams/{name}"), put(streams::put))
        .add(
            Method::DELETE,
            &p("/streams/{name}"),
            delete(streams::delete),
        )
        .add(Method::GET, &p("/modules"), get(modules::list))
        .add(Method::GET, &p("/modules/{name}"), get(modules::get))
        .add(Method::POST, &p("/modules/{name}"), post(modules::upload))
        .add(
            Method::DELETE,
            &p("/modules/{name}"),
            delete(modules::delete),
        )
        .add(Method::GET, &p("/secrets"), get(secrets::list))
        .add(Method::GET, &p("/secrets/{name}"), get(secrets::get))
        .add(Method::PUT, &p("/secrets/{name}"), put(secrets::put))
        .add(
            Method::DELETE,
            &p("/secrets/{name}"),
            delete(secrets::delete),
        )
        .add(Method::GET, &p("/audit"), get(audit::list))
        .add(
            Method::POST,
            &p("/streams/{name}/infer-schema"),
            post(schemas::infer::infer_schema),
        )
        .add(Method::GET, &p("/schemas"), get(schemas::api::list))
        .add(
            Method::DELETE,
            &p("/schemas/{subject}"),
            delete(schemas::api::delete),
        )
        .add(
            Method::GET,
            &p("/schemas/{subject}/versions"),
            get(schemas::api::versions),
        )
        .add(
            Method::POST,
            &p("/schemas/{subject}/versions"),
            post(schemas::api::register),
        )
        .add(
            Method::GET,
            &p("/schemas/{subject}/versions/{version}"),
            get(schemas::api::version),
        )
        .add(
            Method::POST,
            &p("/schemas/{subject}/check"),
            post(schemas::api::check),
        )
}

/// Routes outside the gate: health and the API document.
pub fn public_routes() -> ApiRoutes {
    ApiRoutes::new()
        .add(Method::GET, "/healthz", get(openapi::healthz))
        .add(Method::GET, "/metrics", get(crate::metrics::handler))
        .add(Method::GET, "/api/v1/openapi.json", get(openapi::document))
}
