# The Parley gRPC server. Build context: the repository root
#   docker build -f docker/server.Dockerfile -t parley-server .
# Packages come from scripts/deps.sh, the same script the Makefile runs, so an
# image and a developer machine build against the same libraries.

FROM debian:bookworm-slim AS build
WORKDIR /src
# deps.sh alone first: this slow layer is rebuilt only when the script changes.
COPY scripts/deps.sh scripts/deps.sh
RUN scripts/deps.sh server
COPY . .
RUN cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
 && cmake --build build/release --target parley_server \
 && strip build/release/server/parley_server

FROM debian:bookworm-slim
COPY scripts/deps.sh /tmp/deps.sh
RUN /tmp/deps.sh runtime \
 && rm -rf /var/lib/apt/lists/* /tmp/deps.sh \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin parley \
 && mkdir /data && chown parley:parley /data
# Where docker-compose.yml mounts the volume holding the edge secret
# (--edge_secret_file), shared with the gateways: owned by parley, so a new
# volume mounted there is too, and the server can create the secret in it.
RUN mkdir /edge && chown parley:parley /edge
COPY --from=build /src/build/release/server/parley_server /usr/local/bin/parley_server

# The server reads every flag's default from PARLEY_<FLAG>; flags given on the
# command line (docker run ... IMAGE --flag=value) still win.
ENV PARLEY_GRPC_ADDR=0.0.0.0:50051 \
    PARLEY_DATA_DIR=/data
EXPOSE 50051
# A new named volume starts as a copy of this directory, owned by parley.
VOLUME /data
USER 10001:10001
STOPSIGNAL SIGTERM
# Only proves the port accepts connections: Debian ships no grpc.health.v1
# probe. The gateway's health check goes through the health service itself.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=5 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PARLEY_GRPC_ADDR##*:}"]
ENTRYPOINT ["/usr/local/bin/parley_server"]
