#!/usr/bin/env bash
# The OpenAPI document is the truth: schemathesis (installed by deploy/setup.sh) fuzzes a real
# `weir serve` (ephemeral port, temporary data dir, a real nats-server) against the document,
# once with an admin key and once with a viewer key, with every check, and must find nothing.
# Operations that revoke or delete the caller's own credentials are left out, so that a run
# cannot lock itself out. Bounded: a few examples per operation and a time budget per role.
#
#   deploy/schemathesis.sh [path/to/weir]      (default: $CARGO_TARGET_DIR/debug/weir)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
weir="${1:-${CARGO_TARGET_DIR:-$root/target}/debug/weir}"
st="${SCHEMATHESIS:-$root/.tools/bin/schemathesis}"
nats="${WEIR_NATS_SERVER:-$root/.tools/bin/nats-server}"
examples="${SCHEMATHESIS_EXAMPLES:-5}"
budget="${SCHEMATHESIS_SECONDS:-60}"
for tool in "$weir" "$st" "$nats"; do
  [[ -x "$tool" ]] || { echo "schemathesis: $tool is missing (run deploy/setup.sh and cargo build)" >&2; exit 1; }
done

tmp=$(mktemp -d)
out="${SCHEMATHESIS_OUT:-$tmp}"   # keep the logs and reports there when set
mkdir -p "$out"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
nats_port=$(free_port)
"$nats" -a 127.0.0.1 -p "$nats_port" -js -sd "$tmp/nats" >"$tmp/nats.log" 2>&1 &
pids+=($!)
port=$(free_port)
admin_key="weir_$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
WEIR_BOOTSTRAP_API_KEY="$admin_key" RUST_LOG=warn "$weir" serve --addr "127.0.0.1:$port" \
  --data-dir "$tmp/data" --nats "nats://127.0.0.1:$nats_port" >"$tmp/serve.log" 2>&1 &
pids+=($!)
base="http://127.0.0.1:$port"
# Wait for the server, then make a viewer of the system tenant with its own key (python3's
# standard library only: no curl needed).
viewer_key=$(BASE="$base" KEY="$admin_key" python3 - <<'PY'
import json, os, sys, time, urllib.request
base, key = os.environ["BASE"], os.environ["KEY"]
for _ in range(150):
    try:
        urllib.request.urlopen(base + "/healthz", timeout=1)
        break
    except Exception:
        time.sleep(0.2)
else:
    sys.exit("schemathesis: weir serve did not answer on " + base)
def post(path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": "Bearer " + key, "content-type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=10))
user = post("/api/v1/users", {"email": "viewer@weir.local", "role": "viewer"})
print(post("/api/v1/api-keys", {"name": "schemathesis", "user_id": user["id"]})["key"])
PY
) || { cat "$tmp/serve.log" >&2; exit 1; }

# One worker: with two threads, hypothesis's lambda descriptions race in CPython 3.11's
# ast.parse ("AST constructor recursion depth mismatch") under load, a runtime error of the tool
# and not a finding about the API.
# ASCII only: CI keeps the tail of this output, and schemathesis draws with box characters.
ascii() { LC_ALL=C tr -cd '\11\12\40-\176'; }
status=0 failed_roles=()
for who in admin viewer; do
  key=$admin_key failed=0
  [[ $who == viewer ]] && key=$viewer_key
  echo "schemathesis: as $who against $base"
  NO_COLOR=1 "$st" --config-file "$root/deploy/schemathesis.toml" run "$base/api/v1/openapi.json" \
    --header "Authorization: Bearer $key" \
    --checks all \
    --max-examples "$examples" \
    --max-time "$budget" \
    --workers 1 \
    --seed 1 \
    --request-timeout 10 \
    --suppress-health-check all \
    --exclude-operation-id revoke \
    --exclude-operation-id rotate \
    --exclude-operation-id users_delete \
    --exclude-operation-id update \
    --exclude-operation-id logout \
    --warnings off \
    --output-truncate true \
    --report junit --report-dir "$out/report-$who" >"$out/st-$who.log" 2>&1 || failed=1
  tail -n 25 "$out/st-$who.log" | ascii | grep -v '^[[:space:]]*$'
  [[ $failed -eq 0 ]] || { status=1; failed_roles+=("$who"); }
done
# What failed comes last, so that it is in the tail that CI keeps.
for who in "${failed_roles[@]}"; do
  echo "schemathesis: what failed as $who:"
  sed -n '/= \(FAILURES\|ERRORS\) =/,/= SUMMARY =/p' "$out/st-$who.log" | ascii | cut -c1-300 \
    | grep -v '^[[:space:]]*$' | head -n 80
done
cp "$tmp/serve.log" "$out/serve.log" 2>/dev/null || true
if grep -q "Internal error\|panicked" "$tmp/serve.log"; then
  echo "schemathesis: the server logged internal errors:" >&2
  grep "Internal error\|panicked" "$tmp/serve.log" | head -n 20 >&2
  status=1
fi
exit "$status"
