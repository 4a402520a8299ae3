//! Integration tests of the engine: batch behaviour and the golden pipeline cases.

mod batch;
mod binary_source;
mod golden;
mod keys;
mod publish_encoded;
mod quality;
mod testing;
mod type_conflicts;
mod validate;
mod wasm;
mod window;
mod window_props;
