#!/usr/bin/env bash
# The benchmark suite (issue 5). Starts the real server (and, for the REST
# parts, the gateway) on loopback ports with a fresh data directory per part,
# runs parley_loadgen, wrk and ndjson-streams against them, stops them, and
# appends every result as one JSON line to a results file.
#
#   scripts/bench/run.sh smoke           tiny sizes, a few seconds; fails if
#                                        the loadgen reports any error
#   scripts/bench/run.sh full [PART...]  the suite (make bench); PARTs:
#                                        fanout fanout1 streams durable floor
#                                        rest longpoll slow cost (default:
#                                        all)
#
# Binaries: SERVER_BIN, GATEWAY_BIN, LOADGEN_BIN (defaults: the release
# build). GRPC_LIB_DIR: a directory of libgrpc/libgrpc++ to load instead of
# Debian's (the same release built with -DNDEBUG by
# scripts/bench/grpc-ndebug.sh; `make bench-ndebug`), for the server and
# the load generator; results are tagged grpc=ndebug (else grpc=debian).
# Output: BENCH_DIR (build/bench): results.jsonl (full runs), smoke.jsonl,
# logs/. Sizes can be changed through the variables below; among them
# REST_RATE_FRACTIONS (default "0.1 0.25 0.5"): the `rest` part runs each call
# closed loop (wrk against the loadgen at REST_CONNS), then both sides again
# open loop at the same offered rate, each of these fractions of the REST
# side's closed-loop calls/s (rounded) in turn, so the added p99 is what the REST path adds at equal load, not
# queueing at two different throughputs (scripts/bench/rest-rate with vegeta's
# library against parley_loadgen --call_rate; rows tagged mode=rate), and
# REST_RATE_MAX_INFLIGHT (default 1000): the calls either side of that pair
# may have pending; one due past it is skipped and counted as an error.
# DURABLE_RATES (default "2000 5000 10000"): the `durable` part also sends at
# these fixed rates (open loop) for each synchronous setting, and runs
# grpc.health.v1.Health/Check at the same rates, so the report shows what the
# send path adds to p99 at equal load; then the same sends with the server on
# PostgreSQL (a server of its own, scripts/test-postgres.sh). COST_RATES, COST_WINDOW: the `cost`
# part (perf on the server during the fan-out; needs perf).
set -euo pipefail
# shellcheck source=scripts/bench/lib.sh
. "$(dirname "$0")/lib.sh"

mode=${1:-smoke}
shift || true
GATEWAY_BIN=${GATEWAY_BIN:-$root/build/bin/parley-gateway}
GRPC_LIB_DIR=${GRPC_LIB_DIR:-}
grpc_build=debian
if [ -n "$GRPC_LIB_DIR" ]; then
  [ -e "$GRPC_LIB_DIR/libgrpc.so.29" ] || { echo "bench: no libgrpc.so.29 in $GRPC_LIB_DIR" >&2; exit 2; }
  export LD_LIBRARY_PATH=$GRPC_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  grpc_build=ndebug
fi
export PATH=/usr/local/go/bin:$PATH GOTOOLCHAIN=${GOTOOLCHAIN:-auto}

# Sizes of the full suite.
FANOUT_SUBSCRIBERS=${FANOUT_SUBSCRIBERS:-10000}
FANOUT_RATES=${FANOUT_RATES:-"100 200 300 400 700 1000 1500 2000 3000 4000 6000"}  # msgs/s, rooms of 100
FANOUT1_RATES=${FANOUT1_RATES:-"1 2 4 8 16 32 64"}  # msgs/s, one room of 10,000
STREAM_COUNTS=${STREAM_COUNTS:-"1000 10000 30000 60000 100000"}
STREAMS_PER_CONN=${STREAMS_PER_CONN:-1000}
CHURN_SECONDS=${CHURN_SECONDS:-600}  # the issue's churn: ten minutes of it
CHURN_STREAMS=${CHURN_STREAMS:-}  # the stream count that gets the churn (default: the largest)
CHURN_RATE=${CHURN_RATE:-200}  # reopens/s: 120,000 in ten minutes, at a rate this machine sustains
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
LONGPOLL_CLIENTS=${LONGPOLL_CLIENTS:-10000}
LONGPOLL_RATE=${LONGPOLL_RATE:-2}  # msgs/s, each to every client
SLOW_RATE=${SLOW_RATE:-100}  # msgs/s to a room of 100
REST_CONNS=${REST_CONNS:-64}
REST_STREAMS=${REST_STREAMS:-1000}
REST_RATE_FRACTIONS=${REST_RATE_FRACTIONS:-"0.1 0.25 0.5"}  # of REST's closed-loop calls/s
REST_RATE_MAX_INFLIGHT=${REST_RATE_MAX_INFLIGHT:-1000}
DURABLE_RATES=${DURABLE_RATES:-"2000 5000 10000"}  # open-loop sends/s: what the send path adds to p99
COST_RATES=${COST_RATES:-"300 1000"}  # msgs/s, rooms of 100: where a delivery's CPU goes
COST_WINDOW=${COST_WINDOW:-4}  # seconds of perf stat, then as many of perf record

bench_results "$mode" "[PART...]"
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(fanout fanout1 streams durable floor rest longpoll slow cost)

for b in "$SERVER_BIN" "$LOADGEN_BIN"; do
  [ -x "$b" ] || { echo "bench: missing $b (make loadgen)" >&2; exit 2; }
done
bench_start

server_pid="" gateway_pid="" data_dir="" grpc_port="" http_port="" server_args=""

start_server() {  # extra server flags...
  data_dir=$(mktemp -d "$BENCH_DIR/data.XXXXXX")
  server_args="--password_hash_ops=1 --password_hash_mem_kib=8 $unlimited $*"
  # shellcheck disable=SC2086
  spawn_server "$data_dir" "$logs/server.log" $server_args
  server_pid=$spawned
  grpc_port=$(port_of "$data_dir/grpc.port")
  echo "bench: server pid $server_pid on 127.0.0.1:$grpc_port ($server_args)" >&2
}

start_gateway() {
  [ -x "$GATEWAY_BIN" ] || { echo "bench: missing $GATEWAY_BIN (make gateway)" >&2; exit 2; }
  local extra=()
  # Access logs at info level would cost the gateway more than the calls.
  if "$GATEWAY_BIN" -h 2>&1 | grep -q -- -log_level; then extra+=(--log_level=warn); fi
  if "$GATEWAY_BIN" -h 2>&1 | grep -q -- -max_conns_per_address; then extra+=(--max_conns_per_address=0); fi
  spawn "$logs/gateway.log" "$GATEWAY_BIN" --grpc_server="127.0.0.1:$grpc_port" --http_addr=127.0.0.1:0 \
    --port_file="$data_dir/http.port" "${extra[@]}"
  gateway_pid=$spawned
  http_port=$(port_of "$data_dir/http.port")
  echo "bench: gateway pid $gateway_pid on 127.0.0.1:$http_port" >&2
}

stop_all() {
  local p
  for p in $gateway_pid $server_pid; do kill -TERM "$p" 2>/dev/null || true; done
  for p in $gateway_pid $server_pid; do wait "$p" 2>/dev/null || true; done
  gateway_pid="" server_pid=""
  [ -n "$data_dir" ] && rm -rf "$data_dir"
  data_dir=""
}
trap 'stop_all; stop_postgres' EXIT

# lg PART [loadgen flags...]: one loadgen run, its table on stdout, its JSON
# line appended to $results (scripts/bench/lib.sh).
lg() {
  local part=$1
  shift
  run_loadgen loadgen "bench: $part" "$LOADGEN_BIN" --target="127.0.0.1:$grpc_port" \
    --server_pid="$server_pid" --commit="$commit" --json_out="$results" \
    --tags="suite=$mode,run=$run_id,part=$part,grpc=$grpc_build,server_args=$server_args" "$@"
}

append_json() {  # json object; adds the run's tags
  jq -c --arg commit "$commit" --arg run "$run_id" --arg mode "$mode" \
    --arg args "$server_args" --arg grpc "$grpc_build" \
    '. + {commit: $commit, suite: $mode, run: $run, grpc: $grpc, server_args: $args, time: (now | todate)}' \
    <<<"$1" >>"$results"
}

if [ "$mode" = smoke ]; then
  start_server
  S=(--warmup=0.5 --duration=1 --settle=0.2 --quiet=0.3)
  lg smoke-fanout --scenario=fanout --subscribers=40 --rooms=4 --users=4 --publishers=2 --rate=50 "${S[@]}"
  lg smoke-streams --scenario=streams --streams=200 --room_size=20 --users=4 --channels=2 \
    --churn_seconds=0.5 --churn_rate=200 "${S[@]}"
  lg smoke-durable --scenario=durable --inflight=8 --rooms=2 --publishers=2 "${S[@]}"
  stop_all
  start_postgres
  start_server --store=postgres --postgres_dsn="$pg_dsn"
  lg smoke-durable-postgres --scenario=durable --inflight=8 --rooms=2 --publishers=2 "${S[@]}"
  stop_all
  stop_postgres
  start_server
  lg smoke-list --scenario=unary --call=list --inflight=8 --rooms=2 --publishers=2 "${S[@]}"
  lg smoke-rate --scenario=unary --call=post --call_rate=200 --rooms=2 --publishers=2 "${S[@]}"
  lg smoke-longpoll --scenario=longpoll --clients=20 --rate=20 --poll_timeout=5 "${S[@]}"
  lg smoke-slow --scenario=slow --subscribers=10 --users=4 --rate=50 "${S[@]}"
  stop_all
  smoke_end "bench-smoke" 8
fi

# ---- the full suite ----
command -v jq >/dev/null || { echo "bench: needs jq (scripts/deps.sh bench)" >&2; exit 2; }
mem_kb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)
jq -n -c --arg cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')" \
  --arg kernel "$(uname -r)" --arg os "$(. /etc/os-release && echo "$PRETTY_NAME")" \
  --argjson nproc "$(nproc)" --argjson mem_kb "$mem_kb" --arg run "$run_id" \
  --arg commit "$commit" --argjson nofile "$(ulimit -Hn)" \
  '{scenario: "machine", run: $run, commit: $commit, nproc: $nproc, cpu: $cpu,
    mem_gib: ($mem_kb / 1048576 * 10 | round / 10), kernel: $kernel, os: $os,
    nofile_hard: $nofile, time: (now | todate)}' >>"$results"

if want fanout; then
  # Rooms of 100, rising open-loop rates until the deliveries fall short.
  start_server
  for rate in $FANOUT_RATES; do
    lg fanout --scenario=fanout --subscribers="$FANOUT_SUBSCRIBERS" --rooms=$((FANOUT_SUBSCRIBERS / 100)) \
      --users=100 --publishers=20 --channels=16 --rate="$rate" --warmup="$WARMUP" --duration="$DURATION"
    r=$(last_result fanout)
    if [ -n "$r" ] && jq -e '.deliveries_per_s < 0.9 * .offered_deliveries_per_s or .latency_p99_ms > 1000' <<<"$r" >/dev/null; then
      echo "bench: fanout saturated at $rate msgs/s" >&2
      break
    fi
  done
  stop_all
fi

if want fanout1; then
  # One room of FANOUT_SUBSCRIBERS.
  start_server
  for rate in $FANOUT1_RATES; do
    lg fanout1 --scenario=fanout --subscribers="$FANOUT_SUBSCRIBERS" --rooms=1 \
      --users=100 --publishers=4 --channels=16 --rate="$rate" --warmup="$WARMUP" --duration="$DURATION" \
      --setup_timeout=900
    r=$(last_result fanout1)
    if [ -n "$r" ] && jq -e '.deliveries_per_s < 0.9 * .offered_deliveries_per_s or .latency_p99_ms > 1000' <<<"$r" >/dev/null; then
      echo "bench: one-room fanout saturated at $rate msgs/s" >&2
      break
    fi
  done
  stop_all
fi

if want streams; then
  largest=0
  for n in $STREAM_COUNTS; do [ "$n" -gt "$largest" ] && largest=$n; done
  [ -n "$CHURN_STREAMS" ] && largest=$CHURN_STREAMS
  for n in $STREAM_COUNTS; do
    # RSS is read 5 s after each phase: trim freed memory at least that
    # often, so the figures show what is held rather than when glibc was
    # last asked to give memory back (the default interval is 30 s).
    start_server --memory_trim_interval=5s
    conns=$(((n + STREAMS_PER_CONN - 1) / STREAMS_PER_CONN))
    churn=()
    [ "$n" -eq "$largest" ] && churn=(--churn_seconds="$CHURN_SECONDS" --churn_rate="$CHURN_RATE")
    lg streams --scenario=streams --streams="$n" --room_size=100 --users=100 \
      --channels="$conns" --settle=5 --setup_timeout=900 "${churn[@]}"
    stop_all
  done
fi

if want durable; then
  # Closed loop (the most sends/s), then open loop at DURABLE_RATES, and
  # grpc.health.v1.Health/Check at the same rates on the same connections:
  # what the send path (token, group commit, fan-out) adds to p99 over a
  # call that does nothing, at equal load (rows tagged mode=rate).
  rate_flags=(--max_inflight=1000 --rooms=10 --publishers=50 --channels=8 --warmup="$WARMUP" --duration="$DURATION")
  # durable_sends SYNC: the closed loop and the fixed rates against the
  # server running, rows tagged sync=SYNC.
  durable_sends() {
    lg durable --scenario=durable --inflight=256 --rooms=10 --publishers=50 --channels=8 \
      --warmup="$WARMUP" --duration="$DURATION" --tags="suite=full,run=$run_id,part=durable,sync=$1,grpc=$grpc_build,server_args=$server_args"
    for rate in $DURABLE_RATES; do
      lg durable --scenario=unary --call=post --call_rate="$rate" "${rate_flags[@]}" \
        --tags="suite=full,run=$run_id,part=durable,mode=rate,sync=$1,grpc=$grpc_build,server_args=$server_args"
    done
  }
  for sync in normal full; do
    start_server --sqlite_synchronous=$sync
    durable_sends $sync
    stop_all
  done
  # The same on PostgreSQL (synchronous_commit=on), a server of its own on
  # loopback, in the same run (rows tagged sync=postgres).
  start_postgres
  start_server --store=postgres --postgres_dsn="$pg_dsn"
  durable_sends postgres
  stop_all
  stop_postgres
  start_server
  for rate in $DURABLE_RATES; do
    lg durable --scenario=unary --call=health --call_rate="$rate" "${rate_flags[@]}" \
      --tags="suite=full,run=$run_id,part=durable,mode=rate,sync=none,grpc=$grpc_build,server_args=$server_args"
  done
  stop_all
fi

# The floor under every unary figure: grpc.health.v1.Health/Check (no auth,
# no store, no Parley code) with the durable part's calls in flight.
if want floor; then
  start_server
  lg floor --scenario=unary --call=health --inflight=256 --channels=8 \
    --warmup="$WARMUP" --duration="$DURATION"
  stop_all
fi

if want rest; then
  command -v wrk >/dev/null || { echo "bench: needs wrk (scripts/deps.sh bench)" >&2; exit 2; }
  start_server
  start_gateway
  H=http://127.0.0.1:$http_port
  curl -fsS -XPOST "$H/v1/users" -d '{"username":"benchrest","password":"bench-password"}' >/dev/null
  token=$(curl -fsS -XPOST "$H/v1/auth/sign-in" -d '{"username":"benchrest","password":"bench-password"}' | jq -r .token)
  curl -fsS -XPOST "$H/v1/rooms" -H "Authorization: Bearer $token" -d '{"name":"benchrest"}' >/dev/null
  # The REST side at a fixed rate, built before any load so the compiler
  # takes no CPU from a measurement.
  (cd "$root/scripts/bench/rest-rate" && go build -o "$BENCH_DIR/rest-rate" .)
  for call in post list; do
    if [ $call = post ]; then
      method=POST path=/v1/rooms/benchrest/messages
    else
      method=GET path="/v1/rooms/benchrest/messages?n=10"
    fi
    wrk_cmd=(wrk -t2 -c"$REST_CONNS" -d"${DURATION}s" --latency -s "$root/scripts/bench/wrk.lua" "$H$path")
    echo "bench: WRK_METHOD=$method ${wrk_cmd[*]}" >&2
    out=$(PARLEY_TOKEN=$token WRK_METHOD=$method "${wrk_cmd[@]}" 2>&1) || failures=$((failures + 1))
    echo "$out" >>"$logs/wrk.log"
    echo "$out" | grep -v WRKJSON
    json=$(echo "$out" | sed -n 's/^WRKJSON //p')
    if [ -n "$json" ]; then
      append_json "$(jq -c --arg cmd "PARLEY_TOKEN=... WRK_METHOD=$method ${wrk_cmd[*]}" --arg call "$call" \
        --argjson conns "$REST_CONNS" \
        '. + {scenario: "rest", part: "rest", transport: "rest", call: $call, inflight: $conns, command: $cmd}' <<<"$json")"
    fi
    lg rest --scenario=unary --call=$call --inflight="$REST_CONNS" --rooms=1 --publishers=1 \
      --channels=2 --list_n=10 --warmup=1 --duration="$DURATION" \
      --tags="suite=full,run=$run_id,part=rest,transport=grpc,grpc=$grpc_build,server_args=$server_args"

    # The same call on both sides at the same offered rate, open loop, each
    # call's latency counted from its scheduled send time: REST_RATE_FRACTIONS
    # of what REST just sustained closed loop. At most REST_RATE_MAX_INFLIGHT
    # calls pending on either side; a call due past that is skipped and
    # counted as an error. Not REST_CONNS: a stall of 64 calls' worth (17 ms
    # at 3,800/s) is common on two shared cores, and a skipped call's
    # latency would be missing from p99 instead of in it.
    for fraction in $REST_RATE_FRACTIONS; do
    rate=0
    [ -n "$json" ] && rate=$(jq -r --argjson f "$fraction" '(.calls_per_s // 0) * $f | round' <<<"$json")
    if [ "$rate" -lt 1 ]; then
      echo "bench: no REST closed-loop figure for $call: no fixed-rate pair" >&2
      failures=$((failures + 1))
      continue
    fi
    rr_args=(--url="$H$path" --method="$method" --rate="$rate" --max_inflight="$REST_RATE_MAX_INFLIGHT"
      --warmup=1s --duration="${DURATION}s")
    rr_cmd="$BENCH_DIR/rest-rate --token=... ${rr_args[*]}"
    echo "bench: $rr_cmd" >&2
    out=$("$BENCH_DIR/rest-rate" --token="$token" "${rr_args[@]}" 2>&1) || failures=$((failures + 1))
    echo "$out" >>"$logs/rest-rate.log"
    echo "$out" | grep -v '^{' || true
    rjson=$(echo "$out" | grep '^{' | tail -1)
    if [ -n "$rjson" ]; then
      append_json "$(jq -c --arg cmd "$rr_cmd" --arg call "$call" \
        '. + {scenario: "rest", part: "rest", transport: "rest", mode: "rate", call: $call, command: $cmd}' <<<"$rjson")"
    fi
    lg rest --scenario=unary --call=$call --call_rate="$rate" --max_inflight="$REST_RATE_MAX_INFLIGHT" --rooms=1 \
      --publishers=1 --channels=2 --list_n=10 --warmup=1 --duration="$DURATION" \
      --tags="suite=full,run=$run_id,part=rest,transport=grpc,mode=rate,grpc=$grpc_build,server_args=$server_args"
    done
  done
  # >= 1,000 REST NDJSON streams at once through the gateway.
  (cd "$root/scripts/bench/ndjson-streams" && go build -o "$BENCH_DIR/ndjson-streams" .)
  nd_cmd=("$BENCH_DIR/ndjson-streams" --url="$H" --room=benchrest --token=... --streams="$REST_STREAMS")
  echo "bench: ${nd_cmd[*]}" >&2
  out=$("$BENCH_DIR/ndjson-streams" --url="$H" --room=benchrest --token="$token" --streams="$REST_STREAMS" 2>&1) ||
    failures=$((failures + 1))
  echo "$out"
  json=$(echo "$out" | grep '^{' | tail -1)
  [ -n "$json" ] && append_json "$(jq -c --arg cmd "${nd_cmd[*]}" '. + {part: "rest_streams", command: $cmd}' <<<"$json")"
  stop_all
fi

if want longpoll; then
  start_server
  lg longpoll --scenario=longpoll --clients="$LONGPOLL_CLIENTS" --rate="$LONGPOLL_RATE" --channels=16 \
    --warmup="$WARMUP" --duration="$DURATION" --setup_timeout=900
  stop_all
fi

if want slow; then
  start_server
  lg slow --scenario=slow --subscribers=100 --users=20 --rate="$SLOW_RATE" --channels=4 \
    --warmup="$WARMUP" --duration=15
  stop_all
fi

if want cost; then
  # Where a delivery's server CPU goes, the fan-out's figures broken down:
  # the server's system calls and context switches per delivery (perf stat)
  # and its CPU samples by library (perf record), both taken inside the
  # loadgen's measured window, one after the other (recording slows the
  # server, so it must not overlap the counts).
  if ! command -v perf >/dev/null; then
    echo "bench: the cost part needs perf (scripts/deps.sh bench)" >&2
    failures=$((failures + 1))
  else
    for rate in $COST_RATES; do
      rm -f "$logs/cost.stat" "$logs/cost.perf"  # no figures from the last rate
      start_server
      lg cost --scenario=fanout --subscribers="$FANOUT_SUBSCRIBERS" \
        --rooms=$((FANOUT_SUBSCRIBERS / 100)) --users=100 --publishers=20 --channels=16 \
        --rate="$rate" --warmup="$WARMUP" --duration=$((2 * COST_WINDOW + 2)) &
      lg_pid=$!
      for ((i = 0; i < 6000; i++)); do
        grep -q 'load at' "$logs/loadgen.last" 2>/dev/null && break
        kill -0 "$lg_pid" 2>/dev/null || break
        sleep 0.1
      done
      sleep "$WARMUP"
      perf stat -x, -o "$logs/cost.stat" -p "$server_pid" \
        -e task-clock,context-switches,syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvmsg,syscalls:sys_enter_futex,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_write,syscalls:sys_enter_read \
        -- sleep "$COST_WINDOW" >/dev/null 2>&1 || true
      perf record -q -o "$logs/cost.perf" -p "$server_pid" -- sleep "$COST_WINDOW" >/dev/null 2>&1 || true
      wait "$lg_pid" || true
      # lg ran in the background (its failure count stays in that subshell):
      # this rate's own loadgen line, or nothing.
      lgline=$(last_result cost | jq -c --argjson r "$rate" \
        'select(.scenario == "fanout" and .offered_msgs_per_s == $r)' 2>/dev/null || true)
      if [ -n "$lgline" ] && [ -s "$logs/cost.stat" ]; then
        perf report -i "$logs/cost.perf" --stdio --sort dso 2>/dev/null >"$logs/cost.dso" || true
        append_json "$(python3 "$root/scripts/bench/report.py" --cost "$logs/cost.stat" \
          "$logs/cost.dso" "$COST_WINDOW" "$lgline")"
      else
        echo "bench: FAILED: cost at $rate msgs/s (no loadgen result or no perf counts)" >&2
        failures=$((failures + 1))
      fi
      stop_all
    done
  fi
fi

echo "bench: results in $results (run $run_id); $failures failure(s)" >&2
[ $failures -eq 0 ]
