#!/usr/bin/env bash
# Prints the HAProxy configuration of the defence in front of one Parley
# server and its gateway (docs/security.md, "The proxy in front"): what
# `make run` and the compose demo publish, so that no published port is
# gRPC 1.51's own HTTP/2 stack.
#
#   scripts/haproxy-front.sh REST_BIND GRPC_BIND GATEWAY SERVER
#
# REST_BIND and GRPC_BIND are the host:port HAProxy listens on; GATEWAY and
# SERVER the host:port of the gateway and the server behind it.
# The limits below are environment variables (defaults in brackets):
#   PARLEY_FRONT_MAXCONN           connections in all [4096]; each takes two
#                                  file descriptors (client and Parley side)
#   PARLEY_FRONT_CONNS_PER_ADDRESS connections open per client address [256]
#   PARLEY_FRONT_REQUESTS_PER_10S  requests (gRPC calls and HTTP requests,
#                                  HTTP/2 streams reset at once included)
#                                  per client address per 10 s [20000]
#   PARLEY_FRONT_STREAMS_PER_CONN  concurrent HTTP/2 streams per client
#                                  connection [100]
#   PARLEY_FRONT_TRUSTED           comma-separated addresses or CIDRs of
#                                  proxies in front of this one (a TLS
#                                  terminator) whose Forwarded and
#                                  X-Forwarded-Host/-Proto are passed on; from
#                                  any other client they are removed [none]
# HAPROXY_USER: when set, HAProxy drops to this user and its group (as root).
# PARLEY_FRONT_RESOLVERS=1: GATEWAY and SERVER are names looked up again
# while running, and may not resolve yet at start (compose; the configs in
# docker/ are written so).
set -euo pipefail
rest_bind=${1:?usage: $0 REST_BIND GRPC_BIND GATEWAY SERVER}
grpc_bind=${2:?} gateway=${3:?} server=${4:?}
maxconn=${PARLEY_FRONT_MAXCONN:-4096}
conns=${PARLEY_FRONT_CONNS_PER_ADDRESS:-256}
requests=${PARLEY_FRONT_REQUESTS_PER_10S:-20000}
streams=${PARLEY_FRONT_STREAMS_PER_CONN:-100}
trusted=${PARLEY_FRONT_TRUSTED:-}

cat <<CFG
# Written by scripts/haproxy-front.sh; changes here are lost.
global
  log stdout format raw local0 notice
  maxconn $maxconn
  # Streams a client connection may have open at once. A stream the client
  # resets still counts until HAProxy has finished it, which is what keeps
  # an HTTP/2 rapid reset (CVE-2023-44487) from piling up work behind.
  tune.h2.max-concurrent-streams $streams
  # Room for a request's headers: 32 KB, so the gateway, not HAProxy,
  # answers headers it will not take (431, in its JSON); past this HAProxy
  # answers a plain 400 itself.
  tune.bufsize 32768
CFG
if [ -n "${HAPROXY_USER:-}" ]; then
  printf '  user %s\n  group %s\n' "$HAPROXY_USER" "$HAPROXY_USER"
fi
default_server=""
if [ -n "${PARLEY_FRONT_RESOLVERS:-}" ]; then
  cat <<CFG
  # SIGUSR1 (the image's stop signal) waits for open streams this long.
  hard-stop-after 5s
# A container that comes back after a restart may have a new address.
resolvers names
  parse-resolv-conf
  hold valid 5s
CFG
  default_server="  default-server init-addr last,libc,none resolvers names"
fi
cat <<CFG
defaults
  mode http
  log global
  option dontlognull
  # The client's address, for Parley's per-address limits (the gateway and
  # the server trust this proxy).
  option forwardfor
  timeout connect 5s
  # A request's headers must arrive within this (slow-header attacks).
  timeout http-request 10s
  # Streams (gRPC, SSE, long polls, WebSockets) stay open for long.
  timeout client 1h
  timeout server 1h
  timeout tunnel 1h
$default_server
  # Errors HAProxy answers itself, in the gateway's JSON error shape.
$(for code in 400:BAD_REQUEST:INVALID_ARGUMENT 408:REQUEST_TIMEOUT:DEADLINE_EXCEEDED 502:UPSTREAM_UNAVAILABLE:UNAVAILABLE 503:UPSTREAM_UNAVAILABLE:UNAVAILABLE 504:UPSTREAM_TIMEOUT:DEADLINE_EXCEEDED; do
  IFS=: read -r status reason grpc <<< "$code"
  printf "  http-error status %s content-type application/json string '{\"error\":{\"code\":\"%s\",\"status\":%s,\"grpc_code\":\"%s\",\"message\":\"refused by the proxy in front\"}}'\n" "$status" "$reason" "$status" "$grpc"
done)
  # Per client address: connections open now, and requests per 10 s.
  # Addresses past either are refused here, before Parley sees them.
backend per_address
  stick-table type ipv6 size 100k expire 30s store conn_cur,http_req_rate(10s)
frontend rest
  bind $rest_bind
  # A request HAProxy would refuse for its characters (a NUL in a header)
  # goes on to the gateway, whose stricter parser refuses it in JSON.
  # HAProxy still frames every request itself (HTX), so nothing can ride
  # past it inside another.
  option accept-invalid-http-request
  tcp-request connection track-sc0 src table per_address
  tcp-request connection reject if { sc_conn_cur(0) gt $conns }
  # A refusal in the gateway's JSON error shape.
  http-request return status 429 content-type application/json hdr Retry-After 10 string '{"error":{"code":"TOO_MANY_REQUESTS","status":429,"grpc_code":"RESOURCE_EXHAUSTED","message":"too many requests from your address; try again later","retry_after_seconds":10}}' if { sc_http_req_rate(0) gt $requests }
$("$(dirname "$0")/haproxy-forwarded.sh" "$trusted")
  default_backend gateway
backend gateway
  server gateway $gateway
frontend grpc
  bind $grpc_bind proto h2
  tcp-request connection track-sc0 src table per_address
  tcp-request connection reject if { sc_conn_cur(0) gt $conns }
  # HTTP 429, which gRPC clients read as UNAVAILABLE (try again later).
  http-request deny deny_status 429 if { sc_http_req_rate(0) gt $requests }
  default_backend server
backend server
  server server $server proto h2
CFG
