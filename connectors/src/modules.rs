//! Where uploaded WebAssembly modules live for the workers: the JetStream Object Store bucket
//! `weir_modules` in Weir's own account (tenants cannot reach it), one object per version,
//! named `<tenant>/<module>/<version>`. The control plane writes it on upload; a worker reads
//! the versions its deployments name before compiling them (and checks the content hash).

use async_nats::jetstream::{self, object_store};
use bytes::Bytes;
use futures::StreamExt;
use tokio::io::AsyncReadExt;

/// The bucket.
pub const MODULES_BUCKET: &str = "weir_modules";

/// The object name of a module version.
pub fn object_name(tenant: &str, module: &str, version: u32) -> String {
    format!("{tenant}/{module}/{version}")
}

async fn bucket(js: &jetstream::Context) -> Result<object_store::ObjectStore, String> {
    if let Ok(b) = js.get_object_store(MODULES_BUCKET).await {
        return Ok(b);
    }
    js.create_object_store(object_store::Config {
        bucket: MODULES_BUCKET.into(),
        description: Some("Weir: tenants' WebAssembly modules".into()),
        ..Default::default()
    })
    .await
    .map_err(|e| format!("module bucket {MODULES_BUCKET}: {e}"))
}

/// Stores a module version.
pub async fn store(
    js: &jetstream::Context,
    tenant: &str,
    module: &str,
    version: u32,
    bytes: &[u8],
) -> Result<(), String> {
    let name = object_name(tenant, module, version);
    let mut reader = bytes;
    bucket(js)
        .await?
        .put(name.as_str(), &mut reader)
        .await
        .map(|_| ())
        .map_err(|e| format!("store module {name}: {e}"))
}

/// Removes a module version (absent is fine).
pub async fn remove(
    js: &jetstream::Context,
    tenant: &str,
    module: &str,
    version: u32,
) -> Result<(), String> {
    let name = object_name(tenant, module, version);
    match bucket(js).await?.delete(&name).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == object_store::DeleteErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("remove module {name}: {e}")),
    }
}

/// Fetches a module version; `None` = the newest version stored.
pub async fn fetch(
    js: &jetstream::Context,
    tenant: &str,
    module: &str,
    version: Option<u32>,
) -> Result<(u32, Bytes), String> {
    let b = bucket(js).await?;
    let version = match version {
        Some(v) => v,
        None => {
            let prefix = format!("{tenant}/{module}/");
            let mut list = b
                .list()
                .await
                .map_err(|e| format!("list module versions: {e}"))?;
            let mut newest = None;
            while let Some(info) = list.next().await {
                let info = info.map_err(|e| format!("list module versions: {e}"))?;
                if let Some(v) = info
                    .name
                    .strip_prefix(&prefix)
                    .and_then(|v| v.parse::<u32>().ok())
                    && !info.deleted
                {
                    newest = newest.max(Some(v));
                }
            }
            newest.ok_or_else(|| format!("no module `{module}` of tenant `{tenant}` is stored"))?
        }
    };
    let name = object_name(tenant, module, version);
    let mut object = b
        .get(&name)
        .await
        .map_err(|e| format!("module {name}: {e}"))?;
    let mut bytes = Vec::new();
    object
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| format!("read module {name}: {e}"))?;
    Ok((version, Bytes::from(bytes)))
}
