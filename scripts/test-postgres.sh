#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: initdb into DIR, listening on a
# free loopback port and on a Unix socket in DIR, trust authentication for
# loopback only, a database named parley. Nothing else on the machine is
# touched; `stop` ends it and removes DIR.
#
#   scripts/test-postgres.sh start DIR   prints the DSN on stdout
#   scripts/test-postgres.sh stop DIR
#   scripts/test-postgres.sh restart DIR (same port; for restart tests)
#   scripts/test-postgres.sh pause DIR   stop the server, keeping its data
#   scripts/test-postgres.sh resume DIR  start it again on the same port
#   scripts/test-postgres.sh kill DIR    SIGKILL to the postmaster
#
# PG_EXTRA_CONF: lines added to postgresql.conf at `start`.
#
# PostgreSQL refuses to run as root: as root the server runs as the
# `postgres` user that Debian's package creates. PG_BIN overrides where the
# binaries are (default: the newest /usr/lib/postgresql/*/bin).
set -euo pipefail

cmd=${1:?usage: $0 start|stop|restart|pause|resume|kill DIR}
dir=${2:?usage: $0 start|stop|restart|pause|resume|kill DIR}
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}
[ -x "$PG_BIN/initdb" ] || { echo "test-postgres: no PostgreSQL server binaries (scripts/deps.sh test)" >&2; exit 1; }

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pgctl() { as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 "$@"; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    as_owner "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 \
      --locale=C.UTF-8 > "$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    port=$(free_port)
    echo "$port" > "$dir/port"
    cat >> "$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 200
fsync = on
synchronous_commit = on
${PG_EXTRA_CONF:-}
CONF
    pgctl start > /dev/null || { cat "$dir/server.log" >&2; exit 1; }
    as_owner "$PG_BIN/createdb" -h "$dir" -p "$port" -U postgres parley
    echo "host=127.0.0.1 port=$port user=postgres dbname=parley"
    ;;
  stop)
    [ -d "$dir/data" ] && pgctl -m fast stop > /dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  restart)
    pgctl -m fast restart > /dev/null
    ;;
  pause)
    pgctl -m fast stop > /dev/null
    ;;
  resume)
    pgctl start > /dev/null || { cat "$dir/server.log" >&2; exit 1; }
    ;;
  kill)
    pid=$(head -1 "$dir/data/postmaster.pid")
    kill -9 "$pid"
    ;;
  *) echo "usage: $0 start|stop|restart|pause|resume|kill DIR" >&2; exit 2 ;;
esac
