package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postured/postured/audit"
)

// lineLen is the length of one rec line written at a whole second with a
// one-digit seq.
func lineLen(t *testing.T) int64 {
	t.Helper()
	path := filepath.Join(t.TempDir(), "probe.jsonl")
	c := &clock{t: t0}
	w := open(t, audit.Config{Path: path, Now: c.Now})
	appendEach(t, w, c, 0, 1)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// seqs reads the seq of every line of each file.
func seqs(t *testing.T, paths []string) [][]uint64 {
	t.Helper()
	var out [][]uint64
	for _, p := range paths {
		var s []uint64
		for _, l := range readLines(t, p) {
			var r audit.Record
			if err := json.Unmarshal(l, &r); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			s = append(s, r.Seq)
		}
		out = append(out, s)
	}
	return out
}

// TestRotationRetention writes ten records, two to a file, and checks which
// files are left, their names and that the chain runs across them.
func TestRotationRetention(t *testing.T) {
	tests := []struct {
		name      string
		step      time.Duration // clock advance per record
		maxFiles  int
		maxAge    time.Duration
		wantNames []string
		wantSeqs  [][]uint64
	}{
		{
			name: "three files kept", step: time.Second, maxFiles: 3,
			wantNames: []string{"audit-20260310T091406.000000000Z.jsonl", "audit-20260310T091408.000000000Z.jsonl", "audit.jsonl"},
			wantSeqs:  [][]uint64{{5, 6}, {7, 8}, {9, 10}},
		},
		{
			name: "all kept", step: time.Second, maxFiles: 0,
			wantNames: []string{
				"audit-20260310T091402.000000000Z.jsonl", "audit-20260310T091404.000000000Z.jsonl",
				"audit-20260310T091406.000000000Z.jsonl", "audit-20260310T091408.000000000Z.jsonl", "audit.jsonl",
			},
			wantSeqs: [][]uint64{{1, 2}, {3, 4}, {5, 6}, {7, 8}, {9, 10}},
		},
		{
			// A stopped clock still gives distinct names in chain order.
			name: "clock stopped", step: 0, maxFiles: 4,
			wantNames: []string{"audit-20260310T091400.000000001Z.jsonl", "audit-20260310T091400.000000002Z.jsonl", "audit-20260310T091400.000000003Z.jsonl", "audit.jsonl"},
			wantSeqs:  [][]uint64{{3, 4}, {5, 6}, {7, 8}, {9, 10}},
		},
		{
			// Rotated at 2s, 4s, 6s and 8s; at the last rotation the files
			// rotated out more than 3s before go.
			name: "by age", step: time.Second, maxAge: 3 * time.Second,
			wantNames: []string{"audit-20260310T091406.000000000Z.jsonl", "audit-20260310T091408.000000000Z.jsonl", "audit.jsonl"},
			wantSeqs:  [][]uint64{{5, 6}, {7, 8}, {9, 10}},
		},
		{
			name: "current file only", step: time.Second, maxFiles: 1,
			wantNames: []string{"audit.jsonl"},
			wantSeqs:  [][]uint64{{9, 10}},
		},
	}
	l := lineLen(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			c := &clock{t: t0}
			w := open(t, audit.Config{Path: path, MaxBytes: 2*l + l/2, MaxFiles: tc.maxFiles, MaxAge: tc.maxAge, Now: c.Now})
			for i := range 10 {
				if err := w.Append(context.Background(), rec(i)); err != nil {
					t.Fatalf("Append %d: %v", i, err)
				}
				c.Advance(tc.step)
			}
			fs := files(t, path)
			if got := base(fs); !slices.Equal(got, tc.wantNames) {
				t.Errorf("files = %v, want %v", got, tc.wantNames)
			}
			if got := seqs(t, fs); !slices.EqualFunc(got, tc.wantSeqs, slices.Equal) {
				t.Errorf("seqs = %v, want %v", got, tc.wantSeqs)
			}
			sum, err := audit.Verify(context.Background(), fs...)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			_, head := w.Head()
			if sum.Head != head || sum.LastSeq != 10 || sum.FirstSeq != tc.wantSeqs[0][0] || sum.Files != len(fs) {
				t.Errorf("summary %+v, want head %s, seqs %d..10 in %d files", sum, head, tc.wantSeqs[0][0], len(fs))
			}
		})
	}
}

// TestRetentionByAge: max_age also applies when the log does not rotate:
// at New, and on an Append an hour after the last check.
func TestRetentionByAge(t *testing.T) {
	l := lineLen(t)
	tests := []struct {
		name  string
		after func(t *testing.T, path string, c *clock) // advances the clock and acts
		want  []string
	}{
		{
			name:  "young files stay",
			after: func(t *testing.T, path string, c *clock) { c.Advance(30 * time.Minute); appendOne(t, path, c) },
			want:  []string{"audit-20260310T091402.000000000Z.jsonl", "audit.jsonl"},
		},
		{
			name:  "New deletes old files",
			after: func(t *testing.T, path string, c *clock) { c.Advance(3 * time.Hour); openAged(t, path, c).Close() },
			want:  []string{"audit.jsonl"},
		},
		{
			name: "Append an hour later deletes old files",
			after: func(t *testing.T, path string, c *clock) {
				c.Advance(30 * time.Minute)
				w := openAged(t, path, c)
				c.Advance(2 * time.Hour)
				if err := w.Append(context.Background(), rec(9)); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"audit.jsonl"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			c := &clock{t: t0}
			w := open(t, audit.Config{Path: path, MaxBytes: 2*l + l/2, Now: c.Now})
			appendEach(t, w, c, 0, 3) // one rotation, at 2s
			w.Close()
			tc.after(t, path, c)
			if got := base(files(t, path)); !slices.Equal(got, tc.want) {
				t.Errorf("files = %v, want %v", got, tc.want)
			}
		})
	}
}

// openAged opens the log with a one-hour max_age and no size rotation.
func openAged(t *testing.T, path string, c *clock) *audit.Writer {
	t.Helper()
	return open(t, audit.Config{Path: path, MaxBytes: 1 << 30, MaxAge: time.Hour, Now: c.Now})
}

func appendOne(t *testing.T, path string, c *clock) {
	t.Helper()
	if err := openAged(t, path, c).Append(context.Background(), rec(9)); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyRotatedSet tampers with a set of files; Verify must name the
// file and line.
func TestVerifyRotatedSet(t *testing.T) {
	tests := []struct {
		name     string
		tamper   func(t *testing.T, fs []string) []string
		wantFile int // index into the files as written
		wantLine int
		want     string
	}{
		{name: "last line of the first file edited", tamper: func(t *testing.T, fs []string) []string {
			l := readLines(t, fs[0])
			l[1] = []byte(strings.Replace(string(l[1]), `"device_id":"dev-01"`, `"device_id":"dev-77"`, 1))
			writeFile(t, fs[0], l)
			return fs
		}, wantFile: 0, wantLine: 2, want: "edited"},
		{name: "first line of the second file deleted", tamper: func(t *testing.T, fs []string) []string {
			writeFile(t, fs[1], readLines(t, fs[1])[1:])
			return fs
		}, wantFile: 1, wantLine: 1, want: "deleted"},
		{name: "a middle file missing", tamper: func(t *testing.T, fs []string) []string {
			return slices.Delete(slices.Clone(fs), 1, 2)
		}, wantFile: 2, wantLine: 1, want: "2 line(s) before this one deleted"},
		{name: "files out of order", tamper: func(t *testing.T, fs []string) []string {
			fs = slices.Clone(fs)
			fs[1], fs[2] = fs[2], fs[1]
			return fs
		}, wantFile: 2, wantLine: 1, want: "deleted or moved"},
		{name: "current file cut", tamper: func(t *testing.T, fs []string) []string {
			l := readLines(t, fs[2])
			writeFile(t, fs[2], [][]byte{l[0], l[1][:20]})
			return fs
		}, wantFile: 2, wantLine: 2, want: "truncated"},
	}
	l := lineLen(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			c := &clock{t: t0}
			w := open(t, audit.Config{Path: path, MaxBytes: 2*l + l/2, Now: c.Now})
			appendEach(t, w, c, 0, 6)
			fs := files(t, path)
			if len(fs) != 3 {
				t.Fatalf("files %v, want 3", fs)
			}
			if _, err := audit.Verify(context.Background(), fs...); err != nil {
				t.Fatalf("Verify before tampering: %v", err)
			}
			_, err := audit.Verify(context.Background(), tc.tamper(t, fs)...)
			var p *audit.Problem
			if !errors.As(err, &p) {
				t.Fatalf("Verify = %v, want a *Problem", err)
			}
			if p.File != fs[tc.wantFile] || p.Line != tc.wantLine || !strings.Contains(p.Reason, tc.want) {
				t.Errorf("Verify = %v, want %s:%d: ...%s...", p, fs[tc.wantFile], tc.wantLine, tc.want)
			}
		})
	}
}

// TestResume reopens a log in the states a stop or crash leaves and checks
// that the chain continues, or that New refuses, naming the line.
func TestResume(t *testing.T) {
	tests := []struct {
		name string
		// crash changes the files after three records were written and the
		// writer closed; path is the current file.
		crash      func(t *testing.T, path string)
		wantErr    string // New fails with this, naming file and line
		wantBreaks []audit.Break
		wantFiles  int
	}{
		{name: "clean stop", crash: func(*testing.T, string) {}, wantFiles: 1},
		{name: "rotated, current not yet created", crash: func(t *testing.T, path string) {
			if err := os.Rename(path, filepath.Join(filepath.Dir(path), "audit-20260310T091500.000000000Z.jsonl")); err != nil {
				t.Fatal(err)
			}
		}, wantFiles: 2},
		{name: "rotated, current empty", crash: func(t *testing.T, path string) {
			if err := os.Rename(path, filepath.Join(filepath.Dir(path), "audit-20260310T091500.000000000Z.jsonl")); err != nil {
				t.Fatal(err)
			}
			writeFile(t, path, nil)
		}, wantFiles: 2},
		{name: "partial last line", crash: func(t *testing.T, path string) {
			l := readLines(t, path)
			writeFile(t, path, append(l, l[0][:30]))
		}, wantBreaks: []audit.Break{{File: "audit-20260310T091403.000000000Z.jsonl", Line: 4, Bytes: 30}}, wantFiles: 2},
		{name: "current holds only a partial line", crash: func(t *testing.T, path string) {
			l := readLines(t, path)
			if err := os.Rename(path, filepath.Join(filepath.Dir(path), "audit-20260310T091300.000000000Z.jsonl")); err != nil {
				t.Fatal(err)
			}
			writeFile(t, path, [][]byte{l[0][:30]})
		}, wantBreaks: []audit.Break{{File: "audit-20260310T091403.000000000Z.jsonl", Line: 1, Bytes: 30}}, wantFiles: 3},
		{name: "crash after moving the damaged file aside", crash: func(t *testing.T, path string) {
			l := readLines(t, path)
			writeFile(t, filepath.Join(filepath.Dir(path), "audit-20260310T091300.000000000Z.jsonl"), append(l, l[0][:30]))
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, wantBreaks: []audit.Break{{File: "audit-20260310T091300.000000000Z.jsonl", Line: 4, Bytes: 30}}, wantFiles: 2},
		{name: "partial lines in two files", crash: func(t *testing.T, path string) {
			l := readLines(t, path)
			writeFile(t, filepath.Join(filepath.Dir(path), "audit-20260310T091300.000000000Z.jsonl"), append(l, l[0][:30]))
			writeFile(t, path, [][]byte{l[0][:20]})
		}, wantErr: "audit.jsonl:1 are both partial lines"},
		{name: "complete last line is not a record", crash: func(t *testing.T, path string) {
			writeFile(t, path, append(readLines(t, path), []byte("not json\n")))
		}, wantErr: "audit.jsonl:4: last line is not an audit record"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			c := &clock{t: t0}
			w := open(t, audit.Config{Path: path, Now: c.Now})
			appendEach(t, w, c, 0, 3)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			tc.crash(t, path)

			w, err := audit.New(audit.Config{Path: path, Now: c.Now})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer w.Close()
			appendEach(t, w, c, 3, 6)
			fs := files(t, path)
			sum, err := audit.Verify(context.Background(), fs...)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			var gotBreaks []audit.Break
			for _, b := range sum.Breaks {
				gotBreaks = append(gotBreaks, audit.Break{File: filepath.Base(b.File), Line: b.Line, Bytes: b.Bytes})
			}
			wantLines := 6 + len(tc.wantBreaks) // each break adds its break line
			if !slices.Equal(gotBreaks, tc.wantBreaks) || sum.Lines != wantLines || sum.FirstSeq != 1 || len(fs) != tc.wantFiles {
				t.Errorf("summary %+v over %v; want breaks %v, %d lines from seq 1, %d files", sum, base(fs), tc.wantBreaks, wantLines, tc.wantFiles)
			}
			seq, head := w.Head()
			if sum.Head != head || sum.LastSeq != seq {
				t.Errorf("summary head %d %s, writer head %d %s", sum.LastSeq, sum.Head, seq, head)
			}
			if r, ok, err := audit.Find(context.Background(), fs, "dev-05", t0.Add(time.Hour)); err != nil || !ok || r.Seq != seq {
				t.Errorf("Find(dev-05) = %+v, %t, %v; want seq %d", r, ok, err, seq)
			}
		})
	}
}

// TestAppendConcurrent appends from many goroutines into small files: every
// record lands once, each goroutine's records in its order, and the chain
// verifies.
func TestAppendConcurrent(t *testing.T) {
	const workers, per = 8, 40
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	c := &clock{t: t0}
	w := open(t, audit.Config{Path: path, MaxBytes: 8 << 10, Now: c.Now})
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			for i := 0; i < per; {
				// Batches of one to three records.
				var batch []audit.Record
				for range 1 + (g+i)%3 {
					if i == per {
						break
					}
					r := rec(i)
					r.DeviceID = fmt.Sprintf("g%d-%03d", g, i)
					batch = append(batch, r)
					i++
				}
				if err := w.Append(context.Background(), batch...); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	fs := files(t, path)
	if len(fs) < 3 {
		t.Fatalf("only %d files; the test wants rotations under concurrency", len(fs))
	}
	sum, err := audit.Verify(context.Background(), fs...)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if sum.Lines != workers*per || sum.LastSeq != workers*per {
		t.Errorf("summary %+v, want %d lines", sum, workers*per)
	}
	next := make(map[int]int) // goroutine -> next record index expected
	for _, f := range fs {
		for _, l := range readLines(t, f) {
			var r audit.Record
			if err := json.Unmarshal(l, &r); err != nil {
				t.Fatal(err)
			}
			var g, i int
			if _, err := fmt.Sscanf(r.DeviceID, "g%d-%d", &g, &i); err != nil {
				t.Fatalf("device %q: %v", r.DeviceID, err)
			}
			if i != next[g] {
				t.Fatalf("goroutine %d: record %d after %d", g, i, next[g]-1)
			}
			next[g]++
		}
	}
	for g := range workers {
		if next[g] != per {
			t.Errorf("goroutine %d: %d records, want %d", g, next[g], per)
		}
	}
}

func TestAppendRefuses(t *testing.T) {
	huge := rec(1)
	huge.Providers[0].Note = strings.Repeat("x", audit.MaxLineBytes)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		close   bool
		records []audit.Record
		want    string
	}{
		{name: "record over the line limit", ctx: context.Background(), records: []audit.Record{rec(0), huge}, want: "over the 1048576-byte line limit"},
		{name: "canceled context", ctx: canceled, records: []audit.Record{rec(0)}, want: "context canceled"},
		{name: "closed", ctx: context.Background(), close: true, records: []audit.Record{rec(0)}, want: audit.ErrClosed.Error()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			c := &clock{t: t0}
			w := open(t, audit.Config{Path: path, Now: c.Now})
			appendEach(t, w, c, 0, 2)
			seq, head := w.Head()
			if tc.close {
				w.Close()
			}
			if err := w.Append(tc.ctx, tc.records...); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Append = %v, want %q", err, tc.want)
			}
			// Nothing of the batch was written and the chain goes on.
			if s, h := w.Head(); s != seq || h != head {
				t.Errorf("head moved to %d %s", s, h)
			}
			if got := len(readLines(t, path)); got != 2 {
				t.Errorf("%d lines in the file, want 2", got)
			}
			if !tc.close {
				appendEach(t, w, c, 2, 3)
				if sum, err := audit.Verify(context.Background(), path); err != nil || sum.Lines != 3 {
					t.Errorf("Verify = %+v, %v; want 3 lines", sum, err)
				}
			}
		})
	}
}

// TestAppendWriteError shows a failed write reaches the caller; /dev/full
// fails every write with ENOSPC.
func TestAppendWriteError(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	w, err := audit.New(audit.Config{Path: "/dev/full"})
	if err != nil {
		t.Skipf("New(/dev/full): %v", err)
	}
	defer w.Close()
	if err := w.Append(context.Background(), rec(0)); err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("Append = %v, want ENOSPC", err)
	}
}

func TestNewRefusesConfig(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  audit.Config
		want string
	}{
		{name: "no path", cfg: audit.Config{}, want: "no path"},
		{name: "negative size", cfg: audit.Config{Path: filepath.Join(dir, "a.jsonl"), MaxBytes: -1}, want: "must not be negative"},
		{name: "negative files", cfg: audit.Config{Path: filepath.Join(dir, "a.jsonl"), MaxFiles: -1}, want: "must not be negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := audit.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestFileModes checks that every way the writer creates a file leaves it
// private to the service, and that a directory it creates is too: the log
// names devices and users.
func TestFileModes(t *testing.T) {
	l := lineLen(t)
	tests := []struct {
		name     string
		maxBytes int64
		// crash, if set, damages the current file between a first writer
		// and a second, which must move it aside and start a new one.
		crash     func(t *testing.T, path string)
		wantFiles int
	}{
		{name: "fresh", wantFiles: 1},
		{name: "rotated", maxBytes: l + l/2, wantFiles: 3},
		{name: "restarted after a partial line", crash: func(t *testing.T, path string) {
			l := readLines(t, path)
			writeFile(t, path, append(l, l[0][:30]))
		}, wantFiles: 2},
	}
	mode := func(t *testing.T, path string) os.FileMode {
		t.Helper()
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode().Perm()
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "log")
			path := filepath.Join(dir, "audit.jsonl")
			c := &clock{t: t0}
			cfg := audit.Config{Path: path, MaxBytes: tc.maxBytes, Now: c.Now}
			w := open(t, cfg)
			appendEach(t, w, c, 0, 3)
			if tc.crash != nil {
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				tc.crash(t, path)
				open(t, cfg)
			}
			if got := mode(t, dir); got != 0o700 {
				t.Errorf("dir mode %v, want 0700", got)
			}
			fs := files(t, path)
			if len(fs) != tc.wantFiles {
				t.Fatalf("files = %v, want %d", base(fs), tc.wantFiles)
			}
			for _, f := range fs {
				if tc.crash != nil && f != path {
					continue // the test wrote the moved-aside file itself
				}
				if got := mode(t, f); got != 0o600 {
					t.Errorf("%s mode %v, want 0600", filepath.Base(f), got)
				}
			}
		})
	}
}
