#!/usr/bin/env bash
# A bounded libFuzzer run of every fuzz target under fuzz/ (issue 13, part
# 5): the scenario parser, a log line, a whole log through the analyzer,
# query strings, worker replies and both servers' request parsers
# (Action::parse) and their check of request heads (framing). Fails on any crash (a panic, an abort, a timeout of
# 30 s on one input, or more than 2 GB of memory), and leaves the input
# that crashed in fuzz/artifacts/<target>/: make it a regression test
# (fuzz/regressions/) with its fix.
#
# Reproducible by default: each target runs FUZZ_RUNS inputs (default
# 200,000; 4,000 for the slow `analyze`) from a fixed seed (FUZZ_SEED, default 1) on a fresh corpus, so
# CI explores the same inputs on every run of the same code and a red run
# is a finding about the change, not a lucky draw. FUZZ_SECONDS (default
# 60) caps each target's time on a slow machine. For a hunt, ask for more:
#   FUZZ_RUNS=0 FUZZ_SECONDS=600 FUZZ_SEED=0 scripts/fuzz-ci.sh analyze
# (FUZZ_RUNS=0: no limit on inputs; FUZZ_SEED=0: a random seed, printed.)
# About 1-2 minutes for 8 targets after the build: about 3 minutes on a
# cold cache on 2 cores (fuzz/target/ keeps it), seconds after.
#
# libFuzzer needs nightly-only compiler flags; this uses the machine's
# stable toolchain with RUSTC_BOOTSTRAP=1 (no other toolchain is fetched),
# no sanitizer (the workspace forbids `unsafe`, so the sanitizers would
# find nothing that a panic does not show) and debug assertions on, so
# that an arithmetic overflow is a crash too.
#
# Usage: scripts/fuzz-ci.sh [TARGET...]     (default: every target)
set -euo pipefail

root="$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)"
seconds="${FUZZ_SECONDS:-60}"
fuzz_seed="${FUZZ_SEED:-1}"
# Inputs per target: FUZZ_RUNS, else 200,000, but 4,000 for `analyze`
# (a whole log through two analyses and two reports: about 200 inputs/s
# here, so that it ends within FUZZ_SECONDS and stays reproducible).
# libFuzzer: -runs=-1 is "no limit".
runs_of() {
    local n
    if [ -n "${FUZZ_RUNS:-}" ]; then
        n=$FUZZ_RUNS
    elif [ "$1" = analyze ]; then
        n=4000
    else
        n=200000
    fi
    [ "$n" = 0 ] && n=-1
    echo "$n"
}
export RUSTC_BOOTSTRAP=1
export RUST_BACKTRACE=0
flags=(--release --debug-assertions --sanitizer none)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-ci: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked --version 0.13.2
fi

cd "$root/fuzz"
if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

start=$SECONDS
cargo fuzz build "${flags[@]}"
echo "fuzz-ci: built ${#targets[@]} targets in $((SECONDS - start)) s" >&2

# Seed corpora: the checked-in seeds, the repository's scenarios and logs
# (and their lines), and every regression input (so a fixed crash stays
# fixed). Each run starts from these alone (corpus/ is emptied first, so
# the same seed explores the same inputs); libFuzzer adds what it finds
# to corpus/<target>/ (not in git).
rm -rf corpus
seed() {
    local target=$1
    shift
    mkdir -p "corpus/$target"
    for f in "$@"; do
        [ -f "$f" ] && cp "$f" "corpus/$target/" || true
    done
}
for t in "${targets[@]}"; do
    seed "$t" seeds/"$t"/* regressions/"$t"/*
done
seed scenario "$root"/scenarios/*.csv
seed analyze "$root"/utils/tests/data/*.log
mkdir -p corpus/log_line
n=0
while IFS= read -r line && [ $n -lt 40 ]; do
    printf '%s' "$line" >"corpus/log_line/line-$n"
    n=$((n + 1))
done < <(cat "$root"/utils/tests/data/*.log)

failed=()
for t in "${targets[@]}"; do
    runs=$(runs_of "$t")
    echo "fuzz-ci: $t, $runs inputs from seed $fuzz_seed, at most ${seconds} s" >&2
    if ! cargo fuzz run "${flags[@]}" "$t" "corpus/$t" -- \
        -runs="$runs" -seed="$fuzz_seed" \
        -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 \
        -max_len=262144 -print_final_stats=1 2>"corpus/$t.stderr"; then
        tail -n 40 "corpus/$t.stderr" >&2
        failed+=("$t")
    else
        grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "corpus/$t.stderr" | tail -n 2 >&2 || true
    fi
done

echo "fuzz-ci: $((SECONDS - start)) s in all" >&2
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz-ci: crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz-ci: no crash in ${#targets[@]} targets (seed $fuzz_seed)" >&2
