//! Which state a pipeline version's stateful nodes (`window`, `dedup`) keep, so that a new
//! version can tell whether it may take over the state of the one before: a fingerprint of
//! their definitions and of the partitioning, and the nodes that differ between two versions.

use crate::spec::PipelineSpec;

/// The definitions that decide the shape of the state: (what, definition) per stateful node
/// (`what` is the node id), then the partitioning when there is one.
fn state_parts(spec: &PipelineSpec) -> Vec<(String, String)> {
    let mut parts: Vec<(String, String)> = spec
        .nodes
        .iter()
        .filter(|n| n.window.is_some() || n.dedup.is_some())
        .map(|n| {
            let window = serde_json::to_string(&n.window).unwrap_or_default();
            let dedup = serde_json::to_string(&n.dedup).unwrap_or_default();
            (n.id.clone(), format!("{window}\n{dedup}"))
        })
        .collect();
    let x = &spec.execution;
    // Another partitioning puts keys in other partitions: their states do not carry over.
    if x.partitions.unwrap_or(1) > 1 {
        parts.push((
            PARTITIONING.into(),
            format!("partitions {:?}\n{:?}", x.partitions, x.partition_by),
        ));
    }
    parts
}

/// The `what` of the partitioning in [`state_parts`] (not a node id: ids have no spaces).
const PARTITIONING: &str = "the partitioning";

/// A digest of the stateful nodes' definitions and the partitioning: a checkpoint taken under
/// another fingerprint belongs to an incompatible version and is not restored.
pub fn state_fingerprint(spec: &PipelineSpec) -> String {
    use sha2::Digest as _;
    let mut digest = sha2::Sha256::new();
    for (what, definition) in state_parts(spec) {
        digest.update(format!("{what}\n{definition}\n"));
    }
    hex::encode(&digest.finalize()[..16])
}

/// What of `old`'s state `new` cannot take over: the stateful nodes changed, added or removed
/// and a changed partitioning. Empty when `old` keeps no state or `new` can take it over.
pub fn state_changes(old: &PipelineSpec, new: &PipelineSpec) -> Vec<String> {
    let (old, new) = (state_parts(old), state_parts(new));
    if old.is_empty() || old == new {
        return Vec::new();
    }
    let mut changed: Vec<&str> = old
        .iter()
        .filter(|o| !new.contains(o))
        .map(|(what, _)| what.as_str())
        .collect();
    for (what, _) in &new {
        if !old.iter().any(|(w, _)| w == what) {
            changed.push(what);
        }
    }
    changed.dedup();
    changed
        .into_iter()
        .map(|what| match what {
            PARTITIONING => what.to_string(),
            id => format!("node `{id}`"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Resource;

    fn spec(size: &str, subject: &str, partitions: &str) -> PipelineSpec {
        let yaml = format!(
            "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: {{ name: p }}\nspec:\n  source: {{ stream: S }}\n  nodes:\n    - id: w\n      window: {{ kind: tumbling, size: {size}, group_by: [data.k], aggregates: {{ n: count(*) }}, late: out }}\n      next: out\n    - {{ id: out, publish: {{ subject: {subject} }} }}\n  execution: {{ partitions: {partitions} }}\n"
        );
        let Ok(resources) = crate::load_str(&yaml, "p.yaml") else {
            panic!("valid: {yaml}")
        };
        let Some(Resource::Pipeline(p)) = resources.into_iter().next() else {
            panic!("a pipeline")
        };
        p.spec
    }

    #[test]
    fn only_the_stateful_nodes_and_the_partitioning_decide() {
        let v1 = spec("1m", "a", "1");
        assert_eq!(
            state_fingerprint(&v1),
            state_fingerprint(&spec("1m", "b", "1"))
        );
        assert!(state_changes(&v1, &spec("1m", "b", "1")).is_empty());
        assert_ne!(
            state_fingerprint(&v1),
            state_fingerprint(&spec("5m", "a", "1"))
        );
        assert_eq!(state_changes(&v1, &spec("5m", "a", "1")), vec!["node `w`"]);
        assert_eq!(
            state_changes(&v1, &spec("1m", "a", "4")),
            vec!["the partitioning"]
        );
    }
}
