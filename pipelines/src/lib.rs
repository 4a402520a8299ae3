//! The Weir pipeline file format, `weir.dev/v1`: typed spec, parser (YAML and JSON), semantic
//! validation that reports every error with file, line and column, and the format's JSON Schema.
//!
//! Entry point: [`load_str`] turns a file's text into resources or a list of diagnostics.
#![warn(missing_docs)]

pub mod spec;

pub use spec::*;
