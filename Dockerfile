# The images of the platform's two services, `api` and `worker`, and of `alert-log` (compose's
# default Alertmanager receiver, alertmanager/alert-log), from one build of the workspace:
#
#   docker compose build                     # passes every version from .env
#   docker build --target api .              # the defaults below, which equal .env's
#
# .env is where the versions are set: compose passes them as build arguments. The defaults of the
# ARGs below repeat them so that a plain `docker build` works and BuildKit's check
# InvalidDefaultArgInFrom (an ARG in FROM without a valid default) passes; a test
# (`cargo test -p xtask --test compose`) fails while a default differs from .env, and
# `cargo test -p xtask --test dockerfile` runs BuildKit's Dockerfile checks (`docker build --check`)
# on this file. Needs BuildKit (the default builder since Docker Engine 23) for the cache mounts;
# no `# syntax=` line, so that no unpinned frontend image is pulled.
#
# Stages: `build` compiles the three binaries once (release, stripped, Cargo.lock as is);
# `runtime` is the distroless "cc" base (glibc and libgcc, nothing else: no shell, no package
# manager, no curl) running as its non-root user 65532; `api`, `worker` and `alert-log` add one
# binary each. The health checks run
# the binary itself (`--health-check`), so the image needs no HTTP client. TLS, where the services
# use it, is rustls with compiled-in roots: no CA bundle or OpenSSL needed.

# Equal to RUST_VERSION and RUNTIME_IMAGE of .env (checked by a test).
ARG RUST_VERSION=1.95.0
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f

# Debian 12 (bookworm), like the distroless runtime: the binaries link against the same glibc.
FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# .dockerignore lets in only the workspace (manifests, Cargo.lock, the member crates).
COPY . .
# The registry and the target directory are cache mounts: a rebuild after a source change
# recompiles only the workspace crates. The binaries are copied out of the mount before it goes.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    CARGO_PROFILE_RELEASE_STRIP=symbols \
    cargo build --release --locked --package api --bin api --package worker --bin worker \
        --package alert-log --bin alert-log \
    && mkdir -p /out/bin /out/exports \
    && cp target/release/api target/release/worker target/release/alert-log /out/bin/

FROM ${RUNTIME_IMAGE} AS runtime
# Equal to APP_VERSION of .env (checked by a test), the workspace version.
ARG APP_VERSION=0.1.0
ARG SOURCE_URL=""
ARG VCS_REF=""
LABEL org.opencontainers.image.version="${APP_VERSION}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.vendor="orgraph" \
      org.opencontainers.image.licenses="Apache-2.0"
# Distroless' `nonroot` user, by number, so that the runtime can check it is not root.
USER 65532:65532

FROM runtime AS api
LABEL org.opencontainers.image.title="api" \
      org.opencontainers.image.description="The org-graph HTTP API (axum on Postgres and Redis), exporting OpenTelemetry metrics over OTLP"
COPY --from=build /out/bin/api /usr/local/bin/api
# The binary's default is 127.0.0.1:8000, which nothing outside the container could reach.
ENV API_ADDR=0.0.0.0:8000
EXPOSE 8000
# GET /health/live on the port of API_ADDR, 2 s timeout; exit 0 on 200.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/api", "--health-check"]
ENTRYPOINT ["/usr/local/bin/api"]

FROM runtime AS worker
LABEL org.opencontainers.image.title="worker" \
      org.opencontainers.image.description="The org-graph job worker (apalis on Postgres: analyses, exports, interventions), exporting OpenTelemetry metrics over OTLP"
COPY --from=build /out/bin/worker /usr/local/bin/worker
# The export directory exists and belongs to the runtime user, so a named volume mounted there
# starts out writable by it (Docker copies the directory's ownership into an empty volume).
COPY --from=build --chown=65532:65532 /out/exports /var/lib/orgraph/exports
ENV WORKER_HEALTH_ADDR=0.0.0.0:8001 \
    EXPORT_DIR=/var/lib/orgraph/exports
EXPOSE 8001
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/worker", "--health-check"]
ENTRYPOINT ["/usr/local/bin/worker"]

FROM runtime AS alert-log
LABEL org.opencontainers.image.title="alert-log" \
      org.opencontainers.image.description="The default Alertmanager receiver of the compose stack: one JSON line per alert notified, on stdout"
COPY --from=build /out/bin/alert-log /usr/local/bin/alert-log
# No ENV for the address: the binary's default, 127.0.0.1:9099, is right where it runs, in
# Alertmanager's network namespace (compose's `network_mode: service:alertmanager`), whose
# alertmanager.yml posts to http://127.0.0.1:9099. Run elsewhere, set ALERT_LOG_ADDR.
EXPOSE 9099
# GET /health on the port of ALERT_LOG_ADDR, 2 s timeout; exit 0 on 200.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/alert-log", "--health-check"]
ENTRYPOINT ["/usr/local/bin/alert-log"]
