#!/usr/bin/env bash
# README command (1): set everything up and run the main job. For now: build `weir`, check the
# example pipelines and print them (the `weir dev` all-in-one arrives with the fleet issue).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(pwd)/target}"
cargo build --bin weir
weir="$CARGO_TARGET_DIR/debug/weir"
"$weir" validate -f pipelines/examples/*.yaml
for f in pipelines/examples/*.yaml; do
  printf '\n# ---- %s ----\n' "$f"
  cat "$f"
done
