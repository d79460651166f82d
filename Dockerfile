# syntax=docker/dockerfile:1
# One image for the five workers. Each Cloud Run resource chooses its command
# (`/usr/local/bin/pg-copy run …`, `/usr/local/bin/cdc-sync sync …`); the default serves
# log-ingest. `make image` builds it; cloudbuild.yaml builds and pushes it in Google Cloud.
#
# Stages: chef (toolchain + cargo-chef) → planner (dependency recipe) → builder (dependencies
# in their own cached layer, then the workspace; `image` profile: release, no debug info,
# stripped) → runtime (distroless cc: glibc, libgcc, CA certificates, uid 65532, no shell).
# The builder's Debian 12 matches the runtime's glibc 2.36.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Dependencies only: this layer is reused until Cargo.toml or Cargo.lock change.
RUN cargo chef cook --profile image --locked --recipe-path recipe.json \
    -p pg-copy -p cdc-sync -p log-ingest -p mart-build -p monitor
COPY . .
RUN cargo build --profile image --locked -p pg-copy -p cdc-sync -p log-ingest -p mart-build -p monitor \
    && scripts/image-stage.sh target/image /stage

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=builder /stage/ /
ENV SLUICE_PIPELINE=/etc/sluice/pipeline.yaml \
    RUST_BACKTRACE=0
WORKDIR /etc/sluice
USER 65532:65532
EXPOSE 8080
CMD ["/usr/local/bin/log-ingest", "serve"]
