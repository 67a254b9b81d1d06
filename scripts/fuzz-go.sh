#!/usr/bin/env bash
# Runs every Go fuzz target of the gateway (func FuzzXxx(f *testing.F)),
# one after another, each for FUZZ_TIME (default 60s), and prints per
# target the executions count and whether a crash was found. Exits 1 when
# any target crashed (or failed to run), 0 otherwise. The count is the
# last that go test reported (every 3s; "-" when it crashed before one).
#   scripts/fuzz-go.sh [TARGET...]    only the named targets (e.g. FuzzQueryString)
# Environment: FUZZ_TIME (a go test -fuzztime value: 60s, 5m, 10000x),
# GO (default go). The generated code must exist: make gateway-gen.
# A crashing input is written by go test to the target's package, under
# testdata/fuzz/<target>/; rerun it with the go test -run line it prints,
# and commit it with the fix as a regression seed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
gateway_dir=$root/gateway
fuzz_time=${FUZZ_TIME:-60s}
go=${GO:-go}

if [[ ! -d $gateway_dir/gen ]]; then
  echo "fuzz-go.sh: $gateway_dir/gen is missing; run make gateway-gen first" >&2
  exit 2
fi
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

# go test -list prints a package's matching test names, then its "ok"
# line: "ok  <package>  <time>". A package that does not build fails it.
listing=$(cd "$gateway_dir" && "$go" test -list '^Fuzz' ./...)
targets=() # "package target"
names=()
while IFS= read -r line; do
  case $line in
    Fuzz*) names+=("$line") ;;
    ok*)
      pkg=$(awk '{print $2}' <<<"$line")
      for name in "${names[@]}"; do
        targets+=("$pkg $name")
      done
      names=()
      ;;
  esac
done <<<"$listing"
if ((${#targets[@]} == 0)); then
  echo "fuzz-go.sh: no fuzz targets found under $gateway_dir" >&2
  exit 2
fi

# wanted reports whether target $1 was asked for: named on the command
# line, or every target when none was.
selected=("$@")
wanted() {
  local w
  ((${#selected[@]} == 0)) && return 0
  for w in "${selected[@]}"; do
    [[ $w == "$1" ]] && return 0
  done
  return 1
}

failed=0
ran=0
summary=()
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  wanted "$name" || continue
  ran=$((ran + 1))
  log=$logs/$name.log
  echo "== $name ($pkg), $fuzz_time" >&2
  status=0
  (cd "$gateway_dir" && "$go" test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzz_time" "$pkg") >"$log" 2>&1 ||
    status=$?
  # Progress lines: "fuzz: elapsed: 20s, execs: 77706 (3045/sec), new interesting: ..."
  execs=$(sed -n 's/^fuzz: elapsed: [^,]*, execs: \([0-9]*\) .*/\1/p' "$log" | tail -n 1)
  # A new crashing input: "Failing input written to testdata/fuzz/<target>/<hash>";
  # a seed that fails: "failure while testing seed corpus entry: <target>/<name>".
  crash=$(sed -n 's/^ *Failing input written to \(.*\)$/\1/p' "$log" | tail -n 1)
  seed=$(sed -n 's/^failure while testing seed corpus entry: \(.*\)$/\1/p' "$log" | tail -n 1)
  if ((status == 0)); then
    result="no crash"
  elif [[ -n $crash ]]; then
    result="CRASH: ${pkg#parley/}/$crash"
    failed=1
  elif [[ -n $seed ]]; then
    result="CRASH: seed corpus entry $seed"
    failed=1
  else
    result="FAILED to run (exit $status)"
    failed=1
  fi
  if ((status != 0)); then
    # The failure's report: from the first --- FAIL (or the whole log).
    sed -n '/^--- FAIL/,$p' "$log" | grep -v '^fuzz: elapsed' >&2 || true
    grep -q -- '^--- FAIL' "$log" || cat "$log" >&2
  fi
  echo "   ${execs:--} execs, $result" >&2
  summary+=("$(printf '%-20s %-44s %12s  %s' "$name" "${pkg#parley/gateway/}" "${execs:--}" "$result")")
done
if ((ran == 0)); then
  echo "fuzz-go.sh: no fuzz target named $*" >&2
  exit 2
fi

printf '\n%-20s %-44s %12s  %s\n' target package execs result
printf '%s\n' "${summary[@]}"
exit "$failed"
