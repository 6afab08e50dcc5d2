#!/usr/bin/env bash
# Runs README.md's tour as written: every ```bash block of the "## Tour"
# section, in order, as one shell session (background jobs and files carry
# over from block to block), in a scratch directory where `target/`, `utils/`, `deploy/`,
# `scenarios/` and `simulator/` point to this checkout's, so the tour's
# files (logs, figures, CSVs) do not land in the checkout. `cargo` lines
# run in the checkout. Everything the tour starts runs in one new process
# group, which is stopped at the end whatever happens.
#
# Usage: scripts/readme-tour.sh [--print]   (--print: show the script only)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

# The tour's shell blocks, with `cargo` run from the checkout.
tour=$(awk '
    /^## / { in_tour = ($0 == "## Tour") ; next }
    in_tour && /^```bash$/ { in_block = 1; next }
    in_block && /^```$/ { in_block = 0; print ""; next }
    in_block { print }
' "$root/README.md" | sed -E 's#^cargo (.*)$#(cd "$HF_TOUR_ROOT" \&\& cargo \1)#')
if [ -z "$tour" ]; then
    echo "readme-tour: no bash block in README.md's \"## Tour\" section" >&2
    exit 1
fi
if [ "${1:-}" = "--print" ]; then
    printf '%s\n' "$tour"
    exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/hf-readme-tour.XXXXXX")
for d in target scenarios simulator utils deploy; do
    ln -s "$root/$d" "$work/$d"
done
printf 'set -euxo pipefail\n%s\n' "$tour" > "$work/tour.sh"

# A new session: the tour and its background jobs share one process group,
# ours alone to stop.
cd "$work"
HF_TOUR_ROOT="$root" setsid bash "$work/tour.sh" &
pid=$!
cleanup() {
    kill -TERM -- "-$pid" 2>/dev/null || true
    sleep 1
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
status=0
wait "$pid" || status=$?
if [ "$status" -ne 0 ]; then
    echo "readme-tour: the tour failed (exit $status); see the trace above" >&2
    exit "$status"
fi
echo "readme-tour: every command of README.md's tour ran"
