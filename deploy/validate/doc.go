// Package validate checks what deploys postured without a Docker engine or
// a cluster: docker-compose.yml and the Dockerfile, the Kubernetes
// manifests, the Helm chart and the Grafana dashboard. It is its own
// module so that the compose loader, the Dockerfile parser, Helm and the
// Kubernetes API types it needs stay out of postured's go.mod.
package validate
