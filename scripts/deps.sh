#!/usr/bin/env bash
# Installs what Parley needs to build, run and test, and only what is missing.
# The Makefile, .ci/run and the Dockerfiles all call this one script, so a
# fresh machine and an image get the same packages.
#
#   scripts/deps.sh server   C++ toolchain and libraries for the server
#   scripts/deps.sh runtime  only the shared libraries the server binary loads
#   scripts/deps.sh gateway  protoc and a Go toolchain (Debian's, upgraded
#                            through the Go module proxy's toolchains when
#                            too old)
#   scripts/deps.sh test     what the tests need besides server and gateway
#   scripts/deps.sh fuzz     clang and its libFuzzer runtime for the C++ fuzz
#                            targets (make fuzz-cpp; their seed corpora run in
#                            make test)
#   scripts/deps.sh browser  Chromium, and Node.js with npm when there is no
#                            node, for make test-browser (part of make test)
#   scripts/deps.sh compose  podman and friends for make test-compose
#   scripts/deps.sh cluster  PostgreSQL, Redis and HAProxy for make run-cluster
#                            and make test-cluster
#   scripts/deps.sh bench    wrk, gnuplot and jq for make bench, Go, and the
#                            modules of scripts/bench/rest-rate (vegeta) and
#                            scripts/bench/peerload
#   scripts/deps.sh all      server + gateway + test + fuzz
set -euo pipefail

server_pkgs=(build-essential grpc-proto golang-github-gogo-googleapis-dev cmake ninja-build ccache pkg-config
  uuid-dev libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev libsqlite3-dev
  libsodium-dev libjwt-dev libpq-dev libhiredis-dev libspdlog-dev)
runtime_pkgs=(libuuid1 libgrpc++1.51 libgrpc29 libprotobuf32 libsqlite3-0 libsodium23
  libjwt0 libpq5 libhiredis0.14 libspdlog1.10 libfmt9 ca-certificates)
# protoc and the well-known .proto files, for generating the Go code.
gateway_pkgs=(protobuf-compiler libprotobuf-dev golang-github-gogo-googleapis-dev make)
# PostgreSQL's server binaries: the tests start their own (scripts/test-postgres.sh);
# so do the cluster tests with Redis and HAProxy (make test-cluster).
test_pkgs=(python3 python3-venv curl docker-compose postgresql redis-server haproxy)
# The C++ fuzz targets (tests/fuzz/, build/fuzz): Debian's clang, and
# libclang-rt-dev for libFuzzer and the sanitizers' runtimes (not pulled in
# by clang without its recommends).
fuzz_pkgs=(clang libclang-rt-dev)
# make test-browser: playwright-core (from the npm registry, tests/browser)
# drives Debian's Chromium. Node.js and npm come from Debian only when the
# machine has no node of its own (the pinned playwright-core needs node >= 20: see want_node).
browser_pkgs=(chromium fonts-dejavu-core)
node_pkgs=(nodejs npm)
# make test-compose: podman runs the Dockerfiles and the compose file; the base
# images are made with debootstrap (see scripts/compose-test.sh). Debian 12's
# podman uses the CNI network backend, where one container finds another by
# name only through the dnsname plugin: without it the gateway cannot reach
# `server` (docs/testing.md).
compose_pkgs=(podman podman-compose runc debootstrap curl python3 ca-certificates
  golang-github-containernetworking-plugin-dnsname)
# make bench: wrk drives the REST side closed loop, gnuplot draws the plots, jq
# and curl glue the scripts (scripts/bench/). The REST side at a fixed rate is
# scripts/bench/rest-rate, built by run.sh on vegeta's library (the version
# pinned in its go.mod): its modules are fetched here, so a run needs no
# registry.
# make run-cluster (scripts/run-cluster.sh): PostgreSQL and Redis for the
# servers, HAProxy in front, curl to wait for the gateways' /healthz.
cluster_pkgs=(postgresql redis-server haproxy curl)
bench_pkgs=(wrk gnuplot-nox jq curl python3 linux-perf)
root=$(cd "$(dirname "$0")/.." && pwd)

want_bench_go_modules() {
  want_go
  local go
  go=$(go_bin)
  (cd "$root/scripts/bench/rest-rate" && GOFLAGS=-mod=mod "$go" mod download)
  (cd "$root/scripts/bench/peerload" && GOFLAGS=-mod=mod "$go" mod download)
}

apt_updated=0
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if [ $apt_updated -eq 0 ]; then $sudo apt-get update -qq; apt_updated=1; fi
  echo "deps: installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# The Go release the modules in gateway/ and tests/ need (their `go` line).
GO_MIN=1.26.0
GO_TOOLCHAIN_DIR=${GO_TOOLCHAIN_DIR:-/usr/local/go}

go_bin() { command -v go 2>/dev/null || { [ -x "$GO_TOOLCHAIN_DIR/bin/go" ] && echo "$GO_TOOLCHAIN_DIR/bin/go"; }; }

# Whether `$1 version` reports at least GO_MIN.
go_new_enough() {
  local v
  v=$("$1" env GOVERSION 2>/dev/null | sed 's/^go//') || return 1
  [ "$(printf '%s\n%s\n' "$GO_MIN" "$v" | sort -V | head -n1)" = "$GO_MIN" ]
}

want_go() {
  local go
  go=$(go_bin) && go_new_enough "$go" && return 0
  # No Go, or one older than the modules need (Debian 12's is 1.19, which
  # predates GOTOOLCHAIN): install the toolchain from the Go module proxy, as
  # `go` itself does for GOTOOLCHAIN, into GO_TOOLCHAIN_DIR.
  apt_install ca-certificates curl unzip
  local arch
  arch=$(dpkg --print-architecture)
  local mod="golang.org/toolchain/@v/v0.0.1-go${GO_MIN}.linux-${arch}.zip"
  local tmp
  tmp=$(mktemp -d)
  echo "deps: installing Go ${GO_MIN} from the Go module proxy" >&2
  curl -fsSL "${GOPROXY_URL:-https://proxy.golang.org}/$mod" -o "$tmp/go.zip"
  unzip -q "$tmp/go.zip" -d "$tmp"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo rm -rf "$GO_TOOLCHAIN_DIR"
  $sudo mkdir -p "$(dirname "$GO_TOOLCHAIN_DIR")"
  $sudo mv "$tmp/golang.org/toolchain@v0.0.1-go${GO_MIN}.linux-${arch}" "$GO_TOOLCHAIN_DIR"
  $sudo chmod -R a+rX "$GO_TOOLCHAIN_DIR"
  $sudo chmod a+x "$GO_TOOLCHAIN_DIR"/bin/* "$GO_TOOLCHAIN_DIR"/pkg/tool/*/*
  rm -rf "$tmp"
  go_new_enough "$GO_TOOLCHAIN_DIR/bin/go"
}

# The Node.js release the pinned playwright-core needs (tests/browser).
NODE_MIN=${NODE_MIN:-20}
NODE_DIR=${NODE_DIR:-/usr/local/lib/parley-node}

node_new_enough() {
  "$1" -e "process.exit(+process.versions.node.split('.')[0] >= $NODE_MIN ? 0 : 1)" 2>/dev/null
}

# Node.js >= NODE_MIN as `node` or $NODE_DIR/bin/node (mk/browser.mk puts
# that first on PATH). Debian 12's is 18: then the official Linux build is
# taken from the npm registry (package node-linux-<arch>), with Debian's npm.
want_node() {
  command -v node >/dev/null && command -v npm >/dev/null || apt_install "${node_pkgs[@]}"
  node_new_enough node && return 0
  [ -x "$NODE_DIR/bin/node" ] && node_new_enough "$NODE_DIR/bin/node" && return 0
  local arch
  case "$(dpkg --print-architecture)" in
    amd64) arch=x64 ;;
    arm64) arch=arm64 ;;
    *) echo "deps: no Node.js >= $NODE_MIN for this architecture" >&2; return 1 ;;
  esac
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "deps: installing Node.js $NODE_MIN from the npm registry into $NODE_DIR" >&2
  $sudo mkdir -p "$NODE_DIR/pkg" "$NODE_DIR/bin"
  $sudo npm install --prefix "$NODE_DIR/pkg" --no-save --no-audit --no-fund \
    --ignore-scripts "node-linux-$arch@$NODE_MIN" >&2
  $sudo ln -sf "$NODE_DIR/pkg/node_modules/node-linux-$arch/bin/node" "$NODE_DIR/bin/node"
  node_new_enough "$NODE_DIR/bin/node"
}

case "${1:-all}" in
  server) apt_install "${server_pkgs[@]}" ;;
  runtime) apt_install "${runtime_pkgs[@]}" ;;
  gateway) apt_install "${gateway_pkgs[@]}"; want_go ;;
  test) apt_install "${test_pkgs[@]}" ;;
  fuzz) apt_install "${fuzz_pkgs[@]}" ;;
  browser)
    apt_install "${browser_pkgs[@]}"
    want_node
    ;;
  compose) apt_install "${compose_pkgs[@]}" ;;
  cluster) apt_install "${cluster_pkgs[@]}" ;;
  bench) apt_install "${bench_pkgs[@]}"; want_bench_go_modules ;;
  all) apt_install "${server_pkgs[@]}" "${gateway_pkgs[@]}" "${test_pkgs[@]}" "${fuzz_pkgs[@]}"; want_go ;;
  *) echo "usage: $0 server|runtime|gateway|test|fuzz|browser|compose|cluster|bench|all" >&2; exit 2 ;;
esac
