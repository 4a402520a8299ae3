//! The control plane's SQL, one module per resource, under the HTTP handlers: each module holds
//! the queries of its table and reads rows into named-column structs (`sqlx::FromRow`), so a
//! reordered `SELECT` cannot shift a value into the wrong field. Queries are portable SQL that
//! runs unchanged on SQLite and PostgreSQL (see `db`).
//!
//! Moved so far: `audit`, `credentials` (what the gate reads), `deployments`, `keys`, `pipelines`, `quotas`, `roles`, `secrets`, `sessions` (logins), `streams`, `tenants`, `users`. The other resources still keep their SQL beside their handlers.

pub mod audit;
pub mod credentials;
pub mod deployments;
pub mod keys;
pub mod pipelines;
pub mod quotas;
pub mod roles;
pub mod secrets;
pub mod sessions;
pub mod streams;
pub mod tenants;
pub mod users;
