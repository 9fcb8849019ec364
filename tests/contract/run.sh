#!/usr/bin/env bash
# The OpenAPI contract, checked: schemathesis (pinned, from PyPI, in a
# virtualenv in cargo's target directory) runs every phase (examples, coverage,
# fuzzing, stateful) and every check against the debug server, signed in
# as a fan, as the admin and as a door scanner, and fails on any failure.
#
#   tests/contract/run.sh [extra schemathesis flags]
set -euo pipefail
cd "$(dirname "$0")/../.."
st_version=4.32.5
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
venv=$target_dir/contract-venv

if ! "$venv/bin/st" --version 2>/dev/null | grep -qx "st, version $st_version"; then
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            python3 python3-venv >/dev/null
    fi
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$st_version"
fi

cargo build --quiet --bin boxoffice
bin=$target_dir/debug/boxoffice
data=$(mktemp -d)
log=$(mktemp)
# The server snapshots its state when told to stop: wait for it to finish
# before removing its directory, or `rm` races its last writes.
cleanup() {
    if [ -n "${server:-}" ]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$data" "$log" || true
}
trap cleanup EXIT

export ADMIN_TOKEN=contract-admin-token SCANNER_TOKEN=contract-scanner-token
# No per-fan pace or limit: the run holds far more often than a fan may
# (both are tested elsewhere; their 429 and 409 are in the document).
RUST_LOG=warn "$bin" serve --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --data-dir "$data" \
    --admin-token "$ADMIN_TOKEN" --scanner-token "$SCANNER_TOKEN" --fan-holds-per-sec 0 --demo-tickets-per-fan-max 0 \
    > "$log" 2>&1 &
server=$!
for _ in $(seq 200); do
    url=$(sed -n 's/^boxoffice listening on //p' "$log" | head -n1)
    [ -n "$url" ] && break
    sleep 0.05
done
[ -n "$url" ] || { cat "$log"; echo "the server did not start" >&2; exit 1; }

export FAN_TOKEN=$("$bin" token --data-dir "$data" --sub contract-fan --membership fanclub --ttl-secs 86400)
export BOXOFFICE_BIN=$bin BOXOFFICE_DATA_DIR=$data BOXOFFICE_URL=$url
export SCHEMATHESIS_HOOKS=hooks PYTHONPATH=$PWD/tests/contract
"$venv/bin/st" --config-file tests/contract/schemathesis.toml run "$url/v1/openapi.json" \
    --phases examples,coverage,fuzzing,stateful --checks all --workers 1 "$@"
