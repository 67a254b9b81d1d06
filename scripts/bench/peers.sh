#!/usr/bin/env bash
# The peers benchmark (issue 21; docs/benchmarks.md, section 9): Parley against
# Centrifugo v6 and against a naive gRPC fan-out server, one load generator
# (scripts/bench/peerload) with the same shape for all.
#
#   scripts/bench/peers.sh smoke            tiny sizes, a few seconds, Parley
#                                           (ws, sse, grpc) and the naive
#                                           server only; fails on any error
#   scripts/bench/peers.sh full [SHAPE...]  SHAPEs are subscriber counts in
#                                           rooms of 100 (default: 2000 10000)
#
# Pairs, each run A B A B (PEERS_ROUNDS rounds) at every rate of the sweep,
# every run on freshly started servers:
#   ws    Parley over WebSocket (gateway)  vs  Centrifugo over WebSocket
#   sse   Parley over SSE (gateway)        vs  Centrifugo over WebSocket
#   grpc  Parley's gRPC Subscribe          vs  the naive server
#   floor the naive WebSocket server alone (sweep only)
# The sweep (PEERS_RATES, msgs/s in all) goes up until both sides of a pair
# miss p99 <= PEERS_P99_MS or deliver less than 95% of what was offered; a
# side that misses stops there. Then both sides run at the same rate, half
# of the lower of their two highest passing rates (rows tagged sweep=half):
# the CPU per delivery and p99 ratios come from those. The WebSocket and
# SSE pairs also run the floor there, naive-ws (scripts/bench/peerload/
# naivews: one write per delivery, nothing else), so that each CPU figure
# can be read against what the socket writes alone cost. The gRPC pair adds
# naive-thread there: the naive server with its writes started on a thread
# of its own (--write_thread), as a server that commits before its fan-out
# must. The pseudo-pair
# floor sweeps naive-ws alone up the same rates: the highest rate any
# server reaches here with this load generator on the same cores. Every run
# measures the memory per idle subscriber. PEERS_PAIRS picks pairs
# (default: all).
#
# Parley's gateway fans out (docs/fanout.md): server and gateway share a
# fresh --edge_secret (PARLEY_EDGE_SECRET) per run; PEERS_FANOUT=0 gives
# every SSE and WebSocket subscriber its own Subscribe stream instead.
#
# Binaries: SERVER_BIN, GATEWAY_BIN, NAIVE_BIN, PEERLOAD_BIN, CENTRIFUGO_BIN
# (defaults: the release build, build/bin, build/tools/bin; make
# bench-peers builds and installs them). Results: BENCH_DIR/results.jsonl
# (full) or smoke.jsonl, logs in BENCH_DIR/logs.
set -euo pipefail
# shellcheck source=scripts/bench/lib.sh
. "$(dirname "$0")/lib.sh"

mode=${1:-smoke}
shift || true
GATEWAY_BIN=${GATEWAY_BIN:-$root/build/bin/parley-gateway}
NAIVE_BIN=${NAIVE_BIN:-$root/build/release/scripts/bench/naive/naive_fanout}
NAIVEWS_BIN=${NAIVEWS_BIN:-$root/build/bin/naivews}
PEERLOAD_BIN=${PEERLOAD_BIN:-$root/build/bin/peerload}
CENTRIFUGO_BIN=${CENTRIFUGO_BIN:-$root/build/tools/bin/centrifugo}
PEERS_RATES=${PEERS_RATES:-"20 50 100 200 400 700 1000 1500 2000 3000 4000 6000 8000"}
PEERS_P99_MS=${PEERS_P99_MS:-50}
PEERS_ROUNDS=${PEERS_ROUNDS:-2}
PEERS_PAIRS=${PEERS_PAIRS:-"ws sse grpc floor"}
ROOM_SIZE=${ROOM_SIZE:-100}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
SETTLE=${SETTLE:-3}
PEERS_FANOUT=${PEERS_FANOUT:-1}

bench_results "$mode" "[SHAPE...]"
shapes=("$@")
[ ${#shapes[@]} -eq 0 ] && shapes=(2000 10000)

need=("$SERVER_BIN" "$GATEWAY_BIN" "$NAIVE_BIN" "$NAIVEWS_BIN" "$PEERLOAD_BIN")
[ "$mode" = full ] && need+=("$CENTRIFUGO_BIN")
for b in "${need[@]}"; do
  [ -x "$b" ] || { echo "peers: missing $b (make bench-peers builds it)" >&2; exit 2; }
done
command -v jq >/dev/null || { echo "peers: needs jq (scripts/deps.sh bench)" >&2; exit 2; }
bench_start

# The processes of the system under test: pids (space separated), the
# gRPC target and the HTTP base URL of the run.
pids="" grpc_target="" http_base="" data_dir="" server_args=""
centrifugo_secret="" centrifugo_api_key=""

start_parley() {  # Parley's server and gateway, every per-client limit lifted
  data_dir=$(mktemp -d "$BENCH_DIR/data.XXXXXX")
  server_args="--password_hash_ops=1 --password_hash_mem_kib=8 $unlimited"
  # The edge secret goes through the environment, as scripts/run.sh does;
  # the gateway without it gives each client a stream of its own.
  local secret=""
  [ "$PEERS_FANOUT" = 1 ] && secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  # shellcheck disable=SC2086
  PARLEY_EDGE_SECRET=$secret spawn_server "$data_dir" "$logs/peers-server.log" $server_args
  local server_pid=$spawned
  grpc_target=127.0.0.1:$(port_of "$data_dir/grpc.port")
  PARLEY_EDGE_SECRET=$secret spawn "$logs/peers-gateway.log" "$GATEWAY_BIN" --grpc_server="$grpc_target" \
    --http_addr=127.0.0.1:0 --port_file="$data_dir/http.port" --log_level=warn --max_conns_per_address=0
  local gateway_pid=$spawned
  http_base=http://127.0.0.1:$(port_of "$data_dir/http.port")
  pids="$server_pid $gateway_pid"
}

start_naive() {  # [--write_thread]
  data_dir=$(mktemp -d "$BENCH_DIR/data.XXXXXX")
  spawn "$logs/peers-naive.log" "$NAIVE_BIN" --grpc_addr=127.0.0.1:0 --port_file="$data_dir/grpc.port" "$@"
  pids=$spawned
  grpc_target=127.0.0.1:$(port_of "$data_dir/grpc.port")
}

# The WebSocket floor (scripts/bench/peerload/naivews): one write per
# delivery and nothing else, driven as Centrifugo is.
start_naive_ws() {
  data_dir=$(mktemp -d "$BENCH_DIR/data.XXXXXX")
  spawn "$logs/peers-naivews.log" "$NAIVEWS_BIN" --port_file="$data_dir/http.port"
  pids=$spawned
  http_base=http://127.0.0.1:$(port_of "$data_dir/http.port")
  centrifugo_secret=unused centrifugo_api_key=unused
}

start_centrifugo() {
  data_dir=$(mktemp -d "$BENCH_DIR/data.XXXXXX")
  local port
  port=$(free_port)
  centrifugo_secret=peers-secret-$RANDOM$RANDOM
  centrifugo_api_key=peers-api-key-$RANDOM$RANDOM
  # Clients connect with an HS256 JWT and may subscribe to any channel
  # without a namespace; publishing is the server API's, with the key.
  jq -n --argjson port "$port" --arg secret "$centrifugo_secret" --arg key "$centrifugo_api_key" '{
    http_server: {address: "127.0.0.1", port: $port},
    log: {level: "error"},
    health: {enabled: true},
    client: {token: {hmac_secret_key: $secret}, allowed_origins: ["*"]},
    http_api: {key: $key},
    channel: {without_namespace: {allow_subscribe_for_client: true}}
  }' >"$data_dir/centrifugo.json"
  (cd "$data_dir" && exec "$CENTRIFUGO_BIN" --config="$data_dir/centrifugo.json") >>"$logs/peers-centrifugo.log" 2>&1 &
  pids=$!
  http_base=http://127.0.0.1:$port
  local i
  for ((i = 0; i < 400; i++)); do
    curl -fsS "$http_base/health" >/dev/null 2>&1 && return 0
    kill -0 "$pids" 2>/dev/null || break
    sleep 0.05
  done
  echo "peers: centrifugo did not answer on $http_base (see $logs/peers-centrifugo.log)" >&2
  return 1
}

stop_system() {
  local p
  for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
  for p in $pids; do wait "$p" 2>/dev/null || true; done
  pids="" server_args=""
  [ -n "$data_dir" ] && rm -rf "$data_dir"
  data_dir=""
}
trap stop_system EXIT

# peers SYSTEM SUBSCRIBERS RATE TAGS [peerload flags...]: one run on freshly
# started servers; its JSON line appended to $results.
peers() {
  local system=$1 subscribers=$2 rate=$3 tags=$4
  shift 4
  case "$system" in
    centrifugo-ws) start_centrifugo ;;
    naive-ws) start_naive_ws ;;
    naive) start_naive ;;
    naive-thread) start_naive --write_thread ;;
    *) start_parley ;;
  esac
  local tagset="suite=$mode,run=$run_id,part=peers,commit=$commit,$tags"
  case "$system" in parley-*) [ "$PEERS_FANOUT" = 1 ] && tagset+=",fanout=on" || tagset+=",fanout=off" ;; esac
  [ -n "$server_args" ] && tagset+=",server_args=$server_args"
  local args=(--mode="$system" --subscribers="$subscribers" --room_size="$ROOM_SIZE" --rate="$rate"
    --pids="${pids// /,}" --json_out="$results" --tags="$tagset")
  case "$system" in
    centrifugo-ws | naive-ws) args+=(--http="$http_base" --centrifugo_secret="$centrifugo_secret"
      --centrifugo_api_key="$centrifugo_api_key") ;;
    naive | naive-thread | grpc) args+=(--grpc="$grpc_target") ;;
    *) args+=(--grpc="$grpc_target" --http="$http_base") ;;
  esac
  # A full run's overload (sends skipped, deliveries lost) is a result,
  # in its row's ok and errors; only a run with no result fails.
  [ "$mode" = full ] && args+=(--strict=false)
  echo "peers: $system, $subscribers subscribers, $rate msgs/s ($tags)" >&2
  run_loadgen peerload "peers: $system at $rate msgs/s" "$PEERLOAD_BIN" "${args[@]}" "$@"
  stop_system
}

if [ "$mode" = smoke ]; then
  S=(--warmup=0.5s --duration=1s --settle=0.2s --drain=3s --users=4 --publishers=2)
  n=0
  for system in parley-ws parley-sse grpc naive naive-thread naive-ws; do
    peers "$system" 40 50 "pair=smoke" "${S[@]}" --room_size=20
    n=$((n + 1))
  done
  smoke_end "peers smoke" "$n"
fi

# ---- the full run ----
baseline_of() { case "$1" in ws | sse) echo centrifugo-ws ;; grpc) echo naive ;; esac; }
system_of() { case "$1" in ws) echo parley-ws ;; sse) echo parley-sse ;; grpc) echo grpc ;; floor) echo naive-ws ;; esac; }

# passes: whether this run's last row for SYSTEM at RATE in SHAPE and PAIR
# met p99 <= PEERS_P99_MS with >= 95% delivered and no error.
passes() {
  local system=$1 shape=$2 rate=$3 pair=$4
  jq -s -e --arg s "$system" --argjson n "$shape" --argjson r "$rate" --arg run "$run_id" \
    --arg pair "$pair" --argjson p99 "$PEERS_P99_MS" '
    [.[] | select(.run == $run and .part == "peers" and .pair == $pair and .mode == $s
      and .subscribers == $n and .offered_msgs_per_s == $r and .sweep == "rate")] | last
    | . != null and .ok and .latency_p99_ms <= $p99 and .delivered_fraction >= 0.95' \
    "$results" >/dev/null 2>&1
}

for shape in "${shapes[@]}"; do
  for pair in $PEERS_PAIRS; do
    a=$(system_of "$pair") b=$(baseline_of "$pair")
    [ -n "$a" ] || { echo "peers: unknown pair $pair" >&2; exit 2; }
    best_a=0 best_b=0 going_a=1 going_b=1
    [ -n "$b" ] || going_b=0  # floor: one system, no pair
    for rate in $PEERS_RATES; do
      [ $going_a -eq 0 ] && [ $going_b -eq 0 ] && break
      pass_a=$going_a pass_b=$going_b
      for ((round = 1; round <= PEERS_ROUNDS; round++)); do
        for side in a b; do
          if [ $side = a ]; then system=$a going=$going_a; else system=$b going=$going_b; fi
          [ "$going" -eq 1 ] || continue
          peers "$system" "$shape" "$rate" "pair=$pair,sweep=rate,round=$round" \
            --warmup="${WARMUP}s" --duration="${DURATION}s" --settle="${SETTLE}s"
          if ! passes "$system" "$shape" "$rate" "$pair"; then
            if [ $side = a ]; then pass_a=0; else pass_b=0; fi
          fi
        done
      done
      if [ $going_a -eq 1 ]; then
        if [ $pass_a -eq 1 ]; then best_a=$rate; else going_a=0; fi
      fi
      if [ $going_b -eq 1 ]; then
        if [ $pass_b -eq 1 ]; then best_b=$rate; else going_b=0; fi
      fi
    done
    if [ -z "$b" ]; then
      echo "peers: $shape subscribers, $pair: $a passes up to $best_a msgs/s" >&2
      continue
    fi
    echo "peers: $shape subscribers, $pair: $a passes up to $best_a msgs/s, $b up to $best_b" >&2
    half=$(((best_a < best_b ? best_a : best_b) / 2))
    if [ "$half" -lt 1 ]; then
      echo "peers: $pair at $shape: no rate passed on both sides, no equal-load runs" >&2
      failures=$((failures + 1))
      continue
    fi
    for ((round = 1; round <= PEERS_ROUNDS; round++)); do
      # The WebSocket pairs add their floor at the same load, the gRPC
      # pair the naive server writing off gRPC's thread: A B F A B F.
      floor=""
      case "$pair" in ws | sse) floor=naive-ws ;; grpc) floor=naive-thread ;; esac
      for system in "$a" "$b" $floor; do
        peers "$system" "$shape" "$half" "pair=$pair,sweep=half,round=$round" \
          --warmup="${WARMUP}s" --duration="${DURATION}s" --settle="${SETTLE}s"
      done
    done
  done
done

echo "peers: results in $results (run $run_id); $failures failure(s)" >&2
[ "$failures" -eq 0 ]
