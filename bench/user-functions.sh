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
# Defaults: 5 s of wrk, 64 connections, 2 balancer threads, 2 worker HTTP
# threads, both network namespaces. `--netns host` measures in the
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
PASS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; PASS+=("$1" "$2"); shift 2 ;;
        --connections) CONNECTIONS=$2; PASS+=("$1" "$2"); shift 2 ;;
        --lb-threads) LB_THREADS=$2; PASS+=("$1" "$2"); shift 2 ;;
        --worker-threads) WORKER_THREADS=$2; PASS+=("$1" "$2"); shift 2 ;;
        --netns) NETNS=$2; shift 2 ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
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
RUST_LOG=warn "$BIN/load-balancer" rr --host 127.0.0.1 --port 0 --threads "$LB_THREADS" \
    --start-empty --data-dir "$TMP/lb-data" >"$TMP/lb.out" 2>"$TMP/lb.err" &
PIDS+=($!)
LB=$(wait_listening "$TMP/lb.out")

# One worker (process runtime) that joins it, in REST mode: a user
# function is a function of the worker's node model, and REST mode keeps
# its one warm instance (without it every call would start an instance of
# its own, HotFunctions' default); the REST lifetime outlasts the run.
mkdir -p "$TMP/work"
RUST_LOG=warn "$BIN/worker-front" start 0 --host 127.0.0.1 --http-workers "$WORKER_THREADS" \
    --using-rest-mode true --rest-container-life-time 600 \
    --data-dir "$TMP/worker-data" --work-dir "$TMP/work" --join "http://$LB" \
    --join-interval-ms 100 >"$TMP/worker.out" 2>"$TMP/worker.err" &
PIDS+=($!)
wait_listening "$TMP/worker.out" >/dev/null
for i in $(seq 1 200); do
    curl -fsS "http://$LB/1/lb/nodes" | grep -q online && break
    sleep 0.05
    [ "$i" -eq 200 ] && { echo "the worker did not join" >&2; cat "$TMP/worker.err" >&2; exit 1; }
done

# The function: hf-user-fn serving HTTP (a JSON echo of the call).
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
curl -fsS -F "file=@$TMP/echo.zip" -F funcName=echo "http://$LB/deploy" >"$TMP/deploy.json"
echo "deployed: $(cat "$TMP/deploy.json")" >&2
# Warm: the worker fetches the package and starts the instance.
for i in 1 2 3; do curl -fsS "http://$LB/invoke/echo" >/dev/null; done

# The bare loopback echo server: the same binary, started directly (it
# serves while its stdin is open).
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

# ab (a connection per call, as Glambdar ran it): prints "rps p50_ms failed non2xx" (ab's percentiles
# are whole ms).
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

# wrk: prints "rps p50_ms p99_ms errors".
run_wrk() {
    local url=$1 out
    out=$(wrk -t 1 -c "$CONNECTIONS" -d "${DURATION}s" --latency "$url" 2>&1)
    local rps p50 p99 errors
    rps=$(echo "$out" | awk '/Requests\/sec/ { print $2 }')
    p50=$(to_ms "$(echo "$out" | awk '$1 == "50%" { print $2 }')")
    p99=$(to_ms "$(echo "$out" | awk '$1 == "99%" { print $2 }')")
    errors=$(echo "$out" | awk '/Non-2xx/ { n += $NF } /Socket errors/ { n += 1 } END { print n + 0 }')
    echo "$rps $p50 $p99 $errors"
}

# Warm latency one call at a time (wrk, 1 connection, 3 s): p50 ms.
run_serial() {
    local out
    out=$(wrk -t 1 -c 1 -d 3s --latency "$1" 2>&1)
    to_ms "$(echo "$out" | awk '$1 == "50%" { print $2 }')"
}

echo "measuring (ab -n 1000 -c 10; wrk -c $CONNECTIONS -d ${DURATION}s; wrk -c 1 -d 3s)" >&2
read -r AB_LB_RPS AB_LB_P50 AB_LB_FAIL AB_LB_NON2XX < <(run_ab "http://$LB/invoke/echo")
read -r AB_BARE_RPS AB_BARE_P50 AB_BARE_FAIL AB_BARE_NON2XX < <(run_ab "http://$BARE/")
read -r WRK_LB_RPS WRK_LB_P50 WRK_LB_P99 WRK_LB_ERR < <(run_wrk "http://$LB/invoke/echo")
read -r WRK_BARE_RPS WRK_BARE_P50 WRK_BARE_P99 WRK_BARE_ERR < <(run_wrk "http://$BARE/")
SERIAL_LB=$(run_serial "http://$LB/invoke/echo")
SERIAL_BARE=$(run_serial "http://$BARE/")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "?" }'; }

echo
echo "user functions: warm calls of a trivial native function (hf-user-fn echo)"
case "$NETNS" in
    inside) WHERE="a private network namespace (loopback only, no netfilter rules)" ;;
    *) WHERE="the machine's network namespace ($(iptables -t nat -S 2>/dev/null | grep -c '^-A' || true) nat rules)" ;;
esac
echo "host: $(nproc) cores, $(uname -r); balancer threads $LB_THREADS, worker HTTP threads $WORKER_THREADS; in $WHERE"
printf "%-36s %12s %10s %10s %8s\n" "load" "calls/s" "p50 ms" "p99 ms" "errors"
printf "%-36s %12s %10s %10s %8s\n" "ab -n 1000 -c 10, balancer" "$AB_LB_RPS" "$AB_LB_P50" "-" "$((AB_LB_FAIL + AB_LB_NON2XX))"
printf "%-36s %12s %10s %10s %8s\n" "ab -n 1000 -c 10, bare echo" "$AB_BARE_RPS" "$AB_BARE_P50" "-" "$((AB_BARE_FAIL + AB_BARE_NON2XX))"
printf "%-36s %12s %10s %10s %8s\n" "wrk -c $CONNECTIONS, balancer" "$WRK_LB_RPS" "$WRK_LB_P50" "$WRK_LB_P99" "$WRK_LB_ERR"
printf "%-36s %12s %10s %10s %8s\n" "wrk -c $CONNECTIONS, bare echo" "$WRK_BARE_RPS" "$WRK_BARE_P50" "$WRK_BARE_P99" "$WRK_BARE_ERR"
printf "%-36s %12s %10s\n" "wrk -c 1 (one call at a time), balancer" "-" "$SERIAL_LB"
printf "%-36s %12s %10s\n" "wrk -c 1 (one call at a time), bare" "-" "$SERIAL_BARE"
echo
echo "ratio balancer / bare echo: ab calls/s $(ratio "$AB_LB_RPS" "$AB_BARE_RPS"), wrk calls/s $(ratio "$WRK_LB_RPS" "$WRK_BARE_RPS")"
echo "vs Glambdar (2,951 calls/s with ab -n 1000 -c 10; 1.06 ms warm): ab calls/s x$(ratio "$AB_LB_RPS" 2951), warm p50 $SERIAL_LB ms (x$(ratio "$SERIAL_LB" 1.06) of 1.06 ms)"
echo "targets (issue 14 §4): >= 10x Glambdar's calls/s (29,510), p50 < 0.3 ms"
if [ "$((AB_LB_FAIL + AB_LB_NON2XX + WRK_LB_ERR))" -ne 0 ]; then
    echo "some calls through the balancer failed" >&2
    exit 1
fi
