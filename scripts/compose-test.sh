#!/usr/bin/env bash
# make test-compose: the docker-compose demo, built and run for real.
#
# There is no Docker engine on these machines; podman builds the same
# Dockerfiles and podman-compose runs the same docker-compose.yml. Base images
# come from no registry: debian:bookworm-slim is made with debootstrap and
# golang:<v>-bookworm from it plus this machine's Go, each tagged with the
# public name the Dockerfiles use, so the files themselves stay exactly what a
# Docker host with a registry builds.
#
# The test builds both images, starts the project on free loopback ports,
# checks the containers (non-root, healthy), walks seed 000 over REST, calls
# the server with grpcurl, signs up and posts, restarts the stack and checks
# that the data and the token key survived in the named volume, checks that
# the gateways fan out (an SSE client of a room is served from the gateway's
# one shared stream of the room, with the edge secret the servers created in
# the edge-secret volume), and stops in time on SIGTERM. It removes every container, volume, network and image it
# built; the local base images, podman's layer cache and a ccache for the
# server build stay in PARLEY_COMPOSE_CACHE to make the next run quick.
#
#   scripts/compose-test.sh GRPCURL_BIN
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
GRPCURL=${1:?usage: $0 GRPCURL_BIN}
CACHE=${PARLEY_COMPOSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/parley-compose}
PROJECT=parleyci$$
COMPOSE_FILE=$ROOT/docker-compose.yml

log() { printf 'compose-test: %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

bash "$ROOT/scripts/deps.sh" compose

# podman's state lives in the cache directory, not in the machine's default
# store. The machine's hard open-file limit is below podman's default, so the
# containers get explicit ulimits (see shared notes in docs/testing.md).
mkdir -p "$CACHE/ccache"
export CONTAINERS_CONF=$CACHE/containers.conf
export CONTAINERS_STORAGE_CONF=$CACHE/storage.conf
nofile=$(ulimit -Hn)
[ "$nofile" = unlimited ] && nofile=1048576
cat > "$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
cat > "$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "overlay"
runroot = "$CACHE/run"
graphroot = "$CACHE/storage"
EOF

# ---- Base images, made locally ----
DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim
GO_VERSION=$(sed -n 's/^ARG GO_VERSION=//p' "$ROOT/docker/gateway.Dockerfile")
GOLANG_IMAGE=docker.io/library/golang:${GO_VERSION}-bookworm

if ! podman image exists "$DEBIAN_IMAGE"; then
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
  log "debootstrap bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" > "$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log" >&2; fail "debootstrap"; }
  # Like the official slim image: no package cache, no package lists.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman import - localhost/debian:bookworm > /dev/null
  rm -rf "$rootfs"
  podman tag localhost/debian:bookworm "$DEBIAN_IMAGE"
fi

if ! podman image exists "$GOLANG_IMAGE"; then
  goroot=$(PATH="/usr/local/go/bin:$PATH" go env GOROOT)
  ctx=$(mktemp -d "$CACHE/golang.XXXXXX")
  cp -a "$goroot" "$ctx/go"
  # What the official image adds to Debian that a build here relies on.
  cat > "$ctx/Containerfile" <<EOF
FROM $DEBIAN_IMAGE
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      ca-certificates curl git make gcc libc6-dev pkg-config > /dev/null \
 && rm -rf /var/lib/apt/lists/*
COPY go /usr/local/go
ENV GOLANG_VERSION=$GO_VERSION GOPATH=/go GOTOOLCHAIN=local \
    PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /go
EOF
  log "building the local $GOLANG_IMAGE"
  podman build -q --network=host -t "$GOLANG_IMAGE" "$ctx" > /dev/null
  rm -rf "$ctx"
fi

# build_standin IMAGE DIR: builds DIR (its Containerfile and entrypoint.sh)
# as IMAGE, a local stand-in for an official image that no registry serves
# here, then removes DIR. Built again whenever those files change (a label
# holds their hash).
build_standin() {
  local image=$1 ctx=$2 standin
  standin=$(cat "$ctx/entrypoint.sh" "$ctx/Containerfile" | sha256sum | cut -c1-16)
  if [ "$(podman image inspect -f '{{index .Labels "parley.standin"}}' "$image" 2>/dev/null)" != "$standin" ]; then
    log "building the local $image"
    podman build -q --format docker --network=host --label "parley.standin=$standin" \
      -t "$image" "$ctx" > /dev/null
  fi
  rm -rf "$ctx"
}

# A stand-in for the official postgres image (the postgres profile's
# `image:`), from Debian's PostgreSQL 15, with the same interface: the
# POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB environment, PGDATA, port
# 5432, password authentication for other hosts, and pg_isready on PATH.
POSTGRES_IMAGE=docker.io/library/$(sed -n 's/^    image: \(postgres:.*\)$/\1/p' "$COMPOSE_FILE")
ctx=$(mktemp -d "$CACHE/postgres.XXXXXX")
cat > "$ctx/entrypoint.sh" <<'ENTRYPOINT'
#!/bin/bash
set -euo pipefail
mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pw=$(mktemp); printf '%s\n' "${POSTGRES_PASSWORD:?}" > "$pw"; chown postgres "$pw"
  # As the official image: the socket inside the container is trusted,
  # every other host gives the password.
  as_postgres initdb -D "$PGDATA" -U "${POSTGRES_USER:-postgres}" --pwfile="$pw" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 > /dev/null
  rm -f "$pw"
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  if [ -n "${POSTGRES_DB:-}" ] && [ "$POSTGRES_DB" != postgres ]; then
    as_postgres pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start > /dev/null
    as_postgres psql -qU "${POSTGRES_USER:-postgres}" -d postgres \
      -c "CREATE DATABASE \"$POSTGRES_DB\""
    as_postgres pg_ctl -D "$PGDATA" -w -m fast stop > /dev/null
  fi
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups "$@"
ENTRYPOINT
cat > "$ctx/Containerfile" <<CONTAINERFILE
FROM $DEBIAN_IMAGE
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
      postgresql-15 > /dev/null \\
 && rm -rf /var/lib/apt/lists/*
COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PGDATA=/var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
CONTAINERFILE
build_standin "$POSTGRES_IMAGE" "$ctx"

# A stand-in for the official redis image (the cluster profile's), from
# Debian's Redis 7 with the same interface: redis-server and redis-cli on
# PATH, /data its working directory and volume, the redis user, and
# protected mode off as the official entrypoint turns it off (only the
# project's network reaches it).
REDIS_IMAGE=docker.io/library/$(sed -n 's/^    image: \(redis:.*\)$/\1/p' "$COMPOSE_FILE")
ctx=$(mktemp -d "$CACHE/redis.XXXXXX")
cat > "$ctx/entrypoint.sh" <<'ENTRYPOINT'
#!/bin/bash
set -euo pipefail
# Options alone mean redis-server, as in the official image.
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then set -- redis-server "$@"; fi
if [ "$1" = redis-server ]; then
  shift
  if [ -f "${1:-}" ]; then
    conf=$1
    shift
    set -- redis-server "$conf" --protected-mode no "$@"
  else
    set -- redis-server --protected-mode no "$@"
  fi
  if [ "$(id -u)" = 0 ]; then
    chown -R redis: .
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
  fi
fi
exec "$@"
ENTRYPOINT
cat > "$ctx/Containerfile" <<CONTAINERFILE
FROM $DEBIAN_IMAGE
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
      redis-server > /dev/null \\
 && rm -rf /var/lib/apt/lists/* \\
 && mkdir /data && chown redis:redis /data
COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh
VOLUME /data
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
CONTAINERFILE
build_standin "$REDIS_IMAGE" "$ctx"

# A stand-in for the official haproxy image (every profile's front), from
# Debian's HAProxy 2.6 with the same interface: the configuration at
# /usr/local/etc/haproxy/haproxy.cfg, the haproxy user, master-worker mode
# in the foreground, SIGUSR1 to stop.
HAPROXY_IMAGE=docker.io/library/$(sed -n 's/^    image: \(haproxy:.*\)$/\1/p' "$COMPOSE_FILE" | sort -u)
ctx=$(mktemp -d "$CACHE/haproxy.XXXXXX")
cat > "$ctx/entrypoint.sh" <<'ENTRYPOINT'
#!/bin/sh
set -e
# Options alone mean haproxy; haproxy runs as master-worker in the foreground.
if [ "${1#-}" != "$1" ]; then set -- haproxy "$@"; fi
if [ "$1" = haproxy ]; then
  shift
  set -- haproxy -W -db "$@"
fi
exec "$@"
ENTRYPOINT
cat > "$ctx/Containerfile" <<CONTAINERFILE
FROM $DEBIAN_IMAGE
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
      haproxy > /dev/null \\
 && rm -rf /var/lib/apt/lists/* \\
 && mkdir -p /usr/local/etc/haproxy /var/lib/haproxy && chown haproxy:haproxy /var/lib/haproxy
COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh
USER haproxy
WORKDIR /var/lib/haproxy
STOPSIGNAL SIGUSR1
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
CONTAINERFILE
build_standin "$HAPROXY_IMAGE" "$ctx"

# The cluster profile's services, and those of them built from the
# Dockerfiles (under <project>_<service>, as podman-compose names them).
CLUSTER=(postgres redis server-1 server-2 server-3 gateway-1 gateway-2 haproxy)
CLUSTER_BUILT=(server-1 server-2 server-3 gateway-1 gateway-2)

# ---- Clean-up of everything this run creates ----
compose() {
  (cd "$ROOT" && podman-compose -p "$PROJECT" -f "$COMPOSE_FILE" "$@")
}
cleanup() {
  local rc=$?
  set +e
  if [ $rc -ne 0 ] && podman container exists "${PROJECT}_server_1"; then
    log "server log:"; podman logs "${PROJECT}_server_1" 2>&1 | tail -20 >&2
    # The gateway's own account of its upstream (the address it dialled and
    # what the dial answered) first, then the rest of its log.
    log "gateway's upstream errors:"
    podman logs "${PROJECT}_gateway_1" 2>&1 | grep 'upstream server' | tail -5 >&2
    log "gateway log:"; podman logs "${PROJECT}_gateway_1" 2>&1 | tail -20 >&2
  fi
  podman rm -f --time 0 "${PROJECT}_dnstarget" > /dev/null 2>&1
  rm -f "$CACHE/sse-$PROJECT.out"
  podman network rm -f "${PROJECT}_dnscheck" > /dev/null 2>&1
  if [ $rc -ne 0 ] && podman container exists "${PROJECT}_server-postgres_1"; then
    log "postgres log:"; podman logs "${PROJECT}_postgres_1" 2>&1 | tail -20 >&2
    log "server-postgres log:"; podman logs "${PROJECT}_server-postgres_1" 2>&1 | tail -20 >&2
    log "gateway-postgres log:"; podman logs "${PROJECT}_gateway-postgres_1" 2>&1 | tail -20 >&2
  fi
  if [ $rc -ne 0 ] && podman container exists "${PROJECT}_haproxy_1"; then
    for svc in "${CLUSTER[@]}"; do
      log "$svc log:"; podman logs "${PROJECT}_${svc}_1" 2>&1 | tail -10 >&2
    done
  fi
  compose down -v > /dev/null 2>&1
  podman rm -f "${PROJECT}_server_1" "${PROJECT}_gateway_1" "${PROJECT}_front_1" "${PROJECT}_postgres_1" \
    "${PROJECT}_server-postgres_1" "${PROJECT}_gateway-postgres_1" "${PROJECT}_front-postgres_1" > /dev/null 2>&1
  for svc in "${CLUSTER[@]}"; do podman rm -f "${PROJECT}_${svc}_1" > /dev/null 2>&1; done
  podman volume rm -f "${PROJECT}_parley-data" "${PROJECT}_parley-postgres-keys" \
    "${PROJECT}_postgres-data" "${PROJECT}_redis-data" "${PROJECT}_edge-secret" > /dev/null 2>&1
  podman network rm -f "${PROJECT}_default" > /dev/null 2>&1
  podman rmi -f "${PROJECT}_server" "${PROJECT}_gateway" "${PROJECT}_server-postgres" \
    "${PROJECT}_gateway-postgres" > /dev/null 2>&1
  for svc in "${CLUSTER_BUILT[@]}"; do podman rmi -f "${PROJECT}_$svc" > /dev/null 2>&1; done
  podman image prune -f > /dev/null 2>&1
  exit $rc
}
trap cleanup EXIT

# ---- Name resolution between containers ----
# The gateway finds the server by its service name. On podman's CNI backend
# that takes the dnsname plugin (scripts/deps.sh compose installs it); check
# it on a throwaway network first, so that a machine without it fails here
# with the reason rather than as an unhealthy stack two minutes later.
podman network create "${PROJECT}_dnscheck" > /dev/null
podman run -d --name "${PROJECT}_dnstarget" --network "${PROJECT}_dnscheck" \
  --network-alias dnstarget "$DEBIAN_IMAGE" sleep 300 > /dev/null
if ! podman run --rm --network "${PROJECT}_dnscheck" "$DEBIAN_IMAGE" \
    getent hosts dnstarget > "$CACHE/dnscheck.log" 2>&1; then
  backend=$(podman info -f '{{.Host.NetworkBackend}}' 2>/dev/null || echo unknown)
  cat "$CACHE/dnscheck.log" >&2
  fail "one container cannot resolve another's name (network backend: $backend);" \
    "on CNI this needs golang-github-containernetworking-plugin-dnsname (scripts/deps.sh compose)"
fi
podman rm -f --time 0 "${PROJECT}_dnstarget" > /dev/null
podman network rm -f "${PROJECT}_dnscheck" > /dev/null
log "containers resolve each other's names"

# ---- Build: the unchanged Dockerfiles, under the names compose uses ----
# --format docker keeps HEALTHCHECK. The host's CA bundle is mounted into the
# gateway build because this network's TLS proxy CA is not in Debian's.
# ccache speeds the server's C++ build across runs (the image does not change).
log "building ${PROJECT}_server"
start=$SECONDS
podman build -q --format docker --network=host \
  -v "$CACHE/ccache:/root/.ccache" \
  -f "$ROOT/docker/server.Dockerfile" -t "${PROJECT}_server" "$ROOT" > /dev/null
log "built ${PROJECT}_server in $((SECONDS - start)) s"
start=$SECONDS
podman build -q --format docker --network=host \
  -v /etc/ssl/certs:/etc/ssl/certs:ro \
  -f "$ROOT/docker/gateway.Dockerfile" -t "${PROJECT}_gateway" "$ROOT" > /dev/null
log "built ${PROJECT}_gateway in $((SECONDS - start)) s"
# The postgres profile's server and gateway are built from the same files.
podman tag "${PROJECT}_server" "${PROJECT}_server-postgres"
podman tag "${PROJECT}_gateway" "${PROJECT}_gateway-postgres"
# And so are the cluster profile's.
for svc in "${CLUSTER_BUILT[@]}"; do podman tag "${PROJECT}_${svc%-[0-9]}" "${PROJECT}_$svc"; done
for image in server gateway; do
  size=$(podman image inspect -f '{{.Size}}' "${PROJECT}_$image")
  log "image $image: $((size / 1024 / 1024)) MiB"
done
# The gateway image is its static binary alone.
size=$(podman image inspect -f '{{.Size}}' "${PROJECT}_gateway")
[ "$size" -lt $((64 * 1024 * 1024)) ] || fail "the gateway image is $size bytes"


# ---- Run ----
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export PARLEY_GRPC_PORT PARLEY_HTTP_PORT PARLEY_POSTGRES_GRPC_PORT PARLEY_POSTGRES_HTTP_PORT \
  PARLEY_CLUSTER_GRPC_PORT PARLEY_CLUSTER_HTTP_PORT
PARLEY_GRPC_PORT=$(free_port)
PARLEY_HTTP_PORT=$(free_port)
PARLEY_POSTGRES_GRPC_PORT=$(free_port)
PARLEY_POSTGRES_HTTP_PORT=$(free_port)
PARLEY_CLUSTER_GRPC_PORT=$(free_port)
PARLEY_CLUSTER_HTTP_PORT=$(free_port)
H=http://127.0.0.1:$PARLEY_HTTP_PORT
G=127.0.0.1:$PARLEY_GRPC_PORT
PH=http://127.0.0.1:$PARLEY_POSTGRES_HTTP_PORT
CH=http://127.0.0.1:$PARLEY_CLUSTER_HTTP_PORT
CG=127.0.0.1:$PARLEY_CLUSTER_GRPC_PORT

# Waits until the whole path (gateway -> server health service) answers at
# the gateway URL $1.
wait_healthy() {
  local deadline=$((SECONDS + 120))
  until curl -fsS "$1/healthz" > /dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      log "the gateway's /healthz answers: $(curl -sS "$1/healthz" 2>&1)"
      fail "the stack did not become healthy in 120 s"
    fi
    sleep 0.5
  done
}

# up URL SERVICE...: starts the services and waits for the gateway at URL.
# podman-compose 1.0.3 knows no profiles (it would start every service), so
# the services are named; Compose v2 enables a named service's profile.
up() {
  local url=$1
  shift
  compose up -d "$@" > "$CACHE/compose-up.log" 2>&1 || { cat "$CACHE/compose-up.log" >&2; fail "compose up"; }
  wait_healthy "$url"
}
EMBEDDED=(server gateway front)
ON_POSTGRES=(postgres server-postgres gateway-postgres front-postgres)

expect() {  # expect NAME ACTUAL PATTERN
  grep -q -- "$3" <<< "$2" || fail "$1: got '$2', want /$3/"
}

# expect_fanout NAME URL TOKEN ROOM METRICS_COMMAND...: fan-out at the edge
# (docs/fanout.md) serves the room's SSE clients. Opens an SSE stream of
# ROOM through URL with TOKEN, then waits (up to 60 s) until the gateways'
# /metrics (METRICS_COMMAND prints them, of one gateway or of several) count
# a shared log stream and a client of it; a gateway without the edge secret
# gives the client a Subscribe of its own and counts neither. Then a message
# posted to the room must reach the client, whose stream is still open.
expect_fanout() {
  local name=$1 url=$2 token=$3 room=$4 sse_out=$CACHE/sse-$PROJECT.out
  shift 4
  curl -sS -N --max-time 120 -H "Authorization: Bearer $token" -H 'Accept: text/event-stream' \
    "$url/v1/rooms/$room:subscribe" > "$sse_out" 2>&1 &
  local sse=$! deadline=$((SECONDS + 60)) metrics streams=0 clients=0
  while :; do
    metrics=$("$@" 2>/dev/null || true)
    streams=$(awk '$1 == "parley_gateway_fanout_log_streams" {n += $2} END {print n + 0}' <<< "$metrics")
    clients=$(awk '$1 == "parley_gateway_fanout_clients" {n += $2} END {print n + 0}' <<< "$metrics")
    [ "$streams" -ge 1 ] && [ "$clients" -ge 1 ] && break
    if [ $SECONDS -ge $deadline ] || ! kill -0 "$sse" 2> /dev/null; then
      kill "$sse" 2> /dev/null; wait "$sse" 2> /dev/null
      log "$name: the SSE client got: $(head -c 500 "$sse_out")"
      fail "$name: the gateways count $streams shared log stream(s) and $clients client(s) of them, want >= 1 each: no fan-out"
    fi
    sleep 0.5
  done
  local text="fanned out $name $RANDOM"
  curl -fsS -XPOST "$url/v1/rooms/$room/messages" -H "Authorization: Bearer $token" \
    -d "{\"text\":\"$text\"}" > /dev/null
  deadline=$((SECONDS + 20))
  until grep -q "$text" "$sse_out"; do
    if [ $SECONDS -ge $deadline ] || ! kill -0 "$sse" 2> /dev/null; then
      kill "$sse" 2> /dev/null; wait "$sse" 2> /dev/null
      fail "$name: the SSE client did not get the message posted to $room: $(head -c 500 "$sse_out")"
    fi
    sleep 0.2
  done
  kill "$sse" 2> /dev/null; wait "$sse" 2> /dev/null || true
  rm -f "$sse_out"
  log "$name: an SSE client of $room was served by the gateway's shared stream ($streams log stream(s), $clients client(s))"
}

log "starting the project on $G (gRPC) and $H (REST)"
up "$H" "${EMBEDDED[@]}"

# The containers: non-root (the uid of each container's main process, as the
# host sees it), healthy by their own HEALTHCHECKs.
for svc in server gateway; do
  pid=$(podman inspect -f '{{.State.Pid}}' "${PROJECT}_${svc}_1")
  uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
  [ "$uid" = 10001 ] || fail "$svc runs as uid $uid, want 10001"
  podman healthcheck run "${PROJECT}_${svc}_1" > /dev/null || fail "$svc healthcheck"
done
log "both containers run as uid 10001 and pass their healthchecks"

# Seed 000 over REST.
expect "join alice" "$(curl -fsS "$H/join?id=alice")" '"kind":"EVENT_KIND_JOIN"'
curl -fsS "$H/join?id=bob" > /dev/null
expect "send" "$(curl -fsS "$H/send?id=alice&message=hello+compose")" '"text":"hello compose"'
expect "bob's poll" "$(curl -fsS "$H/messages?id=bob&timeout=5")" '"text":"hello compose"'
expect "leave" "$(curl -fsS "$H/leave?id=bob")" '"kind":"EVENT_KIND_LEAVE"'
log "seed 000 walk-through passed"

# gRPC straight to the published port, by reflection.
expect "grpcurl list" "$("$GRPCURL" -plaintext "$G" list)" 'parley.v1.ChatService'
expect "grpcurl post" "$("$GRPCURL" -plaintext -d '{"user":"grpcurl","text":"kept across restarts"}' \
  "$G" parley.v1.ChatService/PostRecentMessage)" '"ok": true'
log "grpcurl reached the server"

# An account and a token, to find again after the restart.
curl -fsS -XPOST "$H/v1/users" -d '{"username":"carol","password":"compose-secret"}' > /dev/null
token=$(curl -fsS -XPOST "$H/v1/auth/sign-in" -d '{"username":"carol","password":"compose-secret"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
curl -fsS -XPOST "$H/rooms" -H "Authorization: Bearer $token" -d '{"name":"compose-room"}' > /dev/null
curl -fsS -XPOST "$H/room/compose-room/messages" -H "Authorization: Bearer $token" \
  -d '{"text":"in a room"}' > /dev/null

# Restart: down (SIGTERM, in time) and up again on the same volume.
start=$SECONDS
compose down > /dev/null 2>&1
took=$((SECONDS - start))
[ $took -lt 20 ] || fail "compose down took $took s: SIGTERM not handled?"
log "stopped in $took s"
podman volume exists "${PROJECT}_parley-data" || fail "the data volume is gone after down"
up "$H" "${EMBEDDED[@]}"

# What was stored is there, and the token (signed with the key in the
# volume) is still good.
expect "lobby history" "$(curl -fsS "$H/messages")" '"text":"kept across restarts"'
expect "lobby history" "$(curl -fsS "$H/messages")" '"text":"hello compose"'
expect "room history" "$(curl -fsS "$H/room/compose-room/messages" -H "Authorization: Bearer $token")" '"text":"in a room"'
expect "sign in" "$(curl -fsS -XPOST "$H/v1/auth/sign-in" -d '{"username":"carol","password":"compose-secret"}')" '"token"'
log "after the restart: history, account, room and token all survived"
# The server created the edge secret in the edge-secret volume on its first
# start and read it back on this one; the gateway waited for it.
expect_fanout "embedded" "$H" "$token" compose-room curl -fsS "$H/metrics"
compose down > /dev/null 2>&1

# ---- The postgres profile: the same server on PostgreSQL ----
log "starting the postgres profile on $PH (REST)"
up "$PH" "${ON_POSTGRES[@]}"
curl -fsS -XPOST "$PH/v1/users" -d '{"username":"dave","password":"compose-secret"}' > /dev/null
token=$(curl -fsS -XPOST "$PH/v1/auth/sign-in" -d '{"username":"dave","password":"compose-secret"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
curl -fsS -XPOST "$PH/rooms" -H "Authorization: Bearer $token" -d '{"name":"pg-room"}' > /dev/null
curl -fsS -XPOST "$PH/room/pg-room/messages" -H "Authorization: Bearer $token" \
  -d '{"text":"kept in postgres"}' > /dev/null
curl -fsS "$PH/join?id=erin" > /dev/null
expect "seed 000 on postgres" "$(curl -fsS "$PH/send?id=erin&message=lobby+on+postgres")" '"text":"lobby on postgres"'
# The rows are in PostgreSQL, not in a file of the server's.
rows=$(podman exec "${PROJECT}_postgres_1" psql -qtAU parley -d parley \
  -c "SELECT count(*) FROM users WHERE username = 'dave'")
[ "$rows" = 1 ] || fail "dave is not in PostgreSQL's users table (got '$rows')"
start=$SECONDS
compose stop "${ON_POSTGRES[@]}" > /dev/null 2>&1
took=$((SECONDS - start))
[ $took -lt 30 ] || fail "stopping the postgres profile took $took s"
up "$PH" "${ON_POSTGRES[@]}"
expect "room history on postgres" "$(curl -fsS "$PH/room/pg-room/messages" -H "Authorization: Bearer $token")" '"text":"kept in postgres"'
expect "lobby history on postgres" "$(curl -fsS "$PH/messages")" '"text":"lobby on postgres"'
log "postgres profile: the server kept its data in PostgreSQL across a restart"
expect_fanout "postgres" "$PH" "$token" pg-room curl -fsS "$PH/metrics"
compose stop "${ON_POSTGRES[@]}" > /dev/null 2>&1

# ---- The cluster profile: three servers, two gateways, HAProxy in front ----
log "starting the cluster profile on $CH (REST) and $CG (gRPC)"
up "$CH" "${CLUSTER[@]}"

# gateway_get SERVICE PATH TOKEN: GET PATH from SERVICE:8080 inside the
# project's network (the gateways publish no port), the whole response.
gateway_get() {
  podman run --rm --network "${PROJECT}_default" "$DEBIAN_IMAGE" bash -c '
    exec 3<> "/dev/tcp/$0/8080"
    printf "GET %s HTTP/1.0\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n" "$1" "$0" "$2" >&3
    cat <&3' "$@"
}

# Through the front: an account, a room and a message.
curl -fsS -XPOST "$CH/v1/users" -d '{"username":"grace","password":"compose-secret"}' > /dev/null
token=$(curl -fsS -XPOST "$CH/v1/auth/sign-in" -d '{"username":"grace","password":"compose-secret"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
curl -fsS -XPOST "$CH/v1/rooms" -H "Authorization: Bearer $token" -d '{"name":"cluster-room"}' > /dev/null
curl -fsS -XPOST "$CH/v1/rooms/cluster-room/messages" -H "Authorization: Bearer $token" \
  -d '{"text":"posted through the front"}' > /dev/null
# Read back through each gateway, three times each: the token one server
# signed is checked by the others (one key for all), the message is in the
# database they share.
for gw in gateway-1 gateway-2; do
  for _ in 1 2 3; do
    response=$(gateway_get "$gw" /v1/rooms/cluster-room/messages "$token")
    expect "$gw status" "$(head -n1 <<< "$response")" ' 200 '
    expect "$gw room history" "$response" '"text":"posted through the front"'
  done
done
log "cluster: signed up, posted through the front, read back through both gateways"
# Three servers started together on the new edge-secret volume agreed on one
# secret, and so both gateways fan out whichever server they reach.
cluster_metrics() { gateway_get gateway-1 /metrics ""; gateway_get gateway-2 /metrics ""; }
expect_fanout "cluster" "$CH" "$token" cluster-room cluster_metrics

# gRPC through the front, request by request over all three servers.
for i in 1 2 3; do
  expect "grpcurl post through the front" "$("$GRPCURL" -plaintext -d "{\"user\":\"grpcurl\",\"text\":\"front $i\"}" \
    "$CG" parley.v1.ChatService/PostRecentMessage)" '"ok": true'
done
expect "lobby history through the front" "$(curl -fsS "$CH/messages")" '"text":"front 3"'
servers_used=$(podman logs "${PROJECT}_haproxy_1" 2>&1 | grep -o ' servers/server-[0-9] ' | sort -u | wc -l)
[ "$servers_used" = 3 ] || fail "HAProxy's gRPC front used $servers_used of the 3 servers"
log "cluster: the gRPC front spread the calls over all 3 servers"
start=$SECONDS
compose stop "${CLUSTER[@]}" > /dev/null 2>&1
took=$((SECONDS - start))
[ $took -lt 60 ] || fail "stopping the cluster profile took $took s"
log "PASS"
