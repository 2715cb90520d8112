# Multi-stage build: compile with the Rust toolchain, run on a slim Debian as a
# non-root user. Migrations, index templates and the console (console/) are compiled
# into the binary.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
# Cargo refuses a manifest whose declared targets have no file, and Cargo.toml declares
# the `bombs` test (harness = false, tests/bombs.rs): copy that one file, not tests/.
# The build only needs it to exist, and every file copied here is part of the cache key
# of the compile below: with all of tests/ (API tests, fixtures, browser tests) any test
# edit would rebuild the release binary from scratch. bin/check-image (run by .ci/run)
# builds from exactly what these COPY lines copy, so a file missing here fails CI.
COPY tests/bombs.rs tests/bombs.rs
COPY src src
COPY migrations migrations
COPY index-templates index-templates
COPY console console
COPY benches benches
RUN cargo build --release --locked --bin arrears

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/arrears arrears
COPY --from=build /src/target/release/arrears /usr/local/bin/arrears
USER arrears
WORKDIR /var/lib/arrears
# DATA_DIR, owned by the service's user, so a volume mounted on it starts writable.
RUN mkdir -p /var/lib/arrears/data
ENV BIND=0.0.0.0:8080 \
    METRICS_BIND=0.0.0.0:9464 \
    DATA_DIR=/var/lib/arrears/data \
    LOG_FORMAT=json
EXPOSE 8080 9464
HEALTHCHECK --interval=10s --timeout=3s --retries=12 CMD curl -fsS http://127.0.0.1:8080/health/ready >/dev/null || exit 1
ENTRYPOINT ["arrears"]
CMD ["serve"]
