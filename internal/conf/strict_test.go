package conf

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

type strictInner struct {
	Alpha int    `yaml:"alpha"`
	Beta  string `yaml:"beta,omitempty"`
}

type strictEmbedded struct {
	Port int `yaml:"port"`
}

// strictCommon and strictHTTP have the shape of the provider sections
// (providers.Common, providers.HTTPConfig), which conf cannot import: two
// inline structs whose durations are Unmarshalers.
type strictCommon struct {
	Name         string   `yaml:"name"`
	Type         string   `yaml:"type"`
	Weight       float64  `yaml:"weight"`
	Required     bool     `yaml:"required,omitempty"`
	OnError      string   `yaml:"on_error,omitempty"`
	Mode         string   `yaml:"mode,omitempty"`
	SyncInterval Duration `yaml:"sync_interval,omitempty"`
	MaxLastSeen  Duration `yaml:"max_last_seen,omitempty"`
	Timeout      Duration `yaml:"timeout,omitempty"`
}

type strictHTTP struct {
	MaxConcurrency    int      `yaml:"max_concurrency,omitempty"`
	RequestsPerSecond float64  `yaml:"requests_per_second,omitempty"`
	Burst             int      `yaml:"burst,omitempty"`
	RetryMax          int      `yaml:"retry_max,omitempty"`
	RetryWaitMin      Duration `yaml:"retry_wait_min,omitempty"`
	RetryWaitMax      Duration `yaml:"retry_wait_max,omitempty"`
	RequestTimeout    Duration `yaml:"request_timeout,omitempty"`
}

type strictDoc struct {
	strictCommon   `yaml:",inline"`
	strictHTTP     `yaml:",inline"`
	strictEmbedded `yaml:",inline"`
	Inner          strictInner              `yaml:"inner"`
	Ptr            *strictInner             `yaml:"ptr"`
	List           []strictInner            `yaml:"list"`
	PtrList        []*strictInner           `yaml:"ptr_list"`
	Array          [2]strictInner           `yaml:"array"`
	Map            map[string]strictInner   `yaml:"map"`
	MapOfLists     map[string][]strictInner `yaml:"map_of_lists"`
	When           time.Time                `yaml:"when"`
	Raw            yaml.Node                `yaml:"raw"`
	Anything       any                      `yaml:"anything"`
	Untagged       int
	Skipped        int      `yaml:"-"`
	Secret         Secret   `yaml:"secret"`
	Tags           []string `yaml:"tags"`
}

func parseNode(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatalf("bad test YAML: %v", err)
	}
	return &n
}

func TestDecodeStrict(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		wantErr []string // substrings, all required; nil: must decode
		noErr   []string // substrings that must not appear
		check   func(*testing.T, *strictDoc)
	}{
		{
			name: "every known key accepted",
			src: `name: cs
type: crowdstrike
weight: 2
required: true
on_error: zero
mode: sync
sync_interval: 10m
max_last_seen: 30d
timeout: 3s
max_concurrency: 3
requests_per_second: 5
burst: 2
retry_max: 1
retry_wait_min: 100ms
retry_wait_max: 1s
request_timeout: 5s
port: 8080
inner: {alpha: 1, beta: b}
ptr: {alpha: 2}
list: [{alpha: 3}, {alpha: 4, beta: x}]
ptr_list: [{alpha: 5}]
array: [{alpha: 6}, {alpha: 7}]
map: {k: {alpha: 8}}
map_of_lists: {k: [{alpha: 9}]}
when: 2026-11-20T10:00:00Z
raw: {whatever: [1, 2], nested: {deep: true}}
anything: {free: form}
untagged: 11
secret: s3
tags: [a, b]
`,
			check: func(t *testing.T, d *strictDoc) {
				if d.Name != "cs" || d.Weight != 2 || !d.Required || d.Mode != "sync" || d.MaxLastSeen != Duration(720*time.Hour) {
					t.Errorf("common decoded wrong: %+v", d.strictCommon)
				}
				if d.MaxConcurrency != 3 || d.RetryWaitMax != Duration(time.Second) {
					t.Errorf("http decoded wrong: %+v", d.strictHTTP)
				}
				if d.Port != 8080 || d.Inner.Alpha != 1 || d.Ptr.Alpha != 2 || len(d.List) != 2 || d.PtrList[0].Alpha != 5 ||
					d.Array[1].Alpha != 7 || d.Map["k"].Alpha != 8 || d.MapOfLists["k"][0].Alpha != 9 || d.Untagged != 11 {
					t.Errorf("nested decoded wrong: %+v", d)
				}
				if d.When.IsZero() || d.Raw.Kind != yaml.MappingNode || d.Secret.Reveal() != "s3" {
					t.Errorf("special fields decoded wrong: %+v", d)
				}
			},
		},
		{
			name: "document node is unwrapped",
			src:  "---\nname: x\n",
			check: func(t *testing.T, d *strictDoc) {
				if d.Name != "x" {
					t.Errorf("name = %q", d.Name)
				}
			},
		},
		{
			name:    "unknown top-level key with line",
			src:     "name: x\nweight: 1\nbogus: 3\n",
			wantErr: []string{`line 3: unknown key "bogus"`},
			noErr:   []string{"did you mean"},
		},
		{
			name:    "typo gets a suggestion (substitution)",
			src:     "name: x\nwieght: 1\n",
			wantErr: []string{`line 2: unknown key "wieght" (did you mean "weight"?)`},
		},
		{
			name:    "typo gets a suggestion (deletion)",
			src:     "\n\nname: x\ntimout: 1s\n",
			wantErr: []string{`line 4: unknown key "timout" (did you mean "timeout"?)`},
		},
		{
			name:    "typo gets a suggestion (insertion)",
			src:     "names: x\n",
			wantErr: []string{`line 1: unknown key "names" (did you mean "name"?)`},
		},
		{
			name:    "typo in an inline key gets a suggestion",
			src:     "max_concurency: 3\n",
			wantErr: []string{`line 1: unknown key "max_concurency" (did you mean "max_concurrency"?)`},
		},
		{
			name:    "no suggestion when far",
			src:     "client_secret_file: x\n",
			wantErr: []string{`line 1: unknown key "client_secret_file"`},
			noErr:   []string{"did you mean"},
		},
		{
			name:    "skipped field is unknown",
			src:     "Skipped: 1\n",
			wantErr: []string{`unknown key "Skipped"`},
		},
		{
			name:    "nested struct",
			src:     "name: x\ninner:\n  alpha: 1\n  gamma: 2\n",
			wantErr: []string{`line 4: unknown key "gamma"`},
		},
		{
			name:    "pointer to struct",
			src:     "ptr:\n  alpha: 1\n  alpah: 2\n",
			wantErr: []string{`line 3: unknown key "alpah" (did you mean "alpha"?)`},
		},
		{
			name:    "slice of structs",
			src:     "list:\n  - alpha: 1\n  - alpha: 2\n    zeta: 3\n",
			wantErr: []string{`line 4: unknown key "zeta"`},
		},
		{
			name:    "slice of pointers",
			src:     "ptr_list:\n  - zeta: 3\n",
			wantErr: []string{`line 2: unknown key "zeta"`},
		},
		{
			name:    "array of structs",
			src:     "array:\n  - alpha: 1\n  - zeta: 3\n",
			wantErr: []string{`line 3: unknown key "zeta"`},
		},
		{
			name:    "map values",
			src:     "map:\n  first:\n    alpha: 1\n  second:\n    zeta: 1\n",
			wantErr: []string{`line 5: unknown key "zeta"`},
			noErr:   []string{`"first"`, `"second"`},
		},
		{
			name:    "map of slices",
			src:     "map_of_lists:\n  k:\n    - alpha: 1\n    - omega: 1\n",
			wantErr: []string{`line 4: unknown key "omega"`},
		},
		{
			name:    "every unknown key reported",
			src:     "one: 1\nname: x\ntwo: 2\ninner:\n  three: 3\n",
			wantErr: []string{`line 1: unknown key "one"`, `line 3: unknown key "two"`, `line 5: unknown key "three"`},
		},
		{
			name:    "alias into an unknown key",
			src:     "anchors: &a {alpha: 1, zeta: 2}\n",
			wantErr: []string{`unknown key "anchors"`},
		},
		{
			name:    "alias is followed",
			src:     "inner: &a {alpha: 1, zeta: 2}\nptr: *a\n",
			wantErr: []string{`line 1: unknown key "zeta"`},
		},
		{
			name: "free-form yaml.Node and any are not checked",
			src:  "raw: {zeta: 1}\nanything: {zeta: 2}\n",
		},
		{
			name:    "duration is not recursed into",
			src:     "timeout:\n  zeta: 1\n",
			wantErr: []string{"line 2: expected a duration"},
			noErr:   []string{"unknown key"},
		},
		{
			// Recursing would report "zeta" (time.Time has no exported
			// fields); yaml.v3 itself ignores the mapping.
			name: "time.Time is not recursed into",
			src:  "when:\n  zeta: 1\n",
		},
		{
			name:    "type mismatch reported by decode, not a panic",
			src:     "inner: 3\nlist: {alpha: 1}\nmap: [1]\n",
			wantErr: []string{"line 1", "cannot unmarshal"},
		},
		{
			name:    "bad duration value has its line",
			src:     "name: x\nsync_interval: often\n",
			wantErr: []string{"line 2", `invalid duration "often"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var d strictDoc
			err := DecodeStrict(parseNode(t, tc.src), &d)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("DecodeStrict = %v, want nil", err)
				}
				if tc.check != nil {
					tc.check(t, &d)
				}
				return
			}
			if err == nil {
				t.Fatalf("DecodeStrict = nil, want %q", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			for _, w := range tc.noErr {
				if strings.Contains(err.Error(), w) {
					t.Errorf("error %q must not contain %q", err, w)
				}
			}
		})
	}
}

func TestDecodeStrictUntaggedEmbedded(t *testing.T) {
	// yaml.v3 does not inline an embedded struct without ",inline": its keys
	// live under the lower-cased type name, and DecodeStrict must agree.
	type embedded struct {
		A int `yaml:"a"`
	}
	type outer struct {
		Embedded embedded
	}
	tests := []struct {
		name    string
		src     string
		wantErr string
	}{
		{"nested under field name", "embedded: {a: 1}\n", ""},
		{"not inlined", "a: 1\n", `line 1: unknown key "a"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var o outer
			err := DecodeStrict(parseNode(t, tc.src), &o)
			if tc.wantErr == "" {
				if err != nil || o.Embedded.A != 1 {
					t.Fatalf("DecodeStrict = %v, %+v", err, o)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("DecodeStrict = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestDecodeStrictMergeKey(t *testing.T) {
	src := "defaults: &d {weight: 2, on_error: zero}\nproviders:\n  - <<: *d\n    name: a\n"
	var cfg struct {
		Defaults  map[string]any `yaml:"defaults"`
		Providers []strictCommon `yaml:"providers"`
	}
	if err := DecodeStrict(parseNode(t, src), &cfg); err != nil {
		t.Fatalf("DecodeStrict = %v", err)
	}
	if len(cfg.Providers) != 1 || cfg.Providers[0].Weight != 2 || cfg.Providers[0].OnError != "zero" {
		t.Fatalf("merge not applied: %+v", cfg.Providers)
	}
}

func TestEditDistanceAtMostOne(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"name", "name", true},
		{"nme", "name", true},
		{"namee", "name", true},
		{"nmae", "name", true},
		{"naem", "name", true},
		{"mame", "name", true},
		{"", "a", true},
		{"", "", true},
		{"", "ab", false},
		{"nm", "name", false},
		{"eman", "name", false},
		{"abcd", "badc", false},
		{"weight", "wieght", true},
		{"type", "mode", false},
	}
	for _, tc := range tests {
		t.Run(tc.a+"_"+tc.b, func(t *testing.T) {
			if got := editDistanceAtMostOne(tc.a, tc.b); got != tc.want {
				t.Errorf("editDistanceAtMostOne(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
			if got := editDistanceAtMostOne(tc.b, tc.a); got != tc.want {
				t.Errorf("editDistanceAtMostOne(%q, %q) = %v, want %v (symmetry)", tc.b, tc.a, got, tc.want)
			}
		})
	}
}
