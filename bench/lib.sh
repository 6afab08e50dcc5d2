# Shared by the bench scripts (sourced, after `cd` to the repository):
# installs missing tools with apt-get, makes the run's temporary directory
# ($TMP) and kills the processes it started (pids in $PIDS) at exit, waits
# for a server's start-up line, picks a free port. A script that needs
# more at exit defines `bench_before_cleanup`.

# Installs the Debian packages "$@" with apt-get (sudo when not root).
bench_apt_install() {
    echo "installing $* (apt-get)" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

TMP=$(mktemp -d)
PIDS=()
bench_cleanup() {
    if declare -F bench_before_cleanup >/dev/null; then
        bench_before_cleanup || true
    fi
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap bench_cleanup EXIT INT TERM

# Waits for the start-up line in $1 ("listening on http://ADDR" of the
# balancer and the stub worker, " on 127.0.0.1:PORT" of the worker);
# prints ADDR.
wait_listening() {
    local file=$1 i
    for i in $(seq 1 400); do
        if grep -q "listening on http://" "$file" 2>/dev/null; then
            sed -n 's|.*listening on http://\([0-9.:]*\).*|\1|p' "$file" | head -1
            return 0
        fi
        if grep -q " on 127.0.0.1:" "$file" 2>/dev/null; then
            sed -n 's|.* on \(127.0.0.1:[0-9]*\).*|\1|p' "$file" | head -1
            return 0
        fi
        sleep 0.05
    done
    echo "no listening line in $file:" >&2
    cat "$file" >&2
    return 1
}

# A free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
