#!/usr/bin/env bash
# Warm calls of a deployed trivial native user function through the
# balancer (issue 14 §4): a balancer holding the store (`--data-dir`) and
# one worker (process runtime) that joined it and fetched the package;
# the function is `hf-user-fn` (an HTTP echo, manifest runtime "http").
# Measures, in the same run, `ab -n 1000 -c 10` (Glambdar's published
# shape) and a wrk load of 64 connections, through the balancer and
# against a bare loopback echo server (the same `hf-user-fn` binary
# started directly: no balancer, no worker); prints calls/s, p50, the
# ratio to the bare server, and the comparison with Glambdar's published
# figures (about 2,951 calls/s with `ab -n 1000 -c 10` and 1.06 ms warm
# latency, on an i7 13th gen; issue 14 §4).
#
# Usage: bench/user-functions.sh [--duration S] [--connections C]
#          [--lb-threads N] [--worker-threads N] [--netns host|private|both]
#          [--function-sched normal|batch|both]
# Defaults: 5 s of wrk, 64 connections, 2 balancer threads, 2 worker HTTP
# threads, both network namespaces, both function scheduling policies.
# `--function-sched` is the worker's option (runtime::spawn): `normal`
# runs the function's process as every process runs (SCHED_OTHER, the
# worker's default), `batch` under SCHED_BATCH (a woken function does
# not preempt the thread running, e.g. the worker's); `both` measures
# the balancer path once with a worker of each, one after the other.
# Besides calls/s and latencies, each wrk run through the balancer
# prints the CPU time per call of the balancer, the worker and the
# function's process (utime + stime from /proc/PID/stat over wrk's call
# count): where a call's cost goes. `--netns host` measures in the
# machine's own network namespace, where the Docker engine's iptables
# rules (its nat table) put netfilter's connection tracking on every
# loopback packet; `private` runs everything (servers, ab, wrk) in a new
# network namespace of its own (`unshare --net`, loopback only, no
# firewall rules: what a machine without the Docker engine's rules has);
# `both` runs the whole measurement once in each, one after the other.
# Installs apache2-utils (ab) and wrk with apt-get when missing.
# Cleans up every process and directory it creates.
set -euo pipefail

DURATION=5
CONNECTIONS=64
LB_THREADS=2
WORKER_THREADS=2
NETNS=both
SCHEDS="normal batch"
PASS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; PASS+=("$1" "$2"); shift 2 ;;
        --connections) CONNECTIONS=$2; PASS+=("$1" "$2"); shift 2 ;;
        --lb-threads) LB_THREADS=$2; PASS+=("$1" "$2"); shift 2 ;;
        --worker-threads) WORKER_THREADS=$2; PASS+=("$1" "$2"); shift 2 ;;
        --netns) NETNS=$2; shift 2 ;;
        --function-sched)
            case "$2" in
                normal|batch) SCHEDS=$2 ;;
                both) SCHEDS="normal batch" ;;
                *) echo "--function-sched must be normal, batch or both" >&2; exit 2 ;;
            esac
            PASS+=("$1" "$2"); shift 2 ;;
        -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ "$DURATION" -ge 1 ] && [ "$DURATION" -le 60 ] || { echo "--duration must be 1..60 s" >&2; exit 2; }
# (`inside` is private, once in the new namespace.)
case "$NETNS" in
    host|private|both|inside) ;;
    *) echo "--netns must be host, private or both" >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SELF="$ROOT/bench/user-functions.sh"

if [ "$NETNS" != inside ]; then
    # Tools and binaries first, with the machine's network (apt-get and
    # cargo may need it).
    missing=()
    command -v ab >/dev/null || missing+=(apache2-utils)
    command -v wrk >/dev/null || missing+=(wrk)
    if [ ${#missing[@]} -gt 0 ]; then
        (source bench/lib.sh && bench_apt_install "${missing[@]}")
    fi
    echo "building release binaries" >&2
    # The whole workspace's feature set (a subset build would compile the
    # graph again with other features).
    cargo build --release --locked -q --workspace --bin load-balancer --bin worker-front --bin hf-user-fn
fi
# A private network namespace: loopback up, nothing else (root, or an
# unprivileged user namespace mapping the caller to root).
in_private_netns() {
    local unshare=(unshare --net)
    [ "$(id -u)" -eq 0 ] || unshare=(unshare --user --map-root-user --net)
    "${unshare[@]}" -- bash -c 'ip link set lo up && exec bash "$0" "$@"' \
        "$SELF" --netns inside ${PASS[@]+"${PASS[@]}"}
}
case "$NETNS" in
    private) in_private_netns; exit $? ;;
    both)
        status=0
        echo "== in the machine's network namespace (--netns host) =="
        bash "$SELF" --netns host ${PASS[@]+"${PASS[@]}"} || status=$?
        echo
        echo "== in a private network namespace (--netns private) =="
        in_private_netns || status=$?
        exit $status ;;
esac

source bench/lib.sh
BIN="$ROOT/target/release"

# The bare server's stdin (fd 3) closes first: it stops when it sees EOF.
bench_before_cleanup() {
    exec 3>&- 2>/dev/null
}

# The balancer, holding the store.
source bench/lib.sh
BIN="$ROOT/target/release"

bench_before_cleanup() {
    exec 3>&- 2>/dev/null
}

python3 - "$BIN/hf-user-fn" "$TMP/echo.zip" <<'PY'
import sys, zipfile
binary, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("hf-function.json", '{"runtime": "http", "entry": "bin/fn", "args": ["bench"]}')
    info = zipfile.ZipInfo("bin/fn")
    info.external_attr = 0o755 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    with open(binary, "rb") as f:
        z.writestr(info, f.read())
PY

# A balancer holding the store and one worker (function scheduling $1)
# that joined it, the function deployed and warm: sets LB, LB_PID,
# WORKER_PID and FN_PID (the instance's process, from the echo's "pid").
start_cluster() {
    local sched=$1 dir="$TMP/cluster-$1"
    mkdir -p "$dir/work"
    RUST_LOG=warn "$BIN/load-balancer" rr --host 127.0.0.1 --port 0 --threads "$LB_THREADS" \
        --start-empty --data-dir "$dir/lb-data" >"$dir/lb.out" 2>"$dir/lb.err" &
    LB_PID=$!
    PIDS+=("$LB_PID")
    LB=$(wait_listening "$dir/lb.out")
    RUST_LOG=warn "$BIN/worker-front" start 0 --host 127.0.0.1 --http-workers "$WORKER_THREADS" \
        --using-rest-mode true --rest-container-life-time 600 --function-sched "$sched" \
        --data-dir "$dir/worker-data" --work-dir "$dir/work" --join "http://$LB" \
        --join-interval-ms 100 >"$dir/worker.out" 2>"$dir/worker.err" &
    WORKER_PID=$!
    PIDS+=("$WORKER_PID")
    wait_listening "$dir/worker.out" >/dev/null
    local i
    for i in $(seq 1 200); do
        curl -fsS "http://$LB/1/lb/nodes" | grep -q online && break
        sleep 0.05
        [ "$i" -eq 200 ] && { echo "the worker did not join" >&2; cat "$dir/worker.err" >&2; exit 1; }
    done
    curl -fsS -F "file=@$TMP/echo.zip" -F funcName=echo "http://$LB/deploy" >"$dir/deploy.json"
    echo "deployed (worker --function-sched $sched): $(cat "$dir/deploy.json")" >&2
    for i in 1 2 3; do curl -fsS "http://$LB/invoke/echo" >"$dir/echo.json"; done
    FN_PID=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["pid"])' "$dir/echo.json")
    local policy
    policy=$(python3 -c 'import sys; s = open(sys.argv[1]).read(); print(s[s.rindex(")") + 1:].split()[41 - 3])' "/proc/$FN_PID/stat")
    echo "function process $FN_PID: scheduling policy $policy (0 SCHED_OTHER, 3 SCHED_BATCH)" >&2
}

# Stops the balancer and the worker started last (by pid; the worker
# stops its function).
stop_cluster() {
    kill "$WORKER_PID" "$LB_PID" 2>/dev/null || true
    wait "$WORKER_PID" "$LB_PID" 2>/dev/null || true
}

BARE_PORT=$(free_port)
mkfifo "$TMP/bare.stdin"
PORT=$BARE_PORT "$BIN/hf-user-fn" bare <"$TMP/bare.stdin" >/dev/null 2>&1 &
PIDS+=($!)
exec 3>"$TMP/bare.stdin"
BARE="127.0.0.1:$BARE_PORT"
for i in $(seq 1 200); do
    curl -fsS "http://$BARE/" >/dev/null 2>&1 && break
    sleep 0.05
    [ "$i" -eq 200 ] && { echo "the bare server did not start" >&2; exit 1; }
done

run_ab() {
    local url=$1 out
    out=$(ab -q -s 10 -n 1000 -c 10 "$url" 2>&1) || { echo "$out" >&2; return 1; }
    local rps p50 failed non2xx
    rps=$(echo "$out" | awk '/Requests per second/ { print $4 }')
    p50=$(echo "$out" | awk '$1 == "50%" { print $2 }')
    failed=$(echo "$out" | awk '/Failed requests/ { print $3 }')
    non2xx=$(echo "$out" | awk '/Non-2xx responses/ { print $3 }')
    echo "$rps ${p50:-?} ${failed:-0} ${non2xx:-0}"
}

to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else print v }'
}

# CPU ticks (utime + stime) of each pid in "$@".
cpu_ticks() {
    local p
    for p in "$@"; do
        awk '{ s = $0; sub(/.*\) /, "", s); split(s, f, " "); printf "%d ", f[12] + f[13] }' "/proc/$p/stat"
    done
}

# wrk on $1 with $CONNECTIONS connections; prints calls/s, p50, p99,
# errors, then the CPU µs per call of each pid in "${@:2}".
run_wrk() {
    local url=$1 out
    shift
    local before after
    before=($(cpu_ticks "$@"))
    out=$(wrk -t 1 -c "$CONNECTIONS" -d "${DURATION}s" --latency "$url" 2>&1)
    after=($(cpu_ticks "$@"))
    local rps p50 p99 errors calls tick i cpu=""
    rps=$(echo "$out" | awk '/Requests\/sec/ { print $2 }')
    p50=$(to_ms "$(echo "$out" | awk '$1 == "50%" { print $2 }')")
    p99=$(to_ms "$(echo "$out" | awk '$1 == "99%" { print $2 }')")
    errors=$(echo "$out" | awk '/Non-2xx/ { n += $NF } /Socket errors/ { n += 1 } END { print n + 0 }')
    calls=$(echo "$out" | awk '/requests in/ { print $1 }')
    tick=$(getconf CLK_TCK)
    for i in "${!before[@]}"; do
        cpu+=" $(awk -v a="${before[$i]}" -v b="${after[$i]}" -v n="$calls" -v t="$tick" \
            'BEGIN { if (n > 0) printf "%.1f", (b - a) / t * 1e6 / n; else print "?" }')"
    done
    echo "$rps $p50 $p99 $errors$cpu"
}

run_serial() {
    local out
    out=$(wrk -t 1 -c 1 -d 3s --latency "$1" 2>&1)
    to_ms "$(echo "$out" | awk '$1 == "50%" { print $2 }')"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "?" }'; }

echo "measuring (per function scheduling policy: ab -n 1000 -c 10; wrk -c $CONNECTIONS -d ${DURATION}s; wrk -c 1 -d 3s; and the same on the bare echo)" >&2
read -r AB_BARE_RPS AB_BARE_P50 AB_BARE_FAIL AB_BARE_NON2XX < <(run_ab "http://$BARE/")
read -r WRK_BARE_RPS WRK_BARE_P50 WRK_BARE_P99 WRK_BARE_ERR < <(run_wrk "http://$BARE/")
SERIAL_BARE=$(run_serial "http://$BARE/")
declare -A AB_RPS AB_P50 WRK_RPS WRK_P50 WRK_P99 SERIAL CPU_LB CPU_W CPU_FN
FAILED=0
for sched in $SCHEDS; do
    start_cluster "$sched"
    read -r rps p50 fail non2xx < <(run_ab "http://$LB/invoke/echo")
    AB_RPS[$sched]=$rps; AB_P50[$sched]=$p50; FAILED=$((FAILED + fail + non2xx))
    read -r rps p50 p99 err lb w fn < <(run_wrk "http://$LB/invoke/echo" "$LB_PID" "$WORKER_PID" "$FN_PID")
    WRK_RPS[$sched]=$rps; WRK_P50[$sched]=$p50; WRK_P99[$sched]=$p99; FAILED=$((FAILED + err))
    CPU_LB[$sched]=$lb; CPU_W[$sched]=$w; CPU_FN[$sched]=$fn
    SERIAL[$sched]=$(run_serial "http://$LB/invoke/echo")
    stop_cluster
done

echo
echo "user functions: warm calls of a trivial native function (hf-user-fn echo)"
case "$NETNS" in
    inside) WHERE="a private network namespace (loopback only, no netfilter rules)" ;;
    *) WHERE="the machine's network namespace ($(iptables -t nat -S 2>/dev/null | grep -c '^-A' || true) nat rules)" ;;
esac
echo "host: $(nproc) cores, $(uname -r); balancer threads $LB_THREADS, worker HTTP threads $WORKER_THREADS; in $WHERE"
printf "%-44s %12s %10s %10s\n" "load" "calls/s" "p50 ms" "p99 ms"
for sched in $SCHEDS; do
    printf "%-44s %12s %10s %10s\n" "ab -n 1000 -c 10, balancer, functions $sched" "${AB_RPS[$sched]}" "${AB_P50[$sched]}" "-"
done
printf "%-44s %12s %10s %10s\n" "ab -n 1000 -c 10, bare echo" "$AB_BARE_RPS" "$AB_BARE_P50" "-"
for sched in $SCHEDS; do
    printf "%-44s %12s %10s %10s\n" "wrk -c $CONNECTIONS, balancer, functions $sched" "${WRK_RPS[$sched]}" "${WRK_P50[$sched]}" "${WRK_P99[$sched]}"
done
printf "%-44s %12s %10s %10s\n" "wrk -c $CONNECTIONS, bare echo" "$WRK_BARE_RPS" "$WRK_BARE_P50" "$WRK_BARE_P99"
for sched in $SCHEDS; do
    printf "%-44s %12s %10s\n" "wrk -c 1, balancer, functions $sched" "-" "${SERIAL[$sched]}"
done
printf "%-44s %12s %10s\n" "wrk -c 1, bare echo" "-" "$SERIAL_BARE"
echo
echo "CPU µs per call under wrk -c $CONNECTIONS (utime + stime / calls):"
for sched in $SCHEDS; do
    echo "  functions $sched: balancer ${CPU_LB[$sched]}, worker ${CPU_W[$sched]}, function ${CPU_FN[$sched]}"
done
echo
for sched in $SCHEDS; do
    echo "functions $sched: ratio balancer / bare echo: ab calls/s $(ratio "${AB_RPS[$sched]}" "$AB_BARE_RPS"), wrk calls/s $(ratio "${WRK_RPS[$sched]}" "$WRK_BARE_RPS"); vs Glambdar (2,951 calls/s with ab -n 1000 -c 10; 1.06 ms warm): ab x$(ratio "${AB_RPS[$sched]}" 2951), wrk x$(ratio "${WRK_RPS[$sched]}" 2951), warm p50 ${SERIAL[$sched]} ms (x$(ratio "${SERIAL[$sched]}" 1.06) of 1.06 ms)"
done
echo "targets (issue 14 §4): >= 10x Glambdar's calls/s (29,510), p50 < 0.3 ms"
if [ "$FAILED" -ne 0 ]; then
    echo "some calls through the balancer failed ($FAILED)" >&2
    exit 1
fi
