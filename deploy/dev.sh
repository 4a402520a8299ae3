#!/usr/bin/env bash
# README command (1): set everything up and run the main job, `weir dev`: a local nats-server
# (JetStream under .weir/), the control plane on SQLite, one worker, the examples deployed and
# sample orders flowing. Extra arguments go to `weir dev` (see `weir dev --help`). Ctrl-C stops.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh --dev
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(pwd)/target}"
cargo build --bin weir
weir="$CARGO_TARGET_DIR/debug/weir"
"$weir" validate -f pipelines/examples/*.yaml
export WEIR_NATS_SERVER="${WEIR_NATS_SERVER:-$(pwd)/.tools/bin/nats-server}"
exec "$weir" dev "$@"
