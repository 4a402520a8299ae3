//! Before a deployment compiles: fetches the WebAssembly modules its `wasm` nodes name from
//! the `weir_modules` bucket (Weir's account) and registers them with the engine under the
//! deployment's tenant, so that its pipeline can use its own tenant's modules and no other's.
//! The engine compiles each content hash once per worker.

use async_nats::jetstream;
use weir_connectors::fleet::Deployment;

/// The (module, version) pairs of the `wasm` nodes of a deployment's spec; `None` = latest.
pub fn wanted(spec: &serde_json::Value) -> Vec<(String, Option<u32>)> {
    spec.pointer("/spec/nodes")
        .and_then(|n| n.as_array())
        .into_iter()
        .flatten()
        .filter_map(|node| {
            let wasm = node.get("wasm")?;
            let module = wasm.get("module")?.as_str()?.to_string();
            let version = wasm
                .get("version")
                .and_then(|v| v.as_u64())
                .and_then(|v| u32::try_from(v).ok());
            Some((module, version))
        })
        .collect()
}

/// Fetches and registers every module `deployment` needs. Errors are worth retrying (the
/// bucket may be unreachable for now).
pub async fn load(client: &async_nats::Client, deployment: &Deployment) -> Result<(), String> {
    let wanted = wanted(&deployment.spec);
    if wanted.is_empty() {
        return Ok(());
    }
    let js = jetstream::new(client.clone());
    for (module, version) in wanted {
        let (version, bytes) =
            weir_connectors::modules::fetch(&js, &deployment.tenant, &module, version).await?;
        let hash = weir_engine::wasm::register_module(&deployment.tenant, &module, version, bytes);
        tracing::debug!(tenant = %deployment.tenant, module, version, sha256 = hash, "wasm module loaded");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_modules_of_wasm_nodes() {
        let spec = serde_json::json!({"spec": {"nodes": [
            {"id": "a", "wasm": {"module": "pii", "version": 2, "function": "f"}},
            {"id": "b", "filter": "true"},
            {"id": "c", "wasm": {"module": "geo", "version": "latest", "function": "g"}},
        ]}});
        assert_eq!(
            super::wanted(&spec),
            vec![("pii".to_string(), Some(2)), ("geo".to_string(), None)]
        );
    }
}
