#!/usr/bin/env bash
# Builds the statically linked `hf-fn` (sample-functions) that every
# FROM-scratch function image of the Docker runtime carries.
#
#   scripts/build-static-hf-fn.sh            # release build, prints the path
#
# Output: target/static/x86_64-unknown-linux-gnu/release/hf-fn (its own
# target dir, so the crt-static RUSTFLAGS never invalidate the shared one;
# `--workspace`, as deploy/build-images.sh, so both resolve the same features).
# The worker's Docker runtime finds it there at run time, from its own
# executable's directory (target/release/worker-front looks in
# target/static/...), unless HF_FN_STATIC names another file
# (worker_front::locate_static_hf_fn). Needs only the x86_64-unknown-linux-gnu target and glibc's
# static archives (libc6-dev), which a Rust toolchain on Debian has.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target=x86_64-unknown-linux-gnu
# No debug info in images: the release profile keeps line tables
# (debug = 1) for profiling on the host, which would triple a function
# image (hf-fn ~28 MB with them). The same settings in both static
# scripts, which share target/static.
RUSTFLAGS="-C target-feature=+crt-static" \
    CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=debuginfo \
    cargo build --quiet --release --locked --workspace --bin hf-fn \
    --target "$target" --target-dir target/static
out="target/static/$target/release/hf-fn"
if ! file -L "$out" 2>/dev/null | grep -Eq "statically linked|static-pie linked"; then
    if command -v file >/dev/null; then
        echo "build-static-hf-fn: $out is not statically linked: $(file -L "$out")" >&2
        exit 1
    fi
fi
echo "$root/$out"
