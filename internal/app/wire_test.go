package app

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/providers"
	"github.com/postured/postured/providers/static"
)

// writeFile writes data to path with an explicit mtime, so that every edit
// is a change whatever the filesystem's timestamp resolution.
func writeFile(t *testing.T, path, data string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// lockedBuffer is a log sink the syncing goroutine writes while the test
// reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func lookupSerial(t *testing.T, p aggregate.Provider, serial string) []string {
	t.Helper()
	recs, err := p.Lookup(t.Context(), providers.Query{Kind: providers.KindSerial, Values: []string{serial}})
	if err != nil {
		t.Fatalf("Lookup(%s): %v", serial, err)
	}
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.ID)
	}
	return ids
}

func TestBuildServesStaticAtOnce(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "inventory.yaml"), "devices:\n  - {id: asset-1, serial_number: SER1, score: 70}\n", time.Now())
	cfg, err := Parse([]byte(`
listen: "127.0.0.1:0"
access: {insecure_skip_verify: true}
providers:
  - {name: inventory, type: static, weight: 1, file: "`+filepath.Join(dir, "inventory.yaml")+`"}
`), Registry(), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	a, err := Build(cfg, Registry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	// No Start: the inventory checked at start-up is served before any
	// background loop has run.
	res, _ := a.Engine().Evaluate(t.Context(), []aggregate.Device{{ID: "d1", Serial: "ser1"}})
	if len(res) != 1 || res[0].Score != 70 || res[0].S2SID != "asset-1" {
		t.Fatalf("Evaluate = %+v", res)
	}
	if st, ok := a.statuses["inventory"]; !ok || !st.Status().Ready || st.Status().Records != 1 {
		t.Fatalf("status of inventory = %+v (reported: %v)", st, ok)
	}
	if len(a.runners) != 1 || len(a.syncers) != 1 {
		t.Fatalf("%d runners, %d syncers: want the static Syncer in both", len(a.runners), len(a.syncers))
	}
}

func TestStaticOpenRejectsBrokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inventory.csv")
	writeFile(t, path, "id,serial_number,mac_addresses,hostname,email,score,last_seen\na,S1,,,,101,\n", time.Now())
	cfg := &static.Config{Common: providers.Common{Name: "inv", Type: "static", Weight: 1}, File: path}
	cfg.Defaults()
	p, err := Registry()["static"].Open(cfg, providers.Deps{})
	if err == nil || !strings.Contains(err.Error(), "inventory.csv: line 2: score must be 0..100") {
		t.Fatalf("Open = %v, %v; want the file and line", p, err)
	}
	if p != nil {
		t.Fatalf("Open returned a provider with its error: %#v", p)
	}
}

// TestStaticReloadsUnderSyncer runs the static provider as postured does,
// on synctest's fake clock: every reload_interval the file is checked, a
// change is served, a broken edit keeps the previous inventory and is
// logged once.
func TestStaticReloadsUnderSyncer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const hdr = "id,serial_number,mac_addresses,hostname,email,score,last_seen\n"
		path := filepath.Join(t.TempDir(), "inventory.csv")
		base := time.Now().Add(-time.Hour)
		writeFile(t, path, hdr+"v1,OLD-1,,,,10,\n", base)
		cfg := &static.Config{Common: providers.Common{Name: "inv", Type: "static", Weight: 1}, File: path}
		cfg.Defaults()
		interval := time.Duration(cfg.ReloadInterval)
		var logs lockedBuffer
		p, err := Registry()["static"].Open(cfg, providers.Deps{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		status := func() aggregate.Status { return p.(aggregate.StatusReporter).Status() }
		if l, ok := p.(aggregate.Local); !ok || !l.Local() {
			t.Error("static is not Local: the Engine would cache it")
		}
		if got := lookupSerial(t, p, "OLD-1"); len(got) != 1 {
			t.Fatalf("OLD-1 not served after Open: %v", got)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { p.(aggregate.Runner).Run(ctx); close(done) }()
		// Run syncs at once: let that read finish before the file changes
		// under it (file I/O is not durably blocking, Wait covers it).
		synctest.Wait()

		tick := func() {
			time.Sleep(interval)
			synctest.Wait()
		}
		writeFile(t, path, hdr+"v2,NEW-2,,,,55,\n", base.Add(time.Minute))
		tick()
		if got := lookupSerial(t, p, "NEW-2"); len(got) != 1 {
			t.Fatalf("edit not served after one interval: %v", got)
		}
		if got := lookupSerial(t, p, "OLD-1"); got != nil {
			t.Fatalf("old record still served: %v", got)
		}

		writeFile(t, path, hdr+"v3,NEW-3,,,,555,\n", base.Add(2*time.Minute))
		for range 3 {
			tick()
		}
		st := status()
		if !strings.Contains(st.LastError, "inventory.csv: line 2: score must be 0..100") || !st.Ready || st.Records != 1 {
			t.Fatalf("Status after a broken edit = %+v", st)
		}
		if got := lookupSerial(t, p, "NEW-2"); len(got) != 1 {
			t.Fatalf("previous inventory dropped after a broken edit: %v", got)
		}
		if n := strings.Count(logs.String(), "inventory sync failed, keeping previous data"); n != 1 {
			t.Errorf("broken edit logged %d times over 3 intervals, want 1:\n%s", n, logs.String())
		}

		writeFile(t, path, hdr+"v4,NEW-4,,,,44,\n", base.Add(3*time.Minute))
		tick()
		if got := lookupSerial(t, p, "NEW-4"); len(got) != 1 {
			t.Fatalf("fixed file not served: %v", got)
		}
		if st := status(); st.LastError != "" || st.Records != 1 {
			t.Fatalf("Status after recovery = %+v", st)
		}
		cancel()
		<-done
	})
}

// TestRequireEmailMatchForReachesTheEngine: the provider key is wired to the
// engine, so a hostname match without the record's user does not count.
func TestRequireEmailMatchForReachesTheEngine(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "inventory.yaml"),
		"devices:\n  - {id: asset-1, hostname: mbp-42, email: jdoe@example.com, score: 90}\n", time.Now())
	for _, tc := range []struct {
		require string
		want    string
	}{{"", "asset-1"}, {"require_email_match_for: [hostname], ", ""}} {
		cfg, err := Parse([]byte(`
listen: "127.0.0.1:0"
access: {insecure_skip_verify: true}
providers:
  - {name: inventory, type: static, weight: 1, `+tc.require+`file: "`+filepath.Join(dir, "inventory.yaml")+`"}
`), Registry(), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		a, err := Build(cfg, Registry(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		res, _ := a.Engine().Evaluate(t.Context(), []aggregate.Device{{ID: "d1", Hostname: "MBP-42", Email: "eve@example.com"}})
		if res[0].S2SID != tc.want {
			t.Errorf("%q: s2s_id %q, want %q", tc.require, res[0].S2SID, tc.want)
		}
	}
}
