# Checks of docker-compose.yml. `config -q` parses, validates against the
# schema and interpolates, without contacting any container engine. COMPOSE
# picks the client: Debian's docker-compose v1 (deps.sh test) by default,
# `make test-compose-config COMPOSE="docker compose"` for Compose v2.

COMPOSE ?= docker-compose

.PHONY: test-compose-config test-compose
# The proxies in front in docker/ are scripts/haproxy-front.sh's output.
test-compose-config:
	$(COMPOSE) -f $(ROOT)/docker-compose.yml config -q
	PARLEY_FRONT_RESOLVERS=1 scripts/haproxy-front.sh :8080 :50051 gateway:8080 server:50051 | \
	  diff -u docker/haproxy-front.cfg - || { echo "regenerate docker/haproxy-front.cfg" >&2; exit 1; }
	PARLEY_FRONT_RESOLVERS=1 scripts/haproxy-front.sh :8080 :50051 gateway-postgres:8080 server-postgres:50051 | \
	  diff -u docker/haproxy-front-postgres.cfg - || { echo "regenerate docker/haproxy-front-postgres.cfg" >&2; exit 1; }

# The demo for real: podman builds both images from locally made base images
# and runs the compose project; see scripts/compose-test.sh. Not part of
# `make test` (it builds two images); .ci/run runs it after `make test`.
test-compose: gateway-tools
	scripts/compose-test.sh $(GRPCURL)
