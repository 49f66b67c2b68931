package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postured/postured/audit"
)

func TestAuditVerifyCommand(t *testing.T) {
	tests := []struct {
		name       string
		tamper     func(t *testing.T, path string) // nil leaves the log alone
		args       func(path, head string) []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{
			name:       "intact",
			args:       func(path, _ string) []string { return []string{"audit", "verify", path} },
			wantStdout: "ok: 3 lines, chain intact\nhead: seq 3 ",
		},
		{
			name:       "intact, head matches",
			args:       func(path, head string) []string { return []string{"audit", "verify", "--head", head, path} },
			wantStdout: "ok: 3 lines, chain intact\n",
		},
		{
			name: "line 2 edited",
			tamper: func(t *testing.T, path string) {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				b = bytes.Replace(b, []byte(`"score":20`), []byte(`"score":99`), 1)
				if err := os.WriteFile(path, b, 0o640); err != nil {
					t.Fatal(err)
				}
			},
			args:       func(path, _ string) []string { return []string{"audit", "verify", path} },
			wantCode:   1,
			wantStderr: "audit.jsonl:2: edited",
		},
		{
			name: "line inserted at 2",
			tamper: func(t *testing.T, path string) {
				rewriteLines(t, path, func(l [][]byte) [][]byte { return insertAt(l, 1, l[1]) })
			},
			args:       func(path, _ string) []string { return []string{"audit", "verify", path} },
			wantCode:   1,
			wantStderr: "audit.jsonl:2: inserted",
		},
		{
			name: "line 2 deleted",
			tamper: func(t *testing.T, path string) {
				rewriteLines(t, path, func(l [][]byte) [][]byte { return deleteAt(l, 1) })
			},
			args:       func(path, _ string) []string { return []string{"audit", "verify", path} },
			wantCode:   1,
			wantStderr: "audit.jsonl:2: seq 3 follows seq 1",
		},
		{
			name: "last line deleted, caught by the head",
			tamper: func(t *testing.T, path string) {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				lines := bytes.SplitAfter(b, []byte("\n"))
				if err := os.WriteFile(path, bytes.Join(lines[:2], nil), 0o640); err != nil {
					t.Fatal(err)
				}
			},
			args:       func(path, head string) []string { return []string{"audit", "verify", "--head", head, path} },
			wantCode:   1,
			wantStderr: "audit.jsonl:2: the last line's hash is",
		},
		{
			name:       "no files",
			args:       func(string, string) []string { return []string{"audit", "verify"} },
			wantCode:   1,
			wantStderr: "give the log's files",
		},
		{
			name:       "missing file",
			args:       func(path, _ string) []string { return []string{"audit", "verify", path + ".gone"} },
			wantCode:   1,
			wantStderr: "no such file",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			w, err := audit.New(audit.Config{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if err := w.Append(context.Background(), audit.Record{DeviceID: "d", Score: 10 * (i + 1)}); err != nil {
					t.Fatal(err)
				}
			}
			_, head := w.Head()
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if tc.tamper != nil {
				tc.tamper(t, path)
			}
			var out, errb bytes.Buffer
			code := run(context.Background(), tc.args(path, head), &out, &errb)
			if code != tc.wantCode || !strings.Contains(out.String(), tc.wantStdout) || !strings.Contains(errb.String(), tc.wantStderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout ~%q, stderr ~%q",
					code, out.String(), errb.String(), tc.wantCode, tc.wantStdout, tc.wantStderr)
			}
		})
	}
}

// rewriteLines replaces the file's lines (each with its newline) by
// edit's.
func rewriteLines(t *testing.T, path string, edit func([][]byte) [][]byte) {
	t.Helper()
	lines := bytes.SplitAfter(readAll(t, path), []byte("\n"))
	lines = lines[:len(lines)-1]
	if err := os.WriteFile(path, bytes.Join(edit(lines), nil), 0o600); err != nil {
		t.Fatal(err)
	}
}
