package conf

import (
	"reflect"
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

func TestExpandEnv(t *testing.T) {
	vars := env(map[string]string{"PORT": "8080", "NAME": "svc", "KEY": "listen"})
	tests := []struct {
		name    string
		src     string
		want    map[string]any
		wantErr []string // substrings, all required
	}{
		{
			name: "plain value resolves as its new type",
			src:  "port: ${PORT}\n",
			want: map[string]any{"port": 8080},
		},
		{
			name: "quoted value stays a string",
			src:  "port: \"${PORT}\"\n",
			want: map[string]any{"port": "8080"},
		},
		{
			name: "keys are never expanded",
			src:  "${KEY}: x\n",
			want: map[string]any{"${KEY}": "x"},
		},
		{
			name: "nested mappings and sequences",
			src:  "a:\n  b: [\"${NAME}-1\", {c: \"${NAME}\"}]\n",
			want: map[string]any{"a": map[string]any{"b": []any{"svc-1", map[string]any{"c": "svc"}}}},
		},
		{
			name: "escape",
			src:  "v: \"$${NAME}\"\n",
			want: map[string]any{"v": "${NAME}"},
		},
		{
			name:    "every unset variable with its line",
			src:     "a: ${MISSING_ONE}\nb: ok\nc: [\"${MISSING_TWO}\"]\n",
			wantErr: []string{"line 1: environment variable MISSING_ONE is not set", "line 3: environment variable MISSING_TWO is not set"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := parseNode(t, tc.src)
			err := ExpandEnv(n, vars)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("ExpandEnv = nil, want %q", tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ExpandEnv = %v", err)
			}
			var got map[string]any
			if err := n.Decode(&got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("expanded to %#v, want %#v", got, tc.want)
			}
		})
	}
}
