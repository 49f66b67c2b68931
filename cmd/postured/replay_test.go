package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/audit"
)

// TestReplayCommand covers replay's arguments and verdicts over a small
// log written directly: one answer the inputs reproduce, one they do not.
func TestReplayCommand(t *testing.T) {
	dir := t.TempDir()
	w, err := audit.New(audit.Config{Path: filepath.Join(dir, "audit.jsonl")})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 9, 14, 0, 0, time.UTC)
	answer := func(dev string, score int) audit.Record {
		return audit.Record{
			Time: at, RequestID: "req-1", ConfigHash: "c0ffee", DeviceID: dev, S2SID: "i-" + dev, Score: score,
			S2SIDFrom: "intune", Decision: "weighted mean of 1 provider(s)",
			Providers: []audit.Provider{{Name: "intune", Weight: 1, OnError: "stale", MaxLastSeen: "720h0m0s",
				Outcome: "matched", RecordID: "i-" + dev, RecordScore: 80, Score: 80, Counted: true, LastSeen: at.Add(-time.Hour)}},
		}
	}
	if err := w.Append(context.Background(), answer("good", 80), answer("bad", 95)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, t.TempDir(), "c.yaml", "access: {team_domain: t.cloudflareaccess.com, audience: [a]}\n"+
		"providers:\n  - {name: inv, type: static, weight: 1, file: "+writeFile(t, t.TempDir(), "inv.yaml", minimalInventory)+"}\n")
	later := at.Add(time.Minute).Format(time.RFC3339)
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string
		stderr   string
		notInOut string
	}{
		{name: "reproduced", args: []string{"--dir", dir, "--device-id", "good", "--at", later},
			stdout: []string{"device: good", "score 80 80", "reproduced: the recorded inputs give the recorded answer"}},
		{name: "differs", args: []string{"--dir", dir, "--device-id", "bad", "--at", later}, code: 1,
			stdout: []string{"score 95 80", "DIFFERS: score: recorded 95, recomputed 80"}, stderr: "1 of 1 answers differ"},
		{name: "differs, json", args: []string{"--dir", dir, "--device-id", "bad", "--at", later, "--json"}, code: 1,
			stdout: []string{`"reproduced": false,`, `"score: recorded 95, recomputed 80"`}, notInOut: "config_changed"},
		{name: "cycle", args: []string{"--dir", dir, "--at", later}, code: 1,
			stdout: []string{"bad (answered 2026-12-01T09:14:00Z): score: recorded 95, recomputed 80", "1 of 2 reproduced"}, notInOut: "good"},
		{name: "cycle before any answer", args: []string{"--dir", dir, "--at", at.Add(-time.Second).Format(time.RFC3339)},
			stdout: []string{"0 of 0 reproduced"}},
		{name: "no answer yet", args: []string{"--dir", dir, "--device-id", "good", "--at", at.Add(-time.Second).Format(time.RFC3339)}, code: 1,
			stderr: `no answer for device "good" at or before 2026-12-01T09:13:59Z`},
		{name: "unknown device", args: []string{"--dir", dir, "--device-id", "ghost"}, code: 1, stderr: `no answer for device "ghost"`},
		{name: "bad time", args: []string{"--dir", dir, "--at", "yesterday"}, code: 1, stderr: "--at: want an RFC 3339 time"},
		{name: "no log named", args: []string{"--device-id", "good"}, code: 1, stderr: "give -c FILE (its audit.path) or --dir DIR"},
		{name: "both named", args: []string{"--dir", dir, "-c", cfg}, code: 1, stderr: "not both"},
		{name: "config without audit path", args: []string{"-c", cfg}, code: 1, stderr: "has no audit.path"},
		{name: "empty directory", args: []string{"--dir", t.TempDir()}, code: 1, stderr: "no .jsonl files"},
		{name: "stray argument", args: []string{"--dir", dir, "good"}, code: 1, stderr: `unexpected argument "good"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errb := runCLI(append([]string{"replay"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errb, tc.stderr) || (tc.notInOut != "" && strings.Contains(out, tc.notInOut)) {
				t.Errorf("exit %d, stderr %q; want exit %d, stderr ~%q, stdout without %q\nstdout:\n%s", code, errb, tc.code, tc.stderr, tc.notInOut, out)
			}
			// Columns are as wide as their widest cell: compare with runs of
			// blanks collapsed.
			flat := strings.Join(strings.Fields(out), " ")
			for _, w := range tc.stdout {
				if !strings.Contains(flat, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
