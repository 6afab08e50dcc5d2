#!/usr/bin/env bash
# Our balancer (`ch`) vs HAProxy (`balance url_param name`, `hash-type
# consistent`, `hash-balance-factor 150`) in front of the same stub worker,
# under the same wrk load, on loopback only (issue 2 §6). Our balancer runs
# twice, with its metrics (`ours`, the default) and with `--no-metrics`
# (`nometrics`): what the metrics cost (issue 15 §3).
#
# One 5-s run's throughput swings by ±30 % on a shared 2-core machine, so
# the three targets are measured in paired, interleaved rounds: each round
# runs each target once, back to back, in an order that alternates from
# round to round (all six orders in turn), and every comparison is the
# ratio within a round (ours/nometrics, ours/HAProxy), averaged over the
# rounds with a 95 % interval (Student's t). Besides requests/s and p99,
# each run measures the CPU time each proxy spent per request served (user
# + system time of the process, all threads, from /proc/PID/stat, divided
# by wrk's request count), which background load disturbs far less than
# throughput; and that CPU time divided by the stub worker's CPU time per
# request in the same run: the stub does the same work whichever proxy is
# in front of it, so its cost per request gauges how fast the machine was
# during that run (contention, clock, caches), and the quotient cancels
# most of the run-to-run noise. Each run's row, then the medians, then per
# target the mean and 95 % interval of requests/s, p99, CPU µs/request and
# CPU relative to the stub's, then the paired ratios against the targets
# (metrics cost <= 3 %; ours >= HAProxy's requests/s with p99 no worse):
# "met" when the whole interval meets the target, "missed" when none of it
# does, else "not decided" (more rounds). Ours/HAProxy's requests/s and
# p99 also as the geometric mean of the paired ratios (a t interval on
# their logarithms) and their median: one stalled run's p99 can be 10x
# the others', which the arithmetic mean follows.
# Figures measured: bench/README.md.
#
# Usage: bench/balancer-vs-haproxy.sh [--duration S] [--rounds R]
#          [--connections C] [--wrk-threads T] [--lb-threads N]
#          [--stub-threads N] [--no-haproxy] [--perf]
# Defaults: 5 s runs, 6 rounds, 64 connections, 1 wrk thread, 2
# balancer/HAProxy threads, 1 stub thread. --no-haproxy compares metrics
# on/off only (also what happens, said so, when haproxy is missing and
# apt-get cannot install it). --perf (needs `perf`): one more run against
# `ours` under `perf record`, printing the balancer's top symbols and the
# share of the metrics' own symbols. Installs wrk (and haproxy) with
# apt-get when missing. Cleans up every process it starts; exits non-zero
# if any call failed.
set -euo pipefail

DURATION=5
CONNECTIONS=64
WRK_THREADS=1
LB_THREADS=2
STUB_THREADS=1
ROUNDS=6
HAPROXY_WANTED=1
PERF=0
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --connections) CONNECTIONS=$2; shift 2 ;;
        --wrk-threads) WRK_THREADS=$2; shift 2 ;;
        --lb-threads) LB_THREADS=$2; shift 2 ;;
        --stub-threads) STUB_THREADS=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --no-haproxy) HAPROXY_WANTED=0; shift ;;
        --perf) PERF=1; shift ;;
        -h|--help) sed -n '2,42p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
whole() { [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge "$3" ] && [ "$2" -le "$4" ] || { echo "$1 must be a whole number from $3 to $4" >&2; exit 2; }; }
whole --duration "$DURATION" 1 60
whole --rounds "$ROUNDS" 2 100
whole --connections "$CONNECTIONS" 1 10000
whole --wrk-threads "$WRK_THREADS" 1 64
whole --lb-threads "$LB_THREADS" 1 64
whole --stub-threads "$STUB_THREADS" 1 64

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

source bench/lib.sh
command -v wrk >/dev/null || bench_apt_install wrk || true
command -v wrk >/dev/null || { echo "wrk is missing and could not be installed" >&2; exit 1; }
if [ "$HAPROXY_WANTED" -eq 1 ] && ! command -v haproxy >/dev/null; then
    bench_apt_install haproxy || true
    if ! command -v haproxy >/dev/null; then
        echo "haproxy is missing and could not be installed: comparing our balancer with and without metrics only" >&2
        HAPROXY_WANTED=0
    fi
fi
if [ "$PERF" -eq 1 ] && ! command -v perf >/dev/null; then
    echo "--perf: perf is not installed; no profile" >&2
    PERF=0
fi

echo "building release binaries" >&2
# The whole workspace's feature set (a subset build would compile the
# graph again with other features).
cargo build --release --locked -q --workspace --bin load-balancer --bin stub-worker
BIN="$ROOT/target/release"

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

targets=(ours nometrics)
if [ "$HAPROXY_WANTED" -eq 1 ]; then
    targets+=(haproxy)
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
fi
curl -fsS "http://$OURS/execute?name=W1" >/dev/null
curl -fsS "http://$BARE/execute?name=W1" >/dev/null

TICKS=$(getconf CLK_TCK)
# CPU time (user + system, in clock ticks, all threads) used so far by
# process $1.
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

# The order of round $1 (1-based) over the targets: the two targets
# alternate; three go through their six orders in turn, so that each
# target runs before and after each other one equally often.
order_of() {
    local r=$(( ($1 - 1) % 6 ))
    if [ ${#targets[@]} -eq 2 ]; then
        if [ $((r % 2)) -eq 0 ]; then echo "ours nometrics"; else echo "nometrics ours"; fi
        return
    fi
    local orders=("ours nometrics haproxy" "nometrics haproxy ours" "haproxy ours nometrics"
                  "ours haproxy nometrics" "haproxy nometrics ours" "nometrics ours haproxy")
    echo "${orders[$r]}"
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores; uptime: $(uptime))"
echo "wrk: ${DURATION}s x $ROUNDS round(s), $CONNECTIONS connections, $WRK_THREADS thread(s); one stub worker ($STUB_THREADS thread); balancer (with and without metrics)$([ "$HAPROXY_WANTED" -eq 1 ] && echo " and HAProxy") with $LB_THREADS thread(s); $(nproc) cores"
[ "$HAPROXY_WANTED" -eq 1 ] || echo "no HAProxy in this run (--no-haproxy, or not installed): metrics on/off only"
printf '%-8s %-9s %12s %10s %10s %12s %12s %8s  %s\n' round target "requests/s" "p50 ms" "p99 ms" "CPU us/req" "stub us/req" non-2xx "socket errors"
failed=0
: >"$TMP/rounds.tsv"
for round in $(seq 1 "$ROUNDS"); do
    for target in $(order_of "$round"); do
        case "$target" in
            ours) addr=$OURS; pid=$OURS_PID ;;
            nometrics) addr=$BARE; pid=$BARE_PID ;;
            haproxy) addr=$HAPROXY; pid=$HAPROXY_PID ;;
        esac
        read -r rps p50 p99 bad errs cpu stub_cpu < <(measure "$addr" "$pid")
        printf '%-8s %-9s %12s %10s %10s %12s %12s %8s  %s\n' "$round" "$target" "$rps" "$p50" "$p99" "$cpu" "$stub_cpu" "$bad" "$errs"
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$target" "$rps" "$p99" "$cpu" "$stub_cpu" >>"$TMP/rounds.tsv"
        [ "$bad" -eq 0 ] && [ "$errs" = none ] || failed=1
    done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$TMP/rounds.tsv" "$ROOT/bench" <<'EOF'
import math, statistics, sys

sys.path.insert(0, sys.argv[2])
from stats import geometric_interval, interval, verdict  # noqa: E402 (bench/stats.py)

rows = [line.split("\t") for line in open(sys.argv[1]).read().splitlines() if line]
by = {}  # target -> round -> (rps, p99, cpu, cpu / the stub's cpu)
for rnd, target, rps, p99, cpu, stub in rows:
    rel = float(cpu) / float(stub) if float(stub) > 0 else float("nan")
    by.setdefault(target, {})[int(rnd)] = (float(rps), float(p99), float(cpu), rel)
has_ha = "haproxy" in by
KEYS = ("requests/s", "p99 ms", "CPU us/req", "CPU / stub's")


def col(target, i):
    return [v[i] for _, v in sorted(by[target].items())]


def ratios(a, b, i):
    """Per round a/b of measure i (the rounds both ran)."""
    common = sorted(set(by[a]) & set(by[b]))
    return [by[a][r][i] / by[b][r][i] for r in common if by[b][r][i] > 0]


med = {t: [statistics.median(col(t, i)) for i in range(3)] for t in by}
mo, mop, moc = med["ours"]
mb, mbp, mbc = med["nometrics"]
# The summary lines of earlier versions of this script (medians).
if has_ha:
    mh, mhp, mhc = med["haproxy"]
    print(f"median requests/s: ours {mo:.0f}, haproxy {mh:.0f}; ratio ours/haproxy {mo / mh:.2f}x (target >= 1.0)")
    print(f"median p99: ours {mop:.3f} ms, haproxy {mhp:.3f} ms; ratio ours/haproxy {mop / mhp:.2f}x (target <= 1.0)")
    print(f"median proxy CPU per request: ours {moc:.1f} us, haproxy {mhc:.1f} us; ratio {moc / mhc:.2f}x")
print(f"metrics: median requests/s with {mo:.0f}, without {mb:.0f}; ratio with/without {mo / mb:.3f}x, "
      f"cost {100 * (1 - mo / mb):.1f} % (target <= 3 %); p99 {mop:.3f} vs {mbp:.3f} ms; "
      f"CPU per request {moc:.1f} vs {mbc:.1f} us")

n = len(by["ours"])
print(f"\nper target, mean and 95 % interval over {n} rounds (t, {n - 1} degrees of freedom):")
print(f"{'target':<10}" + "".join(f"{k:>26}" for k in KEYS))
for t in ("ours", "nometrics", "haproxy"):
    if t not in by:
        continue
    cells = []
    for i in range(4):
        m, h = interval(col(t, i))
        cells.append(f"{m:.3f} ± {h:.3f}" if i in (1, 3) else f"{m:.1f} ± {h:.1f}")
    print(f"{t:<10}" + "".join(f"{c:>26}" for c in cells))


def paired(a, b, i):
    xs = ratios(a, b, i)
    m, h = interval(xs)
    return m, m - h, m + h


def paired_geometric(a, b, i):
    """The geometric mean of the paired ratios and its 95 % interval
    (`stats.geometric_interval`: p99 ratios, where one stalled run can
    be 10x the others)."""
    return geometric_interval(ratios(a, b, i))


print("\npaired ratios (each round's a/b; mean [95 % interval]):")
m, lo, hi = paired("ours", "nometrics", 0)
print(f"metrics on/off requests/s: {m:.3f} [{lo:.3f}, {hi:.3f}]; cost {100 * (1 - m):.1f} % "
      f"[{100 * (1 - hi):.1f}, {100 * (1 - lo):.1f}] (target <= 3 %: {verdict(1 - hi, 1 - lo, at_most=0.03)})")
for i, what in ((2, "CPU per request"), (3, "CPU per request / the stub's")):
    m, lo, hi = paired("ours", "nometrics", i)
    print(f"metrics on/off {what}: {m:.3f} [{lo:.3f}, {hi:.3f}]; cost {100 * (m - 1):.1f} % "
          f"[{100 * (lo - 1):.1f}, {100 * (hi - 1):.1f}] (target <= 3 %: {verdict(lo - 1, hi - 1, at_most=0.03)})")
m, lo, hi = paired("ours", "nometrics", 1)
print(f"metrics on/off p99: {m:.3f} [{lo:.3f}, {hi:.3f}]")
if has_ha:
    m, lo, hi = paired("ours", "haproxy", 0)
    print(f"ours/haproxy requests/s: {m:.3f} [{lo:.3f}, {hi:.3f}] (target >= 1.0: {verdict(lo, hi, at_least=1.0)})")
    m, lo, hi = paired("ours", "haproxy", 1)
    print(f"ours/haproxy p99: {m:.3f} [{lo:.3f}, {hi:.3f}] (target <= 1.0: {verdict(lo, hi, at_most=1.0)})")
    for i, what, bound in ((0, "requests/s", dict(at_least=1.0)), (1, "p99", dict(at_most=1.0))):
        m, lo, hi = paired_geometric("ours", "haproxy", i)
        target = ">= 1.0" if "at_least" in bound else "<= 1.0"
        print(f"ours/haproxy {what}, geometric mean: {m:.3f} [{lo:.3f}, {hi:.3f}] "
              f"(target {target}: {verdict(lo, hi, **bound)}); median of the ratios "
              f"{statistics.median(ratios('ours', 'haproxy', i)):.3f}")
    m, lo, hi = paired("ours", "haproxy", 2)
    print(f"ours/haproxy CPU per request: {m:.3f} [{lo:.3f}, {hi:.3f}]")
    m, lo, hi = paired("ours", "haproxy", 3)
    print(f"ours/haproxy CPU per request / the stub's: {m:.3f} [{lo:.3f}, {hi:.3f}] "
          "(the stub's work per request may differ behind HAProxy)")
EOF

if [ "$PERF" -eq 1 ]; then
    # One more run against `ours`, sampled: where the balancer's CPU goes.
    perf record -q -F 999 -e cpu-clock -p "$OURS_PID" -o "$TMP/perf.data" -- sleep "$DURATION" >"$TMP/perf.log" 2>&1 &
    PERF_PID=$!
    PIDS+=("$PERF_PID")
    measure "$OURS" "$OURS_PID" >/dev/null
    wait "$PERF_PID" || { echo "--perf: perf record failed:" >&2; cat "$TMP/perf.log" >&2; }
    if [ -s "$TMP/perf.data" ]; then
        perf report -i "$TMP/perf.data" --no-children --fields overhead,sym --stdio --percent-limit 0 2>/dev/null \
            | grep -E '^ +[0-9.]+%' | sed 's/^ *//; s/ *$//' >"$TMP/perf.txt" || true
        echo
        echo "perf (the balancer with metrics, cpu-clock at 999 Hz, ${DURATION} s under the same load; self time):"
        awk '$2 == "[k]" { sub(/%/, "", $1); k += $1 } $2 == "[.]" { sub(/%/, "", $1); u += $1 }
             END { printf "  kernel %.1f %%, user %.1f %%\n", k, u }' "$TMP/perf.txt"
        echo "  top user-space symbols:"
        grep -F ' [.] ' "$TMP/perf.txt" | head -12 | sed 's/^/    /'
        # The metrics' own code: the balancer's metrics module, the shared
        # one in http-front and prometheus-client. Code of theirs inlined
        # into a caller counts for the caller: a lower bound.
        echo "  metrics symbols (load_balancer::metrics, http_front::metrics, prometheus_client):"
        grep -E 'load_balancer::metrics::|http_front::metrics::|prometheus_client' "$TMP/perf.txt" | sed 's/^/    /' || true
        awk '/load_balancer::metrics::|http_front::metrics::|prometheus_client/ { sub(/%/, "", $1); s += $1; n++ }
             END { printf "  metrics share: %.2f %% of the balancer'"'"'s samples in %d symbols (inlined code counts for its caller: a lower bound)\n", s, n }' "$TMP/perf.txt"
    fi
fi

if [ "$failed" -ne 0 ]; then
    echo "FAILED: some calls got non-2xx replies or socket errors; the figures above are not comparable" >&2
    exit 1
fi
