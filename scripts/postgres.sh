#!/usr/bin/env bash
# A throwaway PostgreSQL server for maker_graph's tests and CI.
#
#   scripts/postgres.sh start [PORT]   install if missing, start, print the URL
#   scripts/postgres.sh url   [PORT]   print the URL of a running server
#   scripts/postgres.sh stop  [PORT]   stop the server and delete its data directory
#   scripts/postgres.sh status [PORT]  exit 0 when it accepts connections
#
# Without PORT, `start` picks a free port and `url`/`stop`/`status` use the last
# one started (recorded in /tmp/maker-graph-pg.port). The server listens on
# 127.0.0.1 only, trusts local connections, runs with fsync=off (its data is
# thrown away) and keeps everything under /tmp/maker-graph-pg-PORT.
#
# Missing PostgreSQL is installed from Debian's `postgresql` package when we are
# root (apt-get update once, then install). Exit codes: 0 ok, 1 usage or runtime
# failure, 3 PostgreSQL is not installed and cannot be installed here (the tests
# fail on any non-zero exit, saying so; MAKER_GRAPH_SKIP_POSTGRES=1 skips them).
set -euo pipefail

STATE_FILE=/tmp/maker-graph-pg.port
WAIT_SECONDS=${MAKER_GRAPH_PG_WAIT:-30}
APT_TIMEOUT=${MAKER_GRAPH_PG_APT_TIMEOUT:-900}

die() { echo "postgres.sh: $*" >&2; exit "${2:-1}"; }

bindir() {
    # Debian keeps the server binaries out of PATH, one directory per major version.
    local dir best=""
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]] && best="$dir"
    done
    if [[ -z "$best" ]] && command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        best="$(dirname "$(command -v initdb)")"
    fi
    printf '%s' "$best"
}

install_postgres() {
    [[ -n "$(bindir)" ]] && return 0
    if [[ $EUID -ne 0 ]]; then
        die "PostgreSQL is not installed and installing it needs root (apt-get install postgresql)" 3
    fi
    command -v apt-get >/dev/null || die "PostgreSQL is not installed and there is no apt-get" 3
    local log=/tmp/maker-graph-pg-install.log
    # policy-rc.d (present in container images) keeps the package from starting its
    # own cluster; we never use that cluster either way.
    if ! { timeout "$APT_TIMEOUT" apt-get update -qq &&
           DEBIAN_FRONTEND=noninteractive timeout "$APT_TIMEOUT" apt-get install -y -qq \
               --no-install-recommends postgresql; } >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        die "apt-get install postgresql failed (full log: $log)" 3
    fi
    [[ -n "$(bindir)" ]] || die "postgresql installed but no initdb/pg_ctl found" 3
}

free_port() {
    python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

# Run a server binary as the `postgres` user when we are root (the server refuses
# to run as root), as ourselves otherwise.
as_owner() {
    if [[ $EUID -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        if command -v runuser >/dev/null; then
            runuser -u postgres -- "$@"
        else
            su -s /bin/sh postgres -c "$(printf '%q ' "$@")"
        fi
    else
        "$@"
    fi
}

port_arg() {
    local port="${1:-}"
    if [[ -z "$port" ]]; then
        [[ -f "$STATE_FILE" ]] || die "no server started yet: run '$0 start' first"
        port="$(cat "$STATE_FILE")"
    fi
    [[ "$port" =~ ^[0-9]+$ ]] && ((port > 0 && port < 65536)) || die "bad port: $port"
    printf '%s' "$port"
}

url_of() { printf 'postgresql://postgres@127.0.0.1:%s/postgres\n' "$1"; }

is_ready() {
    local bin="$1" port="$2"
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -t 2 >/dev/null 2>&1
}

cmd_start() {
    install_postgres
    local bin port data
    bin="$(bindir)"
    port="${1:-$(free_port)}"
    port="$(port_arg "$port")"
    data="/tmp/maker-graph-pg-$port"
    if [[ -f "$data/postmaster.pid" ]] && is_ready "$bin" "$port"; then
        echo "$port" >"$STATE_FILE"
        url_of "$port"
        return 0
    fi
    rm -rf "$data"
    mkdir -p "$data"
    chmod 700 "$data"
    [[ $EUID -eq 0 ]] && chown postgres: "$data"
    if ! as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C \
        --no-sync >"$data.initdb.log" 2>&1; then
        cat "$data.initdb.log" >&2
        die "initdb failed"
    fi
    rm -f "$data.initdb.log"
    if ! as_owner "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t "$WAIT_SECONDS" \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c fsync=off \
            -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null; then
        tail -n 20 "$data/server.log" >&2 || true
        die "PostgreSQL did not start on port $port within ${WAIT_SECONDS}s"
    fi
    echo "$port" >"$STATE_FILE"
    url_of "$port"
}

cmd_stop() {
    local bin port data
    port="$(port_arg "${1:-}")"
    data="/tmp/maker-graph-pg-$port"
    bin="$(bindir)"
    if [[ -n "$bin" && -f "$data/postmaster.pid" ]]; then
        as_owner "$bin/pg_ctl" -D "$data" -m fast -w -t "$WAIT_SECONDS" stop >/dev/null 2>&1 ||
            as_owner "$bin/pg_ctl" -D "$data" -m immediate -w -t "$WAIT_SECONDS" stop \
                >/dev/null 2>&1 || true
    fi
    rm -rf "$data"
    if [[ -f "$STATE_FILE" && "$(cat "$STATE_FILE")" == "$port" ]]; then
        rm -f "$STATE_FILE"
    fi
}

cmd_url() {
    local port
    port="$(port_arg "${1:-}")"
    is_ready "$(bindir)" "$port" || die "no server is accepting connections on port $port"
    url_of "$port"
}

cmd_status() {
    local port bin
    port="$(port_arg "${1:-}")"
    bin="$(bindir)"
    [[ -n "$bin" ]] && is_ready "$bin" "$port"
}

case "${1:-}" in
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    url) shift; cmd_url "$@" ;;
    status) shift; cmd_status "$@" ;;
    *) die "usage: $0 start|stop|url|status [PORT]" ;;
esac
