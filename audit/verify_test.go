package audit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/postured/postured/audit"
)

func hashLine(l []byte) string {
	s := sha256.Sum256(bytes.TrimSuffix(l, []byte("\n")))
	return hex.EncodeToString(s[:])
}

// forge builds a well-formed line that chains to prev with the given seq,
// as someone who knows the format would.
func forge(t *testing.T, seq uint64, prev []byte) []byte {
	t.Helper()
	r := rec(99)
	r.Seq, r.Prev, r.Time = seq, hashLine(prev), t0
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// TestVerifyTampered writes eight records and tampers with one line; Verify
// must name exactly that line.
func TestVerifyTampered(t *testing.T) {
	const n = 8
	tests := []struct {
		name   string
		tamper func(t *testing.T, l [][]byte) [][]byte
		// wantLine is the line Verify must name; 0 means it verifies.
		wantLine   int
		wantReason string
		// wantFirstSeq and wantHeadMoved describe a log that verifies but
		// whose start or end changed: only the summary can show it.
		wantFirstSeq  uint64
		wantHeadMoved bool
	}{
		{name: "intact", tamper: func(_ *testing.T, l [][]byte) [][]byte { return l }, wantFirstSeq: 1},
		{name: "line 3 edited", tamper: func(_ *testing.T, l [][]byte) [][]byte {
			l[2] = bytes.Replace(l[2], []byte(`"score":2,`), []byte(`"score":100,`), 1)
			return l
		}, wantLine: 3, wantReason: "edited"},
		{name: "line 1 edited", tamper: func(_ *testing.T, l [][]byte) [][]byte {
			l[0] = bytes.Replace(l[0], []byte(`"s2s_id":"aid-00"`), []byte(`"s2s_id":"aid-07"`), 1)
			return l
		}, wantLine: 1, wantReason: "edited"},
		{name: "line 5 prev edited", tamper: func(_ *testing.T, l [][]byte) [][]byte {
			l[4] = bytes.Replace(l[4], []byte(hashLine(l[3])), []byte(hashLine(l[0])), 1)
			return l
		}, wantLine: 5, wantReason: "edited"},
		{name: "line 6 seq edited", tamper: func(_ *testing.T, l [][]byte) [][]byte {
			l[5] = bytes.Replace(l[5], []byte(`"seq":6,`), []byte(`"seq":9,`), 1)
			return l
		}, wantLine: 6, wantReason: "edited"},
		{name: "line 4 made invalid", tamper: func(_ *testing.T, l [][]byte) [][]byte {
			l[3] = l[3][10:]
			return l
		}, wantLine: 4, wantReason: "not an audit record"},
		{name: "garbage inserted as line 4", tamper: func(_ *testing.T, l [][]byte) [][]byte {
			return slices.Insert(l, 3, []byte("{\"hello\":1}\n"))
		}, wantLine: 4, wantReason: "not an audit record"},
		{name: "copy of line 2 inserted as line 6", tamper: func(_ *testing.T, l [][]byte) [][]byte {
			return slices.Insert(l, 5, slices.Clone(l[1]))
		}, wantLine: 6, wantReason: "inserted"},
		{name: "forged line chained in as line 5", tamper: func(t *testing.T, l [][]byte) [][]byte {
			return slices.Insert(l, 4, forge(t, 5, l[3]))
		}, wantLine: 5, wantReason: "inserted"},
		{name: "line 4 deleted", tamper: func(_ *testing.T, l [][]byte) [][]byte {
			return slices.Delete(l, 3, 4)
		}, wantLine: 4, wantReason: "deleted"},
		{name: "lines 4 and 5 deleted", tamper: func(_ *testing.T, l [][]byte) [][]byte {
			return slices.Delete(l, 3, 5)
		}, wantLine: 4, wantReason: "2 line(s) before this one deleted"},
		{name: "lines 3 and 4 swapped", tamper: func(_ *testing.T, l [][]byte) [][]byte {
			l[2], l[3] = l[3], l[2]
			return l
		}, wantLine: 3, wantReason: "out of order"},
		{name: "line 2 moved to the end", tamper: func(_ *testing.T, l [][]byte) [][]byte {
			return append(slices.Delete(slices.Clone(l), 1, 2), l[1])
		}, wantLine: 2, wantReason: "deleted or moved"},
		{name: "last line cut in half", tamper: func(_ *testing.T, l [][]byte) [][]byte {
			l[n-1] = l[n-1][:len(l[n-1])/2]
			return l
		}, wantLine: n, wantReason: "truncated"},
		{name: "last newline cut", tamper: func(_ *testing.T, l [][]byte) [][]byte {
			l[n-1] = bytes.TrimSuffix(l[n-1], []byte("\n"))
			return l
		}, wantLine: n, wantReason: "truncated"},
		// What the chain alone cannot show, the summary does.
		{name: "line 1 deleted", tamper: func(_ *testing.T, l [][]byte) [][]byte {
			return l[1:]
		}, wantFirstSeq: 2},
		{name: "last line deleted", tamper: func(_ *testing.T, l [][]byte) [][]byte {
			return l[:n-1]
		}, wantFirstSeq: 1, wantHeadMoved: true},
		{name: "last line edited", tamper: func(_ *testing.T, l [][]byte) [][]byte {
			l[n-1] = bytes.Replace(l[n-1], []byte(`"score":7,`), []byte(`"score":100,`), 1)
			return l
		}, wantFirstSeq: 1, wantHeadMoved: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			c := &clock{t: t0}
			w := open(t, audit.Config{Path: path, Now: c.Now})
			appendEach(t, w, c, 0, n)
			_, head := w.Head()
			orig := readLines(t, path)
			if len(orig) != n {
				t.Fatalf("wrote %d lines, want %d", len(orig), n)
			}
			tampered := tc.tamper(t, slices.Clone(orig))
			writeFile(t, path, tampered)

			sum, err := audit.Verify(context.Background(), path)
			if tc.wantLine == 0 {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if sum.FirstSeq != tc.wantFirstSeq {
					t.Errorf("FirstSeq = %d, want %d", sum.FirstSeq, tc.wantFirstSeq)
				}
				if moved := sum.Head != head; moved != tc.wantHeadMoved {
					t.Errorf("head moved = %t, want %t (summary %s, writer %s)", moved, tc.wantHeadMoved, sum.Head, head)
				}
				if want := len(tampered); sum.Lines != want {
					t.Errorf("Lines = %d, want %d", sum.Lines, want)
				}
				return
			}
			var p *audit.Problem
			if !errors.As(err, &p) {
				t.Fatalf("Verify = %v, want a *Problem", err)
			}
			if p.File != path || p.Line != tc.wantLine || !strings.Contains(p.Reason, tc.wantReason) {
				t.Errorf("Verify = %v, want %s:%d: ...%s...", p, path, tc.wantLine, tc.wantReason)
			}
		})
	}
}
