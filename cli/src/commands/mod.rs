//! One module per subcommand: its clap `Args` and a `run` that returns the exit code.

pub mod bench;
pub mod run;
pub mod schema;
pub mod validate;
