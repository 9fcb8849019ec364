#!/usr/bin/env bash
# The load generator's figures for BENCHMARKS.md, measured in one run so
# that they compare (this machine is shared; only same-run ratios mean
# anything):
#
#   1. ceiling:   holds against examples/http_ceiling.rs, a minimal
#                 actix-web handler (no actor, journal or fsync): the most
#                 the load generator and the HTTP stack can do here;
#   2. peak:      durable holds against the release server, on a
#                 1,000,000-seat event that never sells out; every fan
#                 signs in with a token of its own (a signature check
#                 per hold: the worst case for sign-in);
#   2b. tokens:   the same with 10,000 fans (fan k signs in as fan
#                 k mod 10,000: a signature check for the first hold of
#                 each, the token cache for the rest), against one fan
#                 (every check from the cache): what tokens cost;
#   3. half peak: the same at a fixed arrival rate of half the peak:
#                 hold latency when the server is not saturated;
#   4. sell-out:  the 15,000-seat demo arena sold by 100,000 fans
#                 arriving within 10 seconds (70% confirm, 20% release,
#                 10% of seated fans pick seats on the map).
#
#   benches/flash_sale.sh [rounds=3] [connections=64]
#
# Each step runs `rounds` times (interleaved); the summary gives medians.
# Needs python3. Writes every report to $OUT (default: a temporary dir).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
conns=${2:-64}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"

cargo build --release --quiet --bin boxoffice --example http_ceiling
bin=./target/release/boxoffice
. benches/common.sh

# A fresh server on $1 (data in $2), extra flags after.
start_server() {
    local port=$1 dir=$2
    shift 2
    rm -rf "$dir"
    RUST_LOG=warn "$bin" serve --listen "127.0.0.1:$port" --metrics-listen 127.0.0.1:0 --data-dir "$dir" \
        --admin-token bench-admin-token "$@" > "$dir.log" 2>&1 &
    pids+=($!)
    wait_ready "http://127.0.0.1:$port"
}

stop_last() {
    local p=${pids[-1]}
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    unset 'pids[-1]'
}

python3 benches/bench_event.py > "$out/bench.json"

holds_only=(--event bench --connections "$conns" --confirm-ratio 0 --release-ratio 0
            --explicit-ratio 0 --greedy-ratio 0 --quantity-max 1 --skew 0 --json)
# The minimal handler ignores tokens, but its requests carry them too, so
# both runs send the same bytes: a demo issuer key of its own signs them.
"$bin" token --data-dir "$out/ceiling-keys" --sub nobody > /dev/null
"$bin" receipt --data-dir "$out/ceiling-keys" --hold none --amount 1 --currency KRW > /dev/null

./target/release/examples/http_ceiling 127.0.0.1:8190 > /dev/null 2>&1 &
pids+=($!)
wait_ready http://127.0.0.1:8190

for r in $(seq "$rounds"); do
    echo "== round $r: ceiling" >&2
    "$bin" loadgen --server http://127.0.0.1:8190 --fans 200000 --seed "$r" "${holds_only[@]}" \
        --issuer-key "$out/ceiling-keys/issuer.key" --payment-key "$out/ceiling-keys/payment.key" \
        > "$out/ceiling.$r.json"

    echo "== round $r: peak durable holds" >&2
    # No pace per fan: the pooled runs send each fan's holds back to back.
    start_server 8191 "$out/peak-db" --demo-event false --fan-holds-per-sec 0
    curl -sf -X POST http://127.0.0.1:8191/v1/events -H 'Content-Type: application/json' \
        -H 'Authorization: Bearer bench-admin-token' --data-binary @"$out/bench.json" > /dev/null
    "$bin" loadgen --server http://127.0.0.1:8191 --fans 200000 --seed "$r" "${holds_only[@]}" \
        --issuer-key "$out/peak-db/issuer.key" --payment-key "$out/peak-db/payment.key" \
        > "$out/peak.$r.json"
    peak=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["requests_per_s"]))' "$out/peak.$r.json")

    echo "== round $r: durable holds, 10,000 fans, then one fan" >&2
    "$bin" loadgen --server http://127.0.0.1:8191 --fans 200000 --seed "$r" --sold-before 0 \
        "${holds_only[@]}" --fan-pool 10000 --issuer-key "$out/peak-db/issuer.key" \
        --payment-key "$out/peak-db/payment.key" > "$out/pool10k.$r.json"
    "$bin" loadgen --server http://127.0.0.1:8191 --fans 200000 --seed "$r" --sold-before 0 \
        "${holds_only[@]}" --fan-pool 1 --issuer-key "$out/peak-db/issuer.key" \
        --payment-key "$out/peak-db/payment.key" > "$out/pool1.$r.json"

    echo "== round $r: half of the peak ($((peak / 2)) fans/s)" >&2
    "$bin" loadgen --server http://127.0.0.1:8191 --fans $((peak / 2 * 5)) --rate $((peak / 2)) \
        --seed "$r" --sold-before 0 "${holds_only[@]}" --issuer-key "$out/peak-db/issuer.key" \
        --payment-key "$out/peak-db/payment.key" \
        > "$out/half.$r.json"
    stop_last

    echo "== round $r: demo arena, 100,000 fans within 10 s" >&2
    start_server 8192 "$out/demo-db"
    "$bin" loadgen --server http://127.0.0.1:8192 --event demo --fans 100000 --ramp-secs 10 \
        --connections "$conns" --seed "$r" --issuer-key "$out/demo-db/issuer.key" \
        --payment-key "$out/demo-db/payment.key" --json \
        > "$out/sellout.$r.json"
    stop_last
done

python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def load(step):
    return [json.load(open(f"{out}/{step}.{r}.json")) for r in range(1, rounds + 1)]
med = statistics.median
c, p, h, s = load("ceiling"), load("peak"), load("half"), load("sellout")
p10k, p1 = load("pool10k"), load("pool1")
ceiling = med(x["requests_per_s"] for x in c)
peak = med(x["requests_per_s"] for x in p)
print(f"reports in {out}")
print(f"ceiling (minimal handler): {ceiling:,.0f} holds/s, hold p50 {med(x['latency']['hold']['p50_ms'] for x in c):.2f} ms, p99 {med(x['latency']['hold']['p99_ms'] for x in c):.2f} ms")
print(f"peak durable holds:        {peak:,.0f} holds/s = {peak / ceiling:.0%} of the ceiling (per round: " +
      ", ".join(f"{x['requests_per_s'] / y['requests_per_s']:.0%}" for x, y in zip(p, c)) + ")")
print(f"  hold p50 {med(x['latency']['hold']['p50_ms'] for x in p):.2f} ms, p99 {med(x['latency']['hold']['p99_ms'] for x in p):.2f} ms, 5xx {sum(x['server_errors'] for x in p)}")
def rate(xs): return med(x["requests_per_s"] for x in xs)
def lat(xs, q): return med(x["latency"]["hold"][q] for x in xs)
print(f"tokens, 10,000 fans:       {rate(p10k):,.0f} holds/s, p50 {lat(p10k, 'p50_ms'):.2f} ms, p99 {lat(p10k, 'p99_ms'):.2f} ms")
print(f"tokens, one fan (cached):  {rate(p1):,.0f} holds/s, p50 {lat(p1, 'p50_ms'):.2f} ms, p99 {lat(p1, 'p99_ms'):.2f} ms")
print(f"  10,000 fans / one fan: {rate(p10k) / rate(p1):.1%} (per round: " +
      ", ".join(f"{x['requests_per_s'] / y['requests_per_s']:.1%}" for x, y in zip(p10k, p1)) + f"); each / ceiling: {rate(p10k) / ceiling:.0%}, {rate(p1) / ceiling:.0%}")
print(f"half of the peak:          {med(x['requests_per_s'] for x in h):,.0f} holds/s, hold p50 {med(x['latency']['hold']['p50_ms'] for x in h):.2f} ms, p99 {med(x['latency']['hold']['p99_ms'] for x in h):.2f} ms, p99.9 {med(x['latency']['hold']['p999_ms'] for x in h):.2f} ms")
for x in s:
    o, k = x["outcomes"], x["consistency"]
    print(f"sell-out seed {x['seed']}: {x['fans']} fans in {x['elapsed_s']:.1f} s, sold out after {x['sold_out_after_s']} s (all sold: {x['all_sold_after_s']}), "
          f"{k['places_sold_by_server']} places sold in {k['bookings']} bookings, {len(k['seats_sold_twice'])} sold twice, "
          f"consistency {'OK' if k['ok'] else 'FAILED'}, 5xx {x['server_errors']}; fans: {o}; "
          f"hold p50 {x['latency']['hold']['p50_ms']:.2f} p99 {x['latency']['hold']['p99_ms']:.2f} ms; statuses {x['statuses']}")
PY
