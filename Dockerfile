# The reconciler-host image. No guest inside: the Deployment mounts one (deploy/manager).
#
#   docker build -t ghcr.io/wasm-reconciler/reconciler-host:0.1.0 .
#
# The binary is the release build of `make release` (cargo build --release --locked -p
# reconciler-host), the same command, profile and lock file the benchmarks run.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p reconciler-host

# glibc and libgcc only (TLS is rustls): no shell, no package manager. Runs as uid 65532 and
# writes nothing outside its mounted compile-cache folder, so a read-only root filesystem works.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/reconciler-host /usr/local/bin/reconciler-host
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/reconciler-host"]
CMD ["run", "--guest", "/guest/guest.wasm"]
