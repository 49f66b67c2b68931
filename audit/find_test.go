package audit_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/audit"
)

// TestFind answers "what did we say about this device at that time" over a
// rotated log.
func TestFind(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w := open(t, audit.Config{Path: path, MaxBytes: 1})
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	answer := func(dev string, min, score int, req string) audit.Record {
		r := rec(0)
		r.DeviceID, r.Time, r.Score, r.RequestID = dev, at(min), score, req
		return r
	}
	batches := [][]audit.Record{
		{answer("laptop", 0, 90, "a"), answer("other", 0, 10, "b")},
		{answer("laptop", 10, 55, "c")},
		{answer("other", 15, 20, "d")},
		// Two answers stamped alike: the later line is the one in force.
		{answer("laptop", 20, 40, "e"), answer("laptop", 20, 45, "f")},
	}
	for _, b := range batches {
		if err := w.Append(context.Background(), b...); err != nil {
			t.Fatal(err)
		}
	}
	fs := files(t, path)
	if len(fs) != len(batches) {
		t.Fatalf("%d files, want one per batch", len(fs))
	}
	tests := []struct {
		name    string
		device  string
		at      time.Time
		wantReq string // "" means none in force
	}{
		{name: "before the first answer", device: "laptop", at: at(-1)},
		{name: "at the first answer", device: "laptop", at: at(0), wantReq: "a"},
		{name: "between answers", device: "laptop", at: at(9).Add(59 * time.Second), wantReq: "a"},
		{name: "at a later answer", device: "laptop", at: at(10), wantReq: "c"},
		{name: "other device at the same time", device: "other", at: at(10), wantReq: "b"},
		{name: "tie goes to the later line", device: "laptop", at: at(60), wantReq: "f"},
		{name: "unknown device", device: "ghost", at: at(60)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, ok, err := audit.Find(context.Background(), fs, tc.device, tc.at)
			if err != nil {
				t.Fatal(err)
			}
			if ok != (tc.wantReq != "") || r.RequestID != tc.wantReq {
				t.Fatalf("Find = %q, %t; want %q", r.RequestID, ok, tc.wantReq)
			}
			if ok && (r.DeviceID != tc.device || r.Seq == 0 || r.Prev == "" || !r.Time.Equal(r.Time.UTC())) {
				t.Errorf("record %+v", r)
			}
		})
	}
	all := []struct {
		at   time.Time
		want []string // request ids, by device id
	}{
		{at: at(-1)},
		{at: at(0), want: []string{"a", "b"}},
		{at: at(10), want: []string{"c", "b"}},
		{at: at(60), want: []string{"f", "d"}},
	}
	for _, tc := range all {
		t.Run("all at "+tc.at.Format(time.Kitchen), func(t *testing.T) {
			rs, err := audit.FindAll(context.Background(), fs, tc.at)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rs {
				got = append(got, r.RequestID)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("FindAll = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFilesIn(t *testing.T) {
	tests := []struct {
		name    string
		files   []string
		want    []string
		wantErr string
	}{
		{name: "current only", files: []string{"audit.jsonl"}, want: []string{"audit.jsonl"}},
		{
			name:  "rotated and current, other files ignored",
			files: []string{"audit.jsonl", "audit-20260310T091402.000000000Z.jsonl", "audit-20260310T091401.000000000Z.jsonl", "notes.txt", "audit.jsonl.tmp"},
			want:  []string{"audit-20260310T091401.000000000Z.jsonl", "audit-20260310T091402.000000000Z.jsonl", "audit.jsonl"},
		},
		{name: "rotated only", files: []string{"log-20260310T091402.000000000Z.jsonl"}, want: []string{"log-20260310T091402.000000000Z.jsonl"}},
		{name: "dash in the name", files: []string{"posture-audit.jsonl"}, want: []string{"posture-audit.jsonl"}},
		{name: "none", files: []string{"notes.txt"}, wantErr: "no .jsonl files"},
		{name: "two logs", files: []string{"a.jsonl", "b-20260310T091402.000000000Z.jsonl"}, wantErr: "more than one log (a.jsonl, b.jsonl)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tc.files {
				writeFile(t, filepath.Join(dir, f), nil)
			}
			got, err := audit.FilesIn(dir)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want ~%q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(base(got), tc.want) {
				t.Errorf("FilesIn = %v, want %v", base(got), tc.want)
			}
		})
	}
}

func TestFindRefusesGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	c := &clock{t: t0}
	w := open(t, audit.Config{Path: path, Now: c.Now})
	appendEach(t, w, c, 0, 3)
	writeFile(t, path, append(readLines(t, path)[:1], []byte("garbage\n")))
	_, _, err := audit.Find(context.Background(), []string{path}, "dev-02", t0.Add(time.Hour))
	if err == nil || !strings.Contains(err.Error(), path+":2: not an audit record") {
		t.Fatalf("Find = %v, want line 2 named", err)
	}
}
