#!/usr/bin/env bash
# Builds a benchmark-only copy of Debian bookworm's gRPC 1.51.1 (the same
# source package and patches as libgrpc29 / libgrpc++1.51) with -DNDEBUG.
#
# Why: Debian builds gRPC without NDEBUG, so the debug-only cq_check_tag in
# src/core/lib/surface/completion_queue.cc scans every outstanding tag of a
# completion queue at each completion: every stream write costs O(open
# streams). The libraries built here have the same version, public headers
# and SONAMEs as Debian's, so the server (unchanged, not rebuilt) picks them
# up at run time with
#
#   LD_LIBRARY_PATH=$(scripts/bench/grpc-ndebug.sh | tail -n1) build/release/server/parley_server ...
#
# Only libgpr, libaddress_sorting, libupb, libgrpc and libgrpc++ are built;
# every other library (libgrpc++_reflection, abseil, protobuf, ...) stays
# Debian's. The last line printed is the directory holding the libraries.
#
# Env: GRPC_NDEBUG_DIR  output root (default <repo>/build/grpc-ndebug):
#                       src/ tarballs, tree/ patched source, build/ the cmake
#                       build, lib/ the libraries
#      JOBS             parallel compile jobs (default 2); the build runs
#                       under nice -n 10
# A second run with everything built only re-checks and does no compiling.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
out=${GRPC_NDEBUG_DIR:-$root/build/grpc-ndebug}
jobs=${JOBS:-2}
ver=1.51.1
pool=http://deb.debian.org/debian/pool/main/g/grpc
orig=grpc_${ver}.orig.tar.gz
orig_sha=b55696fb249669744de3e71acc54a9382bea0dce7cd5ba379b356b12b82d4229
debtar=grpc_${ver}-3.debian.tar.xz
debtar_sha=767b69da166bae708a54c4740056d9e847d57d89885173016bfc57ebbf154b2d
src=$out/src tree=$out/tree/grpc-$ver bld=$out/build lib=$out/lib

log() { echo "grpc-ndebug: $*" >&2; }

# Installs Debian packages only when something is missing (apt-get update is
# assumed to have been run on this machine).
apt_missing=()
need_cmd() { command -v "$1" >/dev/null 2>&1 || apt_missing+=("${2:-$1}"); }
need_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed' || apt_missing+=("$1"); }
need_cmd curl; need_cmd sha256sum coreutils; need_cmd tar; need_cmd xz xz-utils
need_cmd patch; need_cmd cmake; need_cmd ninja ninja-build; need_cmd ccache
need_cmd g++; need_cmd dpkg-buildflags dpkg-dev; need_cmd pkg-config pkgconf
# The build dependencies of Debian's source package that this build uses
# (libprotoc-dev only for configuring: the plugins are declared, not built).
for p in libabsl-dev libc-ares-dev libprotobuf-dev libprotoc-dev protobuf-compiler \
         libre2-dev libssl-dev zlib1g-dev; do need_pkg "$p"; done
if ((${#apt_missing[@]})); then
  log "installing: ${apt_missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${apt_missing[@]}" >&2
fi

# 1. Sources: Debian's orig tarball and debian/ tarball, checksum-verified.
mkdir -p "$src"
fetch() { # name sha256
  local f=$src/$1
  if [[ -f $f ]] && echo "$2  $f" | sha256sum -c --quiet - >/dev/null 2>&1; then
    return
  fi
  log "downloading $1"
  curl -fsSL --retry 3 -o "$f.part" "$pool/$1"
  echo "$2  $f.part" | sha256sum -c --quiet - || { rm -f "$f.part"; log "bad checksum: $1"; exit 1; }
  mv "$f.part" "$f"
}
fetch "$orig" "$orig_sha"
fetch "$debtar" "$debtar_sha"

# 2. Extract and apply debian/patches/series in order (comment lines in the
# series are disabled patches). Done in a scratch dir and moved into place
# at the end, so an interrupted run never leaves a half-patched tree.
if [[ ! -f $tree/.patched ]]; then
  log "extracting and patching"
  rm -rf "$out/tree.tmp" "$tree"
  mkdir -p "$out/tree.tmp"
  tar -C "$out/tree.tmp" -xzf "$src/$orig"
  tar -C "$out/tree.tmp/grpc-$ver" -xJf "$src/$debtar"
  (
    cd "$out/tree.tmp/grpc-$ver"
    while read -r p _; do
      [[ -z $p || $p == \#* ]] && continue
      log "  patch $p"
      patch -p1 --forward --batch --quiet < "debian/patches/$p"
    done < debian/patches/series
  )
  touch "$out/tree.tmp/grpc-$ver/.patched"
  mkdir -p "$out/tree"
  mv "$out/tree.tmp/grpc-$ver" "$tree"
  rmdir "$out/tree.tmp"
fi

# 3. Configure like debian/rules' shared build (its COMMON_BUILD_FLAGS plus
# BUILD_SHARED_LIBS=ON, and dh's cmake defaults), except:
#  - CMAKE_BUILD_TYPE=Release with the Release flags reduced to -DNDEBUG, so
#    the optimisation level stays Debian's -O2 from dpkg-buildflags;
#  - no -g (saves build time; nothing here needs debug info);
#  - gRPC_BUILD_TESTS=OFF (Debian builds the tests; they add only targets);
#  - no build RPATH (Debian's libraries have no RUNPATH either);
#  - Ninja and ccache instead of make.
flags() { # dpkg-buildflags' value without -g, plus CPPFLAGS as debhelper does
  local v
  v=$(cd "$tree" && dpkg-buildflags --get "$1")
  v=" $v "; v=${v// -g / }; v=${v# }; v=${v% }
  if [[ $1 != LDFLAGS ]]; then v="$v $(cd "$tree" && dpkg-buildflags --get CPPFLAGS)"; fi
  echo "$v"
}
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
cmake_args=(
  -G Ninja
  -DCMAKE_BUILD_TYPE=Release
  -DCMAKE_C_FLAGS_RELEASE=-DNDEBUG
  -DCMAKE_CXX_FLAGS_RELEASE=-DNDEBUG
  "-DCMAKE_C_FLAGS=$(flags CFLAGS)"
  "-DCMAKE_CXX_FLAGS=$(flags CXXFLAGS)"
  "-DCMAKE_SHARED_LINKER_FLAGS=$(flags LDFLAGS)"
  "-DCMAKE_EXE_LINKER_FLAGS=$(flags LDFLAGS)"
  -DCMAKE_C_COMPILER_LAUNCHER=ccache
  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache
  -DCMAKE_SKIP_BUILD_RPATH=ON
  -DCMAKE_INSTALL_PREFIX=/usr
  "-DCMAKE_INSTALL_LIBDIR=lib/$multiarch"
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  -DCMAKE_EXPORT_NO_PACKAGE_REGISTRY=ON
  -DFETCHCONTENT_FULLY_DISCONNECTED=ON
  -DBUILD_SHARED_LIBS=ON
  -DgRPC_BUILD_TESTS=OFF
  # debian/rules COMMON_BUILD_FLAGS, verbatim:
  -DgRPC_ABSL_PROVIDER=package
  -DgRPC_CARES_PROVIDER=package
  -DgRPC_BENCHMARK_PROVIDER=package
  -DgRPC_PROTOBUF_PROVIDER=package
  -DgRPC_RE2_PROVIDER=package
  -DgRPC_SSL_PROVIDER=package
  -DgRPC_ZLIB_PROVIDER=package
  -DgRPC_BACKWARDS_COMPATIBILITY_MODE=OFF
  "-DgRPC_INSTALL_LIBDIR=lib/$multiarch"
  "-DgRPC_INSTALL_CMAKEDIR=lib/$multiarch/cmake/grpc"
  "-DgRPC_INSTALL_PKGCONFIGDIR=lib/$multiarch/pkgconfig"
  -DgRPC_BUILD_GRPC_CPP_PLUGIN=ON
  -DgRPC_BUILD_GRPC_CSHARP_PLUGIN=OFF
  -DgRPC_BUILD_GRPC_NODE_PLUGIN=OFF
  -DgRPC_BUILD_GRPC_OBJECTIVE_C_PLUGIN=OFF
  -DgRPC_BUILD_GRPC_PHP_PLUGIN=ON
  -DgRPC_BUILD_GRPC_PYTHON_PLUGIN=ON
  -DgRPC_BUILD_GRPC_RUBY_PLUGIN=ON
)
# Reconfigure only when there is no build yet or the arguments changed.
stamp="${cmake_args[*]}"
if [[ ! -f $bld/build.ninja || "$(cat "$bld/.configured" 2>/dev/null)" != "$stamp" ]]; then
  log "configuring"
  mkdir -p "$bld"
  rm -f "$bld/.configured"
  nice -n 10 cmake -S "$tree" -B "$bld" "${cmake_args[@]}" >&2
  printf '%s' "$stamp" > "$bld/.configured"
fi

# 4. Build only the runtime libraries the server loads (ninja pulls in their
# in-tree dependencies; listed explicitly so all of them are surely built).
targets=(gpr address_sorting upb grpc grpc++)
log "building ${targets[*]} (-j$jobs, nice 10)"
nice -n 10 ninja -C "$bld" -j "$jobs" "${targets[@]}" >&2

# 5. Copy each library under Debian's file name with its SONAME link, e.g.
# libgrpc.so.29.0.0 + libgrpc.so.29 -> libgrpc.so.29.0.0. No unversioned
# libX.so links: nothing is meant to link against these.
mkdir -p "$lib"
for name in gpr address_sorting upb grpc grpc++; do
  link=$bld/lib$name.so
  [[ -L $link ]] || { log "missing $link"; exit 1; }
  real=$(readlink -f "$link")
  file=$(basename "$real")
  soname=$(objdump -p "$real" | awk '$1 == "SONAME" {print $2}')
  [[ -n $soname ]] || { log "no SONAME in $real"; exit 1; }
  if ! cmp -s "$real" "$lib/$file"; then
    cp "$real" "$lib/$file.tmp" && mv "$lib/$file.tmp" "$lib/$file"
  fi
  [[ $(readlink "$lib/$soname" 2>/dev/null) == "$file" ]] || ln -sfn "$file" "$lib/$soname"
done

echo "$lib"
