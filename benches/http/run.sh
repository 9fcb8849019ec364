#!/usr/bin/env bash
# End-to-end durable holds per second over HTTP on loopback, with wrk, and
# the same wrk against a minimal actix-web handler (the ceiling), in one run.
#
#   benches/http/run.sh [connections=64] [seconds=10]
#
# Needs wrk (Debian: apt-get install wrk) and python3. Prints wrk's reports.
set -euo pipefail
cd "$(dirname "$0")/../.."
conns=${1:-64}
secs=${2:-10}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }

cargo build --release --quiet --bin boxoffice --example http_ceiling
data=$(mktemp -d)
# Wait for the servers' shutdown snapshots before removing their directory.
trap 'kill $(jobs -p) 2>/dev/null || true; wait; rm -rf "$data" || true' EXIT

# A 1,000,000-seat event (20 sections of 50,000) so the run never sells out.
python3 benches/bench_event.py > "$data/bench.json"

RUST_LOG=warn ./target/release/boxoffice serve --listen 127.0.0.1:8091 --metrics-listen 127.0.0.1:0 --data-dir "$data/db" \
    --admin-token bench-admin-token --demo-event false > "$data/server.log" 2>&1 &
for _ in $(seq 100); do curl -sf http://127.0.0.1:8091/readyz >/dev/null && break; sleep 0.1; done
curl -sf -X POST http://127.0.0.1:8091/v1/events -H 'Content-Type: application/json' \
    -H 'Authorization: Bearer bench-admin-token' --data-binary @"$data/bench.json" >/dev/null

# One fan's token (the demo issuer's), sent with every request to both.
export BOXOFFICE_BENCH_TOKEN
BOXOFFICE_BENCH_TOKEN=$(./target/release/boxoffice token --data-dir "$data/db" --sub bench-fan)

./target/release/examples/http_ceiling 127.0.0.1:8092 &
sleep 0.5

echo "== ceiling: minimal actix-web POST handler, $conns connections, ${secs}s"
wrk -t2 -c"$conns" -d"${secs}s" --latency -s benches/http/holds.lua http://127.0.0.1:8092
echo "== boxoffice: durable holds, $conns connections, ${secs}s"
wrk -t2 -c"$conns" -d"${secs}s" --latency -s benches/http/holds.lua http://127.0.0.1:8091
echo "== server view"
curl -s http://127.0.0.1:8091/v1/events/bench | python3 -c 'import json,sys; e=json.load(sys.stdin); print("held", e["held"], "free", e["free"])'
