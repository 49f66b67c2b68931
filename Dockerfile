# syntax=docker/dockerfile:1
#
# postured and mockvendors, as static binaries on distroless (no shell, no
# package manager, non-root).
#
#   docker build -t postured .                                # the service (default: last stage)
#   docker build --target mockvendors -t postured-mocks .     # the mock vendor APIs
#   docker compose up                                         # both, see docker-compose.yml
#
# Two named targets rather than one image holding both binaries: the image
# that runs in production against real tenants then carries no mock server
# (smaller, and nothing in it answers with fake tokens or fake devices),
# while both still come out of one build stage, so one `go build` compiles
# both and BuildKit runs it once for the two compose services.
#
# Binaries are at /postured and /mockvendors; docker-compose.yml's
# healthchecks call them by those paths (deploy/validate checks that
# against the COPY lines below).
#
# The base image ships CA certificates (the vendors are HTTPS) and
# /usr/share/zoneinfo. A Go binary embeds its own zone database only if it
# imports time/tzdata (about 450 KB); postured is meant to, so that it does
# not depend on the image's.
#
# No shell in the final images, so healthchecks run the binaries:
# `postured healthcheck URL` and `mockvendors --healthcheck URL` (GET, exit
# 0 on a 200); docker-compose.yml points them at /healthz.

# Keep in step with the go directive in go.mod (deploy/validate checks it).
ARG GO_VERSION=1.26.8

# The build stage runs on the builder's own platform and cross-compiles to
# the target's (docker buildx build --platform linux/amd64,linux/arm64 .).
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first: this layer is rebuilt only when go.mod/go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/postured ./cmd/mockvendors

# Mock Intune, Jamf Pro, CrowdStrike Falcon and Cloudflare Access over one
# generated fleet, all on :9000 under /intune, /jamf, /crowdstrike, /access.
# Health: /mockvendors --healthcheck http://localhost:9000/healthz
FROM gcr.io/distroless/static-debian12:nonroot AS mockvendors
COPY --from=build /out/mockvendors /mockvendors
# nonroot, numeric so that Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 9000
ENTRYPOINT ["/mockvendors"]
CMD ["--listen", ":9000", "--devices", "5000", "--seed", "1"]

# The service. Mount a config at /etc/postured/postured.yaml (start from
# config.example.yaml); `listen` defaults to :8080.
FROM gcr.io/distroless/static-debian12:nonroot AS postured
COPY --from=build /out/postured /postured
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/postured"]
CMD ["serve", "-c", "/etc/postured/postured.yaml"]
