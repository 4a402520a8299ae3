//! CLI-level tests: the real `weir` binary as a process.

mod avro_source;
mod bench;
mod dev;
mod dev_operator;
mod fleet;
mod fleet_api;
mod fleet_support;
mod nats_setup;
mod partitions;
mod process;
mod publish_encoded;
mod quality_status;
mod runtime_crash;
mod sample_test_api;
mod schema_registry_client;
mod tenants_e2e;
mod validate;
mod window;
mod window_crash;
