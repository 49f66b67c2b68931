package conf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const secretValue = "hunter2-S3cr3t"

func TestSecretFmt(t *testing.T) {
	s := Secret(secretValue)
	tests := []struct {
		verb string
		want string
	}{
		{"%v", "<redacted>"},
		{"%s", "<redacted>"},
		{"%q", `"<redacted>"`},
		{"%#v", `"<redacted>"`},
		{"%+v", "<redacted>"},
		{"%10s", "<redacted>"},
		{"%x", fmt.Sprintf("%x", "<redacted>")},
	}
	for _, tc := range tests {
		t.Run(tc.verb, func(t *testing.T) {
			got := fmt.Sprintf(tc.verb, s)
			if got != tc.want {
				t.Fatalf("Sprintf(%q, secret) = %q, want %q", tc.verb, got, tc.want)
			}
			if strings.Contains(got, secretValue) {
				t.Fatalf("Sprintf(%q) leaks the secret: %q", tc.verb, got)
			}
			// Through a pointer too.
			if p := fmt.Sprintf(tc.verb, &s); strings.Contains(p, secretValue) {
				t.Fatalf("Sprintf(%q, &secret) leaks the secret: %q", tc.verb, p)
			}
		})
	}

	t.Run("in a struct", func(t *testing.T) {
		type cfg struct {
			ClientID     string
			ClientSecret Secret
			Many         []Secret
			ByName       map[string]Secret
		}
		c := cfg{ClientID: "id", ClientSecret: s, Many: []Secret{s}, ByName: map[string]Secret{"k": s}}
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			for _, arg := range []any{c, &c} {
				if got := fmt.Sprintf(verb, arg); strings.Contains(got, secretValue) {
					t.Errorf("Sprintf(%q, %T) leaks the secret: %s", verb, arg, got)
				}
			}
		}
	})

	t.Run("empty prints empty", func(t *testing.T) {
		if got := fmt.Sprint(Secret("")); got != "" {
			t.Fatalf("empty secret printed as %q", got)
		}
	})

	t.Run("reveal", func(t *testing.T) {
		if s.Reveal() != secretValue {
			t.Fatalf("Reveal() = %q", s.Reveal())
		}
	})
}

func TestSecretFmtBadVerb(t *testing.T) {
	s := Secret(secretValue)
	// %p is not listed: fmt prints it before consulting any method, and
	// go vet rejects %p with a non-pointer argument, so vetted code cannot
	// leak that way.
	for _, verb := range []string{"%d", "%t", "%f", "%c", "%x", "%08s"} {
		if got := fmt.Sprintf(verb, s); strings.Contains(got, secretValue) {
			t.Errorf("Sprintf(%q) leaks the secret: %q", verb, got)
		}
	}
}

func TestSecretSlog(t *testing.T) {
	s := Secret(secretValue)
	type cfg struct {
		Name   string `json:"name"`
		Secret Secret `json:"secret"`
	}
	tests := []struct {
		name string
		attr slog.Attr
		want string // substring of the JSON output
	}{
		{"value", slog.Any("client_secret", s), `"client_secret":"<redacted>"`},
		{"pointer", slog.Any("client_secret", &s), `"client_secret"`},
		{"in a struct", slog.Any("cfg", cfg{Name: "n", Secret: s}), `"secret":"<redacted>"`},
		{"in a group", slog.Group("auth", slog.Any("secret", s)), `"auth":{"secret":"<redacted>"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for hname, mk := range map[string]func(*bytes.Buffer) slog.Handler{
				"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
				"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
			} {
				var buf bytes.Buffer
				slog.New(mk(&buf)).LogAttrs(t.Context(), slog.LevelInfo, "msg", tc.attr)
				out := unescapeJSONAngles(buf.String())
				if strings.Contains(out, secretValue) {
					t.Fatalf("%s handler leaks the secret: %s", hname, out)
				}
				if hname == "json" && !strings.Contains(out, tc.want) {
					t.Fatalf("json output %s does not contain %s", out, tc.want)
				}
			}
		})
	}
	t.Run("args form", func(t *testing.T) {
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "secret", s)
		if out := unescapeJSONAngles(buf.String()); strings.Contains(out, secretValue) || !strings.Contains(out, `"secret":"<redacted>"`) {
			t.Fatalf("got %s", buf.String())
		}
	})
}

// unescapeJSONAngles undoes encoding/json's HTML escaping of < and >.
func unescapeJSONAngles(s string) string {
	return strings.NewReplacer(`\u003c`, "<", `\u003e`, ">").Replace(s)
}

func TestSecretJSONAndYAML(t *testing.T) {
	s := Secret(secretValue)
	type cfg struct {
		ID     string `json:"id" yaml:"id"`
		Secret Secret `json:"secret" yaml:"secret"`
		Ptr    *Secret
	}
	tests := []struct {
		name string
		v    any
	}{
		{"value", s},
		{"pointer", &s},
		{"struct", cfg{ID: "i", Secret: s, Ptr: &s}},
		{"struct pointer", &cfg{ID: "i", Secret: s}},
		{"slice", []Secret{s, s}},
		{"map", map[string]Secret{"k": s}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j, err := json.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if js := unescapeJSONAngles(string(j)); strings.Contains(js, secretValue) || !strings.Contains(js, `"<redacted>"`) {
				t.Fatalf("json.Marshal = %s", j)
			}
			y, err := yaml.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(y), secretValue) || !strings.Contains(string(y), "<redacted>") {
				t.Fatalf("yaml.Marshal = %s", y)
			}
		})
	}
	t.Run("empty secret marshals empty", func(t *testing.T) {
		j, _ := json.Marshal(Secret(""))
		if string(j) != `""` {
			t.Fatalf("json = %s", j)
		}
	})
	t.Run("decoding keeps the value", func(t *testing.T) {
		var c cfg
		if err := yaml.Unmarshal([]byte("id: i\nsecret: "+secretValue), &c); err != nil || c.Secret.Reveal() != secretValue {
			t.Fatalf("yaml decode = %q, %v", c.Secret.Reveal(), err)
		}
		var d cfg
		if err := json.Unmarshal([]byte(`{"secret":"`+secretValue+`"}`), &d); err != nil || d.Secret.Reveal() != secretValue {
			t.Fatalf("json decode = %q, %v", d.Secret.Reveal(), err)
		}
	})
}
