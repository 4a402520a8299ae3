//! Integration tests of the control plane: the API through `app()` + `oneshot`, on SQLite and
//! on a real PostgreSQL server.

mod api;
mod audit_quotas;
mod auth_flows;
mod authz;
mod bounded_input;
mod concurrency;
mod console;
mod dlq;
mod escalation;
mod fleet;
mod isolation;
mod lifecycle;
mod login_abuse;
mod modules;
mod nats_views;
mod openapi;
mod schema_registry;
mod store;
mod support;
mod tenant_accounts;
