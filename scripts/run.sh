#!/usr/bin/env bash
# Starts the Parley server and the REST gateway in the foreground, the
# embedded default: no other service needed. HAProxy in front publishes
# both (scripts/haproxy-front.sh; docs/security.md, "The proxy in front"):
# the server and the gateway listen on free loopback ports behind it. Ctrl-C
# (or SIGTERM) stops all three.
#   scripts/run.sh SERVER_BIN GATEWAY_BIN GRPC_PORT HTTP_PORT DATA_DIR
set -euo pipefail
server_bin=$1 gateway_bin=$2 grpc_port=$3 http_port=$4 data_dir=$5
host=${PARLEY_HOST:-127.0.0.1}
root=$(cd "$(dirname "$0")/.." && pwd)
haproxy_bin=$(command -v haproxy) || {
  echo "run: haproxy is not installed (scripts/deps.sh test)" >&2
  exit 2
}
mkdir -p "$data_dir"
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/parley-run.XXXXXX")
pids=()
stop() {
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null || true
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$run_dir"
}
# Stopping on purpose is a clean exit; the EXIT trap covers a crash of any.
trap 'stop; exit 0' INT TERM
trap stop EXIT

wait_port_file() {  # file pid
  local i
  for ((i = 0; i < 600; i++)); do
    [ -s "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || { echo "run: a process exited while starting" >&2; exit 1; }
    sleep 0.05
  done
  echo "run: $1 did not appear" >&2
  exit 1
}

# The gateways fan streams out (docs/fanout.md): servers and gateways share
# a secret, made for this run unless PARLEY_EDGE_SECRET is given; both read
# it from the environment, not the command line.
export PARLEY_EDGE_SECRET=${PARLEY_EDGE_SECRET:-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')}

# The gateway and HAProxy on loopback are proxies: per-address limits count
# the address they forward (docs/security.md, "Limits").
"$server_bin" --grpc_addr=127.0.0.1:0 --port_file="$run_dir/grpc.port" --data_dir="$data_dir" \
  --trusted_proxies="${PARLEY_TRUSTED_PROXIES:-127.0.0.1,::1}" &
pids+=($!)
wait_port_file "$run_dir/grpc.port" $!
inner_grpc=127.0.0.1:$(cat "$run_dir/grpc.port")
"$gateway_bin" --grpc_server="$inner_grpc" --http_addr=127.0.0.1:0 --port_file="$run_dir/http.port" \
  --trusted_proxies=127.0.0.1,::1 &
pids+=($!)
wait_port_file "$run_dir/http.port" $!
inner_http=127.0.0.1:$(cat "$run_dir/http.port")

"$root/scripts/haproxy-front.sh" "$host:$http_port" "$host:$grpc_port" "$inner_http" "$inner_grpc" \
  > "$run_dir/haproxy.cfg"
"$haproxy_bin" -db -f "$run_dir/haproxy.cfg" &
pids+=($!)

cat >&2 <<MSG
Parley is up, behind HAProxy:
  REST  http://$host:$http_port   (try: curl "http://$host:$http_port/join?id=alice")
  gRPC  $host:$grpc_port          (try: grpcurl -plaintext $host:$grpc_port list)
  data  $data_dir
  (server $inner_grpc, gateway $inner_http, loopback only)
Ctrl-C stops all three.
MSG

# Whichever exits first takes the others down.
wait -n "${pids[@]}"
