#!/usr/bin/env bash
# `cargo build --workspace` and `cargo test --workspace` must resolve the
# same features for every dependency they share, so that the binaries the
# tests run are the binaries users build, and a test run does not compile
# the dependency graph a second time (feature-pins/Cargo.toml says why
# they can differ). Compares the two builds' unit graphs (Cargo's
# `--unit-graph`, read with RUSTC_BOOTSTRAP=1 on the stable toolchain; no
# compilation) and fails naming each crate built with two feature sets,
# and the features to add to feature-pins/Cargo.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
graph=$(mktemp)
trap 'rm -f "$graph"' EXIT
units() { # cargo subcommand and arguments -> "crate@version features" lines
    if ! RUSTC_BOOTSTRAP=1 cargo "$@" --release --locked --workspace -Z unstable-options \
        --unit-graph >"$graph"; then
        echo "check-features: cargo $* --unit-graph failed (above)" >&2
        exit 1
    fi
    python3 -c '
import json, sys
graph = json.load(sys.stdin)
for unit in graph["units"]:
    if unit["mode"] != "build" or "custom-build" in unit["target"]["kind"]:
        continue
    pkg = unit["pkg_id"]
    # "name version (source)" or "source#name@version"
    name = "@".join(pkg.split()[:2]) if " " in pkg else pkg.rsplit("#", 1)[-1]
    print(name, ",".join(sorted(unit["features"])) or "-")
' <"$graph" | sort -u
}
build=$(units build)
test=$(units test --no-run)
# Crates in both builds whose feature sets differ.
status=0
while read -r crate features; do
    built=$(awk -v c="$crate" '$1 == c { print $2 }' <<<"$build" | tr '\n' ' ')
    if [ -n "$built" ] && ! grep -qxF "$crate $features" <<<"$build"; then
        echo "check-features: $crate is built with features [$features] by cargo test but [${built% }] by cargo build" >&2
        status=1
    fi
done <<<"$test"
if [ "$status" -eq 0 ]; then
    echo "check-features: cargo build and cargo test resolve the same features ($(wc -l <<<"$build") units)"
else
    echo "check-features: pin the union of those features in feature-pins/Cargo.toml" >&2
fi
exit "$status"
