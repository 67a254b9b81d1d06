# make test-abuse: the abuse suite (docs/security.md, "Abuse suite"). The
# probes of issue 19 replayed against the real binaries as `make run` starts
# them, HAProxy in front (tests/integration/abuse_test.go); bounded counts
# and times, about a minute. `make test-integration` skips them
# (PARLEY_TEST_ABUSE unset). Run alone: the floods measure a control
# client's latency.

.PHONY: test-abuse
test-abuse: cluster-deps server $(GATEWAY_BIN)
	cd $(INTEGRATION_DIR) && PARLEY_TEST_ABUSE=1 \
	  $(INTEGRATION_ENV) $(GO) test -count=1 -v -timeout 10m -run '^TestAbuse' ./...
