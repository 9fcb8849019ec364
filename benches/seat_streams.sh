#!/usr/bin/env bash
# Seat streams under a sale, for BENCHMARKS.md (this machine is shared:
# read the figures of one run side by side, not across days):
#
#   in each of $3 rounds (3), two runs of $2 seconds (20) on a fresh
#   server each, one after the other: fans hold and release the demo
#   arena's places as fast as 64 connections go (section weights Zipf,
#   so section A is the hottest seated one), first alone, then with $1
#   clients (10,000) streaming section A: 16 of them in the fans'
#   generator, measuring (`loadgen --watchers 16`), the rest in a second
#   generator at the lowest CPU priority (`nice -n 19 loadgen --fans 0
#   --watchers N`): real watchers are browsers on other machines, so
#   their own reading must not take the fans' CPU here, while everything
#   the server does for them counts.
#   Prints, per run and as medians: durable holds/s, the ratio of the
#   two, the delay from a hold's answer (as its fan got it) to the frame
#   showing it at the streams (p50/p99, at 16 probes), frames, streams
#   the server ended, the server's resident memory mid-run (the
#   difference over the streams is what one costs, its connection
#   included), and the CPU seconds the server and the generator used.
#
#   benches/seat_streams.sh [watchers=10000] [secs=20] [rounds=3]
#
# Needs python3 and curl. Writes every report to $OUT (default: a
# temporary directory). Raises the open-file limit to what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
watchers=${1:-10000}
secs=${2:-20}
rounds=${3:-3}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
ulimit -n "$(ulimit -Hn)"

cargo build --release --quiet --bin boxoffice
bin=./target/release/boxoffice
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
    rm -rf "$dir"
    RUST_LOG=warn "$bin" serve --listen "127.0.0.1:$port" --metrics-listen 127.0.0.1:0 --data-dir "$dir" \
        --fan-holds-per-sec 0 --demo-tickets-per-fan-max 0 --mail-enabled false \
        --seat-streams-max $((watchers + 100)) --seat-streams-anonymous-max $((watchers + 100)) \
        --seat-streams-per-address-max $((watchers + 100)) \
        > "$dir.log" 2>&1 &
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

# utime + stime of process $1, in seconds.
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat"; }

run() {
    local name=$1 n=$2 port=$3 crowd=
    start_server "$port" "$out/$name-db"
    local idle_kb streaming_kb
    idle_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
    streaming_kb=$idle_kb
    if [ "$n" -gt 16 ]; then
        nice -n 19 "$bin" loadgen --server "http://127.0.0.1:$port" --event demo --fans 0 \
            --watchers $((n - 16)) --watch-section A --duration-secs $((secs + 40)) --json \
            --issuer-key "$out/$name-db/issuer.key" --payment-key "$out/$name-db/payment.key" \
            > "$out/$name.crowd.json" 2> "$out/$name.crowd.err" &
        crowd=$!
        # Until the crowd is in.
        for _ in $(seq 600); do
            grep -q "watchers streaming" "$out/$name.crowd.err" 2>/dev/null && break
            sleep 0.1
        done
        sleep 1
        streaming_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
        n=16
    fi
    "$bin" loadgen --server "http://127.0.0.1:$port" --event demo --fans 10000000 --fan-pool 10000 \
        --duration-secs "$secs" --connections 64 --seed 5 --confirm-ratio 0 \
        --release-ratio 1 --greedy-ratio 0 --explicit-ratio 0 --watchers "$n" --watch-section A --json \
        --issuer-key "$out/$name-db/issuer.key" --payment-key "$out/$name-db/payment.key" \
        > "$out/$name.json" 2> "$out/$name.err" &
    local lg=$!
    sleep $((secs / 2 + 5))
    local rss server_cpu lg_cpu
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
    wait "$lg" || true
    server_cpu=$(cpu_s "$pid")
    if [ -n "$crowd" ]; then kill "$crowd" 2>/dev/null || true; wait "$crowd" 2>/dev/null || true; fi
    stop_server
    echo "{\"rss_kb\": $rss, \"server_cpu_s\": $server_cpu, \"idle_kb\": $idle_kb, \"streaming_kb\": $streaming_kb}" > "$out/$name.server.json"
}

for r in $(seq "$rounds"); do
    echo "== round $r: alone, then with $watchers watchers" >&2
    run "alone.$r" 0 8197
    run "watched.$r" "$((watchers + 16))" 8198
done

python3 - "$out" "$rounds" "$watchers" <<'PY'
import json, statistics, sys
out, rounds, watchers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
print(f"reports in {out}")
rows = {"alone": [], "watched": []}
for r in range(1, rounds + 1):
    for name in rows:
        rep = json.load(open(f"{out}/{name}.{r}.json"))
        srv = json.load(open(f"{out}/{name}.{r}.server.json"))
        holds_s = rep["holds"] / rep["elapsed_s"]
        row = {"holds_s": holds_s, "rss_mib": srv["rss_kb"] / 1024, "server_cpu_s": srv["server_cpu_s"],
               "stream_kb": srv["streaming_kb"] - srv["idle_kb"],
               "hold_p99": rep["latency"]["hold"]["p99_ms"], "w": rep.get("watch")}
        rows[name].append(row)
        w = row["w"]
        extra = ""
        try:
            crowd = next(l for l in open(f"{out}/{name}.{r}.crowd.err") if "watchers streaming" in l).split()[1]
        except (OSError, StopIteration):
            crowd = "0"
        if w:
            extra = (f"; {crowd} crowd streams + {w['open_max']:,} probes open, {w['frames']:,} frames, {w['ended_by_server']} ended by the server, "
                     f"{w['refused']} refused, answer->stream p50 {w['delay']['p50_ms']:.1f} ms p99 {w['delay']['p99_ms']:.1f} ms "
                     f"({w['delay']['count']:,} samples, {w['ahead_of_answer']:,} shown before the answer), "
                     f"replica {'OK' if w['replica_matches_map'] else 'FAILED'}")
        print(f"round {r} {name:7}: {holds_s:,.0f} holds/s, hold p99 {row['hold_p99']:.1f} ms, server RSS {row['rss_mib']:.0f} MiB, "
              f"server CPU {row['server_cpu_s']:.1f} s, 5xx {rep['server_errors']}{extra}")
med = lambda name, k: statistics.median(x[k] for x in rows[name])
a, w = med("alone", "holds_s"), med("watched", "holds_s")
print(f"median holds/s: alone {a:,.0f}, with {watchers:,} watchers {w:,.0f}: {w / a:.2f}x")
ratios = [x["holds_s"] / y["holds_s"] for x, y in zip(rows["watched"], rows["alone"])]
print(f"per-round ratios: {', '.join(f'{q:.2f}' for q in ratios)}")
per_stream = med("watched", "stream_kb") * 1024 / max(watchers, 1)
print(f"memory: {per_stream:,.0f} bytes a stream (server RSS idle, then with the crowd streaming, before any fan; median)")
print(f"delay p50 {statistics.median(x['w']['delay']['p50_ms'] for x in rows['watched']):.1f} ms, "
      f"p99 {statistics.median(x['w']['delay']['p99_ms'] for x in rows['watched']):.1f} ms (medians of the rounds)")
PY
