//! One module per subcommand: its clap `Args` and a `run` that returns the exit code.

pub mod apply;
pub mod bench;
pub mod client;
pub mod delete;
pub mod deploy;
pub mod dev;
pub mod diff;
pub mod dlq;
pub mod get;
pub mod nats_setup;
pub mod run;
pub mod schema;
pub mod serve;
pub mod status;
pub mod test;
pub mod validate;
pub mod worker;
