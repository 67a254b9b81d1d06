# Checks of docker-compose.yml. `config -q` parses, validates against the
# schema and interpolates, without contacting any container engine. COMPOSE
# picks the client: Debian's docker-compose v1 (deps.sh test) by default,
# `make test-compose-config COMPOSE="docker compose"` for Compose v2.

COMPOSE ?= docker-compose

.PHONY: test-compose-config
test-compose-config:
	$(COMPOSE) -f $(ROOT)/docker-compose.yml config -q
