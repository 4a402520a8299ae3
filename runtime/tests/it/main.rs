//! Integration tests of the worker runtime against a real nats-server (started per test on
//! an ephemeral port with a temporary store) and the real engine.

mod dead_letters;
mod dlq_capture;
mod examples;
mod exclusive;
mod fast_batches;
mod missing_stream;
mod server_restart;
mod shared_context;
mod stateful;
mod stop_one;
mod support;
mod type_conflicts;
mod validation;
mod wasm_traps;
