# The benchmark suite (issue 5; docs/benchmarks.md).
#
#   make loadgen       build the server and clients/loadgen (parley_loadgen)
#   make bench-smoke   a few seconds of every loadgen scenario at tiny sizes
#                      against the real server, then the cluster's on three
#                      servers (scripts/bench/cluster.sh smoke, ~20 s), then
#                      the peers' on Parley and the naive server (no
#                      Centrifugo; scripts/bench/peers.sh smoke); fails on
#                      any loadgen error (part of `make test`)
#   make bench         the whole suite (tens of minutes): results appended to
#                      build/bench/results.jsonl, then docs/benchmarks.md and
#                      the plots in docs/bench/ regenerated from them.
#                      BENCH_PARTS="fanout streams" runs only those parts.
#   make bench-cluster the cluster part (scripts/bench/cluster.sh: its own
#                      PostgreSQL and Redis, one server against three, a
#                      server killed under 10,000 streams; ~10 minutes),
#                      then the report. BENCH_CLUSTER_PARTS="resume" runs
#                      only those parts (fanout durable resume).
#   make bench-peers   Parley against Centrifugo v6 and a naive gRPC fan-out
#                      server (scripts/bench/peers.sh; docs/benchmarks.md, section 9):
#                      installs Centrifugo (a benchmark dependency only) into
#                      build/tools/bin, builds the naive server and peerload,
#                      runs A B A B rate sweeps per shape and pair, then the
#                      report. BENCH_PEERS_SHAPES="2000" runs only that shape.
#   make bench-profile where a durable send's server CPU goes: perf during
#                      the closed loop of sends, and the floor, on one server
#                      (scripts/bench/profile-durable.sh); writes
#                      docs/bench/durable-profile.md
#   make bench-report  regenerate docs/benchmarks.md and the plots only
#   make bench-ndebug  the suite again with gRPC's libraries rebuilt with
#                      -DNDEBUG (scripts/bench/grpc-ndebug.sh builds Debian's
#                      own gRPC source once, ~30 minutes on 2 cores, into
#                      build/grpc-ndebug/lib); Parley's binaries are the same
#
# Not part of `make test`: the suite needs the whole machine for a while.

LOADGEN_BIN := $(BUILD)/release/clients/loadgen/parley_loadgen
BENCH_DIR := $(BUILD)/bench
BENCH_PARTS ?=
BENCH_CLUSTER_PARTS ?=
BENCH_PEERS_SHAPES ?=
# The peers benchmark: its load generator (a Go module of its own that
# uses gateway/gen), and Centrifugo, built from source with go install.
PEERLOAD_DIR := $(ROOT)/scripts/bench/peerload
PEERLOAD_BIN := $(BIN)/peerload
NAIVEWS_BIN := $(BIN)/naivews
CENTRIFUGO_MODULE := github.com/centrifugal/centrifugo/v6
CENTRIFUGO_VERSION := v6.9.1
CENTRIFUGO_BIN := $(TOOLS)/centrifugo

.PHONY: loadgen bench bench-ndebug bench-smoke bench-cluster bench-report bench-deps \
	bench-peers peerload centrifugo bench-profile

bench-deps:
	@scripts/deps.sh bench

loadgen: $(BUILD)/release/build.ninja
	cmake --build $(BUILD)/release --target parley_server parley_loadgen naive_fanout

peerload: $(PEERLOAD_BIN) $(NAIVEWS_BIN)

$(PEERLOAD_BIN): $(GATEWAY_GEN_STAMP) $(wildcard $(PEERLOAD_DIR)/*.go) $(PEERLOAD_DIR)/go.mod $(PEERLOAD_DIR)/go.sum
	@mkdir -p $(dir $@)
	cd $(PEERLOAD_DIR) && $(GO) build -trimpath -o $@ .

# The WebSocket floor of the peers benchmark (peerload --mode=naive-ws).
$(NAIVEWS_BIN): $(wildcard $(PEERLOAD_DIR)/naivews/*.go) $(PEERLOAD_DIR)/go.mod $(PEERLOAD_DIR)/go.sum
	@mkdir -p $(dir $@)
	cd $(PEERLOAD_DIR) && $(GO) build -trimpath -o $@ ./naivews

centrifugo: $(CENTRIFUGO_BIN)

$(CENTRIFUGO_BIN):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install $(CENTRIFUGO_MODULE)@$(CENTRIFUGO_VERSION)

bench-smoke: cluster-deps loadgen $(GATEWAY_BIN) $(PEERLOAD_BIN) $(NAIVEWS_BIN)
	BENCH_DIR=$(BENCH_DIR) scripts/bench/run.sh smoke
	BENCH_DIR=$(BENCH_DIR) scripts/bench/cluster.sh smoke
	cd $(PEERLOAD_DIR) && $(GO) vet ./... && $(GO) test -count=1 ./...
	BENCH_DIR=$(BENCH_DIR) scripts/bench/peers.sh smoke

bench-peers: bench-deps loadgen $(GATEWAY_BIN) $(PEERLOAD_BIN) $(NAIVEWS_BIN) $(CENTRIFUGO_BIN)
	BENCH_DIR=$(BENCH_DIR) scripts/bench/peers.sh full $(BENCH_PEERS_SHAPES); rc=$$?; \
	  $(MAKE) bench-report && exit $$rc

bench-profile: bench-deps loadgen
	BENCH_DIR=$(BENCH_DIR) scripts/bench/profile-durable.sh

bench: bench-deps loadgen $(GATEWAY_BIN)
	BENCH_DIR=$(BENCH_DIR) scripts/bench/run.sh full $(BENCH_PARTS); rc=$$?; \
	  $(MAKE) bench-report && exit $$rc

bench-ndebug: bench-deps loadgen $(GATEWAY_BIN)
	GRPC_NDEBUG_DIR=$(BUILD)/grpc-ndebug scripts/bench/grpc-ndebug.sh
	GRPC_LIB_DIR=$(BUILD)/grpc-ndebug/lib BENCH_DIR=$(BENCH_DIR) \
	  scripts/bench/run.sh full $(BENCH_PARTS); rc=$$?; \
	  $(MAKE) bench-report && exit $$rc

bench-cluster: bench-deps cluster-deps loadgen
	BENCH_DIR=$(BENCH_DIR) scripts/bench/cluster.sh full $(BENCH_CLUSTER_PARTS); rc=$$?; \
	  $(MAKE) bench-report && exit $$rc

bench-report:
	python3 scripts/bench/report.py $(BENCH_DIR)/results.jsonl $(ROOT)/docs
