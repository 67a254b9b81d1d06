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
#   scripts/deps.sh compose  podman and friends for make test-compose
#   scripts/deps.sh bench    wrk, gnuplot and jq for make bench
#   scripts/deps.sh all      server + gateway + test
set -euo pipefail

server_pkgs=(build-essential grpc-proto cmake ninja-build ccache pkg-config
  uuid-dev libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev libsqlite3-dev
  libsodium-dev libjwt-dev libpq-dev libhiredis-dev libspdlog-dev)
runtime_pkgs=(libuuid1 libgrpc++1.51 libgrpc29 libprotobuf32 libsqlite3-0 libsodium23
  libjwt0 libpq5 libhiredis0.14 libspdlog1.10 libfmt9 ca-certificates)
# protoc and the well-known .proto files, for generating the Go code.
gateway_pkgs=(protobuf-compiler libprotobuf-dev make)
test_pkgs=(python3 python3-venv curl docker-compose)
# make test-compose: podman runs the Dockerfiles and the compose file; the base
# images are made with debootstrap (see scripts/compose-test.sh).
compose_pkgs=(podman podman-compose runc debootstrap curl python3 ca-certificates)
# make bench: wrk drives the REST side, gnuplot draws the plots, jq and curl
# glue the scripts (scripts/bench/).
bench_pkgs=(wrk gnuplot-nox jq curl python3)

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

case "${1:-all}" in
  server) apt_install "${server_pkgs[@]}" ;;
  runtime) apt_install "${runtime_pkgs[@]}" ;;
  gateway) apt_install "${gateway_pkgs[@]}"; want_go ;;
  test) apt_install "${test_pkgs[@]}" ;;
  compose) apt_install "${compose_pkgs[@]}" ;;
  bench) apt_install "${bench_pkgs[@]}" ;;
  all) apt_install "${server_pkgs[@]}" "${gateway_pkgs[@]}" "${test_pkgs[@]}"; want_go ;;
  *) echo "usage: $0 server|runtime|gateway|test|compose|bench|all" >&2; exit 2 ;;
esac
