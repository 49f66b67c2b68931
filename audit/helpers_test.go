package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/postured/postured/audit"
)

var t0 = time.Date(2026, 3, 10, 9, 14, 0, 0, time.UTC)

// clock is an injected clock that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// rec is the answer for device dev-NN; records of equal-width ids and
// times have equal-length lines.
func rec(i int) audit.Record {
	return audit.Record{
		RequestID:   fmt.Sprintf("req-%02d", i),
		ConfigHash:  "c0ffee",
		DeviceID:    fmt.Sprintf("dev-%02d", i),
		Identifiers: audit.Identifiers{Serial: fmt.Sprintf("SER%02d", i), Email: "a@example.com"},
		S2SID:       fmt.Sprintf("aid-%02d", i),
		Score:       i % 100,
		Providers: []audit.Provider{{
			Name: "intune", Weight: 1, Outcome: "matched", MatchedOn: "serial", MatchedValue: fmt.Sprintf("SER%02d", i),
			RecordID: fmt.Sprintf("aid-%02d", i), Score: i % 100, Counted: true, LastSeen: t0, Reason: "complianceState=compliant",
		}},
	}
}

func open(t *testing.T, cfg audit.Config) *audit.Writer {
	t.Helper()
	w, err := audit.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// appendEach appends records from..to-1, one batch each, a second apart.
func appendEach(t *testing.T, w *audit.Writer, c *clock, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := w.Append(context.Background(), rec(i)); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		c.Advance(time.Second)
	}
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(b, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	return lines
}

func writeFile(t *testing.T, path string, lines [][]byte) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Join(lines, nil), 0o640); err != nil {
		t.Fatal(err)
	}
}

func files(t *testing.T, path string) []string {
	t.Helper()
	fs, err := audit.Files(path)
	if err != nil {
		t.Fatalf("Files: %v", err)
	}
	return fs
}

func base(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	return out
}
