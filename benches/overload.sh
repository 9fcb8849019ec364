#!/usr/bin/env bash
# Overload figures for BENCHMARKS.md, in one run so that they compare:
#
#   1. peak:      durable holds/s at 64 connections (closed loop) against a
#                 fresh release server on a 1,000,000-seat event;
#   2. overload:  open-loop fans at 1x, 2x, 5x and 10x that peak
#                 (--rate, 4,000 connections, each fan refused once goes
#                 away: --retries 0) for 10 s each, against a fresh
#                 server each time: the rate the generator managed to
#                 send, goodput (201/s), p50/p99 of answered holds, the
#                 share refused (503), and the server's RSS every 0.5 s;
#   3. normal:    with BEFORE=<binary> (a build of an earlier commit), the
#                 64-connection peak of both, interleaved, `rounds` times:
#                 what the limits cost when nothing is overloaded.
#
#   benches/overload.sh [rounds=3]
#   SERVER_CPUS=0 benches/overload.sh   the server on those CPUs (taskset
#                                       -c), the load generator on the
#                                       others, so it cannot starve it
#
# Needs python3 and curl. Writes every report to $OUT (default: a
# temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"

cargo build --release --quiet --bin boxoffice
bin=./target/release/boxoffice
. benches/common.sh

python3 benches/bench_event.py > "$out/bench.json"

# A fresh server of binary $1 on port $2 (data in $3) with the bench
# event; its pid in $server_pid.
start_server() {
    local server=$1 port=$2 dir=$3
    rm -rf "$dir"
    RUST_LOG=warn "${pin_server[@]}" "$server" serve --listen "127.0.0.1:$port" --metrics-listen 127.0.0.1:0 --data-dir "$dir" \
        --admin-token bench-admin-token --demo-event false --fan-holds-per-sec 0 \
        > "$dir.log" 2>&1 &
    server_pid=$!
    pids+=("$server_pid")
    for _ in $(seq 200); do
        curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
        sleep 0.05
    done
    curl -sf -X POST "http://127.0.0.1:$port/v1/events" -H 'Content-Type: application/json' \
        -H 'Authorization: Bearer bench-admin-token' --data-binary @"$out/bench.json" > /dev/null
}

stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
}

# The server's RSS (KiB) every 0.5 s into $1 until it exits.
sample_rss() {
    local pid=$1 file=$2
    : > "$file"
    while kill -0 "$pid" 2>/dev/null; do
        awk '/VmRSS/ {print $2}' "/proc/$pid/status" >> "$file" 2>/dev/null || true
        sleep 0.5
    done
}

holds_only=(--event bench --confirm-ratio 0 --release-ratio 0 --explicit-ratio 0
            --greedy-ratio 0 --quantity-max 1 --skew 0 --fan-pool 10000 --json)
loadgen() {
    local port=$1 dir=$2
    shift 2
    "${pin_load[@]}" "$bin" loadgen --server "http://127.0.0.1:$port" "${holds_only[@]}" \
        --issuer-key "$dir/issuer.key" --payment-key "$dir/payment.key" "$@"
}

echo "== peak, 64 connections" >&2
start_server "$bin" 8391 "$out/peak-db"
loadgen 8391 "$out/peak-db" --fans 150000 --connections 64 > "$out/peak.json"
stop_server
peak=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["requests_per_s"]))' "$out/peak.json")

for x in 1 2 5 10; do
    rate=$((peak * x))
    echo "== ${x}x the peak: $rate fans/s offered for 10 s" >&2
    start_server "$bin" 8392 "$out/over$x-db"
    sample_rss "$server_pid" "$out/over$x.rss" &
    loadgen 8392 "$out/over$x-db" --fans $((rate * 10)) --rate "$rate" --duration-secs 10 \
        --connections 4000 --retries 0 > "$out/over$x.json" || true
    stop_server
    wait
done

if [ -n "${BEFORE:-}" ]; then
    for r in $(seq "$rounds"); do
        for which in before after; do
            server=$bin
            [ "$which" = before ] && server=$BEFORE
            echo "== round $r: 64 connections, $which" >&2
            start_server "$server" 8393 "$out/normal-db"
            loadgen 8393 "$out/normal-db" --fans 150000 --connections 64 --seed "$r" \
                > "$out/normal-$which.$r.json"
            stop_server
        done
    done
fi

python3 - "$out" "$rounds" "${BEFORE:-}" <<'PY'
import json, statistics, sys
out, rounds, before = sys.argv[1], int(sys.argv[2]), sys.argv[3]
load = lambda name: json.load(open(f"{out}/{name}.json"))
p = load("peak")
peak = p["requests_per_s"]
print(f"reports in {out}")
print(f"peak (64 connections): {peak:,.0f} holds/s, p50 {p['latency']['hold']['p50_ms']:.2f} ms, p99 {p['latency']['hold']['p99_ms']:.2f} ms")
print("| offered | sent | goodput | share of peak | hold p50 | hold p99 | refused | refusal p50 | RSS start → max → end |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for x in (1, 2, 5, 10):
    r = load(f"over{x}")
    s, el = r["statuses"], r["elapsed_s"]
    ok, shed = s.get("201", 0), s.get("503", 0)
    answered = sum(s.values())
    rss = [int(v) // 1024 for v in open(f"{out}/over{x}.rss").read().split()]
    hold = r["latency"].get("hold", {})
    refused = r["latency"].get("refused", {})
    print(f"| {x}x = {peak * x:,.0f}/s | {r['fans'] / el:,.0f}/s | {ok / el:,.0f}/s | {ok / el / peak:.0%} "
          f"| {hold.get('p50_ms', 0):.1f} ms | {hold.get('p99_ms', 0):.1f} ms | {shed / max(answered, 1):.1%} "
          f"| {refused.get('p50_ms', 0):.1f} ms | {rss[0] if rss else 0} → {max(rss) if rss else 0} → {rss[-1] if rss else 0} MiB |")
    other = {k: v for k, v in s.items() if k not in ("201", "503")}
    if other or r["refusals_without_retry_after"] or r["server_errors"]:
        print(f"  {x}x: other answers {other}, refusals without Retry-After {r['refusals_without_retry_after']}, 5xx {r['server_errors']}")
if before:
    med = statistics.median
    b = [load(f"normal-before.{i}")["requests_per_s"] for i in range(1, rounds + 1)]
    a = [load(f"normal-after.{i}")["requests_per_s"] for i in range(1, rounds + 1)]
    print(f"normal case, 64 connections: before {med(b):,.0f}, after {med(a):,.0f} holds/s = {med(a) / med(b):.1%} "
          "(per round: " + ", ".join(f"{y / x:.1%}" for x, y in zip(b, a)) + ")")
PY
