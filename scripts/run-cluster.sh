#!/usr/bin/env bash
# make run-cluster: Parley as a cluster on loopback, in the foreground.
# PostgreSQL and Redis (Debian's packages), three servers on them, two
# gateways each given all three servers, and HAProxy in front of both tiers.
# Ctrl-C (or SIGTERM) stops all of it.
#
#   scripts/run-cluster.sh SERVER_BIN GATEWAY_BIN GRPC_PORT HTTP_PORT DATA_DIR
#
# Ports, all on 127.0.0.1 (G = GRPC_PORT, H = HTTP_PORT):
#   H          HAProxy, REST: per request over the gateways
#   H+1, H+2   gateway 1, gateway 2
#   G          HAProxy, gRPC (HTTP/2): per request (per stream) over the servers
#   G+1..G+3   server 1..3
#   G+4        PostgreSQL (database parley, user postgres, trust on loopback)
#   G+5        Redis
# Everything lives under DATA_DIR/cluster/ and is kept across runs: postgres/
# (the database cluster), redis/, server-N/ (each server's --data_dir),
# token.key (the one signing key every server uses, --token_key_file),
# haproxy.cfg (written anew each run) and logs/ (one file per component).
#
# PostgreSQL and Redis refuse or dislike root: as root they run as the
# postgres and redis users of Debian's packages, HAProxy drops to haproxy.
set -euo pipefail

server_bin=${1:?usage: $0 SERVER_BIN GATEWAY_BIN GRPC_PORT HTTP_PORT DATA_DIR}
gateway_bin=${2:?} grpc_port=${3:?} http_port=${4:?} data_dir=${5:?}
host=127.0.0.1
cluster_dir=$(mkdir -p "$data_dir/cluster" && cd "$data_dir/cluster" && pwd)
log_dir=$cluster_dir/logs
mkdir -p "$log_dir"

server_count=3
gateway_count=2
postgres_port=$((grpc_port + 4))
redis_port=$((grpc_port + 5))
server_addrs=()
for i in $(seq 1 $server_count); do server_addrs+=("$host:$((grpc_port + i))"); done
server_list=$(IFS=,; echo "${server_addrs[*]}")

PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}
postgres_dir=$cluster_dir/postgres
redis_dir=$cluster_dir/redis
token_key=$cluster_dir/token.key
dsn="host=$host port=$postgres_port user=postgres dbname=parley"

log() { printf 'run-cluster: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

for bin in "$server_bin" "$gateway_bin"; do
  [ -x "$bin" ] || die "no $bin (make server gateway)"
done
[ -x "$PG_BIN/initdb" ] || die "no PostgreSQL server binaries (scripts/deps.sh cluster)"
for tool in redis-server redis-cli haproxy curl; do
  command -v "$tool" > /dev/null || die "no $tool (scripts/deps.sh cluster)"
done

is_root() { [ "$(id -u)" -eq 0 ]; }
# Runs "$@" as USER when this script is root, else as whoever runs it.
as_user() {
  local user=$1
  shift
  if is_root; then runuser -u "$user" -- "$@"; else "$@"; fi
}
as_postgres() { as_user postgres "$@"; }

listening() { (exec 3<> "/dev/tcp/$host/$1") 2> /dev/null; }
# Whether PID is alive (not gone, not a zombie waiting to be reaped).
running() {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2> /dev/null | cut -d' ' -f1) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# ---- Stopping, on Ctrl-C, SIGTERM, a failed start or any other exit ----
declare -A name_of=()    # pid -> component
gateway_pids=() server_pids=() redis_pid='' haproxy_pid=''
postgres_ours=0  # set before pg_ctl start: a Ctrl-C during it still stops it

# stop_processes GRACE PID...: SIGTERM, then SIGKILL whatever still runs
# after GRACE seconds.
stop_processes() {
  local grace=$1 pid
  shift
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2> /dev/null || true
  local deadline=$((SECONDS + grace))
  for pid in "$@"; do
    while running "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if running "$pid"; then
      log "${name_of[$pid]:-$pid} did not stop in ${grace} s: SIGKILL"
      kill -KILL "$pid" 2> /dev/null || true
    fi
    wait "$pid" 2> /dev/null || true
  done
}

stopped=0
stop() {
  [ $stopped -eq 0 ] || return 0
  stopped=1
  trap '' INT TERM  # a second Ctrl-C does not cut the clean-up short
  log "stopping"
  # From the front to the back: nothing is left talking to a stopped tier.
  stop_processes 5 $haproxy_pid
  stop_processes 10 "${gateway_pids[@]}"
  stop_processes 15 "${server_pids[@]}"
  stop_processes 15 $redis_pid
  if [ $postgres_ours -eq 1 ] &&
    as_postgres "$PG_BIN/pg_ctl" -D "$postgres_dir/data" status > /dev/null 2>&1; then
    as_postgres "$PG_BIN/pg_ctl" -D "$postgres_dir/data" -w -t 60 -m fast stop > /dev/null ||
      log "pg_ctl stop failed: see $log_dir/postgres.log"
  fi
  log "stopped"
}
# Stopping on purpose is a clean exit; the EXIT trap covers a failure.
trap 'stop; exit 0' INT TERM
trap stop EXIT

# ---- Before starting anything ----
if is_root; then
  for user in postgres redis; do
    id "$user" > /dev/null 2>&1 || die "no $user user: is Debian's package installed? (scripts/deps.sh cluster)"
  done
  # The service users must reach their directories under DATA_DIR.
  runuser -u postgres -- test -x "$cluster_dir" ||
    die "the postgres user cannot enter $cluster_dir: choose a PARLEY_DATA_DIR that others may traverse"
fi

# A PostgreSQL of this directory left running by a run that was killed: it
# is ours, so stop it (it is started below with this run's port).
if [ -f "$postgres_dir/data/PG_VERSION" ] &&
  as_postgres "$PG_BIN/pg_ctl" -D "$postgres_dir/data" status > /dev/null 2>&1; then
  log "stopping the PostgreSQL an earlier run left running"
  as_postgres "$PG_BIN/pg_ctl" -D "$postgres_dir/data" -w -m fast stop > /dev/null
fi

declare -A port_use=(
  [$http_port]="HAProxy (REST)" [$grpc_port]="HAProxy (gRPC)"
  [$postgres_port]=PostgreSQL [$redis_port]=Redis
)
for i in $(seq 1 $gateway_count); do port_use[$((http_port + i))]="gateway $i"; done
for i in $(seq 1 $server_count); do port_use[$((grpc_port + i))]="server $i"; done
[ ${#port_use[@]} -eq $((4 + gateway_count + server_count)) ] ||
  die "the ports overlap: HTTP_PORT..+$gateway_count ($http_port..) and GRPC_PORT..+$((server_count + 2)) ($grpc_port..) must not"
for port in "${!port_use[@]}"; do
  listening "$port" && die "port $port (${port_use[$port]}) is already in use"
done

bus_flags=(--bus=redis "--redis_addr=$host:$redis_port")

# wait_until WHAT PID SECONDS COMMAND...: until COMMAND succeeds; fails if PID
# (when not empty) exits first or the time runs out.
wait_until() {
  local what=$1 pid=$2 deadline=$((SECONDS + $3))
  shift 3
  until "$@"; do
    if [ -n "$pid" ] && ! running "$pid"; then
      die "$what exited while starting: see its log in $log_dir"
    fi
    [ $SECONDS -lt $deadline ] || die "$what did not come up in time: see its log in $log_dir"
    sleep 0.2
  done
}

# ---- PostgreSQL ----
mkdir -p "$postgres_dir"
is_root && chown postgres: "$postgres_dir"
touch "$log_dir/postgres.log"
is_root && chown postgres: "$log_dir/postgres.log"
if [ ! -f "$postgres_dir/data/PG_VERSION" ]; then
  log "creating the PostgreSQL cluster in $postgres_dir/data"
  as_postgres "$PG_BIN/initdb" -D "$postgres_dir/data" -U postgres -A trust -E UTF8 \
    --locale=C.UTF-8 > "$log_dir/initdb.log" 2>&1 ||
    die "initdb failed: see $log_dir/initdb.log"
fi
# The port and addresses are given on each start, so the data directory
# follows GRPC_PORT; no Unix socket (a long DATA_DIR would not fit one).
postgres_ours=1
as_postgres "$PG_BIN/pg_ctl" -D "$postgres_dir/data" -l "$log_dir/postgres.log" -w -t 60 \
  -o "-c listen_addresses=$host -c port=$postgres_port -c unix_socket_directories=''" \
  start > /dev/null || die "PostgreSQL did not start: see $log_dir/postgres.log"
psql_parley() { as_postgres psql -qtA -h "$host" -p "$postgres_port" -U postgres "$@"; }
if [ "$(psql_parley -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'parley'")" != 1 ]; then
  psql_parley -d postgres -c 'CREATE DATABASE parley' > /dev/null
fi

# ---- Redis ----
mkdir -p "$redis_dir"
redis_run=()
if is_root; then
  chown -R redis: "$redis_dir"
  # setpriv execs Redis itself, so its pid is the one to signal.
  redis_run=(setpriv --reuid=redis --regid=redis --init-groups)
fi
"${redis_run[@]}" redis-server --bind "$host" --port "$redis_port" --dir "$redis_dir" \
  --daemonize no --appendonly yes --save '' > "$log_dir/redis.log" 2>&1 &
redis_pid=$!
name_of[$redis_pid]=Redis
redis_answers() { [ "$(redis-cli -h "$host" -p "$redis_port" ping 2> /dev/null)" = PONG ]; }
wait_until Redis "$redis_pid" 30 redis_answers

# The gateways fan streams out (docs/fanout.md): servers and gateways share
# a secret, made for this run unless PARLEY_EDGE_SECRET is given; both read
# it from the environment, not the command line.
export PARLEY_EDGE_SECRET=${PARLEY_EDGE_SECRET:-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')}

# ---- Servers ----
# One key for all: a token one server signs, every other accepts.
if [ ! -s "$token_key" ]; then
  (umask 077 && head -c 32 /dev/urandom > "$token_key.tmp" && mv "$token_key.tmp" "$token_key")
fi
for i in $(seq 1 $server_count); do
  mkdir -p "$cluster_dir/server-$i"
  "$server_bin" --grpc_addr="${server_addrs[$((i - 1))]}" --data_dir="$cluster_dir/server-$i" \
    --store=postgres --postgres_dsn="$dsn" --token_key_file="$token_key" "${bus_flags[@]}" \
    --trusted_proxies=127.0.0.1,::1 \
    > "$log_dir/server-$i.log" 2>&1 &
  server_pids+=($!)
  name_of[$!]="server $i"
done
for i in $(seq 1 $server_count); do
  wait_until "server $i" "${server_pids[$((i - 1))]}" 60 listening $((grpc_port + i))
done

# ---- Gateways ----
for i in $(seq 1 $gateway_count); do
  "$gateway_bin" --grpc_server="$server_list" --http_addr="$host:$((http_port + i))" \
    --trusted_proxies=127.0.0.1,::1 \
    > "$log_dir/gateway-$i.log" 2>&1 &
  gateway_pids+=($!)
  name_of[$!]="gateway $i"
done
gateway_healthy() { curl -fsS -o /dev/null "http://$host:$1/healthz" 2> /dev/null; }
for i in $(seq 1 $gateway_count); do
  port=$((http_port + i))
  wait_until "gateway $i" "${gateway_pids[$((i - 1))]}" 60 gateway_healthy "$port"
done

# ---- HAProxy ----
# Its configuration: scripts/haproxy-cluster.sh.
haproxy_cfg=$cluster_dir/haproxy.cfg
gateway_list=$(for i in $(seq 1 $gateway_count); do printf '%s:%d\n' "$host" $((http_port + i)); done | paste -sd,)
haproxy_user=''
is_root && haproxy_user=haproxy
HAPROXY_USER=$haproxy_user "$(dirname "$0")/haproxy-cluster.sh" "$host:$http_port" "$host:$grpc_port" \
  "$gateway_list" "$server_list" > "$haproxy_cfg"
haproxy -c -q -f "$haproxy_cfg" || die "HAProxy refuses $haproxy_cfg"
haproxy -db -f "$haproxy_cfg" > "$log_dir/haproxy.log" 2>&1 &
haproxy_pid=$!
name_of[$haproxy_pid]=HAProxy
haproxy_listening() { listening "$http_port" && listening "$grpc_port"; }
wait_until HAProxy "$haproxy_pid" 30 haproxy_listening

cat >&2 <<MSG
Parley cluster is up:
  REST         http://$host:$http_port   HAProxy, per request over the gateways
                 (try: curl "http://$host:$http_port/join?id=alice")
  gRPC         $host:$grpc_port          HAProxy (HTTP/2), per request over the servers
                 (try: grpcurl -plaintext $host:$grpc_port list)
MSG
for i in $(seq 1 $gateway_count); do
  printf '  gateway %d    http://%s:%d   pid %d\n' "$i" "$host" $((http_port + i)) "${gateway_pids[$((i - 1))]}" >&2
done
for i in $(seq 1 $server_count); do
  printf '  server %d     %s          pid %d, data %s\n' "$i" "${server_addrs[$((i - 1))]}" \
    "${server_pids[$((i - 1))]}" "$cluster_dir/server-$i" >&2
done
cat >&2 <<MSG
  PostgreSQL   $host:$postgres_port          $dsn
                 data $postgres_dir/data
  Redis        $host:$redis_port          pid $redis_pid, data $redis_dir
  token key    $token_key
  logs         $log_dir/
Ctrl-C stops all of it.
MSG

# Until Ctrl-C: a component that exits is reported and the others keep
# running (HAProxy's checks take a stopped server or gateway out).
live=("${!name_of[@]}")
while [ ${#live[@]} -gt 0 ]; do
  exited='' status=0
  wait -n -p exited "${live[@]}" || status=$?
  [ -n "$exited" ] || continue
  log "${name_of[$exited]} (pid $exited) exited with status $status; see $log_dir"
  rest=()
  for pid in "${live[@]}"; do [ "$pid" = "$exited" ] || rest+=("$pid"); done
  live=("${rest[@]}")
done
die "every process has exited"
