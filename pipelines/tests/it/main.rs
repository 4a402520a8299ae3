//! Integration tests of the pipeline file format: examples, diagnostics with positions,
//! robustness against arbitrary input, and the committed JSON Schema.

mod context;
mod diagnostics;
mod examples;
mod robustness;
mod schema;
mod window;

use std::path::PathBuf;

/// A file under the crate's directory.
pub fn crate_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}
