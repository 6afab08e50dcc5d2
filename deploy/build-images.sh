#!/usr/bin/env bash
# Builds the testbed's three images FROM scratch around static binaries
# (no registry is reachable, so nothing is pulled):
#
#   hotfunctions/load-balancer:TAG   the balancer (:8111)
#   hotfunctions/worker:TAG          a worker (:8222) with the static hf-fn
#   hotfunctions/replayer:TAG        `simulator` with scenarios/ in /scenarios
#
#   deploy/build-images.sh [--tag TAG] [--label KEY=VALUE]...
#
# TAG defaults to `dev`. Every image carries the labels
# hotfunctions.image=<role>, hotfunctions.version and hotfunctions.git,
# plus each --label given (the tests give a label of their own, so that
# they remove exactly the images they built). The static binaries are
# built with `-C target-feature=+crt-static` for x86_64-unknown-linux-gnu
# into target/static (their own target dir, as scripts/build-static-hf-fn.sh),
# so the shared target dir is never invalidated; `--workspace` (not `-p`),
# so that both scripts resolve the same features and share their units.
# Prints the image names.
set -euo pipefail
root="$(cd -P "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

tag=dev
labels=()
while [ $# -gt 0 ]; do
    case "$1" in
        --tag) tag="${2:?--tag needs a value}"; shift 2 ;;
        --label) labels+=(--label "${2:?--label needs KEY=VALUE}"); shift 2 ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-images: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if ! [[ "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
    echo "build-images: --tag $tag is not a valid image tag" >&2
    exit 2
fi

target=x86_64-unknown-linux-gnu
# No debug info in images: the release profile keeps line tables
# (debug = 1) for profiling on the host, which would triple a function
# image (hf-fn ~28 MB with them). The same settings in both static
# scripts, which share target/static.
RUSTFLAGS="-C target-feature=+crt-static" \
    CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=debuginfo \
    cargo build --quiet --release --locked --target "$target" --target-dir target/static \
    --workspace --bin load-balancer --bin worker-front --bin simulator --bin hf-fn
bin="target/static/$target/release"
for b in load-balancer worker-front simulator hf-fn; do
    if command -v file >/dev/null &&
        ! file -L "$bin/$b" | grep -Eq "statically linked|static-pie linked"; then
        echo "build-images: $bin/$b is not statically linked: $(file -L "$bin/$b")" >&2
        exit 1
    fi
done

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
git=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

# The three builds run at once, each from a context of its own: the
# engine's builder spends most of a build committing layers, not on the
# CPU (three at once took 6.9 s here where one after another took 15.8 s).
build() { # role dockerfile files...
    local role=$1 dockerfile=$2
    shift 2
    mkdir "$ctx/$role"
    cp -a "$@" "$ctx/$role"/
    docker build --quiet -f "deploy/images/$dockerfile" -t "hotfunctions/$role:$tag" \
        --label "hotfunctions.image=$role" --label "hotfunctions.version=$version" \
        --label "hotfunctions.git=$git" ${labels[@]+"${labels[@]}"} "$ctx/$role" \
        >"$ctx/$role.out" 2>&1
}
roles=(load-balancer worker replayer)
build load-balancer balancer.Dockerfile "$bin/load-balancer" &
pids=($!)
build worker worker.Dockerfile "$bin/worker-front" "$bin/hf-fn" &
pids+=($!)
build replayer replayer.Dockerfile "$bin/simulator" scenarios &
pids+=($!)
failed=0
for i in "${!roles[@]}"; do
    if ! wait "${pids[$i]}"; then
        echo "build-images: building hotfunctions/${roles[$i]}:$tag failed:" >&2
        cat "$ctx/${roles[$i]}.out" >&2 || true # none if the copy failed
        failed=1
    fi
done
[ "$failed" -eq 0 ] || exit 1
for role in "${roles[@]}"; do
    echo "hotfunctions/$role:$tag"
done
