// Package validate checks docker-compose.yml and the Dockerfile without a
// Docker engine. It is its own module so that the compose loader and the
// Dockerfile parser it needs stay out of postured's go.mod.
package validate
