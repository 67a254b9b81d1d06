# make test-cluster: cluster mode end to end (docs/cluster.md, "Tests"). The
# tests start their own PostgreSQL, Redis, three servers, two gateways and
# HAProxy on free loopback ports (tests/integration/ha_cluster_test.go);
# `make test-integration` skips them (PARLEY_TEST_CLUSTER unset).

.PHONY: test-cluster
test-cluster: cluster-deps server $(GATEWAY_BIN)
	cd $(INTEGRATION_DIR) && $(GO) vet ./... && PARLEY_TEST_CLUSTER=1 \
	  $(INTEGRATION_ENV) $(GO) test -count=1 -v -timeout 10m -run '^TestCluster$$' ./...
