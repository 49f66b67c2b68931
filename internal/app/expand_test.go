package app

import (
	"strings"
	"testing"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestEnvExpansion(t *testing.T) {
	tests := []struct {
		in, want string
		vars     map[string]string
		err      string
	}{
		{"${A}", "x", map[string]string{"A": "x"}, ""},
		{"pre-${A}-${B}", "pre-x-y", map[string]string{"A": "x", "B": "y"}, ""},
		{"S3cret$USER!", "S3cret$USER!", nil, ""}, // bare $ is left alone
		{"$${A}", "${A}", nil, ""},
		{"${A}", "", nil, "environment variable A is not set"},
		{"${A", "", nil, "unterminated"},
		{"${1A}", "", nil, "invalid environment variable name"},
		{"${A}", "", map[string]string{"A": ""}, ""}, // set but empty is a value
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := expand(tc.in, env(tc.vars))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
