# shellcheck shell=bash disable=SC2154,SC2034
# Shared by scripts/bench/run.sh, cluster.sh, peers.sh and
# profile-durable.sh (sourced). They set $results (the JSON lines file) and
# `parts` (the parts asked for); bench_start sets the rest. $root is the
# checkout; the binaries and BENCH_DIR default to the release build's.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SERVER_BIN=${SERVER_BIN:-$root/build/release/server/parley_server}
LOADGEN_BIN=${LOADGEN_BIN:-$root/build/release/clients/loadgen/parley_loadgen}
BENCH_DIR=${BENCH_DIR:-$root/build/bench}
# Absolute: servers such as Centrifugo start in their own directory.
mkdir -p "$BENCH_DIR" && BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
# Every server runs with these: the suite measures capacity, and its few
# users on one address would meet the per-client limits (docs/security.md,
# "Limits") long before it.
unlimited="--sends_per_user_per_second=0 --sends_per_room_per_second=0 --sign_ins_per_address_per_minute=0 --streams_per_user=0 --streams_per_address=0 --lobby_max_sessions=0 --lobby_sessions_per_address=0"

# bench_results MODE ARGS: sets $results, the file results go to:
# BENCH_DIR/smoke.jsonl for MODE smoke, BENCH_DIR/results.jsonl for full;
# any other MODE prints the usage (the script, smoke|full, then ARGS) and
# exits 2.
bench_results() {
  case "$1" in
    smoke) results=$BENCH_DIR/smoke.jsonl ;;
    full) results=$BENCH_DIR/results.jsonl ;;
    *) echo "usage: $0 smoke|full $2" >&2; exit 2 ;;
  esac
}

# bench_start: $logs (BENCH_DIR/logs), every descriptor allowed (tens of
# thousands of streams, and the gateway's socket per REST stream), and the
# run's $commit (-dirty with uncommitted changes), $run_id and `failures`.
bench_start() {
  mkdir -p "$BENCH_DIR/logs"
  logs=$BENCH_DIR/logs
  ulimit -n "$(ulimit -Hn)"
  commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
  if [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    commit="$commit-dirty"
  fi
  run_id=$(date -u +%Y%m%dT%H%M%SZ)
  failures=0
}

# free_port: a TCP port free on 127.0.0.1 now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# spawn LOG COMMAND...: COMMAND in the background, its output appended to
# LOG; its pid in $spawned. Variables set before `spawn` (VAR=value spawn
# ...) are in COMMAND's environment.
spawn() {
  local log=$1
  shift
  "$@" >>"$log" 2>&1 &
  spawned=$!
}

# spawn_server DIR LOG FLAG...: spawns a Parley server (SERVER_BIN) on a
# free loopback port with FLAGs, its data in DIR; it writes its port to
# DIR/grpc.port once it listens (port_of).
spawn_server() {
  local dir=$1 log=$2
  shift 2
  spawn "$log" "$SERVER_BIN" --grpc_addr=127.0.0.1:0 --port_file="$dir/grpc.port" --data_dir="$dir" "$@"
}

# port_of FILE [SECONDS]: prints the port a process started with
# --port_file=FILE wrote there once it listened, waiting for the file up to
# SECONDS (default 20); fails, naming FILE, when it did not come.
port_of() {
  local i
  for ((i = 0; i < ${2:-20} * 20; i++)); do
    if [ -s "$1" ]; then
      cat "$1"
      return 0
    fi
    sleep 0.05
  done
  echo "bench: $1 did not appear" >&2
  return 1
}

# smoke_end WHAT N: a smoke run's verdict over its N loadgen runs; exits,
# 1 when any failed.
smoke_end() {
  if [ "$failures" -ne 0 ]; then
    echo "$1: $failures loadgen run(s) failed" >&2
    exit 1
  fi
  echo "$1: $2 passed, 0 failed"
  exit 0
}

# want PART: whether PART was asked for.
want() { local p; for p in "${parts[@]}"; do [ "$p" = "$1" ] && return 0; done; return 1; }

# A PostgreSQL server of the suite's own (scripts/test-postgres.sh): its
# directory in pg_dir, its DSN in pg_dsn.
pg_dir="" pg_dsn=""
start_postgres() {
  pg_dir=$(mktemp -u /tmp/parley-bench-pg.XXXXXX)
  # A new cluster creates each 16 MB WAL segment inside the commit that
  # needs it, zero-filled: a 10-20 ms stall every few seconds that a server
  # past its first checkpoints (recycling segments) does not have.
  PG_EXTRA_CONF="wal_init_zero = off" \
    "$root/scripts/test-postgres.sh" start "$pg_dir" > /dev/null
  # As a URI: no spaces, so it survives server_args' word splitting.
  pg_dsn="postgresql://postgres@127.0.0.1:$(cat "$pg_dir/port")/parley"
  echo "bench: postgres at $pg_dsn" >&2
}
stop_postgres() {
  [ -n "$pg_dir" ] && "$root/scripts/test-postgres.sh" stop "$pg_dir"
  pg_dir=""
}

# run_loadgen NAME WHAT COMMAND...: runs one parley_loadgen COMMAND, its
# output kept in $logs/NAME.last and appended to $logs/NAME.log, its table
# on stdout. A failure is counted and reported as WHAT with its last lines;
# never fails itself, so the suite goes on.
run_loadgen() {
  local name=$1 what=$2 rc=0
  shift 2
  local out=$logs/$name.last
  "$@" >"$out" 2>&1 || rc=$?
  cat "$out" >>"$logs/$name.log"
  grep -v '^{' "$out" | grep -v '^loadgen \[' || true
  if [ $rc -ne 0 ]; then
    echo "$what: FAILED ($rc)" >&2
    tail -5 "$out" >&2
    failures=$((failures + 1))
  fi
  return 0
}

# The last result line of `part` in $results from this run, as JSON.
last_result() { grep "\"part\":\"$1\"" "$results" | grep "\"run\":\"$run_id\"" | tail -1; }
