#!/usr/bin/env bash
# Runs the C++ libFuzzer targets (tests/fuzz/, built by `make fuzz-cpp` into
# build/fuzz with clang, ASan and UBSan), one after another, each for
# FUZZ_TIME (default 60s), and prints per target the executions and whether
# a crash was found. Exits 1 when any target crashed (or failed to run).
#   scripts/fuzz-cpp.sh [TARGET...]          fuzz (e.g. token_fuzzer)
#   scripts/fuzz-cpp.sh --corpus [TARGET...] run each seed corpus once
# FUZZ_TIME: 90 or 90s (seconds), 10m (minutes), or 10000x (executions), as
# for scripts/fuzz-go.sh. FUZZ_BIN_DIR: where the fuzzers are (default
# build/fuzz/tests/fuzz). Each target starts from its seed corpus,
# tests/fuzz/corpus/<target>/, which it only reads; what it finds goes to
# build/fuzz/corpus/<target>/, and a crashing input to
# build/fuzz/artifacts/<target>/crash-*: rerun it with `<fuzzer> <file>`,
# and commit it into the seed corpus with its fix.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin_dir=${FUZZ_BIN_DIR:-$root/build/fuzz/tests/fuzz}
seeds=$root/tests/fuzz/corpus
work=$root/build/fuzz

corpus_only=0
if [[ ${1:-} == --corpus ]]; then
  corpus_only=1
  shift
fi

fuzz_time=${FUZZ_TIME:-60s}
case $fuzz_time in
  *x) limit=(-runs="${fuzz_time%x}") ;;
  *m) limit=(-max_total_time=$((${fuzz_time%m} * 60))) ;;
  *s) limit=(-max_total_time="${fuzz_time%s}") ;;
  *[!0-9]* | '')
    echo "fuzz-cpp.sh: FUZZ_TIME=$fuzz_time is none of 90, 90s, 10m, 10000x" >&2
    exit 2
    ;;
  *) limit=(-max_total_time="$fuzz_time") ;;
esac

targets=("$@")
if ((${#targets[@]} == 0)); then
  for dir in "$seeds"/*/; do targets+=("$(basename "$dir")"); done
fi
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

failed=0
summary=()
for t in "${targets[@]}"; do
  fuzzer=$bin_dir/$t
  if [[ ! -x $fuzzer || ! -d $seeds/$t ]]; then
    echo "fuzz-cpp.sh: no fuzzer $fuzzer or no seed corpus $seeds/$t" >&2
    exit 2
  fi
  log=$logs/$t.log
  status=0
  if ((corpus_only)); then
    # -runs=0: every file of the corpus once, then stop.
    seeds_n=$(find "$seeds/$t" -type f | wc -l)
    mkdir -p "$work/artifacts/$t"
    "$fuzzer" -runs=0 -print_final_stats=1 -artifact_prefix="$work/artifacts/$t/" \
      "$seeds/$t" >"$log" 2>&1 || status=$?
  else
    echo "== $t, $fuzz_time" >&2
    mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
    "$fuzzer" "${limit[@]}" -timeout=30 -print_final_stats=1 \
      -artifact_prefix="$work/artifacts/$t/" "$work/corpus/$t" "$seeds/$t" \
      >"$log" 2>&1 || status=$?
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  crash=$(sed -n 's/^Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
  if ((status == 0)); then
    result="no crash"
  else
    failed=1
    result="CRASH${crash:+: ${crash#"$root"/}}"
    [[ -n $crash ]] || result="FAILED (exit $status)"
    # The report: from the sanitizer's or the check's first line on.
    grep -v '^#[0-9]' "$log" | grep -A 60 -m 1 -E 'ERROR|FUZZ_CHECK|runtime error' >&2 ||
      tail -n 40 "$log" >&2
  fi
  if ((corpus_only)); then
    summary+=("$(printf '%-18s %6s seeds  %s' "$t" "$seeds_n" "$result")")
  else
    echo "   ${execs:--} execs, $result" >&2
    summary+=("$(printf '%-18s %12s  %s' "$t" "${execs:--}" "$result")")
  fi
done

if ((corpus_only)); then
  printf '%s\n' "${summary[@]}"
else
  printf '\n%-18s %12s  %s\n' target execs result
  printf '%s\n' "${summary[@]}"
fi
exit "$failed"
