#!/usr/bin/env bash
# The pure crates (the policies and the simulation core) must not link an
# async runtime, an HTTP stack or a Docker client: a policy that read a
# clock or opened a socket would then not compile. Fails listing any such
# crate found in their dependency trees.
set -euo pipefail
cd "$(dirname "$0")/.."
forbidden='^(tokio|actix-web|actix-rt|actix-http|reqwest|hyper|bollard|mio)$'
status=0
for crate in policy des; do
    tree=$(cargo tree -p "$crate" -e normal --prefix none)
    found=$(awk '{print $1}' <<<"$tree" | sort -u | grep -E "$forbidden" || true)
    if [ -n "$found" ]; then
        echo "check-pure-crates: $crate depends on: $(echo "$found" | tr '\n' ' ')" >&2
        status=1
    fi
done
[ "$status" -eq 0 ] && echo "check-pure-crates: policy and des link no async runtime, HTTP stack or Docker client"
exit "$status"
