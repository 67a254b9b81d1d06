# The Parley REST gateway (grpc-gateway). Build context: the repository root
#   docker build -f docker/gateway.Dockerfile -t parley-gateway .
# It is built by `make gateway`, exactly as on a developer machine, after
# scripts/deps.sh has installed what that needs.

ARG GO_VERSION=1.26
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# The image pins GOTOOLCHAIN=local; the Makefile lets go.mod's go line fetch
# a newer toolchain through the module proxy, and so does the image. A static
# binary runs on any base.
ENV GOTOOLCHAIN=auto CGO_ENABLED=0
COPY scripts/deps.sh scripts/deps.sh
RUN scripts/deps.sh gateway && rm -rf /var/lib/apt/lists/*
# Modules (and the toolchain go.mod asks for) in their own cached layer.
COPY gateway/go.mod gateway/go.sum gateway/
RUN cd gateway && go mod download
COPY . .
RUN make gateway

# Nothing but the static binary: no shell, no package manager, no libc.
FROM scratch
COPY --from=build /src/build/bin/parley-gateway /usr/local/bin/parley-gateway
ENV PARLEY_HTTP_ADDR=0.0.0.0:8080 \
    PARLEY_GRPC_SERVER=server:50051
EXPOSE 8080
# The same unprivileged ids as the server image; scratch has no passwd file,
# so they are numeric.
USER 10001:10001
STOPSIGNAL SIGTERM
# The binary probes its own /healthz, which asks the server's grpc.health.v1:
# healthy means the whole path answers, and the image needs no curl.
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=5 \
  CMD ["/usr/local/bin/parley-gateway", "--healthcheck"]
ENTRYPOINT ["/usr/local/bin/parley-gateway"]
