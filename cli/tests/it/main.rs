//! CLI-level tests: the real `weir` binary as a process.

mod bench;
mod dev;
mod fleet;
mod fleet_api;
mod fleet_support;
mod process;
mod runtime_crash;
mod validate;
