#!/usr/bin/env bash
# The waiting room through the API, for BENCHMARKS.md (this machine is
# shared: read the figures of one run side by side, not across days):
#
#   1. joins: $1 fans (500,000) join the demo's waiting room, each with
#      a token of its own and every join durable before it is answered
#      (`loadgen --queue`; the room opens a day later, so nobody is
#      admitted and each fan leaves after a second): the first half at
#      the pace of all of them within 60 s, the second as fast as 64
#      connections go; joins/s, join p50/p99, and the server's resident
#      memory after each half (the second half's growth over its fans is
#      what a waiting fan costs, with the token cache already full);
#   2. a flash sale through the room: $2 fans (300,000) arrive over 60 s
#      at the demo arena; the room opens 20 s in and admits $3 fans a
#      second (3,000); every admitted fan holds and most confirm:
#      oversold or not, hold p50/p99 of admitted fans, every fan
#      answered, admissions in queue order as fans saw them.
#
#   benches/waiting_room.sh [join_fans=500000] [sale_fans=300000] [rate=3000]
#
# Needs python3 and curl. Writes every report to $OUT (default: a
# temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."
join_fans=${1:-500000}
sale_fans=${2:-300000}
rate=${3:-3000}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"

cargo build --release --quiet --bin boxoffice
bin=./target/release/boxoffice
admin=bench-admin-token
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT

start_server() {
    local port=$1 dir=$2
    shift 2
    rm -rf "$dir"
    RUST_LOG=warn "$bin" serve --listen "127.0.0.1:$port" --metrics-listen 127.0.0.1:0 --data-dir "$dir" \
        --admin-token "$admin" "$@" > "$dir.log" 2>&1 &
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

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }

# Switch the demo's room on at $1: opening in $2 seconds, $3 fans a second.
room_on() {
    local opens
    opens=$(date -u -d "@$(( $(date +%s) + $2 ))" +%Y-%m-%dT%H:%M:%SZ)
    curl -sf -X PUT "http://127.0.0.1:$1/v1/events/demo/waiting-room" \
        -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
        -d "{\"enabled\": true, \"opens_at\": \"$opens\", \"rate_per_sec\": $3, \"admission_ttl_secs\": 120}" \
        > /dev/null
}

echo "== joins: $join_fans fans within 60 s" >&2
start_server 8195 "$out/joins-db" --fan-holds-per-sec 0 --mail-enabled false
room_on 8195 86400 1000
half=$((join_fans / 2))
echo "rss_kb_before $(rss_kb)" > "$out/joins.rss"
for part in 1 2; do
    pace=(--rate "$((join_fans / 60))")
    [ "$part" = 2 ] && pace=()
    "$bin" loadgen --server http://127.0.0.1:8195 --event demo --fans "$half" \
        "${pace[@]}" --connections 64 --seed "$part" --queue \
        --queue-patience-secs 1 --json \
        --issuer-key "$out/joins-db/issuer.key" --payment-key "$out/joins-db/payment.key" \
        > "$out/joins.$part.json" || true
    sleep 2
    echo "rss_kb_after_$part $(rss_kb)" >> "$out/joins.rss"
done
curl -sf http://127.0.0.1:8195/v1/events/demo/waiting-room > "$out/joins.room.json"
stop_server

echo "== a flash sale through the room: $sale_fans fans, $rate admitted a second" >&2
start_server 8196 "$out/sale-db" --fan-holds-per-sec 0 --mail-enabled false
room_on 8196 20 "$rate"
"$bin" loadgen --server http://127.0.0.1:8196 --event demo --fans "$sale_fans" --ramp-secs 60 \
    --connections 64 --seed 3 --queue --queue-poll-ms 250 --confirm-ratio 0.8 --release-ratio 0.1 \
    --json --issuer-key "$out/sale-db/issuer.key" --payment-key "$out/sale-db/payment.key" \
    > "$out/sale.json" || true
stop_server

python3 - "$out" "$half" <<'PY'
import json, sys
out, half = sys.argv[1], int(sys.argv[2])
rss = dict(l.split() for l in open(f"{out}/joins.rss"))
room = json.load(open(f"{out}/joins.room.json"))
print(f"reports in {out}")
for part in (1, 2):
    r = json.load(open(f"{out}/joins.{part}.json"))
    q = r["queue"]
    pace = "at 1/60 of all a second" if part == 1 else "as fast as it goes"
    print(f"joins, half {part} ({pace}): {q['joined']:,} joined in {r['elapsed_s']:.1f} s = {q['joined'] / r['elapsed_s']:,.0f}/s, "
          f"join p50 {q['join_latency']['p50_ms']:.2f} ms, p99 {q['join_latency']['p99_ms']:.2f} ms, "
          f"{q['join_failures']} failed, 5xx {r['server_errors']}")
b, a1, a2 = (int(rss[k]) * 1024 for k in ("rss_kb_before", "rss_kb_after_1", "rss_kb_after_2"))
print(f"room: {room['joined']:,} fans; server RSS {b / 2**20:.0f} -> {a1 / 2**20:.0f} -> {a2 / 2**20:.0f} MiB: "
      f"{(a2 - a1) / half:.0f} bytes a fan over the second half, {(a2 - b) / (2 * half):.0f} over both")
s = json.load(open(f"{out}/sale.json"))
q, c, h = s["queue"], s["consistency"], s["latency"].get("hold", {})
print(f"sale: {s['fans']:,} fans in {s['elapsed_s']:.0f} s; {q['admitted']:,} admitted at {q['admitted_per_s']:,.0f}/s, "
      f"in queue p50 {q['time_in_queue']['p50_ms'] / 1000:.1f} s, p99 {q['time_in_queue']['p99_ms'] / 1000:.1f} s, "
      f"{q['gave_up']} gave up, {q['out_of_order']} out of order")
print(f"      hold p50 {h.get('p50_ms', 0):.2f} ms, p99 {h.get('p99_ms', 0):.2f} ms; sold {c['places_sold_by_server']:,} "
      f"(in bookings {c['places_in_bookings']:,}), seats sold twice {len(c['seats_sold_twice'])}, consistency "
      f"{'OK' if c['ok'] else 'FAILED'}; outcomes {s['outcomes']}; 5xx {s['server_errors']}; statuses {s['statuses']}")
PY
