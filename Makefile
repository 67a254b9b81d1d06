# Parley: `make run` builds and starts the service on its embedded default;
# `make run-cluster` starts three servers and two gateways on PostgreSQL and
# Redis behind HAProxy (docs/cluster.md); `make test` builds and runs every
# test. All install what is missing first.
# Pieces live in mk/*.mk: server.mk (C++ via CMake), gateway.mk (Go),
# clients.mk (Python example), compose.mk (docker-compose checks), fuzz.mk
# (C++ fuzz targets; `make fuzz` runs them and the Go ones).

SHELL := /bin/bash
ROOT := $(abspath .)
BUILD := $(ROOT)/build
BIN := $(BUILD)/bin
TOOLS := $(BUILD)/tools/bin
export PATH := $(TOOLS):/usr/local/go/bin:$(PATH)
export GOTOOLCHAIN ?= auto
export GOFLAGS ?= -mod=mod
# Paths under the checkout count as relative, so clones share ccache hits.
export CCACHE_BASEDIR := $(ROOT)
# ...and the working directory stays out of the hash (it is in -g's
# output otherwise), so a second worktree builds from the same cache.
export CCACHE_NOHASHDIR := 1

PARLEY_GRPC_PORT ?= 50051
PARLEY_HTTP_PORT ?= 8080
PARLEY_DATA_DIR ?= $(ROOT)/.parley-data

SERVER_BIN := $(BUILD)/release/server/parley_server
CLI_BIN := $(BUILD)/release/clients/cli/parley_cli
GATEWAY_BIN := $(BIN)/parley-gateway

.PHONY: all deps cluster-deps run run-cluster test build clean fuzz
all: build

deps:
	@scripts/deps.sh all

cluster-deps:
	@scripts/deps.sh cluster

include mk/*.mk

build: server gateway

run: deps build
	@scripts/run.sh "$(SERVER_BIN)" "$(GATEWAY_BIN)" "$(PARLEY_GRPC_PORT)" "$(PARLEY_HTTP_PORT)" "$(PARLEY_DATA_DIR)"

# HAProxy on PARLEY_HTTP_PORT (REST) and PARLEY_GRPC_PORT (gRPC), the
# gateways and servers on the ports just above; data in
# $(PARLEY_DATA_DIR)/cluster. See scripts/run-cluster.sh.
run-cluster: deps cluster-deps build
	@scripts/run-cluster.sh "$(SERVER_BIN)" "$(GATEWAY_BIN)" "$(PARLEY_GRPC_PORT)" "$(PARLEY_HTTP_PORT)" "$(PARLEY_DATA_DIR)"

# Unit tests under ASan and TSan, then the integration (one server; then a
# cluster behind HAProxy) and client tests against the release build.
test: deps test-server test-gateway test-cluster test-abuse test-clients test-browser test-compose-config bench-smoke
	@echo "make test: all suites passed"

fuzz: fuzz-go fuzz-cpp

clean:
	rm -rf $(BUILD) gateway/gen
