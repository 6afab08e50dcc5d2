#!/usr/bin/env bash
# A bounded libFuzzer run of every fuzz target under fuzz/ (issue 13, part
# 5): the scenario parser, a log line, a whole log through the analyzer,
# query strings, and both servers' request parsers (Action::parse). Fails
# on any crash (a panic, an abort, a timeout of 10 s on one input, or more
# than 2 GB of memory), and leaves the input that crashed in
# fuzz/artifacts/<target>/: make it a regression test (fuzz/regressions/)
# with its fix.
#
# Time: FUZZ_SECONDS per target (default 30), 6 targets run one after the
# other on one core: 3 minutes of fuzzing. The build comes first: about 3
# minutes on a cold cache on 2 cores (fuzz/target/ keeps it), seconds after.
#
# libFuzzer needs nightly-only compiler flags; this uses the machine's
# stable toolchain with RUSTC_BOOTSTRAP=1 (no other toolchain is fetched),
# no sanitizer (the workspace forbids `unsafe`, so the sanitizers would
# find nothing that a panic does not show) and debug assertions on, so
# that an arithmetic overflow is a crash too.
#
# Usage: scripts/fuzz-ci.sh [TARGET...]     (default: every target)
#        FUZZ_SECONDS=600 scripts/fuzz-ci.sh analyze   (a longer hunt)
set -euo pipefail

root="$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)"
seconds="${FUZZ_SECONDS:-30}"
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
# fixed). libFuzzer adds what it finds to corpus/<target>/ (not in git).
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
    echo "fuzz-ci: $t for ${seconds} s" >&2
    if ! cargo fuzz run "${flags[@]}" "$t" "corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
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
echo "fuzz-ci: no crash in ${#targets[@]} targets x ${seconds} s" >&2
