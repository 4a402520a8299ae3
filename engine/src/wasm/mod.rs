//! WebAssembly user functions (`wasm` nodes): the process's registry of tenants' modules (the
//! runtime fills it from where modules are stored; the engine does no I/O), compiled once per
//! content hash, and the host side of the batch ABI (`docs/wasm-abi.md`).

pub(crate) mod codec;
pub(crate) mod host;

pub use host::Counters;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::{OnceLock, RwLock};
use weir_pipelines::WasmVersion;

/// One version of a module in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredModule {
    /// The version number.
    pub version: u32,
    /// SHA-256 of the bytes, hex: the compile cache's key.
    pub sha256: String,
    /// The module's bytes.
    pub bytes: Bytes,
}

type Registry = RwLock<HashMap<(String, String), BTreeMap<u32, RegisteredModule>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

/// The SHA-256 of module bytes, hex.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Makes version `version` of `tenant`'s module `name` available to pipelines of that tenant
/// compiled from now on (replacing the same version's bytes). Returns the content hash.
pub fn register_module(tenant: &str, name: &str, version: u32, bytes: Bytes) -> String {
    let sha256 = content_hash(&bytes);
    if let Ok(mut r) = registry().write() {
        r.entry((tenant.to_string(), name.to_string()))
            .or_default()
            .insert(
                version,
                RegisteredModule {
                    version,
                    sha256: sha256.clone(),
                    bytes,
                },
            );
    }
    sha256
}

/// Removes a version (all versions with `None`) of a tenant's module from the registry;
/// pipelines already compiled keep theirs.
pub fn unregister_module(tenant: &str, name: &str, version: Option<u32>) {
    if let Ok(mut r) = registry().write() {
        let key = (tenant.to_string(), name.to_string());
        match version {
            Some(v) => {
                if let Some(versions) = r.get_mut(&key) {
                    versions.remove(&v);
                }
            }
            None => {
                r.remove(&key);
            }
        }
    }
}

/// The module a `wasm` node of `tenant` names, or why there is none.
pub fn resolve_module(
    tenant: &str,
    name: &str,
    version: WasmVersion,
) -> Result<RegisteredModule, String> {
    let r = registry()
        .read()
        .map_err(|_| "module registry poisoned".to_string())?;
    let versions = r.get(&(tenant.to_string(), name.to_string()));
    let found = match (versions, version) {
        (Some(v), WasmVersion::Latest(_)) => v.values().next_back(),
        (Some(v), WasmVersion::Number(n)) => v.get(&n),
        (None, _) => None,
    };
    found.cloned().ok_or_else(|| {
        let which = match version {
            WasmVersion::Latest(_) => String::new(),
            WasmVersion::Number(n) => format!(" version {n}"),
        };
        let owner = if tenant.is_empty() {
            String::new()
        } else {
            format!(" of tenant `{tenant}`")
        };
        format!("no module `{name}`{which}{owner}; upload it first (POST /api/v1/modules/{name})")
    })
}
