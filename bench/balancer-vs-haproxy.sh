#!/usr/bin/env bash
# Our balancer (`ch`) vs HAProxy (`balance url_param name`, `hash-type
# consistent`, `hash-balance-factor 150`) in front of the same stub worker,
# under the same wrk load, on loopback only. Prints requests/s, p50 and p99
# of both and the ratios ours/HAProxy (issue 2 §6). Our balancer runs twice,
# with its metrics (`ours`, the default) and with `--no-metrics`
# (`nometrics`), and the cost of the metrics is printed (issue 15 §3).
# Measured figures and where the time goes: bench/README.md (2026-12-04:
# ours 1.10x HAProxy's requests/s, CPU per request 1.16x HAProxy's; the
# metrics' cost is below this machine's run-to-run noise).
#
# Usage: bench/balancer-vs-haproxy.sh [--duration S] [--connections C]
#          [--wrk-threads T] [--lb-threads N] [--stub-threads N] [--rounds R]
# Defaults: 5 s, 64 connections, 1 wrk thread, 2 balancer/HAProxy threads,
# 1 stub thread, 3 rounds (each runs the three targets, in rotating order;
# the summary gives medians). Installs
# haproxy and wrk with apt-get when missing. Cleans up every process it
# starts.
set -euo pipefail

DURATION=5
CONNECTIONS=64
WRK_THREADS=1
LB_THREADS=2
STUB_THREADS=1
ROUNDS=3
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --connections) CONNECTIONS=$2; shift 2 ;;
        --wrk-threads) WRK_THREADS=$2; shift 2 ;;
        --lb-threads) LB_THREADS=$2; shift 2 ;;
        --stub-threads) STUB_THREADS=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ "$DURATION" -ge 1 ] && [ "$DURATION" -le 60 ] || { echo "--duration must be 1..60 s" >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

missing=()
command -v haproxy >/dev/null || missing+=(haproxy)
command -v wrk >/dev/null || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (apt-get)" >&2
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "building release binaries" >&2
cargo build --release -q -p load-balancer --bins
BIN="$ROOT/target/release"

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# Waits for "<...> listening on http://ADDR..." in $1 and prints ADDR.
wait_listening() {
    local file=$1 i
    for i in $(seq 1 200); do
        if grep -q "listening on http://" "$file" 2>/dev/null; then
            sed -n 's|.*listening on http://\([0-9.:]*\).*|\1|p' "$file" | head -1
            return 0
        fi
        sleep 0.05
    done
    echo "no listening line in $file:" >&2
    cat "$file" >&2
    return 1
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

"$BIN/stub-worker" --host 127.0.0.1 --port 0 --id bench --threads "$STUB_THREADS" >"$TMP/stub.out" 2>&1 &
PIDS+=($!)
STUB_PID=$!
STUB=$(wait_listening "$TMP/stub.out")

# ch's bound T is absolute (in-flight calls per node; the original answers
# "all full" beyond it), HAProxy's hash-balance-factor is relative to the
# mean load and never refuses with a single server. With one backend and
# $CONNECTIONS concurrent calls, T must exceed the connection count or ours
# would (correctly) answer 503 for most calls.
RUST_LOG=warn "$BIN/load-balancer" ch --host 127.0.0.1 --port 0 --nodes "http://$STUB" \
    --threads "$LB_THREADS" --T $((CONNECTIONS * 2)) >"$TMP/lb.out" 2>"$TMP/lb.err" &
PIDS+=($!)
OURS_PID=$!
OURS=$(wait_listening "$TMP/lb.out")
# The same balancer without its metrics (what they cost).
RUST_LOG=warn "$BIN/load-balancer" ch --host 127.0.0.1 --port 0 --nodes "http://$STUB" \
    --threads "$LB_THREADS" --T $((CONNECTIONS * 2)) --no-metrics >"$TMP/lb-nometrics.out" 2>"$TMP/lb-nometrics.err" &
PIDS+=($!)
BARE_PID=$!
BARE=$(wait_listening "$TMP/lb-nometrics.out")

HAPORT=$(free_port)
cat >"$TMP/haproxy.cfg" <<EOF
global
    maxconn 4096
    nbthread $LB_THREADS
defaults
    mode http
    option http-keep-alive
    timeout connect 1s
    timeout client 30s
    timeout server 30s
frontend bench
    bind 127.0.0.1:$HAPORT
    default_backend workers
backend workers
    balance url_param name
    hash-type consistent
    hash-balance-factor 150
    http-reuse always
    server w0 $STUB
EOF
haproxy -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 &
PIDS+=($!)
HAPROXY_PID=$!
HAPROXY="127.0.0.1:$HAPORT"
for i in $(seq 1 200); do
    curl -fsS "http://$HAPROXY/execute?name=W1" >/dev/null 2>&1 && break
    sleep 0.05
    [ "$i" -eq 200 ] && { echo "haproxy did not start:" >&2; cat "$TMP/haproxy.log" >&2; exit 1; }
done
curl -fsS "http://$OURS/execute?name=W1" >/dev/null
curl -fsS "http://$BARE/execute?name=W1" >/dev/null

TICKS=$(getconf CLK_TCK)
# CPU time (user + system, in clock ticks) used so far by process $1.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# Runs wrk against $1 (proxy process $2) and prints
# "rps p50_ms p99_ms non2xx errors proxy_cpu_us_per_request
# stub_cpu_us_per_request".
measure() {
    local out before after stub_before stub_after
    before=$(cpu_ticks "$2")
    stub_before=$(cpu_ticks "$STUB_PID")
    out=$(wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://$1/execute?name=W1")
    after=$(cpu_ticks "$2")
    stub_after=$(cpu_ticks "$STUB_PID")
    echo "$out" >>"$TMP/wrk.log"
    echo "$out" | awk -v ticks=$((after - before)) -v sticks=$((stub_after - stub_before)) -v hz="$TICKS" '
        function ms(v) {
            if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
            if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
            if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000 }
            return v + 0
        }
        /Requests\/sec:/ { rps = $2 }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        /Non-2xx or 3xx responses:/ { bad = $NF }
        / requests in / { n = $1 }
        /Socket errors:/ { errs = $0; sub(/.*Socket errors: */, "", errs); gsub(/ /, "", errs) }
        END { printf "%s %.3f %.3f %d %s %.1f %.1f\n", rps, p50, p99, bad + 0, (errs == "" ? "none" : errs), (n > 0 ? ticks * 1e6 / hz / n : 0), (n > 0 ? sticks * 1e6 / hz / n : 0) }'
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk: ${DURATION}s x $ROUNDS round(s), $CONNECTIONS connections, $WRK_THREADS thread(s); one stub worker ($STUB_THREADS thread); balancer (with and without metrics) and HAProxy with $LB_THREADS thread(s); $(nproc) cores"
printf '%-8s %-9s %12s %10s %10s %12s %12s %8s  %s\n' round target "requests/s" "p50 ms" "p99 ms" "CPU us/req" "stub us/req" non-2xx "socket errors"
ours_rps=(); ours_p99=(); ours_cpu=(); ha_rps=(); ha_p99=(); ha_cpu=(); bare_rps=(); bare_p99=(); bare_cpu=(); failed=0
targets=(ours nometrics haproxy)
for round in $(seq 1 "$ROUNDS"); do
    # Rotate the order so that drifting background load hits all alike.
    order=()
    for i in 0 1 2; do order+=("${targets[$(( (i + round - 1) % 3 ))]}"); done
    for target in "${order[@]}"; do
        case "$target" in
            ours) addr=$OURS; pid=$OURS_PID ;;
            nometrics) addr=$BARE; pid=$BARE_PID ;;
            haproxy) addr=$HAPROXY; pid=$HAPROXY_PID ;;
        esac
        read -r rps p50 p99 bad errs cpu stub_cpu < <(measure "$addr" "$pid")
        printf '%-8s %-9s %12s %10s %10s %12s %12s %8s  %s\n' "$round" "$target" "$rps" "$p50" "$p99" "$cpu" "$stub_cpu" "$bad" "$errs"
        case "$target" in
            ours) ours_rps+=("$rps"); ours_p99+=("$p99"); ours_cpu+=("$cpu") ;;
            nometrics) bare_rps+=("$rps"); bare_p99+=("$p99"); bare_cpu+=("$cpu") ;;
            haproxy) ha_rps+=("$rps"); ha_p99+=("$p99"); ha_cpu+=("$cpu") ;;
        esac
        [ "$bad" -eq 0 ] && [ "$errs" = none ] || failed=1
    done
done
python3 - "${ours_rps[*]}" "${ha_rps[*]}" "${ours_p99[*]}" "${ha_p99[*]}" "${ours_cpu[*]}" "${ha_cpu[*]}" \
    "${bare_rps[*]}" "${bare_p99[*]}" "${bare_cpu[*]}" <<'EOF'
import statistics, sys
o, h, op, hp, oc, hc, b, bp, bc = ([float(x) for x in a.split()] for a in sys.argv[1:10])
mo, mh, mop, mhp, moc, mhc, mb, mbp, mbc = (statistics.median(v) for v in (o, h, op, hp, oc, hc, b, bp, bc))
print(f"median requests/s: ours {mo:.0f}, haproxy {mh:.0f}; ratio ours/haproxy {mo / mh:.2f}x (target >= 1.0)")
print(f"median p99: ours {mop:.3f} ms, haproxy {mhp:.3f} ms; ratio ours/haproxy {mop / mhp:.2f}x (target <= 1.0)")
print(f"median proxy CPU per request: ours {moc:.1f} us, haproxy {mhc:.1f} us; ratio {moc / mhc:.2f}x")
print(f"metrics: median requests/s with {mo:.0f}, without {mb:.0f}; ratio with/without {mo / mb:.3f}x, "
      f"cost {100 * (1 - mo / mb):.1f} % (target <= 3 %); p99 {mop:.3f} vs {mbp:.3f} ms; "
      f"CPU per request {moc:.1f} vs {mbc:.1f} us")
EOF
if [ "$failed" -ne 0 ]; then
    echo "FAILED: some calls got non-2xx replies or socket errors; the figures above are not comparable" >&2
    exit 1
fi
