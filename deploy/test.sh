#!/usr/bin/env bash
# README command (2): set everything up, check formatting and lints, then run every test of
# the workspace against real components (nats-server, PostgreSQL) that the tests start
# themselves. Idempotent. `.ci/run` runs exactly this. Extra arguments go to the test runner.
#
# Lints and the test build share one compilation: clippy-driver is the compiler of the
# workspace crates (RUSTC_WORKSPACE_WRAPPER, exactly as `cargo clippy` sets it up), so the
# dependencies are built once instead of once for `cargo clippy` and once more for the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
# The step under way, named in the last line printed when a step fails (CI shows the tail).
step="setup"
# Printed on stdout and on stderr with plain redirections: `tee /dev/stderr` would reopen a log
# file that stderr points at with O_TRUNC and wipe everything printed before (the test report).
on_exit() {
  local rc=$?
  [[ $rc -ne 0 ]] || return 0
  local msg="test: FAILED in step \"$step\" (exit $rc) after $(( $(date +%s) - start )) s"
  echo "$msg"
  [[ /dev/stdout -ef /dev/stderr ]] || echo "$msg" >&2
}
trap on_exit EXIT
bash deploy/setup.sh
# Compiled dependencies are reused across clones when CARGO_TARGET_DIR points outside the tree.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(pwd)/target}"
step="cargo fmt --check"
cargo fmt --all -- --check
step="module import loops"
# No import loops among the modules of these crates (docs/architecture.md).
python3 deploy/module-deps.py --no-loops pipelines,engine,connectors,runtime,control-plane,cli,benches,testkit >/dev/null \
  || { python3 deploy/module-deps.py | grep -B1 LOOP; echo "test: import loop (see docs/architecture.md)" >&2; exit 1; }

clippy_driver="$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver || true)"
if [[ -z "$clippy_driver" ]]; then
  echo "test: clippy-driver not found; install it with: rustup component add clippy" >&2
  exit 1
fi
export RUSTC_WORKSPACE_WRAPPER="$clippy_driver"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
step="lints and build"
# Every target (lib, bins, tests, benches, examples) is compiled, and so linted, here.
cargo test --workspace --all-targets --no-run
echo "test: lints clean, everything built after $(( $(date +%s) - start )) s"

step="workspace tests"
# The nats-servers of `weir dev` (the dev, schemathesis and console tests) get 75% of the free
# disk as JetStream storage and reserve each stream's max_bytes out of it (the testkit's get a
# fixed 64 GiB): on a nearly full disk, streams are refused ("insufficient storage resources").
# Say so up front rather than leave it to the failures to tell.
free_mib=$(df -Pm "${TMPDIR:-/tmp}" | awk 'NR==2 {print $4}')
if [[ -n "$free_mib" ]] && (( free_mib < 3072 )); then
  echo "test: WARNING: only ${free_mib} MiB free under ${TMPDIR:-/tmp}; tests that declare streams" \
    "with max_bytes may fail with \"insufficient storage resources\" (free at least 3 GiB)" >&2
fi
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi

# The API matches its OpenAPI document: schemathesis against a real weir serve (bounded).
step="schemathesis"
bash deploy/schemathesis.sh "$CARGO_TARGET_DIR/debug/weir"

step="console API types and component tests"
# The console: its API types match the server's OpenAPI document, its component tests, then
# the browser tests (headless chromium) against a real weir serve + weir worker + nats-server.
(
  cd control-plane/console
  npm run --silent check:api
  npx vitest run --reporter=dot
)
step="console browser tests"
(cd control-plane/console && node e2e/run.mjs "$CARGO_TARGET_DIR/debug/weir")
echo "test: finished in $(( $(date +%s) - start )) s"
