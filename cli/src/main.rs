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
    /// Run pipelines on sample messages: their `tests:` cases, or `--input` JSON lines.
    Test(commands::test::Args),
    /// Run the pipelines of a file as one worker on JetStream.
    Run(commands::run::Args),
    /// Everything on one machine: nats-server, control plane, a worker, the examples deployed
    /// and sample orders flowing.
    Dev(commands::dev::Args),
    /// Run as a worker of the fleet: whatever the control plane deploys, until SIGTERM.
    Worker(commands::worker::Args),
    /// Measure end-to-end throughput: raw JetStream baseline vs a pipeline, same run.
    Bench(commands::bench::Args),
    /// Serve the control plane API (SQLite under --data-dir by default, or PostgreSQL).
    Serve(commands::serve::Args),
    /// Create or update the resources of files through the API.
    Apply(commands::apply::Args),
    /// List or show pipelines and streams of your tenant.
    Get(commands::get::Args),
    /// Show what `weir apply` would change.
    Diff(commands::diff::Args),
    /// Delete a pipeline or stream.
    Delete(commands::delete::Args),
    /// Deploy a pipeline version to the fleet.
    Deploy(commands::deploy::DeployArgs),
    /// Pause a deployed pipeline (its consumer keeps its position).
    Pause(commands::deploy::NameArgs),
    /// Resume a paused pipeline.
    Resume(commands::deploy::NameArgs),
    /// Run another version of a deployed pipeline.
    Rollback(commands::deploy::RollbackArgs),
    /// Stop a pipeline on every worker and remove its deployment.
    Undeploy(commands::deploy::NameArgs),
    /// Show a pipeline's health across the fleet.
    Status(commands::status::Args),
    /// Browse, redrive and purge a pipeline's dead letters.
    Dlq(commands::dlq::Args),
    /// Make the NATS operator keys, server configuration and worker credentials for operator
    /// mode (one NATS account per tenant).
    NatsSetup(commands::nats_setup::Args),
}

/// The allocator of every `weir` process (workers, control plane, bench).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Every pipeline file this binary loads (validate, apply, the API, workers) is also
    // compiled by the engine: unknown SQL functions and undeclared fields are refused early.
    weir_pipelines::context::set_compile_check(weir_engine::check);
    // "Test before deploy" in the API runs the engine through this hook.
    weir_pipelines::context::set_sample_runner(weir_engine::testing::run_samples);
    let result = match cli.command {
        Command::Validate(args) => commands::validate::run(args),
        Command::Schema(args) => commands::schema::run(args),
        Command::Test(args) => commands::test::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Dev(args) => commands::dev::run(args),
        Command::Worker(args) => commands::worker::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Apply(args) => commands::apply::run(args),
        Command::Get(args) => commands::get::run(args),
        Command::Diff(args) => commands::diff::run(args),
        Command::Delete(args) => commands::delete::run(args),
        Command::Deploy(args) => commands::deploy::deploy(args),
        Command::Pause(args) => commands::deploy::pause(args),
        Command::Resume(args) => commands::deploy::resume(args),
        Command::Rollback(args) => commands::deploy::rollback(args),
        Command::Undeploy(args) => commands::deploy::undeploy(args),
        Command::Status(args) => commands::status::run(args),
        Command::Dlq(args) => commands::dlq::run(args),
        Command::NatsSetup(args) => commands::nats_setup::run(args),
    };
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}
