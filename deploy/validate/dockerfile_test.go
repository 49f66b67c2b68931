package validate

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// composeDockerfile is what the checks need from a Dockerfile: its global ARG
// defaults and, per stage, the base, the files COPYed in, the EXPOSEd
// ports, the USER and the ENTRYPOINT.
type composeDockerfile struct {
	args   map[string]string
	stages []*composeStage
	// warnings are what BuildKit's parser and linter would print on
	// `docker build`.
	warnings []string
}

type composeStage struct {
	name, base string
	files      []string // COPY/ADD destinations
	expose     []string
	user       string
	entrypoint []string
}

func (d *composeDockerfile) stage(name string) *composeStage {
	for _, s := range d.stages {
		if strings.EqualFold(s.name, name) {
			return s
		}
	}
	return nil
}

// parseComposeDockerfile reads a Dockerfile with BuildKit's parser (the one
// `docker build` runs: directives, escapes, continuations, heredocs) and
// keeps what the checks need.
func parseComposeDockerfile(path string) (*composeDockerfile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return readDockerfile(path, data)
}

func readDockerfile(name string, data []byte) (*composeDockerfile, error) {
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	d := &composeDockerfile{args: map[string]string{}}
	for _, w := range res.Warnings {
		d.warnings = append(d.warnings, w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, _ []parser.Range) {
		d.warnings = append(d.warnings, rule+": "+msg)
	}})
	stages, metaArgs, err := instructions.Parse(res.AST, lint)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("%s: no FROM", name)
	}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			d.args[kv.Key] = kv.ValueString()
		}
	}
	for _, st := range stages {
		s := &composeStage{name: st.Name, base: os.Expand(st.BaseName, func(k string) string { return d.args[k] })}
		for _, c := range st.Commands {
			switch c := c.(type) {
			case *instructions.CopyCommand:
				s.files = append(s.files, c.DestPath)
			case *instructions.AddCommand:
				s.files = append(s.files, c.DestPath)
			case *instructions.ExposeCommand:
				s.expose = append(s.expose, c.Ports...)
			case *instructions.UserCommand:
				s.user = c.User
			case *instructions.EntrypointCommand:
				if c.PrependShell {
					return nil, fmt.Errorf("%s: stage %s: ENTRYPOINT must be exec form (no shell in the image): %q", name, st.Name, c.String())
				}
				s.entrypoint = slices.Clone(c.CmdLine)
			}
		}
		d.stages = append(d.stages, s)
	}
	return d, nil
}

func TestReadDockerfile(t *testing.T) {
	tests := []struct {
		name     string
		data     string
		check    func(t *testing.T, d *composeDockerfile)
		wantErr  string
		warnings []string
	}{
		{
			name: "stages, args, copies, exec entrypoint",
			data: "# syntax=docker/dockerfile:1\nARG GO_VERSION=1.26.8\nARG TAG\n" +
				"FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build\nCOPY . .\nRUN go build \\\n    -o /out/ ./cmd/x\n" +
				"FROM gcr.io/distroless/static-debian12:nonroot AS x\nCOPY --from=build /out/x /x\nADD --chmod=0644 a.txt /a.txt\nEXPOSE 8080 9000/tcp\nUSER 65532:65532\nENTRYPOINT [\"/x\"]\n",
			check: func(t *testing.T, d *composeDockerfile) {
				if d.args["GO_VERSION"] != "1.26.8" || len(d.stages) != 2 {
					t.Fatalf("args %v, %d stages", d.args, len(d.stages))
				}
				if b := d.stage("build"); b == nil || b.base != "golang:1.26.8" {
					t.Errorf("build stage %+v: want base golang:1.26.8", b)
				}
				x := d.stage("X") // stage names are case-insensitive
				if x == nil || !slices.Equal(x.files, []string{"/x", "/a.txt"}) || !slices.Equal(x.expose, []string{"8080", "9000/tcp"}) ||
					x.user != "65532:65532" || !slices.Equal(x.entrypoint, []string{"/x"}) {
					t.Errorf("x stage %+v", x)
				}
			},
		},
		{
			name:    "shell-form entrypoint",
			data:    "FROM scratch\nENTRYPOINT /x --flag\n",
			wantErr: "ENTRYPOINT must be exec form",
		},
		{
			name:    "no stage",
			data:    "ARG A=1\n",
			wantErr: "no FROM",
		},
		{
			name:    "unknown instruction",
			data:    "FROM scratch\nCOPPY a b\n",
			wantErr: "unknown instruction",
		},
		{
			name:     "lint warnings are kept",
			data:     "FROM scratch as Final\nCOPY a /a\n",
			check:    func(*testing.T, *composeDockerfile) {},
			warnings: []string{"FromAsCasing", "StageNameCasing"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := readDockerfile("Dockerfile", []byte(tc.data))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("readDockerfile = %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, d)
			all := strings.Join(d.warnings, "\n")
			for _, w := range tc.warnings {
				if !strings.Contains(all, w) {
					t.Errorf("warnings %q lack %s", d.warnings, w)
				}
			}
			if tc.warnings == nil && len(d.warnings) > 0 {
				t.Errorf("unexpected warnings %q", d.warnings)
			}
		})
	}
}

// TestDockerfileHasNoWarnings: what `docker build` would warn about in the
// repo's Dockerfile is a failure here.
func TestDockerfileHasNoWarnings(t *testing.T) {
	d, err := parseComposeDockerfile(composeRepoRoot(t) + "/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.warnings) > 0 {
		t.Errorf("Dockerfile warnings:\n%s", strings.Join(d.warnings, "\n"))
	}
}
