#!/usr/bin/env bash
# Durable holds against what a team would measure them by, in one run
# (this machine is shared; only same-run ratios mean anything):
#
#   1. ceiling:   the load generator against examples/http_ceiling.rs, a
#                 minimal actix-web POST handler (parse, answer 201);
#   2. boxoffice: durable holds (sled flush + fdatasync before each 2xx)
#                 on a 1,000,000-seat event, every request signed in as
#                 one of 10,000 fans, each with an Idempotency-Key;
#   3. redis:     Debian's redis-server with `appendfsync always`,
#                 `SET key val NX EX 300` from redis-benchmark (random
#                 keys), the thing a team would build this on instead;
#   4. latency:   boxoffice at 16 connections: a hold's p50 against the
#                 mean time of one group commit in the same run (from the
#                 server's /metrics).
#
# Each step runs `rounds` times, interleaved; the summary prints medians
# and the ratios of the issue's goals. While boxoffice runs, the CPU time
# of each of its threads (from /proc) is recorded and summed by name.
#
#   benches/compare.sh [rounds=3] [connections=64] [holds=200000]
#
#   BEFORE=<old binary> benches/compare.sh   also runs the boxoffice steps
#                                      with an older build, interleaved
#                                      (what a change bought)
#   SERVER_FLAGS='--arbiters 1' BEFORE_FLAGS='--arbiters 2' ...   flags of
#                                      `serve` for boxoffice and for the
#                                      build before (the same binary when
#                                      only BEFORE_FLAGS is set)
#   SERVER_CPUS=0 benches/compare.sh   pins boxoffice and redis-server to
#                                      those CPUs (taskset -c), the load
#                                      tools to the others
#
# Installs redis-server (Debian's) when missing; needs python3 and curl.
# Writes every report to $OUT (default: a temporary dir).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
conns=${2:-64}
holds=${3:-200000}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    echo "== installing redis-server (Debian)" >&2
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server redis-tools >&2
fi

cargo build --release --quiet --bin boxoffice --example http_ceiling
bin=./target/release/boxoffice

. benches/common.sh

stop_last() {
    local p=${pids[-1]}
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    unset 'pids[-1]'
}

# Per-thread CPU seconds and context switches of process $1, summed by
# thread name (numbered threads of one pool as one), as JSON.
thread_cpu() {
    python3 - "$1" <<'PY'
import json, os, sys
pid = sys.argv[1]
tick = os.sysconf("SC_CLK_TCK")
by_name = {}
for tid in os.listdir(f"/proc/{pid}/task"):
    try:
        stat = open(f"/proc/{pid}/task/{tid}/stat").read()
        status = open(f"/proc/{pid}/task/{tid}/status").read()
    except OSError:
        continue
    name = stat[stat.index("(") + 1:stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2:].split()
    switches = sum(int(line.split()[1]) for line in status.splitlines()
                   if "ctxt_switches:" in line)
    base = name.rstrip("0123456789-_ ") or name
    t = by_name.setdefault(base, {"cpu": 0.0, "switches": 0})
    t["cpu"] += (int(fields[11]) + int(fields[12])) / tick
    t["switches"] += switches
print(json.dumps(by_name))
PY
}

# Runs a load tool, its CPU seconds (user + system) into file $1.
timed() {
    local into=$1
    shift
    local TIMEFORMAT='%U %S'
    { time "$@" 2>>"$out/tools.log" ; } 2> "$into"
}

# Durable holds from server binary $1 (reports tagged $2, round $3, more
# flags of `serve` after): 64 connections, then 16 on the same server.
boxoffice() {
    local server_bin=$1 tag=$2 r=$3
    shift 3
    echo "== round $r: $tag, durable holds, 10,000 fans" >&2
    local db="$out/db"
    rm -rf "$db"
    RUST_LOG=warn "${pin_server[@]}" "$server_bin" serve --listen 127.0.0.1:8291 --metrics-listen 127.0.0.1:8293 --data-dir "$db" \
        --admin-token bench-admin-token --demo-event false --fan-holds-per-sec 0 "$@" > "$db.log" 2>&1 &
    local server=$!
    pids+=($server)
    wait_ready http://127.0.0.1:8291
    curl -sf -X POST http://127.0.0.1:8291/v1/events -H 'Content-Type: application/json' \
        -H 'Authorization: Bearer bench-admin-token' --data-binary @"$out/bench.json" > /dev/null
    thread_cpu "$server" > "$out/$tag-threads-before.$r.json"
    curl -sf http://127.0.0.1:8293/metrics > "$out/$tag-metrics64-before.$r.txt"
    timed "$out/$tag-loadgen-cpu.$r.txt" "${pin_load[@]}" "$bin" loadgen \
        --server http://127.0.0.1:8291 --fans "$holds" --seed "$r" "${holds_only[@]}" \
        --connections "$conns" --issuer-key "$db/issuer.key" --payment-key "$db/payment.key" \
        > "$out/$tag.$r.json"
    thread_cpu "$server" > "$out/$tag-threads-after.$r.json"
    curl -sf http://127.0.0.1:8293/metrics > "$out/$tag-metrics64-after.$r.txt"

    echo "== round $r: $tag at 16 connections" >&2
    "${pin_load[@]}" "$bin" loadgen --server http://127.0.0.1:8291 --fans $((holds / 4)) \
        --seed "$((r + 1000))" --sold-before "$holds" "${holds_only[@]}" --connections 16 \
        --issuer-key "$db/issuer.key" --payment-key "$db/payment.key" > "$out/$tag-c16.$r.json"
    curl -sf http://127.0.0.1:8293/metrics > "$out/$tag-metrics16-after.$r.txt"
    stop_last
}

python3 benches/bench_event.py > "$out/bench.json"
holds_only=(--event bench --confirm-ratio 0 --release-ratio 0
            --explicit-ratio 0 --greedy-ratio 0 --quantity-max 1 --skew 0 --fan-pool 10000 --json)
"$bin" token --data-dir "$out/ceiling-keys" --sub nobody > /dev/null
"$bin" receipt --data-dir "$out/ceiling-keys" --hold none --amount 1 --currency KRW > /dev/null

"${pin_server[@]}" ./target/release/examples/http_ceiling 127.0.0.1:8290 > /dev/null 2>&1 &
pids+=($!)
wait_ready http://127.0.0.1:8290

for r in $(seq "$rounds"); do
    echo "== round $r: ceiling (minimal actix-web handler)" >&2
    "${pin_load[@]}" "$bin" loadgen --server http://127.0.0.1:8290 --fans "$holds" --seed "$r" \
        "${holds_only[@]}" --connections "$conns" --issuer-key "$out/ceiling-keys/issuer.key" \
        --payment-key "$out/ceiling-keys/payment.key" > "$out/ceiling.$r.json"

    # shellcheck disable=SC2086 # flags, split on purpose
    boxoffice "$bin" boxoffice "$r" ${SERVER_FLAGS:-}
    if [ -n "${BEFORE:-}${BEFORE_FLAGS:-}" ]; then
        # shellcheck disable=SC2086
        boxoffice "${BEFORE:-$bin}" before "$r" ${BEFORE_FLAGS:-}
    fi

    echo "== round $r: redis-server, appendfsync always, SET NX EX" >&2
    rdir="$out/redis"
    rm -rf "$rdir" && mkdir -p "$rdir"
    "${pin_server[@]}" redis-server --port 8292 --bind 127.0.0.1 --dir "$rdir" --save '' \
        --appendonly yes --appendfsync always --daemonize no --loglevel warning \
        > "$rdir.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do redis-cli -p 8292 ping >/dev/null 2>&1 && break; sleep 0.05; done
    "${pin_load[@]}" redis-benchmark -p 8292 -c "$conns" -n "$holds" -r 100000000 --csv \
        SET 'key:__rand_int__' val NX EX 300 > "$out/redis.$r.csv"
    stop_last
done

python3 - "$out" "$rounds" "${BEFORE:-$bin} ${BEFORE_FLAGS:-}" "${BEFORE:-}${BEFORE_FLAGS:-}" <<'PY'
import csv, json, os, statistics, sys
out, rounds, before_bin, with_before = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
med = statistics.median
R = range(1, rounds + 1)
def load(step):
    return [json.load(open(f"{out}/{step}.{r}.json")) for r in R]
def metric(path, name):
    for line in open(path):
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0
def hold(xs, q):
    return med(x["latency"]["hold"][q] for x in xs)

class Server:
    """One server binary's runs (tag: the reports' prefix)."""
    def __init__(self, tag):
        self.tag = tag
        self.runs, self.c16 = load(tag), load(f"{tag}-c16")
        self.rates = [x["requests_per_s"] for x in self.runs]
        self.errors = sum(x["server_errors"] for x in self.runs + self.c16)
        # One group commit's mean time during the 16-connection run.
        self.commits = []
        for r in R:
            b, a = f"{out}/{tag}-metrics64-after.{r}.txt", f"{out}/{tag}-metrics16-after.{r}.txt"
            n = metric(a, "boxoffice_journal_flush_seconds_count") - metric(b, "boxoffice_journal_flush_seconds_count")
            s = metric(a, "boxoffice_journal_flush_seconds_sum") - metric(b, "boxoffice_journal_flush_seconds_sum")
            self.commits.append(s / n * 1000 if n else float("nan"))
        self.p50_16 = [x["latency"]["hold"]["p50_ms"] for x in self.c16]

    def report(self):
        print(f"{self.tag}: {med(self.rates):,.0f} durable holds/s, hold p50 {hold(self.runs, 'p50_ms'):.2f} ms, "
              f"p99 {hold(self.runs, 'p99_ms'):.2f} ms; 5xx {self.errors}")
        print(f"  16 connections: hold p50 {med(self.p50_16):.2f} ms, one group commit {med(self.commits):.3f} ms: "
              f"{med(p / g for p, g in zip(self.p50_16, self.commits)):.1f}x (goal 2.0)")
        # Where the server's CPU went during the 64-connection runs, and
        # what the load generator itself took.
        total = {}
        for r in R:
            b0 = json.load(open(f"{out}/{self.tag}-threads-before.{r}.json"))
            a0 = json.load(open(f"{out}/{self.tag}-threads-after.{r}.json"))
            for k, v in a0.items():
                b = b0.get(k, {"cpu": 0, "switches": 0})
                t = total.setdefault(k, {"cpu": 0, "switches": 0})
                t["cpu"] += v["cpu"] - b["cpu"]
                t["switches"] += v["switches"] - b["switches"]
        held = sum(x["holds"] for x in self.runs)
        secs = sum(x["elapsed_s"] for x in self.runs)
        cpu = sum(t["cpu"] for t in total.values())
        switches = sum(t["switches"] for t in total.values())
        tool = sum(sum(float(v) for v in open(f"{out}/{self.tag}-loadgen-cpu.{r}.txt").read().split()[-2:]) for r in R)
        flushes = sum(metric(f"{out}/{self.tag}-metrics64-after.{r}.txt", "boxoffice_journal_batches_total")
                      - metric(f"{out}/{self.tag}-metrics64-before.{r}.txt", "boxoffice_journal_batches_total") for r in R)
        print(f"  64 connections, all rounds: {held:,} holds in {secs:.1f} s; server CPU {cpu / secs:.2f} cores, "
              f"load generator {tool / secs:.2f} cores")
        print(f"  per durable hold: server {cpu / held * 1e6:.1f} µs CPU, {switches / held:.2f} context switches; "
              f"load generator {tool / held * 1e6:.1f} µs CPU")
        if flushes:
            print(f"  group commits: {flushes / secs:,.0f}/s, {held / flushes:.1f} holds each")
        print("  server threads (CPU share, µs and context switches per hold):")
        for k, t in sorted(total.items(), key=lambda kv: -kv[1]["cpu"]):
            if t["cpu"] > 0 or t["switches"] > 0:
                print(f"    {k:<18} {t['cpu'] / cpu:6.1%}  {t['cpu'] / held * 1e6:6.1f} µs  {t['switches'] / held:5.2f}")

ceiling = [x["requests_per_s"] for x in load("ceiling")]
redis = [float(list(csv.reader(open(f"{out}/redis.{r}.csv")))[1][1]) for r in R]
box = Server("boxoffice")
print(f"reports in {out}; {rounds} rounds, medians")
print(f"ceiling (minimal actix-web POST): {med(ceiling):>9,.0f} req/s")
print(f"redis SET NX EX, fsync always:    {med(redis):>9,.0f} sets/s")
b = box.rates
print(f"boxoffice / ceiling: {med(b) / med(ceiling):.2f}x (goal 0.60; per round " +
      ", ".join(f"{x / y:.2f}" for x, y in zip(b, ceiling)) + ")")
print(f"boxoffice / redis:   {med(b) / med(redis):.2f}x (goal 1.00; per round " +
      ", ".join(f"{x / y:.2f}" for x, y in zip(b, redis)) + ")")
box.report()
if with_before:
    before = Server("before")
    print(f"against BEFORE ({before_bin}): {med(b) / med(before.rates):.3f}x holds/s (per round " +
          ", ".join(f"{x / y:.3f}" for x, y in zip(b, before.rates)) + ")")
    before.report()
PY
