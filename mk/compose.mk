# Checks of docker-compose.yml. `config -q` parses, validates against the
# schema and interpolates, without contacting any container engine. COMPOSE
# picks the client: Debian's docker-compose v1 (deps.sh test) by default,
# `make test-compose-config COMPOSE="docker compose"` for Compose v2.

COMPOSE ?= docker-compose

.PHONY: test-compose-config test-compose
test-compose-config:
	$(COMPOSE) -f $(ROOT)/docker-compose.yml config -q

# The demo for real: podman builds both images from locally made base images
# and runs the compose project; see scripts/compose-test.sh. Not part of
# `make test` (it builds two images); .ci/run runs it after `make test`.
test-compose: gateway-tools
	scripts/compose-test.sh $(GRPCURL)
