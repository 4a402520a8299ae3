//! The values of key expressions per message, for routing messages to keyed partitions.
//! The expressions are evaluated on the pipeline's input as its source decodes it (JSON,
//! Avro, Protobuf), by the engine's own pipeline machinery: a pipeline of the same source and
//! one sink whose header templates are the key expressions, each cast to text (a null or
//! missing value is the empty text, so it is a key like any other).

use weir_pipelines::PipelineResource;
use weir_pipelines::spec::Node;

use crate::message::{Fate, InputMessage, MessageError};

use crate::pipeline::{CompileError, CompiledPipeline};

/// Header name of key expression `i` on the inner sink's output.
fn header(i: usize) -> String {
    format!("Weir-Key-{i}")
}

/// Key expressions compiled against a pipeline's source.
pub struct KeyExtractor {
    inner: CompiledPipeline,
    keys: usize,
}

impl KeyExtractor {
    /// Compiles `exprs` against `pipeline`'s source.
    pub fn compile(pipeline: &PipelineResource, exprs: &[String]) -> Result<Self, CompileError> {
        let headers: serde_json::Map<String, serde_json::Value> = exprs
            .iter()
            .enumerate()
            .map(|(i, e)| {
                // (`coalesce` needs DataFusion's simplifier, which expressions here skip.)
                let hole =
                    format!("{{case when ({e}) is null then '' else cast(({e}) as varchar) end}}");
                (header(i), serde_json::Value::String(hole))
            })
            .collect();
        let publish = serde_json::json!({ "subject": "weir.keys", "headers": headers });
        let sink = Node {
            id: "partition_key".into(),
            publish: Some(serde_json::from_value(publish).map_err(|e| CompileError {
                pipeline: pipeline.metadata.name.clone(),
                problems: vec![crate::CompileProblem {
                    node: "partition_key".into(),
                    path: "/spec/execution/partition_by".into(),
                    message: e.to_string(),
                }],
            })?),
            ..Node::default()
        };
        let mut keyed = pipeline.clone();
        keyed.spec.nodes = vec![sink];
        keyed.spec.execution = Default::default();
        Ok(KeyExtractor {
            inner: CompiledPipeline::compile(&keyed)?,
            keys: exprs.len(),
        })
    }

    /// Each message's key values in expression order, or why they could not be had (e.g. a
    /// payload that does not decode).
    pub fn keys(&self, batch: &[InputMessage]) -> Vec<Result<Vec<String>, MessageError>> {
        let names: Vec<String> = (0..self.keys).map(header).collect();
        self.inner
            .process(batch)
            .fates
            .into_iter()
            .map(|fate| match fate {
                Fate::Outputs(outputs) => {
                    let headers = outputs.into_iter().next().map(|o| o.headers);
                    let headers = headers.unwrap_or_default();
                    Ok(names
                        .iter()
                        .map(|n| {
                            headers
                                .iter()
                                .rev()
                                .find(|(h, _)| h == n)
                                .map(|(_, v)| v.clone())
                                .unwrap_or_default()
                        })
                        .collect())
                }
                Fate::Filtered => Ok(vec![String::new(); self.keys]),
                Fate::Error(e) => Err(e),
            })
            .collect()
    }
}
