//! The Weir pipeline file format, `weir.dev/v1`: typed spec, parser (YAML and JSON), semantic
//! validation that reports every error with file, line and column, and the format's JSON Schema.
//!
//! Entry point: [`load_str`] turns a file's text into resources or a list of diagnostics.
#![warn(missing_docs)]

pub mod check;
pub mod context;
pub mod diagnostics;
mod document;
pub mod expr;
pub mod failure;
pub mod fleet;
pub mod json_refs;
mod load;
pub mod message;
pub mod plan;
pub mod problem;
pub mod proto_files;
pub mod proto_text;
pub mod schema;
pub mod spec;
pub mod state;
mod structure;
pub mod subject;
mod suggest;
pub mod template;
pub mod units;
mod value_check;
pub mod wasm_abi;
mod window_check;

pub use check::check_resource;
pub use diagnostics::{Diagnostic, Diagnostics};
pub use failure::FailureKind;
pub use load::{load_file, load_str, locate};
pub use plan::{ValidatedPipeline, plan};
pub use problem::Problem;
pub use schema::json_schema;
pub use spec::*;
