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
#   scripts/deps.sh all      server + gateway + test
set -euo pipefail

server_pkgs=(build-essential grpc-proto cmake ninja-build ccache pkg-config
  uuid-dev libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev libsqlite3-dev
  libsodium-dev libjwt-dev libpq-dev libhiredis-dev)
runtime_pkgs=(libuuid1 libgrpc++1.51 libgrpc29 libprotobuf32 libsqlite3-0 libsodium23
  libjwt0 libpq5 libhiredis0.14 ca-certificates)
# protoc and the well-known .proto files, for generating the Go code.
gateway_pkgs=(protobuf-compiler libprotobuf-dev make)
test_pkgs=(python3 python3-venv curl docker-compose)

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

want_go() {
  if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
    apt_install golang-go
  fi
}

case "${1:-all}" in
  server) apt_install "${server_pkgs[@]}" ;;
  runtime) apt_install "${runtime_pkgs[@]}" ;;
  gateway) apt_install "${gateway_pkgs[@]}"; want_go ;;
  test) apt_install "${test_pkgs[@]}" ;;
  all) apt_install "${server_pkgs[@]}" "${gateway_pkgs[@]}" "${test_pkgs[@]}"; want_go ;;
  *) echo "usage: $0 server|runtime|gateway|test|all" >&2; exit 2 ;;
esac
