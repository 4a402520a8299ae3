//! The host functions Weir offers (`weir.log`, `weir.counter`).

#[link(wasm_import_module = "weir")]
unsafe extern "C" {
    #[link_name = "log"]
    fn weir_log(level: i32, ptr: i32, len: i32);
    #[link_name = "counter"]
    fn weir_counter(ptr: i32, len: i32, delta: i64);
}

/// Log levels of [`log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// error
    Error = 0,
    /// warn
    Warn = 1,
    /// info
    Info = 2,
    /// debug
    Debug = 3,
    /// trace
    Trace = 4,
}

/// Writes a line to the worker's log (at most 100 lines per batch, 1 KiB each).
pub fn log(level: Level, text: &str) {
    // SAFETY: the host reads `len` bytes at `ptr` of this instance's memory.
    unsafe { weir_log(level as i32, text.as_ptr() as i32, text.len() as i32) }
}

/// Adds `delta` to the node's counter `name`.
pub fn counter(name: &str, delta: i64) {
    // SAFETY: as above.
    unsafe { weir_counter(name.as_ptr() as i32, name.len() as i32, delta) }
}
