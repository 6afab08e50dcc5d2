#!/usr/bin/env bash
# Issue 3 §4: Docker cold start (image present) vs `docker run --rm`, and warm
# REST-mode throughput / p50 / p99 of `noop` through the worker in both
# runtimes vs a bare loopback HTTP server, in one run.
#
#   bench/worker-runtimes.sh [--calls N] [--duration S] [--connections C]
#                            [--threads T] [--json PATH] [--skip-worker]
#
# Needs: a Docker engine, the docker CLI, wrk (apt-get install wrk).
# Builds: the static hf-fn (scripts/build-static-hf-fn.sh) and the release
# worker. Loopback only; bounded (default 2 × 20 cold starts per side and
# 3 wrk runs of 10 s). Everything it creates is labelled and removed, also
# when interrupted.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
command -v wrk >/dev/null || { echo "worker-runtimes: wrk is missing (apt-get install wrk)" >&2; exit 2; }
command -v docker >/dev/null || { echo "worker-runtimes: the docker CLI is missing" >&2; exit 2; }
docker info >/dev/null 2>&1 || { echo "worker-runtimes: no Docker engine answers" >&2; exit 2; }

cleanup() {
    # The bench removes what it made; this catches an interrupted run.
    # Its worker ids are bench-cold-<pid> and worker-<port>; both carry
    # hotfunctions.worker, and every bench container runs a bench image.
    if [[ -n "${bench_pid:-}" ]]; then kill "$bench_pid" 2>/dev/null || true; wait "$bench_pid" 2>/dev/null || true; fi
    for id in $(docker images --filter "label=hotfunctions.worker=bench-cold-${bench_pid:-none}" -q 2>/dev/null); do
        docker ps -aq --filter "ancestor=$id" | xargs -r docker rm -f >/dev/null 2>&1 || true
        docker rmi -f "$id" >/dev/null 2>&1 || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

static_bin="$(scripts/build-static-hf-fn.sh)"
cargo build --quiet --release -p worker-front --bin worker-front
cargo bench --quiet -p worker-front --bench worker_runtimes --no-run
export HF_FN_STATIC_BINARY="$static_bin"
cargo bench --quiet -p worker-front --bench worker_runtimes -- \
    --worker-bin "$root/target/release/worker-front" "$@" &
bench_pid=$!
wait "$bench_pid"
status=$?
bench_pid=""
exit "$status"
