#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for the tests on 127.0.0.1 and prints its URL.
#   usage: scripts/pg-test-server.sh start DIR   -> prints postgres://…/switchboard_test on stdout
#                                                   (…/switchboard_e2e exists too; the several-nodes
#                                                   tests make a database each)
#          scripts/pg-test-server.sh stop DIR
# Uses the Debian server binaries (package postgresql); runs as the `postgres` user when
# started as root, because PostgreSQL refuses to run as root.
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?data directory}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] || { echo "PostgreSQL server binaries not found" >&2; exit 1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "$cmd" in
start)
    mkdir -p "$dir"; [ "$(id -u)" = 0 ] && chown postgres "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    as_pg "$bin/initdb" -D "$dir/data" -U switchboard --auth=trust >"$dir/initdb.log" 2>&1
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='$dir' -c fsync=off" start >/dev/null
    # One database for the store's own tests, one for end-to-end tests of the server.
    as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U switchboard switchboard_test
    as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U switchboard switchboard_e2e
    echo "postgres://switchboard@127.0.0.1:$port/switchboard_test"
    ;;
stop)
    [ -d "$dir/data" ] && as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    ;;
esac
