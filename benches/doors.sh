#!/usr/bin/env bash
# Check-ins per second through the API, for BENCHMARKS.md, with the
# durable holds of the same round beside them (this machine is shared:
# only same-run ratios mean anything):
#
#   1. holds:  durable holds/s against the release server, 64
#              connections, on a 1,000,000-seat event that never sells
#              out, one fan's token (from the cache: a scanner's token
#              is no signature either), as benches/flash_sale.sh
#              measures its peak;
#   2. doors:  the demo arena sold out (100,000 fans within 10 s, every
#              hold confirmed), then 64 doors scan every ticket once and
#              10% a second time (`loadgen --doors`): check-ins/s, scan
#              latency, and every ticket admitted exactly once.
#
#   benches/doors.sh [rounds=3] [doors=64]
#
# Needs python3 and curl. Writes every report to $OUT (default: a
# temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
doors=${2:-64}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"

cargo build --release --quiet --bin boxoffice
bin=./target/release/boxoffice
scanner=bench-scanner-token
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; }
trap cleanup EXIT

# A fresh server on port $1 (data in $2), extra flags after.
start_server() {
    local port=$1 dir=$2
    shift 2
    rm -rf "$dir"
    RUST_LOG=warn "$bin" serve --listen "127.0.0.1:$port" --metrics-listen 127.0.0.1:0 --data-dir "$dir" \
        --admin-token bench-admin-token --scanner-token "$scanner" "$@" > "$dir.log" 2>&1 &
    pid=$!
    for _ in $(seq 200); do
        curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "no server on $port" >&2
    exit 1
}

stop_server() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
}

python3 benches/bench_event.py > "$out/bench.json"

for r in $(seq "$rounds"); do
    echo "== round $r: durable holds" >&2
    start_server 8193 "$out/holds-db" --demo-event false --fan-holds-per-sec 0
    curl -sf -X POST http://127.0.0.1:8193/v1/events -H 'Content-Type: application/json' \
        -H 'Authorization: Bearer bench-admin-token' --data-binary @"$out/bench.json" > /dev/null
    "$bin" loadgen --server http://127.0.0.1:8193 --event bench --fans 100000 --seed "$r" \
        --connections "$doors" --confirm-ratio 0 --release-ratio 0 --explicit-ratio 0 \
        --greedy-ratio 0 --quantity-max 1 --skew 0 --fan-pool 1 --json \
        --issuer-key "$out/holds-db/issuer.key" --payment-key "$out/holds-db/payment.key" \
        > "$out/holds.$r.json"
    stop_server

    echo "== round $r: the demo arena sold out, then $doors doors" >&2
    start_server 8194 "$out/doors-db" --fan-holds-per-sec 0 --mail-enabled false
    "$bin" loadgen --server http://127.0.0.1:8194 --event demo --fans 100000 --ramp-secs 10 \
        --connections 64 --seed "$r" --confirm-ratio 1 --release-ratio 0 \
        --doors "$doors" --scanner-token "$scanner" --rescan-ratio 0.1 --json \
        --issuer-key "$out/doors-db/issuer.key" --payment-key "$out/doors-db/payment.key" \
        > "$out/doors.$r.json"
    stop_server
done

python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
med = statistics.median
h = [json.load(open(f"{out}/holds.{r}.json")) for r in range(1, rounds + 1)]
d = [json.load(open(f"{out}/doors.{r}.json"))["doors"] for r in range(1, rounds + 1)]
holds = med(x["requests_per_s"] for x in h)
checks = med(x["check_ins_per_s"] for x in d)
print(f"reports in {out}")
print(f"durable holds:  {holds:,.0f}/s, p50 {med(x['latency']['hold']['p50_ms'] for x in h):.2f} ms, p99 {med(x['latency']['hold']['p99_ms'] for x in h):.2f} ms")
print(f"check-ins:      {checks:,.0f}/s, p50 {med(x['latency']['p50_ms'] for x in d):.2f} ms, p99 {med(x['latency']['p99_ms'] for x in d):.2f} ms "
      f"= {checks / holds:.0%} of the holds (per round: " +
      ", ".join(f"{y['check_ins_per_s'] / x['requests_per_s']:.0%}" for x, y in zip(h, d)) + ")")
for x in d:
    print(f"  {x['tickets']} tickets, {x['scans']} scans at {x['doors']} doors in {x['elapsed_s']:.2f} s: "
          f"{x['admitted']} admitted, {x['refused_as_used']} rescans refused, {x['retries']} retries, "
          f"{x['tickets_not_admitted_once']} not admitted once, {x['wrong_answers']} wrong: {'OK' if x['ok'] else 'FAILED'}")
PY
