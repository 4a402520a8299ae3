//! `weir`: the one binary. Every topology is a subcommand; each lives in `commands/`.

mod commands;

use clap::{Parser, Subcommand};

/// Weir: a stream-processing data plane on NATS JetStream.
#[derive(Parser)]
#[command(name = "weir", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check pipeline files; every problem is reported with file:line:col.
    Validate(commands::validate::Args),
    /// Print the JSON Schema of the pipeline file format.
    Schema(commands::schema::Args),
    /// Run the pipelines of a file as one worker on JetStream.
    Run(commands::run::Args),
    /// Measure end-to-end throughput: raw JetStream baseline vs a pipeline, same run.
    Bench(commands::bench::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(args) => commands::validate::run(args),
        Command::Schema(args) => commands::schema::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Bench(args) => commands::bench::run(args),
    };
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}
