#!/usr/bin/env bash
# Issue 3 §4: Docker cold start (image present) vs `docker run --rm`, and warm
# REST-mode throughput / p50 / p99 of `noop` through the worker in both
# runtimes vs a bare loopback HTTP server, in one run.
#
#   bench/worker-runtimes.sh [--calls N] [--duration S] [--connections C]
#                            [--threads T] [--json PATH] [--skip-worker]
#                            [--skip-cold]
#
# Needs: a Docker engine, the docker CLI, wrk (apt-get install wrk).
# Builds: the static hf-fn (scripts/build-static-hf-fn.sh) and the release
# worker. Loopback only; bounded (default 2 × 20 cold starts per side and
# 3 rounds of 4 wrk runs of 10 s). Everything it creates is labelled and removed, also
# when interrupted.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
command -v wrk >/dev/null || { echo "worker-runtimes: wrk is missing (apt-get install wrk)" >&2; exit 2; }
command -v docker >/dev/null || { echo "worker-runtimes: the docker CLI is missing" >&2; exit 2; }
docker info >/dev/null 2>&1 || { echo "worker-runtimes: no Docker engine answers" >&2; exit 2; }

run_id="bench-$$-${RANDOM}"
bench_pid=""
cleanup() {
    # The benchmark stops its workers and removes what it made, also on
    # SIGTERM; this only catches a run killed harder than that.
    if [[ -n "$bench_pid" ]]; then
        kill -TERM "$bench_pid" 2>/dev/null || true
        wait "$bench_pid" 2>/dev/null || true
    fi
    for id in "$run_id-cold" "$run_id-instance" "$run_id-process" "$run_id-docker"; do
        docker ps -aq --filter "label=hotfunctions.worker=$id" | xargs -r docker rm -f >/dev/null 2>&1 || true
        docker images -q --filter "label=hotfunctions.worker=$id" | xargs -r docker rmi -f >/dev/null 2>&1 || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

static_bin="$(scripts/build-static-hf-fn.sh)"
# The whole workspace's feature set (a subset build would compile the
# graph again with other features); hf-fn is the process runtime's.
cargo build --quiet --release --locked --workspace --bin worker-front --bin hf-fn
bench_bin="$(cargo bench --locked --workspace --bench worker_runtimes --no-run 2>&1 |
    sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -n 1)"
[[ -x "$bench_bin" ]] || { echo "worker-runtimes: could not build the bench binary" >&2; exit 1; }
echo "worker-runtimes: run id $run_id" >&2
HF_FN_STATIC_BINARY="$static_bin" "$bench_bin" \
    --worker-bin "$root/target/release/worker-front" --run-id "$run_id" "$@" &
bench_pid=$!
status=0
wait "$bench_pid" || status=$?
bench_pid=""
exit "$status"
