# syntax=docker/dockerfile:1
# boxoffice: a multi-stage build. The dependency layer is built from the
# manifests alone (cargo-chef's recipe), so it lists no target by hand and
# a new bench, example or binary cannot break it; a code change rebuilds
# only the crate itself. deploy/check.sh replays the build stages' steps
# on the committed tree (see deploy/README.md for what that proves).

FROM rust:1.95-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

# The recipe: the manifests, the lock file and every target they declare.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
# Dependencies, cached until the recipe changes.
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json --bin boxoffice
# Then the crate itself (templates and the demo layout are compiled in).
COPY . .
RUN cargo build --release --locked --bin boxoffice \
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
