#!/usr/bin/env bash
# Starts the Parley server and the REST gateway in the foreground, the
# embedded default: no other service needed. Ctrl-C (or SIGTERM) stops both.
#   scripts/run.sh SERVER_BIN GATEWAY_BIN GRPC_PORT HTTP_PORT DATA_DIR
set -euo pipefail
server_bin=$1 gateway_bin=$2 grpc_port=$3 http_port=$4 data_dir=$5
host=${PARLEY_HOST:-127.0.0.1}
mkdir -p "$data_dir"

# The gateway on loopback is a proxy: per-address limits count the address
# it forwards (docs/security.md, "Limits").
"$server_bin" --grpc_addr="$host:$grpc_port" --data_dir="$data_dir" \
  --trusted_proxies="${PARLEY_TRUSTED_PROXIES:-127.0.0.1,::1}" &
server_pid=$!
"$gateway_bin" --grpc_server="127.0.0.1:$grpc_port" --http_addr="$host:$http_port" &
gateway_pid=$!

stop() {
  kill -TERM "$gateway_pid" "$server_pid" 2>/dev/null || true
  wait "$gateway_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}
# Stopping on purpose is a clean exit; the EXIT trap covers a crash of either.
trap 'stop; exit 0' INT TERM
trap stop EXIT

cat >&2 <<MSG
Parley is up:
  REST  http://$host:$http_port   (try: curl "http://$host:$http_port/join?id=alice")
  gRPC  $host:$grpc_port          (try: grpcurl -plaintext $host:$grpc_port list)
  data  $data_dir
Ctrl-C stops both.
MSG

# Whichever exits first takes the other down.
wait -n "$server_pid" "$gateway_pid"
