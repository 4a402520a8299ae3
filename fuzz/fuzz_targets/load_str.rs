//! Fuzz target: `weir_pipelines::load_str` on arbitrary bytes (as UTF-8 text) must return
//! resources or diagnostics — never panic, overflow the stack or run away with memory — and
//! whatever loads must load again after a round trip through JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match weir_pipelines::load_str(&text, "fuzz.yaml") {
        Ok(resources) => {
            let json = serde_json::to_string(&resources).expect("resources serialize");
            if let Err(d) = weir_pipelines::load_str(&json, "fuzz.json") {
                panic!("a loaded file does not load again from JSON:\n{d}\n{json}");
            }
        }
        Err(diagnostics) => assert!(!diagnostics.is_empty()),
    }
});
