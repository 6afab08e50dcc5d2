#!/usr/bin/env bash
# The whole test suite, as README.md gives it and CI runs it.
#
# Release profile: the sample functions' CPU loop is calibrated for an
# optimized hf-fn, and the discrete-event validation runs a million
# simulated seconds. `cargo build` first, because integration tests of one
# package start the binaries of others (the experiment starts worker-front
# and load-balancer; worker tests run hf-fn). Then README.md's tour runs
# command by command (scripts/readme-tour.sh), on loopback ports 8111,
# 8222 and 8223. The build and the tests resolve the same features
# (scripts/check-features.sh), so `cargo test` compiles only the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/check-pure-crates.sh
./scripts/check-features.sh
cargo build --release --workspace --locked
cargo test --release --workspace --locked "$@"
# README.md's tour, as written (the whole suite only: not with a filter).
if [ $# -eq 0 ]; then
    ./scripts/readme-tour.sh
fi
