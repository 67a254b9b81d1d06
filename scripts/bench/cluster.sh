#!/usr/bin/env bash
# The cluster part of the benchmark suite (make bench-cluster; issue 18).
# Starts a PostgreSQL of its own (scripts/test-postgres.sh), a Redis of its
# own and CLUSTER_SERVERS servers on them (--store=postgres --bus=redis, one
# token key), all on free loopback ports, runs parley_loadgen against one
# server and against all of them in the same run, and appends every result
# as a JSON line (part=cluster-*) to the results file.
#
#   scripts/bench/cluster.sh smoke           tiny sizes (make bench-smoke)
#   scripts/bench/cluster.sh full [PART...]  PARTs: fanout pairs bus durable
#                                            resume (default: all, in order)
#
# fanout: rooms of 100, CLUSTER_SUBSCRIBERS readers, at each of
#   CLUSTER_RATES msgs/s: first every reader and publisher on server 1, then
#   readers and publishers round robin over every server (2/3 of the
#   deliveries cross Redis); stops after the rate where the spread run
#   saturates. The added p99 is the second's minus the first's.
# pairs: the fan-out's added p99 at half of saturation, CLUSTER_PAIRS times,
#   one server and then all of them alternately: half of the most
#   deliveries/s the spread runs of the fanout part delivered (or
#   CLUSTER_PAIR_RATE msgs/s without it). One pair is one machine's moment.
# bus: what Redis costs. BUS_ROOMS rooms of N readers, one on each server
#   (reader j on server j mod N), at each of BUS_RATES msgs/s, against one
#   server and then all of them: from two rates, Redis's CPU per message
#   (the slope: a publish and one delivery per subscribed server) and its
#   fixed CPU (the intercept: mostly each server's presence list of each
#   room with readers, written every second).
# durable: PostMessage closed loop (CLUSTER_INFLIGHT in flight) into 10×N
#   rooms against server 1, then round robin over the N servers, then into
#   10×N+1 rooms over them: send k goes through server k mod N into room
#   k mod rooms, so each of 10×N rooms is written through one server, each
#   of 10×N+1 through all N (their batches queue on the room's counter row).
# resume: RESUME_STREAMS streams round robin over the servers, messages at
#   RESUME_RATE, then server 1 killed with SIGKILL; the time until every one
#   of its streams has reopened elsewhere and received an event posted after
#   the kill, and no sequence number missed or repeated. Last: it kills.
# Every run also reports Redis's and PostgreSQL's CPU (postmaster and
# backends) over its measured window (parley_loadgen --watch).
#
# Binaries: SERVER_BIN, LOADGEN_BIN (the release build). Output: BENCH_DIR
# (build/bench): results.jsonl (full) or smoke.jsonl, logs/cluster-*.log.
set -euo pipefail
# shellcheck source=scripts/bench/lib.sh
. "$(dirname "$0")/lib.sh"

mode=${1:-smoke}
shift || true

CLUSTER_SERVERS=${CLUSTER_SERVERS:-3}
CLUSTER_SUBSCRIBERS=${CLUSTER_SUBSCRIBERS:-10000}
CLUSTER_RATES=${CLUSTER_RATES:-"100 150 200 250 300 400 600"}  # msgs/s, rooms of 100
CLUSTER_INFLIGHT=${CLUSTER_INFLIGHT:-256}
CLUSTER_PAIRS=${CLUSTER_PAIRS:-5}
CLUSTER_PAIR_RATE=${CLUSTER_PAIR_RATE:-175}  # msgs/s, when the fanout part did not run
BUS_ROOMS=${BUS_ROOMS:-1000}
BUS_RATES=${BUS_RATES:-"10 1000"}  # msgs/s: nearly none (the fixed work), then some
RESUME_STREAMS=${RESUME_STREAMS:-10000}
RESUME_RATE=${RESUME_RATE:-100}  # msgs/s through the kill, rooms of 100
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}

bench_results "$mode" "[PART...]"
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(fanout pairs bus durable resume)

for b in "$SERVER_BIN" "$LOADGEN_BIN"; do
  [ -x "$b" ] || { echo "bench-cluster: missing $b (make loadgen)" >&2; exit 2; }
done
command -v redis-server >/dev/null || { echo "bench-cluster: needs redis-server (scripts/deps.sh cluster)" >&2; exit 2; }
bench_start
work=$(mktemp -d "$BENCH_DIR/cluster.XXXXXX")

wait_listening() {  # port seconds
  local i
  for ((i = 0; i < $2 * 20; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench-cluster: nothing listening on $1" >&2
  return 1
}

# ---- PostgreSQL, Redis, the servers; all stopped on exit ----
redis_pid="" server_pids=() server_addrs=()
stop_all() {
  local p
  for p in "${server_pids[@]}" $redis_pid; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${server_pids[@]}" $redis_pid; do wait "$p" 2>/dev/null || true; done
  stop_postgres 2>/dev/null || true
  rm -rf "$work"
}
trap stop_all EXIT

start_postgres
pg_pid=$(head -1 "$pg_dir/data/postmaster.pid")

redis_port=$(free_port)
redis_run=()
if [ "$(id -u)" -eq 0 ] && id redis >/dev/null 2>&1; then
  chown redis: "$work"
  redis_run=(setpriv --reuid=redis --regid=redis --init-groups)
fi
"${redis_run[@]}" redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
  --dir "$work" >"$logs/cluster-redis.log" 2>&1 &
redis_pid=$!
wait_listening "$redis_port" 20

(umask 077 && head -c 32 /dev/urandom >"$work/token.key")
server_args="--password_hash_ops=1 --password_hash_mem_kib=8 $unlimited --store=postgres --postgres_dsn=$pg_dsn --bus=redis --redis_addr=127.0.0.1:$redis_port --token_key_file=$work/token.key"
for i in $(seq 1 "$CLUSTER_SERVERS"); do
  mkdir -p "$work/server-$i"
  # shellcheck disable=SC2086
  spawn_server "$work/server-$i" "$logs/cluster-server-$i.log" $server_args
  server_pids+=("$spawned")
done
for i in $(seq 1 "$CLUSTER_SERVERS"); do
  port=$(port_of "$work/server-$i/grpc.port") ||
    { echo "bench-cluster: server $i did not start (logs/cluster-server-$i.log)" >&2; exit 1; }
  server_addrs+=("127.0.0.1:$port")
done
all_addrs=$(IFS=,; echo "${server_addrs[*]}")
all_pids=$(IFS=,; echo "${server_pids[*]}")
echo "bench-cluster: postgres $pg_dsn (pid $pg_pid), redis 127.0.0.1:$redis_port (pid $redis_pid)," \
  "servers $all_addrs (pids $all_pids)" >&2
# The DSN's port and the key's path change every run: the recorded flags
# show them as placeholders.
shown_args="--password_hash_ops=1 --password_hash_mem_kib=8 $unlimited --store=postgres --postgres_dsn=... --bus=redis --redis_addr=... --token_key_file=..."

# lg PART SERVERS TARGETS PIDS [loadgen flags...]: one loadgen run against
# TARGETS (SERVERS of them), its JSON line appended to $results
# (scripts/bench/lib.sh).
lg() {
  local part=$1 n=$2 targets=$3 pids=$4
  shift 4
  run_loadgen cluster-loadgen "bench-cluster: $part on $n server(s)" "$LOADGEN_BIN" \
    --target="$targets" --server_pid="$pids" --watch="redis:$redis_pid,postgres:$pg_pid" \
    --commit="$commit" --json_out="$results" \
    --tags="suite=$mode,run=$run_id,part=$part,grpc=debian,server_args=$shown_args" "$@"
}

one=${server_addrs[0]} one_pid=${server_pids[0]}
n=$CLUSTER_SERVERS

if [ "$mode" = smoke ]; then
  S=(--warmup=0.5 --duration=1 --quiet=0.3)
  lg smoke-cluster-fanout 1 "$one" "$one_pid" --scenario=fanout --subscribers=60 --rooms=3 \
    --users=6 --publishers=2 --channels=1 --rate=30 "${S[@]}"
  lg smoke-cluster-fanout "$n" "$all_addrs" "$all_pids" --scenario=fanout --subscribers=60 --rooms=3 \
    --users=6 --publishers=2 --channels=1 --rate=30 "${S[@]}"
  lg smoke-cluster-durable "$n" "$all_addrs" "$all_pids" --scenario=durable --inflight=8 --rooms=2 \
    --publishers=2 --channels=1 "${S[@]}"
  lg smoke-cluster-resume "$n" "$all_addrs" "$all_pids" --scenario=resume --streams=300 --room_size=30 \
    --users=6 --publishers=2 --channels=1 --rate=50 --kill_after=0.5 --kill_pid="$one_pid" --quiet=0.3
  smoke_end "bench-cluster smoke" 4
fi

command -v jq >/dev/null || { echo "bench-cluster: needs jq (scripts/deps.sh bench)" >&2; exit 2; }
F=(--scenario=fanout --subscribers="$CLUSTER_SUBSCRIBERS" --rooms=$((CLUSTER_SUBSCRIBERS / 100))
  --users=100 --publishers=20 --warmup="$WARMUP" --duration="$DURATION")
if want fanout; then
  for rate in $CLUSTER_RATES; do
    lg cluster-fanout 1 "$one" "$one_pid" "${F[@]}" --channels=16 --rate="$rate"
    lg cluster-fanout "$n" "$all_addrs" "$all_pids" "${F[@]}" --channels=$((6 * n)) --rate="$rate"
    r=$(last_result cluster-fanout)
    if [ -n "$r" ] && jq -e '.deliveries_per_s < 0.9 * .offered_deliveries_per_s or .latency_p99_ms > 1000' <<<"$r" >/dev/null; then
      echo "bench-cluster: fan-out over $n servers saturated at $rate msgs/s" >&2
      break
    fi
  done
fi

if want pairs; then
  rate=$CLUSTER_PAIR_RATE
  most=$(grep '"part":"cluster-fanout"' "$results" | grep "\"run\":\"$run_id\"" |
    jq -s --argjson n "$n" '[.[] | select(.servers == $n) | .deliveries_per_s] | max // empty')
  [ -n "$most" ] && rate=$(jq -n --argjson d "$most" '$d / 2 / 100 | round')
  echo "bench-cluster: pairs at $rate msgs/s" >&2
  for i in $(seq 1 "$CLUSTER_PAIRS"); do
    lg cluster-pairs 1 "$one" "$one_pid" "${F[@]}" --channels=16 --rate="$rate"
    lg cluster-pairs "$n" "$all_addrs" "$all_pids" "${F[@]}" --channels=$((6 * n)) --rate="$rate"
  done
fi

if want bus; then
  B=(--scenario=fanout --subscribers=$((BUS_ROOMS * n)) --rooms="$BUS_ROOMS" --users=100 --publishers=20
    --warmup="$WARMUP" --duration="$DURATION" --channels=$((6 * n)))
  for rate in $BUS_RATES; do
    lg cluster-bus 1 "$one" "$one_pid" "${B[@]}" --rate="$rate"
    lg cluster-bus "$n" "$all_addrs" "$all_pids" "${B[@]}" --rate="$rate"
  done
fi

if want durable; then
  D=(--scenario=durable --inflight="$CLUSTER_INFLIGHT" --publishers=50 --warmup="$WARMUP" --duration="$DURATION")
  lg cluster-durable 1 "$one" "$one_pid" "${D[@]}" --rooms=$((10 * n)) --channels=8
  lg cluster-durable "$n" "$all_addrs" "$all_pids" "${D[@]}" --rooms=$((10 * n)) --channels=$((3 * n))
  lg cluster-durable "$n" "$all_addrs" "$all_pids" "${D[@]}" --rooms=$((10 * n + 1)) --channels=$((3 * n))
fi

if want resume; then
  lg cluster-resume "$n" "$all_addrs" "$all_pids" --scenario=resume --streams="$RESUME_STREAMS" \
    --room_size=100 --users=100 --publishers=20 --channels=$((4 * n)) --rate="$RESUME_RATE" \
    --kill_after=3 --kill_pid="$one_pid" --setup_timeout=900
fi

echo "bench-cluster: results in $results (run $run_id); $failures failure(s)" >&2
[ $failures -eq 0 ]
