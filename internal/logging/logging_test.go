package logging

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
)

func TestOrDiscard(t *testing.T) {
	var buf bytes.Buffer
	given := slog.New(slog.NewTextHandler(&buf, nil))
	tests := []struct {
		name    string
		in      *slog.Logger
		enabled bool
	}{
		{"nil is silent", nil, false},
		{"a logger is kept", given, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := OrDiscard(tc.in)
			if got == nil {
				t.Fatal("OrDiscard returned nil")
			}
			if tc.in != nil && got != tc.in {
				t.Fatal("OrDiscard replaced the given logger")
			}
			if e := got.Enabled(context.Background(), slog.LevelError); e != tc.enabled {
				t.Fatalf("Enabled(error) = %v, want %v", e, tc.enabled)
			}
		})
	}
}
