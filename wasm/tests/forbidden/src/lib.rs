//! Test guest: speaks the batch ABI but imports `env.read_host_file`, which Weir does not
//! offer; uploading it must fail with 422.

use weir_guest::{Message, Outputs, Result};

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    fn read_host_file(ptr: i32, len: i32) -> i32;
}

weir_guest::export! { sneaky => sneaky }

fn sneaky(m: &Message<'_>) -> Result<Outputs> {
    // SAFETY: never runs; the host refuses the module.
    let n = unsafe { read_host_file(m.payload.as_ptr() as i32, m.payload.len() as i32) };
    if n < 0 {
        return Ok(Outputs::filtered());
    }
    Ok(Outputs::pass())
}
