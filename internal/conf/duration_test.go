package conf

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"30d", 30 * 24 * time.Hour, false},
		{"1d", 24 * time.Hour, false},
		{"0d", 0, false},
		{" 7d ", 7 * 24 * time.Hour, false},
		{"90s", 90 * time.Second, false},
		{"10m", 10 * time.Minute, false},
		{"720h", 720 * time.Hour, false},
		{"1h30m", 90 * time.Minute, false},
		{"250ms", 250 * time.Millisecond, false},
		{"0", 0, false},
		{"-1d", 0, true},
		{"1.5d", 0, true},
		{"d", 0, true},
		{"1h1d", 0, true},
		{"30", 0, true},
		{"", 0, true},
		{"abc", 0, true},
		{"10x", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDuration(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseDuration(%q) = %v, want an error", tc.in, got)
				}
				if !strings.Contains(err.Error(), fmt.Sprintf("%q", strings.TrimSpace(tc.in))) {
					t.Errorf("error %q does not quote the input", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseDurationDaysOverflow(t *testing.T) {
	for _, in := range []string{"106752d", "213504d", "9999999999999d"} {
		if d, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an out-of-range error", in, d)
		}
	}
	if d, err := ParseDuration("106751d"); err != nil || d != 106751*24*time.Hour {
		t.Errorf("ParseDuration(106751d) = %v, %v; want the largest representable day count", d, err)
	}
}

func TestDurationYAML(t *testing.T) {
	type doc struct {
		D Duration `yaml:"d"`
	}
	tests := []struct {
		name    string
		src     string
		want    Duration
		wantErr string
	}{
		{"days", "d: 30d", Duration(720 * time.Hour), ""},
		{"hours", "d: 720h", Duration(720 * time.Hour), ""},
		{"seconds quoted", `d: "90s"`, Duration(90 * time.Second), ""},
		{"missing unit", "x: 1\nd: 30", 0, "line 2"},
		{"garbage", "\n\nd: soon", 0, "line 3"},
		{"mapping", "d:\n  a: 1", 0, "line 2: expected a duration"},
		{"sequence", "d: [1s]", 0, "line 1: expected a duration"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got doc
			err := yaml.Unmarshal([]byte(tc.src), &got)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Unmarshal(%q) error = %v, want it to contain %q", tc.src, err, tc.wantErr)
				}
				return
			}
			if err != nil || got.D != tc.want {
				t.Fatalf("Unmarshal(%q) = %v, %v; want %v", tc.src, got.D, err, tc.want)
			}
		})
	}

	t.Run("marshal round trip", func(t *testing.T) {
		for _, d := range []Duration{0, Duration(1500 * time.Millisecond), Duration(720 * time.Hour), Duration(90 * time.Second)} {
			b, err := yaml.Marshal(doc{D: d})
			if err != nil {
				t.Fatal(err)
			}
			var back doc
			if err := yaml.Unmarshal(b, &back); err != nil || back.D != d {
				t.Fatalf("round trip of %v via %q = %v, %v", d, b, back.D, err)
			}
		}
		if got := Duration(720 * time.Hour).String(); got != "720h0m0s" {
			t.Errorf("String() = %q", got)
		}
	})
}
