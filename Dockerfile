# syntax=docker/dockerfile:1
# The stagectl image: one static binary (rustls, no OpenSSL, no libc at run time) and the CA
# certificates, running as a non-root user. It is made for workflow steps: in a pod, stagectl
# reaches the API server by the service IP Kubernetes gives it. Outside a pod, a kubeconfig may
# name its server by host name: glibc's "files" and "dns" lookups are part of libc itself since
# 2.34, so the static binary resolves it through the /etc/hosts and /etc/resolv.conf the
# container runtime provides (tests/it/image.rs checks /etc/hosts).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crates ./crates
# The built-in pipeline definition, the task-id rule its Sensors carry and the manifests every
# pipeline shares (`stagectl pipeline render` writes them) are compiled in.
COPY workflow-templates ./workflow-templates
# A static glibc binary: the image has no libc to link against. The explicit target keeps the
# static flag away from build scripts and proc macros.
ENV RUSTFLAGS="-C target-feature=+crt-static"
RUN cargo build --release --locked --target x86_64-unknown-linux-gnu \
 && cp target/x86_64-unknown-linux-gnu/release/stagectl /stagectl

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /stagectl /usr/local/bin/stagectl
# 65532 is the nonroot user of the distroless images.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/stagectl"]
