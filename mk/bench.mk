# The benchmark suite (issue 5; docs/benchmarks.md).
#
#   make loadgen       build the server and clients/loadgen (parley_loadgen)
#   make bench-smoke   a few seconds of every loadgen scenario at tiny sizes
#                      against the real server; fails on any loadgen error
#                      (part of `make test`)
#   make bench         the whole suite (tens of minutes): results appended to
#                      build/bench/results.jsonl, then docs/benchmarks.md and
#                      the plots in docs/bench/ regenerated from them.
#                      BENCH_PARTS="fanout streams" runs only those parts.
#   make bench-report  regenerate docs/benchmarks.md and the plots only
#
# Not part of `make test`: the suite needs the whole machine for a while.

LOADGEN_BIN := $(BUILD)/release/clients/loadgen/parley_loadgen
BENCH_DIR := $(BUILD)/bench
BENCH_PARTS ?=

.PHONY: loadgen bench bench-smoke bench-report bench-deps

bench-deps:
	@scripts/deps.sh bench

loadgen: $(BUILD)/release/build.ninja
	cmake --build $(BUILD)/release --target parley_server parley_loadgen

bench-smoke: loadgen
	BENCH_DIR=$(BENCH_DIR) scripts/bench/run.sh smoke

bench: bench-deps loadgen $(GATEWAY_BIN)
	BENCH_DIR=$(BENCH_DIR) scripts/bench/run.sh full $(BENCH_PARTS); rc=$$?; \
	  $(MAKE) bench-report && exit $$rc

bench-report:
	python3 scripts/bench/report.py $(BENCH_DIR)/results.jsonl $(ROOT)/docs
