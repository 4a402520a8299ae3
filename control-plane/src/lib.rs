//! The Weir control plane: the REST API under `/api/v1` (axum), its store (sqlx over SQLite or
//! PostgreSQL), authentication, RBAC, tenants, quotas, audit log, pipeline versions, secrets,
//! and — over NATS — deployments, fleet status and DLQs. It writes desired state for workers and
//! never runs pipelines itself.
//!
//! Embed it with [`app`] over an [`AppState`], or run it with [`serve`].

pub mod api;
pub mod audit;
pub mod audit_budget;
pub mod auth;
pub mod body;
pub mod caller;
pub mod console;
pub mod crypto;
pub mod db;
pub mod deployments;
pub mod dlq;
pub mod error;
pub mod keys;
pub mod login;
pub mod login_limit;
pub mod metrics;
pub mod modules;
pub mod nats;
pub mod nats_views;
pub mod openapi;
pub mod pipelines;
pub mod quality;
pub mod quality_rates;
pub mod quotas;
pub mod rates;
pub mod rbac;
pub mod resource_file;
pub mod routes;
pub mod sample_test;
pub mod schemas;
pub mod secrets;
pub mod server;
pub mod state;
pub mod status;
pub mod store;
pub mod streams;
pub mod subjects;
pub mod tenants;
pub mod text;
pub mod users;

pub use db::{Backend, Db, StoreError};
pub use error::{ApiError, Problem};
pub use server::{SecretKeySource, ServeConfig, ServeError, prepare, serve};
pub use state::{AppState, Settings};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// The whole HTTP application over `state`.
pub fn app(state: AppState) -> Router {
    let limit = state.settings().body_limit;
    let api = routes::api_routes()
        .into_router()
        .route_layer(middleware::from_fn_with_state(state.clone(), audit::gate));
    let public = routes::public_routes().into_router();
    let registry = schemas::confluent::router(state.clone());
    api.merge(public)
        .merge(registry)
        .fallback(console::fallback)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::map_response(error::plain_errors_as_problems))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(metrics::count))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}
