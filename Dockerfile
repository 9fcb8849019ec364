# syntax=docker/dockerfile:1
# boxoffice: a multi-stage build. The dependency layer is cached apart
# from the source, so a code change rebuilds only the crate itself.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first: a stub crate with the real manifests.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches examples \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && for b in domain journal mail snapshot; do echo 'fn main() {}' > "benches/$b.rs"; done \
    && echo 'fn main() {}' > examples/http_ceiling.rs \
    && cargo build --release --locked --bin boxoffice \
    && rm -rf src
# Then the crate itself (templates and the demo layout are compiled in).
COPY src ./src
COPY templates ./templates
COPY snapshots ./snapshots
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin boxoffice \
    && strip target/release/boxoffice

FROM debian:bookworm-slim
# ca-certificates: smtps / STARTTLS to a real mail server. Not pinned on
# purpose: it should follow Debian's security updates at every build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 boxoffice \
    && useradd --system --uid 10001 --gid boxoffice --home-dir /data --no-create-home boxoffice \
    && mkdir /data \
    && chown boxoffice:boxoffice /data
COPY --from=build /src/target/release/boxoffice /usr/local/bin/boxoffice
COPY snapshots/demo.snap /usr/share/boxoffice/demo.snap
ENV BOXOFFICE_LISTEN=0.0.0.0:8080 \
    BOXOFFICE_DATA_DIR=/data \
    RUST_LOG=info
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["boxoffice", "probe", "--path", "/healthz"]
ENTRYPOINT ["boxoffice"]
CMD ["serve"]
