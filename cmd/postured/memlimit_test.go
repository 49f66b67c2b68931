package main

import (
	"bytes"
	"errors"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// serve's soft memory limit follows the container's, and the operator's
// GOMEMLIMIT or AUTOMEMLIMIT=off wins. Not parallel: the limit is the
// process's.
func TestSetMemoryLimit(t *testing.T) {
	const container = 200 << 20
	tests := []struct {
		name     string
		env      map[string]string
		provider memlimit.Provider
		want     int64 // -1: unchanged
		log      string
	}{
		{"90% of the container's", nil, memlimit.Limit(container), container * 9 / 10, `msg="Go memory limit" bytes=188743680`},
		{"AUTOMEMLIMIT sets the ratio", map[string]string{"AUTOMEMLIMIT": "0.5"}, memlimit.Limit(container), container / 2, "bytes=104857600"},
		{"GOMEMLIMIT wins", map[string]string{"GOMEMLIMIT": "1GiB"}, memlimit.Limit(container), -1, ""},
		{"AUTOMEMLIMIT=off", map[string]string{"AUTOMEMLIMIT": "off"}, memlimit.Limit(container), -1, ""},
		{"no container limit", nil, func() (uint64, error) { return 0, memlimit.ErrNoLimit }, math.MaxInt64, ""},
		{"unreadable cgroup", nil, func() (uint64, error) { return 0, errors.New("no cgroup here") }, -1,
			`level=WARN msg="Go memory limit not set from the container's" error="failed to set GOMEMLIMIT: no cgroup here"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := debug.SetMemoryLimit(-1)
			t.Cleanup(func() { debug.SetMemoryLimit(before) })
			for _, k := range []string{"GOMEMLIMIT", "AUTOMEMLIMIT"} {
				if v, ok := tc.env[k]; ok {
					t.Setenv(k, v)
				} else if old, ok := os.LookupEnv(k); ok {
					t.Setenv(k, old) // restored after the test
					os.Unsetenv(k)
				}
			}
			var logs bytes.Buffer
			setMemoryLimit(slog.New(slog.NewTextHandler(&logs, nil)), tc.provider)
			want := tc.want
			if want == -1 {
				want = before
			}
			if got := debug.SetMemoryLimit(-1); got != want {
				t.Errorf("limit %d, want %d", got, want)
			}
			if !strings.Contains(logs.String(), tc.log) || (tc.log == "" && logs.Len() > 0) {
				t.Errorf("log %q, want %q", logs.String(), tc.log)
			}
		})
	}
}
