# What the bench scripts share; sourced, not run:
#
#   . "$(dirname "$0")/common.sh"
#
# - `pids` and a trap that kills every process added to it on exit;
# - `wait_ready URL`: until a server (boxoffice, or the minimal handler,
#   which has no /readyz) answers, or the script fails after 10 s;
# - `pin_server` and `pin_load`: `taskset` prefixes from $SERVER_CPUS
#   (the CPUs the servers get; the load tools get the others), empty
#   when it is unset.

pids=()
bench_cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap bench_cleanup EXIT

wait_ready() {
    for _ in $(seq 200); do
        curl -sf "$1/readyz" >/dev/null 2>&1 && return 0
        curl -sf "$1/v1/events/bench" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "no server at $1" >&2
    exit 1
}

pin_server=()
pin_load=()
if [ -n "${SERVER_CPUS:-}" ]; then
    pin_server=(taskset -c "$SERVER_CPUS")
    others=$(python3 -c 'import os, sys
s = {int(c) for c in sys.argv[1].split(",")}
print(",".join(str(c) for c in sorted(os.sched_getaffinity(0)) if c not in s))' "$SERVER_CPUS")
    if [ -n "$others" ]; then
        pin_load=(taskset -c "$others")
    fi
fi
