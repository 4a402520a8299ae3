//! CLI-level tests: the real `weir` binary as a process.

mod runtime_crash;
mod validate;
