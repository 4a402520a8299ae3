//! `weir schema`: prints the JSON Schema of the pipeline file format, generated from the spec
//! types (the same text as `pipelines/schema/weir.v1.schema.json`).

/// Arguments of `weir schema`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs the command; returns the exit code.
pub fn run(_args: Args) -> anyhow::Result<u8> {
    print!("{}", weir_pipelines::schema::json_schema_text());
    Ok(0)
}
