#!/usr/bin/env bash
# Builds the WebAssembly guests (SDK examples and test modules) for wasm32-unknown-unknown into
# wasm/out/*.wasm. Own target dir (WEIR_WASM_TARGET_DIR, default wasm/target), so it never
# touches the main workspace's build. Run by deploy/setup.sh and by the tests that need them.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${WEIR_WASM_TARGET_DIR:-$PWD/target}"
# The main workspace's clippy wrapper and flags must not leak into the guest build.
unset RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS RUSTFLAGS
cargo build --quiet --release --target wasm32-unknown-unknown \
  -p pii-redact -p enrich-geo -p weir-test-traps -p weir-test-forbidden
mkdir -p out
for m in pii_redact enrich_geo weir_test_traps weir_test_forbidden; do
  cp "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/$m.wasm" "out/${m//_/-}.wasm.$$"
  mv -f "out/${m//_/-}.wasm.$$" "out/${m//_/-}.wasm"
done
