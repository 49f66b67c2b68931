package conf

import (
	"testing"

	"go.yaml.in/yaml/v3"
)

const lineDoc = `listen: ":8080"
access:
  audience:
    - a
    - b
cache: {backend: redis}
rules:
  - name: first
    when: {is_warp: true}
  - name: second
    when:
      score: {min: 80}
`

func TestLine(t *testing.T) {
	root := parseNode(t, lineDoc)
	tests := []struct {
		name string
		n    *yaml.Node
		path string
		want int
	}{
		{"top-level scalar", root, "listen", 1},
		{"block value: the key's line, not its first item's", root, "access.audience", 3},
		{"block mapping key", root, "access", 2},
		{"missing leaf: deepest key present", root, "cache.redis_url", 6},
		{"missing top: a default", root, "server.shutdown_timeout", 0},
		{"index: the element's line", root, "rules[1]", 10},
		{"through an index", root, "rules[1].when.score", 12},
		{"key after an index", root, "rules[0].name", 8},
		{"index out of range: the key's line", root, "rules[5].name", 7},
		{"index on a mapping: the key's line", root, "access[0]", 2},
		{"scalar is not descended", root, "listen.port", 1},
		{"mapping node without a document", root.Content[0], "cache.backend", 6},
		{"nil node", nil, "listen", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Line(tc.n, tc.path); got != tc.want {
				t.Errorf("Line(%q) = %d, want %d", tc.path, got, tc.want)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	root := parseNode(t, lineDoc)
	tests := []struct {
		path string
		want string // the scalar found; "" for nil
		kind yaml.Kind
	}{
		{"listen", ":8080", yaml.ScalarNode},
		{"rules[1].name", "second", yaml.ScalarNode},
		{"rules[1].when.score.min", "80", yaml.ScalarNode},
		{"access.audience", "", yaml.SequenceNode},
		{"cache", "", yaml.MappingNode},
		{"cache.redis_url", "", 0},
		{"rules[2]", "", 0},
		{"server", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			got := Lookup(root, tc.path)
			if tc.kind == 0 {
				if got != nil {
					t.Fatalf("Lookup(%q) = %v, want nil", tc.path, got)
				}
				return
			}
			if got == nil || got.Kind != tc.kind || got.Value != tc.want {
				t.Fatalf("Lookup(%q) = %+v, want a %v node %q", tc.path, got, tc.kind, tc.want)
			}
		})
	}
}
