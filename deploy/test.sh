#!/usr/bin/env bash
# README command (2): set everything up, then run every test of the workspace against real
# components (nats-server, PostgreSQL) that the tests start themselves. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
# Compiled dependencies are reused across clones when CARGO_TARGET_DIR points outside the tree.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(pwd)/target}"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
