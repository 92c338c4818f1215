# The producer, worker, consumer and admin binaries in one small image (see docker-compose.yml).
#
#   docker build -t health-pipeline .
#   docker run --rm health-pipeline producer --help
#
# The compiler is the one CI tests with; it must stay at or above the workspace's rust-version.
ARG RUST_VERSION=1.95

# --- planner: the workspace's manifests plus stub target roots (members one or two levels
# deep: bench/broker is a member too), so that the dependency layer
# below is rebuilt only when a manifest or Cargo.lock changes, not on every source edit.
FROM rust:${RUST_VERSION}-bookworm AS planner
WORKDIR /src
COPY . .
RUN set -eu; mkdir /skeleton; \
    find . -name Cargo.toml -not -path './target/*' -exec cp --parents {} /skeleton/ \; ; \
    cp Cargo.lock /skeleton/; \
    for f in */src/lib.rs */*/src/lib.rs; do [ -e "$f" ] && mkdir -p "/skeleton/${f%/*}" && : > "/skeleton/$f"; done; \
    for f in */src/main.rs */*/src/main.rs */src/bin/*.rs */benches/*.rs */examples/*.rs */tests/*.rs */build.rs; do \
        [ -e "$f" ] || continue; mkdir -p "/skeleton/${f%/*}"; echo 'fn main() {}' > "/skeleton/$f"; \
    done

# --- builder: dependencies first (cached), then the workspace itself.
FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY --from=planner /skeleton/ ./
RUN cargo build --release --locked -p producer -p worker -p consumer -p admin
COPY . .
# The stubs above are newer than the real sources' timestamps: make cargo rebuild our crates.
RUN find . -name '*.rs' -not -path './target/*' -exec touch {} + \
    && cargo build --release --locked -p producer -p worker -p consumer -p admin \
    && mkdir /out \
    && cp target/release/producer target/release/worker target/release/consumer target/release/admin /out/

# --- runtime: the four binaries, a non-root user, the key store directory.
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 pipeline \
    && useradd --system --uid 10001 --gid pipeline --home-dir /app --shell /usr/sbin/nologin pipeline \
    && install -d -o pipeline -g pipeline -m 0700 /var/lib/pipeline/keys
COPY --from=builder /out/producer /out/worker /out/consumer /out/admin /usr/local/bin/
# The defaults are compiled in; the file is here to read and to copy for `--config FILE`.
COPY config/ /app/config/
WORKDIR /app
# No AMQP_URL default: each service is given its own user's URL (docker-compose.yml).
ENV KEY_STORE=/var/lib/pipeline/keys \
    RUST_LOG=info
# A named volume mounted here starts with this directory's owner and 0700 mode.
VOLUME ["/var/lib/pipeline/keys"]
USER pipeline
CMD ["worker"]
