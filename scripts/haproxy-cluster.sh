#!/usr/bin/env bash
# Prints the HAProxy configuration of a Parley cluster (docs/cluster.md):
# REST per request over the gateways, checked with GET /healthz; gRPC over
# HTTP/2 per request (a stream is one request) over the servers, checked
# with grpc.health.v1.Health/Check. scripts/run-cluster.sh and the cluster
# tests (tests/integration/ha_cluster_test.go) write theirs with it.
#
#   scripts/haproxy-cluster.sh REST_BIND GRPC_BIND GATEWAYS SERVERS
#
# REST_BIND and GRPC_BIND are the host:port HAProxy listens on; GATEWAYS and
# SERVERS are comma-separated host:port lists.
# HAPROXY_CHECK_INTER: the interval of the health checks (2s); a backend is
# out after two failed checks, back after two passed ones.
# HAPROXY_USER: when set, HAProxy drops to this user and its group (as root).
# PARLEY_FRONT_TRUSTED: as in scripts/haproxy-front.sh.
set -euo pipefail

rest_bind=${1:?usage: $0 REST_BIND GRPC_BIND GATEWAYS SERVERS}
grpc_bind=${2:?} gateways=${3:?} servers=${4:?}
inter=${HAPROXY_CHECK_INTER:-2s}
IFS=, read -r -a gateway_addrs <<< "$gateways"
IFS=, read -r -a server_addrs <<< "$servers"

# The servers' check is grpc.health.v1.Health/Check over a raw HTTP/2
# connection, passing only on SERVING. HAProxy's HTTP checks cannot send
# the NUL bytes of a gRPC message, so the frames are written out here.
hex() { printf %s "$1" | od -An -v -tx1 | tr -d ' \n'; }
h2_frame() {  # h2_frame TYPE FLAGS PAYLOAD_HEX, on stream 1
  printf '%06x%s%s00000001%s' $((${#3} / 2)) "$1" "$2" "$3"
}
health_path=/grpc.health.v1.Health/Check
# HPACK, no Huffman: :method POST (static 3), :scheme http (6), then
# literals without indexing: :path (name 4), :authority (1), content-type
# (31), te.
health_headers=8386
health_headers+=$(printf '04%02x' ${#health_path})$(hex "$health_path")
health_headers+=0109$(hex localhost)
health_headers+=0f1010$(hex application/grpc)
health_headers+=0002$(hex te)08$(hex trailers)
health_check=$(hex 'PRI * HTTP/2.0')0d0a0d0a$(hex SM)0d0a0d0a  # the connection preface
health_check+=000000040000000000                               # SETTINGS, empty
health_check+=$(h2_frame 01 04 "$health_headers")                # HEADERS, END_HEADERS
health_check+=$(h2_frame 00 01 0000000000)                       # DATA, END_STREAM: an empty request
health_serving=00000000020801  # the answer's message: status SERVING

cat <<CFG
# Written by scripts/haproxy-cluster.sh; changes here are lost.
global
  log stdout format raw local0 info
  # The proxy in front's guards (scripts/haproxy-front.sh, docs/security.md):
  # streams per client connection, a reset one counted until finished.
  tune.h2.max-concurrent-streams 100
  tune.bufsize 32768
CFG
if [ -n "${HAPROXY_USER:-}" ]; then
  printf '  user %s\n  group %s\n' "$HAPROXY_USER" "$HAPROXY_USER"
fi
cat <<CFG

defaults
  mode http
  log global
  option httplog
  option dontlognull
  # The client's address, for the per-address limits behind (the gateways
  # and servers trust this proxy: docs/security.md, "Limits").
  option forwardfor
  timeout connect 5s
  timeout check 3s
  timeout http-request 30s
  # Streams (gRPC, SSE, long polls, WebSockets) stay open for long.
  timeout client 1h
  timeout server 1h
  timeout tunnel 1h

# Per client address: connections open now, and requests per 10 s.
backend per_address
  stick-table type ipv6 size 100k expire 30s store conn_cur,http_req_rate(10s)
frontend rest
  bind $rest_bind
  tcp-request connection track-sc0 src table per_address
  tcp-request connection reject if { sc_conn_cur(0) gt 256 }
  http-request deny deny_status 429 if { sc_http_req_rate(0) gt 20000 }
$("$(dirname "$0")/haproxy-forwarded.sh" "${PARLEY_FRONT_TRUSTED:-}")
  default_backend gateways

backend gateways
  balance roundrobin
  option httpchk
  http-check send meth GET uri /healthz
  http-check expect status 200
CFG
for i in "${!gateway_addrs[@]}"; do
  printf '  server gateway-%d %s check inter %s fall 2 rise 2\n' $((i + 1)) "${gateway_addrs[$i]}" "$inter"
done
cat <<CFG

frontend grpc
  bind $grpc_bind proto h2
  tcp-request connection track-sc0 src table per_address
  tcp-request connection reject if { sc_conn_cur(0) gt 256 }
  http-request deny deny_status 429 if { sc_http_req_rate(0) gt 20000 }
  default_backend servers

backend servers
  balance roundrobin
  option tcp-check
  tcp-check connect
  tcp-check send-binary $health_check
  tcp-check expect binary $health_serving
CFG
for i in "${!server_addrs[@]}"; do
  printf '  server server-%d %s proto h2 check inter %s fall 2 rise 2\n' $((i + 1)) "${server_addrs[$i]}" "$inter"
done
