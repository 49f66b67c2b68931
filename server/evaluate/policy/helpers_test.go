package policy

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// t0 is the fixed clock: a Tuesday, 09:30 in Berlin (CET, UTC+1).
var t0 = time.Date(2026, 11, 24, 8, 30, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

// postures is a PostureSource over a map.
type postures map[string]Posture

func (p postures) DevicePosture(_ context.Context, id string) (Posture, bool) {
	v, ok := p[id]
	return v, ok
}

// decode decodes the rules part of an external_evaluation section, unknown
// keys refused, then applies Defaults and Validate.
func decode(t *testing.T, src string) (Config, error) {
	t.Helper()
	var cfg Config
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("yaml: %v", err)
	}
	cfg.Defaults()
	return cfg, cfg.Validate()
}
