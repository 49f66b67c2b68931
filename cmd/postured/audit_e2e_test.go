package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/audit"
	"github.com/postured/postured/internal/app"
	"github.com/postured/postured/internal/mockset"
)

// startAuditedDemo runs the demo configuration against the mock fleet with
// the audit log on in dir, and writes that configuration to a file (its
// variables set in the environment) for the commands that read -c.
func startAuditedDemo(t *testing.T, set *mockset.Set, dir, extra string) (*instance, string) {
	t.Helper()
	mocksURL := set.Serve(t)
	demo, err := mockset.DemoConfig()
	if err != nil {
		t.Fatal(err)
	}
	// Under -race on a busy machine a cold batch can outlast the demo's
	// 4 s deadline; this test checks what is recorded, not speed.
	text := strings.Replace(string(demo), "  deadline: 4s\n", "  deadline: 60s\n", 1)
	// A max_last_seen shorter than the demo's puts part of the fleet past
	// it, so replay must judge staleness as the answer did.
	text = strings.ReplaceAll(text, "max_last_seen: 30d", "max_last_seen: 2d")
	text += fmt.Sprintf("audit:\n  enabled: true\n  path: %s\n  max_file_bytes: %d\n", filepath.Join(dir, "audit.jsonl"), 1<<20) + extra
	t.Setenv("MOCKVENDORS_URL", mocksURL)
	t.Setenv("POSTURED_LISTEN", "127.0.0.1:0")
	cfgPath := writeFile(t, t.TempDir(), "postured.yaml", text)
	cfg, err := app.Load(cfgPath, app.Registry(), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	return runServe(t, cfg), cfgPath
}

// runCLI runs postured with args and returns the exit code and output.
func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestAuditReplaysARecordedCycle is issue 13's acceptance test for the
// audit log: two 1000-device batches through the real serve path with the
// audit log on (the second rotates the log), then every device's answer is
// replayed from the log and must be what /posture answered, the chain must
// verify, no secret may be in it, and an edited, inserted or deleted line
// must fail `audit verify` at its line.
func TestAuditReplaysARecordedCycle(t *testing.T) {
	if testing.Short() {
		t.Skip("1000-device fleet")
	}
	set, err := mockset.New(1000, 7, fleetNow)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	devices := set.Batches(1000)[0]
	if len(devices) != 1000 {
		t.Fatalf("%d devices in the batch, want 1000", len(devices))
	}
	// One device's answer is an override: replay must reproduce the final
	// answer, not only the fold.
	overridden := devices[1]
	in, cfgPath := startAuditedDemo(t, set, dir, fmt.Sprintf(
		"overrides:\n  - {device_id: %q, score: 100, until: \"2099-01-01T00:00:00Z\", reason: \"loaner, ticket 123\"}\n", overridden.DeviceID))
	waitReady(t, in)
	token, err := set.Access.AppToken(mockset.AccessAudience, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	first := postBatch(t, in.url, token, devices)
	if got := first.Result[overridden.DeviceID].Score; got != 100 {
		t.Fatalf("overridden device answered %d, want 100", got)
	}
	between := time.Now()
	second := postBatch(t, in.url, token, devices)

	files, err := audit.FilesIn(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("log files %v: want the second batch to have rotated the first out", files)
	}
	if code, out, errb := runCLI(append([]string{"audit", "verify"}, files...)...); code != 0 || !strings.Contains(out, "ok: 2000 lines") {
		t.Fatalf("audit verify: exit %d %s%s", code, out, errb)
	}

	for _, tc := range []struct {
		name  string
		at    time.Time
		reply postureReply
		seqs  [2]uint64 // the batch's seq range
	}{
		{"first batch, from the rotated file", between, first, [2]uint64{1, 1000}},
		{"second batch", time.Now(), second, [2]uint64{1001, 2000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errb := runCLI("replay", "--dir", dir, "--at", tc.at.Format(time.RFC3339Nano), "--json")
			if code != 0 {
				t.Fatalf("replay: exit %d: %s", code, errb)
			}
			var c replayedCycle
			if err := json.Unmarshal([]byte(out), &c); err != nil {
				t.Fatal(err)
			}
			if c.Replayed != 1000 || c.Reproduced != 1000 || len(c.Answers) != 1000 {
				t.Fatalf("replayed %d, reproduced %d, %d answers; want 1000 of 1000", c.Replayed, c.Reproduced, len(c.Answers))
			}
			// Reproduced means recomputed == recorded; the recorded answer
			// must also be the one /posture gave.
			for _, a := range c.Answers {
				got, ok := tc.reply.Result[a.Record.DeviceID]
				if !ok || a.Record.Score != got.Score || a.Record.S2SID != got.S2SID || a.Recomputed.Score != got.Score || a.Recomputed.S2SID != got.S2SID {
					t.Fatalf("%s: answered %+v; recorded %d %q, recomputed %d %q",
						a.Record.DeviceID, got, a.Record.Score, a.Record.S2SID, a.Recomputed.Score, a.Recomputed.S2SID)
				}
				if a.Record.Seq < tc.seqs[0] || a.Record.Seq > tc.seqs[1] {
					t.Fatalf("%s: seq %d, want the batch's %v", a.Record.DeviceID, a.Record.Seq, tc.seqs)
				}
			}
		})
	}

	t.Run("one device, with the config", func(t *testing.T) {
		d := devices[42]
		code, out, errb := runCLI("replay", "-c", cfgPath, "--device-id", d.DeviceID)
		want := []string{"device:      " + d.DeviceID, "config:      ", "reproduced: the recorded inputs give the recorded answer", "crowdstrike", "on_error=stale"}
		if code != 0 || strings.Contains(out, "has changed") {
			t.Fatalf("exit %d: %s%s", code, out, errb)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
		if !strings.Contains(out, fmt.Sprintf("score     %d", second.Result[d.DeviceID].Score)) {
			t.Errorf("output does not show the answered score %d:\n%s", second.Result[d.DeviceID].Score, out)
		}
	})

	t.Run("an override", func(t *testing.T) {
		code, out, errb := runCLI("replay", "--dir", dir, "--device-id", overridden.DeviceID)
		want := []string{"adjustments (as recorded, after the fold):", "override: 0 -> 100", "loaner, ticket 123", "reproduced"}
		if code != 0 {
			t.Fatalf("exit %d: %s%s", code, out, errb)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
	})

	t.Run("no secret in the log", func(t *testing.T) {
		secrets := []string{strings.Split(token, ".")[2]}
		for _, v := range set.Vendors {
			for _, s := range v.Config("").Settings {
				if s.Secret {
					secrets = append(secrets, s.Value)
				}
			}
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range secrets {
				if bytes.Contains(b, []byte(s)) {
					t.Errorf("%s contains a secret (%.6s…)", f, s)
				}
			}
		}
	})

	t.Run("tampered", func(t *testing.T) {
		current := files[1]
		lines := bytes.SplitAfter(readAll(t, current), []byte("\n"))
		lines = lines[:len(lines)-1] // the empty tail after the last newline
		forged := bytes.Replace(lines[499], []byte(`"score":`), []byte(`"score":1`), 1)
		tests := []struct {
			name  string
			lines [][]byte
			want  string
		}{
			{"line 500 edited", replaceAt(lines, 499, forged), "audit.jsonl:500: edited"},
			{"line inserted at 500", insertAt(lines, 499, forged), "audit.jsonl:500: inserted"},
			{"line 500 deleted", deleteAt(lines, 499), "audit.jsonl:500: seq 1501 follows seq 1499"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				tdir := t.TempDir()
				rotated := filepath.Join(tdir, filepath.Base(files[0]))
				if err := os.WriteFile(rotated, readAll(t, files[0]), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(tdir, "audit.jsonl"), bytes.Join(tc.lines, nil), 0o600); err != nil {
					t.Fatal(err)
				}
				code, out, errb := runCLI("audit", "verify", rotated, filepath.Join(tdir, "audit.jsonl"))
				if code != 1 || !strings.Contains(errb, tc.want) {
					t.Errorf("audit verify: exit %d, stdout %q, stderr %q; want exit 1 naming %q", code, out, errb, tc.want)
				}
				code, _, errb = runCLI("replay", "--dir", tdir)
				if code != 1 || !strings.Contains(errb, "fails verification") || !strings.Contains(errb, tc.want) {
					t.Errorf("replay over a tampered log: exit %d, stderr %q", code, errb)
				}
			})
		}
	})

	t.Run("metrics", func(t *testing.T) {
		code, b := in.do(t, http.MethodGet, "/metrics", "", nil)
		if code != 200 || !strings.Contains(string(b), "\npostured_audit_errors_total 0\n") {
			t.Errorf("metrics %d: no postured_audit_errors_total 0", code)
		}
	})
}

// TestAuditFailsOpen: with an audit log whose disk is full (/dev/full),
// /posture still answers, and the failure shows in the log (once per
// batch), in postured_audit_errors_total and in /readyz, which stays ready.
func TestAuditFailsOpen(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full to fill the disk with")
	}
	dir := t.TempDir()
	writeInventory(t, dir, 10)
	in := startPostured(t, strings.ReplaceAll(e2eConfig, "%DIR%", dir)+"audit: {enabled: true, path: /dev/full}\n")
	token, err := in.issuer.AppToken(testAUD, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		code, b := in.post(t, "/posture", token, batch(0, 5, nil))
		var r postureReply
		if code != 200 || json.Unmarshal(b, &r) != nil || r.Result["cf-3"].S2SID != "asset-3" {
			t.Fatalf("posture with a full audit disk: %d %s", code, b)
		}
	}
	if n := strings.Count(in.logs.String(), "audit log write failed"); n != 2 {
		t.Errorf("%d audit error lines for 2 batches, want 2", n)
	}
	if _, b := in.do(t, http.MethodGet, "/metrics", "", nil); !strings.Contains(string(b), "\npostured_audit_errors_total 2\n") {
		t.Error("postured_audit_errors_total is not 2")
	}
	code, b := in.do(t, http.MethodGet, "/readyz", "", nil)
	var ready struct {
		Ready     bool                      `json:"ready"`
		Providers map[string]map[string]any `json:"providers"`
	}
	if err := json.Unmarshal(b, &ready); err != nil {
		t.Fatal(err)
	}
	if al := ready.Providers["audit_log"]; code != 200 || !ready.Ready || al == nil || al["error"] == nil {
		t.Errorf("readyz %d %s: want ready, with the audit log's error", code, b)
	}
}

func readAll(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func replaceAt(lines [][]byte, i int, l []byte) [][]byte {
	out := append([][]byte(nil), lines...)
	out[i] = l
	return out
}

func insertAt(lines [][]byte, i int, l []byte) [][]byte {
	out := append([][]byte(nil), lines[:i]...)
	out = append(out, l)
	return append(out, lines[i:]...)
}

func deleteAt(lines [][]byte, i int) [][]byte {
	out := append([][]byte(nil), lines[:i]...)
	return append(out, lines[i+1:]...)
}
