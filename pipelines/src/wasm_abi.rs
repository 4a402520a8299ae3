//! The WebAssembly batch ABI's names and the check of an uploaded module against it
//! (`docs/wasm-abi.md`): the exports a module must have, the host functions it may import.
//! The control plane checks uploads with [`inspect`]; the engine links the same imports.

use std::time::Duration;
use wasmparser::types::EntityType;
use wasmparser::{ValType, Validator};

/// A `wasm` node's batch deadline when the file gives none.
pub const WASM_DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);
/// The longest `timeout` a `wasm` node may ask for.
pub const WASM_MAX_TIMEOUT: Duration = Duration::from_secs(10);
/// A `wasm` instance's memory cap when the file gives none (16 MiB).
pub const WASM_DEFAULT_MEMORY: u64 = 16 << 20;
/// The largest `max_memory` a `wasm` node may ask for (256 MiB).
pub const WASM_MAX_MEMORY: u64 = 256 << 20;

/// The ABI version hosts of this release speak.
pub const ABI_VERSION: i32 = 1;
/// The import module of the host functions.
pub const HOST_MODULE: &str = "weir";
/// The host functions a module may import: (name, params), none returns a value.
pub const HOST_FUNCTIONS: &[(&str, &[ValType])] = &[
    ("log", &[ValType::I32, ValType::I32, ValType::I32]),
    ("counter", &[ValType::I32, ValType::I32, ValType::I64]),
];
/// Export: `() -> i32`, the ABI version.
pub const EXPORT_VERSION: &str = "weir_abi_version";
/// Export: `(len: i32) -> i32`, room for the next batch.
pub const EXPORT_ALLOC: &str = "weir_alloc";
/// Optional export: `(ptr: i32, len: i32) -> i32`, the node's config once per instance.
pub const EXPORT_INIT: &str = "weir_init";
/// Export: the linear memory.
pub const EXPORT_MEMORY: &str = "memory";

/// What an uploaded module offers: its batch functions (exports of type
/// `(i32, i32) -> i64` that are not reserved), in export order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// The batch functions a `wasm` node may name.
    pub functions: Vec<String>,
}

/// Checks that `bytes` is a valid core WebAssembly module that speaks this ABI: it exports
/// `memory`, `weir_abi_version`, `weir_alloc` (and `weir_init`, if at all, with its type),
/// imports only Weir's host functions with their types, and exports every function of
/// `required`. The error says what is wrong, for a 422.
pub fn inspect(bytes: &[u8], required: &[String]) -> Result<ModuleInfo, String> {
    if !bytes.starts_with(b"\0asm") {
        return Err("not a WebAssembly module (it does not start with `\\0asm`)".into());
    }
    let types = Validator::new()
        .validate_all(bytes)
        .map_err(|e| format!("invalid WebAssembly module: {e}"))?;
    let types = types.as_ref();
    let sig = |t: &EntityType| -> Option<(Vec<ValType>, Vec<ValType>)> {
        match t {
            EntityType::Func(id) | EntityType::FuncExact(id) => {
                let f = types[*id].unwrap_func();
                Some((f.params().to_vec(), f.results().to_vec()))
            }
            _ => None,
        }
    };
    let imports = types
        .core_imports()
        .ok_or("a component, not a core WebAssembly module")?;
    for (module, name, ty) in imports {
        let allowed = HOST_FUNCTIONS
            .iter()
            .find(|(n, _)| module == HOST_MODULE && *n == name);
        match (allowed, sig(&ty)) {
            (Some((_, params)), Some((p, r))) if p == *params && r.is_empty() => {}
            (Some((_, params)), _) => {
                return Err(format!(
                    "import `{module}.{name}` must be a function {params:?} -> (); see docs/wasm-abi.md"
                ));
            }
            (None, _) => {
                let offered: Vec<String> = HOST_FUNCTIONS
                    .iter()
                    .map(|(n, _)| format!("`{HOST_MODULE}.{n}`"))
                    .collect();
                return Err(format!(
                    "forbidden import `{module}.{name}`: a module may import only Weir's host functions ({})",
                    offered.join(", ")
                ));
            }
        }
    }
    let exports: Vec<(&str, EntityType)> = types
        .core_exports()
        .ok_or("a component, not a core WebAssembly module")?
        .collect();
    let find = |name: &str| exports.iter().find(|(n, _)| *n == name).map(|(_, t)| t);
    use ValType::{I32, I64};
    if !matches!(find(EXPORT_MEMORY), Some(EntityType::Memory(_))) {
        return Err(format!("missing export `{EXPORT_MEMORY}` (a memory)"));
    }
    let expect =
        |name: &str, params: &[ValType], results: &[ValType], optional: bool| match find(name)
            .map(sig)
        {
            None if optional => Ok(()),
            None => Err(format!("missing export `{name}`")),
            Some(Some((p, r))) if p == params && r == results => Ok(()),
            Some(_) => Err(format!(
                "export `{name}` must be a function {params:?} -> {results:?}"
            )),
        };
    expect(EXPORT_VERSION, &[], &[I32], false)?;
    expect(EXPORT_ALLOC, &[I32], &[I32], false)?;
    expect(EXPORT_INIT, &[I32, I32], &[I32], true)?;
    for name in required {
        if name.starts_with("weir_") {
            return Err(format!(
                "`{name}`: names starting with `weir_` are reserved"
            ));
        }
        expect(name, &[I32, I32], &[I64], false)?;
    }
    let functions = exports
        .iter()
        .filter(|(n, t)| !n.starts_with("weir_") && sig(t) == Some((vec![I32, I32], vec![I64])))
        .map(|(n, _)| n.to_string())
        .collect();
    Ok(ModuleInfo { functions })
}

#[cfg(test)]
mod tests {
    use super::inspect;

    #[test]
    fn refuses_what_is_not_wasm() {
        let err = inspect(b"hello", &[]).unwrap_err();
        assert!(err.contains("not a WebAssembly module"), "{err}");
        let err = inspect(b"\0asm\x01\0\0\0\x05", &[]).unwrap_err();
        assert!(err.contains("invalid WebAssembly module"), "{err}");
    }

    #[test]
    fn an_empty_module_lacks_the_abi_exports() {
        let err = inspect(b"\0asm\x01\0\0\0", &[]).unwrap_err();
        assert!(err.contains("missing export `memory`"), "{err}");
    }
}
