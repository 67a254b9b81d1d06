# The browser tests (tests/browser/): playwright-core, pinned in
# tests/browser/package.json and package-lock.json, drives Debian's Chromium
# through the chat page that the real gateway serves in front of the real
# server, under node's built-in test runner (node --test).
#
#   make test-browser                        run them
#   make test-browser PARLEY_SCREENSHOTS=1   also rewrite docs/screenshots/*.png
#
# The npm packages go into tests/browser/node_modules (git-ignored), again
# whenever the lock file changes.

BROWSER_DIR := $(ROOT)/tests/browser
# npm's own record of an install, newer than the lock file once npm ci ran.
BROWSER_MODULES := $(BROWSER_DIR)/node_modules/.package-lock.json
PARLEY_SCREENSHOTS ?=
# scripts/deps.sh puts a Node.js >= 20 here when the machine's is older.
BROWSER_PATH := /usr/local/lib/parley-node/bin:$(PATH)

.PHONY: test-browser browser-deps

browser-deps:
	@scripts/deps.sh browser

$(BROWSER_MODULES): $(BROWSER_DIR)/package.json $(BROWSER_DIR)/package-lock.json | browser-deps
	cd $(BROWSER_DIR) && PATH=$(BROWSER_PATH) npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

test-browser: browser-deps server $(GATEWAY_BIN) $(BROWSER_MODULES)
	cd $(BROWSER_DIR) && PATH=$(BROWSER_PATH) PARLEY_SERVER_BIN=$(SERVER_BIN) PARLEY_GATEWAY_BIN=$(GATEWAY_BIN) \
	  PARLEY_SCREENSHOTS=$(PARLEY_SCREENSHOTS) node --test --test-reporter=spec chat.test.mjs
